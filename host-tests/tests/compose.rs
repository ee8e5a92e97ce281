//! The docker-compose demo (`demo/compose/`): no Docker engine runs here, so the compose file is
//! checked by `docker-compose config`, and the Envoy bootstrap its `render` service writes is
//! rendered here with the very same `config-pusher render` arguments, from the examples and the
//! Secret its `certs` service makes with the same script, and validated by Envoy.

use std::path::Path;
use std::process::Command;

use gammaroute_host_tests::live::{config_pusher_bin, Scratch};
use gammaroute_host_tests::{envoy, wasm_path, workspace_root};

const COMPOSE: &str = "demo/compose/docker-compose.yaml";

#[test]
fn the_compose_file_is_valid() {
    let file = workspace_root().join(COMPOSE);
    let out = Command::new("docker-compose")
        .arg("-f")
        .arg(&file)
        .args(["config", "--services"])
        .output()
        .unwrap_or_else(|e| {
            panic!("docker-compose is required for this test (apt-get install docker-compose): {e}")
        });
    assert!(
        out.status.success(),
        "docker-compose config refused {COMPOSE}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let services = String::from_utf8_lossy(&out.stdout);
    for s in [
        "certs",
        "config-pusher",
        "render",
        "envoy",
        "web-v1",
        "web-v2",
        "api",
        "api-beta",
        "flaky",
    ] {
        assert!(
            services.lines().any(|l| l == s),
            "no service {s}: {services}"
        );
    }
}

/// The `config-pusher render …` arguments of the compose file's `render` service.
fn render_args(compose: &str) -> Vec<String> {
    let start = compose
        .find("config-pusher render --from")
        .expect("a config-pusher render command in the compose file");
    let rest = &compose[start..];
    // The folded block ends at the first line that is not part of the command.
    let mut words = Vec::new();
    for line in rest.lines() {
        let line = line.trim();
        if line.is_empty() || line.contains(':') && !line.contains("--") && !words.is_empty() {
            break;
        }
        words.extend(line.split_whitespace().map(str::to_string));
    }
    // The command ends at the shell's `&&`.
    if let Some(end) = words.iter().position(|w| w == "&&") {
        words.truncate(end);
    }
    assert_eq!(words.first().map(String::as_str), Some("config-pusher"));
    words.into_iter().skip(1).collect()
}

#[test]
fn the_compose_bootstrap_passes_envoy_validation() {
    let compose = std::fs::read_to_string(workspace_root().join(COMPOSE)).expect("compose file");
    let args = render_args(&compose);
    assert!(
        args.iter().any(|a| a == "--pusher"),
        "the compose Envoy fetches from config-pusher: {args:?}"
    );
    let out = Scratch::new("compose");
    // /routes as the compose services mount it: the examples and the `certs` service's output.
    let routes = Scratch::new("compose-routes");
    let examples = workspace_root().join("examples");
    std::fs::create_dir_all(routes.0.join("examples")).unwrap();
    for entry in std::fs::read_dir(&examples).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            std::fs::copy(
                &path,
                routes.0.join("examples").join(path.file_name().unwrap()),
            )
            .unwrap();
        }
    }
    assert!(
        compose.contains("sh /opt/gammaroute/tls-secret.sh /tls")
            && compose.contains("./tls:/routes/tls:ro"),
        "the certs service writes the Secret config-pusher and render read"
    );
    let dockerfile = std::fs::read_to_string(workspace_root().join("demo/compose/Dockerfile"))
        .expect("Dockerfile");
    assert!(dockerfile.contains("COPY demo/tls-secret.sh /opt/gammaroute/tls-secret.sh"));
    let made = Command::new("sh")
        .arg(workspace_root().join("demo/tls-secret.sh"))
        .arg(routes.0.join("tls"))
        .output()
        .expect("sh");
    assert!(
        made.status.success(),
        "demo/tls-secret.sh (needs openssl): {}",
        String::from_utf8_lossy(&made.stderr)
    );
    let wasm = wasm_path();
    let local: Vec<String> = args
        .iter()
        .map(|a| match a.as_str() {
            "/routes" => routes.0.display().to_string(),
            "/shared" => out.0.display().to_string(),
            "/shared/gammaroute.wasm" => wasm.display().to_string(),
            other => other.to_string(),
        })
        .collect();
    let run = Command::new(config_pusher_bin())
        .args(&local)
        .output()
        .expect("config-pusher render");
    assert!(
        run.status.success(),
        "render {local:?}:\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let bootstrap = out.0.join("envoy/gateway/demo/gateway.yaml");
    assert!(
        compose.contains("/shared/envoy/gateway/demo/gateway.yaml"),
        "the envoy service runs the rendered gateway bootstrap"
    );
    let text = std::fs::read_to_string(&bootstrap)
        .unwrap_or_else(|e| panic!("{}: {e}", Path::new(&bootstrap).display()));
    // Backends by their Kubernetes DNS names (network aliases in the compose file), the pusher
    // by its compose service name.
    assert!(text.contains("web-v1.demo.svc.cluster.local"), "{text}");
    assert!(compose.contains("web-v1.demo.svc.cluster.local"));
    assert!(text.contains("address: \"config-pusher\""), "{text}");
    // Both Gateway listeners are bound: HTTP on 8080, HTTPS on 8443 with the generated
    // certificate through SDS (chowned for the Envoy image's user by the render service).
    assert!(text.contains("port_value: 8443"), "{text}");
    assert!(
        text.contains("server_names: [\"secure.example\"]"),
        "{text}"
    );
    assert!(out.0.join("sds/sds-demo-demo-tls.yaml").exists());
    assert!(
        compose.contains("chown -R 101:101 /shared/sds") && compose.contains("ENVOY_UID: \"101\"")
    );
    if let Err(log) = envoy::validate(&text) {
        panic!("Envoy refused the compose bootstrap:\n{log}\n{text}");
    }
}
