//! The folder source: every `*.yaml`, `*.yml` and `*.json` file under a directory (recursively,
//! in path order), each a stream of YAML documents — exactly what `kubectl apply -f DIR -R`
//! accepts, including `kind: List` documents.
//!
//! Loading never stops at a bad object: a document that does not parse or does not deserialize
//! into its kind is reported ([`LoadError`], with file, document index and field path) and the
//! rest is loaded. Kinds translate does not use are skipped with a note ([`Skipped`]). Parsing a
//! file's text is [`super::parse`]; this module is the IO around it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::folder::FolderCache;
pub use super::parse::{parse_str, LoadError, ParsedFile, Skipped};
use super::Problem;
use crate::store::{Object, Store};

/// What a load did besides filling the store.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Files read, in path order, as messages name them.
    pub files: Vec<PathBuf>,
    /// Objects stored.
    pub loaded: usize,
    pub skipped: Vec<Skipped>,
    pub errors: Vec<Problem>,
}

/// Reads every YAML/JSON file under `dir` (or `dir` itself if it is a file) into a new store,
/// by the rules of [`FolderCache`] (the ones `serve` watches a folder with).
pub fn load(dir: &Path) -> (Store, LoadReport) {
    let mut cache = FolderCache::new();
    let (errors, _generation) = sync(&mut cache, dir);
    report(&cache, errors)
}

/// Reads one stream of YAML documents (`--from -`: standard input), named `name` in messages,
/// by the same rules as a file of a folder.
pub fn load_text(name: &str, text: &str) -> (Store, LoadReport) {
    let mut cache = FolderCache::new();
    cache.apply(Path::new(name), text);
    report(&cache, vec![])
}

/// The store of `cache` and what loading it reported, `errors` (of the listing) first.
fn report(cache: &FolderCache, mut errors: Vec<Problem>) -> (Store, LoadReport) {
    let snapshot = cache.snapshot();
    errors.extend(snapshot.problems);
    let report = LoadReport {
        files: snapshot.files,
        loaded: snapshot.loaded,
        skipped: snapshot.skipped,
        errors,
    };
    // Callers report errors their own way (render: stderr; check: in its report).
    for e in &report.errors {
        tracing::debug!("{e}");
    }
    for s in &report.skipped {
        tracing::info!("{s}");
    }
    (snapshot.store, report)
}

/// Brings `cache` up to date with the folder `dir`: every listed file is read and applied (an
/// unreadable one keeps its objects), files no longer listed are deleted — unless the listing
/// itself failed somewhere, since a file missing from an incomplete listing may still exist.
/// Returns the listing's problems and the folder's [`generation`].
pub fn sync(cache: &mut FolderCache, dir: &Path) -> (Vec<Problem>, u64) {
    let (listed, errors) = list(dir);
    let generation = generation(dir, &listed);
    for file in &listed {
        match std::fs::read_to_string(&file.path) {
            Ok(text) => cache.apply(&file.shown, &text),
            Err(e) => cache.unreadable(&file.shown, &e),
        }
    }
    if errors.is_empty() {
        let present: HashSet<&Path> = listed.iter().map(|f| f.shown.as_path()).collect();
        let gone: Vec<PathBuf> = cache
            .paths()
            .filter(|p| !present.contains(p))
            .map(Path::to_path_buf)
            .collect();
        for path in gone {
            cache.delete(&path);
        }
    }
    (errors.iter().map(Problem::from).collect(), generation)
}

/// The folder's [`Snapshot::generation`](super::Snapshot::generation): the newest modification
/// time, in milliseconds since the Unix epoch, of the `listed` files (through symbolic links: a
/// ConfigMap's current version) and of every directory under `dir` (a deletion or rename
/// changes its directory's time, even when the directory is left without files). Replicas
/// reading the same files compute the same number, and every edit makes it larger. Unreadable
/// times count as 0.
pub fn generation(dir: &Path, listed: &[Listed]) -> u64 {
    let mut dirs = Vec::new();
    directories(dir, &mut HashSet::new(), &mut dirs);
    let files = listed.iter().map(|f| f.path.clone());
    dirs.into_iter()
        .chain(files)
        .filter_map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .filter_map(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .max()
        .unwrap_or(0)
}

/// `dir` and the directories under it, each once (symbolic links followed).
fn directories(dir: &Path, seen: &mut HashSet<PathBuf>, out: &mut Vec<PathBuf>) {
    let Ok(real) = std::fs::canonicalize(dir) else {
        return;
    };
    if !real.is_dir() || !seen.insert(real) {
        return;
    }
    out.push(dir.to_path_buf());
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        directories(&entry.path(), seen, out);
    }
}

/// A file of the folder: how messages name it (relative to the folder) and where it is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub shown: PathBuf,
    pub path: PathBuf,
}

