//! Adversarial differential test: the same routes as a gammaroute table in one Envoy and as
//! Envoy's own route configuration in another (the translation Envoy Gateway makes: one virtual
//! host per hostname, `path_separated_prefix`, ports ignored in Host), both on
//! `envoy-configs/bootstrap.yaml`. Tricky requests — encoded slashes and dots, `;` parameters,
//! backslashes, absolute-form URIs, duplicate query parameters and headers, odd hosts, long
//! paths, huge repeated headers on a regex route — must reach the same backend or get the same
//! refusal from both, or be one of the differences listed in [`DIFFERENCES`] (documented in
//! docs/semantics.md "Where gammaroute and native Envoy routing differ").

use gammaroute_host_tests::fixture::Gateway;
use gammaroute_host_tests::http::{self, Response};
use serde_json::{json, Value};

const ECHO: &str = env!("CARGO_BIN_EXE_echo");

const USERS: &str = "default/users:80";
const V1: &str = "default/v1:80";
const ADMIN: &str = "default/admin:80";
const SEARCH: &str = "default/search:80";
const API: &str = "default/api:80";
const WILD: &str = "default/wild:80";
const REGEX: &str = "default/regex:80";
const FILES: &str = "default/files:80";
const ROOT: &str = "default/root:80";
const CLUSTERS: [&str; 9] = [USERS, V1, ADMIN, SEARCH, API, WILD, REGEX, FILES, ROOT];

/// The routes, as config-pusher writes them (ranks: Exact, then PathPrefix longest first, then
/// more headers/query parameters, then RegularExpression).
///
/// - `api.example.com`: Exact `/v1/users`; PathPrefix `/search` with query `q=exact`;
///   PathPrefix `/admin` with header `x-role: admin`; PathPrefix `/v1`; PathPrefix `/`.
/// - `*.example.com`: PathPrefix `/`.
/// - any host: PathPrefix `/re` with header `x-big` ~ `(a+)+b`; RegularExpression
///   `/files/[a-z0-9]+\.txt`; Exact `/`.
fn table() -> Value {
    let rule = |index: u32, rank: u32, matched: Value, cluster: &str| {
        let mut m = matched;
        m["rank"] = json!(rank);
        json!({"index": index, "matches": [m], "backends": [{"weight": 1, "cluster": cluster}]})
    };
    let api = json!({"namespace": "default", "name": "api", "rules": [
        rule(0, 0, json!({"path": {"exact": "/v1/users"}}), USERS),
        rule(1, 1, json!({"path": {"prefix": "/search"},
            "queryParams": [{"name": "q", "value": {"exact": "exact"}}]}), SEARCH),
        rule(2, 2, json!({"path": {"prefix": "/admin"},
            "headers": [{"name": "x-role", "value": {"exact": "admin"}}]}), ADMIN),
        rule(3, 3, json!({"path": {"prefix": "/v1"}}), V1),
        rule(4, 4, json!({"path": {"prefix": "/"}}), API),
    ]});
    let wild = json!({"namespace": "default", "name": "wild", "rules": [
        rule(0, 4, json!({"path": {"prefix": "/"}}), WILD),
    ]});
    let any = json!({"namespace": "default", "name": "any", "rules": [
        rule(0, 1, json!({"path": {"prefix": "/re"},
            "headers": [{"name": "x-big", "value": {"regex": "(a+)+b"}}]}), REGEX),
        rule(1, 2, json!({"path": {"regex": "/files/[a-z0-9]+\\.txt"}}), FILES),
        rule(2, 0, json!({"path": {"exact": "/"}}), ROOT),
    ]});
    json!({
        "listenerPort": 80,
        "table": {
            "role": "gateway/default/web",
            "listeners": [{"name": "http", "port": 80, "attachments": [
                {"route": 0, "hostnames": ["api.example.com"]},
                {"route": 1, "hostnames": ["*.example.com"]},
                {"route": 2}
            ]}],
            "routes": [api, wild, any]
        }
    })
}

