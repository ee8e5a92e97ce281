//! What `serve` serves: the published table of each proxy role (encoded once per version), the
//! status report, readiness, and a change counter that long-polls wait on.
//!
//! Publishing follows xDS NACK semantics on the control-plane side: a role whose translated table
//! failed the filter's validation keeps its previous version (or stays absent), so a proxy is
//! never offered a table it would reject.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use axum::body::Bytes;
use gammaroute_filter::table::{self, RouteTable};
use tokio::sync::watch;

use super::metrics::Metrics;
use super::proxies::Proxies;
use super::token::Token;
use crate::check::Report;
use crate::source::Snapshot;
use crate::translate::Output;

/// One role's table as served, encoded once.
#[derive(Debug)]
pub struct Published {
    pub table: RouteTable,
    pub json: Bytes,
    pub proto: Bytes,
}

impl Published {
    fn new(table: RouteTable) -> Published {
        Published {
            json: Bytes::from(table::encode_json(&table)),
            proto: Bytes::from(table::encode_proto(&table)),
            table,
        }
    }

    pub fn version(&self) -> &str {
        &self.table.version
    }
}

/// Tables by role.
pub type Tables = BTreeMap<String, Arc<Published>>;

/// What a translation changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Roles with a new version, and the version.
    pub changed: Vec<(String, String)>,
    /// Roles that no longer exist.
    pub removed: Vec<String>,
    /// Roles whose new table was rejected (their previous version, if any, stays).
    pub rejected: Vec<String>,
}

/// The tables to serve after `output`: new versions replace old ones, unchanged versions keep
/// their encodings, rejected roles keep their previous table, roles gone are removed. Pure.
pub fn next_tables(previous: &Tables, output: &Output) -> (Tables, Outcome) {
    let mut outcome = Outcome::default();
    let mut next = Tables::new();
    let rejected: std::collections::BTreeSet<&str> =
        output.errors.iter().map(|e| e.role.as_str()).collect();
    for (role, t) in &output.tables {
        let old = previous.get(role);
        if rejected.contains(role.as_str()) {
            outcome.rejected.push(role.clone());
            if let Some(old) = old {
                next.insert(role.clone(), old.clone());
            }
            continue;
        }
        match old {
            Some(old) if old.version() == t.version => {
                next.insert(role.clone(), old.clone());
            }
            _ => {
                outcome.changed.push((role.clone(), t.version.clone()));
                next.insert(role.clone(), Arc::new(Published::new(t.clone())));
            }
        }
    }
    outcome.removed = previous
        .keys()
        .filter(|r| !output.tables.contains_key(*r))
        .cloned()
        .collect();
    (next, outcome)
}

/// `/v1/status`, rendered once per translation.
#[derive(Debug, Default)]
pub struct StatusText {
    pub yaml: String,
    pub json: String,
}

/// Shared by the HTTP handlers and the translation loop.
#[derive(Debug)]
pub struct State {
    tables: RwLock<Arc<Tables>>,
    status: RwLock<Arc<StatusText>>,
    ready: AtomicBool,
    /// The translation loop died: never ready again (the process is exiting).
    failed: AtomicBool,
    /// Bumped on every publication that changed a table; long-polls wait for it.
    changes: watch::Sender<u64>,
    pub token: Option<Token>,
    pub proxies: Proxies,
    pub metrics: Metrics,
}

impl State {
    pub fn new(token: Option<Token>) -> State {
        State {
            tables: RwLock::default(),
            status: RwLock::default(),
            ready: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            changes: watch::channel(0).0,
            token,
            proxies: Proxies::default(),
            metrics: Metrics::default(),
        }
    }

