//! The routing engine: index a checked table ([`crate::table::ValidTable`]) once, then turn each
//! request into a [`Decision`].
//!
//! Selection works in three indexed steps, never scanning every route:
//! 1. **parent** — the listener (by destination port, then Host: exact > longest wildcard > none;
//!    listener isolation) or the mesh Service port (by destination ClusterIP:port);
//! 2. **hostname group** — the parent's attachments grouped by effective hostname, visited from the
//!    most specific hostname matching the Host (exact, then wildcards longest first, then "any");
//! 3. **path index** inside a group — exact-path map, segment trie for prefixes (regex paths
//!    whose leading literal names a directory wait at that directory's node), and a short list
//!    of the other regex paths; their candidate lists are each sorted by rank and merged, so the
//!    first candidate whose conditions hold is the lowest rank that matches.
//!
//! The first group with a match wins: Gateway API ranks hostname specificity above every match
//! criterion ("the largest number of characters in a matching non-wildcard hostname", then "in a
//! matching hostname"), and config-pusher's `rank` orders the rest.
//!
//! Everything after selection — filters, weighted pick, redirects, CORS — is in [`decision`], shared
//! with the naive [`reference`] router that the differential test compares against.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use rustc_hash::FxHashMap;

use crate::table::{CheckedMatch, CorsOrigins, RouteTable, TableError, ValidTable};

pub mod cors;
pub mod decision;
mod host;
mod matcher;
mod owned;
mod path;
pub mod reference;
pub mod request;
pub mod rewrite;

pub use decision::{Decision, Forward, HeaderOp, LocalReason, LocalResponse, Outcome};
pub use owned::OwnedRequest;
pub use request::{Destination, Request};

use host::HostIndex;
use path::PathIndex;

/// Which parent of the table served a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParentRef {
    /// Index into [`RouteTable::listeners`].
    Listener(u32),
    /// Indexes into [`RouteTable::services`] and that service's `ports`.
    ServicePort { service: u32, port: u32 },
}

/// A matched entry: all positions are indexes into the table's lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Selected {
    pub parent: ParentRef,
    /// Index into [`RouteTable::routes`].
    pub route: u32,
    /// Position in the route's `rules` (not the HTTPRoute rule index, see [`crate::table::Rule::index`]).
    pub rule: u32,
    /// Position in the rule's `matches`.
    pub matched: u32,
}

/// What selection found for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Selection {
    /// No listener or Service of this table serves the destination (and Host, for listeners).
    NoParent,
    /// A parent serves the request but none of its routes match: 404.
    NoMatch(ParentRef),
    /// The request's Host belongs to another listener (or to none) than the listener its TLS
    /// connection was established for, by SNI: 421 Misdirected Request. The parent is the
    /// connection's listener. A client that coalesced HTTP/2 connections for names sharing a
    /// certificate or an address must retry on a new connection; serving it here would bypass the
    /// other listener's certificate and routes (Gateway API `HTTPRouteHTTPSListenerDetectMisdirectedRequests`,
    /// RFC 9110 §15.5.20, RFC 9113 §9.1.1).
    Misdirected(ParentRef),
    Matched(Selected),
}

/// A compiled table, ready to route. Immutable: a new table means a new `Router`, so requests in
/// flight keep the one they started with.
#[derive(Debug)]
pub struct Router {
    table: RouteTable,
    /// Listener indexes by port, each port's listeners indexed by hostname.
    listeners: FxHashMap<u16, HostIndex<u32>>,
    /// The ports with several listeners ([`Router::has_shared_ports`]).
    shared_ports: rustc_hash::FxHashSet<u16>,
    /// Mesh service ports by (ClusterIP, port).
    services: FxHashMap<(IpAddr, u16), (u32, u32)>,
    /// Hostname groups of each listener, then of each service port, in [`Router::parent_slot`] order.
    groups: Vec<HostIndex<PathIndex>>,
    /// First slot of service ports in `groups` (listeners come first), per service.
    service_slots: Vec<usize>,
    /// Every compiled match of the table, in table order.
    matches: Vec<CheckedMatch>,
    /// The path indexes' entries, numbered per attachment: each is a position in `matches`.
    entries: Vec<u32>,
    /// Every CORS filter's origins, parsed when the table was checked.
    origins: CorsOrigins,
    /// Values that were too long to run a regex against (they did not match), since the last
    /// [`Router::take_oversized_regex_inputs`]. A statistic for the host to publish, never read
    /// by routing, so the router stays immutable in every way that matters.
    oversized_regex_inputs: AtomicU64,
}

impl Router {
    /// Checks and compiles a table (its `version` is taken as it is). The only error is a
    /// validation error: a checked table always compiles ([`Router::build`]).
    pub fn compile(table: RouteTable) -> Result<Router, TableError> {
        Ok(Router::build(ValidTable::try_from(table)?))
    }

    /// The table this router was compiled from.
    pub fn table(&self) -> &RouteTable {
        &self.table
    }

    /// The table's content version.
    pub fn version(&self) -> &str {
        &self.table.version
    }

