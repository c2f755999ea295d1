//! Direct writes: the write claim, the front-end's sink and the per-batch flush list.
//!
//! A front-end may install a [`DirectWrite`] sink ([`Outbox::set_direct`]).
//! A publisher that made the queue non-empty then calls [`Outbox::flush`] (usually via
//! [`PendingWakes`], once per batch of commands) instead of waking the writer task: if
//! nobody holds the outbox's [`WriteClaim`], it takes the claim and the sink writes the
//! queue to the socket without blocking, as Redis writes each client from its event
//! loop; otherwise the claim holder (the writer task, busy with an earlier batch) is
//! woken as before. The claim is a flag under the outbox's mutex, not a lock anyone
//! waits for: whoever writes holds it, others only try to take it, and whoever drops it
//! wakes the writer task when something is left, so order is kept (one writer at a
//! time, queue order) and no entry is stranded.
//!
//! This module never touches a socket itself: the [`DirectWrite`] sink the front-end
//! installs does.

use std::any::Any;
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;

use super::staged::Staging;
use super::{Outbox, OutboxBatch, Outgoing};
#[cfg(test)]
use crate::message::ClientId;
use crate::message::{DeliveryKind, Message};
use crate::subscribers::Snapshot;

/// Writes a claimed outbox to its socket without waiting; installed by the front-end
/// that owns the connection ([`Outbox::set_direct`]). `Any`, so that a front-end that
/// writes many claimed outboxes at once ([`PendingWakes::flush_together`]) can recognise
/// its own sinks.
pub trait DirectWrite: Any + Send + Sync {
    /// Takes batches from `claim` and writes them until the queue is empty or the socket
    /// would block; whatever was taken and not written goes back with
    /// [`WriteClaim::requeue_front`]. Must not block or await.
    fn write_now(&self, claim: &WriteClaim<'_>);
}

/// The right to take batches from an outbox and write them, held by one writer at a time
/// (the writer task, or a publisher writing directly). Dropping it wakes the writer task
/// when entries (or a close) arrived meanwhile. Not a lock: nobody waits for it.
pub struct WriteClaim<'a> {
    outbox: &'a Outbox,
    /// Set when a batch found the queue empty and released the claim in the same lock.
    released: std::cell::Cell<bool>,
}

impl WriteClaim<'_> {
    /// The claimed outbox.
    pub fn outbox(&self) -> &Outbox {
        self.outbox
    }

    /// Moves queued entries into `out` until about `max_bytes` are taken. On
    /// [`OutboxBatch::Empty`] the claim is released at once (in the same lock), so the
    /// caller must stop writing and drop it.
    pub fn take_batch(&self, out: &mut Vec<Outgoing>, max_bytes: usize) -> OutboxBatch {
        let batch = self.outbox.take_batch_inner(out, max_bytes, true);
        if batch == OutboxBatch::Empty {
            self.released.set(true);
        }
        batch
    }

    /// Puts bytes that were taken but not written back at the head of the queue, first
    /// to go out (a partial direct write); they count against the budget again. Only
    /// while the claim is held: after a batch came back empty there is nothing to put
    /// back, and the call does nothing.
    pub fn requeue_front(&self, chunks: impl DoubleEndedIterator<Item = Bytes>) {
        if self.released.get() {
            return;
        }
        let mut state = self.outbox.state.lock();
        if self.outbox.killed.load(Ordering::Relaxed) {
            return;
        }
        for chunk in chunks.rev() {
            state.queued_bytes += chunk.len();
            state.queue.push_front(Outgoing::Frame(chunk));
        }
        self.outbox
            .queued_bytes
            .store(state.queued_bytes, Ordering::Relaxed);
    }
}

impl Drop for WriteClaim<'_> {
    fn drop(&mut self) {
        if self.released.get() {
            return;
        }
        let mut state = self.outbox.state.lock();
        state.writing = false;
        let pending = !state.queue.is_empty() || state.close.is_some();
        drop(state);
        if pending {
            self.outbox.output_ready.notify_one();
        }
    }
}