    /// The tables served now.
    pub fn tables(&self) -> Arc<Tables> {
        self.tables
            .read()
            .map(|t| t.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    pub fn table(&self, role: &str) -> Option<Arc<Published>> {
        self.tables().get(role).cloned()
    }

    /// Subscribe *before* looking at a table, so no publication can slip in between.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    pub fn status(&self) -> Arc<StatusText> {
        self.status
            .read()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// A translation from a complete view is published, and the loop that keeps it current runs.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && !self.failed.load(Ordering::Acquire)
    }

    /// The translation loop is gone: `/readyz` answers 503 from now on.
    pub fn fail(&self) {
        self.failed.store(true, Ordering::Release);
    }

    /// Publishes one translation: tables, status, metrics; wakes the long-polls if a table
    /// changed. `next` and `outcome` come from [`next_tables`].
    pub fn publish(&self, snapshot: &Snapshot, output: &Output, next: Tables, outcome: &Outcome) {
        let report = Report::from_problems(&snapshot.store, &snapshot.problems, vec![], output);
        let status = StatusText {
            yaml: serde_yaml::to_string(&report).unwrap_or_else(|e| format!("error: {e}\n")),
            json: serde_json::to_string_pretty(&report)
                .map(|j| j + "\n")
                .unwrap_or_else(|e| format!("{{\"error\": {:?}}}\n", e.to_string())),
        };
        self.metrics.translated(snapshot, output, &next, outcome);
        match self.status.write() {
            Ok(mut s) => *s = Arc::new(status),
            Err(p) => *p.into_inner() = Arc::new(status),
        }
        let next = Arc::new(next);
        match self.tables.write() {
            Ok(mut t) => *t = next,
            Err(p) => *p.into_inner() = next,
        }
        self.ready.store(true, Ordering::Release);
        if !outcome.changed.is_empty() || !outcome.removed.is_empty() {
            self.changes.send_modify(|n| *n += 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::TableRejected;

    fn table(role: &str, name: &str) -> RouteTable {
        RouteTable {
            role: role.into(),
            routes: vec![table::Route {
                namespace: "ns".into(),
                name: name.into(),
                rules: vec![],
            }],
            ..RouteTable::default()
        }
        .with_version()
    }

    fn output(tables: &[RouteTable], rejected: &[&str]) -> Output {
        Output {
            tables: tables.iter().map(|t| (t.role.clone(), t.clone())).collect(),
            errors: rejected
                .iter()
                .map(|r| TableRejected {
                    role: r.to_string(),
                    error: table::TableError {
                        at: "routes[0]".into(),
                        kind: table::TableErrorKind::Proto("test".into()),
                    },
                })
                .collect(),
            ..Output::default()
        }
    }

    #[test]
    fn rejected_roles_keep_their_previous_table() {
        let (a1, b1) = (table("gateway/ns/a", "r1"), table("mesh/ns", "r1"));
        let (t1, o1) = next_tables(&Tables::new(), &output(&[a1.clone(), b1.clone()], &[]));
        assert_eq!(o1.changed.len(), 2);
        // Same content: same Arc, nothing changed.
        let (t2, o2) = next_tables(&t1, &output(&[a1.clone(), b1.clone()], &[]));
        assert_eq!(o2, Outcome::default());
        assert!(Arc::ptr_eq(&t1["gateway/ns/a"], &t2["gateway/ns/a"]));
        // a changes, b's new table is rejected (translate replaced it by an empty one).
        let a2 = table("gateway/ns/a", "r2");
        let empty = RouteTable {
            role: "mesh/ns".into(),
            ..RouteTable::default()
        }
        .with_version();
        let (t3, o3) = next_tables(&t2, &output(&[a2.clone(), empty], &["mesh/ns"]));
        assert_eq!(
            o3.changed,
            [("gateway/ns/a".to_string(), a2.version.clone())]
        );
        assert_eq!(o3.rejected, ["mesh/ns"]);
        assert_eq!(t3["mesh/ns"].version(), b1.version);
        // A rejected role never published stays absent; a role gone is removed.
        let c = table("gateway/ns/c", "r");
        let (t4, o4) = next_tables(&t3, &output(&[c], &["gateway/ns/c"]));
        assert!(t4.is_empty());
        assert_eq!(o4.removed, ["gateway/ns/a", "mesh/ns"]);
    }
}
