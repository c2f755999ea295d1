//! The values a publish produces: one shared [`Message`] per publish, and one cheap
//! [`Delivery`] (a few reference-count bumps) per receiving subscriber.
//!
//! A message also carries one slot per front-end wire format ([`WireFormat`]): the first
//! writer that sends it encodes the part every subscriber shares (channel and payload,
//! with their length headers) and every other writer reuses those bytes, so a publish is
//! encoded once however many subscribers it reaches. This module never encodes anything
//! itself; the front-ends own their formats.

use std::fmt;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

/// A connection's identity, unique for the life of the process (CLIENT ID).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(pub u64);

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The two channel namespaces: classic channels (PUBLISH/SUBSCRIBE) and shard channels
/// (SPUBLISH/SSUBSCRIBE). A name in one is unrelated to the same name in the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// PUBLISH / SUBSCRIBE / PSUBSCRIBE.
    Classic,
    /// SPUBLISH / SSUBSCRIBE; never matched against patterns.
    Shard,
}

/// The front-end encodings a [`Message`] can cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireFormat {
    /// RESP (both RESP2 and RESP3 share the bytes after the array header).
    Resp,
    /// The web gateway's format (WebSocket / SSE).
    Web,
}

/// One published message, shared by every subscriber that receives it.
#[derive(Debug)]
pub struct Message {
    /// The channel it was published to.
    pub channel: Bytes,
    /// The payload, byte for byte.
    pub payload: Bytes,
    encoded: [OnceLock<Bytes>; 2],
}

impl Message {
    /// A message on `channel` carrying `payload`.
    pub fn new(channel: Bytes, payload: Bytes) -> Message {
        Message {
            channel,
            payload,
            encoded: Default::default(),
        }
    }

    /// This message's shared encoding in `format`: `encode` runs for the first caller
    /// only; every later caller, on any thread, gets the same bytes.
    pub fn encoded(&self, format: WireFormat, encode: impl FnOnce(&Message) -> Bytes) -> &Bytes {
        self.encoded[format as usize].get_or_init(|| encode(self))
    }
}

/// Equal when channel and payload are; cached encodings do not count.
impl PartialEq for Message {
    fn eq(&self, other: &Message) -> bool {
        self.channel == other.channel && self.payload == other.payload
    }
}

impl Eq for Message {}

/// How a subscriber came to receive a message; decides the reply header
/// (`message`, `pmessage`, `smessage`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeliveryKind {
    /// Subscribed to the exact channel.
    Channel,
    /// Subscribed to a pattern that matched; carries the pattern as subscribed.
    Pattern(Bytes),
    /// Subscribed to the exact shard channel.
    Shard,
}

/// A message on its way to one subscriber.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// Why this subscriber receives it.
    pub kind: DeliveryKind,
    /// The shared message.
    pub message: Arc<Message>,
}

/// Fixed per-delivery overhead counted against output budgets, in bytes: the RESP
/// framing of a `pmessage` push is at most this much beyond its three strings.
pub const DELIVERY_FRAMING_BYTES: usize = 48;

impl Delivery {
    /// Bytes this delivery occupies in a subscriber's output budget: the strings it
    /// carries plus framing. Shared payloads are counted in full for every subscriber,
    /// as Redis does, so limits mean the same thing as in Redis.
    pub fn budget_bytes(&self) -> usize {
        let pattern = match &self.kind {
            DeliveryKind::Pattern(pattern) => pattern.len(),
            DeliveryKind::Channel | DeliveryKind::Shard => 0,
        };
        self.message.channel.len() + self.message.payload.len() + pattern + DELIVERY_FRAMING_BYTES
    }
}

/// Consecutive messages one subscriber receives the same way, shared with every other
/// subscriber that receives exactly these: what a pipeline of publishes to one channel
/// queues for each of its subscribers (`outbox::staged`), one reference count per
/// subscriber instead of one per message and subscriber.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryRun {
    kind: DeliveryKind,
    messages: Arc<[Arc<Message>]>,
    /// The sum of the deliveries' [`Delivery::budget_bytes`].
    budget: usize,
}

impl DeliveryRun {
    /// The run of `messages`, each delivered as `kind`.
    pub fn new(kind: DeliveryKind, messages: Arc<[Arc<Message>]>) -> Self {
        let pattern = match &kind {
            DeliveryKind::Pattern(pattern) => pattern.len(),
            DeliveryKind::Channel | DeliveryKind::Shard => 0,
        };
        let budget = messages
            .iter()
            .map(|message| {
                message.channel.len() + message.payload.len() + pattern + DELIVERY_FRAMING_BYTES
            })
            .sum();
        DeliveryRun {
            kind,
            messages,
            budget,
        }
    }

    /// How every message of the run is delivered.
    pub fn kind(&self) -> &DeliveryKind {
        &self.kind
    }

    /// The messages, in delivery order.
    pub fn messages(&self) -> &[Arc<Message>] {
        &self.messages
    }

    /// Bytes the run counts against an output budget: its deliveries' sum.
    pub fn budget_bytes(&self) -> usize {
        self.budget
    }

    /// The run as single deliveries, for front-ends that handle one at a time.
    pub fn deliveries(&self) -> impl Iterator<Item = Delivery> + '_ {
        self.messages.iter().map(|message| Delivery {
            kind: self.kind.clone(),
            message: Arc::clone(message),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn each_format_is_encoded_once() {
        let message = Message::new(Bytes::from_static(b"ch"), Bytes::from_static(b"hi"));
        let calls = AtomicUsize::new(0);
        let encode = |m: &Message| {
            calls.fetch_add(1, Ordering::Relaxed);
            Bytes::from([&m.channel[..], &m.payload[..]].concat())
        };
        let first = message.encoded(WireFormat::Resp, encode).clone();
        let again = message.encoded(WireFormat::Resp, encode);
        assert_eq!(first, Bytes::from_static(b"chhi"));
        assert_eq!(first.as_ptr(), again.as_ptr());
        message.encoded(WireFormat::Web, |_| Bytes::from_static(b"{}"));
        assert_eq!(calls.load(Ordering::Relaxed), 1);
        assert_eq!(
            message,
            Message::new(Bytes::from_static(b"ch"), Bytes::from_static(b"hi"))
        );
    }
}
