//! Each subscriber's outgoing queue, bounded in bytes: Redis's output-buffer limits.
//!
//! An [`Outbox`] holds everything a front-end still has to send to one client: encoded
//! replies ([`Outgoing::Frame`]) and message deliveries ([`Outgoing::Delivery`], shared
//! with every other receiver). Publishers append without waiting; the front-end's writer
//! task drains batches. Every append is checked against the client's class limit:
//! over the hard limit the client is killed at once; over the soft limit for longer than
//! its window it is killed by the append or by the periodic [`Outbox::enforce_limits`].
//! A killed outbox drops its queue and refuses further appends, so a client that stops
//! reading can never grow server memory past its limit (plus one writer batch).
//!
//! Ordering: a connection executing a command calls [`Outbox::hold`], so deliveries that
//! its own command causes (PUBLISH to itself) queue behind the command's reply, which is
//! appended before [`Outbox::release_held`] (newest Redis order).
//!
//! Locking: one `parking_lot::Mutex` per outbox, held only to push or pop queue entries
//! (never across an `.await` or I/O); wake-ups go through `tokio::sync::Notify`, which
//! keeps a permit when nobody waits, so no wake-up is lost.
//!
//! # Layout
//! - this file: the queue itself ([`Outbox`]): appends, holding behind a reply, batches
//!   for the writer, closing and killing.
//! - `limits.rs`: the client classes and their hard/soft limits, checked on every append
//!   and by [`Outbox::enforce_limits`].
//! - `claim.rs`: direct writes, the [`WriteClaim`] a writer holds, the front-end's
//!   [`DirectWrite`] sink and the per-batch [`PendingWakes`].
//! - `staged.rs`: a batch's deliveries staged per receiver ([`PendingWakes::staging_for`])
//!   and appended with one lock each, as shared [`DeliveryRun`]s where they can be.
//! - `tests.rs`: the queue's unit tests and the helpers the others share.
//!
//! This module never encodes, writes to sockets or logs: the front-end that owns the
//! connection reports why it closed ([`Outbox::close_reason`]).

mod claim;
mod limits;
mod staged;

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;

pub use claim::{DirectClaim, DirectWrite, PendingWakes, WriteClaim};
pub use limits::{
    ClientClass, CloseReason, OutputLimit, OutputLimits, PUBSUB_HARD_LIMIT_BYTES,
    PUBSUB_SOFT_LIMIT_BYTES, PUBSUB_SOFT_LIMIT_SECONDS,
};

use crate::message::{ClientId, Delivery, DeliveryRun};

/// Something queued for a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outgoing {
    /// Bytes already encoded by the front-end (command replies, confirmations).
    Frame(Bytes),
    /// A published message, encoded by the front-end's writer.
    Delivery(Delivery),
    /// Several published messages, delivered in order, shared with other receivers.
    Run(DeliveryRun),
}

impl Outgoing {
    /// Bytes this entry counts against the output budget.
    pub fn budget_bytes(&self) -> usize {
        match self {
            Outgoing::Frame(bytes) => bytes.len(),
            Outgoing::Delivery(delivery) => delivery.budget_bytes(),
            Outgoing::Run(run) => run.budget_bytes(),
        }
    }

    /// The deliveries this entry carries (none for a frame), one at a time.
    pub fn deliveries(self) -> impl Iterator<Item = Delivery> {
        let (single, run) = match self {
            Outgoing::Frame(_) => (None, None),
            Outgoing::Delivery(delivery) => (Some(delivery), None),
            Outgoing::Run(run) => (None, Some(run)),
        };
        let run_deliveries = run.into_iter().flat_map(|run| {
            let kind = run.kind().clone();
            let messages = run.messages().to_vec();
            messages.into_iter().map(move |message| Delivery {
                kind: kind.clone(),
                message,
            })
        });
        single.into_iter().chain(run_deliveries)
    }
}

/// Queue slots kept after a burst drains; more are released.
const RETAINED_QUEUE_CAPACITY: usize = 1024;

/// What [`Outbox::take_batch`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum OutboxBatch {
    /// Entries were moved into the caller's vector.
    Ready,
    /// Nothing queued; wait with [`Outbox::output_ready`].
    Empty,
    /// Closed after flush and nothing is left: the writer should shut down cleanly.
    Finished,
    /// Killed: drop the connection without sending anything more.
    Killed,
}

