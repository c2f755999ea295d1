//! The gateway's JSON wire format, shared by WebSocket and SSE (`docs/gateway-protocol.md`).
//!
//! Payloads are bytes; JSON is text. The rule that keeps every payload intact: a message
//! frame carries `data` plus `encoding`, which says how to get the exact bytes back:
//! - `"json"`: the payload is valid JSON and `data` is that JSON, embedded verbatim;
//! - `"text"`: the payload is UTF-8 (but not JSON) and `data` is it as a JSON string;
//! - `"base64"`: anything else (binary) and `data` is standard base64 with padding.
//!
//! Publishing reverses it: a string `data` is published as its UTF-8 bytes (or decoded
//! when `"encoding": "base64"`), any other JSON value as its compact serialization.
//!
//! This module only builds and parses frames; sessions decide what to do with them.

use std::sync::{Arc, Weak};

use axum::extract::ws::Utf8Bytes;
use base64::Engine as _;
use bytes::Bytes;
use herald_engine::{Delivery, DeliveryKind, Message};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::error::RequestError;

/// How a payload is carried in `data`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// Embedded JSON.
    Json,
    /// A JSON string of UTF-8 text.
    Text,
    /// Base64 of arbitrary bytes.
    Base64,
}

/// A payload as it appears in a frame.
#[derive(Debug)]
pub enum Data {
    /// Verbatim JSON.
    Json(Box<RawValue>),
    /// UTF-8 text.
    Text(String),
    /// Base64 text of binary bytes.
    Base64(String),
}

impl Data {
    /// Classifies `payload` by the rule in the module docs.
    pub fn of(payload: &[u8]) -> Data {
        match std::str::from_utf8(payload) {
            Ok(text) => match RawValue::from_string(text.to_owned()) {
                Ok(raw) => Data::Json(raw),
                Err(_) => Data::Text(text.to_owned()),
            },
            Err(_) => Data::Base64(base64::engine::general_purpose::STANDARD.encode(payload)),
        }
    }

    fn encoding(&self) -> Encoding {
        match self {
            Data::Json(_) => Encoding::Json,
            Data::Text(_) => Encoding::Text,
            Data::Base64(_) => Encoding::Base64,
        }
    }
}

impl Serialize for Data {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Data::Json(raw) => raw.serialize(serializer),
            Data::Text(text) | Data::Base64(text) => serializer.serialize_str(text),
        }
    }
}

#[derive(Serialize)]
struct MessageFrame<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    channel: std::borrow::Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pattern: Option<std::borrow::Cow<'a, str>>,
    data: Data,
    encoding: Encoding,
}

/// The JSON text of a `message` frame for `delivery`. Channel and pattern names are
/// shown as UTF-8 (invalid bytes replaced: gateway clients can only name UTF-8 channels,
/// but a pattern may match one published over RESP).
pub fn message_json(delivery: &Delivery) -> String {
    let data = Data::of(&delivery.message.payload);
    let frame = MessageFrame {
        kind: "message",
        channel: String::from_utf8_lossy(&delivery.message.channel),
        pattern: match &delivery.kind {
            DeliveryKind::Pattern(pattern) => Some(String::from_utf8_lossy(pattern)),
            DeliveryKind::Channel | DeliveryKind::Shard => None,
        },
        encoding: data.encoding(),
        data,
    };
    serde_json::to_string(&frame).unwrap_or_else(|_| String::from("{}"))
}

/// Slots of [`FrameCache`]: a few messages in flight at once keep their frames.
const FRAME_CACHE_SLOTS: usize = 16;

#[derive(Debug)]
struct CachedFrame {
    message: Weak<Message>,
    pattern: Option<Bytes>,
    frame: Utf8Bytes,
}

/// Encodes each published message's `message` frame once for all its gateway receivers
/// (the engine shares one [`Message`] between them): a fan-out to N browsers costs one
/// classification and serialization, not N.
///
/// Locking: one `parking_lot::Mutex` per slot, held only to compare or swap an entry,
/// never while encoding. A slot remembers its message weakly, so a cached frame never
/// outlives (or is mistaken for a frame of) a freed message.
#[derive(Debug, Default)]
pub struct FrameCache {
    slots: [Mutex<Option<CachedFrame>>; FRAME_CACHE_SLOTS],
}

