//! Table fetching (`source` in the plugin configuration) of the built gammaroute.wasm, in the
//! embedded proxy-wasm host: several VMs of one process sharing data, ticks driven by the test,
//! config-pusher's answers given by the test. What Envoy and a real config-pusher do together is
//! in `live.rs`; this checks the protocol precisely: one fetcher at a time, the request it sends,
//! last-good on a bad table, back-off, take-over when the fetcher dies.

use gammaroute_filter::table::{self, RouteTable};
use gammaroute_host_tests::wasm_host::{HttpCall, WasmHost};
use gammaroute_host_tests::wasm_path;
use serde_json::json;

const ROLE: &str = "gateway/default/web";

/// A table routing `shop.example/` to `cluster`.
fn table_to(cluster: &str) -> RouteTable {
    let json = json!({
        "role": ROLE,
        "listeners": [{"name": "http", "port": 80, "attachments": [{"route": 0, "hostnames": ["shop.example"]}]}],
        "routes": [{"namespace": "default", "name": "shop", "rules": [
            {"index": 0, "matches": [{"rank": 0, "path": {"prefix": "/"}}],
             "backends": [{"weight": 1, "cluster": cluster}]}
        ]}]
    });
    let msg: table::wire::RouteTable = serde_json::from_value(json).unwrap();
    table::accept(RouteTable::try_from(msg).unwrap()).unwrap()
}

fn config(inline: Option<&RouteTable>) -> String {
    let mut c = json!({
        "listenerPort": 80,
        "source": {"cluster": "config-pusher", "authority": "cp:18000", "role": ROLE,
                   "token": "t0ken", "longPollSeconds": 30, "tickMs": 100}
    });
    if let Some(t) = inline {
        c["table"] = serde_json::to_value(table::wire::RouteTable::from(t)).unwrap();
    }
    c.to_string()
}

/// `n` VMs of one process (same shared data, same clock), configured with a source.
fn process(n: usize, inline: Option<&RouteTable>) -> Vec<WasmHost> {
    let first = WasmHost::load(wasm_path()).expect("load gammaroute.wasm");
    let mut vms = vec![first];
    for _ in 1..n {
        let worker = vms[0].worker().unwrap();
        vms.push(worker);
    }
    for vm in &mut vms {
        vm.set_property("node.id", "node-a");
        assert!(vm.configure(&config(inline)), "{:?}", vm.logs());
    }
    vms
}

/// Ticks every VM once (their clocks advance by the tick period).
fn tick_all(vms: &mut [WasmHost]) {
    for vm in vms.iter_mut() {
        vm.tick();
    }
}

/// The pending fetches of every VM: (vm index, call).
fn calls(vms: &[WasmHost]) -> Vec<(usize, HttpCall)> {
    vms.iter()
        .enumerate()
        .flat_map(|(i, vm)| vm.http_calls().iter().map(move |c| (i, c.clone())))
        .collect()
}

fn the_call(vms: &[WasmHost]) -> (usize, HttpCall) {
    let mut all = calls(vms);
    assert_eq!(all.len(), 1, "exactly one fetch in flight: {all:?}");
    all.remove(0)
}

fn answer_table(vm: &mut WasmHost, call: &HttpCall, t: &RouteTable) {
    let etag = format!("\"{}\"", t.version);
    vm.respond_http_call(
        call.token,
        &[
            (":status", "200"),
            ("content-type", "application/x-protobuf"),
            ("etag", &etag),
        ],
        &table::encode_proto(t),
        &[],
    );
}

/// After a rejected table: no fetch at once (config-pusher would answer the same table), then
/// one once the back-off has passed; returns it and how many ticks that took.
fn backs_off(vms: &mut [WasmHost], fetcher: usize) -> (HttpCall, u64) {
    assert!(
        calls(vms).is_empty(),
        "a rejected table is followed by a back-off, not an immediate fetch"
    );
    let mut ticks = 0;
    while vms[fetcher].http_calls().is_empty() {
        vms[fetcher].tick();
        ticks += 1;
        assert!(ticks <= 40, "no fetch after {ticks} ticks");
    }
    (the_call(vms).1, ticks)
}

fn cluster_of(vm: &mut WasmHost) -> Option<String> {
    let r = vm.request("GET", "http://shop.example/", &[]);
    match r.local_response() {
        Some(local) => Some(format!("local {}", local.status)),
        None => r.upstream_cluster().map(str::to_string),
    }
}

