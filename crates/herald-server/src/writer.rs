//! The writer task of a connection: drains the outbox into vectored socket writes.
//!
//! A delivery is encoded once per publish, not once per subscriber: the part every
//! subscriber shares (channel, payload and their length headers) is built by the first
//! writer that sends the message and cached in the shared [`Message`]; each writer then
//! copies a pre-built array header (`message`/`pmessage`/`smessage`, `*` or `>`), the
//! pattern for a `pmessage`, and that shared part into its scratch buffer. Payloads of
//! [`SHARED_PAYLOAD_MIN_BYTES`] or more are written straight from the shared allocation,
//! so a large message fanned out to many subscribers is never copied per subscriber.
//! A whole batch goes out in one write: a batch of small messages is one contiguous
//! buffer, a batch that references large payloads one vectored write.
//!
//! Two writers share the socket, one at a time (the outbox's
//! [`WriteClaim`](herald_engine::WriteClaim)): the connection's writer task, and
//! [`DirectSink`] (module `direct`), through which a publisher whose batch made this
//! client's queue non-empty writes it at once with one non-blocking `send` (a `writev`
//! when a large payload is referenced; no wake-up of the writer task, no scheduler hop).
//! Whatever the socket does not take goes back to the head of the queue and the writer
//! task, woken by the claim's release, waits for the socket as before. With the `io-uring` feature,
//! [`flush_pending`] sends a whole batch of such direct writes in one system call
//! (module `uring`).

use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use herald_engine::{
    CloseReason, DeliveryKind, Message, Outbox, OutboxBatch, Outgoing, PendingWakes, WireFormat,
    DELIVERY_FRAMING_BYTES,
};
use herald_proto::reply::put_bulk;
use herald_proto::Protocol;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;

use crate::server::Shared;

mod direct;
#[cfg(feature = "io-uring")]
pub mod uring;

pub use direct::DirectSink;

/// A write batch (a thread's direct-write buffers, a writer task's batch) keeps at most
/// this much scratch between writes.
const SCRATCH_KEEP_BYTES: usize = 64 * 1024;
/// Payloads at least this long are referenced, not copied, when written.
pub const SHARED_PAYLOAD_MIN_BYTES: usize = 1024;
/// Most bytes taken from the outbox per write: bounds what a stuck writer holds outside
/// the outbox's byte budget.
pub const WRITE_BATCH_BYTES: usize = 256 * 1024;
/// Most buffers handed to one `writev` (Linux IOV_MAX is 1024).
const MAX_IOVECS: usize = 64;

/// The protocol the writer encodes deliveries in; changed by HELLO.
#[derive(Debug, Default)]
pub struct ProtocolCell(AtomicU8);

impl ProtocolCell {
    /// Reads the current protocol.
    pub fn get(&self) -> Protocol {
        match self.0.load(Ordering::Relaxed) {
            3 => Protocol::Resp3,
            _ => Protocol::Resp2,
        }
    }

    /// Sets the protocol.
    pub fn set(&self, protocol: Protocol) {
        self.0.store(protocol.version() as u8, Ordering::Relaxed);
    }
}

/// Chunks ready for one vectored write.
#[derive(Default)]
struct WriteBatch {
    chunks: VecDeque<Bytes>,
    scratch: BytesMut,
}

impl WriteBatch {
    fn put_shared(&mut self, bytes: Bytes) {
        if bytes.len() < SHARED_PAYLOAD_MIN_BYTES {
            self.scratch.put_slice(&bytes);
        } else {
            self.seal_scratch();
            self.chunks.push_back(bytes);
        }
    }

