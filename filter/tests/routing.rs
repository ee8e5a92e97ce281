//! Gateway API `HTTPRoute` semantics of the routing engine, checked through the public API only:
//! tables are written in their JSON form (as config-pusher writes them), compiled with
//! [`Router::compile`], and asked for a [`Decision`] with [`Router::decide`].
//!
//! Each test cites the spec rule it checks (field documentation of the v1.6.1 CRDs, GEPs, or
//! `docs/semantics.md` §n). Runs natively and under wasm32-wasip1: no threads, no files.

use std::net::SocketAddr;

use gammaroute_filter::router::decision::apply_to_list;
use gammaroute_filter::router::{
    Decision, Forward, HeaderOp, LocalReason, LocalResponse, Outcome, OwnedRequest, ParentRef,
    Router, Selection,
};
use gammaroute_filter::table::{wire, RouteTable, Timeouts};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A compiled table plus the `namespace/name` of each route, for readable assertions.
struct Gw {
    router: Router,
    names: Vec<String>,
}

/// Compiles a table written in its JSON form. Test-only shorthands, filled in before decoding so
/// tests only write what they are about:
/// - `role` defaults to `gateway/default/gw`, a route's `namespace` to `default`;
/// - a rule without `index` gets its position, without `matches` the CRD default PathPrefix `/`;
/// - a match without `rank` gets the next rank in table order (routes, rules, matches), so the
///   order tests write them is their precedence; precedence tests write every rank explicitly;
/// - a backend written as a string is that cluster with weight 1; a backend without `weight`
///   gets 1.
fn gw(mut table: Value) -> Gw {
    fill_defaults(&mut table);
    let table = table_of(table);
    let router = Router::compile(table).expect("table compiles");
    let names = router
        .table()
        .routes
        .iter()
        .map(|r| format!("{}/{}", r.namespace, r.name))
        .collect();
    Gw { router, names }
}

fn fill_defaults(table: &mut Value) {
    let obj = table.as_object_mut().expect("table object");
    obj.entry("role").or_insert(json!("gateway/default/gw"));
    let mut rank = 0u32;
    let routes = obj.get_mut("routes").and_then(Value::as_array_mut);
    for route in routes.into_iter().flatten() {
        let route = route.as_object_mut().expect("route object");
        route.entry("namespace").or_insert(json!("default"));
        let rules = route.get_mut("rules").and_then(Value::as_array_mut);
        for (i, rule) in rules.into_iter().flatten().enumerate() {
            let rule = rule.as_object_mut().expect("rule object");
            rule.entry("index").or_insert(json!(i));
            rule.entry("matches")
                .or_insert(json!([{ "path": { "prefix": "/" } }]));
            for m in rule["matches"].as_array_mut().expect("matches") {
                m.as_object_mut()
                    .expect("match object")
                    .entry("rank")
                    .or_insert_with(|| {
                        rank += 1;
                        json!(rank - 1)
                    });
            }
            for b in rule
                .get_mut("backends")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                if let Some(cluster) = b.as_str() {
                    *b = json!({ "weight": 1, "cluster": cluster });
                }
                b.as_object_mut()
                    .expect("backend object")
                    .entry("weight")
                    .or_insert(json!(1));
            }
        }
    }
}

/// A Gateway with one listener on `port` (no hostname) and every route attached to it.
fn on_port(port: u16, routes: Value) -> Gw {
    let n = routes.as_array().expect("routes array").len();
    let attachments: Vec<Value> = (0..n).map(|i| json!({ "route": i })).collect();
    gw(json!({
        "listeners": [{ "name": "l", "port": port, "attachments": attachments }],
        "routes": routes,
    }))
}

/// [`on_port`] 80.
fn http(routes: Value) -> Gw {
    on_port(80, routes)
}

/// One route `default/web` with one rule (`rule` is its JSON, without the shorthand defaults).
fn one_rule(rule: Value) -> Gw {
    http(json!([{ "name": "web", "rules": [rule] }]))
}

/// An owned request: `req("GET", "http://shop.example:8080/a?x=1")`. The destination port is the
/// URL's port (or the scheme's default), as a gateway listener would see it.
type Req = OwnedRequest;

fn req(method: &str, url: &str) -> Req {
    OwnedRequest::from_url(method, url).expect("scheme://")
}

/// A destination address (a Service ClusterIP:port for the mesh).
fn at(addr: &str) -> SocketAddr {
    addr.parse().expect("ip:port")
}

impl Gw {
    fn decide(&self, r: &Req, draw: u64) -> Decision<'_> {
        self.router.decide(&r.view(), draw)
    }

    /// The matched route (`namespace/name`) and HTTPRoute rule index, if any.
    fn pick(&self, r: &Req) -> Option<(&str, u32)> {
        match self.decide(r, 0).selection {
            Selection::Matched(s) => {
                let route = &self.router.table().routes[s.route as usize];
                Some((
                    self.names[s.route as usize].as_str(),
                    route.rules[s.rule as usize].index,
                ))
            }
            Selection::NoParent | Selection::NoMatch(_) | Selection::Misdirected(_) => None,
        }
    }

    fn route_for(&self, method: &str, url: &str, headers: &[(&str, &str)]) -> Option<(&str, u32)> {
        self.pick(&req(method, url).headers(headers))
    }

    /// `GET http://h{path}` without headers.
    fn get(&self, path: &str) -> Option<(&str, u32)> {
        self.route_for("GET", &format!("http://h{path}"), &[])
    }

    /// The outcome in one word: the cluster forwarded to, the local status, or `passthrough`.
    fn answer(&self, r: &Req, draw: u64) -> String {
        match self.decide(r, draw).outcome {
            Outcome::Forward(f) => f.cluster.to_string(),
            Outcome::Respond(l) => l.status.to_string(),
            Outcome::Passthrough => "passthrough".to_string(),
        }
    }

    fn forward(&self, r: &Req, draw: u64) -> Forward<'_> {
        match self.decide(r, draw).outcome {
            Outcome::Forward(f) => f,
            other => panic!("expected a forward for {r:?}, got {other:?}"),
        }
    }

    fn local(&self, r: &Req, draw: u64) -> LocalResponse<'_> {
        match self.decide(r, draw).outcome {
            Outcome::Respond(l) => l,
            other => panic!("expected a local response for {r:?}, got {other:?}"),
        }
    }

    /// The `location` of the redirect answering `GET url`, with its status.
    fn redirect(&self, url: &str) -> (u16, String) {
        let l = self.local(&req("GET", url), 0);
        assert_eq!(l.reason, LocalReason::Redirect);
        (l.status, header(&l, "location").expect("location header"))
    }
}

