//! The Kubernetes source: one kube-rs watcher per kind the store keeps, folded into a [`Cache`]
//! and published as a [`Snapshot`] (debounced) whenever something changed.
//!
//! - Every kind is watched as [`DynamicObject`] and decoded per object with
//!   [`super::decode`], so an object that does not fit our types is logged, reported as a
//!   [`Problem`] and skipped; it never wedges the watch (Linkerd's `DeserializeGuard` lesson,
//!   docs/architecture.md "Control plane").
//! - A kind that cannot be watched (CRD not installed, RBAC) is reported as a Problem and retried
//!   with kube-rs' default exponential backoff (0.8 s → 30 s); the other kinds keep working.
//! - ReferenceGrant is watched at `v1beta1`: served by every Gateway API release since v0.6 and
//!   still the storage version in v1.6, while `v1` only exists from v1.5 (docs/architecture.md "Control plane": "Compatibility
//!   traps"). The schema is the same, so it decodes into the `v1` type.
//! - **Never a partial view.** The first snapshot is published once every kind has been listed
//!   successfully (a kind not served — 404, CRD not installed — counts as listed and empty; a
//!   transient error does not), so neither the tables nor the status writer ever see a
//!   half-listed cluster. A relist (watch restart, 410 Gone) is buffered until it completes and
//!   then replaces the kind at once ([`Change::Reset`]): it never publishes an emptier view
//!   in between.
//!
//! [`Cache`] is the sans-IO part (apply / delete / reset per kind → store); [`run`] is the IO shell.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client};
use tokio::sync::mpsc;

use super::watch::Debounce;
use super::{DecodeError, Live, LiveObjects, Problem, Snapshot, SnapshotSender, GATEWAY_API_GROUP};
use crate::store::{Kind, Object, ObjectKey, Store};

/// The kube source's debounce: publish 100 ms after the last change, at most 10 s after the
/// first (Istio's `PILOT_DEBOUNCE_AFTER` / `PILOT_DEBOUNCE_MAX`, docs/architecture.md "Control plane").
pub fn default_debounce() -> Debounce {
    Debounce::new(Duration::from_millis(100), Duration::from_secs(10))
}

/// The API resource config-pusher watches for a kind.
pub fn api_resource(kind: Kind) -> ApiResource {
    let (group, version, plural) = match kind {
        Kind::GatewayClass => (GATEWAY_API_GROUP, "v1", "gatewayclasses"),
        Kind::Gateway => (GATEWAY_API_GROUP, "v1", "gateways"),
        Kind::HttpRoute => (GATEWAY_API_GROUP, "v1", "httproutes"),
        Kind::ReferenceGrant => (GATEWAY_API_GROUP, "v1beta1", "referencegrants"),
        Kind::Service => ("", "v1", "services"),
        Kind::EndpointSlice => ("discovery.k8s.io", "v1", "endpointslices"),
        Kind::Namespace => ("", "v1", "namespaces"),
        Kind::Secret => ("", "v1", "secrets"),
    };
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(group, version, kind.as_str()),
        plural,
    )
}

/// Key of an object in the cache: kind, then namespace (empty for cluster-scoped) and name.
pub type CacheKey = (Kind, ObjectKey);

/// An object as it came from the API server: decoded, or why not.
#[derive(Debug, Clone)]
pub enum Decoded {
    /// The object, and its server-side state when it is of a kind whose status we write.
    Ok(Object, Option<Live>),
    Invalid {
        key: ObjectKey,
        error: DecodeError,
    },
}

/// Whether config-pusher writes the status of `kind`.
fn status_kind(kind: Kind) -> bool {
    matches!(kind, Kind::GatewayClass | Kind::Gateway | Kind::HttpRoute)
}

