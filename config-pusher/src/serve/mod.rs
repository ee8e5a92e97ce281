//! `config-pusher serve`: keeps translating a source's [`Snapshot`]s and serves each proxy role's
//! route table over HTTP with `ETag` / `If-None-Match` long-polling (docs/architecture.md "Distribution").
//!
//! - [`api`]: the HTTP routes (axum); [`headers`]: the pure request parsing they use;
//! - [`publish`]: which table each role serves after a translation (pure);
//! - [`state`]: the published tables and the change notification long-polls wait on;
//! - [`proxies`]: what each proxy reports it runs; [`programmed`]: the Gateways' `Programmed`
//!   from it; [`metrics`]: Prometheus text;
//! - [`listener`]: the accept loop (connection cap, header-read timeout), over [`tls`] with
//!   `--tls-cert`; [`limits`]: the long-poll caps;
//! - [`token`]: the optional bearer token; [`xds`]: Envoy filesystem CDS for `--xds-dir`
//!   (`--xds-listen` serves the same over gRPC: [`crate::xds`]);
//! - [`ui`]: the route map page (`/ui`) and its data (`/v1/map`).
//!
//! The core ([`run`]) reads a `watch::Receiver<Arc<Snapshot>>` and does not know which source
//! fills it (the folder watcher, or kube watchers); after each translation it hands the output to a
//! [`StatusSink`] (the kube source writes statuses back; the folder source needs nothing).

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
pub mod limits;
pub mod listener;
pub mod metrics;
pub mod process;
pub mod programmed;
pub mod proxies;
pub mod publish;
pub mod sds;
pub mod state;
pub mod tls;
pub mod token;
pub mod ui;
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
    /// `--xds-listen`: serve ADS (gRPC) there ([`crate::xds`]).
    pub xds_listen: Option<SocketAddr>,
    pub settings: Settings,
    /// Cluster endpoints for `--xds-dir` (`--backend`, `--cluster-domain`), as `render` uses them.
    pub clusters: envoy::BootstrapOptions,
    /// Bounds on open long-polls (`--max-long-polls`, `--max-long-polls-per-role`).
    pub limits: limits::Limits,
    /// Bounds on connections (`--max-connections`, `--header-read-timeout-ms`).
    pub connections: listener::ConnectionLimits,
    /// `--tls-cert`/`--tls-key`: serve HTTPS only.
    pub tls: Option<tls::TlsFiles>,
}

impl Config {
    /// Serving on `listen` with every option at its default (no token, no xDS, no TLS, default
    /// limits): what tests and embedders start from, setting what they need on top.
    pub fn local(listen: SocketAddr) -> Config {
        Config {
            listen,
            token_file: None,
            xds_dir: None,
            xds_listen: None,
            settings: Settings::default(),
            clusters: envoy::BootstrapOptions::default(),
            limits: limits::Limits::default(),
            connections: listener::ConnectionLimits::default(),
            tls: None,
        }
    }
}

/// Receives every translation's output (statuses included): the kube source writes statuses
/// back to the API server; the folder source has nowhere to write them ([`NoStatus`]).
pub trait StatusSink: Send + 'static {
    /// Called after each translation of `snapshot`, once its tables are published. Must not
    /// block: hand the work to a task of your own.
    fn publish(&mut self, snapshot: &Arc<Snapshot>, output: &Output);
}

/// A [`StatusSink`] that drops statuses (`/v1/status` serves them anyway).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoStatus;

