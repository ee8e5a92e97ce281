//! The bootstrap `serve --kube` puts into a provisioned Gateway's ConfigMap
//! (`config_pusher::provision::bootstrap`), run in a real Envoy: its `/ready` listener answers
//! the kubelet's probe, and the filter — with no inline table — fetches its Gateway's table from
//! a real `config-pusher serve` with the role token the bootstrap carries, then routes. Only
//! what a pod provides is replaced for loopback: the module path, the fixed ports, and the
//! Service DNS name of the backend (no cluster DNS here). Envoy and the release .wasm are
//! required: the test fails when either is missing.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use config_pusher::auth::Secret;
use config_pusher::provision::bootstrap::{self, ADMIN_PORT, READY_PORT};
use config_pusher::provision::{ModuleSource, ModuleUrl};
use config_pusher::render::envoy::Pusher as PusherAddr;
use config_pusher::source::files;
use config_pusher::translate::{self, Settings};
use gammaroute_host_tests::echo::Echo;
use gammaroute_host_tests::envoy::Envoy;
use gammaroute_host_tests::live::{self, Pusher, Scratch};
use gammaroute_host_tests::{http, wasm_path};

const ROLE: &str = "gateway/demo/web";
const SECRET: &str = "provisioned-proxy-test-secret";

/// Serves `bytes` to every HTTP request on a free loopback port (the module's URL).
fn file_server(bytes: Vec<u8>) -> SocketAddr {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/wasm\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                bytes.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&bytes);
        }
    });
    addr
}

#[test]
fn a_provisioned_bootstrap_is_ready_fetches_its_table_with_its_role_token_and_routes() {
    run(false);
}

/// `--proxy-wasm-url` + `--proxy-wasm-sha256`: Envoy downloads the module and checks its hash.
#[test]
fn a_provisioned_bootstrap_can_download_the_module_from_a_url() {
    run(true);
}

fn run(from_url: bool) {
    let folder = Scratch::new(if from_url {
        "provisioned-url"
    } else {
        "provisioned"
    });
    folder.write("gateway.yaml", &live::gateway_yaml(&["api"]));
    folder.write(
        "route.yaml",
        &live::route_yaml("api", "shop.example", "/", "api"),
    );
    let secret_file = folder.0.with_extension("secret");
    std::fs::write(&secret_file, SECRET).unwrap();
    let pusher = Pusher::start(&folder.0, &["--token-file", secret_file.to_str().unwrap()]);
    let echo = Echo::start(
        env!("CARGO_BIN_EXE_echo"),
        SocketAddr::from(([127, 0, 0, 1], live::free_port())),
        "demo",
        "api",
    );

    // The bootstrap exactly as provisioning renders it for demo/web.
    let (mut store, report) = files::load(&folder.0);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let output = translate::translate(&store, &Settings::default());
    store.endpoint_slices.clear();
    let token = Secret::new(SECRET.as_bytes()).unwrap().role_token(ROLE);
    let at = PusherAddr {
        host: "127.0.0.1".into(),
        port: pusher.addr.port(),
        token: Some(token),
        tls: None,
    };
    let module = if from_url {
        let bytes = std::fs::read(wasm_path()).expect("the release .wasm (make wasm)");
        let sha = config_pusher::provision::objects::sha256_hex(&bytes)
            .parse()
            .unwrap();
        let server = file_server(bytes);
        ModuleSource::Url(
            ModuleUrl::parse(&format!("http://{server}/gammaroute.wasm"), &sha).unwrap(),
        )
    } else {
        ModuleSource::Image("unused: the module path is replaced below".into())
    };
    let plane = bootstrap::ControlPlane {
        pusher: at,
        ads: None,
    };
    let yaml = bootstrap::render(
        &store,
        &output.tables[ROLE],
        &plane,
        "cluster.local",
        &module,
    )
    .unwrap();
    assert_eq!(yaml.contains(bootstrap::WASM_PATH), !from_url, "{yaml}");
    assert!(!yaml.contains("\\\"routes\\\""), "no inline table:\n{yaml}");

    // What a pod has that loopback has not.
    let local = yaml
        .replace(bootstrap::WASM_PATH, &wasm_path().display().to_string())
        .replace(&format!("port_value: {ADMIN_PORT}}}"), "port_value: 0}")
        .replace(
            &format!("address: \"0.0.0.0\", port_value: {READY_PORT}}}"),
            "address: \"127.0.0.1\", port_value: 0}",
        )
        .replace(
            "address: \"0.0.0.0\", port_value: 8080}",
            "address: \"127.0.0.1\", port_value: 0}",
        )
        .replace(
            "address: \"api.demo.svc.cluster.local\", port_value: 8080}",
            &format!("address: \"127.0.0.1\", port_value: {}}}", echo.addr.port()),
        );
    assert!(
        !local.contains("0.0.0.0") && !local.contains(".svc.cluster.local"),
        "{local}"
    );
    let envoy = Envoy::start(&local);

    // The kubelet's readiness probe.
    let ready = envoy.listener("gammaroute-ready");
    let r = http::get(ready, "pod", "/ready", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        http::get(ready, "pod", "/stats", &[]).status,
        404,
        "only /ready"
    );

    // Routed once the fetched table arrives (503 before: it has no table of its own).
    let gw = envoy.listener("gammaroute");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = http::get(gw, "shop.example", "/x", &[]);
        if r.status == 200 && r.json()["service"] == "api" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never routed: {} {}\nEnvoy log:\n{}\nconfig-pusher log:\n{}",
            r.status,
            r.text(),
            envoy.log(),
            pusher.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // config-pusher sees the proxy of the role report the table it applied (the role token
    // worked; the report rides on the proxy's next poll).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let proxies = http::get(
            pusher.addr,
            "config-pusher",
            "/v1/proxies",
            &[("authorization", &format!("Bearer {SECRET}"))],
        )
        .json();
        let applied = proxies
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["role"] == ROLE && p["appliedVersion"].is_string());
        if applied {
            break;
        }
        assert!(Instant::now() < deadline, "{proxies}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = std::fs::remove_file(&secret_file);
}
