//! The naive reference router: Gateway API precedence written for obviousness, not speed.
//!
//! [`Router`](super::Router) indexes a table (hostname maps, a path-segment trie, candidate lists
//! sorted ahead of time) so that a request never scans every route. This module computes the same
//! answer the slow way, straight from the [`RouteTable`], on every call:
//!
//! 1. **parent** ([`parent`]) — the mesh Service port whose ClusterIP and port are the
//!    connection's destination; otherwise the most specific listener on the destination port whose
//!    hostname matches the Host (exact > longest wildcard > no hostname; listener isolation: the
//!    others are never consulted).
//! 2. **candidates** ([`candidates`]) — every (attachment, hostname pattern, rule, match) of that
//!    parent whose hostname pattern matches the Host and whose conditions all hold.
//! 3. **winner** ([`select`]) — the candidate with the smallest [`Candidate::key`], found by a
//!    linear scan: hostname specificity first (Gateway API: "the largest number of characters in
//!    a matching non-wildcard hostname", then "characters in a matching hostname"), then the
//!    table's `rank`, then table order.
//!
//! It shares no matching code with the compiled router (no host index, no trie, no compiled
//! matchers). It only relies on [`Request`]'s accessors (`host`, `path_only`, `header`,
//! `query_param`: how a request is *read* is not what is being checked) and on
//! [`crate::table::regex::compile`], the one definition of the regex dialect. What happens after
//! selection is [`decision::build`], shared on purpose: filters, the weighted pick and redirects
//! are tested on their own.
//!
//! Uses: the oracle of the differential test (`filter/tests/differential.rs`), the baseline of the
//! engine benchmark, and config-pusher's `explain` command, which lists every entry of the parent
//! with its key and the first condition that failed ([`Reference::evaluate`]).
//!
//! # Table order and a route attached twice
//!
//! Ties on hostname specificity and rank go to the candidate that comes first in *table order*:
//! the parent's attachments in order, then the route's rules, then the rule's matches — the order
//! in which the compiled router numbers its entries. The position is that of the *attachment*, not
//! of the route in [`RouteTable::routes`].
//!
//! A route attached twice to one parent (e.g. via a `sectionName` parentRef and a `port` parentRef
//! selecting the same listener) is simply considered twice: each attachment contributes its own
//! candidates, with its own hostnames and its own position. So the route competes with the most
//! specific hostname of either attachment, and at equal specificity and rank it is placed by the
//! attachment that supplied that hostname. The resulting [`Selected`] is the same whichever
//! attachment produced it (it names the route, rule and match, not the attachment). Tables written
//! by config-pusher never tie on rank between different routes (rank already encodes creation
//! time and `namespace/name`), so table order only ever decides between such duplicates.
//!
//! # Cost
//!
//! O(parents + attachments × hostnames × matches) per request, plus compiling every regex of the
//! table: [`select`] and [`decide`] compile them on each call; [`Reference`] compiles them once
//! (use it to benchmark the linear scan rather than regex compilation).

use std::cmp::Reverse;
use std::collections::HashMap;

use regex_lite::Regex;

use super::decision::{self, Decision};
use super::request::Request;
use super::{ParentRef, Selected, Selection};
use crate::table::regex::{bounded_match, MAX_INPUT_LEN};
use crate::table::{
    Attachment, CorsOrigins, HeaderMatch, Match, PathMatch, QueryParamMatch, RouteTable, ValueMatch,
};

/// Selects the parent and the winning match for `req`, the slow and obvious way.
pub fn select(table: &RouteTable, req: &Request<'_>) -> Selection {
    Reference::new(table).select(req)
}

/// [`select`], then the shared [`decision::build`].
pub fn decide<'r>(table: &'r RouteTable, req: &Request<'_>, draw: u64) -> Decision<'r> {
    Reference::new(table).decide(req, draw)
}

/// The parent that serves `req`, or `None` when no Service port or listener of the table does.
pub fn parent(table: &RouteTable, req: &Request<'_>) -> Option<ParentRef> {
    let dest = req.destination;
    // Mesh: the Service frontend the connection was sent to, whatever the Host says (GEP-1294).
    for (s, service) in (0u32..).zip(&table.services) {
        if !service.cluster_ips.contains(&dest.ip) {
            continue;
        }
        for (p, port) in (0u32..).zip(&service.ports) {
            if port.port == dest.port {
                return Some(ParentRef::ServicePort {
                    service: s,
                    port: p,
                });
            }
        }
    }
    // Gateway: the most specific listener on the port whose hostname matches the Host.
    listener_for(table, dest.port, &req.host())
}

