//! A folder of YAML as the parsed objects of each of its files — IO-free, so the one-shot load
//! (`check`, `render`, `explain`: [`super::files::load`]) and the watched folder of `serve`
//! ([`super::watch`]) are the same code: the IO edge ([`super::files::sync`]) reads the files and
//! tells the cache what it found ([`FolderCache::apply`], [`FolderCache::unreadable`],
//! [`FolderCache::delete`]); [`FolderCache::snapshot`] builds the store.
//!
//! Rules, in the order they apply:
//!
//! - **Only deleting a file removes its objects.** A file that fails to load keeps contributing the
//!   objects of its last version that loaded cleanly: a syntax error (a half-saved file), a field
//!   of the wrong type, an **empty file** (an in-place save — `cmd > file`, editors that truncate
//!   then write — is seen empty for a moment) and an **unreadable** one alike. Each is reported as
//!   a [`Problem`]. A file that never loaded cleanly contributes the documents that did load.
//!   "Empty" is whitespace only: a file of comments is a deliberate empty file and loads as such.
//! - **One object, one definition.** Two documents with the same kind, namespace and name (the
//!   API server's identity of an object) are reported, both files named; the **first in path order**
//!   (documents in file order) wins — the same on every load and every replica, whatever the
//!   order the files changed in.
//! - Files whose text did not change are not parsed again.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use super::parse::{self, Skipped};
use super::Problem;
use crate::store::{Kind, Object, ObjectKey, Store};

/// Every file of a folder with what it contributes; see the module docs.
#[derive(Debug, Default)]
pub struct FolderCache {
    /// By the file's name as messages show it (relative to the folder), so in path order.
    files: BTreeMap<PathBuf, FileState>,
}

/// One file: what it contributes to the store and what is wrong with it now.
#[derive(Debug, Default)]
struct FileState {
    /// The text last applied; `None` after a read error (so the next read is parsed again).
    text: Option<String>,
    /// Objects (with their document index) of the last version that loaded without error.
    good: Option<Vec<(Object, usize)>>,
    /// What a file that never loaded cleanly contributes: the documents that did load.
    partial: Vec<(Object, usize)>,
    /// The current version's problems (empty when it is the good version).
    problems: Vec<Problem>,
    skipped: Vec<Skipped>,
}

impl FileState {
    fn objects(&self) -> &[(Object, usize)] {
        self.good.as_deref().unwrap_or(&self.partial)
    }

    /// The current version failed to load: tell which objects are served instead.
    fn failed(&mut self, shown: &str, mut problems: Vec<Problem>) {
        if let Some(good) = &self.good {
            problems.push(Problem::file(
                shown,
                format!(
                    "failed to load: serving the {} objects of its last good version",
                    good.len()
                ),
            ));
        }
        self.problems = problems;
    }
}

/// What [`FolderCache::snapshot`] built.
#[derive(Debug, Default)]
pub struct FolderSnapshot {
    pub store: Store,
    /// Load problems: per-file errors, kept versions, duplicates, objects the store refused.
    pub problems: Vec<Problem>,
    pub skipped: Vec<Skipped>,
    /// Objects stored.
    pub loaded: usize,
    /// The files, as shown in messages, in path order.
    pub files: Vec<PathBuf>,
}

impl FolderCache {
    pub fn new() -> FolderCache {
        FolderCache::default()
    }

    /// The file `path` (as messages show it) now reads `text`.
    pub fn apply(&mut self, path: &Path, text: &str) {
        let shown = path.display().to_string();
        let state = self.files.entry(path.to_path_buf()).or_default();
        if state.text.as_deref() == Some(text) {
            return;
        }
        state.text = Some(text.to_string());
        if text.trim().is_empty() {
            let message = "the file is empty (being written?)".to_string();
            state.failed(&shown, vec![Problem::file(&shown, message)]);
            return;
        }
        let parsed = parse::parse_str(&shown, text);
        state.skipped = parsed.skipped;
        if parsed.errors.is_empty() {
            state.good = Some(parsed.objects);
            state.partial.clear();
            state.problems.clear();
        } else {
            if state.good.is_none() {
                state.partial = parsed.objects;
            }
            let problems = parsed.errors.iter().map(Problem::from).collect();
            state.failed(&shown, problems);
        }
    }

    /// The file `path` exists but could not be read (`error` says why): it keeps what it
    /// contributed.
    pub fn unreadable(&mut self, path: &Path, error: &std::io::Error) {
        let shown = path.display().to_string();
        let state = self.files.entry(path.to_path_buf()).or_default();
        state.text = None;
        state.failed(&shown, vec![Problem::file(&shown, error.to_string())]);
    }

    /// The file `path` is gone: its objects go with it.
    pub fn delete(&mut self, path: &Path) {
        self.files.remove(path);
    }

