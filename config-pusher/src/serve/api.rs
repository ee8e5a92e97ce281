//! The HTTP API (axum). Endpoints, headers and status codes are documented in README.md
//! ("config-pusher serve"); the parsing is in [`super::headers`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, Path, Request, State as Extract};
use axum::http::header::{
    ACCEPT, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH, RETRY_AFTER,
    WWW_AUTHENTICATE,
};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::headers;
use super::limits::{Refused, Slot};
use super::proxies;
use super::publish::Published;
use super::state::State;
use crate::auth::Access;

type Shared = Arc<State>;

/// Every route; `/v1/*` behind the bearer token when one is configured.
pub fn router(state: Shared) -> Router {
    let v1 = Router::new()
        .route("/v1/tables/{*role}", get(table))
        .route("/v1/proxies", get(list_proxies))
        .route("/v1/status", get(status))
        .route("/v1/map", get(super::ui::document))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth));
    Router::new()
        .merge(v1)
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/ui", get(super::ui::page))
        .with_state(state)
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    let body = serde_json::json!({ "error": message.to_string() }).to_string() + "\n";
    (status, [(CONTENT_TYPE, "application/json")], body).into_response()
}

/// `/v1/*` with `--token-file`: the secret opens everything; a role token opens only
/// `/v1/tables/<its role>` (another role, `/v1/proxies`, `/v1/status`: 403); anything else: 401.
async fn auth(Extract(state): Extract<Shared>, request: Request, next: Next) -> Response {
    if let Some(token) = &state.token {
        let given = request.headers().get(AUTHORIZATION).map(|v| v.as_bytes());
        let access = token.access(given);
        let path = request.uri().path();
        let table = path.strip_prefix("/v1/tables/");
        let denied = match (&access, table) {
            (Access::Denied, _) => {
                let mut r = error(
                    StatusCode::UNAUTHORIZED,
                    "missing or wrong bearer token (Authorization: Bearer <token>)",
                );
                r.headers_mut().insert(
                    WWW_AUTHENTICATE,
                    axum::http::HeaderValue::from_static("Bearer"),
                );
                Some(r)
            }
            (Access::Role(mine), Some(role)) if mine != role => Some(error(
                StatusCode::FORBIDDEN,
                format!("this token is for role {mine:?}, not {role:?}"),
            )),
            (Access::Role(mine), None) => Some(error(
                StatusCode::FORBIDDEN,
                format!("this token is for the table of role {mine:?} only"),
            )),
            _ => None,
        };
        if let Some(r) = denied {
            if table.is_some() {
                state.metrics.response(r.status().as_u16());
            }
            return r;
        }
    }
    next.run(request).await
}

/// `GET /v1/tables/{role}`.
async fn table(
    Extract(state): Extract<Shared>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Path(role): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let response = table_response(&state, remote, &role, &uri, &headers).await;
    state.metrics.response(response.status().as_u16());
    response
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Counts an open long-poll (metric and proxy) for as long as it lives, including when the
/// client goes away and the handler is dropped.
struct Poll {
    state: Shared,
    proxy: Option<String>,
    _slot: Slot,
}

impl Poll {
    /// A long-poll on `role`, if the bounds allow one more.
    fn open(state: &Shared, role: &str, proxy: Option<&str>) -> Result<Poll, Refused> {
        let slot = state.long_polls.take(role)?;
        state.metrics.polls(1);
        if let Some(id) = proxy {
            state.proxies.polling(id, 1, Instant::now());
        }
        Ok(Poll {
            state: state.clone(),
            proxy: proxy.map(str::to_string),
            _slot: slot,
        })
    }
}

impl Drop for Poll {
    fn drop(&mut self) {
        self.state.metrics.polls(-1);
        if let Some(id) = &self.proxy {
            self.state.proxies.polling(id, -1, Instant::now());
        }
    }
}

async fn table_response(
    state: &Shared,
    remote: SocketAddr,
    role: &str,
    uri: &Uri,
    headers: &HeaderMap,
) -> Response {
    let wait = match headers::query_param(uri.query(), "wait").map(headers::parse_wait) {
        None => None,
        Some(Ok(w)) => Some(w),
        Some(Err(e)) => return error(StatusCode::BAD_REQUEST, e),
    };
    let proxy = header(headers, headers::PROXY).filter(|p| !p.is_empty());
    if let Some(id) = proxy {
        report(state, id, role, remote, headers);
    }
    let known = header(headers, IF_NONE_MATCH.as_str());
    let generation = header(headers, headers::GENERATION).and_then(|g| g.trim().parse().ok());
    let proto = headers::wants_proto(header(headers, ACCEPT.as_str()));
    // Subscribed before the first look: a publication in between still wakes us.
    let mut changes = state.subscribe();
    let deadline = wait.map(|w| tokio::time::Instant::now() + w);
    let mut poll = None;
    loop {
        let current = state.table(role);
        if let Some(t) = &current {
            if t.offer(known, generation) {
                return ok(t, proto);
            }
        }
        let Some(deadline) = deadline else {
            return not_modified_or_missing(state, role, current.as_deref());
        };
        if poll.is_none() {
            match Poll::open(state, role, proxy) {
                Ok(p) => poll = Some(p),
                Err(refused) => return busy(refused),
            }
        }
        match tokio::time::timeout_at(deadline, changes.changed()).await {
            Ok(Ok(())) => continue,
            // Timed out (or the state is gone, which does not happen while serving).
            _ => {
                return not_modified_or_missing(state, role, state.table(role).as_deref());
            }
        }
    }
}

/// `503` with `Retry-After` (1–5 s, spread so that refused clients do not return together).
fn busy(refused: Refused) -> Response {
    let spread = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() % 5);
    let mut r = error(StatusCode::SERVICE_UNAVAILABLE, refused);
    r.headers_mut()
        .insert(RETRY_AFTER, axum::http::HeaderValue::from(1 + spread));
    r
}

