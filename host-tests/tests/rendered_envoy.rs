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

/// Services for the mesh sidecars `render` writes (GEP-1294, the upstream MeshBasic, MeshPorts,
/// MeshFrontendHostname and MeshConsumerRoute tests): `shop/api` (ports 18080, 18081),
/// `shop/web` (18080), `other/db` (18080, 18081) on `127.42.<n>.x`; `api` port 18080 only has a
/// producer route to `api-v2` and, for clients in `frontend`, a consumer route to `api-v3`.
/// Namespace `batch` has no route of its own.
fn mesh_yaml(n: u32) -> String {
    let svc = |ns: &str, name: &str, ip: u32, ports: &[u16]| {
        let ports: Vec<String> = ports
            .iter()
            .map(|p| format!("{{port: {p}, name: p{p}}}"))
            .collect();
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {{clusterIP: 127.42.{n}.{ip}, ports: [{}]}}\n---\n",
            ports.join(", ")
        )
    };
    let mut out = String::new();
    for ns in ["frontend", "batch"] {
        out += &format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\n");
    }
    out += &svc("shop", "api", 1, &[18080, 18081]);
    out += &svc("shop", "web", 2, &[18080]);
    out += &svc("other", "db", 3, &[18080, 18081]);
    out += &svc("shop", "api-v2", 4, &[8080]);
    out += &svc("shop", "api-v3", 5, &[8080]);
    let route = |ns: &str, name: &str, backend: &str| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}, namespace: {ns}}}
spec:
  parentRefs: [{{group: \"\", kind: Service, name: api, namespace: shop, port: 18080}}]
  rules:
  - backendRefs: [{{name: {backend}, namespace: shop, port: 8080}}]
---
"
        )
    };
    out += &route("shop", "api-to-v2", "api-v2");
    out += &route("frontend", "api-pin", "api-v3");
    out
}

#[test]
fn rendered_mesh_sidecars_apply_routes_to_what_they_name_and_nothing_else() {
    let n = std::process::id() % 200 + 1;
    let folder = gammaroute_host_tests::live::Scratch::new("rendered-mesh");
    folder.write("mesh.yaml", &mesh_yaml(n));
    let (store, report) = files::load(&folder.0);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let output = translate::translate(&store, &Settings::default());
    let frontends = bootstrap::frontends(&store);
    let mut clusters: Vec<&str> = frontends.values().map(String::as_str).collect();
    clusters.dedup();
    assert_eq!(clusters.len(), 7, "{frontends:?}");
    let echoes =
        gammaroute_host_tests::fixture::start_backends(env!("CARGO_BIN_EXE_echo"), &clusters, 50);
    let options = bootstrap::BootstrapOptions {
        wasm: wasm_path().display().to_string(),
        backends: echoes
            .iter()
            .map(|(c, e)| (c.to_string(), vec![e.addr]))
            .collect(),
        ..bootstrap::BootstrapOptions::default()
    };
    let rendered = render::render(&store, &output, &options).unwrap();
    let at =
        |ip: u32, port: u16| -> SocketAddr { format!("127.42.{n}.{ip}:{port}").parse().unwrap() };
    let api = at(1, 18080);
    let own = [
        (at(1, 18081), "shop/api:18081"),
        (at(2, 18080), "shop/web:18080"),
        (at(3, 18080), "other/db:18080"),
        (at(3, 18081), "other/db:18081"),
    ];
    // Every namespace gets a sidecar, `batch` without routes of its own included.
    for role in ["mesh/batch", "mesh/frontend", "mesh/shop", "mesh/other"] {
        assert!(
            rendered
                .bootstraps()
                .any(|f| f.role.as_deref() == Some(role)),
            "{role}: {:?}",
            rendered.notes
        );
    }
    let mut id = 0;
    for (role, routed_to) in [("mesh/batch", "api-v2"), ("mesh/frontend", "api-v3")] {
        let file = rendered
            .bootstraps()
            .find(|f| f.role.as_deref() == Some(role))
            .unwrap();
        assert_eq!(file.listen.len(), 7, "{:?}", file.listen);
        let envoy = Envoy::start(std::str::from_utf8(&file.content).unwrap());
        // The routed port: its route, whatever Service the Host names (MeshFrontendHostname).
        for host in ["api.shop", "web.shop.svc.cluster.local", "db.other"] {
            let r = http::send(api, "GET", "/", &[("host", host)]).unwrap();
            assert_eq!(service(&r), routed_to, "{role} {host}: {}", envoy.log());
        }
        // Every other Service port reaches that Service port, untouched (MeshPorts, MeshBasic).
        for (addr, cluster) in own {
            id += 1;
            let echo_id = format!("own-{id}");
            let r = http::send(
                addr,
                "GET",
                "/x",
                &[("host", "api.shop"), ("x-echo-id", &echo_id)],
            )
            .unwrap();
            assert_eq!(r.status, 200, "{role} {addr}: {}", r.text());
            assert_eq!(echoes[cluster].seen(&echo_id).1, 1, "{role} {addr}");
        }
    }
}
