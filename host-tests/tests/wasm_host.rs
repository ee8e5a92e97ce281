//! The built gammaroute.wasm in the embedded proxy-wasm host (no Envoy): routing decisions
//! applied to the header map, local responses, configuration errors, memory over time, and the
//! host's own state (shared data, ticks, HTTP calls, workers).

use gammaroute_host_tests::wasm_host::{LogLevel, WasmHost};
use gammaroute_host_tests::wasm_path;
use serde_json::json;

fn table() -> serde_json::Value {
    json!({
        "listenerPort": 80,
        "mirrorSlots": 2,
        "table": {
            "role": "gateway/default/web",
            "listeners": [{"name": "http", "port": 80, "attachments": [
                {"route": 0, "hostnames": ["shop.example"]}
            ]}],
            "routes": [
                {"namespace": "default", "name": "shop", "rules": [
                    {"index": 0, "matches": [{"rank": 0, "path": {"prefix": "/api"}, "headers": [{"name": "x-env", "value": {"exact": "canary"}}]}],
                     "filters": [
                        {"requestHeaderModifier": {"set": [{"name": "x-via", "value": "gamma"}], "add": [{"name": "x-tag", "value": "b"}], "remove": ["x-secret"]}},
                        {"responseHeaderModifier": {"add": [{"name": "x-served-by", "value": "gammaroute"}], "remove": ["server"]}}
                     ],
                     "backends": [{"weight": 1, "cluster": "default/canary:80"}]},
                    {"index": 1, "matches": [{"rank": 1, "path": {"prefix": "/api"}}],
                     "backends": [{"weight": 1, "cluster": "default/api:80"}]},
                    {"index": 2, "matches": [{"rank": 2, "path": {"exact": "/old"}}],
                     "filters": [{"requestRedirect": {"path": {"replaceFullPath": "/new"}, "statusCode": 301}}]},
                    {"index": 3, "matches": [{"rank": 3, "path": {"prefix": "/v1"}}],
                     "filters": [{"urlRewrite": {"hostname": "internal.example", "path": {"replacePrefixMatch": "/v2"}}}],
                     "backends": [{"weight": 1, "cluster": "default/api:80"}]},
                    {"index": 4, "matches": [{"rank": 4, "path": {"prefix": "/mirror"}}],
                     "filters": [
                        {"requestMirror": {"cluster": "default/shadow:80", "numerator": 1, "denominator": 1}},
                        {"requestMirror": {"cluster": "default/audit:80", "numerator": 1, "denominator": 1}}
                     ],
                     "backends": [{"weight": 1, "cluster": "default/api:80"}]},
                    {"index": 5, "matches": [{"rank": 5, "path": {"prefix": "/slow"}}],
                     "timeouts": {"requestMs": 5000, "backendRequestMs": 200},
                     "retry": {"attempts": 2, "codes": [503]},
                     "backends": [{"weight": 1, "cluster": "default/api:80"}]},
                    {"index": 6, "matches": [{"rank": 6, "path": {"prefix": "/empty"}}],
                     "backends": [{"weight": 0, "cluster": "default/api:80"}]}
                ]}
            ]
        }
    })
}

fn shop() -> WasmHost {
    let mut vm = WasmHost::load(wasm_path()).expect("load gammaroute.wasm");
    assert!(vm.configure(&table().to_string()), "{:?}", vm.logs());
    vm
}

#[test]
fn header_modifiers_and_cluster() {
    let mut vm = shop();
    let r = vm.request(
        "GET",
        "http://shop.example/api/items",
        &[("x-env", "canary"), ("x-secret", "s"), ("x-tag", "a")],
    );
    assert_eq!(r.local_response(), None);
    assert_eq!(r.upstream_cluster(), Some("default/canary:80"));
    assert_eq!(r.request_header("x-via"), Some("gamma"));
    assert_eq!(r.request_header("x-secret"), None);
    assert_eq!(r.request_header_all("x-tag"), vec!["a", "b"]);
    assert_eq!(r.foreign_calls()[0].0, "clear_route_cache");
    // Response header edits are applied in on_response_headers.
    assert_eq!(r.response_header("x-served-by"), Some("gammaroute"));

    let r = vm.request("GET", "http://shop.example/api/items", &[]);
    assert_eq!(r.upstream_cluster(), Some("default/api:80"));
    assert_eq!(r.response_header("x-served-by"), None);
    assert_eq!(
        vm.metric("gammaroute.route_namespace=.=default;.;route=.=shop;.;rule=.=1;.;backend=.=default/api:80;.;requests_total"),
        Some(1)
    );
    assert_eq!(
        vm.metric("gammaroute.route_namespace=.=default;.;route=.=shop;.;rule=.=0;.;backend=.=default/canary:80;.;requests_total"),
        Some(1)
    );
}

