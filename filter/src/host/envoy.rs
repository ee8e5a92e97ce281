//! The Envoy contract (docs/architecture.md "The Envoy contract"): what a [`Decision`] becomes in
//! Envoy's terms. Envoy's route table is one catch-all route whose cluster comes from
//! `x-gamma-cluster`; timeouts and retries ride on `x-envoy-*` request headers that the router
//! filter executes; mirrors fire through `x-gamma-mirror-N` slots of the route's mirror policies.
//!
//! Pure: [`plan`] turns a decision into header mutations or a local response; the wasm glue only
//! executes the plan.

use std::borrow::Cow;

use smallvec::SmallVec;

use crate::router::{Decision, Forward, HeaderOp, LocalReason, Outcome};

/// The request header that names the upstream cluster (the route's `cluster_header`).
pub const CLUSTER_HEADER: &str = "x-gamma-cluster";
/// Mirror slot `N` is the header `x-gamma-mirror-N`.
pub const MIRROR_HEADER_PREFIX: &str = "x-gamma-mirror-";
/// The first slots' names, so the request path does not format them.
const MIRROR_HEADERS: [&str; 8] = [
    "x-gamma-mirror-0",
    "x-gamma-mirror-1",
    "x-gamma-mirror-2",
    "x-gamma-mirror-3",
    "x-gamma-mirror-4",
    "x-gamma-mirror-5",
    "x-gamma-mirror-6",
    "x-gamma-mirror-7",
];

const RQ_TIMEOUT: &str = "x-envoy-upstream-rq-timeout-ms";
const PER_TRY_TIMEOUT: &str = "x-envoy-upstream-rq-per-try-timeout-ms";
const MAX_RETRIES: &str = "x-envoy-max-retries";
const RETRY_ON: &str = "x-envoy-retry-on";
const RETRIABLE_CODES: &str = "x-envoy-retriable-status-codes";
/// `retry.backoff` in milliseconds (GEP-1731). Envoy has no request header for a retry back-off,
/// so the bootstraps (and the Istio EnvoyFilter) have one copy of the catch-all route per distinct
/// back-off of the table, matching this header's exact value, with `retry_policy.retry_back_off`;
/// a value without its route falls to the catch-all (Envoy's default back-off). Stripped from
/// client requests and removed before forwarding, like `x-gamma-cluster`.
pub const BACKOFF_HEADER: &str = "x-gamma-backoff-ms";

/// Envoy's retry conditions for GEP-1731's "connection errors (disconnect, reset, timeout, TCP
/// failure)". A per-try timeout is a `reset` for Envoy's purposes.
const CONNECTION_ERRORS: &str = "connect-failure,refused-stream,reset";

/// Request header mutations of one plan: inline up to 9 (a forward without modifiers has 9:
/// the cluster, six timeout/retry headers, two mirror slots), so planning does not allocate.
pub type Ops<'d> = SmallVec<[HeaderOp<'d>; 9]>;

/// What the filter does with one request.
// Built once per request on the stack and never stored: boxing the inline operations would be
// the very allocation `Ops` avoids.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan<'d> {
    /// Apply these request header mutations in order, clear the route cache, continue; apply
    /// `response` to the upstream response headers later.
    Continue {
        request: Ops<'d>,
        response: Vec<HeaderOp<'d>>,
        /// Mirrors that fired but found no free slot (they are not sent).
        dropped_mirrors: usize,
    },
    /// Answer locally and stop.
    Respond {
        status: u16,
        headers: Vec<(Cow<'d, str>, Cow<'d, str>)>,
        body: &'static str,
    },
}

/// Envoy-side settings from the plugin configuration.
#[derive(Debug, Clone, Copy)]
pub struct Contract<'c> {
    pub mirror_slots: u8,
    pub passthrough_cluster: Option<&'c str>,
}

/// Turns a decision into what the filter must do in Envoy.
pub fn plan<'d>(decision: &Decision<'d>, contract: Contract<'d>) -> Plan<'d> {
    match &decision.outcome {
        Outcome::Forward(fwd) => forward(fwd, contract),
        Outcome::Respond(local) => Plan::Respond {
            status: local.status,
            headers: local.headers.clone(),
            body: body(local.reason),
        },
        // Not a routed destination: the passthrough cluster if there is one. Either way any
        // client-sent control header goes, so a bootstrap without the native strip filter is
        // not open to steering (without a passthrough cluster Envoy then answers 503).
        Outcome::Passthrough => passthrough(contract),
    }
}

