//! xDS over gRPC: `serve --xds-listen ADDR` serves Envoy's aggregated discovery service (ADS,
//! state of the world) to the proxies of `render --xds-server HOST:PORT`, so clusters, endpoints
//! and listener certificates reach them without a restart or a shared volume
//! (docs/xds.md).
//!
//! - [`protocol`]: one stream's versions, nonces, ACK/NACK and subscriptions (IO-free);
//! - [`resources`]: each role's clusters, endpoints and Secrets as Envoy protobuf (pure);
//! - [`server`]: the tonic service, the token check and the stream tasks.

use std::collections::BTreeMap;
use std::sync::Arc;

pub mod protocol;
pub mod resources;
pub mod server;

/// What the ADS server serves: every role's resources after the latest translation.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// `false` until the first translation: requests wait (see [`server`]).
    pub ready: bool,
    pub roles: BTreeMap<String, Arc<protocol::Resources>>,
}
