//! String operations: SET with its options, the INCR family, APPEND and ranges.
//!
//! Each function applies one command's semantics to a [`Db`] and returns what the
//! server replies with; a key holding another type yields [`StoreError::WrongType`].

use bytes::{Bytes, BytesMut};

use crate::db::Db;
use crate::error::StoreError;
use crate::events;
use crate::value::{StringValue, Value};

/// The live string at `key`; `Err(WrongType)` for other types. A copy for a short string,
/// a shared buffer for a long one (see [`StringValue`]).
pub fn get(db: &mut Db, key: &[u8], now_ms: u64) -> Result<Option<StringValue>, StoreError> {
    match db.get(key, now_ms) {
        None => Ok(None),
        Some(Value::String(bytes)) => Ok(Some(bytes.clone())),
        Some(_) => Err(StoreError::WrongType),
    }
}

/// When SET writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SetCondition {
    /// Always.
    #[default]
    Always,
    /// Only if the key does not exist (NX).
    IfMissing,
    /// Only if the key exists (XX).
    IfExists,
}

/// What SET does with the expiry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SetExpiry {
    /// Remove any expiry (plain SET).
    #[default]
    Clear,
    /// Keep the current expiry (KEEPTTL).
    Keep,
    /// Expire at this Unix time in milliseconds (EX/PX/EXAT/PXAT, already absolute).
    At(u64),
}

/// SET's options.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SetOptions {
    /// NX / XX.
    pub condition: SetCondition,
    /// EX / PX / EXAT / PXAT / KEEPTTL.
    pub expiry: SetExpiry,
    /// GET: return the old value (which must be a string).
    pub get: bool,
}

/// What SET did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetOutcome {
    /// Whether the value was written (NX/XX may prevent it).
    pub written: bool,
    /// The previous string, when `get` was asked for.
    pub previous: Option<StringValue>,
}

/// `SET key value [NX|XX] [GET] [EX|PX|EXAT|PXAT|KEEPTTL]`.
pub fn set(
    db: &mut Db,
    key: &Bytes,
    value: Bytes,
    options: SetOptions,
    now_ms: u64,
) -> Result<SetOutcome, StoreError> {
    let previous = if options.get {
        get(db, key, now_ms)?
    } else {
        None
    };
    let exists = db.contains(key, now_ms);
    let allowed = match options.condition {
        SetCondition::Always => true,
        SetCondition::IfMissing => !exists,
        SetCondition::IfExists => exists,
    };
    if allowed {
        let value = Value::String(StringValue::copy_from_slice(&value));
        match options.expiry {
            SetExpiry::Clear => db.set(key, value, None),
            SetExpiry::Keep => db.set_keep_ttl(key, value, now_ms),
            SetExpiry::At(at) if at <= now_ms && !db.is_expiry_paused() => {
                // Already in the past: Redis stores and deletes at once; nothing remains.
                if db.remove(key, now_ms).is_some() {
                    db.notify(events::GENERIC, "del", key);
                }
                return Ok(SetOutcome {
                    written: true,
                    previous,
                });
            }
            SetExpiry::At(at) => db.set(key, value, Some(at)),
        }
        db.notify(events::STRING, "set", key);
        if matches!(options.expiry, SetExpiry::At(_)) {
            db.notify(events::GENERIC, "expire", key);
        }
    }
    Ok(SetOutcome {
        written: allowed,
        previous,
    })
}

/// Parses a stored or given integer exactly as Redis's `string2ll`: optional `-`, digits,
/// no leading zeros (except `0`), no spaces, no `+`, within `i64`.
pub fn parse_integer(bytes: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(bytes).ok()?;
    let digits = text.strip_prefix('-').unwrap_or(text);
    let well_formed = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && text != "-0";
    if !well_formed {
        return None;
    }
    text.parse().ok()
}

/// Parses a float as Redis's `string2ld`: no surrounding spaces, finite or ±inf, not NaN.
pub fn parse_float(bytes: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(bytes).ok()?;
    if text.is_empty() || text.trim() != text {
        return None;
    }
    let value: f64 = text.parse().ok()?;
    (!value.is_nan()).then_some(value)
}