/// Header edits as text: `set name: value`, `add name: value`, `remove name`.
fn ops(list: &[HeaderOp<'_>]) -> Vec<String> {
    list.iter()
        .map(|op| match op {
            HeaderOp::Set(n, v) => format!("set {n}: {v}"),
            HeaderOp::Add(n, v) => format!("add {n}: {v}"),
            HeaderOp::Remove(n) => format!("remove {n}"),
        })
        .collect()
}

fn headers(l: &LocalResponse<'_>) -> Vec<(String, String)> {
    l.headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

fn header(l: &LocalResponse<'_>, name: &str) -> Option<String> {
    l.headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.to_string())
}

fn rule_with_match(m: Value) -> Gw {
    one_rule(json!({ "matches": [m], "backends": ["web"] }))
}

const WEB0: Option<(&str, u32)> = Some(("default/web", 0));

// ---------------------------------------------------------------------------------------------
// Path matching (docs/semantics.md §2)
// ---------------------------------------------------------------------------------------------

#[test]
fn exact_path_matches_only_that_path() {
    // HTTPPathMatch Exact: "`/abc` will only match requests to `/abc`, NOT `/abc/`, `/Abc`, or `/abcd`".
    let g = rule_with_match(json!({ "path": { "exact": "/abc" } }));
    assert_eq!(g.get("/abc"), WEB0);
    for miss in ["/abc/", "/Abc", "/abcd", "/ab", "/abc/def", "/"] {
        assert_eq!(g.get(miss), None, "{miss}");
    }
}

#[test]
fn exact_path_ignores_query_string() {
    // HTTPPathMatch: the path is matched with the query string excluded (docs/semantics.md §2).
    let g = rule_with_match(json!({ "path": { "exact": "/abc" } }));
    assert_eq!(g.get("/abc?x=1&y=2"), WEB0);
    assert_eq!(g.get("/abc?"), WEB0);
    assert_eq!(g.get("/abc/?x=1"), None);
}

#[test]
fn path_prefix_matches_whole_segments() {
    // PathPrefix: "`/abc`, `/abc/`, and `/abc/def` would all match the prefix `/abc`, but the path `/abcd` would not".
    let g = rule_with_match(json!({ "path": { "prefix": "/abc" } }));
    for hit in [
        "/abc",
        "/abc/",
        "/abc/def",
        "/abc/def/ghi",
        "/abc?x=1",
        "/abc/?x",
    ] {
        assert_eq!(g.get(hit), WEB0, "{hit}");
    }
    for miss in ["/abcd", "/ab", "/Abc", "/ABC/def", "/", "/x/abc"] {
        assert_eq!(g.get(miss), None, "{miss}");
    }
}

#[test]
fn path_prefix_root_matches_everything() {
    // PathPrefix `/` (the CRD default match) matches every path.
    let g = rule_with_match(json!({ "path": { "prefix": "/" } }));
    for hit in ["/", "/a", "/a/b/c", "/?q=1", "/Anything.html"] {
        assert_eq!(g.get(hit), WEB0, "{hit}");
    }
}

#[test]
fn path_prefix_trailing_slash_is_ignored() {
    // PathPrefix: "a trailing `/` is ignored": `/match/` matches `/match/any` and `/match` (docs/semantics.md §2).
    let g = rule_with_match(json!({ "path": { "prefix": "/match/" } }));
    for hit in ["/match", "/match/", "/match/any", "/match/any/more"] {
        assert_eq!(g.get(hit), WEB0, "{hit}");
    }
    for miss in ["/matchany", "/matc", "/"] {
        assert_eq!(g.get(miss), None, "{miss}");
    }
}

#[test]
fn multi_segment_prefix_is_element_wise() {
    // PathPrefix: "split by `/` ... element by element": `/a/b` matches `/a/b/c`, not `/a/bc` or `/a`.
    let g = rule_with_match(json!({ "path": { "prefix": "/a/b" } }));
    assert_eq!(g.get("/a/b"), WEB0);
    assert_eq!(g.get("/a/b/c"), WEB0);
    assert_eq!(g.get("/a/bc"), None);
    assert_eq!(g.get("/a"), None);
    assert_eq!(g.get("/a/"), None);
}

#[test]
fn regex_path_matches_the_whole_path() {
    // RegularExpression (implementation-specific, table/regex.rs): the whole path must match, query excluded.
    let g = rule_with_match(json!({ "path": { "regex": "/api/v[0-9]+" } }));
    assert_eq!(g.get("/api/v1"), WEB0);
    assert_eq!(g.get("/api/v12?x=1"), WEB0);
    for miss in ["/api/v1/users", "/x/api/v1", "/api/v", "/api/vX"] {
        assert_eq!(g.get(miss), None, "{miss}");
    }
}

// ---------------------------------------------------------------------------------------------
// Header, query, method matching (docs/semantics.md §1)
// ---------------------------------------------------------------------------------------------

fn header_rule(name: &str, value: Value) -> Gw {
    rule_with_match(json!({
        "path": { "prefix": "/" },
        "headers": [{ "name": name, "value": value }],
    }))
}

#[test]
fn header_names_are_case_insensitive() {
    // HTTPHeaderMatch.name: "Name matching MUST be case-insensitive."
    let g = header_rule("X-Env", json!({ "exact": "canary" }));
    for name in ["x-env", "X-Env", "X-ENV"] {
        assert_eq!(
            g.route_for("GET", "http://h/", &[(name, "canary")]),
            WEB0,
            "{name}"
        );
    }
}

#[test]
fn header_values_are_case_sensitive() {
    // HTTPHeaderMatch Exact: the value is compared exactly (case-sensitive).
    let g = header_rule("x-env", json!({ "exact": "canary" }));
    assert_eq!(
        g.route_for("GET", "http://h/", &[("x-env", "Canary")]),
        None
    );
    assert_eq!(
        g.route_for("GET", "http://h/", &[("x-env", "canary ")]),
        None
    );
    assert_eq!(
        g.route_for("GET", "http://h/", &[("x-env", "canary")]),
        WEB0
    );
}

#[test]
fn absent_header_never_matches() {
    // HTTPHeaderMatch: a header match requires the header; even `.*` or an empty Exact value needs it present.
    let g = header_rule("x-env", json!({ "regex": ".*" }));
    assert_eq!(g.route_for("GET", "http://h/", &[]), None);
    assert_eq!(g.route_for("GET", "http://h/", &[("x-other", "a")]), None);
    assert_eq!(g.route_for("GET", "http://h/", &[("x-env", "")]), WEB0);
    let g = header_rule("x-env", json!({ "exact": "" }));
    assert_eq!(g.route_for("GET", "http://h/", &[]), None);
    assert_eq!(g.route_for("GET", "http://h/", &[("x-env", "")]), WEB0);
}

#[test]
fn header_regex_matches_the_whole_value() {
    // HTTPHeaderMatch RegularExpression (implementation-specific): whole-value, like Envoy's safe_regex.
    let g = header_rule("x-version", json!({ "regex": "v[0-9]+" }));
    assert_eq!(
        g.route_for("GET", "http://h/", &[("x-version", "v12")]),
        WEB0
    );
    assert_eq!(
        g.route_for("GET", "http://h/", &[("x-version", "xv1")]),
        None
    );
    assert_eq!(
        g.route_for("GET", "http://h/", &[("x-version", "v1-beta")]),
        None
    );
}

#[test]
fn a_repeated_header_matches_when_any_of_its_values_does() {
    // HTTPHeaderMatch: repeated headers are implementation-specific; ours match as Envoy's own
    // route matchers do, each value on its own (request.rs `header_values`; host-tests
    // differential.rs checks it against Envoy).
    let both = [("x-env", "a"), ("X-Env", "b")];
    let g = header_rule("x-env", json!({ "exact": "a" }));
    assert_eq!(g.route_for("GET", "http://h/", &both), WEB0);
    assert_eq!(g.route_for("GET", "http://h/", &[("x-env", "a")]), WEB0);
    let g = header_rule("x-env", json!({ "exact": "b" }));
    assert_eq!(
        g.route_for("GET", "http://h/", &both),
        WEB0,
        "the second value"
    );
    // Values are not joined, and one line with a comma is one value.
    let g = header_rule("x-env", json!({ "exact": "a,b" }));
    assert_eq!(g.route_for("GET", "http://h/", &both), None);
    assert_eq!(g.route_for("GET", "http://h/", &[("x-env", "a,b")]), WEB0);
    let g = header_rule("x-env", json!({ "regex": "b+" }));
    assert_eq!(g.route_for("GET", "http://h/", &both), WEB0);
    assert_eq!(g.route_for("GET", "http://h/", &[("x-env", "a")]), None);
}

#[test]
fn all_conditions_of_a_match_are_anded() {
    // HTTPRouteMatch: "all conditions of a match must hold" (path, method, every header, every query param).
    let g = rule_with_match(json!({
        "path": { "prefix": "/api" },
        "method": "POST",
        "headers": [
            { "name": "x-a", "value": { "exact": "1" } },
            { "name": "x-b", "value": { "exact": "2" } },
        ],
        "queryParams": [{ "name": "q", "value": { "exact": "v" } }],
    }));
    let ok = [("x-a", "1"), ("x-b", "2")];
    assert_eq!(g.route_for("POST", "http://h/api?q=v", &ok), WEB0);
    assert_eq!(g.route_for("GET", "http://h/api?q=v", &ok), None);
    assert_eq!(g.route_for("POST", "http://h/other?q=v", &ok), None);
    assert_eq!(
        g.route_for("POST", "http://h/api?q=v", &[("x-a", "1")]),
        None
    );
    assert_eq!(g.route_for("POST", "http://h/api", &ok), None);
}

#[test]
fn a_rule_matches_if_any_of_its_matches_holds() {
    // HTTPRouteRule.matches: "a request matches the rule if it matches any of the matches" (ORed).
    let g = one_rule(json!({
        "matches": [
            { "path": { "exact": "/a" } },
            { "path": { "prefix": "/b" }, "method": "PUT" },
        ],
        "backends": ["web"],
    }));
    assert_eq!(g.get("/a"), WEB0);
    assert_eq!(g.route_for("PUT", "http://h/b/c", &[]), WEB0);
    assert_eq!(g.get("/b/c"), None);
}

fn query_rule(name: &str, value: Value) -> Gw {
    rule_with_match(json!({
        "path": { "prefix": "/" },
        "queryParams": [{ "name": name, "value": value }],
    }))
}

#[test]
fn query_param_names_are_case_sensitive() {
    // HTTPQueryParamMatch.name: "an exact string match ... case-sensitive".
    let g = query_rule("animal", json!({ "exact": "whale" }));
    assert_eq!(g.get("/?animal=whale"), WEB0);
    assert_eq!(g.get("/?Animal=whale"), None);
    assert_eq!(g.get("/?ANIMAL=whale"), None);
}

#[test]
fn query_param_first_value_wins() {
    // HTTPQueryParamMatch: for repeated params, implementations "SHOULD match against the first value".
    let g = query_rule("animal", json!({ "exact": "whale" }));
    assert_eq!(g.get("/?animal=whale&animal=dolphin"), WEB0);
    assert_eq!(g.get("/?animal=dolphin&animal=whale"), None);
    assert_eq!(g.get("/?x=1&animal=whale"), WEB0);
}

#[test]
fn query_param_value_is_exact() {
    // HTTPQueryParamMatch Exact: `whaledolphin` does not match `whale` (docs/semantics.md §1).
    let g = query_rule("animal", json!({ "exact": "whale" }));
    assert_eq!(g.get("/?animal=whaledolphin"), None);
    assert_eq!(g.get("/?animal=Whale"), None);
    assert_eq!(g.get("/?animal="), None);
    assert_eq!(g.get("/"), None);
    // Values are percent-decoded before comparison (request.rs).
    let g = query_rule("q", json!({ "exact": "a b" }));
    assert_eq!(g.get("/?q=a%20b"), WEB0);
}

#[test]
fn query_param_regex() {
    // HTTPQueryParamMatch RegularExpression (implementation-specific): whole value.
    let g = query_rule("animal", json!({ "regex": "wh[a-z]+" }));
    assert_eq!(g.get("/?animal=whale"), WEB0);
    assert_eq!(g.get("/?animal=whale1"), None);
    assert_eq!(g.get("/?animal=orca"), None);
}

#[test]
fn method_match_is_exact() {
    // HTTPRouteMatch.method: exact; a GET match does not match HEAD (docs/semantics.md §1).
    let g = rule_with_match(json!({ "path": { "prefix": "/" }, "method": "GET" }));
    assert_eq!(g.route_for("GET", "http://h/", &[]), WEB0);
    for other in ["HEAD", "POST", "OPTIONS", "get"] {
        assert_eq!(g.route_for(other, "http://h/", &[]), None, "{other}");
    }
    let g = rule_with_match(json!({ "path": { "prefix": "/" }, "method": "HEAD" }));
    assert_eq!(g.route_for("HEAD", "http://h/", &[]), WEB0);
    assert_eq!(g.route_for("GET", "http://h/", &[]), None);
}

// ---------------------------------------------------------------------------------------------
// Precedence (docs/semantics.md §1): config-pusher encodes it as `rank`, the router must honour it
// ---------------------------------------------------------------------------------------------

fn ranked(rank: u32, m: Value) -> Value {
    let mut m = m;
    m["rank"] = json!(rank);
    m
}

#[test]
fn precedence_follows_ranks_across_rules_and_routes() {
    // HTTPRouteRule.matches: Exact path > longest PathPrefix > method > most headers > most query params.
    let prefix = |p: &str| json!({ "path": { "prefix": p } });
    let g = http(json!([
        { "name": "catch-all", "rules": [
            { "matches": [ranked(7, prefix("/"))], "backends": ["c"] },
        ]},
        { "name": "api", "rules": [
            { "matches": [ranked(6, prefix("/api"))], "backends": ["c"] },
            { "matches": [ranked(5, json!({ "path": { "prefix": "/api" },
                "queryParams": [{ "name": "debug", "value": { "exact": "1" } }] }))], "backends": ["c"] },
            { "matches": [ranked(4, json!({ "path": { "prefix": "/api" },
                "headers": [{ "name": "x-a", "value": { "exact": "1" } }] }))], "backends": ["c"] },
            { "matches": [ranked(3, json!({ "path": { "prefix": "/api" },
                "headers": [{ "name": "x-a", "value": { "exact": "1" } },
                            { "name": "x-b", "value": { "exact": "1" } }] }))], "backends": ["c"] },
            { "matches": [ranked(2, json!({ "path": { "prefix": "/api" }, "method": "GET" }))], "backends": ["c"] },
        ]},
        { "name": "v1", "rules": [
            { "matches": [ranked(1, prefix("/api/v1"))], "backends": ["c"] },
        ]},
        { "name": "exact", "rules": [
            { "matches": [ranked(0, json!({ "path": { "exact": "/api/v1" } }))], "backends": ["c"] },
        ]},
    ]));
    let ab = [("x-a", "1"), ("x-b", "1")];
    assert_eq!(
        g.route_for("GET", "http://h/api/v1", &ab),
        Some(("default/exact", 0))
    );
    assert_eq!(
        g.route_for("GET", "http://h/api/v1/x", &ab),
        Some(("default/v1", 0))
    );
    assert_eq!(
        g.route_for("GET", "http://h/api/x?debug=1", &ab),
        Some(("default/api", 4))
    );
    assert_eq!(
        g.route_for("POST", "http://h/api/x?debug=1", &ab),
        Some(("default/api", 3))
    );
    assert_eq!(
        g.route_for("POST", "http://h/api/x?debug=1", &[("x-a", "1")]),
        Some(("default/api", 2))
    );
    assert_eq!(
        g.route_for("POST", "http://h/api/x?debug=1", &[]),
        Some(("default/api", 1))
    );
    assert_eq!(
        g.route_for("POST", "http://h/api/x", &[]),
        Some(("default/api", 0))
    );
    assert_eq!(
        g.route_for("POST", "http://h/apix", &ab),
        Some(("default/catch-all", 0))
    );
    assert_eq!(
        g.route_for("POST", "http://h/", &[]),
        Some(("default/catch-all", 0))
    );
}

#[test]
fn falls_back_to_lower_ranked_candidate_when_conditions_fail() {
    // Precedence ranks *matching* rules: a higher-ranked candidate whose method/header fails is skipped.
    let g = http(json!([
        { "name": "users", "rules": [{ "matches": [ranked(0, json!({
            "path": { "exact": "/api/v1/users" }, "method": "PUT" }))], "backends": ["c"] }] },
        { "name": "canary", "rules": [{ "matches": [ranked(1, json!({
            "path": { "prefix": "/api/v1" },
            "headers": [{ "name": "x-canary", "value": { "exact": "yes" } }] }))], "backends": ["c"] }] },
        { "name": "v1-post", "rules": [{ "matches": [ranked(2, json!({
            "path": { "prefix": "/api/v1" }, "method": "POST" }))], "backends": ["c"] }] },
        { "name": "api", "rules": [{ "matches": [ranked(3, json!({
            "path": { "prefix": "/api" } }))], "backends": ["c"] }] },
    ]));
    let canary = [("x-canary", "yes")];
    assert_eq!(
        g.route_for("PUT", "http://h/api/v1/users", &canary),
        Some(("default/users", 0))
    );
    assert_eq!(
        g.route_for("GET", "http://h/api/v1/users", &canary),
        Some(("default/canary", 0))
    );
    assert_eq!(
        g.route_for("POST", "http://h/api/v1/users", &[]),
        Some(("default/v1-post", 0))
    );
    assert_eq!(
        g.route_for("GET", "http://h/api/v1/users", &[]),
        Some(("default/api", 0))
    );
    assert_eq!(
        g.route_for("GET", "http://h/api/v1/users", &[("x-canary", "no")]),
        Some(("default/api", 0))
    );
    assert_eq!(g.route_for("GET", "http://h/other", &canary), None);
}

#[test]
fn more_header_matches_beat_an_earlier_rule() {
    // Precedence is per match across all rules: "2 header matches beat an earlier rule's 1" (docs/semantics.md §1).
    let g = http(json!([{ "name": "web", "rules": [
        { "matches": [ranked(1, json!({ "path": { "prefix": "/" },
            "headers": [{ "name": "x-a", "value": { "exact": "1" } }] }))], "backends": ["one"] },
        { "matches": [ranked(0, json!({ "path": { "prefix": "/" },
            "headers": [{ "name": "x-a", "value": { "exact": "1" } },
                        { "name": "x-b", "value": { "exact": "1" } }] }))], "backends": ["two"] },
    ]}]));
    let r = req("GET", "http://h/x")
        .header("x-a", "1")
        .header("x-b", "1");
    assert_eq!(g.pick(&r), Some(("default/web", 1)));
    assert_eq!(g.answer(&r, 0), "two");
    assert_eq!(
        g.route_for("GET", "http://h/x", &[("x-a", "1")]),
        Some(("default/web", 0))
    );
}

#[test]
fn ties_follow_rank_not_table_order() {
    // Ties across routes: "The oldest Route based on creation timestamp", then "{namespace}/{name}" — as ranked.
    let g = http(json!([
        { "name": "a-newer", "rules": [{ "matches": [ranked(1, json!({ "path": { "prefix": "/" } }))], "backends": ["a"] }] },
        { "name": "b-older", "rules": [{ "matches": [ranked(0, json!({ "path": { "prefix": "/" } }))], "backends": ["b"] }] },
    ]));
    assert_eq!(g.get("/x"), Some(("default/b-older", 0)));
    // Within a route, "the FIRST matching rule (in list order)" gets the lower rank.
    let g = http(json!([{ "name": "web", "rules": [
        { "matches": [{ "path": { "prefix": "/" } }], "backends": ["first"] },
        { "matches": [{ "path": { "prefix": "/" } }], "backends": ["second"] },
    ]}]));
    assert_eq!(g.get("/x"), WEB0);
}

#[test]
fn regex_paths_take_their_rank_among_exact_and_prefix_paths() {
    // Regex precedence is implementation-specific: the router follows the rank config-pusher gave it.
    let g = http(json!([{ "name": "web", "rules": [
        { "matches": [ranked(0, json!({ "path": { "exact": "/v1/x" } }))], "backends": ["c"] },
        { "matches": [ranked(1, json!({ "path": { "regex": "/v[0-9]+/.*" } }))], "backends": ["c"] },
        { "matches": [ranked(2, json!({ "path": { "prefix": "/v1" } }))], "backends": ["c"] },
        { "matches": [ranked(3, json!({ "path": { "regex": "/.*" } }))], "backends": ["c"] },
    ]}]));
    assert_eq!(g.get("/v1/x"), Some(("default/web", 0)));
    assert_eq!(g.get("/v1/y"), Some(("default/web", 1)));
    assert_eq!(g.get("/v1"), Some(("default/web", 2)));
    assert_eq!(g.get("/other"), Some(("default/web", 3)));
}

#[test]
fn unmatched_request_is_404() {
    // HTTPRoute: "When no rules matching a request have been successfully attached ... 404 status code MUST be returned."
    let g = rule_with_match(json!({ "path": { "prefix": "/a" } }));
    let r = req("GET", "http://h/b");
    let d = g.decide(&r, 0);
    assert_eq!(d.selection, Selection::NoMatch(ParentRef::Listener(0)));
    match d.outcome {
        Outcome::Respond(l) => {
            assert_eq!((l.status, l.reason), (404, LocalReason::NoRoute));
            assert!(l.headers.is_empty());
        }
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Hostnames (docs/semantics.md §3)
// ---------------------------------------------------------------------------------------------

/// One listener (:80, no hostname); route i attached with `hostnames[i]`, each route one rule.
fn hosts(routes: &[(&str, &[&str], Value)]) -> Gw {
    let attachments: Vec<Value> = routes
        .iter()
        .enumerate()
        .map(|(i, (_, h, _))| json!({ "route": i, "hostnames": h }))
        .collect();
    let routes: Vec<Value> = routes
        .iter()
        .map(|(name, _, m)| json!({ "name": name, "rules": [{ "matches": [m], "backends": [name] }] }))
        .collect();
    gw(json!({
        "listeners": [{ "name": "l", "port": 80, "attachments": attachments }],
        "routes": routes,
    }))
}

#[test]
fn exact_hostname_beats_wildcard_beats_none_regardless_of_rank() {
    // HTTPRouteSpec.hostnames precedence: "Characters in a matching non-wildcard hostname", then "in a matching hostname".
    let g = hosts(&[
        (
            "any",
            &[],
            ranked(0, json!({ "path": { "exact": "/login" } })),
        ),
        (
            "wild",
            &["*.example.com"],
            ranked(1, json!({ "path": { "prefix": "/" } })),
        ),
        (
            "exact",
            &["shop.example.com"],
            ranked(2, json!({ "path": { "prefix": "/" } })),
        ),
    ]);
    assert_eq!(
        g.route_for("GET", "http://shop.example.com/login", &[]),
        Some(("default/exact", 0))
    );
    assert_eq!(
        g.route_for("GET", "http://blog.example.com/login", &[]),
        Some(("default/wild", 0))
    );
    assert_eq!(
        g.route_for("GET", "http://other.org/login", &[]),
        Some(("default/any", 0))
    );
    assert_eq!(g.route_for("GET", "http://other.org/x", &[]), None);
}

#[test]
fn longer_wildcard_beats_shorter() {
    // HTTPRouteSpec.hostnames: more "characters in a matching hostname" wins: `*.shop.example.com` > `*.example.com`.
    let g = hosts(&[
        (
            "short",
            &["*.example.com"],
            ranked(0, json!({ "path": { "prefix": "/" } })),
        ),
        (
            "long",
            &["*.shop.example.com"],
            ranked(1, json!({ "path": { "prefix": "/" } })),
        ),
    ]);
    assert_eq!(
        g.route_for("GET", "http://a.shop.example.com/", &[]),
        Some(("default/long", 0))
    );
    assert_eq!(
        g.route_for("GET", "http://x.a.shop.example.com/", &[]),
        Some(("default/long", 0))
    );
    assert_eq!(
        g.route_for("GET", "http://shop.example.com/", &[]),
        Some(("default/short", 0))
    );
    assert_eq!(
        g.route_for("GET", "http://a.example.com/", &[]),
        Some(("default/short", 0))
    );
}

#[test]
fn less_specific_hostname_serves_what_the_more_specific_one_does_not_match() {
    // Hostname precedence orders matching rules; a more specific hostname with no matching rule does not shadow.
    let g = hosts(&[
        (
            "wild",
            &["*.example.com"],
            json!({ "path": { "prefix": "/" } }),
        ),
        (
            "exact",
            &["shop.example.com"],
            json!({ "path": { "prefix": "/cart" } }),
        ),
    ]);
    assert_eq!(
        g.route_for("GET", "http://shop.example.com/cart", &[]),
        Some(("default/exact", 0))
    );
    assert_eq!(
        g.route_for("GET", "http://shop.example.com/x", &[]),
        Some(("default/wild", 0))
    );
}

#[test]
fn host_port_is_ignored_and_host_is_case_insensitive() {
    // HTTPRouteSpec.hostnames: "MUST ignore any port value specified in the HTTP Host header while performing a match".
    let g = hosts(&[(
        "shop",
        &["shop.example.com"],
        json!({ "path": { "prefix": "/" } }),
    )]);
    let shop = Some(("default/shop", 0));
    assert_eq!(
        g.pick(&req("GET", "http://shop.example.com:8080/").port(80)),
        shop
    );
    assert_eq!(g.pick(&req("GET", "http://shop.example.com:80/")), shop);
    assert_eq!(g.pick(&req("GET", "http://SHOP.Example.COM/")), shop);
    assert_eq!(
        g.pick(&req("GET", "http://Shop.Example.Com:8443/").port(80)),
        shop
    );
    assert_eq!(g.pick(&req("GET", "http://shop.example.org/")), None);
}

#[test]
fn wildcard_hostname_needs_an_extra_label() {
    // HTTPRouteSpec.hostnames: `*.example.com` matches `test.example.com` and `foo.test.example.com`, not `example.com`.
    let g = hosts(&[(
        "wild",
        &["*.example.com"],
        json!({ "path": { "prefix": "/" } }),
    )]);
    let wild = Some(("default/wild", 0));
    assert_eq!(g.route_for("GET", "http://test.example.com/", &[]), wild);
    assert_eq!(
        g.route_for("GET", "http://foo.test.example.com/", &[]),
        wild
    );
    assert_eq!(g.route_for("GET", "http://example.com/", &[]), None);
    assert_eq!(g.route_for("GET", "http://testexample.com/", &[]), None);
    assert_eq!(
        g.route_for("GET", "http://example.com.evil.org/", &[]),
        None
    );
}

#[test]
fn route_hostnames_restrict_the_hosts_served() {
    // Listener without hostname: "exactly the route hostnames (other Hosts ⇒ 404)" (docs/semantics.md §3).
    let g = hosts(&[(
        "shop",
        &["shop.example.com", "www.example.com"],
        json!({ "path": { "prefix": "/" } }),
    )]);
    assert_eq!(
        g.route_for("GET", "http://www.example.com/", &[]),
        Some(("default/shop", 0))
    );
    let r = req("GET", "http://api.example.com/");
    assert_eq!(g.answer(&r, 0), "404");
    assert_eq!(
        g.decide(&r, 0).selection,
        Selection::NoMatch(ParentRef::Listener(0))
    );
}

// ---------------------------------------------------------------------------------------------
// Listeners (docs/semantics.md §3)
// ---------------------------------------------------------------------------------------------

/// Listeners `(name, port, hostname)`, listener i with route i (one PathPrefix rule), attached
/// with the listener's hostname as its effective hostname, as config-pusher intersects them.
fn listeners(ls: &[(&str, u16, Option<&str>, &str)]) -> Gw {
    let listeners: Vec<Value> = ls
        .iter()
        .enumerate()
        .map(|(i, (name, port, host, _))| {
            let hostnames: Vec<&str> = host.iter().copied().collect();
            let mut l = json!({ "name": name, "port": port,
                "attachments": [{ "route": i, "hostnames": hostnames }] });
            if let Some(h) = host {
                l["hostname"] = json!(h);
            }
            l
        })
        .collect();
    let routes: Vec<Value> = ls
        .iter()
        .map(|(name, _, _, prefix)| {
            json!({ "name": name, "rules": [{ "matches": [{ "path": { "prefix": prefix } }],
                "backends": [name] }] })
        })
        .collect();
    gw(json!({ "listeners": listeners, "routes": routes }))
}

#[test]
fn listener_is_selected_by_destination_port() {
    // Gateway listeners: a request is served by the listeners of the port it arrived on.
    let g = listeners(&[("http", 80, None, "/"), ("alt", 8080, None, "/")]);
    assert_eq!(g.pick(&req("GET", "http://h/")), Some(("default/http", 0)));
    assert_eq!(
        g.pick(&req("GET", "http://h:8080/")),
        Some(("default/alt", 0))
    );
    // The Host port does not choose the listener, the destination does.
    assert_eq!(
        g.pick(&req("GET", "http://h:8080/").port(80)),
        Some(("default/http", 0))
    );
}

#[test]
fn listener_with_most_specific_hostname_wins() {
    // Listener precedence: exact before wildcard before empty; more labels after `*` first (docs/semantics.md §3).
    let g = listeners(&[
        ("any", 80, None, "/"),
        ("wild", 80, Some("*.example.com"), "/"),
        ("deep", 80, Some("*.shop.example.com"), "/"),
        ("exact", 80, Some("shop.example.com"), "/"),
    ]);
    let on = |host: &str| {
        g.pick(&req("GET", &format!("http://{host}/")))
            .map(|(n, _)| n)
    };
    assert_eq!(on("shop.example.com"), Some("default/exact"));
    assert_eq!(on("a.shop.example.com"), Some("default/deep"));
    assert_eq!(on("blog.example.com"), Some("default/wild"));
    assert_eq!(on("example.com"), Some("default/any"));
    assert_eq!(on("other.org"), Some("default/any"));
    assert_eq!(on("SHOP.example.com:80"), Some("default/exact"));
}

#[test]
fn listener_isolation_never_falls_back_to_a_less_specific_listener() {
    // GatewayHTTPListenerIsolation: "requests SHOULD match at most one Listener" — no fallback, 404 (docs/semantics.md §3).
    let g = listeners(&[
        ("wild", 80, Some("*.example.com"), "/"),
        ("exact", 80, Some("shop.example.com"), "/cart"),
    ]);
    assert_eq!(
        g.route_for("GET", "http://shop.example.com/cart/1", &[]),
        Some(("default/exact", 0))
    );
    let r = req("GET", "http://shop.example.com/other");
    let d = g.decide(&r, 0);
    assert_eq!(d.selection, Selection::NoMatch(ParentRef::Listener(1)));
    assert_eq!(g.answer(&r, 0), "404");
    assert_eq!(
        g.route_for("GET", "http://blog.example.com/other", &[]),
        Some(("default/wild", 0))
    );
}

#[test]
fn no_listener_for_the_request_is_404() {
    // "No match ⇒ 404 ... Same when the Host matches no listener" (docs/semantics.md §1); gateway tables never pass through.
    let g = listeners(&[("exact", 80, Some("shop.example.com"), "/")]);
    for r in [
        req("GET", "http://other.example.com/"),
        req("GET", "http://shop.example.com:9999/"),
    ] {
        let d = g.decide(&r, 0);
        assert_eq!(d.selection, Selection::NoParent, "{r:?}");
        match d.outcome {
            Outcome::Respond(l) => assert_eq!((l.status, l.reason), (404, LocalReason::NoRoute)),
            other => panic!("{other:?}"),
        }
    }
}

/// Four HTTPS listeners on :443 as in upstream `HTTPRouteHTTPSListenerDetectMisdirectedRequests`:
/// no hostname (route `v1` for example.org), `second-example.org` (`v2`), `*.wildcard.org`
/// (`v3`) and `fourth-example.wildcard.org` (`v4`).
fn https_listeners() -> Gw {
    let routes =
        ["v1", "v2", "v3", "v4"].map(|b| json!({ "name": b, "rules": [{ "backends": [b] }] }));
    gw(json!({
        "listeners": [
            { "name": "https", "port": 443,
              "attachments": [{ "route": 0, "hostnames": ["example.org"] }] },
            { "name": "https-with-hostname", "port": 443, "hostname": "second-example.org",
              "attachments": [{ "route": 1, "hostnames": ["second-example.org"] }] },
            { "name": "https-with-wildcard-hostname", "port": 443, "hostname": "*.wildcard.org",
              "attachments": [{ "route": 2, "hostnames": ["*.wildcard.org"] }] },
            { "name": "https-with-hostname-matching-wildcard", "port": 443,
              "hostname": "fourth-example.wildcard.org",
              "attachments": [{ "route": 3, "hostnames": ["fourth-example.wildcard.org"] }] },
        ],
        "routes": routes,
    }))
}

#[test]
fn a_host_of_another_listener_than_the_connections_sni_is_misdirected() {
    // HTTPRouteHTTPSListenerDetectMisdirectedRequests: a request whose Host belongs to another
    // listener than the one its TLS connection (SNI) was made for gets 421 (RFC 9110 §15.5.20).
    let g = https_listeners();
    for (sni, host, want) in [
        ("example.org", "example.org", "v1"),
        ("example.org", "second-example.org", "421"),
        ("example.org", "unknown-example.org", "404"),
        ("second-example.org", "second-example.org", "v2"),
        ("second-example.org", "example.org", "421"),
        ("second-example.org", "unknown-example.org", "421"),
        (
            "third-example.wildcard.org",
            "third-example.wildcard.org",
            "v3",
        ),
        (
            "third-example.wildcard.org",
            "fifth-example.wildcard.org",
            "v3",
        ),
        (
            "third-example.wildcard.org",
            "fourth-example.wildcard.org",
            "421",
        ),
        ("third-example.wildcard.org", "second-example.org", "421"),
        ("third-example.wildcard.org", "unknown-example.org", "421"),
        (
            "fourth-example.wildcard.org",
            "fourth-example.wildcard.org",
            "v4",
        ),
        (
            "fourth-example.wildcard.org",
            "fifth-example.wildcard.org",
            "421",
        ),
        ("unknown-example.org", "example.org", "v1"),
        ("unknown-example.org", "unknown-example.org", "404"),
        // Names compare case-insensitively, the Host's port is ignored.
        ("Second-Example.ORG", "second-example.org:443", "v2"),
        // Plaintext (no SNI): no connection listener to compare with.
        ("", "second-example.org", "v2"),
    ] {
        let r = req(
            "GET",
            &format!("https://{host}/detect-misdirected-requests"),
        )
        .sni(sni);
        assert_eq!(g.answer(&r, 0), want, "SNI {sni:?}, Host {host}");
    }
    let r = req("GET", "https://example.org/").sni("second-example.org");
    let d = g.decide(&r, 0);
    assert_eq!(d.selection, Selection::Misdirected(ParentRef::Listener(1)));
    assert_eq!(g.local(&r, 0).reason, LocalReason::Misdirected);
}

#[test]
fn a_lone_listener_on_its_port_is_never_misdirected() {
    // Every name reaches the one listener (and its certificate): nothing to misdirect, and the
    // host need not even read the SNI (`Router::has_shared_ports`).
    let g = on_port(
        443,
        json!([{ "name": "web", "rules": [{ "backends": ["web"] }] }]),
    );
    assert!(!g.router.has_shared_ports());
    let r = req("GET", "https://a.example/").sni("b.example");
    assert_eq!(g.answer(&r, 0), "web");
    assert!(https_listeners().router.has_shared_ports());
}

// ---------------------------------------------------------------------------------------------
// Mesh parents (docs/semantics.md §4, §5)
// ---------------------------------------------------------------------------------------------

fn mesh() -> Gw {
    gw(json!({
        "role": "mesh/client",
        "services": [
            { "namespace": "shop", "name": "cart", "clusterIps": ["10.96.0.10", "fd00::10"],
              "ports": [{ "port": 80, "name": "http", "origin": "producer",
                          "attachments": [{ "route": 0 }] }] },
            { "namespace": "shop", "name": "pay", "clusterIps": ["10.96.0.11"],
              "ports": [{ "port": 8080, "origin": "consumer", "attachments": [{ "route": 1 }] }] },
        ],
        "routes": [
            { "namespace": "shop", "name": "cart", "rules": [
                { "matches": [{ "path": { "prefix": "/cart" } }], "backends": ["cart-v1"] },
            ]},
            { "namespace": "client", "name": "pay", "rules": [
                { "matches": [{ "path": { "prefix": "/" } }], "backends": ["pay-v2"] },
            ]},
        ],
    }))
}

#[test]
fn mesh_parent_is_the_destination_cluster_ip_and_port_not_the_host() {
    // GEP-1294: a request "sent to a Service frontend ... should utilize a Route bound to that Service"; Host is ignored.
    let g = mesh();
    let cart = Some(("shop/cart", 0));
    for host in [
        "cart.shop.svc.cluster.local",
        "pay.shop",
        "10.96.0.10",
        "anything",
    ] {
        let r = req("GET", &format!("http://{host}/cart/items")).to(at("10.96.0.10:80"));
        assert_eq!(g.pick(&r), cart, "{host}");
        assert_eq!(g.answer(&r, 0), "cart-v1");
    }
    // Every ClusterIP of the Service (dual stack).
    assert_eq!(
        g.pick(&req("GET", "http://cart/cart").to(at("[fd00::10]:80"))),
        cart
    );
    // Host naming the cart Service, destination the pay Service: pay's routes.
    let r = req("GET", "http://cart.shop/cart").to(at("10.96.0.11:8080"));
    assert_eq!(g.pick(&r), Some(("client/pay", 0)));
    assert_eq!(
        g.decide(&r, 0).selection,
        Selection::Matched(gammaroute_filter::router::Selected {
            parent: ParentRef::ServicePort {
                service: 1,
                port: 0
            },
            route: 1,
            rule: 0,
            matched: 0,
        })
    );
}

#[test]
fn mesh_unknown_destination_passes_through() {
    // docs/semantics.md §5: "No route on a Service ⇒ default Kubernetes routing" — the table does not touch it.
    let g = mesh();
    for dest in [
        "10.96.0.99:80",
        "10.96.0.10:8080",
        "10.244.1.7:80",
        "[fd00::11]:80",
    ] {
        let r = req("GET", "http://cart.shop/cart").to(at(dest));
        let d = g.decide(&r, 0);
        assert_eq!(d.selection, Selection::NoParent, "{dest}");
        assert_eq!(d.outcome, Outcome::Passthrough, "{dest}");
    }
}

#[test]
fn mesh_known_service_without_a_matching_rule_is_404() {
    // docs/semantics.md §5: "with routes, unmatched ⇒ 404".
    let g = mesh();
    let r = req("GET", "http://cart.shop/other").to(at("10.96.0.10:80"));
    assert_eq!(
        g.decide(&r, 0).selection,
        Selection::NoMatch(ParentRef::ServicePort {
            service: 0,
            port: 0
        })
    );
    assert_eq!(g.answer(&r, 0), "404");
}

// ---------------------------------------------------------------------------------------------
// Weighted backends (docs/semantics.md §6)
// ---------------------------------------------------------------------------------------------

#[test]
fn weighted_split_is_deterministic_by_draw() {
    // backendRefs[].weight: share = "weight/(sum of all weights)"; backend i gets draws in [Σw<i, Σw<i + w_i) mod total.
    let g = one_rule(json!({ "backends": [
        { "weight": 1, "cluster": "a" },
        { "weight": 3, "cluster": "b" },
        { "weight": 0, "cluster": "never" },
        { "weight": 2, "cluster": "c" },
    ]}));
    let r = req("GET", "http://h/");
    let seq: Vec<String> = (0..13).map(|d| g.answer(&r, d)).collect();
    assert_eq!(
        seq,
        ["a", "b", "b", "b", "c", "c", "a", "b", "b", "b", "c", "c", "a"]
    );
    // Forward.backend is the position in the rule's list (the weight-0 entry keeps its slot).
    assert_eq!(g.forward(&r, 4).backend, 3);
    assert_eq!(g.forward(&r, 1).backend, 1);
    // Large draws wrap modulo the total: u64::MAX % 6 == 3.
    assert_eq!(g.answer(&r, u64::MAX), "b");
}

#[test]
fn weights_give_exact_proportions_and_zero_is_never_picked() {
    // backendRefs[].weight: "If weight is set to 0, no traffic should be forwarded for this entry."
    let g = one_rule(json!({ "backends": [
        { "weight": 0, "cluster": "zero" },
        { "weight": 10, "cluster": "ten" },
        { "weight": 30, "cluster": "thirty" },
        { "weight": 0, "cluster": "zero2" },
    ]}));
    let r = req("GET", "http://h/");
    let (mut ten, mut thirty) = (0, 0);
    for d in 0..4000 {
        match g.answer(&r, d).as_str() {
            "ten" => ten += 1,
            "thirty" => thirty += 1,
            other => panic!("draw {d} picked {other}"),
        }
    }
    assert_eq!((ten, thirty), (1000, 3000));
}

#[test]
fn single_backend_with_positive_weight_gets_everything() {
    // backendRefs[].weight: "If only one backend is specified and it has a weight greater than 0, 100% ... forwarded".
    let g = one_rule(json!({ "backends": [{ "weight": 7, "cluster": "only" }] }));
    for d in [0, 1, 6, 7, 1_000_003, u64::MAX] {
        assert_eq!(g.answer(&req("GET", "http://h/"), d), "only");
    }
}

#[test]
fn no_backends_or_all_weights_zero_is_500() {
    // docs/semantics.md §6: empty backendRefs, or a weight sum of 0 ⇒ 500, no fall-through to another rule.
    for backends in [
        json!([]),
        json!([{ "weight": 0, "cluster": "a" }, { "weight": 0, "cluster": "b" }]),
    ] {
        let g = http(json!([{ "name": "web", "rules": [
            { "matches": [{ "path": { "prefix": "/api" } }], "backends": backends },
            { "matches": [{ "path": { "prefix": "/" } }], "backends": ["fallback"] },
        ]}]));
        let r = req("GET", "http://h/api/x");
        for d in 0..5 {
            let l = g.local(&r, d);
            assert_eq!(
                (l.status, l.reason),
                (500, LocalReason::NoBackends),
                "{backends}"
            );
        }
        assert_eq!(g.pick(&r), WEB0);
    }
    // A rule whose only filter edits headers still has nothing to forward to.
    let g = one_rule(
        json!({ "filters": [{ "requestHeaderModifier": { "set": [{ "name": "a", "value": "1" }] } }] }),
    );
    assert_eq!(g.answer(&req("GET", "http://h/"), 0), "500");
}

#[test]
fn unavailable_backend_keeps_its_weight_and_answers_its_status() {
    // docs/semantics.md §6: invalid backend ⇒ "the proportion ... routed to an invalid backend MUST receive a 500"; no endpoints ⇒ 503.
    let g = one_rule(json!({ "backends": [
        { "weight": 1, "cluster": "ok" },
        { "weight": 1, "unavailable": { "status": 503, "reason": "no ready endpoints" } },
        { "weight": 2, "unavailable": { "status": 500, "reason": "BackendNotFound" } },
    ]}));
    let r = req("GET", "http://h/");
    let seq: Vec<String> = (0..8).map(|d| g.answer(&r, d)).collect();
    assert_eq!(seq, ["ok", "503", "500", "500", "ok", "503", "500", "500"]);
    assert_eq!(g.local(&r, 1).reason, LocalReason::BackendUnavailable);
    assert_eq!(g.local(&r, 2).reason, LocalReason::BackendUnavailable);
    // All invalid: every request gets the invalid status.
    let g = one_rule(json!({ "backends": [
        { "weight": 1, "unavailable": { "status": 500, "reason": "RefNotPermitted" } },
    ]}));
    for d in 0..3 {
        assert_eq!(g.answer(&r, d), "500");
    }
}

#[test]
fn local_errors_keep_the_rules_response_headers() {
    // Envoy applies a route's response headers to its local replies too; a CORS-enabled route
    // must let the browser see the real 5xx, not a CORS failure.
    let g = one_rule(json!({
        "filters": [
            { "responseHeaderModifier": { "set": [{ "name": "x-team", "value": "shop" }] } },
            { "cors": { "allowOrigins": ["https://app.example"], "maxAgeSeconds": 5 } },
        ],
        "backends": [{ "weight": 1, "unavailable": { "status": 503, "reason": "no endpoints" } }],
    }));
    let r = req("GET", "http://h/").headers(&[("origin", "https://app.example")]);
    let l = g.local(&r, 0);
    assert_eq!(l.status, 503);
    assert_eq!(header(&l, "x-team").as_deref(), Some("shop"));
    assert_eq!(
        header(&l, "access-control-allow-origin").as_deref(),
        Some("https://app.example")
    );
    let g = one_rule(json!({
        "filters": [{ "responseHeaderModifier": { "add": [{ "name": "x-team", "value": "shop" }] } }],
        "backends": [],
    }));
    let l = g.local(&req("GET", "http://h/"), 0);
    assert_eq!(
        (l.status, header(&l, "x-team").as_deref()),
        (500, Some("shop"))
    );
}

// ---------------------------------------------------------------------------------------------
// Header modifiers (docs/semantics.md §9)
// ---------------------------------------------------------------------------------------------

#[test]
fn request_header_modifier_ops_are_set_then_add_then_remove() {
    // HTTPHeaderFilter: `set` replaces, `add` appends, `remove` deletes; applied set, add, remove (table/mod.rs).
    let g = one_rule(json!({
        "filters": [{ "requestHeaderModifier": {
            "remove": ["x-drop"],
            "add": [{ "name": "x-add", "value": "bar,baz" }],
            "set": [{ "name": "x-set", "value": "1" }, { "name": "X-Set-2", "value": "2" }],
        }}],
        "backends": ["web"],
    }));
    let f = g.forward(&req("GET", "http://h/"), 0);
    assert_eq!(
        ops(&f.request_headers),
        [
            "set x-set: 1",
            "set X-Set-2: 2",
            "add x-add: bar,baz",
            "remove x-drop"
        ]
    );
    assert!(f.response_headers.is_empty());
}

#[test]
fn header_ops_have_the_spec_semantics() {
    // HTTPHeaderFilter: set "overwrites", add `bar,baz` to `my-header: foo` ⇒ `foo,bar,baz`, remove drops all values.
    let g = one_rule(json!({
        "filters": [{ "responseHeaderModifier": {
            "set": [{ "name": "X-Set", "value": "new" }],
            "add": [{ "name": "my-header", "value": "bar,baz" }],
            "remove": ["X-Drop"],
        }}],
        "backends": ["web"],
    }));
    let f = g.forward(&req("GET", "http://h/"), 0);
    let mut upstream: Vec<(std::borrow::Cow<str>, std::borrow::Cow<str>)> = vec![
        ("x-set".into(), "old1".into()),
        ("x-set".into(), "old2".into()),
        ("my-header".into(), "foo".into()),
        ("x-drop".into(), "a".into()),
        ("x-drop".into(), "b".into()),
    ];
    apply_to_list(&mut upstream, &f.response_headers);
    let set: Vec<&str> = upstream
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("x-set"))
        .map(|(_, v)| v.as_ref())
        .collect();
    assert_eq!(set, ["new"]);
    let mine: Vec<&str> = upstream
        .iter()
        .filter(|(n, _)| n == "my-header")
        .map(|(_, v)| v.as_ref())
        .collect();
    assert_eq!(mine.join(","), "foo,bar,baz");
    assert!(!upstream
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("x-drop")));
}

#[test]
fn response_header_modifier_goes_to_the_response() {
    // HTTPRouteFilter ResponseHeaderModifier: applied to the response from the backend.
    let g = one_rule(json!({
        "filters": [
            { "requestHeaderModifier": { "add": [{ "name": "x-req", "value": "1" }] } },
            { "responseHeaderModifier": { "set": [{ "name": "x-resp", "value": "2" }],
                                          "remove": ["server"] } },
        ],
        "backends": ["web"],
    }));
    let f = g.forward(&req("GET", "http://h/"), 0);
    assert_eq!(ops(&f.request_headers), ["add x-req: 1"]);
    assert_eq!(ops(&f.response_headers), ["set x-resp: 2", "remove server"]);
}

#[test]
fn backend_filters_apply_only_to_the_picked_backend_after_rule_filters() {
    // backendRefs[].filters: applied "if and only if the request is being forwarded to the backend defined here".
    let g = one_rule(json!({
        "filters": [
            { "requestHeaderModifier": { "set": [{ "name": "x-rule", "value": "r" }] } },
            { "responseHeaderModifier": { "set": [{ "name": "x-rule-resp", "value": "r" }] } },
        ],
        "backends": [
            { "cluster": "a", "filters": [
                { "requestHeaderModifier": { "set": [{ "name": "x-rule", "value": "a" }] } },
                { "responseHeaderModifier": { "add": [{ "name": "x-backend", "value": "a" }] } },
            ]},
            { "cluster": "b", "filters": [
                { "requestHeaderModifier": { "add": [{ "name": "x-backend", "value": "b" }] } },
                { "urlRewrite": { "hostname": "b.internal" } },
                { "requestMirror": { "cluster": "b-shadow", "numerator": 1, "denominator": 1 } },
            ]},
            "c",
        ],
    }));
    let r = req("GET", "http://h/");
    let a = g.forward(&r, 0);
    assert_eq!(a.cluster, "a");
    assert_eq!(ops(&a.request_headers), ["set x-rule: r", "set x-rule: a"]);
    assert_eq!(
        ops(&a.response_headers),
        ["set x-rule-resp: r", "add x-backend: a"]
    );
    assert_eq!((a.authority.as_deref(), a.mirrors.len()), (None, 0));
    let b = g.forward(&r, 1);
    assert_eq!(b.cluster, "b");
    assert_eq!(
        ops(&b.request_headers),
        ["set x-rule: r", "add x-backend: b"]
    );
    assert_eq!(ops(&b.response_headers), ["set x-rule-resp: r"]);
    assert_eq!(b.authority.as_deref(), Some("b.internal"));
    assert_eq!(b.mirrors, ["b-shadow"]);
    let c = g.forward(&r, 2);
    assert_eq!(c.cluster, "c");
    assert_eq!(ops(&c.request_headers), ["set x-rule: r"]);
    assert_eq!((c.authority.as_deref(), c.mirrors.len()), (None, 0));
}

// ---------------------------------------------------------------------------------------------
// URLRewrite (docs/semantics.md §8)
// ---------------------------------------------------------------------------------------------

#[test]
fn url_rewrite_hostname_replaces_the_authority_only() {
    // HTTPURLRewriteFilter.hostname: "the value to be used to replace the Host header value during forwarding".
    let g = one_rule(json!({
        "filters": [{ "urlRewrite": { "hostname": "internal.example" } }],
        "backends": ["web"],
    }));
    let f = g.forward(&req("GET", "http://shop.example:8080/a?x=1").port(80), 0);
    assert_eq!(f.authority.as_deref(), Some("internal.example"));
    assert_eq!(f.path, None);
    // Without a rewrite the Host is forwarded unmodified (HTTPRouteSpec.hostnames: "MUST forward this header unmodified").
    let g = one_rule(json!({ "backends": ["web"] }));
    let f = g.forward(&req("GET", "http://shop.example:8080/a").port(80), 0);
    assert_eq!((f.authority, f.path), (None, None));
}

#[test]
fn url_rewrite_full_path_keeps_the_query() {
    // HTTPPathModifier ReplaceFullPath replaces the path; the query string is kept (docs/semantics.md §8).
    let g = one_rule(json!({
        "matches": [{ "path": { "prefix": "/old" } }],
        "filters": [{ "urlRewrite": { "path": { "replaceFullPath": "/new" } } }],
        "backends": ["web"],
    }));
    let rewrite = |url: &str| g.forward(&req("GET", url), 0).path;
    assert_eq!(
        rewrite("http://h/old/a/b?x=1&y=2"),
        Some("/new?x=1&y=2".to_string())
    );
    assert_eq!(rewrite("http://h/old"), Some("/new".to_string()));
}

#[test]
fn url_rewrite_replace_prefix_match_table() {
    // HTTPPathModifier.replacePrefixMatch: every row of the spec's table (docs/semantics.md §8).
    let rows = [
        ("/foo/bar", "/foo", "/xyz", "/xyz/bar"),
        ("/foo/bar", "/foo", "/xyz/", "/xyz/bar"),
        ("/foo/bar", "/foo/", "/xyz", "/xyz/bar"),
        ("/foo/bar", "/foo/", "/xyz/", "/xyz/bar"),
        ("/foo", "/foo", "/xyz", "/xyz"),
        ("/foo/", "/foo", "/xyz", "/xyz/"),
        ("/foo/bar", "/foo", "", "/bar"),
        ("/foo/", "/foo", "", "/"),
        ("/foo", "/foo", "", "/"),
        ("/foo/", "/foo", "/", "/"),
        ("/foo", "/foo", "/", "/"),
    ];
    for (path, prefix, replacement, want) in rows {
        let g = one_rule(json!({
            "matches": [{ "path": { "prefix": prefix } }],
            "filters": [{ "urlRewrite": { "path": { "replacePrefixMatch": replacement } } }],
            "backends": ["web"],
        }));
        let got = g.forward(&req("GET", &format!("http://h{path}")), 0).path;
        assert_eq!(
            got.as_deref(),
            Some(want),
            "{path} | {prefix} | {replacement:?}"
        );
        // The query string is kept.
        let got = g
            .forward(&req("GET", &format!("http://h{path}?a=1&b")), 0)
            .path;
        assert_eq!(got, Some(format!("{want}?a=1&b")), "{path}?a=1&b");
    }
}

#[test]
fn replace_prefix_match_uses_the_match_that_selected_the_rule() {
    // ReplacePrefixMatch replaces the *matched* prefix; with several PathPrefix matches, the one that matched.
    let g = one_rule(json!({
        "matches": [
            { "path": { "prefix": "/v1/api" } },
            { "path": { "prefix": "/legacy" } },
        ],
        "filters": [{ "urlRewrite": { "path": { "replacePrefixMatch": "/api" } } }],
        "backends": ["web"],
    }));
    let rewrite = |url: &str| g.forward(&req("GET", url), 0).path;
    assert_eq!(
        rewrite("http://h/v1/api/users"),
        Some("/api/users".to_string())
    );
    assert_eq!(
        rewrite("http://h/legacy/users"),
        Some("/api/users".to_string())
    );
    assert_eq!(rewrite("http://h/legacy"), Some("/api".to_string()));
}

// ---------------------------------------------------------------------------------------------
// RequestRedirect (docs/semantics.md §7)
// ---------------------------------------------------------------------------------------------

/// A Gateway with a listener on `port` whose only rule redirects with `redirect` (JSON of the
/// table's `requestRedirect`; `statusCode` defaults to 302, the CRD default).
fn redirecting(port: u16, redirect: Value) -> Gw {
    let mut redirect = redirect;
    redirect
        .as_object_mut()
        .expect("redirect object")
        .entry("statusCode")
        .or_insert(json!(302));
    on_port(
        port,
        json!([{ "name": "web", "rules": [{
            "matches": [{ "path": { "prefix": "/old" } }],
            "filters": [{ "requestRedirect": redirect }],
        }]}]),
    )
}

#[test]
fn redirect_hostname_only_keeps_the_listener_port() {
    // HTTPRequestRedirectFilter.port: "If redirect scheme is empty, the redirect port MUST be the Gateway Listener port."
    let g = redirecting(8080, json!({ "hostname": "new.example" }));
    assert_eq!(
        g.redirect("http://shop.example:8080/old/a?x=1"),
        (302, "http://new.example:8080/old/a?x=1".to_string())
    );
    // The listener port, not the port in the Host header.
    let r = req("GET", "http://shop.example:1234/old").port(8080);
    assert_eq!(
        header(&g.local(&r, 0), "location").as_deref(),
        Some("http://new.example:8080/old")
    );
}

#[test]
fn redirect_without_hostname_uses_the_request_host_without_its_port() {
    // HTTPRequestRedirectFilter.hostname: "If unspecified, the hostname in the `Host` header of the request is used."
    let g = redirecting(8080, json!({ "path": { "replaceFullPath": "/new" } }));
    assert_eq!(
        g.redirect("http://shop.example:8080/old"),
        (302, "http://shop.example:8080/new".to_string())
    );
    let r = req("GET", "http://shop.example:9999/old").port(8080);
    assert_eq!(
        header(&g.local(&r, 0), "location").as_deref(),
        Some("http://shop.example:8080/new")
    );
    // The Host as the client wrote it: matching lowercases it, the redirect does not.
    assert_eq!(
        g.redirect("http://Shop.Example:8080/old").1,
        "http://Shop.Example:8080/new"
    );
}

#[test]
fn redirect_scheme_brings_its_well_known_port() {
    // HTTPRequestRedirectFilter.port: "If redirect scheme is not-empty, the redirect port MUST be the well-known port".
    let g = redirecting(8080, json!({ "scheme": "https" }));
    assert_eq!(
        g.redirect("http://shop.example:8080/old/a?x=1"),
        (302, "https://shop.example/old/a?x=1".to_string())
    );
    // :443 listener + `scheme: http` ⇒ port 80, left out.
    let g = redirecting(443, json!({ "scheme": "http" }));
    assert_eq!(
        g.redirect("https://shop.example/old"),
        (302, "http://shop.example/old".to_string())
    );
}

#[test]
fn redirect_omits_well_known_ports() {
    // HTTPRequestRedirectFilter.port: "SHOULD NOT add the port number" for HTTP+80 and HTTPS+443.
    let g = redirecting(80, json!({ "hostname": "new.example" }));
    assert_eq!(
        g.redirect("http://shop.example/old").1,
        "http://new.example/old"
    );
    let g = redirecting(443, json!({ "hostname": "new.example" }));
    assert_eq!(
        g.redirect("https://shop.example/old").1,
        "https://new.example/old"
    );
    let g = redirecting(8443, json!({ "port": 443, "scheme": "https" }));
    assert_eq!(
        g.redirect("http://shop.example:8443/old").1,
        "https://shop.example/old"
    );
    let g = redirecting(8080, json!({ "port": 80 }));
    assert_eq!(
        g.redirect("http://shop.example:8080/old").1,
        "http://shop.example/old"
    );
}

#[test]
fn redirect_explicit_port_is_kept() {
    // HTTPRequestRedirectFilter.port: "Port is the port to be used in the value of the `Location` header".
    let g = redirecting(8080, json!({ "scheme": "https", "port": 8443 }));
    assert_eq!(
        g.redirect("http://shop.example:8080/old").1,
        "https://shop.example:8443/old"
    );
    let g = redirecting(80, json!({ "port": 8081 }));
    assert_eq!(
        g.redirect("http://shop.example/old").1,
        "http://shop.example:8081/old"
    );
    // A well-known port of the *other* scheme is not omitted.
    let g = redirecting(80, json!({ "port": 443 }));
    assert_eq!(
        g.redirect("http://shop.example/old").1,
        "http://shop.example:443/old"
    );
}

#[test]
fn redirect_port_and_scheme_on_an_https_listener() {
    // HTTPRouteRedirectPortAndScheme, `https-listener-*` cases: a listener on 443 reached over
    // TLS; no scheme keeps the request's (https), no port derives it from the scheme or the
    // listener, and well-known ports are left out.
    for (scheme, port, want) in [
        (None, None, "https://example.org/old"),
        (None, Some(443), "https://example.org/old"),
        (None, Some(8443), "https://example.org:8443/old"),
        (Some("https"), None, "https://example.org/old"),
        (Some("https"), Some(443), "https://example.org/old"),
        (Some("https"), Some(8443), "https://example.org:8443/old"),
        (Some("http"), None, "http://example.org/old"),
        (Some("http"), Some(80), "http://example.org/old"),
        (Some("http"), Some(8080), "http://example.org:8080/old"),
    ] {
        let mut redirect = json!({});
        if let Some(s) = scheme {
            redirect["scheme"] = json!(s);
        }
        if let Some(p) = port {
            redirect["port"] = json!(p);
        }
        let g = redirecting(443, redirect);
        let r = req("GET", "https://example.org/old").sni("example.org");
        assert_eq!(
            header(&g.local(&r, 0), "location").as_deref(),
            Some(want),
            "scheme {scheme:?} port {port:?}"
        );
    }
}

#[test]
fn redirect_path_modifiers_keep_the_query() {
    // HTTPRequestRedirectFilter.path: ReplaceFullPath / ReplacePrefixMatch as in URLRewrite; query kept (docs/semantics.md §7).
    let g = redirecting(80, json!({ "path": { "replacePrefixMatch": "/new" } }));
    assert_eq!(g.redirect("http://h/old/a/b?x=1").1, "http://h/new/a/b?x=1");
    assert_eq!(g.redirect("http://h/old").1, "http://h/new");
    assert_eq!(g.redirect("http://h/old/").1, "http://h/new/");
    let g = redirecting(80, json!({ "path": { "replacePrefixMatch": "/" } }));
    assert_eq!(g.redirect("http://h/old/a?x=1").1, "http://h/a?x=1");
    assert_eq!(g.redirect("http://h/old").1, "http://h/");
    let g = redirecting(80, json!({ "path": { "replaceFullPath": "/full" } }));
    assert_eq!(g.redirect("http://h/old/a?x=1").1, "http://h/full?x=1");
    // No path modifier: the path as-is.
    let g = redirecting(80, json!({ "hostname": "n" }));
    assert_eq!(
        g.redirect("http://h/old/a/b?x=1&y").1,
        "http://n/old/a/b?x=1&y"
    );
}

#[test]
fn redirect_status_codes() {
    // HTTPRequestRedirectFilter.statusCode: 301, 302 (Core, default 302), 303, 307, 308 (Extended).
    for code in [301, 302, 303, 307, 308] {
        let g = redirecting(80, json!({ "scheme": "https", "statusCode": code }));
        assert_eq!(g.redirect("http://h/old").0, code);
    }
}

#[test]
fn redirect_wins_over_rule_backends_and_gets_no_upstream() {
    // A redirect answers locally ("RequestRedirect ... redirect response"); nothing is forwarded, no 500 either.
    let g = redirecting(80, json!({ "hostname": "n" }));
    for d in 0..4 {
        let l = g.local(&req("GET", "http://h/old"), d);
        assert_eq!((l.status, l.reason), (302, LocalReason::Redirect));
    }
}

#[test]
fn response_header_modifier_applies_to_the_redirect() {
    // ResponseHeaderModifier edits the response, and a redirect's response is the proxy's own (docs/semantics.md §9).
    for filters in [
        json!([
            { "responseHeaderModifier": { "set": [{ "name": "x-by", "value": "gw" }],
                                          "add": [{ "name": "cache-control", "value": "no-store" }] } },
            { "requestRedirect": { "scheme": "https", "statusCode": 301 } },
        ]),
        json!([
            { "requestRedirect": { "scheme": "https", "statusCode": 301 } },
            { "responseHeaderModifier": { "set": [{ "name": "x-by", "value": "gw" }],
                                          "add": [{ "name": "cache-control", "value": "no-store" }] } },
        ]),
    ] {
        let g = one_rule(json!({ "filters": filters }));
        let l = g.local(&req("GET", "http://h/p?q"), 0);
        assert_eq!(l.status, 301);
        assert_eq!(
            headers(&l),
            [
                ("location".to_string(), "https://h/p?q".to_string()),
                ("x-by".to_string(), "gw".to_string()),
                ("cache-control".to_string(), "no-store".to_string()),
            ],
            "{filters}"
        );
    }
    // A modifier that removes or overrides `location` is honoured too (set replaces every value).
    let g = one_rule(json!({ "filters": [
        { "responseHeaderModifier": { "set": [{ "name": "Location", "value": "/elsewhere" }] } },
        { "requestRedirect": { "statusCode": 302 } },
    ]}));
    let l = g.local(&req("GET", "http://h/p"), 0);
    assert_eq!(
        headers(&l),
        [("Location".to_string(), "/elsewhere".to_string())]
    );
}

#[test]
fn mesh_redirect_without_scheme_keeps_the_service_port() {
    // docs/semantics.md §7: "For a Service parent use the Service port (our reading)" of "the redirect port MUST be the Gateway Listener port".
    let g = gw(json!({
        "role": "mesh/client",
        "services": [{ "namespace": "shop", "name": "cart", "clusterIps": ["10.96.0.10"],
            "ports": [{ "port": 8080, "origin": "producer", "attachments": [{ "route": 0 }] }] }],
        "routes": [{ "namespace": "shop", "name": "cart", "rules": [{
            "filters": [{ "requestRedirect": { "path": { "replaceFullPath": "/v2" }, "statusCode": 307 } }],
        }]}],
    }));
    let r = req("GET", "http://cart.shop/v1?x=1").to(at("10.96.0.10:8080"));
    let l = g.local(&r, 0);
    assert_eq!(l.status, 307);
    assert_eq!(
        header(&l, "location").as_deref(),
        Some("http://cart.shop:8080/v2?x=1")
    );
}

// ---------------------------------------------------------------------------------------------
// RequestMirror (docs/semantics.md §12)
// ---------------------------------------------------------------------------------------------

fn mirrored(mirrors: Value) -> Gw {
    let filters: Vec<Value> = mirrors
        .as_array()
        .expect("mirrors")
        .iter()
        .map(|m| json!({ "requestMirror": m }))
        .collect();
    one_rule(json!({ "filters": filters, "backends": ["a", "b"] }))
}

#[test]
fn mirror_percent_fires_proportionally() {
    // HTTPRequestMirrorFilter.percent: "the percentage of requests that will be mirrored".
    let r = req("GET", "http://h/");
    for (num, den) in [(30, 100), (1, 4), (5, 1000), (99, 100)] {
        let g = mirrored(json!([{ "cluster": "m", "numerator": num, "denominator": den }]));
        let n = 20_000u64;
        let fired = (0..n)
            .filter(|&d| !g.forward(&r, d).mirrors.is_empty())
            .count() as f64;
        let want = n as f64 * f64::from(num) / f64::from(den);
        let tolerance = 4.0 * (want * (1.0 - f64::from(num) / f64::from(den))).sqrt() + 5.0;
        assert!(
            (fired - want).abs() <= tolerance,
            "{num}/{den}: fired {fired} of {n}, want {want} ± {tolerance}"
        );
    }
}

#[test]
fn mirror_100_percent_always_and_0_never() {
    // HTTPRequestMirrorFilter: neither percent nor fraction ⇒ 100%; `percent: 0` mirrors nothing.
    let r = req("GET", "http://h/");
    let always = mirrored(json!([{ "cluster": "m", "numerator": 100, "denominator": 100 }]));
    let whole = mirrored(json!([{ "cluster": "m", "numerator": 1, "denominator": 1 }]));
    let never = mirrored(json!([{ "cluster": "m", "numerator": 0, "denominator": 100 }]));
    for d in (0..2000).chain([u64::MAX, u64::MAX - 1]) {
        assert_eq!(always.forward(&r, d).mirrors, ["m"]);
        assert_eq!(whole.forward(&r, d).mirrors, ["m"]);
        assert!(never.forward(&r, d).mirrors.is_empty());
    }
}

#[test]
fn several_mirrors_fire_independently_in_filter_order() {
    // RequestMirror "can be used multiple times"; each has its own percentage.
    let r = req("GET", "http://h/");
    let g = mirrored(json!([
        { "cluster": "m1", "numerator": 1, "denominator": 1 },
        { "cluster": "m2", "numerator": 1, "denominator": 1 },
    ]));
    assert_eq!(g.forward(&r, 0).mirrors, ["m1", "m2"]);
    let g = mirrored(json!([
        { "cluster": "m1", "numerator": 50, "denominator": 100 },
        { "cluster": "m2", "numerator": 50, "denominator": 100 },
    ]));
    let n = 20_000u64;
    let mut counts = [0u32; 4];
    for d in 0..n {
        let f = g.forward(&r, d);
        let slot = match f.mirrors.as_slice() {
            [] => 0,
            ["m1"] => 1,
            ["m2"] => 2,
            ["m1", "m2"] => 3,
            other => panic!("{other:?}"),
        };
        counts[slot] += 1;
    }
    for c in counts {
        assert!((4_400..=5_600).contains(&c), "{counts:?}");
    }
}

#[test]
fn mirrors_do_not_change_the_weighted_pick() {
    // The backend pick depends only on the draw and the weights; a mirror is a fire-and-forget copy.
    let r = req("GET", "http://h/");
    let plain = one_rule(json!({ "backends": ["a", "b", "c"] }));
    let g = mirrored(json!([{ "cluster": "m", "numerator": 50, "denominator": 100 }]));
    let three = one_rule(json!({
        "filters": [{ "requestMirror": { "cluster": "m", "numerator": 50, "denominator": 100 } }],
        "backends": ["a", "b", "c"],
    }));
    for d in 0..300 {
        assert_eq!(three.answer(&r, d), plain.answer(&r, d));
        assert_eq!(g.answer(&r, d), ["a", "b"][(d % 2) as usize]);
    }
}

// ---------------------------------------------------------------------------------------------
// CORS (docs/semantics.md §13)
// ---------------------------------------------------------------------------------------------

fn cors(cfg: Value) -> Gw {
    let mut cfg = cfg;
    cfg.as_object_mut()
        .expect("cors object")
        .entry("maxAgeSeconds")
        .or_insert(json!(5));
    one_rule(json!({ "filters": [{ "cors": cfg }], "backends": ["web"] }))
}

fn preflight(origin: &str, method: &str) -> Req {
    req("OPTIONS", "http://api.example/p")
        .header("origin", origin)
        .header("access-control-request-method", method)
}

#[test]
fn cors_preflight_is_answered_locally() {
    // HTTPCORSFilter: preflight (OPTIONS + Origin + Access-Control-Request-Method) answered with "an OK status (204 or 200)".
    let g = cors(json!({
        "allowOrigins": ["https://app.example.com"],
        "allowCredentials": true,
        "allowMethods": ["GET", "PUT"],
        "allowHeaders": ["x-a", "x-b"],
        "maxAgeSeconds": 600,
    }));
    let r =
        preflight("https://app.example.com", "PUT").header("access-control-request-headers", "x-a");
    let l = g.local(&r, 0);
    assert_eq!((l.status, l.reason), (200, LocalReason::CorsPreflight));
    assert_eq!(
        header(&l, "access-control-allow-origin").as_deref(),
        Some("https://app.example.com")
    );
    assert_eq!(
        header(&l, "access-control-allow-credentials").as_deref(),
        Some("true")
    );
    assert_eq!(
        header(&l, "access-control-allow-methods").as_deref(),
        Some("GET, PUT")
    );
    assert_eq!(
        header(&l, "access-control-allow-headers").as_deref(),
        Some("x-a, x-b")
    );
    assert_eq!(header(&l, "access-control-max-age").as_deref(), Some("600"));
    // allowHeaders: without Access-Control-Request-Headers "the gateway must omit" Allow-Headers.
    let l = g.local(&preflight("https://app.example.com", "PUT"), 0);
    assert_eq!(header(&l, "access-control-allow-headers"), None);
}

/// The routes of upstream `HTTPRouteCORS` (`httproute-cors.yaml`), one rule each.
fn upstream_cors_routes() -> Gw {
    let rule = |prefix: &str, cors: Value| {
        let mut cors = cors;
        cors.as_object_mut()
            .expect("cors")
            .entry("maxAgeSeconds")
            .or_insert(json!(5));
        json!({ "matches": [{ "path": { "prefix": prefix } }],
                "filters": [{ "cors": cors }], "backends": ["web"] })
    };
    http(json!([{ "name": "cors", "rules": [
        rule("/cors-1", json!({
            "allowOrigins": ["https://www.foo.com", "https://*.bar.com"],
            "allowMethods": ["GET", "OPTIONS"], "allowHeaders": ["x-header-1", "x-header-2"],
            "exposeHeaders": ["x-header-3", "x-header-4"], "allowCredentials": true,
            "maxAgeSeconds": 3600 })),
        rule("/cors-2", json!({ "allowOrigins": ["https://www.foo.com"], "allowMethods": ["*"] })),
        rule("/cors-wildcard-origin", json!({ "allowOrigins": ["*"], "allowMethods": ["PUT"] })),
        rule("/cors-wildcard-methods-headers-unauth", json!({ "allowOrigins": ["*"],
            "allowMethods": ["*"], "allowHeaders": ["*"] })),
        rule("/cors-wildcard-methods-headers", json!({ "allowOrigins": ["*"],
            "allowMethods": ["*"], "allowHeaders": ["*"], "allowCredentials": true })),
    ]}]))
}

#[test]
fn cors_answers_exactly_as_upstream_httproute_cors_expects() {
    // HTTPRouteCORS: every header the policy configures, for exact, wildcard and `*` origins, on
    // preflights (answered here) and actual requests (added to the upstream response).
    let g = upstream_cors_routes();
    let answer = |method: &str, path: &str, headers: &[(&str, &str)]| -> Vec<(String, String)> {
        let r = req(method, &format!("http://api.example{path}")).headers(headers);
        match g.decide(&r, 0).outcome {
            Outcome::Respond(l) => {
                assert_eq!((l.status, l.reason), (200, LocalReason::CorsPreflight));
                l.headers
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.to_string()))
                    .collect()
            }
            Outcome::Forward(f) => f
                .response_headers
                .iter()
                .filter_map(|op| match op {
                    HeaderOp::Set(n, v) | HeaderOp::Add(n, v) => {
                        Some((n.to_string(), v.to_string()))
                    }
                    HeaderOp::Remove(_) => None,
                })
                .collect(),
            Outcome::Passthrough => panic!("passthrough"),
        }
    };
    let get = |hs: &[(String, String)], name: &str| {
        hs.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
    };
    let asks = |origin: &'static str, method: &'static str| {
        vec![
            ("origin", origin),
            ("access-control-request-method", method),
            ("access-control-request-headers", "x-header-1, x-header-2"),
        ]
    };
    for origin in [
        "https://www.foo.com",
        "https://www.bar.com",
        "https://xpto.www.bar.com",
    ] {
        let hs = answer("OPTIONS", "/cors-1", &asks(origin, "GET"));
        for (name, want) in [
            ("access-control-allow-origin", origin),
            ("access-control-allow-methods", "GET, OPTIONS"),
            ("access-control-allow-headers", "x-header-1, x-header-2"),
            ("access-control-expose-headers", "x-header-3, x-header-4"),
            ("access-control-max-age", "3600"),
            ("access-control-allow-credentials", "true"),
        ] {
            assert_eq!(get(&hs, name).as_deref(), Some(want), "{origin}: {name}");
        }
        let hs = answer("GET", "/cors-1", &[("origin", origin)]);
        assert_eq!(
            get(&hs, "access-control-allow-origin").as_deref(),
            Some(origin)
        );
    }
    for method in ["OPTIONS", "GET"] {
        let hs = answer(
            method,
            "/cors-1",
            &[
                ("origin", "https://foobar.com"),
                ("access-control-request-method", "GET"),
            ],
        );
        assert_eq!(get(&hs, "access-control-allow-origin"), None, "{method}");
    }
    let hs = answer(
        "OPTIONS",
        "/cors-2",
        &[
            ("origin", "https://www.foo.com"),
            ("access-control-request-method", "POST"),
        ],
    );
    assert_eq!(
        get(&hs, "access-control-allow-methods").as_deref(),
        Some("*")
    );
    assert_eq!(
        get(&hs, "access-control-allow-origin").as_deref(),
        Some("https://www.foo.com")
    );
    assert_eq!(get(&hs, "access-control-allow-credentials"), None);
    for origin in ["https://foobar.com", "https://foobar.com:12345"] {
        let hs = answer(
            "OPTIONS",
            "/cors-wildcard-origin",
            &[("origin", origin), ("access-control-request-method", "PUT")],
        );
        assert_eq!(
            get(&hs, "access-control-allow-origin").as_deref(),
            Some(origin)
        );
        assert_eq!(
            get(&hs, "access-control-allow-methods").as_deref(),
            Some("PUT")
        );
        assert_eq!(get(&hs, "access-control-allow-credentials"), None);
        let hs = answer("PUT", "/cors-wildcard-origin", &[("origin", origin)]);
        assert_eq!(
            get(&hs, "access-control-allow-origin").as_deref(),
            Some(origin)
        );
    }
    // `*` with credentials: the request's origin, method and headers are echoed.
    let hs = answer(
        "OPTIONS",
        "/cors-wildcard-methods-headers",
        &asks("https://other.foo.com", "PUT"),
    );
    assert_eq!(
        get(&hs, "access-control-allow-origin").as_deref(),
        Some("https://other.foo.com")
    );
    assert_eq!(
        get(&hs, "access-control-allow-methods").as_deref(),
        Some("PUT")
    );
    assert_eq!(
        get(&hs, "access-control-allow-headers").as_deref(),
        Some("x-header-1, x-header-2")
    );
    assert_eq!(
        get(&hs, "access-control-allow-credentials").as_deref(),
        Some("true")
    );
    let hs = answer(
        "OPTIONS",
        "/cors-wildcard-methods-headers-unauth",
        &asks("https://other.foo.com", "PUT"),
    );
    assert_eq!(
        get(&hs, "access-control-allow-origin").as_deref(),
        Some("https://other.foo.com")
    );
    assert_eq!(
        get(&hs, "access-control-allow-methods").as_deref(),
        Some("*")
    );
    assert_eq!(
        get(&hs, "access-control-allow-headers").as_deref(),
        Some("*")
    );
    assert_eq!(get(&hs, "access-control-allow-credentials"), None);
    let auth = [
        ("origin", "https://other.foo.com"),
        ("authorization", "Bearer test"),
    ];
    let hs = answer("GET", "/cors-wildcard-methods-headers", &auth);
    assert_eq!(
        get(&hs, "access-control-allow-origin").as_deref(),
        Some("https://other.foo.com")
    );
    assert_eq!(
        get(&hs, "access-control-allow-credentials").as_deref(),
        Some("true")
    );
    let hs = answer("GET", "/cors-wildcard-methods-headers-unauth", &auth);
    assert_eq!(
        get(&hs, "access-control-allow-origin").as_deref(),
        Some("https://other.foo.com")
    );
    assert_eq!(get(&hs, "access-control-allow-credentials"), None);
}

