//! Push wake-ups between the VMs of one Envoy process: the pure part.
//!
//! Without them a table one VM fetched reaches the others on their next tick (`source.tickMs`,
//! 250 ms). Envoy calls `proxy_on_queue_ready` only in the VM that registered a shared queue
//! (proxy-wasm-cpp-host `src/shared_queue.cc`: the queue keeps the registering VM's thread and
//! root context), so there is no broadcast: every VM registers its own queue, per role, and
//! lists it in shared data ([`Listeners`], key [`super::fetch::Keys::listeners`]); the fetcher,
//! once it has published a table, enqueues the new version to every listed queue but its own.
//! Envoy posts the notification to that VM's event loop, which reads the table at once.
//!
//! The tick stays as the fallback (a host without queues, a lost wake-up). A VM that died
//! (`FAIL_RELOAD` replaces it) stops refreshing its entry, which expires, so its orphaned queue
//! stops receiving wake-ups that nobody would dequeue.

/// Entries not refreshed for this long are dropped: the VM is gone (or, on Envoy's main thread,
/// never ticks). Several ticks, so a busy worker is not dropped between two refreshes.
pub fn listener_expiry_ms(tick_ms: u32) -> u64 {
    (u64::from(tick_ms) * 8).max(30_000)
}

/// How often a VM refreshes its own entry (a CAS write): a third of the expiry.
pub fn listener_refresh_ms(tick_ms: u32) -> u64 {
    listener_expiry_ms(tick_ms) / 3
}

/// The shared queue name of one VM's root context for one role (unique per VM: `holder` is the
/// VM number and root context id of [`super::fetch::Lease`]).
pub fn queue_name(role: &str, holder: u64) -> String {
    format!("gammaroute/{role}/wake/{holder}")
}

/// One listening queue: its host token and when its VM last announced it (host clock, ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listener {
    pub queue: u32,
    pub seen_ms: u64,
}

/// The VMs to wake after a table is published: shared-data value `"<queue> <seen_ms>"` per line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listeners {
    pub entries: Vec<Listener>,
}

impl Listeners {
    /// Lines that do not parse (another version of the filter) are dropped, not fatal: the
    /// worst case is a VM woken by its tick instead.
    pub fn parse(bytes: &[u8]) -> Listeners {
        let text = std::str::from_utf8(bytes).unwrap_or_default();
        let entries = text
            .lines()
            .filter_map(|line| {
                let (queue, seen) = line.split_once(' ')?;
                Some(Listener {
                    queue: queue.parse().ok().filter(|q| *q != 0)?,
                    seen_ms: seen.parse().ok()?,
                })
            })
            .collect();
        Listeners { entries }
    }

    pub fn encode(&self) -> String {
        self.entries
            .iter()
            .map(|l| format!("{} {}\n", l.queue, l.seen_ms))
            .collect()
    }

    /// The registry to write (with CAS) after `queue` announces itself at `now_ms`; `None` when
    /// its entry is fresh enough to leave alone. Expired entries are dropped on the way.
    pub fn refreshed(&self, queue: u32, now_ms: u64, tick_ms: u32) -> Option<Listeners> {
        let fresh = self.entries.iter().any(|l| {
            l.queue == queue && now_ms.saturating_sub(l.seen_ms) < listener_refresh_ms(tick_ms)
        });
        if fresh {
            return None;
        }
        let expiry = listener_expiry_ms(tick_ms);
        let mut entries: Vec<Listener> = self
            .entries
            .iter()
            .filter(|l| l.queue != queue && now_ms.saturating_sub(l.seen_ms) < expiry)
            .copied()
            .collect();
        entries.push(Listener {
            queue,
            seen_ms: now_ms,
        });
        Some(Listeners { entries })
    }

    /// The queues to wake: every live entry but the waker's own.
    pub fn to_wake(&self, own: Option<u32>, now_ms: u64, tick_ms: u32) -> Vec<u32> {
        let expiry = listener_expiry_ms(tick_ms);
        let mut queues: Vec<u32> = self
            .entries
            .iter()
            .filter(|l| Some(l.queue) != own && now_ms.saturating_sub(l.seen_ms) < expiry)
            .map(|l| l.queue)
            .collect();
        queues.sort_unstable();
        queues.dedup();
        queues
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listeners(entries: &[(u32, u64)]) -> Listeners {
        Listeners {
            entries: entries
                .iter()
                .map(|&(queue, seen_ms)| Listener { queue, seen_ms })
                .collect(),
        }
    }

    #[test]
    fn round_trips_and_skips_what_does_not_parse() {
        let l = listeners(&[(3, 1_000), (9, 2_500)]);
        assert_eq!(Listeners::parse(l.encode().as_bytes()), l);
        // Garbage lines, a zero token (no queue has it) and invalid UTF-8 are dropped.
        let mixed = Listeners::parse(b"3 1000\nnonsense\n0 5\n7 x\n9 2500\n");
        assert_eq!(mixed, l);
        assert_eq!(Listeners::parse(b"\xff\xfe"), Listeners::default());
    }

    #[test]
    fn a_vm_joins_then_refreshes_only_when_its_entry_ages() {
        let tick = 250;
        let joined = Listeners::default().refreshed(4, 1_000, tick).unwrap();
        assert_eq!(joined, listeners(&[(4, 1_000)]));
        // Fresh: no write.
        assert_eq!(
            joined.refreshed(4, 1_000 + listener_refresh_ms(tick) - 1, tick),
            None
        );
        // Aged: rewritten with the new time, once.
        let later = 1_000 + listener_refresh_ms(tick);
        assert_eq!(
            joined.refreshed(4, later, tick),
            Some(listeners(&[(4, later)]))
        );
    }

    #[test]
    fn dead_vms_expire_and_are_not_woken() {
        let tick = 250;
        let expiry = listener_expiry_ms(tick);
        let now = 100_000;
        let l = listeners(&[(1, now - expiry), (2, now - 10), (3, now - 1)]);
        // Queue 1's VM stopped announcing: not woken, and dropped by the next write.
        assert_eq!(l.to_wake(Some(3), now, tick), vec![2]);
        assert_eq!(l.to_wake(None, now, tick), vec![2, 3]);
        assert_eq!(
            l.refreshed(5, now, tick),
            Some(listeners(&[(2, now - 10), (3, now - 1), (5, now)]))
        );
    }

    #[test]
    fn a_long_tick_keeps_entries_for_several_ticks() {
        // tickMs 60 s: entries must outlive a few ticks, or every VM would expire between its
        // refreshes and never be woken.
        assert_eq!(listener_expiry_ms(60_000), 480_000);
        assert!(listener_refresh_ms(60_000) > 60_000);
        assert_eq!(listener_expiry_ms(250), 30_000);
    }

    #[test]
    fn queue_names_are_per_role_and_holder() {
        assert_eq!(
            queue_name("gateway/demo/web", (2 << 32) | 1),
            "gammaroute/gateway/demo/web/wake/8589934593"
        );
        assert_ne!(queue_name("mesh/a", 1), queue_name("mesh/b", 1));
    }
}
