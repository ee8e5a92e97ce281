//! The request parts of the table API, parsed purely: `?wait=`, `If-None-Match`, `Accept` and
//! the proxy report headers.

use std::time::Duration;

/// Longest long-poll: proxies re-ask after this.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// The proxy's id (any string; an Envoy node id, a pod name).
pub const PROXY: &str = "x-gammaroute-proxy";
/// The table version the proxy runs (empty: none yet).
pub const APPLIED: &str = "x-gammaroute-applied";
/// `<version> <message>` of the last table the proxy rejected.
pub const REJECTED: &str = "x-gammaroute-rejected";
/// On a request: the generation of the table the proxy runs; on a response: the served
/// table's (see [`crate::source::Snapshot::generation`]). A replica whose table is of a lower
/// generation than the proxy's holds the request rather than move the proxy back.
pub const GENERATION: &str = "x-gammaroute-generation";

/// The value of query parameter `name` (no percent-decoding: the parameters used here never need
/// it).
pub fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// `?wait=`: `30s`, `500ms`, `2m`, or bare seconds (`30`, `1.5`); capped at [`MAX_WAIT`].
pub fn parse_wait(s: &str) -> Result<Duration, String> {
    let bad = || format!("wait={s:?}: expected a duration such as 30s, 500ms or 30");
    let (number, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(at) => s.split_at(at),
        None => (s, "s"),
    };
    let n: f64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(bad()),
    };
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(seconds.min(MAX_WAIT.as_secs_f64())))
}

/// The `ETag` of a version: the version quoted (RFC 9110 §8.8.3).
pub fn etag(version: &str) -> String {
    format!("\"{version}\"")
}

/// Whether `If-None-Match` (RFC 9110 §13.1.2: `*` or a list of entity tags, weak ones
/// compared weakly) names `version`. Bare versions (unquoted) are accepted too.
pub fn none_match(header: &str, version: &str) -> bool {
    header.split(',').map(str::trim).any(|tag| {
        tag == "*" || {
            let tag = tag.strip_prefix("W/").unwrap_or(tag);
            let tag = tag
                .strip_prefix('"')
                .and_then(|t| t.strip_suffix('"'))
                .unwrap_or(tag);
            !tag.is_empty() && tag == version
        }
    })
}

/// Whether the client asked for the protobuf encoding.
pub fn wants_proto(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| a.contains("application/x-protobuf"))
}

/// `x-gammaroute-rejected: <version> <message>` → (version, message).
pub fn parse_rejected(s: &str) -> Option<(&str, &str)> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    Some(match s.split_once(' ') {
        Some((v, m)) => (v, m.trim()),
        None => (s, ""),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_forms() {
        let ms = Duration::from_millis;
        assert_eq!(parse_wait("30s"), Ok(ms(30_000)));
        assert_eq!(parse_wait("500ms"), Ok(ms(500)));
        assert_eq!(parse_wait("7"), Ok(ms(7_000)));
        assert_eq!(parse_wait("1.5"), Ok(ms(1_500)));
        assert_eq!(parse_wait("0"), Ok(ms(0)));
        assert_eq!(parse_wait("5m"), Ok(MAX_WAIT));
        assert_eq!(parse_wait("3600s"), Ok(MAX_WAIT));
        for bad in ["", "s", "abc", "10h", "-1s", "1e9999"] {
            assert!(parse_wait(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn if_none_match_forms() {
        assert!(none_match("\"abc\"", "abc"));
        assert!(none_match("abc", "abc"));
        assert!(none_match("W/\"abc\"", "abc"));
        assert!(none_match("\"x\", \"abc\"", "abc"));
        assert!(none_match("*", "abc"));
        assert!(!none_match("\"abcd\"", "abc"));
        assert!(!none_match("\"\"", "abc"));
        assert!(!none_match("", "abc"));
        assert_eq!(etag("abc"), "\"abc\"");
    }

    #[test]
    fn query_accept_and_reports() {
        assert_eq!(query_param(Some("a=1&wait=30s"), "wait"), Some("30s"));
        assert_eq!(query_param(Some("wait"), "wait"), Some(""));
        assert_eq!(query_param(Some("waiting=1"), "wait"), None);
        assert_eq!(query_param(None, "wait"), None);
        assert!(wants_proto(Some("application/x-protobuf")));
        assert!(wants_proto(Some(
            "application/json;q=0.5, application/x-protobuf"
        )));
        assert!(!wants_proto(Some("application/json")));
        assert!(!wants_proto(None));
        assert_eq!(
            parse_rejected("abc routes[0]: bad regex"),
            Some(("abc", "routes[0]: bad regex"))
        );
        assert_eq!(parse_rejected("abc"), Some(("abc", "")));
        assert_eq!(parse_rejected(" "), None);
    }
}
