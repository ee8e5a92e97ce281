//! Engine benchmark: the compiled [`Router`] against the naive linear-scan [`Reference`] router,
//! on generated gateway tables of 10 to 10,000 match entries. See BENCHMARKS.md.
//!
//! `cargo bench -p gammaroute-filter --bench router [-- FILTER]`
//!
//! - `match/<shape>/<N>`: `Router::decide` (select + decision) over a fixed request set;
//! - `naive/<shape>/<N>`: `Reference::decide` (linear-scan select + the same decision) on the same
//!   requests, regexes compiled once up front so the scan is what is measured;
//! - `compile/<shape>/<N>`: JSON bytes → `RouteTable` → `Router`.
//!
//! Shapes: `many-hosts` (~N/10 hostnames, some `*.` wildcards) and `single-host` (an API gateway:
//! `/api/v<k>/<resource>/<sub>` on one hostname); each also `-noregex` (same table with the ~1%
//! regex matches turned into exact matches on the same requests).
//!
//! After criterion, the bench prints its own summary (compiled vs naive measured interleaved, in
//! the same run; memory measured with a counting global allocator). `ROUTER_BENCH_SUMMARY=0` skips
//! it. Under `cargo test --benches` (criterion's test mode) only N = 10 and 100 run, once.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cmp::Reverse;
use std::collections::HashSet;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};

use gammaroute_filter::router::reference::Reference;
use gammaroute_filter::router::{Destination, Request, Router, Selection};
use gammaroute_filter::table::{
    self, Attachment, Backend, BackendTarget, Filter, Header, HeaderMatch, HeaderModifier,
    Listener, Match, Method, PathMatch, Retry, Route, RouteTable, Rule, Timeouts, ValidTable,
    ValueMatch,
};

// ---------------------------------------------------------------------------------------------
// Counting allocator: net bytes allocated while `COUNTING` is on.

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);
/// Net allocations (blocks) while counting: each costs the allocator's header and rounding on top
/// of the bytes counted here, in Envoy's V8 heap as natively.
static BLOCKS: AtomicIsize = AtomicIsize::new(0);

fn count(delta: isize) {
    if COUNTING.load(Ordering::Relaxed) {
        let now = LIVE.fetch_add(delta, Ordering::Relaxed) + delta;
        PEAK.fetch_max(now, Ordering::Relaxed);
    }
}

