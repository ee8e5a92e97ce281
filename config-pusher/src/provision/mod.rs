//! Provisioning (`serve --kube`): for every Gateway of a GatewayClass we control, the Envoy
//! Deployment, Service, ServiceAccount and bootstrap ConfigMap that make it an addressable,
//! routed proxy — the way Envoy Gateway's infrastructure provider does (GEP-1762 "in-cluster
//! Gateway deployments", GEP-1867 `spec.infrastructure`). docs/provisioning.md is the user's
//! guide.
//!
//! - [`params`]: the GatewayClass `parametersRef` ConfigMap; [`bootstrap`]: the proxies'
//!   Envoy bootstrap; [`objects`]: the four objects (pure); [`plan`]: what to write (pure);
//!   [`status`]: addresses and `Programmed` from what runs (pure);
//! - [`reconcile`]: the IO of one round; [`run`]: rounds on every translation, on becoming the
//!   Lease holder and every [`TICK`], on the Lease holder only; every replica lays the last
//!   round's state over the statuses it hands to the status writer.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::source::Snapshot;
use crate::status::kube::StatusPublisher;
use crate::store::ObjectKey;
use crate::translate::Output;

pub mod bootstrap;
pub mod module;
pub mod objects;
pub mod params;
pub mod plan;
pub mod reconcile;
pub mod status;

pub use module::{ModuleSource, ModuleUrl};
pub use objects::ProvisionOptions;
pub use reconcile::Provisioner;

/// How often the objects are re-read without news (Deployment availability, load balancer
/// addresses, objects someone deleted).
pub const TICK: Duration = Duration::from_secs(10);

/// A translation for the provisioner.
#[derive(Clone)]
pub struct Translation {
    pub snapshot: Arc<Snapshot>,
    pub output: Arc<Output>,
}

/// The [`crate::serve::StatusSink`] of `serve --kube` with provisioning: hands each translation
/// to [`run`], which passes it on to the status writer with the proxies' state laid over.
#[derive(Clone)]
pub struct ProvisionSink {
    tx: watch::Sender<Option<Translation>>,
}

impl ProvisionSink {
    pub fn new() -> (ProvisionSink, watch::Receiver<Option<Translation>>) {
        let (tx, rx) = watch::channel(None);
        (ProvisionSink { tx }, rx)
    }
}

impl crate::serve::StatusSink for ProvisionSink {
    fn publish(&mut self, snapshot: &Arc<Snapshot>, output: &Output) {
        self.tx.send_replace(Some(Translation {
            snapshot: snapshot.clone(),
            output: Arc::new(output.clone()),
        }));
    }
}

/// Reconciles while `leader` is true (see the module docs) and publishes every translation's
/// statuses, with the proxies' state laid over, to `statuses`. Returns when a sender is dropped.
pub async fn run(
    provisioner: Provisioner,
    mut translations: watch::Receiver<Option<Translation>>,
    mut leader: watch::Receiver<bool>,
    statuses: StatusPublisher,
) {
    let mut infra: BTreeMap<ObjectKey, status::Infra> = BTreeMap::new();
    let mut last: Option<Vec<crate::translate::status::StatusDoc>> = None;
    loop {
        let news = tokio::select! {
            r = translations.changed() => if r.is_err() { return } else { true },
            r = leader.changed() => if r.is_err() { return } else { true },
            () = tokio::time::sleep(TICK) => false,
        };
        let Some(t) = translations.borrow_and_update().clone() else {
            continue;
        };
        if *leader.borrow_and_update() {
            let round = provisioner
                .reconcile(&t.snapshot.store, &t.output.tables)
                .await;
            for e in &round.errors {
                tracing::warn!("provisioning: {e}");
            }
            // A round that could not list what exists knows nothing new: keep the last state.
            let listed = !round
                .errors
                .iter()
                .any(|e| matches!(e, reconcile::ProvisionError::List { .. }));
            if listed {
                infra = round.infra;
            }
        }
        let mut output = (*t.output).clone();
        status::apply(&mut output.statuses, &infra);
        // A tick that changed nothing hands the writer nothing (it would re-check every object).
        if news || last.as_ref() != Some(&output.statuses) {
            last = Some(output.statuses.clone());
            statuses.publish(&output, t.snapshot.live.clone());
        }
    }
}
