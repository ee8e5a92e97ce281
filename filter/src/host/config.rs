//! The plugin configuration: the JSON object Envoy passes to `on_configure`
//! (`PluginConfig.configuration`, or Istio's `WasmPlugin.pluginConfig`).
//!
//! ```json
//! {
//!   "table": { "role": "gateway/default/web", "listeners": [...], "routes": [...] },
//!   "source": { "cluster": "config-pusher", "authority": "config-pusher:18000",
//!               "role": "gateway/default/web" },
//!   "clusterNaming": "standalone",
//!   "listenerPort": 80,                     // or "listenerPorts": {"18080": 80, "18443": 443}
//!   "mirrorSlots": 2
//! }
//! ```
//!
//! At least one of `table` (inline) and `source` (fetched from config-pusher, docs/architecture.md
//! "Distribution") is required. With both, the inline table serves until the first fetched one
//! arrives. With `source` alone, a gateway answers 503 until then (fail closed: it has nothing
//! else to route with) and a mesh sidecar leaves every request to default Service routing
//! ([`Passthrough`]): GAMMA routes apply to the calls they match and to nothing else (GEP-1294).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::Deserialize;
use thiserror::Error;

use crate::router::Router;
use crate::table::{self, wire, BackendTarget, Filter, RouteTable, TableError};

/// Parsed plugin configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PluginConfig {
    /// The route table, inline (its JSON form). Converted and validated whole on load
    /// ([`PluginConfig::compile`]).
    #[serde(default)]
    pub table: Option<wire::RouteTable>,
    /// Where to fetch tables from (config-pusher through an Envoy cluster).
    #[serde(default)]
    pub source: Option<SourceConfig>,
    /// How the table's backend names (`<namespace>/<service>:<port>`) become Envoy cluster names.
    #[serde(default)]
    pub cluster_naming: ClusterNaming,
    /// The Gateway listener port this Envoy listener serves. When absent, the connection's
    /// destination port is read from the host (one property read per request). Mesh tables
    /// always use the destination address.
    #[serde(default)]
    pub listener_port: Option<u16>,
    /// The Gateway listener port each port Envoy binds stands for (`"<bound>": <gateway port>`),
    /// when Envoy listens on other ports than the Gateway's `spec.listeners[].port` (`render
    /// --listen 8080=127.0.0.1:18080,8443=127.0.0.1:18443`). The destination port is read per
    /// request and mapped; a port not listed is taken as is.
    #[serde(default)]
    pub listener_ports: BTreeMap<u16, u16>,
    /// How many `x-gamma-mirror-N` request-mirror policies the Envoy route has (`N` = 0..slots).
    /// Mirrors beyond the slots are not sent, and counted.
    #[serde(default = "default_mirror_slots")]
    pub mirror_slots: u8,
    /// Mesh only: the cluster for destinations that are not a routed Service (typically an
    /// `ORIGINAL_DST` cluster). Without it such requests are left to Envoy's route unchanged.
    #[serde(default)]
    pub passthrough_cluster: Option<String>,
    /// Mesh only: the Service frontends (`"<ClusterIP>:<port>"`) this sidecar listens on, each with
    /// the Envoy cluster of that Service port's own endpoints. A request to a frontend that no
    /// route applies to (no table yet, an unrouted Service or port) goes there unchanged, as
    /// without gammaroute; it takes precedence over `passthroughCluster`.
    #[serde(default)]
    pub frontends: BTreeMap<SocketAddr, String>,
    /// Count requests per route, rule and backend (`gammaroute_requests_total`). One Envoy stat per
    /// forwarded-to (rule, backend) per worker, and one host call per request: large tables can
    /// turn it off and keep the totals Envoy counts anyway.
    #[serde(default = "default_true")]
    pub rule_stats: bool,
}

fn default_mirror_slots() -> u8 {
    2
}

fn default_true() -> bool {
    true
}

