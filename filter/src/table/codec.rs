//! JSON and protobuf encodings of a [`RouteTable`], both through the one schema in [`wire`];
//! decoding always validates.
//!
//! Both decoders go through [`super::versioned`]: an empty `version` is filled with the content
//! hash, a declared one must equal it (so a table altered in transit or by hand is refused); then
//! the table is validated. Nothing here panics on any input: the filter decodes whatever the poll or
//! the plugin configuration brings.

use prost::Message as _;

use super::{limits, validate, versioned, wire, Location, RouteTable, TableError, TableErrorKind};

/// Parses, versions and validates a JSON table (the JSON form of [`wire`]: camelCase, unknown
/// fields refused). Syntax and shape errors carry serde's line and column.
pub fn decode_json(bytes: &[u8]) -> Result<RouteTable, TableError> {
    let table = versioned(parse_json(bytes)?)?;
    validate(&table)?;
    Ok(table)
}

/// Parses, versions and validates a protobuf table.
pub fn decode_proto(bytes: &[u8]) -> Result<RouteTable, TableError> {
    let table = versioned(parse_proto(bytes)?)?;
    validate(&table)?;
    Ok(table)
}

/// Parses a JSON table into the schema's types only: for a caller that versions and checks it
/// itself (the filter: `PluginConfig::compile`, which checks a table once its clusters are renamed).
pub fn parse_json(bytes: &[u8]) -> Result<wire::RouteTable, TableError> {
    serde_json::from_slice(bytes).map_err(|e| json_error(&e))
}

/// [`parse_json`] for the protobuf encoding. prost skips fields it does not know; the document
/// is refused when it had any (its canonical re-encoding is shorter than what was read), as JSON
/// refuses unknown keys, so an older filter never routes with part of a newer table dropped.
/// The bytes are first checked against [`limits`] so that prost allocates nothing for a table
/// over them.
pub fn parse_proto(bytes: &[u8]) -> Result<wire::RouteTable, TableError> {
    limits::check(bytes).map_err(|e| TableError {
        at: Location::ProtobufDocument,
        kind: TableErrorKind::Limit(e),
    })?;
    let msg = wire::RouteTable::decode(bytes).map_err(|e| TableError {
        at: Location::ProtobufDocument,
        kind: TableErrorKind::Proto(e.to_string()),
    })?;
    let read = msg.encoded_len();
    if read != bytes.len() {
        return Err(TableError {
            at: Location::ProtobufDocument,
            kind: TableErrorKind::UnknownFields {
                unread: bytes.len().abs_diff(read),
            },
        });
    }
    Ok(msg)
}

/// Pretty-printed JSON with a trailing newline. Stable: field order is the model's declaration
/// order, lists keep their order, empty optional fields are left out — equal tables give equal
/// text, so golden files diff cleanly.
pub fn encode_json(table: &RouteTable) -> String {
    // Serializing these types cannot fail (no maps, no non-string keys); an empty string would
    // then fail to decode rather than pass for a table.
    let mut out = serde_json::to_string_pretty(&wire::RouteTable::from(table)).unwrap_or_default();
    out.push('\n');
    out
}

/// The protobuf encoding (see [`wire`]); deterministic for equal tables.
pub fn encode_proto(table: &RouteTable) -> Vec<u8> {
    wire::RouteTable::from(table).encode_to_vec()
}

