//! TLS termination in the standalone bootstrap: which filter chains the one Envoy listener gets,
//! and the SDS files carrying the certificates.
//!
//! **Chains.** The listener binds every Gateway port (see [`super::envoy`]); a Gateway with only
//! HTTP listeners keeps the single chain without a match. As soon as an HTTPS listener is served,
//! every chain matches on `destination_port`: one plaintext chain per HTTP port, and per HTTPS
//! port one chain per listener hostname (`server_names`, exact or `*.` wildcard, which Envoy
//! matches like Gateway API does: the most specific name wins) plus a default chain for a
//! listener without hostname. Each TLS chain terminates with a `DownstreamTlsContext` offering
//! ALPN `h2,http/1.1`, and the `tls_inspector` listener filter reads the SNI. Every chain runs the
//! same HTTP connection manager (a YAML anchor in `envoy-configs/bootstrap.yaml`), so one filter
//! configuration serves all ports and the filter tells them apart by destination port.
//!
//! **Certificates** come through SDS (`path_config_source` with `watched_directory`): one file
//! per Secret in the SDS directory, so replacing a file (write to a temporary name, rename) makes
//! a running Envoy load the new certificate for new handshakes without a restart. The files hold
//! the private key: writers create them mode 0600.
//!
//! A listener whose certificates do not resolve ([`crate::translate::tls`]) gets no chain (it is
//! `Programmed=False`); its port is still bound when another listener serves on it.

use std::collections::{BTreeMap, BTreeSet};

use gammaroute_filter::table::RouteTable;

use crate::store::{ObjectKey, Store};
use crate::translate::tls::{resolve, Certificate};

/// One filter chain of the gateway listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// Matched `destination_port`; `None` only for the lone chain of a plaintext-only Gateway.
    pub port: Option<u16>,
    /// SNI names (`server_names`); empty: any (the port's default chain).
    pub server_names: Vec<String>,
    /// SDS secret names; empty for plaintext.
    pub secrets: Vec<String>,
}

/// An HTTPS listener that can be served: its hostname and certificates.
type Served = (Option<String>, Vec<Certificate>);

/// An SDS file: one `tls_certificate` Secret resource. Holds the private key: `Debug` shows the
/// file name only.
#[derive(Clone, PartialEq, Eq)]
pub struct SdsFile {
    /// The SDS resource name, `<namespace>/<name>` of the Kubernetes Secret.
    pub name: String,
    /// File name inside the SDS directory.
    pub file: String,
    /// The file's content (YAML, includes the private key).
    pub content: String,
}

impl std::fmt::Debug for SdsFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SdsFile({} <redacted>)", self.file)
    }
}

/// What a Gateway's bootstrap binds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsPlan {
    /// Every Gateway port the listener binds.
    pub ports: BTreeSet<u16>,
    pub chains: Vec<Chain>,
    pub sds: Vec<SdsFile>,
    /// The certificates of [`TlsPlan::sds`], one per Secret (what SDS over ADS sends).
    pub certificates: Vec<Certificate>,
    /// Listeners left out and why.
    pub notes: Vec<String>,
}

impl TlsPlan {
    /// Whether any chain terminates TLS (then the listener needs `tls_inspector`).
    pub fn has_tls(&self) -> bool {
        self.chains.iter().any(|c| !c.secrets.is_empty())
    }
}

