//! The watched folder source of `serve`: loads the folder like `render` does ([`files`]), then
//! re-loads it after every change (inotify & co. through `notify`, recursive) and sends a new
//! [`Snapshot`] through a `tokio::sync::watch` channel.
//!
//! - **Debounce** ([`Debounce`]): an editor's save, a `git checkout` or a `cp -r` is a burst of
//!   events; the folder is re-read once the burst has been quiet for `quiet` (100 ms), and at least
//!   every `max` (10 s) under continuous churn — Istio's `PILOT_DEBOUNCE_AFTER`/`_MAX`. Files
//!   whose text is what last loaded are not parsed again.
//! - **Last good per file, one winner per object** ([`Folder`], by the rules of
//!   [`FolderCache`]): a file that fails to load — half-saved, a typo, empty for a moment during an
//!   in-place save, unreadable — keeps contributing the objects of its last version that loaded
//!   without error, so routes never disappear because of it; only deleting the file removes them.
//!   An object defined twice is reported and the first in path order wins.
//! - **ConfigMap volumes** ([`files::list`]): read through `..data`, once per object; the
//!   kubelet's atomic swap of `..data` is seen as one change.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::files;
use super::folder::FolderCache;
use super::{Problem, Snapshot};
use crate::store::Store;

/// When to re-read after a burst of change events. Pure: the caller supplies the clock.
#[derive(Debug, Clone)]
pub struct Debounce {
    quiet: Duration,
    max: Duration,
    /// First and latest event of the pending burst.
    pending: Option<(Instant, Instant)>,
}

impl Debounce {
    pub fn new(quiet: Duration, max: Duration) -> Debounce {
        Debounce {
            quiet,
            max,
            pending: None,
        }
    }

    /// A change was seen at `now`.
    pub fn event(&mut self, now: Instant) {
        self.pending = Some(match self.pending {
            Some((first, _)) => (first, now),
            None => (now, now),
        });
    }

    /// When the pending burst is due: `quiet` after its latest event, but no later than `max`
    /// after its first. `None` when nothing is pending.
    pub fn deadline(&self) -> Option<Instant> {
        self.pending
            .map(|(first, last)| (last + self.quiet).min(first + self.max))
    }

    /// If the burst is due at `now`, ends it and returns when it began.
    pub fn take_due(&mut self, now: Instant) -> Option<Instant> {
        let due = self.deadline().is_some_and(|d| d <= now);
        if due {
            self.pending.take().map(|(first, _)| first)
        } else {
            None
        }
    }
}

/// A watched folder: its path and the cache of its files' objects.
#[derive(Debug)]
pub struct Folder {
    root: PathBuf,
    cache: FolderCache,
    /// The highest [`files::generation`] loaded: never goes back in this process, even if a file
    /// is restored with an older modification time.
    generation: u64,
}

impl Folder {
    pub fn new(root: impl Into<PathBuf>) -> Folder {
        Folder {
            root: root.into(),
            cache: FolderCache::new(),
            generation: 0,
        }
    }

    /// Re-reads the folder ([`files::sync`]) and returns its store and load problems, by the rules
    /// of [`FolderCache`] — the ones `check` and `render` load a folder with.
    pub fn load(&mut self) -> (Store, Vec<Problem>) {
        let (mut problems, generation) = files::sync(&mut self.cache, &self.root);
        self.generation = self.generation.max(generation);
        let snapshot = self.cache.snapshot();
        for s in &snapshot.skipped {
            tracing::debug!("{s}");
        }
        problems.extend(snapshot.problems);
        (snapshot.store, problems)
    }

    /// The [`Snapshot::generation`] of the last [`load`](Self::load).
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

/// Why the folder cannot be watched.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("{path} does not exist")]
    Missing { path: PathBuf },
    #[error("cannot watch {path}: {source}")]
    Notify {
        path: PathBuf,
        #[source]
        source: notify::Error,
    },
}

