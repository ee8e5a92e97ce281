//! The proxy-wasm exports: context bookkeeping and the per-request flow.
//!
//! Root contexts (one per plugin configuration) own a compiled router; each HTTP stream keeps an
//! `Rc` of the router its root had when the stream started, so a reconfiguration or a table
//! update never changes routing under a request in flight. Every host answer is handled: a
//! failure is logged and the request fails closed (500) rather than being forwarded unrouted.
//! Table fetching (ticks, calls to config-pusher, shared data) is in [`super::updates`].

use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;

use rustc_hash::FxHashMap;

use super::abi::{self, Buffer, LogLevel, Map, MetricType, Status};
use super::config::PluginConfig;
use super::envoy::{self, Contract, Plan};
use super::updates::{self, Dynamic};
use crate::router::{Destination, HeaderOp, Outcome, Request, Router, Selection};

const CONTINUE: u32 = 0;
const PAUSE: u32 = 1;

/// A table in force: the compiled router and the Envoy-side settings.
pub(super) struct Loaded {
    pub(super) router: Router,
    listener_port: Option<u16>,
    mirror_slots: u8,
    passthrough_cluster: Option<String>,
    mesh: bool,
    rule_stats: bool,
    metrics: RefCell<Metrics>,
}

impl Loaded {
    pub(super) fn new(config: &PluginConfig, router: Router) -> Loaded {
        Loaded {
            mesh: router.table().role.starts_with("mesh/"),
            router,
            listener_port: config.listener_port,
            mirror_slots: config.mirror_slots,
            passthrough_cluster: config.passthrough_cluster.clone(),
            rule_stats: config.rule_stats,
            metrics: RefCell::new(Metrics::default()),
        }
    }
}

#[derive(Default)]
pub(super) struct Root {
    /// `None` until a table is accepted: requests then get 503.
    pub(super) loaded: Option<Rc<Loaded>>,
    /// Present when the configuration has a `source`.
    pub(super) dynamic: Option<Dynamic>,
}

impl Root {
    /// Swaps in a new table; streams already started keep the old one.
    pub(super) fn install(&mut self, loaded: Loaded) {
        abi::log(
            LogLevel::Info,
            &format!(
                "gammaroute: table {} version {} loaded ({} routes)",
                loaded.router.table().role,
                loaded.router.version(),
                loaded.router.table().routes.len()
            ),
        );
        record_version(loaded.router.version());
        self.loaded = Some(Rc::new(loaded));
    }
}

struct Stream {
    loaded: Option<Rc<Loaded>>,
    /// Response header edits decided on the request path.
    response: Vec<(Op, String, String)>,
}

#[derive(Clone, Copy)]
enum Op {
    Set,
    Add,
    Remove,
}

#[derive(Default)]
pub(super) struct Vm {
    pub(super) roots: FxHashMap<u32, Root>,
    streams: FxHashMap<u32, Stream>,
    /// Fetch calls in flight: token → root context.
    pub(super) calls: FxHashMap<u32, u32>,
    /// This VM's number in the process (from shared data), for the fetcher lease.
    pub(super) number: Option<u64>,
    /// xorshift64 state for weighted picks, mirror sampling and back-off jitter, seeded from the
    /// clock.
    pub(super) rng: u64,
}

thread_local! {
    static VM: RefCell<Vm> = RefCell::new(Vm::default());
}

/// Runs `f` on the VM state. The host never re-enters the VM during a call we make (Envoy defers
/// callbacks until the VM call returns), so the borrow cannot fail in practice; if it ever did we
/// log and return `fallback` instead of trapping.
pub(super) fn with_vm<T>(fallback: T, f: impl FnOnce(&mut Vm) -> T) -> T {
    VM.with(|vm| match vm.try_borrow_mut() {
        Ok(mut vm) => f(&mut vm),
        Err(_) => {
            abi::log(LogLevel::Error, "gammaroute: re-entrant host call ignored");
            fallback
        }
    })
}

#[no_mangle]
pub extern "C" fn proxy_abi_version_0_2_1() {}

/// Memory the host fills for us (header maps, buffers, properties); freed by `abi::take`.
#[no_mangle]
pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
    // Uninitialised: the host writes all `size` bytes before we read them (zeroing the request
    // header buffer first was measurable per request).
    Box::into_raw(Box::<[u8]>::new_uninit_slice(size)).cast::<u8>()
}