#[test]
fn cors_preflight_needs_options_origin_and_request_method() {
    // A preflight is exactly OPTIONS + Origin + Access-Control-Request-Method; anything else is forwarded.
    let g = cors(json!({ "allowOrigins": ["https://app.example.com"], "allowMethods": ["PUT"] }));
    let origin = "https://app.example.com";
    for r in [
        req("OPTIONS", "http://api.example/p").header("origin", origin),
        req("OPTIONS", "http://api.example/p").header("access-control-request-method", "PUT"),
        req("GET", "http://api.example/p")
            .header("origin", origin)
            .header("access-control-request-method", "PUT"),
        req("OPTIONS", "http://api.example/p"),
    ] {
        assert_eq!(g.answer(&r, 0), "web", "{r:?}");
    }
    assert_eq!(g.answer(&preflight(origin, "PUT"), 0), "200");
}

#[test]
fn cors_preflight_from_a_disallowed_origin_gets_no_cors_headers() {
    // allowOrigins: "If the request `Origin` does not match ... returns 204/200 response but doesn't set the ... headers".
    let g = cors(json!({
        "allowOrigins": ["https://*.example.com"],
        "allowCredentials": true,
        "allowMethods": ["*"],
    }));
    for origin in [
        "https://evil.test",
        "http://app.example.com",
        "https://example.com",
        "null",
    ] {
        let l = g.local(&preflight(origin, "GET"), 0);
        assert_eq!(
            (l.status, l.reason),
            (200, LocalReason::CorsPreflight),
            "{origin}"
        );
        assert!(
            !l.headers
                .iter()
                .any(|(n, _)| n.starts_with("access-control-")),
            "{origin}: {:?}",
            l.headers
        );
    }
}

