//! Running against a Kubernetes cluster: the kube source ([`crate::source::kube`]), the Lease
//! ([`crate::status::lease`]) and the status writer ([`crate::status::kube`]) wired together, for
//! `serve --kube`; [`read_once`], the same source read once, for `check --kube` and
//! `explain --kube`. `serve` reads [`Running::snapshots`] like any source and hands every
//! translation to [`Running::statuses`].
//!
//! Connection: `kube::Client::try_default()` — `KUBECONFIG` (or `~/.kube/config`) when present,
//! else the in-cluster service account. Leader election needs to know where it runs
//! (`POD_NAMESPACE`, `POD_NAME`, set by `deploy/deployment.yaml` through the downward API);
//! without `POD_NAMESPACE` (a developer's KUBECONFIG) there is no election and this process
//! writes status: run a single replica that way.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};
use tokio::sync::watch;

use crate::provision::{ProvisionSink, Provisioner};
use crate::source::watcher::Debounce;
use crate::source::Snapshot;
use crate::status::kube::{StatusPublisher, Writer};
use crate::status::lease::LeaseConfig;

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Our `controllerName` (status entries with it are ours).
    pub controller_name: String,
    /// `None`: no election, always write status.
    pub lease: Option<LeaseConfig>,
    /// Full status reconcile period.
    pub resync: Duration,
    pub debounce: Debounce,
    /// Provision the proxies of our Gateways ([`crate::provision`]); `None`: status only.
    pub provision: Option<Provisioning>,
}

/// What provisioning needs besides the client (`serve` flags and the token file).
#[derive(Debug, Clone)]
pub struct Provisioning {
    pub options: crate::provision::ProvisionOptions,
    /// config-pusher's Service as the proxies reach it (table API, and ADS with --xds-listen).
    pub control_plane: crate::provision::bootstrap::ControlPlane,
    /// `--token-file`'s secret: each bootstrap gets its role's token.
    pub secret: Option<crate::auth::Secret>,
    pub cluster_domain: String,
}

impl RunOptions {
    /// RunOptions from the environment (`POD_NAMESPACE`, `POD_NAME`; see the module docs).
    pub fn from_env(controller_name: impl Into<String>) -> RunOptions {
        let lease = std::env::var("POD_NAMESPACE").ok().map(|ns| {
            let identity = std::env::var("POD_NAME")
                .or_else(|_| std::env::var("HOSTNAME"))
                .unwrap_or_else(|_| format!("config-pusher-{}", std::process::id()));
            LeaseConfig::new(ns, identity)
        });
        RunOptions {
            controller_name: controller_name.into(),
            lease,
            resync: Duration::from_secs(60),
            debounce: crate::source::kube::default_debounce(),
            provision: None,
        }
    }
}

/// Why the cluster could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("no Kubernetes configuration (KUBECONFIG, ~/.kube/config or in-cluster): {0}")]
    Config(#[source] Box<kube::Error>),
    #[error(
        "the cluster was not read completely within {0:?}: some kind never listed (is the API \
         server reachable, and may this user list gatewayclasses, gateways, httproutes, \
         referencegrants, services, endpointslices, namespaces and secrets?)"
    )]
    Incomplete(Duration),
}

/// The cluster's objects, read once exactly as `serve --kube` reads them — the same watchers
/// ([`crate::source::kube::run`]) up to their first complete snapshot — for `check --kube` and
/// `explain --kube`. Objects that fail to decode are in the snapshot's `problems`, as in `serve`.
pub async fn read_once(client: Client, within: Duration) -> Result<Arc<Snapshot>, ClusterError> {
    let (tx, mut rx) = watch::channel(Snapshot::pending());
    // One burst: everything listed is published at once, no need to wait for quiet.
    let quiet = Duration::from_millis(10);
    let watchers = tokio::spawn(crate::source::kube::run(
        client,
        tx,
        Debounce::new(quiet, quiet * 10),
    ));
    let complete = tokio::time::timeout(within, async {
        loop {
            if rx.changed().await.is_err() {
                return None;
            }
            let snapshot = rx.borrow_and_update().clone();
            if snapshot.complete {
                return Some(snapshot);
            }
        }
    })
    .await;
    watchers.abort();
    complete
        .ok()
        .flatten()
        .ok_or(ClusterError::Incomplete(within))
}

/// A client from `KUBECONFIG` or the in-cluster configuration.
pub async fn connect() -> Result<Client, ClusterError> {
    Client::try_default()
        .await
        .map_err(|e| ClusterError::Config(Box::new(e)))
}

/// What `serve` consumes.
pub struct Running {
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
    pub statuses: Statuses,
}

/// Where `serve` hands its translations: straight to the status writer, or through the
/// provisioner, which lays the proxies' state over them first.
#[derive(Clone)]
pub enum Statuses {
    Direct(StatusPublisher),
    Provisioning(ProvisionSink),
}

impl crate::serve::StatusSink for Statuses {
    fn publish(&mut self, snapshot: &Arc<Snapshot>, output: &crate::translate::Output) {
        match self {
            Statuses::Direct(s) => s.publish(snapshot, output),
            Statuses::Provisioning(s) => s.publish(snapshot, output),
        }
    }
}

/// Starts the watchers, the election and the status writer as tasks on the current runtime.
pub fn start(client: Client, options: RunOptions) -> Running {
    let (tx, snapshots) = watch::channel(Snapshot::pending());
    tokio::spawn(crate::source::kube::run(
        client.clone(),
        tx,
        options.debounce,
    ));
    let (leader_tx, leader_rx) = watch::channel(options.lease.is_none());
    match options.lease {
        Some(cfg) => {
            tracing::info!(namespace = %cfg.namespace, lease = %cfg.name, identity = %cfg.identity, "leader election: only the Lease holder writes status");
            let api: Api<Lease> = Api::namespaced(client.clone(), &cfg.namespace);
            tokio::spawn(crate::status::lease::run(api, cfg, leader_tx));
        }
        None => {
            tracing::warn!("POD_NAMESPACE not set: no leader election, this process writes status (run one replica)");
            // Keep the sender alive: the writer stops when it is dropped.
            tokio::spawn(async move {
                leader_tx.closed().await;
            });
        }
    }
    let (publisher, outputs) = StatusPublisher::new();
    let statuses = match options.provision {
        Some(p) => {
            let (sink, translations) = ProvisionSink::new();
            let provisioner = Provisioner::new(
                client.clone(),
                options.controller_name.clone(),
                p.options,
                p.control_plane,
                p.secret,
                p.cluster_domain,
            );
            tokio::spawn(crate::provision::run(
                provisioner,
                translations,
                leader_rx.clone(),
                publisher,
            ));
            Statuses::Provisioning(sink)
        }
        None => Statuses::Direct(publisher),
    };
    tokio::spawn(crate::status::kube::run(
        Writer::new(client, options.controller_name),
        outputs,
        leader_rx,
        options.resync,
    ));
    Running {
        snapshots,
        statuses,
    }
}
