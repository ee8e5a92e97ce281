//! East–west (GAMMA, GEP-1294): HTTPRoutes whose parent is a Service, and the per-client-namespace
//! tables `mesh/<namespace>`.
//!
//! - A Service parentRef needs `group: ""` and `kind: Service`; the Service must exist and have a
//!   ClusterIP (headless and ExternalName Services have no frontend to match:
//!   `NoMatchingParent`). `port` and/or `sectionName` (the port name) select ports; neither
//!   selects every TCP port of the Service.
//! - **Producer** routes (in the Service's namespace) apply to clients in every namespace;
//!   **consumer** routes (in another namespace) only to clients in their own namespace.
//! - Every namespace that exists (declared or referenced, see [`crate::store::Store::namespaces`])
//!   gets a table. In it, a Service for which that namespace has consumer routes uses only those,
//!   on every port (GEP-1686 "consumer routes have priority over producer routes", decided per
//!   Service, docs/semantics.md §5: a port that only has producer routes then keeps default routing
//!   for that namespace); every other routed Service uses its producer routes.
//! - Route `hostnames` are ignored for Service parents (GAMMA "SHOULD NOT infer any functionality
//!   from the hostnames field").

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use gateway_api::experimental::httproutes::HttpRouteParentRefs;
use k8s_openapi::api::core::v1::Service;

use super::backend::Index;
use super::status::{Reason, RouteProblem};
use crate::store::ObjectKey;

/// A Service parent resolved: its ports (by value) that the parentRef selects.
#[derive(Debug, Clone)]
pub struct Parent {
    pub service: ObjectKey,
    pub ports: Vec<u16>,
}

/// Routes attached to Service ports.
#[derive(Debug, Default)]
pub struct MeshAttachments {
    /// Producer routes by Service, then port.
    pub producer: BTreeMap<ObjectKey, BTreeMap<u16, BTreeSet<ObjectKey>>>,
    /// Consumer routes by Service, then client namespace, then port.
    pub consumer: BTreeMap<ObjectKey, BTreeMap<String, BTreeMap<u16, BTreeSet<ObjectKey>>>>,
}

impl MeshAttachments {
    /// Records an accepted route on a Service parent.
    pub fn add(&mut self, route: &ObjectKey, parent: &Parent) {
        let ports = if parent.service.namespace == route.namespace {
            self.producer.entry(parent.service.clone()).or_default()
        } else {
            self.consumer
                .entry(parent.service.clone())
                .or_default()
                .entry(route.namespace.clone())
                .or_default()
        };
        for p in &parent.ports {
            ports.entry(*p).or_default().insert(route.clone());
        }
    }
}

/// The Service frontend addresses (`spec.clusterIPs`, else `spec.clusterIP`), without `None`.
pub fn cluster_ips(svc: &Service) -> Vec<IpAddr> {
    let spec = svc.spec.clone().unwrap_or_default();
    let ips = spec
        .cluster_ips
        .unwrap_or_else(|| spec.cluster_ip.into_iter().collect());
    let mut out: Vec<IpAddr> = Vec::new();
    for ip in ips.iter().filter_map(|s| s.parse::<IpAddr>().ok()) {
        if !out.contains(&ip) {
            out.push(ip);
        }
    }
    out
}

/// Resolves a Service parentRef of a route in `route_ns`.
pub fn resolve(
    idx: &Index,
    parent: &HttpRouteParentRefs,
    route_ns: &str,
) -> Result<Parent, RouteProblem> {
    let ns = parent.namespace.as_deref().unwrap_or(route_ns);
    let key = ObjectKey::new(ns, parent.name.clone());
    let no = |m: String| {
        Err(RouteProblem::new(
            Reason::NoMatchingParent,
            format!("Service {key}: {m}"),
        ))
    };
    if parent.group.as_deref() != Some("") {
        return no("a Service parentRef needs group \"\" (the core API group)".into());
    }
    let Some(svc) = idx.service(ns, &parent.name) else {
        return no("not found".into());
    };
    let spec = svc.spec.clone().unwrap_or_default();
    if spec.type_.as_deref() == Some("ExternalName") {
        return no("ExternalName Services cannot be mesh parents".into());
    }
    if cluster_ips(svc).is_empty() {
        return no("has no ClusterIP (headless Services cannot be mesh parents)".into());
    }
    let ports: Vec<u16> = spec
        .ports
        .iter()
        .flatten()
        .filter(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
        .filter(|p| parent.port.is_none_or(|want| p.port == want))
        .filter(|p| {
            parent
                .section_name
                .as_deref()
                .is_none_or(|s| p.name.as_deref() == Some(s))
        })
        .filter_map(|p| u16::try_from(p.port).ok().filter(|p| *p != 0))
        .collect();
    if ports.is_empty() {
        let what = match (&parent.section_name, parent.port) {
            (Some(s), Some(p)) => format!("no TCP port named {s} with number {p}"),
            (Some(s), None) => format!("no TCP port named {s}"),
            (None, Some(p)) => format!("no TCP port {p}"),
            (None, None) => "no TCP ports".into(),
        };
        return no(what);
    }
    Ok(Parent {
        service: key,
        ports,
    })
}