#[test]
fn cors_origin_wildcard_is_greedy_to_the_left_with_default_ports() {
    // allowOrigins: "`*` is a greedy match to the _left_"; "port `80` is assumed for `http` ... `443` for `https`".
    let g = cors(json!({ "allowOrigins": ["https://*.example.com", "http://local.test:8080"] }));
    let allowed = |origin: &str| {
        let l = g.local(&preflight(origin, "GET"), 0);
        header(&l, "access-control-allow-origin")
    };
    for ok in [
        "https://a.example.com",
        "https://a.b.example.com",
        "https://a.example.com:443",
        "http://local.test:8080",
    ] {
        assert_eq!(allowed(ok).as_deref(), Some(ok), "{ok}");
    }
    for no in [
        "https://example.com",
        "http://a.example.com",
        "https://a.example.com:8443",
        "http://local.test",
        "https://a.example.com.evil.test",
    ] {
        assert_eq!(allowed(no), None, "{no}");
    }
}

#[test]
fn cors_wildcards_and_credentials() {
    // allowOrigins/allowMethods/allowHeaders `*` with credentials: "must not return `*`", echo the request instead.
    let open = cors(json!({ "allowOrigins": ["*"], "allowMethods": ["*"], "allowHeaders": ["*"] }));
    let r = preflight("https://x.test", "DELETE").header("access-control-request-headers", "x-a");
    let l = open.local(&r, 0);
    // The origin is echoed (valid with and without credentials), never `*`.
    assert_eq!(
        header(&l, "access-control-allow-origin").as_deref(),
        Some("https://x.test")
    );
    assert_eq!(
        header(&l, "access-control-allow-methods").as_deref(),
        Some("*")
    );
    assert_eq!(
        header(&l, "access-control-allow-headers").as_deref(),
        Some("*")
    );
    assert_eq!(header(&l, "access-control-allow-credentials"), None);
    let creds = cors(json!({ "allowOrigins": ["*"], "allowCredentials": true,
        "allowMethods": ["*"], "allowHeaders": ["*"] }));
    let l = creds.local(&r, 0);
    assert_eq!(
        header(&l, "access-control-allow-origin").as_deref(),
        Some("https://x.test")
    );
    assert_eq!(
        header(&l, "access-control-allow-methods").as_deref(),
        Some("DELETE")
    );
    assert_eq!(
        header(&l, "access-control-allow-headers").as_deref(),
        Some("x-a")
    );
    assert_eq!(
        header(&l, "access-control-allow-credentials").as_deref(),
        Some("true")
    );
}

