//! HTTPRoute filters → table filters, for rule filters and backendRef filters alike (the two
//! lists have the same schema; backendRef filters are read through the rule-filter type).
//!
//! Every core and extended filter is translated: RequestHeaderModifier, ResponseHeaderModifier,
//! RequestRedirect, URLRewrite, RequestMirror (percent / fraction) and CORS, with the CRD
//! defaults applied (redirect 302, mirror 100%, CORS maxAge 5 s). `ExtensionRef` and
//! `ExternalAuth` are not supported: the spec says an unresolvable ExtensionRef "MUST NOT be
//! skipped", and skipping an auth filter would open the route, so the rule (or the backend, for a
//! backendRef filter) **fails closed** with a 500 and `ResolvedRefs=False` (`InvalidKind`).

use gammaroute_filter::table::{
    self, BackendTarget, Cors, Filter, Header, HeaderModifier, Mirror, PathModifier, Redirect,
    RedirectCode, UrlRewrite,
};
use gateway_api::experimental::httproutes::{
    HttpRouteRulesFilters, HttpRouteRulesFiltersRequestRedirectPathType as RedirectPathType,
    HttpRouteRulesFiltersRequestRedirectScheme as Scheme, HttpRouteRulesFiltersType as Type,
    HttpRouteRulesFiltersUrlRewritePathType as RewritePathType,
};

use super::backend::{self, Index, Ref};
use super::status::{Reason, RouteProblem};
use super::Context;

/// What one Gateway API filter becomes.
#[derive(Debug)]
pub enum FilterConversion {
    Filter(Filter),
    /// A RequestMirror whose backend is invalid: not configured, reported in `ResolvedRefs`.
    DroppedMirror(RouteProblem),
    /// A mirror to a Service without ready endpoints: nothing to send, nothing to report.
    Skip,
    /// A filter that cannot be honoured: requests that reach it must fail with 500.
    FailClosed(RouteProblem),
}

/// Why a filter (or another part of a rule) makes its rule invalid: the rule is dropped and the
/// route's status says this, with reason `UnsupportedValue`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("filter type {filter} needs field {field}")]
    MissingField {
        filter: &'static str,
        field: &'static str,
    },
    #[error("redirect port {0} is out of range")]
    RedirectPort(i64),
    /// `requestRedirect.statusCode`: the CRD's enum.
    #[error("redirect statusCode {0} is not 301, 302, 303, 307 or 308")]
    RedirectStatus(i64),
    #[error("RequestMirror: set percent or fraction, not both")]
    MirrorPercentAndFraction,
    #[error("RequestMirror fraction {numerator}/{denominator} is negative")]
    MirrorFractionNegative { numerator: i64, denominator: i64 },
    #[error("CORS maxAge {0} is negative")]
    CorsMaxAge(i64),
    /// A `backendRefs[].filters` entry that does not read as a rule filter (the schemas are
    /// identical, so only input the API server would refuse).
    #[error("backendRef filter: {0}")]
    BackendFilter(String),
    /// GEP-2257 durations (`timeouts.*`, `retry.backoff`).
    #[error("{field} {value:?} is not a Gateway API duration: {reason}")]
    Duration {
        field: &'static str,
        value: String,
        reason: String,
    },
    #[error("retry.attempts {0} is out of range")]
    RetryAttempts(i64),
    #[error("retry code {0} is not in 400-599")]
    RetryCode(i64),
}

