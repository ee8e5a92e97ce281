//! Bounds of a protobuf table, checked on the raw bytes before prost allocates anything for it.
//!
//! Why: prost allocates a whole struct for every element of a repeated field as it reads it, so
//! an element that costs 2 bytes on the wire (tag + zero length) costs a few hundred bytes in
//! memory. A crafted table within `source.maxTableBytes` of nothing but empty `routes` would ask
//! for gigabytes and trap the VM (issue "bounded work": a 64 MiB table must not exhaust a VM).
//! This scan walks the wire format without allocating, counts every field at every level and the
//! nesting, and refuses the document when either is over its limit.
//!
//! The scan does not know the schema: a length-delimited field is looked into as a message when
//! its bytes parse as one (a string may happen to), so it can only over-count — conservative.
//! Its cost is linear per nesting level, and the nesting is bounded.

/// Most fields (of any type, at any nesting level) in one table. The largest table of the
/// 10,000-match-entry router benchmark (single-host: 2,498 routes) has 131,334 fields, 53 per
/// route; 100,000 such routes have 5.3 million (BENCHMARKS.md "Table bounds"), and this leaves
/// a 1.5× margin. It bounds what prost allocates whatever the bytes: 2 bytes of wire per element
/// would otherwise let a 64 MiB table ask for 32 million structs.
pub const MAX_ELEMENTS: u64 = 8_000_000;

/// Deepest nesting looked into. The schema's is 6 (`RouteTable.routes.rules.filters.*.set`);
/// deeper bytes are left opaque, as prost reads them as strings at the schema's depth.
pub const MAX_DEPTH: u32 = 12;

/// Why a protobuf table was refused before decoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// More fields than [`MAX_ELEMENTS`].
    #[error("more than {limit} protobuf fields: refused before decoding")]
    TooManyElements { limit: u64 },
    /// Not a well-formed sequence of protobuf fields (prost would allocate up to the fault).
    #[error("malformed protobuf at byte {offset}: refused before decoding")]
    Malformed { offset: usize },
}

/// Checks `bytes` against [`MAX_ELEMENTS`] and [`MAX_DEPTH`] without allocating.
pub fn check(bytes: &[u8]) -> Result<(), LimitError> {
    check_with(bytes, MAX_ELEMENTS)
}

/// [`check`] with another element limit (tests).
pub fn check_with(bytes: &[u8], limit: u64) -> Result<(), LimitError> {
    let mut count = 0u64;
    match scan(bytes, 0, &mut count, limit)? {
        Scan::Message => Ok(()),
        Scan::NotAMessage(offset) => Err(LimitError::Malformed { offset }),
    }
}

/// Whether a byte run parsed as a sequence of fields.
enum Scan {
    Message,
    /// The offset (within the run) where it stopped parsing.
    NotAMessage(usize),
}

/// Counts the fields of `bytes` (and of the length-delimited ones that parse as messages) into
/// `count`; an error only when `count` passes `limit`.
fn scan(bytes: &[u8], depth: u32, count: &mut u64, limit: u64) -> Result<Scan, LimitError> {
    let mut at = 0usize;
    while at < bytes.len() {
        let start = at;
        let Some(key) = varint(bytes, &mut at) else {
            return Ok(Scan::NotAMessage(start));
        };
        if key >> 3 == 0 {
            return Ok(Scan::NotAMessage(start));
        }
        *count += 1;
        if *count > limit {
            return Err(LimitError::TooManyElements { limit });
        }
        let skip = match key & 7 {
            0 => {
                if varint(bytes, &mut at).is_none() {
                    return Ok(Scan::NotAMessage(start));
                }
                0
            }
            1 => 8,
            5 => 4,
            2 => {
                let Some(len) = varint(bytes, &mut at) else {
                    return Ok(Scan::NotAMessage(start));
                };
                let Some(payload) = usize::try_from(len)
                    .ok()
                    .and_then(|len| bytes.get(at..at.checked_add(len)?))
                else {
                    return Ok(Scan::NotAMessage(start));
                };
                if depth + 1 < MAX_DEPTH {
                    // A string that does not parse as a message is simply a string.
                    scan(payload, depth + 1, count, limit)?;
                }
                payload.len()
            }
            _ => return Ok(Scan::NotAMessage(start)),
        };
        at = match at.checked_add(skip) {
            Some(next) if next <= bytes.len() => next,
            _ => return Ok(Scan::NotAMessage(start)),
        };
    }
    Ok(Scan::Message)
}