/// The most specific listener on `port` whose hostname matches `host` (lowercase). Strictly
/// more specific replaces the current best, so the first of equals stays.
fn listener_for(table: &RouteTable, port: u16, host: &str) -> Option<ParentRef> {
    let mut best: Option<(u32, HostSpecificity)> = None;
    for (i, listener) in (0u32..).zip(&table.listeners) {
        if listener.port != port {
            continue;
        }
        let pattern = listener.hostname.as_deref();
        if !pattern_matches(pattern, host) {
            continue;
        }
        let specificity = HostSpecificity::of(pattern);
        if best.is_none_or(|(_, b)| specificity > b) {
            best = Some((i, specificity));
        }
    }
    best.map(|(i, _)| ParentRef::Listener(i))
}

/// The listener of the request's TLS connection (by SNI) when the request's Host belongs to
/// another one: see [`Selection::Misdirected`]. Checked only on ports with several listeners.
pub fn misdirected(table: &RouteTable, req: &Request<'_>) -> Option<ParentRef> {
    let port = req.destination.port;
    let on_port = table.listeners.iter().filter(|l| l.port == port).count();
    if req.server_name.is_empty() || on_port < 2 || !table.services.is_empty() {
        return None;
    }
    let connection = listener_for(table, port, &req.server_name.to_ascii_lowercase())?;
    (parent(table, req) != Some(connection)).then_some(connection)
}

/// Every matching candidate of the parent serving `req`, in table order (unsorted: sort by
/// [`Candidate::key`] for precedence order). `None` when no parent serves the request.
pub fn candidates<'t>(
    table: &'t RouteTable,
    req: &Request<'_>,
) -> Option<(ParentRef, Vec<Candidate<'t>>)> {
    let reference = Reference::new(table);
    let parent = parent(table, req)?;
    Some((parent, reference.candidates(parent, req)))
}

/// How specific the hostname pattern is that let a candidate (or a listener) in. Larger is more
/// specific; fields compare in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostSpecificity {
    /// Characters of the pattern if it is an exact name, else 0.
    pub non_wildcard_chars: usize,
    /// Characters of the pattern (0 for "any host").
    pub chars: usize,
}

impl HostSpecificity {
    /// The specificity of a pattern: an exact name, a `*.` wildcard, or `None` (any host).
    pub fn of(pattern: Option<&str>) -> HostSpecificity {
        match pattern {
            None => HostSpecificity {
                non_wildcard_chars: 0,
                chars: 0,
            },
            Some(p) if p.starts_with("*.") => HostSpecificity {
                non_wildcard_chars: 0,
                chars: p.len(),
            },
            Some(p) => HostSpecificity {
                non_wildcard_chars: p.len(),
                chars: p.len(),
            },
        }
    }
}

/// Where an entry sits in table order: positions in the parent's attachments, the route's rules
/// and the rule's matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TablePosition {
    pub attachment: u32,
    pub rule: u32,
    pub matched: u32,
}

/// One match of the parent that holds for the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate<'t> {
    pub selected: Selected,
    /// The attachment's hostname pattern that matched the Host; `None` when the attachment has
    /// no hostnames (it serves every Host of its parent).
    pub hostname: Option<&'t str>,
    pub specificity: HostSpecificity,
    /// The match's `rank` (lower wins).
    pub rank: u32,
    pub position: TablePosition,
}

impl Candidate<'_> {
    /// Precedence key, smallest wins: hostname specificity (descending), rank, table order.
    pub fn key(&self) -> (Reverse<HostSpecificity>, u32, TablePosition) {
        (Reverse(self.specificity), self.rank, self.position)
    }
}

