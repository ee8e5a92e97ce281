//! `serve --xds-listen` (ADS over gRPC) with real processes: a `config-pusher serve` process, echo
//! backends, and Envoy started from the bootstrap `render --xds-server` writes. Envoy's clusters,
//! their endpoints (from the folder's EndpointSlices) and the HTTPS listener's certificate come
//! over one ADS stream; the filter still fetches its table from `serve` (docs/xds.md). Checked
//! without restarting Envoy: a new Service with a route, endpoints moved to another backend, a
//! rotated certificate, and a config-pusher killed (Envoy keeps routing) and started again
//! (Envoy reconnects and resyncs). Envoy, the release .wasm, `openssl` and `curl` are required:
//! the test fails when one is missing.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use gammaroute_host_tests::certs;
use gammaroute_host_tests::echo::Echo;
use gammaroute_host_tests::envoy::Envoy;
use gammaroute_host_tests::live::{config_pusher_bin, free_port, tail, Pusher, Scratch};
use gammaroute_host_tests::{http, wasm_path};

const ECHO: &str = env!("CARGO_BIN_EXE_echo");

/// GatewayClass, Gateway `demo/web` (HTTP on `http`, HTTPS `shop.example` on `https` with
/// Secret `demo/shop-cert`).
fn gateway(http: u16, https: u16) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: gammaroute}}
spec: {{controllerName: gammaroute.dev/config-pusher}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: web, namespace: demo}}
spec:
  gatewayClassName: gammaroute
  listeners:
  - {{name: http, protocol: HTTP, port: {http}}}
  - name: https
    protocol: HTTPS
    port: {https}
    hostname: shop.example
    tls: {{certificateRefs: [{{name: shop-cert}}]}}
"
    )
}

