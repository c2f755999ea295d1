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
//! Direct writes: a front-end may install a [`DirectWrite`] sink ([`Outbox::set_direct`]).
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
//! This module never encodes, writes to sockets or logs: the front-end that owns the
//! connection reports why it closed ([`Outbox::close_reason`]).

use std::any::Any;
use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::message::{ClientId, Delivery};

/// Something queued for a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outgoing {
    /// Bytes already encoded by the front-end (command replies, confirmations).
    Frame(Bytes),
    /// A published message, encoded by the front-end's writer.
    Delivery(Delivery),
}

impl Outgoing {
    /// Bytes this entry counts against the output budget.
    pub fn budget_bytes(&self) -> usize {
        match self {
            Outgoing::Frame(bytes) => bytes.len(),
            Outgoing::Delivery(delivery) => delivery.budget_bytes(),
        }
    }
}

/// Queue slots kept after a burst drains; more are released.
const RETAINED_QUEUE_CAPACITY: usize = 1024;

/// Which output limit applies, as Redis's `client-output-buffer-limit` classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientClass {
    /// A client with no subscriptions.
    Normal = 0,
    /// A client with at least one subscription of any kind.
    Pubsub = 1,
}

/// One class's limit. Zero disables the corresponding check, as in Redis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct OutputLimit {
    /// Queued bytes above which the client is disconnected at once.
    pub hard_bytes: u64,
    /// Queued bytes above which, for longer than `soft_seconds`, the client is disconnected.
    pub soft_bytes: u64,
    /// How long the soft limit may be exceeded, in seconds.
    pub soft_seconds: u64,
}

/// Redis default for the pubsub class: 32 MB hard limit.
pub const PUBSUB_HARD_LIMIT_BYTES: u64 = 32 * 1024 * 1024;
/// Redis default for the pubsub class: 8 MB soft limit ...
pub const PUBSUB_SOFT_LIMIT_BYTES: u64 = 8 * 1024 * 1024;
/// ... held for 60 seconds.
pub const PUBSUB_SOFT_LIMIT_SECONDS: u64 = 60;

/// The limits of every class, shared by all outboxes and changeable at run time
/// (CONFIG SET client-output-buffer-limit). Atomics, because every append reads them.
#[derive(Debug)]
pub struct OutputLimits {
    values: [[AtomicU64; 3]; 2],
}

impl Default for OutputLimits {
    /// Redis defaults: `normal 0 0 0 pubsub 32mb 8mb 60`.
    fn default() -> Self {
        let limits = OutputLimits {
            values: Default::default(),
        };
        limits.set(
            ClientClass::Pubsub,
            OutputLimit {
                hard_bytes: PUBSUB_HARD_LIMIT_BYTES,
                soft_bytes: PUBSUB_SOFT_LIMIT_BYTES,
                soft_seconds: PUBSUB_SOFT_LIMIT_SECONDS,
            },
        );
        limits
    }
}

impl OutputLimits {
    /// The current limit of `class`.
    pub fn get(&self, class: ClientClass) -> OutputLimit {
        let [hard, soft, seconds] = &self.values[class as usize];
        OutputLimit {
            hard_bytes: hard.load(Ordering::Relaxed),
            soft_bytes: soft.load(Ordering::Relaxed),
            soft_seconds: seconds.load(Ordering::Relaxed),
        }
    }

    /// Replaces the limit of `class`; applies to the next append of every client.
    pub fn set(&self, class: ClientClass, limit: OutputLimit) {
        let [hard, soft, seconds] = &self.values[class as usize];
        hard.store(limit.hard_bytes, Ordering::Relaxed);
        soft.store(limit.soft_bytes, Ordering::Relaxed);
        seconds.store(limit.soft_seconds, Ordering::Relaxed);
    }
}

/// Why an outbox was closed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// Queued output passed the class's hard limit.
    HardLimit {
        /// Bytes queued when the limit was hit.
        queued_bytes: usize,
        /// The limit in force.
        limit: OutputLimit,
        /// The class whose limit applied.
        class: ClientClass,
    },
    /// Queued output stayed above the soft limit for longer than allowed.
    SoftLimit {
        /// Bytes queued when the limit was enforced.
        queued_bytes: usize,
        /// The limit in force.
        limit: OutputLimit,
        /// The class whose limit applied.
        class: ClientClass,
    },
    /// Killed by an operator (CLIENT KILL) or by server shutdown.
    Killed,
    /// Closed in an orderly way once the queue is flushed (QUIT, protocol error).
    AfterFlush,
}

