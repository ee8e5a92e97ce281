//! Table updates in the VM: the host side of [`super::fetch`].
//!
//! On every tick a root context with a `source` (1) picks up a table another VM published in
//! shared data, (2) takes or renews the fetcher lease, and (3) if it holds the lease, starts a
//! fetch when one is due. A fetch response is validated and compiled here, then published for
//! the other VMs, which are woken through their shared queues ([`super::wakeup`]) rather than
//! left to their next tick. Every host failure is logged and retried on a later tick; none
//! stops routing with the table in force.

use std::rc::Rc;

use super::abi::{self, Buffer, LogLevel, Map, Status};
use super::config::PluginConfig;
use super::fetch::{self, CallResponse, Fetch, Fetched, Keys, Lease};
use super::stats::{count, record_confirmed};
use super::vm::{next_draw, Dynamic, Loaded, Root, Vm};
use super::wakeup::{self, Listeners};
use crate::metrics::{self, FetchResult};
use crate::table::{self, wire};

/// The first tick's delay. The first fetch cannot start in `on_configure`: Envoy configures a VM
/// on its main thread that never ticks and whose calls are never answered (observed on 1.40: a
/// call dispatched there stayed unanswered, and its fetcher lease blocked the other VMs until it
/// expired), so it starts on the first tick, which comes this soon rather than `tickMs` later.
pub(super) const FIRST_TICK_MS: u32 = 20;

/// Until a table is in force, ticks come at least this often (then every `tickMs`): a first fetch
/// that failed is retried on its back-off, not a long `tickMs` later.
pub(super) const NO_TABLE_TICK_MAX_MS: u32 = 250;

/// Why fetching cannot start: the configuration is rejected.
#[derive(Debug, thiserror::Error)]
pub(super) enum StartError {
    #[error("the host refused a tick period (status {})", .0 .0)]
    TickRefused(abi::Status),
}

/// Sets up fetching for a root context being configured: the tick, the lease identity, and the
/// newest table already in shared data (a VM that starts or restarts after the others does not
/// serve an older table, or 503, until its first tick).
pub(super) fn start(
    vm: &mut Vm,
    root: u32,
    state: &mut Root,
    config: PluginConfig,
) -> Result<(), StartError> {
    let Some(source) = &config.source else {
        return Ok(());
    };
    let first_period = source.tick_ms.min(FIRST_TICK_MS);
    abi::set_tick_period(first_period).map_err(StartError::TickRefused)?;
    let number = vm_number(vm);
    let proxy_id = match &source.proxy_id {
        Some(id) => id.clone(),
        None => node_id(),
    };
    let mut fetch = Fetch::default();
    if let Some(inline) = &state.loaded {
        // config-pusher need not send the table this proxy started with again.
        fetch.applied(inline.router.version());
    }
    let keys = Keys::new(&source.role);
    state.dynamic = Some(Dynamic {
        keys,
        config: Rc::new(config),
        fetch,
        holder: (number << 32) | u64::from(root),
        proxy_id,
        refused: String::new(),
        period_ms: first_period,
        queue: None,
        announced_ms: 0,
    });
    if let Some(dynamic) = state.dynamic.as_mut() {
        listen(dynamic);
    }
    sync(state);
    Ok(())
}

/// Registers this root's wake-up queue and lists it ([`wakeup`]). A host that refuses queues
/// leaves the VM to its tick.
fn listen(dynamic: &mut Dynamic) {
    let Some(source) = dynamic.config.source.as_ref().filter(|s| s.push_updates) else {
        return;
    };
    let name = wakeup::queue_name(&source.role, dynamic.holder);
    match abi::register_shared_queue(&name) {
        Ok(queue) => {
            dynamic.queue = Some(queue);
            announce(dynamic, now_ms().unwrap_or(0));
        }
        Err(s) => abi::log(
            LogLevel::Warn,
            &format!(
                "gammaroute: the host refused shared queue {name:?} (status {}); new tables reach this worker on its tick",
                s.0
            ),
        ),
    }
}