/// INCRBY key delta (INCR, DECR, DECRBY are this with ±1 or a negated delta).
pub fn incr_by(db: &mut Db, key: &Bytes, delta: i64, now_ms: u64) -> Result<i64, StoreError> {
    let current = match get(db, key, now_ms)? {
        None => 0,
        Some(bytes) => parse_integer(&bytes).ok_or(StoreError::NotInteger)?,
    };
    let next = current.checked_add(delta).ok_or(StoreError::Overflow)?;
    let text = StringValue::copy_from_slice(itoa::Buffer::new().format(next).as_bytes());
    db.set_keep_ttl(key, Value::String(text), now_ms);
    db.notify(events::STRING, "incrby", key);
    Ok(next)
}

/// INCRBYFLOAT key delta; returns the new value as stored (shortest round-trip form).
pub fn incr_by_float(
    db: &mut Db,
    key: &Bytes,
    delta: f64,
    now_ms: u64,
) -> Result<Bytes, StoreError> {
    let current = match get(db, key, now_ms)? {
        None => 0.0,
        Some(bytes) => parse_float(&bytes).ok_or(StoreError::NotFloat)?,
    };
    let next = current + delta;
    if !next.is_finite() {
        return Err(StoreError::NanOrInfinity);
    }
    // Rust's f64 `Display` is the shortest form that reads back exactly, never with an
    // exponent and without a trailing `.0` (Redis prints long doubles with up to 17
    // digits; the two agree except where f64 and long double arithmetic differ).
    let text = Bytes::from(next.to_string());
    db.set_keep_ttl(
        key,
        Value::String(StringValue::from_bytes(text.clone())),
        now_ms,
    );
    Ok(text)
}

/// APPEND key value; returns the new length. `max_len` is `proto-max-bulk-len`.
pub fn append(
    db: &mut Db,
    key: &Bytes,
    suffix: &[u8],
    max_len: usize,
    now_ms: u64,
) -> Result<usize, StoreError> {
    let current = get(db, key, now_ms)?.unwrap_or_default();
    let new_len = current.len() + suffix.len();
    if new_len > max_len {
        return Err(StoreError::StringTooLong);
    }
    let mut joined = BytesMut::with_capacity(new_len);
    joined.extend_from_slice(&current);
    joined.extend_from_slice(suffix);
    db.set_keep_ttl(
        key,
        Value::String(StringValue::from_bytes(joined.freeze())),
        now_ms,
    );
    Ok(new_len)
}

/// STRLEN key.
pub fn strlen(db: &mut Db, key: &[u8], now_ms: u64) -> Result<usize, StoreError> {
    Ok(get(db, key, now_ms)?.map_or(0, |bytes| bytes.len()))
}

/// GETRANGE key start end, with Redis's negative-index and clamping rules.
pub fn get_range(
    db: &mut Db,
    key: &[u8],
    start: i64,
    end: i64,
    now_ms: u64,
) -> Result<Bytes, StoreError> {
    let Some(value) = get(db, key, now_ms)? else {
        return Ok(Bytes::new());
    };
    let len = value.len() as i64;
    if len == 0 || (start < 0 && end < 0 && start > end) {
        return Ok(Bytes::new());
    }
    let start = if start < 0 {
        (len + start).max(0)
    } else {
        start
    };
    let end = if end < 0 { (len + end).max(0) } else { end }.min(len - 1);
    if start > end || start >= len {
        return Ok(Bytes::new());
    }
    Ok(value.slice(start as usize..=end as usize))
}

/// SETRANGE key offset value; returns the new length (zero-padding as needed).
pub fn set_range(
    db: &mut Db,
    key: &Bytes,
    offset: usize,
    patch: &[u8],
    max_len: usize,
    now_ms: u64,
) -> Result<usize, StoreError> {
    let current = get(db, key, now_ms)?;
    if patch.is_empty() {
        // Redis does not create the key (or change it) for an empty patch.
        return Ok(current.map_or(0, |bytes| bytes.len()));
    }
    let end = offset
        .checked_add(patch.len())
        .ok_or(StoreError::StringTooLong)?;
    if end > max_len {
        return Err(StoreError::StringTooLong);
    }
    let current = current.unwrap_or_default();
    let mut value = BytesMut::from(&current[..]);
    if value.len() < end {
        value.resize(end, 0);
    }
    value[offset..end].copy_from_slice(patch);
    let new_len = value.len();
    db.set_keep_ttl(
        key,
        Value::String(StringValue::from_bytes(value.freeze())),
        now_ms,
    );
    Ok(new_len)
}

