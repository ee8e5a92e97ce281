//! Sources fill a [`crate::store::Store`]: the folder source ([`files`], watched by [`watch`]) and
//! the kube source fill the same store, and `serve` consumes either through one interface — a
//! `tokio::sync::watch` channel of [`Snapshot`]s — without knowing which one ran (DESIGN.md, data
//! flow 1).

use std::sync::Arc;
use std::time::Instant;

use crate::store::Store;

pub mod files;
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
