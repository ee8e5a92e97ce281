//! The bootstrap of a provisioned proxy: the `render` bootstrap of the Gateway's role
//! ([`envoy::bootstrap_with`]) made for a pod — the filter fetches its table from config-pusher's
//! Service with the role's token and has no inline table, and Envoy's admin stays on loopback
//! while a separate listener answers the kubelet's readiness probe on `/ready` (as Envoy Gateway
//! does: the health-check filter fails it while Envoy drains).
//!
//! With `serve --xds-listen` (the shipped Deployment) the proxies get their clusters, endpoints
//! (EndpointSlices) and listener certificates over ADS from config-pusher (issue #22 item 2,
//! docs/xds.md): the bootstrap holds only the listeners and the two ways to config-pusher, so it
//! changes only when the Gateway's listeners or the token change. Without ADS the backend
//! clusters are static in the bootstrap and resolve Service DNS names (never pod IPs): a new
//! backend Service rolls the proxies, and HTTPS listeners are not served (their certificates
//! have no way in).

use gammaroute_filter::table::RouteTable;

use super::module::{ModuleSource, ModuleUrl};
use crate::render::envoy::{self, BootstrapOptions, InlineTable, Listen, Pusher};
use crate::render::RenderError;
use crate::store::Store;

/// Where the module is mounted in the proxy pod (the image volume of `Dockerfile.wasm`'s image,
/// whose only file is `/plugin.wasm`).
pub const WASM_DIR: &str = "/etc/gammaroute/wasm";
/// The module's path in the pod.
pub const WASM_PATH: &str = "/etc/gammaroute/wasm/plugin.wasm";
/// The readiness listener's port (`GET /ready`).
pub const READY_PORT: u16 = 19001;
/// Envoy's admin interface, loopback only.
pub const ADMIN_PORT: u16 = 19000;

/// Why a provisioned bootstrap could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error("{role}: no listener to bind: {why}")]
    Nothing { role: String, why: String },
    #[error("the bootstrap template has no `static_resources: listeners:` to add /ready to")]
    Template,
    #[error("the bootstrap has no local module or no `clusters:` to fetch the module from a URL")]
    RemoteModule,
}

/// How provisioned proxies reach config-pusher: its table API, and its ADS server when it runs
/// one (`serve --xds-listen`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlPlane {
    pub pusher: Pusher,
    pub ads: Option<Pusher>,
}

impl ControlPlane {
    /// Both ways, carrying `token` (the role's: the table API and the ADS server check the same
    /// per-role token).
    pub fn with_token(&self, token: Option<String>) -> ControlPlane {
        ControlPlane {
            pusher: Pusher {
                token: token.clone(),
                ..self.pusher.clone()
            },
            ads: self.ads.clone().map(|a| Pusher { token, ..a }),
        }
    }
}

/// The bootstrap YAML of the proxies of `table`'s Gateway. Without ADS, `store` should hold no
/// EndpointSlices (clusters then use Service DNS names: see the module docs).
pub fn render(
    store: &Store,
    table: &RouteTable,
    control_plane: &ControlPlane,
    cluster_domain: &str,
    module: &ModuleSource,
) -> Result<String, BootstrapError> {
    let options = BootstrapOptions {
        wasm: WASM_PATH.into(),
        listen: Some(Listen::Ip([0, 0, 0, 0].into())),
        cluster_domain: cluster_domain.into(),
        admin: ([127, 0, 0, 1], ADMIN_PORT).into(),
        pusher: Some(control_plane.pusher.clone()),
        ads: control_plane.ads.clone(),
        ..BootstrapOptions::default()
    };
    match envoy::bootstrap_with(store, table, &options, InlineTable::No)? {
        envoy::Rendered::Bootstrap(b) => {
            let yaml = with_ready_listener(&b.yaml)?;
            match module {
                ModuleSource::Image(_) => Ok(yaml),
                ModuleSource::Url(url) => with_remote_module(&yaml, url),
            }
        }
        envoy::Rendered::Skipped(why) => Err(BootstrapError::Nothing {
            role: table.role.clone(),
            why,
        }),
    }
}

const LISTENERS: &str = "static_resources:\n  listeners:\n";