impl CloseReason {
    /// True for the slow-consumer reasons (output limits).
    pub fn is_output_limit(&self) -> bool {
        matches!(
            self,
            CloseReason::HardLimit { .. } | CloseReason::SoftLimit { .. }
        )
    }
}

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
#[derive(Default)]
pub struct PendingWakes {
    outboxes: Vec<Arc<Outbox>>,
}

impl PendingWakes {
    /// Remembers that `outbox` needs a flush.
    pub fn push(&mut self, outbox: &Arc<Outbox>) {
        self.outboxes.push(Arc::clone(outbox));
    }

    /// How many outboxes wait for a flush.
    pub fn len(&self) -> usize {
        self.outboxes.len()
    }

    /// True when nothing waits for a flush.
    pub fn is_empty(&self) -> bool {
        self.outboxes.is_empty()
    }

    #[cfg(test)]
    pub(crate) fn outboxes_for_test(&self) -> Vec<ClientId> {
        self.outboxes.iter().map(|outbox| outbox.id()).collect()
    }

    /// Wakes the writer task of every remembered outbox, writing nothing here: under
    /// load the writer tasks run later and so write more per call.
    pub fn wake_writers(&mut self) {
        for outbox in self.outboxes.drain(..) {
            outbox.output_ready.notify_one();
        }
    }

    /// Flushes every remembered outbox ([`Outbox::flush`]), in the order they were queued to.
    pub fn flush(&mut self) {
        for outbox in self.outboxes.drain(..) {
            outbox.flush();
        }
    }

    /// Remembers `outbox` ahead of the others (a reply that should go out before the
    /// deliveries of the same batch).
    pub fn push_front(&mut self, outbox: &Arc<Outbox>) {
        self.outboxes.insert(0, Arc::clone(outbox));
    }

