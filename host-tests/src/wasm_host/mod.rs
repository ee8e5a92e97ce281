//! An embedded proxy-wasm host (ABI 0.2.1) on wasmtime: loads a proxy-wasm `.wasm` and drives it
//! the way Envoy does — root context, `on_vm_start`, `on_configure`, then one HTTP context per
//! request — with real host state behind every import (header maps, properties, metrics, logs,
//! local responses, shared data with CAS, queues, ticks, outgoing HTTP calls, foreign
//! functions). See `host-tests/README.md` for what is implemented and how to drive it.
//!
//! A trap in the module (or a host function rejecting a bad pointer) panics the calling test
//! with the wasm backtrace; a missing import fails [`WasmHost::load`] naming the import.

mod imports;
mod memory;
mod wasi;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use wasmtime::{Config, Engine, Instance, Linker, Module, Store, Val};

/// Log levels, numbered as the ABI numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    Trace = 0,
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
    Critical = 5,
}

impl LogLevel {
    fn from_abi(n: i32) -> Option<LogLevel> {
        Some(match n {
            0 => LogLevel::Trace,
            1 => LogLevel::Debug,
            2 => LogLevel::Info,
            3 => LogLevel::Warn,
            4 => LogLevel::Error,
            5 => LogLevel::Critical,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

impl MetricKind {
    fn from_abi(n: i32) -> Option<MetricKind> {
        Some(match n {
            0 => MetricKind::Counter,
            1 => MetricKind::Gauge,
            2 => MetricKind::Histogram,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
struct Metric {
    name: String,
    kind: MetricKind,
    value: i64,
    recorded: Vec<u64>,
}

/// A local response the module sent (`proxy_send_local_response`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub details: String,
    pub grpc_status: i32,
}

impl LocalResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        imports::header_value(&self.headers, name)
    }
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// An outgoing HTTP call (`proxy_http_call`) waiting for the test to answer it.
#[derive(Debug, Clone)]
pub struct HttpCall {
    pub token: u32,
    /// The context that was effective when the call was made (the root for a config fetch).
    pub context: u32,
    pub upstream: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub trailers: Vec<(String, String)>,
    pub timeout_ms: u32,
}

impl HttpCall {
    pub fn header(&self, name: &str) -> Option<&str> {
        imports::header_value(&self.headers, name)
    }
}

#[derive(Debug, Default)]
struct Queue {
    vm_id: String,
    name: String,
    items: VecDeque<Vec<u8>>,
    /// The VM instance and root context that registered it last: Envoy calls
    /// `proxy_on_queue_ready` there (proxy-wasm-cpp-host re-points a queue at each
    /// registration).
    owner: (u64, u32),
}

/// State shared by every VM ("worker") loaded from one [`WasmHost`]: what Envoy keeps per
/// process — shared data (with CAS) and shared queues.
#[derive(Debug, Default)]
pub struct Shared {
    data: HashMap<String, (Vec<u8>, u32)>,
    queues: Vec<Queue>,
    next_cas: u32,
    /// Enqueues not yet announced: (owner VM instance, root context, queue id).
    ready: Vec<(u64, u32, u32)>,
    /// Keys another worker writes (value unchanged, new CAS) just before the next write to them.
    interfere: HashSet<String>,
}

impl Shared {
    /// Sets `key`; a non-zero `cas` must equal the current one (a missing key has none, so any
    /// non-zero cas fails for it). Returns false on a CAS mismatch.
    fn set(&mut self, key: &str, value: Vec<u8>, cas: u32) -> bool {
        if self.interfere.remove(key) {
            let theirs = self
                .data
                .get(key)
                .map(|(v, _)| v.clone())
                .unwrap_or_default();
            self.next_cas = self.next_cas.wrapping_add(1).max(1);
            self.data.insert(key.to_string(), (theirs, self.next_cas));
        }
        let current = self.data.get(key).map(|(_, c)| *c);
        if cas != 0 && current != Some(cas) {
            return false;
        }
        self.next_cas = self.next_cas.wrapping_add(1).max(1);
        self.data.insert(key.to_string(), (value, self.next_cas));
        true
    }

    /// Another worker writes `key` (same value, new CAS) just before the next write to it: that
    /// write, if it is a CAS on what was read before, fails as it would in Envoy.
    pub fn interfere_before_next_write(&mut self, key: &str) {
        self.interfere.insert(key.to_string());
    }

    /// The value and CAS of `key`.
    pub fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.data.get(key).cloned()
    }

    fn register_queue(&mut self, vm_id: &str, name: &str, owner: (u64, u32)) -> u32 {
        match self.resolve_queue(vm_id, name) {
            Some(id) => {
                if let Some(q) = self.queues.get_mut(id as usize) {
                    q.owner = owner;
                }
                id
            }
            None => {
                self.queues.push(Queue {
                    vm_id: vm_id.to_string(),
                    name: name.to_string(),
                    items: VecDeque::new(),
                    owner,
                });
                (self.queues.len() - 1) as u32
            }
        }
    }

    /// Appends to queue `id` and notes that its owner is to be told; false if there is none.
    fn enqueue(&mut self, id: u32, value: Vec<u8>) -> bool {
        let Some(q) = self.queues.get_mut(id as usize) else {
            return false;
        };
        q.items.push_back(value);
        let (vm, root) = q.owner;
        self.ready.push((vm, root, id));
        true
    }

    /// Enqueues to the queue `name` of VM id `vm_id` from the test (as another filter or
    /// process component would); false when no VM registered it.
    pub fn enqueue_to(&mut self, vm_id: &str, name: &str, value: &[u8]) -> bool {
        self.resolve_queue(vm_id, name)
            .is_some_and(|id| self.enqueue(id, value.to_vec()))
    }

    fn resolve_queue(&self, vm_id: &str, name: &str) -> Option<u32> {
        self.queues
            .iter()
            .position(|q| q.vm_id == vm_id && q.name == name)
            .map(|i| i as u32)
    }
}

/// Everything behind the imports of one VM.
pub struct HostState {
    vm_id: String,
    /// Distinguishes VMs (workers) of one process, for queue notifications.
    instance: u64,
    shared: Arc<Mutex<Shared>>,
    now_nanos: u64,
    log_level: LogLevel,
    logs: Vec<(LogLevel, String)>,
    echo_logs: bool,
    maps: [Vec<(String, String)>; 8],
    request_body: Vec<u8>,
    response_body: Vec<u8>,
    http_call_body: Vec<u8>,
    vm_configuration: Vec<u8>,
    plugin_configuration: Vec<u8>,
    properties: BTreeMap<String, Vec<u8>>,
    metrics: Vec<Metric>,
    local_response: Option<LocalResponse>,
    foreign_functions: Vec<String>,
    foreign_calls: Vec<(String, Vec<u8>)>,
    tick_period_ms: u32,
    http_calls: Vec<HttpCall>,
    next_token: u32,
    known_clusters: Vec<String>,
    effective_context: u32,
    live_contexts: Vec<u32>,
    stream_actions: Vec<String>,
    done_called: u32,
    call_status: (u32, String),
    random: u64,
    /// Calls of the request-path imports (header maps, properties, foreign functions, metrics,
    /// logs, local replies) since the current request started.
    host_calls: BTreeMap<&'static str, u32>,
}

impl HostState {
    fn count_call(&mut self, import: &'static str) {
        *self.host_calls.entry(import).or_default() += 1;
    }

    fn log(&mut self, level: LogLevel, message: String) {
        if self.echo_logs {
            eprintln!("[wasm {}] {level:?}: {message}", self.vm_id);
        }
        self.logs.push((level, message));
    }

    fn next_random(&mut self) -> u64 {
        let mut x = self.random;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.random = x;
        x
    }

    fn map(&self, kind: i32) -> Option<&Vec<(String, String)>> {
        self.maps.get(usize::try_from(kind).ok()?)
    }

    fn map_mut(&mut self, kind: i32) -> Option<&mut Vec<(String, String)>> {
        self.maps.get_mut(usize::try_from(kind).ok()?)
    }

    fn buffer(&self, kind: i32) -> Option<&Vec<u8>> {
        Some(match kind {
            0 => &self.request_body,
            1 => &self.response_body,
            4 => &self.http_call_body,
            6 => &self.vm_configuration,
            7 => &self.plugin_configuration,
            _ => return None,
        })
    }

    fn buffer_mut(&mut self, kind: i32) -> Option<&mut Vec<u8>> {
        Some(match kind {
            0 => &mut self.request_body,
            1 => &mut self.response_body,
            _ => return None,
        })
    }

    fn define_metric(&mut self, kind: MetricKind, name: String) -> u32 {
        if let Some(i) = self.metrics.iter().position(|m| m.name == name) {
            return i as u32;
        }
        self.metrics.push(Metric {
            name,
            kind,
            value: 0,
            recorded: Vec::new(),
        });
        (self.metrics.len() - 1) as u32
    }
}

/// Header map numbers of the ABI.
const REQUEST_HEADERS: usize = 0;
const RESPONSE_HEADERS: usize = 2;
const HTTP_CALL_RESPONSE_HEADERS: usize = 6;
const HTTP_CALL_RESPONSE_TRAILERS: usize = 7;

/// The compiled module and the process-wide state its VMs share.
#[derive(Clone)]
struct Loaded {
    engine: Engine,
    module: Module,
    linker: Arc<Linker<HostState>>,
    shared: Arc<Mutex<Shared>>,
}

/// A compiled module and the linker with the host's imports, ready to instantiate.
type Compiled = (Engine, Module, Arc<Linker<HostState>>);

/// Compiles `path` once per test process (keyed by path, size and modification time):
/// Cranelift takes seconds on a 500 KB module in the debug profile and every test loads it.
/// Only the immutable compiled code is shared; each [`WasmHost::load`] gets fresh instances
/// and fresh process-wide state.
fn compiled(path: &Path) -> Result<Compiled> {
    type Key = (std::path::PathBuf, u64, Option<std::time::SystemTime>);
    static CACHE: Mutex<BTreeMap<Key, Compiled>> = Mutex::new(BTreeMap::new());
    let meta = std::fs::metadata(path)
        .map_err(|e| wasmtime::Error::msg(format!("{}: {e}", path.display())))?;
    let key = (path.to_path_buf(), meta.len(), meta.modified().ok());
    let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(c) = cache.get(&key) {
        return Ok(c.clone());
    }
    let c = compile(path)?;
    cache.insert(key, c.clone());
    Ok(c)
}

/// Compiles the module and links the host's imports; fails naming every import the module
/// needs that this host does not implement.
fn compile(path: &Path) -> Result<Compiled> {
    let mut config = Config::new();
    config.wasm_backtrace_max_frames(std::num::NonZeroUsize::new(64));
    let engine = Engine::new(&config)?;
    let module = Module::from_file(&engine, path)
        .map_err(|e| e.context(format!("compiling {}", path.display())))?;
    let mut linker = Linker::new(&engine);
    imports::add_to_linker(&mut linker)?;
    wasi::add_to_linker(&mut linker)?;
    let mut probe = Store::new(&engine, HostState::new("probe", Arc::default()));
    let missing: Vec<String> = module
        .imports()
        .filter(|i| linker.get_by_import(&mut probe, i).is_none())
        .map(|i| format!("{}::{}", i.module(), i.name()))
        .collect();
    if !missing.is_empty() {
        return Err(wasmtime::Error::msg(format!(
            "{} imports functions this proxy-wasm host does not implement: {}",
            path.display(),
            missing.join(", ")
        )));
    }
    Ok((engine, module, Arc::new(linker)))
}

/// One proxy-wasm VM (an Envoy worker's copy of the plugin) with one root context.
pub struct WasmHost {
    loaded: Loaded,
    store: Store<HostState>,
    instance: Instance,
    root: u32,
    next_context: u32,
    upstream_response: Vec<(String, String)>,
}

/// What happened to one request.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The action `proxy_on_request_headers` returned (0 Continue, 1 Pause).
    pub action: u32,
    request_headers: Vec<(String, String)>,
    response_headers: Option<Vec<(String, String)>>,
    local_response: Option<LocalResponse>,
    foreign_calls: Vec<(String, Vec<u8>)>,
    host_calls: BTreeMap<&'static str, u32>,
}

impl Exchange {
    /// How many times the module called each request-path import while handling this request
    /// (request and response headers), by import name.
    pub fn host_calls(&self) -> &BTreeMap<&'static str, u32> {
        &self.host_calls
    }
    /// The request headers as the router filter would see them after the module ran.
    pub fn request_headers(&self) -> &[(String, String)] {
        &self.request_headers
    }
    /// The first value of a request header (case-insensitive name).
    pub fn request_header(&self, name: &str) -> Option<&str> {
        imports::header_value(&self.request_headers, name)
    }
    /// All values of a request header.
    pub fn request_header_all(&self, name: &str) -> Vec<&str> {
        self.request_headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
    /// The cluster the request goes to (`x-gamma-cluster`), if it was forwarded.
    pub fn upstream_cluster(&self) -> Option<&str> {
        if self.local_response.is_some() {
            return None;
        }
        self.request_header(gammaroute_filter::host::envoy::CLUSTER_HEADER)
    }
    /// The `x-envoy-*` request headers (timeouts, retries), in order.
    pub fn envoy_headers(&self) -> Vec<(&str, &str)> {
        self.request_headers
            .iter()
            .filter(|(k, _)| k.starts_with("x-envoy-"))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }
    /// The mirror slots that fire (`x-gamma-mirror-N` → cluster), by slot.
    pub fn mirrors(&self) -> Vec<(&str, &str)> {
        let mut m: Vec<(&str, &str)> = self
            .request_headers
            .iter()
            .filter(|(k, _)| k.starts_with(gammaroute_filter::host::envoy::MIRROR_HEADER_PREFIX))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        m.sort();
        m
    }
    /// The response headers after `proxy_on_response_headers` (None for a local response).
    pub fn response_headers(&self) -> Option<&[(String, String)]> {
        self.response_headers.as_deref()
    }
    pub fn response_header(&self, name: &str) -> Option<&str> {
        imports::header_value(self.response_headers.as_deref()?, name)
    }
    /// The local response the module sent instead of forwarding.
    pub fn local_response(&self) -> Option<&LocalResponse> {
        self.local_response.as_ref()
    }
    /// Foreign functions called during this request (name, arguments).
    pub fn foreign_calls(&self) -> &[(String, Vec<u8>)] {
        &self.foreign_calls
    }
}

/// Result type of the host's fallible operations (load, raw calls).
pub type Result<T> = wasmtime::Result<T>;

impl WasmHost {
    /// Compiles the module, instantiates one VM, creates root context 1 and runs
    /// `proxy_on_vm_start` (with an empty VM configuration). Fails naming any import the module
    /// needs that this host does not implement, or an export it lacks.
    pub fn load(path: impl AsRef<Path>) -> Result<WasmHost> {
        let (engine, module, linker) = compiled(path.as_ref())?;
        let loaded = Loaded {
            engine,
            module,
            linker,
            shared: Arc::default(),
        };
        WasmHost::start(loaded, "")
    }

    /// Another VM of the same module (another Envoy worker): its own instance, memory, root
    /// context and logs/metrics, but the same shared data and queues as `self`.
    pub fn worker(&self) -> Result<WasmHost> {
        WasmHost::start(self.loaded.clone(), "")
    }

    fn start(loaded: Loaded, vm_configuration: &str) -> Result<WasmHost> {
        let mut state = HostState::new("", loaded.shared.clone());
        state.vm_configuration = vm_configuration.as_bytes().to_vec();
        let mut store = Store::new(&loaded.engine, state);
        let instance = loaded.linker.instantiate(&mut store, &loaded.module)?;
        for abi in [
            "proxy_abi_version_0_2_1",
            "proxy_on_memory_allocate",
            "memory",
        ] {
            if instance.get_export(&mut store, abi).is_none() {
                return Err(wasmtime::Error::msg(format!(
                    "the module does not export `{abi}` (this host implements proxy-wasm ABI 0.2.1)"
                )));
            }
        }
        let mut host = WasmHost {
            loaded,
            store,
            instance,
            root: 1,
            next_context: 2,
            upstream_response: vec![(":status".into(), "200".into())],
        };
        if host.has_export("_initialize") {
            host.call("_initialize", &[])?;
        }
        host.store.data_mut().live_contexts.push(1);
        host.call("proxy_on_context_create", &[Val::I32(1), Val::I32(0)])?;
        let size = host.store.data().vm_configuration.len() as i32;
        let started = host.call("proxy_on_vm_start", &[Val::I32(1), Val::I32(size)])?;
        if started == Some(0) {
            return Err(wasmtime::Error::msg("proxy_on_vm_start returned false"));
        }
        Ok(host)
    }

    fn has_export(&mut self, name: &str) -> bool {
        self.instance.get_func(&mut self.store, name).is_some()
    }

    /// Calls an export by name with i32/i64 arguments; `Ok(None)` for a function without a
    /// result. A trap comes back as an error carrying the wasm backtrace.
    pub fn call(&mut self, export: &str, args: &[Val]) -> Result<Option<i64>> {
        let func = self
            .instance
            .get_func(&mut self.store, export)
            .ok_or_else(|| {
                wasmtime::Error::msg(format!("the module does not export `{export}`"))
            })?;
        let n = func.ty(&self.store).results().len();
        let mut results = vec![Val::I32(0); n];
        func.call(&mut self.store, args, &mut results)
            .map_err(|e| e.context(format!("trap in {export}")))?;
        Ok(results.first().and_then(|v| match v {
            Val::I32(x) => Some(i64::from(*x)),
            Val::I64(x) => Some(*x),
            _ => None,
        }))
    }

    /// Like [`WasmHost::call`], but a trap fails the test (panics) with the wasm backtrace.
    fn must(&mut self, export: &str, args: &[Val]) -> Option<i64> {
        match self.call(export, args) {
            Ok(r) => r,
            Err(e) => panic!("{e:?}"),
        }
    }

    /// Sets the plugin configuration and calls `proxy_on_configure` on the root context; the
    /// module's answer (false = rejected; look at [`WasmHost::logs`]).
    pub fn configure(&mut self, plugin_configuration: &str) -> bool {
        self.store.data_mut().plugin_configuration = plugin_configuration.as_bytes().to_vec();
        let size = plugin_configuration.len() as i32;
        let root = self.root as i32;
        self.must("proxy_on_configure", &[Val::I32(root), Val::I32(size)]) != Some(0)
    }

    /// Sets the upstream response headers the next requests get (default `:status: 200`).
    pub fn set_upstream_response(&mut self, headers: &[(&str, &str)]) {
        self.upstream_response = own(headers);
    }

    /// Runs one request through a new HTTP context, like Envoy: `on_context_create`,
    /// `on_request_headers` (end of stream), then — unless the module answered locally —
    /// `on_response_headers` with the upstream response, then `on_done`, `on_log`, `on_delete`.
    /// `url` is `scheme://authority/path?query`; headers are added after the pseudo-headers.
    pub fn request(&mut self, method: &str, url: &str, headers: &[(&str, &str)]) -> Exchange {
        let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let mut all = vec![
            (":authority", authority),
            (":path", path),
            (":method", method),
            (":scheme", scheme),
        ];
        all.extend_from_slice(headers);
        self.request_raw(&all)
    }

    /// [`WasmHost::request`] with the complete request header map given as is.
    pub fn request_raw(&mut self, headers: &[(&str, &str)]) -> Exchange {
        let ctx = self.next_context;
        self.next_context += 1;
        {
            let s = self.store.data_mut();
            s.maps[REQUEST_HEADERS] = own(headers);
            s.maps[RESPONSE_HEADERS].clear();
            s.local_response = None;
            s.foreign_calls.clear();
            s.host_calls.clear();
            s.live_contexts.push(ctx);
            s.effective_context = ctx;
        }
        let (c, root) = (ctx as i32, self.root as i32);
        self.must("proxy_on_context_create", &[Val::I32(c), Val::I32(root)]);
        let n = headers.len() as i32;
        let action = self
            .must(
                "proxy_on_request_headers",
                &[Val::I32(c), Val::I32(n), Val::I32(1)],
            )
            .unwrap_or(0) as u32;
        let local = self.store.data_mut().local_response.take();
        let request_headers = self.store.data().maps[REQUEST_HEADERS].clone();
        let response_headers = if local.is_none() {
            let upstream = self.upstream_response.clone();
            let n = upstream.len() as i32;
            self.store.data_mut().maps[RESPONSE_HEADERS] = upstream;
            self.must(
                "proxy_on_response_headers",
                &[Val::I32(c), Val::I32(n), Val::I32(1)],
            );
            Some(self.store.data().maps[RESPONSE_HEADERS].clone())
        } else {
            None
        };
        self.must("proxy_on_done", &[Val::I32(c)]);
        self.must("proxy_on_log", &[Val::I32(c)]);
        self.must("proxy_on_delete", &[Val::I32(c)]);
        let s = self.store.data_mut();
        s.live_contexts.retain(|x| *x != ctx);
        s.effective_context = self.root;
        Exchange {
            action,
            request_headers,
            response_headers,
            local_response: local,
            foreign_calls: std::mem::take(&mut s.foreign_calls),
            host_calls: std::mem::take(&mut s.host_calls),
        }
    }

    /// Sets a property the module can read, by its dotted path (`destination.address`).
    pub fn set_property(&mut self, path: &str, value: impl AsRef<[u8]>) {
        self.store
            .data_mut()
            .properties
            .insert(path.to_string(), value.as_ref().to_vec());
    }

    /// A property, as set by the test or by the module (`proxy_set_property`).
    pub fn property(&self, path: &str) -> Option<&[u8]> {
        self.store.data().properties.get(path).map(Vec::as_slice)
    }

    /// Sets the clock (`proxy_get_current_time_nanoseconds`, WASI `clock_time_get`).
    pub fn set_time_nanos(&mut self, nanos: u64) {
        self.store.data_mut().now_nanos = nanos;
    }

    /// Advances the clock.
    pub fn advance_millis(&mut self, ms: u64) {
        let s = self.store.data_mut();
        s.now_nanos = s.now_nanos.saturating_add(ms * 1_000_000);
    }

    /// The log level the module reads with `proxy_get_log_level` (default Trace).
    pub fn set_log_level(&mut self, level: LogLevel) {
        self.store.data_mut().log_level = level;
    }

    /// Echo every module log line to stderr as it happens (off by default).
    pub fn echo_logs(&mut self, on: bool) {
        self.store.data_mut().echo_logs = on;
    }

    /// Everything the module logged (proxy_log and stdout/stderr), oldest first.
    pub fn logs(&self) -> &[(LogLevel, String)] {
        &self.store.data().logs
    }

    /// The log lines at `level`.
    pub fn logs_at(&self, level: LogLevel) -> Vec<&str> {
        self.logs()
            .iter()
            .filter(|(l, _)| *l == level)
            .map(|(_, m)| m.as_str())
            .collect()
    }

    pub fn clear_logs(&mut self) {
        self.store.data_mut().logs.clear();
    }

    /// A metric's value by name (counter total, gauge or last histogram value).
    pub fn metric(&self, name: &str) -> Option<i64> {
        self.store
            .data()
            .metrics
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.value)
    }

    /// All metrics defined by the module, by name.
    pub fn metrics(&self) -> BTreeMap<String, i64> {
        self.store
            .data()
            .metrics
            .iter()
            .map(|m| (m.name.clone(), m.value))
            .collect()
    }

    /// The kind a metric was defined with.
    pub fn metric_kind(&self, name: &str) -> Option<MetricKind> {
        self.store
            .data()
            .metrics
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.kind)
    }

    /// Foreign functions the host answers with OK (default: `clear_route_cache`, like Envoy).
    /// Any other name answers NotFound; every call is recorded either way.
    pub fn set_foreign_functions(&mut self, names: &[&str]) {
        self.store.data_mut().foreign_functions = names.iter().map(|s| s.to_string()).collect();
    }

    /// The tick period the module asked for (`proxy_set_tick_period_milliseconds`), 0 = none.
    pub fn tick_period_ms(&self) -> u32 {
        self.store.data().tick_period_ms
    }

    /// Fires one timer tick on the root context (`proxy_on_tick`), if the module has one.
    /// The clock advances by the tick period first.
    pub fn tick(&mut self) {
        let period = u64::from(self.tick_period_ms());
        self.advance_millis(period);
        if self.has_export("proxy_on_tick") {
            let root = self.root as i32;
            self.store.data_mut().effective_context = self.root;
            self.must("proxy_on_tick", &[Val::I32(root)]);
        }
    }

    /// Restricts `proxy_http_call` to these upstream clusters (others get BadArgument, as in
    /// Envoy). Empty (the default) accepts any name.
    pub fn set_clusters(&mut self, clusters: &[&str]) {
        self.store.data_mut().known_clusters = clusters.iter().map(|s| s.to_string()).collect();
    }

    /// The outgoing HTTP calls not yet answered.
    pub fn http_calls(&self) -> &[HttpCall] {
        &self.store.data().http_calls
    }

    /// Answers an outgoing call: the module gets `proxy_on_http_call_response` on the context
    /// that made it, and can read these headers/body/trailers. Panics for an unknown token.
    pub fn respond_http_call(
        &mut self,
        token: u32,
        headers: &[(&str, &str)],
        body: &[u8],
        trailers: &[(&str, &str)],
    ) {
        let s = self.store.data_mut();
        let at = s
            .http_calls
            .iter()
            .position(|c| c.token == token)
            .unwrap_or_else(|| panic!("no pending http call with token {token}"));
        let call = s.http_calls.remove(at);
        s.maps[HTTP_CALL_RESPONSE_HEADERS] = own(headers);
        s.maps[HTTP_CALL_RESPONSE_TRAILERS] = own(trailers);
        s.http_call_body = body.to_vec();
        s.effective_context = call.context;
        let args = [
            Val::I32(call.context as i32),
            Val::I32(token as i32),
            Val::I32(headers.len() as i32),
            Val::I32(body.len() as i32),
            Val::I32(trailers.len() as i32),
        ];
        self.must("proxy_on_http_call_response", &args);
        let s = self.store.data_mut();
        s.maps[HTTP_CALL_RESPONSE_HEADERS].clear();
        s.maps[HTTP_CALL_RESPONSE_TRAILERS].clear();
        s.http_call_body.clear();
        s.effective_context = self.root;
    }

    /// The shared data and queues of this VM's process (the same for all its workers).
    pub fn shared(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.loaded.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets shared data from the test (as another process component would); CAS 0 = no check.
    pub fn set_shared_data(&self, key: &str, value: &[u8], cas: u32) -> bool {
        self.shared().set(key, value.to_vec(), cas)
    }

    /// The size of the instance's linear memory in bytes.
    pub fn memory_bytes(&mut self) -> usize {
        self.instance
            .get_memory(&mut self.store, "memory")
            .map_or(0, |m| m.data_size(&self.store))
    }

    /// Values recorded into a histogram (or gauge) with `proxy_record_metric`, oldest first.
    pub fn recorded(&self, name: &str) -> Vec<u64> {
        self.store
            .data()
            .metrics
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.recorded.clone())
            .unwrap_or_default()
    }

    /// `proxy_continue_stream`/`proxy_close_stream` calls (`"continue 0"`, …) and how many
    /// times the module called `proxy_done`.
    pub fn stream_actions(&self) -> (&[String], u32) {
        let s = self.store.data();
        (&s.stream_actions, s.done_called)
    }

    /// The status `proxy_get_status` reports (gRPC/HTTP call status code and message).
    pub fn set_call_status(&mut self, code: u32, message: &str) {
        self.store.data_mut().call_status = (code, message.to_string());
    }

    /// The current root context id (1, until [`WasmHost::reconfigure_on_new_root`]).
    pub fn root_context(&self) -> u32 {
        self.root
    }

    /// Delivers `proxy_on_queue_ready` for every enqueue (by any VM of the process, or by the
    /// test through [`Shared::enqueue_to`]) to a queue this VM registered last, on the root
    /// context that registered it; returns how many were delivered. Envoy posts these to the
    /// registering worker's event loop; here the test decides when that loop runs.
    pub fn deliver_queue_ready(&mut self) -> usize {
        let me = self.store.data().instance;
        let mine: Vec<(u32, u32)> = {
            let mut shared = self.shared();
            let (mine, others): (Vec<_>, Vec<_>) = std::mem::take(&mut shared.ready)
                .into_iter()
                .partition(|(vm, _, _)| *vm == me);
            shared.ready = others;
            mine.into_iter().map(|(_, root, id)| (root, id)).collect()
        };
        if !mine.is_empty() && !self.has_export("proxy_on_queue_ready") {
            panic!(
                "a queue of this VM is ready but the module does not export proxy_on_queue_ready"
            );
        }
        for (root, id) in &mine {
            self.store.data_mut().effective_context = *root;
            self.must(
                "proxy_on_queue_ready",
                &[Val::I32(*root as i32), Val::I32(*id as i32)],
            );
        }
        self.store.data_mut().effective_context = self.root;
        mine.len()
    }

    /// Applies a new plugin configuration the way Envoy applies an ECDS (or listener) update
    /// to a running VM: a new root context (`on_context_create`, `on_vm_start`,
    /// `on_configure`) serves the requests from then on, and the old root gets `on_done` and
    /// `on_delete`. When the new root rejects the configuration it is deleted instead and the
    /// old one stays in force (Envoy rejects the update). Returns `on_configure`'s answer.
    pub fn reconfigure_on_new_root(&mut self, plugin_configuration: &str) -> bool {
        let (old, new) = (self.root, self.next_context);
        self.next_context += 1;
        let s = self.store.data_mut();
        s.live_contexts.push(new);
        s.effective_context = new;
        self.must(
            "proxy_on_context_create",
            &[Val::I32(new as i32), Val::I32(0)],
        );
        let size = self.store.data().vm_configuration.len() as i32;
        let started = self.must("proxy_on_vm_start", &[Val::I32(new as i32), Val::I32(size)]);
        self.root = new;
        let accepted = started != Some(0) && self.configure(plugin_configuration);
        let retired = if accepted { old } else { new };
        self.root = if accepted { new } else { old };
        self.store.data_mut().effective_context = retired;
        self.must("proxy_on_done", &[Val::I32(retired as i32)]);
        self.must("proxy_on_delete", &[Val::I32(retired as i32)]);
        let s = self.store.data_mut();
        s.live_contexts.retain(|c| *c != retired);
        s.effective_context = self.root;
        accepted
    }
}

impl HostState {
    fn new(vm_id: &str, shared: Arc<Mutex<Shared>>) -> HostState {
        static NEXT_INSTANCE: AtomicU64 = AtomicU64::new(1);
        HostState {
            vm_id: vm_id.to_string(),
            instance: NEXT_INSTANCE.fetch_add(1, Ordering::Relaxed),
            shared,
            now_nanos: 1_700_000_000_000_000_000,
            log_level: LogLevel::Trace,
            logs: Vec::new(),
            echo_logs: false,
            maps: Default::default(),
            request_body: Vec::new(),
            response_body: Vec::new(),
            http_call_body: Vec::new(),
            vm_configuration: Vec::new(),
            plugin_configuration: Vec::new(),
            properties: BTreeMap::new(),
            metrics: Vec::new(),
            local_response: None,
            foreign_functions: vec!["clear_route_cache".to_string()],
            foreign_calls: Vec::new(),
            tick_period_ms: 0,
            http_calls: Vec::new(),
            next_token: 0,
            known_clusters: Vec::new(),
            effective_context: 1,
            live_contexts: Vec::new(),
            stream_actions: Vec::new(),
            done_called: 0,
            call_status: (0, String::new()),
            host_calls: BTreeMap::new(),
            random: 0x2545_f491_4f6c_dd1d,
        }
    }
}

fn own(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
