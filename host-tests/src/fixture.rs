//! A proxy under test: echo backends + Envoy with gammaroute on `envoy-configs/bootstrap.yaml`,
//! as a gateway (one listener on an ephemeral port) or a mesh sidecar (bound to Service
//! frontends), or on `envoy-configs/sidecar-original-dst.yaml` (one original-destination
//! listener).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::echo::Echo;
use crate::envoy::Envoy;
use crate::http::{self, Response};
use config_pusher::render::envoy as render;

pub struct Proxy {
    pub envoy: Envoy,
    /// Where clients connect.
    pub addr: SocketAddr,
    pub backends: BTreeMap<String, Echo>,
}

/// A gateway: Envoy listening on an ephemeral loopback port.
pub type Gateway = Proxy;

/// The gateway and per-Service sidecar bootstrap template.
pub const BOOTSTRAP: &str = "envoy-configs/bootstrap.yaml";
/// The pod sidecar template: one original-destination listener behind iptables.
pub const ORIGINAL_DST: &str = "envoy-configs/sidecar-original-dst.yaml";

impl Proxy {
    /// Starts a gateway: one echo backend per cluster name (`<ns>/<service>:<port>`, each on its
    /// own loopback address) and Envoy with `plugin_config` (the table inline).
    pub fn start(echo_bin: &str, plugin_config: &serde_json::Value, clusters: &[&str]) -> Proxy {
        Proxy::start_on(
            BOOTSTRAP,
            echo_bin,
            plugin_config,
            clusters,
            &[],
            &[],
            &|t| t,
        )
    }

    /// [`Proxy::start`] on `envoy-configs/bootstrap.yaml` as `edit` changes it (a setting an
    /// operator might add, a layer removed to test the next one).
    pub fn start_edited(
        echo_bin: &str,
        plugin_config: &serde_json::Value,
        clusters: &[&str],
        edit: &dyn Fn(String) -> String,
    ) -> Proxy {
        Proxy::start_on(BOOTSTRAP, echo_bin, plugin_config, clusters, &[], &[], edit)
    }

    /// Starts a mesh sidecar bound to the Service frontends `frontends` (ClusterIP:port on
    /// loopback); requests are sent to a frontend with [`Proxy::request_to`].
    pub fn sidecar(
        echo_bin: &str,
        plugin_config: &serde_json::Value,
        clusters: &[&str],
        frontends: &[SocketAddr],
    ) -> Proxy {
        Proxy::sidecar_with(echo_bin, plugin_config, clusters, frontends, &[])
    }

    /// [`Proxy::sidecar`] with more static clusters that are not echo backends (e.g. the way to
    /// config-pusher: `("gammaroute-config-pusher", addr)`).
    pub fn sidecar_with(
        echo_bin: &str,
        plugin_config: &serde_json::Value,
        clusters: &[&str],
        frontends: &[SocketAddr],
        extra_clusters: &[(&str, SocketAddr)],
    ) -> Proxy {
        assert!(
            !frontends.is_empty(),
            "a sidecar needs at least one Service frontend"
        );
        Proxy::start_on(
            BOOTSTRAP,
            echo_bin,
            plugin_config,
            clusters,
            frontends,
            extra_clusters,
            &|t| t,
        )
    }

    /// Starts the pod sidecar of `envoy-configs/sidecar-original-dst.yaml` listening on
    /// `listen`. Without iptables nothing is redirected to it, so a connection's original
    /// destination is `listen` itself.
    pub fn original_dst_sidecar(
        echo_bin: &str,
        plugin_config: &serde_json::Value,
        clusters: &[&str],
        listen: SocketAddr,
    ) -> Proxy {
        Proxy::start_on(
            ORIGINAL_DST,
            echo_bin,
            plugin_config,
            clusters,
            &[listen],
            &[],
            &|t| t,
        )
    }