/// Decodes a watched object into its kind. `status` is dropped (config-pusher computes it) and
/// Gateway API objects are read as `v1`.
pub fn decode(kind: Kind, object: &DynamicObject) -> Decoded {
    let key = ObjectKey::new(
        object.metadata.namespace.clone().unwrap_or_default(),
        object.metadata.name.clone().unwrap_or_default(),
    );
    let mut value = match serde_json::to_value(object) {
        Ok(v) => v,
        Err(e) => {
            return Decoded::Invalid {
                key,
                error: DecodeError {
                    field: String::new(),
                    message: e.to_string(),
                },
            }
        }
    };
    let mut live = None;
    if let Some(m) = value.as_object_mut() {
        let status = m.remove("status");
        if status_kind(kind) {
            live = Some(Live {
                resource_version: object.metadata.resource_version.clone(),
                generation: object.metadata.generation,
                status: status.unwrap_or(serde_json::Value::Null),
            });
        }
        if kind.gateway_api() {
            m.insert(
                "apiVersion".into(),
                format!("{GATEWAY_API_GROUP}/v1").into(),
            );
        }
    }
    match super::decode(kind, value) {
        Ok(o) => Decoded::Ok(o, live),
        Err(error) => Decoded::Invalid { key, error },
    }
}

/// One change from a watcher, already decoded.
#[derive(Debug, Clone)]
pub enum Change {
    /// The full list of a kind (initial list or relist): replaces everything of that kind.
    Reset(Kind, Vec<Decoded>),
    Apply(Kind, Decoded),
    Delete(Kind, ObjectKey),
    /// The watch failed (will be retried); the kind keeps its last known objects.
    Failed(Kind, String),
    /// The API server says the kind is not served (404: its CRD is not installed): a definitive
    /// answer, so the kind counts as listed and empty (still reported; retried with backoff).
    NotServed(Kind, String),
    /// The highest `metadata.resourceVersion` of the objects a list or an event carried
    /// (deletions included), sent after that change.
    Revision(u64),
}

/// The objects of every kind as last seen, plus what could not be loaded. Sans-IO.
#[derive(Debug, Default)]
pub struct Cache {
    objects: BTreeMap<CacheKey, Object>,
    live: LiveObjects,
    invalid: BTreeMap<CacheKey, DecodeError>,
    /// Kinds listed at least once.
    listed: BTreeSet<Kind>,
    /// Kinds whose watch is failing, with the last error.
    failing: BTreeMap<Kind, String>,
    /// The highest resourceVersion seen: the snapshot's [`Snapshot::generation`]. Every
    /// replica watching the same API server sees the same revisions, and every write to an
    /// object (a deletion too) has a higher one than all before it (etcd's revision, which the
    /// API server uses as resourceVersion; opaque by contract, hence `Revision` is only sent when
    /// it parses as a number).
    revision: u64,
}

impl Cache {
    /// Applies one change.
    pub fn apply(&mut self, change: Change) {
        match change {
            Change::Reset(kind, objects) => {
                self.objects.retain(|(k, _), _| *k != kind);
                self.live.retain(|(k, _), _| *k != kind);
                self.invalid.retain(|(k, _), _| *k != kind);
                for o in objects {
                    self.put(kind, o);
                }
                self.listed.insert(kind);
                self.failing.remove(&kind);
            }
            Change::Apply(kind, o) => {
                self.put(kind, o);
                self.failing.remove(&kind);
            }
            Change::Delete(kind, key) => {
                let key = (kind, key);
                self.objects.remove(&key);
                self.live.remove(&key);
                self.invalid.remove(&key);
            }
            Change::Failed(kind, message) => {
                self.failing.insert(kind, message);
            }
            Change::Revision(revision) => self.revision = self.revision.max(revision),
            Change::NotServed(kind, message) => {
                self.objects.retain(|(k, _), _| *k != kind);
                self.live.retain(|(k, _), _| *k != kind);
                self.invalid.retain(|(k, _), _| *k != kind);
                self.listed.insert(kind);
                self.failing.insert(kind, message);
            }
        }
    }

    fn put(&mut self, kind: Kind, o: Decoded) {
        match o {
            Decoded::Ok(object, live) => {
                let meta = object.meta();
                let key = (
                    kind,
                    ObjectKey::new(
                        meta.namespace.clone().unwrap_or_default(),
                        meta.name.clone().unwrap_or_default(),
                    ),
                );
                self.invalid.remove(&key);
                match live {
                    Some(live) => self.live.insert(key.clone(), live),
                    None => self.live.remove(&key),
                };
                self.objects.insert(key, object);
            }
            Decoded::Invalid { key, error } => {
                // The last good version is gone too: the object as it is now is not usable.
                let key = (kind, key);
                self.objects.remove(&key);
                self.live.remove(&key);
                self.invalid.insert(key, error);
            }
        }
    }

