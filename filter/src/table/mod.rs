//! The RouteTable: the only contract between config-pusher and the filter.
//!
//! One table is a self-contained document for one *proxy role*: `gateway/<ns>/<name>` (every
//! listener of one Gateway) or `mesh/<client-namespace>` (every routed Service as seen by clients in
//! that namespace: producer routes, or that namespace's consumer routes where it has any).
//!
//! config-pusher does everything that needs the whole cluster — attachment, hostname intersection,
//! ReferenceGrants, backend resolution, precedence — and writes the *result* here. The filter only
//! matches: it never re-derives Gateway API policy. So a table names clusters, not Services, and
//! carries a precedence `rank` per match rather than creation timestamps.
//!
//! The schema is `filter/proto/table.proto`; [`wire`] holds its Rust types, which are both the
//! protobuf message (the wire, `.pb` golden files) and the JSON document (inline plugin
//! configuration, `.json` golden files). Both decoders read into [`wire::RouteTable`] and convert
//! once into this model, whose types say what the conversion checked (ports are `u16`, addresses
//! `IpAddr`, a match always has a path); [`validate`] then checks the rest, so a table is either
//! accepted whole or rejected whole with a [`TableError`] that names the offending element.

use std::net::IpAddr;

mod checked;
mod codec;
pub mod limits;
pub mod location;
pub mod origin;
pub mod regex;
mod valid;
pub mod validate;
pub mod wire;

pub use checked::{CheckedMatch, CheckedValue, CorsOrigins, FilterAt, Method};
pub use codec::{decode_json, decode_proto, encode_json, encode_proto, parse_json, parse_proto};
pub use location::{ItemLabel, Location, Step};
pub use origin::Scheme;
pub use valid::ValidTable;
pub use validate::{validate, validate_rule, TableError, TableErrorKind};

/// A complete routing configuration for one proxy role.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouteTable {
    /// Content hash of everything else in the table (see [`RouteTable::content_version`]);
    /// config-pusher uses it as the HTTP `ETag`, the filter reports it as the applied version.
    pub version: String,
    /// `gateway/<namespace>/<name>` or `mesh/<client-namespace>`.
    pub role: String,
    /// Gateway listeners (gateway roles). Requests are matched against the listener they arrive on.
    pub listeners: Vec<Listener>,
    /// Routed Services (mesh roles). Requests are matched by destination ClusterIP:port.
    pub services: Vec<MeshService>,
    /// Every route referenced by an [`Attachment`], stored once however many parents use it.
    pub routes: Vec<Route>,
}

/// A Gateway listener (`Gateway.spec.listeners[]`), HTTP or HTTPS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// `listeners[].name`, the `sectionName` routes attach to.
    pub name: String,
    /// The port the listener serves. Redirects without an explicit scheme or port keep it.
    pub port: u16,
    /// `listeners[].hostname`: exact or `*.` wildcard; absent matches every Host.
    /// With several listeners on one port, a request goes to the most specific one only
    /// (listener isolation: exact > longest wildcard > no hostname).
    pub hostname: Option<String>,
    /// The routes attached to this listener.
    pub attachments: Vec<Attachment>,
}

/// A Service used as a GAMMA parent (`parentRef: {kind: Service}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshService {
    pub namespace: String,
    pub name: String,
    /// The Service frontend addresses (`spec.clusterIPs`). GAMMA identifies the parent by the
    /// connection's destination address, never by the Host header (GEP-1294).
    pub cluster_ips: Vec<IpAddr>,
    /// Ports with routes. A port without routes is absent: it keeps default routing.
    pub ports: Vec<MeshServicePort>,
}

/// One port of a [`MeshService`] and the routes that apply to it for this table's client namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshServicePort {
    pub port: u16,
    /// `spec.ports[].name`, the `sectionName` routes attach to.
    pub name: Option<String>,
    /// Whose routes these are: a namespace with consumer routes for this Service uses only those
    /// (GEP-1686: "Consumer routes have priority over producer routes").
    pub origin: RouteOrigin,
    pub attachments: Vec<Attachment>,
}

/// Whether a mesh port's routes come from the Service's own namespace or the client's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteOrigin {
    /// Routes in the Service's namespace: apply to clients from every namespace.
    Producer,
    /// Routes in the client's namespace: apply to that namespace only.
    Consumer,
}

/// A route attached to one parent, with the hostnames it serves *there*.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// Index into [`RouteTable::routes`].
    pub route: u32,
    /// Effective hostnames: the route's `hostnames` intersected with the listener's hostname
    /// (exact or `*.` wildcard, lowercase). Empty matches every Host (always so for mesh parents).
    pub hostnames: Vec<String>,
}

impl Attachment {
    /// The hostname patterns this attachment serves: each of `hostnames`, or one `None` (every
    /// Host) when the list is empty.
    pub fn host_patterns(&self) -> impl Iterator<Item = Option<&str>> {
        let any = self.hostnames.is_empty().then_some(None);
        self.hostnames.iter().map(|h| Some(h.as_str())).chain(any)
    }
}

