//! CORS origins (GEP-1767, `HTTPCORSFilter.allowOrigins`): the one parser of an `allowOrigins`
//! entry — the table check refuses what it refuses, the router matches what it returns — and the
//! comparison with a request's `Origin` header.
//!
//! Before this module the check and the router each had their own parser with different rules
//! (the router's also took IPv6 literals and any scheme in a pattern).

/// A parsed `allowOrigins` entry. Owned, so a checked table keeps it and a request is compared
/// against it without parsing the entry again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginPattern {
    /// `*`: every origin (also `null`).
    Any,
    /// `<scheme>://<host>[:<port>]`.
    Site {
        scheme: Scheme,
        host: HostPattern,
        /// The explicit port, else the scheme's (80, 443).
        port: u16,
    },
}

/// The host part of an [`OriginPattern::Site`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// `*`: any host.
    Any,
    /// `*.example.com`: one or more labels, then this suffix (kept with its leading `.`).
    Suffix(Box<str>),
    /// `example.com`, compared ASCII case-insensitively.
    Exact(Box<str>),
}

/// The scheme of an [`OriginPattern::Site`]: CORSOrigin allows only these two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

impl std::fmt::Display for Scheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl OriginPattern {
    /// CORSOrigin: `*`, or `http(s)://` + host (`*`, or an optional `*.` then labels of letters,
    /// digits and `-`) + optional `:port`. Ports must also fit 1-65535 (the CRD allows any 5
    /// digits; no request could match a larger one).
    pub fn parse(o: &str) -> Result<OriginPattern, &'static str> {
        if o == "*" {
            return Ok(OriginPattern::Any);
        }
        if o.len() > 253 {
            return Err("longer than 253 bytes");
        }
        let Some((scheme, rest)) = o.split_once("://") else {
            return Err("must be `*` or <scheme>://<host>[:<port>]");
        };
        let (scheme, default_port) = match scheme {
            "http" => (Scheme::Http, 80),
            "https" => (Scheme::Https, 443),
            _ => return Err("the scheme must be http or https"),
        };
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        };
        let port = match port {
            None => default_port,
            Some(p) => {
                if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err("the port must be 1 to 5 digits");
                }
                match p.parse::<u16>() {
                    Ok(n) if n != 0 => n,
                    _ => return Err("the port must be 1-65535"),
                }
            }
        };
        if host == "*" {
            return Ok(OriginPattern::Site {
                scheme,
                host: HostPattern::Any,
                port,
            });
        }
        let name = host.strip_prefix("*.").unwrap_or(host);
        for label in name.split('.') {
            if label.is_empty() {
                return Err("the host has an empty label");
            }
            if !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                return Err("the host may only contain letters, digits, '-' and '.', after an optional leading `*.`");
            }
        }
        let host = match host.strip_prefix('*') {
            Some(suffix) => HostPattern::Suffix(suffix.into()),
            None => HostPattern::Exact(host.into()),
        };
        Ok(OriginPattern::Site { scheme, host, port })
    }

    /// Whether a request's `Origin` is allowed: scheme and port exact (default port by scheme),
    /// host exact or, for `*.suffix`, one or more labels to the left of the suffix. An `Origin`
    /// that does not parse (`null`, garbage) matches only `*`.
    pub fn matches(&self, origin: &str) -> bool {
        let (scheme, host, port) = match self {
            OriginPattern::Any => return true,
            OriginPattern::Site { scheme, host, port } => (scheme, host, port),
        };
        let Some(o) = RequestOrigin::parse(origin) else {
            return false;
        };
        if !scheme.as_str().eq_ignore_ascii_case(o.scheme) || Some(*port) != o.port {
            return false;
        }
        match host {
            HostPattern::Any => !o.host.is_empty(),
            HostPattern::Suffix(suffix) => {
                o.host.len() > suffix.len()
                    && o.host
                        .get(o.host.len() - suffix.len()..)
                        .is_some_and(|tail| tail.eq_ignore_ascii_case(suffix))
            }
            HostPattern::Exact(h) => h.eq_ignore_ascii_case(o.host),
        }
    }
}

/// A request's `Origin` (`<scheme>://<host>[:<port>]`, RFC 6454), read leniently: any scheme, IPv6
/// literals; the port defaults by scheme and is `None` for an unknown scheme without one.
struct RequestOrigin<'a> {
    scheme: &'a str,
    host: &'a str,
    port: Option<u16>,
}

impl<'a> RequestOrigin<'a> {
    fn parse(s: &'a str) -> Option<RequestOrigin<'a>> {
        let (scheme, rest) = s.split_once("://")?;
        let default_port = if scheme.eq_ignore_ascii_case("http") {
            Some(80)
        } else if scheme.eq_ignore_ascii_case("https") {
            Some(443)
        } else {
            None
        };
        let (host, port) = match rest.find(']') {
            // IPv6 literal: `[::1]` or `[::1]:8080`.
            Some(end) => (rest.get(..=end)?, rest.get(end + 1..)?.strip_prefix(':')),
            None => match rest.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            },
        };
        let port = match port {
            Some(p) => Some(p.parse().ok()?),
            None => default_port,
        };
        Some(RequestOrigin { scheme, host, port })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(pattern: &str, origin: &str) -> bool {
        OriginPattern::parse(pattern).unwrap().matches(origin)
    }

    #[test]
    fn matching() {
        // GEP-1767: `*` is a greedy match to the left; default ports by scheme.
        assert!(allows("https://*.example.com", "https://a.b.example.com"));
        assert!(allows("https://*.example.com", "https://a.example.com:443"));
        assert!(!allows("https://*.example.com", "https://example.com"));
        assert!(!allows("https://*.example.com", "http://a.example.com"));
        assert!(allows("http://foo.example:8080", "http://foo.example:8080"));
        assert!(!allows("http://foo.example:8080", "http://foo.example"));
        assert!(allows("https://Foo.Example", "https://foo.example"));
        assert!(allows("https://*", "https://anything.example:443"));
        assert!(!allows("https://*", "https://anything.example:8443"));
        assert!(allows("*", "null"));
        assert!(!allows("https://foo.example", "null"));
    }

    #[test]
    fn parsed_form() {
        assert_eq!(OriginPattern::parse("*"), Ok(OriginPattern::Any));
        assert_eq!(
            OriginPattern::parse("https://*.example.com"),
            Ok(OriginPattern::Site {
                scheme: Scheme::Https,
                host: HostPattern::Suffix(".example.com".into()),
                port: 443,
            })
        );
        assert_eq!(
            OriginPattern::parse("http://a:8080"),
            Ok(OriginPattern::Site {
                scheme: Scheme::Http,
                host: HostPattern::Exact("a".into()),
                port: 8080,
            })
        );
    }
}
