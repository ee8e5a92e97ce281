//! backendRef resolution: kind, ReferenceGrant, Service, port, protocol, endpoints → a table
//! [`BackendTarget`] plus, when the reference is invalid, the `ResolvedRefs` problem to report.
//!
//! Decisions (see also `config-pusher/README.md`):
//! - **Cluster names** are `<namespace>/<service>:<port>` (the Service port); the filter maps them
//!   to the host's naming scheme (`cluster_naming` in its plugin configuration).
//! - **Invalid references keep their weight** and answer 500 for their share
//!   (`Unavailable{500}`), with `ResolvedRefs=False` and the reason.
//! - **ReferenceGrant** is required for a cross-namespace backendRef of a route attached to a
//!   **Gateway**. For **Service (GAMMA) parents it is not**: a producer route only steers traffic
//!   already addressed to its own Service and a consumer route only its own namespace's clients,
//!   who can reach the backend directly anyway (GEP-1294: "not required in most mesh
//!   implementations"; Istio and Linkerd do the same). A route with both kinds of parents is
//!   translated once per kind, so its Gateway parents still enforce grants.
//! - **Endpoints**: a Service with EndpointSlices but no ready endpoint for the port answers 503
//!   for its share (`Unavailable{503}`); that is not a reference error, so `ResolvedRefs` stays
//!   True. A Service with **no EndpointSlices at all** is treated as available: a folder of YAML
//!   (the demo, CI) usually has none, and Envoy's cluster (STRICT_DNS on the Service name in the
//!   standalone render) answers for itself. An endpoint counts as ready unless
//!   `conditions.ready` is `false` (EndpointSlice API: unknown means ready).
//! - ExternalName and headless Services have no ClusterIP frontend to forward through the mesh;
//!   ExternalName backends are refused (`InvalidKind`), headless ones are accepted.

use std::collections::BTreeMap;

use gammaroute_filter::table::BackendTarget;
use k8s_openapi::api::core::v1::{Service, ServicePort};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::status::{Reason, RouteProblem};
use super::Context;
use crate::store::{ObjectKey, Store};

/// The Gateway API group.
pub const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";

/// Label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// `appProtocol` values the filter can forward (absent is plain HTTP/1.1 or h2 by negotiation).
const SUPPORTED_APP_PROTOCOLS: [&str; 4] = ["http", "kubernetes.io/h2c", "kubernetes.io/ws", "h2c"];

/// Lookups translate needs often, built once per run.
pub struct Index<'s> {
    pub store: &'s Store,
    /// EndpointSlices by the Service they belong to.
    slices: BTreeMap<ObjectKey, Vec<&'s EndpointSlice>>,
}

impl<'s> Index<'s> {
    pub fn new(store: &'s Store) -> Index<'s> {
        let mut slices: BTreeMap<ObjectKey, Vec<&'s EndpointSlice>> = BTreeMap::new();
        for (key, s) in &store.endpoint_slices {
            let svc = s
                .object
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL));
            if let Some(svc) = svc {
                slices
                    .entry(ObjectKey::new(key.namespace.clone(), svc.clone()))
                    .or_default()
                    .push(&s.object);
            }
        }
        Index { store, slices }
    }

    pub fn service(&self, namespace: &str, name: &str) -> Option<&'s Service> {
        self.store
            .services
            .get(&ObjectKey::new(namespace, name))
            .map(|s| &s.object)
    }

    /// Whether a ReferenceGrant in `to_namespace` lets HTTPRoutes in `from_namespace` refer to
    /// Service `service`.
    pub fn granted(&self, from_namespace: &str, to_namespace: &str, service: &str) -> bool {
        let start = ObjectKey::new(to_namespace, "");
        self.store
            .reference_grants
            .range(start..)
            .take_while(|(k, _)| k.namespace == to_namespace)
            .any(|(_, g)| {
                let spec = &g.object.spec;
                spec.from.iter().any(|f| {
                    f.group == GATEWAY_GROUP
                        && f.kind == "HTTPRoute"
                        && f.namespace == from_namespace
                }) && spec.to.iter().any(|t| {
                    t.group.is_empty()
                        && t.kind == "Service"
                        && t.name.as_deref().is_none_or(|n| n == service)
                })
            })
    }

    /// `Some(false)` when the Service has EndpointSlices but none has a ready endpoint serving
    /// `port`; `None` when it has no EndpointSlices (unknown: treated as available).
    pub fn has_ready_endpoints(
        &self,
        namespace: &str,
        service: &str,
        port: &ServicePort,
    ) -> Option<bool> {
        let slices = self.slices.get(&ObjectKey::new(namespace, service))?;
        let port_name = port.name.as_deref().unwrap_or("");
        Some(slices.iter().any(|s| {
            let serves_port = s.ports.as_deref().is_none_or(|ps| {
                ps.is_empty()
                    || ps
                        .iter()
                        .any(|p| p.name.as_deref().unwrap_or("") == port_name)
            });
            serves_port
                && s.endpoints.iter().any(|e| {
                    !e.addresses.is_empty()
                        && e.conditions.as_ref().and_then(|c| c.ready) != Some(false)
                })
        }))
    }
}

