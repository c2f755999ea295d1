//! A message as a subscriber receives it, whichever back end delivered it.

use bytes::Bytes;
use serde::de::DeserializeOwned;

/// How a message matched one of the subscriber's subscriptions.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// Through a subscription to the exact channel (`message`).
    Channel,
    /// Through a pattern subscription; carries the pattern as subscribed (`pmessage`).
    Pattern(String),
    /// Through a shard-channel subscription (`smessage`).
    Shard,
}

/// One message received by a [`crate::Subscriber`].
///
/// ```
/// use herald_client::{Message, MessageKind};
///
/// let msg = Message::new(MessageKind::Channel, "news", r#"{"n":1}"#);
/// assert_eq!(msg.payload_str(), Some(r#"{"n":1}"#));
/// let value: serde_json::Value = msg.json().unwrap();
/// assert_eq!(value["n"], 1);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// How it matched.
    pub kind: MessageKind,
    /// The channel it was published to (lossily decoded when it is not UTF-8).
    pub channel: String,
    /// The payload, byte for byte.
    pub payload: Bytes,
}

impl Message {
    /// A message; mostly useful in tests of handlers.
    pub fn new(kind: MessageKind, channel: impl Into<String>, payload: impl Into<Bytes>) -> Self {
        Message {
            kind,
            channel: channel.into(),
            payload: payload.into(),
        }
    }

    /// The pattern that matched, for pattern deliveries.
    pub fn pattern(&self) -> Option<&str> {
        match &self.kind {
            MessageKind::Pattern(pattern) => Some(pattern),
            MessageKind::Channel | MessageKind::Shard => None,
        }
    }

    /// The payload as text, when it is UTF-8.
    pub fn payload_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.payload).ok()
    }

    /// The payload decoded from JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.payload)
    }
}