/// The same routes in Envoy's own terms.
const NATIVE_ROUTES: &str = r#"          route_config:
            name: native
            ignore_port_in_host_matching: true
            virtual_hosts:
            - name: api
              domains: ["api.example.com"]
              routes:
              - {match: {path: /v1/users}, route: {cluster: default/users:80}}
              - match: {path_separated_prefix: /search, query_parameters: [{name: q, string_match: {exact: exact}}]}
                route: {cluster: default/search:80}
              - match: {path_separated_prefix: /admin, headers: [{name: x-role, string_match: {exact: admin}}]}
                route: {cluster: default/admin:80}
              - {match: {path_separated_prefix: /v1}, route: {cluster: default/v1:80}}
              - {match: {prefix: /}, route: {cluster: default/api:80}}
            - name: wild
              domains: ["*.example.com"]
              routes:
              - {match: {prefix: /}, route: {cluster: default/wild:80}}
            - name: any
              domains: ["*"]
              routes:
              - match: {path_separated_prefix: /re, headers: [{name: x-big, string_match: {safe_regex: {regex: "(a+)+b"}}}]}
                route: {cluster: default/regex:80}
              - {match: {safe_regex: {regex: '/files/[a-z0-9]+\.txt'}}, route: {cluster: default/files:80}}
              - {match: {path: /}, route: {cluster: default/root:80}}
"#;

/// The bootstrap with Envoy routing instead of gammaroute: the catch-all route config replaced by
/// [`NATIVE_ROUTES`] and the wasm filter removed; every other setting (path normalisation,
/// escaped slashes, underscores, trailing host dots, the header strip) stays as it is.
fn native(template: String) -> String {
    let cut = |t: &str, from: &str, to: &str, with: &str| {
        let start = t
            .find(from)
            .unwrap_or_else(|| panic!("bootstrap.yaml: {from:?}"));
        let end = t[start..]
            .find(to)
            .unwrap_or_else(|| panic!("bootstrap.yaml: {to:?} after {from:?}"))
            + start;
        format!("{}{with}{}", &t[..start], &t[end..])
    };
    let t = cut(
        &template,
        "          route_config:\n",
        "          http_filters:\n",
        NATIVE_ROUTES,
    );
    cut(
        &t,
        "          - name: envoy.filters.http.wasm\n",
        "          - name: envoy.filters.http.router\n",
        "",
    )
}

/// Which backend served a request, or how it was refused (status, and where a redirect points).
fn outcome(r: &Response) -> String {
    match r.status {
        200 => r.json()["service"]
            .as_str()
            .unwrap_or("<no service>")
            .to_string(),
        301..=308 => format!(
            "{} to {}",
            r.status,
            r.header("location").unwrap_or("<no location>")
        ),
        s => format!("status {s}"),
    }
}

/// One tricky request: request-target, headers (give `host` yourself; several are allowed).
struct Probe {
    name: &'static str,
    target: String,
    headers: Vec<(String, String)>,
}

