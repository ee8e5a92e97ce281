//! Istio: per mesh client namespace, a `WasmPlugin` that loads gammaroute into the namespace's
//! sidecars and the `EnvoyFilter` that gives them the route the filter needs.
//!
//! **WasmPlugin** (istio/api `extensions/v1alpha1/wasm.proto`, docs/envoy.md "Istio"):
//! `match: [{mode: CLIENT}]` (GAMMA routing is the client's outbound side), `phase:
//! UNSPECIFIED_PHASE` (just before the router), `failStrategy: FAIL_OPEN`: with any other value
//! istio-agent answers a module it cannot fetch with a deny-all filter, cutting the namespace's
//! outbound HTTP; with `FAIL_OPEN` a module that cannot be fetched or that crashes leaves requests
//! to istiod's routing — a mesh sidecar's transparent behaviour — while the header strip below,
//! a separate native filter, still keeps clients from steering. `pluginConfig` is the
//! filter's configuration: `clusterNaming: {istio: {domain}}` and either a `source` (the filter
//! long-polls config-pusher for table `mesh/<ns>` through Istio's outbound cluster of the
//! config-pusher Service) or, with `--istio-inline`, the table itself (static; re-render on
//! change).
//!
//! **EnvoyFilter** (Istio does not let us own the route table, docs/architecture.md "The Envoy contract"):
//! - `HTTP_FILTER` `INSERT_FIRST`: a `header_mutation` filter stripping application-sent
//!   `x-envoy-*` and `x-gamma-*` headers, first in the chain, so before the wasm filter whatever
//!   Istio's filter order is;
//! - `NETWORK_FILTER` `MERGE` on the outbound HCM: `path_with_escaped_slashes_action:
//!   UNESCAPE_AND_REDIRECT` and `headers_with_underscores_action: REJECT_REQUEST`;
//! - `HTTP_ROUTE` `INSERT_FIRST` in every outbound virtual host: a route that applies only when the
//!   filter wrote `x-gamma-cluster` (so Services without HTTPRoutes keep Istio's routing), with
//!   `cluster_header`, `timeout: 0s` and the mirror slots — the catch-all of
//!   `envoy-configs/bootstrap.yaml` with Istio cluster names (`outbound|<port>||<fqdn>`).
//!
//! **Versions**: Istio ≥ 1.28 ([`MIN_ISTIO`]): older istiod drops `request_headers_mutations` of
//! mirror policies silently (mirror copies would keep the slot headers).
//!
//! **Next to istiod's own GAMMA**: istiod programs every HTTPRoute whose parent is a Service into
//! the sidecars' outbound routes too. In a namespace with these manifests, gammaroute's route is
//! first in every outbound virtual host and wins whenever the filter routes; what it does not
//! route (no table yet, a Service or port without routes, a failed module) falls to istiod's
//! routes, built from the same HTTPRoutes. A namespace without them is routed by istiod alone:
//! applying a namespace's file is how a user chooses gammaroute for that namespace's clients.
//!
//! Gateway roles are not rendered: an Istio ingress gateway's workload selector is not part of the
//! Gateway API objects; use the standalone bootstraps for gateways.

use serde_json::{json, Value};

use gammaroute_filter::host::envoy::BACKOFF_HEADER;
use gammaroute_filter::table::{wire, RouteTable};

use super::envoy;
use super::error::RenderError;

use crate::auth::Secret;

/// The filter image `config-pusher/deploy/Dockerfile.wasm` builds, as released.
pub const DEFAULT_WASM_URL: &str = "oci://ghcr.io/gammaroute/gammaroute-wasm:0.1.0";

/// A `WasmPlugin.spec.url` Istio can fetch: `oci://`, `https://`, `http://` or `file://`
/// followed by something (istio/api `extensions/v1alpha1/wasm.proto`, field `url`: "Supported
/// schemes: oci://, file://, http[s]://"). Checked before it reaches a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WasmUrl(String);

/// A `WasmPlugin.spec.sha256`: 64 lower-case hex digits (what istio-agent compares the pulled
/// module's SHA-256 with).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sha256(String);

/// Why `--wasm-url` or `--wasm-sha256` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WasmArgError {
    #[error(
        "{0:?}: the URL must start with oci://, https://, http:// or file:// and name something"
    )]
    Scheme(String),
    #[error("{0:?}: expected 64 lower-case hex digits (sha256sum's output)")]
    Sha256(String),
    #[error("--config-pusher {0:?}: not <namespace>/<name>:<port>")]
    ConfigPusher(String),
}

