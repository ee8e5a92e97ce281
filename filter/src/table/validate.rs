//! Validation of a decoded table: everything the router relies on is checked here, so a table is
//! accepted whole or rejected whole with an error naming the offending element.
//!
//! Each check follows the Gateway API v1.6.1 validation (CRD patterns, enums and CEL rules) of the
//! field the table element is copied from, so a table config-pusher builds from API-valid objects
//! passes; a few checks go further because the router or Envoy need them, and say so. Rejecting a
//! table rejects every route in it, so config-pusher (which links this crate) runs
//! [`validate_rule`] on each rule and drops what fails before it builds a table.
//!
//! The checks keep what they compile: `check` returns every match compiled, which is what a
//! [`super::ValidTable`] carries to the router.
//!
//! Errors read well in an Envoy log: `at` is a path in the table's JSON field names with the
//! object's name next to each list index, e.g.
//! `routes[3] (shop/web).rules[0].matches[1].headers[2].name: invalid header name "x y": ...`.
//! Offending values are shown escaped and cut to [`SHOWN_VALUE_MAX`] bytes.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use rustc_hash::FxHashMap;
use thiserror::Error;

use super::checked::{CheckedMatch, CheckedValue, CorsOrigins, FilterAt, Method};
pub use super::location::SHOWN_VALUE_MAX;
use super::location::{shown, ItemLabel, Location, Step};
use super::origin::OriginPattern;
use super::{
    regex, Backend, BackendTarget, Cors, Filter, HeaderModifier, Match, MeshService, Mirror,
    PathMatch, PathModifier, Redirect, Retry, Route, RouteTable, Rule, Timeouts, UrlRewrite,
    ValueMatch,
};

/// Limits that protect the filter: each bounds memory or per-request work that a table could
/// otherwise make unbounded. Lists copied one-to-one from a single Gateway API object are capped at
/// that field's CRD `maxItems`, so an API-valid object never hits them; list lengths that
/// config-pusher may grow by merging (rules per route, matches per rule, attachments, hostnames)
/// are only bounded by the table-wide totals.
pub mod limits {
    /// Routes in one table. 100k routes are far beyond any single Gateway or namespace (a large
    /// API gateway has a few thousand paths) and keep a compiled table within tens of MB per VM.
    pub const MAX_ROUTES: usize = 100_000;
    /// Path-index entries the router builds: over every attachment, the attached route's matches
    /// times its hostnames (at least 1). An attachment is a few bytes on the wire but makes the
    /// router compile the whole route once more, so without this a small table could demand
    /// gigabytes of memory in every worker VM.
    pub const MAX_ATTACHED_MATCHES: usize = 1_000_000;
    /// Regular expressions, counted both over the routes (each is compiled once, when the table is
    /// checked: [`crate::table::ValidTable`]) and over the attachments (each attachment puts the
    /// route's regexes in one more path index, where requests try them). Each compiles in tens of
    /// µs to a program of up to [`crate::table::regex::SIZE_LIMIT`] bytes; 10k bounds a table load
    /// to well under a second.
    pub const MAX_REGEXES: usize = 10_000;
    /// Total bytes of regular-expression source over the routes. [`MAX_REGEXES`] alone would
    /// still let a table ask every VM to compile 10k programs of up to
    /// [`crate::table::regex::SIZE_LIMIT`] bytes each (~80 MiB per VM); 256 KiB of source is
    /// hundreds of typical patterns and bounds that load.
    pub const MAX_REGEX_SOURCE_BYTES: usize = 256 * 1024;
    /// `matches[].headers` (CRD maxItems 16): checked per candidate, per request.
    pub const MAX_HEADER_MATCHES: usize = 16;
    /// `matches[].queryParams` (CRD maxItems 16): checked per candidate, per request.
    pub const MAX_QUERY_PARAM_MATCHES: usize = 16;
    /// `rules[].filters` and `backendRefs[].filters` (CRD maxItems 16): applied per request.
    pub const MAX_FILTERS: usize = 16;
    /// `rules[].backendRefs` (CRD maxItems 16): the weighted pick scans them per request.
    pub const MAX_BACKENDS: usize = 16;
    /// Each of a header modifier's `set`, `add` and `remove` (CRD maxItems 16).
    pub const MAX_HEADER_MODIFIER_ENTRIES: usize = 16;
    /// CORS `allowOrigins` (CRD maxItems 64): scanned per cross-origin request.
    pub const MAX_CORS_ORIGINS: usize = 64;
    /// CORS `allowMethods` (CRD maxItems 9: the nine methods, or `*`).
    pub const MAX_CORS_METHODS: usize = 9;
    /// CORS `allowHeaders` and `exposeHeaders` (CRD maxItems 64 each).
    pub const MAX_CORS_HEADERS: usize = 64;
    /// `backendRefs[].weight` maximum (CRD: 0–1,000,000).
    pub const MAX_WEIGHT: u32 = 1_000_000;
    /// Exact/PathPrefix values and path modifiers (CRD maxLength 1024).
    pub const MAX_PATH_LEN: usize = 1024;
    /// Header names (`HTTPHeaderName`, CRD maxLength 256).
    pub const MAX_HEADER_NAME_LEN: usize = 256;
    /// `retry.attempts`. The API sets no maximum; every retry is one more upstream request for one
    /// client request, so an unbounded count turns a typo (`attempts: 30000`) into a retry storm
    /// against a failing backend. 100 is far above any useful value (Envoy's default retry
    /// circuit breaker allows 3 concurrent retries per cluster).
    pub const MAX_RETRY_ATTEMPTS: u32 = 100;
    /// Timeouts and backoff: the longest Gateway API `Duration` (`99999h` four times, GEP-2257),
    /// so Envoy's millisecond arithmetic on `x-envoy-upstream-rq-timeout-ms` cannot overflow.
    pub const MAX_DURATION_MS: u64 = 4 * 99_999 * 3_600_000;
}

use limits::*;

/// A table rejected: `at` names the element (`routes[3] (shop/web).rules[0].matches[1]...`), as
/// a structured [`Location`] that is rendered to text only for display.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{at}: {kind}")]
pub struct TableError {
    pub at: Location,
    pub kind: TableErrorKind,
}

