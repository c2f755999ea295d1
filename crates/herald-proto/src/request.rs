//! The resumable request parser: bytes from a client's read buffer in, [`Request`]s out.
//!
//! This module owns the client-to-server half of RESP as Redis reads it
//! (`processInputBuffer`, `processMultibulkBuffer` and `processInlineBuffer` in Redis
//! `src/networking.c`):
//!
//! - A request whose first byte is `*` is a multibulk: `*<count>\r\n` then `count`
//!   bulks `$<len>\r\n<payload>\r\n`. A count of zero or below is skipped silently.
//! - Anything else is an inline request: one line, ended by `\n` with an optional `\r`
//!   before it, split like a shell line by Redis `sdssplitargs` (see the private
//!   `inline` module). A line with no words is skipped silently.
//! - Lengths are read like Redis `string2ll`: an optional `-`, then `0` alone or a digit
//!   `1`-`9` followed by digits, nothing else (no `+`, no spaces, no leading zeros).
//! - The limits of [`Limits`] apply, and the fixed pre-authentication ones
//!   ([`UNAUTHENTICATED_MAX_MULTIBULK_LEN`], [`UNAUTHENTICATED_MAX_BULK_BYTES`]) while
//!   the caller says the client has not authenticated.
//!
//! The parser never copies a multibulk argument: it keeps offsets into the buffer and,
//! once the request is complete, splits exactly its bytes off with
//! `split_to(n).freeze()` and hands out [`Bytes::slice`]s of them. Inline arguments are
//! slices too unless quoting or escapes changed their bytes. Between calls it keeps what
//! it has already parsed, so a large bulk arriving in many reads is not rescanned: while
//! it waits for a payload a call costs one length comparison.
//!
//! It must not: panic on any input, allocate in proportion to a *declared* (rather than
//! received) size, or know about sockets, commands or authentication rules. The caller
//! decides what "authenticated" means: pass `true` when no password is configured, as
//! Redis's `authRequired()` is false then.
//!
//! # Where Herald differs from Redis
//! - Redis never looks at the two bytes after a bulk payload; Herald requires `\r\n`
//!   there and otherwise fails with `Protocol error: expected '\r\n' after bulk payload`,
//!   so that a client that miscounts a length gets an error instead of a desynchronised
//!   stream.
//! - Redis 7 finds line ends with `strchr`, which stops at a NUL byte, so a NUL before
//!   the line end makes it wait for more input until the line-length limit trips.
//!   Herald searches the bytes themselves (as Valkey does with `memchr`); inside an
//!   inline line a NUL still ends the words, as in `sdssplitargs`.
//!
//! Redis quirks kept on purpose: only the `\r` of a header line is looked for, the byte
//! after it is skipped unchecked (`*1\rX$4\r\nPING\r\n` is a valid request); and the
//! "too big" errors count what is buffered when no line end is, so a line longer than
//! the limit passes if its end arrived in the same read.

use std::ops::Range;

use bytes::{Buf, Bytes, BytesMut};

use crate::limits::{Limits, UNAUTHENTICATED_MAX_BULK_BYTES, UNAUTHENTICATED_MAX_MULTIBULK_LEN};

mod inline;

/// Most argument slots reserved up front for a multibulk. A header may declare up to
/// `i32::MAX` arguments; reserving that before the bytes arrive would let one line
/// allocate gigabytes. Redis caps its `argv` the same way (`min(multibulklen, 1024)`).
const ARGS_PREALLOC_MAX: usize = 1024;

/// Longest text `string2ll` accepts, in bytes: `-9223372036854775808` (Redis checks
/// `slen >= LONG_STR_SIZE`, 21). Longer text is rejected without reading it.
const INTEGER_TEXT_MAX_BYTES: usize = 20;

/// One client request: the command name and its arguments, zero-copy slices of the read
/// buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// Never empty: requests without words are skipped by the parser.
    args: Vec<Bytes>,
}

impl Request {
    /// The command name followed by its arguments, exactly as the client sent them.
    pub fn args(&self) -> &[Bytes] {
        &self.args
    }

    /// Takes the arguments, the command name first.
    pub fn into_args(self) -> Vec<Bytes> {
        self.args
    }

