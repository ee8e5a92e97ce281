//! One HTTPRoute → one table [`Route`] with the rules that survive validation, for one kind of
//! parent ([`Context`]: Gateway or Service, which differ in ReferenceGrant enforcement).
//!
//! Each rule is translated with the CRD defaults applied (no matches → PathPrefix `/`; path type
//! PathPrefix, value `/`; header and query types Exact; weight 1; redirect 302), then checked with
//! the filter's own table validation ([`gammaroute_filter::table::validate`]) on a one-rule table,
//! so a rule that the filter would refuse is dropped here, named in `PartiallyInvalid`, and never
//! makes the whole table fail.

use gammaroute_filter::table::{
    self, Backend, BackendTarget, HeaderMatch, Match, PathMatch, QueryParamMatch, Retry, Route,
    Rule, TableErrorKind, Timeouts, ValueMatch,
};
use gateway_api::experimental::httproutes::{
    HttpRoute, HttpRouteRules, HttpRouteRulesMatches,
    HttpRouteRulesMatchesHeadersType as HeaderType, HttpRouteRulesMatchesMethod as Method,
    HttpRouteRulesMatchesPathType as PathType, HttpRouteRulesMatchesQueryParamsType as QueryType,
};

use super::backend::{self, Index, Ref};
use super::filter::{self, FilterConversion, Invalid};
use super::status::{Reason, RouteProblem};
use super::Context;

/// A rule that was dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    pub rule: u32,
    /// `UnsupportedValue` or `IncompatibleFilters`.
    pub reason: Reason,
    pub message: String,
}

/// The translation of one route for one context.
#[derive(Debug, Clone)]
pub struct Converted {
    /// The surviving rules (ranks not yet assigned).
    pub route: Route,
    pub dropped: Vec<Dropped>,
    /// Reference problems (`ResolvedRefs=False`), in rule order.
    pub unresolved: Vec<RouteProblem>,
    /// Rules in the HTTPRoute.
    pub total_rules: usize,
}

impl Converted {
    /// No rule survived: the route is not accepted.
    pub fn all_dropped(&self) -> bool {
        self.route.rules.is_empty()
    }
}

/// Translates `route` (in namespace `ns`, named `name`).
pub fn convert(idx: &Index, ns: &str, name: &str, route: &HttpRoute, ctx: Context) -> Converted {
    let rules = route.spec.rules.as_deref().unwrap_or_default();
    let mut out = Converted {
        route: Route {
            namespace: ns.to_string(),
            name: name.to_string(),
            rules: Vec::new(),
        },
        dropped: Vec::new(),
        unresolved: Vec::new(),
        total_rules: rules.len(),
    };
    for (i, r) in rules.iter().enumerate() {
        let index = u32::try_from(i).unwrap_or(u32::MAX);
        let mut problems = Vec::new();
        let converted = rule(idx, ns, ctx, index, r, &mut problems).and_then(check);
        match converted {
            Ok(rule) => {
                out.unresolved.extend(problems);
                out.route.rules.push(rule);
            }
            Err(RouteProblem { reason, message }) => out.dropped.push(Dropped {
                rule: index,
                reason,
                message,
            }),
        }
    }
    out
}

