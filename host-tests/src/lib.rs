//! Support for testing gammaroute in a real Envoy: start echo backends and Envoy processes on
//! loopback, fill the bootstrap templates of `envoy-configs/` (with config-pusher's
//! `render::envoy`), and send raw HTTP/1.1 requests
//! (raw, so a test controls the Host header, repeated headers and sees redirects unfollowed).
//!
//! Envoy is required: a test that needs it fails (never skips) when it is missing.

pub mod balancer;
pub mod certs;
pub mod echo;
pub mod envoy;
pub mod fixture;
pub mod http;
pub mod live;
pub mod wasm_host;

use std::path::PathBuf;

/// The workspace root (where `envoy-configs/` and `target/` live).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// The built filter: `$GAMMAROUTE_WASM`, else the release build `make wasm` produces.
pub fn wasm_path() -> PathBuf {
    let path = std::env::var_os("GAMMAROUTE_WASM")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            workspace_root().join("target/wasm32-wasip1/release/gammaroute_filter.wasm")
        });
    assert!(
        path.exists(),
        "{} is missing: build the filter first with `make wasm` (make test does it)",
        path.display()
    );
    path
}
