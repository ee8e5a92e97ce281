//! The request as the router sees it: borrowed strings read once from the host.

use std::borrow::Cow;
use std::net::IpAddr;

/// The parts of a request routing looks at. The host reads the request headers once and lends
/// them here; nothing is copied unless a value must be normalised.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `:method`.
    pub method: &'a str,
    /// `:scheme` (`http` or `https`), used by redirects that keep the scheme.
    pub scheme: &'a str,
    /// `:authority` / `Host`, possibly with a port.
    pub authority: &'a str,
    /// `:path`, with the query string.
    pub path: &'a str,
    /// All request headers in arrival order; names as the host gives them (Envoy: lowercase).
    pub headers: &'a [(String, String)],
    /// Where the connection was sent: the listener port for gateways, the Service ClusterIP:port
    /// for the mesh.
    pub destination: Destination,
    /// The TLS server name (SNI) the connection was established with (Envoy's
    /// `connection.requested_server_name`); empty for plaintext or a client without SNI. A
    /// gateway answers 421 to a request whose Host belongs to another listener than this name's
    /// (HTTP/2 connection coalescing; RFC 9110 §15.5.20).
    pub server_name: &'a str,
}

/// The connection's destination address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Destination {
    pub ip: IpAddr,
    pub port: u16,
}

impl<'a> Request<'a> {
    /// The path without query string or fragment.
    pub fn path_only(&self) -> &'a str {
        split_path(self.path).0
    }

    /// The query string without `?` (empty when absent).
    pub fn query(&self) -> &'a str {
        split_path(self.path).1
    }

    /// The Host without its port, lowercase. Gateway API: implementations "MUST ignore any port
    /// value specified in the HTTP Host header while performing a match".
    pub fn host(&self) -> Cow<'a, str> {
        lowercase(strip_port(self.authority))
    }

    /// Every value of header `name` (case-insensitive), in the order sent. An `HTTPHeaderMatch`
    /// holds when any of them matches: what Envoy's own route matchers do (each value on its
    /// own, checked against Envoy 1.40 in host-tests `differential.rs`), so a route behaves as
    /// under a native Envoy implementation; the spec leaves repeated headers
    /// implementation-specific.
    pub fn header_values<'s>(
        &'s self,
        name: &'s str,
    ) -> impl Iterator<Item = &'a str> + Clone + 's {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The value of header `name` (case-insensitive), or `None` when absent. A header sent several
    /// times is seen as its values joined with `,` (RFC 9110 §5.3): for reading a header (CORS),
    /// not for route matches ([`Request::header_values`]).
    pub fn header(&self, name: &str) -> Option<Cow<'a, str>> {
        let mut values = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str());
        let first = values.next()?;
        let Some(second) = values.next() else {
            return Some(Cow::Borrowed(first));
        };
        // Repeated: one allocation of the final size, so a header sent n times costs O(total
        // length), not O(n²) (each `format!` of the growing prefix copied it again).
        let rest = || {
            self.headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .skip(2)
                .map(|(_, v)| v.as_str())
        };
        let len = rest().fold(first.len() + 1 + second.len(), |n, v| n + 1 + v.len());
        let mut joined = String::with_capacity(len);
        joined.push_str(first);
        for v in std::iter::once(second).chain(rest()) {
            joined.push(',');
            joined.push_str(v);
        }
        Some(Cow::Owned(joined))
    }

    /// The value of query parameter `name` (case-sensitive, percent-decoded), first occurrence
    /// only — the Gateway API's recommended reading of repeated parameters.
    pub fn query_param(&self, name: &str) -> Option<Cow<'a, str>> {
        self.query()
            .split('&')
            .filter(|pair| !pair.is_empty())
            .find_map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (percent_decode(k) == name).then(|| percent_decode(v))
            })
    }
}

/// `s` in ASCII lowercase, borrowed when it already is (hostnames are compared lowercase).
pub fn lowercase(s: &str) -> Cow<'_, str> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(s.to_ascii_lowercase())
    } else {
        Cow::Borrowed(s)
    }
}

/// Splits `:path` into path and query; a `#fragment` (never sent by conforming clients) is dropped.
pub fn split_path(full: &str) -> (&str, &str) {
    let full = full.split_once('#').map_or(full, |(p, _)| p);
    full.split_once('?').unwrap_or((full, ""))
}

/// `host[:port]` → `host`; IPv6 literals keep their brackets.
pub fn strip_port(authority: &str) -> &str {
    if authority.starts_with('[') {
        return match authority.find(']') {
            Some(end) => authority.get(..=end).unwrap_or(authority),
            None => authority,
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

/// Decodes `%XX` escapes; invalid escapes and non-UTF-8 results are kept as they were.
pub fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.contains('%') {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    match String::from_utf8(out) {
        Ok(decoded) => Cow::Owned(decoded),
        Err(_) => Cow::Borrowed(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn req<'a>(authority: &'a str, path: &'a str, headers: &'a [(String, String)]) -> Request<'a> {
        Request {
            method: "GET",
            scheme: "http",
            authority,
            path,
            headers,
            destination: Destination {
                ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
                port: 80,
            },
            server_name: "",
        }
    }

    #[test]
    fn host_ignores_port_and_case() {
        // HTTPRouteSpec.hostnames: "MUST ignore any port value specified in the HTTP Host header".
        assert_eq!(req("Shop.Example:8080", "/", &[]).host(), "shop.example");
        assert_eq!(req("shop.example", "/", &[]).host(), "shop.example");
        assert_eq!(req("[::1]:80", "/", &[]).host(), "[::1]");
    }

    #[test]
    fn path_and_query_split() {
        let r = req("h", "/a/b?x=1&y=2#frag", &[]);
        assert_eq!(r.path_only(), "/a/b");
        assert_eq!(r.query(), "x=1&y=2");
        assert_eq!(req("h", "/a#f?x", &[]).query(), "");
    }

    #[test]
    fn headers_case_insensitive_and_joined() {
        let h = vec![
            ("X-Env".to_string(), "canary".to_string()),
            ("x-env".to_string(), "b".to_string()),
            ("other".to_string(), "".to_string()),
        ];
        let r = req("h", "/", &h);
        assert_eq!(r.header("x-env").as_deref(), Some("canary,b"));
        assert_eq!(r.header("OTHER").as_deref(), Some(""));
        assert_eq!(r.header("missing"), None);
    }

    #[test]
    fn query_param_first_wins_case_sensitive_decoded() {
        // HTTPQueryParamMatch: names are case-sensitive; "match against the first value".
        let r = req(
            "h",
            "/p?animal=whale&animal=dolphin&Color=blue&sp=a%20b&flag",
            &[],
        );
        assert_eq!(r.query_param("animal").as_deref(), Some("whale"));
        assert_eq!(r.query_param("color"), None);
        assert_eq!(r.query_param("Color").as_deref(), Some("blue"));
        assert_eq!(r.query_param("sp").as_deref(), Some("a b"));
        assert_eq!(r.query_param("flag").as_deref(), Some(""));
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }
}