    fn put_delivery(&mut self, kind: &DeliveryKind, message: &Message, protocol: Protocol) {
        let resp3 = protocol == Protocol::Resp3;
        let header: &[u8] = match (kind, resp3) {
            (DeliveryKind::Channel, false) => b"*3\r\n$7\r\nmessage\r\n",
            (DeliveryKind::Channel, true) => b">3\r\n$7\r\nmessage\r\n",
            (DeliveryKind::Shard, false) => b"*3\r\n$8\r\nsmessage\r\n",
            (DeliveryKind::Shard, true) => b">3\r\n$8\r\nsmessage\r\n",
            (DeliveryKind::Pattern(_), false) => b"*4\r\n$8\r\npmessage\r\n",
            (DeliveryKind::Pattern(_), true) => b">4\r\n$8\r\npmessage\r\n",
        };
        self.scratch.put_slice(header);
        if let DeliveryKind::Pattern(pattern) = kind {
            put_bulk(&mut self.scratch, pattern);
        }
        self.scratch
            .put_slice(message.encoded(WireFormat::Resp, encode_shared_part));
        if message.payload.len() >= SHARED_PAYLOAD_MIN_BYTES {
            self.seal_scratch();
            self.chunks.push_back(message.payload.clone());
            self.scratch.put_slice(b"\r\n");
        }
    }

    /// Gives back what one large batch grew, once it is empty again.
    fn shrink_after_burst(&mut self) {
        if self.scratch.capacity() > SCRATCH_KEEP_BYTES {
            self.scratch = BytesMut::new();
        }
        if self.chunks.capacity() > MAX_IOVECS {
            self.chunks = VecDeque::new();
        }
    }

    fn seal_scratch(&mut self) {
        if !self.scratch.is_empty() {
            self.chunks.push_back(self.scratch.split().freeze());
        }
    }

    fn len(&self) -> usize {
        self.chunks.iter().map(Bytes::len).sum::<usize>() + self.scratch.len()
    }

    /// Encodes `entries` (drained) behind what the batch holds; returns the deliveries.
    /// What follows the last referenced payload stays in `scratch`: a batch of small
    /// messages is then one contiguous buffer, written as it is (no `Bytes` made of it
    /// for every write). [`WriteBatch::seal_scratch`] moves it to `chunks`.
    fn put_entries(&mut self, entries: &mut Vec<Outgoing>, protocol: Protocol) -> u64 {
        if self.scratch.is_empty() {
            // One allocation for the batch instead of doublings that copy what is
            // encoded so far.
            let estimate: usize = entries.iter().map(scratch_estimate).sum();
            self.scratch.reserve(estimate);
        }
        let mut deliveries = 0u64;
        for entry in entries.drain(..) {
            match entry {
                Outgoing::Frame(frame) => self.put_shared(frame),
                Outgoing::Delivery(delivery) => {
                    deliveries += 1;
                    self.put_delivery(&delivery.kind, &delivery.message, protocol);
                }
                Outgoing::Run(run) => {
                    deliveries += run.messages().len() as u64;
                    for message in run.messages() {
                        self.put_delivery(run.kind(), message, protocol);
                    }
                }
            }
        }
        deliveries
    }
}

/// About what `entry` adds to a write batch's scratch: budgets are an upper bound of
/// the encoding, except that a referenced payload is not copied at all.
fn scratch_estimate(entry: &Outgoing) -> usize {
    match entry {
        Outgoing::Frame(_) | Outgoing::Delivery(_) => {
            entry.budget_bytes().min(SHARED_PAYLOAD_MIN_BYTES)
        }
        Outgoing::Run(run) => run
            .messages()
            .iter()
            .map(|message| {
                (message.channel.len() + message.payload.len() + DELIVERY_FRAMING_BYTES)
                    .min(SHARED_PAYLOAD_MIN_BYTES)
            })
            .sum(),
    }
}

/// Whether publishers write idle subscribers' sockets directly ([`DirectSink`]). On
/// unless the environment sets `HERALD_DIRECT_WRITES=0`: a diagnostic switch, read once,
/// to measure the writer-task-only path against it on the same build.
pub fn direct_writes_enabled() -> bool {
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ENABLED.get_or_init(|| std::env::var_os("HERALD_DIRECT_WRITES").is_none_or(|v| v != "0"))
}

