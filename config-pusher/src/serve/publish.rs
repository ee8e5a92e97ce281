//! Which table each role serves after a translation — pure, no shared state.
//!
//! Publishing follows xDS NACK semantics on the control-plane side: a role whose translated table
//! failed the filter's validation keeps its previous version (or stays absent), so a proxy is
//! never offered a table it would reject.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use gammaroute_filter::table::{self, RouteTable};

use crate::translate::Output;

/// One role's table as served, encoded once.
#[derive(Debug)]
pub struct Published {
    pub table: RouteTable,
    pub json: Bytes,
    pub proto: Bytes,
    /// The [`Snapshot::generation`](crate::source::Snapshot::generation) this content was
    /// first published at (kept while the content stays the same).
    pub generation: u64,
}

impl Published {
    fn new(table: RouteTable, generation: u64) -> Published {
        Published {
            json: Bytes::from(table::encode_json(&table)),
            proto: Bytes::from(table::encode_proto(&table)),
            table,
            generation,
        }
    }

    pub fn version(&self) -> &str {
        &self.table.version
    }

    /// Whether to send this table to a proxy that runs version `known` (its `If-None-Match`) of
    /// generation `proxy_generation`: only a different table that is not older. A replica that
    /// lags behind the one the proxy last fetched from then only delays the proxy, never moves
    /// it back (the issue's "no flip-flop between replicas").
    pub fn offer(&self, known: Option<&str>, proxy_generation: Option<u64>) -> bool {
        let same = known.is_some_and(|k| super::headers::none_match(k, self.version()));
        !same && self.generation >= proxy_generation.unwrap_or(0)
    }
}

/// Tables by role.
pub type Tables = BTreeMap<String, Arc<Published>>;

/// What a translation changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Roles with a new version, and the version.
    pub changed: Vec<(String, String)>,
    /// Roles that no longer exist.
    pub removed: Vec<String>,
    /// Roles whose new table was rejected (their previous version, if any, stays).
    pub rejected: Vec<String>,
}

/// The tables to serve after `output`: new versions replace old ones, unchanged versions keep
/// their encodings, rejected roles keep their previous table, roles gone are removed; new
/// versions are of `generation`, the snapshot's. Pure.
pub fn next_tables(previous: &Tables, output: &Output, generation: u64) -> (Tables, Outcome) {
    let mut outcome = Outcome::default();
    let mut next = Tables::new();
    let rejected: std::collections::BTreeSet<&str> =
        output.errors.iter().map(|e| e.role.as_str()).collect();
    for (role, t) in &output.tables {
        let old = previous.get(role);
        if rejected.contains(role.as_str()) {
            outcome.rejected.push(role.clone());
            if let Some(old) = old {
                next.insert(role.clone(), old.clone());
            }
            continue;
        }
        match old {
            Some(old) if old.version() == t.version => {
                next.insert(role.clone(), old.clone());
            }
            _ => {
                outcome.changed.push((role.clone(), t.version.clone()));
                next.insert(
                    role.clone(),
                    Arc::new(Published::new(t.clone(), generation)),
                );
            }
        }
    }
    outcome.removed = previous
        .keys()
        .filter(|r| !output.tables.contains_key(*r))
        .cloned()
        .collect();
    (next, outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::TableRejected;

    fn table(role: &str, name: &str) -> RouteTable {
        RouteTable {
            role: role.into(),
            routes: vec![table::Route {
                namespace: "ns".into(),
                name: name.into(),
                rules: vec![],
            }],
            ..RouteTable::default()
        }
        .with_version()
    }

    fn output(tables: &[RouteTable], rejected: &[&str]) -> Output {
        Output {
            tables: tables.iter().map(|t| (t.role.clone(), t.clone())).collect(),
            errors: rejected
                .iter()
                .map(|r| TableRejected {
                    role: r.to_string(),
                    error: table::TableError {
                        at: table::Location::Table(vec![table::Step::Item {
                            list: "routes",
                            index: 0,
                            label: table::ItemLabel::None,
                        }]),
                        kind: table::TableErrorKind::Proto("test".into()),
                    },
                })
                .collect(),
            ..Output::default()
        }
    }

    #[test]
    fn rejected_roles_keep_their_previous_table() {
        let (a1, b1) = (table("gateway/ns/a", "r1"), table("mesh/ns", "r1"));
        let (t1, o1) = next_tables(&Tables::new(), &output(&[a1.clone(), b1.clone()], &[]), 1);
        assert_eq!(o1.changed.len(), 2);
        // Same content: same Arc, nothing changed.
        let (t2, o2) = next_tables(&t1, &output(&[a1.clone(), b1.clone()], &[]), 2);
        assert_eq!(o2, Outcome::default());
        assert!(Arc::ptr_eq(&t1["gateway/ns/a"], &t2["gateway/ns/a"]));
        // a changes, b's new table is rejected (translate replaced it by an empty one).
        let a2 = table("gateway/ns/a", "r2");
        let empty = RouteTable {
            role: "mesh/ns".into(),
            ..RouteTable::default()
        }
        .with_version();
        let (t3, o3) = next_tables(&t2, &output(&[a2.clone(), empty], &["mesh/ns"]), 3);
        assert_eq!(
            o3.changed,
            [("gateway/ns/a".to_string(), a2.version.clone())]
        );
        assert_eq!(o3.rejected, ["mesh/ns"]);
        assert_eq!(t3["mesh/ns"].version(), b1.version);
        // A rejected role never published stays absent; a role gone is removed.
        let c = table("gateway/ns/c", "r");
        let (t4, o4) = next_tables(&t3, &output(&[c], &["gateway/ns/c"]), 4);
        assert!(t4.is_empty());
        assert_eq!(o4.removed, ["gateway/ns/a", "mesh/ns"]);
    }

    #[test]
    fn a_table_keeps_the_generation_it_appeared_at_and_is_never_offered_to_a_newer_proxy() {
        let a1 = table("gateway/ns/a", "r1");
        let (t1, _) = next_tables(&Tables::new(), &output(std::slice::from_ref(&a1), &[]), 10);
        let (t2, _) = next_tables(&t1, &output(std::slice::from_ref(&a1), &[]), 20);
        assert_eq!(t2["gateway/ns/a"].generation, 10, "unchanged content");
        let a2 = table("gateway/ns/a", "r2");
        let (t3, _) = next_tables(&t2, &output(std::slice::from_ref(&a2), &[]), 30);
        let (old, new) = (&t1["gateway/ns/a"], &t3["gateway/ns/a"]);
        assert_eq!(new.generation, 30);
        let quoted = |v: &str| format!("\"{v}\"");
        // A first fetch, or a proxy on an older table: offered.
        assert!(new.offer(None, None));
        assert!(new.offer(Some(&quoted(&a1.version)), Some(10)));
        // The proxy runs it already: not offered.
        assert!(!new.offer(Some(&quoted(&a2.version)), Some(30)));
        // A lagging replica still at a1 never moves a proxy at a2 back; an older proxy (or one
        // that does not say) gets it.
        assert!(!old.offer(Some(&quoted(&a2.version)), Some(30)));
        assert!(old.offer(Some(&quoted(&a2.version)), None));
        assert!(old.offer(None, Some(10)));
    }
}