/// A serde_json error as a [`TableError`] at `line L, column C`, without serde's own location
/// suffix (it is in `at`).
fn json_error(e: &serde_json::Error) -> TableError {
    let (line, column) = (e.line(), e.column());
    let full = e.to_string();
    let suffix = format!(" at line {line} column {column}");
    let message = full.strip_suffix(&suffix).unwrap_or(&full).to_string();
    TableError {
        at: Location::JsonText { line, column },
        kind: TableErrorKind::Json {
            line,
            column,
            message,
        },
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::table::validate::fixtures::{gateway, mesh, GATEWAY_JSON, MESH_JSON};
    use crate::table::{BackendTarget, PathMatch};

    #[test]
    fn json_proto_json_round_trip() {
        for json in [GATEWAY_JSON, MESH_JSON] {
            let from_json = decode_json(json.as_bytes()).unwrap();
            assert_eq!(from_json.version.len(), 32);
            let proto = encode_proto(&from_json);
            let from_proto = decode_proto(&proto).unwrap();
            assert_eq!(from_proto, from_json);
            assert_eq!(from_proto.version, from_json.version);
            let text = encode_json(&from_proto);
            assert_eq!(text, encode_json(&from_json));
            assert!(text.ends_with("}\n"));
            // The canonical text decodes to the same table (its declared version checks out).
            assert_eq!(decode_json(text.as_bytes()).unwrap(), from_json);
            // And the encodings are deterministic.
            assert_eq!(encode_proto(&from_proto), proto);
        }
    }

    #[test]
    fn version_is_filled_checked_and_content_only() {
        let t = decode_json(GATEWAY_JSON.as_bytes()).unwrap();
        assert_eq!(t.version, gateway().content_version());
        // The version field itself does not count.
        let mut other = t.clone();
        other.version = "anything".into();
        assert_eq!(other.content_version(), t.version);

        // A declared version that does not match is refused, in both encodings.
        let mut tampered = t.clone();
        if let BackendTarget::Cluster(c) = &mut tampered.routes[1].rules[0].backends[0].target {
            *c = "other/evil:80".into();
        }
        let computed = tampered.content_version();
        for result in [
            decode_json(encode_json(&tampered).as_bytes()),
            decode_proto(&encode_proto(&tampered)),
        ] {
            let e = result.unwrap_err();
            assert_eq!(e.at.to_string(), "version");
            assert_eq!(
                e.kind,
                TableErrorKind::VersionMismatch {
                    declared: t.version.clone(),
                    computed: computed.clone(),
                }
            );
        }
    }

    #[test]
    fn version_changes_with_content() {
        let base = gateway().content_version();
        let mutations: [fn(&mut RouteTable); 9] = [
            |t| t.role = "gateway/shop/web2".into(),
            |t| t.routes[0].rules[0].matches[0].rank = 1,
            |t| t.routes[0].rules[0].backends[0].weight = 91,
            |t| t.listeners[0].attachments[0].hostnames.reverse(),
            |t| t.listeners.reverse(),
            |t| t.routes[0].rules[2].name = None,
            |t| t.routes[1].rules[0].matches[0].path = PathMatch::Prefix("/healthz".into()),
            |t| t.routes[0].rules[0].timeouts = None,
            |t| t.routes[0].rules[2].retry = None,
        ];
        let mut seen = vec![base.clone()];
        for mutate in mutations {
            let mut t = gateway();
            mutate(&mut t);
            let v = t.content_version();
            assert!(
                !seen.contains(&v),
                "mutation left the version unchanged or collided"
            );
            seen.push(v);
        }
        assert_ne!(mesh().content_version(), base);
    }

    #[test]
    fn validation_runs_on_both_decoders() {
        let mut t = gateway();
        t.routes[0].rules[0].matches[0].path = crate::table::PathMatch::Exact("no-slash".into());
        let want = "routes[0] (shop/web).rules[0] (canary).matches[0].path";
        let e = decode_json(encode_json(&t).as_bytes()).unwrap_err();
        assert_eq!(e.at.to_string(), want);
        let e = decode_proto(&encode_proto(&t)).unwrap_err();
        assert_eq!(e.at.to_string(), want);
        assert!(matches!(e.kind, TableErrorKind::InvalidPath { .. }));
    }

    #[test]
    fn bad_json_is_an_error() {
        let cases: [&[u8]; 12] = [
            b"",
            b"{",
            b"[]",
            b"null",
            b"\"table\"",
            b"{\"role\": 1}",
            b"{\"role\": \"mesh/a\", \"routes\": []} trailing",
            b"{\"role\": \"mesh/a\", \"rutes\": []}",
            b"{\"role\": \"mesh/\xff\"}",
            b"\xef\xbb\xbf{}",
            b"{\"role\": \"mesh/a\", \"routes\": [{\"namespace\": \"a\", \"name\": \"b\", \"rules\": [{\"index\": 0, \"matches\": [{\"rank\": 0, \"path\": {\"glob\": \"/*\"}}]}]}]}",
            b"{\"role\": \"mesh/a\", \"routes\": [{\"namespace\": \"a\", \"name\": \"b\", \"rules\": [{\"index\": 0, \"matches\": [], \"backends\": [{\"weight\": 1}]}]}]}",
        ];
        for bytes in cases {
            let e = decode_json(bytes).unwrap_err();
            assert!(
                matches!(e.kind, TableErrorKind::Json { .. }),
                "{}: {e}",
                String::from_utf8_lossy(bytes)
            );
        }
        // Ports and addresses are checked by the conversion from the schema types, in both
        // encodings alike, so they are named by their path rather than a line and column.
        let e = decode_json(
            b"{\"role\": \"mesh/a\", \"listeners\": [{\"name\": \"a\", \"port\": 70000}]}",
        )
        .unwrap_err();
        assert_eq!(e.at.to_string(), "listeners[0] (a).port");
        assert!(matches!(e.kind, TableErrorKind::OutOfRange { .. }), "{e}");
        let e = decode_json(
            b"{\"role\": \"mesh/a\", \"services\": [{\"namespace\": \"a\", \"name\": \"b\", \"clusterIps\": [\"10.0.0\"], \"ports\": []}]}",
        )
        .unwrap_err();
        assert_eq!(e.at.to_string(), "services[0] (a/b).clusterIps[0]");
        assert_eq!(e.kind, TableErrorKind::InvalidIp("10.0.0".into()));
        // Deep nesting hits serde_json's recursion limit, not the stack.
        let deep = "[".repeat(100_000);
        assert!(decode_json(deep.as_bytes()).is_err());

        let e = decode_json(b"{\n  \"role\": \"mesh/a\",\n  \"rutes\": []\n}").unwrap_err();
        assert_eq!(e.at.to_string(), "line 3, column 9");
        assert_eq!(
            e.to_string(),
            "line 3, column 9: invalid JSON: unknown field `rutes`, expected one of `version`, \
             `role`, `listeners`, `services`, `routes`"
        );
    }

    #[test]
    fn bad_proto_is_an_error() {
        for bytes in [
            &[0xff_u8; 16][..],
            &[0x0a, 0x05, b'a'],
            &[0x12, 0x02, 0xff, 0xfe],
            &[0x1a, 0x80, 0x80, 0x80, 0x80, 0x10],
            &[0x08],
        ] {
            let e = decode_proto(bytes).unwrap_err();
            // Malformed framing is caught by the bounds scan, the rest by prost.
            assert!(
                matches!(
                    e.kind,
                    TableErrorKind::Proto(_)
                        | TableErrorKind::Limit(crate::table::limits::LimitError::Malformed { .. })
                ),
                "{e}"
            );
            assert_eq!(e.at.to_string(), "protobuf document");
        }
        // Empty input is a valid empty message, refused by validation (no role).
        let e = decode_proto(&[]).unwrap_err();
        assert_eq!(e.at.to_string(), "role");
        // Every truncation of a valid table is refused (truncated field, or a declared version
        // that no longer matches the content), and nothing panics.
        let full = encode_proto(&gateway().with_version());
        for len in 0..full.len() {
            assert!(
                decode_proto(full.get(..len).unwrap()).is_err(),
                "prefix of {len} bytes accepted"
            );
        }
        decode_proto(&full).unwrap();
    }

    #[test]
    fn unknown_proto_fields_are_refused_with_a_clear_reason() {
        // Version skew: a newer config-pusher's field is not silently dropped, whether or not
        // the table declares a version (without one, the hash cannot catch it).
        for t in [gateway(), gateway().with_version()] {
            let mut bytes = encode_proto(&t);
            bytes.extend_from_slice(&[0xa0, 0x06, 0x01]); // field 100, varint 1
            let e = decode_proto(&bytes).unwrap_err();
            assert_eq!(e.kind, TableErrorKind::UnknownFields { unread: 3 }, "{e}");
            assert!(e.to_string().contains("does not know"), "{e}");
            assert!(parse_proto(&bytes).is_err());
        }
        // In a nested message too (an unknown field inside routes[0]).
        let w = wire::RouteTable::from(&gateway());
        let mut route = w.routes[0].encode_to_vec();
        route.extend_from_slice(&[0xa0, 0x06, 0x01]);
        let mut rest = w.clone();
        rest.routes.remove(0);
        let mut bytes = Vec::new();
        prost::encoding::encode_key(5, prost::encoding::WireType::LengthDelimited, &mut bytes);
        prost::encoding::encode_varint(route.len() as u64, &mut bytes);
        bytes.extend_from_slice(&route);
        bytes.extend_from_slice(&rest.encode_to_vec());
        assert!(matches!(
            parse_proto(&bytes).unwrap_err().kind,
            TableErrorKind::UnknownFields { unread: 3 }
        ));
    }

    fn config() -> ProptestConfig {
        ProptestConfig {
            cases: 512,
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn decode_proto_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_proto(&bytes);
        }

        #[test]
        fn decode_proto_of_mutated_tables_never_panics(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut bytes = encode_proto(&gateway());
            for (at, byte) in edits {
                let i = at.index(bytes.len());
                bytes[i] = byte;
            }
            bytes.truncate(cut.index(bytes.len() + 1));
            if let Ok(t) = decode_proto(&bytes) {
                // Whatever decodes is a valid table with a matching version.
                prop_assert_eq!(t.content_version(), t.version.clone());
            }
        }

        #[test]
        fn decode_json_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_json(&bytes);
        }

        #[test]
        fn decode_json_of_mutated_tables_never_panics(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        ) {
            let mut bytes = MESH_JSON.as_bytes().to_vec();
            for (at, byte) in edits {
                let i = at.index(bytes.len());
                bytes[i] = byte;
            }
            let _ = decode_json(&bytes);
        }
    }
}
