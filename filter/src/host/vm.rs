//! The VM's state: root contexts (one per plugin configuration) with the table in force and,
//! with a `source`, their fetch state; HTTP streams with the table they started with; the VM's
//! random numbers. Data, its context bookkeeping and the one accessor ([`with_vm`]); the flows
//! that change it are `configure`, `stream` (requests) and `updates` (table fetching).
//!
//! Each stream keeps an `Rc` of the table its root had when the stream started, so a
//! reconfiguration or a table update never changes routing under a request in flight.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;

use rustc_hash::FxHashMap;

use super::abi::{self, LogLevel};
use super::config::{Passthrough, PluginConfig};
use super::envoy::Contract;
use super::fetch::{Fetch, Keys};
use super::stats::{record_applied, Metrics};
use crate::router::{Destination, Router};

/// The Envoy side of one configuration, with or without a table: the mirror slots the bootstrap
/// declares and where unrouted destinations go.
pub(super) struct Egress {
    mirror_slots: u8,
    passthrough: Passthrough,
}

impl Egress {
    fn new(config: &PluginConfig) -> Egress {
        Egress {
            mirror_slots: config.mirror_slots,
            passthrough: config.passthrough(),
        }
    }

    /// The contract for a request to `to` (its original destination, when known).
    pub(super) fn contract(&self, to: Option<Destination>) -> Contract<'_> {
        Contract {
            mirror_slots: self.mirror_slots,
            passthrough_cluster: self
                .passthrough
                .cluster_for(to.map(|d| SocketAddr::new(d.ip, d.port))),
        }
    }
}

/// A table in force: the compiled router and the Envoy-side settings.
pub(super) struct Loaded {
    pub(super) router: Router,
    pub(super) listener_port: Option<u16>,
    pub(super) egress: Rc<Egress>,
    pub(super) mesh: bool,
    pub(super) rule_stats: bool,
    pub(super) metrics: RefCell<Metrics>,
}

impl Loaded {
    pub(super) fn new(config: &PluginConfig, router: Router) -> Loaded {
        Loaded {
            mesh: router.table().role.starts_with("mesh/"),
            router,
            listener_port: config.listener_port,
            egress: Rc::new(Egress::new(config)),
            rule_stats: config.rule_stats,
            metrics: RefCell::new(Metrics::default()),
        }
    }
}

/// How a mesh sidecar handles requests before its first table: it leaves them to default Service
/// routing ([`Passthrough`]) and counts them. Gateways have none and answer 503.
#[derive(Clone)]
pub(super) struct Transparent {
    pub(super) egress: Rc<Egress>,
    /// Requests passed untouched for lack of a table in this root context (logged when the first
    /// table arrives).
    pub(super) untouched: Rc<Cell<u64>>,
}

impl Transparent {
    /// For a configuration of a mesh role; `None` for a gateway.
    pub(super) fn new(config: &PluginConfig) -> Option<Transparent> {
        config.is_mesh().then(|| Transparent {
            egress: Rc::new(Egress::new(config)),
            untouched: Rc::new(Cell::new(0)),
        })
    }
}

#[derive(Default)]
pub(super) struct Root {
    /// `None` until a table is accepted: requests then get 503, or pass untouched (`transparent`).
    pub(super) loaded: Option<Rc<Loaded>>,
    /// Mesh roles: what requests get while `loaded` is `None`.
    pub(super) transparent: Option<Transparent>,
    /// Present when the configuration has a `source`.
    pub(super) dynamic: Option<Dynamic>,
}

impl Root {
    /// Swaps in a new table; streams already started keep the old one.
    pub(super) fn install(&mut self, loaded: Loaded) {
        if let Some(t) = &self.transparent {
            if self.loaded.is_none() && t.untouched.get() > 0 {
                abi::log(
                    LogLevel::Info,
                    &format!(
                        "gammaroute: {} requests passed untouched to default Service routing before the first table",
                        t.untouched.get()
                    ),
                );
            }
        }
        abi::log(
            LogLevel::Info,
            &format!(
                "gammaroute: table {} version {} loaded ({} routes)",
                loaded.router.table().role,
                loaded.router.version(),
                loaded.router.table().routes.len()
            ),
        );
        record_applied(loaded.router.version());
        self.loaded = Some(Rc::new(loaded));
    }
}

pub(super) struct Stream {
    pub(super) loaded: Option<Rc<Loaded>>,
    /// Set when `loaded` is `None` and the role is a mesh one.
    pub(super) transparent: Option<Transparent>,
    /// Response header edits decided on the request path.
    pub(super) response: Vec<(Op, String, String)>,
}

#[derive(Clone, Copy)]
pub(super) enum Op {
    Set,
    Add,
    Remove,
}

#[derive(Default)]
pub(super) struct Vm {
    pub(super) roots: FxHashMap<u32, Root>,
    pub(super) streams: FxHashMap<u32, Stream>,
    /// Fetch calls in flight: token → root context.
    pub(super) calls: FxHashMap<u32, u32>,
    /// This VM's number in the process (from shared data), for the fetcher lease.
    pub(super) number: Option<u64>,
    /// xorshift64 state for weighted picks, mirror sampling and back-off jitter, seeded from the
    /// clock.
    pub(super) rng: u64,
}

impl Vm {
    /// `proxy_on_context_create`: a root context (`parent` 0) starts without a table; an HTTP
    /// stream takes its root's table in force, which it keeps to the end.
    pub(super) fn create_context(&mut self, context: u32, parent: u32) {
        if parent == 0 {
            self.roots.entry(context).or_default();
        } else {
            let root = self.roots.get(&parent);
            let loaded = root.and_then(|r| r.loaded.clone());
            let transparent = match loaded {
                Some(_) => None,
                None => root.and_then(|r| r.transparent.clone()),
            };
            self.streams.insert(
                context,
                Stream {
                    loaded,
                    transparent,
                    response: Vec::new(),
                },
            );
        }
    }

    /// `proxy_on_delete`: forgets a stream, or else the root context of that id.
    pub(super) fn delete_context(&mut self, context: u32) {
        if self.streams.remove(&context).is_none() {
            self.roots.remove(&context);
        }
    }
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

/// The dynamic half of a root context (one with a `source`): its fetch state, driven by
/// `updates`.
pub(super) struct Dynamic {
    pub(super) config: Rc<PluginConfig>,
    pub(super) keys: Keys,
    pub(super) fetch: Fetch,
    /// Lease holder id: this VM's number and the root context id.
    pub(super) holder: u64,
    pub(super) proxy_id: String,
    /// A version read from shared data that failed to compile here (not retried until it changes).
    pub(super) refused: String,
    /// The tick period set now (`updates::FIRST_TICK_MS`, then at most
    /// `updates::NO_TABLE_TICK_MAX_MS` until a table is in force, then `tickMs`); the fetcher
    /// lease lasts 8 of them.
    pub(super) period_ms: u32,
}

/// xorshift64: the VM's cheap random numbers (weighted picks, mirror sampling, back-off jitter).
pub(super) fn next_draw(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    x
}
