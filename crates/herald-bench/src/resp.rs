//! A minimal raw RESP2 client over tokio: pipelined writes into one buffer, and a reader
//! that parses replies and pub/sub pushes straight out of its read buffer.
//!
//! Written for speed, not generality: pushes (`message`/`pmessage`) are decoded without
//! allocating ([`Conn::next_push`]); ordinary replies into a small owned [`Reply`] tree.

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
    pub async fn next_push(&mut self, timeout: Duration) -> Result<Option<Push<'_>>, BenchError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some((_, _, used)) = parse_push(&self.rbuf[self.rpos..self.rend])? {
                let start = self.rpos;
                self.rpos += used;
                // Parse again on the borrowed slice: cheap, and keeps the borrow checker simple.
                return match parse_push(&self.rbuf[start..start + used])? {
                    Some((kind, last, _)) => Ok(Some(Push { kind, last })),
                    None => Err(BenchError::Protocol("push vanished".into())),
                };
            }
            match self.fill(deadline, timeout, "a message").await {
                Ok(()) => {}
                Err(BenchError::Timeout { .. }) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
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
fn line(buf: &[u8]) -> Option<(&[u8], usize)> {
    let end = buf.windows(2).position(|w| w == b"\r\n")?;
    Some((&buf[..end], end + 2))
}

fn int(line: &[u8]) -> Result<i64, BenchError> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            BenchError::Protocol(format!("bad integer {:?}", String::from_utf8_lossy(line)))
        })
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

/// Parses one bulk string at the start of `buf` without copying: (data, bytes used).
fn bulk(buf: &[u8]) -> Result<Option<(&[u8], usize)>, BenchError> {
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
    Ok(Some((&buf[used..used + len], used + len + 2)))
}

/// A push's kind, last element and encoded length.
type ParsedPush<'a> = (&'a [u8], PushTail<'a>, usize);

/// Parses a push `*N` / `>N` of bulks whose last element is a bulk or an integer.
fn parse_push(buf: &[u8]) -> Result<Option<ParsedPush<'_>>, BenchError> {
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
    let mut kind: &[u8] = &[];
    for i in 0..n - 1 {
        let Some((data, len)) = bulk(&buf[used..])? else {
            return Ok(None);
        };
        if i == 0 {
            kind = data;
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
            PushTail::Int(int(&l[1..])?)
        }
        Some(_) => {
            let Some((data, len)) = bulk(rest)? else {
                return Ok(None);
            };
            used += len;
            PushTail::Bulk(data)
        }
    };
    Ok(Some((kind, last, used)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

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
        let (kind, last, used) = parse_push(full).unwrap().unwrap();
        assert_eq!(kind, b"subscribe");
        assert!(matches!(last, PushTail::Int(1)));
        assert_eq!(used, full.len());
    }

    #[test]
    fn decodes_pmessage_payload_in_place() {
        let msg = b"*4\r\n$8\r\npmessage\r\n$3\r\na:*\r\n$3\r\na:b\r\n$5\r\nhello\r\n";
        let (kind, last, _) = parse_push(msg).unwrap().unwrap();
        assert_eq!(kind, b"pmessage");
        assert!(matches!(last, PushTail::Bulk(b"hello")));
    }

    #[test]
    fn encodes_multibulk() {
        let mut out = Vec::new();
        encode(&mut out, &[b"PUBLISH", b"ch", b""]);
        assert_eq!(out, b"*3\r\n$7\r\nPUBLISH\r\n$2\r\nch\r\n$0\r\n\r\n");
    }
}