#[no_mangle]
pub extern "C" fn proxy_on_vm_start(_root: u32, _size: usize) -> u32 {
    let seed = abi::now_nanos().unwrap_or(0x9e37_79b9_7f4a_7c15) | 1;
    with_vm((), |vm| vm.rng = seed);
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_context_create(context: u32, parent: u32) {
    with_vm((), |vm| {
        if parent == 0 {
            vm.roots.entry(context).or_default();
        } else {
            let loaded = vm.roots.get(&parent).and_then(|r| r.loaded.clone());
            vm.streams.insert(
                context,
                Stream {
                    loaded,
                    response: Vec::new(),
                },
            );
        }
    });
}

#[no_mangle]
pub extern "C" fn proxy_on_configure(root: u32, size: usize) -> u32 {
    let config = abi::buffer(Buffer::PluginConfiguration, size)
        .map_err(|s| format!("cannot read the plugin configuration (host status {})", s.0))
        .and_then(|bytes| PluginConfig::parse(&bytes).map_err(|e| e.to_string()));
    let configured = config.and_then(|mut config| {
        let inline = match config.table.take() {
            Some(table) => Some(
                config
                    .compile(table)
                    .map(|router| Loaded::new(&config, router))
                    .map_err(|e| e.to_string())?,
            ),
            None => None,
        };
        Ok((config, inline))
    });
    match configured {
        Ok((config, inline)) => with_vm(0, |vm| {
            let mut state = Root::default();
            if let Some(loaded) = inline {
                state.install(loaded);
            }
            if config.source.is_some() {
                match updates::start(vm, root, &mut state, config) {
                    Ok(()) => {}
                    Err(message) => {
                        reject(&message);
                        return 0;
                    }
                }
            }
            // The first fetch starts on the first tick: during on_configure Envoy may not have
            // initialised its clusters yet.
            vm.roots.insert(root, state);
            1
        }),
        Err(message) => {
            reject(&message);
            0
        }
    }
}

fn reject(message: &str) {
    abi::log(
        LogLevel::Error,
        &format!("gammaroute: configuration rejected: {message}"),
    );
    count("gammaroute.config_rejected");
}

#[no_mangle]
pub extern "C" fn proxy_on_tick(root: u32) {
    with_vm((), |vm| updates::tick(vm, root));
}

#[no_mangle]
pub extern "C" fn proxy_on_http_call_response(
    _root: u32,
    token: u32,
    headers: usize,
    body_size: usize,
    _trailers: usize,
) {
    with_vm((), |vm| updates::response(vm, token, headers, body_size));
}

#[no_mangle]
pub extern "C" fn proxy_on_request_headers(
    context: u32,
    _headers: usize,
    _end_of_stream: u32,
) -> u32 {
    with_vm(CONTINUE, |vm| {
        let draw = next_draw(&mut vm.rng);
        let Some(stream) = vm.streams.get_mut(&context) else {
            return CONTINUE;
        };
        let Some(loaded) = stream.loaded.clone() else {
            // No configuration was ever accepted: fail closed.
            return respond(
                503,
                &[],
                "gammaroute has no route table\n",
                "gammaroute_no_table",
            );
        };
        match route(&loaded, stream, draw) {
            Ok(action) => action,
            Err(status) => {
                abi::log(
                    LogLevel::Error,
                    &format!(
                        "gammaroute: host call failed (status {}) while routing",
                        status.0
                    ),
                );
                respond(
                    500,
                    &[],
                    "gammaroute: internal error\n",
                    "gammaroute_host_error",
                )
            }
        }
    })
}

thread_local! {
    /// The request headers of the request being routed, decoded into reused strings (see
    /// [`super::pairs::decode_into`]): routing a request allocates nothing for its headers.
    static REQUEST_HEADERS: RefCell<Vec<(String, String)>> = const { RefCell::new(Vec::new()) };
}

fn route(loaded: &Loaded, stream: &mut Stream, draw: u64) -> Result<u32, Status> {
    REQUEST_HEADERS.with(|pool| match pool.try_borrow_mut() {
        Ok(mut pool) => {
            let n = abi::headers_into(Map::Request, &mut pool)?;
            route_with(loaded, stream, draw, pool.get(..n).unwrap_or_default())
        }
        // Not reachable (the host never re-enters the VM); decode afresh rather than trap.
        Err(_) => {
            let headers = abi::headers(Map::Request)?;
            route_with(loaded, stream, draw, &headers)
        }
    })
}

/// One request, its headers read: one header-map read before, and after the decision only the
/// header writes that change something (see [`envoy::prune`]), the route-cache clear and one
/// metric increment.
fn route_with(
    loaded: &Loaded,
    stream: &mut Stream,
    draw: u64,
    headers: &[(String, String)],
) -> Result<u32, Status> {
    let pseudo = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    };
    let destination = destination(loaded)?;
    let req = Request {
        method: pseudo(":method"),
        scheme: pseudo(":scheme"),
        authority: pseudo(":authority"),
        path: pseudo(":path"),
        headers,
        destination,
    };
    let decision = loaded.router.decide(&req, draw);
    if let Ok(mut metrics) = loaded.metrics.try_borrow_mut() {
        metrics.count(loaded, &decision.selection, &decision.outcome);
    }
    let contract = Contract {
        mirror_slots: loaded.mirror_slots,
        passthrough_cluster: loaded.passthrough_cluster.as_deref(),
    };
    match envoy::plan(&decision, contract) {
        Plan::Continue {
            mut request,
            response,
            dropped_mirrors,
        } => {
            envoy::prune(&mut request, |name| {
                headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name))
            });
            for op in &request {
                match op {
                    HeaderOp::Set(n, v) => abi::set_header(Map::Request, n, v)?,
                    HeaderOp::Add(n, v) => abi::add_header(Map::Request, n, v)?,
                    HeaderOp::Remove(n) => abi::remove_header(Map::Request, n)?,
                }
            }
            // Envoy 1.40 also clears the cache on header mutation; newer versions may not.
            // Other hosts do not have the function: NotFound is expected there.
            match abi::call_foreign_function("clear_route_cache", &[]) {
                Ok(_) | Err(Status::NOT_FOUND) => {}
                Err(s) => return Err(s),
            }
            if dropped_mirrors > 0 {
                count("gammaroute.mirror_dropped");
            }
            if !response.is_empty() {
                stream.response = response.iter().map(own).collect();
            }
            Ok(CONTINUE)
        }
        Plan::Respond {
            status,
            headers,
            body,
        } => {
            let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (&**k, &**v)).collect();
            let reason = match &decision.outcome {
                Outcome::Respond(local) => local.reason.as_str(),
                _ => "local",
            };
            Ok(respond(
                status,
                &headers,
                body,
                &format!("gammaroute_{reason}"),
            ))
        }
    }
}