    /// Routes one request. `draw` is a random number: it picks the weighted backend and decides
    /// which mirrors fire, so tests can pin it.
    pub fn decide<'r>(&'r self, req: &Request<'_>, draw: u64) -> Decision<'r> {
        let selection = self.select(req);
        decision::build(&self.table, &self.origins, selection, req, draw)
    }

    /// Finds the parent and the highest-precedence matching entry.
    pub fn select(&self, req: &Request<'_>) -> Selection {
        let host = req.host();
        let found = self.parent(req, &host);
        if let Some(connection) = self.misdirected(req, found.map(|(p, _)| p)) {
            return Selection::Misdirected(connection);
        }
        let Some((parent, slot)) = found else {
            return Selection::NoParent;
        };
        let Some(groups) = self.groups.get(slot) else {
            return Selection::NoParent;
        };
        let path = req.path_only();
        for group in groups.lookup(&host) {
            let found = group.find(path, &self.entries, |&e| {
                self.matches
                    .get(e as usize)
                    .is_some_and(|m| matcher::matches(m, req, &self.oversized_regex_inputs))
            });
            if let Some(entry) = found.and_then(|&e| self.matches.get(e as usize)) {
                return Selection::Matched(Selected {
                    parent,
                    route: entry.route,
                    rule: entry.rule,
                    matched: entry.matched,
                });
            }
        }
        Selection::NoMatch(parent)
    }

    /// How many values were too long for a regex since the last call (see
    /// [`crate::table::regex::MAX_INPUT_LEN`]), and resets the count.
    pub fn take_oversized_regex_inputs(&self) -> u64 {
        self.oversized_regex_inputs.swap(0, Ordering::Relaxed)
    }

    fn parent(&self, req: &Request<'_>, host: &str) -> Option<(ParentRef, usize)> {
        let dest = req.destination;
        if let Some(&(service, port)) = self.services.get(&(dest.ip, dest.port)) {
            let slot = self.service_slots.get(service as usize)? + port as usize;
            return Some((ParentRef::ServicePort { service, port }, slot));
        }
        // Listener isolation: only the most specific listener matching the Host serves it.
        let listener = *self.listeners.get(&dest.port)?.lookup(host).next()?;
        Some((ParentRef::Listener(listener), listener as usize))
    }

    /// The connection's listener when the request's listener (`by_host`) is another one. Only TLS
    /// connections with SNI are checked, and only on ports with several listeners (on a port with
    /// one listener every name reaches that listener and its certificate anyway).
    fn misdirected(&self, req: &Request<'_>, by_host: Option<ParentRef>) -> Option<ParentRef> {
        if req.server_name.is_empty() || !self.shared_ports.contains(&req.destination.port) {
            return None;
        }
        let index = self.listeners.get(&req.destination.port)?;
        let sni = request::lowercase(req.server_name);
        let connection = ParentRef::Listener(*index.lookup(&sni).next()?);
        (by_host != Some(connection)).then_some(connection)
    }

    /// Whether a gateway port has more than one listener: only then can a request reach another
    /// listener than its connection's ([`Selection::Misdirected`]), and the host needs to read
    /// the connection's SNI at all.
    pub fn has_shared_ports(&self) -> bool {
        !self.shared_ports.is_empty()
    }

    /// Indexes a checked table. Cannot fail: everything that could be wrong was checked when the
    /// [`ValidTable`] was made, and its matches are already compiled.
    pub fn build(valid: ValidTable) -> Router {
        let t = valid.table();
        let mut entries = Vec::new();
        let mut groups = Vec::new();
        let mut listeners: FxHashMap<u16, HostIndex<u32>> = FxHashMap::default();
        for (i, listener) in (0u32..).zip(&t.listeners) {
            listeners
                .entry(listener.port)
                .or_default()
                .get_or_insert_with(listener.hostname.as_deref(), || i);
            groups.push(path::compile_groups(
                &valid,
                &listener.attachments,
                &mut entries,
            ));
        }
        let mut services = FxHashMap::default();
        let mut service_slots = Vec::with_capacity(t.services.len());
        for (s, service) in (0u32..).zip(&t.services) {
            service_slots.push(groups.len());
            for (p, port) in (0u32..).zip(&service.ports) {
                for ip in &service.cluster_ips {
                    services.insert((*ip, port.port), (s, p));
                }
                groups.push(path::compile_groups(
                    &valid,
                    &port.attachments,
                    &mut entries,
                ));
            }
        }
        for index in listeners.values_mut() {
            index.shrink_to_fit();
        }
        listeners.shrink_to_fit();
        services.shrink_to_fit();
        groups.shrink_to_fit();
        entries.shrink_to_fit();
        let (table, matches, origins) = valid.into_parts();
        let mut ports = rustc_hash::FxHashSet::default();
        let shared_ports = table
            .listeners
            .iter()
            .filter(|l| !ports.insert(l.port))
            .map(|l| l.port)
            .collect();
        Router {
            table,
            listeners,
            shared_ports,
            services,
            groups,
            service_slots,
            matches,
            entries,
            origins,
            oversized_regex_inputs: AtomicU64::new(0),
        }
    }
}