/// An HTTPRoute, with only the rules that survived validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub namespace: String,
    pub name: String,
    pub rules: Vec<Rule>,
}

/// `HTTPRoute.spec.rules[]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rule {
    /// Position in the HTTPRoute's `rules` list (rules dropped as invalid leave gaps).
    pub index: u32,
    /// `rules[].name` (GEP-995); for metrics and explain only.
    pub name: Option<String>,
    /// The rule matches if any of these does. Never empty: config-pusher writes the CRD default
    /// (PathPrefix `/`) when the route has none.
    pub matches: Vec<Match>,
    /// Rule filters in the order the route lists them.
    pub filters: Vec<Filter>,
    /// Weighted backends. Empty (or all weights 0) without a redirect answers 500.
    pub backends: Vec<Backend>,
    /// `rules[].timeouts` (GEP-1742).
    pub timeouts: Option<Timeouts>,
    /// `rules[].retry` (GEP-1731).
    pub retry: Option<Retry>,
}

/// `rules[].matches[]`: every condition must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    /// Precedence among all matches of the same parent: lower wins. A route may be attached to
    /// several parents, so config-pusher ranks every match of the table in one order. Computed by config-pusher from
    /// the spec's order (Exact path > longest PathPrefix > method > most headers > most query
    /// params > oldest route > `namespace/name` > rule order > match order). Hostname specificity
    /// ranks above it and is applied by the router, since it depends on the request's Host.
    pub rank: u32,
    pub path: PathMatch,
    /// `method`: an HTTP method (the CRD's enum), matched exactly.
    pub method: Option<Method>,
    pub headers: Vec<HeaderMatch>,
    pub query_params: Vec<QueryParamMatch>,
}

/// `matches[].path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    /// `Exact`: byte-for-byte, query string excluded.
    Exact(String),
    /// `PathPrefix`: element-wise on `/`, a trailing `/` ignored (`/abc` matches `/abc/def`, not `/abcd`).
    Prefix(String),
    /// `RegularExpression`: must match the whole path (query excluded); regex-lite syntax.
    Regex(String),
}

/// `matches[].headers[]`. Names are case-insensitive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderMatch {
    pub name: String,
    pub value: ValueMatch,
}

/// `matches[].queryParams[]`. Names are case-sensitive; the first occurrence in the request counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryParamMatch {
    pub name: String,
    pub value: ValueMatch,
}

/// How a header or query parameter value is compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueMatch {
    /// Case-sensitive equality.
    Exact(String),
    /// Whole-value regular expression (regex-lite syntax).
    Regex(String),
}

/// HTTPRoute filters, at rule level (`rules[].filters`) or backend level (`backendRefs[].filters`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    RequestHeaderModifier(HeaderModifier),
    ResponseHeaderModifier(HeaderModifier),
    RequestRedirect(Redirect),
    UrlRewrite(UrlRewrite),
    RequestMirror(Mirror),
    Cors(Cors),
}

/// `RequestHeaderModifier` / `ResponseHeaderModifier`: applied set, then add, then remove.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HeaderModifier {
    /// Replace every value of the header.
    pub set: Vec<Header>,
    /// Append a value (`foo` + add `bar` → `foo,bar`).
    pub add: Vec<Header>,
    /// Remove every value of these headers.
    pub remove: Vec<String>,
}

/// A header name and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: String,
}

/// `RequestRedirect`: answered locally with `Location`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    /// `http` or `https`; absent keeps the request's scheme.
    pub scheme: Option<Scheme>,
    /// Absent keeps the request's Host (without its port).
    pub hostname: Option<String>,
    pub path: Option<PathModifier>,
    /// Absent: the scheme's well-known port if `scheme` is set, else the parent's port.
    pub port: Option<u16>,
    pub status_code: RedirectCode,
}

/// `requestRedirect.statusCode`: the CRD's enum (default 302).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RedirectCode {
    MovedPermanently,
    #[default]
    Found,
    SeeOther,
    TemporaryRedirect,
    PermanentRedirect,
}

impl RedirectCode {
    pub const ALL: [RedirectCode; 5] = [
        RedirectCode::MovedPermanently,
        RedirectCode::Found,
        RedirectCode::SeeOther,
        RedirectCode::TemporaryRedirect,
        RedirectCode::PermanentRedirect,
    ];
    /// The allowed codes, as errors show them.
    pub const SHOWN: &'static str = "301, 302, 303, 307, 308";

    pub fn code(self) -> u16 {
        match self {
            RedirectCode::MovedPermanently => 301,
            RedirectCode::Found => 302,
            RedirectCode::SeeOther => 303,
            RedirectCode::TemporaryRedirect => 307,
            RedirectCode::PermanentRedirect => 308,
        }
    }

    /// The redirect `code` is, if it is one of the five.
    pub fn of(code: u64) -> Option<RedirectCode> {
        RedirectCode::ALL
            .into_iter()
            .find(|c| u64::from(c.code()) == code)
    }
}