/// Why a table was rejected. Values are shown escaped and shortened (see [`SHOWN_VALUE_MAX`]).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TableErrorKind {
    // --- decoding (codec, wire) ---
    /// The JSON document does not parse into a table (`at` is `line L, column C`).
    #[error("invalid JSON: {message}")]
    Json {
        line: usize,
        column: usize,
        message: String,
    },
    /// The protobuf document does not decode.
    #[error("invalid protobuf: {0}")]
    Proto(String),
    /// The protobuf document carries bytes this filter does not decode: fields of a newer
    /// schema (docs/adding-a-table-field.md, "Compatibility"). Ignoring them would route with
    /// part of the table silently lost.
    #[error("{unread} bytes of fields this filter does not know (a table from a newer config-pusher?): refused whole; upgrade the filters before config-pusher")]
    UnknownFields { unread: usize },
    /// A protobuf table over its element or nesting bounds, refused before decoding.
    #[error(transparent)]
    Limit(#[from] super::limits::LimitError),
    /// A required protobuf oneof or enum is not set.
    #[error("required field is not set (expected one of: {expected})")]
    Missing { expected: &'static str },
    /// A protobuf enum value this filter does not know.
    #[error("unknown enum value {value} (expected one of: {expected})")]
    UnknownEnumValue { value: i32, expected: &'static str },
    /// An IP address that does not parse.
    #[error("invalid IP address {0:?}")]
    InvalidIp(String),
    /// The declared `version` is not the content hash.
    #[error("declared version {declared} does not match the content ({computed})")]
    VersionMismatch { declared: String, computed: String },

    // --- structure ---
    /// `role` is not `gateway/<namespace>/<name>` or `mesh/<namespace>`.
    #[error("role {0:?} is neither gateway/<namespace>/<name> nor mesh/<namespace> (namespace: DNS label, name: DNS subdomain)")]
    InvalidRole(String),
    /// Listeners in a mesh table or services in a gateway table.
    #[error("a {role} table must not have {what}")]
    WrongParentKind {
        role: &'static str,
        what: &'static str,
    },
    /// A number outside its allowed range.
    #[error("{value} is out of range ({min}-{max})")]
    OutOfRange { value: u64, min: u64, max: u64 },
    /// A list or string that must not be empty.
    #[error("must not be empty")]
    Empty,
    /// A list (or a table-wide total) beyond its limit (see [`limits`]).
    #[error("too many {what}: {count}, the limit is {max}")]
    TooMany {
        what: &'static str,
        count: usize,
        max: usize,
    },
    /// A value that must be unique appears again; `first` is where it appeared first.
    #[error("duplicate {what} {value:?} (first at {first})")]
    Duplicate {
        what: &'static str,
        value: String,
        first: String,
    },
    /// A Kubernetes name, listener/port/rule name that breaks its syntax.
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidName {
        what: &'static str,
        value: String,
        reason: &'static str,
    },
    /// An attachment refers to a route index beyond `routes`.
    #[error("attachment refers to routes[{0}], which does not exist")]
    DanglingRoute(u32),
    /// A hostname that is not a valid (wildcard) DNS name.
    #[error("invalid hostname {value:?}: {reason}")]
    InvalidHostname { value: String, reason: &'static str },
    /// Hostnames on a mesh attachment: GAMMA selects routes by the destination Service, never by
    /// Host (GEP-1294), so the router would silently ignore them.
    #[error("mesh attachments must have no hostnames (a Service parent is matched by its ClusterIP:port, not by Host); found {0:?}")]
    HostnameOnMeshParent(String),

    // --- matches ---
    /// An Exact/PathPrefix path or a path modifier that breaks the Gateway API path rules.
    #[error("invalid path {value:?}: {reason}")]
    InvalidPath { value: String, reason: &'static str },
    /// A regular expression that does not compile (see [`crate::table::regex`]).
    #[error("invalid regular expression {pattern:?}: {reason}")]
    InvalidRegex {
        pattern: String,
        reason: super::regex::RegexError,
    },
    /// A method outside the nine Gateway API `HTTPMethod` values.
    #[error("unsupported method {0:?} (expected GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE or PATCH; CORS allowMethods also takes *)")]
    InvalidMethod(String),
    /// A header name that is not an RFC 9110 token.
    #[error("invalid header name {value:?}: {reason}")]
    InvalidHeaderName { value: String, reason: &'static str },
    /// A string that cannot be used where it goes (a header value, a cluster name, ...).
    #[error("invalid value {value:?}: {reason}")]
    InvalidValue { value: String, reason: &'static str },
    /// A header modifier setting or adding an `x-envoy-*` or `x-gamma-*` header: Envoy's router
    /// obeys the first (timeouts, retries, stat names), gammaroute's Envoy route the second
    /// (cluster, mirrors); only the filter itself sets them, from the rule's own fields.
    #[error("header {value:?} is reserved: {prefix}* headers steer {steers}, so routes cannot set or add them (remove is allowed)")]
    ReservedHeader {
        value: String,
        prefix: &'static str,
        steers: &'static str,
    },
    /// The table's regular expressions exceed the total source budget
    /// ([`limits::MAX_REGEX_SOURCE_BYTES`]).
    #[error("regular expressions total {bytes} bytes of source, the budget is {max}")]
    RegexBudget { bytes: usize, max: usize },

    // --- filters and backends ---
    /// A status code outside the allowed set.
    #[error("invalid status code {value} (allowed: {allowed})")]
    InvalidStatus { value: u64, allowed: &'static str },
    /// A redirect scheme other than `http` or `https`.
    #[error("invalid scheme {0:?} (allowed: http, https)")]
    InvalidScheme(String),
    /// `ReplacePrefixMatch` on a rule with a match that is not a PathPrefix.
    #[error("ReplacePrefixMatch needs every match of the rule to be a PathPrefix, but matches[{index}] is {found}")]
    ReplacePrefixMatchWithoutPrefix { index: usize, found: &'static str },
    /// RequestRedirect and URLRewrite in the same filter list.
    #[error("RequestRedirect (filters[{redirect}]) and URLRewrite (filters[{rewrite}]) cannot be used together")]
    RedirectWithRewrite { redirect: usize, rewrite: usize },
    /// A rule with a rule-level RequestRedirect and backends.
    #[error("a rule with a RequestRedirect filter (filters[{filter}]) must have no backends: the redirect answers every request")]
    RedirectWithBackends { filter: usize },
    /// A mirror fraction that is not a probability.
    #[error("mirror fraction {numerator}/{denominator} is invalid: {reason}")]
    InvalidFraction {
        numerator: u32,
        denominator: u32,
        reason: &'static str,
    },
    /// A CORS `allowOrigins` entry that breaks `<scheme>://<host>[:<port>]`.
    #[error("invalid CORS origin {value:?}: {reason}")]
    InvalidOrigin { value: String, reason: &'static str },
    /// `*` together with other entries in a CORS list.
    #[error("`*` must be the only entry of this list")]
    WildcardNotAlone,
    /// `backendRequest` longer than a non-zero `request` timeout.
    #[error("backendRequest timeout ({backend_request_ms} ms) is longer than the request timeout ({request_ms} ms)")]
    BackendTimeoutExceedsRequest {
        backend_request_ms: u64,
        request_ms: u64,
    },
}

/// A position in the table, made a [`Location`] only when an error is reported: validation walks every
/// element of every table, errors are rare, so the happy path allocates nothing for paths.
#[derive(Clone, Copy)]
pub(crate) struct At<'a> {
    parent: Option<&'a At<'a>>,
    seg: Seg<'a>,
}

#[derive(Clone, Copy)]
enum Seg<'a> {
    Root,
    /// The root when a rule is checked alone: rendered as `rule` when nothing follows it.
    Rule,
    Field(&'static str),
    Item {
        list: &'static str,
        index: usize,
        label: Label<'a>,
    },
}

/// What is shown next to a list index so a human finds the object: `routes[3] (shop/web)`.
#[derive(Clone, Copy)]
pub(crate) enum Label<'a> {
    None,
    Name(&'a str),
    Qualified(&'a str, &'a str),
    Port(u32),
    Kind(&'static str),
}

impl<'a> Label<'a> {
    pub(crate) fn opt(name: Option<&'a str>) -> Label<'a> {
        name.map_or(Label::None, Label::Name)
    }
}

impl At<'static> {
    pub(crate) const ROOT: At<'static> = At {
        parent: None,
        seg: Seg::Root,
    };
    /// The root of [`validate_rule`]'s paths: the rule itself.
    const RULE: At<'static> = At {
        parent: None,
        seg: Seg::Rule,
    };
}

impl<'a> At<'a> {
    pub(crate) fn field<'b>(&'b self, name: &'static str) -> At<'b> {
        At {
            parent: Some(self),
            seg: Seg::Field(name),
        }
    }

    pub(crate) fn item<'b>(&'b self, list: &'static str, index: usize) -> At<'b> {
        self.labeled(list, index, Label::None)
    }

    pub(crate) fn labeled<'b>(
        &'b self,
        list: &'static str,
        index: usize,
        label: Label<'b>,
    ) -> At<'b> {
        At {
            parent: Some(self),
            seg: Seg::Item { list, index, label },
        }
    }

    pub(crate) fn err(&self, kind: TableErrorKind) -> TableError {
        TableError {
            at: self.location(),
            kind,
        }
    }

    /// The owned, structured form of this position (built only when an error is reported).
    pub(crate) fn location(&self) -> Location {
        let mut steps = Vec::new();
        let mut rule_root = false;
        let mut cur = Some(self);
        while let Some(at) = cur {
            match at.seg {
                Seg::Root => {}
                Seg::Rule => rule_root = true,
                Seg::Field(name) => steps.push(Step::Field(name)),
                Seg::Item { list, index, label } => steps.push(Step::Item {
                    list,
                    index,
                    label: match label {
                        Label::None => ItemLabel::None,
                        Label::Name(n) => ItemLabel::Name(n.to_string()),
                        Label::Qualified(ns, n) => ItemLabel::Qualified {
                            namespace: ns.to_string(),
                            name: n.to_string(),
                        },
                        Label::Port(p) => ItemLabel::Port(p),
                        Label::Kind(k) => ItemLabel::Kind(k),
                    },
                }),
            }
            cur = at.parent;
        }
        steps.reverse();
        if rule_root {
            Location::Rule(steps)
        } else {
            Location::Table(steps)
        }
    }
}

/// Checks everything the router relies on. Cheap checks and limits come first, so an oversized
/// table is refused before any regex is compiled. (To keep what the checks compile, make a
/// [`super::ValidTable`] instead.)
pub fn validate(table: &RouteTable) -> Result<(), TableError> {
    check(table).map(drop)
}

/// Checks one rule on its own, as config-pusher does before it puts the rule in a table (so a bad
/// rule is dropped, not the whole table). Errors are placed relative to the rule
/// (`matches[0].headers[1].name`; `rule` for the rule itself).
pub fn validate_rule(rule: &Rule) -> Result<(), TableError> {
    self::rule(&At::RULE, rule, 0, 0, &mut Kept::default())
}

/// What the checks keep for the router (carried by a [`super::ValidTable`]).
#[derive(Debug, Default)]
pub(crate) struct Kept {
    /// Every match compiled, in table order (routes, then rules, then matches).
    pub matches: Vec<CheckedMatch>,
    /// `matches[route_starts[r]..route_starts[r + 1]]` are route `r`'s (filled by [`check`] only).
    pub route_starts: Vec<usize>,
    /// Every CORS filter's `allowOrigins`, parsed.
    pub origins: CorsOrigins,
}

/// [`validate`], keeping what the checks compiled and parsed.
pub(crate) fn check(table: &RouteTable) -> Result<Kept, TableError> {
    let root = At::ROOT;
    match role(&root, &table.role)? {
        RoleKind::Gateway if !table.services.is_empty() => {
            return Err(root.field("services").err(TableErrorKind::WrongParentKind {
                role: "gateway",
                what: "services (mesh parents)",
            }));
        }
        RoleKind::Mesh if !table.listeners.is_empty() => {
            return Err(root
                .field("listeners")
                .err(TableErrorKind::WrongParentKind {
                    role: "mesh",
                    what: "listeners (Gateway parents)",
                }));
        }
        RoleKind::Gateway | RoleKind::Mesh => {}
    }

    too_many(
        &root.field("routes"),
        "routes",
        table.routes.len(),
        MAX_ROUTES,
    )?;
    let counts: Vec<RouteCounts> = table.routes.iter().map(RouteCounts::of).collect();
    let route_regexes = counts
        .iter()
        .fold(0usize, |n, c| n.saturating_add(c.regexes));
    too_many(
        &root.field("routes"),
        "regular expressions",
        route_regexes,
        MAX_REGEXES,
    )?;
    let regex_bytes = counts
        .iter()
        .fold(0usize, |n, c| n.saturating_add(c.regex_bytes));
    if regex_bytes > MAX_REGEX_SOURCE_BYTES {
        return Err(root.field("routes").err(TableErrorKind::RegexBudget {
            bytes: regex_bytes,
            max: MAX_REGEX_SOURCE_BYTES,
        }));
    }

    let mut attached = Attached {
        counts: &counts,
        matches: 0,
        regexes: 0,
    };
    listeners(&root, table, &mut attached)?;
    services(&root, table, &mut attached)?;
    too_many(
        &root,
        "attached matches (each attachment's route matches × its hostnames)",
        attached.matches,
        MAX_ATTACHED_MATCHES,
    )?;
    too_many(
        &root,
        "regular expressions compiled over all attachments",
        attached.regexes,
        MAX_REGEXES,
    )?;

    let mut kept = Kept {
        route_starts: Vec::with_capacity(table.routes.len() + 1),
        ..Kept::default()
    };
    for (i, r) in (0u32..).zip(&table.routes) {
        kept.route_starts.push(kept.matches.len());
        route(
            &root.labeled(
                "routes",
                i as usize,
                Label::Qualified(&r.namespace, &r.name),
            ),
            r,
            i,
            &mut kept,
        )?;
    }
    kept.route_starts.push(kept.matches.len());
    // Kept for as long as the table routes, in every VM: no spare capacity.
    kept.matches.shrink_to_fit();
    Ok(kept)
}

enum RoleKind {
    Gateway,
    Mesh,
}

/// `gateway/<namespace>/<name>` or `mesh/<namespace>` (docs/architecture.md "The route-table contract").
fn role(at: &At, role: &str) -> Result<RoleKind, TableError> {
    let kind = match role.split_once('/') {
        Some(("gateway", rest)) => rest
            .split_once('/')
            .filter(|(ns, name)| dns_label(ns).is_ok() && k8s_subdomain(name).is_ok())
            .map(|_| RoleKind::Gateway),
        Some(("mesh", ns)) => dns_label(ns).ok().map(|()| RoleKind::Mesh),
        _ => None,
    };
    kind.ok_or_else(|| {
        at.field("role")
            .err(TableErrorKind::InvalidRole(shown(role)))
    })
}

fn too_many(at: &At, what: &'static str, count: usize, max: usize) -> Result<(), TableError> {
    if count > max {
        return Err(at.err(TableErrorKind::TooMany { what, count, max }));
    }
    Ok(())
}

/// What one route costs the router each time it is attached.
struct RouteCounts {
    matches: usize,
    regexes: usize,
    /// Bytes of regex source (see [`limits::MAX_REGEX_SOURCE_BYTES`]).
    regex_bytes: usize,
}

impl RouteCounts {
    fn of(route: &Route) -> RouteCounts {
        let mut c = RouteCounts {
            matches: 0,
            regexes: 0,
            regex_bytes: 0,
        };
        for m in route.rules.iter().flat_map(|r| &r.matches) {
            c.matches = c.matches.saturating_add(1);
            let path = match &m.path {
                PathMatch::Regex(p) => Some(p.as_str()),
                _ => None,
            };
            let values = m
                .headers
                .iter()
                .map(|h| &h.value)
                .chain(m.query_params.iter().map(|q| &q.value))
                .filter_map(|v| match v {
                    ValueMatch::Regex(p) => Some(p.as_str()),
                    ValueMatch::Exact(_) => None,
                });
            for pattern in path.into_iter().chain(values) {
                c.regexes = c.regexes.saturating_add(1);
                c.regex_bytes = c.regex_bytes.saturating_add(pattern.len());
            }
        }
        c
    }
}

/// Running totals over every attachment of every parent.
struct Attached<'t> {
    counts: &'t [RouteCounts],
    matches: usize,
    regexes: usize,
}

/// Gateway listeners (`Gateway.spec.listeners[]`).
fn listeners(root: &At, table: &RouteTable, attached: &mut Attached) -> Result<(), TableError> {
    let mut names: FxHashMap<&str, usize> = FxHashMap::default();
    let mut binds: FxHashMap<(u16, Option<&str>), usize> = FxHashMap::default();
    for (i, l) in table.listeners.iter().enumerate() {
        let at = root.labeled("listeners", i, Label::Name(&l.name));
        // `listeners[].name` is a SectionName, unique per Gateway (CRD listMapKey name).
        section_name(&at.field("name"), "listener name", &l.name)?;
        if let Some(first) = names.insert(&l.name, i) {
            return Err(at.field("name").err(TableErrorKind::Duplicate {
                what: "listener name",
                value: shown(&l.name),
                first: format!("listeners[{first}]"),
            }));
        }
        // `listeners[].port`: PortNumber, 1-65535.
        port(&at.field("port"), l.port)?;
        // `listeners[].hostname`: Hostname (RFC 1123, optional leading `*.`, no IPs).
        if let Some(h) = &l.hostname {
            hostname(&at.field("hostname"), h, HostnameKind::Pattern)?;
        }
        // Two listeners with the same port and hostname would make listener selection ambiguous
        // (the Gateway marks them Conflicted; config-pusher must drop one).
        if let Some(first) = binds.insert((l.port, l.hostname.as_deref()), i) {
            return Err(at.field("hostname").err(TableErrorKind::Duplicate {
                what: "listener port and hostname",
                value: format!(
                    "{}, {}",
                    l.port,
                    shown(l.hostname.as_deref().unwrap_or("(any host)"))
                ),
                first: format!("listeners[{first}]"),
            }));
        }
        attachments(&at, &l.attachments, false, attached)?;
    }
    Ok(())
}

/// Mesh parents (GEP-1294): Services matched by ClusterIP:port.
fn services(root: &At, table: &RouteTable, attached: &mut Attached) -> Result<(), TableError> {
    let mut frontends: FxHashMap<(IpAddr, u16), (usize, usize)> = FxHashMap::default();
    for (s, svc) in table.services.iter().enumerate() {
        let at = root.labeled("services", s, Label::Qualified(&svc.namespace, &svc.name));
        k8s_name(
            &at.field("namespace"),
            "namespace",
            &svc.namespace,
            dns_label,
        )?;
        k8s_name(&at.field("name"), "Service name", &svc.name, dns_label)?;
        cluster_ips(&at, svc)?;
        let mut ports: FxHashMap<u16, usize> = FxHashMap::default();
        for (p, sp) in svc.ports.iter().enumerate() {
            let pat = at.labeled("ports", p, Label::Port(u32::from(sp.port)));
            port(&pat.field("port"), sp.port)?;
            if let Some(first) = ports.insert(sp.port, p) {
                return Err(pat.field("port").err(TableErrorKind::Duplicate {
                    what: "Service port",
                    value: sp.port.to_string(),
                    first: format!("ports[{first}]"),
                }));
            }
            // `spec.ports[].name` is a DNS label (the parentRef sectionName).
            if let Some(name) = &sp.name {
                k8s_name(&pat.field("name"), "port name", name, dns_label)?;
            }
            // The router finds the parent by destination (ClusterIP, port): it must be unique.
            for ip in &svc.cluster_ips {
                if let Some((fs, fp)) = frontends.insert((*ip, sp.port), (s, p)) {
                    let first = table.services.get(fs).map_or_else(String::new, |f| {
                        format!(
                            "services[{fs}] ({}/{}).ports[{fp}]",
                            shown(&f.namespace).escape_debug(),
                            shown(&f.name).escape_debug()
                        )
                    });
                    return Err(pat.err(TableErrorKind::Duplicate {
                        what: "Service frontend (ClusterIP:port)",
                        value: SocketAddr::new(*ip, sp.port).to_string(),
                        first,
                    }));
                }
            }
            attachments(&pat, &sp.attachments, true, attached)?;
        }
    }
    Ok(())
}

/// `spec.clusterIPs`: at least one, no repeats (a mesh parent without an address never matches).
fn cluster_ips(at: &At, svc: &MeshService) -> Result<(), TableError> {
    if svc.cluster_ips.is_empty() {
        return Err(at.field("clusterIps").err(TableErrorKind::Empty));
    }
    let mut seen: FxHashMap<IpAddr, usize> = FxHashMap::default();
    for (i, ip) in svc.cluster_ips.iter().enumerate() {
        if let Some(first) = seen.insert(*ip, i) {
            return Err(at.item("clusterIps", i).err(TableErrorKind::Duplicate {
                what: "cluster IP",
                value: ip.to_string(),
                first: format!("clusterIps[{first}]"),
            }));
        }
    }
    Ok(())
}

/// Attachments of one parent: the route exists; hostnames are valid (Gateway parents) or absent
/// (mesh parents).
fn attachments(
    parent: &At,
    list: &[super::Attachment],
    mesh: bool,
    attached: &mut Attached,
) -> Result<(), TableError> {
    for (i, a) in list.iter().enumerate() {
        let at = parent.item("attachments", i);
        let Some(counts) = attached.counts.get(a.route as usize) else {
            return Err(at
                .field("route")
                .err(TableErrorKind::DanglingRoute(a.route)));
        };
        for (j, h) in a.hostnames.iter().enumerate() {
            let hat = at.item("hostnames", j);
            if mesh {
                return Err(hat.err(TableErrorKind::HostnameOnMeshParent(shown(h))));
            }
            // HTTPRoute `hostnames[]`: Hostname (RFC 1123, optional leading `*.`, no IPs).
            hostname(&hat, h, HostnameKind::Pattern)?;
        }
        let groups = a.hostnames.len().max(1);
        attached.matches = attached
            .matches
            .saturating_add(counts.matches.saturating_mul(groups));
        attached.regexes = attached.regexes.saturating_add(counts.regexes);
    }
    Ok(())
}

/// One HTTPRoute.
fn route(at: &At, r: &Route, index: u32, kept: &mut Kept) -> Result<(), TableError> {
    k8s_name(&at.field("namespace"), "namespace", &r.namespace, dns_label)?;
    k8s_name(&at.field("name"), "route name", &r.name, k8s_subdomain)?;
    for (i, rl) in (0u32..).zip(&r.rules) {
        rule(
            &at.labeled("rules", i as usize, Label::opt(rl.name.as_deref())),
            rl,
            index,
            i,
            kept,
        )?;
    }
    Ok(())
}

/// `spec.rules[]`.
fn rule(
    at: &At,
    rule: &Rule,
    route: u32,
    position: u32,
    kept: &mut Kept,
) -> Result<(), TableError> {
    // `rules[].name`: SectionName (GEP-995).
    if let Some(name) = &rule.name {
        section_name(&at.field("name"), "rule name", name)?;
    }
    // The CRD defaults `matches` to PathPrefix `/`; config-pusher writes that default, so an
    // empty list is a bug that would make the rule unreachable.
    if rule.matches.is_empty() {
        return Err(at.field("matches").err(TableErrorKind::Empty));
    }
    for (i, m) in (0u32..).zip(&rule.matches) {
        let mut checked = match_(&at.item("matches", i as usize), m)?;
        (checked.route, checked.rule, checked.matched) = (route, position, i);
        kept.matches.push(checked);
    }
    let list = FilterList {
        route,
        rule: position,
        backend: None,
    };
    filters(at, &rule.filters, &rule.matches, list, kept)?;
    // CEL on HTTPRouteRule: "RequestRedirect filter must not be used together with backendRefs".
    if let Some(filter) = rule
        .filters
        .iter()
        .position(|f| matches!(f, Filter::RequestRedirect(_)))
    {
        if !rule.backends.is_empty() {
            return Err(at
                .field("backends")
                .err(TableErrorKind::RedirectWithBackends { filter }));
        }
    }
    too_many(
        &at.field("backends"),
        "backends",
        rule.backends.len(),
        MAX_BACKENDS,
    )?;
    for (i, b) in (0u32..).zip(&rule.backends) {
        let label = match &b.target {
            BackendTarget::Cluster(c) => Label::Name(c),
            BackendTarget::Unavailable { .. } => Label::Kind("unavailable"),
        };
        let list = FilterList {
            backend: Some(i),
            ..list
        };
        backend(
            &at.labeled("backends", i as usize, label),
            b,
            &rule.matches,
            list,
            kept,
        )?;
    }
    if let Some(t) = &rule.timeouts {
        timeouts(&at.field("timeouts"), t)?;
    }
    if let Some(r) = &rule.retry {
        retry(&at.field("retry"), r)?;
    }
    Ok(())
}

/// `rules[].matches[]` (HTTPRouteMatch).
fn match_(at: &At, m: &Match) -> Result<CheckedMatch, TableError> {
    let pat = at.field("path");
    let path_regex = match &m.path {
        PathMatch::Exact(p) | PathMatch::Prefix(p) => {
            path(&pat, p)?;
            None
        }
        PathMatch::Regex(p) => Some(Box::new(compiles(&pat, p)?)),
    };
    // `method`: HTTPMethod enum, checked by its type.
    let method = m.method;
    // `headers[]`: names are HTTPHeaderName; "only the first entry with an equivalent name MUST
    // be considered" — the router ANDs every entry, so equivalent names must not repeat.
    too_many(
        &at.field("headers"),
        "header matches",
        m.headers.len(),
        MAX_HEADER_MATCHES,
    )?;
    let mut headers = Vec::with_capacity(m.headers.len());
    for (i, h) in m.headers.iter().enumerate() {
        let hat = at.item("headers", i);
        header_name(&hat.field("name"), &h.name)?;
        if let Some(first) = m
            .headers
            .iter()
            .take(i)
            .position(|o| o.name.eq_ignore_ascii_case(&h.name))
        {
            return Err(hat.field("name").err(TableErrorKind::Duplicate {
                what: "header match name (case-insensitive)",
                value: shown(&h.name),
                first: format!("headers[{first}]"),
            }));
        }
        let value = value_match(&hat.field("value"), &h.value)?;
        headers.push((h.name.to_ascii_lowercase().into_boxed_str(), value));
    }
    // `queryParams[]`: names are exact and case-sensitive; first entry counts, as for headers.
    too_many(
        &at.field("queryParams"),
        "query parameter matches",
        m.query_params.len(),
        MAX_QUERY_PARAM_MATCHES,
    )?;
    let mut query = Vec::with_capacity(m.query_params.len());
    for (i, q) in m.query_params.iter().enumerate() {
        let qat = at.item("queryParams", i);
        if q.name.is_empty() {
            return Err(qat.field("name").err(TableErrorKind::Empty));
        }
        no_crlf(&qat.field("name"), &q.name)?;
        if let Some(first) = m.query_params.iter().take(i).position(|o| o.name == q.name) {
            return Err(qat.field("name").err(TableErrorKind::Duplicate {
                what: "query parameter match name",
                value: shown(&q.name),
                first: format!("queryParams[{first}]"),
            }));
        }
        let value = value_match(&qat.field("value"), &q.value)?;
        query.push((q.name.as_str().into(), value));
    }
    Ok(CheckedMatch {
        route: 0,
        rule: 0,
        matched: 0,
        rank: m.rank,
        path_regex,
        method,
        headers: headers.into_boxed_slice(),
        query: query.into_boxed_slice(),
    })
}

fn value_match(at: &At, v: &ValueMatch) -> Result<CheckedValue, TableError> {
    match v {
        ValueMatch::Exact(s) => {
            no_crlf(at, s)?;
            Ok(CheckedValue::Exact(s.as_str().into()))
        }
        ValueMatch::Regex(p) => compiles(at, p).map(|re| CheckedValue::Regex(Box::new(re))),
    }
}

/// Compiles a pattern the one way the table's regexes are compiled (see [`regex`]); the router
/// uses the result.
fn compiles(at: &At, pattern: &str) -> Result<regex_lite::Regex, TableError> {
    regex::compile(pattern).map_err(|reason| {
        at.err(TableErrorKind::InvalidRegex {
            pattern: shown(pattern),
            reason,
        })
    })
}

/// Rule- or backend-level filters (HTTPRouteFilter lists).
/// Which filter list is being checked: a rule's (`backend: None`) or one of its backends'.
#[derive(Clone, Copy)]
struct FilterList {
    route: u32,
    rule: u32,
    backend: Option<u32>,
}

fn filters(
    owner: &At,
    list: &[Filter],
    matches: &[Match],
    place: FilterList,
    kept: &mut Kept,
) -> Result<(), TableError> {
    too_many(&owner.field("filters"), "filters", list.len(), MAX_FILTERS)?;
    let mut seen = SeenFilters::default();
    for (i, f) in list.iter().enumerate() {
        let at = owner.labeled("filters", i, Label::Kind(filter_type(f)));
        // CEL: "<type> filter cannot be repeated" for every type except RequestMirror.
        if let Some(slot) = seen.slot(f) {
            if let Some(first) = *slot {
                return Err(at.err(TableErrorKind::Duplicate {
                    what: "filter type",
                    value: filter_type(f).to_string(),
                    first: format!("filters[{first}]"),
                }));
            }
            *slot = Some(i);
        }
        match f {
            Filter::RequestHeaderModifier(m) | Filter::ResponseHeaderModifier(m) => {
                header_modifier(&at, m)?;
            }
            Filter::RequestRedirect(r) => redirect(&at, r, matches)?,
            Filter::UrlRewrite(r) => url_rewrite(&at, r, matches)?,
            Filter::RequestMirror(m) => mirror(&at, m)?,
            Filter::Cors(c) => {
                let origins = cors(&at, c)?;
                let at = FilterAt {
                    route: place.route,
                    rule: place.rule,
                    backend: place.backend,
                    filter: u32::try_from(i).unwrap_or(u32::MAX),
                };
                kept.origins.insert(at, origins);
            }
        }
        // CEL: "May specify either httpRouteFilterRequestRedirect or httpRouteFilterRequestRewrite,
        // but not both".
        if let (Some(redirect), Some(rewrite)) = (seen.redirect, seen.rewrite) {
            return Err(at.err(TableErrorKind::RedirectWithRewrite { redirect, rewrite }));
        }
    }
    Ok(())
}

/// The Gateway API `type` of a filter, for messages.
fn filter_type(f: &Filter) -> &'static str {
    match f {
        Filter::RequestHeaderModifier(_) => "RequestHeaderModifier",
        Filter::ResponseHeaderModifier(_) => "ResponseHeaderModifier",
        Filter::RequestRedirect(_) => "RequestRedirect",
        Filter::UrlRewrite(_) => "URLRewrite",
        Filter::RequestMirror(_) => "RequestMirror",
        Filter::Cors(_) => "CORS",
    }
}

/// First position of each filter type that may appear only once.
#[derive(Default)]
struct SeenFilters {
    request_headers: Option<usize>,
    response_headers: Option<usize>,
    redirect: Option<usize>,
    rewrite: Option<usize>,
    cors: Option<usize>,
}

impl SeenFilters {
    fn slot(&mut self, f: &Filter) -> Option<&mut Option<usize>> {
        match f {
            Filter::RequestHeaderModifier(_) => Some(&mut self.request_headers),
            Filter::ResponseHeaderModifier(_) => Some(&mut self.response_headers),
            Filter::RequestRedirect(_) => Some(&mut self.redirect),
            Filter::UrlRewrite(_) => Some(&mut self.rewrite),
            Filter::Cors(_) => Some(&mut self.cors),
            Filter::RequestMirror(_) => None,
        }
    }
}

/// Header-name prefixes no route may set or add, with what they steer (see
/// [`TableErrorKind::ReservedHeader`]). Envoy's router honours `x-envoy-*` request headers
/// (Envoy docs, "Router — HTTP header manipulation") and downstream Envoys `x-envoy-*` response
/// headers; `x-gamma-*` names gammaroute's cluster and mirror slots.
const RESERVED_HEADER_PREFIXES: [(&str, &str); 2] = [
    ("x-envoy-", "Envoy's router (timeouts, retries, stats)"),
    ("x-gamma-", "gammaroute's Envoy route (cluster, mirrors)"),
];

/// The reserved prefix `name` starts with (ASCII case-insensitive), with what it steers.
pub fn reserved_header(name: &str) -> Option<(&'static str, &'static str)> {
    RESERVED_HEADER_PREFIXES.into_iter().find(|(prefix, _)| {
        name.get(..prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
    })
}

/// `RequestHeaderModifier` / `ResponseHeaderModifier` (HTTPHeaderFilter).
fn header_modifier(at: &At, m: &HeaderModifier) -> Result<(), TableError> {
    for (list, entries) in [("set", &m.set), ("add", &m.add)] {
        too_many(
            &at.field(list),
            "header modifier entries",
            entries.len(),
            MAX_HEADER_MODIFIER_ENTRIES,
        )?;
        for (i, h) in entries.iter().enumerate() {
            let hat = at.item(list, i);
            header_name(&hat.field("name"), &h.name)?;
            if let Some((prefix, steers)) = reserved_header(&h.name) {
                return Err(hat.field("name").err(TableErrorKind::ReservedHeader {
                    value: shown(&h.name),
                    prefix,
                    steers,
                }));
            }
            // `set`/`add` are list maps keyed by name; "the first entry with an equivalent name
            // MUST be considered", but the router applies every entry.
            if let Some(first) = entries
                .iter()
                .take(i)
                .position(|o| o.name.eq_ignore_ascii_case(&h.name))
            {
                return Err(hat.field("name").err(TableErrorKind::Duplicate {
                    what: "header name (case-insensitive)",
                    value: shown(&h.name),
                    first: format!("{list}[{first}]"),
                }));
            }
            no_crlf(&hat.field("value"), &h.value)?;
        }
    }
    too_many(
        &at.field("remove"),
        "header modifier entries",
        m.remove.len(),
        MAX_HEADER_MODIFIER_ENTRIES,
    )?;
    for (i, name) in m.remove.iter().enumerate() {
        // The API leaves `remove` unpatterned; a non-token can never name a header, and a
        // pseudo-header (`:path`) must never be removed.
        header_name(&at.item("remove", i), name)?;
    }
    Ok(())
}

/// `RequestRedirect` (HTTPRequestRedirectFilter).
fn redirect(at: &At, r: &Redirect, matches: &[Match]) -> Result<(), TableError> {
    // `scheme` (enum http, https) and `statusCode` (enum 301, 302, 303, 307, 308): their types.
    // `hostname`: PreciseHostname.
    if let Some(h) = &r.hostname {
        hostname(&at.field("hostname"), h, HostnameKind::Precise)?;
    }
    if let Some(p) = &r.path {
        path_modifier(&at.field("path"), p, matches)?;
    }
    // `port`: PortNumber, 1-65535.
    if let Some(p) = r.port {
        port(&at.field("port"), p)?;
    }
    Ok(())
}

/// `URLRewrite` (HTTPURLRewriteFilter).
fn url_rewrite(at: &At, r: &UrlRewrite, matches: &[Match]) -> Result<(), TableError> {
    // `hostname`: PreciseHostname.
    if let Some(h) = &r.hostname {
        hostname(&at.field("hostname"), h, HostnameKind::Precise)?;
    }
    if let Some(p) = &r.path {
        path_modifier(&at.field("path"), p, matches)?;
    }
    Ok(())
}

/// HTTPPathModifier. `ReplaceFullPath` is a full path; `ReplacePrefixMatch` may also be empty or
/// `/` (both replace the prefix by nothing) and needs PathPrefix matches ("ReplacePrefixMatch is
/// only compatible with a `PathPrefix` HTTPRouteMatch"). The CRD asks for exactly one PathPrefix
/// match; the router handles several, using whichever matched.
fn path_modifier(at: &At, p: &PathModifier, matches: &[Match]) -> Result<(), TableError> {
    match p {
        PathModifier::ReplaceFullPath(full) => path(&at.field("replaceFullPath"), full),
        PathModifier::ReplacePrefixMatch(prefix) => {
            let pat = at.field("replacePrefixMatch");
            if !prefix.is_empty() && prefix != "/" {
                path(&pat, prefix)?;
            }
            let other = matches
                .iter()
                .enumerate()
                .find_map(|(index, m)| match m.path {
                    PathMatch::Prefix(_) => None,
                    PathMatch::Exact(_) => Some((index, "an Exact path match")),
                    PathMatch::Regex(_) => Some((index, "a RegularExpression path match")),
                });
            match other {
                Some((index, found)) => {
                    Err(pat.err(TableErrorKind::ReplacePrefixMatchWithoutPrefix { index, found }))
                }
                None => Ok(()),
            }
        }
    }
}

/// `RequestMirror` (HTTPRequestMirrorFilter): `fraction` numerator ≤ denominator, denominator ≥ 1.
fn mirror(at: &At, m: &Mirror) -> Result<(), TableError> {
    cluster(&at.field("cluster"), &m.cluster)?;
    let reason = if m.denominator == 0 {
        Some(("denominator", "the denominator must be at least 1"))
    } else if m.numerator > m.denominator {
        Some(("numerator", "the numerator must not exceed the denominator"))
    } else {
        None
    };
    match reason {
        Some((field, reason)) => Err(at.field(field).err(TableErrorKind::InvalidFraction {
            numerator: m.numerator,
            denominator: m.denominator,
            reason,
        })),
        None => Ok(()),
    }
}

/// `CORS` (HTTPCORSFilter, GEP-1767).
/// Returns the parsed origins, which the router keeps.
fn cors(at: &At, c: &Cors) -> Result<Box<[OriginPattern]>, TableError> {
    let origins = at.field("allowOrigins");
    too_many(
        &origins,
        "CORS origins",
        c.allow_origins.len(),
        MAX_CORS_ORIGINS,
    )?;
    let parsed = c
        .allow_origins
        .iter()
        .enumerate()
        .map(|(i, o)| {
            OriginPattern::parse(o).map_err(|reason| {
                at.item("allowOrigins", i)
                    .err(TableErrorKind::InvalidOrigin {
                        value: shown(o),
                        reason,
                    })
            })
        })
        .collect::<Result<Box<[OriginPattern]>, TableError>>()?;
    // CEL: "AllowOrigins cannot contain '*' alongside other origins" (same for methods, headers).
    wildcard_alone(&origins, &c.allow_origins)?;

    let methods = at.field("allowMethods");
    too_many(
        &methods,
        "CORS methods",
        c.allow_methods.len(),
        MAX_CORS_METHODS,
    )?;
    for (i, m) in c.allow_methods.iter().enumerate() {
        if m != "*" && Method::parse(m).is_none() {
            return Err(at
                .item("allowMethods", i)
                .err(TableErrorKind::InvalidMethod(shown(m))));
        }
    }
    wildcard_alone(&methods, &c.allow_methods)?;

    // Header lists are HTTPHeaderName (`*` is a token too); they become response header values.
    let headers = at.field("allowHeaders");
    too_many(
        &headers,
        "CORS allowed headers",
        c.allow_headers.len(),
        MAX_CORS_HEADERS,
    )?;
    for (i, h) in c.allow_headers.iter().enumerate() {
        header_name(&at.item("allowHeaders", i), h)?;
    }
    wildcard_alone(&headers, &c.allow_headers)?;
    too_many(
        &at.field("exposeHeaders"),
        "CORS exposed headers",
        c.expose_headers.len(),
        MAX_CORS_HEADERS,
    )?;
    for (i, h) in c.expose_headers.iter().enumerate() {
        header_name(&at.item("exposeHeaders", i), h)?;
    }
    Ok(parsed)
}

fn wildcard_alone(at: &At, list: &[String]) -> Result<(), TableError> {
    if list.len() > 1 && list.iter().any(|v| v == "*") {
        return Err(at.err(TableErrorKind::WildcardNotAlone));
    }
    Ok(())
}

/// A weighted backend (`backendRefs[]`).
fn backend(
    at: &At,
    b: &Backend,
    matches: &[Match],
    place: FilterList,
    kept: &mut Kept,
) -> Result<(), TableError> {
    // `weight`: 0-1,000,000.
    if b.weight > MAX_WEIGHT {
        return Err(at.field("weight").err(TableErrorKind::OutOfRange {
            value: u64::from(b.weight),
            min: 0,
            max: u64::from(MAX_WEIGHT),
        }));
    }
    match &b.target {
        BackendTarget::Cluster(c) => cluster(&at.field("cluster"), c)?,
        // Invalid refs answer 500, refs without endpoints 503 (HTTPBackendRef, "SHOULD return a
        // 503"); the reason is logged and may reach a response.
        BackendTarget::Unavailable { status, reason } => {
            let uat = at.field("unavailable");
            if *status != 500 && *status != 503 {
                return Err(uat.field("status").err(TableErrorKind::InvalidStatus {
                    value: u64::from(*status),
                    allowed: "500, 503",
                }));
            }
            if reason.is_empty() {
                return Err(uat.field("reason").err(TableErrorKind::Empty));
            }
            no_crlf(&uat.field("reason"), reason)?;
        }
    }
    filters(at, &b.filters, matches, place, kept)
}

/// An Envoy cluster name: it is written into the `x-gamma-cluster` request header.
fn cluster(at: &At, name: &str) -> Result<(), TableError> {
    if name.is_empty() {
        return Err(at.err(TableErrorKind::Empty));
    }
    no_crlf(at, name)
}

/// `rules[].timeouts` (GEP-1742): `backendRequest` ≤ `request` unless `request` is 0 (CEL).
fn timeouts(at: &At, t: &Timeouts) -> Result<(), TableError> {
    duration(&at.field("requestMs"), t.request_ms)?;
    duration(&at.field("backendRequestMs"), t.backend_request_ms)?;
    if let (Some(request_ms), Some(backend_request_ms)) = (t.request_ms, t.backend_request_ms) {
        if request_ms != 0 && backend_request_ms > request_ms {
            return Err(at.field("backendRequestMs").err(
                TableErrorKind::BackendTimeoutExceedsRequest {
                    backend_request_ms,
                    request_ms,
                },
            ));
        }
    }
    Ok(())
}

fn duration(at: &At, ms: Option<u64>) -> Result<(), TableError> {
    match ms {
        Some(value) if value > MAX_DURATION_MS => Err(at.err(TableErrorKind::OutOfRange {
            value,
            min: 0,
            max: MAX_DURATION_MS,
        })),
        _ => Ok(()),
    }
}

/// `rules[].retry` (GEP-1731): codes 400-599 ("MAY support 400-599"), listed once (CRD set).
fn retry(at: &At, r: &Retry) -> Result<(), TableError> {
    if r.attempts > MAX_RETRY_ATTEMPTS {
        return Err(at.field("attempts").err(TableErrorKind::OutOfRange {
            value: u64::from(r.attempts),
            min: 0,
            max: u64::from(MAX_RETRY_ATTEMPTS),
        }));
    }
    for (i, code) in r.codes.iter().enumerate() {
        let cat = at.item("codes", i);
        if !(400..=599).contains(code) {
            return Err(cat.err(TableErrorKind::InvalidStatus {
                value: u64::from(*code),
                allowed: "400-599",
            }));
        }
        if let Some(first) = r.codes.iter().take(i).position(|c| c == code) {
            return Err(cat.err(TableErrorKind::Duplicate {
                what: "retry status code",
                value: code.to_string(),
                first: format!("codes[{first}]"),
            }));
        }
    }
    duration(&at.field("backoffMs"), r.backoff_ms)
}

/// PortNumber: 1-65535.
fn port(at: &At, port: u16) -> Result<(), TableError> {
    if port == 0 {
        return Err(at.err(TableErrorKind::OutOfRange {
            value: 0,
            min: 1,
            max: 65535,
        }));
    }
    Ok(())
}

/// Exact/PathPrefix values and path modifiers (HTTPPathMatch CEL rules, in the CRD's order).
fn path(at: &At, value: &str) -> Result<(), TableError> {
    path_syntax(value).map_err(|reason| {
        at.err(TableErrorKind::InvalidPath {
            value: shown(value),
            reason,
        })
    })
}

fn path_syntax(p: &str) -> Result<(), &'static str> {
    if !p.starts_with('/') {
        return Err("must be an absolute path starting with '/'");
    }
    if p.len() > MAX_PATH_LEN {
        return Err("longer than 1024 bytes");
    }
    // Most paths contain none of the sequences looked for next: one pass instead of six.
    let b = p.as_bytes();
    let suspect = b.iter().any(|&c| c == b'%' || c == b'#')
        || b.windows(2).any(|w| matches!(w, [b'/', b'/' | b'.']));
    for (needle, reason) in [
        ("//", "must not contain '//'"),
        ("/./", "must not contain '/./'"),
        ("/../", "must not contain '/../'"),
        ("%2f", "must not contain '%2f'"),
        ("%2F", "must not contain '%2F'"),
        ("#", "must not contain '#'"),
    ] {
        if suspect && p.contains(needle) {
            return Err(reason);
        }
    }
    if p.ends_with("/..") {
        return Err("must not end with '/..'");
    }
    if p.ends_with("/.") {
        return Err("must not end with '/.'");
    }
    // ^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$
    let bytes = p.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = |j: usize| bytes.get(j).is_some_and(u8::is_ascii_hexdigit);
            if !(hex(i + 1) && hex(i + 2)) {
                return Err("'%' must be followed by two hex digits");
            }
            i += 3;
        } else if b.is_ascii_alphanumeric() || b"-/._~!$&'()*+,;=:@".contains(&b) {
            i += 1;
        } else {
            return Err(
                "must only contain the characters [-A-Za-z0-9/._~!$&'()*+,;=:@] and %XX escapes",
            );
        }
    }
    Ok(())
}

/// Which Gateway API hostname type a field has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostnameKind {
    /// `Hostname`: optional leading `*.`, "IPs are not allowed".
    Pattern,
    /// `PreciseHostname`: no wildcard (the CRD pattern admits a dotted IPv4).
    Precise,
}

