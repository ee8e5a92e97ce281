//! `HTTPPathModifier` for URLRewrite and RequestRedirect, and redirect `Location`s.

use super::request::Request;
use crate::table::{PathMatch, PathModifier, Redirect};

/// The new path (without query) for a path modifier. `matched` is the path match that selected
/// the rule: `ReplacePrefixMatch` replaces its prefix, element-wise. Never returns an empty path.
///
/// | request  | prefix        | replacement   | result    |
/// |----------|---------------|---------------|-----------|
/// | /foo/bar | /foo or /foo/ | /xyz or /xyz/ | /xyz/bar  |
/// | /foo     | /foo          | /xyz          | /xyz      |
/// | /foo/    | /foo          | /xyz          | /xyz/     |
/// | /foo/bar | /foo          | (empty)       | /bar      |
/// | /foo/    | /foo          | (empty) or /  | /         |
pub fn modify_path(path: &str, modifier: &PathModifier, matched: &PathMatch) -> String {
    match modifier {
        PathModifier::ReplaceFullPath(full) => non_empty(full.clone()),
        PathModifier::ReplacePrefixMatch(replacement) => match matched {
            PathMatch::Prefix(prefix) => replace_prefix(path, prefix, replacement),
            // Validation only allows ReplacePrefixMatch on PathPrefix matches.
            PathMatch::Exact(_) | PathMatch::Regex(_) => path.to_string(),
        },
    }
}

/// Replaces the segment-wise `prefix` of `path` (which the prefix matched) by `replacement`.
pub fn replace_prefix(path: &str, prefix: &str, replacement: &str) -> String {
    let prefix = prefix.trim_end_matches('/');
    let rest = path.get(prefix.len()..).unwrap_or("");
    let mut out = String::with_capacity(replacement.len() + rest.len());
    out.push_str(replacement.trim_end_matches('/'));
    out.push_str(rest);
    non_empty(out)
}

fn non_empty(path: String) -> String {
    if path.is_empty() {
        "/".to_string()
    } else {
        path
    }
}

/// Joins a path and the request's query string.
pub fn with_query(path: String, query: &str) -> String {
    if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    }
}

/// The `Location` of a RequestRedirect. Port rules (HTTPRequestRedirectFilter.port): an explicit
/// port wins; else a redirect scheme brings its well-known port; else the parent's port (the
/// listener's, or the Service port for mesh parents). The port is left out when it is the
/// scheme's well-known one. The query string is kept.
pub fn location(
    redirect: &Redirect,
    req: &Request<'_>,
    matched: &PathMatch,
    parent_port: u16,
) -> String {
    let scheme = redirect.scheme.map_or(req.scheme, |s| s.as_str());
    let host = match &redirect.hostname {
        Some(h) => std::borrow::Cow::Borrowed(h.as_str()),
        // The request's Host as sent (without its port), not the lowercased matching form.
        None => std::borrow::Cow::Borrowed(super::request::strip_port(req.authority)),
    };
    let port = match (redirect.port, redirect.scheme.map(|s| s.as_str())) {
        (Some(port), _) => Some(port),
        (None, Some(s)) => well_known_port(s),
        (None, None) => Some(parent_port),
    };
    let path = match &redirect.path {
        Some(modifier) => modify_path(req.path_only(), modifier, matched),
        None => req.path_only().to_string(),
    };
    let mut out = format!("{scheme}://{host}");
    if let Some(port) = port.filter(|&p| Some(p) != well_known_port(scheme)) {
        out.push(':');
        out.push_str(&port.to_string());
    }
    with_query(out + &path, req.query())
}

