//! Stream entry IDs (`<ms>-<seq>`): parsing in the forms each command accepts, ordering,
//! and the successor/predecessor steps exclusive range bounds need.
//!
//! Parsing follows Redis's `streamGenericParseIDOrReply`: `-` and `+` are the smallest and
//! largest IDs (unless the caller is strict), a bare `<ms>` takes a default sequence, and
//! anything else is `ERR Invalid stream ID specified as stream command argument`.

use std::fmt;

use crate::error::StoreError;

/// Longest ID argument Redis parses (`STREAM_ID_STR_LEN` bound in `streamParseID`).
const MAX_ID_ARG_BYTES: usize = 127;

/// One entry ID: milliseconds and a sequence number, ordered as the pair.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId {
    /// The millisecond part.
    pub ms: u64,
    /// The sequence within the millisecond.
    pub seq: u64,
}

impl StreamId {
    /// `0-0`, the ID below every entry.
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    /// `18446744073709551615-18446744073709551615`.
    pub const MAX: StreamId = StreamId {
        ms: u64::MAX,
        seq: u64::MAX,
    };

    /// An ID from its parts.
    pub const fn new(ms: u64, seq: u64) -> StreamId {
        StreamId { ms, seq }
    }

    /// The next ID up; `None` after [`StreamId::MAX`].
    pub fn successor(self) -> Option<StreamId> {
        match self.seq.checked_add(1) {
            Some(seq) => Some(StreamId { ms: self.ms, seq }),
            None => self.ms.checked_add(1).map(|ms| StreamId { ms, seq: 0 }),
        }
    }

    /// The next ID down; `None` before [`StreamId::MIN`].
    pub fn predecessor(self) -> Option<StreamId> {
        match self.seq.checked_sub(1) {
            Some(seq) => Some(StreamId { ms: self.ms, seq }),
            None => self
                .ms
                .checked_sub(1)
                .map(|ms| StreamId { ms, seq: u64::MAX }),
        }
    }

    /// True for `0-0`.
    pub fn is_zero(self) -> bool {
        self == StreamId::MIN
    }

    /// The ID as text, `<ms>-<seq>`, formatted without allocating (an XADD reply and
    /// every entry XRANGE or XREAD returns write one).
    pub fn text(self) -> IdText {
        let mut text = IdText {
            bytes: [0; ID_TEXT_MAX_BYTES],
            len: 0,
        };
        text.push(itoa::Buffer::new().format(self.ms).as_bytes());
        text.push(b"-");
        text.push(itoa::Buffer::new().format(self.seq).as_bytes());
        text
    }
}

/// Longest ID text: two 20-digit numbers and the dash.
const ID_TEXT_MAX_BYTES: usize = 41;

/// An ID's text on the stack ([`StreamId::text`]).
#[derive(Clone, Copy)]
pub struct IdText {
    bytes: [u8; ID_TEXT_MAX_BYTES],
    len: usize,
}

impl IdText {
    /// The text's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    fn push(&mut self, part: &[u8]) {
        let end = self.len + part.len();
        if let Some(room) = self.bytes.get_mut(self.len..end) {
            room.copy_from_slice(part);
            self.len = end;
        }
    }
}

impl fmt::Debug for IdText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.as_bytes()))
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// How an XADD names the ID of its entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddId {
    /// `*`: the current time, or one sequence past the last ID when the clock is behind.
    Auto,
    /// `<ms>-*`: this millisecond, the next free sequence in it.
    AutoSeq(u64),
    /// `<ms>-<seq>` (or a bare `<ms>`, sequence 0): exactly this ID.
    Explicit(StreamId),
}

fn invalid() -> StoreError {
    StoreError::InvalidStreamId
}

