//! The request path under attack, in a real Envoy on `envoy-configs/bootstrap.yaml`: headers
//! Envoy's router obeys are the filter's or nobody's (even from a client Envoy deems internal),
//! escaped slashes are redirected before matching, underscores in header names are refused, and
//! a huge repeated header on a regex route is cheap. README "Security model"; docs/envoy.md
//! "x-envoy headers".

use gammaroute_host_tests::fixture::Gateway;
use gammaroute_host_tests::http::{self, Response};
use serde_json::{json, Value};

const ECHO: &str = env!("CARGO_BIN_EXE_echo");
const API: &str = "default/api:80";
const ADMIN: &str = "default/admin:80";
const REGEX: &str = "default/regex:80";

/// A marker that shows up in Envoy's stats only if the router obeyed a client's
/// `x-envoy-upstream-alt-stat-name`.
const MARKER: &str = "gammaroutealtstat";

fn config() -> Value {
    let rule = |index: u32, path: Value, extra: Value, cluster: &str| {
        let mut r = json!({"index": index, "matches": [{"rank": index, "path": path}],
                           "backends": [{"weight": 1, "cluster": cluster}]});
        if let (Some(r), Some(extra)) = (r.as_object_mut(), extra.as_object()) {
            r.extend(extra.clone());
        }
        r
    };
    let mut regex_rule = rule(2, json!({"prefix": "/re"}), json!({}), REGEX);
    regex_rule["matches"][0]["headers"] = json!([{"name": "x-big", "value": {"regex": "(a+)+b"}}]);
    json!({
        "listenerPort": 80,
        "table": {
            "role": "gateway/default/web",
            "listeners": [{"name": "http", "port": 80, "attachments": [{"route": 0}]}],
            "routes": [{"namespace": "default", "name": "web", "rules": [
                rule(0, json!({"prefix": "/admin"}), json!({}), ADMIN),
                rule(1, json!({"prefix": "/slow"}), json!({"timeouts": {"requestMs": 300}}), API),
                regex_rule,
                rule(3, json!({"prefix": "/a"}), json!({}), API),
                rule(4, json!({"prefix": "/"}), json!({}), API),
            ]}]
        }
    })
}

/// An operator who trusts the pod network: every loopback client is "internal" to Envoy, so the
/// HCM keeps all of its `x-envoy-*` headers.
fn trusting_loopback(template: String) -> String {
    let anchor = "use_remote_address: true\n";
    assert!(template.contains(anchor), "bootstrap.yaml changed");
    template.replacen(
        anchor,
        "use_remote_address: true\n          internal_address_config: \
         {cidr_ranges: [{address_prefix: 127.0.0.0, prefix_len: 8}]}\n",
        1,
    )
}

/// Without the native strip filter: the filter's own removal is the only layer left.
fn without_native_strip(template: String) -> String {
    let start = template
        .find("          - name: envoy.filters.http.header_mutation")
        .expect("bootstrap.yaml has the strip filter");
    let end = template[start..]
        .find("          - name: envoy.filters.http.wasm")
        .expect("the wasm filter follows the strip filter")
        + start;
    format!("{}{}", &template[..start], &template[end..])
}

fn served_by(r: &Response) -> String {
    r.json()["service"].as_str().unwrap_or("<none>").to_string()
}

