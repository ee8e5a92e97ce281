//! What each proxy reports on its table requests (`x-gammaroute-*` headers): the role it asks
//! for, the version it runs, the last table it rejected — the `{applied_version, last_error}` of
//! an xDS ACK/NACK. Also counts its requests and concurrent long-polls, which shows whether only
//! one VM per Envoy polls at a time.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use serde::Serialize;
use tokio::sync::watch;

use super::programmed::Fleet;

/// A proxy counts as connected this long after its last request (or while it long-polls).
pub const CONNECTED_WINDOW: Duration = Duration::from_secs(60);

/// A proxy not heard from this long (and not long-polling) is forgotten: ids come from clients,
/// and a churning fleet (every pod a new id) must not grow the list forever.
pub const EXPIRY: Duration = Duration::from_secs(600);

/// At most this many proxies are remembered; past it, the expired ones go, then the longest
/// silent ones that are not long-polling. Bounds memory whatever ids clients send.
pub const MAX_PROXIES: usize = 10_000;

/// Ids longer than this are not recorded (an Envoy `node.id` is far shorter).
pub const MAX_ID_BYTES: usize = 253;

/// Rejected versions remembered per proxy, to log each rejection once.
const WARNED: usize = 8;

/// A table a proxy refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    pub version: String,
    pub message: String,
}

/// One proxy as `/v1/proxies` shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyView {
    pub id: String,
    pub role: String,
    /// The version it runs (`x-gammaroute-applied`); `None` before its first table.
    pub applied_version: Option<String>,
    pub last_rejection: Option<Rejection>,
    /// RFC 3339.
    pub last_seen: String,
    pub remote_addr: String,
    /// A long-poll of this proxy is open now.
    pub waiting: bool,
    /// Table requests so far.
    pub requests: u64,
    /// Long-polls open now, and the most ever open at once.
    pub open_polls: u32,
    pub max_open_polls: u32,
}

#[derive(Debug)]
struct Proxy {
    view: ProxyView,
    seen_at: Instant,
    /// Rejected versions already logged (the last [`WARNED`]).
    warned: VecDeque<String>,
}

/// One table request's report.
#[derive(Debug, Clone, Copy)]
pub struct Report<'a> {
    pub id: &'a str,
    pub role: &'a str,
    pub applied: Option<&'a str>,
    /// `(version, message)`.
    pub rejected: Option<(&'a str, &'a str)>,
    pub remote: SocketAddr,
}

/// Every proxy seen since start.
#[derive(Debug)]
pub struct Proxies {
    inner: Mutex<BTreeMap<String, Proxy>>,
    /// Bumped when a proxy appears, changes role or reports another applied version: what
    /// `Programmed` depends on ([`super::programmed`]).
    changes: watch::Sender<u64>,
}

impl Default for Proxies {
    fn default() -> Proxies {
        Proxies {
            inner: Mutex::default(),
            changes: watch::channel(0).0,
        }
    }
}

impl Proxies {
    fn with<R>(&self, f: impl FnOnce(&mut BTreeMap<String, Proxy>) -> R) -> R {
        match self.inner.lock() {
            Ok(mut m) => f(&mut m),
            Err(p) => f(&mut p.into_inner()),
        }
    }

    /// Records a request. Returns the rejection when it is news for this (proxy, version), so the
    /// caller logs it once.
    pub fn seen(&self, r: &Report<'_>, now: Instant) -> Option<Rejection> {
        if r.id.len() > MAX_ID_BYTES {
            return None;
        }
        let mut changed = false;
        let rejection = self.with(|m| {
            changed = !m.contains_key(r.id);
            if m.len() >= MAX_PROXIES && !m.contains_key(r.id) {
                prune(m, now);
            }
            let p = m.entry(r.id.to_string()).or_insert_with(|| Proxy {
                view: ProxyView {
                    id: r.id.to_string(),
                    role: String::new(),
                    applied_version: None,
                    last_rejection: None,
                    last_seen: String::new(),
                    remote_addr: String::new(),
                    waiting: false,
                    requests: 0,
                    open_polls: 0,
                    max_open_polls: 0,
                },
                seen_at: now,
                warned: VecDeque::new(),
            });
            p.seen_at = now;
            changed |= p.view.role != r.role;
            p.view.role = r.role.to_string();
            // Absent: unchanged; empty: no table yet.
            if let Some(applied) = r.applied {
                let applied = Some(applied.to_string()).filter(|a| !a.is_empty());
                changed |= p.view.applied_version != applied;
                p.view.applied_version = applied;
            }
            p.view.last_seen = Timestamp::now().to_string();
            p.view.remote_addr = r.remote.to_string();
            p.view.requests += 1;
            let (version, message) = r.rejected?;
            let rejection = Rejection {
                version: version.to_string(),
                message: message.to_string(),
            };
            p.view.last_rejection = Some(rejection.clone());
            if p.warned.iter().any(|v| v == version) {
                return None;
            }
            if p.warned.len() == WARNED {
                p.warned.pop_front();
            }
            p.warned.push_back(version.to_string());
            Some(rejection)
        });
        if changed {
            self.changes.send_modify(|n| *n += 1);
        }
        rejection
    }

