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
    /// A hash of `json`, computed once per publication rather than per poll of every open route
    /// map (it is half of `/v1/map`'s ETag: [`State::map_view`]).
    pub json_hash: u64,
}

/// What `/v1/map` serves: the tables and the status as read at one moment, and the ETag of
/// exactly those. The tables are published before the status (long-polls answer first), so an
/// ETag stored with the status would name the old world while the new tables are served.
#[derive(Debug)]
pub struct MapView {
    pub tables: Arc<Tables>,
    pub status: Arc<StatusText>,
    pub etag: String,
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

    /// The route map's tables, status and their ETag, consistent with each other.
    pub fn map_view(&self) -> MapView {
        let status = self.status();
        let tables = self.tables();
        let etag = map_etag(&tables, status.json_hash);
        MapView {
            tables,
            status,
            etag,
        }
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
        // Tables before the status: the route map's ETag is computed from what it serves
        // (`map_view`), so the window between the two is never cached under an old ETag.
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
        let status = status_text(snapshot, output);
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
        let status = Arc::new(status_text(snapshot, output));
        match self.status.write() {
            Ok(mut s) => *s = status,
            Err(p) => *p.into_inner() = status,
        }
    }
}

/// `/v1/status` (YAML and JSON) for `output`, and the hash of its JSON.
fn status_text(snapshot: &Snapshot, output: &Output) -> StatusText {
    let report = Report::from_problems(&snapshot.store, &snapshot.problems, vec![], output);
    let json = serde_json::to_string_pretty(&report)
        .map(|j| j + "\n")
        .unwrap_or_else(|e| format!("{{\"error\": {:?}}}\n", e.to_string()));
    StatusText {
        yaml: serde_yaml_ng::to_string(&report).unwrap_or_else(|e| format!("error: {e}\n")),
        json_hash: hash_of(&json),
        json,
    }
}

fn hash_of(value: impl std::hash::Hash) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault};
    BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(value)
}

/// A hash of every role's table version and of the status report's hash.
fn map_etag(tables: &Tables, status_hash: u64) -> String {
    let versions: Vec<(&String, &str)> = tables.iter().map(|(r, t)| (r, t.version())).collect();
    format!("{:016x}", hash_of((versions, status_hash)))
}

#[cfg(test)]
mod tests {
    use gammaroute_filter::table::RouteTable;

    use super::*;
    use crate::serve::publish::next_tables;
    use crate::store::Store;

    fn output(role: &str) -> Output {
        let mut output = Output::default();
        let table = RouteTable {
            role: role.into(),
            ..RouteTable::default()
        }
        .with_version();
        output.tables.insert(role.into(), table);
        output
    }

    #[test]
    fn the_map_etag_names_the_tables_served_even_before_their_status() {
        let state = State::new(None, Limits::default());
        let snapshot = Snapshot::new(Store::new(), vec![], Instant::now());
        let first = output("gateway/demo/one");
        let (tables, changes) = next_tables(&Tables::default(), &first, 1);
        state.publish(&snapshot, &first, tables, &changes);
        let before = state.map_view().etag;
        assert_eq!(
            state.map_view().etag,
            before,
            "stable while nothing changes"
        );

        // The window inside `publish`: the new tables are stored, their status not yet.
        let second = output("gateway/demo/two");
        let (tables, _) = next_tables(&state.tables(), &second, 2);
        match state.tables.write() {
            Ok(mut t) => *t = Arc::new(tables),
            Err(p) => *p.into_inner() = Arc::new(tables),
        }
        let view = state.map_view();
        assert!(view.tables.contains_key("gateway/demo/two"));
        assert_ne!(
            view.etag, before,
            "new tables under the old ETag would be kept by the page as the old map"
        );
    }
}