    /// Like [`PendingWakes::flush`], but every remembered outbox that may be written
    /// directly is claimed first and all of them are handed to `write` at once, in the
    /// order they were queued to, so that the front-end can send them in one system
    /// call; the others (claimed by their writer task, closing, or without a sink) get
    /// a wake-up. The claims are dropped when `write` returns, which wakes the writer
    /// task of every outbox that still has something queued.
    pub fn flush_together(&mut self, write: impl FnOnce(&[DirectClaim<'_>])) {
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
            .finish()
    }
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
            _ => ClientClass::Pubsub,
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

    fn append(&self, entry: Outgoing, may_hold: bool) -> Appended {
        let bytes = entry.budget_bytes();
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
        let mut taken = 0;
        while taken < max_bytes {
            let Some(entry) = state.queue.pop_front() else {
                break;
            };
            taken += entry.budget_bytes();
            out.push(entry);
        }
        state.queued_bytes = state.queued_bytes.saturating_sub(taken);
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

    /// Applies the soft limit's time window at `now`; the server calls this
    /// periodically so that a client nobody publishes to any more is still caught.
    /// Returns the reason when this call killed the client.
    pub fn enforce_limits(&self, now: Instant) -> Option<CloseReason> {
        let mut state = self.state.lock();
        if state.close.is_some() {
            return None;
        }
        let verdict = self.check_limits(&mut state, || now);
        drop(state);
        if let Some(reason) = &verdict {
            self.kill_now(reason.clone());
        }
        verdict
    }

    /// `now` is called only when the soft limit is exceeded: reading the clock on every
    /// append would cost more than the append itself.
    fn check_limits(
        &self,
        state: &mut State,
        now: impl FnOnce() -> Instant,
    ) -> Option<CloseReason> {
        let class = self.class();
        let limit = self.limits.get(class);
        let queued = state.queued_bytes as u64;
        if limit.hard_bytes > 0 && queued >= limit.hard_bytes {
            return Some(CloseReason::HardLimit {
                queued_bytes: state.queued_bytes,
                limit,
                class,
            });
        }
        if limit.soft_bytes > 0 && queued >= limit.soft_bytes {
            let now = now();
            let since = *state.soft_exceeded_since.get_or_insert(now);
            if now.saturating_duration_since(since) > Duration::from_secs(limit.soft_seconds) {
                return Some(CloseReason::SoftLimit {
                    queued_bytes: state.queued_bytes,
                    limit,
                    class,
                });
            }
        } else {
            state.soft_exceeded_since = None;
        }
        None
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
mod tests {
    use super::*;
    use crate::message::{DeliveryKind, Message, DELIVERY_FRAMING_BYTES};

    fn delivery(payload: &'static [u8]) -> Delivery {
        Delivery {
            kind: DeliveryKind::Channel,
            message: Arc::new(Message::new(
                Bytes::from_static(b"ch"),
                Bytes::from_static(payload),
            )),
        }
    }

    fn outbox_with(class: ClientClass, limit: OutputLimit) -> Outbox {
        let limits = Arc::new(OutputLimits::default());
        limits.set(class, limit);
        let outbox = Outbox::new(ClientId(1), limits);
        outbox.set_class(class);
        outbox
    }

    fn drain(outbox: &Outbox) -> Vec<Outgoing> {
        let mut out = Vec::new();
        while outbox.take_batch(&mut out, usize::MAX) == OutboxBatch::Ready {}
        out
    }

    #[test]
    fn defaults_are_redis_defaults() {
        let limits = OutputLimits::default();
        assert_eq!(limits.get(ClientClass::Normal), OutputLimit::default());
        let pubsub = limits.get(ClientClass::Pubsub);
        assert_eq!(pubsub.hard_bytes, 32 * 1024 * 1024);
        assert_eq!(pubsub.soft_bytes, 8 * 1024 * 1024);
        assert_eq!(pubsub.soft_seconds, 60);
    }

    #[test]
    fn queue_keeps_order_and_counts_bytes() {
        let outbox = outbox_with(ClientClass::Normal, OutputLimit::default());
        outbox.push_frame(Bytes::from_static(b"+OK\r\n"));
        assert!(outbox.deliver(delivery(b"x")));
        assert_eq!(outbox.queued_bytes(), 5 + 3 + DELIVERY_FRAMING_BYTES);
        let taken = drain(&outbox);
        assert_eq!(taken.len(), 2);
        assert!(matches!(taken[0], Outgoing::Frame(_)));
        assert_eq!(outbox.queued_bytes(), 0);
    }

    #[tokio::test]
    async fn the_writer_is_woken_for_every_batch_it_has_not_seen() {
        let outbox = Arc::new(outbox_with(ClientClass::Normal, OutputLimit::default()));
        let wait = |outbox: &Arc<Outbox>| {
            let outbox = Arc::clone(outbox);
            tokio::spawn(async move { outbox.output_ready().await })
        };
        let bounded = |task| tokio::time::timeout(Duration::from_secs(5), task);
        outbox.deliver(delivery(b"1"));
        outbox.deliver(delivery(b"2"));
        bounded(wait(&outbox)).await.expect("no wake-up").unwrap();
        assert_eq!(drain(&outbox).len(), 2);
        // Drained: the writer waits, and the next append must wake it.
        let waiter = wait(&outbox);
        tokio::task::yield_now().await;
        outbox.deliver(delivery(b"3"));
        bounded(waiter).await.expect("no wake-up").unwrap();
        assert_eq!(drain(&outbox).len(), 1);
    }

    #[test]
    fn a_drained_burst_gives_its_memory_back() {
        let outbox = outbox_with(ClientClass::Normal, OutputLimit::default());
        for _ in 0..100_000 {
            outbox.deliver(delivery(b"x"));
        }
        drain(&outbox);
        assert!(outbox.state.lock().queue.capacity() <= RETAINED_QUEUE_CAPACITY);
    }

    #[test]
    fn held_deliveries_follow_the_reply() {
        let outbox = outbox_with(ClientClass::Normal, OutputLimit::default());
        outbox.hold();
        outbox.deliver(delivery(b"pushed"));
        assert!(outbox.has_held());
        outbox.push_frame(Bytes::from_static(b":1\r\n"));
        outbox.release_held(false);
        assert!(!outbox.has_held());
        let taken = drain(&outbox);
        assert_eq!(taken[0], Outgoing::Frame(Bytes::from_static(b":1\r\n")));
        assert!(matches!(taken[1], Outgoing::Delivery(_)));
    }

    #[test]
    fn hard_limit_kills_and_frees_memory() {
        let limit = OutputLimit {
            hard_bytes: 200,
            soft_bytes: 0,
            soft_seconds: 0,
        };
        let outbox = outbox_with(ClientClass::Pubsub, limit);
        let mut accepted = 0;
        while outbox.deliver(delivery(b"0123456789")) {
            accepted += 1;
            assert!(accepted < 100, "the hard limit never fired");
        }
        assert!(outbox.is_killed());
        assert_eq!(outbox.queued_bytes(), 0);
        assert!(matches!(
            outbox.close_reason(),
            Some(CloseReason::HardLimit { .. })
        ));
        let mut out = Vec::new();
        assert_eq!(outbox.take_batch(&mut out, usize::MAX), OutboxBatch::Killed);
    }

    #[test]
    fn normal_class_is_unlimited_by_default() {
        let outbox = Outbox::new(ClientId(7), Arc::new(OutputLimits::default()));
        for _ in 0..10_000 {
            assert!(outbox.deliver(delivery(b"0123456789")));
        }
        assert!(!outbox.is_killed());
    }

    #[test]
    fn soft_limit_needs_its_time_window() {
        let limit = OutputLimit {
            hard_bytes: 0,
            soft_bytes: 100,
            soft_seconds: 60,
        };
        let outbox = outbox_with(ClientClass::Pubsub, limit);
        for _ in 0..5 {
            outbox.deliver(delivery(b"0123456789"));
        }
        let now = Instant::now();
        assert_eq!(outbox.enforce_limits(now), None);
        assert_eq!(outbox.enforce_limits(now + Duration::from_secs(30)), None);
        let reason = outbox.enforce_limits(now + Duration::from_secs(61));
        assert!(matches!(reason, Some(CloseReason::SoftLimit { .. })));
        assert!(outbox.is_killed());
    }

    #[test]
    fn soft_window_resets_when_the_client_catches_up() {
        // Appends check limits against the real clock; to drive the window with a fake
        // clock only, the soft limit is switched off while appending.
        let soft = OutputLimit {
            hard_bytes: 0,
            soft_bytes: 100,
            soft_seconds: 60,
        };
        let limits = Arc::new(OutputLimits::default());
        let outbox = Outbox::new(ClientId(1), Arc::clone(&limits));
        outbox.set_class(ClientClass::Pubsub);
        let fill = |outbox: &Outbox| {
            limits.set(ClientClass::Pubsub, OutputLimit::default());
            for _ in 0..5 {
                outbox.deliver(delivery(b"0123456789"));
            }
            limits.set(ClientClass::Pubsub, soft);
        };
        let start = Instant::now();
        fill(&outbox);
        assert_eq!(outbox.enforce_limits(start), None);
        drain(&outbox);
        // Caught up: the window closes.
        assert_eq!(outbox.enforce_limits(start + Duration::from_secs(59)), None);
        fill(&outbox);
        // Behind again: a new window opens at this check, not at `start`.
        let reopened = start + Duration::from_secs(61);
        assert_eq!(outbox.enforce_limits(reopened), None);
        assert!(!outbox.is_killed());
        let reason = outbox.enforce_limits(reopened + Duration::from_secs(61));
        assert!(matches!(reason, Some(CloseReason::SoftLimit { .. })));
    }

    #[test]
    fn close_after_flush_drains_then_finishes() {
        let outbox = outbox_with(ClientClass::Normal, OutputLimit::default());
        outbox.push_frame(Bytes::from_static(b"+OK\r\n"));
        outbox.close_after_flush();
        assert!(!outbox.deliver(delivery(b"late")));
        let mut out = Vec::new();
        assert_eq!(outbox.take_batch(&mut out, usize::MAX), OutboxBatch::Ready);
        assert_eq!(
            outbox.take_batch(&mut out, usize::MAX),
            OutboxBatch::Finished
        );
        assert_eq!(out.len(), 1);
    }

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
            })
            .collect();
        assert_eq!(rest, vec![b"2".as_slice(), b"3", b"4"]);
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
    fn a_closing_outbox_is_left_to_its_writer() {
        let (outbox, sink) = with_sink();
        outbox.push_frame_deferred(Bytes::from_static(b"+OK\r\n"));
        outbox.close_after_flush();
        outbox.flush();
        assert!(sink.written.lock().is_empty());
        assert_eq!(drain(&outbox).len(), 1);
    }

    #[tokio::test]
    async fn killed_wakes_waiters() {
        let outbox = Arc::new(outbox_with(ClientClass::Normal, OutputLimit::default()));
        let waiter = {
            let outbox = Arc::clone(&outbox);
            tokio::spawn(async move { outbox.killed().await })
        };
        tokio::task::yield_now().await;
        outbox.kill(CloseReason::Killed);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("killed() did not wake")
            .expect("waiter panicked");
    }
}
