//! Counters bumped on every publish from every core, without a shared cache line.
//!
//! Each thread adds to one of [`COUNTER_SLOTS`] cache-line-sized slots (picked once per
//! thread, round robin), so two cores publishing at once never write the same line;
//! reading sums the slots, which is rare (INFO, metrics). The sum is exact once writers
//! pause and never goes backwards.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Slots per counter: more than the cores we expect, a power of two.
pub const COUNTER_SLOTS: usize = 16;

#[derive(Debug, Default)]
#[repr(align(128))]
struct Slot(AtomicU64);

/// A monotonically increasing counter spread over per-thread slots.
#[derive(Debug, Default)]
pub struct ShardedCounter {
    slots: [Slot; COUNTER_SLOTS],
}

fn thread_slot() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SLOT: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    SLOT.with(|slot| {
        if slot.get() == usize::MAX {
            slot.set(NEXT.fetch_add(1, Ordering::Relaxed) % COUNTER_SLOTS);
        }
        slot.get()
    })
}

impl ShardedCounter {
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.slots[thread_slot()].0.fetch_add(n, Ordering::Relaxed);
    }

    /// Starts again from zero (CONFIG RESETSTAT). An add racing the reset may survive
    /// it: these are statistics.
    pub fn reset(&self) {
        for slot in &self.slots {
            slot.0.store(0, Ordering::Relaxed);
        }
    }

    /// The total so far.
    pub fn get(&self) -> u64 {
        self.slots
            .iter()
            .map(|slot| slot.0.load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn sums_what_every_thread_added() {
        let counter = Arc::new(ShardedCounter::default());
        let threads: Vec<_> = (0..COUNTER_SLOTS as u64 + 3)
            .map(|n| {
                let counter = Arc::clone(&counter);
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        counter.add(n);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let expected: u64 = (0..COUNTER_SLOTS as u64 + 3).map(|n| n * 1000).sum();
        assert_eq!(counter.get(), expected);
        counter.reset();
        assert_eq!(counter.get(), 0);
        counter.add(2);
        assert_eq!(counter.get(), 2);
    }
}