/// The files [`load`] reads, in path order, and the errors that left parts of the folder out.
///
/// Recursive; symbolic links are followed (each directory is listed once). Entries whose name
/// starts with `..` are skipped, and a directory with a `..data` entry is read through the
/// directory `..data` points to, resolved once: that is how the kubelet mounts a ConfigMap or
/// Secret (`file.yaml -> ..data/file.yaml`, `..data -> ..2026_01_01_00_00_00.123`, swapped
/// atomically by renaming `..data_tmp` to `..data`; Kubernetes `AtomicWriter`), so each object is
/// read once, and one listing sees one version of the whole volume.
pub fn list(dir: &Path) -> (Vec<Listed>, Vec<LoadError>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    if dir.is_file() {
        files.push(Listed {
            shown: dir.to_path_buf(),
            path: dir.to_path_buf(),
        });
    } else {
        let mut seen = HashSet::new();
        collect(dir, Path::new(""), &mut files, &mut errors, &mut seen);
    }
    files.sort_by(|a, b| a.shown.cmp(&b.shown));
    (files, errors)
}

/// How messages name `path`: relative to the folder `dir`.
pub fn shown_name(dir: &Path, path: &Path) -> String {
    path.strip_prefix(dir)
        .ok()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Name of the link the kubelet points at the current version of a ConfigMap/Secret volume.
const ATOMIC_WRITER_DATA: &str = "..data";

fn collect(
    dir: &Path,
    shown: &Path,
    out: &mut Vec<Listed>,
    errors: &mut Vec<LoadError>,
    seen: &mut HashSet<PathBuf>,
) {
    let io = |path: &Path, source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let data = dir.join(ATOMIC_WRITER_DATA);
    if std::fs::symlink_metadata(&data).is_ok() {
        match std::fs::canonicalize(&data) {
            Ok(version) => collect(&version, shown, out, errors, seen),
            Err(e) => errors.push(io(&data, e)),
        }
        return;
    }
    // A directory reached twice (symbolic links) is listed once.
    match std::fs::canonicalize(dir) {
        Ok(real) => {
            if !seen.insert(real) {
                return;
            }
        }
        Err(e) => return errors.push(io(dir, e)),
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => return errors.push(io(dir, e)),
    };
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                errors.push(io(dir, e));
                continue;
            }
        };
        let name = entry.file_name();
        if name.to_string_lossy().starts_with("..") {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            collect(&path, &shown.join(&name), out, errors, seen);
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
        {
            out.push(Listed {
                shown: shown.join(&name),
                path,
            });
        }
    }
}

/// Stores parsed objects (origin `file#document`), counting them in `report`.
pub fn store_objects(
    store: &mut Store,
    report: &mut LoadReport,
    file: &str,
    objects: impl IntoIterator<Item = (Object, usize)>,
) {
    for (object, document) in objects {
        match store.apply(object, format!("{file}#{document}")) {
            Ok(()) => report.loaded += 1,
            Err(e) => report.errors.push(Problem::store(file, document, &e)),
        }
    }
}

/// Loads one file's text (`file` names it in messages): [`parse_str`], then [`store_objects`].
pub fn load_str(store: &mut Store, report: &mut LoadReport, file: &str, text: &str) {
    let parsed = parse_str(file, text);
    report.skipped.extend(parsed.skipped);
    report
        .errors
        .extend(parsed.errors.iter().map(Problem::from));
    store_objects(store, report, file, parsed.objects);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NAMESPACE_NAME_LABEL;

    const TEXT: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: a, namespace: shop}
