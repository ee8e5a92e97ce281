//! The IO of provisioning: read the parameters ConfigMaps and the objects of ours that exist,
//! [`plan`](super::plan::plan), and write with server-side apply (field manager
//! [`FIELD_MANAGER`], forced: these objects are ours) or delete. One round per call; the caller
//! ([`super::run`]) only calls it on the Lease holder.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use gammaroute_filter::table::RouteTable;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use kube::{Api, Client};
use serde_json::Value;

use super::bootstrap::{self, ControlPlane};
use super::objects::{self, Managed, ManagedKind, ProvisionOptions, MANAGED_BY, MANAGED_BY_LABEL};
use super::params::{self, ParamsError, ParamsRef, ProxyParams};
use super::plan::{self, Action, Id};
use super::status::{self, Infra, InfraError};
use crate::auth::Secret;
use crate::serve::programmed::gateway_role;
use crate::store::{ObjectKey, Store};

/// The field manager of config-pusher's server-side applies.
pub const FIELD_MANAGER: &str = "gammaroute-config-pusher";

/// A write that failed (the next round retries).
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("listing {kind}s: {source}")]
    List {
        kind: &'static str,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("applying {kind} {namespace}/{name}: {source}")]
    Apply {
        kind: &'static str,
        namespace: String,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("deleting {kind} {namespace}/{name}: {source}")]
    Delete {
        kind: &'static str,
        namespace: String,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
}

/// What a round did.
#[derive(Debug, Default)]
pub struct Round {
    /// Per Gateway of ours: its proxies' state, for its status.
    pub infra: BTreeMap<ObjectKey, Infra>,
    pub actions: Vec<Action>,
    pub errors: Vec<ProvisionError>,
}

/// Provisions the Gateways of one `controllerName`.
#[derive(Clone)]
pub struct Provisioner {
    client: Client,
    controller_name: String,
    options: ProvisionOptions,
    /// config-pusher's Service, where the proxies fetch their tables (and get their clusters
    /// over ADS when it serves them).
    control_plane: ControlPlane,
    /// config-pusher's secret: each Gateway's bootstrap gets its role's token.
    secret: Option<Secret>,
    cluster_domain: String,
}

pub fn api_resource(kind: ManagedKind) -> ApiResource {
    let (group, plural) = match kind {
        ManagedKind::ServiceAccount => ("", "serviceaccounts"),
        ManagedKind::ConfigMap => ("", "configmaps"),
        ManagedKind::Service => ("", "services"),
        ManagedKind::Deployment => ("apps", "deployments"),
    };
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, "v1", kind.as_str()), plural)
}

impl Provisioner {
    pub fn new(
        client: Client,
        controller_name: impl Into<String>,
        options: ProvisionOptions,
        control_plane: ControlPlane,
        secret: Option<Secret>,
        cluster_domain: impl Into<String>,
    ) -> Provisioner {
        Provisioner {
            client,
            controller_name: controller_name.into(),
            options,
            control_plane,
            secret,
            cluster_domain: cluster_domain.into(),
        }
    }

