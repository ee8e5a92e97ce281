//! gammaroute in a real Envoy as a GAMMA sidecar: the parent Service is the address the client
//! called (ClusterIP:port), producer routes apply to every client namespace and a namespace's
//! consumer routes take over for that namespace only; whatever no route applies to — no table yet,
//! an unrouted Service or port — reaches the Service it was sent to, untouched.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gammaroute_host_tests::fixture::Proxy;
use gammaroute_host_tests::http::{self, Response};
use gammaroute_host_tests::live::{free_port, Pusher, Scratch};
use serde_json::{json, Value};

const ECHO: &str = env!("CARGO_BIN_EXE_echo");

fn served_by(r: &Response) -> String {
    r.json()["service"].as_str().unwrap_or("<none>").to_string()
}

fn frontend(ip: &str) -> SocketAddr {
    format!("{ip}:18080").parse().unwrap()
}

/// Two Services in namespace `shop`: `api` (ClusterIP 127.30.<n>.1) split 50/50 between its v1
/// and v2 by its producer route, and `web` (127.30.<n>.2). `consumer` adds the `frontend`
/// namespace's consumer route that sends all of `api` to v2.
fn table(client_namespace: &str, consumer: bool, n: u8) -> Value {
    let producer_api = json!({"namespace": "shop", "name": "api-split", "rules": [
        {"index": 0, "matches": [{"rank": 0, "path": {"prefix": "/"}}],
         "filters": [{"requestHeaderModifier": {"set": [{"name": "x-route", "value": "producer"}]}}],
         "backends": [{"weight": 50, "cluster": "shop/api-v1:8080"}, {"weight": 50, "cluster": "shop/api-v2:8080"}]}
    ]});
    let consumer_api = json!({"namespace": client_namespace, "name": "api-pin", "rules": [
        {"index": 0, "matches": [{"rank": 0, "path": {"prefix": "/"}}],
         "filters": [{"requestHeaderModifier": {"set": [{"name": "x-route", "value": "consumer"}]}}],
         "backends": [{"weight": 1, "cluster": "shop/api-v2:8080"}]}
    ]});
    let web = json!({"namespace": "shop", "name": "web", "rules": [
        {"index": 0, "matches": [{"rank": 0, "path": {"exact": "/"}}], "backends": [{"weight": 1, "cluster": "shop/web:8080"}]}
    ]});
    let (api_route, origin) = if consumer {
        (consumer_api, "consumer")
    } else {
        (producer_api, "producer")
    };
    json!({"table": {
        "role": format!("mesh/{client_namespace}"),
        "services": [
            {"namespace": "shop", "name": "api", "clusterIps": [format!("127.30.{n}.1")],
             "ports": [{"port": 18080, "name": "http", "origin": origin, "attachments": [{"route": 0}]}]},
            {"namespace": "shop", "name": "web", "clusterIps": [format!("127.30.{n}.2")],
             "ports": [{"port": 18080, "name": "http", "origin": "producer", "attachments": [{"route": 1}]}]}
        ],
        "routes": [api_route, web]
    }})
}

#[test]
fn parent_is_the_called_service_and_consumer_routes_win_in_their_namespace() {
    let clusters = ["shop/api-v1:8080", "shop/api-v2:8080", "shop/web:8080"];
    // A client in namespace `frontend` has a consumer route for `api`; one in `batch` does not.
    let frontend_ns = Proxy::sidecar(
        ECHO,
        &table("frontend", true, 1),
        &clusters,
        &[frontend("127.30.1.1"), frontend("127.30.1.2")],
    );
    let batch_ns = Proxy::sidecar(
        ECHO,
        &table("batch", false, 2),
        &clusters,
        &[frontend("127.30.2.1"), frontend("127.30.2.2")],
    );

    // Producer route: the 50/50 split, whatever the Host header says.
    let mut seen = std::collections::BTreeMap::<String, u32>::new();
    for _ in 0..200 {
        let r = batch_ns.request_to(
            frontend("127.30.2.1"),
            "GET",
            "web.shop.svc.cluster.local",
            "/x",
            &[],
        );
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["headers"]["X-Route"], json!(["producer"]));
        *seen.entry(served_by(&r)).or_default() += 1;
    }
    let v1 = seen.get("api-v1").copied().unwrap_or(0);
    assert!((60..=140).contains(&v1), "{seen:?}");

    // Consumer route in `frontend`: everything to v2.
    for _ in 0..20 {
        let r = frontend_ns.request_to(frontend("127.30.1.1"), "GET", "api.shop", "/x", &[]);
        assert_eq!(served_by(&r), "api-v2");
        assert_eq!(r.json()["headers"]["X-Route"], json!(["consumer"]));
    }

    // The other Service keeps its own routes; its unmatched paths are 404 (routed Service).
    let r = frontend_ns.request_to(frontend("127.30.1.2"), "GET", "api.shop", "/", &[]);
    assert_eq!(served_by(&r), "web");
    let r = frontend_ns.request_to(frontend("127.30.1.2"), "GET", "web.shop", "/nope", &[]);
    assert_eq!(r.status, 404);
}