    /// Every kind has been listed successfully at least once (a kind not served counts as listed
    /// and empty). A kind whose first list failed for any other reason (a 500, a timeout, RBAC)
    /// is unknown, not empty: publishing without it would resolve every backend as missing and
    /// write `ResolvedRefs=False` statuses. Later failures keep the kind's last objects.
    pub fn settled(&self) -> bool {
        Kind::ALL.iter().all(|k| self.listed.contains(k))
    }

    /// A store of every decoded object, and the problems.
    pub fn snapshot(&self, changed_at: Instant) -> Snapshot {
        let mut store = Store::new();
        let mut problems = Vec::new();
        for ((kind, key), object) in &self.objects {
            if let Err(e) = store.apply(object.clone(), "kube") {
                problems.push(Problem {
                    origin: format!("{kind} {}", display_key(*kind, key)),
                    document: None,
                    field: None,
                    message: e.to_string(),
                });
            }
        }
        for (kind, message) in &self.failing {
            problems.push(Problem {
                origin: format!("watch {kind}"),
                document: None,
                field: None,
                message: message.clone(),
            });
        }
        for ((kind, key), error) in &self.invalid {
            problems.push(Problem {
                origin: format!("{kind} {}", display_key(*kind, key)),
                document: None,
                field: (!error.field.is_empty()).then(|| error.field.clone()),
                message: error.to_string(),
            });
        }
        Snapshot {
            store,
            problems,
            changed_at,
            live: Arc::new(self.live.clone()),
            complete: self.settled(),
            generation: self.revision,
        }
    }
}

fn display_key(kind: Kind, key: &ObjectKey) -> String {
    if kind.cluster_scoped() {
        key.name.clone()
    } else {
        key.to_string()
    }
}

/// Watches every kind and publishes snapshots into `tx` until `tx` has no receivers.
pub async fn run(client: Client, tx: SnapshotSender, debounce: Debounce) {
    let (changes_tx, mut changes) = mpsc::channel::<Change>(1024);
    let mut tasks = tokio::task::JoinSet::new();
    for kind in Kind::ALL {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &api_resource(kind));
        tasks.spawn(watch_kind(kind, api, changes_tx.clone()));
    }
    drop(changes_tx);
    let mut cache = Cache::default();
    let mut debounce = debounce;
    loop {
        // Wait for a change, or until the pending burst is due (once every kind is settled).
        let next = match debounce.deadline().filter(|_| cache.settled()) {
            Some(deadline) => {
                match tokio::time::timeout_at(deadline.into(), changes.recv()).await {
                    Ok(next) => next,
                    Err(_elapsed) => {
                        if let Some(first) = debounce.take_due(Instant::now()) {
                            let snapshot = cache.snapshot(first);
                            tracing::debug!(
                                objects = snapshot.store.len(),
                                problems = snapshot.problems.len(),
                                "kube: publishing snapshot"
                            );
                            if tx.send(Arc::new(snapshot)).is_err() {
                                tracing::info!("kube: no snapshot receivers left; stopping");
                                return;
                            }
                        }
                        continue;
                    }
                }
            }
            None => changes.recv().await,
        };
        let Some(change) = next else {
            return; // every watcher ended: only when the runtime shuts down
        };
        cache.apply(change);
        debounce.event(Instant::now());
    }
}

