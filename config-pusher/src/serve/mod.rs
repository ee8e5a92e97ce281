//! `config-pusher serve`: keeps translating a source's [`Snapshot`]s and serves each proxy role's
//! route table over HTTP with `ETag` / `If-None-Match` long-polling (docs/architecture.md "Distribution").
//!
//! - [`api`]: the HTTP routes (axum); [`headers`]: the pure request parsing they use;
//! - [`state`]: the published tables and the change notification long-polls wait on;
//! - [`proxies`]: what each proxy reports it runs; [`metrics`]: Prometheus text;
//! - [`token`]: the optional bearer token; [`xds`]: Envoy filesystem CDS for `--xds-dir`.
//!
//! The core ([`run`]) reads a `watch::Receiver<Arc<Snapshot>>` and does not know which source
//! fills it (the folder watcher, or kube watchers); after each translation it hands the output to a
//! [`StatusSink`] (the kube source writes statuses back; the folder source needs nothing).

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;

use crate::render::envoy;
use crate::source::Snapshot;
use crate::translate::{self, Output, Settings};

pub mod api;
pub mod headers;
pub mod metrics;
pub mod proxies;
pub mod sds;
pub mod state;
pub mod token;
pub mod xds;

use state::State;

/// How `serve` runs (the CLI flags).
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the HTTP API listens (port 0: any free port; the bound address is logged).
    pub listen: SocketAddr,
    /// `--token-file`: `/v1/*` requires `Authorization: Bearer <its content>`.
    pub token_file: Option<PathBuf>,
    /// `--xds-dir`: write Envoy filesystem-xDS files (`cds.yaml`) there.
    pub xds_dir: Option<PathBuf>,
    pub settings: Settings,
    /// Cluster endpoints for `--xds-dir` (`--backend`, `--cluster-domain`), as `render` uses them.
    pub clusters: envoy::Options,
}

/// Receives every translation's output (statuses included): the kube source writes statuses
/// back to the API server; the folder source has nowhere to write them ([`NoStatus`]).
pub trait StatusSink: Send + 'static {
    /// Called after each translation, once its tables are published. Must not block: hand the
    /// work to a task of your own.
    fn publish(&mut self, output: &Output);
}

/// A [`StatusSink`] that drops statuses (`/v1/status` serves them anyway).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoStatus;

impl StatusSink for NoStatus {
    fn publish(&mut self, _: &Output) {}
}

/// Why `serve` stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Token(#[from] token::TokenError),
    #[error(transparent)]
    Xds(#[from] xds::XdsError),
    #[error("HTTP server: {0}")]
    Server(#[source] std::io::Error),
}

/// Serves until SIGINT/SIGTERM: binds `config.listen`, translates every snapshot `source`
/// delivers (the current one first) and publishes the tables.
pub async fn run(
    config: Config,
    source: watch::Receiver<Arc<Snapshot>>,
    sink: impl StatusSink,
) -> Result<(), ServeError> {
    let token = config
        .token_file
        .as_deref()
        .map(token::Token::load)
        .transpose()?;
    let xds = config.xds_dir.clone().map(xds::Xds::new).transpose()?;
    let state = Arc::new(State::new(token));
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Listen {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(ServeError::Server)?;
    tracing::info!(%addr, "serving on http://{addr}");
    let app = api::router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let server = axum::serve(listener, app).into_future();
    let translating = tokio::spawn(translate_loop(state, config, source, sink, xds));
    tokio::select! {
        r = server => r.map_err(ServeError::Server)?,
        () = shutdown_signal() => tracing::info!("shutting down"),
    }
    translating.abort();
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// Translates the current snapshot and every later one; keeps serving the last tables when the
/// source ends.
async fn translate_loop(
    state: Arc<State>,
    config: Config,
    mut source: watch::Receiver<Arc<Snapshot>>,
    mut sink: impl StatusSink,
    xds: Option<xds::Xds>,
) {
    loop {
        let snapshot = source.borrow_and_update().clone();
        let settings = config.settings.clone();
        let started = Instant::now();
        let snap = snapshot.clone();
        let translated =
            tokio::task::spawn_blocking(move || translate::translate(&snap.store, &settings)).await;
        let output = match translated {
            Ok(output) => output,
            Err(e) => {
                tracing::error!("translation task failed: {e}");
                return;
            }
        };
        let previous = state.tables();
        let (next, outcome) = state::next_tables(&previous, &output);
        // Clusters first, so a proxy that applies a new table finds its clusters in Envoy; the
        // clusters of the tables being replaced stay until the next translation.
        if let Some(xds) = &xds {
            let tables = previous.values().chain(next.values()).map(|p| &p.table);
            if let Err(e) = xds.write(&snapshot.store, tables, &config.clusters) {
                tracing::error!("xDS files not written: {e}");
            }
        }
        state.publish(&snapshot, &output, next, &outcome);
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        for (role, version) in &outcome.changed {
            tracing::info!(%role, %version, "table published");
        }
        for role in &outcome.removed {
            tracing::info!(%role, "table withdrawn: the role no longer exists");
        }
        for e in &output.errors {
            tracing::error!(role = %e.role, "table not published, the previous version stays: {e}");
        }
        tracing::info!(
            roles = output.tables.len(),
            changed = outcome.changed.len(),
            rejected = output.errors.len(),
            load_errors = snapshot.problems.len(),
            ms,
            "translation done"
        );
        sink.publish(&output);
        if source.changed().await.is_err() {
            tracing::info!("source ended: serving the last tables");
            return;
        }
    }
}
