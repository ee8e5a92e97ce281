//! Leader election on a `coordination.k8s.io/v1` Lease: every replica serves tables, only the
//! holder writes status (docs/architecture.md "Status", Linkerd's "leader writes status").
//!
//! kube-rs 4.2 has no lease helper, so this is client-go's `leaderelection` in small. Every write
//! is a create or a replace carrying the `resourceVersion` it read, so two candidates racing get
//! one success and one 409 Conflict.
//!
//! **Time is local.** Replicas' clocks may disagree, so no decision compares the Lease's
//! `renewTime` with the local clock (client-go's `observedTime`):
//! - another holder's claim has expired once its record (holder, `renewTime`) has not changed for
//!   `leaseDurationSeconds` of *our* monotonic time since we first saw it that way;
//! - we hold the Lease until `renew_deadline` (2/3 of the duration, client-go's 10 s of 15 s)
//!   after the start of our last successful renewal, by our monotonic clock ([`Elector::held`]);
//!   a renewal that fails, or hangs past that, ends our holding at once — well before another
//!   replica can take over, whatever the clocks say.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
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
pub enum LeaseStep {
    /// No Lease yet: create it with us as holder.
    Create,
    /// We hold it: renew.
    Renew,
    /// Someone else held it and let it expire (or nobody holds it): take it over.
    TakeOver,
    /// Someone else holds it.
    Wait { holder: String },
}

/// What we last saw of another holder's record, and when (our clock).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Observed {
    holder: String,
    renew_time: Option<MicroTime>,
    at: Instant,
}

/// The election's state between rounds: what we observed, and when we last renewed. Pure: the
/// caller supplies the (monotonic) time.
#[derive(Debug, Clone)]
pub struct Elector {
    pub cfg: LeaseConfig,
    observed: Option<Observed>,
    /// When the last successful acquire or renewal *started* (so it errs on the early side).
    renewed_at: Option<Instant>,
}

impl Elector {
    pub fn new(cfg: LeaseConfig) -> Elector {
        Elector {
            cfg,
            observed: None,
            renewed_at: None,
        }
    }

    /// How long after a successful renewal we still count as the holder.
    pub fn renew_deadline(&self) -> Duration {
        self.cfg.duration * 2 / 3
    }

    /// Until when we hold the Lease (`None`: we do not).
    pub fn held_until(&self) -> Option<Instant> {
        self.renewed_at.map(|t| t + self.renew_deadline())
    }

    /// Whether we hold the Lease at `now`.
    pub fn held(&self, now: Instant) -> bool {
        self.held_until().is_some_and(|until| now < until)
    }

    /// Decides from the Lease as read at `now` (`None`: it does not exist); see the module docs.
    pub fn plan(&mut self, lease: Option<&LeaseSpec>, now: Instant) -> LeaseStep {
        let Some(spec) = lease else {
            return LeaseStep::Create;
        };
        let holder = spec.holder_identity.as_deref().unwrap_or_default();
        if holder == self.cfg.identity {
            return LeaseStep::Renew;
        }
        if holder.is_empty() {
            return LeaseStep::TakeOver;
        }
        let same = self
            .observed
            .as_ref()
            .is_some_and(|o| o.holder == holder && o.renew_time == spec.renew_time);
        if !same {
            self.observed = Some(Observed {
                holder: holder.to_string(),
                renew_time: spec.renew_time.clone(),
                at: now,
            });
        }
        // The holder's own duration, else ours.
        let duration = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map_or(self.cfg.duration, Duration::from_secs);
        let expired = self
            .observed
            .as_ref()
            .is_some_and(|o| now.saturating_duration_since(o.at) >= duration);
        if expired {
            LeaseStep::TakeOver
        } else {
            LeaseStep::Wait {
                holder: holder.to_string(),
            }
        }
    }

    /// Whether a round that started at `started` ended with us holding the Lease.
    fn settle(&mut self, started: Instant, holding: bool) {
        if holding {
            self.renewed_at = Some(started);
            self.observed = None;
        } else {
            self.renewed_at = None;
        }
    }

    /// One acquire-or-renew round started at `started`: `Ok(true)` when we hold the Lease
    /// afterwards. An error also ends our holding.
    pub async fn round(&mut self, api: &Api<Lease>, started: Instant) -> Result<bool, kube::Error> {
        let result = self.try_round(api, started).await;
        self.settle(started, matches!(result, Ok(true)));
        result
    }

