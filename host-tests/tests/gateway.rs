//! gammaroute in a real Envoy, as a gateway: matching, splitting, filters, timeouts, retries.

use gammaroute_host_tests::fixture::Gateway;
use serde_json::json;

const ECHO: &str = env!("CARGO_BIN_EXE_echo");

/// The backend (echo `service`) that answered.
fn served_by(r: &gammaroute_host_tests::http::Response) -> String {
    r.json()["service"].as_str().unwrap_or("<none>").to_string()
}

fn shop() -> serde_json::Value {
    json!({
        "listenerPort": 80,
        "table": {
            "role": "gateway/default/web",
            "listeners": [{"name": "http", "port": 80, "attachments": [
                {"route": 0, "hostnames": ["shop.example"]},
                {"route": 1}
            ]}],
            "routes": [
                {"namespace": "default", "name": "shop", "rules": [
                    {"index": 0, "matches": [{"rank": 0, "path": {"prefix": "/api"}, "headers": [{"name": "x-env", "value": {"exact": "canary"}}]}],
                     "filters": [
                        {"requestHeaderModifier": {"set": [{"name": "x-via", "value": "gamma"}], "remove": ["x-secret"]}},
                        {"responseHeaderModifier": {"add": [{"name": "x-served-by", "value": "gammaroute"}]}}
                     ],
                     "backends": [{"weight": 1, "cluster": "default/canary:80"}]},
                    {"index": 1, "matches": [{"rank": 1, "path": {"prefix": "/api"}}],
                     "backends": [{"weight": 90, "cluster": "default/api:80"}, {"weight": 10, "cluster": "default/canary:80"}, {"weight": 0, "cluster": "default/never:80"}]},
                    {"index": 2, "matches": [{"rank": 2, "path": {"exact": "/old"}}],
                     "filters": [{"requestRedirect": {"path": {"replaceFullPath": "/new"}, "statusCode": 301}}]},
                    {"index": 3, "matches": [{"rank": 3, "path": {"prefix": "/v1"}}],
                     "filters": [{"urlRewrite": {"hostname": "internal.example", "path": {"replacePrefixMatch": "/v2"}}}],
                     "backends": [{"weight": 1, "cluster": "default/api:80"}]}
                ]},
                {"namespace": "default", "name": "site", "rules": [
                    {"index": 0, "matches": [{"rank": 10, "path": {"exact": "/"}}], "backends": [{"weight": 1, "cluster": "default/site:80"}]}
                ]}
            ]
        }
    })
}