#[test]
fn one_vm_fetches_and_every_vm_follows() {
    let mut vms = process(3, None);
    // No table yet: fail closed.
    assert_eq!(cluster_of(&mut vms[1]).as_deref(), Some("local 503"));

    tick_all(&mut vms);
    tick_all(&mut vms);
    let (fetcher, call) = the_call(&vms);
    assert_eq!(call.upstream, "config-pusher");
    assert_eq!(call.header(":method"), Some("GET"));
    assert_eq!(
        call.header(":path"),
        Some("/v1/tables/gateway/default/web?wait=30s")
    );
    assert_eq!(call.header(":authority"), Some("cp:18000"));
    assert_eq!(call.header("authorization"), Some("Bearer t0ken"));
    assert_eq!(call.header("x-gammaroute-proxy"), Some("node-a"));
    assert_eq!(call.header("if-none-match"), None);
    assert!(call
        .header("accept")
        .is_some_and(|a| a.contains("application/x-protobuf")));
    assert!(
        call.timeout_ms > 30_000,
        "the long-poll fits in the timeout"
    );

    let v1 = table_to("default/v1:80");
    answer_table(&mut vms[fetcher], &call, &v1);
    assert_eq!(
        cluster_of(&mut vms[fetcher]).as_deref(),
        Some("default/v1:80"),
        "the fetcher applies at once"
    );
    assert_eq!(
        vms[fetcher].metric("gammaroute.result=.=ok;.;table_fetches_total"),
        Some(1)
    );
    // It long-polls again at once, naming the version it has.
    let (_, next) = the_call(&vms);
    assert_eq!(
        next.header("if-none-match"),
        Some(format!("\"{}\"", v1.version).as_str())
    );
    assert_eq!(
        next.header("x-gammaroute-applied"),
        Some(v1.version.as_str())
    );

    // The others pick it up on their next tick, from shared data.
    let others: Vec<usize> = (0..3).filter(|i| *i != fetcher).collect();
    assert_eq!(
        cluster_of(&mut vms[others[0]]).as_deref(),
        Some("local 503")
    );
    tick_all(&mut vms);
    for (i, vm) in vms.iter_mut().enumerate() {
        assert_eq!(cluster_of(vm).as_deref(), Some("default/v1:80"), "vm {i}");
    }
    assert_eq!(calls(&vms).len(), 1, "still one fetcher");

    // A new VM (a worker started late, or one reloaded after a crash) starts with it.
    let mut late = vms[0].worker().unwrap();
    late.set_property("node.id", "node-a");
    assert!(late.configure(&config(None)));
    assert_eq!(cluster_of(&mut late).as_deref(), Some("default/v1:80"));

    // The table gauges: applied once; confirmed again by every 304 (a stale proxy stops
    // advancing it).
    let applied = "gammaroute.table_applied_timestamp_seconds";
    let confirmed = "gammaroute.table_confirmed_timestamp_seconds";
    let at = vms[fetcher].metric(applied).expect("applied timestamp");
    assert_eq!(vms[fetcher].metric(confirmed), Some(at));
    vms[fetcher].advance_millis(5_000);
    let (poller, poll) = the_call(&vms);
    assert_eq!(poller, fetcher);
    vms[fetcher].respond_http_call(poll.token, &[(":status", "304")], &[], &[]);
    assert_eq!(
        vms[fetcher].metric("gammaroute.result=.=not_modified;.;table_fetches_total"),
        Some(1)
    );
    assert_eq!(vms[fetcher].metric(confirmed), Some(at + 5));
    assert_eq!(vms[fetcher].metric(applied), Some(at));
}