/// `--config-pusher NS/NAME:PORT`: config-pusher's Service as the sidecars reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRef {
    pub namespace: String,
    pub name: String,
    pub port: u16,
}

impl ServiceRef {
    /// Its cluster DNS name.
    pub fn host(&self, domain: &str) -> String {
        format!("{}.{}.svc.{domain}", self.name, self.namespace)
    }
}

impl std::str::FromStr for ServiceRef {
    type Err = WasmArgError;
    fn from_str(s: &str) -> Result<ServiceRef, WasmArgError> {
        use crate::store::name::NameRule;
        let bad = || WasmArgError::ConfigPusher(s.to_string());
        let (namespace, rest) = s.split_once('/').ok_or_else(bad)?;
        let (name, port) = rest.rsplit_once(':').ok_or_else(bad)?;
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(bad)?;
        // Both end up in a DNS name and an Istio cluster name.
        if NameRule::Label.check(namespace).is_err() || NameRule::Label.check(name).is_err() {
            return Err(bad());
        }
        Ok(ServiceRef {
            namespace: namespace.into(),
            name: name.into(),
            port,
        })
    }
}

impl std::str::FromStr for WasmUrl {
    type Err = WasmArgError;
    fn from_str(s: &str) -> Result<WasmUrl, WasmArgError> {
        let rest = ["oci://", "https://", "http://", "file://"]
            .iter()
            .find_map(|scheme| s.strip_prefix(scheme));
        match rest {
            Some(rest) if !rest.is_empty() && !s.chars().any(char::is_whitespace) => {
                Ok(WasmUrl(s.to_string()))
            }
            _ => Err(WasmArgError::Scheme(s.to_string())),
        }
    }
}

impl Sha256 {
    /// The 64 hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for Sha256 {
    type Err = WasmArgError;
    fn from_str(s: &str) -> Result<Sha256, WasmArgError> {
        if s.len() == 64
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(Sha256(s.to_string()))
        } else {
            Err(WasmArgError::Sha256(s.to_string()))
        }
    }
}

/// `render --istio` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IstioOptions {
    /// `WasmPlugin.spec.url`.
    pub url: WasmUrl,
    /// `WasmPlugin.spec.sha256`, checked by istio-agent after the pull.
    pub sha256: Option<Sha256>,
    /// Cluster DNS domain for Istio cluster names.
    pub domain: String,
    /// config-pusher's Service (`--config-pusher <namespace>/<name>:<port>`).
    pub config_pusher: ServiceRef,
    /// Bearer token the filter sends to config-pusher.
    pub token: Option<String>,
    /// config-pusher's secret: each namespace's filter gets its own role token instead
    /// ([`crate::auth`]), so it can read its own table only.
    pub secret: Option<Secret>,
    pub long_poll_seconds: u32,
    /// Put the table in `pluginConfig` instead of a `source`.
    pub inline: bool,
    /// `--config-pusher-ca-secret`: the sidecars reach config-pusher over TLS, verifying its
    /// name against the CA in this Secret of their own namespace ([`destination_rule`]).
    pub ca_secret: Option<String>,
    /// Mirror slots the route has (the filter's `mirrorSlots`).
    pub mirror_slots: u8,
}

impl Default for IstioOptions {
    fn default() -> Self {
        IstioOptions {
            url: WasmUrl(DEFAULT_WASM_URL.into()),
            sha256: None,
            domain: "cluster.local".into(),
            config_pusher: ServiceRef {
                namespace: "gammaroute-system".into(),
                name: "config-pusher".into(),
                port: 18000,
            },
            token: None,
            secret: None,
            long_poll_seconds: 30,
            inline: false,
            mirror_slots: 2,
            ca_secret: None,
        }
    }
}

/// The oldest Istio the manifests work with (see the module docs), also written to each object
/// as the `gammaroute.dev/min-istio-version` annotation.
pub const MIN_ISTIO: &str = "1.28";

/// The header the filter writes the chosen cluster into, and the mirror slot headers.
const CLUSTER_HEADER: &str = "x-gamma-cluster";
/// Request-header prefixes the strip filter removes from what the application sends.
const STRIPPED_PREFIXES: [&str; 2] = ["x-envoy-", "x-gamma-"];