/// GETDEL key.
pub fn get_del(db: &mut Db, key: &[u8], now_ms: u64) -> Result<Option<StringValue>, StoreError> {
    let value = get(db, key, now_ms)?;
    if value.is_some() {
        db.remove(key, now_ms);
        db.notify(events::GENERIC, "del", key);
    }
    Ok(value)
}

/// GETEX key [EX|PX|EXAT|PXAT|PERSIST]: `expiry` is `None` to leave it, `Some(None)` to
/// persist, `Some(Some(at))` to expire at `at`.
pub fn get_ex(
    db: &mut Db,
    key: &[u8],
    expiry: Option<Option<u64>>,
    now_ms: u64,
) -> Result<Option<StringValue>, StoreError> {
    let value = get(db, key, now_ms)?;
    if value.is_none() {
        return Ok(None);
    }
    match expiry {
        None => {}
        Some(Some(at)) => {
            db.set_expiry(key, Some(at), now_ms);
            let event = if at <= now_ms { "del" } else { "expire" };
            db.notify(events::GENERIC, event, key);
        }
        Some(None) => {
            if matches!(db.expiry(key, now_ms), crate::db::Expiry::At(_)) {
                db.set_expiry(key, None, now_ms);
                db.notify(events::GENERIC, "persist", key);
            }
        }
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Expiry;

    fn has_expiry(db: &mut Db, key: &[u8], now_ms: u64) -> bool {
        matches!(db.expiry(key, now_ms), Expiry::At(_))
    }

    fn key(k: &'static str) -> Bytes {
        Bytes::from_static(k.as_bytes())
    }

    fn text(k: &'static str) -> StringValue {
        StringValue::from(k.as_bytes())
    }

    #[test]
    fn set_conditions_and_get_option() {
        let mut db = Db::default();
        let nx = SetOptions {
            condition: SetCondition::IfMissing,
            ..SetOptions::default()
        };
        assert!(set(&mut db, &key("a"), key("1"), nx, 0).unwrap().written);
        assert!(!set(&mut db, &key("a"), key("2"), nx, 0).unwrap().written);
        let xx_get = SetOptions {
            condition: SetCondition::IfExists,
            get: true,
            ..SetOptions::default()
        };
        let outcome = set(&mut db, &key("a"), key("3"), xx_get, 0).unwrap();
        assert_eq!(outcome.previous, Some(text("1")));
        assert_eq!(get(&mut db, b"a", 0).unwrap(), Some(text("3")));
        assert!(
            !set(&mut db, &key("b"), key("1"), xx_get, 0)
                .unwrap()
                .written
        );
    }

    #[test]
    fn stored_bytes_do_not_pin_the_request_buffer() {
        let mut db = Db::default();
        let request = Bytes::from(vec![b'x'; 64 * 1024]);
        let (k, v) = (request.slice(0..3), request.slice(3..6));
        set(&mut db, &k, v, SetOptions::default(), 0).unwrap();
        let stored = get(&mut db, b"xxx", 0).unwrap().unwrap();
        let buffer = request.as_ptr_range();
        assert!(
            !buffer.contains(&stored.as_ptr()),
            "the value points into the request"
        );
    }

    #[test]
    fn set_expiry_options() {
        let mut db = Db::default();
        let ex = SetOptions {
            expiry: SetExpiry::At(1_000),
            ..SetOptions::default()
        };
        set(&mut db, &key("a"), key("1"), ex, 0).unwrap();
        let keep = SetOptions {
            expiry: SetExpiry::Keep,
            ..SetOptions::default()
        };
        set(&mut db, &key("a"), key("2"), keep, 0).unwrap();
        assert!(has_expiry(&mut db, b"a", 0));
        set(&mut db, &key("a"), key("3"), SetOptions::default(), 0).unwrap();
        assert!(!has_expiry(&mut db, b"a", 0));
        let past = SetOptions {
            expiry: SetExpiry::At(5),
            ..SetOptions::default()
        };
        set(&mut db, &key("a"), key("4"), past, 10).unwrap();
        assert_eq!(get(&mut db, b"a", 10).unwrap(), None);
    }

    #[test]
    fn integers_like_string2ll() {
        assert_eq!(parse_integer(b"-42"), Some(-42));
        assert_eq!(parse_integer(b"0"), Some(0));
        for bad in [
            &b"-0"[..],
            b"01",
            b"+1",
            b" 1",
            b"",
            b"-",
            b"1.0",
            b"9223372036854775808",
        ] {
            assert_eq!(
                parse_integer(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn incr_family() {
        let mut db = Db::default();
        assert_eq!(incr_by(&mut db, &key("n"), 1, 0), Ok(1));
        assert_eq!(incr_by(&mut db, &key("n"), -5, 0), Ok(-4));
        set(
            &mut db,
            &key("big"),
            Bytes::from(i64::MAX.to_string()),
            SetOptions::default(),
            0,
        )
        .unwrap();
        assert_eq!(
            incr_by(&mut db, &key("big"), 1, 0),
            Err(StoreError::Overflow)
        );
        set(&mut db, &key("s"), key("abc"), SetOptions::default(), 0).unwrap();
        assert_eq!(
            incr_by(&mut db, &key("s"), 1, 0),
            Err(StoreError::NotInteger)
        );
        assert_eq!(incr_by_float(&mut db, &key("f"), 1.5, 0), Ok(key("1.5")));
        assert_eq!(incr_by_float(&mut db, &key("f"), 1.5, 0), Ok(key("3")));
        assert_eq!(incr_by_float(&mut db, &key("n"), 0.5, 0), Ok(key("-3.5")));
        set(&mut db, &key("inf"), key("inf"), SetOptions::default(), 0).unwrap();
        assert_eq!(
            incr_by_float(&mut db, &key("inf"), 1.0, 0),
            Err(StoreError::NanOrInfinity)
        );
    }

    #[test]
    fn incr_keeps_the_ttl() {
        let mut db = Db::default();
        let ex = SetOptions {
            expiry: SetExpiry::At(1_000),
            ..SetOptions::default()
        };
        set(&mut db, &key("n"), key("1"), ex, 0).unwrap();
        incr_by(&mut db, &key("n"), 1, 0).unwrap();
        assert!(has_expiry(&mut db, b"n", 0));
    }

    #[test]
    fn ranges() {
        let mut db = Db::default();
        set(
            &mut db,
            &key("s"),
            key("Hello World"),
            SetOptions::default(),
            0,
        )
        .unwrap();
        assert_eq!(get_range(&mut db, b"s", 0, 4, 0).unwrap(), key("Hello"));
        assert_eq!(get_range(&mut db, b"s", -5, -1, 0).unwrap(), key("World"));
        assert_eq!(get_range(&mut db, b"s", 5, 1, 0).unwrap(), key(""));
        assert_eq!(
            get_range(&mut db, b"s", 0, 100, 0).unwrap(),
            key("Hello World")
        );
        assert_eq!(get_range(&mut db, b"s", -1, -5, 0).unwrap(), key(""));
        assert_eq!(set_range(&mut db, &key("s"), 6, b"Redis", 100, 0), Ok(11));
        assert_eq!(get(&mut db, b"s", 0).unwrap(), Some(text("Hello Redis")));
        assert_eq!(set_range(&mut db, &key("z"), 3, b"x", 100, 0), Ok(4));
        assert_eq!(get(&mut db, b"z", 0).unwrap(), Some(text("\0\0\0x")));
        assert_eq!(set_range(&mut db, &key("e"), 3, b"", 100, 0), Ok(0));
        assert!(!db.contains(b"e", 0));
        assert_eq!(
            set_range(&mut db, &key("s"), 99, b"xx", 100, 0),
            Err(StoreError::StringTooLong)
        );
        assert_eq!(append(&mut db, &key("s"), b"!", 100, 0), Ok(12));
        assert_eq!(strlen(&mut db, b"s", 0), Ok(12));
    }

    #[test]
    fn getdel_and_getex() {
        let mut db = Db::default();
        set(&mut db, &key("a"), key("1"), SetOptions::default(), 0).unwrap();
        assert_eq!(
            get_ex(&mut db, b"a", Some(Some(500)), 0).unwrap(),
            Some(text("1"))
        );
        assert!(has_expiry(&mut db, b"a", 0));
        assert_eq!(
            get_ex(&mut db, b"a", Some(None), 0).unwrap(),
            Some(text("1"))
        );
        assert!(!has_expiry(&mut db, b"a", 0));
        assert_eq!(get_del(&mut db, b"a", 0).unwrap(), Some(text("1")));
        assert_eq!(get_del(&mut db, b"a", 0).unwrap(), None);
    }
}
