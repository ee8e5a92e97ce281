//! One HTTP stream through the filter: the request headers are read once, routed by the table
//! the stream started with, and the decision is applied (header writes, a local response, or
//! response header edits kept for the response). Every host answer is handled: a failure is
//! logged and the request fails closed (500) rather than being forwarded unrouted. Before its
//! first table a mesh sidecar leaves requests to default Service routing ([`untouched`]); a
//! gateway answers 503.

use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::abi::{self, LogLevel, Map, Status};
use super::envoy::{self, Plan};
use super::stats::count;
use super::vm::{next_draw, Loaded, Op, Stream, Transparent, Vm};
use crate::metrics;
use crate::router::{Destination, HeaderOp, Outcome, Request};

/// proxy-wasm `FilterHeadersStatus::Continue`.
pub(super) const CONTINUE: u32 = 0;
/// proxy-wasm `FilterHeadersStatus::StopIteration`: a local response was sent.
const PAUSE: u32 = 1;

/// `proxy_on_request_headers`: routes the request of stream `context`.
pub(super) fn request_headers(vm: &mut Vm, context: u32) -> u32 {
    let draw = next_draw(&mut vm.rng);
    let Some(stream) = vm.streams.get_mut(&context) else {
        return CONTINUE;
    };
    let routed = match (stream.loaded.clone(), &stream.transparent) {
        (Some(loaded), _) => route(&loaded, stream, draw),
        // A mesh sidecar without a table yet: default Service routing.
        (None, Some(transparent)) => untouched(transparent),
        // A gateway without a table: fail closed, it has nothing else to route with.
        (None, None) => {
            return respond(
                503,
                &[],
                "gammaroute has no route table\n",
                "gammaroute_no_table",
            )
        }
    };
    match routed {
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
}

thread_local! {
    /// The request headers of the request being routed, decoded into reused strings (see
    /// [`super::pairs::decode_into`]): routing a request allocates nothing for its headers.
    static REQUEST_HEADERS: RefCell<Vec<(String, String)>> = const { RefCell::new(Vec::new()) };
}

fn route(loaded: &Loaded, stream: &mut Stream, draw: u64) -> Result<u32, Status> {
    with_request_headers(|headers| route_with(loaded, stream, draw, headers))
}

/// Runs `f` on the request headers, read once into the reused pool.
fn with_request_headers(
    f: impl FnOnce(&[(String, String)]) -> Result<u32, Status>,
) -> Result<u32, Status> {
    REQUEST_HEADERS.with(|pool| match pool.try_borrow_mut() {
        Ok(mut pool) => {
            let n = abi::headers_into(Map::Request, &mut pool)?;
            f(pool.get(..n).unwrap_or_default())
        }
        // Not reachable (the host never re-enters the VM); decode afresh rather than trap.
        Err(_) => {
            let headers = abi::headers(Map::Request)?;
            f(&headers)
        }
    })
}

/// A mesh sidecar's request before its first table: to the frontend's own Service (or the
/// passthrough cluster, or the host's routing), client-sent control headers removed, counted.
fn untouched(transparent: &Transparent) -> Result<u32, Status> {
    let destination = destination(None, true)?;
    transparent
        .untouched
        .set(transparent.untouched.get().saturating_add(1));
    count(metrics::NO_TABLE_PASSTHROUGH);
    let contract = transparent.egress.contract(destination);
    with_request_headers(|headers| match envoy::passthrough(contract) {
        Plan::Continue { mut request, .. } => {
            apply(&mut request, headers)?;
            Ok(CONTINUE)
        }
        Plan::Respond { .. } => Ok(CONTINUE),
    })
}

/// Executes a plan's request header writes (those that change something, [`envoy::prune`]) and
/// clears the route cache.
fn apply<'d>(request: &mut envoy::Ops<'d>, headers: &'d [(String, String)]) -> Result<(), Status> {
    envoy::strip_reserved(request, headers);
    envoy::prune(request, |name| {
        headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name))
    });
    for op in request.iter() {
        match op {
            HeaderOp::Set(n, v) => abi::set_header(Map::Request, n, v)?,
            HeaderOp::Add(n, v) => abi::add_header(Map::Request, n, v)?,
            HeaderOp::Remove(n) => abi::remove_header(Map::Request, n)?,
        }
    }
    // Envoy 1.40 also clears the cache on header mutation; newer versions may not.
    // Other hosts do not have the function: NotFound is expected there.
    match abi::call_foreign_function("clear_route_cache", &[]) {
        Ok(_) | Err(Status::NOT_FOUND) => Ok(()),
        Err(s) => Err(s),
    }
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
    let known = destination(loaded.listener_port, loaded.mesh)?;
    let unspecified = Destination {
        ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        port: 0,
    };
    let destination = known.unwrap_or(unspecified);
    // The SNI is only needed where a request can be misdirected: a port with several listeners.
    let sni = if loaded.router.has_shared_ports() {
        abi::property(&["connection", "requested_server_name"])?.unwrap_or_default()
    } else {
        Vec::new()
    };
    let req = Request {
        method: pseudo(":method"),
        scheme: pseudo(":scheme"),
        authority: pseudo(":authority"),
        path: pseudo(":path"),
        headers,
        destination,
        // A name that is not UTF-8 matches no listener hostname: treated as no SNI.
        server_name: std::str::from_utf8(&sni).unwrap_or(""),
    };
    let decision = loaded.router.decide(&req, draw);
    if let Ok(mut metrics) = loaded.metrics.try_borrow_mut() {
        metrics.count(
            loaded.router.table(),
            loaded.rule_stats,
            &decision.selection,
            &decision.outcome,
        );
    }
    // Values too long for a regex did not match (table/regex.rs MAX_INPUT_LEN): visible to
    // operators as one count per request.
    if loaded.router.take_oversized_regex_inputs() > 0 {
        count(metrics::REGEX_INPUT_TOO_LONG);
    }
    let contract = loaded.egress.contract(known);
    match envoy::plan(&decision, contract) {
        Plan::Continue {
            mut request,
            response,
            dropped_mirrors,
        } => {
            apply(&mut request, headers)?;
            if dropped_mirrors > 0 {
                count(metrics::MIRROR_DROPPED);
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
/// `destination.address` (mesh parents are identified by ClusterIP:port). `None` when the host
/// does not say: no parent matches (mesh: passthrough; gateway: 404).
fn destination(listener_port: Option<u16>, mesh: bool) -> Result<Option<Destination>, Status> {
    if let (Some(port), false) = (listener_port, mesh) {
        return Ok(Some(Destination {
            ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port,
        }));
    }
    let address = abi::property(&["destination", "address"])?.unwrap_or_default();
    Ok(std::str::from_utf8(&address)
        .ok()
        .and_then(|s| s.parse::<SocketAddr>().ok())
        .map(|addr| Destination {
            ip: addr.ip(),
            port: addr.port(),
        }))
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

/// `proxy_on_response_headers`: applies the response header edits the request's decision kept.
pub(super) fn response_headers(vm: &mut Vm, context: u32) -> u32 {
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
}
