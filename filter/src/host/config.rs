//! The plugin configuration: the JSON object Envoy passes to `on_configure`
//! (`PluginConfig.configuration`, or Istio's `WasmPlugin.pluginConfig`).
//!
//! ```json
//! {
//!   "table": { "role": "gateway/default/web", "listeners": [...], "routes": [...] },
//!   "clusterNaming": "standalone",
//!   "listenerPort": 80,
//!   "mirrorSlots": 2
//! }
//! ```

use serde::Deserialize;
use thiserror::Error;

use crate::table::{self, BackendTarget, Filter, RouteTable, TableError};

/// Parsed plugin configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PluginConfig {
    /// The route table, inline. Validated whole on load.
    pub table: RouteTable,
    /// How the table's backend names (`<namespace>/<service>:<port>`) become Envoy cluster names.
    #[serde(default)]
    pub cluster_naming: ClusterNaming,
    /// The Gateway listener port this Envoy listener serves. When absent, the connection's
    /// destination port is read from the host (one property read per request). Mesh tables
    /// always use the destination address.
    #[serde(default)]
    pub listener_port: Option<u16>,
    /// How many `x-gamma-mirror-N` request-mirror policies the Envoy route has (`N` = 0..slots).
    /// Mirrors beyond the slots are not sent, and counted.
    #[serde(default = "default_mirror_slots")]
    pub mirror_slots: u8,
    /// Mesh only: the cluster for destinations that are not a routed Service (typically an
    /// `ORIGINAL_DST` cluster). Without it such requests are left to Envoy's route unchanged.
    #[serde(default)]
    pub passthrough_cluster: Option<String>,
}

fn default_mirror_slots() -> u8 {
    2
}

/// Cluster naming schemes (DESIGN.md "The Envoy contract").
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ClusterNaming {
    /// `<namespace>/<service>:<port>`, as config-pusher renders standalone Envoy clusters.
    #[default]
    Standalone,
    /// Istio: `outbound|<port>||<service>.<namespace>.svc.<domain>`.
    Istio {
        /// The cluster DNS domain, usually `cluster.local`.
        domain: String,
    },
}

/// Why a plugin configuration was refused (`on_configure` returns false).
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("plugin configuration is not valid JSON for gammaroute: {0}")]
    Json(#[from] serde_json::Error),
    #[error("plugin configuration: route table rejected: {0}")]
    Table(#[from] TableError),
    #[error("plugin configuration: clusterNaming {scheme}: backend {cluster:?} is not <namespace>/<service>:<port>")]
    ClusterName {
        scheme: &'static str,
        cluster: String,
    },
    #[error("plugin configuration: listenerPort must be 1-65535")]
    ListenerPort,
}

impl PluginConfig {
    /// Parses and validates a configuration, and renames the table's clusters for the host.
    pub fn parse(bytes: &[u8]) -> Result<PluginConfig, ConfigError> {
        let mut config: PluginConfig = serde_json::from_slice(bytes)?;
        if config.listener_port == Some(0) {
            return Err(ConfigError::ListenerPort);
        }
        config.table = table::accept(config.table)?;
        let naming = config.cluster_naming.clone();
        naming.rename(&mut config.table)?;
        Ok(config)
    }
}

impl ClusterNaming {
    /// The Envoy cluster name of a table backend name.
    pub fn cluster(&self, backend: &str) -> Result<String, ConfigError> {
        match self {
            ClusterNaming::Standalone => Ok(backend.to_string()),
            ClusterNaming::Istio { domain } => {
                let parsed = backend
                    .split_once('/')
                    .and_then(|(ns, rest)| Some((ns, rest.rsplit_once(':')?)));
                match parsed {
                    Some((ns, (svc, port)))
                        if !ns.is_empty() && !svc.is_empty() && port.parse::<u16>().is_ok() =>
                    {
                        Ok(format!("outbound|{port}||{svc}.{ns}.svc.{domain}"))
                    }
                    _ => Err(ConfigError::ClusterName {
                        scheme: "istio",
                        cluster: backend.to_string(),
                    }),
                }
            }
        }
    }

    /// Renames every backend and mirror cluster of a table. The version is left as it was: it
    /// identifies the table config-pusher served, whatever the host calls its clusters.
    pub fn rename(&self, table: &mut RouteTable) -> Result<(), ConfigError> {
        if *self == ClusterNaming::Standalone {
            return Ok(());
        }
        for rule in table.routes.iter_mut().flat_map(|r| r.rules.iter_mut()) {
            self.rename_filters(&mut rule.filters)?;
            for backend in &mut rule.backends {
                if let BackendTarget::Cluster(name) = &mut backend.target {
                    *name = self.cluster(name)?;
                }
                self.rename_filters(&mut backend.filters)?;
            }
        }
        Ok(())
    }

    fn rename_filters(&self, filters: &mut [Filter]) -> Result<(), ConfigError> {
        for filter in filters {
            if let Filter::RequestMirror(m) = filter {
                m.cluster = self.cluster(&m.cluster)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn istio_names() {
        let istio = ClusterNaming::Istio {
            domain: "cluster.local".into(),
        };
        assert_eq!(
            istio.cluster("shop/api:8080").unwrap(),
            "outbound|8080||api.shop.svc.cluster.local"
        );
        assert!(istio.cluster("api:8080").is_err());
        assert!(istio.cluster("shop/api").is_err());
        assert_eq!(
            ClusterNaming::Standalone.cluster("shop/api:8080").unwrap(),
            "shop/api:8080"
        );
    }

    #[test]
    fn parse_minimal_and_errors() {
        let ok = br#"{"table": {"role": "gateway/default/web", "routes": []}}"#;
        let config = PluginConfig::parse(ok).unwrap();
        assert_eq!(config.mirror_slots, 2);
        assert_eq!(config.cluster_naming, ClusterNaming::Standalone);
        assert!(
            !config.table.version.is_empty(),
            "version filled in on load"
        );

        let unknown = br#"{"table": {"role": "gateway/default/web", "routes": []}, "tabel": 1}"#;
        let err = PluginConfig::parse(unknown).unwrap_err().to_string();
        assert!(err.contains("tabel"), "{err}");

        let zero =
            br#"{"table": {"role": "gateway/default/web", "routes": []}, "listenerPort": 0}"#;
        assert!(matches!(
            PluginConfig::parse(zero),
            Err(ConfigError::ListenerPort)
        ));
        assert!(matches!(
            PluginConfig::parse(b"not json"),
            Err(ConfigError::Json(_))
        ));
    }
}
