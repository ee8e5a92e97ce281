//! gammaroute in a real Envoy: HTTPRoute filters as clients and backends see them — request and
//! response header modifiers, URL rewrites, redirects, mirrors, CORS — and the spoofing defence
//! of the control headers.

use std::time::{Duration, Instant};

use gammaroute_host_tests::echo::Echo;
use gammaroute_host_tests::fixture::Gateway;
use gammaroute_host_tests::http::Response;
use serde_json::{json, Value};

const ECHO: &str = env!("CARGO_BIN_EXE_echo");
const PRIMARY: &str = "default/primary:80";
const SHADOW: &str = "default/shadow:80";
const AUDIT: &str = "default/audit:80";

fn served_by(r: &Response) -> String {
    r.json()["service"].as_str().unwrap_or("<none>").to_string()
}

/// Every value of a response header, in order.
fn all(r: &Response, name: &str) -> Vec<String> {
    r.headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
        .collect()
}

/// A request header as the echo received it, its values joined with `,` (RFC 9110 §5.3: how
/// Gateway API conformance compares them too); `None` when absent.
fn upstream_header(r: &Response, canonical_name: &str) -> Option<String> {
    r.json()["headers"][canonical_name]
        .as_array()
        .map(|values| {
            values
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(",")
        })
}

/// A rule forwarding `path` (PathPrefix) to the primary with `filters`.
fn forward(index: u32, rank: u32, path: Value, filters: Value) -> Value {
    json!({"index": index, "matches": [{"rank": rank, "path": path}], "filters": filters,
           "backends": [{"weight": 1, "cluster": PRIMARY}]})
}

/// A redirect rule on an Exact path.
fn redirect(index: u32, rank: u32, path: &str, redirect: Value) -> Value {
    json!({"index": index, "matches": [{"rank": rank, "path": {"exact": path}}],
           "filters": [{"requestRedirect": redirect}]})
}

/// One Gateway listener on port 8080 (not a scheme's default port, so redirects that keep the
/// listener's port show it).
fn table() -> Value {
    let rules = json!([
        forward(0, 0, json!({"prefix": "/headers"}), json!([
            {"requestHeaderModifier": {
                "set": [{"name": "X-Set", "value": "set-by-route"}],
                "add": [{"name": "x-add", "value": "added"}],
                "remove": ["x-remove"]}},
            {"responseHeaderModifier": {
                "set": [{"name": "x-resp-set", "value": "set-by-route"}],
                "add": [{"name": "x-resp-add", "value": "added"}],
                "remove": ["x-resp-remove"]}}
        ])),
        forward(1, 1, json!({"prefix": "/host-rw"}), json!([
            {"urlRewrite": {"hostname": "rewritten.example"}}
        ])),
        forward(2, 2, json!({"prefix": "/full"}), json!([
            {"urlRewrite": {"path": {"replaceFullPath": "/replaced"}}}
        ])),
        forward(3, 3, json!({"prefix": "/prefix/"}), json!([
            {"urlRewrite": {"hostname": "both.example", "path": {"replacePrefixMatch": "/new"}}}
        ])),
        forward(4, 4, json!({"prefix": "/strip"}), json!([
            {"urlRewrite": {"path": {"replacePrefixMatch": "/"}}}
        ])),
        redirect(5, 5, "/r/scheme", json!({"scheme": "https", "statusCode": 302})),
        redirect(6, 6, "/r/host", json!({"hostname": "other.example", "statusCode": 301})),
        redirect(7, 7, "/r/port", json!({"port": 9090, "statusCode": 303})),
        {"index": 8, "matches": [{"rank": 8, "path": {"prefix": "/r/path"}}],
         "filters": [
            {"requestRedirect": {"path": {"replacePrefixMatch": "/moved"}, "statusCode": 307}},
            {"responseHeaderModifier": {"set": [{"name": "x-redirected", "value": "yes"}]}}
         ]},
        redirect(9, 9, "/r/full", json!({"scheme": "https", "hostname": "secure.example", "port": 8443,
                                         "path": {"replaceFullPath": "/elsewhere"}, "statusCode": 308})),
        forward(10, 10, json!({"prefix": "/mirror-all"}), json!([
            {"requestMirror": {"cluster": SHADOW, "numerator": 1, "denominator": 1}}
        ])),
        forward(11, 11, json!({"prefix": "/mirror-30"}), json!([
            {"requestMirror": {"cluster": SHADOW, "numerator": 30, "denominator": 100}}
        ])),
        forward(12, 12, json!({"prefix": "/mirror-two"}), json!([
            {"requestMirror": {"cluster": SHADOW, "numerator": 1, "denominator": 1}},
            {"requestMirror": {"cluster": AUDIT, "numerator": 1, "denominator": 1}}
        ])),
        forward(13, 13, json!({"prefix": "/cors"}), json!([
            {"cors": {"allowOrigins": ["https://*.example.com", "http://app.test:3000"],
                      "allowCredentials": true,
                      "allowMethods": ["GET", "PUT"],
                      "allowHeaders": ["x-a", "x-b"],
                      "exposeHeaders": ["x-trace"],
                      "maxAgeSeconds": 600}}
        ])),
        forward(14, 14, json!({"prefix": "/"}), json!([]))
    ]);
    json!({
        "listenerPort": 8080,
        "table": {
            "role": "gateway/default/web",
            "listeners": [{"name": "http", "port": 8080, "attachments": [{"route": 0}]}],
            "routes": [{"namespace": "default", "name": "filters", "rules": rules}]
        }
    })
}

