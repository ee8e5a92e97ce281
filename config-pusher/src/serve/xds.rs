//! `--xds-dir`: Envoy filesystem xDS, so Services and endpoints added to the source reach a
//! running Envoy without a restart. `cds.yaml` holds one cluster per backend of the served tables,
//! rendered by [`envoy::clusters`] exactly as `render` puts them in a static bootstrap; a
//! bootstrap rendered with `render --xds-dir DIR` reads it (`path_config_source` with
//! `watched_directory`: Envoy reloads when a file is *moved* into the directory, so the file is
//! written to a temporary name in the same directory and renamed over `cds.yaml`, atomically).
//!
//! The clusters of the tables being replaced stay until the next translation, so that a proxy
//! still on the old table finds its clusters; after a restart the old tables are unknown, so the
//! clusters of the `cds.yaml` the previous process left stay for the first write in their place
//! (otherwise every proxy not yet resynced answers 503 for the routes that changed meanwhile).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use gammaroute_filter::table::RouteTable;

use crate::render::envoy;
use crate::store::Store;

/// The CDS file's name inside `--xds-dir`.
pub const CDS_FILE: &str = "cds.yaml";

#[derive(Debug, thiserror::Error)]
pub enum XdsError {
    #[error("--xds-dir {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Sds(#[from] super::sds::SdsError),
}

/// The xDS directory, and what was last written there.
#[derive(Debug)]
pub struct Xds {
    dir: PathBuf,
    written: Mutex<Option<String>>,
    /// The clusters of the `cds.yaml` found at start, kept by the first write only.
    inherited: Mutex<Vec<serde_yaml_ng::Value>>,
}

impl Xds {
    /// Creates the directory if needed.
    pub fn new(dir: PathBuf) -> Result<Xds, XdsError> {
        std::fs::create_dir_all(&dir).map_err(|source| XdsError::Io {
            path: dir.clone(),
            source,
        })?;
        let inherited = std::fs::read_to_string(dir.join(CDS_FILE))
            .ok()
            .and_then(|text| serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&text).ok())
            .and_then(|doc| doc.get("resources").and_then(|r| r.as_sequence()).cloned())
            .unwrap_or_default();
        Ok(Xds {
            dir,
            written: Mutex::new(None),
            inherited: Mutex::new(inherited),
        })
    }

    /// Writes `cds.yaml` with the clusters of `tables` (endpoints from `store` and `options`),
    /// unless it already has exactly that content.
    pub fn write<'a>(
        &self,
        store: &Store,
        tables: impl IntoIterator<Item = &'a RouteTable>,
        options: &envoy::BootstrapOptions,
    ) -> Result<(), XdsError> {
        // Certificates of HTTPS listeners beside cds.yaml (see [`super::sds`]).
        let tables: Vec<&RouteTable> = tables.into_iter().collect();
        super::sds::write(&self.dir, store, &tables)?;
        let mut yaml = envoy::cds_yaml(&envoy::distinct_clusters(store, tables, options));
        let inherited = match self.inherited.lock() {
            Ok(mut i) => std::mem::take(&mut *i),
            Err(p) => std::mem::take(&mut *p.into_inner()),
        };
        if !inherited.is_empty() {
            yaml = with_inherited(&yaml, inherited);
        }
        let mut written = match self.written.lock() {
            Ok(w) => w,
            Err(p) => p.into_inner(),
        };
        if written.as_deref() == Some(yaml.as_str()) {
            return Ok(());
        }
        write_atomically(&self.dir.join(CDS_FILE), yaml.as_bytes())?;
        tracing::info!(path = %self.dir.join(CDS_FILE).display(), "CDS file written");
        *written = Some(yaml);
        Ok(())
    }
}

/// `cds` (as [`envoy::cds_yaml`] writes it) plus the `inherited` clusters it does not name.
fn with_inherited(cds: &str, inherited: Vec<serde_yaml_ng::Value>) -> String {
    use serde_yaml_ng::Value;
    let Ok(mut doc) = serde_yaml_ng::from_str::<Value>(cds) else {
        return cds.to_string();
    };
    let Some(resources) = doc.get_mut("resources").and_then(Value::as_sequence_mut) else {
        return cds.to_string();
    };
    let name = |v: &Value| v.get("name").and_then(Value::as_str).map(str::to_string);
    let names: std::collections::BTreeSet<String> = resources.iter().filter_map(name).collect();
    resources.extend(
        inherited
            .into_iter()
            .filter(|c| name(c).is_some_and(|n| !names.contains(&n))),
    );
    serde_yaml_ng::to_string(&doc).unwrap_or_else(|_| cds.to_string())
}

/// Writes `path` through a temporary file in the same directory and a rename.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), XdsError> {
    let err = |source| XdsError::Io {
        path: path.to_path_buf(),
        source,
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clusters_a_previous_process_wrote_stay_for_the_first_write() {
        let dir = std::env::temp_dir().join(format!("gammaroute-xds-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let old = "resources:\n- {\"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster, name: demo/a:80}\n";
        std::fs::write(dir.join(CDS_FILE), old).unwrap();
        let xds = Xds::new(dir.clone()).unwrap();
        let options = envoy::BootstrapOptions::default();
        xds.write(&Store::new(), [], &options).unwrap();
        let first = std::fs::read_to_string(dir.join(CDS_FILE)).unwrap();
        assert!(first.contains("demo/a:80"), "{first}");
        // The next translation: the proxies have had their chance to resync.
        xds.write(&Store::new(), [], &options).unwrap();
        let second = std::fs::read_to_string(dir.join(CDS_FILE)).unwrap();
        assert_eq!(second, "resources: []\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
