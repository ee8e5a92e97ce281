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

use std::fmt;

use serde::Serialize;

/// `Condition.type` of the conditions gammaroute writes (Gateway API v1.6.1 `shared_types.go`,
/// `gateway_types.go`, `gatewayclass_types.go`); serialized as the API's strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum ConditionType {
    Accepted,
    ResolvedRefs,
    PartiallyInvalid,
    Programmed,
    Conflicted,
}

impl ConditionType {
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionType::Accepted => "Accepted",
            ConditionType::ResolvedRefs => "ResolvedRefs",
            ConditionType::PartiallyInvalid => "PartiallyInvalid",
            ConditionType::Programmed => "Programmed",
            ConditionType::Conflicted => "Conflicted",
        }
    }
}

impl fmt::Display for ConditionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `Condition.reason` values gammaroute writes (same sources as [`ConditionType`]; gateway-api-rs
/// has the Gateway ones only). Serialized as the API's strings, which are the variant names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Reason {
    // The positive reason of each condition type.
    Accepted,
    ResolvedRefs,
    Programmed,
    // Route Accepted reasons.
    NotAllowedByListeners,
    NoMatchingListenerHostname,
    NoMatchingParent,
    UnsupportedValue,
    IncompatibleFilters,
    // Route ResolvedRefs reasons.
    RefNotPermitted,
    InvalidKind,
    BackendNotFound,
    UnsupportedProtocol,
    // Gateway / listener reasons.
    ListenersNotValid,
    InvalidRouteKinds,
    HostnameConflict,
    ProtocolConflict,
    NoConflicts,
    Invalid,
    PortUnavailable,
    InvalidCertificateRef,
    /// Gateway / listener `Programmed=False` while no proxy runs the served table
    /// (`GatewayReasonPending`, `ListenerReasonPending`): set by `serve` only
    /// (`serve::programmed`), never by translation, so no golden file shows it.
    Pending,
    /// Gateway `Programmed=False` while its provisioned Service has no address yet
    /// (`GatewayReasonAddressNotAssigned`): set by `serve --kube` only (`provision::status`).
    AddressNotAssigned,
}

impl Reason {
    /// Every reason that is not also a condition type's positive reason: the golden files must
    /// show each one (`config-pusher/tests/golden.rs`).
    pub const PROBLEMS: &[Reason] = &[
        Reason::NotAllowedByListeners,
        Reason::NoMatchingListenerHostname,
        Reason::NoMatchingParent,
        Reason::UnsupportedValue,
        Reason::IncompatibleFilters,
        Reason::RefNotPermitted,
        Reason::InvalidKind,
        Reason::BackendNotFound,
        Reason::UnsupportedProtocol,
        Reason::ListenersNotValid,
        Reason::InvalidRouteKinds,
        Reason::HostnameConflict,
        Reason::ProtocolConflict,
        Reason::NoConflicts,
        Reason::Invalid,
        Reason::PortUnavailable,
        Reason::InvalidCertificateRef,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Accepted => "Accepted",
            Reason::ResolvedRefs => "ResolvedRefs",
            Reason::Programmed => "Programmed",
            Reason::NotAllowedByListeners => "NotAllowedByListeners",
            Reason::NoMatchingListenerHostname => "NoMatchingListenerHostname",
            Reason::NoMatchingParent => "NoMatchingParent",
            Reason::UnsupportedValue => "UnsupportedValue",
            Reason::IncompatibleFilters => "IncompatibleFilters",
            Reason::RefNotPermitted => "RefNotPermitted",
            Reason::InvalidKind => "InvalidKind",
            Reason::BackendNotFound => "BackendNotFound",
            Reason::UnsupportedProtocol => "UnsupportedProtocol",
            Reason::ListenersNotValid => "ListenersNotValid",
            Reason::InvalidRouteKinds => "InvalidRouteKinds",
            Reason::HostnameConflict => "HostnameConflict",
            Reason::ProtocolConflict => "ProtocolConflict",
            Reason::NoConflicts => "NoConflicts",
            Reason::Invalid => "Invalid",
            Reason::PortUnavailable => "PortUnavailable",
            Reason::InvalidCertificateRef => "InvalidCertificateRef",
            Reason::Pending => "Pending",
            Reason::AddressNotAssigned => "AddressNotAssigned",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a route (or one of its rules, filters or backends) is not accepted as it is: the reason a
/// condition reports and the message that explains it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteProblem {
    pub reason: Reason,
    pub message: String,
}

impl RouteProblem {
    pub fn new(reason: Reason, message: impl Into<String>) -> RouteProblem {
        RouteProblem {
            reason,
            message: message.into(),
        }
    }
}

/// A `metav1.Condition` without `lastTransitionTime` (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: ConditionType,
    /// Serialized as `"True"` or `"False"` (`metav1.ConditionStatus`).
    #[serde(serialize_with = "true_false")]
    pub status: bool,
    pub reason: Reason,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

fn true_false<S: serde::Serializer>(status: &bool, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(status_text(*status))
}

/// `metav1.ConditionStatus` text of a condition status (`Unknown` is never written).
pub fn status_text(status: bool) -> &'static str {
    if status {
        "True"
    } else {
        "False"
    }
}

impl Condition {
    pub fn new(
        type_: ConditionType,
        ok: bool,
        reason: Reason,
        message: impl Into<String>,
        generation: Option<i64>,
    ) -> Condition {
        Condition {
            type_,
            status: ok,
            reason,
            message: message.into(),
            observed_generation: generation,
        }
    }

    pub fn is_true(&self) -> bool {
        self.status
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
    pub fn condition(&self, type_: ConditionType) -> Option<&Condition> {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The typed condition serializes exactly as `metav1.Condition` text: the status as
    /// `"True"`/`"False"`, type and reason as the Gateway API strings.
    #[test]
    fn conditions_serialize_as_the_api_strings() {
        let c = Condition::new(
            ConditionType::PartiallyInvalid,
            true,
            Reason::UnsupportedValue,
            "m",
            Some(2),
        );
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            serde_json::json!({"type": "PartiallyInvalid", "status": "True",
                "reason": "UnsupportedValue", "message": "m", "observedGeneration": 2})
        );
        let c = Condition::new(ConditionType::Accepted, false, Reason::Invalid, "m", None);
        assert_eq!(serde_json::to_value(&c).unwrap()["status"], "False");
        for r in Reason::PROBLEMS.iter().chain(&[
            Reason::Accepted,
            Reason::ResolvedRefs,
            Reason::Programmed,
            Reason::Pending,
        ]) {
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
    }
}
