//! The Store: typed Gateway API and Kubernetes objects, filled by a source (a folder of YAML
//! or the cluster's kube watchers) and read by [`crate::translate`]. It never validates Gateway API
//! semantics and never does IO.
//!
//! Objects are kept in `BTreeMap`s keyed by namespace and name, so every walk over the store is in
//! a stable order and `translate` is deterministic.
//!
//! **Creation order.** Gateway API breaks precedence ties by the oldest `creationTimestamp`. Objects
//! read from files have none, so every object also gets a load sequence number ([`Stored::order`]):
//! files in path order, documents in file order. Age compares `creationTimestamp` first (objects
//! with one are older than objects without), then the load order, then `{namespace}/{name}`
//! (see [`Stored::age_key`]). Re-applying an object (same kind, namespace and name) replaces it but
//! keeps its first load order, as a real update keeps the creation timestamp.

use std::collections::BTreeMap;

use gateway_api::experimental::gatewayclasses::GatewayClass;
use gateway_api::experimental::gateways::Gateway;
use gateway_api::experimental::httproutes::HttpRoute;
use gateway_api::experimental::referencegrants::ReferenceGrant;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

pub mod name;
pub mod secret;

use name::NameRule;
pub use secret::Secret;

/// The label every namespace carries (set by the API server; added here for namespaces that exist
/// only because something refers to them).
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Namespace of a namespaced object written without `metadata.namespace`, as `kubectl apply`
/// without `-n` does.
pub const DEFAULT_NAMESPACE: &str = "default";

/// `{namespace}/{name}` of a namespaced object; orders by namespace, then name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> ObjectKey {
        ObjectKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// An object with where it came from.
#[derive(Debug, Clone)]
pub struct Stored<T> {
    pub object: T,
    /// Load sequence number: the creation-order fallback (see the module docs).
    pub order: u64,
    /// Where the object was read, e.g. `routes/shop.yaml#2` (for messages only).
    pub origin: String,
}

/// Sort key for "the oldest object": creation timestamp (present before absent), then load order.
/// Callers append `{namespace}/{name}` themselves where the spec asks for it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Age {
    /// `(false, t)` for a timestamp `t`, `(true, _)` when absent, so timestamped objects sort first.
    created: (bool, Option<k8s_openapi::jiff::Timestamp>),
    order: u64,
}

impl<T> Stored<T> {
    /// The age key of an object with metadata `meta`.
    pub fn age_key(&self, meta: &ObjectMeta) -> Age {
        let created = meta.creation_timestamp.as_ref().map(|Time(t)| *t);
        Age {
            created: (created.is_none(), created),
            order: self.order,
        }
    }
}

