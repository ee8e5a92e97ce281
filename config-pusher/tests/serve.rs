//! `config-pusher serve` as a process: the real binary on a temporary folder, checked with raw
//! HTTP/1.1 requests (the API contract in README.md "config-pusher serve").

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gammaroute_filter::table;

const GATEWAY: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: gammaroute}
spec: {controllerName: gammaroute.dev/config-pusher}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: web, namespace: shop}
spec:
  gatewayClassName: gammaroute
  listeners: [{name: http, port: 8080, protocol: HTTP}]
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec: {clusterIP: 10.96.0.10, ports: [{port: 80}]}
"#;

fn route(prefix: &str) -> String {
    format!(
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: api, namespace: shop}}
spec:
  parentRefs: [{{name: web}}]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: "{prefix}"}}}}]
    backendRefs: [{{name: api, port: 80}}]
"#
    )
}

const ROLE: &str = "gateway/shop/web";

/// A mesh Service `name` at `ip` with a producer route to itself.
fn mesh_service(name: &str, ip: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: app}}
spec: {{clusterIP: {ip}, ports: [{{port: 80}}]}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}, namespace: app}}
spec:
  parentRefs: [{{kind: Service, group: "", name: {name}}}]
  rules: [{{backendRefs: [{{name: {name}, port: 80}}]}}]
"#
    )
}

fn folder(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gammaroute-serve-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("gateway.yaml"), GATEWAY).unwrap();
    std::fs::write(dir.join("route.yaml"), route("/v1")).unwrap();
    dir
}

