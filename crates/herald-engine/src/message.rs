//! The values a publish produces: one shared [`Message`] per publish, and one cheap
//! [`Delivery`] (a few reference-count bumps) per receiving subscriber.

use std::fmt;
use std::sync::Arc;

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

/// One published message, shared by every subscriber that receives it.
#[derive(Debug, PartialEq, Eq)]
pub struct Message {
    /// The channel it was published to.
    pub channel: Bytes,
    /// The payload, byte for byte.
    pub payload: Bytes,
}

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
