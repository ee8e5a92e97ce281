//! What each proxy reports on its table requests (`x-gammaroute-*` headers): the role it asks
//! for, the version it runs, the last table it rejected — the `{applied_version, last_error}` of
//! an xDS ACK/NACK. Also counts its requests and concurrent long-polls, which shows whether only
//! one VM per Envoy polls at a time.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use serde::Serialize;

/// A proxy counts as connected this long after its last request (or while it long-polls).
pub const CONNECTED_WINDOW: Duration = Duration::from_secs(60);

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
    /// The version it runs; `None` before its first table.
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
    /// Rejected versions already logged.
    warned: BTreeSet<String>,
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
#[derive(Debug, Default)]
pub struct Proxies {
    inner: Mutex<BTreeMap<String, Proxy>>,
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
        self.with(|m| {
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
                warned: BTreeSet::new(),
            });
            p.seen_at = now;
            p.view.role = r.role.to_string();
            p.view.applied_version = r.applied.filter(|a| !a.is_empty()).map(str::to_string);
            p.view.last_seen = Timestamp::now().to_string();
            p.view.remote_addr = r.remote.to_string();
            p.view.requests += 1;
            let (version, message) = r.rejected?;
            let rejection = Rejection {
                version: version.to_string(),
                message: message.to_string(),
            };
            p.view.last_rejection = Some(rejection.clone());
            p.warned.insert(version.to_string()).then_some(rejection)
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
        self.with(|m| {
            m.values()
                .filter(|p| p.view.waiting || now.duration_since(p.seen_at) < CONNECTED_WINDOW)
                .count()
        })
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
}
