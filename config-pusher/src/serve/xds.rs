//! `--xds-dir`: Envoy filesystem xDS, so Services and endpoints added to the source reach a
//! running Envoy without a restart. `cds.yaml` holds one cluster per backend of the served tables,
//! rendered by [`envoy::clusters`] exactly as `render` puts them in a static bootstrap; a
//! bootstrap rendered with `render --xds-dir DIR` reads it (`path_config_source` with
//! `watched_directory`: Envoy reloads when a file is *moved* into the directory, so the file is
//! written to a temporary name in the same directory and renamed over `cds.yaml`, atomically).

use std::collections::BTreeMap;
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
}

impl Xds {
    /// Creates the directory if needed.
    pub fn new(dir: PathBuf) -> Result<Xds, XdsError> {
        std::fs::create_dir_all(&dir).map_err(|source| XdsError::Io {
            path: dir.clone(),
            source,
        })?;
        Ok(Xds {
            dir,
            written: Mutex::new(None),
        })
    }

    /// Writes `cds.yaml` with the clusters of `tables` (endpoints from `store` and `options`),
    /// unless it already has exactly that content.
    pub fn write<'a>(
        &self,
        store: &Store,
        tables: impl IntoIterator<Item = &'a RouteTable>,
        options: &envoy::Options,
    ) -> Result<(), XdsError> {
        // Certificates of HTTPS listeners beside cds.yaml (see [`super::sds`]).
        let tables: Vec<&RouteTable> = tables.into_iter().collect();
        super::sds::write(&self.dir, store, &tables)?;
        let yaml = envoy::cds_yaml(&clusters(store, tables, options));
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

/// Every cluster of `tables`, once per name, in name order.
pub fn clusters<'a>(
    store: &Store,
    tables: impl IntoIterator<Item = &'a RouteTable>,
    options: &envoy::Options,
) -> Vec<envoy::Cluster> {
    let mut by_name = BTreeMap::new();
    for t in tables {
        for c in envoy::clusters(store, t, options) {
            by_name.entry(c.name.clone()).or_insert(c);
        }
    }
    by_name.into_values().collect()
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
