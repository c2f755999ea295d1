//! The *synced* watermark and the replies waiting for it, woken one by one.
//!
//! Under `appendfsync always` every reply that acknowledges a write waits here. A
//! broadcast (a `watch` channel) would wake every waiting connection at every fsync,
//! and about half of them only to find that this fsync did not cover their record yet
//! (group commit: their record arrived while it ran). Waiters are kept by the sequence
//! number they need, so an fsync wakes exactly the ones it made durable.
//!
//! Locking: one `parking_lot::Mutex` over the watermark and the waiters, held to insert
//! one waiter or to split off the satisfied ones; they are woken after it is released.

use std::collections::BTreeMap;

use parking_lot::Mutex;
use tokio::sync::oneshot;

/// What runs on the writer thread the moment a waiter's record is on disk, before the
/// waiter is woken (see [`SyncedWaiters::wait_then`]).
pub type OnSynced = Box<dyn FnOnce() + Send>;

/// One waiting reply. Its action runs exactly once: at its fsync ([`Waiter::run_then`]),
/// or when the waiter is dropped without one (the writer went away, or its thread
/// unwound), so a caller that handed its reply to the action is never left without it.
struct Waiter {
    woken: Option<oneshot::Sender<()>>,
    then: Option<OnSynced>,
}

impl Waiter {
    fn run_then(&mut self) {
        if let Some(then) = self.then.take() {
            then();
        }
    }
}

impl Drop for Waiter {
    /// Before the sender is dropped, so the action still precedes the end of the wait.
    fn drop(&mut self) {
        self.run_then();
    }
}

#[derive(Default)]
struct Inner {
    /// Last sequence on disk.
    synced: u64,
    /// Waiters by the sequence they wait for.
    waiting: BTreeMap<u64, Vec<Waiter>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("synced", &self.synced)
            .field("waiting", &self.waiting.len())
            .finish()
    }
}

/// The synced watermark with its waiters.
#[derive(Debug, Default)]
pub(super) struct SyncedWaiters {
    inner: Mutex<Inner>,
}

impl SyncedWaiters {
    /// `None` when `sequence` is already on disk; otherwise a receiver that completes
    /// once it is (or, with an error, when the writer is dropped first: nothing will
    /// ever sync it then, and the old `watch` did the same).
    ///
    /// `then` runs exactly once, when the wait ends: on the thread that made
    /// `sequence` durable, right after the fsync and before the waiter is woken (a
    /// connection's reply can go out without waiting for its task to be scheduled);
    /// here and now when `sequence` is already on disk; or when the waiters are dropped
    /// (the writer went away, which ends the wait too).
    pub(super) fn wait_then(
        &self,
        sequence: u64,
        then: Option<OnSynced>,
    ) -> Option<oneshot::Receiver<()>> {
        let mut inner = self.inner.lock();
        if inner.synced >= sequence {
            drop(inner);
            if let Some(then) = then {
                then();
            }
            return None;
        }
        let (woken, receiver) = oneshot::channel();
        inner.waiting.entry(sequence).or_default().push(Waiter {
            woken: Some(woken),
            then,
        });
        Some(receiver)
    }

    /// Everything up to `sequence` is on disk: wakes whoever waited for it.
    pub(super) fn advance(&self, sequence: u64) {
        let done = {
            let mut inner = self.inner.lock();
            inner.synced = inner.synced.max(sequence);
            let later = inner.waiting.split_off(&(sequence.saturating_add(1)));
            std::mem::replace(&mut inner.waiting, later)
        };
        // Every action first, then the wake-ups: the replies leave in one run, before any
        // woken connection competes for the core.
        let mut done: Vec<Waiter> = done.into_values().flatten().collect();
        for waiter in &mut done {
            waiter.run_then();
        }
        for mut waiter in done {
            if let Some(woken) = waiter.woken.take() {
                // The receiver is gone when its connection closed meanwhile.
                let _ = woken.send(());
            }
        }
    }

    /// The last sequence on disk.
    pub(super) fn synced(&self) -> u64 {
        self.inner.lock().synced
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wakes_exactly_the_waiters_an_fsync_covers() {
        let waiters = SyncedWaiters::default();
        let mut first = waiters.wait_then(1, None).expect("not synced yet");
        let mut third = waiters.wait_then(3, None).expect("not synced yet");
        waiters.advance(2);
        assert_eq!(first.try_recv(), Ok(()));
        assert!(third.try_recv().is_err(), "woken before its fsync");
        assert!(waiters.wait_then(2, None).is_none(), "already synced");
        waiters.advance(3);
        assert_eq!(third.await, Ok(()));
        assert_eq!(waiters.synced(), 3);
    }

    #[tokio::test]
    async fn actions_run_at_the_fsync_that_covers_them_before_the_wake_up() {
        use std::sync::atomic::{AtomicU64, Ordering};
        use std::sync::Arc;
        let waiters = SyncedWaiters::default();
        let ran = Arc::new(AtomicU64::new(0));
        let action = |bit: u64| -> OnSynced {
            let ran = Arc::clone(&ran);
            Box::new(move || {
                ran.fetch_or(bit, Ordering::SeqCst);
            })
        };
        let mut first = waiters.wait_then(1, Some(action(1))).expect("not synced");
        let mut second = waiters.wait_then(2, Some(action(2))).expect("not synced");
        waiters.advance(1);
        assert_eq!(ran.load(Ordering::SeqCst), 1, "only the covered action ran");
        assert_eq!(first.try_recv(), Ok(()));
        assert!(second.try_recv().is_err());
        // Already durable: nothing waits, and the action runs at once.
        assert!(waiters.wait_then(1, Some(action(4))).is_none());
        assert_eq!(ran.load(Ordering::SeqCst), 5);
        waiters.advance(2);
        assert_eq!(ran.load(Ordering::SeqCst), 7);
        assert_eq!(second.await, Ok(()));
        // The writer goes away before the fsync: the wait ends and the action runs.
        let waiting = waiters.wait_then(3, Some(action(8))).expect("not synced");
        drop(waiters);
        assert_eq!(ran.load(Ordering::SeqCst), 15);
        assert!(waiting.await.is_err());
    }

    #[tokio::test]
    async fn dropping_the_writer_ends_the_waits() {
        let waiters = SyncedWaiters::default();
        let waiting = waiters.wait_then(5, None).expect("not synced yet");
        drop(waiters);
        assert!(waiting.await.is_err());
    }
}
