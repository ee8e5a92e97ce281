//! The xDS resources of each proxy role, as protobuf (envoy-types' generated Envoy API types):
//! CDS clusters, EDS endpoints and SDS certificates — pure, from the same [`envoy::Cluster`]s and
//! certificates `render` and `serve --xds-dir` use, so the three ways to configure Envoy never
//! disagree.
//!
//! - A cluster whose endpoints are addresses (EndpointSlices, `--backend`) is `type: EDS` with
//!   `eds_config: {ads: {}}`: a scaled Deployment changes its `ClusterLoadAssignment` only, not
//!   the cluster (Envoy then keeps the cluster's connection pools). A cluster on a DNS name
//!   (`STRICT_DNS`, a Service without EndpointSlices) carries its `load_assignment` itself.
//! - A Secret (`tls_certificate`) per certificate a gateway role's HTTPS listeners serve,
//!   named `<namespace>/<name>` as the bootstrap's `sds_config: {ads: {}}` asks for it.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::cluster::v3::{self as cluster, Cluster};
use envoy_types::pb::envoy::config::core::v3::{
    self as core, address, config_source, data_source, socket_address, Address, ApiVersion,
    ConfigSource, DataSource, Http2ProtocolOptions, SocketAddress,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    lb_endpoint, ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    secret, Secret, TlsCertificate,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    http_protocol_options, HttpProtocolOptions,
};
use envoy_types::pb::google::protobuf::{Any, Duration};
use gammaroute_filter::table::RouteTable;
use prost::{Message, Name};

use crate::render::envoy::{self, BootstrapOptions, Endpoints, UpstreamProtocol};
use crate::render::tls;
use crate::store::{ObjectKey, Store};

use super::protocol::Resources;

/// `type.googleapis.com/envoy.config.cluster.v3.Cluster`
pub fn cluster_type() -> String {
    Cluster::type_url()
}

/// `type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment`
pub fn endpoints_type() -> String {
    ClusterLoadAssignment::type_url()
}

/// `type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret`
pub fn secret_type() -> String {
    Secret::type_url()
}

/// The resources of one role: the clusters of `tables` (the role's table, and the one it
/// replaces, whose clusters stay until the next translation so that a proxy still on it finds
/// them), their endpoints, and for a gateway role its listeners' certificates.
pub fn role_resources(
    store: &Store,
    role: &str,
    tables: &[&RouteTable],
    options: &BootstrapOptions,
) -> Resources {
    let mut out = Resources::new();
    let clusters = envoy::distinct_clusters(store, tables.iter().copied(), options);
    let (cds, eds) = (cluster_type(), endpoints_type());
    for c in &clusters {
        let (proto, assignment) = cluster(c);
        out.entry(cds.clone())
            .or_default()
            .insert(c.name.clone(), proto.encode_to_vec());
        if let Some(a) = assignment {
            out.entry(eds.clone())
                .or_default()
                .insert(c.name.clone(), a.encode_to_vec());
        }
    }
    if let Some((ns, name)) = role
        .strip_prefix("gateway/")
        .and_then(|r| r.split_once('/'))
    {
        let key = ObjectKey::new(ns, name);
        for t in tables {
            // Any directory makes `plan` resolve the certificates; the path is not used here.
            for c in tls::plan(store, &key, t, Some("")).certificates {
                out.entry(secret_type())
                    .or_default()
                    .insert(c.secret.to_string(), certificate(&c).encode_to_vec());
            }
        }
    }
    out
}

/// Every role's resources, for the roles of `previous` and `next` (by role: their tables).
pub fn snapshot(
    store: &Store,
    tables: &BTreeMap<String, Vec<&RouteTable>>,
    options: &BootstrapOptions,
) -> BTreeMap<String, Resources> {
    tables
        .iter()
        .map(|(role, ts)| (role.clone(), role_resources(store, role, ts, options)))
        .collect()
}

/// `{ads: {}}`: the resource comes on the ADS stream that delivered the cluster or listener.
pub fn ads_source() -> ConfigSource {
    ConfigSource {
        resource_api_version: ApiVersion::V3 as i32,
        config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(
            core::AggregatedConfigSource {},
        )),
        ..ConfigSource::default()
    }
}

/// The protobuf cluster, and its endpoints when they go through EDS.
pub fn cluster(c: &envoy::Cluster) -> (Cluster, Option<ClusterLoadAssignment>) {
    let mut out = Cluster {
        name: c.name.clone(),
        connect_timeout: Some(Duration {
            seconds: 1,
            nanos: 0,
        }),
        ..Cluster::default()
    };
    if c.protocol == UpstreamProtocol::H2c {
        let options = HttpProtocolOptions {
            upstream_protocol_options: Some(
                http_protocol_options::UpstreamProtocolOptions::ExplicitHttpConfig(
                    http_protocol_options::ExplicitHttpConfig {
                        protocol_config: Some(
                            http_protocol_options::explicit_http_config::ProtocolConfig::Http2ProtocolOptions(
                                Http2ProtocolOptions::default(),
                            ),
                        ),
                    },
                ),
            ),
            ..HttpProtocolOptions::default()
        };
        out.typed_extension_protocol_options.insert(
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions".into(),
            any(&options),
        );
    }
    let discovery = |t: cluster::cluster::DiscoveryType| {
        Some(cluster::cluster::ClusterDiscoveryType::Type(t as i32))
    };
    match &c.endpoints {
        Endpoints::Static(addrs) => {
            out.cluster_discovery_type = discovery(cluster::cluster::DiscoveryType::Eds);
            out.eds_cluster_config = Some(cluster::cluster::EdsClusterConfig {
                eds_config: Some(ads_source()),
                service_name: String::new(),
            });
            let assignment = assignment(
                &c.name,
                addrs.iter().map(|a| (a.ip().to_string(), a.port())),
            );
            (out, Some(assignment))
        }
        Endpoints::Dns { host, port } => {
            out.cluster_discovery_type = discovery(cluster::cluster::DiscoveryType::StrictDns);
            out.load_assignment = Some(assignment(&c.name, [(host.clone(), *port)]));
            (out, None)
        }
    }
}