#[test]
fn response_header_modifier_removes_upstream_header() {
    let mut vm = shop();
    vm.set_upstream_response(&[(":status", "200"), ("server", "echo")]);
    let r = vm.request("GET", "http://shop.example/api", &[("x-env", "canary")]);
    assert_eq!(r.response_header("server"), None);
    assert_eq!(r.response_header(":status"), Some("200"));
}

#[test]
fn a_client_cannot_steer_with_control_headers() {
    let mut vm = shop();
    let r = vm.request(
        "GET",
        "http://shop.example/api",
        &[
            ("x-gamma-cluster", "default/never:80"),
            ("x-gamma-mirror-0", "evil"),
        ],
    );
    assert_eq!(
        r.request_header_all("x-gamma-cluster"),
        vec!["default/api:80"]
    );
    assert!(r.mirrors().is_empty(), "{:?}", r.mirrors());
}

#[test]
fn url_rewrite_sets_path_and_authority() {
    let mut vm = shop();
    let r = vm.request("GET", "http://shop.example/v1/users?id=7", &[]);
    assert_eq!(r.upstream_cluster(), Some("default/api:80"));
    assert_eq!(r.request_header(":path"), Some("/v2/users?id=7"));
    assert_eq!(r.request_header(":authority"), Some("internal.example"));
}

#[test]
fn redirect_is_a_local_response() {
    let mut vm = shop();
    let r = vm.request("GET", "http://shop.example:80/old?q=1", &[]);
    let local = r.local_response().expect("redirect");
    assert_eq!(local.status, 301);
    assert_eq!(
        local.header("location"),
        Some("http://shop.example/new?q=1")
    );
    assert_eq!(local.details, "gammaroute_redirect");
    assert_eq!(r.action, 1, "paused after a local response");
    assert_eq!(r.upstream_cluster(), None);
    assert_eq!(r.response_headers(), None);
    assert_eq!(
        vm.metric("gammaroute.reason=.=redirect;.;local_replies_total"),
        Some(1)
    );
}

#[test]
fn mirrors_fill_slots() {
    let mut vm = shop();
    let r = vm.request("GET", "http://shop.example/mirror/x", &[]);
    assert_eq!(
        r.mirrors(),
        vec![
            ("x-gamma-mirror-0", "default/shadow:80"),
            ("x-gamma-mirror-1", "default/audit:80")
        ]
    );
}

#[test]
fn timeouts_and_retries_become_envoy_headers() {
    let mut vm = shop();
    let r = vm.request(
        "GET",
        "http://shop.example/slow",
        &[("x-envoy-max-retries", "9")],
    );
    let envoy: std::collections::BTreeMap<&str, &str> = r.envoy_headers().into_iter().collect();
    assert_eq!(envoy.get("x-envoy-upstream-rq-timeout-ms"), Some(&"5000"));
    assert_eq!(
        envoy.get("x-envoy-upstream-rq-per-try-timeout-ms"),
        Some(&"200")
    );
    assert_eq!(envoy.get("x-envoy-max-retries"), Some(&"2"));
    assert_eq!(envoy.get("x-envoy-retriable-status-codes"), Some(&"503"));
    assert!(envoy.contains_key("x-envoy-retry-on"), "{envoy:?}");
}