/// Loads `root`, then watches it: the receiver holds the latest snapshot. Must be called inside a
/// tokio runtime; the watch ends when every receiver is dropped.
pub fn spawn(
    root: &Path,
    debounce: Debounce,
) -> Result<watch::Receiver<Arc<Snapshot>>, WatchError> {
    if !root.exists() {
        return Err(WatchError::Missing {
            path: root.to_path_buf(),
        });
    }
    let (events_tx, events_rx) = mpsc::unbounded_channel::<Instant>();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        match res {
            // Reads (atime, open, close-without-write) change nothing.
            Ok(e) if matches!(e.kind, notify::EventKind::Access(_)) => {}
            Ok(_) => {
                let _ = events_tx.send(Instant::now());
            }
            Err(e) => tracing::warn!("folder watch: {e}"),
        }
    })
    .map_err(|source| WatchError::Notify {
        path: root.to_path_buf(),
        source,
    })?;
    notify::Watcher::watch(&mut watcher, root, notify::RecursiveMode::Recursive).map_err(
        |source| WatchError::Notify {
            path: root.to_path_buf(),
            source,
        },
    )?;
    let mut folder = Folder::new(root);
    let started = Instant::now();
    let (store, problems) = folder.load();
    log_load(root, &store, &problems, started);
    let (tx, rx) = watch::channel(Snapshot::at(store, problems, started, folder.generation()));
    tokio::spawn(run(watcher, folder, debounce, events_rx, tx));
    Ok(rx)
}

/// The watch loop: collects events, re-loads when the burst is due, stops when nobody listens.
async fn run(
    watcher: notify::RecommendedWatcher,
    mut folder: Folder,
    mut debounce: Debounce,
    mut events: mpsc::UnboundedReceiver<Instant>,
    tx: watch::Sender<Arc<Snapshot>>,
) {
    let _keep_watching = watcher;
    loop {
        let event = match debounce.deadline() {
            Some(deadline) => {
                tokio::select! {
                    e = events.recv() => e.map(Some),
                    () = tokio::time::sleep_until(deadline.into()) => Some(None),
                    () = tx.closed() => None,
                }
            }
            None => tokio::select! {
                e = events.recv() => e.map(Some),
                () = tx.closed() => None,
            },
        };
        match event {
            None => return,
            Some(Some(at)) => debounce.event(at),
            Some(None) => {}
        }
        if let Some(changed_at) = debounce.take_due(Instant::now()) {
            let loaded = tokio::task::spawn_blocking(move || {
                let started = Instant::now();
                let (store, problems) = folder.load();
                (folder, store, problems, started)
            })
            .await;
            let Ok((f, store, problems, started)) = loaded else {
                tracing::error!("folder load task failed");
                return;
            };
            folder = f;
            log_load(&folder.root, &store, &problems, started);
            let snapshot = Snapshot::at(store, problems, changed_at, folder.generation());
            if tx.send(snapshot).is_err() {
                return;
            }
        }
    }
}

