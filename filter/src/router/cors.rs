//! CORS (`HTTPCORSFilter`, GEP-1767): the gateway is "the final authority on a CORS preflight
//! request", so preflights are answered locally; actual requests are forwarded and get the
//! `Access-Control-*` response headers when their origin is allowed.

use std::borrow::Cow;

use super::request::Request;
use crate::table::origin::OriginPattern;
use crate::table::Cors;

// `origins` below are the filter's `allowOrigins` as the table check parsed them
// ([`crate::table::CorsOrigins`]): a request is compared against them without parsing the
// entries again.

/// `OPTIONS` with `Origin` and `Access-Control-Request-Method`.
pub fn is_preflight(req: &Request<'_>) -> bool {
    req.method == "OPTIONS"
        && req.header("origin").is_some()
        && req.header("access-control-request-method").is_some()
}

/// Headers answering a preflight; empty when the origin is not allowed (the response is then a
/// plain 200 the browser treats as a refusal).
pub fn preflight_headers<'r>(
    cors: &'r Cors,
    origins: &[OriginPattern],
    req: &Request<'_>,
) -> Vec<(Cow<'r, str>, Cow<'r, str>)> {
    let mut out = Vec::new();
    let Some(origin) = allowed_origin(origins, req) else {
        return out;
    };
    push_origin(&mut out, origin, cors.allow_credentials);
    if let Some(method) = req.header("access-control-request-method") {
        if let Some(v) = list_or_star(&cors.allow_methods, cors.allow_credentials, &method) {
            out.push(("access-control-allow-methods".into(), v));
        }
    }
    if let Some(headers) = req.header("access-control-request-headers") {
        if let Some(v) = list_or_star(&cors.allow_headers, cors.allow_credentials, &headers) {
            out.push(("access-control-allow-headers".into(), v));
        }
    }
    out.push((
        "access-control-max-age".into(),
        cors.max_age_seconds.to_string().into(),
    ));
    push_expose(&mut out, cors);
    out
}

/// Response headers for an actual (non-preflight) cross-origin request.
pub fn response_headers<'r>(
    cors: &'r Cors,
    origins: &[OriginPattern],
    req: &Request<'_>,
) -> Vec<(Cow<'r, str>, Cow<'r, str>)> {
    let mut out = Vec::new();
    let Some(origin) = allowed_origin(origins, req) else {
        return out;
    };
    push_origin(&mut out, origin, cors.allow_credentials);
    push_expose(&mut out, cors);
    out
}

/// `access-control-expose-headers`, on preflights too (upstream `HTTPRouteCORS` expects it there).
/// exposeHeaders `*` with credentials: "the gateway cannot use the `*`", and the upstream's header
/// names are not known when the request is routed, so nothing is exposed.
fn push_expose<'r>(out: &mut Vec<(Cow<'r, str>, Cow<'r, str>)>, cors: &'r Cors) {
    let star_with_credentials =
        cors.allow_credentials && cors.expose_headers.iter().any(|h| h == "*");
    if !cors.expose_headers.is_empty() && !star_with_credentials {
        out.push((
            "access-control-expose-headers".into(),
            cors.expose_headers.join(", ").into(),
        ));
    }
}

/// The allowed origin is always echoed, with `Vary: Origin`, even for `allowOrigins: ["*"]`
/// without credentials: an echo is valid with and without credentials (a `*` is not with them),
/// and upstream `HTTPRouteCORS` expects the echo on actual requests of such a policy.
fn push_origin<'r>(out: &mut Vec<(Cow<'r, str>, Cow<'r, str>)>, origin: String, credentials: bool) {
    out.push(("access-control-allow-origin".into(), origin.into()));
    out.push(("vary".into(), "Origin".into()));
    if credentials {
        out.push(("access-control-allow-credentials".into(), "true".into()));
    }
}

/// The configured list joined, or for `*`: `*` without credentials, the requested value with them
/// (browsers take `*` literally when credentials are included).
fn list_or_star<'r>(
    list: &'r [String],
    credentials: bool,
    requested: &str,
) -> Option<Cow<'r, str>> {
    if list.is_empty() {
        return None;
    }
    if list.iter().any(|m| m == "*") {
        return Some(if credentials {
            requested.to_string().into()
        } else {
            "*".into()
        });
    }
    Some(list.join(", ").into())
}