/// The chains for the table of Gateway `key`. `sds_dir` `None`: HTTPS listeners are left out
/// with a note (the bootstrap has nowhere to read certificates from).
pub fn plan(store: &Store, key: &ObjectKey, table: &RouteTable, sds_dir: Option<&str>) -> TlsPlan {
    let mut plan = TlsPlan::default();
    let spec = store.gateways.get(key).map(|g| &g.object.spec);
    let mut http_ports = BTreeSet::new();
    let mut tls: BTreeMap<u16, Vec<Served>> = BTreeMap::new();
    for l in &table.listeners {
        let Some(listener) = spec.and_then(|s| s.listeners.iter().find(|x| x.name == l.name))
        else {
            http_ports.insert(l.port);
            continue;
        };
        if listener.protocol != "HTTPS" {
            http_ports.insert(l.port);
            continue;
        }
        if sds_dir.is_none() {
            plan.notes.push(format!(
                "listener {} (port {}, HTTPS) not bound: no SDS directory for its certificates",
                l.name, l.port
            ));
            continue;
        }
        match resolve(store, &key.namespace, listener) {
            Ok(certs) => tls
                .entry(l.port)
                .or_default()
                .push((l.hostname.clone(), certs)),
            Err(_) => plan.notes.push(format!(
                "listener {} (port {}, HTTPS) not bound: its certificates do not resolve (see its status)",
                l.name, l.port
            )),
        }
    }
    plan.ports = http_ports.iter().chain(tls.keys()).copied().collect();
    if tls.is_empty() {
        // Plaintext only: one chain for every port, exactly as before TLS existed.
        if !http_ports.is_empty() {
            plan.chains.push(Chain {
                port: None,
                server_names: vec![],
                secrets: vec![],
            });
        }
        return plan;
    }
    for p in &http_ports {
        plan.chains.push(Chain {
            port: Some(*p),
            server_names: vec![],
            secrets: vec![],
        });
    }
    let mut sds: BTreeMap<String, SdsFile> = BTreeMap::new();
    let mut certificates: BTreeMap<String, Certificate> = BTreeMap::new();
    for (port, listeners) in tls {
        for (hostname, certs) in listeners {
            let secrets = certs
                .iter()
                .map(|c| {
                    let f = sds_file(c);
                    let name = f.name.clone();
                    sds.entry(name.clone()).or_insert(f);
                    certificates
                        .entry(name.clone())
                        .or_insert_with(|| c.clone());
                    name
                })
                .collect();
            plan.chains.push(Chain {
                port: Some(port),
                server_names: hostname.into_iter().collect(),
                secrets,
            });
        }
    }
    plan.sds = sds.into_values().collect();
    plan.certificates = certificates.into_values().collect();
    plan
}

/// The SDS file of one certificate: a `tls_certificate` Secret with the PEM inline.
fn sds_file(c: &Certificate) -> SdsFile {
    let name = c.secret.to_string();
    let file = format!("sds-{}-{}.yaml", c.secret.namespace, c.secret.name);
    let quote =
        |b: &[u8]| serde_json::Value::String(String::from_utf8_lossy(b).into_owned()).to_string();
    let content = format!(
        "resources:\n- \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret\n  name: {}\n  tls_certificate:\n    certificate_chain: {{inline_string: {}}}\n    private_key: {{inline_string: {}}}\n",
        quote(name.as_bytes()),
        quote(&c.chain),
        quote(c.key.expose()),
    );
    SdsFile {
        name,
        file,
        content,
    }
}

/// Where a bootstrap's TLS chains read their certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdsSource<'a> {
    /// Filesystem SDS: one file per Secret in this directory (`render`, `serve --xds-dir`).
    Dir(&'a str),
    /// `{ads: {}}`: on the ADS stream of `serve --xds-listen` (`render --xds-server`).
    Ads,
}

/// YAML keys of one chain (at 6 spaces, after its `filters`): `filter_chain_match` and the TLS
/// transport socket.
pub fn chain_keys(chain: &Chain, sds: &[SdsFile], source: SdsSource<'_>) -> String {
    let mut out = String::new();
    let mut matched = Vec::new();
    if let Some(p) = chain.port {
        matched.push(format!("destination_port: {p}"));
    }
    if !chain.server_names.is_empty() {
        let names: Vec<String> = chain
            .server_names
            .iter()
            .map(|n| serde_json::Value::String(n.clone()).to_string())
            .collect();
        matched.push(format!("server_names: [{}]", names.join(", ")));
    }
    if !matched.is_empty() {
        out.push_str(&format!(
            "      filter_chain_match: {{{}}}\n",
            matched.join(", ")
        ));
    }
    if chain.secrets.is_empty() {
        return out;
    }
    out.push_str("      transport_socket:\n        name: envoy.transport_sockets.tls\n        typed_config:\n          \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext\n          common_tls_context:\n            alpn_protocols: [h2, http/1.1]\n            tls_certificate_sds_secret_configs:\n");
    for s in &chain.secrets {
        let config = match source {
            SdsSource::Dir(sds_dir) => {
                let dir = serde_json::Value::String(sds_dir.to_string()).to_string();
                let file = sds.iter().find(|f| &f.name == s).map_or("", |f| &f.file);
                let path = serde_json::Value::String(format!("{sds_dir}/{file}")).to_string();
                format!("path_config_source: {{path: {path}, watched_directory: {{path: {dir}}}}}")
            }
            SdsSource::Ads => "ads: {}".to_string(),
        };
        out.push_str(&format!(
            "            - name: {}\n              sds_config:\n                resource_api_version: V3\n                {config}\n",
            serde_json::Value::String(s.clone())
        ));
    }
    out
}

