//! A folder of Gateway API YAML, as `render --from` or `serve` reads it: load → translate →
//! tables. Invariants: loading and translating never panic; translation is deterministic (the
//! same store gives the same tables and statuses); every published table is one the filter
//! accepts — it re-encodes to itself, compiles, and the compiled router agrees with the
//! reference router on requests to each of its parents; a table translate itself rejected is
//! published empty, and only for what the per-rule checks cannot see (the API server refuses
//! such input: a duplicate ClusterIP or listener, or a table over its limits).
#![no_main]

use config_pusher::source::files;
use config_pusher::translate::{self, Settings};
use gammaroute_filter::router::Router;
use gammaroute_filter::table::{self, RouteTable, TableErrorKind};
use gammaroute_fuzz::{assert_agree, requests_for};
use libfuzzer_sys::fuzz_target;

fn check_table(t: &RouteTable) {
    let again = table::decode_proto(&table::encode_proto(t)).expect("a published table decodes");
    assert_eq!(&again, t, "a published table re-encodes to itself");
    let router = Router::compile(t.clone()).expect("a published table compiles");
    let mut paths: Vec<String> = vec!["/".into()];
    for route in t.routes.iter().take(4) {
        for rule in route.rules.iter().take(2) {
            for m in rule.matches.iter().take(2) {
                if let table::PathMatch::Exact(p) | table::PathMatch::Prefix(p) = &m.path {
                    paths.push(p.clone());
                }
            }
        }
    }
    let hosts = t
        .listeners
        .iter()
        .flat_map(|l| l.attachments.iter())
        .flat_map(|a| a.hostnames.iter())
        .take(2)
        .map(|h| h.replace('*', "a"))
        .chain(std::iter::once("example.com".to_string()));
    for host in hosts {
        for path in paths.iter().take(6) {
            let base = vec![
                (":method".to_string(), "GET".to_string()),
                (":scheme".to_string(), "http".to_string()),
                (":authority".to_string(), host.clone()),
                (":path".to_string(), path.clone()),
            ];
            for req in requests_for(t, base) {
                assert_agree(&router, t, &req);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    gammaroute_fuzz::bounded(|| {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        let (store, _report) = files::load_text("fuzz.yaml", text);
        let settings = Settings::default();
        let out = translate::translate(&store, &settings);
        let again = translate::translate(&store, &settings);
        assert_eq!(
            out.tables, again.tables,
            "translate is deterministic (tables)"
        );
        assert_eq!(
            out.statuses, again.statuses,
            "translate is deterministic (statuses)"
        );
        for rejected in &out.errors {
            assert!(
                matches!(
                    rejected.error.kind,
                    TableErrorKind::Duplicate { .. }
                        | TableErrorKind::TooMany { .. }
                        | TableErrorKind::Limit(_)
                        | TableErrorKind::RegexBudget { .. }
                ),
                "translate built a table the filter rejects for {}: {}",
                rejected.role,
                rejected.error
            );
            let published = out
                .tables
                .get(&rejected.role)
                .expect("a rejected role is published");
            assert!(
                published.routes.is_empty() && published.listeners.is_empty(),
                "a rejected role is published empty"
            );
        }
        for t in out.tables.values() {
            check_table(t);
        }
    })
});