    /// The command name (the first argument), in the client's case.
    pub fn name(&self) -> &[u8] {
        self.args.first().map_or(&[], |name| name.as_ref())
    }

    /// The number of arguments, the command name included (at least 1).
    pub fn len(&self) -> usize {
        self.args.len()
    }

    /// Always `false`: the parser never yields a request without a command name.
    pub fn is_empty(&self) -> bool {
        self.args.is_empty()
    }
}

/// A request that breaks the protocol. Redis replies `-ERR <Display>` and closes the
/// connection; the `Display` text is Redis's, `Protocol error: ` prefix included.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    /// An inline line grew past the inline limit without a `\n`.
    #[error("Protocol error: too big inline request")]
    TooBigInlineRequest,
    /// An inline line has an unterminated quote, or a closing quote followed by
    /// something other than a space.
    #[error("Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
    /// A multibulk count line grew past the inline limit without a `\r`.
    #[error("Protocol error: too big mbulk count string")]
    TooBigMultibulkCount,
    /// The multibulk count is not an integer or exceeds the maximum.
    #[error("Protocol error: invalid multibulk length")]
    InvalidMultibulkLength,
    /// The multibulk count exceeds the pre-authentication maximum.
    #[error("Protocol error: unauthenticated multibulk length")]
    UnauthenticatedMultibulkLength,
    /// A multibulk element does not start with `$`; holds the byte found instead.
    #[error("{}", expected_dollar_message(*.0))]
    ExpectedDollar(u8),
    /// A bulk length line grew past the inline limit without a `\r`.
    #[error("Protocol error: too big bulk count string")]
    TooBigBulkCount,
    /// The bulk length is not an integer, is negative or exceeds `proto-max-bulk-len`.
    #[error("Protocol error: invalid bulk length")]
    InvalidBulkLength,
    /// The bulk length exceeds the pre-authentication maximum.
    #[error("Protocol error: unauthenticated bulk length")]
    UnauthenticatedBulkLength,
    /// The two bytes after a bulk payload are not `\r\n` (Herald only; see the module
    /// docs).
    #[error("Protocol error: expected '\\r\\n' after bulk payload")]
    MissingBulkCrlf,
}

/// Redis formats the byte with `%c`, then turns `\r` and `\n` into spaces so the error
/// stays one line. A byte above 0x7f is sent raw by Redis; a `String` cannot hold it,
/// so it becomes the Latin-1 character of the same value.
fn expected_dollar_message(byte: u8) -> String {
    let shown = match byte {
        b'\r' | b'\n' => ' ',
        other => char::from(other),
    };
    format!("Protocol error: expected '$', got '{shown}'")
}

/// Parses requests out of one connection's read buffer, keeping its place between calls.
///
/// Contract: between calls the caller only appends to the buffer (or leaves it alone),
/// and after an error it closes the connection, as Redis does. The parser then starts
/// afresh, and the buffer still holds the bad request.
#[derive(Default, Debug)]
pub struct RequestParser {
    state: State,
    scan: LineScan,
    /// The buffer length at the end of the last call, for [`Self::pending_bulk_hint`].
    buffered: usize,
    /// The payload ranges of the multibulk being read; kept between requests so that a
    /// request allocates nothing for them.
    spans: Vec<Range<usize>>,
    /// An argument vector handed back by [`Self::recycle`], reused by the next request.
    spare: Vec<Bytes>,
}

/// Where the parser stands in the request at the front of the buffer. Offsets count from
/// the start of the buffer, which is the start of that request: nothing is consumed
/// until the request is complete.
#[derive(Default, Debug)]
enum State {
    /// Nothing of the next request has been looked at.
    #[default]
    Idle,
    /// Waiting for the `\n` that ends an inline line.
    Inline,
    /// Waiting for the `\r` that ends the `*<count>` line.
    MultibulkCount,
    /// Reading the bulks of a multibulk.
    Bulks(Multibulk),
}