/// Translates one filter of a route in `namespace`.
pub fn convert(
    idx: &Index,
    namespace: &str,
    ctx: Context,
    f: &HttpRouteRulesFilters,
) -> Result<FilterConversion, Invalid> {
    let missing = |field: &'static str| Invalid::MissingField {
        filter: type_name(&f.r#type),
        field,
    };
    Ok(match f.r#type {
        Type::RequestHeaderModifier => {
            let m = f
                .request_header_modifier
                .as_ref()
                .ok_or_else(|| missing("requestHeaderModifier"))?;
            FilterConversion::Filter(Filter::RequestHeaderModifier(header_modifier(
                m.set
                    .iter()
                    .flatten()
                    .map(|h| (h.name.as_str(), h.value.as_str())),
                m.add
                    .iter()
                    .flatten()
                    .map(|h| (h.name.as_str(), h.value.as_str())),
                m.remove.iter().flatten(),
            )))
        }
        Type::ResponseHeaderModifier => {
            let m = f
                .response_header_modifier
                .as_ref()
                .ok_or_else(|| missing("responseHeaderModifier"))?;
            FilterConversion::Filter(Filter::ResponseHeaderModifier(header_modifier(
                m.set
                    .iter()
                    .flatten()
                    .map(|h| (h.name.as_str(), h.value.as_str())),
                m.add
                    .iter()
                    .flatten()
                    .map(|h| (h.name.as_str(), h.value.as_str())),
                m.remove.iter().flatten(),
            )))
        }
        Type::RequestRedirect => {
            let r = f
                .request_redirect
                .as_ref()
                .ok_or_else(|| missing("requestRedirect"))?;
            let path = match &r.path {
                None => None,
                Some(p) => Some(match p.r#type {
                    RedirectPathType::ReplaceFullPath => PathModifier::ReplaceFullPath(
                        p.replace_full_path
                            .clone()
                            .ok_or_else(|| missing("path.replaceFullPath"))?,
                    ),
                    RedirectPathType::ReplacePrefixMatch => PathModifier::ReplacePrefixMatch(
                        p.replace_prefix_match
                            .clone()
                            .ok_or_else(|| missing("path.replacePrefixMatch"))?,
                    ),
                }),
            };
            let port = r
                .port
                .map(|p| u16::try_from(p).map_err(|_| Invalid::RedirectPort(p.into())))
                .transpose()?;
            let status_code = match r.status_code {
                None => RedirectCode::Found,
                Some(c) => u64::try_from(c)
                    .ok()
                    .and_then(RedirectCode::of)
                    .ok_or(Invalid::RedirectStatus(c))?,
            };
            FilterConversion::Filter(Filter::RequestRedirect(Redirect {
                scheme: r.scheme.as_ref().map(|s| match s {
                    Scheme::Http => table::Scheme::Http,
                    Scheme::Https => table::Scheme::Https,
                }),
                hostname: r.hostname.clone(),
                path,
                port,
                status_code,
            }))
        }
        Type::UrlRewrite => {
            let r = f
                .url_rewrite
                .as_ref()
                .ok_or_else(|| missing("urlRewrite"))?;
            let path = match &r.path {
                None => None,
                Some(p) => Some(match p.r#type {
                    RewritePathType::ReplaceFullPath => PathModifier::ReplaceFullPath(
                        p.replace_full_path
                            .clone()
                            .ok_or_else(|| missing("path.replaceFullPath"))?,
                    ),
                    RewritePathType::ReplacePrefixMatch => PathModifier::ReplacePrefixMatch(
                        p.replace_prefix_match
                            .clone()
                            .ok_or_else(|| missing("path.replacePrefixMatch"))?,
                    ),
                }),
            };
            FilterConversion::Filter(Filter::UrlRewrite(UrlRewrite {
                hostname: r.hostname.clone(),
                path,
            }))
        }
        Type::RequestMirror => {
            let m = f
                .request_mirror
                .as_ref()
                .ok_or_else(|| missing("requestMirror"))?;
            let b = &m.backend_ref;
            let (numerator, denominator) = match (&m.percent, &m.fraction) {
                (Some(_), Some(_)) => return Err(Invalid::MirrorPercentAndFraction),
                (Some(p), None) => (*p, 100),
                (None, Some(fr)) => (fr.numerator, fr.denominator.unwrap_or(100)),
                (None, None) => (1, 1),
            };
            let (numerator, denominator) =
                match (u32::try_from(numerator), u32::try_from(denominator)) {
                    (Ok(n), Ok(d)) => (n, d),
                    _ => {
                        return Err(Invalid::MirrorFractionNegative {
                            numerator: numerator.into(),
                            denominator: denominator.into(),
                        })
                    }
                };
            let (target, problem) = backend::resolve(
                idx,
                namespace,
                ctx,
                Ref {
                    group: b.group.as_deref(),
                    kind: b.kind.as_deref(),
                    name: &b.name,
                    namespace: b.namespace.as_deref(),
                    port: b.port,
                },
            );
            match (target, problem) {
                (_, Some(p)) => FilterConversion::DroppedMirror(RouteProblem {
                    reason: p.reason,
                    message: format!("RequestMirror {}", p.message),
                }),
                (BackendTarget::Cluster(cluster), None) => {
                    FilterConversion::Filter(Filter::RequestMirror(Mirror {
                        cluster,
                        numerator,
                        denominator,
                    }))
                }
                // No ready endpoints: mirroring nowhere is what a mirror does anyway.
                (BackendTarget::Unavailable { .. }, None) => FilterConversion::Skip,
            }
        }
        Type::Cors => {
            let c = f.cors.as_ref().ok_or_else(|| missing("cors"))?;
            FilterConversion::Filter(Filter::Cors(Cors {
                allow_origins: c.allow_origins.clone().unwrap_or_default(),
                allow_credentials: c.allow_credentials.unwrap_or(false),
                allow_methods: c.allow_methods.clone().unwrap_or_default(),
                allow_headers: c.allow_headers.clone().unwrap_or_default(),
                expose_headers: c.expose_headers.clone().unwrap_or_default(),
                max_age_seconds: c
                    .max_age
                    .map(|a| u32::try_from(a).map_err(|_| Invalid::CorsMaxAge(a.into())))
                    .transpose()?
                    .unwrap_or(5),
            }))
        }
        Type::ExtensionRef => {
            let what = f.extension_ref.as_ref().map_or_else(
                || "(none)".to_string(),
                |e| format!("{}.{} {}", e.kind, e.group, e.name),
            );
            FilterConversion::FailClosed(RouteProblem {
                reason: Reason::InvalidKind,
                message: format!("ExtensionRef filter {what} is not supported: requests get 500"),
            })
        }
        Type::ExternalAuth => FilterConversion::FailClosed(RouteProblem {
            reason: Reason::InvalidKind,
            message: "ExternalAuth filter is not supported: requests get 500".into(),
        }),
    })
}