impl FrameCache {
    /// The frame of `delivery`, from the cache or freshly encoded.
    pub fn frame(&self, delivery: &Delivery) -> Utf8Bytes {
        let pattern = match &delivery.kind {
            DeliveryKind::Pattern(pattern) => Some(pattern),
            DeliveryKind::Channel | DeliveryKind::Shard => None,
        };
        let slot = &self.slots[(Arc::as_ptr(&delivery.message) as usize >> 4) % FRAME_CACHE_SLOTS];
        if let Some(cached) = &*slot.lock() {
            let same_message = cached
                .message
                .upgrade()
                .is_some_and(|alive| Arc::ptr_eq(&alive, &delivery.message));
            if same_message && cached.pattern.as_ref() == pattern {
                return cached.frame.clone();
            }
        }
        let frame = Utf8Bytes::from(message_json(delivery));
        *slot.lock() = Some(CachedFrame {
            message: Arc::downgrade(&delivery.message),
            pattern: pattern.cloned(),
            frame: frame.clone(),
        });
        frame
    }
}

/// The bytes to publish for a client's `data` (and optional `encoding`).
pub fn payload_of(data: &Value, encoding: Option<&str>) -> Result<Bytes, RequestError> {
    let bad = |message: String| RequestError::bad_request("bad_encoding", message);
    match (encoding, data) {
        (None | Some("text"), Value::String(text)) => Ok(Bytes::from(text.clone().into_bytes())),
        (None | Some("json"), value) => Ok(Bytes::from(value.to_string().into_bytes())),
        (Some("base64"), Value::String(text)) => base64::engine::general_purpose::STANDARD
            .decode(text)
            .map(Bytes::from)
            .map_err(|err| bad(format!("'data' is not valid base64: {err}"))),
        (Some(kind @ ("text" | "base64")), _) => {
            Err(bad(format!("'encoding': '{kind}' needs a string 'data'")))
        }
        (Some(other), _) => Err(bad(format!(
            "unknown encoding '{other}' (text, json or base64)"
        ))),
    }
}

/// A request a WebSocket client sends.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum ClientFrame {
    /// Subscribe to channels and/or patterns.
    Subscribe {
        /// Exact channels.
        #[serde(default)]
        channels: Vec<String>,
        /// Redis glob patterns.
        #[serde(default)]
        patterns: Vec<String>,
        /// Echoed in the reply.
        #[serde(default)]
        id: Option<Value>,
    },
    /// Unsubscribe; with neither list, from everything.
    Unsubscribe {
        /// Exact channels.
        #[serde(default)]
        channels: Option<Vec<String>>,
        /// Patterns.
        #[serde(default)]
        patterns: Option<Vec<String>>,
        /// Echoed in the reply.
        #[serde(default)]
        id: Option<Value>,
    },
    /// Publish one payload.
    Publish {
        /// Target channel.
        channel: String,
        /// The payload (see the module docs).
        data: Value,
        /// `text`, `json` or `base64`.
        #[serde(default)]
        encoding: Option<String>,
        /// Echoed in the reply.
        #[serde(default)]
        id: Option<Value>,
    },
    /// Liveness check.
    Ping {
        /// Echoed in the reply.
        #[serde(default)]
        id: Option<Value>,
    },
}

/// A JSON frame the server sends in reply to a request (not a message): `type` first,
/// then `id` when the request had one, then `fields` (an object) in key order.
pub fn reply_json(kind: &str, id: Option<&Value>, fields: Value) -> String {
    let mut out = String::from("{\"type\":");
    out.push_str(&Value::String(kind.to_owned()).to_string());
    if let Some(id) = id {
        out.push_str(",\"id\":");
        out.push_str(&id.to_string());
    }
    if let Value::Object(map) = fields {
        for (key, value) in map {
            out.push(',');
            out.push_str(&Value::String(key).to_string());
            out.push(':');
            out.push_str(&value.to_string());
        }
    }
    out.push('}');
    out
}

