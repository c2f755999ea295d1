//! Direct writes through io_uring (feature `io-uring`): the sends of a whole batch of
//! claimed outboxes ([`PendingWakes::flush_together`]) go to the kernel in one
//! `io_uring_enter`, instead of one `writev` per subscriber.
//!
//! Each worker thread owns one ring, created on first use. A flush encodes every claimed
//! outbox's batch, queues one `SENDMSG` per socket (`MSG_DONTWAIT | MSG_NOSIGNAL`: a full
//! socket completes with `EAGAIN` instead of waiting), submits them all and waits in the
//! same call for every completion, so the buffers the kernel reads live on this stack
//! frame until it is done with them. Completions then do what [`DirectSink::write_now`]
//! does after its `writev`: a partial send or `EAGAIN` puts the rest back at the head of
//! the queue for the writer task, an error closes the connection, a complete send lets
//! the sink look for more.
//!
//! When no ring can be created (io_uring disabled by `kernel.io_uring_disabled`, a
//! seccomp filter, an old kernel) it says so once at info and every flush takes the
//! `writev` path; `HERALD_IO_URING=0` in the environment does the same on purpose, to
//! measure both paths on one build. This module owns the ring and the two `unsafe`
//! blocks it needs; it never awaits and never blocks on a socket.
//!
//! [`PendingWakes::flush_together`]: herald_engine::PendingWakes::flush_together
#![allow(unsafe_code)]

use std::cell::RefCell;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};

use herald_engine::{CloseReason, DirectClaim, DirectWrite, OutboxBatch, WriteClaim};
use io_uring::{opcode, types, IoUring};

use super::{consume, DirectSink, WriteBatch, MAX_IOVECS, WRITE_BATCH_BYTES};
use crate::stats::ServerStats;

/// Submission queue size of each worker's ring: more than the direct-flush cap of
/// subscribers plus the publisher's own reply, so a flush is one submission; a larger
/// batch is sent in several.
const RING_ENTRIES: u32 = 128;
/// Flags of every send: never wait for room in the socket, never raise SIGPIPE.
const SEND_FLAGS: u32 = (libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) as u32;

/// Whether io_uring may be used: on unless the environment sets `HERALD_IO_URING=0`
/// (read once).
pub fn enabled() -> bool {
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ENABLED.get_or_init(|| std::env::var_os("HERALD_IO_URING").is_none_or(|v| v != "0"))
}

/// This thread's ring: not tried yet, ready, or unavailable for good (creation failed,
/// or a submission failed in a way that leaves requests in flight).
enum Ring {
    Untried,
    Ready(Box<IoUring>),
    Unavailable,
}

thread_local! {
    static RING: RefCell<Ring> = const { RefCell::new(Ring::Untried) };
}

fn create_ring() -> Ring {
    static REPORTED: AtomicBool = AtomicBool::new(false);
    let first = !REPORTED.swap(true, Ordering::Relaxed);
    match IoUring::new(RING_ENTRIES) {
        Ok(ring) => {
            if first {
                tracing::info!("direct writes to subscribers are submitted through io_uring");
            }
            Ring::Ready(Box::new(ring))
        }
        Err(err) => {
            if first {
                tracing::info!(%err, "io_uring unavailable; direct writes use one writev per subscriber");
            }
            Ring::Unavailable
        }
    }
}

/// Writes every claimed outbox: through this thread's ring when there is one, else
/// through each sink's own `writev` path. Installed as the writer of
/// [`herald_engine::PendingWakes::flush_together`].
pub fn write_claims(claims: &[DirectClaim<'_>]) {
    let written = RING.with(|cell| {
        let Ok(mut ring) = cell.try_borrow_mut() else {
            return false;
        };
        if matches!(*ring, Ring::Untried) {
            *ring = create_ring();
        }
        let Ring::Ready(uring) = &mut *ring else {
            return false;
        };
        if let Err(err) = write_through(uring, claims) {
            tracing::info!(%err, "io_uring submission failed; direct writes use one writev per subscriber on this thread");
            // Requests may still be in flight on this ring: keep it (and what they
            // read) alive for the thread's lifetime rather than free it under them.
            std::mem::forget(std::mem::replace(&mut *ring, Ring::Unavailable));
        }
        true
    });
    if !written {
        for claimed in claims {
            claimed.sink.write_now(&claimed.claim);
        }
    }
}

/// One socket's send: the batch taken from its outbox, encoded, and the iovecs the
/// kernel reads it through.
struct Send<'a> {
    claim: &'a WriteClaim<'a>,
    sink: &'a DirectSink,
    batch: WriteBatch,
    deliveries: u64,
    iovecs: Vec<libc::iovec>,
    /// Bytes the iovecs cover (at most [`MAX_IOVECS`] chunks of the batch).
    submitted: usize,
    /// The completion's result, once reaped.
    result: Option<i32>,
}

