//! `serve --xds-listen`: the ADS server (gRPC, state of the world) the proxies of
//! `render --xds-server` keep one stream open to. Each stream follows [`super::protocol`]; this
//! file is its IO: tonic, the bearer token, the snapshots.
//!
//! **Who gets what.** A proxy names its role in its first request's `node.cluster` (the ADS
//! bootstrap sets it); the stream serves that role's resources. With `--token-file`, the
//! `authorization: Bearer …` metadata of the stream must carry the secret or that role's token
//! ([`crate::auth`]), exactly as for `GET /v1/tables/<role>`.
//!
//! **Nothing before the first translation.** Until `serve` has translated once, requests are
//! held: a restarted config-pusher must not answer an empty cluster list, which would make every
//! connected Envoy drop its clusters. The proxies keep what they have meanwhile.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::protobuf::Any;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::protocol::{self, Resources, Verdict};
use super::Snapshot;
use crate::auth::Access;

/// What the server needs from `serve`: the token check and the metrics (a trait, so that this
/// module does not depend on `serve`).
pub trait Gate: Send + Sync + std::fmt::Debug + 'static {
    /// What a stream's `authorization` metadata grants; `None` when no token is required.
    fn access(&self, authorization: Option<&[u8]>) -> Option<Access>;
    /// A stream opened (`1`) or closed (`-1`).
    fn streams(&self, delta: i64);
    /// A response was sent.
    fn response(&self);
    /// A proxy refused a version.
    fn nack(&self);
}

/// Why the ADS server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum AdsError {
    #[error("--xds-listen {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("--xds-listen: gRPC server: {0}")]
    Server(#[source] tonic::transport::Error),
}

/// The ADS service: the snapshots to serve, and the token check and metrics.
#[derive(Debug, Clone)]
pub struct Ads {
    snapshots: watch::Receiver<Arc<Snapshot>>,
    gate: Arc<dyn Gate>,
}

impl Ads {
    pub fn new(snapshots: watch::Receiver<Arc<Snapshot>>, gate: Arc<dyn Gate>) -> Ads {
        Ads { snapshots, gate }
    }
}

/// Binds `addr` and serves ADS until `shutdown` completes.
pub async fn run(
    addr: SocketAddr,
    ads: Ads,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), AdsError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| AdsError::Listen { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| AdsError::Listen { addr, source })?;
    tracing::info!(addr = %bound, "serving ADS (gRPC) on {bound}");
    tonic::transport::Server::builder()
        // A proxy that vanished without closing its connection frees its stream.
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
        .add_service(AggregatedDiscoveryServiceServer::new(ads))
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener),
            shutdown,
        )
        .await
        .map_err(AdsError::Server)
}

type ResponseStream =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<DiscoveryResponse, Status>> + Send>>;

#[tonic::async_trait]
impl AggregatedDiscoveryService for Ads {
    type StreamAggregatedResourcesStream = ResponseStream;
    type DeltaAggregatedResourcesStream =
        Pin<Box<dyn tokio_stream::Stream<Item = Result<DeltaDiscoveryResponse, Status>> + Send>>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<ResponseStream>, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .map(|v| v.as_bytes());
        let access = self.gate.access(header);
        if access == Some(Access::Denied) {
            return Err(Status::unauthenticated("a valid bearer token is required"));
        }
        let peer = request.remote_addr();
        let (tx, rx) = mpsc::channel(16);
        let stream = StreamTask {
            inbound: request.into_inner(),
            outbound: tx,
            snapshots: self.snapshots.clone(),
            gate: self.gate.clone(),
            access,
            peer,
        };
        tokio::spawn(stream.run());
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn delta_aggregated_resources(
        &self,
        _request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        Err(Status::unimplemented(
            "incremental (delta) xDS is not served: use api_type GRPC (state of the world)",
        ))
    }
}

/// One proxy's stream.
struct StreamTask {
    inbound: Streaming<DiscoveryRequest>,
    outbound: mpsc::Sender<Result<DiscoveryResponse, Status>>,
    snapshots: watch::Receiver<Arc<Snapshot>>,
    gate: Arc<dyn Gate>,
    /// `None`: no token file, everything is open (loopback only).
    access: Option<Access>,
    peer: Option<SocketAddr>,
}