/// Adds or refreshes this root's entry in the wake-up registry (with CAS, a few tries: every
/// VM of the process writes the same key). Best effort: a VM missing from it is woken by its
/// tick.
fn announce(dynamic: &mut Dynamic, now: u64) {
    let Some(queue) = dynamic.queue else { return };
    let Some(tick_ms) = dynamic.config.source.as_ref().map(|s| s.tick_ms) else {
        return;
    };
    if dynamic.announced_ms != 0
        && now.saturating_sub(dynamic.announced_ms) < wakeup::listener_refresh_ms(tick_ms)
    {
        return;
    }
    for _ in 0..4 {
        let (current, cas) = match abi::shared_data(&dynamic.keys.listeners) {
            Ok(Some((bytes, cas))) => (Listeners::parse(&bytes), cas),
            Ok(None) => (Listeners::default(), 0),
            Err(_) => return,
        };
        let Some(next) = current.refreshed(queue, now, tick_ms) else {
            dynamic.announced_ms = now;
            return;
        };
        if abi::set_shared_data(&dynamic.keys.listeners, next.encode().as_bytes(), cas).is_ok() {
            dynamic.announced_ms = now;
            return;
        }
    }
}

/// After publishing `version`: one enqueue per other listening VM of the role. A queue that is
/// gone (`NotFound`) is skipped; its entry expires.
fn wake_others(dynamic: &Dynamic, version: &str, now: u64) {
    let Some(source) = dynamic.config.source.as_ref() else {
        return;
    };
    if !source.push_updates {
        return;
    }
    let listeners = match abi::shared_data(&dynamic.keys.listeners) {
        Ok(Some((bytes, _))) => Listeners::parse(&bytes),
        _ => return,
    };
    for queue in listeners.to_wake(dynamic.queue, now, source.tick_ms) {
        if let Err(s) = abi::enqueue_shared_queue(queue, version.as_bytes()) {
            if s != Status::NOT_FOUND {
                abi::log(
                    LogLevel::Warn,
                    &format!(
                        "gammaroute: cannot wake the worker listening on queue {queue} (host status {}); it picks version {version} up on its tick",
                        s.0
                    ),
                );
            }
        }
    }
}