/// The request's `Origin` if one of the filter's parsed `allowOrigins` allows it
/// ([`OriginPattern::matches`]).
fn allowed_origin(origins: &[OriginPattern], req: &Request<'_>) -> Option<String> {
    let origin = req.header("origin")?;
    origins
        .iter()
        .any(|pattern| pattern.matches(&origin))
        .then(|| origin.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::request::Destination;
    use std::net::{IpAddr, Ipv4Addr};

    fn origin_matches(pattern: &str, origin: &str) -> bool {
        OriginPattern::parse(pattern).is_ok_and(|p| p.matches(origin))
    }

    /// The filter's origins as the table check parses them.
    fn parsed(c: &Cors) -> Vec<OriginPattern> {
        c.allow_origins
            .iter()
            .map(|o| OriginPattern::parse(o).unwrap())
            .collect()
    }

    #[test]
    fn origins() {
        // GEP-1767: `*` is a greedy match to the left; default ports by scheme.
        assert!(origin_matches(
            "https://*.example.com",
            "https://a.b.example.com"
        ));
        assert!(origin_matches(
            "https://*.example.com",
            "https://a.example.com:443"
        ));
        assert!(!origin_matches(
            "https://*.example.com",
            "https://example.com"
        ));
        assert!(!origin_matches(
            "https://*.example.com",
            "http://a.example.com"
        ));
        assert!(origin_matches(
            "http://foo.example:8080",
            "http://foo.example:8080"
        ));
        assert!(!origin_matches(
            "http://foo.example:8080",
            "http://foo.example"
        ));
        assert!(origin_matches("*", "null"));
        assert!(!origin_matches("https://foo.example", "null"));
    }

    fn req<'a>(method: &'a str, headers: &'a [(String, String)]) -> Request<'a> {
        Request {
            method,
            scheme: "http",
            authority: "api.example",
            path: "/",
            headers,
            destination: Destination {
                ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
                port: 80,
            },
            server_name: "",
        }
    }

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn cors() -> Cors {
        Cors {
            allow_origins: vec!["https://*.example.com".into()],
            allow_credentials: true,
            allow_methods: vec!["GET".into(), "PUT".into()],
            allow_headers: vec!["*".into()],
            expose_headers: vec!["x-trace".into()],
            max_age_seconds: 5,
        }
    }

    #[test]
    fn preflight_allowed() {
        let headers = h(&[
            ("origin", "https://app.example.com"),
            ("access-control-request-method", "PUT"),
            ("access-control-request-headers", "x-a, x-b"),
        ]);
        let r = req("OPTIONS", &headers);
        assert!(is_preflight(&r));
        let c = cors();
        let got = preflight_headers(&c, &parsed(&c), &r);
        let got: Vec<(&str, &str)> = got.iter().map(|(k, v)| (&**k, &**v)).collect();
        assert_eq!(
            got,
            vec![
                ("access-control-allow-origin", "https://app.example.com"),
                ("vary", "Origin"),
                ("access-control-allow-credentials", "true"),
                ("access-control-allow-methods", "GET, PUT"),
                // `*` with credentials echoes the requested headers.
                ("access-control-allow-headers", "x-a, x-b"),
                ("access-control-max-age", "5"),
                ("access-control-expose-headers", "x-trace"),
            ]
        );
    }

    #[test]
    fn preflight_refused_origin_gets_no_cors_headers() {
        let headers = h(&[
            ("origin", "https://evil.test"),
            ("access-control-request-method", "GET"),
        ]);
        let c = cors();
        assert!(preflight_headers(&c, &parsed(&c), &req("OPTIONS", &headers)).is_empty());
        // Not a preflight without Access-Control-Request-Method.
        assert!(!is_preflight(&req(
            "OPTIONS",
            &h(&[("origin", "https://a.example.com")])
        )));
    }

    #[test]
    fn actual_request_headers() {
        let headers = h(&[("origin", "https://app.example.com")]);
        let c = cors();
        let got = response_headers(&c, &parsed(&c), &req("GET", &headers));
        assert!(got
            .iter()
            .any(|(k, v)| k == "access-control-expose-headers" && v == "x-trace"));
        let mut open = cors();
        open.allow_origins = vec!["*".into()];
        open.allow_credentials = false;
        let got = response_headers(&open, &parsed(&open), &req("GET", &headers));
        assert_eq!(
            got.first().map(|(_, v)| v.as_ref()),
            Some("https://app.example.com")
        );
        assert!(response_headers(&c, &parsed(&c), &req("GET", &[])).is_empty());
    }
}