/// Records the proxy's report headers; a rejection is logged once per (proxy, version).
fn report(state: &Shared, id: &str, role: &str, remote: SocketAddr, headers: &HeaderMap) {
    let r = proxies::Report {
        id,
        role,
        applied: header(headers, headers::APPLIED),
        rejected: header(headers, headers::REJECTED).and_then(headers::parse_rejected),
        remote,
    };
    if let Some(rejection) = state.proxies.seen(&r, Instant::now()) {
        state.metrics.proxy_rejection();
        tracing::warn!(
            proxy = id,
            %role,
            version = %rejection.version,
            applied = r.applied.unwrap_or(""),
            "proxy rejected a table: {}",
            rejection.message
        );
    }
}

fn ok(t: &Published, proto: bool) -> Response {
    let (content_type, body) = if proto {
        ("application/x-protobuf", t.proto.clone())
    } else {
        ("application/json", t.json.clone())
    };
    (
        StatusCode::OK,
        [
            (ETAG, headers::etag(t.version())),
            (
                axum::http::HeaderName::from_static(headers::GENERATION),
                t.generation.to_string(),
            ),
            (CONTENT_TYPE, content_type.to_string()),
            (CACHE_CONTROL, "no-cache".to_string()),
        ],
        body,
    )
        .into_response()
}

fn not_modified_or_missing(state: &Shared, role: &str, current: Option<&Published>) -> Response {
    match current {
        Some(t) => (StatusCode::NOT_MODIFIED, [(ETAG, headers::etag(t.version()))]).into_response(),
        None if !state.is_ready() => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no translation yet: retry shortly",
        ),
        None => error(
            StatusCode::NOT_FOUND,
            format!(
                "no table for role {role:?} (roles are gateway/<namespace>/<name> and mesh/<namespace>; see /v1/status)"
            ),
        ),
    }
}

/// `GET /v1/proxies`.
async fn list_proxies(Extract(state): Extract<Shared>) -> Response {
    let body = serde_json::to_string_pretty(&state.proxies.list())
        .map(|j| j + "\n")
        .unwrap_or_default();
    ([(CONTENT_TYPE, "application/json")], body).into_response()
}

/// `GET /v1/status[?format=json]`.
async fn status(Extract(state): Extract<Shared>, uri: Uri) -> Response {
    if !state.is_ready() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "no translation yet");
    }
    let text = state.status();
    match headers::query_param(uri.query(), "format") {
        Some("json") => ([(CONTENT_TYPE, "application/json")], text.json.clone()).into_response(),
        None | Some("yaml") => {
            ([(CONTENT_TYPE, "application/yaml")], text.yaml.clone()).into_response()
        }
        Some(other) => error(
            StatusCode::BAD_REQUEST,
            format!("format={other:?}: expected yaml or json"),
        ),
    }
}

/// `GET /readyz`: 200 once the first translation is published.
async fn readyz(Extract(state): Extract<Shared>) -> Response {
    if state.is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no translation yet\n",
        )
            .into_response()
    }
}

/// `GET /metrics`.
async fn metrics(Extract(state): Extract<Shared>) -> Response {
    let connected = state.proxies.connected(Instant::now());
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(connected),
    )
        .into_response()
}
