//! Accepting a plugin configuration (`proxy_on_configure`): parse it, compile its inline table,
//! and start fetching when it names a `source`. A configuration is accepted whole or refused
//! with an error log and the `gammaroute.config_rejected` counter.

use super::abi::{self, Buffer, LogLevel};
use super::config::PluginConfig;
use super::stats::count;
use super::updates;
use super::vm::{with_vm, Loaded, Root, Transparent};
use crate::metrics;

/// Configures root context `root` from the `size`-byte plugin configuration; `false` refuses it.
pub(super) fn configure(root: u32, size: usize) -> bool {
    let config = abi::buffer(Buffer::PluginConfiguration, size)
        .map_err(|s| format!("cannot read the plugin configuration (host status {})", s.0))
        .and_then(|bytes| PluginConfig::parse(&bytes).map_err(|e| e.to_string()));
    let configured = config.and_then(|mut config| {
        let inline = match config.table.take() {
            Some(table) => Some(
                config
                    .compile(table)
                    .map(|router| Loaded::new(&config, router))
                    .map_err(|e| e.to_string())?,
            ),
            None => None,
        };
        Ok((config, inline))
    });
    match configured {
        Ok((config, inline)) => with_vm(false, |vm| {
            let mut state = Root {
                transparent: Transparent::new(&config),
                ..Root::default()
            };
            if let Some(loaded) = inline {
                state.install(loaded);
            }
            if config.source.is_some() {
                match updates::start(vm, root, &mut state, config) {
                    Ok(()) => {}
                    Err(e) => {
                        reject(&e.to_string());
                        return false;
                    }
                }
            }
            // The first fetch starts on the first tick, which comes soon (updates::FIRST_TICK_MS).
            vm.roots.insert(root, state);
            true
        }),
        Err(message) => {
            reject(&message);
            false
        }
    }
}

fn reject(message: &str) {
    abi::log(
        LogLevel::Error,
        &format!("gammaroute: configuration rejected: {message}"),
    );
    count(metrics::CONFIG_REJECTED);
}
