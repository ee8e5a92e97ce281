//! A table that passed every check, and what the checks learned: parse, don't validate.
//!
//! [`ValidTable`] can only be made by checking a table ([`TryFrom`]), so a function that takes one
//! (`Router::build`) cannot meet an unchecked table and cannot fail. The checks keep their work:
//! each match's regular expressions are compiled once, here, and its header names lowercased, so
//! the router indexes [`CheckedMatch`]es instead of compiling the table again (before this, a
//! table's regexes were compiled by validation, by a second validation and once per attachment by
//! the router).

use super::checked::CheckedMatch;
use super::{validate, versioned, wire, RouteTable, TableError};

/// A checked table: [`RouteTable`] plus the compiled form of every match, in table order
/// (routes, then rules, then matches).
#[derive(Debug)]
pub struct ValidTable {
    table: RouteTable,
    matches: Vec<CheckedMatch>,
    /// `matches[route_starts[r]..route_starts[r + 1]]` are route `r`'s (one more entry than routes).
    route_starts: Vec<usize>,
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

    /// The table and every compiled match, in table order (positions as [`Self::route_matches`]
    /// reports them).
    pub fn into_parts(self) -> (RouteTable, Vec<CheckedMatch>) {
        (self.table, self.matches)
    }
}

/// Checks a table whose `version` is already what it should be (see [`super::versioned`]).
impl TryFrom<RouteTable> for ValidTable {
    type Error = TableError;

    fn try_from(table: RouteTable) -> Result<ValidTable, TableError> {
        let (matches, route_starts) = validate::check(&table)?;
        Ok(ValidTable {
            table,
            matches,
            route_starts,
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
