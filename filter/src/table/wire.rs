//! The protobuf wire format of a [`RouteTable`](super::RouteTable): hand-written prost messages
//! mirroring the model one to one (no `.proto` codegen, no protoc).
//!
//! This is a wire contract between config-pusher and filters of other versions: **a tag is never
//! reused or renumbered**; a removed field's tag is retired (listed as `reserved` below); new
//! fields take new tags. The equivalent `.proto` (proto3, package `gammaroute.v1`), usable with
//! `protoc --decode`:
//!
//! ```text
//! message RouteTable      { string version = 1; string role = 2; repeated Listener listeners = 3;
//!                           repeated MeshService services = 4; repeated Route routes = 5; }
//! message Listener        { string name = 1; uint32 port = 2; optional string hostname = 3;
//!                           repeated Attachment attachments = 4; }
//! message MeshService     { string namespace = 1; string name = 2; repeated string cluster_ips = 3;
//!                           repeated MeshServicePort ports = 4; }
//! message MeshServicePort { uint32 port = 1; optional string name = 2; RouteOrigin origin = 3;
//!                           repeated Attachment attachments = 4; }
//! enum RouteOrigin        { ROUTE_ORIGIN_UNSPECIFIED = 0; PRODUCER = 1; CONSUMER = 2; }
//! message Attachment      { uint32 route = 1; repeated string hostnames = 2; }
//! message Route           { string namespace = 1; string name = 2; repeated Rule rules = 3; }
//! message Rule            { uint32 index = 1; optional string name = 2; repeated Match matches = 3;
//!                           repeated Filter filters = 4; repeated Backend backends = 5;
//!                           Timeouts timeouts = 6; Retry retry = 7; }
//! message Match           { uint32 rank = 1;
//!                           oneof path { string exact = 2; string prefix = 3; string regex = 4; }
//!                           optional string method = 5; repeated HeaderMatch headers = 6;
//!                           repeated QueryParamMatch query_params = 7; }
//! message HeaderMatch     { string name = 1; oneof value { string exact = 2; string regex = 3; } }
//! message QueryParamMatch { string name = 1; oneof value { string exact = 2; string regex = 3; } }
//! message Filter          { oneof kind { HeaderModifier request_header_modifier = 1;
//!                           HeaderModifier response_header_modifier = 2; Redirect request_redirect = 3;
//!                           UrlRewrite url_rewrite = 4; Mirror request_mirror = 5; Cors cors = 6; } }
//! message HeaderModifier  { repeated Header set = 1; repeated Header add = 2; repeated string remove = 3; }
//! message Header          { string name = 1; string value = 2; }
//! message Redirect        { optional string scheme = 1; optional string hostname = 2;
//!                           oneof path { string replace_full_path = 3; string replace_prefix_match = 4; }
//!                           optional uint32 port = 5; uint32 status_code = 6; }
//! message UrlRewrite      { reserved 1; optional string hostname = 2;
//!                           oneof path { string replace_full_path = 3; string replace_prefix_match = 4; } }
//! message Mirror          { string cluster = 1; uint32 numerator = 2; uint32 denominator = 3; }
//! message Cors            { repeated string allow_origins = 1; bool allow_credentials = 2;
//!                           repeated string allow_methods = 3; repeated string allow_headers = 4;
//!                           repeated string expose_headers = 5; uint32 max_age_seconds = 6; }
//! message Backend         { uint32 weight = 1;
//!                           oneof target { string cluster = 2; Unavailable unavailable = 3; }
//!                           repeated Filter filters = 4; }
//! message Unavailable     { uint32 status = 1; string reason = 2; }
//! message Timeouts        { optional uint64 request_ms = 1; optional uint64 backend_request_ms = 2; }
//! message Retry           { uint32 attempts = 1; repeated uint32 codes = 2; optional uint64 backoff_ms = 3; }
//! ```
//!
//! Mapping rules:
//! - Rust enums with data are `oneof`s. Where the model field is required (`Match.path`,
//!   `HeaderMatch.value`, `Filter`, `Backend.target`) an unset oneof is an error naming the element;
//!   where it is an `Option` (`Redirect.path`, `UrlRewrite.path`) unset is `None`. `Redirect` and
//!   `UrlRewrite` share one `PathModifier` oneof, hence the same tags 3/4 (and `UrlRewrite.hostname`
//!   sits on 2, as in `Redirect`; 1 is never used there).
//! - `RouteOrigin` is a proto enum whose 0 is "unspecified": unset or unknown values are errors.
//! - `Option<_>` scalars are proto3 `optional` (presence kept: `Some("")` ≠ `None`); nested
//!   optional messages are message fields.
//! - `u16` (ports, status codes, retry codes) travel as `uint32`; values above 65535 are errors.
//! - IP addresses travel as their text form (`10.96.0.10`, `fd00::a`): readable in
//!   `protoc --decode_raw`, the same as the JSON, and parsed with the standard strict parser.
//! - Nothing is a `map`, so the encoding is deterministic, which [`super::RouteTable::content_version`]
//!   relies on.
//!
//! Compatibility: prost skips fields it does not know, but the version is the hash of the table
//! *as this filter understands it*, so a table that sets a field newer than the filter fails the
//! version check and is refused whole (the JSON model refuses unknown fields outright). Roll out
//! filters before a config-pusher that writes new fields.