/// Whether a pipelined batch with a small fan-out has the writer tasks it woke yield
/// before they write ([`herald_engine::PendingWakes::wake_writers`], `LINGER_TURNS`
/// turns). Those tasks would otherwise run right after the batch, before the publishers'
/// next requests can be read, and send each subscriber one batch per write; after a
/// turn of the I/O driver, what the publishers sent meanwhile is in the same write.
/// Measured with 2 publishers → 20 subscribers, pipeline 16, pinned: one turn, 21 → 29
/// deliveries per `writev`, 13% less server CPU per delivery. A large fan-out takes long
/// enough to write that the next requests arrive anyway; there lingering only costs
/// (the connection decides by the batch's receivers). On unless the environment sets
/// `HERALD_WRITER_LINGER=0` (a diagnostic switch, read once).
pub fn linger_enabled() -> bool {
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ENABLED.get_or_init(|| std::env::var_os("HERALD_WRITER_LINGER").is_none_or(|v| v != "0"))
}

/// Most subscribers a single request's deliveries are written to directly by the
/// publishing connection (no writer wake-ups); a larger fan-out goes through the writer
/// tasks. At about 5 µs per write that wakes a reader on the test VM, 64 writes delay
/// the publisher's next request by about 0.3 ms.
pub const DIRECT_FLUSH_MAX_SUBSCRIBERS: usize = 64;
/// Most requests a batch may hold and still have its deliveries written directly
/// (fan-out permitting); a longer pipeline is load, and goes through the writer tasks.
/// A client that publishes at a steady rate still sends two to four requests in one
/// segment now and then: with 10 000 PUBLISH/s to 20 subscribers, waking (and
/// lingering) 20 writers for each of those made 2.9x the `epoll_wait` calls of writing
/// them at once (50.6k against 17.3k in 3 s) for 4% more server CPU. A threshold of
/// 2, 4 or 8 measured the same; a pipeline of 16 (2 publishers -> 20) is unaffected.
pub const DIRECT_FLUSH_MAX_REQUESTS: u64 = 4;

/// Whether a batch of `executed` requests that left `outboxes` to flush goes through the
/// writer tasks (see [`DIRECT_FLUSH_MAX_REQUESTS`], [`DIRECT_FLUSH_MAX_SUBSCRIBERS`])
/// instead of being written by the publishing connection now.
pub fn wakes_writers(executed: u64, outboxes: usize) -> bool {
    executed > DIRECT_FLUSH_MAX_REQUESTS || outboxes > DIRECT_FLUSH_MAX_SUBSCRIBERS
}

/// Whether [`flush_pending`] sends all its direct writes in one submission (feature
/// `io-uring`, not switched off by `HERALD_IO_URING=0`; the ring itself may still turn
/// out to be unavailable, and then each is one `writev`).
pub fn batched_flush() -> bool {
    #[cfg(feature = "io-uring")]
    {
        uring::enabled()
    }
    #[cfg(not(feature = "io-uring"))]
    {
        false
    }
}

/// Flushes every outbox in `pending`: the idle ones are written directly, in one
/// io_uring submission when [`batched_flush`], else one `writev` each; the busy ones'
/// writer tasks are woken.
pub fn flush_pending(pending: &mut PendingWakes) {
    #[cfg(feature = "io-uring")]
    if uring::enabled() {
        pending.flush_together(uring::write_claims);
        return;
    }
    pending.flush();
}

/// Drops written bytes from the front of `chunks`.
fn consume(chunks: &mut VecDeque<Bytes>, mut written: usize) {
    while written > 0 {
        let Some(front) = chunks.front_mut() else {
            break;
        };
        if written >= front.len() {
            written -= front.len();
            chunks.pop_front();
        } else {
            front.advance(written);
            written = 0;
        }
    }
}

