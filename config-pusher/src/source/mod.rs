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
pub mod folder;
#[cfg(feature = "controller")]
pub mod kube;
pub mod parse;
#[cfg(feature = "controller")]
pub mod watcher;

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
    /// What the API server last said about the objects whose status we write (kube source
    /// only), so the status writer needs no GET per object per translation.
    pub live: Arc<LiveObjects>,
    /// The source has read everything it reads at least once. `serve` publishes nothing (and is
    /// not ready) before: a partial view would withdraw routes and resolve backends as missing.
    pub complete: bool,
    /// Orders snapshots across replicas (issue "no flip-flop between replicas"): derived from the
    /// inputs themselves, so every replica reading the same inputs derives the same number, and
    /// newer inputs a larger one — the folder's newest modification time in milliseconds
    /// ([`files::generation`]), the cluster's highest `metadata.resourceVersion` seen (an etcd
    /// revision, [`kube::Cache`]). `serve` sends it with each table; a proxy never applies a
    /// table of a lower generation than the one it runs. 0: unknown (stdin).
    pub generation: u64,
}

impl Snapshot {
    /// A complete snapshot.
    pub fn new(store: Store, problems: Vec<Problem>, changed_at: Instant) -> Arc<Snapshot> {
        Snapshot::at(store, problems, changed_at, 0)
    }

    /// A complete snapshot of inputs of [`generation`](Self::generation) `generation`.
    pub fn at(
        store: Store,
        problems: Vec<Problem>,
        changed_at: Instant,
        generation: u64,
    ) -> Arc<Snapshot> {
        Arc::new(Snapshot {
            store,
            problems,
            changed_at,
            live: Arc::default(),
            complete: true,
            generation,
        })
    }

    /// What a source that has read nothing yet holds: empty and not [`complete`](Self::complete).
    pub fn pending() -> Arc<Snapshot> {
        Arc::new(Snapshot {
            store: Store::new(),
            problems: Vec::new(),
            changed_at: Instant::now(),
            live: Arc::default(),
            complete: false,
            generation: 0,
        })
    }
}

/// An object's server-side state as the watch last delivered it: what a status write needs
/// (JSON merge patch with optimistic concurrency on `metadata.resourceVersion`).
#[derive(Debug, Clone, PartialEq)]
pub struct Live {
    pub resource_version: Option<String>,
    pub generation: Option<i64>,
    /// `status` as the API server has it (`null` when absent).
    pub status: serde_json::Value,
}

/// [`Live`] by kind and `{namespace}/{name}` (namespace `""` for cluster-scoped kinds), for the
/// kinds whose status config-pusher writes.
pub type LiveObjects = std::collections::BTreeMap<(Kind, crate::store::ObjectKey), Live>;

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

impl Problem {
    /// A problem with a whole file (`file` as messages show it).
    pub fn file(file: &str, message: impl Into<String>) -> Problem {
        Problem {
            origin: file.to_string(),
            document: None,
            field: None,
            message: message.into(),
        }
    }

    /// An object the store refused.
    pub fn store(file: &str, document: usize, error: &crate::store::StoreError) -> Problem {
        Problem {
            origin: file.to_string(),
            document: Some(document),
            field: error.field().map(str::to_string),
            message: error.to_string(),
        }
    }

    /// A second definition of an object (`file` document `document`), ignored in favour of the
    /// first one (`first_file` document `first_document`).
    pub fn duplicate(
        file: &str,
        document: usize,
        (kind, key): &(Kind, crate::store::ObjectKey),
        first_file: &str,
        first_document: usize,
    ) -> Problem {
        let name = if kind.cluster_scoped() {
            key.name.clone()
        } else {
            key.to_string()
        };
        Problem {
            origin: file.to_string(),
            document: Some(document),
            field: None,
            message: format!(
                "{kind} {name} is also defined in {first_file} document {first_document}, which \
                 wins (the first in path order): this definition is ignored"
            ),
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
#[cfg(feature = "controller")]
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
        let text = "apiVersion: v1\nkind: Service\nmetadata: {name: b}\nspec: {ports: [{port: x}]}\n---\nkind: Service\n---\na: [\n";
        let parsed = files::parse_str("f.yaml", text);
        assert_eq!(parsed.errors.len(), 3);
        for e in &parsed.errors {
            assert_eq!(Problem::from(e).to_string(), e.to_string());
        }
        let p = Problem::from(&parsed.errors[0]);
        assert_eq!(p.field.as_deref(), Some("spec.ports[0].port"));
        assert_eq!((p.origin.as_str(), p.document), ("f.yaml", Some(0)));
    }
}
