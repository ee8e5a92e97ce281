//! Work per request is bounded whatever the client sends (issue: "the request path under
//! attack"): a header repeated n times is joined in O(total length), not O(n²), and a regex is
//! never run on a value longer than `regex::MAX_INPUT_LEN` (no match, counted).
//!
//! Measured in bytes allocated, not time: a counting global allocator, so the test is
//! deterministic on a shared machine. One `#[test]` in this binary, so no other test allocates
//! concurrently. Runs natively and under wasm32-wasip1.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};

use gammaroute_filter::router::{Destination, Request, Router, Selection};
use gammaroute_filter::table::regex::MAX_INPUT_LEN;
use gammaroute_filter::table::{wire, RouteTable};
use serde_json::json;

struct Counting;

static ALLOCATED: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATED.fetch_add(new_size, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocated_by<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = ALLOCATED.load(Ordering::Relaxed);
    let out = f();
    (out, ALLOCATED.load(Ordering::Relaxed) - before)
}

fn request<'a>(path: &'a str, headers: &'a [(String, String)]) -> Request<'a> {
    Request {
        method: "GET",
        scheme: "http",
        authority: "shop.example",
        path,
        headers,
        destination: Destination {
            ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: 80,
        },
        server_name: "",
    }
}

/// One listener on port 80: `/re` matched by a header regex `(a+)+b` on `x-big`, `/p...` by a
/// path regex, and a catch-all.
fn router() -> Router {
    let table = json!({
        "role": "gateway/default/gw",
        "listeners": [{"name": "l", "port": 80, "attachments": [{"route": 0}]}],
        "routes": [{"namespace": "default", "name": "web", "rules": [
            {"index": 0, "matches": [{"rank": 0, "path": {"prefix": "/re"},
                "headers": [{"name": "x-big", "value": {"regex": "(a+)+b"}}]}],
             "backends": [{"weight": 1, "cluster": "default/regex:80"}]},
            {"index": 1, "matches": [{"rank": 1, "path": {"regex": "/p[a-z]*"}}],
             "backends": [{"weight": 1, "cluster": "default/path:80"}]},
            {"index": 2, "matches": [{"rank": 2, "path": {"prefix": "/"}}],
             "backends": [{"weight": 1, "cluster": "default/other:80"}]}
        ]}]
    });
    let msg: wire::RouteTable = serde_json::from_value(table).expect("wire table");
    Router::compile(RouteTable::try_from(msg).expect("table")).expect("compiles")
}

fn rule(router: &Router, path: &str, headers: &[(String, String)]) -> Option<u32> {
    match router.select(&request(path, headers)) {
        Selection::Matched(s) => Some(s.rule),
        _ => None,
    }
}

#[test]
fn repeated_headers_and_long_values_cost_bounded_work() {
    // 1,000 repeats of a 600-byte value: joined once, ~600 KB. Joining by re-formatting the
    // growing prefix allocated ~300 MB.
    let value = "a".repeat(600);
    let headers: Vec<(String, String)> = (0..1000)
        .map(|_| ("x-big".to_string(), value.clone()))
        .collect();
    let req = request("/", &headers);
    let (joined, bytes) = allocated_by(|| req.header("x-big").map(|v| v.len()));
    let joined = joined.expect("present");
    assert_eq!(joined, 1000 * 600 + 999);
    assert!(
        bytes <= 2 * joined,
        "joining 1,000 values allocated {bytes} bytes for a {joined}-byte result"
    );
    // A single value is borrowed, not copied.
    let one = vec![("x-big".to_string(), value.clone())];
    let (_, bytes) = allocated_by(|| request("/", &one).header("X-Big").map(|v| v.len()));
    assert_eq!(bytes, 0);

    // Regexes never run on values beyond MAX_INPUT_LEN: no match, and counted.
    let router = router();
    let at = |n: usize| vec![("x-big".to_string(), format!("{}b", "a".repeat(n - 1)))];
    assert_eq!(rule(&router, "/re", &at(MAX_INPUT_LEN)), Some(0));
    assert_eq!(router.take_oversized_regex_inputs(), 0);
    assert_eq!(rule(&router, "/re", &at(MAX_INPUT_LEN + 1)), Some(2));
    assert_eq!(router.take_oversized_regex_inputs(), 1);
    // Any value of a repeated header may match (as in Envoy), but the values count together:
    // 100 repeats of 600 bytes are ~60 KB, over the cap, whatever each value is — one regex
    // scan per header match stays bounded however many times a client repeats the header.
    let ending_in_b = format!("{}b", "a".repeat(599));
    let many: Vec<(String, String)> = (0..100)
        .map(|_| ("x-big".to_string(), ending_in_b.clone()))
        .collect();
    assert_eq!(rule(&router, "/re", &many), Some(2));
    assert_eq!(router.take_oversized_regex_inputs(), 1);
    let few: Vec<(String, String)> = many.iter().take(6).cloned().collect();
    assert_eq!(
        rule(&router, "/re", &few),
        Some(0),
        "6 x 600 bytes fit the cap"
    );
    assert_eq!(router.take_oversized_regex_inputs(), 0);
    // Paths too: a long path does not reach the regex.
    let long_path = format!("/p{}", "x".repeat(MAX_INPUT_LEN));
    assert_eq!(rule(&router, "/pxyz", &[]), Some(1));
    assert_eq!(rule(&router, &long_path, &[]), Some(2));
    assert_eq!(router.take_oversized_regex_inputs(), 1);
    assert_eq!(router.take_oversized_regex_inputs(), 0, "taking resets it");
}