/// One non-blocking write of the first chunks (at most [`MAX_IOVECS`]). A single chunk,
/// the usual case (small deliveries are copied into one scratch buffer), is a plain
/// `write`; several go out in one `writev` through iovecs on the stack (a vector of
/// them per call was an allocation per write, and filling all 64 slots a few hundred
/// instructions).
fn try_write_chunks(socket: &OwnedWriteHalf, chunks: &VecDeque<Bytes>) -> std::io::Result<usize> {
    if chunks.len() == 1 {
        return socket.try_write(&chunks[0]);
    }
    let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
    let mut count = 0;
    for (slot, chunk) in slices.iter_mut().zip(chunks) {
        *slot = IoSlice::new(chunk);
        count += 1;
    }
    socket.try_write_vectored(&slices[..count])
}

/// The part of a delivery every subscriber shares, in RESP2 and RESP3 alike: the
/// channel as a bulk string and the payload's bulk header, plus the payload itself and
/// its CRLF when it is small enough to copy. Computed once per message
/// ([`Message::encoded`]); each writer adds only its own array header.
fn encode_shared_part(message: &Message) -> Bytes {
    let payload = &message.payload;
    let copied = payload.len() < SHARED_PAYLOAD_MIN_BYTES;
    let mut part = BytesMut::with_capacity(
        message.channel.len() + if copied { payload.len() } else { 0 } + 32,
    );
    put_bulk(&mut part, &message.channel);
    if copied {
        put_bulk(&mut part, payload);
    } else {
        let mut digits = itoa::Buffer::new();
        part.put_u8(b'$');
        part.put_slice(digits.format(payload.len()).as_bytes());
        part.put_slice(b"\r\n");
    }
    part.freeze()
}

/// Writes the whole batch, waiting for the socket when it is full, and leaves it empty.
async fn write_batch(socket: &OwnedWriteHalf, batch: &mut WriteBatch) -> std::io::Result<()> {
    if batch.chunks.is_empty() {
        // All in one buffer (no payload large enough to be referenced): write it as it is.
        while !batch.scratch.is_empty() {
            let written = match socket.try_write(&batch.scratch) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(written) => written,
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                    socket.writable().await?;
                    continue;
                }
                Err(err) => return Err(err),
            };
            batch.scratch.advance(written);
        }
        batch.scratch.clear();
        return Ok(());
    }
    batch.seal_scratch();
    let chunks = &mut batch.chunks;
    while !chunks.is_empty() {
        // The iovecs live in a call of their own: across the `.await` below, every
        // connection's writer task would carry them in its future.
        let written = match try_write_chunks(socket, chunks) {
            Ok(written) => written,
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                socket.writable().await?;
                continue;
            }
            Err(err) => return Err(err),
        };
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        consume(chunks, written);
    }
    Ok(())
}

/// Removes the direct sink from the outbox when the writer task ends, however it ends,
/// so the socket and the server state it references are released with the connection.
struct Detach<'a>(&'a Outbox);

impl Drop for Detach<'_> {
    fn drop(&mut self) {
        self.0.set_direct(None);
    }
}

/// Turns of the I/O driver a writer waits for after a lingering wake-up. Measured with 2
/// publishers -> 20 subscribers, pipeline 16, pinned, 10 rounds interleaved: 3 turns
/// against 1, 0.81x server CPU per delivery at 1.12x the median latency; 5 turns no
/// better than 3 at 1.07x its median. Stopping early when a turn brought nothing
/// (the publishers seemed done) measured 1.13x the CPU of a fixed 3: under load a turn
/// often ends before the next request has arrived, and a later one brings it.
const LINGER_TURNS: u32 = 3;
/// Queued bytes past which a lingering writer writes at once: per-send costs are long
/// amortised there.
const LINGER_ENOUGH_BYTES: usize = 64 * 1024;