/// A request no route applies to (an unrouted destination, or a mesh sidecar without a table
/// yet): to `contract.passthrough_cluster` with no other change, or, without one, to whatever
/// the host's own routing picks. Client-sent control headers are removed either way.
pub fn passthrough(contract: Contract<'_>) -> Plan<'_> {
    let mut request = Ops::new();
    match contract.passthrough_cluster {
        Some(cluster) => request.push(HeaderOp::Set(CLUSTER_HEADER.into(), cluster.into())),
        None => request.push(HeaderOp::Remove(CLUSTER_HEADER.into())),
    }
    remove_mirror_slots(&mut request, 0, contract.mirror_slots);
    Plan::Continue {
        request,
        response: Vec::new(),
        dropped_mirrors: 0,
    }
}

fn forward<'d>(fwd: &Forward<'d>, contract: Contract<'d>) -> Plan<'d> {
    // The route's own edits first; the control headers last, so no modifier can override them.
    let mut request: Ops<'d> = fwd.request_headers.iter().cloned().collect();
    if let Some(authority) = &fwd.authority {
        request.push(HeaderOp::Set(":authority".into(), authority.clone()));
    }
    if let Some(path) = &fwd.path {
        request.push(HeaderOp::Set(":path".into(), Cow::Owned(path.clone())));
    }
    request.push(HeaderOp::Set(CLUSTER_HEADER.into(), fwd.cluster.into()));

    // Every control header is either set from the rule or removed, so a client (or an internal
    // caller Envoy would trust) can never choose timeouts or retries.
    set_or_remove(
        &mut request,
        RQ_TIMEOUT,
        fwd.timeouts.request_ms.map(|ms| ms.to_string()),
    );
    set_or_remove(
        &mut request,
        PER_TRY_TIMEOUT,
        fwd.timeouts.backend_request_ms.map(|ms| ms.to_string()),
    );
    let retry = fwd.retry;
    set_or_remove(
        &mut request,
        MAX_RETRIES,
        retry.map(|r| r.attempts.to_string()),
    );
    set_or_remove(
        &mut request,
        RETRY_ON,
        retry.map(|r| match r.codes.is_empty() {
            true => CONNECTION_ERRORS.to_string(),
            false => format!("{CONNECTION_ERRORS},retriable-status-codes"),
        }),
    );
    set_or_remove(
        &mut request,
        BACKOFF_HEADER,
        retry.and_then(|r| r.backoff_ms).map(|ms| ms.to_string()),
    );
    set_or_remove(
        &mut request,
        RETRIABLE_CODES,
        retry.filter(|r| !r.codes.is_empty()).map(|r| {
            r.codes
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(",")
        }),
    );

    let slots = usize::from(contract.mirror_slots);
    for (slot, cluster) in fwd.mirrors.iter().take(slots).enumerate() {
        request.push(HeaderOp::Set(mirror_header(slot), Cow::Borrowed(*cluster)));
    }
    remove_mirror_slots(
        &mut request,
        fwd.mirrors.len().min(slots),
        contract.mirror_slots,
    );
    Plan::Continue {
        request,
        response: fwd.response_headers.clone(),
        dropped_mirrors: fwd.mirrors.len().saturating_sub(slots),
    }
}

/// Removes the mirror slot headers `from..slots`: a mirror fires only when the filter says so.
fn remove_mirror_slots(ops: &mut Ops<'_>, from: usize, slots: u8) {
    for slot in from..usize::from(slots) {
        ops.push(HeaderOp::Remove(mirror_header(slot)));
    }
}

fn mirror_header(slot: usize) -> Cow<'static, str> {
    match MIRROR_HEADERS.get(slot) {
        Some(name) => Cow::Borrowed(name),
        None => Cow::Owned(format!("{MIRROR_HEADER_PREFIX}{slot}")),
    }
}