/// An `error` frame with a stable `code`.
pub fn error_json(code: &str, message: &str, id: Option<&Value>) -> String {
    reply_json(
        "error",
        id,
        serde_json::json!({ "code": code, "message": message }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(payload: &[u8], kind: DeliveryKind) -> Delivery {
        Delivery {
            kind,
            message: Arc::new(Message::new(
                Bytes::from_static(b"orders:1"),
                Bytes::copy_from_slice(payload),
            )),
        }
    }

    fn frame(payload: &[u8]) -> Value {
        serde_json::from_str(&message_json(&delivery(payload, DeliveryKind::Channel)))
            .expect("valid JSON")
    }

    #[test]
    fn json_payloads_are_embedded_verbatim() {
        let json = message_json(&delivery(b"{\"a\": [1, 2]}", DeliveryKind::Channel));
        assert_eq!(
            json,
            r#"{"type":"message","channel":"orders:1","data":{"a": [1, 2]},"encoding":"json"}"#
        );
    }

    #[test]
    fn text_binary_and_patterns() {
        let text = frame(b"hello");
        assert_eq!(text["data"], "hello");
        assert_eq!(text["encoding"], "text");
        let binary = frame(&[0xff, 0x00, 0x80]);
        assert_eq!(binary["data"], "/wCA");
        assert_eq!(binary["encoding"], "base64");
        let pattern = message_json(&delivery(
            b"1",
            DeliveryKind::Pattern(Bytes::from_static(b"orders:*")),
        ));
        let pattern: Value = serde_json::from_str(&pattern).expect("json");
        assert_eq!(pattern["pattern"], "orders:*");
        assert_eq!(pattern["data"], 1);
        assert!(frame(b"x").get("pattern").is_none());
    }

    #[test]
    fn payloads_round_trip_through_publish() {
        for payload in [
            &b"hello"[..],
            b"{\"a\":1}",
            b"42",
            &[0xff, 0xfe, 0],
            b"",
            b"\"quoted\"",
        ] {
            let frame = frame(payload);
            let encoding = frame["encoding"].as_str().expect("encoding");
            let back = payload_of(&frame["data"], Some(encoding)).expect("payload");
            assert_eq!(&back[..], payload, "{frame}");
        }
    }

    #[test]
    fn publish_data_rules() {
        let plain = payload_of(&Value::String("hi".into()), None).expect("text");
        assert_eq!(&plain[..], b"hi");
        let object = payload_of(&serde_json::json!({"k": true}), None).expect("json");
        assert_eq!(&object[..], b"{\"k\":true}");
        assert!(payload_of(&Value::String("%%".into()), Some("base64")).is_err());
        assert!(payload_of(&Value::Bool(true), Some("base64")).is_err());
        assert!(payload_of(&Value::Bool(true), Some("rot13")).is_err());
    }

    #[test]
    fn the_frame_cache_encodes_once_per_message_and_kind() {
        let cache = FrameCache::default();
        let channel = delivery(b"{\"a\":1}", DeliveryKind::Channel);
        let first = cache.frame(&channel);
        let again = cache.frame(&channel.clone());
        assert_eq!(
            first.as_str().as_ptr(),
            again.as_str().as_ptr(),
            "shared, not re-encoded"
        );
        let by_pattern = Delivery {
            kind: DeliveryKind::Pattern(Bytes::from_static(b"orders:*")),
            message: Arc::clone(&channel.message),
        };
        let pattern_frame = cache.frame(&by_pattern);
        assert!(pattern_frame.as_str().contains("\"pattern\":\"orders:*\""));
        assert_eq!(cache.frame(&channel).as_str(), message_json(&channel));
        // Another message with the same content is encoded on its own.
        let other = delivery(b"2", DeliveryKind::Channel);
        assert_eq!(cache.frame(&other).as_str(), message_json(&other));
    }

    #[test]
    fn replies_start_with_their_type() {
        let reply = reply_json("pong", Some(&Value::from(3)), serde_json::json!({}));
        assert_eq!(reply, r#"{"type":"pong","id":3}"#);
        let error = error_json("forbidden", "no \"x\"", None);
        assert_eq!(
            error,
            r#"{"type":"error","code":"forbidden","message":"no \"x\""}"#
        );
        let parsed: Value = serde_json::from_str(&error).expect("valid JSON");
        assert_eq!(parsed["message"], "no \"x\"");
    }

    #[test]
    fn client_frames_parse_and_reject_unknown_fields() {
        let frame: ClientFrame =
            serde_json::from_str(r#"{"type":"subscribe","channels":["a"],"id":1}"#)
                .expect("subscribe");
        assert!(matches!(frame, ClientFrame::Subscribe { .. }));
        assert!(
            serde_json::from_str::<ClientFrame>(r#"{"type":"subscribe","chanels":[]}"#).is_err()
        );
        assert!(serde_json::from_str::<ClientFrame>(r#"{"type":"dance"}"#).is_err());
    }
}