/// The kinds the store keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    GatewayClass,
    Gateway,
    HttpRoute,
    ReferenceGrant,
    Service,
    EndpointSlice,
    Namespace,
    Secret,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::GatewayClass,
        Kind::Gateway,
        Kind::HttpRoute,
        Kind::ReferenceGrant,
        Kind::Service,
        Kind::EndpointSlice,
        Kind::Namespace,
        Kind::Secret,
    ];

    /// The Kubernetes kind, as written in `kind:`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::GatewayClass => "GatewayClass",
            Kind::Gateway => "Gateway",
            Kind::HttpRoute => "HTTPRoute",
            Kind::ReferenceGrant => "ReferenceGrant",
            Kind::Service => "Service",
            Kind::EndpointSlice => "EndpointSlice",
            Kind::Namespace => "Namespace",
            Kind::Secret => "Secret",
        }
    }

    /// GatewayClass and Namespace have no namespace.
    pub fn cluster_scoped(self) -> bool {
        matches!(self, Kind::GatewayClass | Kind::Namespace)
    }

    /// Whether the kind is a Gateway API kind (`gateway.networking.k8s.io`).
    pub fn gateway_api(self) -> bool {
        matches!(
            self,
            Kind::GatewayClass | Kind::Gateway | Kind::HttpRoute | Kind::ReferenceGrant
        )
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One object of a kind the store keeps.
#[derive(Debug, Clone)]
pub enum Object {
    GatewayClass(Box<GatewayClass>),
    Gateway(Box<Gateway>),
    HttpRoute(Box<HttpRoute>),
    ReferenceGrant(Box<ReferenceGrant>),
    Service(Box<Service>),
    EndpointSlice(Box<EndpointSlice>),
    Namespace(Box<Namespace>),
    Secret(Box<Secret>),
}

impl Object {
    /// The Kubernetes kind, for messages.
    pub fn kind(&self) -> &'static str {
        self.kind_of().as_str()
    }

    pub fn kind_of(&self) -> Kind {
        match self {
            Object::GatewayClass(_) => Kind::GatewayClass,
            Object::Gateway(_) => Kind::Gateway,
            Object::HttpRoute(_) => Kind::HttpRoute,
            Object::ReferenceGrant(_) => Kind::ReferenceGrant,
            Object::Service(_) => Kind::Service,
            Object::EndpointSlice(_) => Kind::EndpointSlice,
            Object::Namespace(_) => Kind::Namespace,
            Object::Secret(_) => Kind::Secret,
        }
    }

    pub fn meta(&self) -> &ObjectMeta {
        match self {
            Object::GatewayClass(o) => &o.metadata,
            Object::Gateway(o) => &o.metadata,
            Object::HttpRoute(o) => &o.metadata,
            Object::ReferenceGrant(o) => &o.metadata,
            Object::Service(o) => &o.metadata,
            Object::EndpointSlice(o) => &o.metadata,
            Object::Namespace(o) => &o.metadata,
            Object::Secret(o) => &o.metadata,
        }
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Object::GatewayClass(o) => &mut o.metadata,
            Object::Gateway(o) => &mut o.metadata,
            Object::HttpRoute(o) => &mut o.metadata,
            Object::ReferenceGrant(o) => &mut o.metadata,
            Object::Service(o) => &mut o.metadata,
            Object::EndpointSlice(o) => &mut o.metadata,
            Object::Namespace(o) => &mut o.metadata,
            Object::Secret(o) => &mut o.metadata,
        }
    }
}

/// Why an object could not be stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("{kind} has no metadata.name")]
    MissingName { kind: &'static str },
    /// A name or namespace the API server would refuse (see [`name`]).
    #[error("{kind} {name:?}: field `{field}`: invalid value {value:?}: {reason}")]
    InvalidName {
        kind: &'static str,
        /// The object's `metadata.name` as written.
        name: String,
        /// `metadata.name` or `metadata.namespace`.
        field: &'static str,
        value: String,
        reason: &'static str,
    },
    /// A value the CRD's or the core type's schema refuses (`HTTPRoute.spec.hostnames[]`,
    /// `Gateway.spec.listeners[].name` and `.hostname`, `Service.spec.ports[].name`): the API
    /// server would not have stored the object, and a table could not carry it.
    #[error("{kind} {name:?}: field `{field}`: invalid value {value:?}: {reason}")]
    InvalidField {
        kind: &'static str,
        name: String,
        field: String,
        value: String,
        reason: &'static str,
    },
}

impl StoreError {
    /// The field the error is about.
    pub fn field(&self) -> Option<&str> {
        match self {
            StoreError::MissingName { .. } => Some("metadata.name"),
            StoreError::InvalidName { field, .. } => Some(field),
            StoreError::InvalidField { field, .. } => Some(field),
        }
    }
}

/// The first field of `object` that its schema refuses, of those that end up in a table, as
/// `(field, value, reason)`: checked as the API server checks them, so that a bad object from a
/// folder is refused alone instead of making the filter refuse its Gateway's whole table.
fn invalid_field(object: &Object) -> Option<(String, &str, &'static str)> {
    // The filter's own checks, so that what loads is what a table can carry.
    use gammaroute_filter::table::validate::{
        dns_label as port_name, hostname_syntax, k8s_subdomain as section_name, HostnameKind,
    };
    /// `Hostname`: RFC 1123, an optional leading `*.`, no IPs.
    fn hostname(h: &str) -> Result<(), &'static str> {
        hostname_syntax(h, HostnameKind::Pattern)
    }
    type Check<'a> = (String, &'a str, fn(&str) -> Result<(), &'static str>);
    let fields: Vec<Check<'_>> = match object {
        Object::HttpRoute(r) => (0..)
            .zip(r.spec.hostnames.iter().flatten())
            .map(|(i, h)| -> Check<'_> { (format!("spec.hostnames[{i}]"), h, hostname) })
            .collect(),
        Object::Gateway(g) => (0..)
            .zip(&g.spec.listeners)
            .flat_map(|(i, l)| {
                let name: Check<'_> = (
                    format!("spec.listeners[{i}].name"),
                    l.name.as_str(),
                    section_name,
                );
                let host = l.hostname.as_deref().map(|h| -> Check<'_> {
                    (format!("spec.listeners[{i}].hostname"), h, hostname)
                });
                std::iter::once(name).chain(host)
            })
            .collect(),
        Object::Service(svc) => (0..)
            .zip(svc.spec.iter().flat_map(|s| s.ports.iter().flatten()))
            .filter_map(|(i, p)| -> Option<Check<'_>> {
                Some((
                    format!("spec.ports[{i}].name"),
                    p.name.as_deref()?,
                    port_name,
                ))
            })
            .collect(),
        _ => return None,
    };
    fields
        .into_iter()
        .find_map(|(field, value, check)| check(value).err().map(|reason| (field, value, reason)))
}