use std::net::IpAddr;

use super::validate::{shown, At, Label, TableError, TableErrorKind};

// ---------------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------------

#[derive(Clone, PartialEq, prost::Message)]
pub struct RouteTable {
    #[prost(string, tag = "1")]
    pub version: String,
    #[prost(string, tag = "2")]
    pub role: String,
    #[prost(message, repeated, tag = "3")]
    pub listeners: Vec<Listener>,
    #[prost(message, repeated, tag = "4")]
    pub services: Vec<MeshService>,
    #[prost(message, repeated, tag = "5")]
    pub routes: Vec<Route>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Listener {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(uint32, tag = "2")]
    pub port: u32,
    #[prost(string, optional, tag = "3")]
    pub hostname: Option<String>,
    #[prost(message, repeated, tag = "4")]
    pub attachments: Vec<Attachment>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct MeshService {
    #[prost(string, tag = "1")]
    pub namespace: String,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(string, repeated, tag = "3")]
    pub cluster_ips: Vec<String>,
    #[prost(message, repeated, tag = "4")]
    pub ports: Vec<MeshServicePort>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct MeshServicePort {
    #[prost(uint32, tag = "1")]
    pub port: u32,
    #[prost(string, optional, tag = "2")]
    pub name: Option<String>,
    #[prost(enumeration = "RouteOrigin", tag = "3")]
    pub origin: i32,
    #[prost(message, repeated, tag = "4")]
    pub attachments: Vec<Attachment>,
}

/// Proto enum: 0 is reserved for "not set" so a missing origin is detected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum RouteOrigin {
    Unspecified = 0,
    Producer = 1,
    Consumer = 2,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Attachment {
    #[prost(uint32, tag = "1")]
    pub route: u32,
    #[prost(string, repeated, tag = "2")]
    pub hostnames: Vec<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Route {
    #[prost(string, tag = "1")]
    pub namespace: String,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(message, repeated, tag = "3")]
    pub rules: Vec<Rule>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Rule {
    #[prost(uint32, tag = "1")]
    pub index: u32,
    #[prost(string, optional, tag = "2")]
    pub name: Option<String>,
    #[prost(message, repeated, tag = "3")]
    pub matches: Vec<Match>,
    #[prost(message, repeated, tag = "4")]
    pub filters: Vec<Filter>,
    #[prost(message, repeated, tag = "5")]
    pub backends: Vec<Backend>,
    #[prost(message, optional, tag = "6")]
    pub timeouts: Option<Timeouts>,
    #[prost(message, optional, tag = "7")]
    pub retry: Option<Retry>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Match {
    #[prost(uint32, tag = "1")]
    pub rank: u32,
    #[prost(oneof = "PathMatch", tags = "2, 3, 4")]
    pub path: Option<PathMatch>,
    #[prost(string, optional, tag = "5")]
    pub method: Option<String>,
    #[prost(message, repeated, tag = "6")]
    pub headers: Vec<HeaderMatch>,
    #[prost(message, repeated, tag = "7")]
    pub query_params: Vec<QueryParamMatch>,
}

/// `Match.path`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum PathMatch {
    #[prost(string, tag = "2")]
    Exact(String),
    #[prost(string, tag = "3")]
    Prefix(String),
    #[prost(string, tag = "4")]
    Regex(String),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct HeaderMatch {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(oneof = "ValueMatch", tags = "2, 3")]
    pub value: Option<ValueMatch>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct QueryParamMatch {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(oneof = "ValueMatch", tags = "2, 3")]
    pub value: Option<ValueMatch>,
}

/// `HeaderMatch.value` and `QueryParamMatch.value`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum ValueMatch {
    #[prost(string, tag = "2")]
    Exact(String),
    #[prost(string, tag = "3")]
    Regex(String),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Filter {
    #[prost(oneof = "FilterKind", tags = "1, 2, 3, 4, 5, 6")]
    pub kind: Option<FilterKind>,
}

/// `Filter.kind`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum FilterKind {
    #[prost(message, tag = "1")]
    RequestHeaderModifier(HeaderModifier),
    #[prost(message, tag = "2")]
    ResponseHeaderModifier(HeaderModifier),
    #[prost(message, tag = "3")]
    RequestRedirect(Redirect),
    #[prost(message, tag = "4")]
    UrlRewrite(UrlRewrite),
    #[prost(message, tag = "5")]
    RequestMirror(Mirror),
    #[prost(message, tag = "6")]
    Cors(Cors),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct HeaderModifier {
    #[prost(message, repeated, tag = "1")]
    pub set: Vec<Header>,
    #[prost(message, repeated, tag = "2")]
    pub add: Vec<Header>,
    #[prost(string, repeated, tag = "3")]
    pub remove: Vec<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Header {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Redirect {
    #[prost(string, optional, tag = "1")]
    pub scheme: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub hostname: Option<String>,
    #[prost(oneof = "PathModifier", tags = "3, 4")]
    pub path: Option<PathModifier>,
    #[prost(uint32, optional, tag = "5")]
    pub port: Option<u32>,
    #[prost(uint32, tag = "6")]
    pub status_code: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct UrlRewrite {
    // Tag 1 is never used (kept free so hostname/path share Redirect's tags).
    #[prost(string, optional, tag = "2")]
    pub hostname: Option<String>,
    #[prost(oneof = "PathModifier", tags = "3, 4")]
    pub path: Option<PathModifier>,
}

/// `Redirect.path` and `UrlRewrite.path`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum PathModifier {
    #[prost(string, tag = "3")]
    ReplaceFullPath(String),
    #[prost(string, tag = "4")]
    ReplacePrefixMatch(String),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Mirror {
    #[prost(string, tag = "1")]
    pub cluster: String,
    #[prost(uint32, tag = "2")]
    pub numerator: u32,
    #[prost(uint32, tag = "3")]
    pub denominator: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Cors {
    #[prost(string, repeated, tag = "1")]
    pub allow_origins: Vec<String>,
    #[prost(bool, tag = "2")]
    pub allow_credentials: bool,
    #[prost(string, repeated, tag = "3")]
    pub allow_methods: Vec<String>,
    #[prost(string, repeated, tag = "4")]
    pub allow_headers: Vec<String>,
    #[prost(string, repeated, tag = "5")]
    pub expose_headers: Vec<String>,
    #[prost(uint32, tag = "6")]
    pub max_age_seconds: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Backend {
    #[prost(uint32, tag = "1")]
    pub weight: u32,
    #[prost(oneof = "BackendTarget", tags = "2, 3")]
    pub target: Option<BackendTarget>,
    #[prost(message, repeated, tag = "4")]
    pub filters: Vec<Filter>,
}

/// `Backend.target`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum BackendTarget {
    #[prost(string, tag = "2")]
    Cluster(String),
    #[prost(message, tag = "3")]
    Unavailable(Unavailable),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Unavailable {
    #[prost(uint32, tag = "1")]
    pub status: u32,
    #[prost(string, tag = "2")]
    pub reason: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Timeouts {
    #[prost(uint64, optional, tag = "1")]
    pub request_ms: Option<u64>,
    #[prost(uint64, optional, tag = "2")]
    pub backend_request_ms: Option<u64>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Retry {
    #[prost(uint32, tag = "1")]
    pub attempts: u32,
    #[prost(uint32, repeated, tag = "2")]
    pub codes: Vec<u32>,
    #[prost(uint64, optional, tag = "3")]
    pub backoff_ms: Option<u64>,
}

// ---------------------------------------------------------------------------------------------
// Model → wire (infallible)
// ---------------------------------------------------------------------------------------------

use super as m;

impl From<&m::RouteTable> for RouteTable {
    fn from(t: &m::RouteTable) -> Self {
        RouteTable {
            version: t.version.clone(),
            role: t.role.clone(),
            listeners: t.listeners.iter().map(Into::into).collect(),
            services: t.services.iter().map(Into::into).collect(),
            routes: t.routes.iter().map(Into::into).collect(),
        }
    }
}

impl From<&m::Listener> for Listener {
    fn from(l: &m::Listener) -> Self {
        Listener {
            name: l.name.clone(),
            port: u32::from(l.port),
            hostname: l.hostname.clone(),
            attachments: l.attachments.iter().map(Into::into).collect(),
        }
    }
}

impl From<&m::MeshService> for MeshService {
    fn from(s: &m::MeshService) -> Self {
        MeshService {
            namespace: s.namespace.clone(),
            name: s.name.clone(),
            cluster_ips: s.cluster_ips.iter().map(IpAddr::to_string).collect(),
            ports: s.ports.iter().map(Into::into).collect(),
        }
    }
}

impl From<&m::MeshServicePort> for MeshServicePort {
    fn from(p: &m::MeshServicePort) -> Self {
        let origin = match p.origin {
            m::RouteOrigin::Producer => RouteOrigin::Producer,
            m::RouteOrigin::Consumer => RouteOrigin::Consumer,
        };
        MeshServicePort {
            port: u32::from(p.port),
            name: p.name.clone(),
            origin: origin as i32,
            attachments: p.attachments.iter().map(Into::into).collect(),
        }
    }
}

impl From<&m::Attachment> for Attachment {
    fn from(a: &m::Attachment) -> Self {
        Attachment {
            route: a.route,
            hostnames: a.hostnames.clone(),
        }
    }
}

impl From<&m::Route> for Route {
    fn from(r: &m::Route) -> Self {
        Route {
            namespace: r.namespace.clone(),
            name: r.name.clone(),
            rules: r.rules.iter().map(Into::into).collect(),
        }
    }
}

impl From<&m::Rule> for Rule {
    fn from(r: &m::Rule) -> Self {
        Rule {
            index: r.index,
            name: r.name.clone(),
            matches: r.matches.iter().map(Into::into).collect(),
            filters: r.filters.iter().map(Into::into).collect(),
            backends: r.backends.iter().map(Into::into).collect(),
            timeouts: r.timeouts.as_ref().map(Into::into),
            retry: r.retry.as_ref().map(Into::into),
        }
    }
}

impl From<&m::Match> for Match {
    fn from(x: &m::Match) -> Self {
        Match {
            rank: x.rank,
            path: Some(match &x.path {
                m::PathMatch::Exact(p) => PathMatch::Exact(p.clone()),
                m::PathMatch::Prefix(p) => PathMatch::Prefix(p.clone()),
                m::PathMatch::Regex(p) => PathMatch::Regex(p.clone()),
            }),
            method: x.method.clone(),
            headers: x
                .headers
                .iter()
                .map(|h| HeaderMatch {
                    name: h.name.clone(),
                    value: Some((&h.value).into()),
                })
                .collect(),
            query_params: x
                .query_params
                .iter()
                .map(|q| QueryParamMatch {
                    name: q.name.clone(),
                    value: Some((&q.value).into()),
                })
                .collect(),
        }
    }
}

impl From<&m::ValueMatch> for ValueMatch {
    fn from(v: &m::ValueMatch) -> Self {
        match v {
            m::ValueMatch::Exact(s) => ValueMatch::Exact(s.clone()),
            m::ValueMatch::Regex(s) => ValueMatch::Regex(s.clone()),
        }
    }
}

impl From<&m::Filter> for Filter {
    fn from(f: &m::Filter) -> Self {
        let kind = match f {
            m::Filter::RequestHeaderModifier(h) => FilterKind::RequestHeaderModifier(h.into()),
            m::Filter::ResponseHeaderModifier(h) => FilterKind::ResponseHeaderModifier(h.into()),
            m::Filter::RequestRedirect(r) => FilterKind::RequestRedirect(r.into()),
            m::Filter::UrlRewrite(r) => FilterKind::UrlRewrite(UrlRewrite {
                hostname: r.hostname.clone(),
                path: r.path.as_ref().map(Into::into),
            }),
            m::Filter::RequestMirror(x) => FilterKind::RequestMirror(Mirror {
                cluster: x.cluster.clone(),
                numerator: x.numerator,
                denominator: x.denominator,
            }),
            m::Filter::Cors(c) => FilterKind::Cors(Cors {
                allow_origins: c.allow_origins.clone(),
                allow_credentials: c.allow_credentials,
                allow_methods: c.allow_methods.clone(),
                allow_headers: c.allow_headers.clone(),
                expose_headers: c.expose_headers.clone(),
                max_age_seconds: c.max_age_seconds,
            }),
        };
        Filter { kind: Some(kind) }
    }
}

impl From<&m::HeaderModifier> for HeaderModifier {
    fn from(h: &m::HeaderModifier) -> Self {
        let headers = |list: &[m::Header]| {
            list.iter()
                .map(|h| Header {
                    name: h.name.clone(),
                    value: h.value.clone(),
                })
                .collect()
        };
        HeaderModifier {
            set: headers(&h.set),
            add: headers(&h.add),
            remove: h.remove.clone(),
        }
    }
}

impl From<&m::Redirect> for Redirect {
    fn from(r: &m::Redirect) -> Self {
        Redirect {
            scheme: r.scheme.clone(),
            hostname: r.hostname.clone(),
            path: r.path.as_ref().map(Into::into),
            port: r.port.map(u32::from),
            status_code: u32::from(r.status_code),
        }
    }
}

impl From<&m::PathModifier> for PathModifier {
    fn from(p: &m::PathModifier) -> Self {
        match p {
            m::PathModifier::ReplaceFullPath(s) => PathModifier::ReplaceFullPath(s.clone()),
            m::PathModifier::ReplacePrefixMatch(s) => PathModifier::ReplacePrefixMatch(s.clone()),
        }
    }
}

impl From<&m::Backend> for Backend {
    fn from(b: &m::Backend) -> Self {
        let target = match &b.target {
            m::BackendTarget::Cluster(c) => BackendTarget::Cluster(c.clone()),
            m::BackendTarget::Unavailable { status, reason } => {
                BackendTarget::Unavailable(Unavailable {
                    status: u32::from(*status),
                    reason: reason.clone(),
                })
            }
        };
        Backend {
            weight: b.weight,
            target: Some(target),
            filters: b.filters.iter().map(Into::into).collect(),
        }
    }
}

impl From<&m::Timeouts> for Timeouts {
    fn from(t: &m::Timeouts) -> Self {
        Timeouts {
            request_ms: t.request_ms,
            backend_request_ms: t.backend_request_ms,
        }
    }
}

impl From<&m::Retry> for Retry {
    fn from(r: &m::Retry) -> Self {
        Retry {
            attempts: r.attempts,
            codes: r.codes.iter().copied().map(u32::from).collect(),
            backoff_ms: r.backoff_ms,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Wire → model (fallible: missing oneofs, u16 ranges, IP syntax). Semantic checks are left to
// `validate`, which runs on every decoded table.
// ---------------------------------------------------------------------------------------------

impl TryFrom<RouteTable> for m::RouteTable {
    type Error = TableError;

    fn try_from(w: RouteTable) -> Result<Self, TableError> {
        let root = At::ROOT;
        Ok(m::RouteTable {
            version: w.version,
            role: w.role,
            listeners: each(w.listeners, |i, l| listener(&root, i, l))?,
            services: each(w.services, |i, s| service(&root, i, s))?,
            routes: each(w.routes, |i, r| route(&root, i, r))?,
        })
    }
}

/// Converts every element of a list, stopping at the first error.
fn each<W, M>(
    list: Vec<W>,
    mut f: impl FnMut(usize, W) -> Result<M, TableError>,
) -> Result<Vec<M>, TableError> {
    list.into_iter().enumerate().map(|(i, w)| f(i, w)).collect()
}

fn u16_of(at: &At, value: u32) -> Result<u16, TableError> {
    u16::try_from(value).map_err(|_| {
        at.err(TableErrorKind::OutOfRange {
            value: u64::from(value),
            min: 0,
            max: u64::from(u16::MAX),
        })
    })
}

fn listener(root: &At, i: usize, w: Listener) -> Result<m::Listener, TableError> {
    let at = root.labeled("listeners", i, Label::Name(&w.name));
    let port = u16_of(&at.field("port"), w.port)?;
    let attachments = w.attachments.into_iter().map(attachment).collect();
    Ok(m::Listener {
        name: w.name,
        port,
        hostname: w.hostname,
        attachments,
    })
}

fn attachment(w: Attachment) -> m::Attachment {
    m::Attachment {
        route: w.route,
        hostnames: w.hostnames,
    }
}

fn service(root: &At, i: usize, w: MeshService) -> Result<m::MeshService, TableError> {
    let at = root.labeled("services", i, Label::Qualified(&w.namespace, &w.name));
    let cluster_ips = w
        .cluster_ips
        .iter()
        .enumerate()
        .map(|(j, ip)| {
            ip.parse::<IpAddr>().map_err(|_| {
                at.item("clusterIps", j)
                    .err(TableErrorKind::InvalidIp(shown(ip)))
            })
        })
        .collect::<Result<_, _>>()?;
    let ports = each(w.ports, |j, p| {
        let pat = at.labeled("ports", j, Label::Port(p.port));
        let origin = match RouteOrigin::try_from(p.origin) {
            Ok(RouteOrigin::Producer) => m::RouteOrigin::Producer,
            Ok(RouteOrigin::Consumer) => m::RouteOrigin::Consumer,
            Ok(RouteOrigin::Unspecified) => {
                return Err(pat.field("origin").err(TableErrorKind::Missing {
                    expected: "PRODUCER, CONSUMER",
                }));
            }
            Err(_) => {
                return Err(pat.field("origin").err(TableErrorKind::UnknownEnumValue {
                    value: p.origin,
                    expected: "PRODUCER, CONSUMER",
                }));
            }
        };
        Ok(m::MeshServicePort {
            port: u16_of(&pat.field("port"), p.port)?,
            name: p.name,
            origin,
            attachments: p.attachments.into_iter().map(attachment).collect(),
        })
    })?;
    Ok(m::MeshService {
        namespace: w.namespace,
        name: w.name,
        cluster_ips,
        ports,
    })
}

fn route(root: &At, i: usize, w: Route) -> Result<m::Route, TableError> {
    let at = root.labeled("routes", i, Label::Qualified(&w.namespace, &w.name));
    let rules = each(w.rules, |j, r| rule(&at, j, r))?;
    Ok(m::Route {
        namespace: w.namespace,
        name: w.name,
        rules,
    })
}

fn rule(route: &At, j: usize, w: Rule) -> Result<m::Rule, TableError> {
    let at = route.labeled("rules", j, Label::opt(w.name.as_deref()));
    let at = &at;
    Ok(m::Rule {
        index: w.index,
        matches: each(w.matches, |i, x| match_(&at.item("matches", i), x))?,
        filters: filters(at, w.filters)?,
        backends: each(w.backends, |i, b| backend(&at.item("backends", i), b))?,
        timeouts: w.timeouts.map(|t| m::Timeouts {
            request_ms: t.request_ms,
            backend_request_ms: t.backend_request_ms,
        }),
        retry: match w.retry {
            Some(r) => Some(retry(&at.field("retry"), r)?),
            None => None,
        },
        name: w.name,
    })
}

fn match_(at: &At, w: Match) -> Result<m::Match, TableError> {
    let path = match w.path {
        Some(PathMatch::Exact(p)) => m::PathMatch::Exact(p),
        Some(PathMatch::Prefix(p)) => m::PathMatch::Prefix(p),
        Some(PathMatch::Regex(p)) => m::PathMatch::Regex(p),
        None => {
            return Err(at.field("path").err(TableErrorKind::Missing {
                expected: "exact, prefix, regex",
            }));
        }
    };
    Ok(m::Match {
        rank: w.rank,
        path,
        method: w.method,
        headers: each(w.headers, |i, h| {
            Ok(m::HeaderMatch {
                value: value_match(&at.item("headers", i), h.value)?,
                name: h.name,
            })
        })?,
        query_params: each(w.query_params, |i, q| {
            Ok(m::QueryParamMatch {
                value: value_match(&at.item("queryParams", i), q.value)?,
                name: q.name,
            })
        })?,
    })
}

fn value_match(at: &At, w: Option<ValueMatch>) -> Result<m::ValueMatch, TableError> {
    match w {
        Some(ValueMatch::Exact(s)) => Ok(m::ValueMatch::Exact(s)),
        Some(ValueMatch::Regex(s)) => Ok(m::ValueMatch::Regex(s)),
        None => Err(at.field("value").err(TableErrorKind::Missing {
            expected: "exact, regex",
        })),
    }
}

fn filters(owner: &At, list: Vec<Filter>) -> Result<Vec<m::Filter>, TableError> {
    each(list, |i, f| {
        let at = owner.item("filters", i);
        Ok(match f.kind {
            Some(FilterKind::RequestHeaderModifier(h)) => {
                m::Filter::RequestHeaderModifier(header_modifier(h))
            }
            Some(FilterKind::ResponseHeaderModifier(h)) => {
                m::Filter::ResponseHeaderModifier(header_modifier(h))
            }
            Some(FilterKind::RequestRedirect(r)) => m::Filter::RequestRedirect(m::Redirect {
                port: match r.port {
                    Some(p) => Some(u16_of(&at.field("port"), p)?),
                    None => None,
                },
                status_code: u16_of(&at.field("statusCode"), r.status_code)?,
                scheme: r.scheme,
                hostname: r.hostname,
                path: r.path.map(path_modifier),
            }),
            Some(FilterKind::UrlRewrite(r)) => m::Filter::UrlRewrite(m::UrlRewrite {
                hostname: r.hostname,
                path: r.path.map(path_modifier),
            }),
            Some(FilterKind::RequestMirror(x)) => m::Filter::RequestMirror(m::Mirror {
                cluster: x.cluster,
                numerator: x.numerator,
                denominator: x.denominator,
            }),
            Some(FilterKind::Cors(c)) => m::Filter::Cors(m::Cors {
                allow_origins: c.allow_origins,
                allow_credentials: c.allow_credentials,
                allow_methods: c.allow_methods,
                allow_headers: c.allow_headers,
                expose_headers: c.expose_headers,
                max_age_seconds: c.max_age_seconds,
            }),
            None => {
                return Err(at.err(TableErrorKind::Missing {
                    expected: "requestHeaderModifier, responseHeaderModifier, requestRedirect, \
                               urlRewrite, requestMirror, cors",
                }));
            }
        })
    })
}

fn header_modifier(w: HeaderModifier) -> m::HeaderModifier {
    let headers = |list: Vec<Header>| {
        list.into_iter()
            .map(|h| m::Header {
                name: h.name,
                value: h.value,
            })
            .collect()
    };
    m::HeaderModifier {
        set: headers(w.set),
        add: headers(w.add),
        remove: w.remove,
    }
}

fn path_modifier(w: PathModifier) -> m::PathModifier {
    match w {
        PathModifier::ReplaceFullPath(s) => m::PathModifier::ReplaceFullPath(s),
        PathModifier::ReplacePrefixMatch(s) => m::PathModifier::ReplacePrefixMatch(s),
    }
}

fn backend(at: &At, w: Backend) -> Result<m::Backend, TableError> {
    let target = match w.target {
        Some(BackendTarget::Cluster(c)) => m::BackendTarget::Cluster(c),
        Some(BackendTarget::Unavailable(u)) => m::BackendTarget::Unavailable {
            status: u16_of(&at.field("unavailable").field("status"), u.status)?,
            reason: u.reason,
        },
        None => {
            return Err(at.err(TableErrorKind::Missing {
                expected: "cluster, unavailable",
            }));
        }
    };
    Ok(m::Backend {
        weight: w.weight,
        target,
        filters: filters(at, w.filters)?,
    })
}

fn retry(at: &At, w: Retry) -> Result<m::Retry, TableError> {
    Ok(m::Retry {
        attempts: w.attempts,
        codes: w
            .codes
            .iter()
            .enumerate()
            .map(|(i, c)| u16_of(&at.item("codes", i), *c))
            .collect::<Result<_, _>>()?,
        backoff_ms: w.backoff_ms,
    })
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;
    use crate::table::validate::fixtures::{gateway, mesh};

    /// An edit of a wire table that should make it fail to convert.
    type Mutation = fn(&mut RouteTable);

    fn to_model(w: RouteTable) -> Result<m::RouteTable, TableError> {
        m::RouteTable::try_from(w)
    }

    #[test]
    fn model_wire_model_is_identity() {
        for t in [gateway(), mesh()] {
            let w = RouteTable::from(&t);
            assert_eq!(to_model(w.clone()).unwrap(), t);
            // And through bytes.
            let bytes = w.encode_to_vec();
            assert_eq!(to_model(RouteTable::decode(&*bytes).unwrap()).unwrap(), t);
        }
    }

    #[test]
    fn optional_presence_survives() {
        // `Some("")` and `None` are different tables; proto3 `optional` keeps the difference.
        let mut t = gateway();
        t.listeners[0].hostname = Some(String::new());
        t.routes[0].rules[1].name = Some(String::new());
        t.routes[1].rules[0].matches[0].method = Some(String::new());
        let back = to_model(RouteTable::decode(&*RouteTable::from(&t).encode_to_vec()).unwrap());
        assert_eq!(back.unwrap(), t);
        assert_ne!(t.content_version(), gateway().content_version());
    }

    /// The field tags are a wire contract: these bytes must never change.
    #[test]
    fn tags_are_stable() {
        let enc = |m: &dyn Fn() -> Vec<u8>| m();
        // Match: rank=1 (varint), path.prefix=3 (len), method=5 (len).
        let x = m::Match {
            rank: 1,
            path: m::PathMatch::Prefix("/".into()),
            method: Some("GET".into()),
            headers: vec![],
            query_params: vec![],
        };
        assert_eq!(
            enc(&|| Match::from(&x).encode_to_vec()),
            [0x08, 1, 0x1a, 1, b'/', 0x2a, 3, b'G', b'E', b'T']
        );
        // Backend: weight=1, target.cluster=2, target.unavailable=3 {status=1, reason=2}.
        let b = m::Backend {
            weight: 2,
            target: m::BackendTarget::Cluster("c".into()),
            filters: vec![],
        };
        assert_eq!(Backend::from(&b).encode_to_vec(), [0x08, 2, 0x12, 1, b'c']);
        let b = m::Backend {
            weight: 0,
            target: m::BackendTarget::Unavailable {
                status: 503,
                reason: "r".into(),
            },
            filters: vec![],
        };
        assert_eq!(
            Backend::from(&b).encode_to_vec(),
            [0x1a, 6, 0x08, 0xf7, 0x03, 0x12, 1, b'r']
        );
        // Filter kinds 1-6: an empty CORS filter is field 6, empty.
        let f = m::Filter::Cors(m::Cors::default());
        assert_eq!(Filter::from(&f).encode_to_vec(), [0x32, 0]);
        // Redirect: status_code=6; UrlRewrite: hostname=2, path.replace_prefix_match=4.
        let f = m::Filter::RequestRedirect(m::Redirect {
            scheme: None,
            hostname: None,
            path: None,
            port: Some(8443),
            status_code: 302,
        });
        assert_eq!(
            Filter::from(&f).encode_to_vec(),
            [0x1a, 6, 0x28, 0xfb, 0x41, 0x30, 0xae, 0x02]
        );
        let f = m::Filter::UrlRewrite(m::UrlRewrite {
            hostname: Some("h".into()),
            path: Some(m::PathModifier::ReplacePrefixMatch("/".into())),
        });
        assert_eq!(
            Filter::from(&f).encode_to_vec(),
            [0x22, 6, 0x12, 1, b'h', 0x22, 1, b'/']
        );
        // MeshServicePort: port=1, origin=3 (CONSUMER = 2).
        let p = m::MeshServicePort {
            port: 80,
            name: None,
            origin: m::RouteOrigin::Consumer,
            attachments: vec![],
        };
        assert_eq!(
            MeshServicePort::from(&p).encode_to_vec(),
            [0x08, 80, 0x18, 2]
        );
        // RouteTable: version=1, role=2.
        let t = m::RouteTable {
            version: "v".into(),
            role: "r".into(),
            ..m::RouteTable::default()
        };
        assert_eq!(
            RouteTable::from(&t).encode_to_vec(),
            [0x0a, 1, b'v', 0x12, 1, b'r']
        );
    }

    /// The fixtures' content hashes: they change only if the fixtures, the tags or the encoding
    /// change — the last two must never happen.
    #[test]
    fn content_versions_are_pinned() {
        assert_eq!(
            gateway().content_version(),
            "2ceeafc35577efb6592fc0827cfd2f72"
        );
        assert_eq!(mesh().content_version(), "ee294dc8d17cfdad1bccbb497753fa87");
    }

    #[test]
    fn u16_fields_out_of_range() {
        let cases: [(&str, Mutation); 6] = [
            ("listeners[0] (http).port", |w| w.listeners[0].port = 65536),
            ("routes[0] (shop/web).rules[1].filters[0].statusCode", |w| {
                let Some(FilterKind::RequestRedirect(r)) =
                    &mut w.routes[0].rules[1].filters[0].kind
                else {
                    unreachable!()
                };
                r.status_code = 70_000;
            }),
            ("routes[0] (shop/web).rules[1].filters[0].port", |w| {
                let Some(FilterKind::RequestRedirect(r)) =
                    &mut w.routes[0].rules[1].filters[0].kind
                else {
                    unreachable!()
                };
                r.port = Some(u32::MAX);
            }),
            (
                "routes[0] (shop/web).rules[0] (canary).backends[1].unavailable.status",
                |w| {
                    let Some(BackendTarget::Unavailable(u)) =
                        &mut w.routes[0].rules[0].backends[1].target
                    else {
                        unreachable!()
                    };
                    u.status = 100_503;
                },
            ),
            (
                "routes[0] (shop/web).rules[0] (canary).retry.codes[1]",
                |w| {
                    w.routes[0].rules[0].retry.as_mut().unwrap().codes[1] = 65_536 + 503;
                },
            ),
            ("listeners[1] (https).port", |w| {
                w.listeners[1].port = 1 << 20
            }),
        ];
        for (at, mutate) in cases {
            let mut w = RouteTable::from(&gateway());
            mutate(&mut w);
            let e = to_model(w).unwrap_err();
            assert_eq!(e.at, at, "{e}");
            assert!(
                matches!(e.kind, TableErrorKind::OutOfRange { max: 65535, .. }),
                "{e}"
            );
        }
        let mut w = RouteTable::from(&mesh());
        w.services[0].ports[1].port = 65_536 + 8080;
        let e = to_model(w).unwrap_err();
        assert_eq!(e.at, "services[0] (shop/web).ports[1] (73616).port");
    }

    #[test]
    fn bad_ips() {
        for bad in [
            "",
            "10.0.0",
            "10.0.0.256",
            "010.0.0.1",
            "fd00::g",
            "10.0.0.1:80",
            " 10.0.0.1",
        ] {
            let mut w = RouteTable::from(&mesh());
            w.services[0].cluster_ips[1] = bad.into();
            let e = to_model(w).unwrap_err();
            assert_eq!(e.at, "services[0] (shop/web).clusterIps[1]", "{e}");
            assert_eq!(e.kind, TableErrorKind::InvalidIp(bad.into()));
        }
    }

    #[test]
    fn missing_oneofs_and_enums() {
        let rule0 = "routes[0] (shop/web).rules[0] (canary)";
        let cases: [(String, Mutation); 5] = [
            (format!("{rule0}.matches[1].path"), |w| {
                w.routes[0].rules[0].matches[1].path = None
            }),
            (format!("{rule0}.matches[0].headers[1].value"), |w| {
                w.routes[0].rules[0].matches[0].headers[1].value = None
            }),
            (format!("{rule0}.matches[0].queryParams[0].value"), |w| {
                w.routes[0].rules[0].matches[0].query_params[0].value = None
            }),
            (format!("{rule0}.filters[4]"), |w| {
                w.routes[0].rules[0].filters[4].kind = None
            }),
            (format!("{rule0}.backends[0].filters[0]"), |w| {
                w.routes[0].rules[0].backends[0].filters[0].kind = None
            }),
        ];
        for (at, mutate) in cases {
            let mut w = RouteTable::from(&gateway());
            mutate(&mut w);
            let e = to_model(w).unwrap_err();
            assert_eq!(e.at, at, "{e}");
            assert!(matches!(e.kind, TableErrorKind::Missing { .. }), "{e}");
        }
        let mut w = RouteTable::from(&gateway());
        w.routes[1].rules[0].backends[0].target = None;
        let e = to_model(w).unwrap_err();
        assert_eq!(e.at, "routes[1] (other/api.v1).rules[0].backends[0]");
        assert_eq!(
            e.to_string(),
            "routes[1] (other/api.v1).rules[0].backends[0]: required field is not set \
             (expected one of: cluster, unavailable)"
        );

        let mut w = RouteTable::from(&mesh());
        w.services[1].ports[0].origin = RouteOrigin::Unspecified as i32;
        let e = to_model(w).unwrap_err();
        assert_eq!(e.at, "services[1] (shop/db-proxy).ports[0] (80).origin");
        assert!(matches!(e.kind, TableErrorKind::Missing { .. }), "{e}");
        let mut w = RouteTable::from(&mesh());
        w.services[1].ports[0].origin = 7;
        let e = to_model(w).unwrap_err();
        assert!(
            matches!(e.kind, TableErrorKind::UnknownEnumValue { value: 7, .. }),
            "{e}"
        );
        // An absent optional path modifier is simply `None`.
        let mut w = RouteTable::from(&gateway());
        let Some(FilterKind::UrlRewrite(r)) = &mut w.routes[0].rules[0].filters[2].kind else {
            unreachable!()
        };
        r.path = None;
        to_model(w).unwrap();
    }
}
