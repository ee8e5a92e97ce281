//! What `serve` serves, shared by the HTTP handlers and the translation loop: the published tables
//! (computed by [`super::publish`]), the status report, readiness, and a change counter that
//! long-polls wait on.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use tokio::sync::watch;

use super::limits::{Limits, Slots};
use super::metrics::Metrics;
use super::proxies::Proxies;
use super::publish::{Published, TableChanges, Tables};
use super::token::Token;
use crate::check::Report;
use crate::source::Snapshot;
use crate::translate::Output;

/// `/v1/status`, rendered once per translation.
#[derive(Debug, Default)]
pub struct StatusText {
    pub yaml: String,
    pub json: String,
    /// `/v1/map`'s `ETag`: a hash of the table versions and the report, computed once per
    /// publication rather than per poll of every open route map.
    pub map_etag: String,
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
    /// Open long-polls, bounded (`--max-long-polls`).
    pub long_polls: Arc<Slots>,
    pub proxies: Proxies,
    pub metrics: Metrics,
}

impl State {
    pub fn new(token: Option<Token>, limits: Limits) -> State {
        State {
            tables: RwLock::default(),
            status: RwLock::default(),
            ready: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            changes: watch::channel(0).0,
            token,
            proxies: Proxies::default(),
            metrics: Metrics::default(),
            long_polls: Arc::new(Slots::new(limits)),
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
    /// changed. `next` and `outcome` come from [`next_tables`]. Returns when the tables went live
    /// (logged as `published_ms`).
    pub fn publish(
        &self,
        snapshot: &Snapshot,
        output: &Output,
        next: Tables,
        outcome: &TableChanges,
    ) -> Instant {
        // Tables before the status: whoever reads the status (and its map ETag) first then
        // finds tables at least as new as that ETag says.
        let next = Arc::new(next);
        match self.tables.write() {
            Ok(mut t) => *t = Arc::clone(&next),
            Err(p) => *p.into_inner() = Arc::clone(&next),
        }
        // Long-polls answer now, not after the status text: rendering a large store's status
        // as JSON and YAML took longer than translating it (`make bench-propagation`,
        // BENCHMARKS.md "Live updates").
        if !outcome.changed.is_empty() || !outcome.removed.is_empty() {
            self.changes.send_modify(|n| *n += 1);
        }
        let live = Instant::now();
        let status = status_text(snapshot, output, &next);
        self.metrics.translated(snapshot, output, &next, outcome);
        match self.status.write() {
            Ok(mut s) => *s = Arc::new(status),
            Err(p) => *p.into_inner() = Arc::new(status),
        }
        self.ready.store(true, Ordering::Release);
        live
    }
}

impl State {
    /// Replaces the status only (the tables stay): `Programmed` changed with what the proxies run.
    pub fn publish_status(&self, snapshot: &Snapshot, output: &Output) {
        let status = Arc::new(status_text(snapshot, output, &self.tables()));
        match self.status.write() {
            Ok(mut s) => *s = status,
            Err(p) => *p.into_inner() = status,
        }
    }
}

/// `/v1/status` (YAML and JSON) and the route map's ETag for `output` served with `tables`.
fn status_text(snapshot: &Snapshot, output: &Output, tables: &Tables) -> StatusText {
    let report = Report::from_problems(&snapshot.store, &snapshot.problems, vec![], output);
    let json = serde_json::to_string_pretty(&report)
        .map(|j| j + "\n")
        .unwrap_or_else(|e| format!("{{\"error\": {:?}}}\n", e.to_string()));
    StatusText {
        yaml: serde_yaml_ng::to_string(&report).unwrap_or_else(|e| format!("error: {e}\n")),
        map_etag: map_etag(tables, &json),
        json,
    }
}

/// A hash of every role's table version and of the status report.
fn map_etag(tables: &Tables, status_json: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for (role, t) in tables {
        (role, t.version()).hash(&mut h);
    }
    status_json.hash(&mut h);
    format!("{:016x}", h.finish())
}