/// One kind's watcher: buffers the initial list into one [`Change::Reset`] and forwards the rest.
async fn watch_kind(kind: Kind, api: Api<DynamicObject>, tx: mpsc::Sender<Change>) {
    let config = match kind {
        // Only TLS Secrets are ever used (listener certificateRefs): the API server filters the
        // rest out, so other Secrets (tokens, passwords) never reach config-pusher.
        Kind::Secret => watcher::Config::default()
            .fields(&format!("type={}", crate::store::secret::TLS_SECRET_TYPE)),
        _ => watcher::Config::default(),
    };
    let stream = watcher::watcher(api, config).default_backoff();
    futures::pin_mut!(stream);
    let mut listing: Vec<Decoded> = Vec::new();
    let mut listed_revision = None;
    while let Some(event) = stream.next().await {
        let seen = match &event {
            Ok(Event::InitApply(o) | Event::Apply(o) | Event::Delete(o)) => revision(o),
            _ => None,
        };
        let change = match event {
            Ok(Event::Init) => {
                listing.clear();
                listed_revision = None;
                continue;
            }
            Ok(Event::InitApply(o)) => {
                listing.push(logged(kind, decode(kind, &o)));
                listed_revision = listed_revision.max(seen);
                continue;
            }
            Ok(Event::InitDone) => {
                tracing::debug!(%kind, objects = listing.len(), "kube: listed");
                Change::Reset(kind, std::mem::take(&mut listing))
            }
            Ok(Event::Apply(o)) => Change::Apply(kind, logged(kind, decode(kind, &o))),
            Ok(Event::Delete(o)) => Change::Delete(
                kind,
                ObjectKey::new(
                    o.metadata.namespace.clone().unwrap_or_default(),
                    o.metadata.name.clone().unwrap_or_default(),
                ),
            ),
            Err(e) => {
                let message = describe(kind, &e);
                tracing::warn!(%kind, "kube: watch failed (retrying with backoff): {message}");
                if not_served(&e) {
                    Change::NotServed(kind, message)
                } else {
                    Change::Failed(kind, message)
                }
            }
        };
        let is_reset = matches!(change, Change::Reset(..));
        if tx.send(change).await.is_err() {
            return;
        }
        let seen = if is_reset {
            listed_revision.take()
        } else {
            seen
        };
        if let Some(r) = seen {
            if tx.send(Change::Revision(r)).await.is_err() {
                return;
            }
        }
    }
}

/// An object's `metadata.resourceVersion` as a number, when it is one.
fn revision(o: &DynamicObject) -> Option<u64> {
    o.metadata.resource_version.as_deref()?.parse().ok()
}

fn logged(kind: Kind, d: Decoded) -> Decoded {
    if let Decoded::Invalid { key, error } = &d {
        tracing::warn!("kube: skipping {kind} {}: {error}", display_key(kind, key));
    }
    d
}

/// The API server answered 404 to the list or watch of the whole resource: it is not served.
fn not_served(e: &watcher::Error) -> bool {
    matches!(
        e,
        watcher::Error::InitialListFailed(kube::Error::Api(s))
            | watcher::Error::WatchStartFailed(kube::Error::Api(s))
            if s.code == 404
    )
}

/// A watch error, with the likely cause when the API server says the resource does not exist.
fn describe(kind: Kind, e: &watcher::Error) -> String {
    let r = api_resource(kind);
    if not_served(e) {
        format!(
            "{}/{} {} is not served: is the Gateway API CRD installed? ({e})",
            r.group, r.version, r.plural
        )
    } else {
        e.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_list_or_a_definitive_404_settles_a_kind() {
        let mut cache = Cache::default();
        for kind in Kind::ALL {
            if kind != Kind::Service && kind != Kind::ReferenceGrant {
                cache.apply(Change::Reset(kind, vec![]));
            }
        }
        cache.apply(Change::NotServed(Kind::ReferenceGrant, "404".into()));
        cache.apply(Change::Failed(Kind::Service, "500".into()));
        assert!(!cache.settled(), "a transient error is not an empty list");
        assert!(!cache.snapshot(Instant::now()).complete);
        cache.apply(Change::Reset(Kind::Service, vec![]));
        assert!(cache.settled());
        let snapshot = cache.snapshot(Instant::now());
        assert!(snapshot.complete);
        // The kind not served is still reported.
        assert_eq!(snapshot.problems.len(), 1, "{:?}", snapshot.problems);
        assert_eq!(snapshot.problems[0].origin, "watch ReferenceGrant");
    }

    #[test]
    fn the_generation_is_the_highest_revision_seen_deletions_included() {
        let mut cache = Cache::default();
        for kind in Kind::ALL {
            cache.apply(Change::Reset(kind, vec![]));
        }
        assert_eq!(cache.snapshot(Instant::now()).generation, 0);
        cache.apply(Change::Revision(120));
        cache.apply(Change::Delete(Kind::Service, ObjectKey::new("a", "b")));
        cache.apply(Change::Revision(130));
        // A relist of an older object never lowers it.
        cache.apply(Change::Revision(90));
        assert_eq!(cache.snapshot(Instant::now()).generation, 130);
    }
}