/// The Gateway API name of a filter type.
pub fn type_name(t: &Type) -> &'static str {
    match t {
        Type::RequestHeaderModifier => "RequestHeaderModifier",
        Type::ResponseHeaderModifier => "ResponseHeaderModifier",
        Type::RequestMirror => "RequestMirror",
        Type::RequestRedirect => "RequestRedirect",
        Type::UrlRewrite => "URLRewrite",
        Type::ExtensionRef => "ExtensionRef",
        Type::Cors => "CORS",
        Type::ExternalAuth => "ExternalAuth",
    }
}

/// Header modifier lists; "only the first entry with an equivalent name MUST be considered"
/// (names are case-insensitive), so later duplicates are dropped.
fn header_modifier<'a>(
    set: impl Iterator<Item = (&'a str, &'a str)>,
    add: impl Iterator<Item = (&'a str, &'a str)>,
    remove: impl Iterator<Item = &'a String>,
) -> HeaderModifier {
    fn dedup<'a>(list: impl Iterator<Item = (&'a str, &'a str)>) -> Vec<Header> {
        let mut out: Vec<Header> = Vec::new();
        for (name, value) in list {
            if !out.iter().any(|h| h.name.eq_ignore_ascii_case(name)) {
                out.push(Header {
                    name: name.to_string(),
                    value: value.to_string(),
                });
            }
        }
        out
    }
    let mut removed: Vec<String> = Vec::new();
    for r in remove {
        if !removed.iter().any(|x| x.eq_ignore_ascii_case(r)) {
            removed.push(r.clone());
        }
    }
    HeaderModifier {
        set: dedup(set),
        add: dedup(add),
        remove: removed,
    }
}

/// Reads a backendRef filter through the rule-filter type (identical schemas).
pub fn from_backend_filter<T: serde::Serialize>(f: &T) -> Result<HttpRouteRulesFilters, Invalid> {
    serde_json::to_value(f)
        .and_then(serde_json::from_value)
        .map_err(|e| Invalid::BackendFilter(e.to_string()))
}
