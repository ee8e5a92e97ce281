//! A parallel map for translate's independent per-table work (a large cluster has one mesh table
//! per namespace, each with every producer route; building them one after the other left all but
//! one core idle).

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// `items.iter().map(f).collect()`, on up to `available_parallelism` scoped threads. Each thread
/// takes the next unclaimed item, so one large item does not hold back a fixed share of the
/// others. The result is in item order, whatever the scheduling.
pub fn map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(1, NonZeroUsize::get)
        .min(items.len());
    if threads <= 1 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let done: Mutex<Vec<(usize, R)>> = Mutex::new(Vec::with_capacity(items.len()));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let r = f(item);
                done.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push((i, r));
            });
        }
    });
    let mut done = done
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    done.sort_unstable_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_item_order_whatever_the_cost_of_each_item() {
        let items: Vec<u64> = (0..200).collect();
        let out = map(&items, |&i| {
            // Uneven work, so threads finish out of order.
            let spin = if i % 7 == 0 { 20_000 } else { 10 };
            (0..spin).fold(i, |acc, x| acc.wrapping_mul(31).wrapping_add(x)) ^ i.rotate_left(7)
        });
        let expected: Vec<u64> = items
            .iter()
            .map(|&i| {
                let spin = if i % 7 == 0 { 20_000 } else { 10 };
                (0..spin).fold(i, |acc, x| acc.wrapping_mul(31).wrapping_add(x)) ^ i.rotate_left(7)
            })
            .collect();
        assert_eq!(out, expected);
        assert!(map(&[] as &[u8], |_| 0u8).is_empty());
    }
}