impl StatusSink for NoStatus {
    fn publish(&mut self, _: &Arc<Snapshot>, _: &Output) {}
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
    #[error(
        "refusing to listen on {addr} without --token-file: every client that reaches it could \
         read every table and status and forge proxy reports (give --token-file FILE, listen on \
         a loopback address, or accept that with --insecure-no-auth)"
    )]
    Unprotected { addr: SocketAddr },
    #[error(transparent)]
    Xds(#[from] xds::XdsError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    Ads(#[from] crate::xds::server::AdsError),
    #[error("HTTP server: {0}")]
    Server(#[source] std::io::Error),
    #[error("translation stopped ({0}): exiting, so that the tables served are never stale")]
    Stopped(#[from] Stopped),
}

/// `serve` never exposes the API unauthenticated by accident: a non-loopback `listen` needs a
/// token file (the secret, [`crate::auth`]) or an explicit `insecure` (`--insecure-no-auth`).
pub fn check_exposure(listen: SocketAddr, token: bool, insecure: bool) -> Result<(), ServeError> {
    if listen.ip().is_loopback() || token {
        return Ok(());
    }
    if insecure {
        tracing::warn!(%listen, "--insecure-no-auth: anyone who reaches {listen} reads every table and status and can forge proxy reports");
        return Ok(());
    }
    Err(ServeError::Unprotected { addr: listen })
}

/// Why the translation loop ended (it only ends on failure).
#[derive(Debug, thiserror::Error)]
pub enum Stopped {
    #[error("the source stopped delivering snapshots")]
    SourceEnded,
    #[error("translation task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
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
    // Loaded before binding: a pair that does not load stops `serve`, never plain text instead.
    let tls = config.tls.clone().map(tls::load).transpose()?;
    let state = Arc::new(State::new(token, config.limits));
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Listen {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(ServeError::Server)?;
    let acceptor = match tls {
        Some((config, reloader)) => {
            tokio::spawn(reloader.run());
            tracing::info!(%addr, "serving on https://{addr}");
            Some(tokio_rustls::TlsAcceptor::from(config))
        }
        None => {
            tracing::info!(%addr, "serving on http://{addr}");
            None
        }
    };
    let server = listener::serve(
        listener,
        acceptor,
        api::router(state.clone()),
        config.connections,
        state.clone(),
    );
    let (ads_tx, ads_rx) = watch::channel(Arc::new(crate::xds::Snapshot::default()));
    let xds_listen = config.xds_listen;
    let gate: Arc<dyn crate::xds::server::Gate> = state.clone();
    let ads = async move {
        match xds_listen {
            Some(addr) => {
                let ads = crate::xds::server::Ads::new(ads_rx, gate);
                crate::xds::server::run(addr, ads, std::future::pending()).await
            }
            None => std::future::pending().await,
        }
    };
    let ads_tx = config.xds_listen.map(|_| ads_tx);
    let mut translating = tokio::spawn(translate_loop(
        state.clone(),
        config,
        source,
        sink,
        Outputs { xds, ads: ads_tx },
    ));
    tokio::select! {
        () = server => {}
        r = ads => r?,
        () = shutdown_signal() => tracing::info!("shutting down"),
        // Fail visibly: a dead translation loop would serve stale tables while looking healthy.
        ended = &mut translating => {
            state.fail();
            let stopped = ended.unwrap_or_else(Stopped::Task);
            tracing::error!("{stopped}: no longer ready, exiting");
            return Err(stopped.into());
        }
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

/// How often `Programmed` is re-evaluated without news from the proxies: a proxy that stops
/// asking counts as gone after [`proxies::CONNECTED_WINDOW`].
const PROGRAMMED_RECHECK: std::time::Duration = std::time::Duration::from_secs(5);

/// Where translations go besides the table API: `--xds-dir` files and the `--xds-listen` ADS
/// snapshots.
struct Outputs {
    xds: Option<xds::Xds>,
    ads: Option<watch::Sender<Arc<crate::xds::Snapshot>>>,
}

/// The ADS snapshot after a translation: per role, the resources of its new table and of the one
/// it replaces (whose clusters stay until the next translation, as in `cds.yaml`).
fn ads_snapshot(
    store: &crate::store::Store,
    previous: &publish::Tables,
    next: &publish::Tables,
    options: &envoy::BootstrapOptions,
) -> crate::xds::Snapshot {
    let mut by_role: std::collections::BTreeMap<
        String,
        Vec<&gammaroute_filter::table::RouteTable>,
    > = std::collections::BTreeMap::new();
    for (role, p) in previous.iter().chain(next.iter()) {
        by_role.entry(role.clone()).or_default().push(&p.table);
    }
    crate::xds::Snapshot {
        ready: true,
        roles: crate::xds::resources::snapshot(store, &by_role, options)
            .into_iter()
            .map(|(role, r)| (role, Arc::new(r)))
            .collect(),
    }
}

impl crate::xds::server::Gate for State {
    fn access(&self, authorization: Option<&[u8]>) -> Option<crate::auth::Access> {
        self.token.as_ref().map(|t| t.access(authorization))
    }
    fn streams(&self, delta: i64) {
        self.metrics.xds_streams(delta);
    }
    fn response(&self) {
        self.metrics.xds_response();
    }
    fn nack(&self) {
        self.metrics.xds_nack();
    }
}

/// Translates the current snapshot and every later [complete](Snapshot::complete) one; between
/// snapshots it follows what the proxies apply, republishing the statuses when a Gateway's
/// `Programmed` changes ([`programmed`]). Returns only when it cannot go on.
async fn translate_loop(
    state: Arc<State>,
    config: Config,
    mut source: watch::Receiver<Arc<Snapshot>>,
    mut sink: impl StatusSink,
    outputs: Outputs,
) -> Stopped {
    let mut proxies_changed = state.proxies.subscribe();
    loop {
        let snapshot = source.borrow_and_update().clone();
        if !snapshot.complete {
            // A partial view publishes nothing: not ready, no tables, no statuses.
            tracing::info!("waiting for the source to read everything once");
            if source.changed().await.is_err() {
                return Stopped::SourceEnded;
            }
            continue;
        }
        let settings = config.settings.clone();
        let started = Instant::now();
        let snap = snapshot.clone();
        let translated =
            tokio::task::spawn_blocking(move || translate::translate(&snap.store, &settings)).await;
        // Logged apart from the whole step (`ms`: translation, CDS files, publishing the tables
        // at `published_ms`, then the status), so that `make bench-propagation` can split
        // save → translated → published.
        let translate_ms = started.elapsed().as_secs_f64() * 1000.0;
        let mut output = match translated {
            Ok(output) => output,
            Err(e) => return Stopped::Task(e),
        };
        let previous = state.tables();
        let (next, outcome) = publish::next_tables(&previous, &output, snapshot.generation);
        // Clusters first, so a proxy that applies a new table finds its clusters in Envoy; the
        // clusters of the tables being replaced stay until the next translation.
        if let Some(xds) = &outputs.xds {
            let tables = previous.values().chain(next.values()).map(|p| &p.table);
            if let Err(e) = xds.write(&snapshot.store, tables, &config.clusters) {
                tracing::error!("xDS files not written: {e}");
            }
        }
        if let Some(ads) = &outputs.ads {
            ads.send_replace(Arc::new(ads_snapshot(
                &snapshot.store,
                &previous,
                &next,
                &config.clusters,
            )));
        }
        let served: std::collections::BTreeMap<String, String> = next
            .iter()
            .map(|(role, p)| (role.clone(), p.version().to_string()))
            .collect();
        // Translation's statuses; `Programmed` is laid over a copy as the proxies report.
        let translated = output.statuses.clone();
        let mut verdicts =
            programmed::verdicts(&translated, &served, &state.proxies.fleet(Instant::now()));
        programmed::apply(&mut output.statuses, &verdicts);
        let live = state.publish(&snapshot, &output, next, &outcome);
        let published_ms = live.duration_since(started).as_secs_f64() * 1000.0;
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
            translate_ms,
            published_ms,
            ms,
            "translation done"
        );
        sink.publish(&snapshot, &output);
        loop {
            tokio::select! {
                changed = source.changed() => match changed {
                    Ok(()) => break,
                    Err(_) => return Stopped::SourceEnded,
                },
                Ok(()) = proxies_changed.changed() => {}
                () = tokio::time::sleep(PROGRAMMED_RECHECK) => {}
            }
            let now =
                programmed::verdicts(&translated, &served, &state.proxies.fleet(Instant::now()));
            if now != verdicts {
                for (role, verdict) in &now {
                    if verdicts.get(role) != Some(verdict) {
                        tracing::info!(%role, ?verdict, "Programmed changed");
                    }
                }
                verdicts = now;
                output.statuses = translated.clone();
                programmed::apply(&mut output.statuses, &verdicts);
                state.publish_status(&snapshot, &output);
                sink.publish(&snapshot, &output);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_may_go_without_a_token() {
        let any: SocketAddr = "0.0.0.0:18000".parse().unwrap();
        let pod: SocketAddr = "10.1.2.3:18000".parse().unwrap();
        for local in ["127.0.0.1:0", "127.0.0.2:18000", "[::1]:18000"] {
            assert!(
                check_exposure(local.parse().unwrap(), false, false).is_ok(),
                "{local}"
            );
        }
        for open in [any, pod, "[::]:18000".parse().unwrap()] {
            let e = check_exposure(open, false, false).unwrap_err();
            assert!(matches!(e, ServeError::Unprotected { .. }), "{open}");
            assert!(check_exposure(open, true, false).is_ok());
            assert!(check_exposure(open, false, true).is_ok());
        }
    }
}
