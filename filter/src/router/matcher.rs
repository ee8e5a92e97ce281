//! One compiled `HTTPRouteMatch` tested against a request: the conditions checked after the path
//! index has found a candidate. The match was compiled when the table was checked
//! ([`crate::table::ValidTable`]).

use std::sync::atomic::{AtomicU64, Ordering};

use super::request::Request;
use crate::table::regex::bounded_match;
use crate::table::CheckedMatch;

/// Every condition the path index does not decide: regex path, method (exact, so HEAD is not
/// GET), headers (absent header never matches; any value of a repeated one), query parameters. A value too long for a regex
/// does not match and adds one to `oversized` (see [`crate::table::regex::MAX_INPUT_LEN`]).
pub fn matches(m: &CheckedMatch, req: &Request<'_>, oversized: &AtomicU64) -> bool {
    let counted = |result: Option<bool>| {
        result.unwrap_or_else(|| {
            oversized.fetch_add(1, Ordering::Relaxed);
            false
        })
    };
    if let Some(re) = &m.path_regex {
        if !counted(bounded_match(re, req.path_only())) {
            return false;
        }
    }
    if let Some(method) = &m.method {
        if **method != *req.method {
            return false;
        }
    }
    // Any one value of a repeated header may match ([`Request::header_values`]).
    m.headers
        .iter()
        .all(|(name, v)| counted(v.holds_any(req.header_values(name))))
        && m.query.iter().all(|(name, v)| {
            req.query_param(name)
                .is_some_and(|actual| counted(v.holds(&actual)))
        })
}
