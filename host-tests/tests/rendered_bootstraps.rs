//! Every Envoy bootstrap `config-pusher render` writes for the golden scenarios
//! (`config-pusher/tests/golden/*/input`) passes `envoy --mode validate`, which also loads the
//! release .wasm and configures it with the rendered table. Envoy and the .wasm are required: the
//! test fails when either is missing.

use std::net::SocketAddr;
use std::path::PathBuf;

use config_pusher::render::{self, envoy as bootstrap};
use config_pusher::source::files;
use config_pusher::translate::{self, Settings};
use gammaroute_host_tests::{envoy, workspace_root};

fn scenarios() -> Vec<PathBuf> {
    let root = workspace_root().join("config-pusher/tests/golden");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path().join("input"))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(
        dirs.len() >= 7,
        "golden scenarios missing under {}",
        root.display()
    );
    dirs
}

#[test]
fn every_rendered_bootstrap_passes_envoy_validation() {
    let options = bootstrap::BootstrapOptions {
        wasm: gammaroute_host_tests::wasm_path().display().to_string(),
        ..bootstrap::BootstrapOptions::default()
    };
    let mut validated = 0;
    let mut failures = Vec::new();
    for dir in scenarios() {
        let (store, _) = files::load(&dir);
        let output = translate::translate(&store, &Settings::default());
        let rendered = render::render(&store, &output, &options)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        // Every Gateway (all have an HTTP listener) and, when there is a Service frontend to
        // bind, every mesh namespace, with or without routes.
        let frontends = !bootstrap::frontends(&store).is_empty();
        let expected = output
            .tables
            .values()
            .filter(|t| !t.listeners.is_empty() || (t.role.starts_with("mesh/") && frontends))
            .count();
        assert_eq!(rendered.bootstraps().count(), expected, "{}", dir.display());
        for f in rendered.bootstraps() {
            let yaml = String::from_utf8(f.content.clone()).unwrap();
            if let Err(log) = envoy::validate(&yaml) {
                failures.push(format!("{}: {}\n{log}", dir.display(), f.path));
            }
            validated += 1;
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    // 6 Gateways and 3 routed mesh namespaces.
    assert!(validated >= 9, "only {validated} bootstraps rendered");
}

#[test]
fn listen_override_and_backends_validate() {
    let dir = workspace_root().join("config-pusher/tests/golden/canary/input");
    let (store, _) = files::load(&dir);
    let output = translate::translate(&store, &Settings::default());
    let backend: SocketAddr = "127.0.0.1:9001".parse().unwrap();
    let options = bootstrap::BootstrapOptions {
        wasm: gammaroute_host_tests::wasm_path().display().to_string(),
        listen: Some("127.0.0.1:18080".parse().unwrap()),
        backends: [("shop/web-v1:80".to_string(), vec![backend])].into(),
        ..bootstrap::BootstrapOptions::default()
    };
    let rendered = render::render(&store, &output, &options).unwrap();
    let gw = rendered
        .bootstraps()
        .find(|f| f.role.as_deref() == Some("gateway/shop/web"))
        .unwrap();
    assert_eq!(gw.listen, vec!["127.0.0.1:18080".parse().unwrap()]);
    let yaml = String::from_utf8(gw.content.clone()).unwrap();
    // The filter is told which Gateway port the listener stands for.
    assert!(yaml.contains(r#"\"listenerPort\":8080"#), "{yaml}");
    assert!(yaml.contains("type: STATIC") && yaml.contains("port_value: 9001"));
    assert!(yaml.contains("type: STRICT_DNS") && yaml.contains("web-v2.shop.svc.cluster.local"));
    envoy::validate(&yaml).unwrap_or_else(|log| panic!("{log}"));
}

/// `render --xds-server` for an in-cluster gateway: the ADS server by DNS name with a token,
/// HTTPS certificates from SDS over ADS, no static backend clusters; Envoy validates it.
#[test]
fn ads_bootstraps_validate() {
    let dir = workspace_root().join("config-pusher/tests/golden/tls-listeners/input");
    let (store, _) = files::load(&dir);
    let output = translate::translate(&store, &Settings::default());
    let mut ads =
        bootstrap::Pusher::parse("config-pusher.gammaroute-system.svc.cluster.local:18001")
            .unwrap();
    ads.token = Some("gr1:gateway/infra/edge:00ff".into());
    let options = bootstrap::BootstrapOptions {
        wasm: gammaroute_host_tests::wasm_path().display().to_string(),
        ads: Some(ads),
        ..bootstrap::BootstrapOptions::default()
    };
    let rendered = render::render(&store, &output, &options).unwrap();
    let gw = rendered
        .bootstraps()
        .find(|f| f.role.as_deref() == Some("gateway/infra/edge"))
        .unwrap();
    let yaml = String::from_utf8(gw.content.clone()).unwrap();
    assert!(
        yaml.contains("node: {id: gammaroute, cluster: \"gateway/infra/edge\"}"),
        "{yaml}"
    );
    assert!(yaml.contains(
        "initial_metadata: [{key: authorization, value: \"Bearer gr1:gateway/infra/edge:00ff\"}]"
    ));
    assert!(yaml.contains("cds_config: {ads: {}, resource_api_version: V3}"));
    // HTTPS chains are bound, their certificates named for SDS over ADS; no key on disk.
    assert!(
        yaml.contains("tls_certificate_sds_secret_configs"),
        "{yaml}"
    );
    assert!(!yaml.contains("path_config_source") && !yaml.contains("PRIVATE KEY"));
    assert!(rendered
        .files
        .iter()
        .all(|f| f.kind != render::FileKind::Sds));
    // The only static clusters: the xDS server (HTTP/2, by DNS name).
    assert!(
        yaml.contains("name: \"gammaroute-xds\"\n    type: STRICT_DNS"),
        "{yaml}"
    );
    assert!(
        !yaml.contains("name: \"app/shop:80\""),
        "backend clusters come from CDS:\n{yaml}"
    );
    envoy::validate(&yaml).unwrap_or_else(|log| panic!("{log}"));
}