#[test]
fn a_bad_table_is_rejected_whole_reported_and_not_fetched_again() {
    let v1 = table_to("default/v1:80");
    let mut vms = process(2, Some(&v1));
    assert_eq!(
        cluster_of(&mut vms[1]).as_deref(),
        Some("default/v1:80"),
        "inline table"
    );
    tick_all(&mut vms);
    let (fetcher, call) = the_call(&vms);
    assert_eq!(
        call.header("if-none-match"),
        Some(format!("\"{}\"", v1.version).as_str()),
        "the inline table counts as applied"
    );

    // A table whose regex does not compile (its version is right for its content).
    let mut bad = table_to("default/v2:80");
    bad.routes[0].rules[0].matches[0].path = table::PathMatch::Regex("(".into());
    let bad = bad.with_version();
    answer_table(&mut vms[fetcher], &call, &bad);
    assert_eq!(
        vms[fetcher].metric("gammaroute.table_rejected_total"),
        Some(1)
    );
    assert!(vms[fetcher]
        .logs()
        .iter()
        .any(|(_, l)| l.contains("rejected") && l.contains(&bad.version)));
    let (next, first_wait) = backs_off(&mut vms, fetcher);
    tick_all(&mut vms);
    for vm in vms.iter_mut() {
        assert_eq!(
            cluster_of(vm).as_deref(),
            Some("default/v1:80"),
            "last good stays"
        );
    }
    assert_eq!(
        next.header("if-none-match"),
        Some(format!("\"{}\"", bad.version).as_str()),
        "the rejected version is not asked for again"
    );
    assert_eq!(
        next.header("x-gammaroute-applied"),
        Some(v1.version.as_str())
    );
    let report = next.header("x-gammaroute-rejected").unwrap_or_default();
    assert!(
        report.starts_with(&bad.version) && report.contains("regular expression"),
        "{report}"
    );

    // Garbage bytes and a tampered version are rejected the same way.
    let etag = "\"junk\"";
    let token = next.token;
    vms[fetcher].respond_http_call(
        token,
        &[
            (":status", "200"),
            ("content-type", "application/x-protobuf"),
            ("etag", etag),
        ],
        b"\xff\xff\xff\xff",
        &[],
    );
    let (next, second_wait) = backs_off(&mut vms, fetcher);
    assert!(
        second_wait > first_wait,
        "rejections in a row back off longer: {first_wait} then {second_wait} ticks"
    );
    assert_eq!(next.header("if-none-match"), Some("\"junk\""));
    let mut tampered = table_to("default/v3:80");
    tampered.version = v1.version.clone();
    answer_table(&mut vms[fetcher], &next, &tampered);
    assert_eq!(
        vms[fetcher].metric("gammaroute.table_rejected_total"),
        Some(3)
    );
    assert_eq!(
        cluster_of(&mut vms[fetcher]).as_deref(),
        Some("default/v1:80")
    );

    // JSON works as well as protobuf.
    let (next, _) = backs_off(&mut vms, fetcher);
    let v4 = table_to("default/v4:80");
    let etag = format!("\"{}\"", v4.version);
    vms[fetcher].respond_http_call(
        next.token,
        &[
            (":status", "200"),
            ("content-type", "application/json"),
            ("etag", &etag),
        ],
        table::encode_json(&v4).as_bytes(),
        &[],
    );
    tick_all(&mut vms);
    for vm in vms.iter_mut() {
        assert_eq!(cluster_of(vm).as_deref(), Some("default/v4:80"));
    }
}

#[test]
fn a_table_that_trapped_a_vm_is_not_fetched_again_by_the_next() {
    let v1 = table_to("default/v1:80");
    let mut vms = process(2, Some(&v1));
    // A fetcher recorded the table it was compiling, then trapped before clearing the record
    // (what `Envoy` sees as a crashed VM, replaced by a fresh one).
    assert!(vms[0].set_shared_data(&format!("gammaroute/{ROLE}/attempt"), b"attempt v9", 0));
    tick_all(&mut vms);
    // The next fetcher treats v9 as rejected: no fetch at once (it would trap again) …
    let fetcher = (0..2)
        .find(|&i| vms[i].metric("gammaroute.table_rejected_total") == Some(1))
        .expect("one VM found the trapped attempt");
    assert!(
        vms[fetcher]
            .logs()
            .iter()
            .any(|(_, l)| l.contains("v9") && l.contains("trapped")),
        "{:?}",
        vms[fetcher].logs()
    );
    let (call, _) = backs_off(&mut vms, fetcher);
    // … and reports it, asking for anything but v9.
    assert_eq!(call.header("if-none-match"), Some("\"v9\""));
    let report = call.header("x-gammaroute-rejected").unwrap_or_default();
    assert!(
        report.starts_with("v9 ") && report.contains("trapped"),
        "{report}"
    );
    // The record was acted on once and cleared.
    let attempt = vms[0].shared().get(&format!("gammaroute/{ROLE}/attempt"));
    assert_eq!(attempt.map(|(v, _)| v), Some(Vec::new()));
    // A table that compiles is recorded while compiling and cleared after.
    let v2 = table_to("default/v2:80");
    answer_table(&mut vms[fetcher], &call, &v2);
    assert_eq!(
        cluster_of(&mut vms[fetcher]).as_deref(),
        Some("default/v2:80")
    );
    let attempt = vms[0].shared().get(&format!("gammaroute/{ROLE}/attempt"));
    assert_eq!(attempt.map(|(v, _)| v), Some(Vec::new()));
    // The table that compiled was not counted as rejected.
    assert_eq!(
        vms[fetcher].metric("gammaroute.table_rejected_total"),
        Some(1)
    );
}

