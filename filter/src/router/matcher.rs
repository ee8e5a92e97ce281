//! One compiled `HTTPRouteMatch`: the conditions checked after the path index has found a
//! candidate.

use regex_lite::Regex;

use super::request::Request;
use crate::table::{regex, Match, PathMatch, TableErrorKind, ValueMatch};

#[derive(Debug)]
pub struct CompiledMatch {
    /// Where the match came from, for the decision and for metrics.
    pub route: u32,
    pub rule: u32,
    pub matched: u32,
    pub rank: u32,
    pub path: PathMatch,
    /// Only for `RegularExpression` paths; exact and prefix paths are decided by the index.
    path_regex: Option<Regex>,
    method: Option<Box<str>>,
    headers: Box<[(Box<str>, Value)]>,
    query: Box<[(Box<str>, Value)]>,
}

#[derive(Debug)]
enum Value {
    Exact(Box<str>),
    Regex(Regex),
}

impl Value {
    fn compile(v: &ValueMatch) -> Result<Value, TableErrorKind> {
        Ok(match v {
            ValueMatch::Exact(s) => Value::Exact(s.as_str().into()),
            ValueMatch::Regex(p) => Value::Regex(compile_regex(p)?),
        })
    }

    fn holds(&self, actual: &str) -> bool {
        match self {
            Value::Exact(s) => **s == *actual,
            Value::Regex(re) => re.is_match(actual),
        }
    }
}

fn compile_regex(pattern: &str) -> Result<Regex, TableErrorKind> {
    regex::compile(pattern).map_err(|reason| TableErrorKind::InvalidRegex {
        pattern: pattern.to_string(),
        reason,
    })
}

impl CompiledMatch {
    pub fn compile(route: u32, rule: u32, matched: u32, m: &Match) -> Result<Self, TableErrorKind> {
        let path_regex = match &m.path {
            PathMatch::Regex(p) => Some(compile_regex(p)?),
            PathMatch::Exact(_) | PathMatch::Prefix(_) => None,
        };
        let headers = m
            .headers
            .iter()
            .map(|h| {
                Ok((
                    h.name.to_ascii_lowercase().into(),
                    Value::compile(&h.value)?,
                ))
            })
            .collect::<Result<_, TableErrorKind>>()?;
        let query = m
            .query_params
            .iter()
            .map(|q| Ok((q.name.as_str().into(), Value::compile(&q.value)?)))
            .collect::<Result<_, TableErrorKind>>()?;
        Ok(CompiledMatch {
            route,
            rule,
            matched,
            rank: m.rank,
            path: m.path.clone(),
            path_regex,
            method: m.method.as_deref().map(Into::into),
            headers,
            query,
        })
    }

    /// Every condition the path index does not decide: regex path, method (exact, so HEAD is not
    /// GET), headers (absent header never matches), query parameters.
    pub fn matches(&self, req: &Request<'_>) -> bool {
        if let Some(re) = &self.path_regex {
            if !re.is_match(req.path_only()) {
                return false;
            }
        }
        if let Some(method) = &self.method {
            if **method != *req.method {
                return false;
            }
        }
        self.headers
            .iter()
            .all(|(name, v)| req.header(name).is_some_and(|actual| v.holds(&actual)))
            && self
                .query
                .iter()
                .all(|(name, v)| req.query_param(name).is_some_and(|actual| v.holds(&actual)))
    }
}
