//! The route map in the browser ([`crate::map`]): `GET /ui` hands out the page (no data in it, so
//! it needs no token), `GET /v1/map` the document it draws — behind the API's token like every
//! `/v1/*` endpoint. The page polls `/v1/map` every second with `If-None-Match`; the `ETag`
//! ([`super::state::State::map_view`]) covers the table versions and the status report served,
//! so an unchanged world costs a `304`.

use std::sync::Arc;

use axum::extract::State as Extract;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::headers::none_match;
use super::state::State;
use crate::map;

/// `GET /ui`.
pub async fn page() -> Response {
    (
        [
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            (CACHE_CONTROL, "no-cache"),
        ],
        map::PAGE,
    )
        .into_response()
}

/// `GET /v1/map`: `{"generation", "tables": {role: table}, "status": report}`.
pub async fn document(Extract(state): Extract<Arc<State>>, headers: HeaderMap) -> Response {
    if !state.is_ready() {
        return (StatusCode::SERVICE_UNAVAILABLE, "no translation yet\n").into_response();
    }
    let generation = *state.subscribe().borrow();
    let view = state.map_view();
    let etag = &view.etag;
    let quoted = format!("\"{etag}\"");
    if headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| none_match(v, etag))
    {
        return (StatusCode::NOT_MODIFIED, [(ETAG, quoted)]).into_response();
    }
    let body = map::document(
        generation,
        view.tables
            .iter()
            .map(|(role, t)| (role.as_str(), std::str::from_utf8(&t.json).unwrap_or("{}"))),
        &view.status.json,
    );
    (
        [
            (CONTENT_TYPE, "application/json".to_string()),
            (ETAG, quoted),
            (CACHE_CONTROL, "no-cache".to_string()),
        ],
        body,
    )
        .into_response()
}