    /// One round over the store's Gateways of our classes and their `tables` (by role).
    pub async fn reconcile(&self, store: &Store, tables: &BTreeMap<String, RouteTable>) -> Round {
        let mut round = Round::default();
        let mut live = BTreeMap::new();
        for kind in ManagedKind::ALL {
            match self.list(kind).await {
                Ok(objects) => live.extend(objects),
                Err(e) => {
                    // Without the full picture nothing may be deleted: stop here.
                    round.errors.push(e);
                    return round;
                }
            }
        }
        // Pods only explain an unavailable Deployment: without them the status says less.
        let pods = match self.pods().await {
            Ok(pods) => pods,
            Err(e) => {
                tracing::debug!("proxy pods not listed: {e}");
                BTreeMap::new()
            }
        };
        let (desired, keep) = self.desired(store, tables, &mut round).await;
        round.actions = plan::plan(&desired, &live, &keep);
        for action in &round.actions {
            if let Err(e) = self.write(action).await {
                round.errors.push(e);
            }
        }
        for key in desired
            .iter()
            .map(|d| ObjectKey::new(d.namespace.clone(), gateway_of(d)))
        {
            if round.infra.contains_key(&key) {
                continue;
            }
            let name = objects::object_name(&key.name);
            let find = |kind| live.get(&(kind, key.namespace.clone(), name.clone()));
            round.infra.insert(
                key.clone(),
                Infra::Provisioned {
                    addresses: find(ManagedKind::Service)
                        .map(status::service_addresses)
                        .unwrap_or_default(),
                    unavailable: match find(ManagedKind::Deployment) {
                        Some(d) => status::deployment_unavailable(d).map(|why| {
                            let mut all = vec![why];
                            let label = objects::label_value(&key.name);
                            let pods = pods.get(&ObjectKey::new(key.namespace.clone(), label));
                            all.extend(pods.into_iter().flatten().cloned());
                            all.join("; ")
                        }),
                        None => Some("proxy Deployment created, waiting for it".into()),
                    },
                },
            );
        }
        round
    }

    /// The desired objects of every Gateway of ours, and the Gateways whose objects must stay
    /// as they are (their desired state could not be computed: [`Infra::Invalid`] says why).
    async fn desired(
        &self,
        store: &Store,
        tables: &BTreeMap<String, RouteTable>,
        round: &mut Round,
    ) -> (Vec<Managed>, BTreeSet<ObjectKey>) {
        // Service DNS names, not pod IPs, in the bootstraps (see `bootstrap`).
        let mut dns_only = store.clone();
        dns_only.endpoint_slices.clear();
        let mut params_of: BTreeMap<String, Result<ProxyParams, Arc<InfraError>>> = BTreeMap::new();
        let mut desired = Vec::new();
        let mut keep = BTreeSet::new();
        for (key, gw) in &store.gateways {
            let class_name = &gw.object.spec.gateway_class_name;
            let Some(class) = store.gateway_classes.get(class_name) else {
                continue;
            };
            if class.object.spec.controller_name != self.controller_name {
                continue;
            }
            if !params_of.contains_key(class_name) {
                let p = self
                    .params(class_name, &class.object)
                    .await
                    .map_err(Arc::new);
                params_of.insert(class_name.clone(), p);
            }
            let made = match params_of.get(class_name) {
                Some(Ok(p)) => self
                    .objects(&dns_only, key, &gw.object, p, tables)
                    .map_err(Arc::new),
                Some(Err(e)) => Err(e.clone()),
                None => continue,
            };
            match made {
                Ok(objects) => desired.extend(objects),
                Err(why) => {
                    tracing::warn!(gateway = %key, "proxies not provisioned: {why}");
                    keep.insert(key.clone());
                    round.infra.insert(key.clone(), Infra::Invalid(why));
                }
            }
        }
        (desired, keep)
    }

    fn objects(
        &self,
        store: &Store,
        key: &ObjectKey,
        gateway: &gateway_api::experimental::gateways::Gateway,
        params: &ProxyParams,
        tables: &BTreeMap<String, RouteTable>,
    ) -> Result<Vec<Managed>, InfraError> {
        let role = gateway_role(&key.namespace, &key.name);
        let table = tables.get(&role).ok_or(InfraError::NoTable(role.clone()))?;
        let control_plane = self
            .control_plane
            .with_token(self.secret.as_ref().map(|s| s.role_token(&role)));
        let yaml = bootstrap::render(
            store,
            table,
            &control_plane,
            &self.cluster_domain,
            &self.options.module,
        )?;
        Ok(objects::desired(gateway, params, &self.options, &yaml)?)
    }