#[test]
fn routes_splits_and_filters_through_envoy() {
    let gw = Gateway::start(
        ECHO,
        &shop(),
        &[
            "default/api:80",
            "default/canary:80",
            "default/never:80",
            "default/site:80",
        ],
    );

    // Header match, request/response header modifiers.
    let r = gw.get(
        "shop.example",
        "/api/items",
        &[("x-env", "canary"), ("x-secret", "s")],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(served_by(&r), "canary");
    let headers = &r.json()["headers"];
    assert_eq!(headers["X-Via"], json!(["gamma"]));
    assert!(
        headers.get("X-Secret").is_none(),
        "removed header forwarded: {headers}"
    );
    assert!(
        headers.get("X-Gamma-Cluster").is_none(),
        "control header leaked upstream"
    );
    assert_eq!(r.header("x-served-by"), Some("gammaroute"));

    // 90/10 split over 1,000 requests; weight 0 gets nothing.
    let mut counts = std::collections::BTreeMap::<String, u32>::new();
    for _ in 0..1000 {
        let r = gw.get("shop.example", "/api/x", &[]);
        assert_eq!(r.status, 200);
        *counts.entry(served_by(&r)).or_default() += 1;
    }
    let canary = counts.get("canary").copied().unwrap_or(0);
    // Binomial(1000, 0.1): mean 100, sd ~9.5; ±5 sd.
    assert!(
        (52..=148).contains(&canary),
        "canary share {canary}/1000: {counts:?}"
    );
    assert_eq!(counts.get("never"), None, "{counts:?}");

    // Redirect: listener port 80 is the scheme's default, so no port in Location; query kept.
    let r = gw.get("shop.example:80", "/old?q=1", &[]);
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("http://shop.example/new?q=1"));

    // URL rewrite: host and prefix.
    let r = gw.get("shop.example", "/v1/users?id=7", &[]);
    assert_eq!(r.json()["path"], "/v2/users?id=7");
    assert_eq!(r.json()["host"], "internal.example");

    // Hostnames: the shop route only serves shop.example; other hosts see the site route.
    assert_eq!(served_by(&gw.get("other.example", "/", &[])), "site");
    assert_eq!(gw.get("other.example", "/api/x", &[]).status, 404);

    // A client cannot steer the request with the control header.
    let r = gw.get(
        "other.example",
        "/",
        &[("x-gamma-cluster", "default/never:80")],
    );
    assert_eq!(served_by(&r), "site");

    // Metrics per route/rule/backend.
    assert!(
        gw.envoy
            .stat("wasmcustom.gammaroute.route_namespace=.=default;.;route=.=shop;.;rule=.=1;.;backend=.=default/canary:80;.;requests_total")
            >= 52
    );
    assert!(
        gw.envoy
            .stat("wasmcustom.gammaroute.reason=.=no_route;.;local_replies_total")
            >= 1
    );

    // The same counters on /stats/prometheus, labelled by the bootstrap's stats_tags.
    let canary = gw
        .envoy
        .stat("wasmcustom.gammaroute.route_namespace=.=default;.;route=.=shop;.;rule=.=1;.;backend=.=default/canary:80;.;requests_total");
    let prom = gw.envoy.prometheus();
    for line in [
        "# TYPE gammaroute_requests_total counter".to_string(),
        format!(
            "gammaroute_requests_total{{route_namespace=\"default\",route=\"shop\",rule=\"1\",backend=\"default/canary:80\"}} {canary}"
        ),
        "# TYPE gammaroute_local_replies_total counter".to_string(),
        "# TYPE gammaroute_table_version gauge".to_string(),
        "# TYPE gammaroute_table_applied_timestamp_seconds gauge".to_string(),
    ] {
        assert!(prom.lines().any(|l| l == line), "no `{line}` in\n{prom}");
    }
    assert!(
        prom.lines()
            .any(|l| l.starts_with("gammaroute_local_replies_total{reason=\"no_route\"} ")),
        "{prom}"
    );
    let applied: u64 = prom
        .lines()
        .find_map(|l| {
            l.strip_prefix("gammaroute_table_applied_timestamp_seconds{} ")?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no applied timestamp in\n{prom}"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(applied <= now && now - applied < 600, "{applied} vs {now}");
    // No gammaroute series is left with its labels in the name.
    assert!(
        !prom
            .lines()
            .any(|l| l.contains("gammaroute") && l.contains("_._")),
        "{prom}"
    );
}

#[test]
fn timeouts_and_retries_are_executed_by_envoy() {
    let config = json!({
        "listenerPort": 80,
        "table": {
            "role": "gateway/default/web",
            "listeners": [{"name": "http", "port": 80, "attachments": [{"route": 0}]}],
            "routes": [{"namespace": "default", "name": "flaky", "rules": [
                {"index": 0, "matches": [{"rank": 0, "path": {"prefix": "/slow"}}],
                 "timeouts": {"requestMs": 300}, "backends": [{"weight": 1, "cluster": "default/api:80"}]},
                {"index": 1, "matches": [{"rank": 1, "path": {"prefix": "/per-try"}}],
                 "timeouts": {"requestMs": 5000, "backendRequestMs": 200},
                 "retry": {"attempts": 2, "codes": [503]},
                 "backends": [{"weight": 1, "cluster": "default/api:80"}]},
                {"index": 2, "matches": [{"rank": 2, "path": {"prefix": "/retry"}}],
                 "retry": {"attempts": 2, "codes": [503]},
                 "backends": [{"weight": 1, "cluster": "default/api:80"}]},
                {"index": 3, "matches": [{"rank": 3, "path": {"prefix": "/"}}],
                 "backends": [{"weight": 1, "cluster": "default/api:80"}]}
            ]}]
        }
    });
    let gw = Gateway::start(ECHO, &config, &["default/api:80"]);
    let api = &gw.backends["default/api:80"];

    // timeouts.request: 504 when the backend is slower.
    let started = std::time::Instant::now();
    let r = gw.get("h", "/slow", &[("x-echo-delay-ms", "2000")]);
    assert_eq!(r.status, 504);
    assert!(started.elapsed() < std::time::Duration::from_millis(1500));

    // retry: fails twice with 503, succeeds on the third try (attempts: 2 retries).
    let r = gw.get(
        "h",
        "/retry",
        &[("x-echo-id", "r1"), ("x-echo-fail-first", "2")],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(api.seen("r1").1, 3);
    // ...and stops at `attempts`: three failures answer the last 503.
    let r = gw.get(
        "h",
        "/retry",
        &[("x-echo-id", "r2"), ("x-echo-fail-first", "3")],
    );
    assert_eq!(r.status, 503);
    assert_eq!(api.seen("r2").1, 3);
    // A code not listed is not retried.
    let r = gw.get(
        "h",
        "/retry",
        &[
            ("x-echo-id", "r3"),
            ("x-echo-fail-first", "1"),
            ("x-echo-status", "500"),
        ],
    );
    assert_eq!(r.status, 500);
    assert_eq!(api.seen("r3").1, 1);

    // backendRequest: each try times out after 200 ms and is retried; 504 at the end.
    let r = gw.get(
        "h",
        "/per-try",
        &[("x-echo-id", "p1"), ("x-echo-delay-ms", "1000")],
    );
    assert_eq!(r.status, 504);
    assert_eq!(api.seen("p1").1, 3);

    // Without a retry stanza a client cannot ask Envoy for retries.
    let r = gw.get(
        "h",
        "/plain",
        &[
            ("x-echo-id", "c1"),
            ("x-echo-fail-first", "1"),
            ("x-envoy-max-retries", "3"),
            ("x-envoy-retry-on", "5xx"),
        ],
    );
    assert_eq!(r.status, 503);
    assert_eq!(api.seen("c1").1, 1);
}
