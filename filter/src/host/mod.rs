//! proxy-wasm glue: everything that knows about the host proxy.
//!
//! The pure parts — the plugin configuration ([`config`]), what a [`crate::router::Decision`]
//! means in Envoy's terms ([`envoy`]) and the ABI's header-map encoding ([`pairs`]) — are plain
//! Rust, tested natively, and so are the fetch decisions ([`fetch`]) and the wake-up registry
//! ([`wakeup`]). The rest is compiled for
//! `wasm32` only, with imports in one direction: the ABI bindings (`abi`) → the stats (`stats`)
//! → the VM's state (`vm`) → table fetching (`updates`) → accepting a configuration
//! (`configure`) and one HTTP stream's flow (`stream`) → the exported entry points (`exports`),
//! which are thin: they read the host's arguments and call into the others.

pub mod config;
pub mod envoy;
pub mod fetch;
pub mod pairs;
pub mod wakeup;

#[cfg(target_arch = "wasm32")]
mod abi;
#[cfg(target_arch = "wasm32")]
mod configure;
#[cfg(target_arch = "wasm32")]
mod exports;
#[cfg(target_arch = "wasm32")]
mod stats;
#[cfg(target_arch = "wasm32")]
mod stream;
#[cfg(target_arch = "wasm32")]
mod updates;
#[cfg(target_arch = "wasm32")]
mod vm;
