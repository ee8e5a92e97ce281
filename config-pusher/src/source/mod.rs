//! Sources fill a [`crate::store::Store`]: the folder source ([`files`], watched by [`watch`]) and
//! the kube source fill the same store, and `serve` consumes either through one interface — a
//! `tokio::sync::watch` channel of [`Snapshot`]s — without knowing which one ran (docs/architecture.md,
//! "Data flow").
//!
//! Both decode objects with [`decode`], so a bad object is reported the same way by both: kind,
//! name and the path of the offending field.

use std::sync::Arc;
use std::time::Instant;

use serde::Deserializer;

use crate::store::{Kind, Object, Store};

pub mod files;
pub mod kube;
pub mod watch;

/// Everything a source knows at one moment: what `translate` reads, and what it could not load.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub store: Store,
    /// Objects that failed to load (they are missing from `store`, or kept at their last good
    /// version: see [`watch`]).
    pub problems: Vec<Problem>,
    /// When the source noticed the change this snapshot carries (the start of the
    /// change-to-published latency `serve` measures).
    pub changed_at: Instant,
}

impl Snapshot {
    pub fn new(store: Store, problems: Vec<Problem>, changed_at: Instant) -> Arc<Snapshot> {
        Arc::new(Snapshot {
            store,
            problems,
            changed_at,
        })
    }
}

/// A load error, displayable without knowing the source: `origin[ document N]: message`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// Where: a file (relative to the folder), or `Kind ns/name` for the kube source.
    pub origin: String,
    /// The document in a multi-document file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document: Option<usize>,
    /// Path of the offending field, e.g. `spec.rules[0].matches[1].path.type`, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What is wrong (without `origin`; the field path is part of it when known).
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.document {
            Some(d) => write!(f, "{} document {d}: {}", self.origin, self.message),
            None => write!(f, "{}: {}", self.origin, self.message),
        }
    }
}

impl From<&files::LoadError> for Problem {
    /// Displays exactly as the [`files::LoadError`] does.
    fn from(e: &files::LoadError) -> Problem {
        use files::LoadError as E;
        let (origin, document) = e.location();
        let (field, message) = match e {
            E::Io { source, .. } => (None, source.to_string()),
            E::Syntax { message, .. } => (None, format!("invalid YAML: {message}")),
            E::NotAnObject { .. } => (None, "not a Kubernetes object (no apiVersion/kind)".into()),
            E::Invalid {
                kind,
                name,
                field,
                message,
                ..
            } => (
                Some(field.clone()),
                format!("{kind} {name}: field `{field}`: {message}"),
            ),
            E::Store { source, .. } => (None, source.to_string()),
        };
        Problem {
            origin,
            document,
            field,
            message,
        }
    }
}

/// The sending half sources publish into.
pub type SnapshotSender = tokio::sync::watch::Sender<Arc<Snapshot>>;

/// Why an object did not decode into its kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}`: {message}")]
pub struct DecodeError {
    /// Path of the offending field, e.g. `spec.rules[0].matches[1].path.type`.
    pub field: String,
    pub message: String,
}

/// Deserializes one object of `kind` from any serde format (YAML from files, JSON from the API
/// server), naming the failing field. The caller strips `status` (config-pusher computes it) and
/// normalises the Gateway API `apiVersion`.
pub fn decode<'de, D: Deserializer<'de>>(kind: Kind, de: D) -> Result<Object, DecodeError> {
    fn de_as<'de, T: serde::Deserialize<'de>, D: Deserializer<'de>>(
        de: D,
    ) -> Result<Box<T>, DecodeError> {
        serde_path_to_error::deserialize::<_, T>(de)
            .map(Box::new)
            .map_err(|e| DecodeError {
                field: e.path().to_string(),
                message: e.inner().to_string(),
            })
    }
    Ok(match kind {
        Kind::GatewayClass => Object::GatewayClass(de_as(de)?),
        Kind::Gateway => Object::Gateway(de_as(de)?),
        Kind::HttpRoute => Object::HttpRoute(de_as(de)?),
        Kind::ReferenceGrant => Object::ReferenceGrant(de_as(de)?),
        Kind::Service => Object::Service(de_as(de)?),
        Kind::EndpointSlice => Object::EndpointSlice(de_as(de)?),
        Kind::Namespace => Object::Namespace(de_as(de)?),
        Kind::Secret => Object::Secret(de_as(de)?),
    })
}

/// The kind a source reads an `apiVersion` + `kind` as, if it is one the store keeps. Gateway API
/// kinds are accepted at `v1` and `v1beta1` (same schema for these kinds).
pub fn kind_of(api_version: &str, kind: &str) -> Option<Kind> {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let found = Kind::ALL.into_iter().find(|k| k.as_str() == kind)?;
    let ok = match found {
        k if k.gateway_api() => group == GATEWAY_API_GROUP && matches!(version, "v1" | "v1beta1"),
        Kind::EndpointSlice => group == "discovery.k8s.io" && version == "v1",
        _ => group.is_empty() && version == "v1",
    };
    ok.then_some(found)
}

/// `gateway.networking.k8s.io`.
pub const GATEWAY_API_GROUP: &str = "gateway.networking.k8s.io";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_display_like_load_errors() {
        let mut store = Store::new();
        let mut report = files::LoadReport::default();
        let text = "apiVersion: v1\nkind: Service\nmetadata: {name: b}\nspec: {ports: [{port: x}]}\n---\nkind: Service\n---\na: [\n";
        files::load_str(&mut store, &mut report, "f.yaml", text);
        assert_eq!(report.errors.len(), 3);
        for e in &report.errors {
            assert_eq!(Problem::from(e).to_string(), e.to_string());
        }
        let p = Problem::from(&report.errors[0]);
        assert_eq!(p.field.as_deref(), Some("spec.ports[0].port"));
        assert_eq!((p.origin.as_str(), p.document), ("f.yaml", Some(0)));
    }
}