/// What a deferred append did ([`Outbox::deliver_deferred`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Appended {
    /// Refused: the outbox is closed.
    Refused,
    /// Queued behind entries the writer already knows about (or held behind a reply).
    Queued,
    /// Queued into an empty queue: call [`Outbox::flush`] before waiting on anything.
    NeedsFlush,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Outgoing>,
    held: Vec<Outgoing>,
    holding: bool,
    /// Bytes in `queue` and `held`.
    queued_bytes: usize,
    soft_exceeded_since: Option<Instant>,
    close: Option<CloseReason>,
    /// A [`WriteClaim`] exists.
    writing: bool,
    /// The front-end's direct writer, if it installed one.
    direct: Option<Arc<dyn DirectWrite>>,
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("State")
            .field("queue", &self.queue)
            .field("held", &self.held)
            .field("holding", &self.holding)
            .field("queued_bytes", &self.queued_bytes)
            .field("soft_exceeded_since", &self.soft_exceeded_since)
            .field("close", &self.close)
            .field("writing", &self.writing)
            .field("direct", &self.direct.is_some())
            .finish()
    }
}

/// A client's bounded outgoing queue; see the module docs.
#[derive(Debug)]
pub struct Outbox {
    id: ClientId,
    limits: Arc<OutputLimits>,
    class: AtomicU8,
    state: Mutex<State>,
    /// Mirrors `state.held.is_empty()` so the hot path can skip the lock.
    has_held: AtomicBool,
    /// Mirrors `state.queued_bytes` for lock-free reads (CLIENT LIST, backpressure).
    queued_bytes: AtomicUsize,
    output_ready: Notify,
    space_freed: Notify,
    killed: AtomicBool,
    killed_notify: Notify,
    /// Set by [`PendingWakes::wake_writers`] when the writer should let the I/O driver
    /// run before it writes ([`Outbox::take_linger`]).
    linger: AtomicBool,
}

impl Outbox {
    /// An empty outbox for client `id`, limited by `limits`.
    pub fn new(id: ClientId, limits: Arc<OutputLimits>) -> Self {
        Outbox {
            id,
            limits,
            class: AtomicU8::new(ClientClass::Normal as u8),
            state: Mutex::new(State::default()),
            has_held: AtomicBool::new(false),
            queued_bytes: AtomicUsize::new(0),
            output_ready: Notify::new(),
            space_freed: Notify::new(),
            killed: AtomicBool::new(false),
            killed_notify: Notify::new(),
            linger: AtomicBool::new(false),
        }
    }

    /// The client this outbox belongs to.
    pub fn id(&self) -> ClientId {
        self.id
    }

    /// The class whose limit applies now.
    pub fn class(&self) -> ClientClass {
        match self.class.load(Ordering::Relaxed) {
            0 => ClientClass::Normal,
            1 => ClientClass::Pubsub,
            _ => ClientClass::Replica,
        }
    }

    /// Switches the limit class (the front-end does so when the client's subscription
    /// count goes from zero to one and back).
    pub fn set_class(&self, class: ClientClass) {
        self.class.store(class as u8, Ordering::Relaxed);
    }

