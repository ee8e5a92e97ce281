//! A table that passed every check, and what the checks learned: parse, don't validate.
//!
//! [`ValidTable`] can only be made by checking a table ([`TryFrom`]), so a function that takes one
//! (`Router::build`) cannot meet an unchecked table and cannot fail. The checks keep their work:
//! each match's regular expressions are compiled once, here, and its header names lowercased, so
//! the router indexes [`CheckedMatch`]es instead of compiling the table again; CORS origins are
//! parsed once, here, not per cross-origin request (before this, a
//! table's regexes were compiled by validation, by a second validation and once per attachment by
//! the router).

use super::checked::{CheckedMatch, CorsOrigins};
use super::{validate, versioned, wire, RouteTable, TableError};

/// A checked table: [`RouteTable`] plus the compiled form of every match, in table order
/// (routes, then rules, then matches).
#[derive(Debug)]
pub struct ValidTable {
    table: RouteTable,
    matches: Vec<CheckedMatch>,
    /// `matches[route_starts[r]..route_starts[r + 1]]` are route `r`'s (one more entry than routes).
    route_starts: Vec<usize>,
    /// Every CORS filter's `allowOrigins`, parsed once here rather than per request.
    origins: CorsOrigins,
}

impl ValidTable {
    /// The table as it was checked.
    pub fn table(&self) -> &RouteTable {
        &self.table
    }

    /// The compiled matches of route `route`, in rule then match order (empty for no such route).
    pub fn route_matches(&self, route: u32) -> (usize, &[CheckedMatch]) {
        let r = route as usize;
        let (Some(&start), Some(&end)) = (self.route_starts.get(r), self.route_starts.get(r + 1))
        else {
            return (0, &[]);
        };
        (start, self.matches.get(start..end).unwrap_or_default())
    }

    /// The parsed `allowOrigins` of every CORS filter.
    pub fn origins(&self) -> &CorsOrigins {
        &self.origins
    }

    /// The table, every compiled match in table order (positions as [`Self::route_matches`]
    /// reports them) and the parsed CORS origins.
    pub fn into_parts(self) -> (RouteTable, Vec<CheckedMatch>, CorsOrigins) {
        (self.table, self.matches, self.origins)
    }
}

/// Checks a table whose `version` is already what it should be (see [`super::versioned`]).
impl TryFrom<RouteTable> for ValidTable {
    type Error = TableError;

    fn try_from(table: RouteTable) -> Result<ValidTable, TableError> {
        let kept = validate::check(&table)?;
        Ok(ValidTable {
            table,
            matches: kept.matches,
            route_starts: kept.route_starts,
            origins: kept.origins,
        })
    }
}

/// Converts a decoded document (either encoding), checks its `version` against its content and
/// checks the table: everything a table goes through between bytes and a router.
impl TryFrom<wire::RouteTable> for ValidTable {
    type Error = TableError;

    fn try_from(msg: wire::RouteTable) -> Result<ValidTable, TableError> {
        ValidTable::try_from(versioned(msg)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::origin::{HostPattern, OriginPattern, Scheme};
    use crate::table::validate::fixtures::gateway;
    use crate::table::{Cors, Filter, FilterAt};

    /// The check parses every CORS filter's origins, rule- and backend-level, and the table keeps
    /// them for the router (which never parses an origin pattern per request).
    #[test]
    fn keeps_parsed_cors_origins() {
        let mut table = gateway();
        table.routes[0].rules[0].backends[0]
            .filters
            .push(Filter::Cors(Cors {
                allow_origins: vec!["*".into()],
                max_age_seconds: 5,
                ..Cors::default()
            }));
        let valid = ValidTable::try_from(table.clone()).unwrap();
        let at = |backend, filter| FilterAt {
            route: 0,
            rule: 0,
            backend,
            filter,
        };
        assert_eq!(
            valid.origins().get(at(None, 5)),
            &[
                OriginPattern::Site {
                    scheme: Scheme::Https,
                    host: HostPattern::Suffix(".example.com".into()),
                    port: 443,
                },
                OriginPattern::Site {
                    scheme: Scheme::Http,
                    host: HostPattern::Exact("localhost".into()),
                    port: 8080,
                },
            ]
        );
        assert_eq!(valid.origins().get(at(Some(0), 1)), &[OriginPattern::Any]);
        assert!(valid.origins().get(at(None, 0)).is_empty());
        // The reference router parses on its own and finds the same.
        assert_eq!(valid.origins(), &CorsOrigins::of(&table));
    }
}