/// Every request header the backend received (canonical names) whose name starts with `prefix`.
fn upstream_with_prefix(r: &Response, prefix: &str) -> Vec<String> {
    r.json()["headers"]
        .as_object()
        .map(|h| {
            h.keys()
                .filter(|k| k.to_ascii_lowercase().starts_with(prefix))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// Client-sent control headers have no effect and reach no backend.
fn control_headers_have_no_effect(gw: &Gateway, native_strip: bool) {
    let spoofed = [
        ("x-envoy-upstream-alt-stat-name", MARKER),
        ("x-envoy-retry-grpc-on", "cancelled,unavailable"),
        ("x-envoy-hedge-on-per-try-timeout", "true"),
        ("x-envoy-retriable-header-names", "x-echo-id"),
        ("x-envoy-expected-rq-timeout-ms", "12345"),
        ("x-envoy-upstream-rq-timeout-alt-response", "204"),
        ("x-gamma-anything", "1"),
    ];
    let r = gw.get("h", "/x", &spoofed);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(served_by(&r), "api");
    let gamma = upstream_with_prefix(&r, "x-gamma-");
    assert!(gamma.is_empty(), "x-gamma-* reached the backend: {gamma:?}");
    let envoy = upstream_with_prefix(&r, "x-envoy-");
    if native_strip {
        // Everything x-envoy-* the client sent is gone (Envoy's own x-envoy-internal too).
        assert!(
            envoy.is_empty(),
            "client x-envoy-* headers reached the backend: {envoy:?}"
        );
    } else {
        assert!(
            !envoy.iter().any(|h| h == "X-Envoy-Expected-Rq-Timeout-Ms"),
            "the client's expected timeout reached the backend: {envoy:?}"
        );
    }

    // x-envoy-upstream-alt-stat-name: obeyed, the router would count under the marker.
    let stats = http::get(gw.envoy.admin, "admin", "/stats", &[]).text();
    assert!(
        !stats.contains(MARKER),
        "Envoy obeyed a client's x-envoy-upstream-alt-stat-name:\n{}",
        stats
            .lines()
            .filter(|l| l.contains(MARKER))
            .collect::<Vec<_>>()
            .join("\n")
    );

    // x-envoy-upstream-rq-timeout-alt-response: obeyed, a timeout would answer 204.
    let r = gw.get(
        "h",
        "/slow",
        &[
            ("x-echo-delay-ms", "2000"),
            ("x-envoy-upstream-rq-timeout-alt-response", "204"),
        ],
    );
    assert_eq!(r.status, 504, "the rule's timeout answers as Envoy does");
}

#[test]
fn control_headers_from_internal_clients_are_stripped_natively() {
    let gw = Gateway::start_edited(ECHO, &config(), &[API, ADMIN, REGEX], &trusting_loopback);
    control_headers_have_no_effect(&gw, true);
}

#[test]
fn control_headers_from_internal_clients_are_stripped_by_the_filter() {
    let gw = Gateway::start_edited(ECHO, &config(), &[API, ADMIN, REGEX], &|t| {
        without_native_strip(trusting_loopback(t))
    });
    // The setup is what it claims: Envoy counts the loopback client as internal (and the HCM's
    // own x-envoy-internal is left alone by the filter).
    let r = gw.get("h", "/x", &[]);
    assert_eq!(
        upstream_with_prefix(&r, "x-envoy-internal"),
        ["X-Envoy-Internal"]
    );
    control_headers_have_no_effect(&gw, false);
}

#[test]
fn escaped_slashes_are_redirected_and_underscored_headers_refused() {
    let gw = Gateway::start(ECHO, &config(), &[API, ADMIN, REGEX]);

    // `/a/..%2Fadmin` would match the `/a` rule while its backend decodes `/admin`: Envoy
    // redirects the client to the unescaped, normalised path instead, and that path gets its
    // own rule.
    let r = gw.get("h", "/a/..%2Fadmin", &[]);
    assert_eq!(r.status, 307, "{}", r.text());
    assert_eq!(r.header("location"), Some("/admin"));
    assert_eq!(served_by(&gw.get("h", "/admin", &[])), "admin");
    let r = gw.get("h", "/a%2F..%2F..%2Fadmin", &[]);
    assert_eq!(r.status, 307);
    assert_eq!(r.header("location"), Some("/admin"));
    let r = gw.get("h", "/a/x%5C..%5C..%5Cadmin", &[]);
    assert_eq!(r.status, 307);
    // A plain escaped character is not a slash: routed as it is.
    assert_eq!(served_by(&gw.get("h", "/a/b%20c", &[])), "api");

    // `x_tenant` is `x-tenant` to CGI-style backends: refused, not passed around a route.
    let r = gw.get("h", "/a", &[("x_tenant", "t1")]);
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(served_by(&gw.get("h", "/a", &[("x-tenant", "t1")])), "api");
}

#[test]
fn a_huge_repeated_header_on_a_regex_route_is_refused_cheaply() {
    let gw = Gateway::start(ECHO, &config(), &[API, ADMIN, REGEX]);
    let ok = "aaab".to_string();
    assert_eq!(served_by(&gw.get("h", "/re", &[("x-big", &ok)])), "regex");
    // 80 × 600 bytes (100 would pass neither Envoy's default 60 KiB nor the echo backend's 100
    // headers): joined, ~48 KB, beyond the regex input cap: no match (the catch-all serves it),
    // and counted.
    let value = "a".repeat(600);
    let headers: Vec<(&str, &str)> = (0..80).map(|_| ("x-big", value.as_str())).collect();
    let r = gw.get("h", "/re", &headers);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(served_by(&r), "api");
    assert!(gw.envoy.stat("wasmcustom.gammaroute.regex_input_too_long") >= 1);
}
