//! The status writer: applies the statuses of a translation to the API server.
//!
//! Per object: take the object as the watch last delivered it (its status, `generation` and
//! `resourceVersion`: no GET per object per translation; a GET only when the watch has not seen
//! it, or after a conflict), merge ([`super::desired`]), and PATCH `…/status` with a JSON
//! merge patch that carries that `resourceVersion`, so a concurrent writer (another
//! controller adding its own `status.parents` entry) makes the API server answer 409 Conflict
//! instead of one of us losing the other's entry; a conflict is retried with a fresh read.
//! Nothing is sent when nothing but timestamps would change. A status computed from an older
//! generation than the live object is skipped (a newer translation is on its way).
//!
//! [`run`] writes on every new translation, when this replica becomes the Lease holder, and every
//! `resync` (a full reconcile: repairs status someone else overwrote). Replicas that do not hold
//! the Lease write nothing.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use kube::api::{DynamicObject, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::source::kube::api_resource;
use crate::source::{Live, LiveObjects, Snapshot};
use crate::store::{Kind, ObjectKey};
use crate::translate::status::{Meta, RouteStatus, Status, StatusDoc};
use crate::translate::Output;

/// Read-modify-write rounds before giving up on an object until the next translation or resync.
pub const MAX_ATTEMPTS: usize = 5;

/// What writing one object's status did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    Patched,
    /// The live status already says it.
    Unchanged,
    /// The live object has a newer generation than the one translated.
    Stale,
    /// The object no longer exists.
    Gone,
}

/// Why an object's status could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{kind} {name}: {source}")]
    Api {
        kind: &'static str,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("{kind} {name}: status changed under us {MAX_ATTEMPTS} times in a row (409 Conflict)")]
    Conflict { kind: &'static str, name: String },
    #[error("{kind} {name}: not a kind whose status config-pusher writes")]
    Kind { kind: &'static str, name: String },
}

/// Writes statuses for the controller `controller` (its `status.parents` entries are ours).
#[derive(Clone)]
pub struct Writer {
    client: Client,
    controller: String,
}

fn object_name(meta: &Meta) -> String {
    match &meta.namespace {
        Some(ns) => format!("{ns}/{}", meta.name),
        None => meta.name.clone(),
    }
}

/// The current time as `metav1.Time` writes it (RFC 3339, whole seconds).
pub fn now() -> String {
    let t = k8s_openapi::jiff::Timestamp::now();
    k8s_openapi::jiff::Timestamp::from_second(t.as_second())
        .unwrap_or(t)
        .to_string()
}

impl Writer {
    pub fn new(client: Client, controller: impl Into<String>) -> Writer {
        Writer {
            client,
            controller: controller.into(),
        }
    }

    fn api(&self, doc: &StatusDoc) -> Result<Api<DynamicObject>, WriteError> {
        let kind = match doc.kind {
            "GatewayClass" => Kind::GatewayClass,
            "Gateway" => Kind::Gateway,
            "HTTPRoute" => Kind::HttpRoute,
            _ => {
                return Err(WriteError::Kind {
                    kind: doc.kind,
                    name: object_name(&doc.metadata),
                })
            }
        };
        let ar = api_resource(kind);
        Ok(match &doc.metadata.namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &ar),
            None => Api::all_with(self.client.clone(), &ar),
        })
    }

    /// Writes one object's status, reading it first (see the module docs).
    pub async fn write(&self, doc: &StatusDoc, now: &str) -> Result<WriteOutcome, WriteError> {
        self.write_from(doc, now, None).await
    }

    /// Writes one object's status starting from `cached`, the object as the watch last delivered
    /// it, instead of a GET (none when absent); a 409 Conflict (the cache was behind) is retried
    /// with a fresh read.
    pub async fn write_from(
        &self,
        doc: &StatusDoc,
        now: &str,
        cached: Option<&Live>,
    ) -> Result<WriteOutcome, WriteError> {
        let api = self.api(doc)?;
        let name = &doc.metadata.name;
        let err = |source| WriteError::Api {
            kind: doc.kind,
            name: object_name(&doc.metadata),
            source: Box::new(source),
        };
        let mut cached = cached.cloned();
        for _ in 0..MAX_ATTEMPTS {
            let live = match cached.take() {
                Some(live) => live,
                None => {
                    let Some(object) = api.get_opt(name).await.map_err(err)? else {
                        return Ok(WriteOutcome::Gone);
                    };
                    Live {
                        resource_version: object.metadata.resource_version.clone(),
                        generation: object.metadata.generation,
                        status: object.data.get("status").cloned().unwrap_or(Value::Null),
                    }
                }
            };
            if super::stale(doc, live.generation) {
                return Ok(WriteOutcome::Stale);
            }
            let Some(status) = super::desired(&live.status, doc, &self.controller, now) else {
                return Ok(WriteOutcome::Unchanged);
            };
            let patch = json!({
                "apiVersion": doc.api_version,
                "kind": doc.kind,
                "metadata": {"resourceVersion": live.resource_version},
                "status": status,
            });
            match api
                .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => return Ok(WriteOutcome::Patched),
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    tracing::debug!(kind = doc.kind, name = %object_name(&doc.metadata), "status conflict; re-reading");
                }
                Err(kube::Error::Api(s)) if s.code == 404 => return Ok(WriteOutcome::Gone),
                Err(e) => return Err(err(e)),
            }
        }
        Err(WriteError::Conflict {
            kind: doc.kind,
            name: object_name(&doc.metadata),
        })
    }

    /// Writes every status of a translation while `leader` is true: the moment it turns false,
    /// the write in flight is abandoned and nothing more is sent (another replica may hold the
    /// Lease by now). `routes` remembers the HTTPRoutes that carry an entry of ours: one that
    /// drops out of the translation (its parentRefs no longer name our parents) gets our entries
    /// removed. Errors are logged; the next round retries.
    pub async fn write_all(
        &self,
        output: &Output,
        live: &LiveObjects,
        routes: &mut BTreeSet<ObjectKey>,
        now: &str,
        leader: &watch::Receiver<bool>,
    ) -> Vec<(StatusDoc, Result<WriteOutcome, WriteError>)> {
        let mut docs = output.statuses.clone();
        let current: BTreeSet<ObjectKey> = docs
            .iter()
            .filter(|d| d.kind == "HTTPRoute")
            .map(|d| key(&d.metadata))
            .collect();
        for gone in routes.difference(&current) {
            docs.push(StatusDoc {
                api_version: "gateway.networking.k8s.io/v1",
                kind: "HTTPRoute",
                metadata: Meta {
                    namespace: Some(gone.namespace.clone()),
                    name: gone.name.clone(),
                },
                status: Status::HttpRoute(RouteStatus { parents: vec![] }),
            });
        }
        let mut results = Vec::with_capacity(docs.len());
        let mut lost = leader.clone();
        for doc in docs {
            let result = tokio::select! {
                biased;
                _ = lost.wait_for(|held| !held) => {
                    tracing::info!("lease lost: status writing stops");
                    break;
                }
                r = self.write_from(&doc, now, cached(live, &doc)) => r,
            };
            match &result {
                Ok(WriteOutcome::Patched) => {
                    tracing::info!(kind = doc.kind, name = %object_name(&doc.metadata), "status written")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("status not written: {e}"),
            }
            if doc.kind == "HTTPRoute" {
                let k = key(&doc.metadata);
                if doc.route_parents().is_empty() && result.is_ok() {
                    routes.remove(&k);
                } else if !doc.route_parents().is_empty() {
                    routes.insert(k);
                }
            }
            results.push((doc, result));
        }
        results
    }
}

