//! gammaroute: Gateway API `HTTPRoute` semantics inside Envoy, as a proxy-wasm filter.
//!
//! - [`table`]: the RouteTable shared with config-pusher: its schema (`proto/table.proto`, whose
//!   Rust types in [`table::wire`] carry both the protobuf and the JSON encoding), the model they
//!   convert into, and the checks that turn it into a [`table::ValidTable`].
//! - [`router`]: compiles a table and turns a request into a [`router::Decision`]; pure Rust, no
//!   host calls, tested natively and compiled to wasm.
//! - [`host`]: the proxy-wasm glue that applies decisions in Envoy.
//! - [`metrics`]: the filter's metric names and the Envoy stats tags that label them (shared
//!   with config-pusher's bootstraps).
//!
//! Inside Envoy a panic kills the VM, so the crate denies `unwrap`, `expect`, `panic!` and
//! indexing that can panic (see `[lints]` in Cargo.toml); tests may use them.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented
    )
)]

pub mod host;
pub mod metrics;
pub mod router;
pub mod table;