/// `URLRewrite`: changes what is sent upstream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UrlRewrite {
    /// Replaces the Host (`:authority`) sent upstream.
    pub hostname: Option<String>,
    pub path: Option<PathModifier>,
}

/// `HTTPPathModifier`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathModifier {
    /// `ReplaceFullPath`: the whole path (the query string is kept).
    ReplaceFullPath(String),
    /// `ReplacePrefixMatch`: replaces the matched PathPrefix, element-wise. Only valid on a rule
    /// whose matches are all PathPrefix (validation enforces it).
    ReplacePrefixMatch(String),
}

/// `RequestMirror`: a fire-and-forget copy of the request to another cluster, for a
/// `numerator/denominator` share of requests (`percent: p` is `p/100`; neither is `1/1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    pub cluster: String,
    pub numerator: u32,
    pub denominator: u32,
}

/// `CORS` (GEP-1767). Preflights are answered locally; matching actual requests get the
/// `Access-Control-Allow-*` response headers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cors {
    /// `<scheme>://<host>[:<port>]` patterns; `*` in the host matches any number of labels to
    /// its left; a lone `*` allows every origin.
    pub allow_origins: Vec<String>,
    pub allow_credentials: bool,
    /// Method names or `*`.
    pub allow_methods: Vec<String>,
    /// Header names or `*`.
    pub allow_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    /// `Access-Control-Max-Age` in seconds (CRD default 5).
    pub max_age_seconds: u32,
}

/// A weighted backend of a rule (`rules[].backendRefs[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// 0–1,000,000; the share is weight / sum of the rule's weights.
    pub weight: u32,
    pub target: BackendTarget,
    /// `backendRefs[].filters`: run only when this backend is picked, after the rule's filters.
    pub filters: Vec<Filter>,
}

/// Where a backend's share of traffic goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendTarget {
    /// An Envoy cluster name (see the cluster naming scheme in the plugin configuration).
    Cluster(String),
    /// A backendRef config-pusher could not resolve (not found, not permitted, wrong kind...):
    /// it keeps its weight and its share is answered locally with `status` — 500 for invalid
    /// references, 503 for a Service without ready endpoints.
    Unavailable { status: u16, reason: String },
}

/// `rules[].timeouts`, in milliseconds. `Some(0)` disables the timeout; `None` leaves Envoy's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timeouts {
    /// `request`: the whole exchange, retries included (504 when exceeded).
    pub request_ms: Option<u64>,
    /// `backendRequest`: each try to a backend.
    pub backend_request_ms: Option<u64>,
}

/// `rules[].retry`. Connection errors are always retried; listed status codes too.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Retry {
    /// Maximum number of *retries* (`attempts: 3` → up to 4 tries).
    pub attempts: u32,
    /// HTTP status codes (400–599) that are retried.
    pub codes: Vec<u16>,
    /// Minimum wait between tries.
    pub backoff_ms: Option<u64>,
}

impl std::fmt::Display for RedirectCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.code())
    }
}

impl RouteTable {
    /// The content hash of this table: the first 16 bytes of SHA-256 over the protobuf encoding of
    /// the table with `version` cleared, in hex. Equal content gives an equal version on every
    /// platform, since the encoding has no maps and keeps list order.
    pub fn content_version(&self) -> String {
        wire::RouteTable::from(self).content_version()
    }

    /// Sets `version` to [`RouteTable::content_version`].
    pub fn with_version(mut self) -> Self {
        self.version = self.content_version();
        self
    }
}

/// Accepts a table built in memory: fills an empty `version` with the content hash, or checks a
/// declared one against it, then validates. config-pusher checks every table it publishes with
/// this. The filter parses tables with [`versioned`] and makes a [`ValidTable`] after renaming
/// clusters, so a loaded table is hashed, checked and compiled once.
pub fn accept(mut table: RouteTable) -> Result<RouteTable, TableError> {
    stamp_version(&mut table)?;
    validate(&table)?;
    Ok(table)
}

/// Fills an empty `version` with the content hash, or checks a declared one against it (a table
/// altered in transit, or by hand without updating its version, is refused).
pub fn stamp_version(table: &mut RouteTable) -> Result<(), TableError> {
    let computed = table.content_version();
    table.version = checked_version(std::mem::take(&mut table.version), computed)?;
    Ok(())
}

/// Converts a decoded document into the model, filling or checking its `version` first (on the
/// document itself, so the table is encoded once for the hash and never copied for it). Both
/// decoders and the filter's inline table come through here.
pub fn versioned(mut msg: wire::RouteTable) -> Result<RouteTable, TableError> {
    let declared = std::mem::take(&mut msg.version);
    msg.version = checked_version(declared, msg.content_version())?;
    RouteTable::try_from(msg)
}

/// The version a table keeps: the computed one when none is declared, else the declared one if
/// it is the computed one.
fn checked_version(declared: String, computed: String) -> Result<String, TableError> {
    if declared.is_empty() || declared == computed {
        Ok(computed)
    } else {
        Err(TableError {
            at: Location::Table(vec![Step::Field("version")]),
            kind: TableErrorKind::VersionMismatch { declared, computed },
        })
    }
}