fn count_block(delta: isize) {
    if COUNTING.load(Ordering::Relaxed) {
        BLOCKS.fetch_add(delta, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
            count_block(1);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
            count_block(1);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        count(-(layout.size() as isize));
        count_block(-1);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            count(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `f` with allocation counting on; returns its result, the net bytes it left allocated and
/// the peak of net bytes while it ran.
fn counted<T>(f: impl FnOnce() -> T) -> (T, isize, isize) {
    LIVE.store(0, Ordering::SeqCst);
    PEAK.store(0, Ordering::SeqCst);
    BLOCKS.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    let out = f();
    COUNTING.store(false, Ordering::SeqCst);
    (
        out,
        LIVE.load(Ordering::SeqCst),
        PEAK.load(Ordering::SeqCst),
    )
}

// ---------------------------------------------------------------------------------------------
// Deterministic generator.

/// splitmix64: seeded, no external randomness.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        gammaroute_filter::router::decision::splitmix64(&mut self.0)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    /// True with probability `percent`/100.
    fn percent(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const SYLLABLES: [&str; 12] = [
    "ka", "lo", "mi", "ne", "su", "ta", "ri", "po", "de", "va", "zu", "fi",
];

/// A unique lowercase word per `i` (two or more syllables).
fn word(mut i: usize) -> String {
    let mut s = String::new();
    let mut digits = 0;
    while i > 0 || digits < 2 {
        s.push_str(SYLLABLES[i % 12]);
        i /= 12;
        digits += 1;
    }
    s
}

const RESOURCES: [&str; 24] = [
    "users",
    "orders",
    "payments",
    "invoices",
    "products",
    "carts",
    "reviews",
    "sessions",
    "accounts",
    "tickets",
    "shipments",
    "coupons",
    "messages",
    "devices",
    "reports",
    "teams",
    "projects",
    "builds",
    "alerts",
    "metrics",
    "tokens",
    "webhooks",
    "plans",
    "quotas",
];

/// A unique resource name per `i`.
fn resource(i: usize) -> String {
    let base = RESOURCES[i % RESOURCES.len()];
    match i / RESOURCES.len() {
        0 => base.to_string(),
        k => format!("{base}-{}", word(k)),
    }
}

const SUBS: [&str; 8] = [
    "items", "search", "export", "history", "settings", "events", "stats", "bulk",
];
const DIRS: [&str; 8] = [
    "api", "app", "static", "account", "v1", "v2", "admin", "assets",
];
const PAGES: [&str; 6] = ["login", "logout", "health", "about", "pricing", "docs"];
const METHODS: [Method; 4] = [Method::Get, Method::Post, Method::Put, Method::Delete];

/// Turns the regex patterns this generator writes into a value they match (and back into the
/// exact value of the non-regex variant).
fn instance(pattern: &str) -> String {
    pattern
        .replace("[0-9]+", "4711")
        .replace("[a-z0-9-]+", "item-7")
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Shape {
    ManyHosts,
    SingleHost,
}

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Shape::ManyHosts => "many-hosts",
            Shape::SingleHost => "single-host",
        }
    }
}

/// Which of the N matches carry a regex: about 1% (at least one), chosen at generation time.
struct MatchGen<'a> {
    rng: &'a mut Rng,
    regex_every: usize,
    count: usize,
    seen: HashSet<String>,
}

impl MatchGen<'_> {
    /// A new match (never a duplicate) for a route on `host_key`.
    fn next(&mut self, host_key: &str, shape: Shape, resources: usize) -> Match {
        loop {
            let index = self.count;
            let regex = index % self.regex_every == self.regex_every / 2;
            let (m, bare) = self.candidate(shape, resources, regex);
            // A bare directory prefix (`/api/v1`, `/static`) appears at most once per host, so
            // the candidates along any one path stay few however large the table grows.
            let key = match (&m.path, bare) {
                (PathMatch::Prefix(p), true) => format!("{host_key} {p}"),
                _ => format!("{host_key} {m:?}"),
            };
            if self.seen.insert(key) {
                self.count += 1;
                return m;
            }
        }
    }

    fn candidate(&mut self, shape: Shape, resources: usize, regex: bool) -> (Match, bool) {
        let rng = &mut *self.rng;
        let res = resource(rng.below(resources));
        let sub = *rng.pick(&SUBS);
        let (dir, page) = match shape {
            Shape::SingleHost => (format!("api/v{}", 1 + rng.below(3)), None),
            Shape::ManyHosts => (rng.pick(&DIRS).to_string(), Some(*rng.pick(&PAGES))),
        };
        let mut headers = Vec::new();
        let roll = rng.below(100);
        let mut bare = false;
        let path = if regex && roll < 67 {
            // A path regex; the rest of the regex matches are header regexes.
            match rng.below(2) {
                0 => PathMatch::Regex(format!("/{dir}/{res}/[0-9]+/{sub}")),
                _ => PathMatch::Regex(format!("/{dir}/{res}/[a-z0-9-]+")),
            }
        } else if roll < 40 {
            match (rng.below(3), page) {
                (0, Some(page)) => PathMatch::Exact(format!("/{page}")),
                (0 | 1, _) => PathMatch::Exact(format!("/{dir}/{res}")),
                _ => PathMatch::Exact(format!("/{dir}/{res}/{sub}")),
            }
        } else {
            match rng.below(20) {
                0 => {
                    bare = true;
                    PathMatch::Prefix(format!("/{dir}"))
                }
                1..=11 => PathMatch::Prefix(format!("/{dir}/{res}")),
                _ => PathMatch::Prefix(format!("/{dir}/{res}/{sub}")),
            }
        };
        if regex && roll >= 67 {
            headers.push(HeaderMatch {
                name: "x-tenant".into(),
                value: ValueMatch::Regex("tenant-[0-9]+".into()),
            });
        } else if rng.percent(25) {
            headers.push(HeaderMatch {
                name: "x-tenant".into(),
                value: ValueMatch::Exact(format!("tenant-{}", rng.below(20))),
            });
        }
        if rng.percent(5) {
            headers.push(HeaderMatch {
                name: "x-canary".into(),
                value: ValueMatch::Exact("true".into()),
            });
        }
        let method = rng.percent(10).then(|| *rng.pick(&METHODS));
        let m = Match {
            rank: 0,
            path,
            method,
            headers,
            query_params: Vec::new(),
        };
        (m, bare)
    }
}

fn backends(rng: &mut Rng, route: usize, rule: usize) -> Vec<Backend> {
    let cluster = |suffix: &str| Backend {
        weight: 0,
        target: BackendTarget::Cluster(format!(
            "team-{}/svc-{route}-{rule}{suffix}:8080",
            route % 7
        )),
        filters: Vec::new(),
    };
    let mut list = match rng.below(10) {
        0..=6 => vec![cluster("")],
        7 | 8 => vec![cluster(""), cluster("-canary")],
        _ => vec![cluster("-a"), cluster("-b"), cluster("-c")],
    };
    let weights: &[u32] = match list.len() {
        1 => &[1],
        2 => &[90, 10],
        _ => &[50, 30, 20],
    };
    for (b, w) in list.iter_mut().zip(weights) {
        b.weight = *w;
    }
    list
}

/// Rules and routes around a list of matches: 1–3 matches per rule, 1–3 rules per route.
fn routes_of(
    rng: &mut Rng,
    matches: Vec<Match>,
    hostnames: &[String],
    routes: &mut Vec<Route>,
    attachments: &mut Vec<Attachment>,
) {
    let mut matches = matches.into_iter().peekable();
    while matches.peek().is_some() {
        let r = routes.len();
        let mut rules = Vec::new();
        for _ in 0..1 + rng.below(3) {
            let rule_matches: Vec<Match> = matches.by_ref().take(1 + rng.below(3)).collect();
            if rule_matches.is_empty() {
                break;
            }
            let i = rules.len();
            let mut filters = Vec::new();
            if rng.percent(15) {
                filters.push(Filter::RequestHeaderModifier(HeaderModifier {
                    set: vec![Header {
                        name: "x-route".into(),
                        value: format!("route-{r}"),
                    }],
                    ..HeaderModifier::default()
                }));
            }
            rules.push(Rule {
                index: i as u32,
                name: None,
                matches: rule_matches,
                filters,
                backends: backends(rng, r, i),
                timeouts: rng.percent(10).then_some(Timeouts {
                    request_ms: Some(5000),
                    backend_request_ms: None,
                }),
                retry: rng.percent(5).then(|| Retry {
                    attempts: 2,
                    codes: vec![503],
                    backoff_ms: None,
                }),
            });
        }
        routes.push(Route {
            namespace: format!("team-{}", r % 7),
            name: format!("route-{r}"),
            rules,
        });
        attachments.push(Attachment {
            route: r as u32,
            hostnames: hostnames.to_vec(),
        });
    }
}

/// Ranks as config-pusher computes them for one parent: Exact, then RegularExpression (longest
/// pattern first), then PathPrefix (longest first, trailing `/` ignored); then a method match,
/// more headers, more query params; then route (creation) order, rule order, match order.
fn assign_ranks(table: &mut RouteTable) {
    let mut keys = Vec::new();
    for (a, att) in table.listeners[0].attachments.iter().enumerate() {
        let route = &table.routes[att.route as usize];
        for (r, rule) in route.rules.iter().enumerate() {
            for (m, matched) in rule.matches.iter().enumerate() {
                let (class, len) = match &matched.path {
                    PathMatch::Exact(_) => (0, 0),
                    PathMatch::Regex(p) => (1, p.len()),
                    PathMatch::Prefix(p) => (2, p.trim_end_matches('/').len()),
                };
                let key = (
                    class,
                    Reverse(len),
                    matched.method.is_none(),
                    Reverse(matched.headers.len()),
                    Reverse(matched.query_params.len()),
                    (a, r, m),
                );
                keys.push((key, att.route as usize));
            }
        }
    }
    keys.sort();
    for (rank, ((.., (_, r, m)), route)) in keys.into_iter().enumerate() {
        table.routes[route].rules[r].matches[m].rank = rank as u32;
    }
}

/// A table of `n` matches of one shape, and its list of hostnames per route.
fn generate(shape: Shape, n: usize, seed: u64) -> RouteTable {
    let mut rng = Rng(seed ^ ((n as u64) << 8) ^ (shape as u64));
    let regex_every = (n / (n / 100).max(1)).max(1);
    let mut routes = Vec::new();
    let mut attachments = Vec::new();
    let mut gen_rng = Rng(rng.next());
    let mut gen = MatchGen {
        rng: &mut gen_rng,
        regex_every,
        count: 0,
        seen: HashSet::new(),
    };
    match shape {
        Shape::SingleHost => {
            let resources = (n / 6).max(3);
            let matches: Vec<Match> = (0..n)
                .map(|_| gen.next("api.example.com", shape, resources))
                .collect();
            routes_of(
                &mut rng,
                matches,
                &["api.example.com".to_string()],
                &mut routes,
                &mut attachments,
            );
        }
        Shape::ManyHosts => {
            let hosts = (n / 10).max(1);
            let zones = (hosts / 5).max(1);
            for h in 0..hosts {
                let quota = n / hosts + usize::from(h < n % hosts);
                let zone = format!("{}.example.com", word(1000 + h % zones));
                // One host slot in ten is a wildcard over another zone's exact hosts (one wildcard
                // per zone: h / 10 < zones).
                let pattern = if h % 10 == 5 {
                    format!("*.{}.example.com", word(1000 + (h / 10) % zones))
                } else {
                    format!("{}.{zone}", word(h))
                };
                let mut hostnames = vec![pattern.clone()];
                if rng.percent(10) && !pattern.starts_with('*') {
                    hostnames.push(format!("www.{pattern}"));
                }
                let catch_all = rng.percent(30);
                let mut matches: Vec<Match> = (0..quota - usize::from(catch_all))
                    .map(|_| gen.next(&pattern, shape, 20))
                    .collect();
                if catch_all {
                    gen.count += 1;
                    matches.push(Match {
                        rank: 0,
                        path: PathMatch::Prefix("/".into()),
                        method: None,
                        headers: Vec::new(),
                        query_params: Vec::new(),
                    });
                }
                routes_of(&mut rng, matches, &hostnames, &mut routes, &mut attachments);
            }
        }
    }
    let mut table = RouteTable {
        version: String::new(),
        role: "gateway/bench/gw".into(),
        listeners: vec![Listener {
            name: "http".into(),
            port: 80,
            hostname: None,
            attachments,
        }],
        services: Vec::new(),
        routes,
    };
    assign_ranks(&mut table);
    table.with_version()
}

/// The same table with every regex replaced by an exact match on the value the requests use.
fn without_regexes(table: &RouteTable) -> RouteTable {
    let mut t = table.clone();
    for route in &mut t.routes {
        for rule in &mut route.rules {
            for m in &mut rule.matches {
                if let PathMatch::Regex(p) = &m.path {
                    m.path = PathMatch::Exact(instance(p));
                }
                for h in &mut m.headers {
                    if let ValueMatch::Regex(p) = &h.value {
                        h.value = ValueMatch::Exact(instance(p));
                    }
                }
            }
        }
    }
    assign_ranks(&mut t);
    t.with_version()
}

fn count_regexes(table: &RouteTable) -> usize {
    let mut n = 0;
    for route in &table.routes {
        for rule in &route.rules {
            for m in &rule.matches {
                n += usize::from(matches!(m.path, PathMatch::Regex(_)));
                n += m
                    .headers
                    .iter()
                    .filter(|h| matches!(h.value, ValueMatch::Regex(_)))
                    .count();
            }
        }
    }
    n
}

fn count_matches(table: &RouteTable) -> usize {
    table
        .routes
        .iter()
        .flat_map(|r| &r.rules)
        .map(|r| r.matches.len())
        .sum()
}

// ---------------------------------------------------------------------------------------------
// Requests.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Class {
    Early,
    Middle,
    Late,
    Miss,
}

