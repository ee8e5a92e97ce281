//! proxy-wasm glue: everything that knows about the host proxy.
//!
//! The pure parts — the plugin configuration ([`config`]), what a [`crate::router::Decision`]
//! means in Envoy's terms ([`envoy`]) and the ABI's header-map encoding ([`pairs`]) — are plain
//! Rust, tested natively. The ABI bindings ([`abi`]) and the exported entry points ([`exports`])
//! are compiled for `wasm32` only.

pub mod config;
pub mod envoy;
pub mod fetch;
pub mod pairs;

#[cfg(target_arch = "wasm32")]
mod abi;
#[cfg(target_arch = "wasm32")]
mod exports;
#[cfg(target_arch = "wasm32")]
mod updates;