    async fn try_round(&mut self, api: &Api<Lease>, started: Instant) -> Result<bool, kube::Error> {
        let cfg = self.cfg.clone();
        let current = api.get_opt(&cfg.name).await?;
        let spec = current.as_ref().and_then(|l| l.spec.as_ref());
        let plan = self.plan(spec, started);
        // Only written, never compared with anyone's clock.
        let now = Timestamp::now();
        let result = match (&plan, current.as_ref()) {
            (LeaseStep::Wait { .. }, _) => return Ok(false),
            (LeaseStep::Create, _) | (_, None) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(cfg.name.clone()),
                        namespace: Some(cfg.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(spec_for(None, &LeaseStep::Create, &cfg, now)),
                };
                api.create(&PostParams::default(), &lease).await
            }
            (_, Some(l)) => {
                let mut lease = l.clone(); // carries resourceVersion: a race is a 409
                lease.spec = Some(spec_for(spec, &plan, &cfg, now));
                api.replace(&cfg.name, &PostParams::default(), &lease).await
            }
        };
        match result {
            Ok(_) => {
                if plan != LeaseStep::Renew {
                    tracing::info!(lease = %cfg.name, identity = %cfg.identity, "lease acquired: this replica writes status");
                }
                Ok(true)
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// The spec we write for a plan.
fn spec_for(
    old: Option<&LeaseSpec>,
    plan: &LeaseStep,
    cfg: &LeaseConfig,
    now: Timestamp,
) -> LeaseSpec {
    let now_t = MicroTime(now);
    let seconds = i32::try_from(cfg.duration.as_secs()).unwrap_or(i32::MAX);
    let mut spec = old.cloned().unwrap_or_default();
    if *plan != LeaseStep::Renew {
        spec.acquire_time = Some(now_t.clone());
        spec.lease_transitions = Some(match plan {
            LeaseStep::Create => 0,
            _ => spec.lease_transitions.unwrap_or(0).saturating_add(1),
        });
    }
    spec.holder_identity = Some(cfg.identity.clone());
    spec.lease_duration_seconds = Some(seconds);
    spec.renew_time = Some(now_t);
    spec
}

/// Runs the election forever, publishing whether we hold the Lease into `held`. A round that
/// has not finished when our holding ends is abandoned: `held` turns false on time even when the
/// API server does not answer.
pub async fn run(api: Api<Lease>, cfg: LeaseConfig, held: watch::Sender<bool>) {
    let mut elector = Elector::new(cfg);
    loop {
        let started = Instant::now();
        // Not holding: a hung call is abandoned after a full duration and retried.
        let deadline = elector
            .held_until()
            .filter(|until| *until > started)
            .unwrap_or(started + elector.cfg.duration);
        let round = tokio::time::timeout_at(deadline.into(), elector.round(&api, started)).await;
        let holding = match round {
            Ok(Ok(h)) => h,
            Ok(Err(e)) => {
                tracing::warn!(lease = %elector.cfg.name, "lease: {e}; not writing status until it works again");
                false
            }
            Err(_) => {
                elector.settle(started, false);
                tracing::warn!(lease = %elector.cfg.name, "lease: no answer before our claim ran out; not writing status");
                false
            }
        };
        held.send_if_modified(|h| {
            let changed = *h != holding;
            if changed && !holding {
                tracing::info!(lease = %elector.cfg.name, "lease not held: another replica writes status");
            }
            *h = holding;
            changed
        });
        // Sleep until the next round, but give the claim up on time if that comes first.
        let next = Instant::now() + elector.cfg.retry;
        match elector.held_until().filter(|until| *until < next) {
            Some(until) => {
                tokio::time::sleep_until(until.into()).await;
                held.send_replace(false);
                tokio::time::sleep_until(next.into()).await;
            }
            None => tokio::time::sleep_until(next.into()).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::SignedDuration;

    fn spec(holder: &str, renewed: Timestamp, secs: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            renew_time: Some(MicroTime(renewed)),
            lease_duration_seconds: Some(secs),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn plans_judge_expiry_by_local_time_only() {
        let t0 = Instant::now();
        let s = |n: u64| Duration::from_secs(n);
        let mut e = Elector::new(LeaseConfig::new("ns", "a"));
        let epoch: Timestamp = "2000-01-01T00:00:00Z".parse().unwrap();
        let future: Timestamp = "2100-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(e.plan(None, t0), LeaseStep::Create);
        assert_eq!(e.plan(Some(&spec("a", epoch, 15)), t0), LeaseStep::Renew);
        assert_eq!(e.plan(Some(&spec("", epoch, 15)), t0), LeaseStep::TakeOver);
        let wait = LeaseStep::Wait { holder: "b".into() };
        // A renewTime 26 years old (a skewed clock) is not expired when first seen...
        assert_eq!(e.plan(Some(&spec("b", epoch, 15)), t0), wait);
        assert_eq!(e.plan(Some(&spec("b", epoch, 15)), t0 + s(14)), wait);
        // ...only 15 s of ours without a change.
        assert_eq!(
            e.plan(Some(&spec("b", epoch, 15)), t0 + s(15)),
            LeaseStep::TakeOver
        );
        // A renewal (whatever its timestamp) restarts the count; one in the future expires too.
        assert_eq!(e.plan(Some(&spec("b", future, 15)), t0 + s(16)), wait);
        assert_eq!(e.plan(Some(&spec("b", future, 15)), t0 + s(30)), wait);
        assert_eq!(
            e.plan(Some(&spec("b", future, 15)), t0 + s(31)),
            LeaseStep::TakeOver
        );
        // Holding: until 2/3 of the duration after the last renewal started.
        assert!(!e.held(t0));
        e.settle(t0, true);
        assert!(e.held(t0 + s(9)));
        assert!(!e.held(t0 + s(10)));
        e.settle(t0 + s(1), false);
        assert!(!e.held(t0 + s(1)));
    }

    #[test]
    fn takeover_counts_transitions_and_renew_keeps_acquire_time() {
        let t: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let cfg = LeaseConfig::new("ns", "a");
        let mut old = spec("b", t, 15);
        old.lease_transitions = Some(4);
        old.acquire_time = Some(MicroTime(t));
        let later = t.checked_add(SignedDuration::from_secs(60)).unwrap();
        let taken = spec_for(Some(&old), &LeaseStep::TakeOver, &cfg, later);
        assert_eq!(taken.holder_identity.as_deref(), Some("a"));
        assert_eq!(taken.lease_transitions, Some(5));
        assert_eq!(taken.acquire_time, Some(MicroTime(later)));
        let renewed = spec_for(
            Some(&taken),
            &LeaseStep::Renew,
            &cfg,
            later.checked_add(SignedDuration::from_secs(2)).unwrap(),
        );
        assert_eq!(renewed.acquire_time, Some(MicroTime(later)));
        assert_eq!(renewed.lease_transitions, Some(5));
    }
}