fn hostname(at: &At, value: &str, kind: HostnameKind) -> Result<(), TableError> {
    hostname_syntax(value, kind).map_err(|reason| {
        at.err(TableErrorKind::InvalidHostname {
            value: shown(value),
            reason,
        })
    })
}

/// RFC 1123 lowercase DNS name (`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`,
/// ≤253 bytes), with a leading `*.` for [`HostnameKind::Pattern`]. Public so that config-pusher
/// refuses, on load, the hostnames a table could not carry (the API server's CRD check).
pub fn hostname_syntax(value: &str, kind: HostnameKind) -> Result<(), &'static str> {
    if value.is_empty() {
        return Err("must not be empty");
    }
    if value.len() > 253 {
        return Err("longer than 253 bytes");
    }
    if value.contains(':') {
        return Err("must not contain a port or an IPv6 address");
    }
    if value.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err("must be lowercase");
    }
    let name = match value.strip_prefix("*.") {
        Some(_) if kind == HostnameKind::Precise => {
            return Err("a wildcard is not allowed here");
        }
        Some(rest) => rest,
        None => value,
    };
    if name.contains('*') {
        return Err("`*` is only allowed as a leading `*.` label");
    }
    dns_subdomain(name)?;
    if kind == HostnameKind::Pattern && name.parse::<Ipv4Addr>().is_ok() {
        return Err("IP addresses are not allowed");
    }
    Ok(())
}

