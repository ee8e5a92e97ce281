//! `config-pusher render` output run for real: the gateway bootstrap rendered from `examples/`
//! (with `--listen 127.0.0.1:0` and `--backend` pointing every Service port at an echo backend)
//! started in Envoy with the release .wasm, and the examples' curls sent through it. Envoy and
//! the .wasm are required: the test fails when either is missing.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use config_pusher::render::{self, envoy as bootstrap};
use config_pusher::source::files;
use config_pusher::translate::{self, Settings};
use gammaroute_host_tests::echo::Echo;
use gammaroute_host_tests::envoy::Envoy;
use gammaroute_host_tests::{http, wasm_path, workspace_root};

/// The backend Service ports of examples/01-services.yaml.
const BACKENDS: [&str; 7] = [
    "demo/web-v1:80",
    "demo/web-v2:80",
    "demo/api:80",
    "demo/api-beta:80",
    "demo/flaky:80",
    "demo/reviews-v1:9080",
    "demo/reviews-v2:9080",
];

fn service(r: &http::Response) -> String {
    r.json()["service"].as_str().unwrap_or("<none>").to_string()
}

#[test]
fn the_examples_gateway_rendered_by_config_pusher_routes_traffic_in_envoy() {
    // One echo backend per Service port, on a loopback address of this process.
    let pid = std::process::id() % 200;
    let echoes: BTreeMap<&str, Echo> = BACKENDS
        .iter()
        .enumerate()
        .map(|(i, cluster)| {
            let addr: SocketAddr =
                format!("127.{}.{}.{}:8080", 30 + pid / 100, pid % 100 + 1, i + 1)
                    .parse()
                    .unwrap();
            let (ns, rest) = cluster.split_once('/').unwrap();
            let svc = rest.split(':').next().unwrap();
            (
                *cluster,
                Echo::start(env!("CARGO_BIN_EXE_echo"), addr, ns, svc),
            )
        })
        .collect();

    let (store, report) = files::load(&workspace_root().join("examples"));
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let output = translate::translate(&store, &Settings::default());
    let options = bootstrap::BootstrapOptions {
        wasm: wasm_path().display().to_string(),
        listen: Some("127.0.0.1:0".parse().unwrap()),
        backends: echoes
            .iter()
            .map(|(c, e)| (c.to_string(), vec![e.addr]))
            .collect(),
        ..bootstrap::BootstrapOptions::default()
    };
    let rendered = render::render(&store, &output, &options).unwrap();
    let gw = rendered
        .bootstraps()
        .find(|f| f.role.as_deref() == Some("gateway/demo/gateway"))
        .expect("a bootstrap for the demo Gateway");
    let envoy = Envoy::start(std::str::from_utf8(&gw.content).unwrap());
    let at = envoy.listener("gammaroute");
    let get = |host: &str, path: &str, headers: &[(&str, &str)]| {
        let mut all = vec![("host", host)];
        all.extend_from_slice(headers);
        http::send(at, "GET", path, &all).unwrap_or_else(|e| panic!("{host}{path}: {e}"))
    };

    // 10-canary: 90/10.
    let mut split: BTreeMap<String, u32> = BTreeMap::new();
    for _ in 0..200 {
        let r = get("shop.example", "/", &[]);
        assert_eq!(r.status, 200, "{}", r.text());
        *split.entry(service(&r)).or_default() += 1;
    }
    let v2 = split.get("web-v2").copied().unwrap_or(0);
    assert_eq!(split.values().sum::<u32>(), 200, "{split:?}");
    assert!(
        (5..=45).contains(&v2),
        "expected about 20 of 200 on web-v2: {split:?}"
    );

    // 20-header-query-routing: the rule that answered is in x-route.
    for (headers, path, want, rule) in [
        (vec![], "/items", "api", "default"),
        (
            vec![("x-beta", "true")],
            "/items",
            "api-beta",
            "beta-header",
        ),
        (vec![], "/items?beta=1", "api-beta", "beta-query"),
        (
            vec![("x-user", "ann@example.com")],
            "/items",
            "api-beta",
            "beta-staff",
        ),
    ] {
        let r = get("api.example", path, &headers);
        assert_eq!(
            (service(&r).as_str(), r.header("x-route")),
            (want, Some(rule)),
            "{path} {headers:?}"
        );
    }
    assert_eq!(get("api.example", "/other", &[]).status, 404);

    // 30-redirect-rewrite.
    let r = get("www.example", "/store/cart", &[]);
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("http://shop.example:8080/cart"));
    let r = get("www.example", "/docs/install", &[]);
    let echo = r.json();
    assert_eq!(service(&r), "web-v1");
    assert_eq!(echo["path"], "/v2/docs/install");
    assert_eq!(echo["host"], "docs.internal");
    assert_eq!(echo["headers"]["X-Rewritten"][0], "true");

    // 40-retries-timeouts: two 503s retried; too many passed on; a slow backend times out.
    let id = format!("retry-{}", std::process::id());
    let r = get(
        "flaky.example",
        "/",
        &[("x-echo-id", id.as_str()), ("x-echo-fail-first", "2")],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(echoes["demo/flaky:80"].seen(&id).1, 3, "three attempts");
    let r = get(
        "flaky.example",
        "/",
        &[("x-echo-id", "many"), ("x-echo-fail-first", "9")],
    );
    assert_eq!(r.status, 503);
    let started = std::time::Instant::now();
    let r = get("flaky.example", "/", &[("x-echo-delay-ms", "3000")]);
    assert_eq!(r.status, 504, "{}", r.text());
    assert!(
        started.elapsed().as_millis() < 1500,
        "{:?}",
        started.elapsed()
    );

    // 90-broken: the missing backend answers 500.
    assert_eq!(get("broken.example", "/", &[]).status, 500);
}