/// The first condition of an entry that does not hold for a request, in evaluation order: the
/// hostname pattern, then path, method, headers and query parameters in the order the match lists
/// them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failed<'t> {
    /// The attachment's hostname pattern does not match the Host.
    Host,
    Path,
    Method,
    /// This header is absent or its value does not match.
    Header(&'t HeaderMatch),
    /// This query parameter is absent or its (first) value does not match.
    QueryParam(&'t QueryParamMatch),
}

/// One entry of a parent evaluated against a request: its precedence key (as if it matched) and
/// the first condition that failed, `None` when it is a candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Evaluated<'t> {
    pub candidate: Candidate<'t>,
    pub failed: Option<Failed<'t>>,
}

/// The reference router with the table's regexes compiled once, for repeated requests.
#[derive(Debug)]
pub struct Reference<'t> {
    table: &'t RouteTable,
    /// Every regex of the table by pattern; `None` for a pattern that does not compile (a
    /// validated table has none), which then never matches.
    regexes: HashMap<&'t str, Option<Regex>>,
    /// Every CORS filter's origins, parsed here (not taken from the checks it is compared with).
    origins: CorsOrigins,
}

impl<'t> Reference<'t> {
    pub fn new(table: &'t RouteTable) -> Reference<'t> {
        let mut regexes = HashMap::new();
        let mut add = |pattern: &'t str| {
            regexes
                .entry(pattern)
                .or_insert_with(|| crate::table::regex::compile(pattern).ok());
        };
        for route in &table.routes {
            for rule in &route.rules {
                for m in &rule.matches {
                    if let PathMatch::Regex(p) = &m.path {
                        add(p);
                    }
                    let values = m.headers.iter().map(|h| &h.value);
                    for value in values.chain(m.query_params.iter().map(|q| &q.value)) {
                        if let ValueMatch::Regex(p) = value {
                            add(p);
                        }
                    }
                }
            }
        }
        Reference {
            table,
            regexes,
            origins: CorsOrigins::of(table),
        }
    }

    /// See [`select`].
    pub fn select(&self, req: &Request<'_>) -> Selection {
        if let Some(connection) = misdirected(self.table, req) {
            return Selection::Misdirected(connection);
        }
        let Some(parent) = parent(self.table, req) else {
            return Selection::NoParent;
        };
        let mut best: Option<Candidate<'t>> = None;
        for candidate in self.candidates(parent, req) {
            if best.is_none_or(|b| candidate.key() < b.key()) {
                best = Some(candidate);
            }
        }
        match best {
            Some(c) => Selection::Matched(c.selected),
            None => Selection::NoMatch(parent),
        }
    }