#[test]
fn no_route_is_404_and_no_backends_is_500() {
    let mut vm = shop();
    let r = vm.request("GET", "http://other.example/api", &[]);
    assert_eq!(r.local_response().map(|l| l.status), Some(404));
    let r = vm.request("GET", "http://shop.example/empty", &[]);
    let local = r.local_response().expect("500");
    assert_eq!(local.status, 500);
    assert_eq!(local.header("content-type"), Some("text/plain"));
    assert_eq!(
        vm.metric("gammaroute.reason=.=no_route;.;local_replies_total"),
        Some(1)
    );
    assert_eq!(
        vm.metric("gammaroute.reason=.=no_backends;.;local_replies_total"),
        Some(1)
    );
}

#[test]
fn unconfigured_vm_fails_closed_with_503() {
    let mut vm = WasmHost::load(wasm_path()).unwrap();
    let r = vm.request("GET", "http://shop.example/api", &[]);
    assert_eq!(r.local_response().map(|l| l.status), Some(503));
}

#[test]
fn malformed_configuration_is_rejected_with_a_log_line() {
    let mut vm = WasmHost::load(wasm_path()).unwrap();
    for bad in [
        "",
        "{",
        "[1,2]",
        r#"{"table": {"role": 7}}"#,
        r#"{"listenerPort": 0, "table": {"role": "gateway/a/b", "listeners": [], "routes": []}}"#,
    ] {
        vm.clear_logs();
        assert!(!vm.configure(bad), "accepted {bad:?}");
        let errors = vm.logs_at(LogLevel::Error);
        assert!(
            errors.iter().any(|l| l.contains("configuration rejected")),
            "{bad:?}: {:?}",
            vm.logs()
        );
    }
    assert_eq!(vm.metric("gammaroute.config_rejected_total"), Some(5));
    // A good configuration after bad ones still loads.
    assert!(vm.configure(&table().to_string()));
    assert!(vm
        .logs_at(LogLevel::Info)
        .iter()
        .any(|l| l.contains("loaded")));
}

#[test]
fn destination_address_property_routes_mesh_tables() {
    // Without listenerPort the filter reads destination.address from the host.
    let mut config = table();
    config.as_object_mut().unwrap().remove("listenerPort");
    let mut vm = WasmHost::load(wasm_path()).unwrap();
    assert!(vm.configure(&config.to_string()), "{:?}", vm.logs());
    vm.set_property("destination.address", "10.0.0.1:80");
    let r = vm.request("GET", "http://shop.example/api", &[]);
    assert_eq!(r.upstream_cluster(), Some("default/api:80"));
    vm.set_property("destination.address", "10.0.0.1:8080");
    let r = vm.request("GET", "http://shop.example/api", &[]);
    assert_eq!(r.local_response().map(|l| l.status), Some(404));
}

#[test]
fn listener_ports_map_the_bound_port_to_the_gateway_port() {
    // `render --listen 80=127.0.0.1:18080`: Envoy binds 18080 for the Gateway's port 80.
    let mut config = table();
    let object = config.as_object_mut().unwrap();
    object.remove("listenerPort");
    object.insert("listenerPorts".into(), json!({"18080": 80}));
    let mut vm = WasmHost::load(wasm_path()).unwrap();
    assert!(vm.configure(&config.to_string()), "{:?}", vm.logs());
    vm.set_property("destination.address", "127.0.0.1:18080");
    let r = vm.request("GET", "http://shop.example/api", &[]);
    assert_eq!(r.upstream_cluster(), Some("default/api:80"));
    // A port not in the map is taken as is: no listener on 18081.
    vm.set_property("destination.address", "127.0.0.1:18081");
    let r = vm.request("GET", "http://shop.example/api", &[]);
    assert_eq!(r.local_response().map(|l| l.status), Some(404));
}

#[test]
fn unknown_foreign_function_is_not_found_and_routing_still_works() {
    let mut vm = shop();
    vm.set_foreign_functions(&[]);
    let r = vm.request("GET", "http://shop.example/api", &[]);
    assert_eq!(r.upstream_cluster(), Some("default/api:80"));
    assert_eq!(r.foreign_calls().len(), 1);
}

