//! What the provisioned objects say about a Gateway, laid over its translated status (pure):
//!
//! - `status.addresses` (Gateway API `GatewayStatus.addresses`): the provisioned Service's
//!   `status.loadBalancer.ingress` (IP or hostname), else its ClusterIPs.
//! - `Programmed` stays `True` only when the proxies can serve: the Deployment is `Available`
//!   and the Service has an address (on top of `serve::programmed`'s "a proxy applied the
//!   current table"). Otherwise `False` with `AddressNotAssigned` (no address yet), `Pending`
//!   (Deployment unavailable, with its own conditions' messages: image pull, crash loop…) or
//!   `Invalid` (the GatewayClass parameters cannot be used).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::store::ObjectKey;
use crate::translate::status::{
    Condition, ConditionType, GatewayAddress, Reason, Status, StatusDoc,
};

/// The state of one Gateway's provisioned proxies.
#[derive(Debug, Clone)]
pub enum Infra {
    /// Its objects could not be made (parameters, bootstrap, objects); shared, since one
    /// GatewayClass's unusable parameters make every Gateway of the class invalid.
    Invalid(Arc<InfraError>),
    Provisioned {
        addresses: Vec<GatewayAddress>,
        /// `None` when the Deployment is available, else why not.
        unavailable: Option<String>,
    },
}