    /// The files known, in path order.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.files.keys().map(PathBuf::as_path)
    }

    /// The store of every file's objects, in path order; see the module docs for duplicates.
    pub fn snapshot(&self) -> FolderSnapshot {
        let mut out = FolderSnapshot::default();
        // Who defined each object first: (file, document).
        let mut defined: HashMap<(Kind, ObjectKey), (String, usize)> = HashMap::new();
        for (path, state) in &self.files {
            let shown = path.display().to_string();
            out.files.push(path.clone());
            out.problems.extend(state.problems.iter().cloned());
            out.skipped.extend(state.skipped.iter().cloned());
            for (object, document) in state.objects() {
                let document = *document;
                let identity = match Store::identity(object) {
                    Ok(identity) => identity,
                    Err(e) => {
                        out.problems.push(Problem::store(&shown, document, &e));
                        continue;
                    }
                };
                if let Some((file, doc)) = defined.get(&identity) {
                    out.problems
                        .push(Problem::duplicate(&shown, document, &identity, file, *doc));
                    continue;
                }
                match out
                    .store
                    .apply(object.clone(), format!("{shown}#{document}"))
                {
                    Ok(()) => {
                        out.loaded += 1;
                        defined.insert(identity, (shown.clone(), document));
                    }
                    Err(e) => out.problems.push(Problem::store(&shown, document, &e)),
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SVC_A: &str =
        "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{port: 80}]}\n";
    const SVC_B: &str =
        "apiVersion: v1\nkind: Service\nmetadata: {name: b}\nspec: {ports: [{port: 80}]}\n";

    fn names(s: &FolderSnapshot) -> Vec<String> {
        s.store.services.keys().map(ToString::to_string).collect()
    }

    fn texts(s: &FolderSnapshot) -> Vec<String> {
        s.problems.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn an_empty_or_unreadable_file_keeps_its_objects_until_deleted() {
        let mut c = FolderCache::new();
        let a = Path::new("a.yaml");
        c.apply(a, SVC_A);
        assert_eq!(names(&c.snapshot()), ["default/a"]);
        // Truncated by an in-place save.
        c.apply(a, "");
        let s = c.snapshot();
        assert_eq!(names(&s), ["default/a"]);
        assert_eq!(
            texts(&s),
            [
                "a.yaml: the file is empty (being written?)",
                "a.yaml: failed to load: serving the 1 objects of its last good version"
            ]
        );
        // Written: the new content counts.
        c.apply(a, SVC_B);
        let s = c.snapshot();
        assert_eq!((names(&s), s.problems.len()), (vec!["default/b".into()], 0));
        // Unreadable: kept too.
        c.unreadable(
            a,
            &std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        );
        let s = c.snapshot();
        assert_eq!(names(&s), ["default/b"]);
        assert!(
            texts(&s)[0].starts_with("a.yaml: permission denied"),
            "{:?}",
            texts(&s)
        );
        // Only deleting removes.
        c.delete(a);
        let s = c.snapshot();
        assert!(s.store.is_empty() && s.problems.is_empty() && s.files.is_empty());
        // A new empty file is a load problem with nothing to keep; comments only are fine.
        c.apply(a, "\n  \n");
        assert_eq!(
            texts(&c.snapshot()),
            ["a.yaml: the file is empty (being written?)"]
        );
        c.apply(a, "# nothing here yet\n");
        assert!(c.snapshot().problems.is_empty());
    }

    #[test]
    fn a_duplicate_object_is_reported_and_the_first_in_path_order_wins() {
        let mut c = FolderCache::new();
        let other_port = SVC_A.replace("80", "81");
        // Applied in the reverse order: the winner depends on the paths only.
        c.apply(Path::new("z/late.yaml"), &other_port);
        c.apply(Path::new("b.yaml"), &format!("{SVC_B}---\n{SVC_A}"));
        let s = c.snapshot();
        assert_eq!(names(&s), ["default/a", "default/b"]);
        let a = &s.store.services[&ObjectKey::new("default", "a")];
        assert_eq!(a.origin, "b.yaml#1");
        assert_eq!(s.loaded, 2);
        assert_eq!(
            texts(&s),
            [
                "z/late.yaml document 0: Service default/a is also defined in b.yaml document 1, \
              which wins (the first in path order): this definition is ignored"
            ]
        );
        // The namespace default counts: `default/a` written out is the same object.
        c.apply(
            Path::new("c.yaml"),
            &SVC_A.replace("{name: a}", "{name: a, namespace: default}"),
        );
        let s = c.snapshot();
        assert_eq!(s.problems.len(), 2, "{:?}", texts(&s));
        assert!(texts(&s)[0].starts_with(
            "c.yaml document 0: Service default/a is also defined in b.yaml document 1"
        ));
    }

    #[test]
    fn unchanged_text_is_not_parsed_again_and_errors_stay_reported() {
        let mut c = FolderCache::new();
        let a = Path::new("a.yaml");
        c.apply(a, SVC_A);
        let broken = format!("{SVC_B}---\nmetadata: {{name: [\n");
        c.apply(a, &broken);
        c.apply(a, &broken);
        let s = c.snapshot();
        assert_eq!(names(&s), ["default/a"]);
        assert_eq!(s.problems.len(), 2, "{:?}", texts(&s));
        // A new file with an error contributes what loaded.
        c.apply(Path::new("b.yaml"), &format!("{SVC_B}---\nkind: X\n"));
        let s = c.snapshot();
        assert_eq!(names(&s), ["default/a", "default/b"]);
    }
}
