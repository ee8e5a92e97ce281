//! `serve --xds-dir` with a real Envoy: the bootstrap `render --xds-dir` writes takes its clusters
//! from the CDS file `serve` keeps up to date, so a Service added to the folder (with a route to
//! it) becomes an Envoy cluster without restarting Envoy. Envoy and the release .wasm are
//! required: the test fails when either is missing.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use config_pusher::render::{self, envoy as bootstrap};
use config_pusher::serve;
use config_pusher::source::watcher::{self, Debounce};
use config_pusher::translate::{self, Settings};
use gammaroute_host_tests::{envoy::Envoy, http, live, wasm_path};

/// Service `demo/NAME` and an HTTPRoute sending `/<name>` to it.
fn service(name: &str) -> String {
    format!(
        "{}---\n{}",
        live::service_yaml(name),
        live::route_yaml(name, "shop.example", &format!("/{name}"), name)
    )
}

/// Cluster names Envoy has, from its admin `/clusters`.
fn clusters(envoy: &Envoy) -> Vec<String> {
    let text = http::get(envoy.admin, "admin", "/clusters", &[]).text();
    let mut names: Vec<String> = text
        .lines()
        .filter_map(|l| l.split_once("::").map(|(name, _)| name.to_string()))
        .collect();
    names.dedup();
    names
}

#[test]
fn a_service_added_to_the_folder_becomes_an_envoy_cluster() {
    let root = std::env::temp_dir().join(format!("gammaroute-xds-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let (dir, xds_dir) = (root.join("config"), root.join("xds"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("gateway.yaml"), live::gateway_yaml(&[])).unwrap();
    std::fs::write(dir.join("api.yaml"), service("api")).unwrap();

    let endpoint = |port| vec![SocketAddr::from(([127, 0, 0, 1], port))];
    let options = bootstrap::BootstrapOptions {
        wasm: wasm_path().display().to_string(),
        listen: Some("127.0.0.1:0".parse().unwrap()),
        backends: [
            ("demo/api:8080".to_string(), endpoint(9)),
            ("demo/new:8080".to_string(), endpoint(10)),
        ]
        .into(),
        cds_dir: Some(xds_dir.display().to_string()),
        ..bootstrap::BootstrapOptions::default()
    };

    // config-pusher serve, in process.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let config = serve::Config {
        xds_dir: Some(xds_dir.clone()),
        clusters: options.clone(),
        ..serve::Config::local("127.0.0.1:0".parse().unwrap())
    };
    let debounce = Debounce::new(Duration::from_millis(50), Duration::from_secs(5));
    runtime.block_on(async {
        let source = watcher::spawn(&dir, debounce).unwrap();
        tokio::spawn(serve::run(config, source, serve::NoStatus));
    });
    let cds = xds_dir.join(serve::xds::CDS_FILE);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cds.exists() {
        assert!(Instant::now() < deadline, "{} never written", cds.display());
        std::thread::sleep(Duration::from_millis(20));
    }

    // The gateway's bootstrap, as `render --xds-dir` writes it: no static clusters.
    let (store, _) = config_pusher::source::files::load(&dir);
    let output = translate::translate(&store, &Settings::default());
    let rendered = render::render(&store, &output, &options).unwrap();
    let gw = rendered
        .bootstraps()
        .find(|f| f.role.as_deref() == Some("gateway/demo/web"))
        .expect("a gateway bootstrap");
    let yaml = String::from_utf8(gw.content.clone()).unwrap();
    assert!(yaml.contains("path_config_source"), "{yaml}");
    assert!(
        yaml.contains("  clusters:\n  []\n"),
        "static clusters left in:\n{yaml}"
    );
    let envoy = Envoy::start(&yaml);
    assert!(
        clusters(&envoy).contains(&"demo/api:8080".to_string()),
        "{:?}",
        clusters(&envoy)
    );
    assert!(!clusters(&envoy).contains(&"demo/new:8080".to_string()));

    // A new Service with a route: serve rewrites cds.yaml, Envoy loads it.
    let added = Instant::now();
    std::fs::write(dir.join("new.yaml"), service("new")).unwrap();
    let deadline = added + Duration::from_secs(10);
    while !clusters(&envoy).contains(&"demo/new:8080".to_string()) {
        assert!(
            Instant::now() < deadline,
            "demo/new:8080 never reached Envoy: {:?}\ncds.yaml:\n{}\nEnvoy log:\n{}",
            clusters(&envoy),
            std::fs::read_to_string(&cds).unwrap_or_default(),
            envoy.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "new cluster in Envoy {:?} after the file was written",
        added.elapsed()
    );
    assert!(clusters(&envoy).contains(&"demo/api:8080".to_string()));
    assert_eq!(envoy.stat("cluster_manager.cds.update_rejected"), 0);
    drop(envoy);
    runtime.shutdown_background();
    let _ = std::fs::remove_dir_all(&root);
}