/// The template slots for a plan: `FIRST_CHAIN_TLS` (keys of the first chain), `MORE_CHAINS`
/// (the other chains, each reusing the first one's filters) and `LISTENER_FILTERS`.
pub fn slots(plan: &TlsPlan, source: SdsSource<'_>) -> [(&'static str, String); 3] {
    let first = plan
        .chains
        .first()
        .map(|c| chain_keys(c, &plan.sds, source))
        .unwrap_or_default();
    let more: String = plan
        .chains
        .iter()
        .skip(1)
        .map(|c| {
            format!(
                "    - filters: *gammaroute_filters\n{}",
                chain_keys(c, &plan.sds, source)
            )
        })
        .collect();
    let filters = if plan.has_tls() {
        "[{name: envoy.filters.listener.tls_inspector, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector}}]"
    } else {
        "[]"
    };
    [
        ("FIRST_CHAIN_TLS", first),
        ("MORE_CHAINS", more),
        ("LISTENER_FILTERS", filters.to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::files;
    use crate::translate::{translate, Settings};

    #[test]
    fn https_listeners_get_sni_chains_and_sds_files() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/golden/tls-listeners/input"
        );
        let (store, _) = files::load(std::path::Path::new(dir));
        let out = translate(&store, &Settings::default());
        let table = &out.tables["gateway/infra/edge"];
        let key = ObjectKey::new("infra", "edge");

        let none = plan(&store, &key, table, None);
        assert_eq!(none.ports, BTreeSet::from([80, 8080]));
        assert!(!none.has_tls() && none.sds.is_empty());

        let p = plan(&store, &key, table, Some("/sds"));
        // Unresolved listeners (missing, forbidden, all of 8443) get no chain.
        assert_eq!(p.ports, BTreeSet::from([80, 443, 8080]));
        let got: Vec<(Option<u16>, Vec<String>, usize)> = p
            .chains
            .iter()
            .map(|c| (c.port, c.server_names.clone(), c.secrets.len()))
            .collect();
        assert_eq!(
            got,
            [
                (Some(80), vec![], 0),
                (Some(8080), vec![], 0),
                (Some(443), vec!["shop.example.com".to_string()], 1),
                (Some(443), vec!["*.example.net".to_string()], 1),
            ]
        );
        let names: Vec<&str> = p.sds.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["certs/wildcard-cert", "infra/shop-cert"]);
        assert!(p.sds[0].content.contains("BEGIN PRIVATE KEY"));
        assert!(!format!("{p:?}").contains("PRIVATE KEY"));
        let [(_, first), (_, more), (_, filters)] = slots(&p, SdsSource::Dir("/sds"));
        assert!(first.contains("destination_port: 80"));
        assert!(more.contains("alpn_protocols: [h2, http/1.1]"));
        assert!(more.contains(r#"path: "/sds/sds-infra-shop-cert.yaml""#));
        assert!(filters.contains("tls_inspector"));
        let names: Vec<String> = p
            .certificates
            .iter()
            .map(|c| c.secret.to_string())
            .collect();
        assert_eq!(names, ["certs/wildcard-cert", "infra/shop-cert"]);
        let [_, (_, ads), _] = slots(&p, SdsSource::Ads);
        assert!(
            ads.contains(
                "sds_config:\n                resource_api_version: V3\n                ads: {}\n"
            ),
            "{ads}"
        );
        assert!(!ads.contains("path_config_source"));
    }
}
