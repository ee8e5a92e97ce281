//! `--xds-dir`: the SDS files of HTTPS listener certificates ([`crate::render::tls`]), beside
//! `cds.yaml`, so a rotated Secret reaches a running Envoy without a restart: each file is
//! written to a temporary name created mode 0600 (it holds the private key) and renamed over the
//! old one, which Envoy's `watched_directory` picks up. Unchanged files are not rewritten. Files of
//! Secrets no longer referenced are left in place (Envoy stops reading them with the chain).

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use gammaroute_filter::table::RouteTable;

use crate::render::tls;
use crate::store::{ObjectKey, Store};

/// An SDS file that could not be written (reported like every other `--xds-dir` write).
#[derive(Debug, thiserror::Error)]
#[error("--xds-dir {path}: {source}")]
pub struct SdsError {
    pub path: std::path::PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Writes the SDS file of every certificate the gateway tables serve; returns how many changed.
pub fn write(dir: &Path, store: &Store, tables: &[&RouteTable]) -> Result<usize, SdsError> {
    let shown = dir.display().to_string();
    let mut files: BTreeMap<String, tls::SdsFile> = BTreeMap::new();
    for t in tables {
        let Some((ns, name)) = t
            .role
            .strip_prefix("gateway/")
            .and_then(|r| r.split_once('/'))
        else {
            continue;
        };
        let plan = tls::plan(store, &ObjectKey::new(ns, name), t, Some(&shown));
        for f in plan.sds {
            files.entry(f.file.clone()).or_insert(f);
        }
    }
    let mut changed = 0;
    for f in files.values() {
        let path = dir.join(&f.file);
        if std::fs::read(&path).is_ok_and(|old| old == f.content.as_bytes()) {
            continue;
        }
        write_private(&path, f.content.as_bytes()).map_err(|source| SdsError {
            path: path.clone(),
            source,
        })?;
        tracing::info!(secret = %f.name, path = %path.display(), "SDS file written");
        changed += 1;
    }
    Ok(changed)
}

/// Temporary file (mode 0600 from creation) in the same directory, then rename.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::source::files;
    use crate::translate::{translate, Settings};

    #[test]
    fn writes_key_files_0600_once() {
        let input = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/golden/tls-listeners/input"
        );
        let (store, _) = files::load(Path::new(input));
        let out = translate(&store, &Settings::default());
        let tables: Vec<&RouteTable> = out.tables.values().collect();
        let dir = std::env::temp_dir().join(format!("gammaroute-sds-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(write(&dir, &store, &tables).unwrap(), 2);
        for name in ["sds-infra-shop-cert.yaml", "sds-certs-wildcard-cert.yaml"] {
            let meta = std::fs::metadata(dir.join(name)).unwrap();
            assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{name}");
        }
        assert_eq!(
            write(&dir, &store, &tables).unwrap(),
            0,
            "unchanged: not rewritten"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
