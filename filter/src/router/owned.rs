//! A request that owns its parts, for callers that build requests instead of borrowing a host's
//! header map: tests, fuzz targets, benches, tools. The filter itself routes a [`Request`] over
//! Envoy's headers and never builds one of these.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::request::{Destination, Request};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedRequest {
    pub method: String,
    pub scheme: String,
    pub authority: String,
    /// Path with query string.
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub destination: Destination,
    /// The TLS SNI; empty for plaintext.
    pub server_name: String,
}

impl OwnedRequest {
    /// `from_url("GET", "http://shop.example:8080/a?x=1")`; the destination is `0.0.0.0` and the
    /// URL's port (or the scheme's default), as a gateway listener sees it. `None` without a
    /// `scheme://`.
    pub fn from_url(method: &str, url: &str) -> Option<OwnedRequest> {
        let (scheme, rest) = url.split_once("://")?;
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let path = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        let default_port = if scheme == "https" { 443 } else { 80 };
        let port = authority
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or(default_port);
        Some(OwnedRequest {
            method: method.to_string(),
            scheme: scheme.to_string(),
            authority: authority.to_string(),
            path,
            headers: Vec::new(),
            destination: Destination {
                ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                port,
            },
            server_name: String::new(),
        })
    }

    /// From a header map as Envoy hands it over: the pseudo-headers (`:method`, `:scheme`,
    /// `:authority`, `:path`) become the parts and stay among the headers, as in the filter.
    pub fn from_pairs(pairs: Vec<(String, String)>, destination: Destination) -> OwnedRequest {
        let pseudo = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        OwnedRequest {
            method: pseudo(":method"),
            scheme: pseudo(":scheme"),
            authority: pseudo(":authority"),
            path: pseudo(":path"),
            destination,
            headers: pairs,
            server_name: String::new(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> OwnedRequest {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn headers(self, headers: &[(&str, &str)]) -> OwnedRequest {
        headers.iter().fold(self, |r, (n, v)| r.header(n, v))
    }

    /// Sent on a TLS connection established for `name` (SNI).
    pub fn sni(mut self, name: &str) -> OwnedRequest {
        self.server_name = name.to_string();
        self
    }

    /// Sent to this destination port (the listener port for gateways).
    pub fn port(mut self, port: u16) -> OwnedRequest {
        self.destination.port = port;
        self
    }

    /// Sent to this destination (a Service ClusterIP:port for the mesh).
    pub fn to(mut self, addr: SocketAddr) -> OwnedRequest {
        self.destination = Destination {
            ip: addr.ip(),
            port: addr.port(),
        };
        self
    }

    /// The request as the router reads it.
    pub fn view(&self) -> Request<'_> {
        Request {
            method: &self.method,
            scheme: &self.scheme,
            authority: &self.authority,
            path: &self.path,
            headers: &self.headers,
            destination: self.destination,
            server_name: &self.server_name,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_parts_and_default_ports() {
        let r = OwnedRequest::from_url("GET", "https://shop.example?x=1").unwrap_or_else(|| {
            unreachable!("a URL with a scheme");
        });
        assert_eq!(
            (r.authority.as_str(), r.path.as_str(), r.destination.port),
            ("shop.example", "/?x=1", 443)
        );
        let r = OwnedRequest::from_url("GET", "http://h:8080/a").map(|r| r.destination.port);
        assert_eq!(r, Some(8080));
        assert_eq!(OwnedRequest::from_url("GET", "shop.example/a"), None);
    }

    #[test]
    fn pairs_give_the_parts() {
        let pairs = vec![
            (":method".to_string(), "POST".to_string()),
            (":path".to_string(), "/p".to_string()),
            ("x-a".to_string(), "1".to_string()),
        ];
        let to = Destination {
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 80,
        };
        let r = OwnedRequest::from_pairs(pairs, to);
        let v = r.view();
        assert_eq!((v.method, v.path, v.scheme), ("POST", "/p", ""));
        assert_eq!(v.header("x-a").as_deref(), Some("1"));
    }
}
