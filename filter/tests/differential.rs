//! Differential test: the compiled [`Router`] must select exactly what the naive
//! [`reference`] router selects, on thousands of generated valid tables and requests built to hit
//! them (same path segments, colliding hostnames, tied ranks, repeated and differently-cased
//! headers, hosts with ports and uppercase).
//!
//! The generator only builds *valid* tables (as config-pusher writes them): paths start with `/`
//! and have no `//`, hostnames are lowercase, listeners are distinct by (port, hostname), route
//! hostnames on a listener with a hostname stay inside it, ClusterIPs belong to one Service,
//! mesh attachments carry no hostnames. `Router::compile` validates, so a generated table that
//! validation rejects fails the test with the validation error.
//!
//! Runs under wasm32-wasip1 too: no failure persistence, no fork. `PROPTEST_CASES` overrides the
//! number of tables; `PROPTEST_RNG_SEED` pins the seed.

use std::cell::Cell;
use std::net::IpAddr;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, subsequence};
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use gammaroute_filter::router::reference::{self, Reference};
use gammaroute_filter::router::{Destination, ParentRef, Request, Router, Selected, Selection};
use gammaroute_filter::table::{
    Attachment, Backend, BackendTarget, Filter, Header, HeaderMatch, HeaderModifier, Listener,
    Match, MeshService, MeshServicePort, Mirror, PathMatch, PathModifier, QueryParamMatch,
    Redirect, Route, RouteOrigin, RouteTable, Rule, UrlRewrite, ValueMatch,
};

/// Tables per run (each checked with [`REQUESTS`] requests and [`DRAWS`] draws per request).
const CASES: u32 = 2_000;
const REQUESTS: usize = 24;
const DRAWS: [u64; 3] = [0, 1, 0x9e37_79b9_7f4a_7c15];

// ---------------------------------------------------------------------------------------------
// Vocabulary shared by tables and requests, so that requests hit.

const REQUEST_PORTS: &[u16] = &[80, 8080, 9090];
/// Listener hostnames (besides none at all).
const LISTENER_HOSTS: &[&str] = &[
    "a.example.com",
    "b.example.com",
    "a.b.example.com",
    "*.example.com",
    "*.b.example.com",
];
const ROUTE_HOSTS: &[&str] = &[
    "a.example.com",
    "b.example.com",
    "a.b.example.com",
    "x.b.example.com",
    "*.example.com",
    "*.b.example.com",
    "other.org",
];
const REQUEST_HOSTS: &[&str] = &[
    "a.example.com",
    "A.Example.COM",
    "a.example.com:8080",
    "b.example.com",
    "x.b.example.com",
    "a.b.example.com",
    "A.B.Example.com:80",
    "example.com",
    "c.example.com",
    "other.org",
    "",
    ".example.com",
    "a.example.com.",
    "[::1]:80",
];

/// TLS names a client may send (SNI).
const SERVER_NAMES: &[&str] = &[
    "a.example.com",
    "B.example.com",
    "x.b.example.com",
    "c.example.com",
    "other.org",
];

/// Exact and PathPrefix values: valid Gateway API paths (no `//`).
const MATCH_PATHS: &[&str] = &[
    "/", "/a", "/a/", "/a/b", "/a/b/", "/a/b/c", "/ab", "/ab/c", "/b",
];
const PATH_REGEXES: &[&str] = &[
    "/a/.*",
    "/a(/.*)?",
    "/[ab]+",
    "/a/b/?",
    ".*",
    "/ab?",
    "/a/[^/]+",
    "/a/[0-9]+",
    "/(a|b)/b",
    // Indexed under a deeper directory (`/a/b`), and quantifiers right after the literal.
    "/a/b/c[0-9]*",
    "/a/b{1,2}/c",
    "/a/b/+c",
];
const REQUEST_PATHS: &[&str] = &[
    "/", "/a", "/a/", "/a/b", "/a/b/", "/a/b/c", "/ab", "/ab/c", "/abc", "/a//b", "//a", "/a//",
    "/b", "/A", "/a/12", "", "*", "a/b", "/a/b/c12", "/a/bb/c", "/a/b//c",
];
const REQUEST_QUERIES: &[&str] = &[
    "", "", "?q=1", "?q=2&q=1", "?Q=1", "?q=%31", "?q", "?x=1&q=1", "?q=a%20b", "?q=a+b", "?",
    "#frag", "?q=1#f",
];