const CLASSES: [Class; 4] = [Class::Early, Class::Middle, Class::Late, Class::Miss];
const PER_CLASS: usize = 16;

impl Class {
    fn name(self) -> &'static str {
        match self {
            Class::Early => "early",
            Class::Middle => "middle",
            Class::Late => "late",
            Class::Miss => "miss",
        }
    }
}

struct OwnedRequest {
    class: Class,
    method: String,
    authority: String,
    path: String,
    headers: Vec<(String, String)>,
}

impl OwnedRequest {
    fn view(&self) -> Request<'_> {
        Request {
            method: &self.method,
            scheme: "https",
            authority: &self.authority,
            path: &self.path,
            headers: &self.headers,
            destination: Destination {
                ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
                port: 80,
            },
            server_name: "",
        }
    }
}

/// What a browser or API client sends besides the headers a route looks at.
fn base_headers(i: usize) -> Vec<(String, String)> {
    [
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) bench/1.0".to_string(),
        ),
        ("accept", "application/json, text/plain, */*".to_string()),
        ("accept-encoding", "gzip, deflate, br".to_string()),
        ("accept-language", "en-US,en;q=0.9".to_string()),
        (
            "x-request-id",
            format!("3f2b9c1e-{i:04x}-4a7d-9e21-0c5d7f3a9b10"),
        ),
        ("x-forwarded-for", "203.0.113.7".to_string()),
        ("x-forwarded-proto", "https".to_string()),
        ("cookie", format!("session=s{i:08x}; theme=dark")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// A request that satisfies match `m` of a route with `hostnames`.
fn request_for(rng: &mut Rng, class: Class, hostnames: &[String], m: &Match) -> OwnedRequest {
    let i = rng.below(1 << 16);
    let pattern = rng.pick(hostnames);
    let authority = match pattern.strip_prefix("*.") {
        Some(suffix) => format!("client{}.{suffix}", rng.below(100)),
        None => pattern.clone(),
    };
    let mut path = match &m.path {
        PathMatch::Exact(p) => p.clone(),
        PathMatch::Regex(p) => instance(p),
        PathMatch::Prefix(p) => match rng.below(3) {
            0 => p.clone(),
            _ => format!("{}/{}", p.trim_end_matches('/'), 1000 + rng.below(9000)),
        },
    };
    if rng.percent(30) {
        path.push_str("?page=3&sort=asc");
    }
    let mut headers = base_headers(i);
    for h in &m.headers {
        let value = match &h.value {
            ValueMatch::Exact(v) => v.clone(),
            ValueMatch::Regex(p) => instance(p),
        };
        headers.insert(rng.below(headers.len()), (h.name.clone(), value));
    }
    OwnedRequest {
        class,
        method: m.method.unwrap_or(Method::Get).as_str().to_string(),
        authority,
        path,
        headers,
    }
}

fn miss_for(rng: &mut Rng, shape: Shape, table: &RouteTable) -> OwnedRequest {
    let i = rng.below(1 << 16);
    let (authority, path) = match (shape, rng.below(2)) {
        (Shape::SingleHost, 0) => (
            "api.example.com".to_string(),
            format!("/api/v{}/unknown-{i}/items", 1 + rng.below(3)),
        ),
        (Shape::SingleHost, _) => ("api.example.com".to_string(), format!("/internal/{i}")),
        (Shape::ManyHosts, 0) => (format!("h{i}.unknown.net"), "/api/users".to_string()),
        (Shape::ManyHosts, _) => {
            let att = rng.pick(&table.listeners[0].attachments);
            let host = att.hostnames[0].replace('*', "client");
            (host, format!("/zz-missing/{i}"))
        }
    };
    OwnedRequest {
        class: Class::Miss,
        method: "GET".into(),
        authority,
        path,
        headers: base_headers(i),
    }
}

/// 16 requests each aimed at the first 5%, the middle 10% and the last 5% of the matches in rank
/// order, and 16 that match nothing (404).
fn requests(shape: Shape, table: &RouteTable, seed: u64) -> Vec<OwnedRequest> {
    let mut rng = Rng(seed);
    let mut by_rank = Vec::new();
    for att in &table.listeners[0].attachments {
        for rule in &table.routes[att.route as usize].rules {
            for m in &rule.matches {
                by_rank.push((m.rank, &att.hostnames, m));
            }
        }
    }
    by_rank.sort_by_key(|(rank, ..)| *rank);
    let n = by_rank.len();
    let span = |lo: usize, hi: usize| (lo * n / 100)..((hi * n / 100).max(lo * n / 100 + 1));
    let reference = Reference::new(table);
    let mut out = Vec::new();
    for class in CLASSES {
        let range = match class {
            Class::Early => span(0, 5),
            Class::Middle => span(45, 55),
            Class::Late => span(95, 100).start.min(n - 1)..n,
            Class::Miss => 0..0,
        };
        let mut made = 0;
        while made < PER_CLASS {
            let req = if class == Class::Miss {
                let req = miss_for(&mut rng, shape, table);
                if matches!(reference.select(&req.view()), Selection::Matched(_)) {
                    continue;
                }
                req
            } else {
                let (_, hostnames, m) = by_rank[range.start + rng.below(range.len())];
                request_for(&mut rng, class, hostnames, m)
            };
            out.push(req);
            made += 1;
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Fixtures.

struct Variant {
    /// `many-hosts` or `many-hosts-noregex`, ...
    name: String,
    table: RouteTable,
    json: Vec<u8>,
    router: Router,
    regexes: usize,
    /// Net bytes retained: the decoded table alone, and the compiled router (which owns it).
    table_bytes: isize,
    router_bytes: isize,
    peak_bytes: isize,
}

struct Fixture {
    shape: Shape,
    n: usize,
    requests: Vec<OwnedRequest>,
    variants: Vec<Variant>,
}

/// JSON encoding: the crate's codec when it round-trips the table, else serde_json.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Codec {
    Crate,
    Serde,
}

fn pick_codec(sample: &RouteTable) -> Codec {
    let encoded = table::encode_json(sample);
    match table::decode_json(encoded.as_bytes()) {
        Ok(decoded) if decoded == *sample => Codec::Crate,
        _ => Codec::Serde,
    }
}

fn encode(codec: Codec, t: &RouteTable) -> Vec<u8> {
    match codec {
        Codec::Crate => table::encode_json(t).into_bytes(),
        Codec::Serde => serde_json::to_vec(&table::wire::RouteTable::from(t)).expect("serialize"),
    }
}

/// What the filter does per table load: parse, check the version, check the table once (keeping
/// its compiled matches), index it.
fn decode_and_compile(codec: Codec, json: &[u8]) -> Router {
    let msg: table::wire::RouteTable = match codec {
        Codec::Crate => table::parse_json(json).expect("parse_json"),
        Codec::Serde => serde_json::from_slice(json).expect("serde decode"),
    };
    Router::build(ValidTable::try_from(msg).expect("generated table checks"))
}

fn decode(codec: Codec, json: &[u8]) -> RouteTable {
    match codec {
        Codec::Crate => table::decode_json(json).expect("decode_json"),
        Codec::Serde => {
            let msg: table::wire::RouteTable = serde_json::from_slice(json).expect("serde decode");
            RouteTable::try_from(msg).expect("converts")
        }
    }
}

fn fixture(codec: Codec, shape: Shape, n: usize) -> Fixture {
    let seed = 0x6761_6d6d_6172_6f75;
    let with = generate(shape, n, seed);
    assert_eq!(count_matches(&with), n, "{} {n}", shape.name());
    let plain = without_regexes(&with);
    let requests = requests(shape, &with, seed ^ 0xfeed);
    let variants = [
        (shape.name().to_string(), with),
        (format!("{}-noregex", shape.name()), plain),
    ]
    .into_iter()
    .map(|(name, table)| {
        if let Err(e) = table::validate(&table) {
            panic!("{name}/{n}: generated table rejected: {e}");
        }
        let json = encode(codec, &table);
        let (decoded, table_bytes, _) = counted(|| decode(codec, &json));
        drop(decoded);
        let (router, router_bytes, peak_bytes) = counted(|| decode_and_compile(codec, &json));
        // The benchmark is only meaningful if both routers give the same answers.
        let reference = Reference::new(&table);
        for (i, req) in requests.iter().enumerate() {
            let (a, b) = (router.select(&req.view()), reference.select(&req.view()));
            assert_eq!(
                a, b,
                "{name}/{n} request {i} {} {}",
                req.authority, req.path
            );
            let hit = matches!(a, Selection::Matched(_));
            assert_eq!(hit, req.class != Class::Miss, "{name}/{n} request {i}");
        }
        Variant {
            name,
            regexes: count_regexes(&table),
            table,
            json,
            router,
            table_bytes,
            router_bytes,
            peak_bytes,
        }
    })
    .collect();
    Fixture {
        shape,
        n,
        requests,
        variants,
    }
}

fn draw(i: usize) -> u64 {
    (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

fn run_compiled(router: &Router, reqs: &[Request<'_>]) {
    for (i, req) in reqs.iter().enumerate() {
        black_box(router.decide(black_box(req), draw(i)));
    }
}

fn run_naive(reference: &Reference<'_>, reqs: &[Request<'_>]) {
    for (i, req) in reqs.iter().enumerate() {
        black_box(reference.decide(black_box(req), draw(i)));
    }
}

// ---------------------------------------------------------------------------------------------
// Criterion benchmarks.

fn bench(c: &mut Criterion, fixtures: &[Fixture], codec: Codec) {
    for kind in ["match", "naive", "compile"] {
        for shape in [Shape::ManyHosts, Shape::SingleHost] {
            for v in 0..2 {
                if kind == "compile" && v == 1 {
                    continue;
                }
                let suffix = if v == 1 { "-noregex" } else { "" };
                let mut group = c.benchmark_group(format!("{kind}/{}{suffix}", shape.name()));
                group.warm_up_time(Duration::from_millis(300));
                group.nresamples(20_000);
                for f in fixtures.iter().filter(|f| f.shape == shape) {
                    let variant = &f.variants[v];
                    let reqs: Vec<Request<'_>> = f.requests.iter().map(|r| r.view()).collect();
                    let id = BenchmarkId::from_parameter(f.n);
                    match kind {
                        "match" => {
                            group.sample_size(30);
                            group.measurement_time(Duration::from_millis(1200));
                            group.throughput(Throughput::Elements(reqs.len() as u64));
                            group.bench_with_input(id, &reqs, |b, reqs| {
                                b.iter(|| run_compiled(&variant.router, reqs))
                            });
                        }
                        "naive" => {
                            let reference = Reference::new(&variant.table);
                            group.sample_size(10);
                            group.measurement_time(Duration::from_millis(match f.n {
                                0..=100 => 1000,
                                101..=1000 => 1500,
                                _ => 3000,
                            }));
                            group.throughput(Throughput::Elements(reqs.len() as u64));
                            group.bench_with_input(id, &reqs, |b, reqs| {
                                b.iter(|| run_naive(&reference, reqs))
                            });
                        }
                        _ => {
                            group.sample_size(10);
                            group.measurement_time(Duration::from_millis(match f.n {
                                0..=1000 => 1000,
                                _ => 4000,
                            }));
                            group.bench_with_input(id, &variant.json, |b, json| {
                                b.iter(|| decode_and_compile(codec, black_box(json)))
                            });
                        }
                    }
                }
                group.finish();
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Summary, measured here rather than read back from criterion's files: compiled and naive are
// timed in alternating batches so that load from other processes hits both alike.

/// Nanoseconds per call of each function: median of `rounds` batches, batches alternating.
fn timed<const K: usize>(fs: [&mut dyn FnMut(); K], rounds: usize) -> [f64; K] {
    let target = Duration::from_millis(8);
    let mut fs = fs;
    let mut iters = [1usize; K];
    for (f, it) in fs.iter_mut().zip(iters.iter_mut()) {
        loop {
            let t = Instant::now();
            for _ in 0..*it {
                f();
            }
            if t.elapsed() >= target / 4 {
                let per = t.elapsed().as_secs_f64() / *it as f64;
                *it = ((target.as_secs_f64() / per).ceil() as usize).max(1);
                break;
            }
            *it *= 2;
        }
    }
    let mut samples = vec![Vec::with_capacity(rounds); K];
    for _ in 0..rounds {
        for ((f, it), s) in fs.iter_mut().zip(iters).zip(samples.iter_mut()) {
            let t = Instant::now();
            for _ in 0..it {
                f();
            }
            s.push(t.elapsed().as_secs_f64() * 1e9 / it as f64);
        }
    }
    let mut out = [0.0; K];
    for (o, mut s) in out.iter_mut().zip(samples) {
        s.sort_by(f64::total_cmp);
        *o = s[s.len() / 2];
    }
    out
}

fn kib(bytes: isize) -> String {
    format!("{:.1}", bytes as f64 / 1024.0)
}

fn summary(fixtures: &[Fixture], codec: Codec) {
    println!();
    println!(
        "Summary ({} requests per set: {PER_CLASS} each early/middle/late in rank order + {PER_CLASS} misses; \
         ns/request = decide(), median of 9 interleaved batches; JSON via {})",
        PER_CLASS * 4,
        match codec {
            Codec::Crate => "table::decode_json",
            Codec::Serde => "serde_json (table::decode_json not usable yet)",
        }
    );
    println!();
    println!(
        "| table | N | regexes | compiled ns/req | naive ns/req | naive/compiled | match(N)/match(10) | \
         decode+compile ms | table KiB | router KiB (incl. table) | index KiB | compile peak KiB | JSON KiB |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut per_class = Vec::new();
    for shape in [Shape::ManyHosts, Shape::SingleHost] {
        for v in 0..2 {
            let mut base = None;
            for f in fixtures.iter().filter(|f| f.shape == shape) {
                let variant = &f.variants[v];
                let reqs: Vec<Request<'_>> = f.requests.iter().map(|r| r.view()).collect();
                let reference = Reference::new(&variant.table);
                let [compiled, naive] = timed(
                    [&mut || run_compiled(&variant.router, &reqs), &mut || {
                        run_naive(&reference, &reqs)
                    }],
                    9,
                );
                let (compiled, naive) = (compiled / reqs.len() as f64, naive / reqs.len() as f64);
                let base = *base.get_or_insert(compiled);
                let [compile_ns] = timed(
                    [&mut || drop(black_box(decode_and_compile(codec, &variant.json)))],
                    3,
                );
                println!(
                    "| {} | {} | {} | {:.0} | {:.0} | {:.1}× | {:.2}× | {:.2} | {} | {} | {} | {} | {} |",
                    variant.name,
                    f.n,
                    variant.regexes,
                    compiled,
                    naive,
                    naive / compiled,
                    compiled / base,
                    compile_ns / 1e6,
                    kib(variant.table_bytes),
                    kib(variant.router_bytes),
                    kib(variant.router_bytes - variant.table_bytes),
                    kib(variant.peak_bytes),
                    kib(variant.json.len() as isize),
                );
                // Compiled cost by request class.
                let mut row = Vec::new();
                for class in CLASSES {
                    let reqs: Vec<Request<'_>> = f
                        .requests
                        .iter()
                        .filter(|r| r.class == class)
                        .map(|r| r.view())
                        .collect();
                    let [ns] = timed([&mut || run_compiled(&variant.router, &reqs)], 5);
                    row.push(ns / reqs.len() as f64);
                }
                per_class.push((variant.name.clone(), f.n, row));
            }
        }
    }
    println!();
    println!("Compiled decide() by request class, ns/request:");
    println!();
    let names: Vec<&str> = CLASSES.iter().map(|c| c.name()).collect();
    println!("| table | N | {} |", names.join(" | "));
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, n, row) in per_class {
        println!(
            "| {name} | {n} | {:.0} | {:.0} | {:.0} | {:.0} |",
            row[0], row[1], row[2], row[3]
        );
    }
}

/// `ROUTER_BENCH_MEMORY=1`: what one table load costs a VM, per table, without criterion (fast
/// enough for N = 100,000): decode and decode+compile time, and the bytes and allocations left
/// by each stage, against the table's own encodings measured in the same run (JSON, protobuf) and
/// against N = 10 (per match).
fn memory(fixtures: &[Fixture], codec: Codec) {
    println!();
    println!(
        "Memory per VM (counting allocator: requested bytes and live allocations; \
         table = decoded RouteTable, checked = ValidTable's compiled matches, index = Router::build)"
    );
    println!();
    println!(
        "| table | N | routes | JSON KiB | protobuf KiB | decode ms | decode+compile ms | table KiB | \
         checked KiB | index KiB | router KiB | router allocations | router/protobuf | router B/match | \
         B/match vs N=10 |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for shape in [Shape::ManyHosts, Shape::SingleHost] {
        for v in 0..2 {
            let mut base = None;
            for f in fixtures.iter().filter(|f| f.shape == shape) {
                let variant = &f.variants[v];
                let proto = table::encode_proto(&variant.table).len();
                let [decode_ns, compile_ns] = timed(
                    [
                        &mut || drop(black_box(decode(codec, &variant.json))),
                        &mut || drop(black_box(decode_and_compile(codec, &variant.json))),
                    ],
                    3,
                );
                let (table, table_bytes, _) = counted(|| decode(codec, &variant.json));
                drop(table);
                let msg = || -> table::wire::RouteTable {
                    match codec {
                        Codec::Crate => table::parse_json(&variant.json).expect("parse_json"),
                        Codec::Serde => serde_json::from_slice(&variant.json).expect("serde"),
                    }
                };
                let (valid, valid_bytes, _) =
                    counted(|| ValidTable::try_from(msg()).expect("checks"));
                drop(valid);
                let (router, router_bytes, _) =
                    counted(|| decode_and_compile(codec, &variant.json));
                let blocks = BLOCKS.load(Ordering::SeqCst);
                drop(router);
                let per_match = router_bytes as f64 / f.n as f64;
                let base = *base.get_or_insert(per_match);
                println!(
                    "| {} | {} | {} | {} | {} | {:.2} | {:.2} | {} | {} | {} | {} | {} | {:.1}× | {:.0} | {:.2}× |",
                    variant.name,
                    f.n,
                    variant.table.routes.len(),
                    kib(variant.json.len() as isize),
                    kib(proto as isize),
                    decode_ns / 1e6,
                    compile_ns / 1e6,
                    kib(table_bytes),
                    kib(valid_bytes - table_bytes),
                    kib(router_bytes - valid_bytes),
                    kib(router_bytes),
                    blocks,
                    router_bytes as f64 / proto as f64,
                    per_match,
                    per_match / base,
                );
            }
        }
    }
}

fn drive(fixtures: &[Fixture], which: &str) {
    let (name, n) = which
        .rsplit_once('/')
        .expect("ROUTER_BENCH_DRIVE=<table>/<N>");
    let n: usize = n.parse().expect("ROUTER_BENCH_DRIVE: N");
    let (f, variant) = fixtures
        .iter()
        .filter(|f| f.n == n)
        .flat_map(|f| f.variants.iter().map(move |v| (f, v)))
        .find(|(_, v)| v.name == name)
        .expect("ROUTER_BENCH_DRIVE: no such table (set ROUTER_BENCH_SIZES to include N)");
    let reqs: Vec<Request<'_>> = f.requests.iter().map(|r| r.view()).collect();
    let rounds: usize = std::env::var("ROUTER_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1000);
    let t = Instant::now();
    for _ in 0..rounds {
        run_compiled(&variant.router, &reqs);
    }
    eprintln!(
        "{which}: {:.0} ns/request over {rounds} rounds",
        t.elapsed().as_secs_f64() * 1e9 / (rounds * reqs.len()) as f64
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    let benchmarking = has("--bench") && !has("--test") && !has("--list");
    let sizes: Vec<usize> = match std::env::var("ROUTER_BENCH_SIZES") {
        Ok(list) => list
            .split(',')
            .map(|n| {
                n.trim()
                    .parse()
                    .expect("ROUTER_BENCH_SIZES: comma-separated numbers")
            })
            .collect(),
        Err(_) if benchmarking => vec![10, 100, 1_000, 10_000],
        Err(_) => vec![10, 100],
    };
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .configure_from_args();

    let started = Instant::now();
    let codec = pick_codec(&generate(Shape::SingleHost, 10, 1));
    let fixtures: Vec<Fixture> = [Shape::ManyHosts, Shape::SingleHost]
        .into_iter()
        .flat_map(|shape| sizes.iter().map(move |&n| (shape, n)))
        .map(|(shape, n)| fixture(codec, shape, n))
        .collect();
    eprintln!(
        "router bench: generated and checked {} tables in {:.1}s",
        fixtures.len() * 2,
        started.elapsed().as_secs_f64()
    );

    // The generated tables as JSON, e.g. for an end-to-end load test with the same tables.
    if let Ok(dir) = std::env::var("ROUTER_BENCH_DUMP") {
        std::fs::create_dir_all(&dir).expect("ROUTER_BENCH_DUMP: create directory");
        for f in &fixtures {
            for v in &f.variants {
                let path = format!("{dir}/{}-{}.json", v.name, f.n);
                std::fs::write(&path, &v.json).expect("ROUTER_BENCH_DUMP: write");
                let reqs: Vec<String> = f
                    .requests
                    .iter()
                    .map(|r| {
                        format!(
                            "{} {} {} {:?}",
                            r.class.name(),
                            r.authority,
                            r.path,
                            r.headers
                        )
                    })
                    .collect();
                std::fs::write(
                    format!("{dir}/{}-{}.requests", v.name, f.n),
                    reqs.join("\n"),
                )
                .expect("ROUTER_BENCH_DUMP: write");
            }
        }
        eprintln!("router bench: tables written to {dir}");
    }

    if std::env::var_os("ROUTER_BENCH_MEMORY").is_some() {
        memory(&fixtures, codec);
        return;
    }

    // A plain loop over one request set, for profilers: `ROUTER_BENCH_DRIVE=single-host/10000`.
    if let Ok(which) = std::env::var("ROUTER_BENCH_DRIVE") {
        drive(&fixtures, &which);
        return;
    }

    bench(&mut c, &fixtures, codec);
    c.final_summary();

    if benchmarking && std::env::var("ROUTER_BENCH_SUMMARY").as_deref() != Ok("0") {
        summary(&fixtures, codec);
    }
}