/// The watch's view of the object `doc` is about.
fn cached<'a>(live: &'a LiveObjects, doc: &StatusDoc) -> Option<&'a Live> {
    let kind = match doc.kind {
        "GatewayClass" => Kind::GatewayClass,
        "Gateway" => Kind::Gateway,
        "HTTPRoute" => Kind::HttpRoute,
        _ => return None,
    };
    live.get(&(kind, key(&doc.metadata)))
}

fn key(meta: &Meta) -> ObjectKey {
    ObjectKey::new(
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone(),
    )
}

/// A translation as the writer gets it: the statuses, and the watch's view of the objects.
#[derive(Debug, Clone)]
pub struct Translated {
    pub output: Arc<Output>,
    pub live: Arc<LiveObjects>,
}

/// Where translations are handed to the writer: keeps only the latest (a slow API server makes
/// the writer skip intermediate translations, never queue them).
#[derive(Debug, Clone)]
pub struct StatusPublisher {
    tx: watch::Sender<Option<Translated>>,
}

impl StatusPublisher {
    /// A publisher and the receiver [`run`] reads.
    pub fn new() -> (StatusPublisher, watch::Receiver<Option<Translated>>) {
        let (tx, rx) = watch::channel(None);
        (StatusPublisher { tx }, rx)
    }

    pub fn publish(&self, output: &Output, live: Arc<LiveObjects>) {
        self.tx.send_replace(Some(Translated {
            output: Arc::new(output.clone()),
            live,
        }));
    }
}

impl crate::serve::StatusSink for StatusPublisher {
    fn publish(&mut self, snapshot: &Arc<Snapshot>, output: &Output) {
        StatusPublisher::publish(self, output, snapshot.live.clone());
    }
}

/// Writes the latest translation whenever it changes, when `leader` becomes true, and every
/// `resync`, as long as `leader` is true. Returns when either sender is dropped.
pub async fn run(
    writer: Writer,
    mut outputs: watch::Receiver<Option<Translated>>,
    mut leader: watch::Receiver<bool>,
    resync: Duration,
) {
    let mut routes = BTreeSet::new();
    loop {
        tokio::select! {
            r = outputs.changed() => if r.is_err() { return },
            r = leader.changed() => if r.is_err() { return },
            () = tokio::time::sleep(resync) => {}
        }
        if !*leader.borrow_and_update() {
            continue;
        }
        let Some(t) = outputs.borrow_and_update().clone() else {
            continue;
        };
        writer
            .write_all(&t.output, &t.live, &mut routes, &now(), &leader)
            .await;
    }
}