fn probe(name: &'static str, target: &str, headers: &[(&str, &str)]) -> Probe {
    Probe {
        name,
        target: target.to_string(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

const HOST: (&str, &str) = ("host", "api.example.com");

fn probes() -> Vec<Probe> {
    let long_path = format!("/v1/{}", "a".repeat(8000));
    let big_a = "a".repeat(600);
    let big_ab = format!("{}b", "a".repeat(599));
    let mut repeated_a = vec![("host", "any.test")];
    repeated_a.extend(std::iter::repeat_n(("x-big", big_a.as_str()), 90));
    let mut repeated_ab = vec![("host", "any.test")];
    repeated_ab.extend(std::iter::repeat_n(("x-big", big_ab.as_str()), 90));
    let mut too_many = vec![("host", "any.test")];
    too_many.extend(std::iter::repeat_n(("x-big", big_a.as_str()), 110));
    vec![
        probe("exact path", "/v1/users", &[HOST]),
        probe("exact path, trailing slash", "/v1/users/", &[HOST]),
        probe("exact path, query", "/v1/users?x=1", &[HOST]),
        probe("exact path, fragment", "/v1/users#frag", &[HOST]),
        probe("encoded slash", "/v1%2Fusers", &[HOST]),
        probe("encoded slash, lower case", "/v1%2fusers", &[HOST]),
        probe("encoded backslash", "/v1%5Cusers", &[HOST]),
        probe("dot segment", "/v1/./users", &[HOST]),
        probe(
            "dot-dot segment",
            "/v1/../admin",
            &[("host", "api.example.com"), ("x-role", "admin")],
        ),
        probe(
            "encoded dot-dot",
            "/v1/%2e%2e/admin",
            &[("host", "api.example.com"), ("x-role", "admin")],
        ),
        probe("encoded unreserved character", "/%761/users", &[HOST]),
        probe("repeated slashes", "//v1//users", &[HOST]),
        probe(
            "semicolon parameter on a segment",
            "/admin;x=1",
            &[("host", "api.example.com"), ("x-role", "admin")],
        ),
        probe(
            "semicolon parameter after a prefix",
            "/v1;x=1/users",
            &[HOST],
        ),
        probe("backslash", "/v1\\users", &[HOST]),
        probe("prefix is a whole segment", "/v1x", &[HOST]),
        probe(
            "absolute-form URI wins over Host",
            "http://api.example.com/v1/users",
            &[("host", "other.test")],
        ),
        probe(
            "absolute-form URI to another host",
            "http://other.test/v1/users",
            &[HOST],
        ),
        probe(
            "query parameter, first of two",
            "/search?q=exact&q=other",
            &[HOST],
        ),
        probe(
            "query parameter, second of two",
            "/search?q=other&q=exact",
            &[HOST],
        ),
        probe(
            "query parameter name is case-sensitive",
            "/search?Q=exact",
            &[HOST],
        ),
        probe(
            "query parameter, encoded value",
            "/search?q=%65xact",
            &[HOST],
        ),
        probe(
            "header name in upper case",
            "/admin",
            &[("host", "api.example.com"), ("X-ROLE", "admin")],
        ),
        probe(
            "header value is case-sensitive",
            "/admin",
            &[("host", "api.example.com"), ("x-role", "Admin")],
        ),
        probe(
            "header sent twice",
            "/admin",
            &[
                ("host", "api.example.com"),
                ("x-role", "admin"),
                ("x-role", "admin"),
            ],
        ),
        probe(
            "header sent twice, the second matches",
            "/admin",
            &[
                ("host", "api.example.com"),
                ("x-role", "other"),
                ("x-role", "admin"),
            ],
        ),
        probe(
            "header, two values on one line",
            "/admin",
            &[("host", "api.example.com"), ("x-role", "other,admin")],
        ),
        probe(
            "header regex, the second of two values matches",
            "/re",
            &[("host", "any.test"), ("x-big", "zzz"), ("x-big", "aab")],
        ),
        probe(
            "host in upper case",
            "/v1/users",
            &[("host", "API.EXAMPLE.COM")],
        ),
        probe(
            "host with a trailing dot",
            "/v1/users",
            &[("host", "api.example.com.")],
        ),
        probe(
            "host with a port",
            "/v1/users",
            &[("host", "api.example.com:8080")],
        ),
        probe(
            "two Host headers",
            "/v1/users",
            &[("host", "api.example.com"), ("host", "x.example.com")],
        ),
        probe(
            "wildcard, one label",
            "/v1/users",
            &[("host", "a.example.com")],
        ),
        probe(
            "wildcard, two labels",
            "/v1/users",
            &[("host", "a.b.example.com")],
        ),
        probe(
            "wildcard does not match its suffix alone",
            "/",
            &[("host", "example.com")],
        ),
        probe("IPv6 literal host", "/", &[("host", "[::1]:80")]),
        probe("IPv4 host", "/", &[("host", "127.0.0.1")]),
        probe("very long path", &long_path, &[HOST]),
        probe("regex path", "/files/abc.txt", &[("host", "any.test")]),
        probe(
            "regex path is anchored",
            "/files/abc.txt/x",
            &[("host", "any.test")],
        ),
        probe(
            "regex path ignores the query",
            "/files/abc.txt?x=1",
            &[("host", "any.test")],
        ),
        probe(
            "regex path, upper case",
            "/files/ABC.txt",
            &[("host", "any.test")],
        ),
        probe(
            "header regex",
            "/re",
            &[("host", "any.test"), ("x-big", &big_ab)],
        ),
        probe(
            "header regex, no match",
            "/re",
            &[("host", "any.test"), ("x-big", &big_a)],
        ),
        probe(
            "90 x 600-byte header on a regex route",
            "/re",
            &repeated_a.iter().map(|(k, v)| (*k, *v)).collect::<Vec<_>>(),
        ),
        probe(
            "90 x 600-byte header ending in b",
            "/re",
            &repeated_ab
                .iter()
                .map(|(k, v)| (*k, *v))
                .collect::<Vec<_>>(),
        ),
        probe(
            "110 x 600-byte header (over Envoy's 60 KiB)",
            "/re",
            &too_many.iter().map(|(k, v)| (*k, *v)).collect::<Vec<_>>(),
        ),
    ]
}

/// Probes where the two differ on purpose: (probe name, gammaroute, native Envoy, why).
const DIFFERENCES: &[(&str, &str, &str, &str)] = &[
    (
        "query parameter, encoded value",
        "search",
        "api",
        "gammaroute percent-decodes query names and values before comparing (`%65xact` is \
         `exact`, as the backend reads it); Envoy compares the raw text",
    ),
    (
        "90 x 600-byte header ending in b",
        "status 404",
        "regex",
        "a regex runs only on values of at most 4096 bytes in all (the filter's bound on the \
         work one request can cause); Envoy runs it on everything it accepts",
    ),
];

#[test]
fn tricky_requests_route_as_native_envoy_routes_them() {
    let config = table();
    let gamma = Gateway::start(ECHO, &config, &CLUSTERS);
    let envoy = Gateway::start_edited(ECHO, &config, &CLUSTERS, &native);
    let mut differ = Vec::new();
    let mut reached = std::collections::BTreeSet::new();
    for p in probes() {
        let headers: Vec<(&str, &str)> = p
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let send = |gw: &Gateway| {
            http::send(gw.addr, "GET", &p.target, &headers)
                .map(|r| outcome(&r))
                .unwrap_or_else(|e| format!("connection: {}", e.kind()))
        };
        let (ours, theirs) = (send(&gamma), send(&envoy));
        reached.insert(ours.clone());
        let expected = DIFFERENCES.iter().find(|d| d.0 == p.name);
        match expected {
            Some((_, o, t, _)) if ours == *o && theirs == *t => {}
            Some((_, o, t, why)) => differ.push(format!(
                "{}: expected the documented difference gammaroute {o:?} / Envoy {t:?} ({why}), got {ours:?} / {theirs:?}",
                p.name
            )),
            None if ours == theirs => {}
            None => differ.push(format!(
                "{} ({}): gammaroute {ours:?}, native Envoy {theirs:?}",
                p.name, p.target.chars().take(60).collect::<String>()
            )),
        }
    }
    // The probes exercise every route and the refusals, not just one answer.
    for cluster in CLUSTERS {
        let service = cluster.split(['/', ':']).nth(1).unwrap_or(cluster);
        assert!(
            reached.contains(service),
            "no probe reached {service}: {reached:?}"
        );
    }
    for refusal in ["status 400", "status 404", "status 431"] {
        assert!(
            reached.contains(refusal),
            "no probe got {refusal}: {reached:?}"
        );
    }
    assert!(
        reached.iter().any(|o| o.starts_with("30")),
        "no probe was redirected: {reached:?}"
    );
    assert!(
        differ.is_empty(),
        "{} of {} probes differ:\n{}",
        differ.len(),
        probes().len(),
        differ.join("\n")
    );
}