const HEADER_NAMES: &[&str] = &["x-env", "X-Env", "x-user", "x-tag"];
const HEADER_VALUES: &[&str] = &["canary", "prod", "canary,prod", "", "1"];
const HEADER_REGEXES: &[&str] = &["can.*", "[0-9]+", "canary|prod", ".*"];
const REQUEST_HEADERS: &[(&str, &str)] = &[
    ("x-env", "canary"),
    ("X-Env", "canary"),
    ("x-env", "prod"),
    ("X-ENV", "prod"),
    ("x-user", "1"),
    ("x-user", "12"),
    ("x-user", "abc"),
    ("x-tag", ""),
];

const QUERY_NAMES: &[&str] = &["q", "Q", "x"];
const QUERY_VALUES: &[&str] = &["1", "2", "", "a b"];
const QUERY_REGEXES: &[&str] = &["[0-9]+", "1|2", "a.b"];

const METHODS: &[&str] = &["GET", "POST", "HEAD"];
const REQUEST_METHODS: &[&str] = &["GET", "GET", "POST", "HEAD", "get", "DELETE"];

const CLUSTERS: &[&str] = &["ns/a:80", "ns/b:80", "ns/c:8080"];

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// ClusterIPs: service `s` owns `SERVICE_IPS[s]`; the last two are owned by a generated service
/// or by nobody.
const SERVICE_IPS: &[&str] = &["10.0.0.1", "10.0.0.2", "10.0.0.3", "fd00::1", "10.0.0.4"];
const REQUEST_IPS: &[&str] = &[
    "10.0.0.1", "10.0.0.2", "10.0.0.3", "fd00::1", "10.0.0.4", "10.0.0.9",
];

// ---------------------------------------------------------------------------------------------
// Table strategies.

fn value_match(
    exact: &'static [&'static str],
    regex: &'static [&'static str],
) -> impl Strategy<Value = ValueMatch> {
    prop_oneof![
        3 => select(exact).prop_map(|v| ValueMatch::Exact(v.to_string())),
        1 => select(regex).prop_map(|v| ValueMatch::Regex(v.to_string())),
    ]
}

fn path_match() -> impl Strategy<Value = PathMatch> {
    prop_oneof![
        1 => select(MATCH_PATHS).prop_map(|p| PathMatch::Exact(p.to_string())),
        4 => select(MATCH_PATHS).prop_map(|p| PathMatch::Prefix(p.to_string())),
        1 => select(PATH_REGEXES).prop_map(|p| PathMatch::Regex(p.to_string())),
    ]
}

fn match_strategy() -> impl Strategy<Value = Match> {
    let method = prop_oneof![3 => Just(None), 1 => select(METHODS).prop_map(Some)];
    let header = (
        select(HEADER_NAMES),
        value_match(HEADER_VALUES, HEADER_REGEXES),
    );
    let query = (
        select(QUERY_NAMES),
        value_match(QUERY_VALUES, QUERY_REGEXES),
    );
    (
        0u32..4,
        path_match(),
        method,
        prop_oneof![2 => Just(Vec::new()), 1 => vec(header, 1..=2)],
        prop_oneof![3 => Just(Vec::new()), 1 => vec(query, 1..=2)],
    )
        .prop_map(|(rank, path, method, headers, query)| {
            // Names are unique within a match: case-insensitively for headers, exactly for query.
            let mut header_matches: Vec<HeaderMatch> = Vec::new();
            for (name, value) in headers {
                if !header_matches
                    .iter()
                    .any(|h| h.name.eq_ignore_ascii_case(name))
                {
                    header_matches.push(HeaderMatch {
                        name: name.to_string(),
                        value,
                    });
                }
            }
            let mut query_params: Vec<QueryParamMatch> = Vec::new();
            for (name, value) in query {
                if !query_params.iter().any(|q| q.name == name) {
                    query_params.push(QueryParamMatch {
                        name: name.to_string(),
                        value,
                    });
                }
            }
            Match {
                rank,
                path,
                method: method
                    .map(|m| gammaroute_filter::table::Method::parse(m).expect("a CRD method")),
                headers: header_matches,
                query_params,
            }
        })
}

