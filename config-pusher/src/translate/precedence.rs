//! Match precedence: the `rank` of every match in a table (lower wins).
//!
//! Gateway API orders the matches of all routes attached to one parent by (HTTPRouteRule.matches):
//! 1. an `Exact` path over a `PathPrefix`; a longer prefix over a shorter one (characters counted
//!    without a trailing `/`);
//! 2. a `method` match over none;
//! 3. more header matches; 4. more query parameter matches;
//! 5. the oldest route (creation timestamp; see [`crate::store`] for the fallback of objects
//!    without one); 6. `{namespace}/{name}` alphabetically;
//! 7. within a route, the first rule in list order, then the first match.
//!
//! `RegularExpression` paths have implementation-specific precedence. gammaroute ranks them
//! **between Exact and PathPrefix** (Exact > RegularExpression > PathPrefix), longer patterns
//! first, as Envoy Gateway and linkerd2-proxy do: a regex is written to single out requests and
//! should not lose to a catch-all `PathPrefix /`.
//!
//! Hostname specificity ranks above all of this but depends on the request's Host, so the router
//! applies it from the attachments' effective hostnames; ranks only order what comes after it.
//! Each table's ranks order every match in it, which orders the matches of each parent correctly
//! whatever subset of the routes is attached there. translate sorts once per kind of parent
//! ([`assign`]) and renumbers per table ([`densify`]).

use std::borrow::BorrowMut;
use std::cmp::Reverse;

use gammaroute_filter::table::{Match, PathMatch, Route};

use crate::store::Age;

/// The spec-ordered specificity of one match (smaller sorts first = higher precedence).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Specificity {
    /// 0 Exact, 1 RegularExpression, 2 PathPrefix.
    path_kind: u8,
    path_len: Reverse<usize>,
    method: Reverse<bool>,
    headers: Reverse<usize>,
    query_params: Reverse<usize>,
}

/// The specificity of a table match.
pub fn specificity(m: &Match) -> Specificity {
    let (path_kind, path_len) = match &m.path {
        PathMatch::Exact(p) => (0, p.len()),
        PathMatch::Regex(p) => (1, p.len()),
        PathMatch::Prefix(p) => (2, p.trim_end_matches('/').len()),
    };
    Specificity {
        path_kind,
        path_len: Reverse(path_len),
        method: Reverse(m.method.is_some()),
        headers: Reverse(m.headers.len()),
        query_params: Reverse(m.query_params.len()),
    }
}

/// Assigns `rank` to every match of `routes` (0 = highest precedence, dense and unique).
/// `ages[i]` is the age of `routes[i]`.
///
/// translate runs this once over every route of a context and then [`densify`] per table: the
/// order restricted to a table's routes is the order of those routes alone, and renumbering
/// integers is far cheaper than sorting the full keys again for each of hundreds of tables.
pub fn assign<R: BorrowMut<Route>>(routes: &mut [R], ages: &[Age]) {
    // Sort borrowed keys, then write the ranks: no string is cloned.
    let mut keys = Vec::new();
    for (r, route) in routes.iter().enumerate() {
        let route: &Route = route.borrow();
        for (ri, rule) in route.rules.iter().enumerate() {
            for (mi, m) in rule.matches.iter().enumerate() {
                keys.push((
                    specificity(m),
                    ages.get(r),
                    route.namespace.as_str(),
                    route.name.as_str(),
                    rule.index,
                    mi,
                    (r, ri),
                ));
            }
        }
    }
    keys.sort_unstable();
    let order: Vec<(usize, usize, usize)> = keys
        .into_iter()
        .map(|(.., mi, (r, ri))| (r, ri, mi))
        .collect();
    for (rank, (r, ri, mi)) in order.into_iter().enumerate() {
        if let Some(m) = routes
            .get_mut(r)
            .and_then(|route| route.borrow_mut().rules.get_mut(ri))
            .and_then(|rule| rule.matches.get_mut(mi))
        {
            m.rank = u32::try_from(rank).unwrap_or(u32::MAX);
        }
    }
}

