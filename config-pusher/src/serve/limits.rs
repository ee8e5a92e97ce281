//! Bounds on what clients can make `serve` hold: open long-polls, in total and per role. A
//! long-poll is a parked request (a task and a connection each); without a cap, enough idle
//! clients — or one misconfigured fleet — would hold memory and file descriptors without end.
//! A refused long-poll is answered `503` with `Retry-After` at once: the filter backs off and
//! retries, and whoever already holds a slot keeps it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// `serve --max-long-polls`, `--max-long-polls-per-role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Long-polls open at once, all roles together.
    pub long_polls: usize,
    /// Long-polls open at once for one role (one namespace's sidecars, one Gateway's proxies).
    pub long_polls_per_role: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        // One fetching VM per Envoy process polls at a time: 10,000 proxies per replica.
        Limits {
            long_polls: 10_000,
            long_polls_per_role: 5_000,
        }
    }
}

/// Open long-polls, counted against [`Limits`].
#[derive(Debug, Default)]
pub struct Slots {
    limits: Limits,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_role: HashMap<String, usize>,
}

/// Why a long-poll was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("too many long-polls open ({0}); retry later")]
    Total(usize),
    #[error("too many long-polls open for this role ({0}); retry later")]
    Role(usize),
}

/// A held long-poll slot, given back when dropped (also when the client goes away).
#[derive(Debug)]
pub struct Slot {
    slots: Arc<Slots>,
    role: String,
}

impl Slots {
    pub fn new(limits: Limits) -> Slots {
        Slots {
            limits,
            open: Mutex::default(),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Open) -> R) -> R {
        match self.open.lock() {
            Ok(mut o) => f(&mut o),
            Err(p) => f(&mut p.into_inner()),
        }
    }

    /// Takes a slot for a long-poll on `role`, or says which bound refuses it.
    pub fn take(self: &Arc<Slots>, role: &str) -> Result<Slot, Refused> {
        let limits = self.limits;
        self.with(|o| {
            if o.total >= limits.long_polls {
                return Err(Refused::Total(limits.long_polls));
            }
            let n = o.by_role.get(role).copied().unwrap_or(0);
            if n >= limits.long_polls_per_role {
                return Err(Refused::Role(limits.long_polls_per_role));
            }
            o.total += 1;
            o.by_role.insert(role.to_string(), n + 1);
            Ok(())
        })?;
        Ok(Slot {
            slots: self.clone(),
            role: role.to_string(),
        })
    }

    /// Long-polls open now.
    pub fn open(&self) -> usize {
        self.with(|o| o.total)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots.with(|o| {
            o.total = o.total.saturating_sub(1);
            if let Some(n) = o.by_role.get_mut(&self.role) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    o.by_role.remove(&self.role);
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_in_total_and_per_role_and_given_back() {
        let slots = Arc::new(Slots::new(Limits {
            long_polls: 3,
            long_polls_per_role: 2,
        }));
        let a1 = slots.take("mesh/a").unwrap();
        let _a2 = slots.take("mesh/a").unwrap();
        assert_eq!(slots.take("mesh/a").unwrap_err(), Refused::Role(2));
        let _b1 = slots.take("mesh/b").unwrap();
        assert_eq!(slots.take("mesh/c").unwrap_err(), Refused::Total(3));
        drop(a1);
        assert_eq!(slots.open(), 2);
        let _c1 = slots.take("mesh/c").unwrap();
        assert_eq!(slots.open(), 3);
    }
}
