//! gammaroute in a real Envoy: which rule a request lands on. Path (Exact, PathPrefix,
//! RegularExpression), header, query and method matches ranked as config-pusher writes them,
//! hostname precedence between routes and listener isolation between Gateway listeners sharing a
//! port, 404 when nothing matches, and the 500s of unavailable backends and empty rules.
//!
//! All rules but two forward to one echo backend and tag the request with `x-hit: <rule>`
//! (a RequestHeaderModifier), so the echo's report names the rule that served it.

use gammaroute_host_tests::fixture::Gateway;
use gammaroute_host_tests::http::Response;
use serde_json::{json, Value};

const ECHO: &str = env!("CARGO_BIN_EXE_echo");
const BACKEND: &str = "default/match:80";

/// A rule with one match, tagged `hit`, forwarding to [`BACKEND`].
fn rule(index: u32, hit: &str, matched: Value) -> Value {
    json!({"index": index, "matches": [matched],
           "filters": [{"requestHeaderModifier": {"set": [{"name": "x-hit", "value": hit}]}}],
           "backends": [{"weight": 1, "cluster": BACKEND}]})
}

/// Which rule served the request (`x-hit` as the echo saw it), or the status of a local answer.
fn hit(r: &Response) -> String {
    if r.status != 200 {
        return format!("status {}", r.status);
    }
    match &r.json()["headers"]["X-Hit"] {
        Value::Array(values) if values.len() == 1 => values[0].as_str().unwrap_or("?").to_string(),
        other => format!("x-hit {other}"),
    }
}

/// One Gateway with three listeners on port 80:
/// - `any` (no hostname): route `paths` and route `more` (precedence across two routes), the
///   host-specific routes `wild`, `exact`, `deep`, and the routes with 500 answers;
/// - `iso-wild` (`*.iso.test`) and `iso-exact` (`a.iso.test`): listener isolation.
///
/// Ranks are what config-pusher writes for the `any` listener: over all its routes' matches,
/// Exact paths (`/exact`, then `/only`), then PathPrefix longest first (`/api/v1`, `/empty`,
/// `/half`, `/zero`, then `/api` and `/hdr`, then `/`), then at equal length method, most headers,
/// most query parameters, oldest route (`paths` is older than `more`), rule order; then
/// RegularExpression paths (implementation-specific; `/files/...` overlaps no prefix anyway).
/// There is deliberately no `/` catch-all among the host-less routes, so unmatched paths
/// answer 404.
fn table() -> Value {
    let paths = json!({"namespace": "default", "name": "paths", "rules": [
        rule(0, "exact", json!({"rank": 0, "path": {"exact": "/exact"}})),
        rule(1, "v1-beta", json!({"rank": 2, "path": {"prefix": "/api/v1"},
            "headers": [{"name": "x-beta", "value": {"exact": "1"}}]})),
        rule(2, "api-post", json!({"rank": 6, "path": {"prefix": "/api"}, "method": "POST"})),
        // Header names are case-insensitive: written mixed-case here, sent lowercase or
        // uppercase by clients.
        rule(3, "api-1h", json!({"rank": 9, "path": {"prefix": "/api"},
            "headers": [{"name": "X-Env", "value": {"exact": "canary"}}]})),
        rule(4, "api-q", json!({"rank": 11, "path": {"prefix": "/api"},
            "queryParams": [{"name": "version", "value": {"exact": "2"}}]})),
        rule(5, "api", json!({"rank": 12, "path": {"prefix": "/api"}})),
        rule(6, "hdr-regex", json!({"rank": 10, "path": {"prefix": "/hdr"},
            "headers": [{"name": "x-version", "value": {"regex": "v[0-9]+"}}]})),
        rule(7, "m-head", json!({"rank": 7, "path": {"prefix": "/hdr"}, "method": "HEAD"})),
        rule(8, "files", json!({"rank": 15, "path": {"regex": "/files/[a-z]+\\.txt"}})),
        {"index": 9, "matches": [{"rank": 4, "path": {"prefix": "/half"}}],
         "backends": [{"weight": 1, "cluster": BACKEND},
                      {"weight": 1, "unavailable": {"status": 500, "reason": "BackendNotFound: default/gone"}}]},
        {"index": 10, "matches": [{"rank": 3, "path": {"prefix": "/empty"}}]},
        {"index": 11, "matches": [{"rank": 5, "path": {"prefix": "/zero"}}],
         "backends": [{"weight": 0, "cluster": BACKEND}]}
    ]});
    // A newer route: its two-header match still outranks the older route's one-header match,
    // and it is outranked by the older route's method match.
    let more = json!({"namespace": "default", "name": "more", "rules": [
        rule(0, "api-2h", json!({"rank": 8, "path": {"prefix": "/api"},
            "headers": [{"name": "x-env", "value": {"exact": "canary"}},
                        {"name": "x-tier", "value": {"exact": "gold"}}]}))
    ]});
    // Host-specific routes on the same listener: hostname specificity ranks above every match
    // criterion, so `/` (rank 13) beats `paths`' `/exact` (rank 0) for their hosts.
    let wild = json!({"namespace": "default", "name": "wild", "rules": [
        rule(0, "wild-org", json!({"rank": 13, "path": {"prefix": "/"}}))
    ]});
    let exact = json!({"namespace": "default", "name": "exact", "rules": [
        rule(0, "exact-host", json!({"rank": 1, "path": {"exact": "/only"}}))
    ]});
    let deep = json!({"namespace": "default", "name": "deep", "rules": [
        rule(0, "deep-wild", json!({"rank": 14, "path": {"prefix": "/"}}))
    ]});
    let iso_wild = json!({"namespace": "default", "name": "iso-wild", "rules": [
        rule(0, "iso-wild", json!({"rank": 0, "path": {"prefix": "/"}}))
    ]});
    let iso_exact = json!({"namespace": "default", "name": "iso-exact", "rules": [
        rule(0, "iso-exact", json!({"rank": 0, "path": {"exact": "/only"}}))
    ]});
    json!({
        "listenerPort": 80,
        "table": {
            "role": "gateway/default/web",
            "listeners": [
                {"name": "any", "port": 80, "attachments": [
                    {"route": 0}, {"route": 1},
                    {"route": 2, "hostnames": ["*.example.org"]},
                    {"route": 3, "hostnames": ["api.example.org"]},
                    {"route": 4, "hostnames": ["*.deep.example.org"]}
                ]},
                {"name": "iso-wild", "port": 80, "hostname": "*.iso.test", "attachments": [
                    {"route": 5, "hostnames": ["*.iso.test"]}
                ]},
                {"name": "iso-exact", "port": 80, "hostname": "a.iso.test", "attachments": [
                    {"route": 6, "hostnames": ["a.iso.test"]}
                ]}
            ],
            "routes": [paths, more, wild, exact, deep, iso_wild, iso_exact]
        }
    })
}