/// A rule's filters and backends: forwarding (possibly to nothing, possibly with header edits,
/// a mirror and a rewrite) or a redirect (no backends, as the CEL rules require).
fn action() -> impl Strategy<Value = (Vec<Filter>, Vec<Backend>)> {
    let backend = (
        0u32..=3,
        prop_oneof![
            4 => select(CLUSTERS).prop_map(|c| BackendTarget::Cluster(c.to_string())),
            1 => select(&[500u16, 503][..]).prop_map(|status| BackendTarget::Unavailable {
                status,
                reason: "generated".to_string(),
            }),
        ],
    )
        .prop_map(|(weight, target)| Backend {
            weight,
            target,
            filters: Vec::new(),
        });
    let forward = (
        vec(backend, 0..=3),
        any::<bool>(),
        proptest::option::of(0u32..=2),
        any::<bool>(),
    )
        .prop_map(|(backends, set_header, mirror, rewrite)| {
            let mut filters = Vec::new();
            if set_header {
                filters.push(Filter::RequestHeaderModifier(HeaderModifier {
                    set: vec![Header {
                        name: "x-gen".to_string(),
                        value: "1".to_string(),
                    }],
                    ..HeaderModifier::default()
                }));
            }
            if let Some(numerator) = mirror {
                filters.push(Filter::RequestMirror(Mirror {
                    cluster: "ns/mirror:80".to_string(),
                    numerator,
                    denominator: 2,
                }));
            }
            if rewrite {
                filters.push(Filter::UrlRewrite(UrlRewrite {
                    hostname: Some("rw.example.com".to_string()),
                    path: Some(PathModifier::ReplaceFullPath("/rw".to_string())),
                }));
            }
            (filters, backends)
        });
    let redirect = Just((
        vec![Filter::RequestRedirect(Redirect {
            scheme: None,
            hostname: Some("r.example.com".to_string()),
            path: None,
            port: None,
            status_code: gammaroute_filter::table::RedirectCode::Found,
        })],
        Vec::new(),
    ));
    prop_oneof![4 => forward, 1 => redirect]
}

fn routes() -> impl Strategy<Value = Vec<Route>> {
    let rule = (vec(match_strategy(), 1..=3), action());
    vec(vec(rule, 1..=3), 1..=6).prop_map(|routes| {
        (0u32..)
            .zip(routes)
            .map(|(r, rules)| Route {
                namespace: "ns".to_string(),
                name: format!("r{r}"),
                rules: (0u32..)
                    .zip(rules)
                    .map(|(i, (matches, (filters, backends)))| Rule {
                        // Gaps, as left by rules dropped as invalid.
                        index: i * 2,
                        name: None,
                        matches,
                        filters,
                        backends,
                        timeouts: None,
                        retry: None,
                    })
                    .collect(),
            })
            .collect()
    })
}

/// Whether an effective route hostname may appear on a listener with `listener` hostname: it is
/// the intersection of the route's hostname with the listener's, so it lies inside it.
fn within_listener(pattern: &str, listener: Option<&str>) -> bool {
    match listener {
        None => true,
        Some(l) => match l.strip_prefix("*.") {
            None => pattern == l,
            Some(suffix) => {
                let dotted = format!(".{suffix}");
                match pattern.strip_prefix("*.") {
                    Some(p) => p == suffix || p.ends_with(&dotted),
                    None => pattern.len() > dotted.len() && pattern.ends_with(&dotted),
                }
            }
        },
    }
}

/// Raw attachments: a route number (reduced modulo the number of routes) and hostnames.
fn raw_attachments(hostnames: bool) -> impl Strategy<Value = Vec<(usize, Vec<&'static str>)>> {
    let max_hosts = if hostnames { 3 } else { 0 };
    vec(
        (
            0usize..8,
            subsequence(ROUTE_HOSTS, 0..=max_hosts).prop_shuffle(),
        ),
        0..=5,
    )
}

fn attachments(
    raw: Vec<(usize, Vec<&str>)>,
    routes: usize,
    listener: Option<&str>,
) -> Vec<Attachment> {
    raw.into_iter()
        .map(|(route, hostnames)| Attachment {
            route: (route % routes) as u32,
            hostnames: hostnames
                .into_iter()
                .filter(|h| within_listener(h, listener))
                .map(str::to_string)
                .collect(),
        })
        .collect()
}