/// A multibulk whose count is known.
#[derive(Debug)]
struct Multibulk {
    /// Bulks still to read.
    remaining: usize,
    /// Offset of the first byte not parsed yet.
    pos: usize,
    /// Once the `$<len>` line of the next bulk is parsed: its payload length (the payload
    /// starts at `pos`). The payloads read so far are in [`RequestParser::spans`].
    bulk_len: Option<usize>,
}

/// Searching for a line end without reading any byte twice.
#[derive(Default, Debug)]
struct LineScan {
    /// Everything before this offset has been searched for the awaited line end and
    /// holds none (or the awaited `\r` is here and its next byte has not arrived).
    searched: usize,
    /// Bytes examined by searches over the parser's life; tests check it stays small.
    #[cfg(test)]
    bytes_examined: usize,
}

impl LineScan {
    /// The offset of the first `byte` at or after `from`; on a miss, remembers that the
    /// whole buffer has been searched.
    fn find(&mut self, buf: &[u8], from: usize, byte: u8) -> Option<usize> {
        let rest = buf.get(from..).unwrap_or_default();
        let found = rest.iter().position(|&b| b == byte);
        #[cfg(test)]
        {
            self.bytes_examined += found.map_or(rest.len(), |i| i + 1);
        }
        match found {
            Some(i) => Some(from + i),
            None => {
                self.searched = buf.len();
                None
            }
        }
    }
}

/// What one state step achieved.
enum Step {
    /// The buffer ends inside the request.
    NeedMore,
    /// The state moved on: take the next step.
    Again,
    /// A request without words of this many bytes: drop them and go on.
    Skip(usize),
    /// A complete request, its bytes already split off the buffer.
    Done(Request),
}

impl RequestParser {
    /// Parses the next complete request from `buf`, consuming exactly its bytes.
    ///
    /// `Ok(None)`: need more bytes (partial state kept; call again after appending).
    /// Requests without words (empty inline lines, `*0`, `*-1`) are consumed on the way
    /// and never returned. `authenticated == false` applies the tighter pre-auth limits.
    pub fn parse(
        &mut self,
        buf: &mut BytesMut,
        limits: &Limits,
        authenticated: bool,
    ) -> Result<Option<Request>, ProtocolError> {
        let result = self.parse_next(buf, limits, authenticated);
        if result.is_err() {
            self.reset();
        }
        self.buffered = buf.len();
        result
    }

    /// Bytes the parser is currently waiting for beyond what is buffered (a hint for
    /// `reserve()`), 0 if unknown.
    ///
    /// Known only while a bulk payload is awaited: then it is the rest of that payload
    /// and its `\r\n`, as of the end of the last [`Self::parse`] call.
    pub fn pending_bulk_hint(&self) -> usize {
        match &self.state {
            State::Bulks(Multibulk {
                pos,
                bulk_len: Some(len),
                ..
            }) => pos
                .saturating_add(*len)
                .saturating_add(2)
                .saturating_sub(self.buffered),
            _ => 0,
        }
    }

    fn reset(&mut self) {
        self.state = State::Idle;
        self.scan.searched = 0;
        self.spans.clear();
        // A request with a million arguments must not leave its ranges behind.
        if self.spans.capacity() > ARGS_PREALLOC_MAX {
            self.spans = Vec::new();
        }
    }

    /// Gives a request's argument vector back for the next request to fill, so that a
    /// steady stream of requests allocates none. The arguments are dropped here.
    pub fn recycle(&mut self, request: Request) {
        let mut args = request.args;
        if args.capacity() <= ARGS_PREALLOC_MAX {
            args.clear();
            self.spare = args;
        }
    }

    /// Frees the vectors kept for reuse (a connection going idle calls it, as it gives
    /// back its read buffer: an idle subscriber holds neither). The reuse that matters
    /// is within a pipelined read, which does not go idle between requests.
    pub fn release_spares(&mut self) {
        if matches!(self.state, State::Idle) {
            self.spans = Vec::new();
        }
        self.spare = Vec::new();
    }

    /// An empty argument vector with room for `count`: the recycled one when there is.
    fn args_vec(&mut self, count: usize) -> Vec<Bytes> {
        let mut args = std::mem::take(&mut self.spare);
        args.reserve(count);
        args
    }