#[test]
fn cors_actual_requests_are_forwarded_with_headers_only_for_allowed_origins() {
    // HTTPCORSFilter: actual cross-origin requests are forwarded; ACAO (+ACAC, +ACEH) "only if the origin matches".
    let g = cors(json!({
        "allowOrigins": ["https://app.example.com"],
        "allowCredentials": true,
        "allowMethods": ["PUT"],
        "exposeHeaders": ["x-trace", "x-id"],
    }));
    let f = g.forward(
        &req("PUT", "http://api.example/p").header("origin", "https://app.example.com"),
        0,
    );
    assert_eq!(f.cluster, "web");
    let resp = ops(&f.response_headers);
    assert!(
        resp.contains(&"set access-control-allow-origin: https://app.example.com".to_string()),
        "{resp:?}"
    );
    assert!(
        resp.contains(&"set access-control-allow-credentials: true".to_string()),
        "{resp:?}"
    );
    assert!(
        resp.contains(&"set access-control-expose-headers: x-trace, x-id".to_string()),
        "{resp:?}"
    );
    assert!(
        !resp
            .iter()
            .any(|op| op.contains("access-control-allow-methods")),
        "{resp:?}"
    );
    for r in [
        req("PUT", "http://api.example/p").header("origin", "https://evil.test"),
        req("PUT", "http://api.example/p"),
    ] {
        let f = g.forward(&r, 0);
        assert_eq!(f.cluster, "web");
        assert!(
            f.response_headers.is_empty(),
            "{r:?}: {:?}",
            ops(&f.response_headers)
        );
    }
}

