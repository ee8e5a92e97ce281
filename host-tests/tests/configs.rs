//! The bootstrap templates of `envoy-configs/`: each one, filled, is accepted by
//! `envoy --mode validate` (which also loads gammaroute and configures it); a bad plugin
//! configuration is refused with gammaroute's log line; the original-destination sidecar keeps
//! the HTTP chain of bootstrap.yaml and routes by the connection's destination.
//!
//! The pod sidecar runs both without redirection (the original destination is then the
//! listener's own address) and behind a real iptables `REDIRECT`, in a network namespace of its
//! own (`unshare --net`: needs root, as `make test` in CI has; the test fails loudly otherwise).

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

/// The pod sidecar (`sidecar-original-dst.yaml`) before its first table — config-pusher
/// unreachable — behind iptables `REDIRECT`, as Istio's init container sets it up: a client's
/// call to a Service address goes through Envoy (counted as passed untouched) to where the client
/// sent it, through the `ORIGINAL_DST` cluster, unchanged (GEP-1294: no route, plain Service
/// routing). Everything runs in a fresh network namespace: the "ClusterIP" 10.96.0.10:80 is
/// served there by an echo backend, Envoy runs as uid 65534 whose own connections are not
/// redirected.
#[test]
fn pod_sidecar_without_a_table_passes_redirected_traffic_to_the_original_destination() {
    let dir = gammaroute_host_tests::live::Scratch::new("pod-netns");
    let config = json!({
        "source": {"cluster": "gammaroute-config-pusher", "role": "mesh/app", "authority": "cp"},
        "passthroughCluster": "gammaroute-passthrough",
    });
    let values = BTreeMap::from([
        ("ADMIN_ADDRESS", "127.0.0.1".to_string()),
        ("ADMIN_PORT", "19901".to_string()),
        ("LISTEN_ADDRESS", "127.0.0.1".to_string()),
        ("LISTEN_PORT", "15001".to_string()),
        (
            "WASM_PATH",
            gammaroute_host_tests::wasm_path().display().to_string(),
        ),
        ("PLUGIN_CONFIG", render::yaml_string(&config.to_string())),
        // config-pusher is down: nothing listens there.
        (
            "CLUSTERS",
            render::static_clusters(&[(
                "gammaroute-config-pusher",
                vec!["127.0.0.1:1".parse().unwrap()],
            )]),
        ),
    ]);
    let bootstrap = render::fill(&template(ORIGINAL_DST), &values).unwrap();
    let file = dir.0.join("envoy.yaml");
    std::fs::write(&file, bootstrap).unwrap();
    let script = r#"set -eu
ip link set lo up
ip addr add 10.96.0.10/32 dev lo
iptables -t nat -A OUTPUT -p tcp -d 10.96.0.10 --dport 80 -m owner ! --uid-owner 65534 -j REDIRECT --to-ports 15001
# --any-address: 10.96.0.10 exists in this namespace only.
"$ECHO" --any-address --listen 10.96.0.10:80 --namespace app --service web >"$DIR/echo.log" 2>&1 &
echo_pid=$!
setpriv --reuid=65534 --regid=65534 --clear-groups "$ENVOY" -c "$DIR/envoy.yaml" --use-dynamic-base-id --concurrency 1 -l warning >"$DIR/envoy.log" 2>&1 &
envoy_pid=$!
i=0
# The backend is asked as uid 65534, whose connections are not redirected.
until curl -sf http://127.0.0.1:19901/ready >/dev/null \
    && setpriv --reuid=65534 --regid=65534 --clear-groups curl -sf -o /dev/null 10.96.0.10:80/__echo/seen; do
  i=$((i + 1)); [ $i -lt 300 ] || { echo "not ready"; cat "$DIR/envoy.log"; exit 1; }; sleep 0.1
done
echo "ANSWER $(curl -sS -H 'host: web.app.svc.cluster.local' http://10.96.0.10/hello)"
echo "STATS $(curl -sS 'http://127.0.0.1:19901/stats?filter=no_table_passthrough')"
kill $echo_pid $envoy_pid
"#;
    let out = std::process::Command::new("unshare")
        .args(["--net", "sh", "-c", script])
        .env("ECHO", ECHO)
        .env("ENVOY", envoy::binary())
        .env("DIR", &dir.0)
        .output()
        .expect("unshare (util-linux) is required");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the network namespace with iptables REDIRECT needs root, ip, iptables, setpriv and \
         curl:\n{stdout}\n{stderr}"
    );
    let answer = stdout
        .lines()
        .find_map(|l| l.strip_prefix("ANSWER "))
        .unwrap_or_default();
    let body: Value = serde_json::from_str(answer).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(body["service"], json!("web"), "{stdout}");
    assert_eq!(body["path"], json!("/hello"));
    assert_eq!(body["host"], json!("web.app.svc.cluster.local"));
    // It went through the sidecar, which had no table: counted as passed untouched.
    let stats = stdout
        .lines()
        .find_map(|l| l.strip_prefix("STATS "))
        .unwrap_or_default();
    let count: u64 = stats
        .split_whitespace()
        .find_map(|w| w.parse().ok())
        .unwrap_or(0);
    assert!(count >= 1, "{stdout}");
}