/// The destination: the configured listener port for gateways, else the connection's
/// `destination.address` (mesh parents are identified by ClusterIP:port).
fn destination(loaded: &Loaded) -> Result<Destination, Status> {
    let unspecified = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    if let (Some(port), false) = (loaded.listener_port, loaded.mesh) {
        return Ok(Destination {
            ip: unspecified,
            port,
        });
    }
    let address = abi::property(&["destination", "address"])?.unwrap_or_default();
    let parsed = std::str::from_utf8(&address)
        .ok()
        .and_then(|s| s.parse::<SocketAddr>().ok());
    Ok(match parsed {
        Some(addr) => Destination {
            ip: addr.ip(),
            port: addr.port(),
        },
        // Unknown destination: no parent matches (mesh: passthrough; gateway: 404).
        None => Destination {
            ip: unspecified,
            port: 0,
        },
    })
}

fn respond(status: u16, headers: &[(&str, &str)], body: &str, details: &str) -> u32 {
    let mut all: Vec<(&str, &str)> = headers.to_vec();
    if !body.is_empty() {
        all.push(("content-type", "text/plain"));
    }
    if let Err(s) = abi::send_local_response(status, &all, body.as_bytes(), details) {
        abi::log(
            LogLevel::Error,
            &format!("gammaroute: local response failed (status {})", s.0),
        );
        return CONTINUE;
    }
    PAUSE
}

fn own(op: &HeaderOp<'_>) -> (Op, String, String) {
    match op {
        HeaderOp::Set(n, v) => (Op::Set, n.to_string(), v.to_string()),
        HeaderOp::Add(n, v) => (Op::Add, n.to_string(), v.to_string()),
        HeaderOp::Remove(n) => (Op::Remove, n.to_string(), String::new()),
    }
}