#[test]
fn config_pusher_down_keeps_the_table_and_backs_off() {
    let v1 = table_to("default/v1:80");
    let mut vms = process(1, Some(&v1));
    let vm = &mut vms[0];
    vm.tick();
    let call = vm.http_calls()[0].clone();
    // No response at all (connection refused / reset), then 503s.
    vm.respond_http_call(call.token, &[], b"", &[]);
    assert_eq!(
        vm.metric("gammaroute.result=.=failed;.;table_fetches_total"),
        Some(1)
    );
    assert!(vm.http_calls().is_empty(), "no retry at once");
    assert_eq!(cluster_of(vm).as_deref(), Some("default/v1:80"));
    // The first retry comes after ~500 ms (±20%), i.e. after 4 to 6 ticks of 100 ms.
    let mut ticks = 0;
    while vm.http_calls().is_empty() {
        vm.tick();
        ticks += 1;
        assert!(ticks <= 7, "no retry after {ticks} ticks");
    }
    assert!(ticks >= 4, "retried after {ticks} ticks: no back-off");
    let call = vm.http_calls()[0].clone();
    vm.respond_http_call(
        call.token,
        &[(":status", "503")],
        b"no healthy upstream",
        &[],
    );
    let mut second = 0;
    while vm.http_calls().is_empty() {
        vm.tick();
        second += 1;
        assert!(second <= 12, "no retry after {second} ticks");
    }
    assert!(
        second > ticks,
        "the back-off grows: {ticks} then {second} ticks"
    );
    assert!(vm
        .logs()
        .iter()
        .any(|(_, l)| l.contains("config-pusher answered 503") && l.contains(&v1.version)));
    assert_eq!(cluster_of(vm).as_deref(), Some("default/v1:80"));
}

#[test]
fn another_vm_takes_over_when_the_fetcher_stops() {
    let mut vms = process(2, None);
    tick_all(&mut vms);
    let (fetcher, _) = the_call(&vms);
    let other = 1 - fetcher;
    // The fetcher's VM dies: it stops ticking, its call never completes. The other VM waits
    // for the lease to expire (2 s) and then fetches.
    let mut ticks = 0;
    while vms[other].http_calls().is_empty() {
        vms[other].tick();
        ticks += 1;
        assert!(ticks <= 25, "no take-over after {ticks} ticks");
    }
    assert!(
        ticks >= 15,
        "took over after {ticks} ticks, before the lease expired"
    );
    let call = vms[other].http_calls()[0].clone();
    assert_eq!(call.header("x-gammaroute-proxy"), Some("node-a"));
    answer_table(&mut vms[other], &call, &table_to("default/v1:80"));
    assert_eq!(
        cluster_of(&mut vms[other]).as_deref(),
        Some("default/v1:80")
    );
}

#[test]
fn a_fetcher_that_lost_the_lease_does_not_publish_its_late_answer() {
    let mut vms = process(2, None);
    tick_all(&mut vms);
    let (stalled, old_call) = the_call(&vms);
    let other = 1 - stalled;
    // The fetcher stalls past its lease; the other VM takes over and publishes v2.
    let mut ticks = 0;
    while vms[other].http_calls().is_empty() {
        vms[other].tick();
        ticks += 1;
        assert!(ticks <= 25, "no take-over after {ticks} ticks");
    }
    vms[stalled].advance_millis(ticks * 100);
    let call = vms[other].http_calls()[0].clone();
    let v2 = table_to("default/v2:80");
    answer_table(&mut vms[other], &call, &v2);

    // Now the stalled VM's long-poll returns an older table: dropped, not published.
    answer_table(&mut vms[stalled], &old_call, &table_to("default/v1:80"));
    assert_eq!(
        vms[stalled].metric("gammaroute.result=.=superseded;.;table_fetches_total"),
        Some(1)
    );
    assert!(
        vms[stalled].http_calls().is_empty(),
        "the VM without the lease does not poll again"
    );
    tick_all(&mut vms);
    for (i, vm) in vms.iter_mut().enumerate() {
        assert_eq!(cluster_of(vm).as_deref(), Some("default/v2:80"), "vm {i}");
    }
    assert_eq!(calls(&vms).len(), 1, "one fetcher");
}