/// Every object translate looks at.
#[derive(Debug, Clone, Default)]
pub struct Store {
    pub gateway_classes: BTreeMap<String, Stored<GatewayClass>>,
    pub gateways: BTreeMap<ObjectKey, Stored<Gateway>>,
    pub http_routes: BTreeMap<ObjectKey, Stored<HttpRoute>>,
    pub reference_grants: BTreeMap<ObjectKey, Stored<ReferenceGrant>>,
    pub services: BTreeMap<ObjectKey, Stored<Service>>,
    pub endpoint_slices: BTreeMap<ObjectKey, Stored<EndpointSlice>>,
    /// Declared Namespace objects only; see [`Store::namespaces`] for every namespace that exists.
    pub declared_namespaces: BTreeMap<String, Stored<Namespace>>,
    /// TLS material for listener `certificateRefs` (see [`secret`]).
    pub secrets: BTreeMap<ObjectKey, Stored<Secret>>,
    next_order: u64,
}

fn put<K: Ord, T>(map: &mut BTreeMap<K, Stored<T>>, key: K, object: T, order: u64, origin: String) {
    let order = map.get(&key).map_or(order, |old| old.order);
    map.insert(
        key,
        Stored {
            object,
            order,
            origin,
        },
    );
}

impl Store {
    pub fn new() -> Store {
        Store::default()
    }

    /// The kind and `{namespace}/{name}` that `object` is stored under ([`Store::apply`]'s
    /// defaulting: no namespace → [`DEFAULT_NAMESPACE`]; cluster-scoped kinds have namespace `""`).
    /// Two objects with the same identity are the same object to the API server. Names and
    /// namespaces are checked as the API server checks them ([`name::NameRule`]): they end up in
    /// role names, file names and URLs.
    pub fn identity(object: &Object) -> Result<(Kind, ObjectKey), StoreError> {
        let kind = object.kind_of();
        let meta = object.meta();
        let name = match meta.name.as_deref() {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => {
                return Err(StoreError::MissingName {
                    kind: kind.as_str(),
                })
            }
        };
        let invalid = |field, value: &str, reason| StoreError::InvalidName {
            kind: kind.as_str(),
            name: name.clone(),
            field,
            value: value.to_string(),
            reason,
        };
        NameRule::for_name(kind)
            .check(&name)
            .map_err(|reason| invalid("metadata.name", &name, reason))?;
        let namespace = if kind.cluster_scoped() {
            String::new()
        } else {
            match meta.namespace.as_deref() {
                Some(ns) if !ns.is_empty() => {
                    NameRule::Label
                        .check(ns)
                        .map_err(|reason| invalid("metadata.namespace", ns, reason))?;
                    ns.to_string()
                }
                _ => DEFAULT_NAMESPACE.to_string(),
            }
        };
        Ok((kind, ObjectKey::new(namespace, name)))
    }