/// Translates one rule; reference problems are appended to `problems`.
fn rule(
    idx: &Index,
    ns: &str,
    ctx: Context,
    index: u32,
    r: &HttpRouteRules,
    problems: &mut Vec<RouteProblem>,
) -> Result<Rule, RouteProblem> {
    let unsupported = |e: Invalid| RouteProblem::new(Reason::UnsupportedValue, e.to_string());
    let matches = match r.matches.as_deref() {
        None | Some([]) => vec![default_match()],
        Some(ms) => ms
            .iter()
            .map(match_)
            .collect::<Result<Vec<_>, _>>()
            .map_err(unsupported)?,
    };
    let mut fail_closed: Option<RouteProblem> = None;
    let mut filters = Vec::new();
    for f in r.filters.iter().flatten() {
        match filter::convert(idx, ns, ctx, f).map_err(unsupported)? {
            FilterConversion::Filter(f) => filters.push(f),
            FilterConversion::Skip => {}
            FilterConversion::DroppedMirror(p) => problems.push(p),
            FilterConversion::FailClosed(p) => fail_closed = fail_closed.or(Some(p)),
        }
    }
    let mut backends = Vec::new();
    for b in r.backend_refs.iter().flatten() {
        let weight = u32::try_from(b.weight.unwrap_or(1)).map_err(|_| {
            RouteProblem::new(
                Reason::UnsupportedValue,
                format!("backendRef {}: negative weight", b.name),
            )
        })?;
        let (mut target, problem) = backend::resolve(
            idx,
            ns,
            ctx,
            Ref {
                group: b.group.as_deref(),
                kind: b.kind.as_deref(),
                name: &b.name,
                namespace: b.namespace.as_deref(),
                port: b.port,
            },
        );
        problems.extend(problem);
        let mut bfilters = Vec::new();
        for f in b.filters.iter().flatten() {
            let f = filter::from_backend_filter(f).map_err(unsupported)?;
            match filter::convert(idx, ns, ctx, &f).map_err(unsupported)? {
                FilterConversion::Filter(f) => bfilters.push(f),
                FilterConversion::Skip => {}
                FilterConversion::DroppedMirror(p) => problems.push(p),
                FilterConversion::FailClosed(p) => {
                    target = BackendTarget::Unavailable {
                        status: 500,
                        reason: p.message.clone(),
                    };
                    problems.push(p);
                }
            }
        }
        if matches!(target, BackendTarget::Unavailable { .. }) {
            bfilters.clear();
        }
        backends.push(Backend {
            weight,
            target,
            filters: bfilters,
        });
    }
    if let Some(p) = fail_closed {
        // Never skip a filter we cannot run: every request of the rule gets 500.
        filters.clear();
        backends = vec![Backend {
            weight: 1,
            target: BackendTarget::Unavailable {
                status: 500,
                reason: p.message.clone(),
            },
            filters: vec![],
        }];
        problems.push(p);
    }
    let timeouts = r
        .timeouts
        .as_ref()
        .map(timeouts)
        .transpose()
        .map_err(unsupported)?;
    let retry = r
        .retry
        .as_ref()
        .map(retry)
        .transpose()
        .map_err(unsupported)?;
    Ok(Rule {
        index,
        name: r.name.clone(),
        matches,
        filters,
        backends,
        timeouts,
        retry,
    })
}

/// The CRD default match: PathPrefix `/`.
fn default_match() -> Match {
    Match {
        rank: 0,
        path: PathMatch::Prefix("/".into()),
        method: None,
        headers: vec![],
        query_params: vec![],
    }
}

fn match_(m: &HttpRouteRulesMatches) -> Result<Match, Invalid> {
    let path = match &m.path {
        None => PathMatch::Prefix("/".into()),
        Some(p) => {
            let value = p.value.clone().unwrap_or_else(|| "/".into());
            match p.r#type.as_ref().unwrap_or(&PathType::PathPrefix) {
                PathType::Exact => PathMatch::Exact(value),
                PathType::PathPrefix => PathMatch::Prefix(value),
                PathType::RegularExpression => PathMatch::Regex(value),
            }
        }
    };
    // "If multiple entries specify equivalent header names, only the first entry with an
    // equivalent name MUST be considered" (same for query parameters, names case-sensitive).
    let mut headers: Vec<HeaderMatch> = Vec::new();
    for h in m.headers.iter().flatten() {
        if headers.iter().any(|x| x.name.eq_ignore_ascii_case(&h.name)) {
            continue;
        }
        let value = match h.r#type.as_ref().unwrap_or(&HeaderType::Exact) {
            HeaderType::Exact => ValueMatch::Exact(h.value.clone()),
            HeaderType::RegularExpression => ValueMatch::Regex(h.value.clone()),
        };
        headers.push(HeaderMatch {
            name: h.name.clone(),
            value,
        });
    }
    let mut query_params: Vec<QueryParamMatch> = Vec::new();
    for q in m.query_params.iter().flatten() {
        if query_params.iter().any(|x| x.name == q.name) {
            continue;
        }
        let value = match q.r#type.as_ref().unwrap_or(&QueryType::Exact) {
            QueryType::Exact => ValueMatch::Exact(q.value.clone()),
            QueryType::RegularExpression => ValueMatch::Regex(q.value.clone()),
        };
        query_params.push(QueryParamMatch {
            name: q.name.clone(),
            value,
        });
    }
    Ok(Match {
        rank: 0,
        path,
        method: m.method.as_ref().map(method),
        headers,
        query_params,
    })
}

