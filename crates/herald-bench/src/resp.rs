//! A minimal raw RESP2 client over tokio: pipelined writes into one buffer, and a reader
//! that parses replies and pub/sub pushes straight out of its read buffer.
//!
//! Written for speed, not generality: pushes (`message`/`pmessage`) are decoded without
//! allocating ([`Conn::next_push`]); ordinary replies into a small owned [`Reply`] tree.

use std::ops::Range;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::BenchError;

/// Deepest reply nesting we accept (server replies nest at most two levels).
const MAX_DEPTH: usize = 8;
/// Initial read buffer; grows when one reply is larger.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// One decoded RESP reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`
    Simple(Vec<u8>),
    /// `-ERR ...`
    Error(String),
    /// `:1`
    Int(i64),
    /// `$3\r\nfoo` or the null bulk.
    Bulk(Option<Vec<u8>>),
    /// `*2 ...` (or a RESP3 push `>`), or the null array.
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The integer, if this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Reply::Int(n) => Some(*n),
            _ => None,
        }
    }
}

/// A pub/sub push decoded in place: its kind and payload borrow the read buffer.
#[derive(Debug)]
pub struct Push<'a> {
    /// `message`, `pmessage`, `subscribe`, ...
    pub kind: &'a [u8],
    /// The last element: the payload of a message, or the count of a (un)subscribe.
    pub last: PushTail<'a>,
    /// When the read that brought its last byte returned ([`crate::scenario::now_ns`]):
    /// the push's arrival, whatever parsing the pushes before it in that read cost.
    pub read_ns: u64,
}

/// The last element of a push.
#[derive(Debug)]
pub enum PushTail<'a> {
    /// A bulk string (the message payload).
    Bulk(&'a [u8]),
    /// An integer (the subscription count in a confirmation).
    Int(i64),
}

/// One connection: a TCP stream, a write buffer flushed explicitly, a read buffer.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    addr: String,
    wbuf: Vec<u8>,
    rbuf: Vec<u8>,
    /// Start of unparsed bytes in `rbuf`.
    rpos: usize,
    /// End of received bytes in `rbuf` (the rest is spare room).
    rend: usize,
    /// When the last read returned ([`crate::scenario::now_ns`]).
    read_ns: u64,
}

