//! gammaroute in a real Envoy as a GAMMA sidecar: the parent Service is the address the client
//! called (ClusterIP:port), producer routes apply to every client namespace and a namespace's
//! consumer routes take over for that namespace only.

use std::net::SocketAddr;

use gammaroute_host_tests::fixture::Proxy;
use gammaroute_host_tests::http::Response;
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