/// The running binary; killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(dir: &Path, args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_config-pusher"))
            .args(["serve", "--listen", "127.0.0.1:0", "--from"])
            .arg(dir)
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("config-pusher starts");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let scheme = ["serving on http://", "serving on https://"]
                    .into_iter()
                    .find_map(|s| Some((line.find(s)?, s.len())));
                if let Some((at, len)) = scheme {
                    let rest = &line[at + len..];
                    let addr = rest.split_whitespace().next().unwrap_or_default();
                    let _ = tx.send(addr.parse::<SocketAddr>().unwrap());
                }
                lines.lock().unwrap().push(line);
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("serve did not start: {:?}", log.lock().unwrap()));
        let server = Server { child, addr, log };
        if args.contains(&"--tls-cert") {
            // Plain HTTP cannot probe it; the TLS tests wait with curl.
            return server;
        }
        // Ready once the first translation is published.
        let deadline = Instant::now() + Duration::from_secs(10);
        while server.get("/readyz", &[]).status != 200 {
            assert!(Instant::now() < deadline, "never ready: {}", server.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        get(self.addr, path, headers)
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Polls `path` until `check` holds (5 s at most).
    fn eventually(&self, path: &str, what: &str, check: impl Fn(&Response) -> bool) -> Response {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let r = self.get(path, &[]);
            if check(&r) {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: last {path}: {} {}\n{}",
                r.status,
                r.text(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The value of metric sample `sample` (name with labels), 0 when absent.
    fn metric(&self, sample: &str) -> f64 {
        let text = self.get("/metrics", &[]).text();
        text.lines()
            .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0.0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
struct Response {
    status: u16,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.text()))
    }

    fn etag(&self) -> String {
        self.header("etag").expect("an ETag").to_string()
    }
}

/// One `GET` on a fresh connection (`Connection: close`, read to the end).
fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(90))).unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nhost: config-pusher\r\nconnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end: {}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Response {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

#[test]
fn tables_etags_encodings_and_probes() {
    let dir = folder("tables");
    let server = Server::start(&dir, &[]);
    assert_eq!(server.get("/healthz", &[]).status, 200);

    let r = server.get(&format!("/v1/tables/{ROLE}"), &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let t = table::decode_json(&r.body).expect("a valid JSON table");
    assert_eq!(t.role, ROLE);
    assert_eq!(r.etag(), format!("\"{}\"", t.version));

    let accept = [("accept", "application/x-protobuf")];
    let p = server.get(&format!("/v1/tables/{ROLE}"), &accept);
    assert_eq!(p.header("content-type"), Some("application/x-protobuf"));
    assert_eq!(
        table::decode_proto(&p.body).expect("a valid protobuf table"),
        t
    );
    assert_eq!(p.etag(), r.etag());

    // Quoted or bare If-None-Match: 304 without a body.
    for tag in [r.etag(), t.version.clone()] {
        let nm = server.get(&format!("/v1/tables/{ROLE}"), &[("if-none-match", &tag)]);
        assert_eq!(nm.status, 304);
        assert!(nm.body.is_empty());
        assert_eq!(nm.etag(), r.etag());
    }
    let other = server.get(
        &format!("/v1/tables/{ROLE}"),
        &[("if-none-match", "\"old\"")],
    );
    assert_eq!(other.status, 200);

    // Long-poll with nothing changing: 304 once the wait is over.
    let started = Instant::now();
    let nm = server.get(
        &format!("/v1/tables/{ROLE}?wait=400ms"),
        &[("if-none-match", &r.etag())],
    );
    let waited = started.elapsed();
    assert_eq!(nm.status, 304);
    assert!(waited >= Duration::from_millis(400), "{waited:?}");
    assert!(waited < Duration::from_secs(3), "{waited:?}");

    // Unknown role: 404 with a JSON error, after the wait when one is given.
    let missing = server.get("/v1/tables/gateway/shop/nope", &[]);
    assert_eq!(missing.status, 404);
    assert!(missing.json()["error"]
        .as_str()
        .unwrap()
        .contains("gateway/shop/nope"));
    let started = Instant::now();
    let missing = server.get("/v1/tables/mesh/nope?wait=1", &[]);
    assert_eq!(missing.status, 404);
    assert!(started.elapsed() >= Duration::from_secs(1));
    let bad = server.get(&format!("/v1/tables/{ROLE}?wait=soon"), &[]);
    assert_eq!(bad.status, 400);

    // Metrics: names present, requests counted by status.
    let text = server.get("/metrics", &[]).text();
    for name in [
        "config_pusher_translations_total 1",
        "config_pusher_translation_errors_total 0",
        "config_pusher_source_load_errors 0",
        "config_pusher_connected_proxies",
        "config_pusher_open_long_polls 0",
        &format!(
            "config_pusher_table_info{{role=\"{ROLE}\",version=\"{}\"}} 1",
            t.version
        ),
        &format!("config_pusher_table_versions_published_total{{role=\"{ROLE}\"}} 1"),
        "config_pusher_change_to_publish_seconds_count 1",
        "config_pusher_table_requests_total{code=\"200\"} 3",
        "config_pusher_table_requests_total{code=\"304\"} 3",
        "config_pusher_table_requests_total{code=\"404\"} 2",
        "config_pusher_table_requests_total{code=\"400\"} 1",
        &format!(
            "config_pusher_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        ),
        "# TYPE process_cpu_seconds_total counter",
        "# TYPE process_start_time_seconds gauge",
        "# TYPE process_max_fds gauge",
    ] {
        assert!(text.contains(name), "{name} missing from\n{text}");
    }
    // The process family describes the server's own process.
    let rss = server.metric("process_resident_memory_bytes");
    assert!(
        rss > 1e6 && server.metric("process_open_fds") >= 3.0,
        "{text}"
    );
    let started = server.metric("process_start_time_seconds");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        started <= now + 1.0 && now - started < 600.0,
        "{started} vs {now}"
    );
    let status = server.get("/v1/status?format=json", &[]).json();
    assert_eq!(status["loadErrors"], serde_json::json!([]));
    assert!(server
        .get("/v1/status", &[])
        .text()
        .contains("kind: HTTPRoute"));
}

#[test]
fn long_poll_answers_when_the_folder_changes() {
    let dir = folder("long-poll");
    let server = Server::start(&dir, &[]);
    let first = server.get(&format!("/v1/tables/{ROLE}"), &[]);
    let etag = first.etag();
    let addr = server.addr;
    let tag = etag.clone();
    let poll = std::thread::spawn(move || {
        let r = get(
            addr,
            &format!("/v1/tables/{ROLE}?wait=30s"),
            &[("if-none-match", &tag)],
        );
        (r, Instant::now())
    });
    // The poll is open (and counted) before the change.
    server.eventually("/metrics", "open long-poll", |r| {
        r.text().contains("config_pusher_open_long_polls 1")
    });
    let changed = Instant::now();
    std::fs::write(dir.join("route.yaml"), route("/v2")).unwrap();
    let (r, answered) = poll.join().unwrap();
    let latency = answered.duration_since(changed);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_ne!(r.etag(), etag);
    assert!(
        latency < Duration::from_secs(1),
        "answered {latency:?} after the change"
    );
    let t = table::decode_json(&r.body).unwrap();
    assert!(r.text().contains("/v2"), "{}", r.text());
    assert_eq!(r.etag(), format!("\"{}\"", t.version));
    assert_eq!(
        server.metric("config_pusher_change_to_publish_seconds_count"),
        2.0
    );
    assert_eq!(server.metric("config_pusher_open_long_polls"), 0.0);
}

#[test]
fn a_malformed_file_keeps_the_routing_and_shows_in_status() {
    let dir = folder("malformed");
    let server = Server::start(&dir, &[]);
    let before = server.get(&format!("/v1/tables/{ROLE}"), &[]);
    // Half-saved: the route file cut in the middle of a flow mapping.
    let text = route("/v2");
    std::fs::write(dir.join("route.yaml"), &text[..text.len() - 20]).unwrap();
    let status = server.eventually("/v1/status?format=json", "load error reported", |r| {
        r.status == 200
            && r.json()["loadErrors"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
    });
    let errors = status.json()["loadErrors"].clone();
    assert_eq!(errors[0]["file"], "route.yaml", "{errors}");
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("invalid YAML"),
        "{errors}"
    );
    let after = server.get(&format!("/v1/tables/{ROLE}"), &[]);
    assert_eq!(after.etag(), before.etag(), "the table must not change");
    assert_eq!(after.body, before.body);
    assert!(after.text().contains("/v1"));
    assert!(server.metric("config_pusher_source_load_errors") >= 1.0);
    assert!(server.get("/v1/status", &[]).text().contains("route.yaml"));
    // Fixed: the new content is served.
    std::fs::write(dir.join("route.yaml"), &text).unwrap();
    server.eventually(&format!("/v1/tables/{ROLE}"), "fixed file served", |r| {
        r.text().contains("/v2")
    });
}

#[test]
fn an_invalid_table_is_not_published() {
    let dir = folder("invalid");
    std::fs::write(dir.join("mesh-a.yaml"), mesh_service("a", "10.96.0.50")).unwrap();
    let server = Server::start(&dir, &[]);
    let before = server.get("/v1/tables/mesh/app", &[]);
    assert_eq!(before.status, 200, "{}", before.text());
    // A second routed Service with the same ClusterIP:port: the mesh table fails validation.
    std::fs::write(dir.join("mesh-b.yaml"), mesh_service("b", "10.96.0.50")).unwrap();
    // (Both mesh roles carry app's producer routes: both are rejected.)
    server.eventually("/metrics", "rejection counted", |r| {
        !r.text()
            .contains("config_pusher_translation_errors_total 0\n")
    });
    let after = server.get("/v1/tables/mesh/app", &[]);
    assert_eq!(after.etag(), before.etag());
    assert_eq!(after.body, before.body);
    let status = server.get("/v1/status?format=json", &[]).json();
    let problems = status["problems"].to_string();
    assert!(
        problems.contains("duplicate Service frontend"),
        "{problems}"
    );
    assert!(
        server.log().contains("table not published"),
        "{}",
        server.log()
    );
    // Other roles still follow changes in the same translation.
    std::fs::write(dir.join("route.yaml"), route("/v3")).unwrap();
    server.eventually(&format!("/v1/tables/{ROLE}"), "gateway updated", |r| {
        r.text().contains("/v3")
    });
    assert_eq!(server.get("/v1/tables/mesh/app", &[]).etag(), before.etag());
}

#[test]
fn bearer_token_guards_the_v1_api() {
    let dir = folder("token");
    let token = dir.join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let server = Server::start(&dir, &["--token-file", token.to_str().unwrap()]);
    let path = format!("/v1/tables/{ROLE}");
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("s3cret"),
        Some("Bearer s3cre"),
    ] {
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", *a)).collect();
        for p in [path.as_str(), "/v1/proxies", "/v1/status"] {
            let r = server.get(p, &headers);
            assert_eq!(r.status, 401, "{p} with {auth:?}");
            assert_eq!(r.header("www-authenticate"), Some("Bearer"));
            assert!(r.json()["error"].is_string());
        }
    }
    let ok = [("authorization", "Bearer s3cret")];
    assert_eq!(server.get(&path, &ok).status, 200);
    assert_eq!(server.get("/v1/proxies", &ok).status, 200);
    for open in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(server.get(open, &[]).status, 200, "{open}");
    }
}

#[test]
fn proxies_report_what_they_run() {
    let dir = folder("proxies");
    let server = Server::start(&dir, &[]);
    let path = format!("/v1/tables/{ROLE}");
    let version = table::decode_json(&server.get(&path, &[]).body)
        .unwrap()
        .version;
    let report = [
        ("x-gammaroute-proxy", "envoy-1"),
        ("x-gammaroute-applied", version.as_str()),
        ("x-gammaroute-rejected", "0123abcd routes[0]: invalid regex"),
    ];
    assert_eq!(server.get(&path, &report).status, 200);
    assert_eq!(server.get(&path, &report).status, 200);
    server.get(
        &path,
        &[
            ("x-gammaroute-proxy", "envoy-2"),
            ("x-gammaroute-applied", ""),
        ],
    );

    // envoy-1 long-polls: shown as waiting.
    let addr = server.addr;
    let etag = format!("\"{version}\"");
    let poll = std::thread::spawn(move || {
        get(
            addr,
            &format!("/v1/tables/{ROLE}?wait=2s"),
            &[("x-gammaroute-proxy", "envoy-1"), ("if-none-match", &etag)],
        )
    });
    let list = server.eventually("/v1/proxies", "envoy-1 waiting", |r| {
        r.json()[0]["waiting"] == true
    });
    let list = list.json();
    let p1 = &list[0];
    assert_eq!(p1["id"], "envoy-1");
    assert_eq!(p1["role"], ROLE);
    assert_eq!(p1["appliedVersion"], version.as_str());
    assert_eq!(p1["lastRejection"]["version"], "0123abcd");
    assert_eq!(p1["lastRejection"]["message"], "routes[0]: invalid regex");
    assert_eq!(p1["requests"], 3);
    assert_eq!(p1["openPolls"], 1);
    assert!(p1["remoteAddr"].as_str().unwrap().starts_with("127.0.0.1:"));
    let seen = k8s_openapi::jiff::Timestamp::now().to_string();
    assert_eq!(
        p1["lastSeen"].as_str().unwrap()[..10],
        seen[..10],
        "RFC 3339"
    );
    assert_eq!(list[1]["id"], "envoy-2");
    assert_eq!(list[1]["appliedVersion"], serde_json::Value::Null);
    assert_eq!(list[1]["waiting"], false);
    assert_eq!(poll.join().unwrap().status, 304);
    let list = server.get("/v1/proxies", &[]).json();
    assert_eq!(
        (list[0]["waiting"].clone(), list[0]["maxOpenPolls"].clone()),
        (false.into(), 1.into())
    );
    assert_eq!(server.metric("config_pusher_connected_proxies"), 2.0);
    assert_eq!(server.metric("config_pusher_proxy_rejections_total"), 1.0);
    // The rejection is logged at WARN once per (proxy, version).
    let log = server.log();
    let warnings = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("proxy rejected a table"))
        .count();
    assert_eq!(warnings, 1, "{log}");
}