    /// Notified when what [`Proxies::fleet`] returns may have changed (other than by time).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// What the connected proxies (as [`Proxies::connected`] counts them) run, by role.
    pub fn fleet(&self, now: Instant) -> Fleet {
        self.with(|m| {
            let mut fleet = Fleet::new();
            for p in m.values().filter(|p| is_connected(p, now)) {
                fleet
                    .entry(p.view.role.clone())
                    .or_default()
                    .push(p.view.applied_version.clone());
            }
            fleet
        })
    }

    /// A long-poll of proxy `id` starts (`+1`) or ends (`-1`).
    pub fn polling(&self, id: &str, delta: i32, now: Instant) {
        self.with(|m| {
            if let Some(p) = m.get_mut(id) {
                p.view.open_polls = p.view.open_polls.saturating_add_signed(delta);
                p.view.max_open_polls = p.view.max_open_polls.max(p.view.open_polls);
                p.view.waiting = p.view.open_polls > 0;
                p.seen_at = now;
            }
        });
    }

    /// Every proxy, by id.
    pub fn list(&self) -> Vec<ProxyView> {
        self.with(|m| m.values().map(|p| p.view.clone()).collect())
    }

    /// Proxies seen within [`CONNECTED_WINDOW`] of `now`, or long-polling.
    pub fn connected(&self, now: Instant) -> usize {
        self.with(|m| m.values().filter(|p| is_connected(p, now)).count())
    }
}

fn is_connected(p: &Proxy, now: Instant) -> bool {
    p.view.waiting || now.duration_since(p.seen_at) < CONNECTED_WINDOW
}