    /// See [`decide`].
    pub fn decide(&self, req: &Request<'_>, draw: u64) -> Decision<'t> {
        decision::build(self.table, &self.origins, self.select(req), req, draw)
    }

    /// Every candidate of `parent` for `req`, in table order: the entries [`Reference::evaluate`]
    /// finds no failing condition for.
    pub fn candidates(&self, parent: ParentRef, req: &Request<'_>) -> Vec<Candidate<'t>> {
        self.evaluate(parent, req)
            .into_iter()
            .filter(|e| e.failed.is_none())
            .map(|e| e.candidate)
            .collect()
    }

    /// Every (attachment, hostname pattern, rule, match) of `parent` in table order, each with
    /// the first condition that fails for `req` (`None`: it is one of [`Reference::candidates`]).
    pub fn evaluate(&self, parent: ParentRef, req: &Request<'_>) -> Vec<Evaluated<'t>> {
        let host = req.host();
        let mut out = Vec::new();
        for (a, attachment) in (0u32..).zip(attachments(self.table, parent)) {
            let Some(route) = self.table.routes.get(attachment.route as usize) else {
                continue;
            };
            for pattern in attachment.host_patterns() {
                let host_ok = pattern_matches(pattern, &host);
                for (r, rule) in (0u32..).zip(&route.rules) {
                    for (m, matched) in (0u32..).zip(&rule.matches) {
                        let failed = if host_ok {
                            self.first_failure(matched, req)
                        } else {
                            Some(Failed::Host)
                        };
                        out.push(Evaluated {
                            candidate: Candidate {
                                selected: Selected {
                                    parent,
                                    route: attachment.route,
                                    rule: r,
                                    matched: m,
                                },
                                hostname: pattern,
                                specificity: HostSpecificity::of(pattern),
                                rank: matched.rank,
                                position: TablePosition {
                                    attachment: a,
                                    rule: r,
                                    matched: m,
                                },
                            },
                            failed,
                        });
                    }
                }
            }
        }
        out
    }

    /// All conditions of one `HTTPRouteMatch`: path, method, every header, every query parameter.
    pub fn match_holds(&self, m: &Match, req: &Request<'_>) -> bool {
        self.first_failure(m, req).is_none()
    }

    /// The first condition of `m` that does not hold for `req` (path, method, headers, query
    /// parameters, in that order), or `None` when the match holds.
    pub fn first_failure<'m>(&self, m: &'m Match, req: &Request<'_>) -> Option<Failed<'m>> {
        let path = req.path_only();
        let path_ok = match &m.path {
            PathMatch::Exact(p) => path == p,
            PathMatch::Prefix(p) => prefix_matches(p, path),
            PathMatch::Regex(p) => self.regex_matches(p, path),
        };
        if !path_ok {
            return Some(Failed::Path);
        }
        if m.method.is_some_and(|method| method.as_str() != req.method) {
            return Some(Failed::Method);
        }
        if let Some(h) = m
            .headers
            .iter()
            .find(|h| !self.header_matches(&h.value, req.header_values(&h.name).collect()))
        {
            return Some(Failed::Header(h));
        }
        m.query_params
            .iter()
            .find(|q| {
                !req.query_param(&q.name)
                    .is_some_and(|actual| self.value_matches(&q.value, &actual))
            })
            .map(Failed::QueryParam)
    }

    /// Any value of a repeated header may match; a regex only when the values together fit the
    /// regex input cap.
    fn header_matches(&self, value: &ValueMatch, values: Vec<&str>) -> bool {
        let total: usize = values.iter().map(|v| v.len()).sum();
        let bounded = !matches!(value, ValueMatch::Regex(_)) || total <= MAX_INPUT_LEN;
        bounded && values.iter().any(|v| self.value_matches(value, v))
    }

    fn value_matches(&self, value: &ValueMatch, actual: &str) -> bool {
        match value {
            ValueMatch::Exact(v) => v == actual,
            ValueMatch::Regex(p) => self.regex_matches(p, actual),
        }
    }

    fn regex_matches(&self, pattern: &str, actual: &str) -> bool {
        match self.regexes.get(pattern) {
            Some(Some(re)) => bounded_match(re, actual).unwrap_or(false),
            Some(None) => false,
            // Not from this table (cannot happen); compile it rather than guess.
            None => crate::table::regex::compile(pattern)
                .is_ok_and(|re| bounded_match(&re, actual).unwrap_or(false)),
        }
    }
}

/// The attachments of a parent (empty for a parent the table does not have).
pub fn attachments(table: &RouteTable, parent: ParentRef) -> &[Attachment] {
    match parent {
        ParentRef::Listener(l) => table
            .listeners
            .get(l as usize)
            .map_or(&[], |listener| listener.attachments.as_slice()),
        ParentRef::ServicePort { service, port } => table
            .services
            .get(service as usize)
            .and_then(|s| s.ports.get(port as usize))
            .map_or(&[], |p| p.attachments.as_slice()),
    }
}

/// Whether a hostname pattern matches a Host (lowercase, without port). `None` matches every
/// Host; `*.example.com` matches a Host ending in `.example.com` with something before it
/// (`a.example.com`, `a.b.example.com`, not `example.com` or `.example.com`); anything else is
/// compared for equality.
pub fn pattern_matches(pattern: Option<&str>, host: &str) -> bool {
    match pattern {
        None => true,
        Some(p) => match p.strip_prefix("*.") {
            Some(suffix) => host
                .strip_suffix(suffix)
                .and_then(|rest| rest.strip_suffix('.'))
                .is_some_and(|label| !label.is_empty()),
            None => p == host,
        },
    }
}

/// PathPrefix, element by element: the prefix without its trailing `/` must be the whole path or
/// be followed by `/` in it. `/abc` matches `/abc`, `/abc/`, `/abc/def`, not `/abcd`; `/`
/// matches every path.
pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    let prefix = prefix.strip_suffix('/').unwrap_or(prefix);
    if prefix.is_empty() {
        return true;
    }
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_is_element_wise() {
        // PathPrefix: "/abc, /abc/, and /abc/def would all match the prefix /abc, but /abcd not".
        for path in ["/abc", "/abc/", "/abc/def", "/abc//def"] {
            assert!(prefix_matches("/abc", path), "{path}");
            assert!(prefix_matches("/abc/", path), "{path}");
        }
        for path in ["/abcd", "/ab", "/", "", "abc/def", "/ABC"] {
            assert!(!prefix_matches("/abc", path), "{path}");
        }
        for path in ["/", "", "/x", "*"] {
            assert!(prefix_matches("/", path), "{path}");
        }
        assert!(prefix_matches("/a/b", "/a/b/c") && !prefix_matches("/a/b", "/a//b"));
    }

    #[test]
    fn hostname_patterns() {
        assert!(pattern_matches(None, "anything"));
        assert!(pattern_matches(Some("a.example.com"), "a.example.com"));
        assert!(!pattern_matches(Some("a.example.com"), "b.a.example.com"));
        let wildcard = Some("*.example.com");
        assert!(pattern_matches(wildcard, "a.example.com"));
        assert!(pattern_matches(wildcard, "a.b.example.com"));
        for host in [
            "example.com",
            ".example.com",
            "aexample.com",
            "a.example.org",
        ] {
            assert!(!pattern_matches(wildcard, host), "{host}");
        }
    }

    #[test]
    fn evaluate_names_the_first_failing_condition() {
        use crate::router::Destination;
        use crate::table::{Listener, Route, Rule};
        let exact = |v: &str| ValueMatch::Exact(v.to_string());
        let m = Match {
            rank: 0,
            path: PathMatch::Prefix("/api".into()),
            method: Some(crate::table::Method::Post),
            headers: vec![HeaderMatch {
                name: "x-env".into(),
                value: exact("canary"),
            }],
            query_params: vec![QueryParamMatch {
                name: "v".into(),
                value: exact("2"),
            }],
        };
        let table = RouteTable {
            role: "gateway/ns/gw".into(),
            listeners: vec![Listener {
                name: "http".into(),
                port: 80,
                hostname: None,
                attachments: vec![Attachment {
                    route: 0,
                    hostnames: vec!["a.example".into()],
                }],
            }],
            routes: vec![Route {
                namespace: "ns".into(),
                name: "r".into(),
                rules: vec![Rule {
                    matches: vec![m.clone()],
                    ..Rule::default()
                }],
            }],
            ..RouteTable::default()
        };
        let reference = Reference::new(&table);
        let env = vec![("x-env".to_string(), "canary".to_string())];
        let failure = |host: &str, method: &str, path: &str, headers: &[(String, String)]| {
            let req = Request {
                method,
                scheme: "http",
                authority: host,
                path,
                headers,
                destination: Destination {
                    ip: std::net::IpAddr::from([127, 0, 0, 1]),
                    port: 80,
                },
                server_name: "",
            };
            let all = reference.evaluate(ParentRef::Listener(0), &req);
            assert_eq!(all.len(), 1);
            let first = all.first().map(|e| e.failed);
            let holds = reference.match_holds(&m, &req) && host == "a.example";
            assert_eq!(first == Some(None), holds);
            first.flatten()
        };
        assert_eq!(
            failure("b.example", "POST", "/api?v=2", &env),
            Some(Failed::Host)
        );
        assert_eq!(
            failure("a.example", "POST", "/apix", &env),
            Some(Failed::Path)
        );
        assert_eq!(
            failure("a.example", "GET", "/api?v=2", &env),
            Some(Failed::Method)
        );
        assert!(matches!(
            failure("a.example", "POST", "/api?v=2", &[]),
            Some(Failed::Header(h)) if h.name == "x-env"
        ));
        assert!(matches!(
            failure("a.example", "POST", "/api?v=3", &env),
            Some(Failed::QueryParam(q)) if q.name == "v"
        ));
        assert_eq!(failure("a.example", "POST", "/api/x?v=2", &env), None);
    }

    #[test]
    fn specificity_order() {
        let exact = HostSpecificity::of(Some("a.example.com"));
        let long = HostSpecificity::of(Some("*.b.example.com"));
        let short = HostSpecificity::of(Some("*.example.com"));
        let any = HostSpecificity::of(None);
        assert!(exact > long && long > short && short > any);
        // An exact name beats a longer wildcard.
        assert!(HostSpecificity::of(Some("a.io")) > HostSpecificity::of(Some("*.example.com")));
    }
}