#[test]
fn cors_vary_origin_does_not_replace_the_upstream_vary() {
    // RFC 9110 §12.5.5: Vary is a list; echoing the Origin adds `Origin` to it, it must not drop `Accept-Encoding`.
    let g = cors(json!({ "allowOrigins": ["https://app.example.com"] }));
    let f = g.forward(
        &req("GET", "http://api.example/p").header("origin", "https://app.example.com"),
        0,
    );
    let mut upstream: Vec<(std::borrow::Cow<str>, std::borrow::Cow<str>)> =
        vec![("vary".into(), "Accept-Encoding".into())];
    apply_to_list(&mut upstream, &f.response_headers);
    let vary: Vec<&str> = upstream
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("vary"))
        .map(|(_, v)| v.as_ref())
        .collect();
    assert_eq!(vary, ["Accept-Encoding", "Origin"]);
}

// ---------------------------------------------------------------------------------------------
// Timeouts and retry (docs/semantics.md §10, §11)
// ---------------------------------------------------------------------------------------------

#[test]
fn timeouts_and_retry_are_passed_through() {
    // HTTPRouteRule.timeouts (GEP-1742) and .retry (GEP-1731): carried to the forward unchanged.
    let g = http(json!([{ "name": "web", "rules": [
        { "matches": [{ "path": { "prefix": "/slow" } }],
          "timeouts": { "requestMs": 10000, "backendRequestMs": 2500 },
          "retry": { "attempts": 3, "codes": [500, 503], "backoffMs": 100 },
          "backends": ["web"] },
        { "matches": [{ "path": { "prefix": "/unbounded" } }],
          "timeouts": { "requestMs": 0 },
          "backends": ["web"] },
        { "matches": [{ "path": { "prefix": "/" } }], "backends": ["web"] },
    ]}]));
    let f = g.forward(&req("GET", "http://h/slow"), 0);
    assert_eq!(
        f.timeouts,
        Timeouts {
            request_ms: Some(10_000),
            backend_request_ms: Some(2_500)
        }
    );
    let retry = f.retry.expect("retry");
    assert_eq!(
        (retry.attempts, retry.codes.as_slice(), retry.backoff_ms),
        (3, &[500, 503][..], Some(100))
    );
    // "0s" disables the timeout: kept as Some(0), distinct from unset.
    let f = g.forward(&req("GET", "http://h/unbounded"), 0);
    assert_eq!(
        f.timeouts,
        Timeouts {
            request_ms: Some(0),
            backend_request_ms: None
        }
    );
    assert_eq!(f.retry, None);
    let f = g.forward(&req("GET", "http://h/other"), 0);
    assert_eq!((f.timeouts, f.retry), (Timeouts::default(), None));
}