/// Why a Gateway's proxy objects cannot be made: shown in its `Programmed=False/Invalid`.
#[derive(Debug, thiserror::Error)]
pub enum InfraError {
    #[error("no route table for {0} (see the problems in /v1/status)")]
    NoTable(String),
    #[error(transparent)]
    Params(#[from] super::params::ParamsError),
    /// The class's parameters ConfigMap could not be read.
    #[error("reading ConfigMap {namespace}/{name}: {source}")]
    ReadParams {
        namespace: String,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error(transparent)]
    Bootstrap(#[from] super::bootstrap::BootstrapError),
    #[error(transparent)]
    Objects(#[from] super::objects::ObjectsError),
}

/// Addresses of a live Service (see the module docs).
pub fn service_addresses(service: &Value) -> Vec<GatewayAddress> {
    let address = |type_: &str, value: &str| GatewayAddress {
        type_: type_.into(),
        value: value.into(),
    };
    let ingress: Vec<GatewayAddress> = service["status"]["loadBalancer"]["ingress"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| match (i["ip"].as_str(), i["hostname"].as_str()) {
            (Some(ip), _) => Some(address("IPAddress", ip)),
            (None, Some(host)) => Some(address("Hostname", host)),
            _ => None,
        })
        .collect();
    if !ingress.is_empty() {
        return ingress;
    }
    let spec = &service["spec"];
    let ips: Vec<&str> = match spec["clusterIPs"].as_array() {
        Some(ips) => ips.iter().filter_map(Value::as_str).collect(),
        None => spec["clusterIP"].as_str().into_iter().collect(),
    };
    ips.into_iter()
        .filter(|ip| !ip.is_empty() && *ip != "None")
        .map(|ip| address("IPAddress", ip))
        .collect()
}

/// `None` when a live Deployment is available (`status.conditions[type=Available]` True), else
/// why not, from its conditions.
pub fn deployment_unavailable(deployment: &Value) -> Option<String> {
    let conditions = deployment["status"]["conditions"].as_array();
    let find = |t: &str| {
        conditions
            .into_iter()
            .flatten()
            .find(|c| c["type"].as_str() == Some(t))
    };
    if find("Available").is_some_and(|c| c["status"].as_str() == Some("True")) {
        return None;
    }
    let ready = deployment["status"]["availableReplicas"]
        .as_i64()
        .unwrap_or(0);
    let wanted = deployment["spec"]["replicas"].as_i64().unwrap_or(1);
    let mut why = format!("proxy Deployment not available: {ready} of {wanted} replicas available");
    for t in ["Available", "Progressing", "ReplicaFailure"] {
        if let Some(m) = find(t).and_then(|c| c["message"].as_str()) {
            why.push_str(&format!("; {t}: {m}"));
        }
    }
    Some(why)
}

/// Why a live proxy pod does not run, from its container statuses: a container waiting for a
/// reason other than starting (`ImagePullBackOff`, `ErrImagePull`, `CrashLoopBackOff`,
/// `CreateContainerConfigError`…), with its message. Empty when nothing is wrong.
pub fn pod_problems(pod: &Value) -> Vec<String> {
    let name = pod["metadata"]["name"].as_str().unwrap_or("?");
    let statuses = ["initContainerStatuses", "containerStatuses"]
        .into_iter()
        .flat_map(|k| pod["status"][k].as_array().into_iter().flatten());
    statuses
        .filter_map(|c| {
            let waiting = &c["state"]["waiting"];
            let reason = waiting["reason"].as_str()?;
            if reason == "ContainerCreating" || reason == "PodInitializing" {
                return None;
            }
            let container = c["name"].as_str().unwrap_or("?");
            let mut why = format!("pod {name}: {container}: {reason}");
            if let Some(m) = waiting["message"].as_str().filter(|m| !m.is_empty()) {
                why.push_str(&format!(" ({m})"));
            }
            if let Some(t) = c["lastState"]["terminated"]["reason"].as_str() {
                let code = &c["lastState"]["terminated"]["exitCode"];
                why.push_str(&format!("; last exit: {t}, code {code}"));
            }
            Some(why)
        })
        .collect()
}

/// Lays `infra` over the Gateway statuses of a translation (see the module docs). Gateways
/// without an entry are not provisioned yet: `Programmed` turns `False`/`Pending`.
pub fn apply(statuses: &mut [StatusDoc], infra: &BTreeMap<ObjectKey, Infra>) {
    for doc in statuses {
        let key = ObjectKey::new(
            doc.metadata.namespace.clone().unwrap_or_default(),
            doc.metadata.name.clone(),
        );
        let Status::Gateway(gw) = &mut doc.status else {
            continue;
        };
        let (reason, message) = match infra.get(&key) {
            None => (
                Reason::Pending,
                "waiting for config-pusher to provision the proxies".to_string(),
            ),
            Some(Infra::Invalid(why)) => (Reason::Invalid, why.to_string()),
            Some(Infra::Provisioned {
                addresses,
                unavailable,
            }) => {
                if !addresses.is_empty() {
                    gw.addresses = addresses.clone();
                }
                match (addresses.is_empty(), unavailable) {
                    (true, _) => (
                        Reason::AddressNotAssigned,
                        "the proxies' Service has no address yet".to_string(),
                    ),
                    (false, Some(why)) => (Reason::Pending, why.clone()),
                    (false, None) => continue,
                }
            }
        };
        let listener_reason = match reason {
            Reason::Invalid => Reason::Invalid,
            _ => Reason::Pending,
        };
        let gateway = std::iter::once((&mut gw.conditions, reason));
        let listeners = gw
            .listeners
            .iter_mut()
            .map(|l| (&mut l.conditions, listener_reason));
        for (conditions, reason) in gateway.chain(listeners) {
            for c in conditions.iter_mut() {
                if c.type_ == ConditionType::Programmed && c.status {
                    *c = Condition::new(
                        ConditionType::Programmed,
                        false,
                        reason,
                        message.clone(),
                        c.observed_generation,
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::status::{GatewayStatus, ListenerStatus, Meta};
    use serde_json::json;

    fn doc() -> StatusDoc {
        let ok = || {
            vec![Condition::new(
                ConditionType::Programmed,
                true,
                Reason::Programmed,
                "",
                Some(1),
            )]
        };
        StatusDoc {
            api_version: "gateway.networking.k8s.io/v1",
            kind: "Gateway",
            metadata: Meta {
                namespace: Some("shop".into()),
                name: "gw".into(),
            },
            status: Status::Gateway(GatewayStatus {
                addresses: vec![],
                conditions: ok(),
                listeners: vec![ListenerStatus {
                    name: "http".into(),
                    supported_kinds: vec![],
                    attached_routes: 0,
                    conditions: ok(),
                }],
            }),
        }
    }

    fn programmed(d: &StatusDoc) -> (bool, Reason, Vec<String>, Reason) {
        let Status::Gateway(gw) = &d.status else {
            unreachable!()
        };
        (
            gw.conditions[0].status,
            gw.conditions[0].reason,
            gw.addresses.iter().map(|a| a.value.clone()).collect(),
            gw.listeners[0].conditions[0].reason,
        )
    }

    #[test]
    fn addresses_prefer_the_load_balancer() {
        let lb = json!({"spec": {"clusterIP": "10.0.0.9"}, "status": {"loadBalancer": {"ingress": [
            {"ip": "203.0.113.7"}, {"hostname": "lb.example"}]}}});
        let a = service_addresses(&lb);
        assert_eq!(
            a[0],
            GatewayAddress {
                type_: "IPAddress".into(),
                value: "203.0.113.7".into()
            }
        );
        assert_eq!(
            a[1],
            GatewayAddress {
                type_: "Hostname".into(),
                value: "lb.example".into()
            }
        );
        let cluster = json!({"spec": {"clusterIPs": ["10.0.0.9", "fd00::9"]}, "status": {"loadBalancer": {}}});
        assert_eq!(service_addresses(&cluster).len(), 2);
        assert!(service_addresses(&json!({"spec": {"clusterIP": "None"}})).is_empty());
    }

    #[test]
    fn programmed_needs_an_address_and_an_available_deployment() {
        let key = ObjectKey::new("shop", "gw");
        let addr = vec![GatewayAddress {
            type_: "IPAddress".into(),
            value: "10.0.0.9".into(),
        }];
        let run = |infra: Option<Infra>| {
            let mut d = vec![doc()];
            apply(
                &mut d,
                &infra
                    .map(|i| BTreeMap::from([(key.clone(), i)]))
                    .unwrap_or_default(),
            );
            programmed(&d[0])
        };
        assert_eq!(run(None), (false, Reason::Pending, vec![], Reason::Pending));
        let ready = Infra::Provisioned {
            addresses: addr.clone(),
            unavailable: None,
        };
        assert_eq!(
            run(Some(ready)),
            (
                true,
                Reason::Programmed,
                vec!["10.0.0.9".into()],
                Reason::Programmed
            )
        );
        let no_address = Infra::Provisioned {
            addresses: vec![],
            unavailable: None,
        };
        assert_eq!(
            run(Some(no_address)),
            (false, Reason::AddressNotAssigned, vec![], Reason::Pending)
        );
        let down = Infra::Provisioned {
            addresses: addr,
            unavailable: Some("x".into()),
        };
        assert_eq!(
            run(Some(down)),
            (
                false,
                Reason::Pending,
                vec!["10.0.0.9".into()],
                Reason::Pending
            )
        );
        let bad = InfraError::NoTable("gateway/default/web".into());
        assert_eq!(run(Some(Infra::Invalid(Arc::new(bad)))).1, Reason::Invalid);
    }

    #[test]
    fn pods_say_what_keeps_them_from_running() {
        let pod = json!({"metadata": {"name": "gw-gammaroute-1"}, "status": {"containerStatuses": [
            {"name": "envoy", "state": {"waiting": {"reason": "CrashLoopBackOff",
                                                   "message": "back-off 40s restarting failed container"}},
             "lastState": {"terminated": {"reason": "Error", "exitCode": 1}}}]}});
        assert_eq!(
            pod_problems(&pod),
            ["pod gw-gammaroute-1: envoy: CrashLoopBackOff (back-off 40s restarting failed container); last exit: Error, code 1"]
        );
        let pulling = json!({"metadata": {"name": "p"}, "status": {"containerStatuses": [
            {"name": "envoy", "state": {"waiting": {"reason": "ImagePullBackOff", "message": ""}}}]}});
        assert_eq!(pod_problems(&pulling), ["pod p: envoy: ImagePullBackOff"]);
        let starting = json!({"status": {"containerStatuses": [
            {"name": "envoy", "state": {"waiting": {"reason": "ContainerCreating"}}}]}});
        assert!(pod_problems(&starting).is_empty());
        assert!(pod_problems(&json!({"status": {"containerStatuses": [
            {"name": "envoy", "state": {"running": {}}}]}}))
        .is_empty());
    }

    #[test]
    fn unavailable_deployments_say_why() {
        assert_eq!(
            deployment_unavailable(&json!({"status": {"conditions": [
            {"type": "Available", "status": "True"}]}})),
            None
        );
        let why = deployment_unavailable(&json!({"spec": {"replicas": 2}, "status": {"conditions": [
            {"type": "Available", "status": "False", "message": "Deployment does not have minimum availability."},
            {"type": "Progressing", "status": "False", "message": "ReplicaSet \"gw\" has timed out progressing."}]}}))
        .unwrap();
        assert!(
            why.starts_with("proxy Deployment not available: 0 of 2"),
            "{why}"
        );
        assert!(why.contains("timed out progressing"), "{why}");
    }
}