fn well_known_port(scheme: &str) -> Option<u16> {
    match scheme {
        s if s.eq_ignore_ascii_case("http") => Some(80),
        s if s.eq_ignore_ascii_case("https") => Some(443),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::request::Destination;
    use crate::table::{RedirectCode, Scheme};
    use std::net::{IpAddr, Ipv4Addr};

    #[test]
    fn replace_prefix_match_table() {
        // The table in HTTPPathModifier.replacePrefixMatch's documentation.
        for (path, prefix, replacement, want) in [
            ("/foo/bar", "/foo", "/xyz", "/xyz/bar"),
            ("/foo/bar", "/foo/", "/xyz", "/xyz/bar"),
            ("/foo/bar", "/foo", "/xyz/", "/xyz/bar"),
            ("/foo/bar", "/foo/", "/xyz/", "/xyz/bar"),
            ("/foo", "/foo", "/xyz", "/xyz"),
            ("/foo/", "/foo", "/xyz", "/xyz/"),
            ("/foo/bar", "/foo", "", "/bar"),
            ("/foo/", "/foo", "", "/"),
            ("/foo", "/foo", "", "/"),
            ("/foo/", "/foo", "/", "/"),
            ("/foo", "/foo", "/", "/"),
            ("/bar", "/", "/xyz", "/xyz/bar"),
        ] {
            assert_eq!(
                replace_prefix(path, prefix, replacement),
                want,
                "{path} {prefix} {replacement}"
            );
        }
    }

    fn req<'a>(scheme: &'a str, authority: &'a str, path: &'a str) -> Request<'a> {
        Request {
            method: "GET",
            scheme,
            authority,
            path,
            headers: &[],
            destination: Destination {
                ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
                port: 8080,
            },
            server_name: "",
        }
    }

    fn redirect(scheme: Option<Scheme>, hostname: Option<&str>, port: Option<u16>) -> Redirect {
        Redirect {
            scheme,
            hostname: hostname.map(String::from),
            path: None,
            port,
            status_code: RedirectCode::Found,
        }
    }

    #[test]
    fn redirect_ports() {
        let any = PathMatch::Prefix("/".into());
        let r = req("http", "shop.example:8080", "/a?x=1");
        // Listener :8080 + hostname only → the listener port is kept.
        assert_eq!(
            location(&redirect(None, Some("new.example"), None), &r, &any, 8080),
            "http://new.example:8080/a?x=1"
        );
        // scheme https only → its well-known port, left out.
        assert_eq!(
            location(&redirect(Some(Scheme::Https), None, None), &r, &any, 8080),
            "https://shop.example/a?x=1"
        );
        // Explicit port kept, even with a scheme.
        assert_eq!(
            location(
                &redirect(Some(Scheme::Https), None, Some(8443)),
                &r,
                &any,
                8080
            ),
            "https://shop.example:8443/a?x=1"
        );
        // :443 listener + scheme http → http's well-known port, left out.
        let tls = req("https", "shop.example", "/");
        assert_eq!(
            location(&redirect(Some(Scheme::Http), None, None), &tls, &any, 443),
            "http://shop.example/"
        );
        // Listener :80, nothing set → no port.
        assert_eq!(
            location(
                &redirect(None, None, None),
                &req("http", "h", "/p"),
                &any,
                80
            ),
            "http://h/p"
        );
        // Explicit well-known port is left out.
        assert_eq!(
            location(
                &redirect(None, None, Some(80)),
                &req("http", "h", "/p"),
                &any,
                8080
            ),
            "http://h/p"
        );
    }

    #[test]
    fn redirect_paths() {
        let prefix = PathMatch::Prefix("/old".into());
        let mut r = redirect(None, None, None);
        r.path = Some(PathModifier::ReplacePrefixMatch("/new".into()));
        assert_eq!(
            location(&r, &req("http", "h", "/old/x?q"), &prefix, 80),
            "http://h/new/x?q"
        );
        r.path = Some(PathModifier::ReplaceFullPath("/full".into()));
        assert_eq!(
            location(&r, &req("http", "h", "/old/x"), &prefix, 80),
            "http://h/full"
        );
    }
}