impl Conn {
    /// Connects (TCP_NODELAY), bounded by `timeout`.
    pub async fn connect(addr: &str, timeout: Duration) -> Result<Conn, BenchError> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| BenchError::Timeout {
                what: format!("a connection to {addr}"),
                after: timeout,
            })?
            .map_err(|source| BenchError::Connect {
                addr: addr.to_owned(),
                source,
            })?;
        stream.set_nodelay(true).map_err(|source| BenchError::Io {
            addr: addr.to_owned(),
            source,
        })?;
        Ok(Conn {
            stream,
            addr: addr.to_owned(),
            wbuf: Vec::with_capacity(READ_CHUNK_BYTES),
            rbuf: vec![0; READ_CHUNK_BYTES],
            rpos: 0,
            rend: 0,
            read_ns: 0,
        })
    }

    /// The write buffer, for callers that encode commands themselves.
    pub fn wbuf(&mut self) -> &mut Vec<u8> {
        &mut self.wbuf
    }

    /// Appends one command to the write buffer (not sent until [`Conn::flush`]).
    pub fn queue(&mut self, args: &[&[u8]]) {
        encode(&mut self.wbuf, args);
    }

    /// Writes out the write buffer.
    pub async fn flush(&mut self) -> Result<(), BenchError> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        let result = self.stream.write_all(&self.wbuf).await;
        self.wbuf.clear();
        result.map_err(|source| self.io(source))
    }

    /// Sends one command and reads its reply; an error reply becomes [`BenchError::ServerError`].
    pub async fn call(&mut self, args: &[&[u8]], timeout: Duration) -> Result<Reply, BenchError> {
        self.queue(args);
        self.flush().await?;
        match self.read_reply(timeout).await? {
            Reply::Error(e) => Err(BenchError::ServerError(e)),
            reply => Ok(reply),
        }
    }

    /// Reads the next reply, waiting at most `timeout`.
    pub async fn read_reply(&mut self, timeout: Duration) -> Result<Reply, BenchError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(reply) = self.try_reply()? {
                return Ok(reply);
            }
            self.fill(deadline, timeout, "a reply").await?;
        }
    }

    /// Parses one reply already buffered, without reading the socket.
    pub fn try_reply(&mut self) -> Result<Option<Reply>, BenchError> {
        match parse(&self.rbuf[self.rpos..self.rend], 0)? {
            Some((reply, used)) => {
                self.rpos += used;
                Ok(Some(reply))
            }
            None => Ok(None),
        }
    }

    /// Reads the next push (a reply shaped `[kind, ..., last]`), waiting at most `timeout`.
    /// Returns `Ok(None)` on timeout so that callers can decide whether that is an error.
    ///
    /// A push already buffered costs no clock read: the deadline is computed only when
    /// the socket has to be read (at millions of pushes a second, two clock reads per
    /// push were a sixth of the load generator's time).
    pub async fn next_push(&mut self, timeout: Duration) -> Result<Option<Push<'_>>, BenchError> {
        let mut deadline = None;
        let located = loop {
            if let Some(located) = locate_push(&self.rbuf[self.rpos..self.rend])? {
                break located;
            }
            let deadline = *deadline.get_or_insert_with(|| tokio::time::Instant::now() + timeout);
            match self.fill(deadline, timeout, "a message").await {
                Ok(()) => {}
                Err(BenchError::Timeout { .. }) => return Ok(None),
                Err(e) => return Err(e),
            }
        };
        let start = self.rpos;
        self.rpos += located.2;
        Ok(Some(borrow_push(
            &self.rbuf[start..],
            located,
            self.read_ns,
        )))
    }

    /// Reads more bytes into the buffer before `deadline`.
    async fn fill(
        &mut self,
        deadline: tokio::time::Instant,
        timeout: Duration,
        what: &str,
    ) -> Result<(), BenchError> {
        // Compact, then grow only when one reply fills the whole buffer: the buffer
        // stays initialised, so reads never pay for zeroing it.
        if self.rpos > 0 {
            self.rbuf.copy_within(self.rpos..self.rend, 0);
            self.rend -= self.rpos;
            self.rpos = 0;
        }
        if self.rend == self.rbuf.len() {
            self.rbuf.resize(self.rbuf.len() * 2, 0);
        }
        let read =
            tokio::time::timeout_at(deadline, self.stream.read(&mut self.rbuf[self.rend..])).await;
        match read {
            Err(_) => Err(BenchError::Timeout {
                what: format!("{what} from {}", self.addr),
                after: timeout,
            }),
            Ok(Err(source)) => Err(self.io(source)),
            Ok(Ok(0)) => Err(BenchError::Closed {
                addr: self.addr.clone(),
            }),
            Ok(Ok(n)) => {
                self.rend += n;
                self.read_ns = crate::scenario::now_ns();
                Ok(())
            }
        }
    }

    fn io(&self, source: std::io::Error) -> BenchError {
        BenchError::Io {
            addr: self.addr.clone(),
            source,
        }
    }
}

/// Appends `args` as one RESP multibulk request.
pub fn encode(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.push(b'*');
    push_decimal(out, args.len());
    out.extend_from_slice(b"\r\n");
    for arg in args {
        out.push(b'$');
        push_decimal(out, arg.len());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

fn push_decimal(out: &mut Vec<u8>, n: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Finds the CRLF-terminated line at the start of `buf`: (line, bytes including CRLF).
/// Lines here are headers of a few bytes (`$64`, `*3`), so a plain scan beats `memchr`'s
/// set-up; a lone `\r` inside one is skipped, as any byte.
fn line(buf: &[u8]) -> Option<(&[u8], usize)> {
    let mut from = 0;
    loop {
        let end = from + buf[from..].iter().position(|&b| b == b'\r')?;
        match buf.get(end + 1) {
            Some(b'\n') => return Some((&buf[..end], end + 2)),
            Some(_) => from = end + 1,
            None => return None,
        }
    }
}

/// A RESP integer: optional `-`, then 1 to 18 ASCII digits (anything longer is not a
/// length or count any server sends here, and cannot overflow).
fn int(line: &[u8]) -> Result<i64, BenchError> {
    let (negative, digits) = match line.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, line),
    };
    if digits.is_empty() || digits.len() > 18 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(BenchError::Protocol(format!(
            "bad integer {:?}",
            String::from_utf8_lossy(line)
        )));
    }
    let value = digits
        .iter()
        .fold(0i64, |n, &d| n * 10 + i64::from(d - b'0'));
    Ok(if negative { -value } else { value })
}