impl fmt::Debug for WriteClaim<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteClaim")
            .field("client", &self.outbox.id)
            .finish()
    }
}

/// Outboxes a batch of commands made non-empty, flushed once at the end of the batch
/// ([`crate::Engine::publish_deferred`]): each gets one direct write or one wake-up,
/// however many messages the batch queued for it. Dropping the list flushes it.
///
/// Made with [`PendingWakes::staging_for`], it also stages the batch's deliveries per
/// receiver until [`PendingWakes::commit`] (see `staged.rs`): the owner must commit
/// before it runs anything but another publish. Every flush commits first.
#[derive(Default)]
pub struct PendingWakes {
    outboxes: Vec<Arc<Outbox>>,
    staging: Option<Staging>,
    /// See [`PendingWakes::receivers`].
    receivers: usize,
}

impl PendingWakes {
    /// A flush list for the connection whose outbox is `owner` that stages deliveries
    /// per receiver, so that a pipeline of publishes locks each receiver's outbox once.
    pub fn staging_for(owner: &Arc<Outbox>) -> Self {
        PendingWakes {
            outboxes: Vec::new(),
            staging: Some(Staging::new(owner)),
            receivers: 0,
        }
    }

    /// Remembers that `outbox` needs a flush.
    pub fn push(&mut self, outbox: &Arc<Outbox>) {
        self.outboxes.push(Arc::clone(outbox));
        self.receivers += 1;
    }

    /// The batch's fan-out: receivers it staged deliveries for (each once per commit),
    /// plus outboxes pushed without staging. Unlike [`PendingWakes::len`] it counts the
    /// receivers whose queues were not empty. Reset by every flush and wake-up.
    pub fn receivers(&self) -> usize {
        self.receivers
    }

    /// Stages `message` for `receivers` (or, without staging, appends it at once),
    /// remembering every outbox that then needs a flush. Returns false when this list
    /// does not stage and nothing was done: the caller appends itself.
    pub(crate) fn stage(
        &mut self,
        receivers: &Snapshot,
        kind: &DeliveryKind,
        message: &Arc<Message>,
    ) -> bool {
        let Some(staging) = self.staging.as_mut() else {
            return false;
        };
        if let Some(own) = staging.stage(receivers, kind, message) {
            self.outboxes.push(own);
            self.receivers += 1;
        }
        true
    }

    /// Appends every staged delivery to its outbox; those that then need a flush join
    /// the list. Cheap when nothing is staged.
    pub fn commit(&mut self) {
        if let Some(staging) = self.staging.as_mut() {
            if !staging.is_empty() {
                let outboxes = &mut self.outboxes;
                self.receivers += staging.commit(|outbox| outboxes.push(outbox));
            }
        }
    }

    /// How many outboxes wait for a flush (staged deliveries count once committed).
    pub fn len(&self) -> usize {
        self.outboxes.len()
    }

    /// True when nothing waits for a flush and nothing is staged.
    pub fn is_empty(&self) -> bool {
        self.outboxes.is_empty() && self.staging.as_ref().is_none_or(Staging::is_empty)
    }

    #[cfg(test)]
    pub(crate) fn outboxes_for_test(&self) -> Vec<ClientId> {
        self.outboxes.iter().map(|outbox| outbox.id()).collect()
    }

    /// Wakes the writer task of every remembered outbox, writing nothing here: under
    /// load the writer tasks run later and so write more per call. With `linger`, each
    /// writer yields to the other tasks before it writes ([`Outbox::take_linger`]).
    pub fn wake_writers(&mut self, linger: bool) {
        self.commit();
        self.receivers = 0;
        for outbox in self.outboxes.drain(..) {
            if linger {
                outbox.linger.store(true, Ordering::Relaxed);
            }
            outbox.output_ready.notify_one();
        }
    }

    /// Flushes every remembered outbox ([`Outbox::flush`]), in the order they were queued to.
    pub fn flush(&mut self) {
        self.commit();
        self.receivers = 0;
        for outbox in self.outboxes.drain(..) {
            outbox.flush();
        }
    }