/// Renumbers the ranks of `routes` (all assigned by one [`assign`] over a superset) to 0, 1, 2…
/// in the same order, so that a table's ranks do not depend on routes outside it.
pub fn densify(routes: &mut [Route]) {
    let mut order: Vec<(u32, usize, usize, usize)> = Vec::new();
    for (r, route) in routes.iter().enumerate() {
        for (ri, rule) in route.rules.iter().enumerate() {
            for (mi, m) in rule.matches.iter().enumerate() {
                order.push((m.rank, r, ri, mi));
            }
        }
    }
    order.sort_unstable();
    for (rank, (_, r, ri, mi)) in order.into_iter().enumerate() {
        if let Some(m) = routes
            .get_mut(r)
            .and_then(|route| route.rules.get_mut(ri))
            .and_then(|rule| rule.matches.get_mut(mi))
        {
            m.rank = u32::try_from(rank).unwrap_or(u32::MAX);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gammaroute_filter::table::{HeaderMatch, QueryParamMatch, Rule, ValueMatch};

    use crate::store::Stored;

    fn m(path: PathMatch) -> Match {
        Match {
            rank: 0,
            path,
            method: None,
            headers: vec![],
            query_params: vec![],
        }
    }

    fn header(n: &str) -> HeaderMatch {
        HeaderMatch {
            name: n.into(),
            value: ValueMatch::Exact("1".into()),
        }
    }

    fn route(ns: &str, name: &str, rules: Vec<Vec<Match>>) -> Route {
        Route {
            namespace: ns.into(),
            name: name.into(),
            rules: rules
                .into_iter()
                .enumerate()
                .map(|(i, matches)| Rule {
                    index: i as u32,
                    matches,
                    ..Rule::default()
                })
                .collect(),
        }
    }

    fn age(order: u64) -> Age {
        Stored {
            object: (),
            order,
            origin: String::new(),
        }
        .age_key(&Default::default())
    }

    fn ranks(r: &Route) -> Vec<Vec<u32>> {
        r.rules
            .iter()
            .map(|rl| rl.matches.iter().map(|m| m.rank).collect())
            .collect()
    }

    #[test]
    fn path_kinds_and_lengths() {
        let mut routes = vec![route(
            "a",
            "r",
            vec![
                vec![m(PathMatch::Prefix("/".into()))],
                vec![m(PathMatch::Prefix("/api/".into()))],
                vec![m(PathMatch::Prefix("/api/v1".into()))],
                vec![m(PathMatch::Exact("/api".into()))],
                vec![m(PathMatch::Regex("/api/.*".into()))],
            ],
        )];
        assign(&mut routes, &[age(0)]);
        // Exact > regex > longest prefix; `/api/` counts as `/api`.
        assert_eq!(
            ranks(&routes[0]),
            vec![vec![4], vec![3], vec![2], vec![0], vec![1]]
        );
    }

    #[test]
    fn method_beats_headers_and_headers_beat_query() {
        let mut with_method = m(PathMatch::Prefix("/".into()));
        with_method.method = Some(gammaroute_filter::table::Method::Get);
        let mut two_headers = m(PathMatch::Prefix("/".into()));
        two_headers.headers = vec![header("a"), header("b")];
        let mut one_header = m(PathMatch::Prefix("/".into()));
        one_header.headers = vec![header("a")];
        let mut query = m(PathMatch::Prefix("/".into()));
        query.query_params = vec![QueryParamMatch {
            name: "q".into(),
            value: ValueMatch::Exact("1".into()),
        }];
        let mut routes = vec![route(
            "a",
            "r",
            vec![
                vec![query, one_header],
                vec![two_headers],
                vec![with_method],
            ],
        )];
        assign(&mut routes, &[age(0)]);
        assert_eq!(ranks(&routes[0]), vec![vec![3, 2], vec![1], vec![0]]);
    }

    #[test]
    fn ties_older_route_then_namespace_name_then_rule_then_match() {
        let p = || m(PathMatch::Prefix("/x".into()));
        let mut routes = vec![
            route("b", "newer", vec![vec![p()]]),
            route("z", "older", vec![vec![p()]]),
            route("a", "same-age", vec![vec![p(), p()], vec![p()]]),
        ];
        // `z/older` was loaded first; `a/same-age` and `b/newer` share an age: namespace/name decides.
        assign(&mut routes, &[age(5), age(1), age(5)]);
        assert_eq!(ranks(&routes[1]), vec![vec![0]]);
        assert_eq!(ranks(&routes[2]), vec![vec![1, 2], vec![3]]);
        assert_eq!(ranks(&routes[0]), vec![vec![4]]);
    }

    #[test]
    fn a_subset_ranked_globally_then_densified_equals_the_subset_ranked_alone() {
        let p = |s: &str| m(PathMatch::Prefix(s.into()));
        let all = vec![
            route("a", "one", vec![vec![p("/x"), p("/xy")], vec![p("/")]]),
            route("b", "two", vec![vec![p("/xyz")]]),
            route(
                "c",
                "three",
                vec![vec![m(PathMatch::Exact("/x".into()))], vec![p("/x")]],
            ),
        ];
        let ages = [age(2), age(0), age(1)];
        let mut global = all.clone();
        assign(&mut global, &ages);
        for subset in [vec![0, 2], vec![1], vec![0, 1, 2], vec![2, 1]] {
            let mut alone: Vec<Route> = subset.iter().map(|&i| all[i].clone()).collect();
            let alone_ages: Vec<Age> = subset.iter().map(|&i| ages[i].clone()).collect();
            assign(&mut alone, &alone_ages);
            let mut densified: Vec<Route> = subset.iter().map(|&i| global[i].clone()).collect();
            densify(&mut densified);
            assert_eq!(densified, alone, "subset {subset:?}");
        }
    }

    #[test]
    fn creation_timestamp_beats_load_order() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
        let meta = |t: Option<&str>| ObjectMeta {
            creation_timestamp: t.map(|t| Time(t.parse().unwrap())),
            ..ObjectMeta::default()
        };
        let stored = |order| Stored {
            object: (),
            order,
            origin: String::new(),
        };
        let old = stored(9).age_key(&meta(Some("2024-01-01T00:00:00Z")));
        let new = stored(1).age_key(&meta(Some("2025-01-01T00:00:00Z")));
        let none = stored(0).age_key(&meta(None));
        assert!(old < new && new < none);
    }
}