    /// Splits the complete multibulk ending at `end` off the buffer. Each argument but
    /// the last is a slice of it (a reference count each); the last takes the split
    /// bytes themselves, which saves the count the split's own handle would have
    /// dropped: on a three-argument PUBLISH, six atomic operations instead of eight.
    fn take_multibulk(&mut self, buf: &mut BytesMut, end: usize) -> Request {
        let mut frozen = buf.split_to(end.min(buf.len())).freeze();
        let mut args = self.args_vec(self.spans.len());
        // Every range ends at or before `end`, which the caller checked is buffered.
        if let Some((last, rest)) = self.spans.split_last() {
            args.extend(rest.iter().map(|range| frozen.slice(range.clone())));
            frozen.truncate(last.end);
            frozen.advance(last.start.min(frozen.len()));
            args.push(frozen);
        }
        Request { args }
    }

    fn parse_next(
        &mut self,
        buf: &mut BytesMut,
        limits: &Limits,
        authenticated: bool,
    ) -> Result<Option<Request>, ProtocolError> {
        loop {
            let step = match &self.state {
                State::Idle => {
                    self.state = match buf.first() {
                        None => return Ok(None),
                        Some(b'*') => State::MultibulkCount,
                        Some(_) => State::Inline,
                    };
                    continue;
                }
                State::Inline => self.inline(buf, limits)?,
                State::MultibulkCount => self.multibulk_count(buf, limits, authenticated)?,
                State::Bulks(_) => self.bulks(buf, limits, authenticated)?,
            };
            match step {
                Step::NeedMore => return Ok(None),
                Step::Again => {}
                Step::Skip(n) => {
                    buf.advance(n.min(buf.len()));
                    self.reset();
                }
                Step::Done(request) => {
                    self.reset();
                    return Ok(Some(request));
                }
            }
        }
    }

    /// `processInlineBuffer`: one line, split by `sdssplitargs`.
    fn inline(&mut self, buf: &mut BytesMut, limits: &Limits) -> Result<Step, ProtocolError> {
        let Some(newline) = self.scan.find(buf, self.scan.searched, b'\n') else {
            // Redis measures everything buffered, not just the line: same thing here,
            // since the line is the whole buffer when no `\n` is in it.
            if buf.len() > limits.max_inline_len {
                return Err(ProtocolError::TooBigInlineRequest);
            }
            return Ok(Step::NeedMore);
        };
        let has_cr = newline > 0 && buf.get(newline - 1) == Some(&b'\r');
        let line_end = if has_cr { newline - 1 } else { newline };
        let words = inline::split(buf.get(..line_end).unwrap_or_default())?;
        let consumed = newline + 1;
        if words.is_empty() {
            return Ok(Step::Skip(consumed));
        }
        let frozen = buf.split_to(consumed.min(buf.len())).freeze();
        let mut args = self.args_vec(words.len());
        args.extend(words.into_iter().map(|word| word.into_bytes(&frozen)));
        Ok(Step::Done(Request { args }))
    }

    /// The `*<count>\r?` line at the start of a multibulk.
    fn multibulk_count(
        &mut self,
        buf: &mut BytesMut,
        limits: &Limits,
        authenticated: bool,
    ) -> Result<Step, ProtocolError> {
        let Some(cr) = self.scan.find(buf, self.scan.searched, b'\r') else {
            if buf.len() > limits.max_inline_len {
                return Err(ProtocolError::TooBigMultibulkCount);
            }
            return Ok(Step::NeedMore);
        };
        // Redis waits for one byte after the `\r` and skips it without looking.
        if cr + 1 >= buf.len() {
            self.scan.searched = cr;
            return Ok(Step::NeedMore);
        }
        let max = i64::try_from(limits.max_multibulk_len).unwrap_or(i64::MAX);
        let count = match parse_integer(buf.get(1..cr).unwrap_or_default()) {
            Some(count) if count <= max => count,
            _ => return Err(ProtocolError::InvalidMultibulkLength),
        };
        if !authenticated && count > UNAUTHENTICATED_MAX_MULTIBULK_LEN as i64 {
            return Err(ProtocolError::UnauthenticatedMultibulkLength);
        }
        let pos = cr + 2;
        // Any count below one (`*0`, `*-1`, even `*-5`) is a request without words.
        let Ok(remaining @ 1..) = usize::try_from(count) else {
            return Ok(Step::Skip(pos));
        };
        self.scan.searched = pos;
        // Empty: `reset` ran after the last request.
        self.spans.reserve(remaining.min(ARGS_PREALLOC_MAX));
        self.state = State::Bulks(Multibulk {
            remaining,
            pos,
            bulk_len: None,
        });
        Ok(Step::Again)
    }

