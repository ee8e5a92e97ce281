//! How a new route table reaches traffic: the filter's own fetch (`GET /v1/tables/<role>`
//! long-poll, one fetcher VM, shared data to the other VMs) against the table delivered as the
//! filter's configuration over ECDS on the ADS stream (every VM gets a new root context and
//! decodes it). Both run in real Envoy (`--concurrency 2`) with clusters over ADS from
//! config-pusher's server; both start the clock when the new source snapshot exists, so both
//! include translation. A sample flips every route between two echo backends and waits until a
//! probe route is answered by the new one on 4 consecutive new connections (both workers).
//! Prints p50/max per path and the ECDS / fetch ratio (docs/xds.md, BENCHMARKS.md).
//!
//!   ENVOY_BIN=… cargo bench -p gammaroute-host-tests --bench table_delivery [-- SAMPLES]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use config_pusher::render::envoy as bootstrap;
use config_pusher::serve;
use config_pusher::source::{files, Snapshot};
use config_pusher::store::Store;
use config_pusher::translate::{self, Settings};
use config_pusher::xds::{self, protocol::Resources, resources, server};
use envoy_types::pb::envoy::config::core::v3::{
    async_data_source, data_source, AsyncDataSource, DataSource, TypedExtensionConfig,
};
use envoy_types::pb::envoy::extensions::filters::http::wasm::v3::Wasm;
use envoy_types::pb::envoy::extensions::wasm::v3::{
    plugin_config, FailurePolicy, PluginConfig, VmConfig,
};
use envoy_types::pb::google::protobuf::StringValue;
use gammaroute_host_tests::echo::Echo;
use gammaroute_host_tests::envoy::Envoy;
use gammaroute_host_tests::live::{free_port, gateway_yaml, route_yaml};
use gammaroute_host_tests::{http, wasm_path};
use prost::{Message, Name};

const ECHO: &str = env!("CARGO_BIN_EXE_echo");
const ROLE: &str = "gateway/demo/web";

/// `n` routes `/r<i>` of `shop.example`, all to `backend`.
fn store(n: usize, backend: &str) -> Store {
    let mut yaml = gateway_yaml(&["a", "b"]);
    for i in 0..n {
        yaml.push_str("---\n");
        yaml.push_str(&route_yaml(
            &format!("r{i}"),
            "shop.example",
            &format!("/r{i}"),
            backend,
        ));
    }
    let (store, report) = files::load_text("<bench>", &yaml);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    store
}

fn served_by(addr: SocketAddr) -> String {
    match http::send(addr, "GET", "/r0", &[("host", "shop.example")]) {
        Ok(r) if r.status == 200 => r.json()["service"].as_str().unwrap_or("?").to_string(),
        Ok(r) => format!("status {}", r.status),
        Err(e) => format!("error {e}"),
    }
}

