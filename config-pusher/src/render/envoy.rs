//! Envoy bootstraps from `envoy-configs/bootstrap.yaml`: the one implementation of filling its
//! `{{SLOT}}`s (the end-to-end tests in `host-tests` use it too), and the standalone bootstraps
//! `render` writes per Gateway and per mesh client namespace.
//!
//! **Listen addresses.** A Gateway's bootstrap binds every listener port of the table on the
//! Gateway's `spec.addresses` (type `IPAddress`, or no type), else on `0.0.0.0`. `--listen`
//! replaces them: `IP`, `IP:PORT` (one listener port) or a port map `GWPORT=IP:PORT,…`
//! ([`super::listen`]), and the filter is told which Gateway port each bound port stands for
//! (`listenerPort`, `listenerPorts`). HTTPS listeners are bound with TLS filter chains and SDS certificates
//! ([`super::tls`]) when an SDS directory is given, else left out (never served in plaintext).
//! A mesh bootstrap (per client namespace, with or without routes) binds every Service frontend
//! (ClusterIP:port of every TCP port) of the cluster, the sidecar of `envoy-configs/` without
//! iptables, and tells the filter each frontend's own cluster (`frontends`): a destination no
//! route applies to goes there unchanged, as in a mesh without gammaroute (GEP-1294: routes bind
//! only the Service ports they name). Headless and ExternalName Services have no frontend to
//! bind: clients reach their pods or external names directly, past the sidecar.
//!
//! **Clusters**, one per cluster name the table uses (backends and mirrors), in this order of
//! preference: a `--backend NS/SVC:PORT=ADDR:PORT` override (STATIC); the ready endpoints of the
//! Service's EndpointSlices for that port (STATIC, the slice's port number); otherwise STRICT_DNS
//! on `<svc>.<ns>.svc.<cluster-domain>:<port>` — what a folder without EndpointSlices gets, and
//! correct inside a cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use gammaroute_filter::host::envoy::BACKOFF_HEADER;
use gammaroute_filter::table::{wire, BackendTarget, Filter, RouteTable, Rule};
use serde::Serialize;

use crate::store::{ObjectKey, Store};
use crate::translate::backend::SERVICE_NAME_LABEL;
use crate::translate::mesh;

use super::error::RenderError;
pub use super::listen::Listen;
use super::pusher_tls::PusherTls;
use super::{listen, tls};

/// `envoy-configs/bootstrap.yaml`, built in.
pub const BOOTSTRAP_TEMPLATE: &str = include_str!("../../../envoy-configs/bootstrap.yaml");