#[test]
fn a_table_another_worker_overwrote_mid_compile_is_not_claimed() {
    let mut vms = process(1, None);
    let vm = &mut vms[0];
    vm.tick();
    let call = vm.http_calls()[0].clone();
    let v1 = table_to("default/v1:80");
    answer_table(vm, &call, &v1);
    assert_eq!(cluster_of(vm).as_deref(), Some("default/v1:80"));

    // While v2 compiles, another worker writes the published generation: the CAS publish
    // fails, so v2 is not installed ...
    let call = vm.http_calls()[0].clone();
    vm.shared()
        .interfere_before_next_write(&format!("gammaroute/{ROLE}/generation"));
    answer_table(vm, &call, &table_to("default/v2:80"));
    assert_eq!(
        vm.metric("gammaroute.result=.=superseded;.;table_fetches_total"),
        Some(1)
    );
    assert_eq!(cluster_of(vm).as_deref(), Some("default/v1:80"));
    // ... and the next long-poll names the table in force, so config-pusher answers v2 again
    // at once instead of holding the poll until the next change.
    let call = vm.http_calls()[0].clone();
    assert_eq!(
        call.header("if-none-match"),
        Some(format!("\"{}\"", v1.version).as_str()),
        "{call:?}"
    );
    let v2 = table_to("default/v2:80");
    answer_table(vm, &call, &v2);
    assert_eq!(cluster_of(vm).as_deref(), Some("default/v2:80"));
}

#[test]
fn an_unknown_cluster_is_logged_and_retried() {
    let first = WasmHost::load(wasm_path()).unwrap();
    let mut vm = first;
    vm.set_clusters(&["something-else"]);
    assert!(vm.configure(&config(None)));
    vm.tick();
    assert!(vm.http_calls().is_empty());
    assert_eq!(
        vm.metric("gammaroute.result=.=failed;.;table_fetches_total"),
        Some(1)
    );
    assert!(
        vm.logs()
            .iter()
            .any(|(_, l)| l.contains("config-pusher") && l.contains("no such cluster")),
        "{:?}",
        vm.logs()
    );
}

/// The first tick — and with it the first fetch — comes 20 ms after configuration, not `tickMs`
/// later; from then on the period is `tickMs`. Nothing is fetched in `on_configure` itself
/// (Envoy's main-thread VM configured first never ticks nor gets answers).
#[test]
fn the_first_fetch_is_on_an_early_first_tick() {
    let mut vms = process(1, None);
    assert!(vms[0].http_calls().is_empty());
    assert_eq!(vms[0].tick_period_ms(), 20);
    vms[0].tick();
    assert_eq!(vms[0].http_calls().len(), 1, "{:?}", vms[0].logs());
    assert_eq!(vms[0].tick_period_ms(), 100);
}

/// A mesh sidecar without a table passes requests to the frontend's own Service (`frontends`),
/// removes client-sent control headers, and counts them; a gateway answers 503.
#[test]
fn a_mesh_sidecar_without_a_table_is_transparent() {
    let mut vm = WasmHost::load(wasm_path()).expect("load gammaroute.wasm");
    vm.set_clusters(&[]);
    let mesh = json!({
        "source": {"cluster": "config-pusher", "role": "mesh/shop", "tickMs": 100},
        "frontends": {"10.0.0.1:80": "shop/api:80"}
    });
    assert!(vm.configure(&mesh.to_string()), "{:?}", vm.logs());
    vm.set_property("destination.address", "10.0.0.1:80");
    let r = vm.request(
        "GET",
        "http://web.shop/",
        &[
            ("x-gamma-cluster", "shop/web:80"),
            ("x-gamma-mirror-0", "x"),
        ],
    );
    assert!(r.local_response().is_none());
    assert_eq!(r.upstream_cluster(), Some("shop/api:80"));
    assert_eq!(r.request_header("x-gamma-mirror-0"), None);
    // Another destination: no cluster chosen, the host's own routing decides.
    vm.set_property("destination.address", "10.0.0.9:80");
    let r = vm.request("GET", "http://web.shop/", &[("x-gamma-cluster", "x")]);
    assert!(r.local_response().is_none());
    assert_eq!(r.request_header("x-gamma-cluster"), None);
    assert_eq!(vm.metric("gammaroute.no_table_passthrough_total"), Some(2));

    let mut gateway = process(1, None);
    assert_eq!(cluster_of(&mut gateway[0]).as_deref(), Some("local 503"));
}
