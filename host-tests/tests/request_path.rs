//! The cost shape of one request in the real `.wasm` (embedded host): how many host calls the
//! filter makes. docs/architecture.md, "Performance": read the request headers once, write only
//! what changes; every call crosses the VM boundary and, for request-header writes, makes
//! Envoy clear its route cache (docs/envoy.md "Route cache" and "Cost of a host call").

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

use gammaroute_host_tests::wasm_host::{Exchange, WasmHost};
use serde_json::json;

/// A fresh VM per test; the module is compiled once (compiling it dominates this file's time).
fn vm() -> WasmHost {
    vm_with(&[])
}

/// [`vm`] with extra plugin configuration fields.
fn vm_with(extra: &[(&str, serde_json::Value)]) -> WasmHost {
    static MODULE: OnceLock<Mutex<WasmHost>> = OnceLock::new();
    let module = MODULE.get_or_init(|| {
        Mutex::new(WasmHost::load(gammaroute_host_tests::wasm_path()).expect("load the .wasm"))
    });
    let mut vm = module.lock().unwrap().worker().expect("instantiate");
    vm.set_foreign_functions(&["clear_route_cache"]);
    let config = json!({
        "listenerPort": 80,
        "table": {
            "role": "gateway/default/web",
            "listeners": [{"name": "http", "port": 80,
                           "attachments": [{"route": 0, "hostnames": ["shop.example"]}]}],
            "routes": [{"namespace": "default", "name": "shop", "rules": [
                {"index": 0, "matches": [{"rank": 0, "path": {"prefix": "/api"}}],
                 "backends": [{"weight": 90, "cluster": "default/api:80"},
                              {"weight": 10, "cluster": "default/canary:80"}]},
                {"index": 1, "matches": [{"rank": 1, "path": {"prefix": "/edit"}}],
                 "filters": [{"requestHeaderModifier": {"set": [{"name": "x-via", "value": "gamma"}]}},
                             {"responseHeaderModifier": {"remove": ["server"]}}],
                 "timeouts": {"requestMs": 5000},
                 "backends": [{"weight": 1, "cluster": "default/api:80"}]}
            ]}]
        }
    });
    let mut config = config;
    for (k, v) in extra {
        config[*k] = v.clone();
    }
    assert!(vm.configure(&config.to_string()), "{:?}", vm.logs());
    vm
}

const BROWSER: [(&str, &str); 6] = [
    ("user-agent", "Mozilla/5.0"),
    ("accept", "text/html"),
    ("accept-language", "en"),
    ("accept-encoding", "gzip"),
    ("cookie", "a=b"),
    ("x-request-id", "1"),
];

/// The second of two identical requests (the first defines the metric).
fn steady(vm: &mut WasmHost, url: &str, extra: &[(&str, &str)]) -> Exchange {
    let headers: Vec<(&str, &str)> = BROWSER.iter().chain(extra).copied().collect();
    vm.request("GET", url, &headers);
    vm.request("GET", url, &headers)
}

fn calls(pairs: &[(&'static str, u32)]) -> BTreeMap<&'static str, u32> {
    pairs.iter().copied().collect()
}

#[test]
fn plain_forward_is_one_read_one_write() {
    let mut vm = vm();
    let x = steady(&mut vm, "http://shop.example/api/items?id=1", &[]);
    assert!(x
        .upstream_cluster()
        .is_some_and(|c| c.starts_with("default/")));
    assert_eq!(
        x.host_calls(),
        &calls(&[
            ("proxy_get_header_map_pairs", 1),
            ("proxy_replace_header_map_value", 1),
            ("proxy_call_foreign_function", 1),
            ("proxy_increment_metric", 1),
        ])
    );
}

#[test]
fn without_rule_stats_a_forward_makes_no_metric_call() {
    let mut vm = vm_with(&[("ruleStats", json!(false))]);
    let x = steady(&mut vm, "http://shop.example/api/items", &[]);
    assert!(x.upstream_cluster().is_some());
    assert_eq!(
        x.host_calls(),
        &calls(&[
            ("proxy_get_header_map_pairs", 1),
            ("proxy_replace_header_map_value", 1),
            ("proxy_call_foreign_function", 1),
        ])
    );
    assert!(
        !vm.metrics()
            .keys()
            .any(|k| k.ends_with(";.;requests_total")),
        "{:?}",
        vm.metrics()
    );
    // Local replies are still counted.
    vm.request("GET", "http://shop.example/nothing-here", &[]);
    assert_eq!(
        vm.metric("gammaroute.reason=.=no_route;.;local_replies_total"),
        Some(1)
    );
}

#[test]
fn control_headers_a_client_sent_are_removed_and_only_those() {
    let mut vm = vm();
    let x = steady(
        &mut vm,
        "http://shop.example/api/items",
        &[("x-envoy-max-retries", "9"), ("x-gamma-mirror-1", "evil")],
    );
    assert_eq!(x.request_header("x-envoy-max-retries"), None);
    assert_eq!(x.request_header("x-gamma-mirror-1"), None);
    assert_eq!(
        x.host_calls().get("proxy_remove_header_map_value"),
        Some(&2)
    );
    assert_eq!(
        x.host_calls().get("proxy_replace_header_map_value"),
        Some(&1)
    );
}

#[test]
fn modifiers_and_timeouts_write_what_they_set() {
    let mut vm = vm();
    let x = steady(&mut vm, "http://shop.example/edit/1", &[]);
    assert_eq!(x.request_header("x-via"), Some("gamma"));
    assert_eq!(
        x.request_header("x-envoy-upstream-rq-timeout-ms"),
        Some("5000")
    );
    // Request: x-via, x-gamma-cluster, the timeout, nothing removed; then the response
    // modifier removes `server` from the response.
    assert_eq!(
        x.host_calls(),
        &calls(&[
            ("proxy_get_header_map_pairs", 1),
            ("proxy_replace_header_map_value", 3),
            ("proxy_remove_header_map_value", 1),
            ("proxy_call_foreign_function", 1),
            ("proxy_increment_metric", 1),
        ])
    );
}

#[test]
fn no_route_is_one_read_and_the_local_reply() {
    let mut vm = vm();
    let x = steady(&mut vm, "http://other.example/", &[]);
    assert_eq!(x.local_response().map(|r| r.status), Some(404));
    assert_eq!(
        x.host_calls(),
        &calls(&[
            ("proxy_get_header_map_pairs", 1),
            ("proxy_send_local_response", 1),
            ("proxy_increment_metric", 1),
        ])
    );
}