/// Replaces every `{{NAME}}` in `template` with its value; an unfilled slot is an error.
///
/// One pass over the template: a value is never scanned for slots, so a `{{` in a field that ends
/// up in a value (a header match, a name) is copied as is and cannot fill, empty or break another
/// slot.
pub fn fill(template: &str, values: &BTreeMap<&str, String>) -> Result<String, RenderError> {
    // The TLS slots default to one plaintext chain, so callers without TLS need not know them;
    // the stats tags are the filter's own (one list, in `gammaroute_filter::metrics`).
    let mut defaults: BTreeMap<&str, String> =
        tls::slots(&tls::TlsPlan::default(), tls::SdsSource::Dir(""))
            .into_iter()
            .collect();
    defaults.insert("STATS_TAGS", gammaroute_filter::metrics::stats_tags_yaml());
    defaults.insert("BACKOFF_ROUTES", String::new());
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(at) = rest.find("{{") {
        out.push_str(&rest[..at]);
        let slot = &rest[at..];
        let value = slot[2..].find("}}").and_then(|end| {
            let name = &slot[2..2 + end];
            let value = values.get(name).or_else(|| defaults.get(name))?;
            Some((value, 2 + end + 2))
        });
        match value {
            Some((value, len)) => {
                out.push_str(value);
                rest = &slot[len..];
            }
            None => {
                return Err(RenderError::UnfilledSlot(
                    slot.lines().next().unwrap_or_default().to_string(),
                ))
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// A JSON document as a YAML scalar (JSON strings are valid YAML double-quoted scalars).
pub fn yaml_string(json: &str) -> String {
    serde_json::Value::String(json.to_string()).to_string()
}

/// `LISTEN_ADDITIONAL`: a YAML flow list of `{address: {socket_address: ...}}`, `[]` when empty.
pub fn additional_addresses(addrs: &[SocketAddr]) -> String {
    let items: Vec<String> = addrs
        .iter()
        .map(|a| format!("{{address: {}}}", socket_address(a.ip(), a.port())))
        .collect();
    format!("[{}]", items.join(", "))
}

fn socket_address(host: impl std::fmt::Display, port: u16) -> String {
    format!(
        "{{socket_address: {{address: {}, port_value: {port}}}}}",
        yaml_string(&host.to_string())
    )
}

/// Every distinct `retry.backoff` of a table, in milliseconds.
pub fn backoffs(table: &RouteTable) -> BTreeSet<u64> {
    table
        .routes
        .iter()
        .flat_map(|r| &r.rules)
        .filter_map(|rule| rule.retry.as_ref()?.backoff_ms)
        .collect()
}

/// `BACKOFF_ROUTES`: per distinct `retry.backoff` of the table (GEP-1731), a copy of the
/// templates' catch-all route taken when the filter writes that back-off into
/// `x-gamma-backoff-ms`, with `retry_policy.retry_back_off.base_interval` = the back-off (Envoy's
/// jittered exponential back-off, capped at 10 × base; the filter's `x-envoy-*` headers still set
/// the attempts and conditions). Envoy has no request header for a back-off. A table with `n`
/// distinct back-offs has `n + 1` Envoy routes; a request without a back-off fails the first
/// header match of each and takes the catch-all.
pub fn backoff_routes(table: &RouteTable) -> String {
    let slots = ["x-gamma-mirror-0", "x-gamma-mirror-1"];
    let cleaned: Vec<String> = slots.iter().map(|s| format!("{{remove: {s}}}")).collect();
    let mirrors: Vec<String> = slots
        .iter()
        .map(|s| {
            format!(
                "{{cluster_header: {s}, request_headers_mutations: [{}]}}",
                cleaned.join(", ")
            )
        })
        .collect();
    backoffs(table)
        .into_iter()
        .map(|ms| {
            format!(
                "              - name: gammaroute-backoff-{ms}ms
                stat_prefix: gammaroute-backoff-{ms}ms
                match: {{prefix: \"/\", headers: [{{name: {BACKOFF_HEADER}, string_match: {{exact: \"{ms}\"}}}}]}}
                request_headers_to_remove: [x-gamma-cluster, {BACKOFF_HEADER}]
                route:
                  cluster_header: x-gamma-cluster
                  timeout: 0s
                  retry_policy: {{retry_back_off: {{base_interval: {}.{:03}s}}}}
                  request_mirror_policies: [{}]
",
                ms / 1000,
                ms % 1000,
                mirrors.join(", ")
            )
        })
        .collect()
}

/// Where a cluster's endpoints come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Endpoints {
    /// Fixed addresses (an override, or EndpointSlices): `type: STATIC`.
    Static(Vec<SocketAddr>),
    /// A DNS name resolved by Envoy: `type: STRICT_DNS`.
    Dns { host: String, port: u16 },
}

/// One Envoy cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cluster {
    pub name: String,
    pub endpoints: Endpoints,
    pub protocol: UpstreamProtocol,
    /// TLS to the upstream (only the config-pusher cluster has it: `render --pusher-ca`).
    #[serde(skip)]
    pub tls: Option<PusherTls>,
}

/// How Envoy speaks to a backend, from the Service port's `appProtocol` (Gateway API
/// `HTTPRouteBackendProtocolH2C`; Kubernetes' `kubernetes.io/h2c` is HTTP/2 over cleartext with
/// prior knowledge, RFC 9113 §3.3).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum UpstreamProtocol {
    /// HTTP/1.1 (also for `kubernetes.io/ws`: WebSocket is an HTTP/1.1 upgrade).
    #[default]
    Http1,
    /// `appProtocol: kubernetes.io/h2c` (or `h2c`): cleartext HTTP/2, prior knowledge.
    H2c,
}

impl UpstreamProtocol {
    /// The protocol for a Service port's `appProtocol` (case-insensitive; absent or anything
    /// else is HTTP/1.1 — translate refuses values it cannot forward).
    pub fn from_app_protocol(app: Option<&str>) -> UpstreamProtocol {
        match app {
            Some(a)
                if a.eq_ignore_ascii_case("kubernetes.io/h2c") || a.eq_ignore_ascii_case("h2c") =>
            {
                UpstreamProtocol::H2c
            }
            _ => UpstreamProtocol::Http1,
        }
    }
}

/// `CLUSTERS`: the clusters as the YAML list the templates expect (`[]` when there are none).
pub fn clusters_yaml(clusters: &[Cluster]) -> String {
    if clusters.is_empty() {
        return "  []\n".to_string();
    }
    clusters
        .iter()
        .map(|c| cluster_entry(c, "  ", None))
        .collect()
}

/// The `@type` of a cluster in an xDS resource list.
pub const CLUSTER_TYPE_URL: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";

/// An Envoy filesystem CDS file (`path_config_source`): a `DiscoveryResponse` with the clusters
/// as resources, rendered like the bootstrap's static clusters.
pub fn cds_yaml(clusters: &[Cluster]) -> String {
    if clusters.is_empty() {
        return "resources: []\n".to_string();
    }
    let mut out = "resources:\n".to_string();
    for c in clusters {
        out.push_str(&cluster_entry(c, "", Some(CLUSTER_TYPE_URL)));
    }
    out
}

/// One cluster as a YAML list item at `indent`, with an `@type` first when given.
fn cluster_entry(c: &Cluster, indent: &str, type_url: Option<&str>) -> String {
    let (kind, eps) = match &c.endpoints {
        Endpoints::Static(addrs) => (
            "STATIC",
            addrs
                .iter()
                .map(|a| {
                    format!(
                        "{{endpoint: {{address: {}}}}}",
                        socket_address(a.ip(), a.port())
                    )
                })
                .collect::<Vec<_>>(),
        ),
        Endpoints::Dns { host, port } => (
            "STRICT_DNS",
            vec![format!(
                "{{endpoint: {{address: {}}}}}",
                socket_address(host, *port)
            )],
        ),
    };
    let name = yaml_string(&c.name);
    let head = match type_url {
        Some(t) => format!("\"@type\": {t}\n{indent}  name: {name}"),
        None => format!("name: {name}"),
    };
    let protocol = match c.protocol {
        UpstreamProtocol::Http1 => String::new(),
        UpstreamProtocol::H2c => format!(
            "{indent}  typed_extension_protocol_options:\n{indent}    envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n{indent}      \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n{indent}      explicit_http_config: {{http2_protocol_options: {{}}}}\n"
        ),
    };
    let tls = c
        .tls
        .as_ref()
        .map(|t| t.transport_socket(indent))
        .unwrap_or_default();
    format!(
        "{indent}- {head}\n{indent}  type: {kind}\n{indent}  connect_timeout: 1s\n{protocol}{tls}{indent}  load_assignment:\n{indent}    cluster_name: {name}\n{indent}    endpoints: [{{lb_endpoints: [{}]}}]\n",
        eps.join(", ")
    )
}

/// `DYNAMIC_RESOURCES`: Envoy reads its clusters from `<dir>/cds.yaml` and reloads it when a new
/// file is moved into `dir` (what `serve --xds-dir` does); empty without `dir`. Envoy requires a
/// node id and cluster for any xDS subscription, so the block sets `node` too.
pub fn dynamic_resources(cds_dir: Option<&str>) -> String {
    let Some(dir) = cds_dir else {
        return String::new();
    };
    let dir = dir.trim_end_matches('/');
    format!(
        "node: {{id: gammaroute, cluster: gammaroute}}\ndynamic_resources:\n  cds_config:\n    resource_api_version: V3\n    path_config_source:\n      path: {}\n      watched_directory: {{path: {}}}\n",
        yaml_string(&format!("{dir}/cds.yaml")),
        yaml_string(dir)
    )
}

/// The Envoy cluster of the ADS server (`render --xds-server`).
pub const XDS_CLUSTER: &str = "gammaroute-xds";

/// The bootstrap's way to `serve --xds-listen`: gRPC needs HTTP/2 (cleartext, prior knowledge).
pub fn xds_cluster(ads: &Pusher) -> Cluster {
    Cluster {
        name: XDS_CLUSTER.to_string(),
        endpoints: ads.endpoints(),
        protocol: UpstreamProtocol::H2c,
        tls: None,
    }
}

/// `DYNAMIC_RESOURCES` for ADS: the node names its role in `node.cluster` (the ADS server serves
/// that role's resources; a role token must be that role's), one gRPC stream to [`XDS_CLUSTER`]
/// with the bearer token as `authorization` metadata, and CDS over it. Listeners stay static
/// (a Gateway's listener set changes the bootstrap, which rolls the proxies).
pub fn ads_dynamic_resources(role: &str, ads: &Pusher) -> String {
    let metadata = match &ads.token {
        Some(t) => format!(
            "\n      initial_metadata: [{{key: authorization, value: {}}}]",
            yaml_string(&format!("Bearer {t}"))
        ),
        None => String::new(),
    };
    format!(
        "node: {{id: gammaroute, cluster: {}}}\ndynamic_resources:\n  ads_config:\n    api_type: GRPC\n    transport_api_version: V3\n    set_node_on_first_message_only: true\n    grpc_services:\n    - envoy_grpc: {{cluster_name: {XDS_CLUSTER}}}{metadata}\n  cds_config: {{ads: {{}}, resource_api_version: V3}}\n",
        yaml_string(role)
    )
}

/// STATIC clusters, one per (name, endpoints), in the YAML list form the templates expect.
pub fn static_clusters(clusters: &[(&str, Vec<SocketAddr>)]) -> String {
    let list: Vec<Cluster> = clusters
        .iter()
        .map(|(name, addrs)| Cluster {
            name: (*name).to_string(),
            endpoints: Endpoints::Static(addrs.clone()),
            protocol: UpstreamProtocol::Http1,
            tls: None,
        })
        .collect();
    clusters_yaml(&list)
}

/// How bootstraps are rendered (the `render` flags).
#[derive(Debug, Clone)]
pub struct BootstrapOptions {
    /// `WASM_PATH`: the filter module Envoy loads.
    pub wasm: String,
    /// `--listen` for gateways ([`super::listen`]).
    pub listen: Option<Listen>,
    /// `--backend NS/SVC:PORT=ADDR:PORT` overrides, by cluster name.
    pub backends: BTreeMap<String, Vec<SocketAddr>>,
    /// Kubernetes cluster domain for STRICT_DNS names.
    pub cluster_domain: String,
    /// Envoy's admin interface (port 0: any free port).
    pub admin: SocketAddr,
    /// `--pusher`: the filter fetches newer tables from `config-pusher serve` here.
    pub pusher: Option<Pusher>,
    /// Clusters from `<dir>/cds.yaml` (written by `serve --xds-dir`) instead of static ones.
    pub cds_dir: Option<String>,
    /// Absolute directory of the SDS files with listener certificates ([`super::tls`]); `None`:
    /// HTTPS listeners are not bound (unless `ads` delivers the certificates).
    pub sds_dir: Option<String>,
    /// `--xds-server`: clusters, endpoints and certificates come over ADS from
    /// `config-pusher serve --xds-listen` here (with its bearer token), not from files.
    pub ads: Option<Pusher>,
}

/// Where a proxy fetches its table (`config-pusher serve`), and with which bearer token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pusher {
    /// An IP address, or a DNS name Envoy resolves (`config-pusher:18000` in docker-compose).
    pub host: String,
    pub port: u16,
    pub token: Option<String>,
    /// `--pusher-ca`: reach it over TLS, verifying its name.
    pub tls: Option<PusherTls>,
}

/// A command-line value of `render` that does not parse (`--pusher`, `--backend`; `--listen`:
/// [`super::listen::ListenError`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlagError {
    #[error("`{0}`: the port must be 1-65535")]
    Port(String),
    #[error("`{0}` is not HOST:PORT")]
    NotHostPort(String),
    #[error("`{0}`: expected NS/SVC:PORT=ADDR:PORT")]
    BackendSyntax(String),
    #[error("`{0}`: expected NS/SVC:PORT")]
    BackendName(String),
    #[error("`{0}` is not ADDR:PORT")]
    BackendAddress(String),
}

impl Pusher {
    /// Parses `HOST:PORT` (`[v6]:PORT` for IPv6).
    pub fn parse(s: &str) -> Result<Pusher, FlagError> {
        if let Ok(addr) = s.parse::<SocketAddr>() {
            return Ok(Pusher {
                host: addr.ip().to_string(),
                port: addr.port(),
                token: None,
                tls: None,
            });
        }
        match s.rsplit_once(':') {
            Some((host, port))
                if !host.is_empty()
                    && host
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.') =>
            {
                let port = port
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| FlagError::Port(s.to_string()))?;
                Ok(Pusher {
                    host: host.to_string(),
                    port,
                    token: None,
                    tls: None,
                })
            }
            _ => Err(FlagError::NotHostPort(s.to_string())),
        }
    }

    pub fn endpoints(&self) -> Endpoints {
        match self.host.parse::<IpAddr>() {
            Ok(ip) => Endpoints::Static(vec![SocketAddr::new(ip, self.port)]),
            Err(_) => Endpoints::Dns {
                host: self.host.clone(),
                port: self.port,
            },
        }
    }

    fn authority(&self) -> String {
        match self.host.parse::<IpAddr>() {
            Ok(IpAddr::V6(ip)) => format!("[{ip}]:{}", self.port),
            _ => format!("{}:{}", self.host, self.port),
        }
    }
}