/// Lets the I/O driver run [`LINGER_TURNS`] times first, so that publishes that arrive
/// meanwhile join this write (see `linger_enabled`).
async fn linger(outbox: &Outbox) {
    for _ in 0..LINGER_TURNS {
        tokio::task::yield_now().await;
        if outbox.queued_bytes() >= LINGER_ENOUGH_BYTES {
            return;
        }
    }
}

/// Drains `outbox` to `socket` until the outbox finishes or is killed, or the peer goes away.
/// With `direct`, publishers may write idle queues straight to the socket
/// ([`DirectSink`]); without, only this task writes.
pub async fn run(
    socket: OwnedWriteHalf,
    outbox: Arc<Outbox>,
    protocol: Arc<ProtocolCell>,
    shared: Arc<Shared>,
    direct: bool,
) {
    let mut socket = Arc::new(socket);
    let _detach = Detach(&outbox);
    if direct {
        outbox.set_direct(Some(Arc::new(DirectSink::new(
            Arc::clone(&socket),
            Arc::clone(&protocol),
            Arc::clone(&shared),
        ))));
    }
    let mut entries = Vec::new();
    let mut batch = WriteBatch::default();
    loop {
        // A publisher writing directly holds the claim for a moment; it wakes this task
        // when it leaves something behind.
        let Some(claim) = outbox.try_claim() else {
            tokio::select! {
                _ = outbox.output_ready() => {}
                _ = outbox.killed() => return,
            }
            continue;
        };
        loop {
            entries.clear();
            match claim.take_batch(&mut entries, WRITE_BATCH_BYTES) {
                OutboxBatch::Ready => {}
                OutboxBatch::Empty => break,
                OutboxBatch::Finished => {
                    drop(claim);
                    outbox.set_direct(None);
                    // The sink is gone: this is the socket's last owner (if a publisher
                    // still held a clone, dropping the last one shuts it down as well).
                    if let Some(socket) = Arc::get_mut(&mut socket) {
                        let _ = socket.shutdown().await;
                    }
                    return;
                }
                OutboxBatch::Killed => return,
            }
            let deliveries = batch.put_entries(&mut entries, protocol.get());
            let bytes = batch.len();
            let result = tokio::select! {
                result = write_batch(&socket, &mut batch) => result,
                _ = outbox.killed() => return,
            };
            if let Err(err) = result {
                tracing::debug!(client = %outbox.id(), %err, "write failed; closing");
                outbox.kill(CloseReason::Killed);
                return;
            }
            shared.stats.net_output_bytes.add(bytes as u64);
            shared.stats.deliveries_written.add(deliveries);
        }
        drop(claim);
        // A burst grew it; an idle connection gives that back.
        batch.shrink_after_burst();
        tokio::select! {
            _ = outbox.output_ready() => {}
            _ = outbox.killed() => return,
        }
        if outbox.take_linger() {
            linger(&outbox).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_engine::Delivery;

    fn encode(delivery: &Delivery, protocol: Protocol) -> Vec<u8> {
        let mut batch = WriteBatch::default();
        batch.put_delivery(&delivery.kind, &delivery.message, protocol);
        batch.seal_scratch();
        batch
            .chunks
            .iter()
            .flat_map(|chunk| chunk.to_vec())
            .collect()
    }

    fn message(payload: Bytes) -> Arc<Message> {
        Arc::new(Message::new(Bytes::from_static(b"ch"), payload))
    }

    #[test]
    fn a_batch_gives_back_what_a_burst_grew_and_keeps_the_usual() {
        let mut batch = WriteBatch::default();
        batch.scratch.reserve(4096);
        batch.shrink_after_burst();
        assert!(
            batch.scratch.capacity() >= 4096,
            "a usual batch keeps its buffer"
        );
        batch.scratch.reserve(SCRATCH_KEEP_BYTES + 1);
        batch.chunks.reserve(MAX_IOVECS + 1);
        batch.shrink_after_burst();
        assert_eq!(batch.scratch.capacity(), 0);
        assert_eq!(batch.chunks.capacity(), 0);
    }

    #[test]
    fn encodes_each_kind_in_both_protocols() {
        let msg = message(Bytes::from_static(b"hi"));
        let channel = Delivery {
            kind: DeliveryKind::Channel,
            message: Arc::clone(&msg),
        };
        assert_eq!(
            encode(&channel, Protocol::Resp2),
            b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n"
        );
        assert_eq!(
            encode(&channel, Protocol::Resp3),
            b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n"
        );
        let pattern = Delivery {
            kind: DeliveryKind::Pattern(Bytes::from_static(b"c*")),
            message: Arc::clone(&msg),
        };
        assert_eq!(
            encode(&pattern, Protocol::Resp2),
            b"*4\r\n$8\r\npmessage\r\n$2\r\nc*\r\n$2\r\nch\r\n$2\r\nhi\r\n"
        );
        let shard = Delivery {
            kind: DeliveryKind::Shard,
            message: msg,
        };
        assert_eq!(
            encode(&shard, Protocol::Resp3),
            b">3\r\n$8\r\nsmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n"
        );
    }

    #[test]
    fn the_shared_part_is_encoded_once_for_every_subscriber() {
        let msg = message(Bytes::from_static(b"payload"));
        let pattern = Delivery {
            kind: DeliveryKind::Pattern(Bytes::from_static(b"c*")),
            message: Arc::clone(&msg),
        };
        assert_eq!(
            encode(&pattern, Protocol::Resp3),
            b">4\r\n$8\r\npmessage\r\n$2\r\nc*\r\n$2\r\nch\r\n$7\r\npayload\r\n"
        );
        // Already cached: a second encoder must not run.
        let cached = msg.encoded(WireFormat::Resp, |_| unreachable!("encoded twice"));
        assert_eq!(&cached[..], b"$2\r\nch\r\n$7\r\npayload\r\n");
        let channel = Delivery {
            kind: DeliveryKind::Channel,
            message: msg,
        };
        assert_eq!(
            encode(&channel, Protocol::Resp2),
            b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$7\r\npayload\r\n"
        );
    }

    #[test]
    fn large_payloads_are_shared_not_copied() {
        let payload = Bytes::from(vec![b'x'; SHARED_PAYLOAD_MIN_BYTES * 4]);
        let delivery = Delivery {
            kind: DeliveryKind::Channel,
            message: message(payload.clone()),
        };
        let mut batch = WriteBatch::default();
        batch.put_delivery(&delivery.kind, &delivery.message, Protocol::Resp2);
        batch.seal_scratch();
        assert!(batch
            .chunks
            .iter()
            .any(|chunk| chunk.as_ptr() == payload.as_ptr() && chunk.len() == payload.len()));
        let wire: Vec<u8> = batch.chunks.iter().flat_map(|c| c.to_vec()).collect();
        assert!(wire.ends_with(b"xx\r\n"));
        assert!(wire.starts_with(b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$4096\r\nxx"));
    }

    #[test]
    fn a_short_batch_to_a_small_fan_out_is_written_by_the_publisher() {
        assert!(!wakes_writers(1, 1));
        assert!(!wakes_writers(
            DIRECT_FLUSH_MAX_REQUESTS,
            DIRECT_FLUSH_MAX_SUBSCRIBERS
        ));
        assert!(!wakes_writers(0, 0));
    }

    #[test]
    fn a_long_pipeline_or_a_large_fan_out_wakes_the_writers() {
        assert!(wakes_writers(DIRECT_FLUSH_MAX_REQUESTS + 1, 1));
        assert!(wakes_writers(1, DIRECT_FLUSH_MAX_SUBSCRIBERS + 1));
        assert!(wakes_writers(16, 20));
    }
}