/// Drops the removals that would change nothing: a header the request does not carry
/// (`present` answers for the request as received) and that no earlier operation of the plan
/// creates. Most of a plan's operations are such removals (every control header is set or
/// removed, so a client can never choose them); each is a host call that Envoy also answers
/// with a route-cache clear, so a plain forward shrinks from eight header writes to one.
pub fn prune<'d>(ops: &mut Ops<'d>, present: impl Fn(&str) -> bool) {
    let mut i = 0;
    while let Some(op) = ops.get(i) {
        let useless = match op {
            HeaderOp::Remove(name) => {
                !present(name)
                    && !ops.iter().take(i).any(|earlier| match earlier {
                        HeaderOp::Set(n, _) | HeaderOp::Add(n, _) => n.eq_ignore_ascii_case(name),
                        HeaderOp::Remove(_) => false,
                    })
            }
            _ => false,
        };
        if useless {
            ops.remove(i);
        } else {
            i += 1;
        }
    }
}

/// Request headers Envoy obeys when a request carries them (Envoy docs, "HTTP header
/// manipulation" of the router filter and the HTTP connection manager; `original_dst` clusters
/// for the last): timeouts, retries, hedging, stats, tracing, the original destination. The
/// HCM drops some of them from requests it deems external, but keeps all for "internal" ones.
/// (`x-envoy-internal` is not among them: with `use_remote_address` the HCM sets or removes it
/// itself, and upstreams may rely on it.)
pub const OBEYED_ENVOY_HEADERS: [&str; 16] = [
    "x-envoy-decorator-operation",
    "x-envoy-expected-rq-timeout-ms",
    "x-envoy-force-trace",
    "x-envoy-hedge-on-per-try-timeout",
    "x-envoy-ip-tags",
    "x-envoy-max-retries",
    "x-envoy-original-dst-host",
    "x-envoy-retriable-header-names",
    "x-envoy-retriable-status-codes",
    "x-envoy-retry-grpc-on",
    "x-envoy-retry-on",
    "x-envoy-upstream-alt-stat-name",
    "x-envoy-upstream-rq-per-try-timeout-ms",
    "x-envoy-upstream-rq-timeout-alt-response",
    "x-envoy-upstream-rq-timeout-ms",
    "x-envoy-upstream-stream-duration-ms",
];

/// Whether a client-sent request header is the filter's alone: every `x-gamma-*` and each
/// header of [`OBEYED_ENVOY_HEADERS`] (not every `x-envoy-*`: under Istio the sidecar's own
/// filters add `x-envoy-peer-metadata` before gammaroute runs).
fn controls_routing(name: &str) -> bool {
    let gamma = "x-gamma-";
    name.get(..gamma.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(gamma))
        || OBEYED_ENVOY_HEADERS
            .iter()
            .any(|h| h.eq_ignore_ascii_case(name))
}

/// Removes every request header Envoy or gammaroute's Envoy route would obey ([`controls_routing`])
/// that the request carries and the plan does not already set or remove, so these headers are
/// the filter's or nobody's — also from a client Envoy deems internal. The bootstraps strip
/// every `x-envoy-*` and `x-gamma-*` natively before gammaroute; this covers a bootstrap without
/// that filter. Appended after the plan's own operations, and only for headers present: a clean
/// request costs nothing.
pub fn strip_reserved<'d>(ops: &mut Ops<'d>, headers: &'d [(String, String)]) {
    for (name, _) in headers {
        if !controls_routing(name) {
            continue;
        }
        let planned = ops.iter().any(|op| match op {
            HeaderOp::Set(n, _) | HeaderOp::Add(n, _) | HeaderOp::Remove(n) => {
                n.eq_ignore_ascii_case(name)
            }
        });
        if !planned {
            ops.push(HeaderOp::Remove(Cow::Borrowed(name.as_str())));
        }
    }
}

fn set_or_remove(ops: &mut Ops<'_>, name: &'static str, value: Option<String>) {
    ops.push(match value {
        Some(v) => HeaderOp::Set(name.into(), v.into()),
        None => HeaderOp::Remove(name.into()),
    });
}

