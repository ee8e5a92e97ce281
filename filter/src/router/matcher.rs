//! One compiled `HTTPRouteMatch` tested against a request: the conditions checked after the path
//! index has found a candidate. The match was compiled when the table was checked
//! ([`crate::table::ValidTable`]).

use super::request::Request;
use crate::table::CheckedMatch;

/// Every condition the path index does not decide: regex path, method (exact, so HEAD is not
/// GET), headers (absent header never matches), query parameters.
pub fn matches(m: &CheckedMatch, req: &Request<'_>) -> bool {
    if let Some(re) = &m.path_regex {
        if !re.is_match(req.path_only()) {
            return false;
        }
    }
    if let Some(method) = &m.method {
        if **method != *req.method {
            return false;
        }
    }
    m.headers
        .iter()
        .all(|(name, v)| req.header(name).is_some_and(|actual| v.holds(&actual)))
        && m.query
            .iter()
            .all(|(name, v)| req.query_param(name).is_some_and(|actual| v.holds(&actual)))
}