// ---------------------------------------------------------------------------------------------
// Compilation
// ---------------------------------------------------------------------------------------------

#[test]
fn a_table_with_an_invalid_regex_is_rejected_whole() {
    // RouteTable: "a table is either accepted whole or rejected whole with a TableError that names the offending element".
    let mut table = json!({
        "listeners": [{ "name": "l", "port": 80, "attachments": [{ "route": 0 }] }],
        "routes": [{ "name": "web", "rules": [
            { "matches": [{ "path": { "prefix": "/" } }], "backends": ["web"] },
            { "matches": [{ "path": { "prefix": "/" },
                "headers": [{ "name": "x", "value": { "regex": "(" } }] }], "backends": ["web"] },
        ]}],
    });
    fill_defaults(&mut table);
    let table = table_of(table);
    let err = Router::compile(table).expect_err("invalid regex");
    assert!(err.at.to_string().contains("rules[1]"), "{err}");
}

#[test]
fn cors_expose_headers_star_is_not_sent_with_credentials() {
    // exposeHeaders: `*` with `allowCredentials: false` "can contain the wildcard"; with `true` "the gateway cannot use the `*`".
    let actual = req("GET", "http://api.example/p").header("origin", "https://app.example.com");
    let open = cors(json!({ "allowOrigins": ["https://app.example.com"], "exposeHeaders": ["*"] }));
    let resp = ops(&open.forward(&actual, 0).response_headers);
    assert!(
        resp.contains(&"set access-control-expose-headers: *".to_string()),
        "{resp:?}"
    );
    let creds = cors(json!({ "allowOrigins": ["https://app.example.com"],
        "allowCredentials": true, "exposeHeaders": ["*"] }));
    let resp = ops(&creds.forward(&actual, 0).response_headers);
    assert!(
        !resp
            .iter()
            .any(|op| op.ends_with("access-control-expose-headers: *")),
        "{resp:?}"
    );
    assert!(
        resp.contains(&"set access-control-allow-origin: https://app.example.com".to_string()),
        "{resp:?}"
    );
}

