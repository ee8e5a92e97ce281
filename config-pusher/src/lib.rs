//! config-pusher: renders Gateway API resources into gammaroute route tables and statuses.
//!
//! Data flow (docs/architecture.md): a source ([`source::files`]) fills a [`store::Store`];
//! [`translate::translate`] turns it into one [`gammaroute_filter::table::RouteTable`] per proxy
//! role plus statuses; the CLI writes them out.

// The pure core: YAML → store → translate → tables and statuses (no IO runtime).
pub mod source;
pub mod store;
pub mod translate;

// The tool around it (feature `controller`, on by default): CLI, serve, kube, provisioning, xDS.
#[cfg(feature = "controller")]
pub mod auth;
#[cfg(feature = "controller")]
pub mod check;
#[cfg(feature = "controller")]
pub mod cli;
#[cfg(feature = "controller")]
pub mod explain;
#[cfg(feature = "controller")]
pub mod kubernetes;
#[cfg(feature = "controller")]
pub mod map;
#[cfg(feature = "controller")]
pub mod provision;
#[cfg(feature = "controller")]
pub mod render;
#[cfg(feature = "controller")]
pub mod serve;
#[cfg(feature = "controller")]
pub mod status;
#[cfg(feature = "controller")]
pub mod xds;