fn gateway_table() -> impl Strategy<Value = RouteTable> {
    let port = prop_oneof![3 => Just(80u16), 1 => Just(8080)];
    let hostname = prop_oneof![3 => Just(None), 2 => select(LISTENER_HOSTS).prop_map(Some)];
    (
        vec((port, hostname, raw_attachments(true)), 1..=5),
        routes(),
    )
        .prop_map(|(listeners, routes)| {
            // Listeners are distinct by (port, hostname); the first of duplicates stays.
            let mut seen = Vec::new();
            let mut kept = Vec::new();
            for (port, hostname, raw) in listeners {
                if !seen.contains(&(port, hostname)) {
                    seen.push((port, hostname));
                    kept.push(Listener {
                        name: format!("l{}", kept.len()),
                        port,
                        hostname: hostname.map(str::to_string),
                        attachments: attachments(raw, routes.len(), hostname),
                    });
                }
            }
            let listeners = kept;
            RouteTable {
                version: String::new(),
                role: "gateway/ns/gw".to_string(),
                listeners,
                services: Vec::new(),
                routes,
            }
        })
}

fn mesh_table() -> impl Strategy<Value = RouteTable> {
    let port = (any::<bool>(), any::<bool>(), raw_attachments(false));
    let service = (
        subsequence(REQUEST_PORTS, 1..=3).prop_shuffle(),
        vec(port, 3),
    );
    (
        1usize..=3,
        vec(proptest::option::of(0usize..3), 2),
        vec(service, 3),
        routes(),
    )
        .prop_map(|(count, extra_ips, services, routes)| {
            let services = (0..count)
                .zip(services)
                .map(|(s, (ports, extras))| {
                    let mut cluster_ips = vec![ip(SERVICE_IPS[s])];
                    for (i, owner) in extra_ips.iter().enumerate() {
                        // Owners past the last service leave the address unowned.
                        if *owner == Some(s) {
                            cluster_ips.push(ip(SERVICE_IPS[3 + i]));
                        }
                    }
                    MeshService {
                        namespace: "ns".to_string(),
                        name: format!("svc{s}"),
                        cluster_ips,
                        ports: ports
                            .into_iter()
                            .zip(extras)
                            .map(|(port, (named, consumer, raw))| MeshServicePort {
                                port,
                                name: named.then(|| format!("p{port}")),
                                origin: if consumer {
                                    RouteOrigin::Consumer
                                } else {
                                    RouteOrigin::Producer
                                },
                                attachments: attachments(raw, routes.len(), None),
                            })
                            .collect(),
                    }
                })
                .collect();
            RouteTable {
                version: String::new(),
                role: "mesh/client".to_string(),
                listeners: Vec::new(),
                services,
                routes,
            }
        })
}

fn table() -> impl Strategy<Value = RouteTable> {
    prop_oneof![3 => gateway_table(), 1 => mesh_table()]
}

// ---------------------------------------------------------------------------------------------
// Requests.

#[derive(Debug, Clone)]
struct RequestSpec {
    method: &'static str,
    authority: &'static str,
    path: String,
    headers: Vec<(String, String)>,
    destination: Destination,
    /// The TLS SNI (empty: plaintext).
    server_name: &'static str,
}

impl RequestSpec {
    fn request(&self) -> Request<'_> {
        Request {
            method: self.method,
            scheme: "http",
            authority: self.authority,
            path: &self.path,
            headers: &self.headers,
            destination: self.destination,
            server_name: self.server_name,
        }
    }
}

fn request_spec() -> impl Strategy<Value = RequestSpec> {
    (
        select(REQUEST_METHODS),
        // Mostly well-formed names and paths, the oddities less often.
        prop_oneof![2 => select(&REQUEST_HOSTS[..7]), 1 => select(REQUEST_HOSTS)],
        prop_oneof![2 => select(&REQUEST_PATHS[..8]), 1 => select(REQUEST_PATHS)],
        select(REQUEST_QUERIES),
        vec(select(REQUEST_HEADERS), 0..=3),
        prop_oneof![1 => Just(REQUEST_IPS[0]), 1 => select(REQUEST_IPS)],
        prop_oneof![5 => Just(80u16), 2 => Just(8080), 1 => Just(9090)],
        // Mostly plaintext; else a TLS name, often the Host's own (without its port).
        prop_oneof![3 => Just(""), 1 => select(&REQUEST_HOSTS[..7]), 1 => select(SERVER_NAMES)],
    )
        .prop_map(
            |(method, authority, path, query, headers, dest_ip, port, sni)| RequestSpec {
                method,
                authority,
                path: format!("{path}{query}"),
                headers: headers
                    .into_iter()
                    .map(|(n, v)| (n.to_string(), v.to_string()))
                    .collect(),
                destination: Destination {
                    ip: ip(dest_ip),
                    port,
                },
                server_name: sni.rsplit_once(':').map_or(sni, |(h, _)| h),
            },
        )
}

