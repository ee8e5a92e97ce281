//! The bootstrap of a provisioned proxy: the `render` bootstrap of the Gateway's role
//! ([`envoy::bootstrap_with`]) made for a pod — the filter fetches its table from config-pusher's
//! Service with the role's token and has no inline table, backend clusters resolve Service DNS
//! names (never pod IPs), and Envoy's admin stays on loopback while a separate listener answers
//! the kubelet's readiness probe on `/ready` (as Envoy Gateway does: the health-check filter
//! fails it while Envoy drains). So the bootstrap changes only when the Gateway's listeners, its
//! set of backend Services or the token change — route edits and scaled backends do not restart
//! the proxies.

use gammaroute_filter::table::RouteTable;

use crate::render::envoy::{self, BootstrapOptions, InlineTable, Listen, Pusher};
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
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BootstrapError {
    #[error("{role}: {message}")]
    Render { role: String, message: String },
    #[error("{role}: no listener to bind: {why}")]
    Nothing { role: String, why: String },
    #[error("the bootstrap template has no `static_resources: listeners:` to add /ready to")]
    Template,
}

/// The bootstrap YAML of the proxies of `table`'s Gateway. `store` should hold no EndpointSlices
/// (clusters then use Service DNS names: see the module docs).
pub fn render(
    store: &Store,
    table: &RouteTable,
    pusher: &Pusher,
    cluster_domain: &str,
) -> Result<String, BootstrapError> {
    let options = BootstrapOptions {
        wasm: WASM_PATH.into(),
        listen: Some(Listen {
            ip: [0, 0, 0, 0].into(),
            port: None,
        }),
        cluster_domain: cluster_domain.into(),
        admin: ([127, 0, 0, 1], ADMIN_PORT).into(),
        pusher: Some(pusher.clone()),
        ..BootstrapOptions::default()
    };
    let err = |message: String| BootstrapError::Render {
        role: table.role.clone(),
        message,
    };
    match envoy::bootstrap_with(store, table, &options, InlineTable::No).map_err(err)? {
        envoy::Rendered::Bootstrap(b) => with_ready_listener(&b.yaml),
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
        assert_eq!(
            with_ready_listener("a: 1\n").unwrap_err(),
            BootstrapError::Template
        );
    }
}
