//! `config-pusher serve` under hostile or merely huge client populations, as a process on
//! loopback: 1,000 slowloris clients and 5,000 parked long-polls do not keep a real proxy from
//! getting a change within 1 s, and 10,000 idle connections cost a bounded amount of memory
//! (measured from the process's resident set, printed, and held under a per-connection bound).
//! The test raises its soft RLIMIT_NOFILE (inherited by config-pusher and Envoy) and fails with
//! a clear message when the hard limit is too low. Envoy and the release .wasm are required.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gammaroute_host_tests::live::{
    gateway_yaml, route_yaml, LiveGateway, LiveOptions, Pusher, Scratch,
};

const ECHO: &str = env!("CARGO_BIN_EXE_echo");
const ROLE: &str = "gateway/demo/web";
const HOST: &str = "shop.example";

/// Makes room for `need` file descriptors in this process (and the ones it starts).
fn raise_nofile(need: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to an rlimit.
    let got = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    assert_eq!(got, 0, "getrlimit: {}", std::io::Error::last_os_error());
    assert!(
        lim.rlim_max >= need,
        "this test needs {need} file descriptors; the hard limit is {} (raise it: ulimit -Hn)",
        lim.rlim_max
    );
    if lim.rlim_cur < need {
        lim.rlim_cur = need;
        // SAFETY: as above.
        let set = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
        assert_eq!(set, 0, "setrlimit: {}", std::io::Error::last_os_error());
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"))
}

/// A gauge or counter of config-pusher's `/metrics`, 0 when absent.
fn metric(pusher: &Pusher, name: &str) -> f64 {
    let text = pusher.get("/metrics").map(|r| r.text()).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

fn wait_metric(pusher: &Pusher, name: &str, at_least: f64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(pusher, name) < at_least {
        assert!(
            Instant::now() < deadline,
            "{name} stayed at {} (want {at_least})",
            metric(pusher, name)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn slow_clients_and_parked_long_polls_do_not_delay_a_real_proxy() {
    const SLOW: usize = 1_000;
    const POLLS: usize = 5_000;
    // Per process: this one holds the client ends, config-pusher the server ends.
    raise_nofile((SLOW + POLLS + 1_024) as u64);
    let dir = Scratch::new("serve-bounds");
    dir.write("00-gateway.yaml", &gateway_yaml(&["a", "b"]));
    dir.write("10-shop.yaml", &route_yaml("shop", HOST, "/", "a"));
    let gw = LiveGateway::start(
        ECHO,
        dir,
        ROLE,
        LiveOptions {
            backends: &["demo/a:8080", "demo/b:8080"],
            concurrency: 1,
            source_extra: "",
            serve_extra: &[],
            render_extra: &[],
        },
    );
    gw.wait_served_by(HOST, "/", "demo/a", 2);
    let addr = gw.pusher.addr;

    // 5,000 long-polls parked on another role (a role's own cap is 5,000: the proxy's poll
    // must still find a slot), each a complete request nobody answers before 60 s.
    let polls: Vec<TcpStream> = (0..POLLS)
        .map(|_| {
            let mut s = connect(addr);
            s.write_all(
                b"GET /v1/tables/gateway/demo/elsewhere?wait=60s HTTP/1.1\r\nhost: cp\r\n\r\n",
            )
            .expect("long-poll sent");
            s
        })
        .collect();
    // 1,000 slowloris clients: half a request, then one header line a second.
    let mut slow: Vec<TcpStream> = (0..SLOW)
        .map(|_| {
            let mut s = connect(addr);
            let _ = s.write_all(b"GET /v1/tables/gateway/demo/web HTTP/1.1\r\n");
            s
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let dribble = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for s in &mut slow {
                    let _ = s.write_all(b"x-slow: 1\r\n");
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        })
    };
    wait_metric(&gw.pusher, "config_pusher_open_long_polls", POLLS as f64);
    wait_metric(
        &gw.pusher,
        "config_pusher_open_connections",
        (POLLS + SLOW) as f64,
    );

    gw.folder
        .write("10-shop.yaml", &route_yaml("shop", HOST, "/", "b"));
    let took = gw.wait_served_by(HOST, "/", "demo/b", 1);
    eprintln!("change in force after {took:?} beside {SLOW} slow clients and {POLLS} long-polls");
    stop.store(true, Ordering::Relaxed);
    let _ = dribble.join();
    assert!(
        took < Duration::from_secs(1),
        "the change took {took:?} to reach the proxy"
    );
    drop(polls);
}

/// Resident set of process `pid` in bytes (Linux `/proc/<pid>/status`, `VmRSS`).
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e} (Linux only)"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .expect("VmRSS in /proc/<pid>/status")
}

/// Per idle connection, config-pusher holds a task, hyper's connection state and its read
/// buffer: well under this. A leak (a buffer per request kept, a table copy per connection)
/// would show as far more.
const MAX_BYTES_PER_IDLE_CONNECTION: u64 = 48 * 1024;

#[test]
fn ten_thousand_idle_connections_cost_bounded_memory() {
    const IDLE: usize = 10_000;
    raise_nofile((IDLE + 1_024) as u64);
    let dir = Scratch::new("serve-idle");
    dir.write("00-gateway.yaml", &gateway_yaml(&["a"]));
    dir.write("10-shop.yaml", &route_yaml("shop", HOST, "/", "a"));
    // Idle connections are kept for the whole measurement (they are closed after the
    // header-read timeout otherwise).
    let pusher = Pusher::start(&dir.0, &["--header-read-timeout-ms", "120000"]);
    let pid = pusher.pid().expect("running");
    let _ = pusher.get(&format!("/v1/tables/{ROLE}"));
    let before = rss(pid);
    let idle: Vec<TcpStream> = (0..IDLE).map(|_| connect(pusher.addr)).collect();
    wait_metric(&pusher, "config_pusher_open_connections", IDLE as f64);
    let after = rss(pid);
    let per = after.saturating_sub(before) / IDLE as u64;
    eprintln!(
        "{IDLE} idle connections: RSS {} KiB -> {} KiB, {per} bytes per connection \
         (bound {MAX_BYTES_PER_IDLE_CONNECTION})",
        before / 1024,
        after / 1024
    );
    assert!(
        per <= MAX_BYTES_PER_IDLE_CONNECTION,
        "{per} bytes per idle connection"
    );
    // Still serving.
    assert_eq!(pusher.get("/healthz").map(|r| r.status).unwrap_or(0), 200);
    drop(idle);
}
