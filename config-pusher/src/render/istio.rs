//! Istio: per mesh client namespace, a `WasmPlugin` that loads gammaroute into the namespace's
//! sidecars and the `EnvoyFilter` that gives them the route the filter needs.
//!
//! **WasmPlugin** (istio/api `extensions/v1alpha1/wasm.proto`, docs/envoy.md "Istio"):
//! `match: [{mode: CLIENT}]` (GAMMA routing is the client's outbound side), `phase:
//! UNSPECIFIED_PHASE` (just before the router), `failStrategy: FAIL_RELOAD` (a crashed VM is
//! reloaded; FAIL_OPEN would silently fall back to Istio's own routing). `pluginConfig` is the
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
//! Gateway roles are not rendered: an Istio ingress gateway's workload selector is not part of the
//! Gateway API objects; use the standalone bootstraps for gateways.

use serde_json::{json, Value};

use gammaroute_filter::table::{wire, RouteTable};

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
    /// config-pusher's Service as `<namespace>/<name>:<port>`.
    pub config_pusher: String,
    /// Bearer token the filter sends to config-pusher.
    pub token: Option<String>,
    /// config-pusher's secret: each namespace's filter gets its own role token instead
    /// ([`crate::auth`]), so it can read its own table only.
    pub secret: Option<Secret>,
    pub long_poll_seconds: u32,
    /// Put the table in `pluginConfig` instead of a `source`.
    pub inline: bool,
    /// Mirror slots the route has (the filter's `mirrorSlots`).
    pub mirror_slots: u8,
}

impl Default for IstioOptions {
    fn default() -> Self {
        IstioOptions {
            url: WasmUrl(DEFAULT_WASM_URL.into()),
            sha256: None,
            domain: "cluster.local".into(),
            config_pusher: "gammaroute-system/config-pusher:18000".into(),
            token: None,
            secret: None,
            long_poll_seconds: 30,
            inline: false,
            mirror_slots: 2,
        }
    }
}

/// The header the filter writes the chosen cluster into, and the mirror slot headers.
const CLUSTER_HEADER: &str = "x-gamma-cluster";
/// Request-header prefixes the strip filter removes from what the application sends.
const STRIPPED_PREFIXES: [&str; 2] = ["x-envoy-", "x-gamma-"];

fn mirror_header(n: u8) -> String {
    format!("x-gamma-mirror-{n}")
}

/// The filter's `source` for `role`: Istio's outbound cluster of config-pusher and its authority.
pub fn source(role: &str, options: &IstioOptions) -> Result<Value, String> {
    let (ns, rest) = options.config_pusher.split_once('/').ok_or_else(|| {
        format!(
            "--config-pusher {:?}: not <namespace>/<name>:<port>",
            options.config_pusher
        )
    })?;
    let (name, port) = rest
        .rsplit_once(':')
        .and_then(|(n, p)| Some((n, p.parse::<u16>().ok()?)))
        .ok_or_else(|| {
            format!(
                "--config-pusher {:?}: not <namespace>/<name>:<port>",
                options.config_pusher
            )
        })?;
    let host = format!("{name}.{ns}.svc.{}", options.domain);
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
    Ok(source)
}

/// The `pluginConfig` for one mesh table.
pub fn plugin_config(table: &RouteTable, options: &IstioOptions) -> Result<Value, String> {
    let mut config = json!({
        "clusterNaming": {"istio": {"domain": options.domain}},
        "mirrorSlots": options.mirror_slots,
    });
    let (key, value) = if options.inline {
        (
            "table",
            serde_json::to_value(wire::RouteTable::from(table))
                .map_err(|e| format!("{}: {e}", table.role))?,
        )
    } else {
        ("source", source(&table.role, options)?)
    };
    if let Some(m) = config.as_object_mut() {
        m.insert(key.into(), value);
    }
    Ok(config)
}

/// The WasmPlugin and EnvoyFilter for mesh client namespace `namespace`, as one YAML stream.
pub fn manifests(
    namespace: &str,
    table: &RouteTable,
    options: &IstioOptions,
) -> Result<String, String> {
    let labels = json!({"app.kubernetes.io/part-of": "gammaroute"});
    let mut spec = json!({
        "url": options.url.0,
        "pluginName": "gammaroute",
        "phase": "UNSPECIFIED_PHASE",
        "failStrategy": "FAIL_RELOAD",
        "match": [{"mode": "CLIENT"}],
        "pluginConfig": plugin_config(table, options)?,
    });
    if let (Some(sha), Some(m)) = (&options.sha256, spec.as_object_mut()) {
        m.insert("sha256".into(), sha.0.clone().into());
    }
    let wasm_plugin = json!({
        "apiVersion": "extensions.istio.io/v1alpha1",
        "kind": "WasmPlugin",
        "metadata": {"name": "gammaroute", "namespace": namespace, "labels": labels},
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
    let envoy_filter = json!({
        "apiVersion": "networking.istio.io/v1alpha3",
        "kind": "EnvoyFilter",
        "metadata": {"name": "gammaroute", "namespace": namespace, "labels": labels},
        "spec": {"configPatches": [
            {
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
            },
            {
                // The request normalisation of envoy-configs/bootstrap.yaml, on the outbound HCM
                // (Istio sets normalize_path and merge_slashes itself by its meshConfig
                // pathNormalization): `/a/..%2Fadmin` is redirected to `/admin` before gammaroute
                // matches it, and `x_tenant` headers are refused.
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
            },
            {
                "applyTo": "HTTP_ROUTE",
                "match": {"context": "SIDECAR_OUTBOUND", "routeConfiguration": {"vhost": {}}},
                "patch": {"operation": "INSERT_FIRST", "value": {
                    "name": "gammaroute",
                    "match": {"prefix": "/", "headers": [{"name": CLUSTER_HEADER, "present_match": true}]},
                    "request_headers_to_remove": [CLUSTER_HEADER],
                    "route": {
                        "cluster_header": CLUSTER_HEADER,
                        "timeout": "0s",
                        "request_mirror_policies": mirrors,
                    },
                }},
            },
        ]},
    });
    let mut out = String::new();
    for doc in [wasm_plugin, envoy_filter] {
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(&doc).map_err(|e| format!("{namespace}: {e}"))?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_names_istio_cluster() {
        let s = source("mesh/shop", &IstioOptions::default()).unwrap();
        assert_eq!(
            s,
            json!({"cluster": "outbound|18000||config-pusher.gammaroute-system.svc.cluster.local",
                   "authority": "config-pusher.gammaroute-system.svc.cluster.local:18000",
                   "role": "mesh/shop", "longPollSeconds": 30})
        );
        let bad = IstioOptions {
            config_pusher: "config-pusher".into(),
            ..IstioOptions::default()
        };
        assert!(source("mesh/shop", &bad)
            .unwrap_err()
            .contains("--config-pusher"));
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
