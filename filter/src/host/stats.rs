//! The filter's Envoy stats (shown under `wasmcustom.`, named in [`crate::metrics`]): request
//! counters per route, rule and backend, local-reply counters, fetch counters and the table
//! gauges. Best effort: a host without metrics must still route.

use rustc_hash::FxHashMap;

use super::abi::{self, LogLevel, MetricType, Status};
use crate::metrics;
use crate::router::{Outcome, Selection};
use crate::table::RouteTable;

/// Per route/rule/backend request counters and local-reply counters, defined on first use
/// ([`metrics::requests`], [`metrics::local_replies`]).
#[derive(Default)]
pub(super) struct Metrics {
    ids: FxHashMap<(u32, u32, u32), u32>,
    local: FxHashMap<&'static str, u32>,
}

impl Metrics {
    /// Counts one decision: its (route, rule, backend) counter when `rule_stats` is on, its
    /// local-reply counter when it answered locally.
    pub(super) fn count(
        &mut self,
        table: &RouteTable,
        rule_stats: bool,
        selection: &Selection,
        outcome: &Outcome<'_>,
    ) {
        let id = match (selection, outcome) {
            (Selection::Matched(sel), Outcome::Forward(fwd)) if rule_stats => {
                let key = (sel.route, sel.rule, fwd.backend);
                match self.ids.get(&key) {
                    Some(id) => Some(*id),
                    None => {
                        let name = table.routes.get(sel.route as usize).and_then(|r| {
                            let rule = r.rules.get(sel.rule as usize)?;
                            Some(metrics::requests(
                                &r.namespace,
                                &r.name,
                                rule.index,
                                fwd.cluster,
                            ))
                        });
                        let id = name.and_then(|n| define(MetricType::Counter, &n));
                        if let Some(id) = id {
                            self.ids.insert(key, id);
                        }
                        id
                    }
                }
            }
            (_, Outcome::Respond(local)) => {
                let reason = local.reason.as_str();
                match self.local.get(reason) {
                    Some(id) => Some(*id),
                    None => {
                        let id = define(MetricType::Counter, &metrics::local_replies(reason));
                        if let Some(id) = id {
                            self.local.insert(reason, id);
                        }
                        id
                    }
                }
            }
            _ => None,
        };
        if let Some(id) = id {
            increment(id);
        }
    }
}

/// Increments the counter `name` (defined on first use).
pub(super) fn count(name: &str) {
    if let Some(id) = define(MetricType::Counter, name) {
        increment(id);
    }
}

fn define(kind: MetricType, name: &str) -> Option<u32> {
    abi::define_metric(kind, name)
        .map_err(|s| metric_failed(name, s))
        .ok()
}

fn increment(id: u32) {
    if let Err(s) = abi::increment_metric(id, 1) {
        metric_failed("increment", s);
    }
}

/// Metrics are best effort — a host without them must still route — but a failure is logged,
/// once per VM rather than once per request.
fn metric_failed(what: &str, status: Status) {
    thread_local! {
        static WARNED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    if !WARNED.with(|w| w.replace(true)) {
        abi::log(
            LogLevel::Warn,
            &format!(
                "gammaroute: metric {what}: host status {} (further metric failures are not logged)",
                status.0
            ),
        );
    }
}

/// A table was applied: the version gauge (its first 12 hex digits as a number) and the applied
/// and confirmed times.
pub(super) fn record_applied(version: &str) {
    let value = version
        .get(..12)
        .and_then(|v| u64::from_str_radix(v, 16).ok())
        .unwrap_or(0);
    gauge(metrics::TABLE_VERSION, value);
    if let Some(now) = now_seconds() {
        gauge(metrics::TABLE_APPLIED, now);
        gauge(metrics::TABLE_CONFIRMED, now);
    }
}

/// config-pusher confirmed the table in force (`304`).
pub(super) fn record_confirmed() {
    if let Some(now) = now_seconds() {
        gauge(metrics::TABLE_CONFIRMED, now);
    }
}

fn now_seconds() -> Option<u64> {
    abi::now_nanos()
        .map(|n| n / 1_000_000_000)
        .map_err(|s| metric_failed("clock", s))
        .ok()
}

fn gauge(name: &str, value: u64) {
    if let Some(id) = define(MetricType::Gauge, name) {
        if let Err(s) = abi::record_metric(id, value) {
            metric_failed(name, s);
        }
    }
}