    /// Adds or replaces an object (`kubectl apply`). A namespaced object without a namespace goes
    /// to [`DEFAULT_NAMESPACE`]; a cluster-scoped one loses any namespace it was given.
    pub fn apply(
        &mut self,
        mut object: Object,
        origin: impl Into<String>,
    ) -> Result<(), StoreError> {
        let (kind, key) = Store::identity(&object)?;
        if let Some((field, value, reason)) = invalid_field(&object) {
            return Err(StoreError::InvalidField {
                kind: kind.as_str(),
                name: key.name.clone(),
                field,
                value: value.to_string(),
                reason,
            });
        }
        let meta = object.meta_mut();
        meta.namespace = (!kind.cluster_scoped()).then(|| key.namespace.clone());
        let name = key.name.clone();
        let order = self.next_order;
        self.next_order += 1;
        let origin = origin.into();
        match object {
            Object::GatewayClass(o) => put(&mut self.gateway_classes, name, *o, order, origin),
            Object::Gateway(o) => put(&mut self.gateways, key, *o, order, origin),
            Object::HttpRoute(o) => put(&mut self.http_routes, key, *o, order, origin),
            Object::ReferenceGrant(o) => put(&mut self.reference_grants, key, *o, order, origin),
            Object::Service(o) => put(&mut self.services, key, *o, order, origin),
            Object::EndpointSlice(o) => put(&mut self.endpoint_slices, key, *o, order, origin),
            Object::Namespace(o) => put(&mut self.declared_namespaces, name, *o, order, origin),
            Object::Secret(o) => put(&mut self.secrets, key, *o, order, origin),
        }
        Ok(())
    }

    /// Every namespace that exists, with its labels: declared Namespace objects, plus every
    /// namespace some object lives in or refers to (parentRefs, backendRefs, ReferenceGrant
    /// `from`). An implicit namespace has only the [`NAMESPACE_NAME_LABEL`] label; declared ones
    /// get it too if their YAML left it out (the API server always sets it).
    pub fn namespaces(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        // A namespace named only by a reference must be a valid one too (the CRD schemas
        // require it; a folder has no schema): an invalid one cannot exist, so it gets no table.
        let mut implicit = |ns: &str| {
            if NameRule::Label.check(ns).is_ok() {
                out.entry(ns.to_string()).or_default();
            }
        };
        for k in self.gateways.keys() {
            implicit(&k.namespace);
        }
        for k in self.reference_grants.keys() {
            implicit(&k.namespace);
        }
        for k in self.services.keys() {
            implicit(&k.namespace);
        }
        for k in self.endpoint_slices.keys() {
            implicit(&k.namespace);
        }
        for (k, r) in &self.http_routes {
            implicit(&k.namespace);
            for p in r.object.spec.parent_refs.iter().flatten() {
                if let Some(ns) = &p.namespace {
                    implicit(ns);
                }
            }
            for rule in r.object.spec.rules.iter().flatten() {
                for b in rule.backend_refs.iter().flatten() {
                    if let Some(ns) = &b.namespace {
                        implicit(ns);
                    }
                }
            }
        }
        for g in self.reference_grants.values() {
            for f in &g.object.spec.from {
                implicit(&f.namespace);
            }
        }
        for (name, ns) in &self.declared_namespaces {
            let labels = out.entry(name.clone()).or_default();
            labels.extend(ns.object.metadata.labels.clone().unwrap_or_default());
        }
        for (name, labels) in &mut out {
            labels.insert(NAMESPACE_NAME_LABEL.to_string(), name.clone());
        }
        out
    }

    /// Number of objects stored.
    pub fn len(&self) -> usize {
        self.gateway_classes.len()
            + self.gateways.len()
            + self.http_routes.len()
            + self.reference_grants.len()
            + self.services.len()
            + self.endpoint_slices.len()
            + self.declared_namespaces.len()
            + self.secrets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Service;

    fn service(name: &str, namespace: Option<&str>) -> Object {
        Object::Service(Box::new(Service {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: namespace.map(Into::into),
                ..ObjectMeta::default()
            },
            ..Service::default()
        }))
    }

    #[test]
    fn names_that_the_api_server_refuses_never_reach_the_store() {
        let mut store = Store::new();
        let e = store.apply(service("../../x", None), "t").unwrap_err();
        assert_eq!(e.field(), Some("metadata.name"));
        assert!(
            e.to_string().starts_with(
                r#"Service "../../x": field `metadata.name`: invalid value "../../x""#
            ),
            "{e}"
        );
        let e = store.apply(service("ok", Some("/etc")), "t").unwrap_err();
        assert_eq!(e.field(), Some("metadata.namespace"));
        assert!(e.to_string().contains("RFC 1123 label"), "{e}");
        assert!(store.is_empty());
        store.apply(service("ok", Some("ns-1")), "t").unwrap();
        assert_eq!(store.len(), 1);
    }
}