fn mirror_header(n: u8) -> String {
    format!("x-gamma-mirror-{n}")
}

/// The filter's `source` for `role`: Istio's outbound cluster of config-pusher and its authority.
pub fn source(role: &str, options: &IstioOptions) -> Value {
    let host = options.config_pusher.host(&options.domain);
    let port = options.config_pusher.port;
    let mut source = json!({
        "cluster": format!("outbound|{port}||{host}"),
        "authority": format!("{host}:{port}"),
        "role": role,
        "longPollSeconds": options.long_poll_seconds,
    });
    let token = match &options.secret {
        Some(secret) => Some(secret.role_token(role)),
        None => options.token.clone(),
    };
    if let (Some(token), Some(m)) = (token, source.as_object_mut()) {
        m.insert("token".into(), token.into());
    }
    source
}

/// The `pluginConfig` for one mesh table.
pub fn plugin_config(table: &RouteTable, options: &IstioOptions) -> Result<Value, RenderError> {
    let mut config = json!({
        "clusterNaming": {"istio": {"domain": options.domain}},
        "mirrorSlots": options.mirror_slots,
    });
    let (key, value) = if options.inline {
        (
            "table",
            serde_json::to_value(wire::RouteTable::from(table)).map_err(|source| {
                RenderError::Json {
                    what: table.role.clone(),
                    source,
                }
            })?,
        )
    } else {
        ("source", source(&table.role, options))
    };
    if let Some(m) = config.as_object_mut() {
        m.insert(key.into(), value);
    }
    Ok(config)
}

/// With `--config-pusher-ca-secret`: the DestinationRule, in the client namespace and visible
/// only there (`exportTo: ["."]`), that makes its sidecars originate TLS to config-pusher
/// (`serve --tls-cert`): `mode: SIMPLE`, SNI and `subjectAltNames` the Service's name, the CA
/// from `credentialName` (istio/api `networking/v1alpha3/destination_rule.proto`
/// `ClientTLSSettings`: a Secret in the workload's namespace with a `ca.crt` or `cacert` key). A
/// certificate of another name or CA fails every fetch; nothing falls back to plain text.
pub fn destination_rule(namespace: &str, options: &IstioOptions) -> Option<Value> {
    let secret = options.ca_secret.as_ref()?;
    let host = options.config_pusher.host(&options.domain);
    Some(json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": "gammaroute-config-pusher", "namespace": namespace,
                     "labels": {"app.kubernetes.io/part-of": "gammaroute"}},
        "spec": {
            "host": host,
            "exportTo": ["."],
            "trafficPolicy": {"tls": {
                "mode": "SIMPLE",
                "credentialName": secret,
                "sni": host,
                "subjectAltNames": [host],
            }},
        },
    }))
}

