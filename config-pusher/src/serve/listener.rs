//! The accept loop of the table API: HTTP/1.1 (hyper) over TCP or TLS, with the bounds a server
//! reachable by every pod needs ([`ConnectionLimits`]):
//!
//! - **connections**: at most `max` open at once; one over it is closed as soon as it is
//!   accepted (the client reconnects; the filter backs off), so file descriptors and per-connection
//!   buffers stay bounded whatever clients do;
//! - **header-read timeout**: a request's headers must arrive within `header_read`, the TLS
//!   handshake included; hyper's timer also runs while a kept-alive connection waits for its next
//!   request, so idle and slowloris connections are closed after it. A long-poll is past its
//!   headers and is not affected.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use super::state::State;

/// `serve --max-connections`, `--header-read-timeout-ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections open at once (TCP accepted, TLS or not).
    pub max: usize,
    /// Time for a request's headers (and the TLS handshake) to arrive.
    pub header_read: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> ConnectionLimits {
        // Room for the default 10,000 long-polls plus the plain fetches and probes around them.
        ConnectionLimits {
            max: 16_384,
            header_read: Duration::from_secs(10),
        }
    }
}

/// After an accept error (out of file descriptors, mostly), wait this long before the next.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Accepts connections on `listener` forever and serves `app` on each.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    limits: ConnectionLimits,
    state: Arc<State>,
) {
    let permits = Arc::new(Semaphore::new(limits.max));
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!("accept: {e}");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            // Closed at once: the client sees a reset or EOF and retries later.
            state.metrics.connection_refused();
            drop(stream);
            continue;
        };
        let (app, tls, state) = (app.clone(), tls.clone(), state.clone());
        tokio::spawn(async move {
            state.metrics.connections(1);
            connection(stream, remote, tls, app, limits.header_read).await;
            state.metrics.connections(-1);
            drop(permit);
        });
    }
}

async fn connection(
    stream: TcpStream,
    remote: SocketAddr,
    tls: Option<TlsAcceptor>,
    app: Router,
    header_read: Duration,
) {
    let _ = stream.set_nodelay(true);
    match tls {
        None => http(stream, remote, app, header_read).await,
        Some(acceptor) => {
            match tokio::time::timeout(header_read, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => http(stream, remote, app, header_read).await,
                // A failed handshake is the client's problem (wrong CA, plain text to a TLS
                // port): debug only, or a scanner would flood the log.
                Ok(Err(e)) => tracing::debug!(%remote, "TLS handshake failed: {e}"),
                Err(_) => tracing::debug!(%remote, "TLS handshake timed out"),
            }
        }
    }
}

async fn http<S>(io: S, remote: SocketAddr, app: Router, header_read: Duration)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // What `into_make_service_with_connect_info` would give the handlers.
    let app = app.map_request(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(remote));
        request
    });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read)
        .serve_connection(TokioIo::new(io), TowerToHyperService::new(app))
        .await;
    if let Err(e) = served {
        tracing::debug!(%remote, "connection: {e}");
    }
}