spec: {ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: b}
spec: {ports: [{port: "eighty"}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
---
apiVersion: v1
kind: List
items:
- apiVersion: gateway.networking.k8s.io/v1beta1
  kind: HTTPRoute
  metadata: {name: r}
  spec:
    parentRefs: [{name: gw, namespace: infra}]
    rules: [{backendRefs: [{name: x, namespace: other, port: 1}]}]
---
kind: Service
---
"#;

    #[test]
    fn loads_what_it_can_and_reports_the_rest() {
        let mut store = Store::new();
        let mut report = LoadReport::default();
        load_str(&mut store, &mut report, "f.yaml", TEXT);
        assert_eq!(report.loaded, 2);
        assert_eq!(store.services.len(), 1);
        assert_eq!(store.http_routes.len(), 1);
        assert_eq!(report.skipped.len(), 1);
        assert_eq!(report.skipped[0].kind, "Deployment");
        let msgs: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
        assert_eq!(msgs.len(), 2, "{msgs:?}");
        assert!(
            msgs[0].starts_with("f.yaml document 1: Service b: field `spec.ports[0].port`"),
            "{}",
            msgs[0]
        );
        assert_eq!(
            msgs[1],
            "f.yaml document 4: not a Kubernetes object (no apiVersion/kind)"
        );
        // The route went to the default namespace; referenced namespaces exist implicitly.
        let route = store.http_routes.keys().next().unwrap();
        assert_eq!(route.to_string(), "default/r");
        let ns = store.namespaces();
        assert_eq!(
            ns.keys().collect::<Vec<_>>(),
            ["default", "infra", "other", "shop"]
        );
        assert_eq!(ns["infra"][NAMESPACE_NAME_LABEL], "infra");
    }

    #[test]
    fn syntax_error_stops_only_its_file() {
        let mut store = Store::new();
        let mut report = LoadReport::default();
        load_str(&mut store, &mut report, "bad.yaml", "a: [\n");
        load_str(
            &mut store,
            &mut report,
            "good.yaml",
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: n, labels: {x: y}}\n",
        );
        assert_eq!(report.errors.len(), 1);
        let e = &report.errors[0];
        assert_eq!((e.origin.as_str(), e.document), ("bad.yaml", Some(0)));
        assert!(e.message.starts_with("invalid YAML"), "{e}");
        let ns = store.namespaces();
        assert_eq!(ns["n"]["x"], "y");
        assert_eq!(ns["n"][NAMESPACE_NAME_LABEL], "n");
    }

    #[test]
    fn reapplying_keeps_the_first_load_order() {
        let mut store = Store::new();
        let mut report = LoadReport::default();
        let svc = |port: u16| {
            format!("apiVersion: v1\nkind: Service\nmetadata: {{name: s}}\nspec: {{ports: [{{port: {port}}}]}}\n")
        };
        load_str(&mut store, &mut report, "1.yaml", &svc(1));
        load_str(
            &mut store,
            &mut report,
            "2.yaml",
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: n}\n",
        );
        load_str(&mut store, &mut report, "3.yaml", &svc(2));
        let s = store.services.values().next().unwrap();
        assert_eq!(s.order, 0);
        assert_eq!(s.origin, "3.yaml#0");
        assert_eq!(
            s.object.spec.as_ref().unwrap().ports.as_ref().unwrap()[0].port,
            2
        );
    }
    /// A ConfigMap volume as the kubelet writes it (Kubernetes `AtomicWriter`): the files in a
    /// timestamped directory, `..data` pointing at it, top-level links through `..data`.
    fn configmap_version(dir: &Path, version: &str, files: &[(&str, &str)]) {
        use std::os::unix::fs::symlink;
        let ts = dir.join(format!("..{version}"));
        std::fs::create_dir_all(&ts).unwrap();
        for (name, text) in files {
            std::fs::write(ts.join(name), text).unwrap();
        }
        let tmp = dir.join("..data_tmp");
        symlink(format!("..{version}"), &tmp).unwrap();
        let old = std::fs::read_link(dir.join("..data")).ok();
        std::fs::rename(&tmp, dir.join("..data")).unwrap();
        for (name, _) in files {
            let link = dir.join(name);
            if std::fs::symlink_metadata(&link).is_err() {
                symlink(format!("..data/{name}"), &link).unwrap();
            }
        }
        if let Some(old) = old {
            std::fs::remove_dir_all(dir.join(old)).unwrap();
        }
    }

    #[test]
    fn a_configmap_volume_is_read_once_per_object_and_swapped_whole() {
        let dir = std::env::temp_dir().join(format!("gammaroute-cm-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let svc = |name: &str| {
            format!("apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec: {{ports: [{{port: 80}}]}}\n")
        };
        configmap_version(
            &dir,
            "2026_01_01_00_00_00.1",
            &[("a.yaml", &svc("a")), ("b.yaml", &svc("b"))],
        );
        let (listed, errors) = list(&dir);
        assert!(errors.is_empty(), "{errors:?}");
        let shown: Vec<_> = listed
            .iter()
            .map(|f| f.shown.display().to_string())
            .collect();
        assert_eq!(shown, ["a.yaml", "b.yaml"]);
        let (store, report) = load(&dir);
        assert_eq!((store.len(), report.loaded, report.files.len()), (2, 2, 2));
        assert!(report.errors.is_empty(), "{:?}", report.errors);

        // The swap: b.yaml goes, c.yaml comes (its top-level link is created after the swap,
        // as the kubelet does); a listing before the link exists already sees the new version.
        configmap_version(
            &dir,
            "2026_01_01_00_01_00.2",
            &[("a.yaml", &svc("a")), ("c.yaml", &svc("c"))],
        );
        let mut cache = FolderCache::new();
        assert!(sync(&mut cache, &dir).0.is_empty());
        let names: Vec<String> = cache
            .snapshot()
            .store
            .services
            .keys()
            .map(ToString::to_string)
            .collect();
        assert_eq!(names, ["default/a", "default/c"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