// ---------------------------------------------------------------------------------------------
// The property.

/// How often the interesting situations came up, so a generator change cannot quietly make the
/// test vacuous.
#[derive(Default)]
struct Coverage {
    requests: Cell<u64>,
    matched: Cell<u64>,
    no_match: Cell<u64>,
    no_parent: Cell<u64>,
    /// The TLS name's listener is not the Host's: 421.
    misdirected: Cell<u64>,
    mesh_matched: Cell<u64>,
    /// The winner's rank is not the lowest among the candidates: hostname specificity decided.
    hostname_beat_rank: Cell<u64>,
    /// Another candidate had the winner's specificity and rank: table order decided.
    order_decided: Cell<u64>,
    /// The winner's rule is not the first candidate in table order.
    contested: Cell<u64>,
    /// Several listeners on the destination port match the Host (listener isolation applies).
    isolation: Cell<u64>,
}

fn bump(c: &Cell<u64>) {
    c.set(c.get() + 1);
}

fn check(
    table: &RouteTable,
    requests: &[RequestSpec],
    cov: &Coverage,
) -> Result<(), TestCaseError> {
    let router = Router::compile(table.clone())
        .map_err(|e| TestCaseError::fail(format!("generated table is invalid: {e}")))?;
    let reference = Reference::new(table);
    for spec in requests {
        let req = spec.request();
        let compiled = router.select(&req);
        let expected = reference.select(&req);
        prop_assert_eq!(compiled, expected, "selection differs for {:?}", spec);
        for draw in DRAWS {
            prop_assert_eq!(
                router.decide(&req, draw),
                reference.decide(&req, draw),
                "decision differs for {:?}, draw {}",
                spec,
                draw
            );
        }

        bump(&cov.requests);
        match expected {
            Selection::NoParent => bump(&cov.no_parent),
            Selection::NoMatch(_) => bump(&cov.no_match),
            Selection::Misdirected(_) => bump(&cov.misdirected),
            Selection::Matched(sel) => {
                bump(&cov.matched);
                if matches!(sel.parent, ParentRef::ServicePort { .. }) {
                    bump(&cov.mesh_matched);
                }
                // (`candidates` is `evaluate` without the failures, so explain's view and the
                // selection compared above cannot drift apart.)
                if let Some((_, candidates)) = reference::candidates(table, &req) {
                    let best = candidates.iter().min_by_key(|c| c.key()).unwrap();
                    let min_rank = candidates.iter().map(|c| c.rank).min().unwrap();
                    if best.rank > min_rank {
                        bump(&cov.hostname_beat_rank);
                    }
                    if candidates.iter().any(|c| {
                        c.position != best.position
                            && c.specificity == best.specificity
                            && c.rank == best.rank
                    }) {
                        bump(&cov.order_decided);
                    }
                    if candidates.first().map(|c| c.selected) != Some(sel) {
                        bump(&cov.contested);
                    }
                }
            }
        }
        let host = req.host();
        let listening = table
            .listeners
            .iter()
            .filter(|l| {
                l.port == spec.destination.port
                    && reference::pattern_matches(l.hostname.as_deref(), &host)
            })
            .count();
        if listening > 1 {
            bump(&cov.isolation);
        }
    }
    Ok(())
}