/// The Envoy cluster rendered for [`Pusher`].
pub const PUSHER_CLUSTER: &str = "gammaroute-config-pusher";

impl Default for BootstrapOptions {
    fn default() -> Self {
        BootstrapOptions {
            wasm: "target/wasm32-wasip1/release/gammaroute_filter.wasm".into(),
            listen: None,
            backends: BTreeMap::new(),
            cluster_domain: "cluster.local".into(),
            admin: SocketAddr::from(([127, 0, 0, 1], 0)),
            pusher: None,
            cds_dir: None,
            sds_dir: None,
            ads: None,
        }
    }
}

/// Parses one `--backend NS/SVC:PORT=ADDR:PORT[,ADDR:PORT...]`.
pub fn parse_backend(s: &str) -> Result<(String, Vec<SocketAddr>), FlagError> {
    let (name, addrs) = s
        .split_once('=')
        .ok_or_else(|| FlagError::BackendSyntax(s.to_string()))?;
    if parse_cluster_name(name).is_none() {
        return Err(FlagError::BackendName(name.to_string()));
    }
    let addrs = addrs
        .split(',')
        .map(|a| {
            a.trim()
                .parse::<SocketAddr>()
                .map_err(|_| FlagError::BackendAddress(a.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((name.to_string(), addrs))
}

/// `ns/svc:port` → its parts.
fn parse_cluster_name(name: &str) -> Option<(&str, &str, u16)> {
    let (ns, rest) = name.split_once('/')?;
    let (svc, port) = rest.rsplit_once(':')?;
    Some((ns, svc, port.parse().ok()?)).filter(|_| !ns.is_empty() && !svc.is_empty())
}

/// A rendered bootstrap.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    /// The table's role.
    pub role: String,
    /// Every address the listener binds.
    pub listen: Vec<SocketAddr>,
    /// `listenerPort` in the plugin configuration, when set.
    pub listener_port: Option<u16>,
    pub clusters: Vec<Cluster>,
    /// The filled template.
    pub yaml: String,
    /// Things the reader should know (e.g. HTTPS listeners left out).
    pub notes: Vec<String>,
    /// The SDS files the bootstrap's TLS chains read (written into [`BootstrapOptions::sds_dir`]).
    pub sds: Vec<tls::SdsFile>,
}

/// What [`bootstrap`] made of a table.
#[derive(Debug, Clone)]
pub enum Rendered {
    Bootstrap(Box<Bootstrap>),
    /// The role has nothing to bind (a mesh namespace without routed Services, a Gateway with
    /// only HTTPS listeners).
    Skipped(String),
}

/// The bootstrap for one table. `Err` for flags that cannot apply to it.
pub fn bootstrap(
    store: &Store,
    table: &RouteTable,
    options: &BootstrapOptions,
) -> Result<Rendered, RenderError> {
    bootstrap_with(store, table, options, InlineTable::Yes)
}

/// Whether the bootstrap carries the table itself as the start-up table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InlineTable {
    Yes,
    /// Only `source` (needs [`BootstrapOptions::pusher`]): the bootstrap stays the same while the
    /// routes change, so a proxy provisioned from it is not restarted for a route edit.
    No,
}

/// [`bootstrap`], with or without the inline table.
pub fn bootstrap_with(
    store: &Store,
    table: &RouteTable,
    options: &BootstrapOptions,
    inline: InlineTable,
) -> Result<Rendered, RenderError> {
    let mut notes = Vec::new();
    let mut plan = tls::TlsPlan::default();
    let mut listener_ports = BTreeMap::new();
    let (listen, listener_port) = if let Some(rest) = table.role.strip_prefix("gateway/") {
        let key = rest
            .split_once('/')
            .map(|(ns, name)| ObjectKey::new(ns, name))
            .ok_or_else(|| RenderError::NotGatewayRole {
                role: table.role.clone(),
            })?;
        // Over ADS the certificates need no directory.
        let sds_dir = match options.ads {
            Some(_) => Some(options.sds_dir.as_deref().unwrap_or_default()),
            None => options.sds_dir.as_deref(),
        };
        plan = tls::plan(store, &key, table, sds_dir);
        notes.extend(plan.notes.iter().cloned());
        if plan.ports.is_empty() {
            notes.push("no listener to bind".into());
            return Ok(Rendered::Skipped(notes.join("; ")));
        }
        let binding = listen::bind(
            options.listen.as_ref(),
            &declared_addresses(store, &key),
            &plan.ports,
        )
        .map_err(|source| RenderError::Listen {
            role: table.role.clone(),
            source,
        })?;
        // TLS chains match the port a connection arrives on: the bound one.
        for chain in &mut plan.chains {
            chain.port = chain.port.map(|p| binding.bound_port(p));
        }
        listener_ports = binding.listener_ports;
        (binding.addrs, binding.listener_port)
    } else {
        let addrs: Vec<SocketAddr> = frontends(store).into_keys().collect();
        if addrs.is_empty() {
            return Ok(Rendered::Skipped(
                "no Service with a ClusterIP, nothing to bind".into(),
            ));
        }
        (addrs, None)
    };
    let clusters = clusters(store, table, options);
    // Static whatever happens to CDS: the way to config-pusher itself.
    let mut fixed = Vec::new();
    let mut config = serde_json::Map::new();
    // With a pusher the inline table is the start-up table: Envoy routes at once, and keeps
    // routing if config-pusher is down when it starts; the first fetch replaces it.
    if inline == InlineTable::Yes || options.pusher.is_none() {
        config.insert(
            "table".into(),
            serde_json::to_value(wire::RouteTable::from(table)).map_err(|source| {
                RenderError::Json {
                    what: table.role.clone(),
                    source,
                }
            })?,
        );
    }
    if let Some(pusher) = &options.pusher {
        let mut source = serde_json::json!({
            "cluster": PUSHER_CLUSTER,
            "authority": pusher.authority(),
            "role": table.role,
        });
        if let Some(token) = &pusher.token {
            source["token"] = token.clone().into();
        }
        config.insert("source".into(), source);
        fixed.push(Cluster {
            name: PUSHER_CLUSTER.to_string(),
            endpoints: pusher.endpoints(),
            protocol: UpstreamProtocol::Http1,
            tls: pusher.tls.clone(),
        });
    }
    if let Some(ads) = &options.ads {
        fixed.push(xds_cluster(ads));
    }
    if let Some(p) = listener_port {
        config.insert("listenerPort".into(), p.into());
    }
    if !listener_ports.is_empty() {
        let map: serde_json::Map<String, serde_json::Value> = listener_ports
            .iter()
            .map(|(bound, port)| (bound.to_string(), (*port).into()))
            .collect();
        config.insert("listenerPorts".into(), map.into());
    }
    if table.role.starts_with("mesh/") {
        let map: serde_json::Map<String, serde_json::Value> = frontends(store)
            .into_iter()
            .map(|(addr, cluster)| (addr.to_string(), cluster.into()))
            .collect();
        config.insert("frontends".into(), map.into());
    }
    let (first, additional) = listen
        .split_first()
        .ok_or_else(|| RenderError::NoListenAddress {
            role: table.role.clone(),
        })?;
    let mut values = BTreeMap::from([
        ("ADMIN_ADDRESS", options.admin.ip().to_string()),
        ("ADMIN_PORT", options.admin.port().to_string()),
        ("LISTEN_ADDRESS", first.ip().to_string()),
        ("LISTEN_PORT", first.port().to_string()),
        ("LISTEN_ADDITIONAL", additional_addresses(additional)),
        ("WASM_PATH", options.wasm.clone()),
        ("BACKOFF_ROUTES", backoff_routes(table)),
        (
            "PLUGIN_CONFIG",
            yaml_string(&serde_json::Value::Object(config).to_string()),
        ),
        (
            "CLUSTERS",
            match (&options.ads, &options.cds_dir) {
                (Some(_), _) | (None, Some(_)) => clusters_yaml(&fixed),
                (None, None) => clusters_yaml(&[clusters.clone(), fixed].concat()),
            },
        ),
        (
            "DYNAMIC_RESOURCES",
            match (&options.ads, &options.cds_dir) {
                (Some(ads), _) => ads_dynamic_resources(&table.role, ads),
                // Filesystem SDS needs a node identity too (dynamic_resources sets one).
                (None, None) if plan.has_tls() => {
                    "node: {id: gammaroute, cluster: gammaroute}\n".into()
                }
                (None, _) => dynamic_resources(options.cds_dir.as_deref()),
            },
        ),
    ]);
    let sds_source = match options.ads {
        Some(_) => tls::SdsSource::Ads,
        None => tls::SdsSource::Dir(options.sds_dir.as_deref().unwrap_or_default()),
    };
    values.extend(tls::slots(&plan, sds_source));
    let yaml = fill(BOOTSTRAP_TEMPLATE, &values)?;
    Ok(Rendered::Bootstrap(Box::new(Bootstrap {
        role: table.role.clone(),
        listen,
        listener_port,
        clusters,
        yaml,
        notes,
        // Over ADS the certificates never touch the disk.
        sds: match options.ads {
            Some(_) => Vec::new(),
            None => plan.sds,
        },
    })))
}

/// The Gateway's `spec.addresses` of type `IPAddress` (or no type).
fn declared_addresses(store: &Store, key: &ObjectKey) -> Vec<IpAddr> {
    store
        .gateways
        .get(key)
        .and_then(|g| g.object.spec.addresses.as_ref())
        .into_iter()
        .flatten()
        .filter(|a| a.r#type.as_deref().is_none_or(|t| t == "IPAddress"))
        .filter_map(|a| a.value.as_deref()?.parse().ok())
        .collect()
}

/// Every cluster name the table forwards or mirrors to.
pub fn cluster_names(table: &RouteTable) -> BTreeSet<String> {
    fn mirrors(filters: &[Filter], out: &mut BTreeSet<String>) {
        for f in filters {
            if let Filter::RequestMirror(m) = f {
                out.insert(m.cluster.clone());
            }
        }
    }
    let mut out = BTreeSet::new();
    let rules = table.routes.iter().flat_map(|r| &r.rules);
    for rule in rules {
        let Rule {
            filters, backends, ..
        } = rule;
        mirrors(filters, &mut out);
        for b in backends {
            mirrors(&b.filters, &mut out);
            if let BackendTarget::Cluster(c) = &b.target {
                out.insert(c.clone());
            }
        }
    }
    out
}

/// Every Service frontend of the store — each ClusterIP with each TCP port — and the cluster of
/// that Service port (`<ns>/<svc>:<port>`): what a mesh sidecar binds, and where a request no
/// route applies to goes.
pub fn frontends(store: &Store) -> BTreeMap<SocketAddr, String> {
    let mut out = BTreeMap::new();
    for (key, svc) in &store.services {
        let spec = svc.object.spec.clone().unwrap_or_default();
        if spec.type_.as_deref() == Some("ExternalName") {
            continue;
        }
        let ips = mesh::cluster_ips(&svc.object);
        let ports = spec
            .ports
            .iter()
            .flatten()
            .filter(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
            .filter_map(|p| u16::try_from(p.port).ok().filter(|p| *p != 0));
        for port in ports {
            for ip in &ips {
                out.entry(SocketAddr::new(*ip, port))
                    .or_insert_with(|| format!("{}/{}:{port}", key.namespace, key.name));
            }
        }
    }
    out
}

/// The clusters of a table (see the module docs for where endpoints come from); for a mesh table
/// also every Service frontend's own cluster ([`frontends`]).
pub fn clusters(store: &Store, table: &RouteTable, options: &BootstrapOptions) -> Vec<Cluster> {
    let mut names = cluster_names(table);
    if table.role.starts_with("mesh/") {
        names.extend(frontends(store).into_values());
    }
    names
        .into_iter()
        .map(|name| {
            let protocol =
                parse_cluster_name(&name).map_or(UpstreamProtocol::Http1, |(ns, svc, port)| {
                    UpstreamProtocol::from_app_protocol(app_protocol(store, ns, svc, port))
                });
            let endpoints = if let Some(addrs) = options.backends.get(&name) {
                Endpoints::Static(addrs.clone())
            } else if let Some((ns, svc, port)) = parse_cluster_name(&name) {
                match slice_endpoints(store, ns, svc, port) {
                    Some(addrs) if !addrs.is_empty() => Endpoints::Static(addrs),
                    _ => Endpoints::Dns {
                        host: format!("{svc}.{ns}.svc.{}", options.cluster_domain),
                        port,
                    },
                }
            } else {
                // Not a name config-pusher writes; keep Envoy's configuration valid.
                Endpoints::Static(vec![])
            };
            Cluster {
                name,
                endpoints,
                protocol,
                tls: None,
            }
        })
        .collect()
}

/// Every cluster of `tables`, once per name, in name order (`serve`'s CDS: the clusters of the
/// tables being replaced and of their successors).
pub fn distinct_clusters<'a>(
    store: &Store,
    tables: impl IntoIterator<Item = &'a RouteTable>,
    options: &BootstrapOptions,
) -> Vec<Cluster> {
    let mut by_name = BTreeMap::new();
    for t in tables {
        for c in clusters(store, t, options) {
            by_name.entry(c.name.clone()).or_insert(c);
        }
    }
    by_name.into_values().collect()
}

/// The `appProtocol` of Service `ns/svc` port `port`, if it has one.
fn app_protocol<'s>(store: &'s Store, ns: &str, svc: &str, port: u16) -> Option<&'s str> {
    let service = store.services.get(&ObjectKey::new(ns, svc))?;
    service
        .object
        .spec
        .as_ref()?
        .ports
        .as_ref()?
        .iter()
        .find(|p| i32::from(port) == p.port)?
        .app_protocol
        .as_deref()
}

/// Ready endpoints of Service `ns/svc` port `port` from its EndpointSlices: `None` when it has
/// none. The port number is the slice's port of the Service port's name (its `targetPort` once
/// resolved), else the Service port.
fn slice_endpoints(store: &Store, ns: &str, svc: &str, port: u16) -> Option<Vec<SocketAddr>> {
    let service = store.services.get(&ObjectKey::new(ns, svc))?;
    let port_name = service
        .object
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .and_then(|ps| ps.iter().find(|p| i32::from(port) == p.port))
        .and_then(|p| p.name.clone())
        .unwrap_or_default();
    let mut found = None;
    for (key, s) in &store.endpoint_slices {
        let slice = &s.object;
        let owner = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL));
        if key.namespace != ns || owner.map(String::as_str) != Some(svc) {
            continue;
        }
        let addrs: &mut Vec<SocketAddr> = found.get_or_insert_with(Vec::new);
        let slice_port = match slice.ports.as_deref() {
            None | Some([]) => Some(port),
            Some(ps) => ps
                .iter()
                .find(|p| p.name.as_deref().unwrap_or("") == port_name)
                .and_then(|p| p.port)
                .and_then(|p| u16::try_from(p).ok()),
        };
        let Some(slice_port) = slice_port else {
            continue;
        };
        for e in &slice.endpoints {
            if e.conditions.as_ref().and_then(|c| c.ready) == Some(false) {
                continue;
            }
            for a in &e.addresses {
                if let Ok(ip) = a.parse::<IpAddr>() {
                    addrs.push(SocketAddr::new(ip, slice_port));
                }
            }
        }
    }
    found
}

