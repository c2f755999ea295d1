//! The writer task of a connection: drains the outbox into vectored socket writes.
//!
//! Deliveries are encoded here, per connection, from the shared [`Message`]: small parts
//! (headers, short strings) are copied into a scratch buffer, payloads of
//! [`SHARED_PAYLOAD_MIN_BYTES`] or more are written straight from the shared allocation,
//! so a large message fanned out to many subscribers is never copied per subscriber.
//!
//! [`Message`]: herald_engine::Message

use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use herald_engine::{Delivery, DeliveryKind, Outbox, OutboxBatch, Outgoing};
use herald_proto::reply::put_bulk;
use herald_proto::Protocol;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;

use crate::server::Shared;
use crate::stats::ServerStats;

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

    fn put_bulk_shared(&mut self, bytes: &Bytes) {
        if bytes.len() < SHARED_PAYLOAD_MIN_BYTES {
            put_bulk(&mut self.scratch, bytes);
        } else {
            let mut digits = itoa::Buffer::new();
            self.scratch.put_u8(b'$');
            self.scratch
                .put_slice(digits.format(bytes.len()).as_bytes());
            self.scratch.put_slice(b"\r\n");
            self.seal_scratch();
            self.chunks.push_back(bytes.clone());
            self.scratch.put_slice(b"\r\n");
        }
    }

    fn put_delivery(&mut self, delivery: &Delivery, protocol: Protocol) {
        let array = match protocol {
            Protocol::Resp2 => b'*',
            Protocol::Resp3 => b'>',
        };
        let message = &delivery.message;
        match &delivery.kind {
            DeliveryKind::Channel => {
                self.scratch.put_u8(array);
                self.scratch.put_slice(b"3\r\n$7\r\nmessage\r\n");
            }
            DeliveryKind::Shard => {
                self.scratch.put_u8(array);
                self.scratch.put_slice(b"3\r\n$8\r\nsmessage\r\n");
            }
            DeliveryKind::Pattern(pattern) => {
                self.scratch.put_u8(array);
                self.scratch.put_slice(b"4\r\n$8\r\npmessage\r\n");
                put_bulk(&mut self.scratch, pattern);
            }
        }
        put_bulk(&mut self.scratch, &message.channel);
        self.put_bulk_shared(&message.payload);
    }

    fn seal_scratch(&mut self) {
        if !self.scratch.is_empty() {
            self.chunks.push_back(self.scratch.split().freeze());
        }
    }

    fn len(&self) -> usize {
        self.chunks.iter().map(Bytes::len).sum()
    }
}

async fn write_chunks(
    socket: &mut OwnedWriteHalf,
    chunks: &mut VecDeque<Bytes>,
) -> std::io::Result<()> {
    while !chunks.is_empty() {
        let slices: Vec<IoSlice<'_>> = chunks
            .iter()
            .take(MAX_IOVECS)
            .map(|chunk| IoSlice::new(chunk))
            .collect();
        let mut written = socket.write_vectored(&slices).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
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
    Ok(())
}

/// Drains `outbox` to `socket` until the outbox finishes or is killed, or the peer goes away.
pub async fn run(
    mut socket: OwnedWriteHalf,
    outbox: Arc<Outbox>,
    protocol: Arc<ProtocolCell>,
    shared: Arc<Shared>,
) {
    let mut entries = Vec::new();
    let mut batch = WriteBatch::default();
    loop {
        entries.clear();
        match outbox.take_batch(&mut entries, WRITE_BATCH_BYTES) {
            OutboxBatch::Ready => {}
            OutboxBatch::Empty => {
                tokio::select! {
                    _ = outbox.output_ready() => {}
                    _ = outbox.killed() => return,
                }
                continue;
            }
            OutboxBatch::Finished => {
                let _ = socket.shutdown().await;
                return;
            }
            OutboxBatch::Killed => return,
        }
        let protocol = protocol.get();
        let mut deliveries = 0u64;
        for entry in entries.drain(..) {
            match entry {
                Outgoing::Frame(frame) => batch.put_shared(frame),
                Outgoing::Delivery(delivery) => {
                    deliveries += 1;
                    batch.put_delivery(&delivery, protocol);
                }
            }
        }
        batch.seal_scratch();
        let bytes = batch.len();
        let result = tokio::select! {
            result = write_chunks(&mut socket, &mut batch.chunks) => result,
            _ = outbox.killed() => return,
        };
        if let Err(err) = result {
            tracing::debug!(client = %outbox.id(), %err, "write failed; closing");
            outbox.kill(herald_engine::CloseReason::Killed);
            return;
        }
        ServerStats::add(&shared.stats.net_output_bytes, bytes as u64);
        ServerStats::add(&shared.stats.deliveries_written, deliveries);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_engine::Message;

    fn encode(delivery: &Delivery, protocol: Protocol) -> Vec<u8> {
        let mut batch = WriteBatch::default();
        batch.put_delivery(delivery, protocol);
        batch.seal_scratch();
        batch
            .chunks
            .iter()
            .flat_map(|chunk| chunk.to_vec())
            .collect()
    }

    fn message(payload: Bytes) -> Arc<Message> {
        Arc::new(Message {
            channel: Bytes::from_static(b"ch"),
            payload,
        })
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
    fn large_payloads_are_shared_not_copied() {
        let payload = Bytes::from(vec![b'x'; SHARED_PAYLOAD_MIN_BYTES * 4]);
        let delivery = Delivery {
            kind: DeliveryKind::Channel,
            message: message(payload.clone()),
        };
        let mut batch = WriteBatch::default();
        batch.put_delivery(&delivery, Protocol::Resp2);
        batch.seal_scratch();
        assert!(batch
            .chunks
            .iter()
            .any(|chunk| chunk.as_ptr() == payload.as_ptr() && chunk.len() == payload.len()));
        let wire: Vec<u8> = batch.chunks.iter().flat_map(|c| c.to_vec()).collect();
        assert!(wire.ends_with(b"xx\r\n"));
        assert!(wire.starts_with(b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$4096\r\nxx"));
    }
}
