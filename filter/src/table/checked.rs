//! A match as the checks leave it: compiled, ready to be tested against a request. Data only, in
//! its own module so that the checks ([`super::validate`]) that produce it do not import
//! [`super::ValidTable`], which carries it (imports run one way: valid → validate → checked).

use regex_lite::Regex;

use super::PathMatch;

/// One `HTTPRouteMatch` ready to be tested against a request: the conditions a path index cannot
/// decide, compiled.
#[derive(Debug)]
pub struct CheckedMatch {
    /// Where the match is in the table: route index, rule position, match position.
    pub route: u32,
    pub rule: u32,
    pub matched: u32,
    pub rank: u32,
    pub path: PathMatch,
    /// Only for `RegularExpression` paths; exact and prefix paths are decided by the index.
    pub path_regex: Option<Regex>,
    pub method: Option<Box<str>>,
    /// Header names lowercased (HTTP header names are case-insensitive).
    pub headers: Box<[(Box<str>, CheckedValue)]>,
    pub query: Box<[(Box<str>, CheckedValue)]>,
}

/// A header or query parameter value condition.
#[derive(Debug)]
pub enum CheckedValue {
    Exact(Box<str>),
    Regex(Regex),
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
}