    /// The `$<len>\r?<payload>\r\n` elements of a multibulk, as many as are buffered.
    fn bulks(
        &mut self,
        buf: &mut BytesMut,
        limits: &Limits,
        authenticated: bool,
    ) -> Result<Step, ProtocolError> {
        let State::Bulks(multibulk) = &mut self.state else {
            return Ok(Step::NeedMore); // not reached: only called in this state
        };
        loop {
            if multibulk.remaining == 0 {
                // Every range ends at or before `pos`, and `pos` at or before the end.
                if multibulk.pos > buf.len() {
                    return Ok(Step::NeedMore);
                }
                let end = multibulk.pos;
                return Ok(Step::Done(self.take_multibulk(buf, end)));
            }
            match multibulk.bulk_len {
                Some(len) => {
                    let payload_end = multibulk.pos.saturating_add(len);
                    let next = payload_end.saturating_add(2);
                    // The only work while a big payload trickles in.
                    if buf.len() < next {
                        return Ok(Step::NeedMore);
                    }
                    if buf.get(payload_end..next) != Some(b"\r\n".as_slice()) {
                        return Err(ProtocolError::MissingBulkCrlf);
                    }
                    self.spans.push(multibulk.pos..payload_end);
                    multibulk.pos = next;
                    multibulk.remaining -= 1;
                    multibulk.bulk_len = None;
                    self.scan.searched = next;
                }
                None => {
                    let from = self.scan.searched.max(multibulk.pos);
                    let Some(cr) = self.scan.find(buf, from, b'\r') else {
                        if buf.len().saturating_sub(multibulk.pos) > limits.max_inline_len {
                            return Err(ProtocolError::TooBigBulkCount);
                        }
                        return Ok(Step::NeedMore);
                    };
                    if cr + 1 >= buf.len() {
                        self.scan.searched = cr;
                        return Ok(Step::NeedMore);
                    }
                    // `cr >= pos` and `cr < len`, so there is a byte at `pos`.
                    let first = buf.get(multibulk.pos).copied().unwrap_or(b'\r');
                    if first != b'$' {
                        return Err(ProtocolError::ExpectedDollar(first));
                    }
                    let text = buf.get(multibulk.pos + 1..cr).unwrap_or_default();
                    let len = parse_integer(text)
                        .and_then(|len| usize::try_from(len).ok())
                        .filter(|&len| len <= limits.max_bulk_len)
                        .ok_or(ProtocolError::InvalidBulkLength)?;
                    if !authenticated && len > UNAUTHENTICATED_MAX_BULK_BYTES {
                        return Err(ProtocolError::UnauthenticatedBulkLength);
                    }
                    multibulk.pos = cr + 2;
                    multibulk.bulk_len = Some(len);
                }
            }
        }
    }
}

/// Redis `string2ll`: the whole text must be a canonical decimal `i64`: an optional
/// `-`, then `0` alone or `1`-`9` and more digits. No `+`, spaces or leading zeros.
fn parse_integer(text: &[u8]) -> Option<i64> {
    if text == b"0" {
        return Some(0);
    }
    if text.len() > INTEGER_TEXT_MAX_BYTES {
        return None;
    }
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    // Accumulate negatively so that i64::MIN, whose magnitude has no positive i64, fits.
    let mut value: i64 = 0;
    for &digit in digits {
        if !digit.is_ascii_digit() {
            return None;
        }
        value = value
            .checked_mul(10)?
            .checked_sub(i64::from(digit - b'0'))?;
    }
    if negative {
        Some(value)
    } else {
        value.checked_neg()
    }
}

#[cfg(test)]
mod tests;
