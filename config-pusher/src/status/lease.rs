//! Leader election on a `coordination.k8s.io/v1` Lease: every replica serves tables, only the
//! holder writes status (docs/architecture.md "Status", Linkerd's "leader writes status").
//!
//! kube-rs 4.2 has no lease helper, so this is client-go's `leaderelection` in small: the holder
//! renews `spec.renewTime` every `retry`; anyone may take the lease over once
//! `renewTime + leaseDurationSeconds` has passed. Every write is a create or a replace carrying
//! the `resourceVersion` it read, so two candidates racing get one success and one 409 Conflict.
//! A replica that fails to renew stops writing at once (it may be partitioned from the API
//! server while another replica takes over).

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::PostParams;
use kube::Api;
use tokio::sync::watch;

/// Which Lease, who we are, and the timings.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// The Lease's namespace: config-pusher's own (`POD_NAMESPACE`).
    pub namespace: String,
    pub name: String,
    /// This replica (`POD_NAME`).
    pub identity: String,
    /// How long a holder's claim lasts without renewal (client-go default: 15 s).
    pub duration: Duration,
    /// How often to try to acquire or renew (client-go default: 2 s).
    pub retry: Duration,
}

impl LeaseConfig {
    pub fn new(namespace: impl Into<String>, identity: impl Into<String>) -> LeaseConfig {
        LeaseConfig {
            namespace: namespace.into(),
            name: "config-pusher-status".into(),
            identity: identity.into(),
            duration: Duration::from_secs(15),
            retry: Duration::from_secs(2),
        }
    }
}

/// What to do with the Lease as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// No Lease yet: create it with us as holder.
    Create,
    /// We hold it: renew.
    Renew,
    /// Someone else held it and let it expire (or nobody holds it): take it over.
    TakeOver,
    /// Someone else holds it.
    Wait { holder: String },
}

/// Decides from the Lease as read (`None`: it does not exist). Pure.
pub fn plan(lease: Option<&LeaseSpec>, identity: &str, now: Timestamp) -> Plan {
    let Some(spec) = lease else {
        return Plan::Create;
    };
    let holder = spec.holder_identity.as_deref().unwrap_or_default();
    if holder == identity {
        return Plan::Renew;
    }
    let expired = match (&spec.renew_time, spec.lease_duration_seconds) {
        (Some(MicroTime(renewed)), Some(secs)) => renewed
            .checked_add(SignedDuration::from_secs(i64::from(secs)))
            .is_ok_and(|until| until < now),
        _ => true,
    };
    if holder.is_empty() || expired {
        Plan::TakeOver
    } else {
        Plan::Wait {
            holder: holder.to_string(),
        }
    }
}

/// The spec we write for a plan.
fn spec_for(old: Option<&LeaseSpec>, plan: &Plan, cfg: &LeaseConfig, now: Timestamp) -> LeaseSpec {
    let now_t = MicroTime(now);
    let seconds = i32::try_from(cfg.duration.as_secs()).unwrap_or(i32::MAX);
    let mut spec = old.cloned().unwrap_or_default();
    if *plan != Plan::Renew {
        spec.acquire_time = Some(now_t.clone());
        spec.lease_transitions = Some(match plan {
            Plan::Create => 0,
            _ => spec.lease_transitions.unwrap_or(0).saturating_add(1),
        });
    }
    spec.holder_identity = Some(cfg.identity.clone());
    spec.lease_duration_seconds = Some(seconds);
    spec.renew_time = Some(now_t);
    spec
}

/// One acquire-or-renew round: `Ok(true)` when we hold the Lease afterwards.
pub async fn try_acquire(
    api: &Api<Lease>,
    cfg: &LeaseConfig,
    now: Timestamp,
) -> Result<bool, kube::Error> {
    let current = api.get_opt(&cfg.name).await?;
    let spec = current.as_ref().and_then(|l| l.spec.as_ref());
    let plan = plan(spec, &cfg.identity, now);
    let result = match (&plan, current.as_ref()) {
        (Plan::Wait { .. }, _) => return Ok(false),
        (Plan::Create, _) | (_, None) => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(cfg.name.clone()),
                    namespace: Some(cfg.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(spec_for(None, &Plan::Create, cfg, now)),
            };
            api.create(&PostParams::default(), &lease).await
        }
        (_, Some(l)) => {
            let mut lease = l.clone(); // carries resourceVersion: a race is a 409
            lease.spec = Some(spec_for(spec, &plan, cfg, now));
            api.replace(&cfg.name, &PostParams::default(), &lease).await
        }
    };
    match result {
        Ok(_) => {
            if plan != Plan::Renew {
                tracing::info!(lease = %cfg.name, identity = %cfg.identity, "lease acquired: this replica writes status");
            }
            Ok(true)
        }
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Runs the election forever, publishing whether we hold the Lease into `held`.
pub async fn run(api: Api<Lease>, cfg: LeaseConfig, held: watch::Sender<bool>) {
    loop {
        let now = Timestamp::now();
        let holding = match try_acquire(&api, &cfg, now).await {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(lease = %cfg.name, "lease: {e}; not writing status until it works again");
                false
            }
        };
        held.send_if_modified(|h| {
            let changed = *h != holding;
            if changed && !holding {
                tracing::info!(lease = %cfg.name, "lease not held: another replica writes status");
            }
            *h = holding;
            changed
        });
        tokio::time::sleep(cfg.retry).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: &str, renewed: Timestamp, secs: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            renew_time: Some(MicroTime(renewed)),
            lease_duration_seconds: Some(secs),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn plans() {
        let t: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let later = |s: i64| t.checked_add(SignedDuration::from_secs(s)).unwrap();
        assert_eq!(plan(None, "a", t), Plan::Create);
        assert_eq!(plan(Some(&spec("a", t, 15)), "a", later(100)), Plan::Renew);
        assert_eq!(
            plan(Some(&spec("b", t, 15)), "a", later(10)),
            Plan::Wait { holder: "b".into() }
        );
        assert_eq!(
            plan(Some(&spec("b", t, 15)), "a", later(16)),
            Plan::TakeOver
        );
        assert_eq!(plan(Some(&spec("", t, 15)), "a", t), Plan::TakeOver);
    }

    #[test]
    fn takeover_counts_transitions_and_renew_keeps_acquire_time() {
        let t: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let cfg = LeaseConfig::new("ns", "a");
        let mut old = spec("b", t, 15);
        old.lease_transitions = Some(4);
        old.acquire_time = Some(MicroTime(t));
        let later = t.checked_add(SignedDuration::from_secs(60)).unwrap();
        let taken = spec_for(Some(&old), &Plan::TakeOver, &cfg, later);
        assert_eq!(taken.holder_identity.as_deref(), Some("a"));
        assert_eq!(taken.lease_transitions, Some(5));
        assert_eq!(taken.acquire_time, Some(MicroTime(later)));
        let renewed = spec_for(
            Some(&taken),
            &Plan::Renew,
            &cfg,
            later.checked_add(SignedDuration::from_secs(2)).unwrap(),
        );
        assert_eq!(renewed.acquire_time, Some(MicroTime(later)));
        assert_eq!(renewed.lease_transitions, Some(5));
    }
}