/// Short bodies for local replies: enough for a human with curl, nothing internal.
fn body(reason: LocalReason) -> &'static str {
    match reason {
        LocalReason::NoRoute => "no route matches this request\n",
        LocalReason::NoBackends => "this route has no backend to forward to\n",
        LocalReason::BackendUnavailable => "the selected backend is unavailable\n",
        LocalReason::Misdirected => {
            "this host is served by another listener than this connection's: use a new connection\n"
        }
        LocalReason::Redirect | LocalReason::CorsPreflight => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::{LocalResponse, Selection};
    use crate::table::{Retry, Timeouts};

    fn decision(outcome: Outcome<'_>) -> Decision<'_> {
        Decision {
            selection: Selection::NoParent,
            outcome,
        }
    }

    fn contract() -> Contract<'static> {
        Contract {
            mirror_slots: 2,
            passthrough_cluster: None,
        }
    }

    fn names<'a>(ops: &'a [HeaderOp<'a>]) -> Vec<String> {
        ops.iter()
            .map(|op| match op {
                HeaderOp::Set(n, v) => format!("set {n}={v}"),
                HeaderOp::Add(n, v) => format!("add {n}={v}"),
                HeaderOp::Remove(n) => format!("remove {n}"),
            })
            .collect()
    }

    #[test]
    fn forward_sets_cluster_timeouts_retries_mirrors() {
        let retry = Retry {
            attempts: 2,
            codes: vec![500, 503],
            backoff_ms: Some(100),
        };
        let fwd = Forward {
            backend: 0,
            cluster: "shop/api:8080",
            request_headers: vec![HeaderOp::Set("x-user".into(), "1".into())],
            authority: Some("internal.example".into()),
            path: Some("/v2/x?q=1".into()),
            response_headers: vec![HeaderOp::Remove("server".into())],
            mirrors: vec!["shop/shadow:8080", "shop/audit:80", "shop/extra:80"],
            timeouts: Timeouts {
                request_ms: Some(5000),
                backend_request_ms: None,
            },
            retry: Some(&retry),
        };
        let d = decision(Outcome::Forward(fwd));
        let Plan::Continue {
            request,
            response,
            dropped_mirrors,
        } = plan(&d, contract())
        else {
            panic!("not a forward plan");
        };
        assert_eq!(
            names(&request),
            vec![
                "set x-user=1",
                "set :authority=internal.example",
                "set :path=/v2/x?q=1",
                "set x-gamma-cluster=shop/api:8080",
                "set x-envoy-upstream-rq-timeout-ms=5000",
                "remove x-envoy-upstream-rq-per-try-timeout-ms",
                "set x-envoy-max-retries=2",
                "set x-envoy-retry-on=connect-failure,refused-stream,reset,retriable-status-codes",
                "set x-gamma-backoff-ms=100",
                "set x-envoy-retriable-status-codes=500,503",
                "set x-gamma-mirror-0=shop/shadow:8080",
                "set x-gamma-mirror-1=shop/audit:80",
            ]
        );
        assert_eq!(names(&response), vec!["remove server"]);
        assert_eq!(dropped_mirrors, 1);
    }

    #[test]
    fn forward_without_retry_strips_client_control_headers() {
        let d = decision(Outcome::Forward(Forward {
            backend: 0,
            cluster: "c",
            request_headers: vec![],
            authority: None,
            path: None,
            response_headers: vec![],
            mirrors: vec![],
            timeouts: Timeouts::default(),
            retry: None,
        }));
        let Plan::Continue { request, .. } = plan(&d, contract()) else {
            panic!("not a forward plan");
        };
        assert_eq!(
            names(&request),
            vec![
                "set x-gamma-cluster=c",
                "remove x-envoy-upstream-rq-timeout-ms",
                "remove x-envoy-upstream-rq-per-try-timeout-ms",
                "remove x-envoy-max-retries",
                "remove x-envoy-retry-on",
                "remove x-gamma-backoff-ms",
                "remove x-envoy-retriable-status-codes",
                "remove x-gamma-mirror-0",
                "remove x-gamma-mirror-1",
            ]
        );
        assert!(!request.spilled(), "a plain forward plan stays inline");
    }

    #[test]
    fn prune_drops_only_removals_of_absent_headers() {
        let mut ops: Ops = [
            HeaderOp::Remove("x-absent".into()),
            HeaderOp::Set("x-gamma-cluster".into(), "c".into()),
            HeaderOp::Remove("X-Envoy-Max-Retries".into()),
            HeaderOp::Add("x-made".into(), "1".into()),
            HeaderOp::Remove("x-made".into()),
            HeaderOp::Remove("x-gamma-mirror-0".into()),
        ]
        .into_iter()
        .collect();
        // The request carries x-envoy-max-retries (any case) and nothing else of these.
        prune(&mut ops, |n| n.eq_ignore_ascii_case("x-envoy-max-retries"));
        assert_eq!(
            names(&ops),
            vec![
                "set x-gamma-cluster=c",
                "remove X-Envoy-Max-Retries",
                "add x-made=1",
                // Created earlier in the plan: the removal matters.
                "remove x-made",
            ]
        );
    }

    #[test]
    fn plain_forward_prunes_to_one_write() {
        let d = decision(Outcome::Forward(Forward {
            backend: 0,
            cluster: "c",
            request_headers: vec![],
            authority: None,
            path: None,
            response_headers: vec![],
            mirrors: vec![],
            timeouts: Timeouts::default(),
            retry: None,
        }));
        let Plan::Continue { mut request, .. } = plan(&d, contract()) else {
            panic!("not a forward plan");
        };
        assert!(
            !request.spilled(),
            "a plain forward plans without allocating"
        );
        prune(&mut request, |_| false);
        assert_eq!(names(&request), vec!["set x-gamma-cluster=c"]);
    }

    #[test]
    fn strip_reserved_removes_every_client_control_header_once() {
        let d = decision(Outcome::Forward(Forward {
            backend: 0,
            cluster: "c",
            request_headers: vec![],
            authority: None,
            path: None,
            response_headers: vec![],
            mirrors: vec![],
            timeouts: Timeouts::default(),
            retry: None,
        }));
        let headers: Vec<(String, String)> = [
            (":path", "/"),
            ("x-envoy-retry-grpc-on", "cancelled"),
            ("x-envoy-hedge-on-per-try-timeout", "true"),
            ("x-envoy-upstream-alt-stat-name", "x"),
            ("x-envoy-max-retries", "9"),
            ("x-gamma-cluster", "evil"),
            ("x-gamma-anything", "1"),
            ("x-envoyish", "kept"),
            // Added by Istio's sidecar filters before gammaroute: not the router's to obey.
            ("x-envoy-peer-metadata", "kept"),
            ("user-agent", "curl"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let Plan::Continue { mut request, .. } = plan(&d, contract()) else {
            panic!("not a forward plan");
        };
        strip_reserved(&mut request, &headers);
        prune(&mut request, |n| headers.iter().any(|(k, _)| k == n));
        assert_eq!(
            names(&request),
            vec![
                "set x-gamma-cluster=c",
                // Planned already: removed once, not twice.
                "remove x-envoy-max-retries",
                "remove x-envoy-retry-grpc-on",
                "remove x-envoy-hedge-on-per-try-timeout",
                "remove x-envoy-upstream-alt-stat-name",
                "remove x-gamma-anything",
            ]
        );
    }

    #[test]
    fn mirror_slots_beyond_the_named_ones() {
        assert_eq!(mirror_header(7), "x-gamma-mirror-7");
        assert_eq!(mirror_header(12), "x-gamma-mirror-12");
    }

    #[test]
    fn local_responses_and_passthrough() {
        let d = decision(Outcome::Respond(LocalResponse {
            status: 404,
            reason: LocalReason::NoRoute,
            headers: vec![],
        }));
        assert!(
            matches!(plan(&d, contract()), Plan::Respond { status: 404, body, .. } if !body.is_empty())
        );
        let d = decision(Outcome::Passthrough);
        let Plan::Continue { request, .. } = plan(&d, contract()) else {
            panic!("passthrough continues");
        };
        // No passthrough cluster: nothing chosen, and nothing a client sent survives.
        assert_eq!(
            names(&request),
            vec![
                "remove x-gamma-cluster",
                "remove x-gamma-mirror-0",
                "remove x-gamma-mirror-1"
            ]
        );
        let with = Contract {
            mirror_slots: 0,
            passthrough_cluster: Some("original-dst"),
        };
        let Plan::Continue { request, .. } = plan(&d, with) else {
            panic!("passthrough with a cluster forwards");
        };
        assert_eq!(names(&request), vec!["set x-gamma-cluster=original-dst"]);
    }
}
