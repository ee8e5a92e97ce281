//! The embedded proxy-wasm host itself, with tiny modules written in WAT: a trap in the module
//! fails the test with the wasm backtrace naming the function; host traps, missing imports, ABI
//! mismatches and missing exports name what is wrong; and the paths a table-fetching filter
//! uses — tick timer, `proxy_http_call` captured and answered by the test, shared data with CAS
//! seen from every worker — work end to end.

use std::path::PathBuf;

use gammaroute_host_tests::wasm_host::WasmHost;
use wasmtime::Val;

/// The ABI exports every module needs, a bump allocator, and the context callbacks as no-ops;
/// `body` adds imports, data and functions (it may not redefine those below).
fn module(name: &str, imports: &str, body: &str) -> PathBuf {
    let wat = format!(
        r#"(module
  {imports}
  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 4096))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param $size i32) (result i32)
    (local $at i32)
    (local.set $at (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $size)))
    (local.get $at))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_log") (param i32))
  (func (export "proxy_on_delete") (param i32))
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32) (i32.const 0))
  {body}
)"#
    );
    let bytes = wat::parse_str(&wat).unwrap_or_else(|e| panic!("{name}: {e}"));
    let dir = std::env::temp_dir().join(format!("wasm-host-abi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.wasm"));
    std::fs::write(&path, bytes).unwrap();
    path
}

const VM_START_OK: &str =
    r#"(func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))"#;

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[test]
fn a_trap_in_the_module_fails_the_test_with_the_wasm_backtrace() {
    let path = module(
        "trap",
        "",
        &format!(
            r#"{VM_START_OK}
  (func $routing_table_lookup (param i32)
    unreachable)
  (func $decide (param $n i32)
    (call $routing_table_lookup (local.get $n)))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (call $decide (local.get 1))
    (i32.const 0))"#
        ),
    );
    let mut vm = WasmHost::load(&path).unwrap();
    // The raw call: an error carrying the backtrace, innermost function first.
    let err = vm
        .call(
            "proxy_on_request_headers",
            &[Val::I32(2), Val::I32(0), Val::I32(1)],
        )
        .unwrap_err();
    let text = format!("{err:?}");
    assert!(text.contains("trap in proxy_on_request_headers"), "{text}");
    assert!(text.contains("unreachable"), "{text}");
    let inner = text.find("routing_table_lookup").expect(&text);
    let outer = text.find("decide").expect(&text);
    assert!(inner < outer, "backtrace not innermost first:\n{text}");

    // Through the test API: the test fails (panics) with the same backtrace.
    let mut vm = WasmHost::load(&path).unwrap();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        vm.request("GET", "http://h/", &[]);
    }))
    .expect_err("a trap must fail the test");
    let text = panic_text(caught);
    assert!(text.contains("routing_table_lookup"), "{text}");
    assert!(text.contains("wasm backtrace"), "{text}");
}

#[test]
fn a_bad_pointer_passed_to_an_import_names_the_import() {
    let path = module(
        "bad-pointer",
        r#"(import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))"#,
        r#"(func (export "proxy_on_vm_start") (param i32 i32) (result i32)
    (drop (call $log (i32.const 2) (i32.const 0x7ffffff0) (i32.const 64)))
    (i32.const 1))"#,
    );
    let err = WasmHost::load(&path).err().expect("load must fail");
    let text = format!("{err:?}");
    assert!(
        text.contains("proxy_log: guest pointer 0x7ffffff0+64 is outside linear memory"),
        "{text}"
    );
    assert!(text.contains("proxy_on_vm_start"), "{text}");
}

#[test]
fn an_abi_mismatch_names_the_import() {
    // proxy_log takes (level, ptr, len) and returns a status.
    let path = module(
        "mismatch",
        r#"(import "env" "proxy_log" (func $log (param i32 i32)))"#,
        VM_START_OK,
    );
    let err = WasmHost::load(&path).err().expect("load must fail");
    let text = format!("{err:#}");
    assert!(text.contains("env::proxy_log"), "{text}");
}