#[no_mangle]
pub extern "C" fn proxy_on_response_headers(
    context: u32,
    _headers: usize,
    _end_of_stream: u32,
) -> u32 {
    with_vm(CONTINUE, |vm| {
        let Some(stream) = vm.streams.get_mut(&context) else {
            return CONTINUE;
        };
        for (op, name, value) in std::mem::take(&mut stream.response) {
            let done = match op {
                Op::Set => abi::set_header(Map::Response, &name, &value),
                Op::Add => abi::add_header(Map::Response, &name, &value),
                Op::Remove => abi::remove_header(Map::Response, &name),
            };
            if let Err(s) = done {
                abi::log(
                    LogLevel::Warn,
                    &format!("gammaroute: response header {name}: host status {}", s.0),
                );
            }
        }
        CONTINUE
    })
}

#[no_mangle]
pub extern "C" fn proxy_on_done(_context: u32) -> u32 {
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_log(_context: u32) {}

#[no_mangle]
pub extern "C" fn proxy_on_delete(context: u32) {
    with_vm((), |vm| {
        if vm.streams.remove(&context).is_none() {
            vm.roots.remove(&context);
        }
    });
}

pub(super) fn next_draw(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    x
}

/// Per route/rule/backend request counters and local-reply counters, defined on first use.
/// Names (Envoy shows them under `wasmcustom.`):
/// `gammaroute.rq.<namespace>.<route>.rule_<index>.backend_<position>`,
/// `gammaroute.local.<reason>`.
#[derive(Default)]
struct Metrics {
    ids: FxHashMap<(u32, u32, u32), u32>,
    local: FxHashMap<&'static str, u32>,
}

impl Metrics {
    fn count(&mut self, loaded: &Loaded, selection: &Selection, outcome: &Outcome<'_>) {
        let id = match (selection, outcome) {
            (Selection::Matched(sel), Outcome::Forward(fwd)) if loaded.rule_stats => {
                let key = (sel.route, sel.rule, fwd.backend);
                match self.ids.get(&key) {
                    Some(id) => Some(*id),
                    None => {
                        let table = loaded.router.table();
                        let name = table.routes.get(sel.route as usize).and_then(|r| {
                            let rule = r.rules.get(sel.rule as usize)?;
                            Some(format!(
                                "gammaroute.rq.{}.{}.rule_{}.backend_{}",
                                stat_safe(&r.namespace),
                                stat_safe(&r.name),
                                rule.index,
                                fwd.backend
                            ))
                        });
                        let id = name.and_then(|n| define(MetricType::Counter, &n));
                        if let Some(id) = id {
                            self.ids.insert(key, id);
                        }
                        id
                    }
                }
            }
            (_, Outcome::Respond(local)) => {
                let reason = local.reason.as_str();
                match self.local.get(reason) {
                    Some(id) => Some(*id),
                    None => {
                        let id = define(MetricType::Counter, &format!("gammaroute.local.{reason}"));
                        if let Some(id) = id {
                            self.local.insert(reason, id);
                        }
                        id
                    }
                }
            }
            _ => None,
        };
        if let Some(id) = id {
            increment(id);
        }
    }
}

/// Envoy splits stat names on `.`: keep each name one segment.
fn stat_safe(s: &str) -> String {
    s.replace('.', "_")
}

pub(super) fn count(name: &str) {
    if let Some(id) = define(MetricType::Counter, name) {
        increment(id);
    }
}

fn define(kind: MetricType, name: &str) -> Option<u32> {
    abi::define_metric(kind, name)
        .map_err(|s| metric_failed(name, s))
        .ok()
}

fn increment(id: u32) {
    if let Err(s) = abi::increment_metric(id, 1) {
        metric_failed("increment", s);
    }
}

/// Metrics are best effort — a host without them must still route — but a failure is logged,
/// once per VM rather than once per request.
fn metric_failed(what: &str, status: Status) {
    thread_local! {
        static WARNED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    if !WARNED.with(|w| w.replace(true)) {
        abi::log(
            LogLevel::Warn,
            &format!(
                "gammaroute: metric {what}: host status {} (further metric failures are not logged)",
                status.0
            ),
        );
    }
}

/// The applied table version as a gauge: its first 12 hex digits as a number.
fn record_version(version: &str) {
    let value = version
        .get(..12)
        .and_then(|v| u64::from_str_radix(v, 16).ok())
        .unwrap_or(0);
    if let Some(id) = define(MetricType::Gauge, "gammaroute.table_version") {
        if let Err(s) = abi::record_metric(id, value) {
            metric_failed("gammaroute.table_version", s);
        }
    }
}
