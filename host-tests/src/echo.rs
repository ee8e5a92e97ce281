//! Echo backends as child processes (the `echo` binary of this crate).

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running echo backend; killed when dropped.
pub struct Echo {
    pub addr: SocketAddr,
    child: Child,
}

impl Echo {
    /// Starts `bin` (pass `env!("CARGO_BIN_EXE_echo")`) on `addr`, reporting `namespace`/`service`.
    pub fn start(bin: &str, addr: SocketAddr, namespace: &str, service: &str) -> Echo {
        let child = Command::new(bin)
            .args([
                "--listen",
                &addr.to_string(),
                "--namespace",
                namespace,
                "--service",
                service,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start echo backend {bin}: {e}"));
        let echo = Echo { addr, child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "echo backend on {addr} did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        echo
    }

    /// How many requests this backend served, in total and for one `x-echo-id`.
    pub fn seen(&self, id: &str) -> (u64, u64) {
        let r = crate::http::get(self.addr, "echo", "/__echo/seen", &[]);
        let doc = r.json();
        (
            doc["total"].as_u64().unwrap_or(0),
            doc["ids"][id].as_u64().unwrap_or(0),
        )
    }

    /// The last request this backend served with `x-echo-id: id`, as the echo reported it
    /// (`Null` when none): what a mirror received.
    pub fn last(&self, id: &str) -> serde_json::Value {
        let r = crate::http::get(self.addr, "echo", "/__echo/seen", &[]);
        r.json()["last"][id].clone()
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