/// A base-128 varint of at most 10 bytes at `*at`, advancing past it.
fn varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in 0..10 {
        let byte = *bytes.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << (shift * 7);
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::validate::fixtures::gateway;
    use crate::table::{encode_proto, TableErrorKind};

    #[test]
    fn real_tables_pass_and_are_counted() {
        let bytes = encode_proto(&gateway().with_version());
        check(&bytes).unwrap();
        // Every field counts: the fixture has more than a handful, so a low limit refuses it.
        assert_eq!(
            check_with(&bytes, 10),
            Err(LimitError::TooManyElements { limit: 10 })
        );
    }

    #[test]
    fn many_empty_elements_are_refused_before_decoding() {
        // 4 MiB of empty `routes` (tag 5, length 0): 2 Mi elements, each a struct prost would
        // allocate; with a limit of 1 Mi it is refused by the scan, and `decode_proto` says so.
        let bytes = [0x2a_u8, 0x00].repeat(2 << 20);
        assert_eq!(
            check_with(&bytes, 1 << 20),
            Err(LimitError::TooManyElements { limit: 1 << 20 })
        );
        // Just over the real limit (16 MB, well within maxTableBytes): refused by decode_proto.
        let bytes = [0x2a_u8, 0x00].repeat((MAX_ELEMENTS + 2) as usize);
        let e = crate::table::decode_proto(&bytes).unwrap_err();
        assert_eq!(
            e.kind,
            TableErrorKind::Limit(LimitError::TooManyElements {
                limit: MAX_ELEMENTS
            })
        );
        assert_eq!(e.at.to_string(), "protobuf document");
    }

    #[test]
    fn nested_elements_count_too() {
        // One route whose one rule holds 1,000 empty matches: 1,002 fields.
        let rule: Vec<u8> = [0x1a_u8, 0x00].repeat(1000);
        let mut route = vec![0x1a];
        route.extend(encode_len(rule.len()));
        route.extend(&rule);
        let mut table = vec![0x2a];
        table.extend(encode_len(route.len()));
        table.extend(&route);
        check_with(&table, 1002).unwrap();
        assert!(check_with(&table, 1001).is_err());
    }

    #[test]
    fn malformed_documents_are_refused_with_an_offset() {
        // Empty routes, then a truncated field: prost would have allocated the routes first.
        let mut bytes = [0x2a_u8, 0x00].repeat(100);
        bytes.extend([0x2a, 0x05, 0x00]);
        assert_eq!(check(&bytes), Err(LimitError::Malformed { offset: 200 }));
        assert_eq!(check(&[0x00]), Err(LimitError::Malformed { offset: 0 }));
        assert_eq!(check(&[0x0f]), Err(LimitError::Malformed { offset: 0 }));
        assert_eq!(check(&[0xff; 11]), Err(LimitError::Malformed { offset: 0 }));
        check(&[]).unwrap();
    }

    #[test]
    fn deep_nesting_is_bounded() {
        // 10,000 levels of field 1 wrapping field 1: scanned to MAX_DEPTH, then opaque.
        let mut bytes = Vec::new();
        for _ in 0..10_000 {
            let mut outer = vec![0x0a];
            outer.extend(encode_len(bytes.len()));
            outer.extend(&bytes);
            bytes = outer;
        }
        let mut count = 0;
        assert!(matches!(
            scan(&bytes, 0, &mut count, u64::MAX),
            Ok(Scan::Message)
        ));
        assert_eq!(count, u64::from(MAX_DEPTH));
    }

    fn encode_len(len: usize) -> Vec<u8> {
        let mut out = Vec::new();
        prost::encoding::encode_varint(len as u64, &mut out);
        out
    }
}