fn write_through(ring: &mut IoUring, claims: &[DirectClaim<'_>]) -> std::io::Result<()> {
    let mut sends = Vec::with_capacity(claims.len());
    for claimed in claims {
        let sink: &dyn std::any::Any = claimed.sink.as_ref();
        let Some(sink) = sink.downcast_ref::<DirectSink>() else {
            claimed.sink.write_now(&claimed.claim);
            continue;
        };
        let mut entries = Vec::new();
        if claimed.claim.take_batch(&mut entries, WRITE_BATCH_BYTES) != OutboxBatch::Ready {
            continue;
        }
        let mut batch = WriteBatch::default();
        let deliveries = batch.put_entries(&mut entries, sink.protocol.get());
        batch.seal_scratch();
        if batch.chunks.is_empty() {
            // Only empty frames: nothing to send, but the sink may find more queued.
            sink.shared.stats.deliveries_written.add(deliveries);
            sink.write_now(&claimed.claim);
            continue;
        }
        let iovecs: Vec<libc::iovec> = batch
            .chunks
            .iter()
            .take(MAX_IOVECS)
            .map(|chunk| libc::iovec {
                iov_base: chunk.as_ptr().cast_mut().cast(),
                iov_len: chunk.len(),
            })
            .collect();
        let submitted = iovecs.iter().map(|iovec| iovec.iov_len).sum();
        sends.push(Send {
            claim: &claimed.claim,
            sink,
            batch,
            deliveries,
            iovecs,
            submitted,
            result: None,
        });
    }
    let mut failure = None;
    for group in sends.chunks_mut(RING_ENTRIES as usize) {
        // After a failed submission the later groups stay unsent (no result): `finish`
        // hands them back to their sinks' `writev` path.
        if failure.is_none() {
            failure = submit_and_reap(ring, group).err();
        }
    }
    for send in &mut sends {
        finish(send);
    }
    failure.map_or(Ok(()), Err)
}

/// Sends `group` in one submission and waits for every completion. On `Err`, requests
/// may still be in flight: the caller must not reuse the ring, and `group`'s buffers
/// are leaked with it so that nothing the kernel may still read is freed.
fn submit_and_reap(ring: &mut IoUring, group: &mut [Send<'_>]) -> std::io::Result<()> {
    let headers: Vec<libc::msghdr> = group
        .iter_mut()
        .map(|send| {
            // SAFETY: `msghdr` is a C struct of integers and raw pointers (plus, on some
            // libcs, private padding), for which all zero bytes is a valid value: no
            // address, no control data, no flags.
            let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
            header.msg_iov = send.iovecs.as_mut_ptr();
            header.msg_iovlen = send.iovecs.len() as _;
            header
        })
        .collect();
    {
        let mut queue = ring.submission();
        for (index, (send, header)) in group.iter().zip(&headers).enumerate() {
            let stream: &tokio::net::TcpStream = (*send.sink.socket).as_ref();
            let fd = stream.as_raw_fd();
            let entry = opcode::SendMsg::new(types::Fd(fd), header)
                .flags(SEND_FLAGS)
                .build()
                .user_data(index as u64);
            // SAFETY: the entry points at `headers[index]`, which points at the send's
            // iovecs, which point into its batch's chunks; `headers` and `group` are
            // neither moved nor dropped before every completion is reaped below (or,
            // on error, are leaked with the ring), and the socket's fd is kept open by
            // the sink, which the caller's claim keeps alive.
            let pushed = unsafe { queue.push(&entry) };
            if pushed.is_err() {
                // The queue holds at most RING_ENTRIES and groups are that long; an
                // earlier submission that failed poisons the ring instead.
                return Err(std::io::Error::other("io_uring submission queue full"));
            }
        }
    }
    if let Some(first) = group.first() {
        let stats = &first.sink.shared.stats;
        ServerStats::add(&stats.uring_submissions, 1);
        ServerStats::add(&stats.uring_sends, group.len() as u64);
    }
    let mut pending = group.len();
    while pending > 0 {
        match ring.submit_and_wait(pending) {
            Ok(_) => {}
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::Interrupted | std::io::ErrorKind::WouldBlock
                ) || err.raw_os_error() == Some(libc::EBUSY) => {}
            Err(err) => {
                std::mem::forget(headers);
                for send in group.iter_mut() {
                    std::mem::forget(std::mem::take(&mut send.batch));
                    std::mem::forget(std::mem::take(&mut send.iovecs));
                    // The chunks are gone with the leaked batch: the connection cannot
                    // go on without them.
                    send.result = Some(-libc::EIO);
                }
                return Err(err);
            }
        }
        for completion in ring.completion() {
            let Some(send) = usize::try_from(completion.user_data())
                .ok()
                .and_then(|index| group.get_mut(index))
            else {
                continue;
            };
            if send.result.is_none() {
                send.result = Some(completion.result());
                pending -= 1;
            }
        }
    }
    drop(headers);
    Ok(())
}

/// What [`DirectSink::write_now`] does after its `writev`, given the completion.
fn finish(send: &mut Send<'_>) {
    let outbox = send.claim.outbox();
    let Some(result) = send.result else {
        // Never submitted: the sink writes it, first in line.
        send.claim.requeue_front(send.batch.chunks.drain(..));
        send.sink.write_now(send.claim);
        return;
    };
    if result < 0 {
        let err = std::io::Error::from_raw_os_error(-result);
        if err.kind() == std::io::ErrorKind::WouldBlock {
            send.claim.requeue_front(send.batch.chunks.drain(..));
            return;
        }
        tracing::debug!(client = %outbox.id(), %err, "write failed; closing");
        send.batch.chunks.clear();
        outbox.kill(CloseReason::Killed);
        return;
    }
    let written = result as usize;
    send.sink.shared.stats.net_output_bytes.add(written as u64);
    consume(&mut send.batch.chunks, written);
    if send.batch.chunks.is_empty() {
        send.sink
            .shared
            .stats
            .deliveries_written
            .add(send.deliveries);
        // More may have been queued meanwhile: the sink takes it, or releases the claim.
        send.sink.write_now(send.claim);
        return;
    }
    send.claim.requeue_front(send.batch.chunks.drain(..));
    if written == send.submitted && written > 0 {
        // Everything submitted went out; the rest of the batch did not fit in one
        // submission's iovecs. The sink writes it, first in line.
        send.sink.write_now(send.claim);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use herald_engine::{Appended, ClientId, Outbox, OutputLimits, PendingWakes};
    use parking_lot::Mutex;

    use super::*;

    /// A sink of another front-end: the ring cannot send for it.
    #[derive(Default)]
    struct ForeignSink {
        written: Mutex<Vec<Bytes>>,
    }

    impl DirectWrite for ForeignSink {
        fn write_now(&self, claim: &WriteClaim<'_>) {
            let mut entries = Vec::new();
            while claim.take_batch(&mut entries, usize::MAX) == OutboxBatch::Ready {
                for entry in entries.drain(..) {
                    if let herald_engine::Outgoing::Frame(bytes) = entry {
                        self.written.lock().push(bytes);
                    }
                }
            }
        }
    }

    #[test]
    fn sinks_the_ring_cannot_send_for_are_written_through_their_own_path() {
        let outboxes: Vec<(Arc<Outbox>, Arc<ForeignSink>)> = (0..3)
            .map(|id| {
                let outbox = Arc::new(Outbox::new(ClientId(id), Arc::new(OutputLimits::default())));
                let sink = Arc::new(ForeignSink::default());
                outbox.set_direct(Some(Arc::clone(&sink) as Arc<dyn DirectWrite>));
                (outbox, sink)
            })
            .collect();
        let mut pending = PendingWakes::default();
        for (outbox, _) in &outboxes {
            let frame = Bytes::from(format!("+{}\r\n", outbox.id()));
            assert_eq!(outbox.push_frame_deferred(frame), Appended::NeedsFlush);
            pending.push(outbox);
        }
        pending.flush_together(write_claims);
        for (outbox, sink) in &outboxes {
            let expected = vec![Bytes::from(format!("+{}\r\n", outbox.id()))];
            assert_eq!(*sink.written.lock(), expected);
            assert_eq!(outbox.queued_bytes(), 0);
            assert!(outbox.try_claim().is_some(), "claim not released");
        }
    }
}