    fn start_on(
        template: &str,
        echo_bin: &str,
        plugin_config: &serde_json::Value,
        clusters: &[&str],
        frontends: &[SocketAddr],
        extra_clusters: &[(&str, SocketAddr)],
        edit: &dyn Fn(String) -> String,
    ) -> Proxy {
        let backends = start_backends(echo_bin, clusters, 10);
        let endpoint_list: Vec<(&str, Vec<SocketAddr>)> = backends
            .iter()
            .map(|(name, e)| (name.as_str(), vec![e.addr]))
            .chain(extra_clusters.iter().map(|(name, a)| (*name, vec![*a])))
            .collect();
        let template = edit(
            std::fs::read_to_string(crate::workspace_root().join(template))
                .unwrap_or_else(|e| panic!("{template}: {e}")),
        );
        let first = frontends
            .first()
            .copied()
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        let additional: Vec<SocketAddr> = frontends.iter().skip(1).copied().collect();
        let values = BTreeMap::from([
            ("ADMIN_ADDRESS", "127.0.0.1".to_string()),
            ("ADMIN_PORT", "0".to_string()),
            ("LISTEN_ADDRESS", first.ip().to_string()),
            ("LISTEN_PORT", first.port().to_string()),
            (
                "LISTEN_ADDITIONAL",
                render::additional_addresses(&additional),
            ),
            ("WASM_PATH", crate::wasm_path().display().to_string()),
            (
                "PLUGIN_CONFIG",
                render::yaml_string(&plugin_config.to_string()),
            ),
            ("CLUSTERS", render::static_clusters(&endpoint_list)),
            ("DYNAMIC_RESOURCES", String::new()),
        ]);
        let mut values = values;
        values.insert("BACKOFF_ROUTES", backoff_routes(plugin_config));
        let bootstrap = render::fill(&template, &values).unwrap_or_else(|e| panic!("{e}"));
        let envoy = Envoy::start(&bootstrap);
        let addr = envoy.listener("gammaroute");
        Proxy {
            envoy,
            addr,
            backends,
        }
    }

    /// `GET http://{host}{path}` through the gateway.
    pub fn get(&self, host: &str, path: &str, headers: &[(&str, &str)]) -> Response {
        http::get(self.addr, host, path, headers)
    }

    /// `method http://{host}{path}` sent to a Service frontend `to` (a sidecar's bound address).
    pub fn request_to(
        &self,
        to: SocketAddr,
        method: &str,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Response {
        let mut all = vec![("host", host)];
        all.extend_from_slice(headers);
        http::send(to, method, path, &all).unwrap_or_else(|e| {
            panic!(
                "{method} http://{host}{path} via {to}: {e}\n{}",
                self.envoy.log()
            )
        })
    }

    /// Any method, through the gateway.
    pub fn request(
        &self,
        method: &str,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Response {
        let mut all = vec![("host", host)];
        all.extend_from_slice(headers);
        http::send(self.addr, method, path, &all)
            .unwrap_or_else(|e| panic!("{method} http://{host}{path}: {e}\n{}", self.envoy.log()))
    }
}

/// `BACKOFF_ROUTES` for the inline table of a plugin configuration, as `render` writes them.
fn backoff_routes(plugin_config: &serde_json::Value) -> String {
    use gammaroute_filter::table::{wire, RouteTable};
    let Some(table) = plugin_config.get("table") else {
        return String::new();
    };
    let parsed = serde_json::from_value::<wire::RouteTable>(table.clone())
        .map_err(|e| e.to_string())
        .and_then(|t| RouteTable::try_from(t).map_err(|e| e.to_string()));
    match parsed {
        Ok(t) => render::backoff_routes(&t),
        // A test of a refused table: Envoy refuses it through the filter, not here.
        Err(_) => String::new(),
    }
}

/// One echo backend per cluster name (`<ns>/<service>:<port>`), each on its own loopback address
/// `127.{octet}+.x.y:8080`, distinct per test process too so that parallel test binaries never
/// collide (callers pick different `octet`s).
pub fn start_backends(echo_bin: &str, clusters: &[&str], octet: u32) -> BTreeMap<String, Echo> {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let pid = std::process::id() % 200;
    clusters
        .iter()
        .map(|cluster| {
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let addr: SocketAddr = format!(
                "127.{}.{}.{}:8080",
                octet + pid / 100,
                (pid % 100) + 1,
                n % 250 + 1
            )
            .parse()
            .unwrap_or_else(|e| panic!("address: {e}"));
            let (ns, rest) = cluster.split_once('/').unwrap_or(("default", cluster));
            let service = rest.split(':').next().unwrap_or(rest);
            (
                cluster.to_string(),
                Echo::start(echo_bin, addr, ns, service),
            )
        })
        .collect()
}
