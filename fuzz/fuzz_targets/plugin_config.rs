//! The plugin configuration (`PluginConfig.configuration`): parse, then compile its inline
//! table the way `on_configure` does. Invariant: no panic, and a configuration that parses
//! has a role.
#![no_main]

use gammaroute_filter::host::config::PluginConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    gammaroute_fuzz::bounded(|| {
        if let Ok(config) = PluginConfig::parse(data) {
            let _ = config.role();
            if let Some(t) = config.table.clone() {
                let _ = config.compile(t);
            }
        }
    })
});
