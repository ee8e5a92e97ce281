//! TLS termination in real Envoy: a Gateway with an HTTP listener and three HTTPS listeners
//! sharing one port (exact hostname, wildcard hostname, and one whose Secret is missing), rendered
//! by config-pusher (`render/tls.rs`: filter chains per SNI, certificates through filesystem SDS),
//! and written by `serve --xds-dir`'s SDS writer), and reached with `curl` over TLS with SNI and ALPN h2. Certificates are generated at start
//! with the `openssl` CLI. Envoy, the release .wasm, `openssl` and `curl` are required: the test
//! fails when one is missing. Loopback only; everything stops with the test.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use config_pusher::render::{self, envoy as bootstrap, FileKind};
use config_pusher::source::files;
use config_pusher::translate::{self, Settings};
use gammaroute_host_tests::certs::self_signed as certificate;
use gammaroute_host_tests::echo::Echo;
use gammaroute_host_tests::envoy::Envoy;
use gammaroute_host_tests::{http, wasm_path};

const HTTP_PORT: u16 = 18080;
const HTTPS_PORT: u16 = 18443;

fn tls_secret(name: &str, cert: &Path, key: &Path) -> String {
    format!(
        "---\n{}",
        gammaroute_host_tests::certs::tls_secret("infra", name, cert, key)
    )
}

fn gateway_yaml(secrets: &str) -> String {
    format!(
        r#"apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: gammaroute}}
spec: {{controllerName: gammaroute.dev/config-pusher}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: edge, namespace: infra}}
spec:
  gatewayClassName: gammaroute
  listeners:
  - {{name: http, port: {HTTP_PORT}, protocol: HTTP, allowedRoutes: {{namespaces: {{from: All}}}}}}
  - name: shop
    port: {HTTPS_PORT}
    protocol: HTTPS
    hostname: shop.example.com
    allowedRoutes: {{namespaces: {{from: All}}}}
    tls: {{certificateRefs: [{{name: shop-cert}}]}}
  - name: wild
    port: {HTTPS_PORT}
    protocol: HTTPS
    hostname: "*.example.net"
    allowedRoutes: {{namespaces: {{from: All}}}}
    tls: {{certificateRefs: [{{name: wild-cert}}]}}
  - name: missing
    port: {HTTPS_PORT}
    protocol: HTTPS
    hostname: missing.example.com
    allowedRoutes: {{namespaces: {{from: All}}}}
    tls: {{certificateRefs: [{{name: nowhere}}]}}
---
apiVersion: v1
kind: Service
metadata: {{name: shop, namespace: app}}
spec:
  ports: [{{name: http, port: 80}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: shop, namespace: app}}
spec:
  parentRefs: [{{name: edge, namespace: infra}}]
  rules:
  - backendRefs: [{{name: shop, port: 80}}]
  # No scheme, no port: the request's scheme (https over TLS) and the listener's port.
  - matches: [{{path: {{type: PathPrefix, value: /old}}}}]
    filters: [{{type: RequestRedirect, requestRedirect: {{path: {{type: ReplacePrefixMatch, replacePrefixMatch: /new}}}}}}]
---
# Plain HTTP is sent to HTTPS.
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: to-https, namespace: app}}
spec:
  parentRefs: [{{name: edge, namespace: infra, sectionName: http}}]
  hostnames: [secure.example.com]
  rules:
  - filters: [{{type: RequestRedirect, requestRedirect: {{scheme: https, port: {HTTPS_PORT}, statusCode: 301}}}}]
{secrets}"#
    )
}

/// `curl` over TLS to `host` (SNI and Host) pinned to `ip`, trusting only `ca`: `Ok(http_version)`
/// for a 200, `Err(why)` otherwise.
fn https_get(ip: IpAddr, host: &str, ca: &Path) -> Result<String, String> {
    https_get_at(SocketAddr::new(ip, HTTPS_PORT), host, ca)
}