/// `source`: fetch the table from config-pusher's `GET /v1/tables/{role}` (long-poll, ETag).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SourceConfig {
    /// The Envoy cluster that reaches config-pusher.
    pub cluster: String,
    /// `:authority` of the fetch requests (config-pusher does not look at it; proxies in between may).
    #[serde(default = "default_authority")]
    pub authority: String,
    /// The proxy role whose table to fetch: `gateway/<ns>/<name>` or `mesh/<client-namespace>`.
    pub role: String,
    /// Bearer token config-pusher requires (`serve --token-file`), if any.
    #[serde(default)]
    pub token: Option<String>,
    /// How long config-pusher may hold a fetch open waiting for a new version; 0 = plain polling
    /// every `pollIntervalMs`.
    #[serde(default = "default_long_poll_seconds")]
    pub long_poll_seconds: u32,
    /// Plain polling interval (only with `longPollSeconds: 0`).
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u32,
    /// How often every VM checks shared data for a table another VM fetched (and renews or
    /// takes over the fetcher lease).
    #[serde(default = "default_tick_ms")]
    pub tick_ms: u32,
    /// A fetched table larger than this is rejected whole.
    #[serde(default = "default_max_table_bytes")]
    pub max_table_bytes: u32,
    /// Sent as `x-gammaroute-proxy` so config-pusher's `/v1/proxies` can tell proxies apart;
    /// defaults to Envoy's `node.id`.
    #[serde(default)]
    pub proxy_id: Option<String>,
    /// Wake the other VMs through shared queues when a table is fetched (`host::wakeup`);
    /// `false` leaves them to their tick (the baseline `make bench-propagation` measures).
    #[serde(default = "default_true")]
    pub push_updates: bool,
}

fn default_authority() -> String {
    "config-pusher".to_string()
}
fn default_long_poll_seconds() -> u32 {
    30
}
fn default_poll_interval_ms() -> u32 {
    1000
}
fn default_tick_ms() -> u32 {
    250
}
fn default_max_table_bytes() -> u32 {
    64 << 20
}

/// Cluster naming schemes (docs/architecture.md "The Envoy contract").
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
    #[error("plugin configuration: listenerPorts: ports must be 1-65535, and listenerPort must not be set too")]
    ListenerPorts,
    #[error("plugin configuration: needs \"table\" (inline), \"source\" (fetched), or both")]
    NoTable,
    #[error("plugin configuration: source.{field}: {message}")]
    Source {
        field: &'static str,
        message: &'static str,
    },
    #[error("route table role {table:?} is not the configured source.role {configured:?}")]
    Role { table: String, configured: String },
    #[error("plugin configuration: {field}: cluster {cluster:?} is not a printable header value")]
    PassthroughCluster { field: String, cluster: String },
}

/// Where a mesh sidecar sends a request that no route applies to: the frontend's own Service
/// cluster (`frontends`), else `passthroughCluster`, else nowhere (the header stays unset and
/// the host's own routing decides). GEP-1294: a mesh route binds the Service frontend it names;
/// other traffic keeps default Service routing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Passthrough {
    pub cluster: Option<String>,
    pub frontends: BTreeMap<SocketAddr, String>,
}

impl Passthrough {
    /// The cluster for a request to `destination` (`None`: unknown destination).
    pub fn cluster_for(&self, destination: Option<SocketAddr>) -> Option<&str> {
        destination
            .and_then(|d| self.frontends.get(&d))
            .or(self.cluster.as_ref())
            .map(String::as_str)
    }
}

