//! `render --pusher-ca FILE [--pusher-server-name NAME]`: the bootstraps reach `config-pusher
//! serve --tls-cert` over TLS. The rendered cluster sends SNI (a DNS name) and accepts only a
//! server certificate that chains to the CA and carries the name as a subjectAltName (Envoy
//! `UpstreamTlsContext`, `common_tls_context.validation_context.trusted_ca` and
//! `match_typed_subject_alt_names`). There is no plain-text fallback: a wrong name or CA makes the
//! filter's fetches fail (`gammaroute_fetch_failures_total`) and the proxy keeps its table.

use std::net::IpAddr;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::store::name::NameRule;

/// The name the server's certificate must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerName {
    /// Sent as SNI and matched as a `DNS` subjectAltName.
    Dns(String),
    /// Matched as an `IP_ADDRESS` subjectAltName (no SNI: RFC 6066 §3 forbids IP literals).
    Ip(IpAddr),
}

/// How the proxies verify config-pusher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PusherTls {
    /// The CA bundle (PEM), inlined in the bootstrap so it is self-contained.
    ca_pem: String,
    pub server_name: ServerName,
}

/// Why `--pusher-ca` / `--pusher-server-name` were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PusherTlsError {
    #[error("--pusher-ca {0}: no PEM CERTIFICATE block")]
    NoCertificate(String),
    #[error(
        "--pusher-server-name {0:?}: not a DNS name (RFC 1123 labels, no wildcard) or IP address"
    )]
    Name(String),
}

/// A JSON string literal, which YAML reads as the same string (any content, escaped).
fn quoted(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

impl ServerName {
    /// A DNS name (an RFC 1123 subdomain, as Kubernetes names Services) or an IP address.
    pub fn parse(s: &str) -> Result<ServerName, PusherTlsError> {
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(ServerName::Ip(ip));
        }
        match NameRule::Subdomain.check(s) {
            Ok(()) => Ok(ServerName::Dns(s.to_string())),
            Err(_) => Err(PusherTlsError::Name(s.to_string())),
        }
    }
}

impl PusherTls {
    /// `ca_pem` (the content of `ca_path`) must hold at least one certificate.
    pub fn new(
        ca_path: &str,
        ca_pem: &str,
        server_name: ServerName,
    ) -> Result<PusherTls, PusherTlsError> {
        let certificates = CertificateDer::pem_slice_iter(ca_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap_or_default();
        if certificates.is_empty() {
            return Err(PusherTlsError::NoCertificate(ca_path.to_string()));
        }
        Ok(PusherTls {
            ca_pem: ca_pem.to_string(),
            server_name,
        })
    }

    /// The cluster's `transport_socket`, as YAML lines at `indent` (inside a cluster entry).
    pub fn transport_socket(&self, indent: &str) -> String {
        let (sni, san_type, name) = match &self.server_name {
            ServerName::Dns(n) => (
                format!("{indent}      sni: {}\n", quoted(n)),
                "DNS",
                n.clone(),
            ),
            ServerName::Ip(ip) => (String::new(), "IP_ADDRESS", ip.to_string()),
        };
        format!(
            "{indent}  transport_socket:\n\
             {indent}    name: envoy.transport_sockets.tls\n\
             {indent}    typed_config:\n\
             {indent}      \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext\n\
             {sni}\
             {indent}      common_tls_context:\n\
             {indent}        validation_context:\n\
             {indent}          trusted_ca: {{inline_string: {}}}\n\
             {indent}          match_typed_subject_alt_names: [{{san_type: {san_type}, matcher: {{exact: {}}}}}]\n",
            quoted(&self.ca_pem),
            quoted(&name),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEM: &str = "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n";

    #[test]
    fn server_names_are_dns_names_or_ips() {
        assert_eq!(
            ServerName::parse("config-pusher.gammaroute-system.svc").unwrap(),
            ServerName::Dns("config-pusher.gammaroute-system.svc".into())
        );
        assert!(matches!(
            ServerName::parse("10.0.0.1"),
            Ok(ServerName::Ip(_))
        ));
        assert!(matches!(ServerName::parse("::1"), Ok(ServerName::Ip(_))));
        for bad in [
            "",
            "*.svc",
            "Upper.svc",
            "a..b",
            "-a.b",
            "a b",
            "a\"b",
            "{{x}}",
        ] {
            assert!(ServerName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_ca_must_hold_a_certificate() {
        let name = ServerName::Dns("cp.test".into());
        assert!(PusherTls::new("ca.crt", PEM, name.clone()).is_ok());
        assert_eq!(
            PusherTls::new("ca.crt", "not pem", name).unwrap_err(),
            PusherTlsError::NoCertificate("ca.crt".into())
        );
    }

    #[test]
    fn the_transport_socket_verifies_the_name_against_the_ca() {
        let dns = PusherTls::new("ca", PEM, ServerName::Dns("cp.test".into())).unwrap();
        let y = dns.transport_socket("  ");
        assert!(y.contains("      sni: \"cp.test\"\n"), "{y}");
        assert!(
            y.contains("san_type: DNS, matcher: {exact: \"cp.test\"}"),
            "{y}"
        );
        assert!(y.contains("trusted_ca: {inline_string: \"-----BEGIN CERTIFICATE-----\\nMAA=\\n"));
        let ip = PusherTls::new("ca", PEM, ServerName::Ip([127, 0, 0, 1].into())).unwrap();
        let y = ip.transport_socket("");
        assert!(!y.contains("sni:"), "{y}");
        assert!(
            y.contains("san_type: IP_ADDRESS, matcher: {exact: \"127.0.0.1\"}"),
            "{y}"
        );
    }
}
