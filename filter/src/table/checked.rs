//! A match as the checks leave it: compiled, ready to be tested against a request; and CORS
//! origins as they leave them: parsed. Data only, in
//! its own module so that the checks ([`super::validate`]) that produce it do not import
//! [`super::ValidTable`], which carries it (imports run one way: valid → validate → checked).

use regex_lite::Regex;
use rustc_hash::FxHashMap;

use super::origin::OriginPattern;
use super::{Filter, RouteTable};

/// One `HTTPRouteMatch` ready to be tested against a request: the conditions a path index cannot
/// decide, compiled. Kept small (one per match per VM, 10,000s of them): the path itself stays in
/// the table (the index reads it once, when it is built), a regex is boxed since most matches
/// have none, and the method is an enum.
#[derive(Debug)]
pub struct CheckedMatch {
    /// Where the match is in the table: route index, rule position, match position.
    pub route: u32,
    pub rule: u32,
    pub matched: u32,
    pub rank: u32,
    /// Only for `RegularExpression` paths; exact and prefix paths are decided by the index.
    pub path_regex: Option<Box<Regex>>,
    pub method: Option<Method>,
    /// Header names lowercased (HTTP header names are case-insensitive).
    pub headers: Box<[(Box<str>, CheckedValue)]>,
    pub query: Box<[(Box<str>, CheckedValue)]>,
}

/// `HTTPRouteMatch.method` (Gateway API `HTTPMethod`, Extended): the request's `:method` must be
/// exactly this (so `HEAD` is not `GET`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Connect,
    Options,
    Trace,
    Patch,
}

impl Method {
    /// Every value of the CRD's enum, in its order.
    pub const ALL: [Method; 9] = [
        Method::Get,
        Method::Head,
        Method::Post,
        Method::Put,
        Method::Delete,
        Method::Connect,
        Method::Options,
        Method::Trace,
        Method::Patch,
    ];

    /// The method's name as it appears in the CRD and on the wire (upper case).
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Connect => "CONNECT",
            Method::Options => "OPTIONS",
            Method::Trace => "TRACE",
            Method::Patch => "PATCH",
        }
    }

    /// The method named exactly `name` (case-sensitive, as the CRD enum is).
    pub fn parse(name: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.as_str() == name)
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A header or query parameter value condition.
#[derive(Debug)]
pub enum CheckedValue {
    Exact(Box<str>),
    Regex(Box<Regex>),
}

impl CheckedValue {
    /// Whether `actual` satisfies the condition (a regex must match the whole value); `None` when
    /// `actual` is too long for a regex to be run against it
    /// ([`crate::table::regex::MAX_INPUT_LEN`]), which the caller counts as no match.
    pub fn holds(&self, actual: &str) -> Option<bool> {
        match self {
            CheckedValue::Exact(s) => Some(**s == *actual),
            CheckedValue::Regex(re) => super::regex::bounded_match(re, actual),
        }
    }

    /// Whether any of `values` (a repeated header's) satisfies the condition; `Some(false)` when
    /// there is none. A regex runs only when all the values together fit
    /// [`crate::table::regex::MAX_INPUT_LEN`] (else `None`), so a header repeated n times costs
    /// one bounded scan, not n.
    pub fn holds_any<'v>(&self, values: impl Iterator<Item = &'v str> + Clone) -> Option<bool> {
        match self {
            CheckedValue::Exact(s) => Some(values.into_iter().any(|v| **s == *v)),
            CheckedValue::Regex(re) => {
                let total = values
                    .clone()
                    .fold(0usize, |n, v| n.saturating_add(v.len()));
                if total > super::regex::MAX_INPUT_LEN {
                    return None;
                }
                Some(values.into_iter().any(|v| re.is_match(v)))
            }
        }
    }
}

/// Where a filter is in a table: its route, its rule's position, the filter list it is in (the
/// rule's, or a backend's) and its position there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FilterAt {
    pub route: u32,
    pub rule: u32,
    /// `None`: the rule's `filters`; `Some(b)`: `backends[b].filters`.
    pub backend: Option<u32>,
    pub filter: u32,
}

/// The parsed `allowOrigins` of every CORS filter of a table, kept by the check that parsed them
/// so a cross-origin request is compared against parsed patterns, never against the entries'
/// text (GEP-1767, `HTTPCORSFilter.allowOrigins`).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CorsOrigins(FxHashMap<FilterAt, Box<[OriginPattern]>>);

impl CorsOrigins {
    /// Parses every CORS filter's origins of `table` on its own, skipping entries that do not
    /// parse (a checked table has none; they would match nothing). For the reference router,
    /// which must not depend on the checks it is compared with; a [`super::ValidTable`] keeps the
    /// ones its check parsed.
    pub fn of(table: &RouteTable) -> CorsOrigins {
        let mut out = CorsOrigins::default();
        for (route, r) in (0u32..).zip(&table.routes) {
            for (rule, rl) in (0u32..).zip(&r.rules) {
                let lists = std::iter::once((None, &rl.filters)).chain(
                    (0u32..)
                        .zip(&rl.backends)
                        .map(|(b, backend)| (Some(b), &backend.filters)),
                );
                for (backend, filters) in lists {
                    for (filter, f) in (0u32..).zip(filters) {
                        if let Filter::Cors(c) = f {
                            let parsed = c
                                .allow_origins
                                .iter()
                                .filter_map(|o| OriginPattern::parse(o).ok())
                                .collect();
                            let at = FilterAt {
                                route,
                                rule,
                                backend,
                                filter,
                            };
                            out.insert(at, parsed);
                        }
                    }
                }
            }
        }
        out
    }

    /// The parsed origins of the CORS filter at `at` (empty when there is none: nothing allowed).
    pub fn get(&self, at: FilterAt) -> &[OriginPattern] {
        self.0.get(&at).map_or(&[], |o| o)
    }

    pub(crate) fn insert(&mut self, at: FilterAt, origins: Box<[OriginPattern]>) {
        self.0.insert(at, origins);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_parse_exactly() {
        for m in Method::ALL {
            assert_eq!(Method::parse(m.as_str()), Some(m));
        }
        for bad in ["get", "Get", "", "PROPFIND", "GET "] {
            assert_eq!(Method::parse(bad), None, "{bad:?}");
        }
    }

    /// One compiled match per match per VM: keep it within a cache line (it was 152 bytes with
    /// a copy of the path, an unboxed regex and the method as a string).
    #[test]
    fn checked_match_is_compact() {
        assert!(std::mem::size_of::<CheckedMatch>() <= 64);
        assert!(std::mem::size_of::<CheckedValue>() <= 24);
    }
}
