//! Where a [`super::TableError`] is: a structured path through the table, rendered to text only
//! for display (`routes[3] (shop/web).rules[0].matches[1].path`).
//!
//! Kept as data so a caller can ask *which* route, rule or field failed (config-pusher places a
//! rule's error on that rule) without parsing the message apart. The path uses the table's JSON
//! field names (`filter/proto/table.proto`), with the object's name next to each list index so a
//! human finds it in an Envoy log.

use std::fmt;

/// Longest offending value quoted in an error, in bytes; longer ones are cut and end in `…`.
pub const SHOWN_VALUE_MAX: usize = 256;

/// `value` escaped-ready and cut to [`SHOWN_VALUE_MAX`] bytes at a character boundary.
pub(crate) fn shown(value: &str) -> String {
    if value.len() <= SHOWN_VALUE_MAX {
        return value.to_string();
    }
    let mut end = SHOWN_VALUE_MAX;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = value.get(..end).unwrap_or_default().to_string();
    out.push('…');
    out
}

/// The element an error is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A JSON document that does not parse, at a 1-based line and column.
    JsonText { line: usize, column: usize },
    /// A protobuf document that does not decode (the decoder reports no position).
    ProtobufDocument,
    /// An element of a table, from its root (no steps: the table itself).
    Table(Vec<Step>),
    /// An element of a rule checked on its own by [`super::validate_rule`], from the rule (no
    /// steps: the rule itself).
    Rule(Vec<Step>),
}

/// One step down from a table or rule root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A field, by its JSON name (`port`, `allowOrigins`).
    Field(&'static str),
    /// An element of a list field: `list[index]`, shown with `label`.
    Item {
        list: &'static str,
        index: usize,
        label: ItemLabel,
    },
}

/// What identifies a list element to a human, shown after its index: `routes[3] (shop/web)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemLabel {
    None,
    /// A listener, port or rule name.
    Name(String),
    /// A `namespace/name` (routes, Services).
    Qualified {
        namespace: String,
        name: String,
    },
    /// A mesh Service port number (as decoded: it may be out of range, which is the error).
    Port(u32),
    /// A filter's type (`filters[1] (CORS)`).
    Kind(&'static str),
}

impl Location {
    /// The steps below the root; empty for a document position.
    pub fn steps(&self) -> &[Step] {
        match self {
            Location::Table(steps) | Location::Rule(steps) => steps,
            Location::JsonText { .. } | Location::ProtobufDocument => &[],
        }
    }

    /// The index of the first `list` item on the path (`item("routes")` is the failing route).
    pub fn item(&self, list: &str) -> Option<usize> {
        self.steps().iter().find_map(|s| match s {
            Step::Item { list: l, index, .. } if *l == list => Some(*index),
            _ => None,
        })
    }
}

/// `routes[3] (shop/web).rules[0].matches[1].path`; names are escaped and cut to
/// [`SHOWN_VALUE_MAX`] bytes, so a hostile name cannot forge a log line.
impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (steps, root) = match self {
            Location::JsonText { line, column } => {
                return write!(f, "line {line}, column {column}")
            }
            Location::ProtobufDocument => return f.write_str("protobuf document"),
            Location::Table(steps) => (steps, "table"),
            Location::Rule(steps) => (steps, "rule"),
        };
        if steps.is_empty() {
            return f.write_str(root);
        }
        for (i, step) in steps.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            match step {
                Step::Field(name) => f.write_str(name)?,
                Step::Item { list, index, label } => {
                    write!(f, "{list}[{index}]")?;
                    match label {
                        ItemLabel::None => {}
                        ItemLabel::Name(n) => write!(f, " ({})", shown(n).escape_debug())?,
                        ItemLabel::Qualified { namespace, name } => write!(
                            f,
                            " ({}/{})",
                            shown(namespace).escape_debug(),
                            shown(name).escape_debug()
                        )?,
                        ItemLabel::Port(p) => write!(f, " ({p})")?,
                        ItemLabel::Kind(k) => write!(f, " ({k})")?,
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_roots_and_steps() {
        let at = Location::Table(vec![
            Step::Item {
                list: "routes",
                index: 3,
                label: ItemLabel::Qualified {
                    namespace: "shop".into(),
                    name: "web".into(),
                },
            },
            Step::Item {
                list: "rules",
                index: 0,
                label: ItemLabel::None,
            },
            Step::Field("timeouts"),
        ]);
        assert_eq!(at.to_string(), "routes[3] (shop/web).rules[0].timeouts");
        assert_eq!(at.item("routes"), Some(3));
        assert_eq!(at.item("matches"), None);
        assert_eq!(Location::Table(vec![]).to_string(), "table");
        assert_eq!(Location::Rule(vec![]).to_string(), "rule");
        assert_eq!(
            Location::JsonText { line: 3, column: 9 }.to_string(),
            "line 3, column 9"
        );
        assert_eq!(Location::ProtobufDocument.to_string(), "protobuf document");
    }
}