/// Parses one reply: `Ok(None)` when `buf` holds only part of it.
pub fn parse(buf: &[u8], depth: usize) -> Result<Option<(Reply, usize)>, BenchError> {
    if depth > MAX_DEPTH {
        return Err(BenchError::Protocol("reply nested too deeply".into()));
    }
    let Some(&tag) = buf.first() else {
        return Ok(None);
    };
    let Some((body, mut used)) = line(&buf[1..]) else {
        return Ok(None);
    };
    used += 1;
    let reply = match tag {
        b'+' => Reply::Simple(body.to_vec()),
        b'-' => Reply::Error(String::from_utf8_lossy(body).into_owned()),
        b':' => Reply::Int(int(body)?),
        b'_' => Reply::Bulk(None),
        b'$' => {
            let len = int(body)?;
            if len < 0 {
                Reply::Bulk(None)
            } else {
                let len = len as usize;
                if buf.len() < used + len + 2 {
                    return Ok(None);
                }
                let data = buf[used..used + len].to_vec();
                used += len + 2;
                Reply::Bulk(Some(data))
            }
        }
        b'*' | b'>' => {
            let n = int(body)?;
            if n < 0 {
                Reply::Array(None)
            } else {
                let mut items = Vec::with_capacity((n as usize).min(1024));
                for _ in 0..n {
                    match parse(&buf[used..], depth + 1)? {
                        Some((item, n)) => {
                            items.push(item);
                            used += n;
                        }
                        None => return Ok(None),
                    }
                }
                Reply::Array(Some(items))
            }
        }
        other => {
            return Err(BenchError::Protocol(format!(
                "unexpected reply type byte {:?}",
                other as char
            )))
        }
    };
    Ok(Some((reply, used)))
}

/// Locates one bulk string at the start of `buf`: (where its data lies, bytes used).
fn bulk(buf: &[u8]) -> Result<Option<(Range<usize>, usize)>, BenchError> {
    let Some((header, used)) = line(buf) else {
        return Ok(None);
    };
    if header.first() != Some(&b'$') {
        return Err(BenchError::Protocol(
            "push element is not a bulk string".into(),
        ));
    }
    let len = usize::try_from(int(&header[1..])?)
        .map_err(|_| BenchError::Protocol("null bulk in a push".into()))?;
    if buf.len() < used + len + 2 {
        return Ok(None);
    }
    Ok(Some((used..used + len, used + len + 2)))
}

/// The last element of a push, located in the buffer.
enum TailAt {
    Bulk(Range<usize>),
    Int(i64),
}

/// A push located in its buffer: where its kind lies, its last element, its length.
type LocatedPush = (Range<usize>, TailAt, usize);

/// Locates a push `*N` / `>N` of bulks whose last element is a bulk or an integer, as
/// offsets into `buf` (so that a caller can read the socket until one is whole and
/// only then borrow it).
fn locate_push(buf: &[u8]) -> Result<Option<LocatedPush>, BenchError> {
    let Some((header, mut used)) = line(buf) else {
        return Ok(None);
    };
    if !matches!(header.first(), Some(b'*' | b'>')) {
        let text = String::from_utf8_lossy(&buf[..used.min(200)]);
        return Err(BenchError::Protocol(format!(
            "expected a pub/sub push, got {text:?}"
        )));
    }
    let n = int(&header[1..])?;
    if !(2..=5).contains(&n) {
        return Err(BenchError::Protocol(format!("push of {n} elements")));
    }
    let mut kind = 0..0;
    for i in 0..n - 1 {
        let Some((data, len)) = bulk(&buf[used..])? else {
            return Ok(None);
        };
        if i == 0 {
            kind = used + data.start..used + data.end;
        }
        used += len;
    }
    let rest = &buf[used..];
    let last = match rest.first() {
        None => return Ok(None),
        Some(b':') => {
            let Some((l, len)) = line(rest) else {
                return Ok(None);
            };
            used += len;
            TailAt::Int(int(&l[1..])?)
        }
        Some(_) => {
            let Some((data, len)) = bulk(rest)? else {
                return Ok(None);
            };
            let data = used + data.start..used + data.end;
            used += len;
            TailAt::Bulk(data)
        }
    };
    Ok(Some((kind, last, used)))
}