fn wait_served_by(envoy: &Envoy, addr: SocketAddr, want: &str) -> Duration {
    let start = Instant::now();
    let mut streak = 0;
    while streak < 4 {
        if served_by(addr) == want {
            streak += 1;
            continue;
        }
        streak = 0;
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "not served by {want}: {}\n{}",
            served_by(addr),
            envoy.log()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    start.elapsed()
}

fn options(a: &Echo, b: &Echo, ads: SocketAddr) -> bootstrap::BootstrapOptions {
    bootstrap::BootstrapOptions {
        wasm: wasm_path().display().to_string(),
        listen: Some("127.0.0.1:0".parse().unwrap()),
        backends: [
            ("demo/a:8080".to_string(), vec![a.addr]),
            ("demo/b:8080".to_string(), vec![b.addr]),
        ]
        .into(),
        ads: Some(bootstrap::Pusher::parse(&ads.to_string()).unwrap()),
        ..bootstrap::BootstrapOptions::default()
    }
}

fn render(store: &Store, options: &bootstrap::BootstrapOptions) -> String {
    let output = translate::translate(store, &Settings::default());
    match bootstrap::bootstrap(store, &output.tables[ROLE], options).unwrap() {
        bootstrap::Rendered::Bootstrap(b) => b.yaml,
        bootstrap::Rendered::Skipped(why) => panic!("{why}"),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// The filter's fetch: `serve` (table API + ADS) in process, fed snapshots by hand.
fn fetch(a: &Echo, b: &Echo, n: usize, samples: usize) -> Vec<Duration> {
    let (listen, ads) = (free_port(), free_port());
    let ads = SocketAddr::from(([127, 0, 0, 1], ads));
    let mut opts = options(a, b, ads);
    let config = serve::Config {
        xds_listen: Some(ads),
        clusters: opts.clone(),
        ..serve::Config::local(SocketAddr::from(([127, 0, 0, 1], listen)))
    };
    let rt = runtime();
    let first = store(n, "a");
    let (tx, rx) =
        tokio::sync::watch::channel(Snapshot::at(first.clone(), vec![], Instant::now(), 1));
    rt.spawn(serve::run(config, rx, serve::NoStatus));
    opts.pusher = Some(bootstrap::Pusher::parse(&format!("127.0.0.1:{listen}")).unwrap());
    let envoy = Envoy::start_with(&render(&first, &opts), &["--concurrency", "2"]);
    let addr = envoy.listener("gammaroute");
    wait_served_by(&envoy, addr, "a");
    let mut out = Vec::new();
    for i in 0..samples {
        let to = if i % 2 == 0 { "b" } else { "a" };
        let next = store(n, to);
        let start = Instant::now();
        tx.send_replace(Snapshot::at(next, vec![], start, i as u64 + 2));
        wait_served_by(&envoy, addr, to);
        out.push(start.elapsed());
    }
    drop(envoy);
    rt.shutdown_background();
    out
}

/// The ECDS resource: the Wasm filter with the table inline in its plugin configuration.
fn ecds(table: &gammaroute_filter::table::RouteTable) -> (String, Vec<u8>) {
    let table = gammaroute_filter::table::wire::RouteTable::from(table);
    let config = serde_json::json!({"table": table, "listenerPort": 8080}).to_string();
    let wasm = Wasm {
        config: Some(PluginConfig {
            name: "gammaroute".into(),
            root_id: "gammaroute".into(),
            failure_policy: FailurePolicy::FailReload as i32,
            vm: Some(plugin_config::Vm::VmConfig(VmConfig {
                vm_id: "gammaroute".into(),
                runtime: "envoy.wasm.runtime.v8".into(),
                code: Some(AsyncDataSource {
                    specifier: Some(async_data_source::Specifier::Local(DataSource {
                        specifier: Some(data_source::Specifier::Filename(
                            wasm_path().display().to_string(),
                        )),
                        ..DataSource::default()
                    })),
                }),
                ..VmConfig::default()
            })),
            configuration: Some(resources::any(&StringValue { value: config })),
            ..PluginConfig::default()
        }),
    };
    let extension = TypedExtensionConfig {
        name: "gammaroute".into(),
        typed_config: Some(resources::any(&wasm)),
    };
    (TypedExtensionConfig::type_url(), extension.encode_to_vec())
}

#[derive(Debug)]
struct Open;

impl server::Gate for Open {
    fn access(&self, _: Option<&[u8]>) -> Option<config_pusher::auth::Access> {
        None
    }
    fn streams(&self, _: i64) {}
    fn response(&self) {}
    fn nack(&self) {}
}

fn ecds_snapshot(store: &Store, opts: &bootstrap::BootstrapOptions) -> Arc<xds::Snapshot> {
    let output = translate::translate(store, &Settings::default());
    let mut r: Resources = resources::role_resources(store, ROLE, &[&output.tables[ROLE]], opts);
    let (type_url, bytes) = ecds(&output.tables[ROLE]);
    r.entry(type_url)
        .or_default()
        .insert("gammaroute".into(), bytes);
    Arc::new(xds::Snapshot {
        ready: true,
        roles: [(ROLE.to_string(), Arc::new(r))].into(),
    })
}

/// The table as the filter's configuration over ECDS on the ADS stream.
fn ecds_path(a: &Echo, b: &Echo, n: usize, samples: usize) -> Vec<Duration> {
    let ads = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let opts = options(a, b, ads);
    let first = store(n, "a");
    let rt = runtime();
    let (tx, rx) = tokio::sync::watch::channel(ecds_snapshot(&first, &opts));
    rt.spawn(server::run(
        ads,
        server::Ads::new(rx, Arc::new(Open)),
        std::future::pending(),
    ));
    // The rendered bootstrap with the Wasm filter's configuration from ECDS instead of inline.
    let yaml = render(&first, &opts);
    let (from, to) = (
        yaml.find("          - name: envoy.filters.http.wasm\n")
            .expect("wasm filter"),
        yaml.find("          - name: envoy.filters.http.router\n")
            .expect("router"),
    );
    let yaml = format!(
        "{}          - name: gammaroute\n            config_discovery:\n              config_source: {{ads: {{}}, resource_api_version: V3}}\n              type_urls: [{}]\n{}",
        &yaml[..from],
        Wasm::type_url(),
        &yaml[to..]
    );
    let envoy = Envoy::start_with(&yaml, &["--concurrency", "2"]);
    let addr = envoy.listener("gammaroute");
    wait_served_by(&envoy, addr, "a");
    let mut out = Vec::new();
    for i in 0..samples {
        let to = if i % 2 == 0 { "b" } else { "a" };
        let next = store(n, to);
        let start = Instant::now();
        tx.send_replace(ecds_snapshot(&next, &opts));
        wait_served_by(&envoy, addr, to);
        out.push(start.elapsed());
    }
    drop(envoy);
    rt.shutdown_background();
    out
}

fn stats(mut d: Vec<Duration>) -> (f64, f64) {
    d.sort();
    let ms = |x: &Duration| x.as_secs_f64() * 1000.0;
    (ms(&d[d.len() / 2]), ms(&d[d.len() - 1]))
}

fn main() {
    let samples: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10);
    let pid = std::process::id() % 200;
    let a = Echo::start(
        ECHO,
        format!("127.41.{}.1:8080", pid + 1).parse().unwrap(),
        "demo",
        "a",
    );
    let b = Echo::start(
        ECHO,
        format!("127.41.{}.2:8080", pid + 1).parse().unwrap(),
        "demo",
        "b",
    );
    println!("table delivery, {samples} samples, Envoy --concurrency 2 (ms: p50 / max)");
    for n in [1, 1000] {
        let (fp50, fmax) = stats(fetch(&a, &b, n, samples));
        let (ep50, emax) = stats(ecds_path(&a, &b, n, samples));
        println!(
            "{n:>5} routes: fetch {fp50:.0} / {fmax:.0}   ECDS {ep50:.0} / {emax:.0}   ECDS/fetch p50 {:.2}x",
            ep50 / fp50
        );
    }
}