impl StreamTask {
    async fn run(mut self) {
        self.gate.streams(1);
        let ended = self.serve().await;
        self.gate.streams(-1);
        match ended {
            Ok(()) => tracing::debug!(peer = ?self.peer, "ADS stream closed"),
            Err(status) => {
                tracing::warn!(peer = ?self.peer, "ADS stream ended: {}", status.message());
                let _ = self.outbound.send(Err(status)).await;
            }
        }
    }

    async fn serve(&mut self) -> Result<(), Status> {
        let mut proto = protocol::Stream::default();
        let mut role: Option<String> = None;
        loop {
            tokio::select! {
                message = self.inbound.message() => {
                    let Some(req) = message? else { return Ok(()) };
                    if role.is_none() {
                        let named = req.node.as_ref().map(|n| n.cluster.clone()).unwrap_or_default();
                        role = Some(self.admit(named)?);
                    }
                    let request = protocol::Request {
                        type_url: req.type_url,
                        version_info: req.version_info,
                        resource_names: req.resource_names,
                        response_nonce: req.response_nonce,
                        error: req.error_detail.map(|e| e.message),
                    };
                    let verdict = proto.request(&request);
                    self.log(role.as_deref().unwrap_or_default(), &request.type_url, &verdict);
                }
                changed = self.snapshots.changed() => {
                    if changed.is_err() {
                        return Err(Status::unavailable("config-pusher is shutting down"));
                    }
                }
                () = self.outbound.closed() => return Ok(()),
            }
            let snapshot = self.snapshots.borrow().clone();
            if !snapshot.ready {
                continue;
            }
            let empty = Resources::new();
            let resources = role
                .as_ref()
                .and_then(|r| snapshot.roles.get(r))
                .map_or(&empty, |r| r.as_ref());
            for response in proto.due(resources) {
                tracing::debug!(
                    role = role.as_deref().unwrap_or_default(),
                    type_url = %response.type_url,
                    version = %response.version,
                    resources = response.resources.len(),
                    "ADS response"
                );
                let message = DiscoveryResponse {
                    version_info: response.version,
                    nonce: response.nonce,
                    resources: response
                        .resources
                        .into_iter()
                        .map(|r| Any {
                            type_url: response.type_url.clone(),
                            value: r.bytes,
                        })
                        .collect(),
                    type_url: response.type_url,
                    ..DiscoveryResponse::default()
                };
                if self.outbound.send(Ok(message)).await.is_err() {
                    return Ok(());
                }
                self.gate.response();
            }
        }
    }

    /// The role a stream's node names, if the stream's token may read it.
    fn admit(&self, role: String) -> Result<String, Status> {
        if role.is_empty() {
            return Err(Status::invalid_argument(
                "node.cluster must name the proxy's role (gateway/<ns>/<name> or mesh/<ns>): \
                 render the bootstrap with `config-pusher render --xds-server`",
            ));
        }
        match &self.access {
            Some(a) if !a.reads(&role) => Err(Status::permission_denied(format!(
                "the token does not grant role {role}"
            ))),
            _ => {
                tracing::info!(peer = ?self.peer, %role, "ADS stream opened");
                Ok(role)
            }
        }
    }

    fn log(&self, role: &str, type_url: &str, verdict: &Verdict) {
        match verdict {
            Verdict::Subscribe => tracing::debug!(%role, %type_url, "ADS subscription"),
            Verdict::Ack { version } => tracing::debug!(%role, %type_url, %version, "ADS ACK"),
            Verdict::Nack {
                version,
                kept,
                message,
            } => {
                self.gate.nack();
                tracing::error!(%role, %type_url, %version, %kept, "ADS NACK: the proxy refused the version and keeps its last good one: {message}");
            }
            Verdict::Stale => {
                tracing::debug!(%role, %type_url, "ADS request with a stale nonce ignored")
            }
        }
    }
}