/// An unsigned decimal as Redis's `string2ull` reads it (digits only, `u64` range).
fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Parses `<ms>[-<seq>]`, a bare `<ms>` taking `missing_seq`; `-`/`+` are allowed unless
/// `strict`.
pub fn parse_id(arg: &[u8], missing_seq: u64, strict: bool) -> Result<StreamId, StoreError> {
    if arg.len() > MAX_ID_ARG_BYTES {
        return Err(invalid());
    }
    if !strict {
        match arg {
            b"-" => return Ok(StreamId::MIN),
            b"+" => return Ok(StreamId::MAX),
            _ => {}
        }
    }
    match arg.iter().position(|&b| b == b'-') {
        None => Ok(StreamId::new(
            parse_u64(arg).ok_or_else(invalid)?,
            missing_seq,
        )),
        Some(dash) => {
            let ms = parse_u64(&arg[..dash]).ok_or_else(invalid)?;
            let seq = parse_u64(&arg[dash + 1..]).ok_or_else(invalid)?;
            Ok(StreamId::new(ms, seq))
        }
    }
}

/// Parses a strict ID (no `-`/`+`), a bare `<ms>` meaning `<ms>-0` (XDEL, XACK, XCLAIM,
/// XSETID, XGROUP).
pub fn parse_strict(arg: &[u8]) -> Result<StreamId, StoreError> {
    parse_id(arg, 0, true)
}

/// Parses XADD's ID argument: `*`, `<ms>-*`, `<ms>-<seq>` or `<ms>`.
pub fn parse_add_id(arg: &[u8]) -> Result<AddId, StoreError> {
    if arg == b"*" {
        return Ok(AddId::Auto);
    }
    if let Some(ms) = arg.strip_suffix(b"-*") {
        if arg.len() > MAX_ID_ARG_BYTES {
            return Err(invalid());
        }
        return parse_u64(ms).map(AddId::AutoSeq).ok_or_else(invalid);
    }
    parse_strict(arg).map(AddId::Explicit)
}

/// Which end of an interval a bound is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoundSide {
    /// The start: a bare `<ms>` means `<ms>-0`, `(` steps up.
    Start,
    /// The end: a bare `<ms>` means `<ms>-<max>`, `(` steps down.
    End,
}

