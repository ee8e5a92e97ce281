//! Backend and client protocols in real Envoy, through a Gateway rendered by config-pusher:
//! a Service port with `appProtocol: kubernetes.io/h2c` is reached over cleartext HTTP/2
//! (upstream `HTTPRouteBackendProtocolH2C`), one with `kubernetes.io/ws` takes a WebSocket
//! upgrade through the gateway (`HTTPRouteBackendProtocolWebSocket`), and a client speaking h2c
//! with prior knowledge is served on the HTTP listener. The same WebSocket upgrade goes through a
//! mesh sidecar (GAMMA: a routed Service, and one no route applies to). Envoy, the release .wasm
//! and `curl` are required: the test fails when one is missing. Loopback only.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use config_pusher::render::{self, envoy as bootstrap};
use config_pusher::source::files;
use config_pusher::translate::{self, Settings};
use gammaroute_host_tests::echo::Echo;
use gammaroute_host_tests::envoy::Envoy;
use gammaroute_host_tests::{http, wasm_path};

const PORT: u16 = 18081;

fn yaml() -> String {
    format!(
        r#"apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: gammaroute}}
spec: {{controllerName: gammaroute.dev/config-pusher}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: edge, namespace: app}}
spec:
  gatewayClassName: gammaroute
  listeners: [{{name: http, port: {PORT}, protocol: HTTP}}]
---
apiVersion: v1
kind: Service
metadata: {{name: h2c, namespace: app}}
spec: {{ports: [{{port: 80, appProtocol: kubernetes.io/h2c}}]}}
---
apiVersion: v1
kind: Service
metadata: {{name: plain, namespace: app}}
spec: {{ports: [{{port: 80}}]}}
---
apiVersion: v1
kind: Service
metadata: {{name: ws, namespace: app}}
spec: {{ports: [{{port: 80, appProtocol: kubernetes.io/ws}}]}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: protocols, namespace: app}}
spec:
  parentRefs: [{{name: edge}}]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /h2c}}}}]
    backendRefs: [{{name: h2c, port: 80}}]
  - matches: [{{path: {{type: PathPrefix, value: /ws}}}}]
    backendRefs: [{{name: ws, port: 80}}]
  - backendRefs: [{{name: plain, port: 80}}]
"#
    )
}

/// The HTTP version the backend saw (`proto` of the echo's answer).
fn proto(r: &http::Response) -> String {
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["proto"].as_str().unwrap_or_default().to_string()
}