#[test]
fn a_missing_import_or_export_is_named() {
    let path = module(
        "missing-import",
        r#"(import "env" "proxy_no_such_call" (func))
  (import "env" "proxy_log" (func (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_accept" (func (param i32 i32 i32) (result i32)))"#,
        VM_START_OK,
    );
    let err = format!("{:#}", WasmHost::load(&path).err().expect("load must fail"));
    assert!(err.contains("env::proxy_no_such_call"), "{err}");
    assert!(err.contains("wasi_snapshot_preview1::sock_accept"), "{err}");
    assert!(!err.contains("env::proxy_log"), "{err}");

    // No proxy_on_vm_start: the host says which export it looked for.
    let path = module("missing-export", "", "");
    let err = format!("{:#}", WasmHost::load(&path).err().expect("load must fail"));
    assert!(err.contains("proxy_on_vm_start"), "{err}");
}

/// A table fetcher in miniature, as the filter's polling will be: on each tick the root context
/// calls `control-plane` (path /table) unless one call is pending; the answer's body is stored
/// in shared data under `table`, compare-and-swap against the version it last read.
const FETCHER_IMPORTS: &str = r#"
  (import "env" "proxy_set_tick_period_milliseconds" (func $tick_period (param i32) (result i32)))
  (import "env" "proxy_http_call" (func $http_call (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes" (func $get_buffer (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_shared_data" (func $get_shared (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_shared_data" (func $set_shared (param i32 i32 i32 i32 i32) (result i32)))"#;

const FETCHER: &str = r#"
  ;; "control-plane" at 16 (13 bytes); "table" at 32 (5); the request headers, serialized as
  ;; the ABI's header map (count, then key/value lengths, then NUL-terminated keys and values),
  ;; at 64 (78 bytes): :method GET, :path /table, :authority config-pusher.
  (data (i32.const 16) "control-plane")
  (data (i32.const 32) "table")
  (data (i32.const 64)
    "\03\00\00\00"
    "\07\00\00\00\03\00\00\00" "\05\00\00\00\06\00\00\00" "\0a\00\00\00\0d\00\00\00"
    ":method\00GET\00:path\00/table\00:authority\00config-pusher\00")
  ;; 256: returned token; 260/264: returned data pointer/size; 268: returned cas;
  ;; 272: pending call token (0 = none).
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32)
    (drop (call $tick_period (i32.const 1000)))
    (i32.const 1))
  (func (export "proxy_on_tick") (param $root i32)
    (if (i32.ne (i32.load (i32.const 272)) (i32.const 0)) (then (return)))
    (if (i32.eqz
          (call $http_call
            (i32.const 16) (i32.const 13)
            (i32.const 64) (i32.const 78)
            (i32.const 0) (i32.const 0)
            (i32.const 0) (i32.const 0)
            (i32.const 500) (i32.const 256)))
      (then (i32.store (i32.const 272) (i32.load (i32.const 256))))))
  (func (export "proxy_on_http_call_response")
        (param $ctx i32) (param $token i32) (param $headers i32) (param $body i32) (param $trailers i32)
    (local $cas i32)
    (i32.store (i32.const 272) (i32.const 0))
    ;; The cas of the current entry (0 when there is none yet).
    (if (i32.eqz (call $get_shared (i32.const 32) (i32.const 5)
                   (i32.const 260) (i32.const 264) (i32.const 268)))
      (then (local.set $cas (i32.load (i32.const 268)))))
    ;; The body (HttpCallResponseBody = 4).
    (drop (call $get_buffer (i32.const 4) (i32.const 0) (local.get $body)
            (i32.const 260) (i32.const 264)))
    (drop (call $set_shared (i32.const 32) (i32.const 5)
      (i32.load (i32.const 260)) (i32.load (i32.const 264)) (local.get $cas))))"#;

#[test]
fn ticks_http_calls_and_shared_data_work_together() {
    let path = module("fetcher", FETCHER_IMPORTS, FETCHER);
    let mut vm = WasmHost::load(&path).unwrap();
    assert_eq!(vm.tick_period_ms(), 1000);
    assert!(vm.http_calls().is_empty(), "no call before the first tick");

    vm.tick();
    assert_eq!(vm.http_calls().len(), 1);
    let call = vm.http_calls()[0].clone();
    assert_eq!(call.upstream, "control-plane");
    assert_eq!(call.header(":path"), Some("/table"));
    assert_eq!(call.header(":authority"), Some("config-pusher"));
    assert_eq!(call.timeout_ms, 500);
    assert_eq!(call.context, vm.root_context());
    // A pending call is not repeated.
    vm.tick();
    assert_eq!(vm.http_calls().len(), 1);

    vm.respond_http_call(call.token, &[(":status", "200")], b"table v1", &[]);
    assert!(vm.http_calls().is_empty());
    let (value, cas1) = vm.shared().get("table").unwrap();
    assert_eq!(value, b"table v1");

    // Another worker of the same process sees it; its own fetch replaces it (CAS against the
    // version it read).
    let mut worker = vm.worker().unwrap();
    assert_eq!(worker.shared().get("table").unwrap().0, b"table v1");
    worker.tick();
    let token = worker.http_calls()[0].token;
    worker.respond_http_call(token, &[(":status", "200")], b"table v2", &[]);
    let (value, cas2) = vm.shared().get("table").unwrap();
    assert_eq!(value, b"table v2");
    assert_ne!(cas1, cas2);

    // A write with a stale CAS is refused.
    assert!(!vm.set_shared_data("table", b"stale", cas1));
    assert_eq!(vm.shared().get("table").unwrap().0, b"table v2");
}

#[test]
fn an_unknown_cluster_fails_the_http_call_synchronously() {
    let path = module("fetcher-unknown", FETCHER_IMPORTS, FETCHER);
    let mut vm = WasmHost::load(&path).unwrap();
    vm.set_clusters(&["other"]);
    vm.tick();
    assert!(vm.http_calls().is_empty(), "Envoy refuses unknown clusters");
    vm.set_clusters(&["control-plane"]);
    vm.tick();
    assert_eq!(vm.http_calls().len(), 1);
}

#[test]
fn queue_ready_is_delivered_to_the_vm_that_registered_the_queue() {
    // Registers "updates" on start; on tick enqueues "hello"; on queue ready dequeues the item
    // and stores it in shared data under `got`.
    let path = module(
        "queue",
        r#"(import "env" "proxy_register_shared_queue" (func $register (param i32 i32 i32) (result i32)))
  (import "env" "proxy_resolve_shared_queue" (func $resolve (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_enqueue_shared_queue" (func $enqueue (param i32 i32 i32) (result i32)))
  (import "env" "proxy_dequeue_shared_queue" (func $dequeue (param i32 i32 i32) (result i32)))
  (import "env" "proxy_set_shared_data" (func $set_shared (param i32 i32 i32 i32 i32) (result i32)))"#,
        r#"(data (i32.const 16) "updates")
  (data (i32.const 32) "hello")
  (data (i32.const 48) "got")
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32)
    (drop (call $register (i32.const 16) (i32.const 7) (i32.const 256)))
    (i32.const 1))
  (func (export "proxy_on_tick") (param i32)
    (drop (call $resolve (i32.const 0) (i32.const 0) (i32.const 16) (i32.const 7) (i32.const 260)))
    (drop (call $enqueue (i32.load (i32.const 260)) (i32.const 32) (i32.const 5))))
  (func (export "proxy_on_queue_ready") (param $root i32) (param $queue i32)
    (if (i32.eqz (call $dequeue (local.get $queue) (i32.const 264) (i32.const 268)))
      (then (drop (call $set_shared (i32.const 48) (i32.const 3)
        (i32.load (i32.const 264)) (i32.load (i32.const 268)) (i32.const 0))))))"#,
    );
    let mut first = WasmHost::load(&path).unwrap();
    // The second worker registers the same queue last: notifications go to it.
    let mut second = first.worker().unwrap();
    first.tick();
    assert_eq!(first.deliver_queue_ready(), 0);
    assert!(first.shared().get("got").is_none());
    assert_eq!(second.deliver_queue_ready(), 1);
    assert_eq!(first.shared().get("got").unwrap().0, b"hello");
    assert_eq!(second.deliver_queue_ready(), 0, "delivered once");

    // The test can enqueue too, as another component of the process would.
    assert!(first.shared().enqueue_to("", "updates", b"from the test"));
    assert!(!first.shared().enqueue_to("", "nope", b"x"));
    assert_eq!(second.deliver_queue_ready(), 1);
    assert_eq!(first.shared().get("got").unwrap().0, b"from the test");
}