impl PluginConfig {
    /// Parses a configuration and checks its fields. The inline table is compiled separately
    /// ([`PluginConfig::compile`]), the same way a fetched table is.
    pub fn parse(bytes: &[u8]) -> Result<PluginConfig, ConfigError> {
        let config: PluginConfig = serde_json::from_slice(bytes)?;
        if config.listener_port == Some(0) {
            return Err(ConfigError::ListenerPort);
        }
        let zero = config
            .listener_ports
            .iter()
            .any(|(b, g)| *b == 0 || *g == 0);
        if zero || (config.listener_port.is_some() && !config.listener_ports.is_empty()) {
            return Err(ConfigError::ListenerPorts);
        }
        if let Some(source) = &config.source {
            source.check()?;
        } else if config.table.is_none() {
            return Err(ConfigError::NoTable);
        }
        // They become `x-gamma-cluster` values.
        let named = config
            .passthrough_cluster
            .iter()
            .map(|c| ("passthroughCluster".to_string(), c))
            .chain(
                config
                    .frontends
                    .iter()
                    .map(|(a, c)| (format!("frontends[{a:?}]"), c)),
            );
        for (field, cluster) in named {
            if cluster.is_empty() || !cluster.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(ConfigError::PassthroughCluster {
                    field,
                    cluster: cluster.clone(),
                });
            }
        }
        Ok(config)
    }

    /// True for a `mesh/<namespace>` role: without a table such a sidecar is transparent.
    pub fn is_mesh(&self) -> bool {
        self.role().starts_with("mesh/")
    }

    /// `passthroughCluster` and `frontends`.
    pub fn passthrough(&self) -> Passthrough {
        Passthrough {
            cluster: self.passthrough_cluster.clone(),
            frontends: self.frontends.clone(),
        }
    }

    /// The role this configuration serves: the source's, else the inline table's.
    pub fn role(&self) -> &str {
        match (&self.source, &self.table) {
            (Some(source), _) => &source.role,
            (None, Some(table)) => &table.role,
            (None, None) => "",
        }
    }

    /// Turns a table — inline, fetched, or read from shared data — into a router for this host:
    /// checks its version ([`table::versioned`]) and role, renames its clusters
    /// ([`ClusterNaming`]), checks it whole ([`table::ValidTable`]: accepted or refused whole) and
    /// compiles it. Callers pass the decoded document ([`table::parse_proto`]), so a table is
    /// hashed, checked and compiled once per load.
    pub fn compile(&self, table: wire::RouteTable) -> Result<Router, ConfigError> {
        let mut table = table::versioned(table)?;
        if let Some(source) = &self.source {
            if table.role != source.role {
                return Err(ConfigError::Role {
                    table: table.role,
                    configured: source.role.clone(),
                });
            }
        }
        self.cluster_naming.rename(&mut table)?;
        Ok(Router::compile(table)?)
    }
}

impl SourceConfig {
    fn check(&self) -> Result<(), ConfigError> {
        let fail = |field, message| Err(ConfigError::Source { field, message });
        if self.cluster.is_empty() {
            return fail("cluster", "must name the Envoy cluster of config-pusher");
        }
        if !(self.role.starts_with("gateway/") || self.role.starts_with("mesh/")) {
            return fail("role", "must be gateway/<ns>/<name> or mesh/<namespace>");
        }
        if !self
            .role
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#')
        {
            return fail("role", "must be a plain path (no spaces, '?' or '#')");
        }
        if self.long_poll_seconds > 300 {
            return fail("longPollSeconds", "must be at most 300");
        }
        if self.tick_ms == 0 || (self.long_poll_seconds == 0 && self.poll_interval_ms == 0) {
            return fail("tickMs", "tickMs and pollIntervalMs must be positive");
        }
        let header_safe = |s: &str| s.bytes().all(|b| b == b' ' || b.is_ascii_graphic());
        if !header_safe(&self.authority)
            || !self.token.as_deref().is_none_or(header_safe)
            || !self.proxy_id.as_deref().is_none_or(header_safe)
        {
            return fail(
                "authority",
                "authority, token and proxyId must be printable ASCII",
            );
        }
        Ok(())
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
    fn passthrough_prefers_the_frontend_own_service() {
        let config = PluginConfig::parse(
            br#"{"source": {"cluster": "cp", "role": "mesh/shop"},
                 "passthroughCluster": "original-dst",
                 "frontends": {"10.0.0.1:80": "shop/a:80", "[fd00::1]:8080": "shop/a:8080"}}"#,
        )
        .unwrap();
        assert!(config.is_mesh());
        let p = config.passthrough();
        let at = |s: &str| Some(s.parse::<SocketAddr>().unwrap());
        assert_eq!(p.cluster_for(at("10.0.0.1:80")), Some("shop/a:80"));
        assert_eq!(p.cluster_for(at("[fd00::1]:8080")), Some("shop/a:8080"));
        assert_eq!(p.cluster_for(at("10.0.0.1:81")), Some("original-dst"));
        assert_eq!(p.cluster_for(None), Some("original-dst"));
        assert_eq!(Passthrough::default().cluster_for(at("10.0.0.1:80")), None);

        for bad in [
            r#"{"frontends": {"10.0.0.1": "shop/a:80"}}"#,
            r#"{"frontends": {"10.0.0.1:80": "shop/a\n:80"}}"#,
            r#"{"frontends": {"10.0.0.1:80": ""}}"#,
            r#"{"passthroughCluster": "a b"}"#,
        ] {
            let mut json: serde_json::Value = serde_json::from_str(bad).unwrap();
            json["source"] = serde_json::json!({"cluster": "cp", "role": "mesh/shop"});
            let e = PluginConfig::parse(json.to_string().as_bytes());
            assert!(e.is_err(), "{bad}");
        }
        let gateway = br#"{"source": {"cluster": "cp", "role": "gateway/ns/gw"}}"#;
        assert!(!PluginConfig::parse(gateway).unwrap().is_mesh());
    }