/// The CRD's `HTTPMethod` as the table's (the same nine values).
fn method(m: &Method) -> table::Method {
    match m {
        Method::Get => table::Method::Get,
        Method::Head => table::Method::Head,
        Method::Post => table::Method::Post,
        Method::Put => table::Method::Put,
        Method::Delete => table::Method::Delete,
        Method::Connect => table::Method::Connect,
        Method::Options => table::Method::Options,
        Method::Trace => table::Method::Trace,
        Method::Patch => table::Method::Patch,
    }
}

/// A GEP-2257 duration in milliseconds (`0s` = 0, which disables the timeout).
pub fn duration_ms(field: &'static str, value: &str) -> Result<u64, Invalid> {
    value
        .parse::<gateway_api::Duration>()
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .map_err(|e| Invalid::Duration {
            field,
            value: value.to_string(),
            reason: e.to_string(),
        })
}

fn timeouts(
    t: &gateway_api::experimental::httproutes::HttpRouteRulesTimeouts,
) -> Result<Timeouts, Invalid> {
    Ok(Timeouts {
        request_ms: t
            .request
            .as_deref()
            .map(|v| duration_ms("timeouts.request", v))
            .transpose()?,
        backend_request_ms: t
            .backend_request
            .as_deref()
            .map(|v| duration_ms("timeouts.backendRequest", v))
            .transpose()?,
    })
}

/// `retry.attempts` when unset: implementation-specific; 1, Envoy's own default.
pub const DEFAULT_RETRY_ATTEMPTS: u32 = 1;

fn retry(r: &gateway_api::experimental::httproutes::HttpRouteRulesRetry) -> Result<Retry, Invalid> {
    let attempts = match r.attempts {
        None => DEFAULT_RETRY_ATTEMPTS,
        Some(a) => u32::try_from(a).map_err(|_| Invalid::RetryAttempts(a))?,
    };
    let mut codes: Vec<u16> = Vec::new();
    for c in r.codes.iter().flatten() {
        let code = u16::try_from(*c)
            .ok()
            .filter(|c| (400..=599).contains(c))
            .ok_or(Invalid::RetryCode(*c))?;
        if !codes.contains(&code) {
            codes.push(code);
        }
    }
    Ok(Retry {
        attempts,
        codes,
        backoff_ms: r
            .backoff
            .as_deref()
            .map(|v| duration_ms("retry.backoff", v))
            .transpose()?,
    })
}

/// Runs the filter's own check of a rule ([`table::validate_rule`]), so only rules the filter
/// accepts are kept.
fn check(rule: Rule) -> Result<Rule, RouteProblem> {
    match table::validate_rule(&rule) {
        Ok(()) => Ok(rule),
        Err(e) => {
            let reason = match e.kind {
                TableErrorKind::RedirectWithRewrite { .. }
                | TableErrorKind::RedirectWithBackends { .. }
                | TableErrorKind::ReplacePrefixMatchWithoutPrefix { .. } => {
                    Reason::IncompatibleFilters
                }
                _ => Reason::UnsupportedValue,
            };
            Err(RouteProblem::new(reason, e.to_string()))
        }
    }
}