    /// The class's parameters: defaults without `parametersRef`.
    async fn params(
        &self,
        class_name: &str,
        class: &gateway_api::experimental::gatewayclasses::GatewayClass,
    ) -> Result<ProxyParams, InfraError> {
        let Some(r) = &class.spec.parameters_ref else {
            return Ok(ProxyParams::default());
        };
        let ParamsRef { namespace, name } = params::params_ref(class_name, r)?;
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &namespace);
        match api.get_opt(&name).await {
            Ok(Some(cm)) => Ok(params::parse(&cm)?),
            Ok(None) => Err(ParamsError::NotFound {
                class: class_name.to_string(),
                namespace,
                name,
            }
            .into()),
            Err(e) => Err(InfraError::ReadParams {
                namespace,
                name,
                source: Box::new(e),
            }),
        }
    }

    async fn list(&self, kind: ManagedKind) -> Result<BTreeMap<Id, Value>, ProvisionError> {
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &api_resource(kind));
        let selector = format!("{MANAGED_BY_LABEL}={MANAGED_BY}");
        let list = api
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| ProvisionError::List {
                kind: kind.as_str(),
                source: Box::new(e),
            })?;
        Ok(list
            .items
            .into_iter()
            // Whatever the API server answered, never touch an object without our label.
            .filter(|o| {
                o.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(MANAGED_BY_LABEL))
                    .is_some_and(|v| v == MANAGED_BY)
            })
            .filter_map(|o| {
                let id = (
                    kind,
                    o.metadata.namespace.clone()?,
                    o.metadata.name.clone()?,
                );
                Some((id, serde_json::to_value(&o).ok()?))
            })
            .collect())
    }

    /// What keeps the proxy pods of each Gateway from running ([`status::pod_problems`]), by
    /// the Gateway they carry in their labels.
    async fn pods(&self) -> Result<BTreeMap<ObjectKey, Vec<String>>, ProvisionError> {
        let api: Api<Pod> = Api::all(self.client.clone());
        let selector = format!("{MANAGED_BY_LABEL}={MANAGED_BY}");
        let list = api
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| ProvisionError::List {
                kind: "Pod",
                source: Box::new(e),
            })?;
        let mut out: BTreeMap<ObjectKey, Vec<String>> = BTreeMap::new();
        for pod in list.items {
            let (Some(ns), Some(gw)) = (
                pod.metadata.namespace.clone(),
                pod.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(objects::GATEWAY_NAME_LABEL))
                    .cloned(),
            ) else {
                continue;
            };
            let Ok(value) = serde_json::to_value(&pod) else {
                continue;
            };
            out.entry(ObjectKey::new(ns, gw))
                .or_default()
                .extend(status::pod_problems(&value));
        }
        Ok(out)
    }

    async fn write(&self, action: &Action) -> Result<(), ProvisionError> {
        match action {
            Action::Apply(m) => {
                let api: Api<DynamicObject> =
                    Api::namespaced_with(self.client.clone(), &m.namespace, &api_resource(m.kind));
                api.patch(
                    &m.name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&m.body),
                )
                .await
                .map_err(|e| ProvisionError::Apply {
                    kind: m.kind.as_str(),
                    namespace: m.namespace.clone(),
                    name: m.name.clone(),
                    source: Box::new(e),
                })?;
                tracing::info!(kind = m.kind.as_str(), namespace = %m.namespace, name = %m.name, "applied");
            }
            Action::Delete((kind, namespace, name)) => {
                let api: Api<DynamicObject> =
                    Api::namespaced_with(self.client.clone(), namespace, &api_resource(*kind));
                match api.delete(name, &DeleteParams::background()).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(e) => {
                        return Err(ProvisionError::Delete {
                            kind: kind.as_str(),
                            namespace: namespace.clone(),
                            name: name.clone(),
                            source: Box::new(e),
                        })
                    }
                }
                tracing::info!(kind = kind.as_str(), %namespace, %name, "deleted: no Gateway of ours wants it");
            }
        }
        Ok(())
    }
}

/// The Gateway a desired object belongs to (its label; objects carry the full name when short).
fn gateway_of(m: &Managed) -> String {
    m.body["metadata"]["ownerReferences"][0]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}