/// [`https_get`] at another address.
fn https_get_at(addr: SocketAddr, host: &str, ca: &Path) -> Result<String, String> {
    let (ip, port) = (addr.ip(), addr.port());
    let out = Command::new("curl")
        .args(["-sS", "--http2", "--max-time", "5", "-o", "/dev/null"])
        .args(["-w", "%{http_code} %{http_version}"])
        .args(["--resolve", &format!("{host}:{port}:{ip}")])
        .arg("--cacert")
        .arg(ca)
        .arg(format!("https://{host}:{port}/"))
        .output()
        .expect("the curl CLI is required (apt-get install curl)");
    let shown = String::from_utf8_lossy(&out.stdout).to_string();
    match shown.split_once(' ') {
        Some(("200", version)) if out.status.success() => Ok(version.to_string()),
        _ => Err(format!(
            "{host}: {shown} {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

/// `curl` over TLS with SNI `sni` (pinned to `ip`, trusting only `ca`) but `host` as the
/// request's `:authority`, as a client that coalesced its HTTP/2 connection would send it:
/// `(status, HTTP version, location)`.
fn https_request(
    ip: IpAddr,
    sni: &str,
    host: &str,
    path: &str,
    ca: &Path,
) -> (u16, String, String) {
    let out = Command::new("curl")
        .args(["-sS", "--http2", "--max-time", "5", "-o", "/dev/null"])
        .args(["-w", "%{http_code} %{http_version} %{redirect_url}"])
        .args(["--resolve", &format!("{sni}:{HTTPS_PORT}:{ip}")])
        .args(["-H", &format!("host: {host}")])
        .arg("--cacert")
        .arg(ca)
        .arg(format!("https://{sni}:{HTTPS_PORT}{path}"))
        .output()
        .expect("the curl CLI is required (apt-get install curl)");
    let shown = String::from_utf8_lossy(&out.stdout).to_string();
    let mut parts = shown.splitn(3, ' ');
    let status = parts.next().and_then(|c| c.parse().ok()).unwrap_or(0);
    let version = parts.next().unwrap_or("").to_string();
    let location = parts.next().unwrap_or("").to_string();
    assert!(
        out.status.success(),
        "{sni} / {host}: {shown} {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    (status, version, location)
}

/// Translates `yaml`, writes the SDS files as `serve --xds-dir` does (into `sds`, temporary file
/// and rename), and renders the bootstraps: `(rendered, status.yaml, SDS files changed)`.
fn render_for(
    yaml: &str,
    input: &Path,
    sds: &Path,
    options: &bootstrap::BootstrapOptions,
) -> (render::Rendered, String, usize) {
    std::fs::write(input.join("all.yaml"), yaml).unwrap();
    let (store, report) = files::load(input);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let output = translate::translate(&store, &Settings::default());
    let status = translate::status::to_yaml(&output.statuses);
    let tables: Vec<_> = output.tables.values().collect();
    let changed = config_pusher::serve::sds::write(sds, &store, &tables).unwrap();
    let rendered = render::render(&store, &output, options).unwrap();
    // render carries the same files, for a folder without serve.
    assert_eq!(
        rendered
            .files
            .iter()
            .filter(|f| f.kind == FileKind::Sds)
            .count(),
        2
    );
    (rendered, status, changed)
}

#[test]
fn https_listeners_terminate_tls_per_sni_and_pick_up_rotated_certificates() {
    let pid = std::process::id();
    let dir = std::env::temp_dir().join(format!("gammaroute-tls-{pid}"));
    let _ = std::fs::remove_dir_all(&dir);
    let (input, sds, certs) = (dir.join("input"), dir.join("sds"), dir.join("certs"));
    for d in [&input, &sds, &certs] {
        std::fs::create_dir_all(d).unwrap();
    }
    let shop = certificate(&certs, "shop", &["shop.example.com"]);
    let wild = certificate(&certs, "wild", &["*.example.net"]);
    let rotated = certificate(&certs, "shop-rotated", &["shop.example.com"]);

    let ip: IpAddr = format!("127.{}.{}.9", 60 + pid % 100 / 50, pid % 50 + 1)
        .parse()
        .unwrap();
    let echo = Echo::start(
        env!("CARGO_BIN_EXE_echo"),
        SocketAddr::new(ip, 8080),
        "app",
        "shop",
    );
    let options = bootstrap::BootstrapOptions {
        wasm: wasm_path().display().to_string(),
        listen: Some(ip.to_string().parse().unwrap()),
        backends: [("app/shop:80".to_string(), vec![echo.addr])].into(),
        sds_dir: Some(sds.display().to_string()),
        ..bootstrap::BootstrapOptions::default()
    };
    let secrets = |shop: &(PathBuf, PathBuf)| {
        tls_secret("shop-cert", &shop.0, &shop.1) + &tls_secret("wild-cert", &wild.0, &wild.1)
    };
    let (rendered, status, changed) =
        render_for(&gateway_yaml(&secrets(&shop)), &input, &sds, &options);
    assert_eq!(changed, 2);

    // The missing Secret is in the status of its listener only.
    let missing = status.split("- name: missing").nth(1).unwrap();
    assert!(
        missing.contains("reason: InvalidCertificateRef"),
        "{status}"
    );
    let shop_status = status.split("- name: shop").nth(1).unwrap();
    assert!(
        shop_status
            .split("- name:")
            .next()
            .unwrap()
            .contains("reason: Programmed"),
        "{status}"
    );

    let gw = rendered
        .bootstraps()
        .find(|f| f.role.as_deref() == Some("gateway/infra/edge"))
        .expect("a bootstrap for the Gateway");
    let envoy = Envoy::start(std::str::from_utf8(&gw.content).unwrap());

    // Two hostnames on one port, each with its own certificate, h2 negotiated over ALPN.
    assert_eq!(https_get(ip, "shop.example.com", &shop.0), Ok("2".into()));
    assert_eq!(https_get(ip, "a.example.net", &wild.0), Ok("2".into()));
    // The wrong certificate is never presented for a name.
    assert!(https_get(ip, "shop.example.com", &wild.0).is_err());
    assert!(https_get(ip, "a.example.net", &shop.0).is_err());
    // HTTP/2 connection coalescing: a connection made for shop.example.com (SNI) carrying a
    // request for a name of the wildcard listener is misdirected (421), over h2 and HTTP/1.1.
    let (status, version, _) = https_request(ip, "shop.example.com", "a.example.net", "/", &shop.0);
    assert_eq!((status, version.as_str()), (421, "2"));
    let (status, _, _) = https_request(ip, "a.example.net", "shop.example.com", "/", &wild.0);
    assert_eq!(status, 421);
    let (status, _, _) = https_request(
        ip,
        "shop.example.com",
        "shop.example.com:18443",
        "/",
        &shop.0,
    );
    assert_eq!(status, 200, "the Host's port is ignored");
    // A redirect on an HTTPS listener keeps https and the listener's port.
    let (status, _, location) = https_request(
        ip,
        "shop.example.com",
        "shop.example.com",
        "/old/a?x=1",
        &shop.0,
    );
    assert_eq!(
        (status, location.as_str()),
        (
            302,
            format!("https://shop.example.com:{HTTPS_PORT}/new/a?x=1").as_str()
        )
    );
    // HTTP → HTTPS on the plaintext listener.
    let r = http::send(
        SocketAddr::new(ip, HTTP_PORT),
        "GET",
        "/cart",
        &[("host", "secure.example.com")],
    )
    .unwrap();
    assert_eq!(r.status, 301, "{}", r.text());
    assert_eq!(
        r.header("location"),
        Some(format!("https://secure.example.com:{HTTPS_PORT}/cart").as_str())
    );
    // The listener whose Secret is missing has no chain: its handshake fails...
    assert!(https_get(ip, "missing.example.com", &shop.0).is_err());
    // ...while plaintext on the other port keeps serving.
    let r = http::send(
        SocketAddr::new(ip, HTTP_PORT),
        "GET",
        "/",
        &[("host", "shop.example.com")],
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());

    // Rotation: the Secret changes, the SDS file is swapped, the running Envoy serves the new
    // certificate to new handshakes.
    let (_, _, changed) = render_for(&gateway_yaml(&secrets(&rotated)), &input, &sds, &options);
    assert_eq!(changed, 1, "only the rotated Secret's file is rewritten");
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last = https_get(ip, "shop.example.com", &rotated.0);
    while last.is_err() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        last = https_get(ip, "shop.example.com", &rotated.0);
    }
    assert_eq!(last, Ok("2".into()), "rotated certificate not served");
    assert!(https_get(ip, "shop.example.com", &shop.0).is_err());
    assert_eq!(https_get(ip, "a.example.net", &wild.0), Ok("2".into()));

    drop(envoy);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `render --listen 80=IP:P1,443=IP:P2`: a Gateway with an HTTP listener on 80 and an HTTPS one on
/// 443 bound on other ports (as the demo does without root). Both serve, the TLS chain matches the
/// bound port, and the filter still sees the Gateway's ports: routes attach per listener and the
/// HTTP → HTTPS redirect names the Gateway's port (443, left out of the URL).
#[test]
fn a_port_map_binds_http_and_https_listeners_on_other_ports() {
    let pid = std::process::id();
    let dir = std::env::temp_dir().join(format!("gammaroute-tls-map-{pid}"));
    let _ = std::fs::remove_dir_all(&dir);
    let (input, sds) = (dir.join("input"), dir.join("sds"));
    for d in [&input, &sds] {
        std::fs::create_dir_all(d).unwrap();
    }
    let cert = certificate(&dir, "secure", &["secure.example.com"]);
    let ip: IpAddr = format!("127.{}.{}.10", 60 + pid % 100 / 50, pid % 50 + 1)
        .parse()
        .unwrap();
    let echo = Echo::start(
        env!("CARGO_BIN_EXE_echo"),
        SocketAddr::new(ip, 8080),
        "app",
        "shop",
    );
    let yaml = format!(
        r#"apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: gammaroute}}
spec: {{controllerName: gammaroute.dev/config-pusher}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: edge, namespace: infra}}
spec:
  gatewayClassName: gammaroute
  listeners:
  - {{name: http, port: 80, protocol: HTTP, allowedRoutes: {{namespaces: {{from: All}}}}}}
  - name: https
    port: 443
    protocol: HTTPS
    hostname: secure.example.com
    allowedRoutes: {{namespaces: {{from: All}}}}
    tls: {{certificateRefs: [{{name: secure-cert}}]}}
---
apiVersion: v1
kind: Service
metadata: {{name: shop, namespace: app}}
spec:
  ports: [{{name: http, port: 80}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: secure, namespace: app}}
spec:
  parentRefs: [{{name: edge, namespace: infra, sectionName: https}}]
  hostnames: [secure.example.com]
  rules: [{{backendRefs: [{{name: shop, port: 80}}]}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: plain, namespace: app}}
spec:
  parentRefs: [{{name: edge, namespace: infra, sectionName: http}}]
  hostnames: [plain.example.com]
  rules: [{{backendRefs: [{{name: shop, port: 80}}]}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: to-https, namespace: app}}
spec:
  parentRefs: [{{name: edge, namespace: infra, sectionName: http}}]
  hostnames: [secure.example.com]
  rules: [{{filters: [{{type: RequestRedirect, requestRedirect: {{scheme: https, statusCode: 301}}}}]}}]
{}"#,
        tls_secret("secure-cert", &cert.0, &cert.1)
    );
    std::fs::write(input.join("all.yaml"), yaml).unwrap();
    let (store, report) = files::load(&input);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let output = translate::translate(&store, &Settings::default());
    let (http_at, https_at) = (
        SocketAddr::new(ip, HTTP_PORT),
        SocketAddr::new(ip, HTTPS_PORT),
    );
    let options = bootstrap::BootstrapOptions {
        wasm: wasm_path().display().to_string(),
        listen: Some(format!("80={http_at},443={https_at}").parse().unwrap()),
        backends: [("app/shop:80".to_string(), vec![echo.addr])].into(),
        sds_dir: Some(sds.display().to_string()),
        ..bootstrap::BootstrapOptions::default()
    };
    let rendered = render::render(&store, &output, &options).unwrap();
    for f in rendered.files.iter().filter(|f| f.kind == FileKind::Sds) {
        std::fs::write(sds.join(f.path.trim_start_matches("sds/")), &f.content).unwrap();
    }
    let gw = rendered
        .bootstraps()
        .find(|f| f.role.as_deref() == Some("gateway/infra/edge"))
        .expect("a bootstrap for the Gateway");
    assert_eq!(gw.listen, [http_at, https_at]);
    let _envoy = Envoy::start(std::str::from_utf8(&gw.content).unwrap());

    assert_eq!(
        https_get_at(https_at, "secure.example.com", &cert.0),
        Ok("2".into())
    );
    let r = http::send(http_at, "GET", "/", &[("host", "plain.example.com")]).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    // The HTTPS-only route is not on the HTTP listener, whose redirect sends to 443.
    let r = http::send(http_at, "GET", "/cart", &[("host", "secure.example.com")]).unwrap();
    assert_eq!(r.status, 301, "{}", r.text());
    assert_eq!(
        r.header("location"),
        Some("https://secure.example.com/cart")
    );
    let _ = std::fs::remove_dir_all(&dir);
}