#[test]
fn h2c_and_websocket_backends_and_h2c_clients() {
    let pid = std::process::id();
    let ip: IpAddr = format!("127.{}.{}.10", 60 + pid % 100 / 50, pid % 50 + 1)
        .parse()
        .unwrap();
    let echo = |port: u16, svc: &str| {
        Echo::start(
            env!("CARGO_BIN_EXE_echo"),
            SocketAddr::new(ip, port),
            "app",
            svc,
        )
    };
    let (h2c, plain, ws) = (echo(9001, "h2c"), echo(9002, "plain"), echo(9003, "ws"));

    let dir = std::env::temp_dir().join(format!("gammaroute-protocols-{pid}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("all.yaml"), yaml()).unwrap();
    let (store, report) = files::load(&dir);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let output = translate::translate(&store, &Settings::default());
    let options = bootstrap::BootstrapOptions {
        wasm: wasm_path().display().to_string(),
        listen: Some(ip.to_string().parse().unwrap()),
        backends: [
            ("app/h2c:80".to_string(), vec![h2c.addr]),
            ("app/plain:80".to_string(), vec![plain.addr]),
            ("app/ws:80".to_string(), vec![ws.addr]),
        ]
        .into(),
        ..bootstrap::BootstrapOptions::default()
    };
    let rendered = render::render(&store, &output, &options).unwrap();
    let gw = rendered
        .bootstraps()
        .find(|f| f.role.as_deref() == Some("gateway/app/edge"))
        .expect("a bootstrap for the Gateway");
    let envoy = Envoy::start(std::str::from_utf8(&gw.content).unwrap());
    let addr = SocketAddr::new(ip, PORT);

    // appProtocol kubernetes.io/h2c: HTTP/2 to the backend; without it HTTP/1.1.
    assert_eq!(
        proto(&http::get(addr, "a.example", "/h2c", &[])),
        "HTTP/2.0"
    );
    assert_eq!(proto(&http::get(addr, "a.example", "/", &[])), "HTTP/1.1");

    // A client speaking h2c with prior knowledge on the HTTP listener.
    let out = Command::new("curl")
        .args(["-sS", "--http2-prior-knowledge", "--max-time", "5"])
        .args(["-o", "/dev/null", "-w", "%{http_code} %{http_version}"])
        .arg(format!("http://{addr}/"))
        .output()
        .expect("the curl CLI is required (apt-get install curl)");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "200 2",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // WebSocket: the upgrade reaches the ws backend, then the tunnel carries bytes both ways.
    websocket(addr, "a.example", "/ws/chat", "ws");

    drop(envoy);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A WebSocket upgrade to `addr` for `host` and `path`: the 101 comes from the echo backend of
/// Service `service` (RFC 6455 accept key), then bytes cross the tunnel both ways.
fn websocket(addr: SocketAddr, host: &str, path: &str, service: &str) {
    let key = "dGhlIHNhbXBsZSBub25jZQ==";
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            conn.read(&mut byte).unwrap(),
            1,
            "{}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{addr} {path}: {head}");
    assert!(
        head.contains(&format!("x-echo-service: {service}")),
        "{head}"
    );
    assert!(
        head.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );
    conn.write_all(b"hello through the tunnel").unwrap();
    let mut back = [0u8; 24];
    conn.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"hello through the tunnel");
}

/// GAMMA: a client's sidecar takes WebSocket upgrades to a Service whose route splits it by path
/// (`appProtocol: kubernetes.io/ws` backends), and to a ws Service no route applies to (passed
/// through to its own endpoints), as upstream `HTTPRouteBackendProtocolWebSocket` does at a
/// Gateway.
#[test]
fn websocket_upgrades_through_a_mesh_sidecar() {
    let pid = std::process::id();
    let (a, b) = (60 + pid % 100 / 50, pid % 50 + 1);
    let cluster_ip = |host: u8| format!("127.{}.{b}.{host}", a + 40);
    let backend_ip: IpAddr = format!("127.{a}.{b}.11").parse().unwrap();
    let echo = |port: u16, svc: &str| {
        Echo::start(
            env!("CARGO_BIN_EXE_echo"),
            SocketAddr::new(backend_ip, port),
            "app",
            svc,
        )
    };
    let (chat, chat_v2, feed) = (
        echo(9011, "chat"),
        echo(9012, "chat-v2"),
        echo(9013, "feed"),
    );
    let service = |name: &str, ip: &str| {
        format!("apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: app}}\nspec: {{clusterIP: {ip}, ports: [{{port: 80, appProtocol: kubernetes.io/ws}}]}}\n---\n")
    };
    let yaml = format!(
        r#"apiVersion: v1
kind: Namespace
metadata: {{name: app}}
---
{}{}{}apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: chat, namespace: app}}
spec:
  parentRefs: [{{group: "", kind: Service, name: chat, port: 80}}]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /v2}}}}]
    backendRefs: [{{name: chat-v2, port: 80}}]
  - backendRefs: [{{name: chat, port: 80}}]
"#,
        service("chat", &cluster_ip(1)),
        service("chat-v2", &cluster_ip(2)),
        service("feed", &cluster_ip(3)),
    );
    let dir = std::env::temp_dir().join(format!("gammaroute-mesh-ws-{pid}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("all.yaml"), yaml).unwrap();
    let (store, report) = files::load(&dir);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let output = translate::translate(&store, &Settings::default());
    let options = bootstrap::BootstrapOptions {
        wasm: wasm_path().display().to_string(),
        backends: [
            ("app/chat:80".to_string(), vec![chat.addr]),
            ("app/chat-v2:80".to_string(), vec![chat_v2.addr]),
            ("app/feed:80".to_string(), vec![feed.addr]),
        ]
        .into(),
        ..bootstrap::BootstrapOptions::default()
    };
    let rendered = render::render(&store, &output, &options).unwrap();
    let sidecar = rendered
        .bootstraps()
        .find(|f| f.role.as_deref() == Some("mesh/app"))
        .expect("a sidecar bootstrap for namespace app");
    let envoy = Envoy::start(std::str::from_utf8(&sidecar.content).unwrap());
    let frontend = |host: u8| SocketAddr::new(cluster_ip(host).parse().unwrap(), 80);

    // The route applies: by path, each upgrade to its backend.
    websocket(frontend(1), "chat.app", "/v2/room", "chat-v2");
    websocket(frontend(1), "chat.app", "/room", "chat");
    // No route for feed: passed through to its own endpoints, upgrade included.
    websocket(frontend(3), "feed.app", "/", "feed");

    drop(envoy);
    let _ = std::fs::remove_dir_all(&dir);
}