/// Waits until `echo` has served `want` requests with `x-echo-id: id` (mirrors are fire and
/// forget: they may land after the client's answer), then a little longer to catch extras.
fn settle(echo: &Echo, id: &str, want: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    while echo.seen(id).1 < want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    echo.seen(id).1
}

#[test]
fn header_modifiers_rewrites_and_redirects_through_envoy() {
    let gw = Gateway::start(ECHO, &table(), &[PRIMARY, SHADOW]);
    let primary = &gw.backends[PRIMARY];

    // Request headers: set replaces the client's value, add appends to it, remove drops it.
    // Response headers: the same on what the backend answered.
    let r = gw.get(
        "shop.example",
        "/headers",
        &[
            ("x-set", "from-client"),
            ("x-add", "from-client"),
            ("x-remove", "secret"),
            ("x-echo-response-header", "x-resp-set=from-backend"),
            ("x-echo-response-header", "x-resp-add=from-backend"),
            ("x-echo-response-header", "x-resp-remove=from-backend"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        upstream_header(&r, "X-Set").as_deref(),
        Some("set-by-route")
    );
    assert_eq!(
        upstream_header(&r, "X-Add").as_deref(),
        Some("from-client,added")
    );
    assert_eq!(upstream_header(&r, "X-Remove"), None);
    assert_eq!(all(&r, "x-resp-set"), ["set-by-route"]);
    assert_eq!(all(&r, "x-resp-add").join(","), "from-backend,added");
    assert!(all(&r, "x-resp-remove").is_empty(), "{:?}", r.headers);
    // Without the client's header, add simply adds.
    let r = gw.get("shop.example", "/headers", &[]);
    assert_eq!(upstream_header(&r, "X-Add").as_deref(), Some("added"));
    assert_eq!(all(&r, "x-resp-add"), ["added"]);

    // URLRewrite hostname: the Host sent upstream; the path is untouched.
    let r = gw.get("shop.example:8080", "/host-rw/a?b=1", &[]);
    assert_eq!(r.json()["host"], "rewritten.example");
    assert_eq!(r.json()["path"], "/host-rw/a?b=1");
    // ReplaceFullPath: the whole path, query kept; the Host as the client sent it.
    let r = gw.get("shop.example:8080", "/full/deep/x?q=1&r=2", &[]);
    assert_eq!(r.json()["path"], "/replaced?q=1&r=2");
    assert_eq!(r.json()["host"], "shop.example:8080");
    // ReplacePrefixMatch, element-wise, with the query, together with a hostname rewrite.
    let r = gw.get("shop.example", "/prefix/a/b?q=1", &[]);
    assert_eq!(r.json()["path"], "/new/a/b?q=1");
    assert_eq!(r.json()["host"], "both.example");
    let r = gw.get("shop.example", "/prefix", &[]);
    assert_eq!(r.json()["path"], "/new");
    // Replacing a prefix with `/`.
    assert_eq!(gw.get("h", "/strip/x?y", &[]).json()["path"], "/x?y");
    assert_eq!(gw.get("h", "/strip", &[]).json()["path"], "/");
    assert_eq!(gw.get("h", "/stripped", &[]).json()["path"], "/stripped");

    // Redirects, one per status code: answered by the filter, never forwarded.
    let before = primary.seen("").0;
    let cases = [
        // A scheme brings its default port, which is left out.
        ("/r/scheme?a=1", 302, "https://shop.example/r/scheme?a=1"),
        // No scheme or port: the listener's port (8080); the Host's own port never counts.
        ("/r/host", 301, "http://other.example:8080/r/host"),
        ("/r/port", 303, "http://shop.example:9090/r/port"),
        ("/r/path/x?q=1", 307, "http://shop.example:8080/moved/x?q=1"),
        ("/r/path", 307, "http://shop.example:8080/moved"),
        ("/r/full?z", 308, "https://secure.example:8443/elsewhere?z"),
    ];
    for (path, status, location) in cases {
        let r = gw.get("shop.example:8080", path, &[]);
        assert_eq!(r.status, status, "{path}: {}", r.text());
        assert_eq!(r.header("location"), Some(location), "{path}");
    }
    // A ResponseHeaderModifier after the redirect edits the redirect.
    let r = gw.get("shop.example", "/r/path/x", &[]);
    assert_eq!(r.header("x-redirected"), Some("yes"));
    // The Host as sent (case kept), without its port.
    let r = gw.get("Shop.Example:8080", "/r/port", &[]);
    assert_eq!(
        r.header("location"),
        Some("http://Shop.Example:9090/r/port")
    );
    assert_eq!(primary.seen("").0, before, "a redirect reached the backend");
}

#[test]
fn mirrors_cors_and_spoofed_control_headers_through_envoy() {
    let gw = Gateway::start(ECHO, &table(), &[PRIMARY, SHADOW, AUDIT]);
    let primary = &gw.backends[PRIMARY];
    let shadow = &gw.backends[SHADOW];
    let audit = &gw.backends[AUDIT];

    // A 100% mirror: the shadow gets a copy of every request, the client only the primary's
    // answer.
    for _ in 0..10 {
        let r = gw.get(
            "shop.example",
            "/mirror-all/x?q=1",
            &[("x-echo-id", "all"), ("x-custom", "kept")],
        );
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(served_by(&r), "primary");
        // The cluster header never reaches the primary. The slot of a mirror that fired does:
        // Envoy reads it after every point where it could be removed (envoy-configs).
        let headers = &r.json()["headers"];
        assert!(headers.get("X-Gamma-Cluster").is_none(), "{headers}");
        assert_eq!(headers["X-Gamma-Mirror-0"], json!([SHADOW]), "{headers}");
        assert!(headers.get("X-Gamma-Mirror-1").is_none(), "{headers}");
    }
    assert_eq!(settle(shadow, "all", 10), 10);
    assert_eq!(primary.seen("all").1, 10);
    let copy = shadow.last("all");
    assert_eq!(copy["path"], "/mirror-all/x?q=1");
    assert_eq!(copy["method"], "GET");
    // Envoy marks a shadow's Host with `-shadow`.
    assert_eq!(copy["host"], "shop.example-shadow");
    assert_eq!(copy["headers"]["X-Custom"], json!(["kept"]));
    for control in ["X-Gamma-Cluster", "X-Gamma-Mirror-0", "X-Gamma-Mirror-1"] {
        assert!(copy["headers"].get(control).is_none(), "{control}: {copy}");
    }
    // Two mirrors, two slots: each mirror gets one copy, cleaned of both slot headers.
    let r = gw.get("shop.example", "/mirror-two", &[("x-echo-id", "two")]);
    assert_eq!(served_by(&r), "primary");
    assert_eq!(settle(shadow, "two", 1), 1);
    assert_eq!(settle(audit, "two", 1), 1);
    for copy in [shadow.last("two"), audit.last("two")] {
        assert_eq!(copy["path"], "/mirror-two");
        for control in ["X-Gamma-Cluster", "X-Gamma-Mirror-0", "X-Gamma-Mirror-1"] {
            assert!(copy["headers"].get(control).is_none(), "{control}: {copy}");
        }
    }

    // A 30% mirror over 400 requests. Binomial(400, 0.3): mean 120, sd 9.2; ±5 sd.
    for _ in 0..400 {
        let r = gw.get("shop.example", "/mirror-30", &[("x-echo-id", "thirty")]);
        assert_eq!(r.status, 200);
    }
    let mirrored = settle(shadow, "thirty", 74);
    assert!((74..=166).contains(&mirrored), "{mirrored}/400 mirrored");
    assert_eq!(primary.seen("thirty").1, 400);

    // A client cannot pick the cluster nor trigger a mirror with the control headers, on a rule
    // without mirrors or on top of the rule's own mirror.
    let spoof = [
        ("x-gamma-cluster", SHADOW),
        ("x-gamma-mirror-0", SHADOW),
        ("x-gamma-mirror-1", SHADOW),
    ];
    for path in ["/plain", "/headers", "/full"] {
        let mut headers = spoof.to_vec();
        headers.push(("x-echo-id", "spoof"));
        let r = gw.get("shop.example", path, &headers);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(served_by(&r), "primary");
    }
    let mut headers = spoof.to_vec();
    headers.push(("x-echo-id", "spoof-all"));
    let r = gw.get("shop.example", "/mirror-all", &headers);
    assert_eq!(served_by(&r), "primary");
    assert_eq!(settle(shadow, "spoof-all", 1), 1, "one mirror, not two");
    assert_eq!(
        shadow.seen("spoof").1,
        0,
        "a client-sent slot fired a mirror"
    );
    assert_eq!(primary.seen("spoof").1, 3);

    // CORS preflight: answered by the filter with the allowed origin, methods, headers, max
    // age and credentials; nothing is forwarded.
    let before = primary.seen("").0;
    let r = gw.request(
        "OPTIONS",
        "api.example",
        "/cors/items",
        &[
            ("origin", "https://app.example.com"),
            ("access-control-request-method", "PUT"),
            ("access-control-request-headers", "x-a"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(r.header("access-control-allow-methods"), Some("GET, PUT"));
    assert_eq!(r.header("access-control-allow-headers"), Some("x-a, x-b"));
    assert_eq!(r.header("access-control-max-age"), Some("600"));
    assert_eq!(all(&r, "vary"), ["Origin"]);
    // An origin outside the list (the port counts): a plain 200 without CORS headers, which
    // the browser treats as a refusal.
    let r = gw.request(
        "OPTIONS",
        "api.example",
        "/cors/items",
        &[
            ("origin", "http://app.test:3001"),
            ("access-control-request-method", "GET"),
        ],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), None);
    assert_eq!(r.header("access-control-allow-methods"), None);
    assert_eq!(primary.seen("").0, before, "a preflight was forwarded");

    // An OPTIONS without Access-Control-Request-Method is not a preflight: forwarded.
    let r = gw.request(
        "OPTIONS",
        "api.example",
        "/cors/items",
        &[("origin", "http://app.test:3000")],
    );
    assert_eq!(r.json()["method"], "OPTIONS");
    // Actual requests from an allowed origin get the CORS response headers; `Vary: Origin` is
    // appended to the backend's own Vary.
    let r = gw.get(
        "api.example",
        "/cors/items",
        &[
            ("origin", "http://app.test:3000"),
            ("x-echo-response-header", "vary=Accept-Encoding"),
        ],
    );
    assert_eq!(served_by(&r), "primary");
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://app.test:3000")
    );
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(r.header("access-control-expose-headers"), Some("x-trace"));
    assert_eq!(all(&r, "vary").join(","), "Accept-Encoding,Origin");
    // ...and from another origin, none.
    let r = gw.get(
        "api.example",
        "/cors/items",
        &[("origin", "https://example.com")],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), None);
}