/// Adds the `/ready` listener in front of the gateway's.
fn with_ready_listener(yaml: &str) -> Result<String, BootstrapError> {
    let ready = format!(
        r#"  - name: gammaroute-ready
    address: {{socket_address: {{address: "0.0.0.0", port_value: {READY_PORT}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: gammaroute_ready
          route_config: {{name: ready, virtual_hosts: [{{name: ready, domains: ["*"], routes: [{{match: {{prefix: "/"}}, direct_response: {{status: 404}}}}]}}]}}
          http_filters:
          - name: envoy.filters.http.health_check
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.health_check.v3.HealthCheck
              pass_through_mode: false
              headers: [{{name: ":path", string_match: {{exact: "/ready"}}}}]
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"#
    );
    if !yaml.contains(LISTENERS) {
        return Err(BootstrapError::Template);
    }
    Ok(yaml.replacen(LISTENERS, &format!("{LISTENERS}{ready}"), 1))
}

/// The Envoy cluster the module is downloaded through.
const MODULE_CLUSTER: &str = "gammaroute-module-source";

/// Loads the module from `url` instead of the image volume: Envoy downloads it (retrying) before
/// the listener starts and refuses a module whose SHA-256 differs.
fn with_remote_module(yaml: &str, url: &ModuleUrl) -> Result<String, BootstrapError> {
    let local = format!("code: {{local: {{filename: \"{WASM_PATH}\"}}}}");
    let remote = format!(
        "code: {{remote: {{http_uri: {{uri: {uri}, cluster: {MODULE_CLUSTER}, timeout: 30s}}, \
         sha256: {sha}, retry_policy: {{num_retries: 10}}}}}}",
        uri = envoy::yaml_string(&serde_json::Value::from(url.url.clone()).to_string()),
        sha = url.sha256,
    );
    let tls = if url.tls {
        format!(
            "    transport_socket:\n      name: envoy.transport_sockets.tls\n      typed_config:\n        \
             \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext\n        \
             sni: \"{host}\"\n        common_tls_context: {{validation_context: {{trusted_ca: {{filename: /etc/ssl/certs/ca-certificates.crt}}}}}}\n",
            host = url.host
        )
    } else {
        String::new()
    };
    let cluster = format!(
        "  - name: {MODULE_CLUSTER}\n    type: STRICT_DNS\n    connect_timeout: 5s\n    \
         dns_lookup_family: V4_PREFERRED\n    load_assignment:\n      cluster_name: {MODULE_CLUSTER}\n      \
         endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: \"{host}\", port_value: {port}}}}}}}}}]}}]\n{tls}",
        host = url.host,
        port = url.port,
    );
    const CLUSTERS: &str = "\n  clusters:\n";
    if !yaml.contains(&local) || !yaml.contains(CLUSTERS) {
        return Err(BootstrapError::RemoteModule);
    }
    let yaml = yaml.replace(&local, &remote);
    let yaml = match yaml.replacen(
        &format!("{CLUSTERS}  []\n"),
        &format!("{CLUSTERS}{cluster}"),
        1,
    ) {
        replaced if replaced != yaml => replaced,
        _ => yaml.replacen(CLUSTERS, &format!("{CLUSTERS}{cluster}"), 1),
    };
    Ok(yaml)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ready_listener_goes_first_and_the_yaml_stays_valid() {
        let y =
            with_ready_listener("a: 1\nstatic_resources:\n  listeners:\n  - name: x\n").unwrap();
        let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&y).unwrap();
        let listeners = v["static_resources"]["listeners"].as_sequence().unwrap();
        assert_eq!(listeners.len(), 2);
        assert_eq!(listeners[0]["name"].as_str(), Some("gammaroute-ready"));
        assert!(matches!(
            with_ready_listener("a: 1\n"),
            Err(BootstrapError::Template)
        ));
    }

    /// A Gateway with an HTTP and an HTTPS listener (Secret `shop/cert`) and a route to `web`.
    const GATEWAY: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: gammaroute}
spec: {controllerName: gammaroute.dev/config-pusher}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: shop}
spec:
  gatewayClassName: gammaroute
  listeners:
  - {name: http, protocol: HTTP, port: 80}
  - {name: https, protocol: HTTPS, port: 443, hostname: shop.example, tls: {certificateRefs: [{name: cert}]}}
---
apiVersion: v1
kind: Secret
metadata: {name: cert, namespace: shop}
type: kubernetes.io/tls
stringData:
  tls.crt: |
    -----BEGIN CERTIFICATE-----
    MIIBdzCCAR2gAwIBAgIUJ6tQ0NnMO9x9ZcS0sJ7v8bQ2E0YwCgYIKoZIzj0EAwIw
    -----END CERTIFICATE-----
  tls.key: |
    -----BEGIN PRIVATE KEY-----
    MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgAAAAAAAAAAAAAAAA
    -----END PRIVATE KEY-----
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {clusterIP: 10.0.0.7, ports: [{name: http, port: 80}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: shop}
spec:
  parentRefs: [{name: gw}]
  rules: [{backendRefs: [{name: web, port: 80}]}]
";

    fn rendered(ads: bool) -> String {
        let mut store = Store::new();
        let mut report = crate::source::files::LoadReport::default();
        crate::source::files::load_str(&mut store, &mut report, "gw.yaml", GATEWAY);
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        let output = crate::translate::translate(&store, &Default::default());
        let table = &output.tables["gateway/shop/gw"];
        let at = |port| Pusher::parse(&format!("config-pusher.gammaroute-system.svc:{port}"));
        let plane = ControlPlane {
            pusher: at(18000).unwrap(),
            ads: ads.then(|| at(18001).unwrap()),
        }
        .with_token(Some("role-token".into()));
        let module = ModuleSource::Image("wasm:test".into());
        render(&store, table, &plane, "cluster.local", &module).unwrap()
    }

    #[test]
    fn over_ads_the_bootstrap_holds_no_backend_and_serves_https_with_certificates_from_ads() {
        let yaml = rendered(true);
        let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&yaml).unwrap();
        let ads = &doc["dynamic_resources"]["ads_config"];
        assert_eq!(
            ads["grpc_services"][0]["envoy_grpc"]["cluster_name"].as_str(),
            Some(envoy::XDS_CLUSTER),
            "{yaml}"
        );
        assert!(
            yaml.contains("role-token"),
            "the ADS stream carries the role token"
        );
        let clusters: Vec<&str> = doc["static_resources"]["clusters"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert!(
            !clusters.iter().any(|c| c.contains("shop/web")),
            "{clusters:?}"
        );
        assert!(clusters.contains(&envoy::XDS_CLUSTER), "{clusters:?}");
        assert!(yaml.contains("port_value: 443"), "HTTPS is bound:\n{yaml}");
        assert!(!yaml.contains("PRIVATE KEY"), "the key comes over ADS");
    }

    #[test]
    fn without_ads_backends_are_static_dns_clusters_and_https_is_not_bound() {
        let yaml = rendered(false);
        assert!(!yaml.contains("ads_config"), "{yaml}");
        assert!(yaml.contains("web.shop.svc.cluster.local"), "{yaml}");
        assert!(!yaml.contains("port_value: 443"), "{yaml}");
        assert!(!yaml.contains("PRIVATE KEY"));
    }
}
