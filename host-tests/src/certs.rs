//! Self-signed certificates for the TLS tests, made with the `openssl` CLI (installed by `make
//! test-setup`; a test fails, never skips, without it), and the `kubernetes.io/tls` Secrets that
//! carry them into config-pusher.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A self-signed P-256 certificate for the DNS `names` (the first is also the CN):
/// `(cert.pem, key.pem)` written as `<stem>.crt` and `<stem>.key` in `dir`.
pub fn self_signed(dir: &Path, stem: &str, names: &[&str]) -> (PathBuf, PathBuf) {
    let (cert, key) = (
        dir.join(format!("{stem}.crt")),
        dir.join(format!("{stem}.key")),
    );
    let san = names
        .iter()
        .map(|n| format!("DNS:{n}"))
        .collect::<Vec<_>>()
        .join(",");
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:P-256", "-nodes", "-days", "2"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args([
            "-subj",
            &format!("/CN={}", names.first().copied().unwrap_or("test")),
        ])
        .args(["-addext", &format!("subjectAltName={san}")])
        .output()
        .expect("the openssl CLI is required (make test-setup installs it)");
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

/// A `kubernetes.io/tls` Secret `namespace/name` holding `cert` and `key`, as one YAML document.
pub fn tls_secret(namespace: &str, name: &str, cert: &Path, key: &Path) -> String {
    let indent = |p: &Path| {
        std::fs::read_to_string(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    };
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {namespace}}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{}  tls.key: |\n{}",
        indent(cert),
        indent(key)
    )
}