/// Parses an XRANGE/XREVRANGE/XPENDING/XAUTOCLAIM bound, with `(` for exclusive ones.
/// `Ok(None)` means the interval is empty (an exclusive bound past the end of the ID
/// space); Redis replies with its "invalid start/end ID" error in that case, so callers
/// turn `None` into [`StoreError::InvalidIntervalStart`] / [`StoreError::InvalidIntervalEnd`].
pub fn parse_bound(arg: &[u8], side: BoundSide) -> Result<StreamId, StoreError> {
    let missing_seq = match side {
        BoundSide::Start => 0,
        BoundSide::End => u64::MAX,
    };
    match arg.strip_prefix(b"(") {
        None => parse_id(arg, missing_seq, false),
        Some(rest) => {
            let id = parse_id(rest, missing_seq, true)?;
            match side {
                BoundSide::Start => id.successor().ok_or(StoreError::InvalidIntervalStart),
                BoundSide::End => id.predecessor().ok_or(StoreError::InvalidIntervalEnd),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn text_is_the_display_form(ms: u64, seq: u64) {
            let id = StreamId::new(ms, seq);
            let (text, shown) = (id.text(), id.to_string());
            prop_assert_eq!(text.as_bytes(), shown.as_bytes());
        }
    }

    #[test]
    fn text_of_the_extremes() {
        assert_eq!(StreamId::MIN.text().as_bytes(), b"0-0");
        assert_eq!(
            StreamId::MAX.text().as_bytes(),
            b"18446744073709551615-18446744073709551615"
        );
    }

    #[test]
    fn forms_redis_accepts() {
        assert_eq!(parse_id(b"5-3", 0, false), Ok(StreamId::new(5, 3)));
        assert_eq!(parse_id(b"5", 7, false), Ok(StreamId::new(5, 7)));
        assert_eq!(parse_id(b"-", 0, false), Ok(StreamId::MIN));
        assert_eq!(parse_id(b"+", 0, false), Ok(StreamId::MAX));
        assert_eq!(parse_id(b"+", 0, true), Err(StoreError::InvalidStreamId));
        assert_eq!(parse_id(b"0005-01", 0, true), Ok(StreamId::new(5, 1)));
        for bad in [
            &b""[..],
            b"a",
            b"1-",
            b"-1",
            b"1-2-3",
            b"1-a",
            b"18446744073709551616",
        ] {
            assert_eq!(
                parse_id(bad, 0, true),
                Err(StoreError::InvalidStreamId),
                "{bad:?}"
            );
        }
        assert_eq!(parse_add_id(b"*"), Ok(AddId::Auto));
        assert_eq!(parse_add_id(b"12-*"), Ok(AddId::AutoSeq(12)));
        assert_eq!(
            parse_add_id(b"12"),
            Ok(AddId::Explicit(StreamId::new(12, 0)))
        );
        assert_eq!(parse_add_id(b"*-1"), Err(StoreError::InvalidStreamId));
        assert_eq!(parse_add_id(b"-*"), Err(StoreError::InvalidStreamId));
    }

    #[test]
    fn exclusive_bounds_step_and_overflow() {
        assert_eq!(
            parse_bound(b"(5-1", BoundSide::Start),
            Ok(StreamId::new(5, 2))
        );
        assert_eq!(
            parse_bound(b"(5", BoundSide::End),
            Ok(StreamId::new(5, u64::MAX - 1)),
            "a bare end is <ms>-<max>, one below it is excluded"
        );
        assert_eq!(
            parse_bound(b"(5-18446744073709551615", BoundSide::Start),
            Ok(StreamId::new(6, 0))
        );
        assert_eq!(
            parse_bound(
                b"(18446744073709551615-18446744073709551615",
                BoundSide::Start
            ),
            Err(StoreError::InvalidIntervalStart)
        );
        assert_eq!(
            parse_bound(b"(0-0", BoundSide::End),
            Err(StoreError::InvalidIntervalEnd)
        );
        assert_eq!(
            parse_bound(b"(-", BoundSide::Start),
            Err(StoreError::InvalidStreamId)
        );
        assert_eq!(
            parse_bound(b"5", BoundSide::End),
            Ok(StreamId::new(5, u64::MAX))
        );
    }

    fn any_id() -> impl Strategy<Value = StreamId> {
        prop_oneof![
            (any::<u64>(), any::<u64>()).prop_map(|(ms, seq)| StreamId::new(ms, seq)),
            (0u64..3, prop_oneof![Just(0u64), Just(u64::MAX), 0u64..3])
                .prop_map(|(ms, seq)| StreamId::new(ms, seq)),
            Just(StreamId::MAX),
        ]
    }

    proptest! {
        #[test]
        fn display_round_trips(id in any_id()) {
            prop_assert_eq!(parse_strict(id.to_string().as_bytes()), Ok(id));
        }

        #[test]
        fn order_is_the_numeric_pair(a in any_id(), b in any_id()) {
            let as_u128 = |id: StreamId| (u128::from(id.ms) << 64) | u128::from(id.seq);
            prop_assert_eq!(a.cmp(&b), as_u128(a).cmp(&as_u128(b)));
        }

        #[test]
        fn successor_and_predecessor_are_adjacent(id in any_id()) {
            if let Some(next) = id.successor() {
                prop_assert!(next > id);
                prop_assert_eq!(next.predecessor(), Some(id));
            } else {
                prop_assert_eq!(id, StreamId::MAX);
            }
            if let Some(prev) = id.predecessor() {
                prop_assert!(prev < id);
                prop_assert_eq!(prev.successor(), Some(id));
            } else {
                prop_assert_eq!(id, StreamId::MIN);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(arg in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = parse_id(&arg, 0, false);
            let _ = parse_add_id(&arg);
            let _ = parse_bound(&arg, BoundSide::Start);
            let _ = parse_bound(&arg, BoundSide::End);
        }
    }
}