fn k8s_name(
    at: &At,
    what: &'static str,
    value: &str,
    syntax: fn(&str) -> Result<(), &'static str>,
) -> Result<(), TableError> {
    syntax(value).map_err(|reason| {
        at.err(TableErrorKind::InvalidName {
            what,
            value: shown(value),
            reason,
        })
    })
}

/// SectionName (listener and rule names): the CRD's subdomain pattern, at most 253 bytes.
fn section_name(at: &At, what: &'static str, value: &str) -> Result<(), TableError> {
    k8s_name(at, what, value, k8s_subdomain)
}

/// RFC 1123 label: 1-63 of `[a-z0-9-]`, starting and ending with a letter or digit.
pub fn dns_label(label: &str) -> Result<(), &'static str> {
    if label.is_empty() {
        return Err("must not be empty");
    }
    if label.len() > 63 {
        return Err("a DNS label is at most 63 bytes");
    }
    label_text(label)
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, any length.
fn label_text(label: &str) -> Result<(), &'static str> {
    if label.is_empty() {
        return Err("must not be empty");
    }
    if !label
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err("may only contain a-z, 0-9 and '-' (and '.' between labels)");
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err("must start and end with a letter or digit");
    }
    Ok(())
}

/// A Kubernetes object name or SectionName (`IsDNS1123Subdomain`, and the Gateway API CRDs'
/// `SectionName` pattern): RFC 1123 label text joined by `.`, at most 253 bytes in all, with no
/// limit per label — unlike a DNS name ([`dns_subdomain`]). The API server accepts a route
/// named with a 64-byte label; refusing it here refused its Gateway's whole table (found by
/// the `yaml` fuzz target).
pub fn k8s_subdomain(name: &str) -> Result<(), &'static str> {
    labels_joined(name, label_text)
}

