//! config-pusher: renders Gateway API resources into gammaroute route tables and statuses.
//!
//! Data flow (docs/architecture.md): a source ([`source::files`]) fills a [`store::Store`];
//! [`translate::translate`] turns it into one [`gammaroute_filter::table::RouteTable`] per proxy
//! role plus statuses; the CLI writes them out.

pub mod auth;
pub mod check;
pub mod cli;
pub mod explain;
pub mod kubernetes;
pub mod map;
pub mod provision;
pub mod render;
pub mod serve;
pub mod source;
pub mod status;
pub mod store;
pub mod translate;
pub mod xds;
