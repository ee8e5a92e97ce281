//! What the fuzz targets share: turning fuzzer bytes into requests (the filter's
//! [`OwnedRequest`]), and the invariant every
//! routed request must keep (the compiled router agrees with the reference router).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;
use std::time::Duration;

use gammaroute_filter::router::reference::Reference;
use gammaroute_filter::router::{Destination, OwnedRequest, Router};
use gammaroute_filter::table::RouteTable;

/// Runs one input's checks and fails the input when they cost more than
/// `GAMMAROUTE_FUZZ_MAX_MS` milliseconds of CPU (the whole process's, so translate's worker
/// threads count; CPU rather than wall time, so that other processes on the machine do not
/// fail an input). Unset (while fuzzing, where libFuzzer's `-timeout` of 1 s is the bound),
/// nothing is timed; `make fuzz` replays every corpus with 100 ms after fuzzing it (issue #18:
/// "no input takes > 100 ms").
pub fn bounded(check: impl FnOnce()) {
    static MAX: OnceLock<Option<Duration>> = OnceLock::new();
    let max = *MAX.get_or_init(|| {
        let ms = std::env::var("GAMMAROUTE_FUZZ_MAX_MS").ok()?;
        Some(Duration::from_millis(
            ms.parse().expect("GAMMAROUTE_FUZZ_MAX_MS: milliseconds"),
        ))
    });
    let Some(max) = max else {
        check();
        return;
    };
    let start = process_cpu();
    check();
    let took = process_cpu().saturating_sub(start);
    assert!(
        took <= max,
        "one input took {took:?} of CPU, over the {max:?} bound"
    );
}

/// CPU time used by this process so far (every thread).
fn process_cpu() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec for the call to fill.
    let ok = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) } == 0;
    assert!(ok, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID) failed");
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

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
