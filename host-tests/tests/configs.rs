//! The bootstrap templates of `envoy-configs/`: each one, filled, is accepted by
//! `envoy --mode validate` (which also loads gammaroute and configures it); a bad plugin
//! configuration is refused with gammaroute's log line; the original-destination sidecar keeps
//! the HTTP chain of bootstrap.yaml and routes by the connection's destination.
//!
//! The pod sidecar cannot be exercised with iptables here: validation plus a start without
//! redirection (the original destination is then the listener's own address) is what can be run.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use config_pusher::render::envoy as render;
use gammaroute_host_tests::envoy;
use gammaroute_host_tests::fixture::{Proxy, BOOTSTRAP, ORIGINAL_DST};
use serde_json::{json, Value};

const ECHO: &str = env!("CARGO_BIN_EXE_echo");

fn template(path: &str) -> String {
    std::fs::read_to_string(gammaroute_host_tests::workspace_root().join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `template` filled with loopback addresses, the built .wasm, `plugin_config` and STATIC
/// clusters for `clusters`; `additional` fills bootstrap.yaml's LISTEN_ADDITIONAL.
fn filled(
    path: &str,
    plugin_config: &Value,
    clusters: &[&str],
    listen: &str,
    additional: &str,
) -> String {
    let endpoints: Vec<(&str, Vec<SocketAddr>)> = clusters
        .iter()
        .map(|c| (*c, vec![SocketAddr::from(([127, 0, 0, 1], 9))]))
        .collect();
    let (address, port) = listen.rsplit_once(':').unwrap();
    let values = BTreeMap::from([
        ("ADMIN_ADDRESS", "127.0.0.1".to_string()),
        ("ADMIN_PORT", "0".to_string()),
        ("LISTEN_ADDRESS", address.to_string()),
        ("LISTEN_PORT", port.to_string()),
        ("LISTEN_ADDITIONAL", additional.to_string()),
        (
            "WASM_PATH",
            gammaroute_host_tests::wasm_path().display().to_string(),
        ),
        (
            "PLUGIN_CONFIG",
            render::yaml_string(&plugin_config.to_string()),
        ),
        ("CLUSTERS", render::static_clusters(&endpoints)),
        ("DYNAMIC_RESOURCES", String::new()),
    ]);
    render::fill(&template(path), &values).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn gateway_config() -> Value {
    json!({
        "listenerPort": 80,
        "mirrorSlots": 2,
        "table": {
            "role": "gateway/default/web",
            "listeners": [{"name": "http", "port": 80, "attachments": [{"route": 0, "hostnames": ["shop.example"]}]}],
            "routes": [{"namespace": "default", "name": "shop", "rules": [
                {"index": 0, "matches": [{"rank": 0, "path": {"prefix": "/"}}],
                 "filters": [{"requestMirror": {"cluster": "default/shadow:80", "numerator": 1, "denominator": 10}}],
                 "backends": [{"weight": 1, "cluster": "default/api:80"}]}
            ]}]
        }
    })
}

/// A `mesh/frontend` table: Service shop/api at 127.40.<n>.1:18090.
fn mesh_config(n: u8, extra: Value) -> Value {
    let mut config = json!({
        "table": {
            "role": "mesh/frontend",
            "services": [{"namespace": "shop", "name": "api", "clusterIps": [format!("127.40.{n}.1")],
                          "ports": [{"port": 18090, "name": "http", "origin": "producer", "attachments": [{"route": 0}]}]}],
            "routes": [{"namespace": "shop", "name": "api", "rules": [
                {"index": 0, "matches": [{"rank": 0, "path": {"prefix": "/"}}],
                 "filters": [{"requestHeaderModifier": {"set": [{"name": "x-route", "value": "shop/api"}]}}],
                 "backends": [{"weight": 1, "cluster": "shop/api-v1:8080"}]}
            ]}]
        }
    });
    if let (Some(config), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
        config.extend(extra.clone());
    }
    config
}

#[test]
fn filled_templates_pass_envoy_validation() {
    // Gateway: one listener.
    let gateway = filled(
        BOOTSTRAP,
        &gateway_config(),
        &["default/api:80", "default/shadow:80"],
        "127.0.0.1:0",
        "[]",
    );
    // Per-Service sidecar: the same template bound to two Service frontends, Istio naming.
    let sidecar = filled(
        BOOTSTRAP,
        &mesh_config(
            1,
            json!({"clusterNaming": {"istio": {"domain": "cluster.local"}}}),
        ),
        &["outbound|8080||api-v1.shop.svc.cluster.local"],
        "127.40.1.1:18090",
        "[{address: {socket_address: {address: \"127.40.1.2\", port_value: 18090}}}]",
    );
    // Pod sidecar: one original-destination listener and the passthrough cluster.
    let pod = filled(
        ORIGINAL_DST,
        &mesh_config(1, json!({"passthroughCluster": "gammaroute-passthrough"})),
        &["shop/api-v1:8080"],
        "127.0.0.1:15001",
        "",
    );
    for (name, bootstrap) in [("gateway", gateway), ("sidecar", sidecar), ("pod", pod)] {
        match envoy::validate(&bootstrap) {
            Ok(out) => assert!(
                out.contains("gammaroute: table") && out.contains("loaded"),
                "{name}: the filter did not load its table:\n{out}"
            ),
            Err(out) => panic!("{name}: Envoy refused the configuration:\n{out}\n{bootstrap}"),
        }
    }
}

#[test]
fn a_bad_plugin_configuration_is_refused_with_a_log_line() {
    // A table that does not validate: the whole configuration is refused, and the log says why.
    let mut config = gateway_config();
    config["table"]["routes"][0]["rules"][0]["matches"][0]["path"] = json!({"regex": "("});
    let bootstrap = filled(BOOTSTRAP, &config, &["default/api:80"], "127.0.0.1:0", "[]");
    let out = envoy::validate(&bootstrap).expect_err("Envoy accepted a bad table");
    assert!(
        out.contains(
            "gammaroute: configuration rejected: plugin configuration: route table rejected"
        ) && out.contains("invalid regular expression"),
        "{out}"
    );
    // A misspelt field.
    let mut config = gateway_config();
    config["listenerPrt"] = json!(80);
    let bootstrap = filled(BOOTSTRAP, &config, &["default/api:80"], "127.0.0.1:0", "[]");
    let out = envoy::validate(&bootstrap).expect_err("Envoy accepted an unknown field");
    assert!(
        out.contains("gammaroute: configuration rejected") && out.contains("listenerPrt"),
        "{out}"
    );
}

/// The HTTP part of a template: from `filter_chains:` to `clusters:`.
fn http_chain(text: &str) -> &str {
    let start = text.find("    filter_chains:\n").expect("filter_chains");
    let end = text.find("\n  clusters:\n").expect("clusters");
    text[start..end].trim_end()
}

#[test]
fn pod_sidecar_keeps_the_http_chain_and_routes_by_original_destination() {
    assert_eq!(
        http_chain(&template(ORIGINAL_DST)),
        http_chain(&template(BOOTSTRAP)),
        "sidecar-original-dst.yaml's HTTP chain differs from bootstrap.yaml's"
    );

    // Not redirected, a connection's original destination is the listener's address: bound to
    // Service shop/api's ClusterIP:port, it must be routed as that Service, whatever the Host.
    let listen: SocketAddr = "127.40.2.1:18090".parse().unwrap();
    let pod = Proxy::original_dst_sidecar(
        ECHO,
        &mesh_config(2, json!({"passthroughCluster": "gammaroute-passthrough"})),
        &["shop/api-v1:8080"],
        listen,
    );
    let r = pod.request_to(listen, "GET", "web.shop.svc.cluster.local", "/x", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["service"], "api-v1");
    assert_eq!(r.json()["headers"]["X-Route"], json!(["shop/api"]));
}
