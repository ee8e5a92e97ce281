//! Live updates end to end: a folder of Gateway API YAML, a real `config-pusher serve` process
//! watching it, echo backends, and Envoy started from `config-pusher render --pusher` output, so
//! its filter fetches tables from config-pusher. Used by `tests/live.rs`, the propagation
//! benchmark and the demo's test.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::echo::Echo;
use crate::envoy::Envoy;
use crate::http::{self, Response};

/// The config-pusher binary of this workspace (`cargo test --workspace` builds it; alone:
/// `cargo build -p config-pusher`). `CONFIG_PUSHER_BIN` overrides it.
pub fn config_pusher_bin() -> PathBuf {
    let bin = std::env::var_os("CONFIG_PUSHER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join("target/debug/config-pusher"));
    assert!(
        bin.exists(),
        "{} is missing: `cargo build -p config-pusher` (make test builds it)",
        bin.display()
    );
    bin
}

/// A free loopback port (bound then released: the caller binds it right away).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// A scratch folder, removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(what: &str) -> Scratch {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "gammaroute-{what}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        Scratch(dir)
    }

    /// Writes a file atomically (temp + rename), as editors and `kubectl` users' tools do.
    pub fn write(&self, name: &str, text: &str) {
        let path = self.0.join(name);
        let tmp = self.0.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).unwrap_or_else(|e| panic!("{}: {e}", tmp.display()));
        std::fs::rename(&tmp, &path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }

    /// Writes a file in place, non-atomically (a half-saved file is possible in between).
    pub fn write_in_place(&self, name: &str, text: &str) {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }

    pub fn remove(&self, name: &str) {
        let _ = std::fs::remove_file(self.0.join(name));
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `config-pusher serve`; killed when dropped.
pub struct Pusher {
    child: Option<Child>,
    pub addr: SocketAddr,
    from: PathBuf,
    extra: Vec<String>,
    log: PathBuf,
}

impl Pusher {
    /// Starts `config-pusher serve --from DIR` on a free loopback port and waits until ready.
    pub fn start(from: &Path, extra: &[&str]) -> Pusher {
        Pusher::start_on(from, SocketAddr::from(([127, 0, 0, 1], free_port())), extra)
    }

    /// [`Pusher::start`] on a given address (one a proxy was told about before it was up).
    pub fn start_on(from: &Path, addr: SocketAddr, extra: &[&str]) -> Pusher {
        let log = from.with_extension("pusher.log");
        let mut pusher = Pusher {
            child: None,
            addr,
            from: from.to_path_buf(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            log,
        };
        pusher.restart();
        pusher
    }

    /// The process id (`None` while killed).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends `signal` (`STOP`, `CONT`, …) with kill(1).
    pub fn signal(&self, signal: &str) {
        let pid = self.pid().expect("config-pusher is running").to_string();
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(&pid)
            .status()
            .unwrap_or_else(|e| panic!("kill -{signal} {pid}: {e}"));
        assert!(status.success(), "kill -{signal} {pid}: {status}");
    }

    /// Kills the process (as a crash would).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same address and waits until ready.
    pub fn restart(&mut self) {
        self.kill();
        let logged_before = self.log().len();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap_or_else(|e| panic!("{}: {e}", self.log.display()));
        let child = Command::new(config_pusher_bin())
            .arg("serve")
            .arg("--from")
            .arg(&self.from)
            .arg("--listen")
            .arg(self.addr.to_string())
            .args(&self.extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start config-pusher: {e}"));
        self.child = Some(child);
        // Over TLS the plain probe cannot answer: ready once a translation is logged.
        let tls = self.extra.iter().any(|a| a == "--tls-cert");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("config-pusher exited ({status}):\n{}", self.log());
            }
            let ready = if tls {
                let log = self.log();
                let this_run = log.get(logged_before..).unwrap_or_default();
                this_run.contains("serving on https://") && this_run.contains("translation done")
            } else {
                self.get("/readyz").is_ok_and(|r| r.status == 200)
            };
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "config-pusher not ready after 30 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn get(&self, path: &str) -> std::io::Result<Response> {
        http::send(self.addr, "GET", path, &[("host", "config-pusher")])
    }

    /// The version config-pusher serves for `role` now (`None` when it has no such table).
    pub fn version(&self, role: &str) -> Option<String> {
        let r = self.get(&format!("/v1/tables/{role}")).ok()?;
        (r.status == 200).then(|| r.json()["version"].as_str().map(str::to_string))?
    }

    /// Waits until config-pusher serves a version of `role` other than `old`; returns it.
    pub fn wait_new_version(&self, role: &str, old: Option<&str>) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(v) = self.version(role) {
                if Some(v.as_str()) != old {
                    return v;
                }
            }
            assert!(
                Instant::now() < deadline,
                "config-pusher published no new version of {role} in 20 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `/v1/proxies` as JSON.
    pub fn proxies(&self) -> serde_json::Value {
        self.get("/v1/proxies")
            .map(|r| r.json())
            .unwrap_or_default()
    }

    /// config-pusher's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Pusher {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// A gateway fed by config-pusher: the folder, config-pusher, echo backends and Envoy.
pub struct LiveGateway {
    pub envoy: Envoy,
    pub addr: SocketAddr,
    pub pusher: Pusher,
    pub backends: BTreeMap<String, Echo>,
    pub role: String,
    /// The folder config-pusher watches.
    pub folder: Scratch,
    /// The arguments `pusher` was started with after `--from` (replicas start with the same).
    pub serve_args: Vec<String>,
    _rendered: Scratch,
}

/// How to start a [`LiveGateway`].
pub struct LiveOptions<'a> {
    /// Backend clusters (`<ns>/<svc>:<port>`) to start echo backends for.
    pub backends: &'a [&'a str],
    /// Envoy `--concurrency`.
    pub concurrency: u32,
    /// Extra plugin `source` settings (JSON object fields) patched into the rendered bootstrap.
    pub source_extra: &'a str,
    /// Extra arguments of `config-pusher serve` (`--tls-cert …`).
    pub serve_extra: &'a [&'a str],
    /// Extra arguments of `config-pusher render` (`--pusher-ca …`).
    pub render_extra: &'a [&'a str],
}

