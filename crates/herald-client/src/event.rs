//! The event envelope shared with services in other languages, and its timestamp format.
//!
//! On the wire an event is JSON `{"type": "...", "timestamp": "<ISO-8601 UTC>", "data": ...}`.
//! Timestamps are written with millisecond precision and a `Z` suffix
//! (`2026-12-01T19:40:00.123Z`, what JavaScript's `toISOString()` writes) and read in any
//! RFC 3339 form (`+00:00`, other offsets, any fraction, as Python's `isoformat()`
//! writes), or without an offset, which is taken as UTC.

use chrono::{DateTime, NaiveDateTime, SecondsFormat, SubsecRound, Utc};
use serde::{Deserialize, Serialize};

/// One event: its type, when it was emitted, and its data.
///
/// ```
/// use herald_client::Event;
///
/// let event = Event::new("user.created", serde_json::json!({"id": 7}));
/// let wire = serde_json::to_value(&event).unwrap();
/// assert_eq!(wire["type"], "user.created");
/// assert_eq!(wire["data"]["id"], 7);
/// assert!(wire["timestamp"].as_str().unwrap().ends_with('Z'));
///
/// let from_python: Event = serde_json::from_str(
///     r#"{"type": "order.paid", "timestamp": "2026-12-01T19:40:00.123456+00:00", "data": {}}"#,
/// ).unwrap();
/// assert_eq!(from_python.event_type, "order.paid");
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event<T = serde_json::Value> {
    /// The event type, e.g. `user.created`; the channel is the bus prefix plus this.
    #[serde(rename = "type")]
    pub event_type: String,
    /// When it was emitted, in UTC.
    #[serde(with = "timestamp")]
    pub timestamp: DateTime<Utc>,
    /// The payload.
    pub data: T,
}

impl<T> Event<T> {
    /// An event of `event_type` carrying `data`, stamped now.
    pub fn new(event_type: impl Into<String>, data: T) -> Self {
        Event {
            event_type: event_type.into(),
            timestamp: now(),
            data,
        }
    }
}

/// The current time at the precision timestamps are written with (milliseconds), so a
/// value built here equals what a receiver decodes.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(3)
}

/// `serde(with)` helpers for ISO-8601 UTC timestamps as described in the module docs.
pub mod timestamp {
    use super::*;
    use serde::{Deserializer, Serializer};

    /// Writes `2026-12-01T19:40:00.123Z`.
    pub fn serialize<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    /// Reads RFC 3339 with any offset, or a naive ISO-8601 time taken as UTC.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("not an ISO-8601 timestamp: {text:?}")))
    }

    /// Parses a timestamp in the accepted forms.
    pub fn parse(text: &str) -> Option<DateTime<Utc>> {
        if let Ok(at) = DateTime::parse_from_rfc3339(text) {
            return Some(at.with_timezone(&Utc));
        }
        NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
            .ok()
            .map(|naive| naive.and_utc())
    }
}

#[cfg(test)]
mod tests {
    use super::timestamp::parse;
    use super::*;

    #[test]
    fn timestamps_round_trip_at_millisecond_precision() {
        let event = Event::new("t", 1);
        let text = serde_json::to_string(&event).unwrap();
        let back: Event<i32> = serde_json::from_str(&text).unwrap();
        assert_eq!(
            back.timestamp.timestamp_millis(),
            event.timestamp.timestamp_millis()
        );
    }

    #[test]
    fn foreign_timestamp_forms_are_accepted() {
        let utc = parse("2026-12-01T19:40:00.5Z").unwrap();
        assert_eq!(parse("2026-12-01T19:40:00.500000+00:00"), Some(utc));
        assert_eq!(parse("2026-12-01T20:40:00.5+01:00"), Some(utc));
        assert_eq!(parse("2026-12-01T19:40:00.5"), Some(utc));
        assert_eq!(parse("2026-12-01 19:40"), None);
        assert_eq!(parse(""), None);
    }

    #[test]
    fn an_envelope_without_data_or_with_a_bad_timestamp_is_an_error() {
        assert!(serde_json::from_str::<Event>(
            r#"{"type":"a","timestamp":"2026-12-01T19:40:00Z"}"#
        )
        .is_err());
        assert!(
            serde_json::from_str::<Event>(r#"{"type":"a","timestamp":"yesterday","data":1}"#)
                .is_err()
        );
    }
}
