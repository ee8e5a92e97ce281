//! Echo backend for tests and demos: answers every request with a JSON description of what it
//! received, in the shape of the Gateway API conformance echo server (`path`, `host`, `method`,
//! `proto`, `headers`, `namespace`, `ingress`, `service`, `pod`), so a test can see which backend
//! served a request and exactly what the proxy forwarded.
//!
//! Request headers steer it, for testing retries and timeouts:
//! - `x-echo-status: 503` answers with that status;
//! - `x-echo-fail-first: N` with `x-echo-id: ID` answers `x-echo-status` (default 503) to the first
//!   N requests carrying that id, then 200;
//! - `x-echo-delay-ms: N` waits before answering;
//! - `x-echo-response-header: name=value` (repeatable) adds response headers.
//!
//! A WebSocket handshake (`Upgrade: websocket`, RFC 6455 §4.2) is accepted with `101` and a
//! correct `Sec-WebSocket-Accept`, plus `x-echo-service` naming this backend; afterwards every
//! byte received is sent back unchanged (a raw echo: enough to prove the tunnel, not frame-aware).
//!
//! `GET /__echo/seen` (sent to the backend directly) reports how many requests it served, in total
//! and per `x-echo-id`, and the last request seen with each id (the same JSON as the answer):
//! mirror tests use it, since a mirror's answer never reaches the client.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::json;

#[derive(Parser, Debug, Clone)]
#[command(
    about = "Echo backend for gammaroute tests and demos (answers with what it received, as JSON)"
)]
struct Args {
    /// Address to listen on, e.g. 127.0.0.11:8080.
    #[arg(long, env = "ECHO_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Allow a non-loopback listen address (containers); tests only ever use loopback.
    #[arg(long, env = "ECHO_ANY_ADDRESS")]
    any_address: bool,
    /// Reported as `namespace`.
    #[arg(long, env = "ECHO_NAMESPACE", default_value = "")]
    namespace: String,
    /// Reported as `service`.
    #[arg(long, env = "ECHO_SERVICE", default_value = "")]
    service: String,
    /// Reported as `pod`; defaults to the service name.
    #[arg(long, env = "ECHO_POD")]
    pod: Option<String>,
}

#[derive(Default)]
struct Seen {
    total: u64,
    by_id: HashMap<String, u64>,
    last: HashMap<String, serde_json::Value>,
}

struct State {
    args: Args,
    seen: Mutex<Seen>,
}

/// Parses the command line and serves until Ctrl-C (the `gammaroute-echo` binary, and the
/// `echo` binary of host-tests).
pub fn main() {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("echo: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    runtime.block_on(serve(Args::parse()));
}

async fn serve(args: Args) {
    if !args.listen.ip().is_loopback() && !args.any_address {
        eprintln!(
            "echo: refusing to listen on {} (not loopback); pass --any-address in a container",
            args.listen
        );
        std::process::exit(2);
    }
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("echo: cannot listen on {}: {e}", args.listen);
            std::process::exit(1);
        }
    };
    eprintln!("echo: {} listening on {}", args.service, args.listen);
    let state = Arc::new(State {
        args,
        seen: Mutex::new(Seen::default()),
    });
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let state = state.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| handle(state.clone(), req));
                    // HTTP/1.1 and h2c (prior knowledge) on the same port.
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .await;
                });
            }
            _ = tokio::signal::ctrl_c() => return,
        }
    }
}

fn header<'a>(req: &'a Request<Incoming>, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The GUID of RFC 6455 §1.3, appended to the client's key for `Sec-WebSocket-Accept`.
const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key`: base64(SHA-1(key + GUID)).
pub fn websocket_accept(key: &str) -> String {
    use base64::Engine;
    use sha1::Digest;
    let digest = sha1::Sha1::digest(format!("{key}{WEBSOCKET_GUID}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(digest)
}

/// Accepts a WebSocket handshake and echoes the upgraded connection's bytes.
fn websocket(state: &State, mut req: Request<Incoming>, key: &str) -> Response<Full<Bytes>> {
    let accept = websocket_accept(key);
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        if let Ok(upgraded) = upgrade.await {
            let (mut rd, mut wr) = tokio::io::split(TokioIo::new(upgraded));
            let _ = tokio::io::copy(&mut rd, &mut wr).await;
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("upgrade", "websocket")
        .header("connection", "Upgrade")
        .header("sec-websocket-accept", accept)
        .header("x-echo-service", state.args.service.as_str())
        .body(Full::new(Bytes::new()))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let upgrade = header(&req, "upgrade").is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
    if let (true, Some(key)) = (
        upgrade,
        header(&req, "sec-websocket-key").map(str::to_string),
    ) {
        return Ok(websocket(&state, req, &key));
    }
    if req.uri().path() == "/__echo/seen" {
        let seen = state
            .seen
            .lock()
            .map(|s| json!({"total": s.total, "ids": s.by_id, "last": s.last}))
            .unwrap_or_default();
        return Ok(reply(StatusCode::OK, &seen, &[]));
    }
    let id = header(&req, "x-echo-id").map(str::to_string);
    let attempt = {
        let mut seen = match state.seen.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        seen.total += 1;
        id.clone().map(|id| {
            let n = seen.by_id.entry(id).or_default();
            *n += 1;
            *n
        })
    };
    let wanted = header(&req, "x-echo-status").and_then(|s| s.parse::<u16>().ok());
    let fail_first = header(&req, "x-echo-fail-first").and_then(|s| s.parse::<u64>().ok());
    let status = match (fail_first, attempt) {
        (Some(n), Some(attempt)) if attempt > n => StatusCode::OK,
        (Some(_), _) => {
            StatusCode::from_u16(wanted.unwrap_or(503)).unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
        }
        (None, _) => wanted
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(StatusCode::OK),
    };
    if let Some(ms) = header(&req, "x-echo-delay-ms").and_then(|s| s.parse::<u64>().ok()) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let extra: Vec<(String, String)> = req
        .headers()
        .get_all("x-echo-response-header")
        .iter()
        .filter_map(|v| {
            v.to_str()
                .ok()?
                .split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect();

    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in req.headers() {
        headers
            .entry(canonical(name.as_str()))
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    let host = header(&req, "host")
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default();
    let method = req.method().to_string();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let proto = format!("{:?}", req.version());
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let args = &state.args;
    let doc = json!({
        "path": path,
        "host": host,
        "method": method,
        "proto": proto,
        "headers": headers,
        "namespace": args.namespace,
        "ingress": "",
        "service": args.service,
        "pod": args.pod.clone().unwrap_or_else(|| args.service.clone()),
        "body": String::from_utf8_lossy(&body),
        "attempt": attempt,
    });
    if let Some(id) = id {
        if let Ok(mut seen) = state.seen.lock() {
            seen.last.insert(id, doc.clone());
        }
    }
    Ok(reply(status, &doc, &extra))
}

fn reply(
    status: StatusCode,
    doc: &serde_json::Value,
    extra: &[(String, String)],
) -> Response<Full<Bytes>> {
    let mut builder = Response::builder()
        .status(status)
        .header("content-type", "application/json");
    for (k, v) in extra {
        builder = builder.header(k.as_str(), v.as_str());
    }
    builder
        .body(Full::new(Bytes::from(doc.to_string())))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::from_static(b"{}"))))
}

/// `x-request-id` → `X-Request-Id`, as Go's echo server reports header names.
fn canonical(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    #[test]
    fn websocket_accept_is_rfc_6455s() {
        // RFC 6455 §1.3's worked example.
        assert_eq!(
            super::websocket_accept("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