/// RFC 1123 subdomain as a DNS name (hostnames): labels of at most 63 bytes joined by `.`, at
/// most 253 bytes.
fn dns_subdomain(name: &str) -> Result<(), &'static str> {
    labels_joined(name, dns_label)
}

/// 1-253 bytes of labels joined by `.`, each passing `label`.
fn labels_joined(
    name: &str,
    label: fn(&str) -> Result<(), &'static str>,
) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("must not be empty");
    }
    if name.len() > 253 {
        return Err("longer than 253 bytes");
    }
    for l in name.split('.') {
        if l.is_empty() {
            return Err("has an empty label");
        }
        label(l)?;
    }
    Ok(())
}

/// HTTPHeaderName: an RFC 9110 token of at most 256 bytes; never a pseudo-header.
fn header_name(at: &At, name: &str) -> Result<(), TableError> {
    let reason = if name.is_empty() {
        Some("must not be empty")
    } else if name.starts_with(':') {
        Some("pseudo-headers (:name) cannot be matched or modified")
    } else if name.len() > MAX_HEADER_NAME_LEN {
        Some("longer than 256 bytes")
    } else if !name.bytes().all(is_tchar) {
        Some("must be an HTTP token (RFC 9110 tchar: letters, digits and !#$%&'*+-.^_`|~)")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(at.err(TableErrorKind::InvalidHeaderName {
            value: shown(name),
            reason,
        })),
        None => Ok(()),
    }
}

/// RFC 9110 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Header values (and what becomes one): no CR, LF or NUL, which would split or truncate a
/// header (RFC 9110 §5.5; Envoy rejects them).
fn no_crlf(at: &At, value: &str) -> Result<(), TableError> {
    if value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
        return Err(at.err(TableErrorKind::InvalidValue {
            value: shown(value),
            reason: "contains CR, LF or NUL, which cannot appear in an HTTP header",
        }));
    }
    Ok(())
}

/// Representative tables used by the tests of `table` (every model variant appears).
#[cfg(test)]
pub(crate) mod fixtures {
    use super::RouteTable;