    #[test]
    fn parse_minimal_and_errors() {
        let ok = br#"{"table": {"role": "gateway/default/web", "routes": []}}"#;
        let config = PluginConfig::parse(ok).unwrap();
        assert_eq!(config.mirror_slots, 2);
        assert_eq!(config.cluster_naming, ClusterNaming::Standalone);
        let router = config.compile(config.table.clone().unwrap()).unwrap();
        assert!(!router.version().is_empty(), "version filled in on load");

        let unknown = br#"{"table": {"role": "gateway/default/web", "routes": []}, "tabel": 1}"#;
        let err = PluginConfig::parse(unknown).unwrap_err().to_string();
        assert!(err.contains("tabel"), "{err}");

        let zero =
            br#"{"table": {"role": "gateway/default/web", "routes": []}, "listenerPort": 0}"#;
        assert!(matches!(
            PluginConfig::parse(zero),
            Err(ConfigError::ListenerPort)
        ));
        let ports = br#"{"table": {"role": "gateway/default/web", "routes": []}, "listenerPorts": {"18080": 80, "18443": 443}}"#;
        let config = PluginConfig::parse(ports).unwrap();
        assert_eq!(
            config.listener_ports,
            BTreeMap::from([(18080, 80), (18443, 443)])
        );
        for bad in [
            r#""listenerPorts": {"0": 80}"#,
            r#""listenerPorts": {"18080": 0}"#,
            r#""listenerPorts": {"18080": 80}, "listenerPort": 80"#,
        ] {
            let json =
                format!(r#"{{"table": {{"role": "gateway/default/web", "routes": []}}, {bad}}}"#);
            assert!(
                matches!(
                    PluginConfig::parse(json.as_bytes()),
                    Err(ConfigError::ListenerPorts)
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            PluginConfig::parse(b"not json"),
            Err(ConfigError::Json(_))
        ));
        assert!(matches!(
            PluginConfig::parse(b"{}"),
            Err(ConfigError::NoTable)
        ));
    }

    #[test]
    fn source_defaults_checks_and_role() {
        let json = br#"{"source": {"cluster": "cp", "role": "mesh/shop"}}"#;
        let config = PluginConfig::parse(json).unwrap();
        let source = config.source.clone().unwrap();
        assert_eq!(source.long_poll_seconds, 30);
        assert_eq!(source.tick_ms, 250);
        assert_eq!(source.authority, "config-pusher");
        assert_eq!(config.role(), "mesh/shop");

        let wrong_role = wire::RouteTable {
            role: "mesh/other".into(),
            ..wire::RouteTable::default()
        };
        let err = config.compile(wrong_role).unwrap_err().to_string();
        assert!(
            err.contains("mesh/other") && err.contains("mesh/shop"),
            "{err}"
        );

        for (bad, field) in [
            (
                r#"{"source": {"cluster": "", "role": "mesh/a"}}"#,
                "cluster",
            ),
            (r#"{"source": {"cluster": "c", "role": "shop"}}"#, "role"),
            (
                r#"{"source": {"cluster": "c", "role": "mesh/a?x"}}"#,
                "role",
            ),
            (
                r#"{"source": {"cluster": "c", "role": "mesh/a", "tickMs": 0}}"#,
                "tickMs",
            ),
            (
                r#"{"source": {"cluster": "c", "role": "mesh/a", "token": "a\nb"}}"#,
                "authority",
            ),
        ] {
            let err = PluginConfig::parse(bad.as_bytes()).unwrap_err().to_string();
            assert!(err.contains(&format!("source.{field}")), "{bad}: {err}");
        }
    }

    #[test]
    fn compile_refuses_a_tampered_version() {
        let config =
            PluginConfig::parse(br#"{"source": {"cluster": "c", "role": "mesh/a"}}"#).unwrap();
        let table = wire::RouteTable {
            role: "mesh/a".into(),
            version: "0123".into(),
            ..wire::RouteTable::default()
        };
        let err = config.compile(table).unwrap_err().to_string();
        assert!(err.contains("version"), "{err}");
    }
}
