//! What the fuzz targets share: turning fuzzer bytes into requests (the filter's
//! [`OwnedRequest`]), and the invariant every
//! routed request must keep (the compiled router agrees with the reference router).

use std::net::{IpAddr, Ipv4Addr};

use gammaroute_filter::router::reference::Reference;
use gammaroute_filter::router::{Destination, OwnedRequest, Router};
use gammaroute_filter::table::RouteTable;

/// Draws tried per request: weighted picks and mirror percentages at both ends and between.
pub const DRAWS: [u64; 3] = [0, 1 << 31, u64::MAX];

/// The requests to try on a table: `base` sent to every listener port and every Service
/// ClusterIP:port of the table, so that every parent is reached.
pub fn requests_for(table: &RouteTable, base: Vec<(String, String)>) -> Vec<OwnedRequest> {
    let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    let mut out: Vec<OwnedRequest> = table
        .listeners
        .iter()
        .take(4)
        .map(|l| {
            OwnedRequest::from_pairs(
                base.clone(),
                Destination {
                    ip: any,
                    port: l.port,
                },
            )
        })
        .collect();
    for s in table.services.iter().take(4) {
        for ip in s.cluster_ips.iter().take(1) {
            for p in s.ports.iter().take(2) {
                out.push(OwnedRequest::from_pairs(
                    base.clone(),
                    Destination {
                        ip: *ip,
                        port: p.port,
                    },
                ));
            }
        }
    }
    out
}

/// The compiled router and the reference router make the same decision (panics otherwise: a
/// finding).
pub fn assert_agree(router: &Router, table: &RouteTable, req: &OwnedRequest) {
    let reference = Reference::new(table);
    let view = req.view();
    assert_eq!(router.select(&view), reference.select(&view), "selection");
    for draw in DRAWS {
        assert_eq!(
            router.decide(&view, draw),
            reference.decide(&view, draw),
            "decision, draw {draw}"
        );
    }
}