#[test]
fn memory_is_flat_across_100k_requests() {
    let mut vm = shop();
    let paths = ["/api/a", "/v1/b?x=1", "/old", "/mirror/c", "/slow", "/nope"];
    for i in 0..2_000 {
        vm.request(
            "GET",
            &format!("http://shop.example{}", paths[i % paths.len()]),
            &[("x-env", "canary")],
        );
    }
    let warm = vm.memory_bytes();
    for i in 0..100_000 {
        vm.request(
            "GET",
            &format!("http://shop.example{}", paths[i % paths.len()]),
            &[("x-env", "canary")],
        );
    }
    assert_eq!(vm.memory_bytes(), warm, "linear memory grew after warm-up");
}

#[test]
fn memory_is_flat_across_1000_reconfigurations() {
    let mut vm = shop();
    let config = table().to_string();
    for _ in 0..50 {
        assert!(vm.configure(&config));
        vm.request("GET", "http://shop.example/api", &[]);
    }
    let warm = vm.memory_bytes();
    for _ in 0..1_000 {
        assert!(vm.configure(&config));
        vm.request("GET", "http://shop.example/api", &[]);
    }
    assert_eq!(vm.memory_bytes(), warm, "linear memory grew after warm-up");
}

#[test]
fn workers_share_data_but_not_memory() {
    let vm = shop();
    let mut worker = vm.worker().unwrap();
    assert!(worker.configure(&table().to_string()));
    assert_eq!(
        worker
            .request("GET", "http://shop.example/api", &[])
            .upstream_cluster(),
        Some("default/api:80")
    );
    // Shared data: CAS semantics seen from any VM of the process.
    assert!(vm.set_shared_data("version", b"1", 0));
    let (value, cas) = worker.shared().get("version").unwrap();
    assert_eq!(value, b"1");
    assert!(
        !vm.set_shared_data("version", b"2", cas + 1),
        "stale cas accepted"
    );
    assert!(worker.set_shared_data("version", b"2", cas));
    assert!(
        !vm.set_shared_data("version", b"3", cas),
        "reused cas accepted"
    );
    // Metrics are per VM.
    assert_eq!(
        vm.metric("gammaroute.route_namespace=.=default;.;route=.=shop;.;rule=.=1;.;backend=.=default/api:80;.;requests_total"),
        None
    );
}

#[test]
fn a_missing_import_is_named() {
    let dir = std::env::temp_dir().join(format!("wasm-host-missing-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // (module (import "env" "proxy_no_such_call" (func)))
    let module: &[u8] = &[
        0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // header
        0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type: () -> ()
        0x02, 0x1a, 0x01, 0x03, b'e', b'n', b'v', 0x12, b'p', b'r', b'o', b'x', b'y', b'_', b'n',
        b'o', b'_', b's', b'u', b'c', b'h', b'_', b'c', b'a', b'l', b'l', 0x00, 0x00,
    ];
    let path = dir.join("missing.wasm");
    std::fs::write(&path, module).unwrap();
    let err = WasmHost::load(&path).err().expect("load must fail");
    assert!(
        format!("{err:#}").contains("env::proxy_no_such_call"),
        "{err:#}"
    );
}

#[test]
fn a_reconfiguration_on_a_new_root_context_replaces_the_table() {
    let mut vm = shop();
    let first_root = vm.root_context();
    // A table where /api goes elsewhere.
    let mut other = table();
    other["table"]["routes"][0]["rules"][1]["backends"][0]["cluster"] = json!("default/api-v2:80");
    assert!(
        vm.reconfigure_on_new_root(&other.to_string()),
        "{:?}",
        vm.logs()
    );
    assert_ne!(vm.root_context(), first_root);
    let r = vm.request("GET", "http://shop.example/api", &[]);
    assert_eq!(r.upstream_cluster(), Some("default/api-v2:80"));

    // A rejected configuration on a new root leaves the current root and table in force.
    let root = vm.root_context();
    assert!(!vm.reconfigure_on_new_root("{not json"));
    assert_eq!(vm.root_context(), root);
    let r = vm.request("GET", "http://shop.example/api", &[]);
    assert_eq!(r.upstream_cluster(), Some("default/api-v2:80"));
}
