//! Reply encoding for RESP2 and RESP3.
//!
//! [`ReplyWriter`] appends encoded replies to a caller-owned `BytesMut`, so a pipeline of
//! replies lands in one buffer and one write. RESP3 types are written natively under
//! RESP3 and degrade the way Redis degrades them under RESP2: maps and sets become flat
//! arrays, push frames become arrays, null becomes `$-1` (or `*-1` for a null array),
//! doubles become bulk strings, booleans become `:1`/`:0`, verbatim strings become bulks.
//!
//! This module writes frames only; it never decides what a command replies.

use bytes::{BufMut, BytesMut};

/// Protocol version negotiated by a connection (`HELLO 2` / `HELLO 3`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// RESP2, the default of every new connection.
    #[default]
    Resp2,
    /// RESP3, with push frames, maps, sets, doubles, booleans and a real null.
    Resp3,
}

impl Protocol {
    /// The number HELLO takes and reports (`2` or `3`).
    pub fn version(self) -> i64 {
        match self {
            Protocol::Resp2 => 2,
            Protocol::Resp3 => 3,
        }
    }
}

/// Appends RESP frames for one protocol version to a buffer.
#[derive(Debug)]
pub struct ReplyWriter<'a> {
    buf: &'a mut BytesMut,
    protocol: Protocol,
}

impl<'a> ReplyWriter<'a> {
    /// A writer that appends to `buf` in `protocol`.
    pub fn new(buf: &'a mut BytesMut, protocol: Protocol) -> Self {
        ReplyWriter { buf, protocol }
    }

    /// The protocol this writer encodes.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The buffer written so far.
    pub fn buffer(&mut self) -> &mut BytesMut {
        self.buf
    }

    /// `+OK`.
    pub fn ok(&mut self) {
        self.buf.put_slice(b"+OK\r\n");
    }

    /// A simple string `+text`. `text` must not contain CR or LF; they are replaced by spaces
    /// so that a careless caller cannot break framing.
    pub fn simple(&mut self, text: &str) {
        self.line(b'+', text.as_bytes());
    }

    /// An error reply `-text`; `text` starts with its code (`ERR ...`, `WRONGTYPE ...`).
    pub fn error(&mut self, text: &str) {
        self.line(b'-', text.as_bytes());
    }

    /// An integer `:n`.
    pub fn integer(&mut self, n: i64) {
        self.header(b':', n);
    }

    /// A bulk string `$len\r\nbytes\r\n`.
    pub fn bulk(&mut self, bytes: &[u8]) {
        self.header(b'$', bytes.len() as i64);
        self.buf.put_slice(bytes);
        self.buf.put_slice(b"\r\n");
    }

    /// A bulk string holding the decimal form of `n` (Redis replies this way for some numbers).
    pub fn bulk_integer(&mut self, n: i64) {
        let mut digits = itoa::Buffer::new();
        self.bulk(digits.format(n).as_bytes());
    }

    /// Either a bulk string or null.
    pub fn optional_bulk(&mut self, bytes: Option<&[u8]>) {
        match bytes {
            Some(bytes) => self.bulk(bytes),
            None => self.null(),
        }
    }

    /// Null: `_` in RESP3, the null bulk `$-1` in RESP2.
    pub fn null(&mut self) {
        match self.protocol {
            Protocol::Resp3 => self.buf.put_slice(b"_\r\n"),
            Protocol::Resp2 => self.buf.put_slice(b"$-1\r\n"),
        }
    }

    /// Null where an array was expected: `_` in RESP3, `*-1` in RESP2.
    pub fn null_array(&mut self) {
        match self.protocol {
            Protocol::Resp3 => self.buf.put_slice(b"_\r\n"),
            Protocol::Resp2 => self.buf.put_slice(b"*-1\r\n"),
        }
    }

    /// The header of an array of `len` elements; the caller writes the elements next.
    pub fn array(&mut self, len: usize) {
        self.header(b'*', len as i64);
    }

    /// The header of a map of `len` key/value pairs (a flat array of `2*len` in RESP2).
    pub fn map(&mut self, len: usize) {
        match self.protocol {
            Protocol::Resp3 => self.header(b'%', len as i64),
            Protocol::Resp2 => self.header(b'*', (len * 2) as i64),
        }
    }

    /// The header of a set of `len` elements (an array in RESP2).
    pub fn set(&mut self, len: usize) {
        match self.protocol {
            Protocol::Resp3 => self.header(b'~', len as i64),
            Protocol::Resp2 => self.header(b'*', len as i64),
        }
    }

    /// The header of an out-of-band push of `len` elements (an array in RESP2).
    pub fn push(&mut self, len: usize) {
        match self.protocol {
            Protocol::Resp3 => self.header(b'>', len as i64),
            Protocol::Resp2 => self.header(b'*', len as i64),
        }
    }

    /// A double: `,1.5` in RESP3, a bulk string in RESP2. Infinities are `inf`/`-inf`.
    pub fn double(&mut self, value: f64) {
        let text = format_double(value);
        match self.protocol {
            Protocol::Resp3 => self.line(b',', text.as_bytes()),
            Protocol::Resp2 => self.bulk(text.as_bytes()),
        }
    }

    /// A boolean: `#t`/`#f` in RESP3, `:1`/`:0` in RESP2.
    pub fn boolean(&mut self, value: bool) {
        match (self.protocol, value) {
            (Protocol::Resp3, true) => self.buf.put_slice(b"#t\r\n"),
            (Protocol::Resp3, false) => self.buf.put_slice(b"#f\r\n"),
            (Protocol::Resp2, true) => self.integer(1),
            (Protocol::Resp2, false) => self.integer(0),
        }
    }