impl LiveGateway {
    /// Renders `folder` (already written) with `config-pusher render --pusher`, starts the
    /// backends, config-pusher serve and Envoy, and waits until Envoy routes with the table
    /// config-pusher serves.
    pub fn start(echo_bin: &str, folder: Scratch, role: &str, opts: LiveOptions<'_>) -> Self {
        // 127.30+: apart from the plain fixtures' 127.10+ addresses.
        let backends = crate::fixture::start_backends(echo_bin, opts.backends, 30);
        let rendered = Scratch::new("rendered");
        // Envoy's clusters come from the CDS file config-pusher keeps up to date, so a route to
        // a Service that had none at start-up works without restarting Envoy.
        let xds = rendered.0.join("xds");
        let mut backend_args = Vec::new();
        for (cluster, echo) in &backends {
            backend_args.push("--backend".to_string());
            backend_args.push(format!("{cluster}={}", echo.addr));
        }
        let mut serve_args = vec!["--xds-dir".to_string(), xds.display().to_string()];
        serve_args.extend(backend_args.iter().cloned());
        serve_args.extend(opts.serve_extra.iter().map(|a| a.to_string()));
        let args: Vec<&str> = serve_args.iter().map(String::as_str).collect();
        let pusher = Pusher::start(&folder.0, &args);
        let mut args: Vec<String> = vec![
            "render".into(),
            "--from".into(),
            folder.0.display().to_string(),
            "--out".into(),
            rendered.0.display().to_string(),
            "--wasm".into(),
            crate::wasm_path().display().to_string(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--pusher".into(),
            pusher.addr.to_string(),
            "--xds-dir".into(),
            xds.display().to_string(),
        ];
        args.extend(backend_args);
        args.extend(opts.render_extra.iter().map(|a| a.to_string()));
        let out = Command::new(config_pusher_bin())
            .args(&args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run config-pusher render: {e}"));
        assert!(
            out.status.success(),
            "config-pusher render failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = rendered.0.join(format!("envoy/{role}.yaml"));
        let mut bootstrap =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if !opts.source_extra.is_empty() {
            // The plugin configuration is a JSON string inside YAML: patch it in its escaped form.
            let anchor = r#"\"cluster\":\"gammaroute-config-pusher\""#;
            assert!(bootstrap.contains(anchor), "no source in {bootstrap}");
            let extra = opts.source_extra.replace('"', "\\\"");
            bootstrap = bootstrap.replace(anchor, &format!("{anchor},{extra}"));
        }
        let concurrency = opts.concurrency.to_string();
        let envoy = Envoy::start_with(
            &bootstrap,
            &["--concurrency", &concurrency, "--service-node", "live-gw"],
        );
        let addr = envoy.listener("gammaroute");
        LiveGateway {
            envoy,
            addr,
            pusher,
            backends,
            role: role.to_string(),
            folder,
            serve_args,
            _rendered: rendered,
        }
    }

    /// `GET http://{host}{path}` through Envoy.
    pub fn get(&self, host: &str, path: &str) -> std::io::Result<Response> {
        http::send(self.addr, "GET", path, &[("host", host)])
    }

    /// Which backend served `GET host/path` (`"<ns>/<svc>"`), or `"status N"` when it was not
    /// a 200 from a backend.
    pub fn served_by(&self, host: &str, path: &str) -> String {
        match self.get(host, path) {
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

    /// Waits until `GET host/path` is served by `want` on `n` consecutive new connections
    /// (so every Envoy worker agrees); returns how long it took.
    pub fn wait_served_by(&self, host: &str, path: &str, want: &str, n: usize) -> Duration {
        let start = Instant::now();
        let deadline = start + Duration::from_secs(20);
        let mut streak = 0;
        loop {
            if self.served_by(host, path) == want {
                streak += 1;
                if streak >= n {
                    return start.elapsed();
                }
                continue;
            }
            streak = 0;
            assert!(
                Instant::now() < deadline,
                "{host}{path} not served by {want} after 20 s (now: {}):\nEnvoy:\n{}\nconfig-pusher:\n{}",
                self.served_by(host, path),
                tail(&self.envoy.log(), 30),
                tail(&self.pusher.log(), 30)
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// The last `n` lines of a log.
pub fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A GatewayClass, a Gateway `demo/web` (HTTP, port 8080) and one Service per name in
/// `services` (namespace `demo`, port 8080): the fixed part of the live tests' folder.
pub fn gateway_yaml(services: &[&str]) -> String {
    let mut out = String::from(
        "apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: gammaroute}
spec: {controllerName: gammaroute.dev/config-pusher}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: web, namespace: demo}
spec:
  gatewayClassName: gammaroute
  listeners:
  - {name: http, protocol: HTTP, port: 8080, allowedRoutes: {namespaces: {from: Same}}}
",
    );
    for s in services {
        out.push_str("---\n");
        out.push_str(&service_yaml(s));
    }
    out
}

/// A Service `demo/NAME` with port 8080 (`http`).
pub fn service_yaml(name: &str) -> String {
    format!(
        "apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: demo}}
spec: {{ports: [{{port: 8080, name: http}}]}}
"
    )
}

/// An HTTPRoute `demo/NAME` on `demo/web` for `host`: `PathPrefix path` → `backend:8080`.
pub fn route_yaml(name: &str, host: &str, path: &str, backend: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}, namespace: demo}}
spec:
  parentRefs: [{{name: web}}]
  hostnames: [{host}]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: {path}}}}}]
    backendRefs: [{{name: {backend}, port: 8080}}]
"
    )
}
