//! Hostname intersection of a listener and a route (Gateway API `HTTPRoute.spec.hostnames`).
//!
//! A request must match both the listener's hostname and one of the route's, so a route serves,
//! on a listener, the *intersection* of the two sets of names. Each side is an exact name, a
//! `*.` wildcard (any number of labels: `*.example.com` matches `a.b.example.com`, not
//! `example.com`), or absent (every name). The result is written to the table as the
//! attachment's effective hostnames; hostname precedence among routes is then applied by the
//! router from these.

/// Normalises a hostname for comparison: lowercase, no trailing dot.
pub fn normalize(h: &str) -> String {
    h.trim_end_matches('.').to_ascii_lowercase()
}

/// Whether `name` (exact) is matched by `pattern` (exact or `*.` wildcard).
pub fn matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => {
            name.len() > suffix.len() + 1
                && name.ends_with(suffix)
                && name.as_bytes()[name.len() - suffix.len() - 1] == b'.'
        }
        None => pattern == name,
    }
}

/// The intersection of two hostnames (each exact or `*.` wildcard), if not empty.
pub fn intersect(a: &str, b: &str) -> Option<String> {
    let (a, b) = (normalize(a), normalize(b));
    match (a.starts_with("*."), b.starts_with("*.")) {
        (false, false) => (a == b).then_some(a),
        (true, false) => matches(&a, &b).then_some(b),
        (false, true) => matches(&b, &a).then_some(a),
        (true, true) => {
            // `*.x` ∩ `*.y`: the more specific one when one contains the other.
            if a == b || matches(&b, &a[2..]) {
                Some(a)
            } else if matches(&a, &b[2..]) {
                Some(b)
            } else {
                None
            }
        }
    }
}

/// Effective hostnames of a route on a listener, deduplicated in route order.
///
/// - no listener hostname: the route's hostnames (none: every Host, written as an empty list);
/// - no route hostnames: the listener's hostname;
/// - both: every non-empty pairwise intersection. `None` when nothing is left: the route does not
///   attach (`Accepted=False`, `NoMatchingListenerHostname`).
pub fn effective(listener: Option<&str>, route: &[String]) -> Option<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |h: String| {
        if !out.contains(&h) {
            out.push(h);
        }
    };
    match (listener, route.is_empty()) {
        (None, _) => route.iter().for_each(|h| push(normalize(h))),
        (Some(l), true) => push(normalize(l)),
        (Some(l), false) => {
            for h in route {
                if let Some(i) = intersect(l, h) {
                    push(i);
                }
            }
            if out.is_empty() {
                return None;
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn wildcard_matches_one_or_more_labels_only() {
        assert!(matches("*.example.com", "a.example.com"));
        assert!(matches("*.example.com", "a.b.example.com"));
        assert!(!matches("*.example.com", "example.com"));
        assert!(!matches("*.example.com", "aexample.com"));
        assert!(matches("foo.com", "foo.com"));
        assert!(!matches("foo.com", "bar.foo.com"));
    }

    #[test]
    fn pairwise_intersection() {
        // Examples from HTTPRoute.spec.hostnames.
        assert_eq!(
            intersect("very.specific.com", "*.specific.com").as_deref(),
            Some("very.specific.com")
        );
        assert_eq!(
            intersect("*.foo.example.com", "*.example.com").as_deref(),
            Some("*.foo.example.com")
        );
        assert_eq!(
            intersect("*.example.com", "*.foo.example.com").as_deref(),
            Some("*.foo.example.com")
        );
        assert_eq!(
            intersect("*.example.com", "*.example.com").as_deref(),
            Some("*.example.com")
        );
        assert_eq!(intersect("*.example.com", "example.com"), None);
        assert_eq!(intersect("a.com", "b.com"), None);
        assert_eq!(intersect("*.a.com", "*.b.com"), None);
        assert_eq!(intersect("Foo.COM.", "foo.com").as_deref(), Some("foo.com"));
    }

    #[test]
    fn effective_hostnames() {
        assert_eq!(effective(None, &[]), Some(vec![]));
        assert_eq!(
            effective(None, &s(&["a.com", "*.b.com"])),
            Some(s(&["a.com", "*.b.com"]))
        );
        assert_eq!(
            effective(Some("*.example.com"), &[]),
            Some(s(&["*.example.com"]))
        );
        assert_eq!(
            effective(
                Some("*.example.com"),
                &s(&[
                    "foo.example.com",
                    "other.org",
                    "*.example.com",
                    "*.bar.example.com"
                ])
            ),
            Some(s(&[
                "foo.example.com",
                "*.example.com",
                "*.bar.example.com"
            ]))
        );
        assert_eq!(
            effective(Some("foo.example.com"), &s(&["bar.example.com"])),
            None
        );
        assert_eq!(
            effective(
                Some("foo.example.com"),
                &s(&["*.example.com", "foo.example.com"])
            ),
            Some(s(&["foo.example.com"]))
        );
    }
}