/// The WasmPlugin and EnvoyFilter (and [`destination_rule`]) for mesh client namespace
/// `namespace`, as one YAML stream.
pub fn manifests(
    namespace: &str,
    table: &RouteTable,
    options: &IstioOptions,
) -> Result<String, RenderError> {
    let labels = json!({"app.kubernetes.io/part-of": "gammaroute"});
    let annotations = json!({"gammaroute.dev/min-istio-version": MIN_ISTIO});
    let mut spec = json!({
        "url": options.url.0,
        "pluginName": "gammaroute",
        "phase": "UNSPECIFIED_PHASE",
        "failStrategy": "FAIL_OPEN",
        "match": [{"mode": "CLIENT"}],
        "pluginConfig": plugin_config(table, options)?,
    });
    if let (Some(sha), Some(m)) = (&options.sha256, spec.as_object_mut()) {
        m.insert("sha256".into(), sha.0.clone().into());
    }
    let wasm_plugin = json!({
        "apiVersion": "extensions.istio.io/v1alpha1",
        "kind": "WasmPlugin",
        "metadata": {"name": "gammaroute", "namespace": namespace, "labels": labels,
                     "annotations": annotations},
        "spec": spec,
    });
    let slots: Vec<String> = (0..options.mirror_slots).map(mirror_header).collect();
    // Every x-envoy-* (Envoy's router obeys them: timeouts, retries, hedging, stats) and x-gamma-*
    // (cluster, mirrors) header the application sends, first in the outbound chain: Istio's own
    // filters add theirs (x-envoy-peer-metadata) after it.
    let strip: Vec<Value> = STRIPPED_PREFIXES
        .iter()
        .map(|p| json!({"remove_on_match": {"key_matcher": {"prefix": p, "ignore_case": true}}}))
        .collect();
    let mirrors: Vec<Value> = slots
        .iter()
        .map(|h| {
            json!({
                "cluster_header": h,
                "request_headers_mutations": slots.iter().map(|s| json!({"remove": s})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let hcm = "envoy.filters.network.http_connection_manager";
    let route_patch = |name: String, headers: Value, retry_policy: Option<Value>| {
        let mut route = json!({
            "cluster_header": CLUSTER_HEADER,
            "timeout": "0s",
            "request_mirror_policies": mirrors,
        });
        if let (Some(policy), Some(m)) = (retry_policy, route.as_object_mut()) {
            m.insert("retry_policy".into(), policy);
        }
        json!({
            "applyTo": "HTTP_ROUTE",
            "match": {"context": "SIDECAR_OUTBOUND", "routeConfiguration": {"vhost": {}}},
            "patch": {"operation": "INSERT_FIRST", "value": {
                "name": name,
                "match": {"prefix": "/", "headers": headers},
                "request_headers_to_remove": [CLUSTER_HEADER, BACKOFF_HEADER],
                "route": route,
            }},
        })
    };
    let mut patches = vec![
        json!({
            "applyTo": "HTTP_FILTER",
            "match": {"context": "SIDECAR_OUTBOUND",
                      "listener": {"filterChain": {"filter": {"name": hcm}}}},
            "patch": {"operation": "INSERT_FIRST", "value": {
                "name": "gammaroute.strip-control-headers",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
                    "mutations": {"request_mutations": strip},
                },
            }},
        }),
        // The request normalisation of envoy-configs/bootstrap.yaml, on the outbound HCM
        // (Istio sets normalize_path and merge_slashes itself by its meshConfig
        // pathNormalization): `/a/..%2Fadmin` is redirected to `/admin` before gammaroute
        // matches it, and `x_tenant` headers are refused.
        json!({
            "applyTo": "NETWORK_FILTER",
            "match": {"context": "SIDECAR_OUTBOUND",
                      "listener": {"filterChain": {"filter": {"name": hcm}}}},
            "patch": {"operation": "MERGE", "value": {
                "name": hcm,
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                    "path_with_escaped_slashes_action": "UNESCAPE_AND_REDIRECT",
                    "common_http_protocol_options": {"headers_with_underscores_action": "REJECT_REQUEST"},
                },
            }},
        }),
        route_patch(
            "gammaroute".into(),
            json!([{"name": CLUSTER_HEADER, "present_match": true}]),
            None,
        ),
    ];
    // Inserted first, so before the plain route: one per distinct retry.backoff (GEP-1731),
    // as in the standalone bootstraps (`envoy::backoff_routes`).
    for ms in envoy::backoffs(table) {
        patches.push(route_patch(
            format!("gammaroute-backoff-{ms}ms"),
            json!([{"name": CLUSTER_HEADER, "present_match": true},
                   {"name": BACKOFF_HEADER, "string_match": {"exact": ms.to_string()}}]),
            Some(json!({"retry_back_off": {"base_interval": format!("{}.{:03}s", ms / 1000, ms % 1000)}})),
        ));
    }
    let envoy_filter = json!({
        "apiVersion": "networking.istio.io/v1alpha3",
        "kind": "EnvoyFilter",
        "metadata": {"name": "gammaroute", "namespace": namespace, "labels": labels,
                     "annotations": annotations},
        "spec": {"configPatches": patches},
    });
    let mut out = String::new();
    let tls = destination_rule(namespace, options);
    for doc in [Some(wasm_plugin), Some(envoy_filter), tls]
        .into_iter()
        .flatten()
    {
        out.push_str("---\n");
        out.push_str(
            &serde_yaml_ng::to_string(&doc).map_err(|source| RenderError::Yaml {
                what: format!("istio/{namespace}.yaml"),
                source,
            })?,
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_retry_backoff_gets_its_route_and_the_header_is_stripped() {
        let rule = |ms: u64| {
            json!({"index": 0, "matches": [{"rank": 0, "path": {"prefix": "/"}}],
                   "retry": {"attempts": 3, "backoffMs": ms},
                   "backends": [{"weight": 1, "cluster": "shop/api:80"}]})
        };
        let table: wire::RouteTable = serde_json::from_value(json!({
            "role": "mesh/shop",
            "routes": [{"namespace": "shop", "name": "a", "rules": [rule(100), rule(2500)]},
                       {"namespace": "shop", "name": "b", "rules": [rule(100)]}]
        }))
        .unwrap();
        let table = RouteTable::try_from(table).unwrap();
        let yaml = manifests("shop", &table, &IstioOptions::default()).unwrap();
        let docs: Vec<Value> = yaml
            .split("---\n")
            .filter(|d| !d.trim().is_empty())
            .map(|d| serde_yaml_ng::from_str(d).unwrap())
            .collect();
        let patches = docs[1]["spec"]["configPatches"].as_array().unwrap();
        // Client-sent x-gamma-backoff-ms goes with every x-gamma-* header.
        let strip = &patches[0]["patch"]["value"]["typed_config"]["mutations"]["request_mutations"];
        assert!(strip.as_array().unwrap().contains(
            &json!({"remove_on_match": {"key_matcher": {"prefix": "x-gamma-", "ignore_case": true}}})
        ));
        // The plain route and one per distinct back-off: 100 ms and 2.5 s.
        let routes: Vec<&Value> = patches
            .iter()
            .filter(|p| p["applyTo"] == "HTTP_ROUTE")
            .map(|p| &p["patch"]["value"])
            .collect();
        assert_eq!(routes.len(), 3);
        assert_eq!(routes[1]["name"], "gammaroute-backoff-100ms");
        assert_eq!(
            routes[2]["route"]["retry_policy"],
            json!({"retry_back_off": {"base_interval": "2.500s"}})
        );
        assert_eq!(
            routes[2]["match"]["headers"][1],
            json!({"name": "x-gamma-backoff-ms", "string_match": {"exact": "2500"}})
        );
    }

    /// Next to istiod's own GAMMA implementation, for every client namespace of the `gamma`
    /// golden scenario (producer route on bookinfo/reviews; `frontend` with its own consumer
    /// route; `batch` without routes): the manifests are namespace-scoped (applying or deleting
    /// a namespace's file is how a user chooses gammaroute or istiod alone), gammaroute's routes
    /// go first but match only requests its filter routed (`x-gamma-cluster` present), and no
    /// patch removes, replaces or merges into istiod's routes: what the filter does not route
    /// (no table yet, an unrouted Service, a failed module: FAIL_OPEN) keeps istiod's routing.
    #[test]
    fn manifests_leave_istiod_routing_to_what_gammaroute_does_not_route() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/gamma/input");
        let (store, _) = crate::source::files::load(std::path::Path::new(dir));
        let out = crate::translate::translate(&store, &crate::translate::Settings::default());
        let mut namespaces = Vec::new();
        for (role, table) in &out.tables {
            let Some(ns) = role.strip_prefix("mesh/") else {
                continue;
            };
            namespaces.push(ns);
            let yaml = manifests(ns, table, &IstioOptions::default()).unwrap();
            let docs: Vec<Value> = yaml
                .split("---\n")
                .filter(|d| !d.trim().is_empty())
                .map(|d| serde_yaml_ng::from_str(d).unwrap())
                .collect();
            let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
            assert_eq!(kinds, ["WasmPlugin", "EnvoyFilter"], "{ns}");
            for d in &docs {
                assert_eq!(
                    d["metadata"]["namespace"],
                    json!(ns),
                    "{ns}: namespace-scoped"
                );
                assert!(
                    d["spec"].get("selector").is_none()
                        && d["spec"].get("workloadSelector").is_none()
                );
                assert_eq!(
                    d["metadata"]["annotations"]["gammaroute.dev/min-istio-version"],
                    json!(MIN_ISTIO)
                );
            }
            let plugin = &docs[0]["spec"];
            assert_eq!(plugin["failStrategy"], json!("FAIL_OPEN"), "{ns}");
            assert_eq!(plugin["match"], json!([{"mode": "CLIENT"}]), "{ns}");
            // The table of this namespace: its consumer routes, else the producer routes.
            assert_eq!(
                plugin["pluginConfig"]["source"]["role"],
                json!(role),
                "{ns}"
            );
            let patches = docs[1]["spec"]["configPatches"].as_array().unwrap();
            for p in patches {
                let op = p["patch"]["operation"].as_str().unwrap();
                match p["applyTo"].as_str().unwrap() {
                    "HTTP_ROUTE" => {
                        assert_eq!(op, "INSERT_FIRST", "{ns}");
                        let headers = &p["patch"]["value"]["match"]["headers"];
                        assert_eq!(
                            headers[0],
                            json!({"name": CLUSTER_HEADER, "present_match": true}),
                            "{ns}: only requests the filter routed"
                        );
                    }
                    "HTTP_FILTER" => assert_eq!(op, "INSERT_FIRST"),
                    // The HCM's request normalisation, not a route.
                    "NETWORK_FILTER" => assert_eq!(op, "MERGE"),
                    other => panic!("{ns}: unexpected patch of {other}"),
                }
                assert_eq!(p["match"]["context"], json!("SIDECAR_OUTBOUND"), "{ns}");
            }
        }
        // One file per client namespace, with or without routes: each is a choice of its own.
        assert_eq!(namespaces, ["batch", "bookinfo", "frontend"]);
    }

    #[test]
    fn with_a_ca_secret_the_sidecars_verify_config_pusher() {
        assert_eq!(destination_rule("shop", &IstioOptions::default()), None);
        let options = IstioOptions {
            ca_secret: Some("config-pusher-ca".into()),
            ..IstioOptions::default()
        };
        let dr = destination_rule("shop", &options).unwrap();
        let host = "config-pusher.gammaroute-system.svc.cluster.local";
        assert_eq!(dr["metadata"]["namespace"], "shop");
        assert_eq!(dr["spec"]["host"], host);
        assert_eq!(dr["spec"]["exportTo"], json!(["."]));
        assert_eq!(
            dr["spec"]["trafficPolicy"]["tls"],
            json!({"mode": "SIMPLE", "credentialName": "config-pusher-ca", "sni": host,
                   "subjectAltNames": [host]})
        );
    }

    #[test]
    fn source_names_istio_cluster() {
        let s = source("mesh/shop", &IstioOptions::default());
        assert_eq!(
            s,
            json!({"cluster": "outbound|18000||config-pusher.gammaroute-system.svc.cluster.local",
                   "authority": "config-pusher.gammaroute-system.svc.cluster.local:18000",
                   "role": "mesh/shop", "longPollSeconds": 30})
        );
    }

    #[test]
    fn config_pusher_is_a_service_reference_checked_when_parsed() {
        let ok: ServiceRef = "mesh-system/pusher:8443".parse().unwrap();
        assert_eq!(
            ok.host("cluster.local"),
            "pusher.mesh-system.svc.cluster.local"
        );
        assert_eq!(ok.port, 8443);
        for bad in [
            "config-pusher",
            "ns/config-pusher",
            "ns/config-pusher:0",
            "ns/config-pusher:http",
            "ns/Config_Pusher:18000",
            "a/b/c:1",
            "/config-pusher:18000",
        ] {
            assert!(
                matches!(
                    bad.parse::<ServiceRef>(),
                    Err(WasmArgError::ConfigPusher(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn wasm_url_and_sha256_are_checked_before_they_reach_a_manifest() {
        for ok in [
            DEFAULT_WASM_URL,
            "https://example.com/g.wasm",
            "http://10.0.0.1/g.wasm",
            "file:///var/lib/g.wasm",
        ] {
            assert!(ok.parse::<WasmUrl>().is_ok(), "{ok}");
        }
        for bad in [
            "ghcr.io/x:1",
            "oci://",
            "ftp://x/g.wasm",
            "https://x/a b",
            "",
        ] {
            assert!(
                matches!(bad.parse::<WasmUrl>(), Err(WasmArgError::Scheme(_))),
                "{bad}"
            );
        }
        let hex = "0123456789abcdef".repeat(4);
        assert!(hex.parse::<Sha256>().is_ok());
        for bad in [
            hex.to_uppercase(),
            hex[1..].to_string(),
            format!("{hex}0"),
            "zz".repeat(32),
        ] {
            assert!(
                matches!(bad.parse::<Sha256>(), Err(WasmArgError::Sha256(_))),
                "{bad}"
            );
        }
    }
}
