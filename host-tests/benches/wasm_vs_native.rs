//! Per-request cost of gammaroute.wasm through the embedded host (headers in, decision applied
//! to the header map, response headers, context teardown) beside the native `Router::decide`
//! on the same table and requests, in the same run. Prints the ratio.
//! Needs the release .wasm (`make wasm`).

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use gammaroute_filter::host::config::PluginConfig;
use gammaroute_filter::router::{Destination, Request};
use gammaroute_host_tests::wasm_host::WasmHost;
use serde_json::json;

fn config() -> String {
    json!({
        "listenerPort": 80,
        "table": {
            "role": "gateway/default/web",
            "listeners": [{"name": "http", "port": 80, "attachments": [{"route": 0, "hostnames": ["shop.example"]}]}],
            "routes": [{"namespace": "default", "name": "shop", "rules": [
                {"index": 0, "matches": [{"rank": 0, "path": {"prefix": "/api"}, "headers": [{"name": "x-env", "value": {"exact": "canary"}}]}],
                 "filters": [{"requestHeaderModifier": {"set": [{"name": "x-via", "value": "gamma"}]}}],
                 "backends": [{"weight": 1, "cluster": "default/canary:80"}]},
                {"index": 1, "matches": [{"rank": 1, "path": {"prefix": "/api"}}],
                 "backends": [{"weight": 90, "cluster": "default/api:80"}, {"weight": 10, "cluster": "default/canary:80"}]}
            ]}]
        }
    })
    .to_string()
}

const REQUESTS: [(&str, &[(&str, &str)]); 2] = [
    ("/api/items", &[("x-env", "canary")]),
    ("/api/other", &[("user-agent", "bench")]),
];

fn bench(c: &mut Criterion) {
    let config = config();
    let mut vm = WasmHost::load(gammaroute_host_tests::wasm_path()).expect("load wasm");
    assert!(vm.configure(&config));
    let router = {
        let c = PluginConfig::parse(config.as_bytes()).unwrap();
        c.compile(c.table.clone().unwrap()).unwrap()
    };
    let native_headers: Vec<Vec<(String, String)>> = REQUESTS
        .iter()
        .map(|(_, h)| {
            h.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect();

    let mut group = c.benchmark_group("per_request");
    group.bench_function("wasm_host", |b| {
        let mut i = 0;
        b.iter(|| {
            let (path, headers) = REQUESTS[i % 2];
            i += 1;
            let mut all = vec![
                (":authority", "shop.example"),
                (":path", path),
                (":method", "GET"),
                (":scheme", "http"),
            ];
            all.extend_from_slice(headers);
            std::hint::black_box(vm.request_raw(&all));
        })
    });
    group.bench_function("native_decide", |b| {
        let mut i = 0u64;
        b.iter(|| {
            let k = (i % 2) as usize;
            i += 1;
            let req = Request {
                method: "GET",
                scheme: "http",
                authority: "shop.example",
                path: REQUESTS[k].0,
                headers: &native_headers[k],
                destination: Destination {
                    ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                    port: 80,
                },
                server_name: "",
            };
            std::hint::black_box(router.decide(&req, i.wrapping_mul(0x9e37_79b9)));
        })
    });
    group.finish();

    // The ratio, measured back to back in this run.
    let time = |f: &mut dyn FnMut()| {
        let start = Instant::now();
        let mut n = 0u32;
        while start.elapsed() < Duration::from_secs(1) {
            f();
            n += 1;
        }
        start.elapsed().as_nanos() as f64 / f64::from(n)
    };
    let wasm = time(&mut || {
        vm.request(
            "GET",
            "http://shop.example/api/items",
            &[("x-env", "canary")],
        );
    });
    let native = time(&mut || {
        let req = Request {
            method: "GET",
            scheme: "http",
            authority: "shop.example",
            path: "/api/items",
            headers: &native_headers[0],
            destination: Destination {
                ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                port: 80,
            },
            server_name: "",
        };
        std::hint::black_box(router.decide(&req, 7));
    });
    println!(
        "per request: wasm through host {wasm:.0} ns, native Router::decide {native:.0} ns, ratio {:.1}x",
        wasm / native
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
