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

#[derive(Debug, Default)]
struct Inner {
    /// Last sequence on disk.
    synced: u64,
    /// Waiters by the sequence they wait for.
    waiting: BTreeMap<u64, Vec<oneshot::Sender<()>>>,
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
    pub(super) fn wait(&self, sequence: u64) -> Option<oneshot::Receiver<()>> {
        let mut inner = self.inner.lock();
        if inner.synced >= sequence {
            return None;
        }
        let (sender, receiver) = oneshot::channel();
        inner.waiting.entry(sequence).or_default().push(sender);
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
        for sender in done.into_values().flatten() {
            // The receiver is gone when its connection closed meanwhile.
            let _ = sender.send(());
        }
    }

    /// The last sequence on disk.
    #[cfg(test)]
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
        let mut first = waiters.wait(1).expect("not synced yet");
        let mut third = waiters.wait(3).expect("not synced yet");
        waiters.advance(2);
        assert_eq!(first.try_recv(), Ok(()));
        assert!(third.try_recv().is_err(), "woken before its fsync");
        assert!(waiters.wait(2).is_none(), "already synced");
        waiters.advance(3);
        assert_eq!(third.await, Ok(()));
        assert_eq!(waiters.synced(), 3);
    }

    #[tokio::test]
    async fn dropping_the_writer_ends_the_waits() {
        let waiters = SyncedWaiters::default();
        let waiting = waiters.wait(5).expect("not synced yet");
        drop(waiters);
        assert!(waiting.await.is_err());
    }
}