/// The Services of the default-routing tests, on frontends `127.41.<n>.x`: `shop/api` (ports 18080
/// and 18081), `shop/web` (18080), `other/db` (18080, 18081), and `shop/api-v2`, the backend of
/// the one route (`shop/api-to-v2`, on `api` port 18080 only: `parentRef.port`, MeshPorts).
fn mesh_folder(n: u8) -> String {
    let svc = |ns: &str, name: &str, ip: u8, ports: &[u16]| {
        let ports: Vec<String> = ports
            .iter()
            .map(|p| format!("{{port: {p}, name: p{p}}}"))
            .collect();
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {{clusterIP: 127.41.{n}.{ip}, ports: [{}]}}\n---\n",
            ports.join(", ")
        )
    };
    let mut out = "apiVersion: v1\nkind: Namespace\nmetadata: {name: frontend}\n---\n".to_string();
    out += &svc("shop", "api", 1, &[18080, 18081]);
    out += &svc("shop", "web", 2, &[18080]);
    out += &svc("other", "db", 3, &[18080, 18081]);
    out += &svc("shop", "api-v2", 4, &[8080]);
    out += "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: api-to-v2, namespace: shop}
spec:
  parentRefs: [{group: \"\", kind: Service, name: api, port: 18080}]
  rules:
  - backendRefs: [{name: api-v2, port: 8080}]
";
    out
}

/// Every frontend of [`mesh_folder`] with the cluster of its own Service port.
fn mesh_frontends(n: u8) -> Vec<(SocketAddr, &'static str)> {
    let at = |ip: u8, port: u16| SocketAddr::from(([127, 41, n, ip], port));
    vec![
        (at(1, 18080), "shop/api:18080"),
        (at(1, 18081), "shop/api:18081"),
        (at(2, 18080), "shop/web:18080"),
        (at(3, 18080), "other/db:18080"),
        (at(3, 18081), "other/db:18081"),
    ]
}

/// A sidecar of namespace `frontend` that fetches its table from `pusher` (no inline table), with
/// `frontends` as `render` writes it.
fn fetching_sidecar(n: u8, pusher: SocketAddr, tick_ms: u32) -> Proxy {
    let frontends = mesh_frontends(n);
    let map: serde_json::Map<String, Value> = frontends
        .iter()
        .map(|(a, c)| (a.to_string(), json!(c)))
        .collect();
    let source = json!({"cluster": "gammaroute-config-pusher", "authority": pusher.to_string(),
                            "role": "mesh/frontend", "tickMs": tick_ms, "longPollSeconds": 5});
    let config = json!({"source": source, "frontends": map});
    let mut clusters: Vec<&str> = frontends.iter().map(|(_, c)| *c).collect();
    clusters.push("shop/api-v2:8080");
    let addrs: Vec<SocketAddr> = frontends.iter().map(|(a, _)| *a).collect();
    Proxy::sidecar_with(
        ECHO,
        &config,
        &clusters,
        &addrs,
        &[("gammaroute-config-pusher", pusher)],
    )
}

/// Sends one request to each frontend — with another Service's name in `Host` and a client-sent
/// `x-gamma-cluster` naming yet another — and checks that the frontend's own Service port served
/// it untouched (no header edits).
fn each_frontend_reaches_its_own_service(proxy: &Proxy, n: u8, except: &[SocketAddr]) {
    for (i, (addr, cluster)) in mesh_frontends(n).into_iter().enumerate() {
        if except.contains(&addr) {
            continue;
        }
        static ROUND: AtomicU64 = AtomicU64::new(0);
        let id = format!("own-{n}-{i}-{}", ROUND.fetch_add(1, Ordering::Relaxed));
        let r = proxy.request_to(
            addr,
            "GET",
            "web.shop.svc.cluster.local",
            "/some/path",
            &[("x-echo-id", &id), ("x-gamma-cluster", "other/db:18081")],
        );
        assert_eq!(r.status, 200, "{addr}: {}", r.text());
        let (_, seen) = proxy.backends[cluster].seen(&id);
        assert_eq!(seen, 1, "{addr} should reach {cluster}: {}", r.text());
        let headers = r.json()["headers"].clone();
        assert!(headers.get("X-Gamma-Cluster").is_none(), "{headers}");
        assert!(headers.get("X-Envoy-Max-Retries").is_none(), "{headers}");
        assert_eq!(r.json()["path"], json!("/some/path"));
    }
}

/// GEP-1294 / MeshBasic, MeshPorts: a sidecar that has no table yet — config-pusher is down —
/// leaves every request to the Service it was sent to; once config-pusher is up it routes, with
/// not one failed request across the change, and a port the route does not name keeps going to
/// its own Service.
#[test]
fn without_a_table_every_request_reaches_its_service_then_routes_without_a_failure() {
    let n = 1;
    let pusher_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let proxy = fetching_sidecar(n, pusher_addr, 100);
    each_frontend_reaches_its_own_service(&proxy, n, &[]);
    assert!(
        proxy
            .envoy
            .stat("wasmcustom.gammaroute.no_table_passthrough_total")
            >= 5
    );

    // Load on the routed frontend while config-pusher comes up.
    let api = mesh_frontends(n)[0].0;
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicU64::new(0));
    let load = {
        let (stop, failures) = (Arc::clone(&stop), Arc::clone(&failures));
        std::thread::spawn(move || {
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let ok = http::send(api, "GET", "/load", &[("host", "api.shop")])
                    .is_ok_and(|r| r.status == 200);
                if !ok {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
                sent += 1;
            }
            sent
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let folder = Scratch::new("mesh-default");
    folder.write("all.yaml", &mesh_folder(n));
    let _pusher = Pusher::start_on(&folder.0, pusher_addr, &[]);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = proxy.request_to(api, "GET", "api.shop", "/", &[]);
        if served_by(&r) == "api-v2" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the table never arrived:\n{}",
            proxy.envoy.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let sent = load.join().unwrap();
    assert_eq!(failures.load(Ordering::Relaxed), 0, "of {sent} requests");
    assert!(sent > 10, "{sent}");
    assert!(
        proxy
            .envoy
            .log()
            .contains("requests passed untouched to default Service routing"),
        "{}",
        proxy.envoy.log()
    );

    // Routed: api port 18080, whatever the Host says (MeshFrontendHostname). Everything else —
    // api's other port (MeshPorts), web, db — still reaches its own Service.
    for host in ["api.shop", "web.shop", "db.other.svc.cluster.local"] {
        let r = proxy.request_to(api, "GET", host, "/", &[]);
        assert_eq!(served_by(&r), "api-v2", "{host}");
    }
    each_frontend_reaches_its_own_service(&proxy, n, &[api]);
}

/// A sidecar that config-pusher refuses (401: no token) is a sidecar without a table: every
/// request reaches the Service it was sent to.
#[test]
fn a_sidecar_config_pusher_refuses_passes_every_request() {
    let n = 2;
    let folder = Scratch::new("mesh-401");
    folder.write("all.yaml", &mesh_folder(n));
    let secret = Scratch::new("mesh-401-secret");
    secret.write("secret", "s3cret-s3cret-s3cret-s3cret-s3cret");
    let secret_file = secret.0.join("secret").display().to_string();
    let pusher = Pusher::start(&folder.0, &["--token-file", &secret_file]);
    let proxy = fetching_sidecar(n, pusher.addr, 100);
    let deadline = Instant::now() + Duration::from_secs(10);
    while proxy
        .envoy
        .stat("wasmcustom.gammaroute.result=.=failed;.;table_fetches_total")
        == 0
    {
        assert!(Instant::now() < deadline, "{}", proxy.envoy.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    each_frontend_reaches_its_own_service(&proxy, n, &[]);
    assert!(proxy.envoy.log().contains("401"), "{}", proxy.envoy.log());
}

/// The first fetch does not wait for a whole `tickMs`: with a 30 s tick, a sidecar whose
/// config-pusher is up routes with its table as soon as Envoy is up (tens of ms on an idle
/// machine; the bound leaves room for a loaded one).
#[test]
fn the_first_table_is_fetched_at_once_not_a_tick_later() {
    let n = 3;
    let folder = Scratch::new("mesh-first");
    folder.write("all.yaml", &mesh_folder(n));
    let pusher = Pusher::start(&folder.0, &[]);
    let proxy = fetching_sidecar(n, pusher.addr, 30_000);
    let up = Instant::now();
    let api = mesh_frontends(n)[0].0;
    while served_by(&proxy.request_to(api, "GET", "api.shop", "/", &[])) != "api-v2" {
        assert!(
            up.elapsed() < Duration::from_secs(12),
            "no table 12 s after Envoy started:\n{}",
            proxy.envoy.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("first table in force {:?} after Envoy was up", up.elapsed());
}

/// GEP-1731 `retry.backoff`, the canonical GAMMA example (`retry: {attempts: 3, backoff: 100ms}`,
/// `timeouts.request: 10s` on a Service parent) with a 200 ms back-off: Envoy retries through the
/// back-off's own route (`retry_back_off.base_interval`), not with its 25 ms default. With the
/// default, three retries wait at most 25 + 75 + 175 ms in all; with base 200 ms the waits are
/// drawn from [0, 200), [0, 600) and [0, 1400) ms, so the slowest of four requests waits longer
/// than 300 ms but with a probability below 10⁻⁴.
#[test]
fn retry_backoff_is_applied_by_envoy() {
    let rule = |backoff: Option<u64>| {
        let mut retry = json!({"attempts": 3, "codes": [503]});
        if let Some(ms) = backoff {
            retry["backoffMs"] = json!(ms);
        }
        json!({"index": 0, "matches": [{"rank": 0, "path": {"prefix": "/"}}],
               "timeouts": {"requestMs": 10000}, "retry": retry,
               "backends": [{"weight": 1, "cluster": "shop/api:8080"}]})
    };
    let config = json!({"table": {
        "role": "mesh/frontend",
        "services": [
            {"namespace": "shop", "name": "api", "clusterIps": ["127.41.4.1"],
             "ports": [{"port": 18080, "origin": "producer", "attachments": [{"route": 0}]}]},
            {"namespace": "shop", "name": "web", "clusterIps": ["127.41.4.2"],
             "ports": [{"port": 18080, "origin": "producer", "attachments": [{"route": 1}]}]}
        ],
        "routes": [
            {"namespace": "shop", "name": "api-retry", "rules": [rule(Some(200))]},
            {"namespace": "shop", "name": "web-retry", "rules": [rule(None)]}
        ]
    }});
    let with_backoff = frontend("127.41.4.1");
    let without = frontend("127.41.4.2");
    let proxy = Proxy::sidecar(ECHO, &config, &["shop/api:8080"], &[with_backoff, without]);
    let mut slowest = Duration::ZERO;
    for i in 0..4 {
        for (to, label) in [(with_backoff, "b"), (without, "d")] {
            let id = format!("backoff-{label}-{i}");
            let started = Instant::now();
            let r = proxy.request_to(
                to,
                "GET",
                "api.shop",
                "/",
                &[("x-echo-id", &id), ("x-echo-fail-first", "3")],
            );
            assert_eq!(r.status, 200, "{}", r.text());
            assert_eq!(proxy.backends["shop/api:8080"].seen(&id).1, 4, "{id}");
            assert!(r.json()["headers"].get("X-Gamma-Backoff-Ms").is_none());
            if label == "b" {
                slowest = slowest.max(started.elapsed());
            }
        }
    }
    assert!(slowest > Duration::from_millis(300), "{slowest:?}");
    // The back-off route carried the retries of `api`, the catch-all those of `web`.
    let stat = "vhost.all.route.gammaroute-backoff-200ms.upstream_rq_retry";
    assert_eq!(proxy.envoy.stat(stat), 12, "{stat}");
    // A client cannot pick a back-off route by sending the header itself.
    let r = proxy.request_to(
        without,
        "GET",
        "web.shop",
        "/",
        &[
            ("x-gamma-backoff-ms", "200"),
            ("x-echo-id", "spoof"),
            ("x-echo-fail-first", "1"),
        ],
    );
    assert_eq!(r.status, 200);
    assert_eq!(proxy.envoy.stat(stat), 12, "{stat}");
}

/// The upstream Mesh HTTPRoute conformance tests' features through a real sidecar (parent: the
/// Service `shop/echo` at `127.41.5.1:18080`, Host naming another Service): simple routing
/// (MeshHTTPRouteSimpleSameNamespace), path and header matching (MeshHTTPRouteMatching), query
/// parameters (MeshHTTPRouteQueryParamMatching), request header edits
/// (MeshHTTPRouteRequestHeaderModifier), redirects of host and status 303/307/308, path, port and
/// scheme (MeshHTTPRoute30xRedirect*, MeshHTTPRouteRedirect*), path rewrite
/// (MeshHTTPRouteRewritePath), weights (MeshHTTPRouteWeight, MeshTrafficSplit) and named rules
/// (MeshHTTPRouteNamedRule).
#[test]
fn mesh_httproute_features_apply_through_a_sidecar() {
    let v1 = "shop/echo-v1:8080";
    let v2 = "shop/echo-v2:8080";
    let to = |cluster: &str| json!([{"weight": 1, "cluster": cluster}]);
    let exact = |rank: u32, path: &str| json!([{"rank": rank, "path": {"exact": path}}]);
    let redirect = |index: u32, path: &str, redirect: Value| json!({"index": index, "matches": exact(index, path), "filters": [{"requestRedirect": redirect}]});
    let rules = json!([
        redirect(0, "/redirect/303", json!({"hostname": "example.org", "statusCode": 303})),
        redirect(1, "/redirect/307", json!({"hostname": "example.org", "statusCode": 307})),
        redirect(2, "/redirect/308", json!({"statusCode": 308})),
        redirect(3, "/redirect/path", json!({"path": {"replaceFullPath": "/new"}, "statusCode": 302})),
        redirect(4, "/redirect/port", json!({"port": 8083, "statusCode": 302})),
        redirect(5, "/redirect/scheme", json!({"scheme": "https", "statusCode": 302})),
        {"index": 6, "matches": [{"rank": 6, "path": {"prefix": "/rewrite"}}],
         "filters": [{"urlRewrite": {"path": {"replacePrefixMatch": "/one"}}}], "backends": to(v1)},
        {"index": 7, "matches": [{"rank": 7, "path": {"prefix": "/header"}}],
         "filters": [{"requestHeaderModifier": {
             "set": [{"name": "x-header-set", "value": "set"}],
             "add": [{"name": "x-header-add", "value": "add"}],
             "remove": ["x-header-remove"]}}],
         "backends": to(v1)},
        {"index": 8, "matches": [{"rank": 8, "path": {"prefix": "/match"},
                                  "headers": [{"name": "x-version", "value": {"exact": "two"}}]}],
         "backends": to(v2)},
        {"index": 9, "matches": [{"rank": 9, "path": {"prefix": "/match"}}], "backends": to(v1)},
        {"index": 10, "matches": [{"rank": 10, "path": {"prefix": "/q"},
                                   "queryParams": [{"name": "animal", "value": {"exact": "whale"}}]}],
         "backends": to(v2)},
        {"index": 11, "matches": [{"rank": 11, "path": {"prefix": "/weight"}}],
         "backends": [{"weight": 70, "cluster": v1}, {"weight": 30, "cluster": v2}]},
        // MeshHTTPRouteNamedRule: a named rule routes like any other (the name is for status
        // and metrics); the unnamed one next to it too.
        {"index": 12, "name": "named", "matches": [{"rank": 12, "path": {"exact": "/named"}}],
         "backends": to(v1)},
        {"index": 13, "matches": [{"rank": 13, "path": {"exact": "/unnamed"}}],
         "filters": [{"urlRewrite": {"path": {"replaceFullPath": "/named"}}}], "backends": to(v2)},
        {"index": 14, "matches": [{"rank": 14, "path": {"prefix": "/"}}], "backends": to(v1)}
    ]);
    let config = json!({"table": {
        "role": "mesh/shop",
        "services": [{"namespace": "shop", "name": "echo", "clusterIps": ["127.41.5.1"],
                      "ports": [{"port": 18080, "origin": "producer", "attachments": [{"route": 0}]}]}],
        "routes": [{"namespace": "shop", "name": "echo", "rules": rules}]
    }});
    let echo = frontend("127.41.5.1");
    let proxy = Proxy::sidecar(ECHO, &config, &[v1, v2], &[echo]);
    let get = |path: &str, headers: &[(&str, &str)]| {
        proxy.request_to(echo, "GET", "other.shop.svc.cluster.local", path, headers)
    };

    // The Service port (18080) is kept in `Location` unless the redirect names another port or
    // a scheme whose default port it then uses.
    for (path, status, location) in [
        (
            "/redirect/303",
            303,
            "http://example.org:18080/redirect/303",
        ),
        (
            "/redirect/307",
            307,
            "http://example.org:18080/redirect/307",
        ),
        (
            "/redirect/308",
            308,
            "http://other.shop.svc.cluster.local:18080/redirect/308",
        ),
        (
            "/redirect/path",
            302,
            "http://other.shop.svc.cluster.local:18080/new",
        ),
        (
            "/redirect/port",
            302,
            "http://other.shop.svc.cluster.local:8083/redirect/port",
        ),
        (
            "/redirect/scheme",
            302,
            "https://other.shop.svc.cluster.local/redirect/scheme",
        ),
    ] {
        let r = get(path, &[]);
        assert_eq!(r.status, status, "{path}");
        assert_eq!(r.header("location"), Some(location), "{path}");
    }

    let r = get("/rewrite/x", &[]);
    assert_eq!(served_by(&r), "echo-v1");
    assert_eq!(r.json()["path"], json!("/one/x"));

    let r = get(
        "/header",
        &[("x-header-add", "client"), ("x-header-remove", "gone")],
    );
    let headers = &r.json()["headers"];
    assert_eq!(headers["X-Header-Set"], json!(["set"]));
    assert_eq!(headers["X-Header-Add"], json!(["client", "add"]));
    assert!(headers.get("X-Header-Remove").is_none(), "{headers}");

    assert_eq!(
        served_by(&get("/match", &[("x-version", "two")])),
        "echo-v2"
    );
    assert_eq!(
        served_by(&get("/match", &[("x-version", "one")])),
        "echo-v1"
    );
    assert_eq!(served_by(&get("/q?animal=whale", &[])), "echo-v2");
    assert_eq!(served_by(&get("/q?animal=dolphin", &[])), "echo-v1");
    assert_eq!(served_by(&get("/anything", &[])), "echo-v1");
    let r = get("/named", &[]);
    assert_eq!(
        (served_by(&r).as_str(), &r.json()["path"]),
        ("echo-v1", &json!("/named"))
    );
    let r = get("/unnamed", &[]);
    assert_eq!(
        (served_by(&r).as_str(), &r.json()["path"]),
        ("echo-v2", &json!("/named"))
    );

    let mut v2_count = 0;
    for _ in 0..200 {
        if served_by(&get("/weight", &[])) == "echo-v2" {
            v2_count += 1;
        }
    }
    assert!(
        (30..=90).contains(&v2_count),
        "{v2_count} of 200 on v2 (30%)"
    );
}