/// The first ClusterIP of Service `ns/name` in the store (for `explain`'s mesh destination).
pub fn service_ip(store: &Store, ns: &str, name: &str) -> Option<IpAddr> {
    let svc = store.services.get(&ObjectKey::new(ns, name))?;
    mesh::cluster_ips(&svc.object).first().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Flag errors are typed; the CLI prints their text.
    #[test]
    fn flag_errors_are_typed() {
        assert_eq!(
            Pusher::parse("host:0").unwrap_err(),
            FlagError::Port("host:0".into())
        );
        assert_eq!(
            "nope".parse::<Listen>().unwrap_err().to_string(),
            "`nope` is not IP, IP:PORT or GWPORT=IP:PORT[,GWPORT=IP:PORT...]"
        );
        assert_eq!(
            parse_backend("shop/web:80=x").unwrap_err(),
            FlagError::BackendAddress("x".into())
        );
        assert_eq!(
            parse_backend("shop/web=127.0.0.1:9000").unwrap_err(),
            FlagError::BackendName("shop/web".into())
        );
    }

    #[test]
    fn pusher_addresses() {
        let ip = Pusher::parse("127.0.0.1:18000").unwrap();
        assert_eq!(
            ip.endpoints(),
            Endpoints::Static(vec!["127.0.0.1:18000".parse().unwrap()])
        );
        assert_eq!(ip.authority(), "127.0.0.1:18000");
        let dns = Pusher::parse("config-pusher:18000").unwrap();
        assert_eq!(
            dns.endpoints(),
            Endpoints::Dns {
                host: "config-pusher".into(),
                port: 18000
            }
        );
        assert_eq!(Pusher::parse("[::1]:80").unwrap().authority(), "[::1]:80");
        for bad in ["config-pusher", "cp:0", "cp:x", ":80", "a b:80"] {
            assert!(Pusher::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn fill_reports_unfilled_slots() {
        let values = BTreeMap::from([("A", "1".to_string())]);
        assert_eq!(fill("x {{A}} y", &values).unwrap(), "x 1 y");
        assert!(fill("{{A}} {{B}}", &values)
            .unwrap_err()
            .to_string()
            .contains("{{B}}"));
    }

    #[test]
    fn both_templates_label_the_filters_stats() {
        let sidecar = include_str!("../../../envoy-configs/sidecar-original-dst.yaml");
        for template in [BOOTSTRAP_TEMPLATE, sidecar] {
            assert!(template.contains("stats_config:\n  stats_tags: {{STATS_TAGS}}\n"));
        }
        let filled = fill("t: {{STATS_TAGS}}", &BTreeMap::new()).unwrap();
        let tags = gammaroute_filter::metrics::stats_tags_yaml();
        assert_eq!(filled, format!("t: {tags}"));
        assert!(tags.contains("tag_name: backend"));
    }

    #[test]
    fn fill_never_reads_slots_in_values() {
        // A route's header value lands in PLUGIN_CONFIG; WASM_PATH comes later in the map's
        // order and DYNAMIC_RESOURCES is not a slot of this template.
        let config = r#"{"value": "{{WASM_PATH}} {{DYNAMIC_RESOURCES}} {{"}"#.to_string();
        let values = BTreeMap::from([
            ("PLUGIN_CONFIG", config.clone()),
            ("WASM_PATH", "/p.wasm".to_string()),
        ]);
        let filled = fill("config: {{PLUGIN_CONFIG}}\nwasm: {{WASM_PATH}}\n", &values).unwrap();
        assert_eq!(filled, format!("config: {config}\nwasm: /p.wasm\n"));
    }

    #[test]
    fn flags_parse() {
        let (name, addrs) = parse_backend("shop/web:80=127.0.0.1:9000,127.0.0.2:9000").unwrap();
        assert_eq!(name, "shop/web:80");
        assert_eq!(addrs.len(), 2);
        assert!(parse_backend("shop/web=127.0.0.1:9000").is_err());
        assert!(parse_backend("shop/web:80=localhost").is_err());
    }

    #[test]
    fn clusters_yaml_forms() {
        let y = clusters_yaml(&[Cluster {
            name: "a/b:80".into(),
            endpoints: Endpoints::Dns {
                host: "b.a.svc.cluster.local".into(),
                port: 80,
            },
            protocol: UpstreamProtocol::Http1,
            tls: None,
        }]);
        assert!(y.contains("type: STRICT_DNS") && y.contains("\"b.a.svc.cluster.local\""));
        assert!(!y.contains("http2_protocol_options"));
        assert_eq!(clusters_yaml(&[]), "  []\n");
        let cds = cds_yaml(&[Cluster {
            name: "a/b:80".into(),
            endpoints: Endpoints::Static(vec![SocketAddr::from(([127, 0, 0, 1], 9))]),
            protocol: UpstreamProtocol::Http1,
            tls: None,
        }]);
        assert!(
            cds.starts_with("resources:\n- \"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\n  name: \"a/b:80\"\n  type: STATIC\n"),
            "{cds}"
        );
        assert_eq!(cds_yaml(&[]), "resources: []\n");
        // appProtocol kubernetes.io/h2c: cleartext HTTP/2 to the backend.
        let h2c = cds_yaml(&[Cluster {
            name: "a/b:80".into(),
            endpoints: Endpoints::Static(vec![SocketAddr::from(([127, 0, 0, 1], 9))]),
            protocol: UpstreamProtocol::from_app_protocol(Some("Kubernetes.io/H2C")),
            tls: None,
        }]);
        assert!(
            h2c.contains("  typed_extension_protocol_options:\n    envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n")
                && h2c.contains("explicit_http_config: {http2_protocol_options: {}}"),
            "{h2c}"
        );
        assert_eq!(dynamic_resources(None), "");
        assert!(dynamic_resources(Some("/x/")).contains("path: \"/x/cds.yaml\""));
    }
}