fn log_load(root: &Path, store: &Store, problems: &[Problem], started: Instant) {
    for p in problems {
        tracing::warn!(folder = %root.display(), "load error: {p}");
    }
    tracing::info!(
        folder = %root.display(),
        objects = store.len(),
        errors = problems.len(),
        ms = started.elapsed().as_millis() as u64,
        "folder loaded"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn debounce_waits_for_quiet_and_caps_at_max() {
        let t0 = Instant::now();
        let mut d = Debounce::new(100 * MS, 1000 * MS);
        assert_eq!(d.deadline(), None);
        d.event(t0);
        assert_eq!(d.deadline(), Some(t0 + 100 * MS));
        d.event(t0 + 50 * MS);
        assert_eq!(d.deadline(), Some(t0 + 150 * MS));
        assert_eq!(d.take_due(t0 + 149 * MS), None);
        assert_eq!(d.take_due(t0 + 150 * MS), Some(t0));
        assert_eq!(d.deadline(), None);
        // Continuous churn: an event every 50 ms never leaves 100 ms of quiet; due at max.
        let mut d = Debounce::new(100 * MS, 1000 * MS);
        let mut now = t0;
        let mut fired = None;
        for _ in 0..100 {
            d.event(now);
            now += 50 * MS;
            if let Some(first) = d.take_due(now) {
                fired = Some((first, now));
                break;
            }
        }
        assert_eq!(fired, Some((t0, t0 + 1000 * MS)));
    }

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    const SVC_A: &str =
        "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{port: 80}]}\n";
    const SVC_B: &str =
        "apiVersion: v1\nkind: Service\nmetadata: {name: b}\nspec: {ports: [{port: 80}]}\n";

    #[test]
    fn a_broken_file_keeps_its_last_good_objects() {
        let dir = std::env::temp_dir().join(format!("gammaroute-folder-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        write(&dir, "a.yaml", SVC_A);
        let mut folder = Folder::new(&dir);
        let (store, problems) = folder.load();
        assert_eq!((store.services.len(), problems.len()), (1, 0));

        // Half-saved: a syntax error, and a new second document that is fine.
        write(
            &dir,
            "a.yaml",
            &format!("{SVC_B}---\nmetadata: {{name: [\n"),
        );
        // A new file with an error contributes what loaded.
        write(&dir, "b.yaml", &format!("{SVC_B}---\nkind: X\n"));
        let (store, problems) = folder.load();
        let names: Vec<String> = store.services.keys().map(ToString::to_string).collect();
        assert_eq!(names, ["default/a", "default/b"], "{problems:?}");
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 3, "{text:?}");
        assert!(
            text[0].starts_with("a.yaml document 1: invalid YAML"),
            "{text:?}"
        );
        assert_eq!(
            text[1],
            "a.yaml: failed to load: serving the 1 objects of its last good version"
        );
        assert!(text[2].starts_with("b.yaml document 1: not a Kubernetes object"));

        // Fixed: the new content counts.
        write(&dir, "a.yaml", SVC_B);
        let (store, problems) = folder.load();
        assert_eq!(store.services.len(), 1);
        // b.yaml still has its error, and its Service b is now a.yaml's too (a.yaml wins).
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[1].message.contains("also defined in a.yaml"));

        // Unchanged files are served from the last load; a changed one is read again, even
        // when its length and modification second are the same.
        write(&dir, "b.yaml", SVC_A);
        let (first, _) = folder.load();
        write(&dir, "b.yaml", &SVC_A.replace("name: a", "name: c"));
        let (second, problems) = folder.load();
        let names = |s: &Store| {
            s.services
                .keys()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&first), ["default/a", "default/b"]);
        assert_eq!(names(&second), ["default/b", "default/c"], "{problems:?}");
        assert_eq!(folder.load().0.services.len(), 2, "nothing changed");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_generation_grows_with_every_edit_and_deletion_and_is_shared_by_readers() {
        let dir = std::env::temp_dir().join(format!("gammaroute-gen-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        let set_mtime = |path: &Path, ms: u64| {
            let t = std::time::UNIX_EPOCH + Duration::from_millis(ms);
            let f = std::fs::File::options().read(true).open(path).unwrap();
            f.set_modified(t).unwrap();
        };
        write(&dir, "a.yaml", SVC_A);
        write(&dir.join("sub"), "b.yaml", SVC_B);
        for (p, ms) in [
            (dir.clone(), 1_000),
            (dir.join("sub"), 1_000),
            (dir.join("a.yaml"), 2_000),
            (dir.join("sub/b.yaml"), 3_000),
        ] {
            set_mtime(&p, ms);
        }
        // Two readers (replicas) of the same files agree.
        let (mut one, mut two) = (Folder::new(&dir), Folder::new(&dir));
        one.load();
        two.load();
        assert_eq!((one.generation(), two.generation()), (3_000, 3_000));
        // An edit: the file's time.
        set_mtime(&dir.join("a.yaml"), 4_000);
        one.load();
        assert_eq!(one.generation(), 4_000);
        // A deletion: its directory's time.
        std::fs::remove_file(dir.join("sub/b.yaml")).unwrap();
        set_mtime(&dir.join("sub"), 5_000);
        one.load();
        assert_eq!(one.generation(), 5_000);
        // Never back within a process, even when the times go back.
        for p in [dir.clone(), dir.join("sub"), dir.join("a.yaml")] {
            set_mtime(&p, 10);
        }
        one.load();
        assert_eq!(one.generation(), 5_000);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