    /// A Gateway table: two listeners, every filter, both backend targets, every match kind.
    pub(crate) const GATEWAY_JSON: &str = r#"{
      "role": "gateway/shop/web",
      "listeners": [
        {"name": "http", "port": 80, "attachments": [
          {"route": 0, "hostnames": ["shop.example.com", "*.shop.example.com"]},
          {"route": 1}
        ]},
        {"name": "https", "port": 443, "hostname": "*.example.com", "attachments": [
          {"route": 0, "hostnames": ["shop.example.com"]}
        ]}
      ],
      "routes": [
        {"namespace": "shop", "name": "web", "rules": [
          {"index": 0, "name": "canary",
           "matches": [
             {"rank": 0, "path": {"prefix": "/api"}, "method": "GET",
              "headers": [{"name": "x-canary", "value": {"exact": "true"}},
                          {"name": "x-user", "value": {"regex": "[a-z]+"}}],
              "queryParams": [{"name": "debug", "value": {"exact": "1"}},
                              {"name": "v", "value": {"regex": "[0-9]+"}}]},
             {"rank": 5, "path": {"prefix": "/v2/"}}
           ],
           "filters": [
             {"requestHeaderModifier": {"set": [{"name": "x-env", "value": "canary"}],
                                        "add": [{"name": "x-via", "value": "gammaroute"}],
                                        "remove": ["x-debug"]}},
             {"responseHeaderModifier": {"set": [{"name": "cache-control", "value": "no-store"}]}},
             {"urlRewrite": {"hostname": "api.internal", "path": {"replacePrefixMatch": "/internal"}}},
             {"requestMirror": {"cluster": "shop/shadow:80", "numerator": 1, "denominator": 10}},
             {"requestMirror": {"cluster": "shop/audit:80", "numerator": 1, "denominator": 1}},
             {"cors": {"allowOrigins": ["https://*.example.com", "http://localhost:8080"],
                       "allowCredentials": true, "allowMethods": ["GET", "POST"],
                       "allowHeaders": ["x-canary"], "exposeHeaders": ["x-request-id"],
                       "maxAgeSeconds": 5}}
           ],
           "backends": [
             {"weight": 90, "cluster": "shop/web:80",
              "filters": [{"requestHeaderModifier": {"set": [{"name": "x-backend", "value": "stable"}]}}]},
             {"weight": 10, "unavailable": {"status": 503, "reason": "Service shop/web-canary has no ready endpoints"}}
           ],
           "timeouts": {"requestMs": 10000, "backendRequestMs": 2000},
           "retry": {"attempts": 3, "codes": [502, 503], "backoffMs": 100}
          },
          {"index": 1,
           "matches": [{"rank": 1, "path": {"exact": "/old"}}, {"rank": 9, "path": {"regex": "/legacy/.*"}}],
           "filters": [{"requestRedirect": {"scheme": "https", "hostname": "www.example.com",
                                            "path": {"replaceFullPath": "/new"}, "port": 8443,
                                            "statusCode": 301}}]
          },
          {"index": 3, "name": "fallback",
           "matches": [{"rank": 20, "path": {"prefix": "/"}}],
           "backends": [
             {"weight": 1, "cluster": "shop/web:80",
              "filters": [{"requestRedirect": {"path": {"replacePrefixMatch": "/"}, "statusCode": 302}}]},
             {"weight": 0, "unavailable": {"status": 500, "reason": "backendRef shop/missing: Service not found"}},
             {"weight": 1, "cluster": "shop/web:80",
              "filters": [{"urlRewrite": {"path": {"replaceFullPath": "/index.html"}}}]}
           ],
           "timeouts": {"requestMs": 0, "backendRequestMs": 30000},
           "retry": {"attempts": 0}
          }
        ]},
        {"namespace": "other", "name": "api.v1", "rules": [
          {"index": 0, "matches": [{"rank": 2, "path": {"exact": "/healthz"}, "method": "HEAD"}],
           "backends": [{"weight": 1, "cluster": "other/api:8080"}]}
        ]}
      ]
    }"#;

    /// A mesh table: IPv4 and IPv6 ClusterIPs, producer and consumer ports.
    pub(crate) const MESH_JSON: &str = r#"{
      "role": "mesh/client",
      "services": [
        {"namespace": "shop", "name": "web", "clusterIps": ["10.96.0.10", "fd00::10"], "ports": [
          {"port": 80, "name": "http", "origin": "producer", "attachments": [{"route": 0}]},
          {"port": 8080, "origin": "consumer", "attachments": [{"route": 1}, {"route": 0}]}
        ]},
        {"namespace": "shop", "name": "db-proxy", "clusterIps": ["10.96.0.11"], "ports": [
          {"port": 80, "origin": "producer", "attachments": [{"route": 1}]}
        ]}
      ],
      "routes": [
        {"namespace": "shop", "name": "web", "rules": [
          {"index": 0, "matches": [{"rank": 0, "path": {"prefix": "/"}}],
           "backends": [{"weight": 1, "cluster": "shop/web:80"}]}]},
        {"namespace": "client", "name": "web-consumer", "rules": [
          {"index": 0, "matches": [{"rank": 0, "path": {"prefix": "/"},
                                    "headers": [{"name": "x-version", "value": {"exact": "v2"}}]}],
           "backends": [{"weight": 1, "cluster": "shop/web-v2:8080"}]}]}
      ]
    }"#;

    /// The gateway fixture, parsed but not validated.
    pub(crate) fn gateway() -> RouteTable {
        parse(GATEWAY_JSON)
    }

    /// The mesh fixture, parsed but not validated.
    pub(crate) fn mesh() -> RouteTable {
        parse(MESH_JSON)
    }

    fn parse(json: &str) -> RouteTable {
        let msg: crate::table::wire::RouteTable = serde_json::from_str(json).unwrap();
        RouteTable::try_from(msg).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{gateway, mesh};
    use super::*;
    use crate::table::{
        Attachment, Header, HeaderMatch, Listener, MeshServicePort, QueryParamMatch, RouteOrigin,
    };

    /// Asserts the table is rejected at exactly `at` with a kind matching the pattern.
    macro_rules! rejects {
        ($table:expr, $at:expr, $kind:pat) => {{
            let err = validate(&$table).expect_err("the table should be rejected");
            assert_eq!(err.at.to_string(), $at, "wrong element for: {err}");
            assert!(matches!(err.kind, $kind), "wrong kind: {err}");
            err
        }};
    }

    const RULE0: &str = "routes[0] (shop/web).rules[0] (canary)";
    const RULE1: &str = "routes[0] (shop/web).rules[1]";
    const RULE2: &str = "routes[0] (shop/web).rules[2] (fallback)";

    #[test]
    fn fixtures_are_valid() {
        validate(&gateway()).unwrap();
        validate(&mesh()).unwrap();
    }

    #[test]
    fn role_syntax() {
        for bad in [
            "",
            "gateway",
            "gateway/shop",
            "gateway/shop/",
            "gateway//web",
            "gateway/Shop/web",
            "gateway/shop/web/x",
            "mesh",
            "mesh/",
            "mesh/a/b",
            "mesh/a.b",
            "gw/shop/web",
        ] {
            let mut t = gateway();
            t.role = bad.into();
            rejects!(t, "role", TableErrorKind::InvalidRole(_));
        }
        let mut t = gateway();
        t.role = "gateway/shop/web.v2".into();
        validate(&t).unwrap();
    }

    #[test]
    fn parents_match_the_role() {
        let mut t = gateway();
        t.services = mesh().services;
        rejects!(
            t,
            "services",
            TableErrorKind::WrongParentKind {
                role: "gateway",
                ..
            }
        );
        let mut t = mesh();
        t.listeners = gateway().listeners;
        rejects!(
            t,
            "listeners",
            TableErrorKind::WrongParentKind { role: "mesh", .. }
        );
    }

    fn listener(name: &str, port: u16, hostname: Option<&str>) -> Listener {
        Listener {
            name: name.into(),
            port,
            hostname: hostname.map(Into::into),
            attachments: vec![],
        }
    }

    #[test]
    fn listeners() {
        let mut t = gateway();
        t.listeners.push(listener("http", 8080, None));
        let e = rejects!(
            t,
            "listeners[2] (http).name",
            TableErrorKind::Duplicate { .. }
        );
        assert!(e.to_string().contains("first at listeners[0]"), "{e}");

        let mut t = gateway();
        t.listeners[0].name = "HTTP".into();
        rejects!(
            t,
            "listeners[0] (HTTP).name",
            TableErrorKind::InvalidName { .. }
        );

        let mut t = gateway();
        t.listeners[0].port = 0;
        rejects!(
            t,
            "listeners[0] (http).port",
            TableErrorKind::OutOfRange { value: 0, .. }
        );

        // Same port: different hostnames are fine, the same (or both absent) is ambiguous.
        let mut t = gateway();
        t.listeners
            .push(listener("other", 443, Some("shop.example.com")));
        validate(&t).unwrap();
        t.listeners
            .push(listener("again", 443, Some("*.example.com")));
        rejects!(
            t,
            "listeners[3] (again).hostname",
            TableErrorKind::Duplicate { .. }
        );
        let mut t = gateway();
        t.listeners.push(listener("plain", 80, None));
        rejects!(
            t,
            "listeners[2] (plain).hostname",
            TableErrorKind::Duplicate { .. }
        );

        let mut t = gateway();
        t.listeners[1].hostname = Some("*.Example.com".into());
        rejects!(
            t,
            "listeners[1] (https).hostname",
            TableErrorKind::InvalidHostname { .. }
        );
    }

    /// Kubernetes names and SectionNames are subdomains without a per-label limit (the API
    /// server accepts a 64-byte label); hostnames are DNS names (63 bytes a label). A route
    /// named with a long label made the whole table fail before (the `yaml` fuzz target).
    #[test]
    fn kubernetes_names_have_no_label_limit_hostnames_do() {
        let long = format!("{}api", "o".repeat(80));
        let mut t = gateway();
        t.routes[0].name = long.clone();
        t.routes[0].rules[1].name = Some(long.clone());
        t.listeners[0].name = format!("{long}.x");
        validate(&t).unwrap();
        assert!(k8s_subdomain(&"a".repeat(254)).is_err());
        assert!(k8s_subdomain("a..b").is_err());
        assert!(k8s_subdomain("-a").is_err());
        assert_eq!(
            hostname_syntax(&format!("{long}.example.com"), HostnameKind::Pattern),
            Err("a DNS label is at most 63 bytes")
        );
    }

    #[test]
    fn hostname_syntax_cases() {
        for ok in [
            "a",
            "shop.example.com",
            "*.example.com",
            "xn--bcher-kva.example",
            "1.2.3",
            "a-b.c",
        ] {
            hostname_syntax(ok, HostnameKind::Pattern).unwrap();
        }
        for bad in [
            "",
            "*",
            "*.",
            "a.*.com",
            "*example.com",
            "Shop.example.com",
            "shop.example.com:8080",
            "::1",
            "10.0.0.1",
            "*.10.0.0.1",
            "-a.com",
            "a-.com",
            "a..com",
            "a.com.",
            "a_b.com",
            "ü.com",
        ] {
            assert!(
                hostname_syntax(bad, HostnameKind::Pattern).is_err(),
                "{bad:?} accepted"
            );
        }
        let long_label = format!("{}.com", "a".repeat(64));
        assert!(hostname_syntax(&long_label, HostnameKind::Pattern).is_err());
        let long = vec!["a".repeat(63); 5].join(".");
        assert!(hostname_syntax(&long, HostnameKind::Pattern).is_err());
        // PreciseHostname: no wildcard; its CRD pattern admits a dotted IPv4.
        assert!(hostname_syntax("*.example.com", HostnameKind::Precise).is_err());
        hostname_syntax("10.0.0.1", HostnameKind::Precise).unwrap();
    }

    #[test]
    fn attachments() {
        let mut t = gateway();
        t.listeners[1].attachments[0].route = 7;
        rejects!(
            t,
            "listeners[1] (https).attachments[0].route",
            TableErrorKind::DanglingRoute(7)
        );

        for bad in ["10.0.0.1", "Shop.example.com", "shop.example.com:80", "*"] {
            let mut t = gateway();
            t.listeners[0].attachments[0].hostnames[1] = bad.into();
            rejects!(
                t,
                "listeners[0] (http).attachments[0].hostnames[1]",
                TableErrorKind::InvalidHostname { .. }
            );
        }

        let mut t = mesh();
        t.services[0].ports[1].attachments[1]
            .hostnames
            .push("web.shop.svc".into());
        rejects!(
            t,
            "services[0] (shop/web).ports[1] (8080).attachments[1].hostnames[0]",
            TableErrorKind::HostnameOnMeshParent(_)
        );
    }

    #[test]
    fn services() {
        let mut t = mesh();
        t.services[0].namespace.clear();
        rejects!(
            t,
            "services[0] (/web).namespace",
            TableErrorKind::InvalidName { .. }
        );
        let mut t = mesh();
        t.services[1].name = "db_proxy".into();
        rejects!(
            t,
            "services[1] (shop/db_proxy).name",
            TableErrorKind::InvalidName { .. }
        );

        let mut t = mesh();
        t.services[0].cluster_ips.clear();
        rejects!(
            t,
            "services[0] (shop/web).clusterIps",
            TableErrorKind::Empty
        );
        let mut t = mesh();
        t.services[0].cluster_ips.push("fd00::10".parse().unwrap());
        rejects!(
            t,
            "services[0] (shop/web).clusterIps[2]",
            TableErrorKind::Duplicate { .. }
        );

        let mut t = mesh();
        t.services[0].ports[0].port = 0;
        rejects!(
            t,
            "services[0] (shop/web).ports[0] (0).port",
            TableErrorKind::OutOfRange { .. }
        );
        let mut t = mesh();
        t.services[0].ports[1].port = 80;
        rejects!(
            t,
            "services[0] (shop/web).ports[1] (80).port",
            TableErrorKind::Duplicate { .. }
        );
        let mut t = mesh();
        t.services[0].ports[0].name = Some("HTTP".into());
        rejects!(
            t,
            "services[0] (shop/web).ports[0] (80).name",
            TableErrorKind::InvalidName { .. }
        );

        // Another Service on the same ClusterIP:port: the router could not tell them apart.
        let mut t = mesh();
        t.services[1].cluster_ips.push("fd00::10".parse().unwrap());
        t.services[1].ports.push(MeshServicePort {
            port: 8080,
            name: None,
            origin: RouteOrigin::Producer,
            attachments: vec![Attachment {
                route: 0,
                hostnames: vec![],
            }],
        });
        let e = rejects!(
            t,
            "services[1] (shop/db-proxy).ports[0] (80)",
            TableErrorKind::Duplicate { .. }
        );
        assert!(
            e.to_string()
                .contains("\"[fd00::10]:80\" (first at services[0] (shop/web).ports[0])"),
            "{e}"
        );
    }

    #[test]
    fn routes_and_rules() {
        let mut t = gateway();
        t.routes[1].name = "API".into();
        rejects!(
            t,
            "routes[1] (other/API).name",
            TableErrorKind::InvalidName { .. }
        );
        let mut t = gateway();
        t.routes[1].namespace = "a.b".into();
        rejects!(
            t,
            "routes[1] (a.b/api.v1).namespace",
            TableErrorKind::InvalidName { .. }
        );
        let mut t = gateway();
        t.routes[0].rules[2].name = Some("Fall back".into());
        rejects!(
            t,
            "routes[0] (shop/web).rules[2] (Fall back).name",
            TableErrorKind::InvalidName { .. }
        );
        let mut t = gateway();
        t.routes[0].rules[0].matches.clear();
        // ReplacePrefixMatch would also fail, but the empty list is reported first.
        rejects!(t, format!("{RULE0}.matches"), TableErrorKind::Empty);
    }

    #[test]
    fn path_rules() {
        for ok in [
            "/",
            "/a",
            "/a/",
            "/a%20b",
            "/~u/x.y",
            "/a/..b",
            "/a/.b",
            "/:@!$&'()*+,;=",
        ] {
            path_syntax(ok).unwrap();
        }
        for bad in [
            "", "a", "/a//b", "/a/./b", "/a/../b", "/a%2fb", "/a%2Fb", "/a#b", "/a/..", "/a/.",
            "/a b", "/a?b", "/a%zz", "/a%2", "/ü", "/a\\b",
        ] {
            assert!(path_syntax(bad).is_err(), "{bad:?} accepted");
        }
        assert!(path_syntax(&format!("/{}", "a".repeat(MAX_PATH_LEN))).is_err());
        path_syntax(&format!("/{}", "a".repeat(MAX_PATH_LEN - 1))).unwrap();

        let mut t = gateway();
        t.routes[0].rules[1].matches[0].path = PathMatch::Exact("/old//x".into());
        let e = rejects!(
            t,
            format!("{RULE1}.matches[0].path"),
            TableErrorKind::InvalidPath { .. }
        );
        assert_eq!(
            e.to_string(),
            "routes[0] (shop/web).rules[1].matches[0].path: invalid path \"/old//x\": must not contain '//'"
        );
        let mut t = gateway();
        t.routes[0].rules[0].matches[1].path = PathMatch::Prefix("v2".into());
        rejects!(
            t,
            format!("{RULE0}.matches[1].path"),
            TableErrorKind::InvalidPath { .. }
        );
    }

    #[test]
    fn regexes_compile() {
        let mut t = gateway();
        t.routes[0].rules[1].matches[1].path = PathMatch::Regex("/legacy/(".into());
        rejects!(
            t,
            format!("{RULE1}.matches[1].path"),
            TableErrorKind::InvalidRegex { .. }
        );
        let mut t = gateway();
        t.routes[0].rules[0].matches[0].headers[1].value = ValueMatch::Regex("[a-".into());
        rejects!(
            t,
            format!("{RULE0}.matches[0].headers[1].value"),
            TableErrorKind::InvalidRegex { .. }
        );
        let mut t = gateway();
        t.routes[0].rules[0].matches[0].query_params[1].value =
            ValueMatch::Regex("a".repeat(regex::MAX_PATTERN_LEN + 1));
        let e = rejects!(
            t,
            format!("{RULE0}.matches[0].queryParams[1].value"),
            TableErrorKind::InvalidRegex { .. }
        );
        // The pattern is shown cut short.
        assert!(e.to_string().len() < 600, "{e}");
    }

    /// The path is data: a caller finds the failing route, rule and field without parsing text,
    /// and a rule checked alone is rooted at the rule.
    #[test]
    fn error_paths_are_structured() {
        let mut t = gateway();
        t.routes[0].rules[0].matches[0].headers[0].name = "x y".into();
        let e = validate(&t).unwrap_err();
        let item = |list, index, label| Step::Item { list, index, label };
        assert_eq!(
            e.at,
            Location::Table(vec![
                item(
                    "routes",
                    0,
                    ItemLabel::Qualified {
                        namespace: "shop".into(),
                        name: "web".into()
                    }
                ),
                item("rules", 0, ItemLabel::Name("canary".into())),
                item("matches", 0, ItemLabel::None),
                item("headers", 0, ItemLabel::None),
                Step::Field("name"),
            ])
        );
        assert_eq!(
            (e.at.item("routes"), e.at.item("rules")),
            (Some(0), Some(0))
        );
        let e = validate_rule(&t.routes[0].rules[0]).unwrap_err();
        assert_eq!(
            e.at,
            Location::Rule(vec![
                item("matches", 0, ItemLabel::None),
                item("headers", 0, ItemLabel::None),
                Step::Field("name"),
            ])
        );
        assert_eq!(e.at.to_string(), "matches[0].headers[0].name");
    }

    #[test]
    fn header_matches() {
        for bad in ["", ":authority", "x y", "x\r\ny", "x:y", "é"] {
            let mut t = gateway();
            t.routes[0].rules[0].matches[0].headers[0].name = bad.into();
            rejects!(
                t,
                format!("{RULE0}.matches[0].headers[0].name"),
                TableErrorKind::InvalidHeaderName { .. }
            );
        }
        let mut t = gateway();
        t.routes[0].rules[0].matches[0].headers[0].name = "x y".into();
        assert_eq!(
            validate(&t).unwrap_err().to_string(),
            "routes[0] (shop/web).rules[0] (canary).matches[0].headers[0].name: invalid header \
             name \"x y\": must be an HTTP token (RFC 9110 tchar: letters, digits and !#$%&'*+-.^_`|~)"
        );
        let mut t = gateway();
        t.routes[0].rules[0].matches[0].headers[0].name = "x".repeat(257);
        rejects!(
            t,
            format!("{RULE0}.matches[0].headers[0].name"),
            TableErrorKind::InvalidHeaderName { .. }
        );

        for bad in ["a\rb", "a\nb", "a\0b"] {
            let mut t = gateway();
            t.routes[0].rules[0].matches[0].headers[0].value = ValueMatch::Exact(bad.into());
            rejects!(
                t,
                format!("{RULE0}.matches[0].headers[0].value"),
                TableErrorKind::InvalidValue { .. }
            );
        }

        let mut t = gateway();
        t.routes[0].rules[0].matches[0].headers[1].name = "X-Canary".into();
        let e = rejects!(
            t,
            format!("{RULE0}.matches[0].headers[1].name"),
            TableErrorKind::Duplicate { .. }
        );
        assert!(e.to_string().contains("first at headers[0]"), "{e}");

        let mut t = gateway();
        t.routes[0].rules[0].matches[0].headers = (0..=MAX_HEADER_MATCHES)
            .map(|i| HeaderMatch {
                name: format!("x-{i}"),
                value: ValueMatch::Exact("1".into()),
            })
            .collect();
        rejects!(
            t,
            format!("{RULE0}.matches[0].headers"),
            TableErrorKind::TooMany {
                count: 17,
                max: 16,
                ..
            }
        );
    }

    #[test]
    fn query_param_matches() {
        let mut t = gateway();
        t.routes[0].rules[0].matches[0].query_params[0].name.clear();
        rejects!(
            t,
            format!("{RULE0}.matches[0].queryParams[0].name"),
            TableErrorKind::Empty
        );
        let mut t = gateway();
        t.routes[0].rules[0].matches[0].query_params[0].name = "a\nb".into();
        rejects!(
            t,
            format!("{RULE0}.matches[0].queryParams[0].name"),
            TableErrorKind::InvalidValue { .. }
        );
        let mut t = gateway();
        t.routes[0].rules[0].matches[0].query_params[0].value = ValueMatch::Exact("1\n".into());
        rejects!(
            t,
            format!("{RULE0}.matches[0].queryParams[0].value"),
            TableErrorKind::InvalidValue { .. }
        );
        // Query names are case-sensitive: `V` and `v` are different parameters.
        let mut t = gateway();
        t.routes[0].rules[0].matches[0].query_params[0].name = "V".into();
        validate(&t).unwrap();
        t.routes[0].rules[0].matches[0].query_params[0].name = "v".into();
        rejects!(
            t,
            format!("{RULE0}.matches[0].queryParams[1].name"),
            TableErrorKind::Duplicate { .. }
        );
        let mut t = gateway();
        t.routes[0].rules[0].matches[0].query_params = (0..=MAX_QUERY_PARAM_MATCHES)
            .map(|i| QueryParamMatch {
                name: format!("q{i}"),
                value: ValueMatch::Exact("1".into()),
            })
            .collect();
        rejects!(
            t,
            format!("{RULE0}.matches[0].queryParams"),
            TableErrorKind::TooMany { .. }
        );
    }

    #[test]
    fn backends() {
        let mut t = gateway();
        t.routes[0].rules[0].backends[0].weight = MAX_WEIGHT + 1;
        rejects!(
            t,
            format!("{RULE0}.backends[0] (shop/web:80).weight"),
            TableErrorKind::OutOfRange {
                value: 1_000_001,
                ..
            }
        );
        let mut t = gateway();
        t.routes[0].rules[0].backends[0].weight = MAX_WEIGHT;
        validate(&t).unwrap();

        let mut t = gateway();
        t.routes[0].rules[0].backends[0].target = BackendTarget::Cluster(String::new());
        rejects!(
            t,
            format!("{RULE0}.backends[0] ().cluster"),
            TableErrorKind::Empty
        );
        let mut t = gateway();
        t.routes[0].rules[0].backends[0].target = BackendTarget::Cluster("a\r\nx-evil: 1".into());
        rejects!(
            t,
            format!("{RULE0}.backends[0] (a\\r\\nx-evil: 1).cluster"),
            TableErrorKind::InvalidValue { .. }
        );

        for status in [0, 200, 404, 502, 504] {
            let mut t = gateway();
            t.routes[0].rules[0].backends[1].target = BackendTarget::Unavailable {
                status,
                reason: "r".into(),
            };
            rejects!(
                t,
                format!("{RULE0}.backends[1] (unavailable).unavailable.status"),
                TableErrorKind::InvalidStatus { .. }
            );
        }
        let mut t = gateway();
        t.routes[0].rules[0].backends[1].target = BackendTarget::Unavailable {
            status: 500,
            reason: String::new(),
        };
        rejects!(
            t,
            format!("{RULE0}.backends[1] (unavailable).unavailable.reason"),
            TableErrorKind::Empty
        );
        let mut t = gateway();
        t.routes[0].rules[0].backends[1].target = BackendTarget::Unavailable {
            status: 500,
            reason: "a\nb".into(),
        };
        rejects!(
            t,
            format!("{RULE0}.backends[1] (unavailable).unavailable.reason"),
            TableErrorKind::InvalidValue { .. }
        );

        let mut t = gateway();
        let b = t.routes[1].rules[0].backends[0].clone();
        t.routes[1].rules[0].backends = vec![b; MAX_BACKENDS + 1];
        rejects!(
            t,
            "routes[1] (other/api.v1).rules[0].backends",
            TableErrorKind::TooMany { .. }
        );
    }

    fn rule0_filter(t: &mut RouteTable, i: usize) -> &mut Filter {
        &mut t.routes[0].rules[0].filters[i]
    }

    #[test]
    fn header_modifiers() {
        let modifier = |t: &mut RouteTable| -> HeaderModifier {
            match rule0_filter(t, 0) {
                Filter::RequestHeaderModifier(m) => m.clone(),
                _ => unreachable!(),
            }
        };
        let set = |t: &mut RouteTable, m: HeaderModifier| {
            *rule0_filter(t, 0) = Filter::RequestHeaderModifier(m);
        };
        let at = format!("{RULE0}.filters[0] (RequestHeaderModifier)");

        let mut t = gateway();
        let mut m = modifier(&mut t);
        m.set[0].name = "bad name".into();
        set(&mut t, m);
        rejects!(
            t,
            format!("{at}.set[0].name"),
            TableErrorKind::InvalidHeaderName { .. }
        );

        let mut t = gateway();
        let mut m = modifier(&mut t);
        m.add[0].value = "v\r\nx-injected: 1".into();
        set(&mut t, m);
        rejects!(
            t,
            format!("{at}.add[0].value"),
            TableErrorKind::InvalidValue { .. }
        );

        let mut t = gateway();
        let mut m = modifier(&mut t);
        m.remove.push(":path".into());
        set(&mut t, m);
        rejects!(
            t,
            format!("{at}.remove[1]"),
            TableErrorKind::InvalidHeaderName { .. }
        );

        let mut t = gateway();
        let mut m = modifier(&mut t);
        m.set.push(Header {
            name: "X-Env".into(),
            value: "b".into(),
        });
        set(&mut t, m);
        rejects!(
            t,
            format!("{at}.set[1].name"),
            TableErrorKind::Duplicate { .. }
        );

        // x-envoy-* and x-gamma-* are the filter's alone (any case, set or add, request or
        // response); removing them is harmless and allowed.
        for (list, name) in [
            ("set", "x-envoy-retry-grpc-on"),
            ("add", "X-Envoy-Upstream-Alt-Stat-Name"),
            ("set", "x-gamma-cluster"),
            ("add", "x-gamma-mirror-0"),
        ] {
            let mut t = gateway();
            let mut m = modifier(&mut t);
            let h = Header {
                name: name.into(),
                value: "1".into(),
            };
            match list {
                "set" => m.set.push(h),
                _ => m.add.push(h),
            }
            let index = if list == "set" {
                m.set.len()
            } else {
                m.add.len()
            } - 1;
            set(&mut t, m);
            let err = rejects!(
                t,
                format!("{at}.{list}[{index}].name"),
                TableErrorKind::ReservedHeader { .. }
            );
            assert!(err.to_string().contains("is reserved"), "{err}");
        }
        let mut t = gateway();
        let response = t.routes[0].rules[0]
            .filters
            .iter()
            .position(|f| matches!(f, Filter::ResponseHeaderModifier(_)))
            .unwrap();
        *rule0_filter(&mut t, response) = Filter::ResponseHeaderModifier(HeaderModifier {
            set: vec![Header {
                name: "x-envoy-overloaded".into(),
                value: "true".into(),
            }],
            add: vec![],
            remove: vec![],
        });
        rejects!(
            t,
            format!("{RULE0}.filters[{response}] (ResponseHeaderModifier).set[0].name"),
            TableErrorKind::ReservedHeader { .. }
        );
        let mut t = gateway();
        let mut m = modifier(&mut t);
        m.remove.push("x-envoy-retry-on".into());
        m.set.push(Header {
            name: "x-envoyish".into(),
            value: "1".into(),
        });
        set(&mut t, m);
        validate(&t).unwrap();

        // The same name in `set` and `add` is not a conflict.
        let mut t = gateway();
        let mut m = modifier(&mut t);
        m.add.push(Header {
            name: "x-env".into(),
            value: "b".into(),
        });
        set(&mut t, m);
        validate(&t).unwrap();

        let mut t = gateway();
        let mut m = modifier(&mut t);
        m.remove = (0..=MAX_HEADER_MODIFIER_ENTRIES)
            .map(|i| format!("x-{i}"))
            .collect();
        set(&mut t, m);
        rejects!(t, format!("{at}.remove"), TableErrorKind::TooMany { .. });

        // Response modifiers are checked the same way.
        let mut t = gateway();
        if let Filter::ResponseHeaderModifier(m) = rule0_filter(&mut t, 1) {
            m.set[0].value = "\0".into();
        }
        rejects!(
            t,
            format!("{RULE0}.filters[1] (ResponseHeaderModifier).set[0].value"),
            TableErrorKind::InvalidValue { .. }
        );
    }

    fn redirect_of(t: &mut RouteTable) -> &mut Redirect {
        match &mut t.routes[0].rules[1].filters[0] {
            Filter::RequestRedirect(r) => r,
            _ => unreachable!(),
        }
    }

    #[test]
    fn redirects() {
        let at = format!("{RULE1}.filters[0] (RequestRedirect)");
        // `statusCode` and `scheme` are enums: `wire::tests::enums_are_parsed_on_conversion`.
        for host in ["*.example.com", "Example.com", "a b"] {
            let mut t = gateway();
            redirect_of(&mut t).hostname = Some(host.into());
            rejects!(
                t,
                format!("{at}.hostname"),
                TableErrorKind::InvalidHostname { .. }
            );
        }
        let mut t = gateway();
        redirect_of(&mut t).port = Some(0);
        rejects!(t, format!("{at}.port"), TableErrorKind::OutOfRange { .. });
        for full in ["", "new", "/a/../b"] {
            let mut t = gateway();
            redirect_of(&mut t).path = Some(PathModifier::ReplaceFullPath(full.into()));
            rejects!(
                t,
                format!("{at}.path.replaceFullPath"),
                TableErrorKind::InvalidPath { .. }
            );
        }

        // Rule 1 has an Exact and a RegularExpression match: no ReplacePrefixMatch.
        let mut t = gateway();
        redirect_of(&mut t).path = Some(PathModifier::ReplacePrefixMatch("/x".into()));
        let e = rejects!(
            t,
            format!("{at}.path.replacePrefixMatch"),
            TableErrorKind::ReplacePrefixMatchWithoutPrefix { index: 0, .. }
        );
        assert!(
            e.to_string().contains("matches[0] is an Exact path match"),
            "{e}"
        );

        // A rule-level redirect answers everything: backends would be dead config.
        let mut t = gateway();
        let b = t.routes[1].rules[0].backends[0].clone();
        t.routes[0].rules[1].backends.push(b);
        rejects!(
            t,
            format!("{RULE1}.backends"),
            TableErrorKind::RedirectWithBackends { filter: 0 }
        );
    }

    #[test]
    fn rewrites() {
        let at = format!("{RULE0}.filters[2] (URLRewrite)");
        fn rewrite(t: &mut RouteTable) -> &mut UrlRewrite {
            match rule0_filter(t, 2) {
                Filter::UrlRewrite(r) => r,
                _ => unreachable!(),
            }
        }
        for host in ["*.internal", "API.internal", "a:80"] {
            let mut t = gateway();
            rewrite(&mut t).hostname = Some(host.into());
            rejects!(
                t,
                format!("{at}.hostname"),
                TableErrorKind::InvalidHostname { .. }
            );
        }
        // ReplacePrefixMatch may be empty or `/`; otherwise a valid path.
        for ok in ["", "/", "/x/", "/x"] {
            let mut t = gateway();
            rewrite(&mut t).path = Some(PathModifier::ReplacePrefixMatch(ok.into()));
            validate(&t).unwrap();
        }
        for bad in ["x", "//", "/a%2f"] {
            let mut t = gateway();
            rewrite(&mut t).path = Some(PathModifier::ReplacePrefixMatch(bad.into()));
            rejects!(
                t,
                format!("{at}.path.replacePrefixMatch"),
                TableErrorKind::InvalidPath { .. }
            );
        }
        // Every match of the rule must be a PathPrefix.
        let mut t = gateway();
        t.routes[0].rules[0].matches[1].path = PathMatch::Regex("/v2/.*".into());
        rejects!(
            t,
            format!("{at}.path.replacePrefixMatch"),
            TableErrorKind::ReplacePrefixMatchWithoutPrefix { index: 1, .. }
        );
        // ... also for backend-level filters (rule 2's first backend redirects with it).
        let mut t = gateway();
        t.routes[0].rules[2].matches[0].path = PathMatch::Exact("/".into());
        rejects!(
            t,
            format!(
                "{RULE2}.backends[0] (shop/web:80).filters[0] (RequestRedirect).path.replacePrefixMatch"
            ),
            TableErrorKind::ReplacePrefixMatchWithoutPrefix { index: 0, .. }
        );
    }

    #[test]
    fn filter_combinations() {
        // Each type at most once per list, except RequestMirror (the fixture has two).
        let mut t = gateway();
        let cors = t.routes[0].rules[0].filters[5].clone();
        t.routes[0].rules[0].filters.push(cors);
        let e = rejects!(
            t,
            format!("{RULE0}.filters[6] (CORS)"),
            TableErrorKind::Duplicate { .. }
        );
        assert!(e.to_string().contains("first at filters[5]"), "{e}");

        // RequestRedirect and URLRewrite never share a list: rule level...
        let mut t = gateway();
        let redirect = t.routes[0].rules[1].filters[0].clone();
        t.routes[0].rules[0].filters.push(redirect);
        t.routes[0].rules[0].backends.clear();
        rejects!(
            t,
            format!("{RULE0}.filters[6] (RequestRedirect)"),
            TableErrorKind::RedirectWithRewrite {
                redirect: 6,
                rewrite: 2
            }
        );
        // ... and backend level.
        let mut t = gateway();
        let rewrite = t.routes[0].rules[2].backends[2].filters[0].clone();
        t.routes[0].rules[2].backends[0].filters.push(rewrite);
        rejects!(
            t,
            format!("{RULE2}.backends[0] (shop/web:80).filters[1] (URLRewrite)"),
            TableErrorKind::RedirectWithRewrite {
                redirect: 0,
                rewrite: 1
            }
        );

        let mut t = gateway();
        let mirror = t.routes[0].rules[0].filters[3].clone();
        t.routes[0].rules[0].filters = vec![mirror; MAX_FILTERS + 1];
        rejects!(
            t,
            format!("{RULE0}.filters"),
            TableErrorKind::TooMany { .. }
        );
    }

    #[test]
    fn mirrors() {
        let at = format!("{RULE0}.filters[3] (RequestMirror)");
        let set = |t: &mut RouteTable, cluster: &str, numerator, denominator| {
            *rule0_filter(t, 3) = Filter::RequestMirror(Mirror {
                cluster: cluster.into(),
                numerator,
                denominator,
            });
        };
        let mut t = gateway();
        set(&mut t, "shop/shadow:80", 0, 0);
        rejects!(
            t,
            format!("{at}.denominator"),
            TableErrorKind::InvalidFraction { .. }
        );
        let mut t = gateway();
        set(&mut t, "shop/shadow:80", 101, 100);
        rejects!(
            t,
            format!("{at}.numerator"),
            TableErrorKind::InvalidFraction { .. }
        );
        let mut t = gateway();
        set(&mut t, "shop/shadow:80", 0, 100);
        validate(&t).unwrap();
        let mut t = gateway();
        set(&mut t, "", 1, 2);
        rejects!(t, format!("{at}.cluster"), TableErrorKind::Empty);
        let mut t = gateway();
        set(&mut t, "a\nb", 1, 2);
        rejects!(
            t,
            format!("{at}.cluster"),
            TableErrorKind::InvalidValue { .. }
        );
    }

    #[test]
    fn cors_origins() {
        for ok in [
            "*",
            "http://a",
            "https://*.example.com",
            "https://*",
            "http://localhost:8080",
            "https://Foo.Example:443",
            "http://10.0.0.1:65535",
        ] {
            OriginPattern::parse(ok).unwrap();
        }
        for bad in [
            "",
            "example.com",
            "ftp://example.com",
            "HTTPS://example.com",
            "https://",
            "https://example.com/",
            "https://example.com:",
            "https://example.com:0",
            "https://example.com:99999",
            "https://example.com:123456",
            "https://a..b",
            "https://a.*.b",
            "https://[::1]",
            "https://a b",
            "https://example.com?x",
        ] {
            assert!(OriginPattern::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    fn cors_of(t: &mut RouteTable) -> &mut Cors {
        match rule0_filter(t, 5) {
            Filter::Cors(c) => c,
            _ => unreachable!(),
        }
    }

    #[test]
    fn cors() {
        let at = format!("{RULE0}.filters[5] (CORS)");
        let mut t = gateway();
        cors_of(&mut t).allow_origins[1] = "localhost:8080".into();
        rejects!(
            t,
            format!("{at}.allowOrigins[1]"),
            TableErrorKind::InvalidOrigin { .. }
        );
        let mut t = gateway();
        cors_of(&mut t).allow_origins.push("*".into());
        rejects!(
            t,
            format!("{at}.allowOrigins"),
            TableErrorKind::WildcardNotAlone
        );
        let mut t = gateway();
        cors_of(&mut t).allow_origins = vec!["*".into()];
        validate(&t).unwrap();

        let mut t = gateway();
        cors_of(&mut t).allow_methods.push("get".into());
        rejects!(
            t,
            format!("{at}.allowMethods[2]"),
            TableErrorKind::InvalidMethod(_)
        );
        let mut t = gateway();
        cors_of(&mut t).allow_methods.push("*".into());
        rejects!(
            t,
            format!("{at}.allowMethods"),
            TableErrorKind::WildcardNotAlone
        );
        let mut t = gateway();
        cors_of(&mut t).allow_methods = vec!["*".into()];
        validate(&t).unwrap();

        let mut t = gateway();
        cors_of(&mut t).allow_headers.push("x y".into());
        rejects!(
            t,
            format!("{at}.allowHeaders[1]"),
            TableErrorKind::InvalidHeaderName { .. }
        );
        let mut t = gateway();
        cors_of(&mut t).allow_headers.push("*".into());
        rejects!(
            t,
            format!("{at}.allowHeaders"),
            TableErrorKind::WildcardNotAlone
        );
        let mut t = gateway();
        cors_of(&mut t).expose_headers[0] = "x-id\r\n".into();
        rejects!(
            t,
            format!("{at}.exposeHeaders[0]"),
            TableErrorKind::InvalidHeaderName { .. }
        );
        let mut t = gateway();
        cors_of(&mut t).allow_origins = (0..=MAX_CORS_ORIGINS)
            .map(|i| format!("https://o{i}.example"))
            .collect();
        rejects!(
            t,
            format!("{at}.allowOrigins"),
            TableErrorKind::TooMany { .. }
        );
    }

    #[test]
    fn timeouts() {
        let mut t = gateway();
        t.routes[0].rules[0].timeouts = Some(Timeouts {
            request_ms: Some(1000),
            backend_request_ms: Some(1001),
        });
        let e = rejects!(
            t,
            format!("{RULE0}.timeouts.backendRequestMs"),
            TableErrorKind::BackendTimeoutExceedsRequest {
                backend_request_ms: 1001,
                request_ms: 1000
            }
        );
        assert!(e.to_string().contains("1001 ms"), "{e}");
        // Equal is fine; a zero request timeout disables the comparison (the fixture's rule 2).
        t.routes[0].rules[0].timeouts = Some(Timeouts {
            request_ms: Some(1000),
            backend_request_ms: Some(1000),
        });
        validate(&t).unwrap();

        let mut t = gateway();
        t.routes[0].rules[0].timeouts = Some(Timeouts {
            request_ms: Some(MAX_DURATION_MS + 1),
            backend_request_ms: None,
        });
        rejects!(
            t,
            format!("{RULE0}.timeouts.requestMs"),
            TableErrorKind::OutOfRange { .. }
        );
    }

    #[test]
    fn retries() {
        let at = format!("{RULE0}.retry");
        let set = |t: &mut RouteTable, attempts, codes: Vec<u16>, backoff_ms| {
            t.routes[0].rules[0].retry = Some(Retry {
                attempts,
                codes,
                backoff_ms,
            });
        };
        for code in [0, 200, 399, 600] {
            let mut t = gateway();
            set(&mut t, 1, vec![503, code], None);
            rejects!(
                t,
                format!("{at}.codes[1]"),
                TableErrorKind::InvalidStatus { .. }
            );
        }
        let mut t = gateway();
        set(&mut t, 1, vec![400, 599], None);
        validate(&t).unwrap();
        let mut t = gateway();
        set(&mut t, 1, vec![503, 502, 503], None);
        rejects!(
            t,
            format!("{at}.codes[2]"),
            TableErrorKind::Duplicate { .. }
        );
        let mut t = gateway();
        set(&mut t, MAX_RETRY_ATTEMPTS + 1, vec![], None);
        rejects!(
            t,
            format!("{at}.attempts"),
            TableErrorKind::OutOfRange { .. }
        );
        let mut t = gateway();
        set(&mut t, MAX_RETRY_ATTEMPTS, vec![], Some(MAX_DURATION_MS));
        validate(&t).unwrap();
        let mut t = gateway();
        set(&mut t, 1, vec![], Some(MAX_DURATION_MS + 1));
        rejects!(
            t,
            format!("{at}.backoffMs"),
            TableErrorKind::OutOfRange { .. }
        );
    }

    fn simple_route(i: usize, matches: Vec<Match>) -> Route {
        Route {
            namespace: "ns".into(),
            name: format!("r{i}"),
            rules: vec![Rule {
                matches,
                ..Rule::default()
            }],
        }
    }

    fn prefix(rank: u32) -> Match {
        Match {
            rank,
            path: PathMatch::Prefix("/".into()),
            method: None,
            headers: vec![],
            query_params: vec![],
        }
    }

    #[test]
    fn table_limits() {
        let mut t = gateway();
        t.routes = (0..=MAX_ROUTES)
            .map(|i| simple_route(i, vec![prefix(0)]))
            .collect();
        rejects!(t, "routes", TableErrorKind::TooMany { count: 100_001, .. });

        // Regexes are counted before any is compiled.
        let regex = |i| Match {
            path: PathMatch::Regex(format!("/r{i}")),
            ..prefix(0)
        };
        let mut t = gateway();
        t.listeners.clear();
        t.routes = vec![simple_route(0, (0..=MAX_REGEXES).map(regex).collect())];
        rejects!(t, "routes", TableErrorKind::TooMany { count: 10_001, .. });

        // Fewer regexes, but more source than the budget: named, before any is compiled.
        let long = |i: usize| Match {
            path: PathMatch::Regex(format!("/r{i:04}/{}", "[a-z]".repeat(200))),
            ..prefix(0)
        };
        let mut t = gateway();
        t.listeners.clear();
        let n = MAX_REGEX_SOURCE_BYTES / 1000 + 1;
        t.routes = vec![simple_route(0, (0..n).map(long).collect())];
        let err = rejects!(t, "routes", TableErrorKind::RegexBudget { .. });
        assert!(err.to_string().contains("budget"), "{err}");
        // Within the budget: many short patterns.
        let short = |i: usize| Match {
            path: PathMatch::Regex(format!("/r{i:05}/[a-z]+")),
            ..prefix(0)
        };
        t.routes = vec![simple_route(0, (0..MAX_REGEXES).map(short).collect())];
        validate(&t).unwrap();

        // An attachment costs a few bytes but makes the router compile the route again.
        let mut t = gateway();
        t.routes = vec![simple_route(0, (0..100).map(regex).collect())];
        t.listeners = vec![listener("http", 80, None)];
        t.listeners[0].attachments = vec![
            Attachment {
                route: 0,
                hostnames: vec![],
            };
            MAX_REGEXES / 100 + 1
        ];
        rejects!(t, "table", TableErrorKind::TooMany { count: 10_100, .. });

        let mut t = gateway();
        t.routes = vec![simple_route(0, (0..1000).map(prefix).collect())];
        t.listeners = vec![listener("http", 80, None)];
        t.listeners[0].attachments = vec![Attachment {
            route: 0,
            hostnames: (0..10).map(|i| format!("h{i}.example")).collect(),
        }];
        validate(&t).unwrap();
        let att = t.listeners[0].attachments[0].clone();
        t.listeners[0].attachments = vec![att; 101];
        rejects!(
            t,
            "table",
            TableErrorKind::TooMany {
                count: 1_010_000,
                ..
            }
        );
    }

    #[test]
    fn shown_values_are_cut_and_escaped() {
        let long = "é".repeat(SHOWN_VALUE_MAX);
        let s = shown(&long);
        assert!(s.len() <= SHOWN_VALUE_MAX + '…'.len_utf8(), "{}", s.len());
        assert!(s.ends_with('…'));
        assert_eq!(shown("short"), "short");

        let mut t = gateway();
        t.routes[0].name = "a\nb".into();
        let e = validate(&t).unwrap_err();
        assert_eq!(e.at.to_string(), "routes[0] (shop/a\\nb).name");
        assert!(!e.to_string().contains('\n'), "{e}");
    }
}
