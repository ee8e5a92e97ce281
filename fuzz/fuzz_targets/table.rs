//! A route table from the wire, JSON or protobuf: decode → validate → compile → decide.
//! Invariants: a table that decodes compiles; it re-encodes to the same version, and the
//! re-encoding decodes to the same table; the compiled router agrees with the reference router
//! on requests aimed at every parent.
#![no_main]

use gammaroute_filter::router::Router;
use gammaroute_filter::table::{self, RouteTable};
use gammaroute_fuzz::{assert_agree, requests_for};
use libfuzzer_sys::fuzz_target;

fn check(t: RouteTable) {
    let again = table::decode_proto(&table::encode_proto(&t)).expect("re-encoded table decodes");
    assert_eq!(again.version, t.version, "re-encoding keeps the version");
    assert_eq!(again, t, "re-encoding keeps the table");
    let router = Router::compile(t.clone()).expect("a decoded table compiles");
    // Requests built from the table's own hostnames and paths, so that matches are reached.
    let mut seen = 0;
    for route in t.routes.iter().take(8) {
        for rule in route.rules.iter().take(2) {
            for m in rule.matches.iter().take(2) {
                let path = match &m.path {
                    table::PathMatch::Exact(p) | table::PathMatch::Prefix(p) => p.clone(),
                    table::PathMatch::Regex(_) => "/".to_string(),
                };
                let mut base = vec![
                    (
                        ":method".to_string(),
                        m.method.map_or("GET", |m| m.as_str()).to_string(),
                    ),
                    (":scheme".to_string(), "http".to_string()),
                    (":authority".to_string(), "example.com".to_string()),
                    (":path".to_string(), format!("{path}?x=1")),
                ];
                for h in &m.headers {
                    if let table::ValueMatch::Exact(v) = &h.value {
                        base.push((h.name.clone(), v.clone()));
                    }
                }
                for req in requests_for(&t, base) {
                    assert_agree(&router, &t, &req);
                    seen += 1;
                }
                if seen > 64 {
                    return;
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    gammaroute_fuzz::bounded(|| {
        if let Ok(t) = table::decode_json(data) {
            check(t);
        }
        if let Ok(t) = table::decode_proto(data) {
            check(t);
        }
    })
});
