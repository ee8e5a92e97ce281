//! Proxies fetch their tables from `config-pusher serve --tls-cert` over TLS: a real Envoy
//! rendered with `render --pusher-ca --pusher-server-name` verifies the server's name against the
//! CA, and follows a route change; rendered with a name the certificate does not carry, its
//! fetches fail visibly (`table_fetches_total{result="failed"}`), never fall back to plain text,
//! and it keeps routing with its start-up table. Certificates come from the `openssl` CLI.
//! Envoy, the release .wasm and openssl are required (the test fails without them).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use gammaroute_host_tests::live::{gateway_yaml, route_yaml, LiveGateway, LiveOptions, Scratch};

const ECHO: &str = env!("CARGO_BIN_EXE_echo");
const ROLE: &str = "gateway/demo/web";
const HOST: &str = "shop.example";
const NAME: &str = "config-pusher.test";
const FAILED: &str = "wasmcustom.gammaroute.result=.=failed;.;table_fetches_total";

/// A CA and a server certificate it signs for DNS `name`: `(ca.crt, server.crt, server.key)`.
fn certificates(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let p = |f: &str| dir.join(f);
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .expect("the openssl CLI is required (make test-setup installs it)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-days",
                "2",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-subj",
                "/CN=test CA",
            ],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                &format!("/CN={name}"),
            ],
        ]
        .concat(),
    );
    std::fs::write(p("san.ext"), format!("subjectAltName=DNS:{name}\n")).unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.crt",
    ]);
    (p("ca.crt"), p("server.crt"), p("server.key"))
}

fn gateway(certs: &Scratch, server_name: &str) -> LiveGateway {
    let (ca, cert, key) = (
        certs.0.join("ca.crt"),
        certs.0.join("server.crt"),
        certs.0.join("server.key"),
    );
    let dir = Scratch::new("pusher-tls");
    dir.write("00-gateway.yaml", &gateway_yaml(&["a", "b"]));
    dir.write("10-shop.yaml", &route_yaml("shop", HOST, "/", "a"));
    let (cert, key, ca) = (
        cert.display().to_string(),
        key.display().to_string(),
        ca.display().to_string(),
    );
    LiveGateway::start(
        ECHO,
        dir,
        ROLE,
        LiveOptions {
            backends: &["demo/a:8080", "demo/b:8080"],
            concurrency: 1,
            source_extra: "",
            serve_extra: &["--tls-cert", &cert, "--tls-key", &key],
            render_extra: &["--pusher-ca", &ca, "--pusher-server-name", server_name],
        },
    )
}

#[test]
fn envoy_fetches_its_table_over_tls_and_refuses_a_wrong_name() {
    let certs = Scratch::new("pusher-tls-certs");
    certificates(&certs.0, NAME);

    let good = gateway(&certs, NAME);
    good.wait_served_by(HOST, "/", "demo/a", 2);
    good.folder
        .write("10-shop.yaml", &route_yaml("shop", HOST, "/", "b"));
    good.wait_served_by(HOST, "/", "demo/b", 4);
    assert!(
        good.envoy
            .stat("cluster.gammaroute-config-pusher.ssl.handshake")
            > 0,
        "no TLS handshake with config-pusher"
    );
    assert_eq!(good.envoy.stat(FAILED), 0, "{}", good.envoy.log());
    drop(good);

    let wrong = gateway(&certs, "other.test");
    let deadline = Instant::now() + Duration::from_secs(20);
    while wrong.envoy.stat(FAILED) < 2 {
        assert!(
            Instant::now() < deadline,
            "fetches with a wrong server name did not fail:\n{}",
            wrong.envoy.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        wrong
            .envoy
            .stat("cluster.gammaroute-config-pusher.ssl.fail_verify_san")
            > 0,
        "the failure is the name check"
    );
    // The start-up table keeps routing; the change never arrives over an unverified channel.
    wrong
        .folder
        .write("10-shop.yaml", &route_yaml("shop", HOST, "/", "b"));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(wrong.served_by(HOST, "/"), "demo/a");
}
