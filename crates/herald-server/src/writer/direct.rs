//! Direct writes ([`DirectSink`]): a publisher whose batch made an idle subscriber's queue
//! non-empty writes it to the socket at once, without waking the subscriber's writer
//! task (see the parent module). It owns the per-thread buffers those writes reuse; it
//! never waits for a socket: what the socket does not take goes back to the queue for
//! the writer task.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use herald_engine::{CloseReason, DirectWrite, OutboxBatch, Outgoing, WriteClaim};
use tokio::net::tcp::OwnedWriteHalf;

use super::{consume, try_write_chunks, ProtocolCell, WriteBatch, WRITE_BATCH_BYTES};
use crate::server::Shared;

/// The connection's socket as a publisher sees it: writes a claimed outbox without
/// waiting (see the module docs). Installed in the outbox by [`run`](super::run), removed
/// when the writer task ends.
pub struct DirectSink {
    pub(super) socket: Arc<OwnedWriteHalf>,
    pub(super) protocol: Arc<ProtocolCell>,
    pub(super) shared: Arc<Shared>,
}

impl DirectSink {
    /// The sink of `socket`, encoding in the connection's current protocol.
    pub(super) fn new(
        socket: Arc<OwnedWriteHalf>,
        protocol: Arc<ProtocolCell>,
        shared: Arc<Shared>,
    ) -> Self {
        DirectSink {
            socket,
            protocol,
            shared,
        }
    }
}

/// What a thread's direct writes reuse from one call to the next: the entries taken from
/// an outbox and the batch they are encoded into. Allocated per call, they were most of
/// a fixed-rate delivery's user-space instructions (callgrind: the vectors and the
/// scratch buffer grown from empty for every subscriber of every message). Kept per
/// thread, not per connection, so that idle connections hold none of it.
#[derive(Default)]
struct DirectBuffers {
    entries: Vec<Outgoing>,
    batch: WriteBatch,
}

/// A thread's [`DirectBuffers`] keep room for at most this many entries.
const DIRECT_ENTRIES_KEEP: usize = 1024;

impl DirectBuffers {
    /// Gives back what one large batch grew (a burst to one subscriber).
    fn trim(&mut self) {
        if self.entries.capacity() > DIRECT_ENTRIES_KEEP {
            self.entries = Vec::new();
        }
        self.batch.shrink_after_burst();
    }
}

thread_local! {
    static DIRECT_BUFFERS: std::cell::RefCell<DirectBuffers> =
        std::cell::RefCell::new(DirectBuffers::default());
}

impl DirectWrite for DirectSink {
    fn write_now(&self, claim: &WriteClaim<'_>) {
        DIRECT_BUFFERS.with(|buffers| match buffers.try_borrow_mut() {
            Ok(mut buffers) => {
                let DirectBuffers { entries, batch } = &mut *buffers;
                self.write_with(claim, entries, batch);
                buffers.trim();
            }
            // Not reentrant in practice (nothing here calls back into a flush); if it
            // ever is, the inner call pays for its own buffers rather than panicking.
            Err(_) => self.write_with(claim, &mut Vec::new(), &mut WriteBatch::default()),
        });
    }
}

impl DirectSink {
    /// Writes what the claimed outbox holds until it is empty or the socket is full;
    /// `entries` and `batch` come (and go back) empty.
    fn write_with(
        &self,
        claim: &WriteClaim<'_>,
        entries: &mut Vec<Outgoing>,
        batch: &mut WriteBatch,
    ) {
        let protocol = self.protocol.get();
        // Empty already (every path below leaves them so); cleared anyway, because bytes
        // left over here would go to the next subscriber this thread writes to.
        batch.chunks.clear();
        batch.scratch.clear();
        loop {
            entries.clear();
            if claim.take_batch(entries, WRITE_BATCH_BYTES) != OutboxBatch::Ready {
                // Empty, or finished/killed: the writer task handles the latter.
                return;
            }
            let deliveries = batch.put_entries(entries, protocol);
            if batch.chunks.is_empty() {
                match self.write_contiguous(claim, &mut batch.scratch) {
                    Contiguous::All => {
                        self.shared.stats.deliveries_written.add(deliveries);
                        continue;
                    }
                    Contiguous::Stopped => return,
                }
            }
            batch.seal_scratch();
            let bytes = batch.len();
            let mut written_total = 0usize;
            while !batch.chunks.is_empty() {
                match try_write_chunks(&self.socket, &batch.chunks) {
                    Ok(0) => break,
                    Ok(written) => {
                        written_total += written;
                        consume(&mut batch.chunks, written);
                    }
                    Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(err) => {
                        tracing::debug!(client = %claim.outbox().id(), %err, "write failed; closing");
                        batch.chunks.clear();
                        claim.outbox().kill(CloseReason::Killed);
                        return;
                    }
                }
            }
            self.shared.stats.net_output_bytes.add(written_total as u64);
            if written_total == bytes {
                self.shared.stats.deliveries_written.add(deliveries);
                continue;
            }
            // The socket is full: the rest goes back first in line, for the writer task
            // (woken when the claim is released) to send once the socket is writable.
            claim.requeue_front(batch.chunks.drain(..));
            return;
        }
    }
}

/// How a direct write of one contiguous buffer went.
enum Contiguous {
    /// Every byte went out: take the next batch.
    All,
    /// The socket is full (the rest is queued again) or failed (the client killed).
    Stopped,
}

impl DirectSink {
    /// Writes `scratch` with one non-blocking `write` and leaves it empty: what the
    /// socket does not take goes back to the head of the queue, copied out (the socket
    /// is full, which is rare here, and the buffer serves this thread's next write).
    fn write_contiguous(&self, claim: &WriteClaim<'_>, scratch: &mut BytesMut) -> Contiguous {
        let written = match self.socket.try_write(scratch) {
            Ok(written) => written,
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => 0,
            Err(err) => {
                tracing::debug!(client = %claim.outbox().id(), %err, "write failed; closing");
                scratch.clear();
                claim.outbox().kill(CloseReason::Killed);
                return Contiguous::Stopped;
            }
        };
        self.shared.stats.net_output_bytes.add(written as u64);
        if written == scratch.len() {
            scratch.clear();
            return Contiguous::All;
        }
        let rest = Bytes::copy_from_slice(&scratch[written..]);
        scratch.clear();
        claim.requeue_front(std::iter::once(rest));
        Contiguous::Stopped
    }
}