    /// Bytes queued and not yet taken by the writer.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes.load(Ordering::Relaxed)
    }

    /// Appends encoded bytes (a reply). Empty frames are ignored.
    pub fn push_frame(&self, frame: Bytes) {
        if self.push_frame_deferred(frame) == Appended::NeedsFlush {
            self.output_ready.notify_one();
        }
    }

    /// Appends a delivery. Returns false when the outbox is closed (the client is gone
    /// or going); the message is then not queued.
    pub fn deliver(&self, delivery: Delivery) -> bool {
        match self.append(Outgoing::Delivery(delivery), true) {
            Appended::Refused => false,
            Appended::Queued => true,
            Appended::NeedsFlush => {
                self.output_ready.notify_one();
                true
            }
        }
    }

    /// Appends a delivery like [`Outbox::deliver`] but does not wake the writer: on
    /// [`Appended::NeedsFlush`] the caller must call [`Outbox::flush`] (or push the
    /// outbox to a [`PendingWakes`]) once its batch is done.
    pub fn deliver_deferred(&self, delivery: Delivery) -> Appended {
        self.append(Outgoing::Delivery(delivery), true)
    }

    /// Appends encoded bytes like [`Outbox::push_frame`] but does not wake the writer;
    /// see [`Outbox::deliver_deferred`].
    pub fn push_frame_deferred(&self, frame: Bytes) -> Appended {
        if frame.is_empty() {
            return Appended::Queued;
        }
        self.append(Outgoing::Frame(frame), false)
    }

    fn append(&self, entry: Outgoing, may_hold: bool) -> Appended {
        let bytes = entry.budget_bytes();
        self.append_with_bytes(entry, bytes, may_hold)
    }

    /// Appends a delivery entry whose budget the caller already knows (`bytes`), like
    /// [`Outbox::deliver_deferred`].
    pub(super) fn append_sized(&self, entry: Outgoing, bytes: usize) -> Appended {
        self.append_with_bytes(entry, bytes, true)
    }

    fn append_with_bytes(&self, entry: Outgoing, bytes: usize, may_hold: bool) -> Appended {
        let mut state = self.state.lock();
        if state.close.is_some() {
            return Appended::Refused;
        }
        state.queued_bytes += bytes;
        // Only the append that makes the queue non-empty wakes the writer: the writer
        // waits only after it found the queue empty, and a held entry is announced by
        // `release_held`. Skipping the rest keeps the `Notify` cache line, shared with
        // the writer's core, out of every other append.
        let mut wake = false;
        if may_hold && state.holding {
            state.held.push(entry);
            self.has_held.store(true, Ordering::Relaxed);
        } else {
            wake = state.queue.is_empty();
            state.queue.push_back(entry);
        }
        self.finish_append(state, wake)
    }

    /// Publishes the new byte count, checks the limits and unlocks; `wake` when the
    /// append made the queue non-empty.
    fn finish_append(&self, mut state: parking_lot::MutexGuard<'_, State>, wake: bool) -> Appended {
        self.queued_bytes
            .store(state.queued_bytes, Ordering::Relaxed);
        let verdict = self.check_limits(&mut state, Instant::now);
        drop(state);
        match verdict {
            Some(reason) => {
                self.kill_now(reason);
                Appended::Queued
            }
            None if wake => Appended::NeedsFlush,
            None => Appended::Queued,
        }
    }

    /// Appends a staged run of deliveries (emptying `entries`, which counted `bytes`)
    /// under one lock, checked against the limits once; like
    /// [`Outbox::deliver_deferred`] otherwise, held when the outbox holds.
    pub(super) fn append_run(&self, entries: &mut Vec<Outgoing>, bytes: usize) -> Appended {
        if entries.is_empty() {
            return Appended::Queued;
        }
        let mut state = self.state.lock();
        if state.close.is_some() {
            entries.clear();
            return Appended::Refused;
        }
        state.queued_bytes += bytes;
        let mut wake = false;
        if state.holding {
            state.held.append(entries);
            self.has_held.store(true, Ordering::Relaxed);
        } else {
            wake = state.queue.is_empty();
            state.queue.extend(entries.drain(..));
        }
        self.finish_append(state, wake)
    }

    /// Starts holding deliveries back (while the owning connection runs commands).
    pub fn hold(&self) {
        self.state.lock().holding = true;
    }

    /// True when deliveries are waiting behind the current command's reply.
    pub fn has_held(&self) -> bool {
        self.has_held.load(Ordering::Relaxed)
    }

    /// Moves held deliveries behind everything queued so far; with `keep_holding`,
    /// later deliveries are held again (the connection runs more commands).
    pub fn release_held(&self, keep_holding: bool) {
        let mut state = self.state.lock();
        state.holding = keep_holding;
        if state.held.is_empty() {
            return;
        }
        let held = std::mem::take(&mut state.held);
        state.queue.extend(held);
        self.has_held.store(false, Ordering::Relaxed);
        drop(state);
        self.output_ready.notify_one();
    }

    /// Moves queued entries into `out` until about `max_bytes` are taken.
    pub fn take_batch(&self, out: &mut Vec<Outgoing>, max_bytes: usize) -> OutboxBatch {
        self.take_batch_inner(out, max_bytes, false)
    }

    fn take_batch_inner(
        &self,
        out: &mut Vec<Outgoing>,
        max_bytes: usize,
        release_if_empty: bool,
    ) -> OutboxBatch {
        let mut state = self.state.lock();
        if self.killed.load(Ordering::Relaxed) {
            return OutboxBatch::Killed;
        }
        if state.queue.is_empty() {
            return match state.close {
                Some(_) => OutboxBatch::Finished,
                None => {
                    if release_if_empty {
                        state.writing = false;
                    }
                    OutboxBatch::Empty
                }
            };
        }
        if state.held.is_empty() && state.queued_bytes <= max_bytes {
            // Everything fits (the usual case): no per-entry accounting. Popped rather
            // than drained: most batches are a few entries, where a drain's set-up and
            // drop cost more than the moves.
            out.reserve(state.queue.len());
            while let Some(entry) = state.queue.pop_front() {
                out.push(entry);
            }
            state.queued_bytes = 0;
            return self.taken(state);
        }
        let mut taken = 0;
        while taken < max_bytes {
            let Some(entry) = state.queue.pop_front() else {
                break;
            };
            taken += entry.budget_bytes();
            out.push(entry);
        }
        state.queued_bytes = state.queued_bytes.saturating_sub(taken);
        self.taken(state)
    }

    /// The end of a batch that took entries: publishes the byte count and tells the
    /// reader waiting for space.
    fn taken(&self, mut state: parking_lot::MutexGuard<'_, State>) -> OutboxBatch {
        if state.queue.is_empty() && state.queue.capacity() > RETAINED_QUEUE_CAPACITY {
            // A burst grew the ring; give the memory back once the client caught up.
            state.queue.shrink_to(RETAINED_QUEUE_CAPACITY);
        }
        self.queued_bytes
            .store(state.queued_bytes, Ordering::Relaxed);
        drop(state);
        self.space_freed.notify_waiters();
        OutboxBatch::Ready
    }

    /// Resolves when something was queued since the last batch (or the outbox closed).
    pub async fn output_ready(&self) {
        self.output_ready.notified().await;
    }

    /// True (once) when the last wake-up asked the writer to linger: to yield to the
    /// other tasks before it takes its batch, so that what the publishers send
    /// meanwhile joins the same write (see [`PendingWakes::wake_writers`]).
    pub fn take_linger(&self) -> bool {
        // A load first: the common case writes nothing to a line the publisher shares.
        self.linger.load(Ordering::Relaxed) && self.linger.swap(false, Ordering::Relaxed)
    }

    /// Resolves once queued bytes are at most `threshold` (or the outbox is killed):
    /// the reader's backpressure against clients that send but do not read.
    pub async fn space_below(&self, threshold: usize) {
        loop {
            let freed = self.space_freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if self.queued_bytes() <= threshold || self.is_killed() {
                return;
            }
            freed.await;
        }
    }

    /// Closes once everything queued so far has been written. Later appends are refused.
    pub fn close_after_flush(&self) {
        let mut state = self.state.lock();
        if state.close.is_none() {
            state.close = Some(CloseReason::AfterFlush);
        }
        drop(state);
        self.output_ready.notify_one();
    }

    /// Closes at once, dropping whatever is queued.
    pub fn kill(&self, reason: CloseReason) {
        self.kill_now(reason);
    }

    /// True once killed.
    pub fn is_killed(&self) -> bool {
        self.killed.load(Ordering::Acquire)
    }

    /// Resolves once the outbox is killed.
    pub async fn killed(&self) {
        loop {
            let notified = self.killed_notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_killed() {
                return;
            }
            notified.await;
        }
    }

    /// Why the outbox closed, if it did.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.state.lock().close.clone()
    }

    fn kill_now(&self, reason: CloseReason) {
        let mut state = self.state.lock();
        if self.killed.load(Ordering::Relaxed) {
            return;
        }
        state.close = Some(reason);
        state.queue = VecDeque::new();
        state.held = Vec::new();
        state.queued_bytes = 0;
        self.queued_bytes.store(0, Ordering::Relaxed);
        self.has_held.store(false, Ordering::Relaxed);
        self.killed.store(true, Ordering::Release);
        drop(state);
        self.killed_notify.notify_waiters();
        self.output_ready.notify_one();
        self.space_freed.notify_waiters();
    }
}

#[cfg(test)]
pub(crate) mod tests;