    /// Remembers `outbox` ahead of the others (a reply that should go out before the
    /// deliveries of the same batch).
    pub fn push_front(&mut self, outbox: &Arc<Outbox>) {
        self.commit();
        self.outboxes.insert(0, Arc::clone(outbox));
    }

    /// Like [`PendingWakes::flush`], but every remembered outbox that may be written
    /// directly is claimed first and all of them are handed to `write` at once, in the
    /// order they were queued to, so that the front-end can send them in one system
    /// call; the others (claimed by their writer task, closing, or without a sink) get
    /// a wake-up. The claims are dropped when `write` returns, which wakes the writer
    /// task of every outbox that still has something queued.
    pub fn flush_together(&mut self, write: impl FnOnce(&[DirectClaim<'_>])) {
        self.commit();
        self.receivers = 0;
        let mut outboxes = std::mem::take(&mut self.outboxes);
        {
            let mut claims = Vec::with_capacity(outboxes.len());
            for outbox in &outboxes {
                match outbox.try_claim_direct() {
                    Some((claim, sink)) => claims.push(DirectClaim { claim, sink }),
                    None => outbox.output_ready.notify_one(),
                }
            }
            if !claims.is_empty() {
                write(&claims);
            }
        }
        outboxes.clear();
        // The allocation serves the next batch.
        self.outboxes = outboxes;
    }
}

/// An outbox claimed for a direct write, with the sink to write it through
/// ([`PendingWakes::flush_together`]).
pub struct DirectClaim<'a> {
    /// The write claim on the outbox.
    pub claim: WriteClaim<'a>,
    /// The sink the front-end installed on it.
    pub sink: Arc<dyn DirectWrite>,
}

impl fmt::Debug for DirectClaim<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirectClaim")
            .field("claim", &self.claim)
            .finish()
    }
}

impl Drop for PendingWakes {
    fn drop(&mut self) {
        self.flush();
    }
}

impl fmt::Debug for PendingWakes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingWakes")
            .field("outboxes", &self.outboxes.len())
            .field("staging", &self.staging)
            .finish()
    }
}

impl Outbox {
    /// Sends what is queued: written straight to the socket by the installed
    /// [`DirectWrite`] when no other writer holds the claim, else by waking the writer
    /// task. Never blocks.
    pub fn flush(&self) {
        if let Some((claim, sink)) = self.try_claim_direct() {
            sink.write_now(&claim);
            drop(sink);
            drop(claim);
        } else {
            self.output_ready.notify_one();
        }
    }

    /// Installs (or with `None` removes) the front-end's direct writer. The front-end
    /// removes it when its writer task ends, so the sink's socket is not kept alive.
    pub fn set_direct(&self, sink: Option<Arc<dyn DirectWrite>>) {
        self.state.lock().direct = sink;
    }