    /// A verbatim string with a three-letter format (`txt`, `mkd`): `=len\r\ntxt:...` in
    /// RESP3, a plain bulk string in RESP2.
    pub fn verbatim(&mut self, format: &[u8; 3], text: &[u8]) {
        match self.protocol {
            Protocol::Resp3 => {
                self.header(b'=', (text.len() + 4) as i64);
                self.buf.put_slice(format);
                self.buf.put_u8(b':');
                self.buf.put_slice(text);
                self.buf.put_slice(b"\r\n");
            }
            Protocol::Resp2 => self.bulk(text),
        }
    }

    /// Bytes already in RESP form, copied as they are.
    pub fn raw(&mut self, frame: &[u8]) {
        self.buf.put_slice(frame);
    }

    fn header(&mut self, kind: u8, n: i64) {
        let mut digits = itoa::Buffer::new();
        self.buf.put_u8(kind);
        self.buf.put_slice(digits.format(n).as_bytes());
        self.buf.put_slice(b"\r\n");
    }

    fn line(&mut self, kind: u8, text: &[u8]) {
        self.buf.put_u8(kind);
        self.buf.extend(
            text.iter()
                .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
        );
        self.buf.put_slice(b"\r\n");
    }
}

/// Appends `$len\r\nbytes\r\n` to `buf`: the shared building block of message bodies.
pub fn put_bulk(buf: &mut BytesMut, bytes: &[u8]) {
    let mut digits = itoa::Buffer::new();
    buf.put_u8(b'$');
    buf.put_slice(digits.format(bytes.len()).as_bytes());
    buf.put_slice(b"\r\n");
    buf.put_slice(bytes);
    buf.put_slice(b"\r\n");
}

/// Formats a double the way Redis does in replies: shortest round-trip form,
/// `inf`/`-inf`/`nan`, and no trailing `.0` on integral values.
pub fn format_double(value: f64) -> String {
    if value.is_nan() {
        return "nan".to_owned();
    }
    if value.is_infinite() {
        return if value > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    let mut buffer = ryu::Buffer::new();
    let text = buffer.format_finite(value);
    text.strip_suffix(".0").unwrap_or(text).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(protocol: Protocol, f: impl FnOnce(&mut ReplyWriter<'_>)) -> Vec<u8> {
        let mut buf = BytesMut::new();
        f(&mut ReplyWriter::new(&mut buf, protocol));
        buf.to_vec()
    }

    fn both(f: impl Fn(&mut ReplyWriter<'_>)) -> (Vec<u8>, Vec<u8>) {
        (encode(Protocol::Resp2, &f), encode(Protocol::Resp3, &f))
    }

    #[test]
    fn scalars() {
        assert_eq!(both(|w| w.ok()), (b"+OK\r\n".to_vec(), b"+OK\r\n".to_vec()));
        assert_eq!(encode(Protocol::Resp2, |w| w.integer(-42)), b":-42\r\n");
        assert_eq!(encode(Protocol::Resp2, |w| w.bulk(b"")), b"$0\r\n\r\n");
        assert_eq!(
            encode(Protocol::Resp2, |w| w.bulk(b"a\r\nb")),
            b"$4\r\na\r\nb\r\n"
        );
        assert_eq!(
            encode(Protocol::Resp2, |w| w.bulk_integer(7)),
            b"$1\r\n7\r\n"
        );
        assert_eq!(
            encode(Protocol::Resp2, |w| w.error("ERR bad\r\nthing")),
            b"-ERR bad  thing\r\n"
        );
    }

    #[test]
    fn resp3_types_degrade_in_resp2() {
        assert_eq!(both(|w| w.null()), (b"$-1\r\n".to_vec(), b"_\r\n".to_vec()));
        assert_eq!(
            both(|w| w.null_array()),
            (b"*-1\r\n".to_vec(), b"_\r\n".to_vec())
        );
        assert_eq!(both(|w| w.map(2)), (b"*4\r\n".to_vec(), b"%2\r\n".to_vec()));
        assert_eq!(both(|w| w.set(3)), (b"*3\r\n".to_vec(), b"~3\r\n".to_vec()));
        assert_eq!(
            both(|w| w.push(3)),
            (b"*3\r\n".to_vec(), b">3\r\n".to_vec())
        );
        assert_eq!(
            both(|w| w.double(1.5)),
            (b"$3\r\n1.5\r\n".to_vec(), b",1.5\r\n".to_vec())
        );
        assert_eq!(
            both(|w| w.boolean(true)),
            (b":1\r\n".to_vec(), b"#t\r\n".to_vec())
        );
        assert_eq!(
            both(|w| w.boolean(false)),
            (b":0\r\n".to_vec(), b"#f\r\n".to_vec())
        );
        assert_eq!(
            both(|w| w.verbatim(b"txt", b"hi")),
            (b"$2\r\nhi\r\n".to_vec(), b"=6\r\ntxt:hi\r\n".to_vec())
        );
    }

    #[test]
    fn doubles_like_redis() {
        assert_eq!(format_double(3.0), "3");
        assert_eq!(format_double(0.1), "0.1");
        assert_eq!(format_double(f64::INFINITY), "inf");
        assert_eq!(format_double(f64::NEG_INFINITY), "-inf");
        assert_eq!(format_double(f64::NAN), "nan");
    }

    #[test]
    fn put_bulk_frames_binary() {
        let mut buf = BytesMut::new();
        put_bulk(&mut buf, b"\x00\xff");
        assert_eq!(&buf[..], b"$2\r\n\x00\xff\r\n");
    }
}
