//! `/metrics` in the Prometheus text exposition format (0.0.4), written by hand: a few counters,
//! gauges and one histogram do not need a metrics framework. Besides config-pusher's own:
//! `config_pusher_build_info` (the convention of `prometheus_build_info`) and the standard
//! `process_*` family ([`Process`]).
//!
//! The change-to-published histogram follows Istio's `pilot_proxy_convergence_time` idea, on the
//! control-plane side only: from the moment the source noticed a change to the moment the new
//! tables were served.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

use super::process::Process;
use super::publish::{TableChanges, Tables};
use crate::source::Snapshot;
use crate::translate::Output;

/// Upper bounds (seconds) of the propagation histogram buckets.
const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Debug, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Debug, Default)]
struct Tallies {
    histogram: Histogram,
    /// Role → (served version, versions published so far).
    versions: BTreeMap<String, (String, u64)>,
    /// Table responses by HTTP status code.
    responses: BTreeMap<u16, u64>,
}

/// Every metric `serve` exports.
#[derive(Debug, Default)]
pub struct Metrics {
    translations: AtomicU64,
    table_rejections: AtomicU64,
    load_errors: AtomicU64,
    open_polls: AtomicI64,
    open_connections: AtomicI64,
    refused_connections: AtomicU64,
    proxy_rejections: AtomicU64,
    /// ADS (`--xds-listen`): open streams, responses sent, NACKs received.
    xds_streams: AtomicI64,
    xds_responses: AtomicU64,
    xds_nacks: AtomicU64,
    tallies: Mutex<Tallies>,
}

impl Metrics {
    fn with<R>(&self, f: impl FnOnce(&mut Tallies) -> R) -> R {
        match self.tallies.lock() {
            Ok(mut t) => f(&mut t),
            Err(p) => f(&mut p.into_inner()),
        }
    }

    /// A translation was published.
    pub fn translated(
        &self,
        snapshot: &Snapshot,
        output: &Output,
        next: &Tables,
        o: &TableChanges,
    ) {
        self.translations.fetch_add(1, Ordering::Relaxed);
        self.table_rejections
            .fetch_add(output.errors.len() as u64, Ordering::Relaxed);
        self.load_errors
            .store(snapshot.problems.len() as u64, Ordering::Relaxed);
        let seconds = snapshot.changed_at.elapsed().as_secs_f64();
        self.with(|t| {
            if !o.changed.is_empty() {
                let h = &mut t.histogram;
                for (i, le) in BUCKETS.iter().enumerate() {
                    if seconds <= *le {
                        h.counts[i] += 1;
                    }
                }
                h.count += 1;
                h.sum += seconds;
            }
            t.versions.retain(|role, _| next.contains_key(role));
            for (role, p) in next {
                let entry = t.versions.entry(role.clone()).or_default();
                if entry.0 != p.version() {
                    *entry = (p.version().to_string(), entry.1 + 1);
                }
            }
        });
    }

    /// A table request was answered with `status`.
    pub fn response(&self, status: u16) {
        self.with(|t| *t.responses.entry(status).or_default() += 1);
    }

    pub fn polls(&self, delta: i64) {
        self.open_polls.fetch_add(delta, Ordering::Relaxed);
    }

    /// A connection was accepted (`1`) or closed (`-1`).
    pub fn connections(&self, delta: i64) {
        self.open_connections.fetch_add(delta, Ordering::Relaxed);
    }

    /// A connection over `--max-connections` was closed at once.
    pub fn connection_refused(&self) {
        self.refused_connections.fetch_add(1, Ordering::Relaxed);
    }

    pub fn proxy_rejection(&self) {
        self.proxy_rejections.fetch_add(1, Ordering::Relaxed);
    }

    /// An ADS stream opened (`1`) or closed (`-1`).
    pub fn xds_streams(&self, delta: i64) {
        self.xds_streams.fetch_add(delta, Ordering::Relaxed);
    }

    pub fn xds_response(&self) {
        self.xds_responses.fetch_add(1, Ordering::Relaxed);
    }

    pub fn xds_nack(&self) {
        self.xds_nacks.fetch_add(1, Ordering::Relaxed);
    }