/// Service `demo/NAME` (port 8080), its EndpointSlice pointing at `endpoint`, and an HTTPRoute
/// `/NAME` → it on both listeners.
fn backend(name: &str, endpoint: SocketAddr) -> String {
    format!(
        "apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: demo}}
spec: {{ports: [{{port: 8080, name: http}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {name}-1, namespace: demo, labels: {{kubernetes.io/service-name: {name}}}}}
addressType: IPv4
ports: [{{name: http, port: {}, protocol: TCP}}]
endpoints: [{{addresses: [\"{}\"], conditions: {{ready: true}}}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}, namespace: demo}}
spec:
  parentRefs: [{{name: web}}]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /{name}}}}}]
    backendRefs: [{{name: {name}, port: 8080}}]
",
        endpoint.port(),
        endpoint.ip()
    )
}

/// A self-signed certificate for `shop.example` as a `kubernetes.io/tls` Secret `demo/shop-cert`,
/// and the certificate's PEM (what curl trusts).
fn certificate(dir: &Path, stem: &str) -> (String, std::path::PathBuf) {
    let (cert, key) = certs::self_signed(dir, stem, &["shop.example"]);
    (certs::tls_secret("demo", "shop-cert", &cert, &key), cert)
}

/// `curl` over TLS to `shop.example/api` on 127.0.0.1:`port`, trusting only `ca`: the status, or
/// the error (an untrusted certificate fails the handshake).
fn https_status(port: u16, ca: &Path) -> Result<u16, String> {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "5",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .args(["--resolve", &format!("shop.example:{port}:127.0.0.1")])
        .arg("--cacert")
        .arg(ca)
        .arg(format!("https://shop.example:{port}/api"))
        .output()
        .expect("the curl CLI is required (apt-get install curl)");
    let code = String::from_utf8_lossy(&out.stdout).parse().unwrap_or(0);
    if out.status.success() {
        Ok(code)
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// Which service answered `GET /path` through Envoy's HTTP listener (`demo/<svc>`), or the status.
fn served_by(addr: SocketAddr, path: &str) -> String {
    match http::send(addr, "GET", path, &[("host", "any.example")]) {
        Ok(r) if r.status == 200 => {
            let doc = r.json();
            format!(
                "{}/{}",
                doc["namespace"].as_str().unwrap_or("?"),
                doc["service"].as_str().unwrap_or("?")
            )
        }
        Ok(r) => format!("status {}", r.status),
        Err(e) => format!("error {e}"),
    }
}

/// Polls `check` for up to 20 s; on timeout fails with both logs.
fn wait(what: &str, envoy: &Envoy, pusher: &Pusher, mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{what}: not after 20 s\nEnvoy:\n{}\nconfig-pusher:\n{}",
            tail(&envoy.log(), 40),
            tail(&pusher.log(), 40)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

#[test]
fn envoy_gets_clusters_endpoints_and_certificates_over_ads_and_survives_a_restart() {
    ads_lifecycle("ads", 40, |at| {
        let out = at.work.join("rendered");
        let rendered = Command::new(config_pusher_bin())
            .args(["render", "--from"])
            .arg(at.folder)
            .arg("--out")
            .arg(&out)
            .arg("--wasm")
            .arg(wasm_path())
            .args(["--listen", "127.0.0.1", "--pusher", &at.pusher.to_string()])
            .args(["--xds-server", &at.ads.to_string()])
            .output()
            .unwrap_or_else(|e| panic!("cannot run config-pusher render: {e}"));
        assert!(
            rendered.status.success(),
            "render: {}",
            String::from_utf8_lossy(&rendered.stderr)
        );
        assert!(!out.join("sds").exists(), "no key files with ADS");
        std::fs::read_to_string(out.join("envoy/gateway/demo/web.yaml")).unwrap()
    });
}

/// The bootstrap `serve --kube --xds-listen` provisions for a Gateway (its ConfigMap), with
/// only what a pod has and loopback has not replaced: the module path, the fixed admin and
/// readiness ports, and the all-interfaces listen address (issue #22: a provisioned proxy gets
/// its clusters, endpoints and certificates over ADS, without restarts).
#[test]
fn a_provisioned_proxy_gets_clusters_endpoints_and_certificates_over_ads_and_survives_a_restart() {
    use config_pusher::provision::bootstrap::{self, ControlPlane, ADMIN_PORT, READY_PORT};
    use config_pusher::render::envoy::Pusher as Reach;
    ads_lifecycle("ads-provisioned", 41, |at| {
        let (store, report) = config_pusher::source::files::load(at.folder);
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        let output = config_pusher::translate::translate(&store, &Default::default());
        let plane = ControlPlane {
            pusher: Reach::parse(&at.pusher.to_string()).unwrap(),
            ads: Some(Reach::parse(&at.ads.to_string()).unwrap()),
        };
        let module = config_pusher::provision::ModuleSource::Image("replaced below".into());
        let yaml = bootstrap::render(
            &store,
            &output.tables["gateway/demo/web"],
            &plane,
            "cluster.local",
            &module,
        )
        .unwrap();
        yaml.replace(bootstrap::WASM_PATH, &wasm_path().display().to_string())
            .replace(&format!("port_value: {ADMIN_PORT}}}"), "port_value: 0}")
            .replace(&format!("port_value: {READY_PORT}}}"), "port_value: 0}")
            .replace("\"0.0.0.0\"", "\"127.0.0.1\"")
    });
}

/// What the bootstrap of [`ads_lifecycle`] is made from.
struct At<'a> {
    folder: &'a Path,
    work: &'a Path,
    /// `serve`'s table API and its ADS server.
    pusher: SocketAddr,
    ads: SocketAddr,
}

/// Starts `serve --xds-listen` on a folder with Gateway `demo/web` (HTTP and HTTPS listeners),
/// runs Envoy from `bootstrap`, and checks without restarting Envoy: routing by the
/// EndpointSlice's address, TLS with the Secret's certificate, a new Service with a route, moved
/// endpoints (EDS only), a rotated certificate, config-pusher killed (Envoy keeps routing) and
/// started again after a change (Envoy reconnects and resyncs). The echo backends listen on
/// `127.<net>.*`: tests running at once each take their own `net`.
fn ads_lifecycle(name: &str, net: u8, bootstrap: impl FnOnce(At) -> String) {
    let work = Scratch::new(name);
    let folder = Scratch::new(&format!("{name}-config"));
    let (http_port, https_port) = (free_port(), free_port());
    let ip = |n: u32| -> SocketAddr {
        let pid = std::process::id() % 200;
        format!("127.{net}.{}.{n}:{}", pid + 1, 8080)
            .parse()
            .unwrap()
    };
    let api = Echo::start(ECHO, ip(1), "demo", "api");
    let api2 = Echo::start(ECHO, ip(2), "demo", "api-v2");
    let new = Echo::start(ECHO, ip(3), "demo", "new");
    let (secret, ca1) = certificate(&work.0, "one");
    folder.write("gateway.yaml", &gateway(http_port, https_port));
    folder.write("secret.yaml", &secret);
    folder.write("api.yaml", &backend("api", api.addr));

    // config-pusher serve with ADS on a fixed port (the bootstrap names it; it survives restarts).
    let ads = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let ads_arg = ads.to_string();
    let mut pusher = Pusher::start(&folder.0, &["--xds-listen", &ads_arg]);

    let yaml = bootstrap(At {
        folder: &folder.0,
        work: &work.0,
        pusher: pusher.addr,
        ads,
    });
    assert!(
        yaml.contains("ads_config:") && yaml.contains("ads: {}"),
        "{yaml}"
    );
    assert!(
        !yaml.contains("PRIVATE KEY"),
        "the key stays out of the bootstrap"
    );
    let envoy = Envoy::start(&yaml);
    let addr = SocketAddr::from(([127, 0, 0, 1], http_port));

    // Clusters and endpoints over ADS: routed to the EndpointSlice's address.
    wait("api routed", &envoy, &pusher, || {
        served_by(addr, "/api") == "demo/api"
    });
    assert_eq!(envoy.stat("control_plane.connected_state"), 1);
    // The listener certificate over ADS (SDS): TLS with the first certificate.
    wait("TLS with the first certificate", &envoy, &pusher, || {
        https_status(https_port, &ca1) == Ok(200)
    });

    // A new Service with a route: a new cluster and its endpoints, no restart.
    folder.write("new.yaml", &backend("new", new.addr));
    let took = wait("new Service routed", &envoy, &pusher, || {
        served_by(addr, "/new") == "demo/new"
    });
    eprintln!("new Service routed after {took:?}");

    // The EndpointSlice moves to another pod: EDS only.
    let cds_before = envoy.stat("cluster_manager.cds.update_success");
    folder.write("api.yaml", &backend("api", api2.addr));
    wait("api endpoints moved", &envoy, &pusher, || {
        served_by(addr, "/api") == "demo/api-v2"
    });
    assert_eq!(
        envoy.stat("cluster_manager.cds.update_success"),
        cds_before,
        "moving endpoints must not push clusters"
    );

    // A rotated certificate: new handshakes get it.
    let (rotated, ca2) = certificate(&work.0, "two");
    folder.write("secret.yaml", &rotated);
    wait("TLS with the rotated certificate", &envoy, &pusher, || {
        https_status(https_port, &ca2) == Ok(200)
    });
    assert!(
        https_status(https_port, &ca1).is_err(),
        "the old one is gone"
    );

    // config-pusher dies: Envoy keeps routing with what it has.
    pusher.kill();
    wait("Envoy sees the stream gone", &envoy, &pusher, || {
        envoy.stat("control_plane.connected_state") == 0
    });
    for path in ["/api", "/new"] {
        let want = if path == "/api" {
            "demo/api-v2"
        } else {
            "demo/new"
        };
        assert_eq!(
            served_by(addr, path),
            want,
            "{path} while config-pusher is down"
        );
    }
    assert_eq!(https_status(https_port, &ca2), Ok(200));

    // A change while it is down, then config-pusher starts again: Envoy reconnects and resyncs.
    folder.write("api.yaml", &backend("api", api.addr));
    pusher.restart();
    wait("Envoy reconnected", &envoy, &pusher, || {
        envoy.stat("control_plane.connected_state") == 1
    });
    wait("resynced after the restart", &envoy, &pusher, || {
        served_by(addr, "/api") == "demo/api"
    });
    assert_eq!(served_by(addr, "/new"), "demo/new");
    assert_eq!(envoy.stat("cluster_manager.cds.update_rejected"), 0);
    let metrics = pusher.get("/metrics").unwrap().text();
    assert!(metrics.contains("config_pusher_xds_streams 1"), "{metrics}");
    assert!(
        metrics.contains("config_pusher_xds_nacks_total 0"),
        "{metrics}"
    );
}

/// Counts NACKs; no token.
#[derive(Debug, Default)]
struct Nacks(std::sync::atomic::AtomicU64);

impl config_pusher::xds::server::Gate for Nacks {
    fn access(&self, _: Option<&[u8]>) -> Option<config_pusher::auth::Access> {
        None
    }
    fn streams(&self, _: i64) {}
    fn response(&self) {}
    fn nack(&self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

#[test]
fn envoy_nacks_an_invalid_cluster_and_keeps_routing_with_the_last_good_one() {
    use config_pusher::render::envoy as bootstrap;
    use config_pusher::xds::{resources, server, Snapshot};
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;
    use prost::Message;
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    let pid = std::process::id() % 200;
    let api = Echo::start(
        ECHO,
        format!("127.40.{}.9:8080", pid + 1).parse().unwrap(),
        "demo",
        "api",
    );
    let folder = Scratch::new("ads-nack");
    folder.write(
        "all.yaml",
        &format!(
            "{}---\n{}",
            gammaroute_host_tests::live::gateway_yaml(&["api"]),
            gammaroute_host_tests::live::route_yaml("api", "shop.example", "/", "api")
        ),
    );
    let (store, _) = config_pusher::source::files::load(&folder.0);
    let output = config_pusher::translate::translate(&store, &Default::default());
    let role = "gateway/demo/web";
    let table = &output.tables[role];

    // The ADS server in process, fed snapshots by hand.
    let ads = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let options = bootstrap::BootstrapOptions {
        wasm: wasm_path().display().to_string(),
        listen: Some("127.0.0.1:0".parse().unwrap()),
        backends: [("demo/api:8080".to_string(), vec![api.addr])].into(),
        ads: Some(bootstrap::Pusher::parse(&ads.to_string()).unwrap()),
        ..bootstrap::BootstrapOptions::default()
    };
    let good = resources::role_resources(&store, role, &[table], &options);
    let snapshot = |r: &config_pusher::xds::protocol::Resources| {
        Arc::new(Snapshot {
            ready: true,
            roles: [(role.to_string(), Arc::new(r.clone()))].into(),
        })
    };
    let (tx, rx) = tokio::sync::watch::channel(snapshot(&good));
    let nacks = Arc::new(Nacks::default());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.spawn(server::run(
        ads,
        server::Ads::new(rx, nacks.clone()),
        std::future::pending(),
    ));

    let bootstrap::Rendered::Bootstrap(b) = bootstrap::bootstrap(&store, table, &options).unwrap()
    else {
        panic!("no bootstrap for {role}");
    };
    let envoy = Envoy::start(&b.yaml);
    let addr = envoy.listener("gammaroute");
    let routed = || {
        http::send(addr, "GET", "/", &[("host", "shop.example")])
            .is_ok_and(|r| r.status == 200 && r.json()["service"] == "api")
    };
    let start = Instant::now();
    while !routed() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "not routed over ADS:\n{}",
            tail(&envoy.log(), 40)
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // An invalid cluster (a negative connect_timeout fails Envoy's validation).
    let mut bad = good.clone();
    let cds = bad.get_mut(&resources::cluster_type()).unwrap();
    let cluster = cds.get_mut("demo/api:8080").unwrap();
    let mut invalid = Cluster::decode(cluster.as_slice()).unwrap();
    invalid.connect_timeout = Some(envoy_types::pb::google::protobuf::Duration {
        seconds: -1,
        nanos: 0,
    });
    *cluster = invalid.encode_to_vec();
    tx.send_replace(snapshot(&bad));
    let start = Instant::now();
    while nacks.0.load(Ordering::Relaxed) == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no NACK:\n{}",
            tail(&envoy.log(), 40)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(envoy.stat("cluster_manager.cds.update_rejected") >= 1);
    for _ in 0..20 {
        assert!(routed(), "the last good cluster stays");
    }

    // Fixed content is pushed and applied.
    let applied = envoy.stat("cluster_manager.cds.update_success");
    let mut fixed = good.clone();
    let cds = fixed.get_mut(&resources::cluster_type()).unwrap();
    let cluster = cds.get_mut("demo/api:8080").unwrap();
    let mut longer = Cluster::decode(cluster.as_slice()).unwrap();
    longer.connect_timeout = Some(envoy_types::pb::google::protobuf::Duration {
        seconds: 2,
        nanos: 0,
    });
    *cluster = longer.encode_to_vec();
    tx.send_replace(snapshot(&fixed));
    let start = Instant::now();
    while envoy.stat("cluster_manager.cds.update_success") == applied {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "fixed version not applied:\n{}",
            tail(&envoy.log(), 40)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(routed());
    assert_eq!(nacks.0.load(Ordering::Relaxed), 1);
    drop(envoy);
    runtime.shutdown_background();
}
