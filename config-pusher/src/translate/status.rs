//! Status as Gateway API defines it, computed by the same pass that builds the tables.
//!
//! The documents mirror the API objects' `status` stanzas (`kubectl get -o yaml` shape) so the
//! status writer can merge them into the real objects. Two deliberate differences:
//! - conditions have no `lastTransitionTime`: translate is pure and deterministic; the writer sets
//!   it when a condition's status changes and keeps it otherwise;
//! - `observedGeneration` is the object's `metadata.generation`, absent when the object has none
//!   (objects read from files).
//!
//! HTTPRoute `status.parents` holds only the entries of our controller; the writer keeps other
//! controllers' entries.

use serde::Serialize;

/// Condition types and reasons (Gateway API v1.6.1 `shared_types.go`, `gateway_types.go`,
/// `gatewayclass_types.go`). gateway-api-rs has the Gateway ones only; Route ones are defined here.
pub mod reason {
    // Condition types.
    pub const ACCEPTED: &str = "Accepted";
    pub const RESOLVED_REFS: &str = "ResolvedRefs";
    pub const PARTIALLY_INVALID: &str = "PartiallyInvalid";
    pub const PROGRAMMED: &str = "Programmed";
    pub const CONFLICTED: &str = "Conflicted";

    // Route Accepted reasons.
    pub const NOT_ALLOWED_BY_LISTENERS: &str = "NotAllowedByListeners";
    pub const NO_MATCHING_LISTENER_HOSTNAME: &str = "NoMatchingListenerHostname";
    pub const NO_MATCHING_PARENT: &str = "NoMatchingParent";
    pub const UNSUPPORTED_VALUE: &str = "UnsupportedValue";
    pub const INCOMPATIBLE_FILTERS: &str = "IncompatibleFilters";
    // Route ResolvedRefs reasons.
    pub const REF_NOT_PERMITTED: &str = "RefNotPermitted";
    pub const INVALID_KIND: &str = "InvalidKind";
    pub const BACKEND_NOT_FOUND: &str = "BackendNotFound";
    pub const UNSUPPORTED_PROTOCOL: &str = "UnsupportedProtocol";

    // Gateway / listener reasons.
    pub const LISTENERS_NOT_VALID: &str = "ListenersNotValid";
    pub const INVALID_ROUTE_KINDS: &str = "InvalidRouteKinds";
    pub const HOSTNAME_CONFLICT: &str = "HostnameConflict";
    pub const PROTOCOL_CONFLICT: &str = "ProtocolConflict";
    pub const NO_CONFLICTS: &str = "NoConflicts";
    pub const INVALID: &str = "Invalid";
    pub const PORT_UNAVAILABLE: &str = "PortUnavailable";
    pub const INVALID_CERTIFICATE_REF: &str = "InvalidCertificateRef";

    /// Every reason above that is not also a condition type: the golden files must show each one
    /// (`config-pusher/tests/golden.rs`).
    pub const REASONS: &[&str] = &[
        NOT_ALLOWED_BY_LISTENERS,
        NO_MATCHING_LISTENER_HOSTNAME,
        NO_MATCHING_PARENT,
        UNSUPPORTED_VALUE,
        INCOMPATIBLE_FILTERS,
        REF_NOT_PERMITTED,
        INVALID_KIND,
        BACKEND_NOT_FOUND,
        UNSUPPORTED_PROTOCOL,
        LISTENERS_NOT_VALID,
        INVALID_ROUTE_KINDS,
        HOSTNAME_CONFLICT,
        PROTOCOL_CONFLICT,
        NO_CONFLICTS,
        INVALID,
        PORT_UNAVAILABLE,
        INVALID_CERTIFICATE_REF,
    ];
}

/// A `metav1.Condition` without `lastTransitionTime` (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    /// `"True"` or `"False"`.
    pub status: String,
    pub reason: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl Condition {
    pub fn new(
        type_: &str,
        ok: bool,
        reason: &str,
        message: impl Into<String>,
        generation: Option<i64>,
    ) -> Condition {
        Condition {
            type_: type_.to_string(),
            status: if ok { "True" } else { "False" }.to_string(),
            reason: reason.to_string(),
            message: message.into(),
            observed_generation: generation,
        }
    }

    pub fn is_true(&self) -> bool {
        self.status == "True"
    }
}

/// `metadata` of a status document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Meta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

/// One object's computed status, shaped like the object (`apiVersion`, `kind`, `metadata`,
/// `status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusDoc {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub metadata: Meta,
    pub status: Status,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Status {
    GatewayClass(GatewayClassStatus),
    Gateway(GatewayStatus),
    HttpRoute(RouteStatus),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GatewayClassStatus {
    pub conditions: Vec<Condition>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GatewayStatus {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<GatewayAddress>,
    pub conditions: Vec<Condition>,
    pub listeners: Vec<ListenerStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GatewayAddress {
    #[serde(rename = "type")]
    pub type_: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenerStatus {
    pub name: String,
    pub supported_kinds: Vec<RouteGroupKind>,
    pub attached_routes: i32,
    pub conditions: Vec<Condition>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteGroupKind {
    pub group: String,
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteStatus {
    pub parents: Vec<RouteParentStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteParentStatus {
    pub parent_ref: ParentRef,
    pub controller_name: String,
    pub conditions: Vec<Condition>,
}

/// A parentRef as echoed in route status: group and kind with their defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParentRef {
    pub group: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
}

impl StatusDoc {
    /// Sort key: kind order (GatewayClass, Gateway, HTTPRoute), then namespace/name.
    pub fn sort_key(&self) -> (u8, Option<&str>, &str) {
        let kind = match self.kind {
            "GatewayClass" => 0,
            "Gateway" => 1,
            _ => 2,
        };
        (
            kind,
            self.metadata.namespace.as_deref(),
            &self.metadata.name,
        )
    }

    /// The route parent statuses, if this is an HTTPRoute.
    pub fn route_parents(&self) -> &[RouteParentStatus] {
        match &self.status {
            Status::HttpRoute(r) => &r.parents,
            _ => &[],
        }
    }

    /// A condition of this object (not of its listeners or parents) by type.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        let list = match &self.status {
            Status::GatewayClass(s) => &s.conditions,
            Status::Gateway(s) => &s.conditions,
            Status::HttpRoute(_) => return None,
        };
        list.iter().find(|c| c.type_ == type_)
    }
}

/// Renders statuses as a multi-document YAML stream.
pub fn to_yaml(docs: &[StatusDoc]) -> String {
    let mut out = String::new();
    for d in docs {
        out.push_str("---\n");
        out.push_str(
            &serde_yaml_ng::to_string(d).unwrap_or_else(|e| format!("# unserializable: {e}\n")),
        );
    }
    out
}