/// A push located by [`locate_push`], borrowed from its buffer.
fn borrow_push(buf: &[u8], (kind, last, _): LocatedPush, read_ns: u64) -> Push<'_> {
    Push {
        kind: &buf[kind],
        last: match last {
            TailAt::Bulk(data) => PushTail::Bulk(&buf[data]),
            TailAt::Int(n) => PushTail::Int(n),
        },
        read_ns,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The push at the start of `buf`, borrowed, with its length.
    fn parse_push(buf: &[u8]) -> Result<Option<(Push<'_>, usize)>, BenchError> {
        Ok(locate_push(buf)?.map(|located| {
            let used = located.2;
            (borrow_push(buf, located, 0), used)
        }))
    }

    #[test]
    fn parses_partial_and_whole_replies() {
        let full = b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n";
        for cut in 0..full.len() {
            assert!(parse(&full[..cut], 0).unwrap().is_none(), "cut {cut}");
            assert!(parse_push(&full[..cut]).unwrap().is_none(), "cut {cut}");
        }
        let (reply, used) = parse(full, 0).unwrap().unwrap();
        assert_eq!(used, full.len());
        assert_eq!(
            reply,
            Reply::Array(Some(vec![
                Reply::Bulk(Some(b"subscribe".to_vec())),
                Reply::Bulk(Some(b"ch".to_vec())),
                Reply::Int(1)
            ]))
        );
        let (push, used) = parse_push(full).unwrap().unwrap();
        assert_eq!(push.kind, b"subscribe");
        assert!(matches!(push.last, PushTail::Int(1)));
        assert_eq!(used, full.len());
    }

    #[test]
    fn decodes_pmessage_payload_in_place() {
        let msg = b"*4\r\n$8\r\npmessage\r\n$3\r\na:*\r\n$3\r\na:b\r\n$5\r\nhello\r\n";
        let (push, _) = parse_push(msg).unwrap().unwrap();
        assert_eq!(push.kind, b"pmessage");
        assert!(matches!(push.last, PushTail::Bulk(b"hello")));
    }

    #[test]
    fn integers_are_checked_ascii_decimals() {
        for (text, value) in [
            ("0", 0),
            ("64", 64),
            ("-1", -1),
            ("999999999999999999", 999_999_999_999_999_999),
        ] {
            assert_eq!(int(text.as_bytes()).unwrap(), value, "{text}");
        }
        for bad in [
            "",
            "-",
            "+1",
            "1a",
            " 1",
            "1 ",
            "1000000000000000000",
            "\u{663}",
        ] {
            assert!(int(bad.as_bytes()).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn a_line_ends_at_the_first_crlf() {
        assert_eq!(line(b"$3\r\nabc"), Some((&b"$3"[..], 4)));
        assert_eq!(
            line(b"a\rb\r\n"),
            Some((&b"a\rb"[..], 5)),
            "a lone CR is data"
        );
        assert_eq!(line(b"$3\r"), None);
        assert_eq!(line(b"$3"), None);
        assert_eq!(line(b""), None);
    }

    #[test]
    fn a_push_split_anywhere_is_incomplete_until_whole() {
        let payload: Vec<u8> = (0..=255).collect();
        let mut msg = b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$256\r\n".to_vec();
        msg.extend_from_slice(&payload);
        msg.extend_from_slice(b"\r\n");
        for cut in 0..msg.len() {
            assert!(parse_push(&msg[..cut]).unwrap().is_none(), "cut {cut}");
        }
        let (push, used) = parse_push(&msg).unwrap().unwrap();
        assert_eq!((push.kind, used), (&b"message"[..], msg.len()));
        assert!(matches!(push.last, PushTail::Bulk(p) if p == payload.as_slice()));
    }

    #[test]
    fn encodes_multibulk() {
        let mut out = Vec::new();
        encode(&mut out, &[b"PUBLISH", b"ch", b""]);
        assert_eq!(out, b"*3\r\n$7\r\nPUBLISH\r\n$2\r\nch\r\n$0\r\n\r\n");
    }

    proptest::proptest! {
        #[test]
        fn any_decimal_in_range_parses_back(n in -999_999_999_999_999_999i64..=999_999_999_999_999_999) {
            proptest::prop_assert_eq!(int(n.to_string().as_bytes()).unwrap(), n);
        }

        #[test]
        fn any_message_push_is_located_only_when_whole(
            channel in proptest::collection::vec(proptest::num::u8::ANY, 0..40),
            payload in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
            pattern in proptest::option::of(proptest::collection::vec(proptest::num::u8::ANY, 1..20)),
        ) {
            let mut msg = Vec::new();
            match &pattern {
                Some(p) => encode(&mut msg, &[b"pmessage", p, &channel, &payload]),
                None => encode(&mut msg, &[b"message", &channel, &payload]),
            }
            for cut in 0..msg.len() {
                proptest::prop_assert!(locate_push(&msg[..cut]).unwrap().is_none(), "cut {}", cut);
            }
            msg.extend_from_slice(b"*2\r\n");
            let (push, used) = parse_push(&msg).unwrap().unwrap();
            proptest::prop_assert_eq!(used, msg.len() - 4);
            let kind: &[u8] = if pattern.is_some() { b"pmessage" } else { b"message" };
            proptest::prop_assert_eq!(push.kind, kind);
            proptest::prop_assert!(matches!(push.last, PushTail::Bulk(p) if p == payload.as_slice()));
        }
    }
}