    /// Takes the write claim, if nobody holds it. The writer task holds it while it
    /// drains; direct writers only try.
    pub fn try_claim(&self) -> Option<WriteClaim<'_>> {
        let mut state = self.state.lock();
        if state.writing {
            return None;
        }
        state.writing = true;
        Some(WriteClaim {
            outbox: self,
            released: std::cell::Cell::new(false),
        })
    }

    fn try_claim_direct(&self) -> Option<(WriteClaim<'_>, Arc<dyn DirectWrite>)> {
        let mut state = self.state.lock();
        if state.writing || state.close.is_some() {
            return None;
        }
        let sink = Arc::clone(state.direct.as_ref()?);
        state.writing = true;
        Some((
            WriteClaim {
                outbox: self,
                released: std::cell::Cell::new(false),
            },
            sink,
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use parking_lot::Mutex;

    use super::*;
    use crate::outbox::tests::{delivery, drain, outbox_with};
    use crate::outbox::{Appended, ClientClass, OutputLimit};

    /// A sink that "writes" by recording, and can pretend the socket is full after
    /// `room` entries.
    #[derive(Default)]
    struct RecordingSink {
        written: Mutex<Vec<Outgoing>>,
        room: Mutex<Option<usize>>,
    }

    impl DirectWrite for RecordingSink {
        fn write_now(&self, claim: &WriteClaim<'_>) {
            // One batch takes everything; a second would find the queue empty and
            // release the claim, after which nothing may be requeued.
            let mut taken = Vec::new();
            if claim.take_batch(&mut taken, usize::MAX) != OutboxBatch::Ready {
                return;
            }
            let room = self.room.lock().unwrap_or(usize::MAX).min(taken.len());
            let rest: Vec<Bytes> = taken
                .drain(room..)
                .map(|entry| match entry {
                    Outgoing::Frame(bytes) => bytes,
                    Outgoing::Delivery(delivery) => delivery.message.payload.clone(),
                    Outgoing::Run(run) => panic!("these tests queue no runs: {run:?}"),
                })
                .collect();
            self.written.lock().extend(taken);
            claim.requeue_front(rest.into_iter());
        }
    }

    fn with_sink() -> (Arc<Outbox>, Arc<RecordingSink>) {
        let outbox = Arc::new(outbox_with(ClientClass::Normal, OutputLimit::default()));
        let sink = Arc::new(RecordingSink::default());
        outbox.set_direct(Some(Arc::clone(&sink) as Arc<dyn DirectWrite>));
        (outbox, sink)
    }

    #[test]
    fn deferred_appends_ask_for_one_flush_per_empty_queue() {
        let outbox = outbox_with(ClientClass::Normal, OutputLimit::default());
        assert_eq!(
            outbox.deliver_deferred(delivery(b"1")),
            Appended::NeedsFlush
        );
        assert_eq!(outbox.deliver_deferred(delivery(b"2")), Appended::Queued);
        outbox.hold();
        assert_eq!(outbox.deliver_deferred(delivery(b"3")), Appended::Queued);
        outbox.release_held(false);
        assert_eq!(drain(&outbox).len(), 3);
        outbox.close_after_flush();
        assert_eq!(outbox.deliver_deferred(delivery(b"4")), Appended::Refused);
    }

    #[test]
    fn an_idle_outbox_is_flushed_through_its_sink() {
        let (outbox, sink) = with_sink();
        outbox.deliver_deferred(delivery(b"1"));
        outbox.push_frame_deferred(Bytes::from_static(b"+OK\r\n"));
        outbox.flush();
        assert_eq!(sink.written.lock().len(), 2);
        assert_eq!(outbox.queued_bytes(), 0);
        // Nothing left: the writer task was not woken.
        assert!(outbox.try_claim().is_some());
    }

    #[tokio::test]
    async fn a_claimed_outbox_wakes_its_writer_instead() {
        let (outbox, sink) = with_sink();
        let claim = outbox.try_claim().expect("idle outbox");
        assert!(outbox.try_claim().is_none(), "one claim at a time");
        outbox.deliver_deferred(delivery(b"1"));
        outbox.flush();
        assert!(
            sink.written.lock().is_empty(),
            "wrote past the claim holder"
        );
        let woken = tokio::time::timeout(Duration::from_secs(5), outbox.output_ready());
        woken.await.expect("writer not woken");
        drop(claim);
        assert_eq!(drain(&outbox).len(), 1);
    }

    #[tokio::test]
    async fn what_the_socket_does_not_take_goes_back_first_and_wakes_the_writer() {
        let (outbox, sink) = with_sink();
        *sink.room.lock() = Some(1);
        outbox.deliver_deferred(delivery(b"1"));
        outbox.deliver_deferred(delivery(b"2"));
        outbox.deliver_deferred(delivery(b"3"));
        outbox.flush();
        assert_eq!(sink.written.lock().len(), 1);
        // Appended after the partial write: must follow the requeued rest.
        outbox.deliver(delivery(b"4"));
        let woken = tokio::time::timeout(Duration::from_secs(5), outbox.output_ready());
        woken.await.expect("writer not woken for the rest");
        let rest: Vec<Bytes> = drain(&outbox)
            .into_iter()
            .map(|entry| match entry {
                Outgoing::Frame(bytes) => bytes,
                Outgoing::Delivery(delivery) => delivery.message.payload.clone(),
                Outgoing::Run(run) => panic!("these tests queue no runs: {run:?}"),
            })
            .collect();
        assert_eq!(rest, vec![b"2".as_slice(), b"3", b"4"]);
    }

    #[tokio::test]
    async fn a_lingering_wake_up_is_seen_once_by_the_writer() {
        let (lingering, _) = with_sink();
        let (prompt, _) = with_sink();
        for (outbox, linger) in [(&lingering, true), (&prompt, false)] {
            let mut pending = PendingWakes::default();
            outbox.deliver_deferred(delivery(b"1"));
            pending.push(outbox);
            pending.wake_writers(linger);
            assert!(pending.is_empty());
            let woken = tokio::time::timeout(Duration::from_secs(5), outbox.output_ready());
            woken.await.expect("writer not woken");
            assert_eq!(outbox.take_linger(), linger);
            assert!(!outbox.take_linger(), "a linger is for one wake-up only");
        }
    }

    #[tokio::test]
    async fn flush_together_claims_the_idle_outboxes_in_order_and_wakes_the_rest() {
        let (first, first_sink) = with_sink();
        let (busy, busy_sink) = with_sink();
        let (last, last_sink) = with_sink();
        let mut pending = PendingWakes::default();
        for outbox in [&first, &busy, &last] {
            assert_eq!(
                outbox.deliver_deferred(delivery(b"1")),
                Appended::NeedsFlush
            );
            pending.push(outbox);
        }
        let busy_claim = busy.try_claim().expect("idle outbox");
        let mut seen = Vec::new();
        pending.flush_together(|claims| {
            for claimed in claims {
                seen.push(claimed.claim.outbox().id());
                // Still claimed while `write` runs: nobody else may write.
                assert!(claimed.claim.outbox().try_claim().is_none());
                claimed.sink.write_now(&claimed.claim);
            }
        });
        assert_eq!(seen, vec![first.id(), last.id()]);
        assert!(pending.is_empty());
        assert_eq!(first_sink.written.lock().len(), 1);
        assert_eq!(last_sink.written.lock().len(), 1);
        assert!(busy_sink.written.lock().is_empty());
        // Released after `write`, and the claimed one's writer was woken.
        assert!(first.try_claim().is_some() && last.try_claim().is_some());
        let woken = tokio::time::timeout(Duration::from_secs(5), busy.output_ready());
        woken.await.expect("busy writer not woken");
        drop(busy_claim);
        assert_eq!(drain(&busy).len(), 1);
    }

    #[test]
    fn receivers_count_the_fan_out_even_where_no_flush_is_needed() {
        let (busy, _) = with_sink();
        let (idle, _) = with_sink();
        busy.deliver_deferred(delivery(b"earlier"));
        let (publisher, _) = with_sink();
        let mut pending = PendingWakes::staging_for(&publisher);
        let receivers: Snapshot = Arc::new(vec![Arc::clone(&busy), Arc::clone(&idle)]);
        let message = Arc::new(crate::message::Message::new(
            Bytes::from_static(b"ch"),
            Bytes::from_static(b"x"),
        ));
        for _ in 0..3 {
            pending.stage(&receivers, &DeliveryKind::Channel, &message);
        }
        pending.commit();
        assert_eq!(pending.len(), 1, "only the idle one needs a flush");
        assert_eq!(pending.receivers(), 2);
        pending.wake_writers(false);
        assert_eq!(pending.receivers(), 0);
        let deliveries = |outbox: &Outbox| -> usize {
            drain(outbox)
                .into_iter()
                .flat_map(Outgoing::deliveries)
                .count()
        };
        assert_eq!(deliveries(&busy), 4);
        assert_eq!(deliveries(&idle), 3);
    }

    #[test]
    fn a_closing_outbox_is_left_to_its_writer() {
        let (outbox, sink) = with_sink();
        outbox.push_frame_deferred(Bytes::from_static(b"+OK\r\n"));
        outbox.close_after_flush();
        outbox.flush();
        assert!(sink.written.lock().is_empty());
        assert_eq!(drain(&outbox).len(), 1);
    }
}