    /// The exposition text; `connected` proxies are counted and the `process` facts read by the
    /// caller.
    pub fn render(&self, connected: usize, process: Option<&Process>) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, String)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        let one = |v: String| vec![(String::new(), v)];
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed).to_string();
        metric(
            "config_pusher_build_info",
            "gauge",
            "Always 1; the version of the config-pusher binary as a label.",
            &[(
                format!("{{version=\"{}\"}}", escape(env!("CARGO_PKG_VERSION"))),
                "1".into(),
            )],
        );
        if let Some(p) = process {
            metric(
                "process_cpu_seconds_total",
                "counter",
                "Total user and system CPU time spent in seconds.",
                &one(p.cpu_seconds.to_string()),
            );
            metric(
                "process_resident_memory_bytes",
                "gauge",
                "Resident memory size in bytes.",
                &one(p.resident_bytes.to_string()),
            );
            metric(
                "process_virtual_memory_bytes",
                "gauge",
                "Virtual memory size in bytes.",
                &one(p.virtual_bytes.to_string()),
            );
            metric(
                "process_start_time_seconds",
                "gauge",
                "Start time of the process since unix epoch in seconds.",
                &one(p.start_time_seconds.to_string()),
            );
            metric(
                "process_open_fds",
                "gauge",
                "Number of open file descriptors.",
                &one(p.open_fds.to_string()),
            );
            if let Some(max) = p.max_fds {
                metric(
                    "process_max_fds",
                    "gauge",
                    "Maximum number of open file descriptors.",
                    &one(max.to_string()),
                );
            }
        }
        metric(
            "config_pusher_translations_total",
            "counter",
            "Translations of a source snapshot.",
            &one(load(&self.translations)),
        );
        metric(
            "config_pusher_translation_errors_total",
            "counter",
            "Translated tables rejected by the filter's validation (not published).",
            &one(load(&self.table_rejections)),
        );
        metric(
            "config_pusher_source_load_errors",
            "gauge",
            "Documents (or files) of the source that failed to load, in the latest snapshot.",
            &one(load(&self.load_errors)),
        );
        metric(
            "config_pusher_connected_proxies",
            "gauge",
            "Proxies that requested a table in the last 60 s or are long-polling.",
            &one(connected.to_string()),
        );
        metric(
            "config_pusher_open_long_polls",
            "gauge",
            "Table requests waiting for a new version now.",
            &one(self.open_polls.load(Ordering::Relaxed).to_string()),
        );
        metric(
            "config_pusher_open_connections",
            "gauge",
            "Connections to the API open now.",
            &one(self.open_connections.load(Ordering::Relaxed).to_string()),
        );
        metric(
            "config_pusher_refused_connections_total",
            "counter",
            "Connections closed at once because --max-connections were open.",
            &one(load(&self.refused_connections)),
        );
        metric(
            "config_pusher_xds_streams",
            "gauge",
            "Open ADS streams (serve --xds-listen).",
            &one(self.xds_streams.load(Ordering::Relaxed).to_string()),
        );
        metric(
            "config_pusher_xds_responses_total",
            "counter",
            "DiscoveryResponses sent on ADS streams.",
            &one(load(&self.xds_responses)),
        );
        metric(
            "config_pusher_xds_nacks_total",
            "counter",
            "DiscoveryRequests that refused the version sent (the proxy keeps its last good one).",
            &one(load(&self.xds_nacks)),
        );
        metric(
            "config_pusher_proxy_rejections_total",
            "counter",
            "Table rejections reported by proxies (each proxy and version once).",
            &one(load(&self.proxy_rejections)),
        );
        self.with(|t| {
            let versions: Vec<(String, String)> = t
                .versions
                .iter()
                .map(|(role, (v, _))| {
                    (
                        format!("{{role=\"{}\",version=\"{}\"}}", escape(role), escape(v)),
                        "1".into(),
                    )
                })
                .collect();
            metric(
                "config_pusher_table_info",
                "gauge",
                "The table version served per role.",
                &versions,
            );
            let published: Vec<(String, String)> = t
                .versions
                .iter()
                .map(|(role, (_, n))| (format!("{{role=\"{}\"}}", escape(role)), n.to_string()))
                .collect();
            metric(
                "config_pusher_table_versions_published_total",
                "counter",
                "Table versions published per role.",
                &published,
            );
            let responses: Vec<(String, String)> = t
                .responses
                .iter()
                .map(|(code, n)| (format!("{{code=\"{code}\"}}"), n.to_string()))
                .collect();
            metric(
                "config_pusher_table_requests_total",
                "counter",
                "Table requests answered, by HTTP status code.",
                &responses,
            );
            let h = &t.histogram;
            let mut samples: Vec<(String, String)> = BUCKETS
                .iter()
                .zip(h.counts)
                .map(|(le, n)| (format!("_bucket{{le=\"{le}\"}}"), n.to_string()))
                .collect();
            samples.push(("_bucket{le=\"+Inf\"}".into(), h.count.to_string()));
            samples.push(("_sum".into(), h.sum.to_string()));
            samples.push(("_count".into(), h.count.to_string()));
            metric(
                "config_pusher_change_to_publish_seconds",
                "histogram",
                "Seconds from a source change detected to the new tables served.",
                &samples,
            );
        });
        out
    }
}

/// A label value escaped for the text format.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