/// A backendRef's fields, whatever list it came from (rule backendRefs, mirror backendRef).
#[derive(Debug, Clone, Copy)]
pub struct Ref<'a> {
    pub group: Option<&'a str>,
    pub kind: Option<&'a str>,
    pub name: &'a str,
    pub namespace: Option<&'a str>,
    pub port: Option<i32>,
}

/// The standalone cluster name of a Service port.
pub fn cluster_name(namespace: &str, service: &str, port: u16) -> String {
    format!("{namespace}/{service}:{port}")
}

/// Resolves a backendRef of a route in `route_namespace`, translated for `ctx`.
pub fn resolve(
    idx: &Index,
    route_namespace: &str,
    ctx: Context,
    r: Ref,
) -> (BackendTarget, Option<RouteProblem>) {
    let group = r.group.unwrap_or("");
    let kind = r.kind.unwrap_or("Service");
    let namespace = r.namespace.unwrap_or(route_namespace);
    let shown = format!("{namespace}/{}", r.name);
    let fail = |reason: Reason, message: String| {
        (
            BackendTarget::Unavailable {
                status: 500,
                reason: message.clone(),
            },
            Some(RouteProblem { reason, message }),
        )
    };
    if !group.is_empty() || kind != "Service" {
        let gk = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        return fail(
            Reason::InvalidKind,
            format!("backendRef {shown}: kind {gk} is not supported (only core Services)"),
        );
    }
    if namespace != route_namespace
        && ctx == Context::Gateway
        && !idx.granted(route_namespace, namespace, r.name)
    {
        return fail(
            Reason::RefNotPermitted,
            format!(
                "backendRef {shown}: no ReferenceGrant in namespace {namespace} allows HTTPRoutes from namespace {route_namespace} to refer to this Service"
            ),
        );
    }
    let Some(service) = idx.service(namespace, r.name) else {
        return fail(
            Reason::BackendNotFound,
            format!("backendRef {shown}: Service not found"),
        );
    };
    let spec = service.spec.clone().unwrap_or_default();
    if spec.type_.as_deref() == Some("ExternalName") {
        return fail(
            Reason::InvalidKind,
            format!("backendRef {shown}: ExternalName Services are not supported"),
        );
    }
    let Some(port) = r.port else {
        return fail(
            Reason::BackendNotFound,
            format!("backendRef {shown}: port is required for a Service backend"),
        );
    };
    let Some(sp) = spec.ports.iter().flatten().find(|p| p.port == port) else {
        return fail(
            Reason::BackendNotFound,
            format!("backendRef {shown}: Service has no port {port}"),
        );
    };
    if let Some(proto) = sp.protocol.as_deref() {
        if proto != "TCP" {
            return fail(
                Reason::UnsupportedProtocol,
                format!("backendRef {shown}: port {port} uses protocol {proto}, not TCP"),
            );
        }
    }
    if let Some(app) = sp.app_protocol.as_deref() {
        if !SUPPORTED_APP_PROTOCOLS
            .iter()
            .any(|s| s.eq_ignore_ascii_case(app))
        {
            // KEP-3726 `kubernetes.io/wss` is WebSocket over TLS; Gateway API originates backend
            // TLS only from a BackendTLSPolicy (GEP-1911 defers TLS to GEP-1897), not served here.
            let why = if app.eq_ignore_ascii_case("kubernetes.io/wss") {
                "; WebSocket over TLS needs TLS to the backend, configured by a BackendTLSPolicy, which is not supported"
            } else {
                ""
            };
            return fail(
                Reason::UnsupportedProtocol,
                format!(
                    "backendRef {shown}: port {port} has appProtocol {app} (supported: http, kubernetes.io/h2c, kubernetes.io/ws){why}"
                ),
            );
        }
    }
    let Ok(port16) = u16::try_from(port) else {
        return fail(
            Reason::BackendNotFound,
            format!("backendRef {shown}: invalid port {port}"),
        );
    };
    if idx.has_ready_endpoints(namespace, r.name, sp) == Some(false) {
        return (
            BackendTarget::Unavailable {
                status: 503,
                reason: format!("Service {shown} port {port} has no ready endpoints"),
            },
            None,
        );
    }
    (
        BackendTarget::Cluster(cluster_name(namespace, r.name, port16)),
        None,
    )
}