#[test]
fn compiled_router_agrees_with_reference() {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CASES);
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let cov = Coverage::default();
    let mut runner = TestRunner::new(config);
    let strategy = (table(), vec(request_spec(), REQUESTS));
    let result = runner.run(&strategy, |(table, requests)| {
        check(&table, &requests, &cov)
    });
    if let Err(e) = result {
        panic!("{e}");
    }

    let n = |c: &Cell<u64>| c.get();
    eprintln!(
        "differential: {cases} tables, {} requests × {} draws: matched {}, no match {}, \
         no parent {}, misdirected {}, mesh matched {}, hostname beat rank {}, table order decided {}, \
         contested {}, several listeners matched {}",
        n(&cov.requests),
        DRAWS.len(),
        n(&cov.matched),
        n(&cov.no_match),
        n(&cov.no_parent),
        n(&cov.misdirected),
        n(&cov.mesh_matched),
        n(&cov.hostname_beat_rank),
        n(&cov.order_decided),
        n(&cov.contested),
        n(&cov.isolation),
    );
    // With at least a few hundred tables every situation must have come up.
    if cases >= 500 {
        let total = n(&cov.requests);
        assert!(n(&cov.matched) * 6 > total, "too few matches");
        assert!(n(&cov.no_match) * 20 > total, "too few misses");
        assert!(
            n(&cov.no_parent) * 20 > total,
            "too few requests without parent"
        );
        for (what, count) in [
            ("mesh matches", n(&cov.mesh_matched)),
            ("misdirected requests", n(&cov.misdirected)),
            ("hostname beating rank", n(&cov.hostname_beat_rank)),
            ("table-order ties", n(&cov.order_decided)),
            ("contested selections", n(&cov.contested)),
            ("listener isolation", n(&cov.isolation)),
        ] {
            assert!(count * 200 > total, "too few {what}: {count} of {total}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Hand-written regressions for the trickiest precedence cases. Each checks both routers against
// the expected answer.

fn m(rank: u32, path: PathMatch) -> Match {
    Match {
        rank,
        path,
        method: None,
        headers: Vec::new(),
        query_params: Vec::new(),
    }
}

fn prefix(p: &str) -> PathMatch {
    PathMatch::Prefix(p.to_string())
}

/// A route whose rules each forward to cluster `<name>-<rule>`.
fn route(name: &str, rules: Vec<Vec<Match>>) -> Route {
    Route {
        namespace: "ns".to_string(),
        name: name.to_string(),
        rules: (0u32..)
            .zip(rules)
            .map(|(i, matches)| Rule {
                index: i,
                matches,
                backends: vec![Backend {
                    weight: 1,
                    target: BackendTarget::Cluster(format!("{name}-{i}")),
                    filters: Vec::new(),
                }],
                ..Rule::default()
            })
            .collect(),
    }
}

fn attach(route: u32, hostnames: &[&str]) -> Attachment {
    Attachment {
        route,
        hostnames: hostnames.iter().map(|h| h.to_string()).collect(),
    }
}

fn listener(
    name: &str,
    port: u16,
    hostname: Option<&str>,
    attachments: Vec<Attachment>,
) -> Listener {
    Listener {
        name: name.to_string(),
        port,
        hostname: hostname.map(str::to_string),
        attachments,
    }
}

fn gateway(listeners: Vec<Listener>, routes: Vec<Route>) -> RouteTable {
    RouteTable {
        version: String::new(),
        role: "gateway/ns/gw".to_string(),
        listeners,
        services: Vec::new(),
        routes,
    }
}

fn spec(
    host: &'static str,
    path: &str,
    headers: &[(&str, &str)],
    dest: (&str, u16),
) -> RequestSpec {
    RequestSpec {
        method: "GET",
        authority: host,
        path: path.to_string(),
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        destination: Destination {
            ip: ip(dest.0),
            port: dest.1,
        },
        server_name: "",
    }
}

/// Both routers' selection, checked to agree (also for the decision).
fn both(table: &RouteTable, spec: &RequestSpec) -> Selection {
    let router = Router::compile(table.clone()).unwrap();
    let req = spec.request();
    let compiled = router.select(&req);
    assert_eq!(compiled, reference::select(table, &req), "{spec:?}");
    assert_eq!(
        router.decide(&req, 7),
        reference::decide(table, &req, 7),
        "{spec:?}"
    );
    compiled
}

fn selected(parent: ParentRef, route: u32, rule: u32) -> Selection {
    Selection::Matched(Selected {
        parent,
        route,
        rule,
        matched: 0,
    })
}

const GW: (&str, u16) = ("10.1.0.1", 80);
const L0: ParentRef = ParentRef::Listener(0);

#[test]
fn hostname_specificity_beats_rank() {
    // "the largest number of characters in a matching non-wildcard hostname", then "characters in
    // a matching hostname", and only then the match precedence (rank).
    let table = gateway(
        vec![listener(
            "http",
            80,
            None,
            vec![
                attach(0, &["*.example.com"]),
                attach(1, &["a.example.com"]),
                attach(2, &["*.b.example.com"]),
                attach(3, &[]),
            ],
        )],
        vec![
            route("wildcard", vec![vec![m(0, prefix("/"))]]),
            route("exact", vec![vec![m(9, prefix("/a"))]]),
            route("long-wildcard", vec![vec![m(5, prefix("/"))]]),
            route("any", vec![vec![m(0, prefix("/"))]]),
        ],
    );
    let get = |host, path| both(&table, &spec(host, path, &[], GW));
    assert_eq!(get("a.example.com", "/a/x"), selected(L0, 1, 0));
    assert_eq!(get("A.EXAMPLE.com:80", "/a"), selected(L0, 1, 0));
    // The exact hostname's route does not match: the next most specific hostname's does.
    assert_eq!(get("a.example.com", "/b"), selected(L0, 0, 0));
    assert_eq!(get("x.b.example.com", "/"), selected(L0, 2, 0));
    assert_eq!(get("c.example.com", "/"), selected(L0, 0, 0));
    assert_eq!(get("example.com", "/"), selected(L0, 3, 0));
    assert_eq!(get("other.org", "/a"), selected(L0, 3, 0));
}

#[test]
fn failing_header_on_longer_prefix_falls_back_to_shorter_prefix() {
    let mut canary = m(0, prefix("/a/b"));
    canary.headers = vec![HeaderMatch {
        name: "X-Env".to_string(),
        value: ValueMatch::Exact("canary".to_string()),
    }];
    let table = gateway(
        vec![listener("http", 80, None, vec![attach(0, &[])])],
        vec![route(
            "r",
            vec![
                vec![canary],
                vec![m(1, prefix("/a"))],
                vec![m(2, prefix("/"))],
            ],
        )],
    );
    let get = |path, headers| both(&table, &spec("h", path, headers, GW));
    assert_eq!(get("/a/b/c", &[("x-env", "canary")]), selected(L0, 0, 0));
    assert_eq!(get("/a/b", &[("X-ENV", "canary")]), selected(L0, 0, 0));
    assert_eq!(get("/a/b/c", &[]), selected(L0, 0, 1));
    assert_eq!(get("/a/b/c", &[("x-env", "prod")]), selected(L0, 0, 1));
    // A repeated header matches when any of its values does (as Envoy's matchers do).
    assert_eq!(
        get("/a/b", &[("x-env", "canary"), ("x-env", "prod")]),
        selected(L0, 0, 0)
    );
    assert_eq!(
        get("/a/b", &[("x-env", "prod"), ("x-env", "beta")]),
        selected(L0, 0, 1)
    );
    // `/a` is element-wise: `/ab` is not under it.
    assert_eq!(get("/ab", &[("x-env", "canary")]), selected(L0, 0, 2));
}

#[test]
fn regex_versus_prefix_is_decided_by_rank() {
    let regex = PathMatch::Regex("/a/[0-9]+".to_string());
    for (regex_rank, prefix_rank) in [(0, 1), (1, 0)] {
        let table = gateway(
            vec![listener(
                "http",
                80,
                None,
                vec![attach(0, &[]), attach(1, &[])],
            )],
            vec![
                route("regex", vec![vec![m(regex_rank, regex.clone())]]),
                route("prefix", vec![vec![m(prefix_rank, prefix("/a"))]]),
            ],
        );
        let get = |path| both(&table, &spec("h", path, &[], GW));
        let winner = if regex_rank < prefix_rank { 0 } else { 1 };
        assert_eq!(get("/a/12"), selected(L0, winner, 0));
        // The regex must match the whole path.
        assert_eq!(get("/a/12/x"), selected(L0, 1, 0));
        assert_eq!(get("/a/x"), selected(L0, 1, 0));
        assert_eq!(get("/b/12"), Selection::NoMatch(L0));
    }
}

#[test]
fn listener_isolation_never_falls_back_to_a_less_specific_listener() {
    let table = gateway(
        vec![
            listener("any", 80, None, vec![attach(0, &[])]),
            listener("wild", 80, Some("*.example.com"), vec![attach(1, &[])]),
            listener("exact", 80, Some("a.example.com"), vec![attach(2, &[])]),
            listener("alt", 8080, None, vec![attach(0, &[])]),
        ],
        vec![
            route("catch-all", vec![vec![m(0, prefix("/"))]]),
            route("only", vec![vec![m(0, prefix("/only"))]]),
            route(
                "exact",
                vec![vec![m(0, PathMatch::Exact("/exact".to_string()))]],
            ),
        ],
    );
    let get = |host, path, port| both(&table, &spec(host, path, &[], ("10.1.0.1", port)));
    let (any, wild, exact) = (
        ParentRef::Listener(0),
        ParentRef::Listener(1),
        ParentRef::Listener(2),
    );
    assert_eq!(get("a.example.com", "/exact", 80), selected(exact, 2, 0));
    assert_eq!(get("a.example.com", "/only", 80), Selection::NoMatch(exact));
    assert_eq!(get("b.example.com", "/only/x", 80), selected(wild, 1, 0));
    assert_eq!(get("b.example.com", "/other", 80), Selection::NoMatch(wild));
    assert_eq!(get("example.com", "/other", 80), selected(any, 0, 0));
    assert_eq!(
        get("a.example.com", "/other", 8080),
        selected(ParentRef::Listener(3), 0, 0)
    );
    assert_eq!(get("a.example.com", "/", 9090), Selection::NoParent);
    let router = Router::compile(table.clone()).unwrap();
    let miss = spec("a.example.com", "/other", &[], GW);
    let decision = router.decide(&miss.request(), 0);
    assert!(matches!(
        decision.outcome,
        gammaroute_filter::router::Outcome::Respond(ref r) if r.status == 404
    ));
}

#[test]
fn mesh_parent_is_the_destination_cluster_ip_whatever_the_host() {
    let port = |port: u16, route: u32| MeshServicePort {
        port,
        name: None,
        origin: RouteOrigin::Producer,
        attachments: vec![attach(route, &[])],
    };
    let table = RouteTable {
        version: String::new(),
        role: "mesh/client".to_string(),
        listeners: Vec::new(),
        services: vec![
            MeshService {
                namespace: "ns".to_string(),
                name: "api".to_string(),
                cluster_ips: vec![ip("10.0.0.1"), ip("fd00::1")],
                ports: vec![port(80, 0), port(8080, 1)],
            },
            MeshService {
                namespace: "ns".to_string(),
                name: "web".to_string(),
                cluster_ips: vec![ip("10.0.0.2")],
                ports: vec![port(80, 2)],
            },
        ],
        routes: vec![
            route("api-80", vec![vec![m(0, prefix("/"))]]),
            route("api-8080", vec![vec![m(0, prefix("/v1"))]]),
            route("web", vec![vec![m(0, prefix("/"))]]),
        ],
    };
    let get = |host, path, dest| both(&table, &spec(host, path, &[], dest));
    let api80 = ParentRef::ServicePort {
        service: 0,
        port: 0,
    };
    let api8080 = ParentRef::ServicePort {
        service: 0,
        port: 1,
    };
    let web = ParentRef::ServicePort {
        service: 1,
        port: 0,
    };
    assert_eq!(
        get("web.ns.svc.cluster.local", "/", ("10.0.0.1", 80)),
        selected(api80, 0, 0)
    );
    assert_eq!(
        get("api", "/v1/x", ("fd00::1", 8080)),
        selected(api8080, 1, 0)
    );
    assert_eq!(
        get("api", "/v2", ("10.0.0.1", 8080)),
        Selection::NoMatch(api8080)
    );
    assert_eq!(
        get("api.ns.svc.cluster.local", "/", ("10.0.0.2", 80)),
        selected(web, 2, 0)
    );
    // Sent to a pod IP (or an unrouted port) with the Service's name as Host: not this parent.
    for dest in [("10.0.0.9", 80), ("10.0.0.1", 9090)] {
        assert_eq!(
            get("api.ns.svc.cluster.local", "/", dest),
            Selection::NoParent
        );
        let decision = reference::decide(&table, &spec("api", "/", &[], dest).request(), 0);
        assert_eq!(
            decision.outcome,
            gammaroute_filter::router::Outcome::Passthrough
        );
    }
}

#[test]
fn route_attached_twice_competes_with_each_attachment() {
    // Route 0 attached twice; at equal hostname specificity and rank, the attachment that
    // supplied the hostname places it in table order (see the reference module's docs).
    let table = gateway(
        vec![listener(
            "http",
            80,
            None,
            vec![
                attach(0, &["*.example.com"]),
                attach(1, &["a.example.com"]),
                attach(0, &["a.example.com"]),
            ],
        )],
        vec![
            route("twice", vec![vec![m(0, prefix("/"))]]),
            route("once", vec![vec![m(0, prefix("/"))]]),
        ],
    );
    let get = |host| both(&table, &spec(host, "/", &[], GW));
    assert_eq!(get("a.example.com"), selected(L0, 1, 0));
    assert_eq!(get("b.example.com"), selected(L0, 0, 0));
}
