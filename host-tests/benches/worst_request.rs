//! The filter's cost for the worst requests a client can send (issue: the request path under
//! attack), beside an ordinary request through the same module in the same run: a regex header
//! route hit by 90 repeats of a 600-byte header (~54 KB, just under Envoy's 60 KiB limit), by a
//! single 4 KiB value at the regex input cap, and an 8 KB path. Prints each request's time
//! through the embedded host and its ratio to the ordinary request; the target is that the
//! worst adds well under 1 ms. Needs the release .wasm (`make wasm`).

use std::time::{Duration, Instant};

use gammaroute_host_tests::wasm_host::WasmHost;
use serde_json::json;

fn config() -> String {
    json!({
        "listenerPort": 80,
        "table": {
            "role": "gateway/default/web",
            "listeners": [{"name": "http", "port": 80, "attachments": [{"route": 0}]}],
            "routes": [{"namespace": "default", "name": "web", "rules": [
                {"index": 0, "matches": [{"rank": 0, "path": {"prefix": "/re"},
                    "headers": [{"name": "x-big", "value": {"regex": "(a+)+b"}}]}],
                 "backends": [{"weight": 1, "cluster": "default/regex:80"}]},
                {"index": 1, "matches": [{"rank": 1, "path": {"regex": "/p[a-z]*"}}],
                 "backends": [{"weight": 1, "cluster": "default/path:80"}]},
                {"index": 2, "matches": [{"rank": 2, "path": {"prefix": "/"}}],
                 "backends": [{"weight": 1, "cluster": "default/other:80"}]}
            ]}]
        }
    })
    .to_string()
}

/// Mean nanoseconds per call of `f` over about a second.
fn time(f: &mut dyn FnMut()) -> f64 {
    let start = Instant::now();
    let mut n = 0u32;
    while start.elapsed() < Duration::from_secs(1) {
        f();
        n += 1;
    }
    start.elapsed().as_nanos() as f64 / f64::from(n)
}

fn main() {
    let mut vm = WasmHost::load(gammaroute_host_tests::wasm_path()).expect("load wasm");
    assert!(vm.configure(&config()), "{:?}", vm.logs());

    let repeated_value = "a".repeat(600);
    let at_cap = format!("{}b", "a".repeat(4095));
    let long_path = format!("/p{}", "x".repeat(8000));
    let base = |path: &'static str| {
        vec![
            (":authority", "h"),
            (":path", path),
            (":method", "GET"),
            (":scheme", "http"),
        ]
    };
    let ordinary = {
        let mut h = base("/re");
        h.push(("x-big", "aab"));
        h
    };
    let repeated = {
        let mut h = base("/re");
        h.extend(std::iter::repeat_n(("x-big", repeated_value.as_str()), 90));
        h
    };
    let capped = {
        let mut h = base("/re");
        h.push(("x-big", at_cap.as_str()));
        h
    };
    let mut long = base("/");
    long[1] = (":path", long_path.as_str());

    let baseline = time(&mut || {
        std::hint::black_box(vm.request_raw(&ordinary));
    });
    println!("ordinary request (regex header route, 3-byte value): {baseline:.0} ns");
    for (name, headers) in [
        ("90 x 600-byte header on the regex route", &repeated),
        ("one 4 KiB value at the regex input cap", &capped),
        ("8 KB path on a regex path route", &long),
    ] {
        let t = time(&mut || {
            std::hint::black_box(vm.request_raw(headers));
        });
        println!(
            "{name}: {t:.0} ns, {:.1}x the ordinary request, adds {:.1} us",
            t / baseline,
            (t - baseline) / 1000.0
        );
    }
}
