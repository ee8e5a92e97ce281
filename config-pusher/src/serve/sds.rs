//! `--xds-dir`: the SDS files of HTTPS listener certificates ([`crate::render::tls`]), beside
//! `cds.yaml`, so a rotated Secret reaches a running Envoy without a restart: each file is
//! written to a temporary name created mode 0600 (it holds the private key) and renamed over the
//! old one, which Envoy's `watched_directory` picks up. Unchanged files are not rewritten. The file
//! of a Secret no longer served (deleted, or no listener refers to it) is removed, so its private
//! key does not outlive it on disk; a running Envoy keeps the certificate it loaded until its
//! chain goes.

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
    changed += remove_stale(dir, &files)?;
    Ok(changed)
}

/// Removes the SDS files (`sds-*.yaml`, the names [`tls::plan`] gives) not in `keep`.
fn remove_stale(dir: &Path, keep: &BTreeMap<String, tls::SdsFile>) -> Result<usize, SdsError> {
    let io = |source| SdsError {
        path: dir.to_path_buf(),
        source,
    };
    let mut removed = 0;
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let name = entry
            .map_err(io)?
            .file_name()
            .to_string_lossy()
            .into_owned();
        if !name.starts_with("sds-") || !name.ends_with(".yaml") || keep.contains_key(&name) {
            continue;
        }
        let path = dir.join(&name);
        std::fs::remove_file(&path).map_err(|source| SdsError {
            path: path.clone(),
            source,
        })?;
        tracing::info!(path = %path.display(), "SDS file of a Secret no longer served removed");
        removed += 1;
    }
    Ok(removed)
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
        // A Secret no longer served: its file (and key) goes; other files are not touched.
        std::fs::write(dir.join("sds-old-gone.yaml"), "key").unwrap();
        std::fs::write(dir.join("cds.yaml"), "resources: []\n").unwrap();
        assert_eq!(write(&dir, &store, &tables).unwrap(), 1);
        assert!(!dir.join("sds-old-gone.yaml").exists());
        assert!(dir.join("cds.yaml").exists());
        assert!(dir.join("sds-infra-shop-cert.yaml").exists());
        assert_eq!(
            write(&dir, &store, &[]).unwrap(),
            2,
            "no table: every SDS file goes"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
