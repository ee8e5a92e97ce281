//! A request as Envoy hands it over (the proxy-wasm header-map encoding, `host::pairs`) against
//! the examples' gateway and mesh tables. Invariants: the pairs decoding round-trips; the
//! compiled router agrees with the reference router; percent-decoding, CORS origin matching and
//! redirect `Location` building (reached through `decide`) never panic.
#![no_main]

use std::sync::OnceLock;

use gammaroute_filter::host::pairs;
use gammaroute_filter::router::request::percent_decode;
use gammaroute_filter::router::Router;
use gammaroute_filter::table::origin::OriginPattern;
use gammaroute_filter::table::{self, RouteTable};
use gammaroute_fuzz::{assert_agree, requests_for};
use libfuzzer_sys::fuzz_target;

const TABLES: [&str; 3] = [
    include_str!(
        "../../config-pusher/tests/golden/examples/expected/tables/gateway/demo/gateway.json"
    ),
    include_str!("../../config-pusher/tests/golden/examples/expected/tables/mesh/demo.json"),
    include_str!(
        "../../config-pusher/tests/golden/redirect-rewrite/expected/tables/gateway/web/edge.json"
    ),
];

fn tables() -> &'static [(RouteTable, Router)] {
    static T: OnceLock<Vec<(RouteTable, Router)>> = OnceLock::new();
    T.get_or_init(|| {
        TABLES
            .iter()
            .map(|json| {
                let t = table::decode_json(json.as_bytes()).expect("golden table");
                let r = Router::compile(t.clone()).expect("golden table compiles");
                (t, r)
            })
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    gammaroute_fuzz::bounded(|| {
        let Some(decoded) = pairs::decode(data) else {
            return;
        };
        // Round trip: what decodes re-encodes to bytes that decode the same.
        assert_eq!(
            pairs::decode(&pairs::encode(&decoded)).as_ref(),
            Some(&decoded)
        );
        for (k, v) in decoded.iter().take(4) {
            let _ = percent_decode(v);
            let _ = OriginPattern::parse(k).is_ok_and(|p| p.matches(v));
        }
        for (t, router) in tables() {
            for req in requests_for(t, decoded.clone()) {
                assert_agree(router, t, &req);
            }
        }
    })
});