/// Whether `r` is the gateway table with the route `shop/api`.
fn has_route(r: &Response) -> bool {
    r.status == 200
        && table::decode_json(&r.body).is_ok_and(|t| {
            t.routes
                .iter()
                .any(|x| x.namespace == "shop" && x.name == "api")
        })
}

#[test]
fn an_in_place_save_never_withdraws_the_route() {
    let dir = folder("in-place");
    // A 1 ms debounce: serve reads the file while it is empty, between truncate and write.
    let server = Server::start(&dir, &["--debounce-ms", "1"]);
    let addr = server.addr;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopped = stop.clone();
    let watcher = std::thread::spawn(move || {
        let (mut seen, mut missing) = (0, Vec::new());
        while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
            let r = get(addr, &format!("/v1/tables/{ROLE}"), &[]);
            seen += 1;
            if !has_route(&r) {
                missing.push(format!("{} {}", r.status, r.text()));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        (seen, missing)
    });
    for i in 0..10 {
        // `cmd > route.yaml`: truncated, then written a moment later.
        let mut file = std::fs::File::create(dir.join("route.yaml")).unwrap();
        std::thread::sleep(Duration::from_millis(60));
        let prefix = format!("/v{}", i + 2);
        file.write_all(route(&prefix).as_bytes()).unwrap();
        drop(file);
        server.eventually(&format!("/v1/tables/{ROLE}"), "rewrite served", |r| {
            r.text().contains(&format!("\"{prefix}\""))
        });
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (seen, missing) = watcher.join().unwrap();
    assert!(seen > 50, "only {seen} table reads");
    assert!(
        missing.is_empty(),
        "{} of {seen} reads without the route, first: {}",
        missing.len(),
        missing[0]
    );
    // The empty file was seen, and said so.
    assert!(
        server.log().contains("the file is empty"),
        "{}",
        server.log()
    );
    let status = server.get("/v1/status?format=json", &[]).json();
    assert_eq!(
        status["loadErrors"],
        serde_json::json!([]),
        "fixed by the write"
    );
}

#[test]
fn an_object_defined_twice_is_reported_and_the_first_file_wins() {
    let dir = folder("duplicate");
    // `z-route.yaml` sorts after `route.yaml`: route.yaml's definition wins.
    std::fs::write(dir.join("z-route.yaml"), route("/dup")).unwrap();
    let server = Server::start(&dir, &[]);
    let t = server.get(&format!("/v1/tables/{ROLE}"), &[]);
    assert!(
        t.text().contains("\"/v1\"") && !t.text().contains("/dup"),
        "{}",
        t.text()
    );
    let status = server.get("/v1/status?format=json", &[]).json();
    let errors = &status["loadErrors"];
    assert_eq!(errors[0]["file"], "z-route.yaml", "{errors}");
    let message = errors[0]["message"].as_str().unwrap();
    assert!(
        message.contains("HTTPRoute shop/api is also defined in route.yaml document 0"),
        "{message}"
    );
    assert!(
        server.log().contains("also defined in route.yaml"),
        "{}",
        server.log()
    );
}

#[test]
fn role_tokens_read_their_own_table_only() {
    let dir = folder("role-tokens");
    std::fs::write(dir.join("mesh-a.yaml"), mesh_service("a", "10.96.0.50")).unwrap();
    let secret = dir.join("secret");
    std::fs::write(&secret, "the-server-secret\n").unwrap();
    let token = |role: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_config-pusher"))
            .args([
                "token",
                "--secret-file",
                secret.to_str().unwrap(),
                "--role",
                role,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        format!("Bearer {}", String::from_utf8(out.stdout).unwrap().trim())
    };
    let (gateway, mesh) = (token(ROLE), token("mesh/app"));
    let server = Server::start(&dir, &["--token-file", secret.to_str().unwrap()]);
    let get = |path: &str, auth: &str| server.get(path, &[("authorization", auth)]);
    let table = format!("/v1/tables/{ROLE}");
    assert_eq!(get(&table, &gateway).status, 200);
    assert_eq!(get("/v1/tables/mesh/app", &mesh).status, 200);
    // A valid token on another role, or on the operator's endpoints: 403.
    for (path, auth) in [
        ("/v1/tables/mesh/app", &gateway),
        (table.as_str(), &mesh),
        ("/v1/tables/mesh/shop", &mesh),
        ("/v1/status", &mesh),
        ("/v1/proxies", &gateway),
    ] {
        let r = get(path, auth);
        assert_eq!(r.status, 403, "{path} with {auth}: {}", r.text());
        assert!(r.json()["error"]
            .as_str()
            .unwrap()
            .contains("this token is for"));
    }
    // A forged one (another role's name on this role's signature): 401.
    let forged = mesh.replace("mesh/app", "mesh/shop");
    assert_eq!(get("/v1/tables/mesh/shop", &forged).status, 401);
    // The secret itself opens everything.
    let operator = "Bearer the-server-secret";
    for path in [
        table.as_str(),
        "/v1/tables/mesh/app",
        "/v1/status",
        "/v1/proxies",
    ] {
        assert_eq!(get(path, operator).status, 200, "{path}");
    }
    let bad = Command::new(env!("CARGO_BIN_EXE_config-pusher"))
        .args([
            "token",
            "--secret-file",
            secret.to_str().unwrap(),
            "--role",
            "mesh/../x",
        ])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

/// `serve ARGS --from DIR` refused at start: its stderr (the exit code must be 2, a usage error).
fn serve_refused(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_config-pusher"))
        .arg("serve")
        .args(args)
        .arg("--from")
        .arg(dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    stderr
}

#[test]
fn a_non_loopback_listen_needs_a_token_file() {
    let dir = folder("exposure");
    // 192.0.2.1 (TEST-NET-1) is no address of this machine: even without the check nothing
    // would be bound; with it, serve refuses before binding.
    let stderr = serve_refused(&dir, &["--listen", "192.0.2.1:18000"]);
    assert!(
        stderr.contains("refusing to listen on 192.0.2.1:18000 without --token-file"),
        "{stderr}"
    );
}

#[test]
fn a_non_loopback_xds_listen_needs_a_token_file_too() {
    let dir = folder("xds-exposure");
    let stderr = serve_refused(
        &dir,
        &["--listen", "127.0.0.1:0", "--xds-listen", "192.0.2.1:18001"],
    );
    assert!(
        stderr.contains("refusing to listen on 192.0.2.1:18001 without --token-file"),
        "{stderr}"
    );
}
#[test]
fn route_map_page_and_its_data_follow_the_folder() {
    let dir = folder("map");
    let server = Server::start(&dir, &[]);
    let page = server.get("/ui", &[]);
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    assert!(page.text().contains("gammaroute route map"));

    let map = server.get("/v1/map", &[]);
    assert_eq!(map.status, 200, "{}", map.text());
    let doc = map.json();
    let table = &doc["tables"][ROLE];
    assert_eq!(table["role"], ROLE);
    assert!(map.text().contains("\"/v1\""), "{}", map.text());
    assert!(doc["status"]["objects"].is_array(), "the status report");
    // Unchanged: 304 for the same ETag.
    let etag = map.etag();
    assert_eq!(
        server.get("/v1/map", &[("if-none-match", &etag)]).status,
        304
    );
    // A change gives a new document and ETag.
    std::fs::write(dir.join("route.yaml"), route("/v2")).unwrap();
    let changed = server.eventually("/v1/map", "the map shows /v2", |r| {
        r.status == 200 && r.text().contains("\"/v2\"")
    });
    assert_ne!(changed.etag(), etag);
    assert_eq!(
        server.get("/v1/map", &[("if-none-match", &etag)]).status,
        200
    );
}

#[test]
fn route_map_data_is_behind_the_token_and_the_page_is_not() {
    let dir = folder("map-token");
    let token = dir.join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let server = Server::start(&dir, &["--token-file", token.to_str().unwrap()]);
    assert_eq!(server.get("/ui", &[]).status, 200);
    assert_eq!(server.get("/v1/map", &[]).status, 401);
    let ok = server.get("/v1/map", &[("authorization", "Bearer s3cret")]);
    assert_eq!(ok.status, 200, "{}", ok.text());
}

#[test]
fn long_polls_over_the_limits_get_503_with_retry_after() {
    let dir = folder("limits");
    let server = Server::start(
        &dir,
        &["--max-long-polls", "2", "--max-long-polls-per-role", "1"],
    );
    let etag = server.get(&format!("/v1/tables/{ROLE}"), &[]).etag();
    let addr = server.addr;
    let wait = |role: &'static str, tag: String| {
        std::thread::spawn(move || {
            get(
                addr,
                &format!("/v1/tables/{role}?wait=3s"),
                &[("if-none-match", &tag)],
            )
        })
    };
    let first = wait(ROLE, etag.clone());
    server.eventually("/metrics", "one long-poll open", |r| {
        r.text().contains("config_pusher_open_long_polls 1")
    });
    // The role's one slot is taken.
    let refused = server.get(
        &format!("/v1/tables/{ROLE}?wait=3s"),
        &[("if-none-match", &etag)],
    );
    assert_eq!(refused.status, 503, "{}", refused.text());
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=5).contains(&retry), "{retry}");
    // Another role still has room, until the total is reached.
    let other = wait("mesh/nobody", String::from("\"x\""));
    server.eventually("/metrics", "two long-polls open", |r| {
        r.text().contains("config_pusher_open_long_polls 2")
    });
    let total = server.get("/v1/tables/mesh/third?wait=3s", &[]);
    assert_eq!(total.status, 503, "{}", total.text());
    // A plain fetch (no wait) is never refused.
    assert_eq!(server.get(&format!("/v1/tables/{ROLE}"), &[]).status, 200);
    assert_eq!(first.join().unwrap().status, 304);
    assert_eq!(other.join().unwrap().status, 404);
    // Slots are given back.
    let again = server.get(
        &format!("/v1/tables/{ROLE}?wait=1s"),
        &[("if-none-match", &etag)],
    );
    assert_eq!(again.status, 304);
}

/// The `Programmed` condition (`type`, `status`, `reason`, `message`) of Gateway shop/web and of
/// its listener, from `/v1/status`.
fn programmed(r: &Response) -> Vec<[String; 3]> {
    let status = r.json();
    let gw = status["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["kind"] == "Gateway" && o["metadata"]["name"] == "web")
        .unwrap()
        .clone();
    let listener = gw["status"]["listeners"][0]["conditions"].clone();
    [gw["status"]["conditions"].clone(), listener]
        .iter()
        .map(|conditions| {
            let c = conditions
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["type"] == "Programmed")
                .unwrap();
            [&c["status"], &c["reason"], &c["message"]].map(|v| v.as_str().unwrap().to_string())
        })
        .collect()
}

#[test]
fn programmed_waits_for_a_proxy_of_the_role_to_apply_the_table() {
    let dir = folder("programmed");
    let server = Server::start(&dir, &["--debounce-ms", "20"]);
    let path = format!("/v1/tables/{ROLE}");
    let pending = |r: &Response, what: &str| {
        let p = programmed(r);
        p.iter()
            .all(|[s, reason, m]| s == "False" && reason == "Pending" && m.contains(what))
    };

    // No proxy yet: the Gateway and its listener are Pending, and it is a problem.
    let r = server.get("/v1/status?format=json", &[]);
    assert!(
        pending(
            &r,
            "no proxy of role gateway/shop/web has fetched its table"
        ),
        "{:?}",
        programmed(&r)
    );
    assert!(r.json()["problems"].to_string().contains("Pending"));

    // A proxy that fetched but runs no table yet: still Pending, and it says so.
    let t = table::decode_json(&server.get(&path, &[]).body).unwrap();
    let proxy = |applied: &str| {
        server.get(
            &path,
            &[
                ("x-gammaroute-proxy", "envoy-1"),
                ("x-gammaroute-applied", applied),
            ],
        )
    };
    proxy("");
    server.eventually(
        "/v1/status?format=json",
        "Pending, 1 without a table",
        |r| {
            pending(
                r,
                "of 1 connected, 0 run an older version and 1 no table yet",
            )
        },
    );

    // It applied the served version: Programmed, as translation said.
    proxy(&t.version);
    let r = server.eventually("/v1/status?format=json", "Programmed", |r| {
        programmed(r)
            .iter()
            .all(|[s, reason, _]| s == "True" && reason == "Programmed")
    });
    assert_eq!(r.json()["ok"], true, "{}", r.text());

    // A new table: Pending until the proxy reports it.
    std::fs::write(dir.join("route.yaml"), route("/v2")).unwrap();
    let old = t.version.clone();
    let newer = server.eventually(&path, "a new version", |r| {
        table::decode_json(&r.body).is_ok_and(|n| n.version != old)
    });
    let newer = table::decode_json(&newer.body).unwrap().version;
    server.eventually(
        "/v1/status?format=json",
        "Pending on the new version",
        |r| {
            pending(r, &format!("apply version {}", &newer[..12]))
                && pending(r, "1 run an older version")
        },
    );
    proxy(&newer);
    server.eventually("/v1/status?format=json", "Programmed again", |r| {
        programmed(r).iter().all(|[s, _, _]| s == "True")
    });
}

/// A self-signed certificate for DNS name `name` made with the openssl CLI: `(cert, key)`.
fn certificate(dir: &Path, stem: &str, name: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (
        dir.join(format!("{stem}.crt")),
        dir.join(format!("{stem}.key")),
    );
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "2", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args(["-subj", &format!("/CN={name}")])
        .args(["-addext", &format!("subjectAltName=DNS:{name}")])
        .output()
        .expect("the openssl CLI is required (make test-setup installs it)");
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

/// `curl` over TLS to `name` (resolved to the server's address), trusting only `ca`:
/// `Ok(status)` or `Err(curl's exit code and message)`.
fn curl_tls(addr: SocketAddr, name: &str, ca: &Path, path: &str) -> Result<u16, String> {
    let port = addr.port();
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
        .arg("--cacert")
        .arg(ca)
        .args(["--resolve", &format!("{name}:{port}:{}", addr.ip())])
        .arg(format!("https://{name}:{port}{path}"))
        .output()
        .expect("curl is required (make test-setup installs it)");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).parse().unwrap_or(0))
    } else {
        Err(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// What a plain-HTTP request to `addr` gets back (all bytes until close or 5 s).
fn plain_request(addr: SocketAddr) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    raw
}

#[test]
fn tls_serves_https_only_verifies_its_name_and_reloads_a_rotated_certificate() {
    let dir = folder("tls");
    let certs = dir.join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let name = "config-pusher.test";
    let (cert_a, key_a) = certificate(&certs, "a", name);
    let (cert_b, key_b) = certificate(&certs, "b", name);
    let (cert, key) = (certs.join("tls.crt"), certs.join("tls.key"));
    std::fs::copy(&cert_a, &cert).unwrap();
    std::fs::copy(&key_a, &key).unwrap();
    let server = Server::start(
        &dir,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let table = format!("/v1/tables/{ROLE}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while curl_tls(server.addr, name, &cert_a, &table) != Ok(200) {
        assert!(
            Instant::now() < deadline,
            "no table over TLS: {:?}\n{}",
            curl_tls(server.addr, name, &cert_a, &table),
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Plain text gets no HTTP answer (never a fallback to cleartext).
    let plain = plain_request(server.addr);
    assert!(
        !plain.starts_with(b"HTTP/"),
        "{}",
        String::from_utf8_lossy(&plain)
    );
    // Another name, or another CA: the client refuses the server.
    let wrong_name = curl_tls(server.addr, "other.test", &cert_a, "/healthz").unwrap_err();
    assert!(wrong_name.contains("exit status: 60"), "{wrong_name}");
    let wrong_ca = curl_tls(server.addr, name, &cert_b, "/healthz").unwrap_err();
    assert!(wrong_ca.contains("exit status: 60"), "{wrong_ca}");

    // Rotation: the key first (a moment where the pair does not fit, as a Secret update may
    // show it), then the certificate. The server keeps the old pair until the new one loads.
    std::fs::copy(&key_b, &key).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(curl_tls(server.addr, name, &cert_a, "/healthz"), Ok(200));
    std::fs::copy(&cert_b, &cert).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while curl_tls(server.addr, name, &cert_b, "/healthz") != Ok(200) {
        assert!(
            Instant::now() < deadline,
            "rotated certificate not served:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(curl_tls(server.addr, name, &cert_a, "/healthz").is_err());
    let log = server.log();
    assert!(log.contains("TLS certificate reloaded"), "{log}");
    assert!(
        log.contains("still serving the previous certificate"),
        "{log}"
    );
}

#[test]
fn a_certificate_and_key_that_do_not_fit_stop_serve_at_start() {
    let dir = folder("tls-mismatch");
    let (cert_a, _) = certificate(&dir, "a", "config-pusher.test");
    let (_, key_b) = certificate(&dir, "b", "config-pusher.test");
    let (cert_a, key_b) = (cert_a.to_str().unwrap(), key_b.to_str().unwrap());
    let stderr = serve_refused(
        &dir,
        &[
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            cert_a,
            "--tls-key",
            key_b,
        ],
    );
    assert!(
        stderr.contains("a.crt") && stderr.contains("b.key"),
        "the error names both files: {stderr}"
    );
    // --tls-cert alone is a usage error.
    serve_refused(&dir, &["--listen", "127.0.0.1:0", "--tls-cert", cert_a]);
}

/// Reads until the peer closes (`true`) or `within` passes (`false`).
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn slow_and_idle_connections_are_closed_after_the_header_read_timeout() {
    let dir = folder("header-timeout");
    let server = Server::start(&dir, &["--header-read-timeout-ms", "500"]);
    let etag = server.get(&format!("/v1/tables/{ROLE}"), &[]).etag();
    // Slowloris: half a request line, then nothing.
    let mut slow = TcpStream::connect(server.addr).unwrap();
    slow.write_all(b"GET /v1/tables/gateway/shop/web HTTP/1.1\r\nhost: x\r\n")
        .unwrap();
    let mut idle = TcpStream::connect(server.addr).unwrap();
    let started = Instant::now();
    assert!(
        closed_within(&mut slow, Duration::from_secs(5)),
        "slow client kept"
    );
    assert!(
        closed_within(&mut idle, Duration::from_secs(5)),
        "idle client kept"
    );
    assert!(started.elapsed() >= Duration::from_millis(400));
    // A long-poll is past its headers: it waits its full 2 s.
    let started = Instant::now();
    let r = server.get(
        &format!("/v1/tables/{ROLE}?wait=2s"),
        &[("if-none-match", &etag)],
    );
    assert_eq!(r.status, 304);
    assert!(started.elapsed() >= Duration::from_millis(1900));
}

#[test]
fn connections_over_the_cap_are_closed_at_once() {
    let dir = folder("max-connections");
    let server = Server::start(
        &dir,
        &[
            "--max-connections",
            "4",
            "--header-read-timeout-ms",
            "60000",
        ],
    );
    let mut held: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(server.addr).unwrap())
        .collect();
    // 3 idle + the probe itself.
    server.eventually("/metrics", "four connections open", |r| {
        r.text().contains("config_pusher_open_connections 4")
    });
    held.push(TcpStream::connect(server.addr).unwrap());
    // The cap is reached: the next connection is accepted and closed without an answer.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let raw = plain_request(server.addr);
        if raw.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "a fifth connection was served");
        std::thread::sleep(Duration::from_millis(20));
    }
    held.truncate(2);
    // Closed connections give their place back.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !plain_request(server.addr).starts_with(b"HTTP/1.1 200") {
        assert!(
            Instant::now() < deadline,
            "no room after two connections closed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    server.eventually("/metrics", "a refusal counted", |r| {
        r.text().contains("config_pusher_open_connections 3")
            && !r
                .text()
                .contains("config_pusher_refused_connections_total 0")
    });
}