/// `proxy_on_queue_ready`: another VM published a table. The queue is drained (its items only
/// say "look"), then the root reads shared data as on a tick.
pub(super) fn woken(vm: &mut Vm, root: u32, queue: u32) {
    // Bounded: a flood of wake-ups must not hold the worker; one read covers them all.
    for _ in 0..64 {
        match abi::dequeue_shared_queue(queue) {
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    if let Some(state) = vm.roots.get_mut(&root) {
        sync(state);
    }
}

/// One tick of a root context.
pub(super) fn tick(vm: &mut Vm, root: u32) {
    let Some(now) = now_ms() else { return };
    let draw = next_draw(&mut vm.rng);
    let Some(state) = vm.roots.get_mut(&root) else {
        return;
    };
    sync(state);
    let no_table = state.loaded.is_none();
    let Some(dynamic) = state.dynamic.as_mut() else {
        return;
    };
    announce(dynamic, now);
    let Some(source) = dynamic.config.source.as_ref() else {
        return;
    };
    // FIRST_TICK_MS once, then at most NO_TABLE_TICK_MAX_MS until a table is in force, then tickMs.
    let period = match no_table {
        true => source.tick_ms.min(NO_TABLE_TICK_MAX_MS),
        false => source.tick_ms,
    };
    if dynamic.period_ms != period {
        match abi::set_tick_period(period) {
            Ok(()) => dynamic.period_ms = period,
            Err(s) => abi::log(
                LogLevel::Warn,
                &format!(
                    "gammaroute: the host refused tick period {period} ms (status {}); retrying on the next tick",
                    s.0
                ),
            ),
        }
    }
    if !hold_lease(dynamic, now, dynamic.period_ms) || !dynamic.fetch.due(source, now) {
        return;
    }
    if let Some(attempt) = take_attempt(&dynamic.keys) {
        // The previous fetcher trapped on this table (see `fetch::Attempt`).
        dynamic.fetch.trapped(&attempt, now, draw);
        rejected(
            source,
            &attempt.version,
            "a worker VM trapped while decoding or compiling it",
        );
        return;
    }
    let headers =
        dynamic
            .fetch
            .request_headers(source, state_version(&state.loaded), &dynamic.proxy_id);
    match abi::dispatch_http_call(&source.cluster, &headers, Fetch::timeout_ms(source)) {
        Ok(token) => {
            dynamic.fetch.started(token, now);
            vm.calls.insert(token, root);
        }
        Err(status) => {
            dynamic.fetch.dispatch_failed(now, draw);
            abi::log(
                LogLevel::Warn,
                &format!(
                    "gammaroute: cannot call config-pusher through cluster {:?} (host status {}{}); retrying in {} ms",
                    source.cluster,
                    status.0,
                    if status == Status(2) { ": no such cluster" } else { "" },
                    dynamic.fetch.wait_ms(now)
                ),
            );
            count(&metrics::table_fetches(FetchResult::Failed));
        }
    }
}

fn state_version(loaded: &Option<Rc<Loaded>>) -> &str {
    loaded.as_ref().map_or("", |l| l.router.version())
}

/// A fetch answered (or failed).
pub(super) fn response(vm: &mut Vm, token: u32, headers: usize, body_size: usize) {
    let Some(root) = vm.calls.remove(&token) else {
        return;
    };
    let Some(now) = now_ms() else { return };
    let draw = next_draw(&mut vm.rng);
    let Some(state) = vm.roots.get_mut(&root) else {
        return;
    };
    let Some(dynamic) = state.dynamic.as_mut() else {
        return;
    };
    if dynamic.fetch.in_flight != Some(token) {
        return;
    }
    let config = Rc::clone(&dynamic.config);
    let Some(source) = config.source.as_ref() else {
        return;
    };
    let response_headers = if headers == 0 {
        Vec::new()
    } else {
        abi::headers(Map::HttpCallResponse).unwrap_or_default()
    };
    let call = CallResponse::from_headers(&response_headers, body_size);
    let etag = call.etag;
    let generation = call.generation;
    match dynamic.fetch.on_response(source, call, now, draw) {
        Fetched::NotModified => {
            count(&metrics::table_fetches(FetchResult::NotModified));
            record_confirmed();
        }
        Fetched::Older { generation } => {
            abi::log(
                LogLevel::Info,
                &format!(
                    "gammaroute: config-pusher sent table {} of generation {generation}, older than the one in force (a replica that lags?): keeping version {:?}",
                    source.role,
                    state_version(&state.loaded),
                ),
            );
            count(&metrics::table_fetches(FetchResult::Older));
        }
        Fetched::Failed(message) => {
            abi::log(
                LogLevel::Warn,
                &format!(
                    "gammaroute: fetching table {} failed: {message}; keeping version {:?}, retrying in {} ms",
                    source.role,
                    state_version(&state.loaded),
                    dynamic.fetch.wait_ms(now)
                ),
            );
            count(&metrics::table_fetches(FetchResult::Failed));
        }
        Fetched::Refused { version, message } => rejected(source, &version, &message),
        // The lease may have passed to another VM during the long-poll (this one stalled past
        // its expiry); that VM publishes now, and a table from here could be older than its.
        Fetched::Table { .. } if !hold_lease(dynamic, now, dynamic.period_ms) => superseded(source),
        Fetched::Table { proto } => {
            // What is published now: publishing later is a CAS over it, so a fetcher that
            // stalled while compiling cannot overwrite what another published meanwhile.
            let published = Published::read(&dynamic.keys);
            set_attempt(&dynamic.keys, etag.unwrap_or_default());
            let accepted = accept(&config, body_size, proto);
            clear_attempt(&dynamic.keys);
            match accepted {
                Ok((loaded, encoded)) => {
                    let version = loaded.router.version().to_string();
                    count(&metrics::table_fetches(FetchResult::Ok));
                    // Decoding and compiling a large table can outlast the lease.
                    let now = now_ms().unwrap_or(now);
                    if still_holds(dynamic, now)
                        && publish(
                            dynamic,
                            published,
                            &version,
                            generation.unwrap_or(0),
                            &encoded,
                        )
                    {
                        // Only a table in force is named in `If-None-Match`: had a table that
                        // was not installed been marked applied, the next long-poll would wait
                        // for a change after it while this VM routes by the older one.
                        dynamic.fetch.applied(&version);
                        dynamic.fetch.applied_generation(generation.unwrap_or(0));
                        wake_others(dynamic, &version, now);
                        state.install(loaded);
                    } else {
                        superseded(source);
                    }
                }
                Err((version, message)) => {
                    let version = fetch::refused_version(version, etag);
                    dynamic.fetch.rejected(&version, &message, now, draw);
                    rejected(source, &version, &message);
                }
            }
        }
    }
    // Long-poll again at once rather than on the next tick (when due: not after a rejection or
    // a failure, which back off).
    tick(vm, root);
}

/// Parses, checks and compiles a fetched table (once: see [`PluginConfig::compile`]). Returns the table in force and its protobuf
/// encoding (what other VMs read), or the version (if known) and why it was refused.
fn accept(
    config: &PluginConfig,
    body_size: usize,
    proto: bool,
) -> Result<(Loaded, Vec<u8>), (String, String)> {
    let body = abi::buffer(Buffer::HttpCallResponseBody, body_size).map_err(|s| {
        (
            String::new(),
            format!("cannot read the response body (host status {})", s.0),
        )
    })?;
    // Parsed only: `compile` checks the version and the table, once.
    let decoded = if proto {
        table::parse_proto(&body)
    } else {
        table::parse_json(&body)
    };
    let table = decoded.map_err(|e| (String::new(), e.to_string()))?;
    let version = table.version.clone();
    let encoded = if proto {
        body
    } else {
        prost::Message::encode_to_vec(&table)
    };
    let router = config
        .compile(table)
        .map_err(|e| (version, e.to_string()))?;
    Ok((Loaded::new(config, router), encoded))
}

fn rejected(source: &super::config::SourceConfig, version: &str, message: &str) {
    abi::log(
        LogLevel::Error,
        &format!(
            "gammaroute: table {} version {version:?} rejected, the table in force stays: {message}",
            source.role
        ),
    );
    count(metrics::TABLE_REJECTED);
}

fn superseded(source: &super::config::SourceConfig) {
    abi::log(
        LogLevel::Info,
        &format!(
            "gammaroute: another worker fetches table {} now; dropping the answer to this worker's earlier fetch",
            source.role
        ),
    );
    count(&metrics::table_fetches(FetchResult::Superseded));
}

/// The CAS tokens of the published generation, table and version keys, read before a fetched table is
/// compiled (0 when a key is not there yet, or cannot be read: then the write is unconditional).
#[derive(Clone, Copy)]
struct Published {
    generation_cas: u32,
    table_cas: u32,
    version_cas: u32,
}

impl Published {
    fn read(keys: &Keys) -> Published {
        let cas = |key: &str| match abi::shared_data(key) {
            Ok(Some((_, cas))) => cas,
            _ => 0,
        };
        Published {
            generation_cas: cas(&keys.generation),
            table_cas: cas(&keys.table),
            version_cas: cas(&keys.version),
        }
    }
}

/// Writes a table for the other VMs: its generation and the table first, then its version
/// (readers go by the version key), each with CAS against what was there before compiling. False when another
/// VM published in between (CAS mismatch) or the host refused the write: then this table is
/// not the newest and is not installed either.
fn publish(
    dynamic: &Dynamic,
    published: Published,
    version: &str,
    generation: u64,
    encoded: &[u8],
) -> bool {
    let generation = generation.to_string();
    let written = abi::set_shared_data(
        &dynamic.keys.generation,
        generation.as_bytes(),
        published.generation_cas,
    )
    .and_then(|()| abi::set_shared_data(&dynamic.keys.table, encoded, published.table_cas))
    .and_then(|()| {
        abi::set_shared_data(
            &dynamic.keys.version,
            version.as_bytes(),
            published.version_cas,
        )
    });
    match written {
        Ok(()) => true,
        Err(s) => {
            abi::log(
                LogLevel::Warn,
                &format!(
                    "gammaroute: table version {version} not published in shared data (host status {}{})",
                    s.0,
                    if s == Status(8) { ": another worker published meanwhile" } else { "" }
                ),
            );
            false
        }
    }
}

/// Whether this root still holds the fetcher lease (read, not renewed).
fn still_holds(dynamic: &Dynamic, now: u64) -> bool {
    match abi::shared_data(&dynamic.keys.lease) {
        Ok(Some((bytes, _))) => fetch::holds(Lease::parse(&bytes).as_ref(), dynamic.holder, now),
        _ => false,
    }
}

/// Records the table about to be decoded and compiled ([`fetch::Attempt`]). A failed write
/// only loses the trap protection, so it is logged.
fn set_attempt(keys: &Keys, etag: &str) {
    let attempt = fetch::Attempt {
        version: etag.to_string(),
    };
    if let Err(s) = abi::set_shared_data(&keys.attempt, attempt.encode().as_bytes(), 0) {
        abi::log(
            LogLevel::Warn,
            &format!(
                "gammaroute: cannot record the table being compiled (host status {})",
                s.0
            ),
        );
    }
}

fn clear_attempt(keys: &Keys) {
    if let Err(s) = abi::set_shared_data(&keys.attempt, b"", 0) {
        abi::log(
            LogLevel::Warn,
            &format!(
                "gammaroute: cannot clear the table being compiled (host status {})",
                s.0
            ),
        );
    }
}

/// An attempt left by a VM that trapped, cleared so that it is acted on once.
fn take_attempt(keys: &Keys) -> Option<fetch::Attempt> {
    let (bytes, cas) = abi::shared_data(&keys.attempt).ok().flatten()?;
    let attempt = fetch::Attempt::parse(&bytes)?;
    // With CAS: of several VMs that find it, one acts.
    abi::set_shared_data(&keys.attempt, b"", cas).ok()?;
    Some(attempt)
}

/// Picks up the version published in shared data, if it is not the one in force.
fn sync(state: &mut Root) {
    let Some(dynamic) = state.dynamic.as_mut() else {
        return;
    };
    let published = match abi::shared_data(&dynamic.keys.version) {
        Ok(Some((bytes, _))) => String::from_utf8(bytes).unwrap_or_default(),
        Ok(None) => return,
        Err(s) => {
            abi::log(
                LogLevel::Warn,
                &format!(
                    "gammaroute: reading shared data failed (host status {})",
                    s.0
                ),
            );
            return;
        }
    };
    if !fetch::should_sync(&published, state_version(&state.loaded), &dynamic.refused) {
        return;
    }
    let table = match abi::shared_data(&dynamic.keys.table) {
        Ok(Some((bytes, _))) => table::parse_proto(&bytes).map_err(|e| e.to_string()),
        Ok(None) => Err("the table key is missing".to_string()),
        Err(s) => Err(format!("host status {}", s.0)),
    };
    match table.and_then(|t: wire::RouteTable| dynamic.config.compile(t).map_err(|e| e.to_string()))
    {
        Ok(router) => {
            dynamic.fetch.applied(router.version());
            // Read after the version: a VM that fetches later must not go below it.
            if let Ok(Some((bytes, _))) = abi::shared_data(&dynamic.keys.generation) {
                let generation = std::str::from_utf8(&bytes)
                    .ok()
                    .and_then(|g| g.parse().ok());
                dynamic.fetch.applied_generation(generation.unwrap_or(0));
            }
            let loaded = Loaded::new(&dynamic.config, router);
            state.install(loaded);
        }
        Err(message) => {
            abi::log(
                LogLevel::Error,
                &format!(
                    "gammaroute: table version {published} from shared data refused, the table in force stays: {message}"
                ),
            );
            count(metrics::TABLE_REJECTED);
            dynamic.refused = published;
        }
    }
}

/// Takes or renews the fetcher lease with CAS; true while this root holds it.
fn hold_lease(dynamic: &Dynamic, now: u64, tick_ms: u32) -> bool {
    let (current, cas) = match abi::shared_data(&dynamic.keys.lease) {
        Ok(Some((bytes, cas))) => (Lease::parse(&bytes), cas),
        Ok(None) => (None, 0),
        Err(_) => return false,
    };
    let Some(next) = fetch::lease_step(current.as_ref(), dynamic.holder, now, tick_ms) else {
        return false;
    };
    abi::set_shared_data(&dynamic.keys.lease, next.encode().as_bytes(), cas).is_ok()
}

/// This VM's number in the process: a shared counter incremented with CAS, once per VM.
fn vm_number(vm: &mut Vm) -> u64 {
    if let Some(n) = vm.number {
        return n;
    }
    for _ in 0..16 {
        let (current, cas) = match abi::shared_data(fetch::VM_SEQUENCE_KEY) {
            Ok(Some((bytes, cas))) => (
                std::str::from_utf8(&bytes)
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                    .unwrap_or(0),
                cas,
            ),
            Ok(None) => (0, 0),
            Err(_) => break,
        };
        let next = current.wrapping_add(1);
        if abi::set_shared_data(fetch::VM_SEQUENCE_KEY, next.to_string().as_bytes(), cas).is_ok() {
            vm.number = Some(next);
            return next;
        }
    }
    // No shared counter: the clock is unique enough between VMs of one process.
    let fallback = abi::now_nanos().unwrap_or(0) & 0x7fff_ffff;
    vm.number = Some(fallback);
    fallback
}

/// Envoy's `node.id` (`--service-node`): the `xds.node` attribute in current Envoy, `node` in
/// older ones.
fn node_id() -> String {
    for path in [&["xds", "node", "id"][..], &["node", "id"][..]] {
        if let Ok(Some(id)) = abi::property(path) {
            if !id.is_empty() {
                return String::from_utf8_lossy(&id)
                    .chars()
                    .map(|c| if c.is_ascii_graphic() { c } else { '_' })
                    .collect();
            }
        }
    }
    "unknown".to_string()
}

fn now_ms() -> Option<u64> {
    abi::now_nanos().ok().map(|n| n / 1_000_000)
}