#[test]
fn matching_precedence_hostnames_and_local_answers_through_envoy() {
    let gw = Gateway::start(ECHO, &table(), &[BACKEND]);
    let get = |host: &str, path: &str, headers: &[(&str, &str)]| hit(&gw.get(host, path, headers));
    let send = |method: &str, path: &str, headers: &[(&str, &str)]| {
        hit(&gw.request(method, "match.test", path, headers))
    };

    // Exact path: byte for byte, query excluded; not a prefix.
    assert_eq!(get("match.test", "/exact", &[]), "exact");
    assert_eq!(get("match.test", "/exact?x=1", &[]), "exact");
    assert_eq!(get("match.test", "/exact/", &[]), "status 404");
    assert_eq!(get("match.test", "/exactly", &[]), "status 404");
    assert_eq!(get("match.test", "/Exact", &[]), "status 404");

    // PathPrefix: element-wise, trailing `/` ignored.
    assert_eq!(get("match.test", "/api", &[]), "api");
    assert_eq!(get("match.test", "/api/", &[]), "api");
    assert_eq!(get("match.test", "/api/items/7", &[]), "api");
    assert_eq!(get("match.test", "/apix", &[]), "status 404");
    // Envoy normalises the path before the filter sees it (normalize_path, merge_slashes).
    assert_eq!(get("match.test", "/x/../exact", &[]), "exact");
    assert_eq!(get("match.test", "//api//items", &[]), "api");

    // The longer prefix wins while its header condition holds, and falls back to the shorter
    // prefix's candidates when it does not.
    assert_eq!(
        get("match.test", "/api/v1/x", &[("x-beta", "1")]),
        "v1-beta"
    );
    assert_eq!(get("match.test", "/api/v1/x", &[("x-beta", "2")]), "api");
    assert_eq!(get("match.test", "/api/v1/x", &[]), "api");
    assert_eq!(
        get("match.test", "/api/v1/x", &[("x-env", "canary")]),
        "api-1h"
    );

    // At equal path: method > most headers (across routes) > fewer headers > query > none.
    let both = [("x-env", "canary"), ("x-tier", "gold")];
    assert_eq!(send("POST", "/api/x", &both), "api-post");
    assert_eq!(get("match.test", "/api/x", &both), "api-2h");
    assert_eq!(
        get("match.test", "/api/x?version=2", &[("x-env", "canary")]),
        "api-1h"
    );
    assert_eq!(get("match.test", "/api/x?version=2", &[]), "api-q");
    assert_eq!(send("PUT", "/api/x", &[]), "api");
    // Header names are case-insensitive, values are not.
    assert_eq!(
        get("match.test", "/api/x", &[("X-ENV", "canary")]),
        "api-1h"
    );
    assert_eq!(get("match.test", "/api/x", &[("x-env", "Canary")]), "api");
    // Query parameter names are case-sensitive; the first occurrence counts; values are
    // percent-decoded and compared whole.
    assert_eq!(get("match.test", "/api/x?Version=2", &[]), "api");
    assert_eq!(
        get("match.test", "/api/x?version=2&version=3", &[]),
        "api-q"
    );
    assert_eq!(get("match.test", "/api/x?version=3&version=2", &[]), "api");
    assert_eq!(get("match.test", "/api/x?version=%32", &[]), "api-q");
    assert_eq!(get("match.test", "/api/x?version=22", &[]), "api");

    // Header RegularExpression: the whole value must match.
    assert_eq!(
        get("match.test", "/hdr", &[("x-version", "v12")]),
        "hdr-regex"
    );
    assert_eq!(
        get("match.test", "/hdr", &[("x-version", "v12b")]),
        "status 404"
    );
    // Method match is exact: HEAD is not GET. (HEAD: no body comes back, so only the status
    // tells; the `hdr` GET below without headers has no rule at all.)
    assert_eq!(gw.request("HEAD", "match.test", "/hdr", &[]).status, 200);
    assert_eq!(get("match.test", "/hdr", &[]), "status 404");

    // RegularExpression path: the whole path, query excluded, case-sensitive.
    assert_eq!(get("match.test", "/files/notes.txt", &[]), "files");
    assert_eq!(get("match.test", "/files/notes.txt?dl=1", &[]), "files");
    assert_eq!(get("match.test", "/files/notes.txt/x", &[]), "status 404");
    assert_eq!(get("match.test", "/files/Notes.txt", &[]), "status 404");
    assert_eq!(get("match.test", "/x/files/notes.txt", &[]), "status 404");

    // Hostnames: exact host > longest wildcard > shorter wildcard > routes without hostnames;
    // a more specific hostname's routes are tried first even when their ranks are higher.
    assert_eq!(get("api.example.org", "/only", &[]), "exact-host");
    // Host matching ignores case and the port.
    assert_eq!(get("API.Example.ORG:8080", "/only", &[]), "exact-host");
    // The exact host's routes do not match `/exact`: the wildcard route's `/` does, and it beats
    // the host-less route's Exact `/exact` (rank 0).
    assert_eq!(get("api.example.org", "/exact", &[]), "wild-org");
    assert_eq!(get("x.example.org", "/only", &[]), "wild-org");
    assert_eq!(get("a.b.example.org", "/", &[]), "wild-org");
    assert_eq!(get("x.deep.example.org", "/", &[]), "deep-wild");
    // `*.example.org` does not match `example.org`: the host-less routes apply, and no route
    // of theirs matches `/`.
    assert_eq!(get("example.org", "/", &[]), "status 404");
    assert_eq!(get("example.org", "/api", &[]), "api");
    // The host-less route does not get Hosts a hostname route claims (when it matches).
    assert_eq!(get("x.deep.example.org", "/api", &[]), "deep-wild");

    // Listener isolation: a Host matching `a.iso.test` sees only that listener's routes — no
    // fallback to `*.iso.test` or to the listener without hostname.
    assert_eq!(get("a.iso.test", "/only", &[]), "iso-exact");
    assert_eq!(get("a.iso.test", "/other", &[]), "status 404");
    assert_eq!(get("a.iso.test", "/api", &[]), "status 404");
    assert_eq!(get("b.iso.test", "/other", &[]), "iso-wild");
    assert_eq!(get("b.iso.test", "/api", &[]), "iso-wild");
    assert_eq!(get("b.iso.test", "/only", &[]), "iso-wild");

    // 404 bodies come from the filter, not from Envoy's route (which always has a cluster).
    let r = gw.get("match.test", "/nothing-here", &[]);
    assert_eq!(r.status, 404);
    assert!(r.text().contains("no route"), "{}", r.text());

    // A rule with no backends, or only weight 0: 500 from the filter, upstream untouched.
    let backend = &gw.backends[BACKEND];
    let before = backend.seen("").0;
    for path in ["/empty", "/empty/x", "/zero"] {
        let r = gw.get("match.test", path, &[]);
        assert_eq!(r.status, 500, "{path}: {}", r.text());
    }
    assert_eq!(backend.seen("").0, before, "no request may reach a backend");

    // 50/50 with an unavailable backend: its share answers 500, the rest is served.
    // Binomial(400, 0.5): mean 200, sd 10; ±5 sd.
    let mut served = 0u64;
    let mut failed = 0u64;
    for _ in 0..400 {
        let r = gw.get("match.test", "/half", &[("x-echo-id", "half")]);
        match r.status {
            200 => served += 1,
            500 => {
                assert!(r.text().contains("unavailable"), "{}", r.text());
                failed += 1;
            }
            other => panic!("status {other}: {}", r.text()),
        }
    }
    assert!(
        (150..=250).contains(&failed),
        "{failed} × 500, {served} × 200"
    );
    assert_eq!(
        backend.seen("half").1,
        served,
        "every 200 came from the backend"
    );

    // The local answers are counted per reason.
    assert_eq!(
        gw.envoy
            .stat("wasmcustom.gammaroute.reason=.=backend_unavailable;.;local_replies_total"),
        failed
    );
    assert_eq!(
        gw.envoy
            .stat("wasmcustom.gammaroute.reason=.=no_backends;.;local_replies_total"),
        3
    );
    assert_eq!(
        gw.envoy
            .stat("wasmcustom.gammaroute.route_namespace=.=default;.;route=.=paths;.;rule=.=9;.;backend=.=default/match:80;.;requests_total"),
        served
    );
}