/// Makes room: forgets expired proxies, then the longest silent ones, down to 90% of
/// [`MAX_PROXIES`] (so the sort is paid once per 1,000 new ids, not per id). Long-polling
/// proxies stay: their number is bounded by the long-poll limits.
fn prune(m: &mut BTreeMap<String, Proxy>, now: Instant) {
    m.retain(|_, p| p.view.open_polls > 0 || now.duration_since(p.seen_at) < EXPIRY);
    let keep = MAX_PROXIES * 9 / 10;
    if m.len() > keep {
        let mut silent: Vec<(Instant, String)> = m
            .iter()
            .filter(|(_, p)| p.view.open_polls == 0)
            .map(|(id, p)| (p.seen_at, id.clone()))
            .collect();
        silent.sort();
        let excess = m.len() - keep;
        for (_, id) in silent.into_iter().take(excess) {
            m.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_and_polls() {
        let proxies = Proxies::default();
        let t0 = Instant::now();
        let remote = SocketAddr::from(([127, 0, 0, 1], 5000));
        let mut r = Report {
            id: "envoy-1",
            role: "gateway/ns/gw",
            applied: Some(""),
            rejected: None,
            remote,
        };
        assert_eq!(proxies.seen(&r, t0), None);
        r.applied = Some("v1");
        r.rejected = Some(("v2", "routes[0]: bad"));
        let news = proxies.seen(&r, t0);
        assert_eq!(news.map(|n| n.version), Some("v2".to_string()));
        // Reported again: not news.
        assert_eq!(proxies.seen(&r, t0), None);
        proxies.polling("envoy-1", 1, t0);
        proxies.polling("envoy-1", 1, t0);
        proxies.polling("envoy-1", -1, t0);
        let v = &proxies.list()[0];
        assert_eq!(v.applied_version.as_deref(), Some("v1"));
        assert_eq!(
            v.last_rejection.as_ref().map(|r| r.message.as_str()),
            Some("routes[0]: bad")
        );
        assert_eq!(
            (v.requests, v.open_polls, v.max_open_polls, v.waiting),
            (3, 1, 2, true)
        );
        assert_eq!(proxies.connected(t0 + CONNECTED_WINDOW * 2), 1);
        proxies.polling("envoy-1", -1, t0);
        assert_eq!(proxies.connected(t0 + CONNECTED_WINDOW * 2), 0);
        assert_eq!(proxies.connected(t0 + CONNECTED_WINDOW / 2), 1);
    }

    #[test]
    fn the_fleet_is_what_connected_proxies_run_and_changes_notify() {
        let proxies = Proxies::default();
        let mut changes = proxies.subscribe();
        let t0 = Instant::now();
        let report = |id, role, applied| Report {
            id,
            role,
            applied,
            rejected: None,
            remote: SocketAddr::from(([127, 0, 0, 1], 5000)),
        };
        proxies.seen(&report("a", "gateway/ns/gw", Some("")), t0);
        assert!(changes.has_changed().unwrap(), "a new proxy");
        changes.mark_unchanged();
        proxies.seen(&report("a", "gateway/ns/gw", None), t0);
        proxies.seen(&report("a", "gateway/ns/gw", Some("")), t0);
        assert!(!changes.has_changed().unwrap(), "nothing new");
        proxies.seen(&report("a", "gateway/ns/gw", Some("v1")), t0);
        assert!(changes.has_changed().unwrap(), "another applied version");
        let later = t0 + CONNECTED_WINDOW;
        proxies.seen(&report("b", "mesh/x", None), later);
        assert_eq!(
            proxies.fleet(t0),
            Fleet::from([
                ("gateway/ns/gw".to_string(), vec![Some("v1".to_string())]),
                ("mesh/x".to_string(), vec![None]),
            ])
        );
        assert_eq!(
            proxies.fleet(later),
            Fleet::from([("mesh/x".to_string(), vec![None])]),
            "a proxy silent for the connected window no longer counts"
        );
    }

    #[test]
    fn a_million_distinct_ids_stay_bounded_and_pollers_are_kept() {
        let proxies = Proxies::default();
        let t0 = Instant::now();
        fn report(id: &str) -> Report<'_> {
            Report {
                id,
                role: "mesh/a",
                applied: None,
                rejected: None,
                remote: SocketAddr::from(([127, 0, 0, 1], 5000)),
            }
        }
        proxies.seen(&report("poller"), t0);
        proxies.polling("poller", 1, t0);
        for i in 0..1_000_000u32 {
            proxies.seen(
                &report(&format!("pod-{i}")),
                t0 + Duration::from_millis(u64::from(i)),
            );
        }
        let list = proxies.list();
        assert!(list.len() <= MAX_PROXIES, "{}", list.len());
        assert!(
            list.iter().any(|p| p.id == "poller"),
            "a long-polling proxy is never evicted"
        );
        assert!(
            list.iter().any(|p| p.id == "pod-999999"),
            "the newest are kept"
        );
        assert!(
            !list.iter().any(|p| p.id == "pod-0"),
            "the oldest silent ones go"
        );
        // Over-long ids are not recorded at all.
        proxies.seen(&report(&"x".repeat(MAX_ID_BYTES + 1)), t0);
        assert!(proxies.list().iter().all(|p| p.id.len() <= MAX_ID_BYTES));
    }

    #[test]
    fn expired_proxies_are_forgotten_when_room_is_needed() {
        let proxies = Proxies::default();
        let t0 = Instant::now();
        let remote = SocketAddr::from(([127, 0, 0, 1], 5000));
        for i in 0..MAX_PROXIES {
            let id = format!("old-{i}");
            proxies.seen(
                &Report {
                    id: &id,
                    role: "mesh/a",
                    applied: None,
                    rejected: None,
                    remote,
                },
                t0,
            );
        }
        let later = t0 + EXPIRY + Duration::from_secs(1);
        proxies.seen(
            &Report {
                id: "new",
                role: "mesh/a",
                applied: None,
                rejected: None,
                remote,
            },
            later,
        );
        let list = proxies.list();
        assert_eq!(list.len(), 1, "every expired proxy is forgotten");
        assert_eq!(list[0].id, "new");
    }
}