#[test]
fn cors_headers_also_go_on_a_redirect_for_an_allowed_origin() {
    // A cross-origin request that is redirected still needs ACAO to follow it; CORS and RequestRedirect combine in any order.
    for filters in [
        json!([{ "cors": { "allowOrigins": ["https://app.example.com"], "maxAgeSeconds": 5 } },
               { "requestRedirect": { "scheme": "https", "statusCode": 308 } }]),
        json!([{ "requestRedirect": { "scheme": "https", "statusCode": 308 } },
               { "cors": { "allowOrigins": ["https://app.example.com"], "maxAgeSeconds": 5 } }]),
    ] {
        let g = one_rule(json!({ "filters": filters }));
        let r = req("GET", "http://api.example/p").header("origin", "https://app.example.com");
        let l = g.local(&r, 0);
        assert_eq!(l.status, 308);
        assert_eq!(
            header(&l, "access-control-allow-origin").as_deref(),
            Some("https://app.example.com"),
            "{filters}"
        );
        let evil = req("GET", "http://api.example/p").header("origin", "https://evil.test");
        assert_eq!(
            header(&g.local(&evil, 0), "access-control-allow-origin"),
            None
        );
    }
}

/// A table from its JSON form (through the schema types, as the filter reads it), not validated.
fn table_of(json: Value) -> RouteTable {
    let msg: wire::RouteTable = serde_json::from_value(json).expect("table JSON");
    RouteTable::try_from(msg).expect("table JSON converts")
}