fn assignment(name: &str, addrs: impl IntoIterator<Item = (String, u16)>) -> ClusterLoadAssignment {
    let lb_endpoints = addrs
        .into_iter()
        .map(|(host, port)| LbEndpoint {
            host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                address: Some(socket(host, port)),
                ..Endpoint::default()
            })),
            ..LbEndpoint::default()
        })
        .collect();
    ClusterLoadAssignment {
        cluster_name: name.to_string(),
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints,
            ..LocalityLbEndpoints::default()
        }],
        ..ClusterLoadAssignment::default()
    }
}

/// An Envoy `Address` for a host (IP or DNS name) and port.
pub fn socket(host: String, port: u16) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: host,
            port_specifier: Some(socket_address::PortSpecifier::PortValue(u32::from(port))),
            ..SocketAddress::default()
        })),
    }
}

/// A `tls_certificate` Secret with the PEM chain and key inline.
pub fn certificate(c: &crate::translate::tls::Certificate) -> Secret {
    let inline = |bytes: &[u8]| DataSource {
        specifier: Some(data_source::Specifier::InlineBytes(bytes.to_vec())),
        ..DataSource::default()
    };
    Secret {
        name: c.secret.to_string(),
        r#type: Some(secret::Type::TlsCertificate(TlsCertificate {
            certificate_chain: Some(inline(&c.chain)),
            private_key: Some(inline(c.key.expose())),
            ..TlsCertificate::default()
        })),
    }
}

/// A message packed into `google.protobuf.Any`.
pub fn any<M: Message + Name>(m: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: m.encode_to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;
    use crate::source::files;
    use crate::translate::{translate, Settings};

    #[test]
    fn address_clusters_go_through_eds_and_dns_clusters_carry_their_endpoints() {
        let addr: SocketAddr = "127.0.0.1:9000".parse().unwrap();
        let (eds, assignment) = cluster(&envoy::Cluster {
            name: "shop/web:80".into(),
            endpoints: Endpoints::Static(vec![addr]),
            protocol: UpstreamProtocol::H2c,
            tls: None,
        });
        assert_eq!(
            eds.cluster_discovery_type,
            Some(cluster::cluster::ClusterDiscoveryType::Type(
                cluster::cluster::DiscoveryType::Eds as i32
            ))
        );
        assert_eq!(
            eds.eds_cluster_config.unwrap().eds_config,
            Some(ads_source())
        );
        assert!(eds.load_assignment.is_none());
        assert!(eds
            .typed_extension_protocol_options
            .contains_key("envoy.extensions.upstreams.http.v3.HttpProtocolOptions"));
        let assignment = assignment.unwrap();
        assert_eq!(assignment.cluster_name, "shop/web:80");
        assert_eq!(assignment.endpoints[0].lb_endpoints.len(), 1);

        let (dns, none) = cluster(&envoy::Cluster {
            name: "shop/web:80".into(),
            endpoints: Endpoints::Dns {
                host: "web.shop.svc.cluster.local".into(),
                port: 80,
            },
            protocol: UpstreamProtocol::Http1,
            tls: None,
        });
        assert!(none.is_none());
        assert!(dns.load_assignment.is_some());
        assert!(dns.typed_extension_protocol_options.is_empty());
    }

    #[test]
    fn a_gateway_role_gets_its_listeners_certificates() {
        let input = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/golden/tls-listeners/input"
        );
        let (store, _) = files::load(std::path::Path::new(input));
        let out = translate(&store, &Settings::default());
        let role = "gateway/infra/edge";
        let r = role_resources(
            &store,
            role,
            &[&out.tables[role]],
            &BootstrapOptions::default(),
        );
        let names: Vec<&String> = r[&secret_type()].keys().collect();
        assert_eq!(names, ["certs/wildcard-cert", "infra/shop-cert"]);
        let secret = Secret::decode(r[&secret_type()]["infra/shop-cert"].as_slice()).unwrap();
        let Some(secret::Type::TlsCertificate(tls)) = secret.r#type else {
            panic!("not a tls_certificate");
        };
        let Some(data_source::Specifier::InlineBytes(key)) = tls.private_key.unwrap().specifier
        else {
            panic!("key not inline");
        };
        assert!(String::from_utf8_lossy(&key).contains("PRIVATE KEY"));
        assert!(r.contains_key(&cluster_type()));
    }
}
