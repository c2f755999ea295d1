//! The request parser against hand-written inputs: every protocol error with its exact
//! Redis text, inline splitting, skipped requests, pipelining and the limits.

use bytes::BytesMut;
use herald_proto::limits::{
    Limits, UNAUTHENTICATED_MAX_BULK_BYTES, UNAUTHENTICATED_MAX_MULTIBULK_LEN,
};
use herald_proto::{ProtocolError, Request, RequestParser};

/// Everything `wire` yields when buffered at once: the requests, then the error or the
/// bytes left over waiting for more.
fn run(wire: &[u8], limits: &Limits, authenticated: bool) -> (Vec<Vec<Vec<u8>>>, Outcome) {
    let mut parser = RequestParser::default();
    let mut buf = BytesMut::from(wire);
    let mut requests = Vec::new();
    loop {
        match parser.parse(&mut buf, limits, authenticated) {
            Ok(Some(request)) => requests.push(words(&request)),
            Ok(None) => return (requests, Outcome::NeedMore(buf.len())),
            Err(err) => return (requests, Outcome::Error(err)),
        }
    }
}

#[derive(Debug, PartialEq)]
enum Outcome {
    NeedMore(usize),
    Error(ProtocolError),
}

fn words(request: &Request) -> Vec<Vec<u8>> {
    request.args().iter().map(|arg| arg.to_vec()).collect()
}

fn requests(wire: &[u8]) -> Vec<Vec<Vec<u8>>> {
    let (requests, outcome) = run(wire, &Limits::default(), true);
    assert_eq!(outcome, Outcome::NeedMore(0), "for {wire:?}");
    requests
}

fn error(wire: &[u8]) -> String {
    error_with(wire, &Limits::default(), true)
}

fn error_with(wire: &[u8], limits: &Limits, authenticated: bool) -> String {
    match run(wire, limits, authenticated).1 {
        Outcome::Error(err) => err.to_string(),
        other => panic!("expected an error for {wire:?}, got {other:?}"),
    }
}

fn cmd(words: &[&str]) -> Vec<Vec<u8>> {
    words.iter().map(|word| word.as_bytes().to_vec()).collect()
}

fn small_limits() -> Limits {
    Limits {
        max_inline_len: 16,
        ..Limits::default()
    }
}

#[test]
fn multibulk_request() {
    let wire = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n";
    assert_eq!(requests(wire), [cmd(&["SET", "k", ""])]);
    let wire = b"*1\r\n$6\r\na\r\nb\0c\r\n";
    assert_eq!(requests(wire), [vec![b"a\r\nb\0c".to_vec()]]);
}

#[test]
fn arguments_are_slices_of_the_read_buffer() {
    let mut buf = BytesMut::from(&b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nvv\r\nGET \"k\"\r\n"[..]);
    let start = buf.as_ptr() as usize;
    let mut parser = RequestParser::default();
    let limits = Limits::default();
    let set = parser.parse(&mut buf, &limits, true).unwrap().unwrap();
    let offsets: Vec<usize> = set
        .args()
        .iter()
        .map(|arg| arg.as_ptr() as usize - start)
        .collect();
    assert_eq!(offsets, [8, 17, 24]);
    // Unchanged inline words, quoted ones included, are slices too.
    let get = parser.parse(&mut buf, &limits, true).unwrap().unwrap();
    let offsets: Vec<usize> = get
        .args()
        .iter()
        .map(|arg| arg.as_ptr() as usize - start)
        .collect();
    assert_eq!(offsets, [28, 33]);
}

#[test]
fn a_recycled_argument_vector_serves_the_next_request() {
    let mut buf = BytesMut::from(&b"*3\r\n$7\r\nPUBLISH\r\n$1\r\nc\r\n$2\r\nhi\r\nECHO yo\r\n*2\r\n$4\r\nECHO\r\n$3\r\nabc\r\n"[..]);
    let mut parser = RequestParser::default();
    let limits = Limits::default();
    let first = parser.parse(&mut buf, &limits, true).unwrap().unwrap();
    assert_eq!(first.args(), ["PUBLISH", "c", "hi"]);
    let vector = first.args().as_ptr();
    parser.recycle(first);
    let inline = parser.parse(&mut buf, &limits, true).unwrap().unwrap();
    assert_eq!(inline.args(), ["ECHO", "yo"]);
    assert_eq!(
        inline.args().as_ptr(),
        vector,
        "the inline request reused the vector"
    );
    parser.recycle(inline);
    let last = parser.parse(&mut buf, &limits, true).unwrap().unwrap();
    assert_eq!(last.args(), ["ECHO", "abc"]);
    assert_eq!(last.args().as_ptr(), vector);
    // Without recycling, each request has its own.
    let mut buf = BytesMut::from(&b"PING\r\nPING\r\n"[..]);
    let one = parser.parse(&mut buf, &limits, true).unwrap().unwrap();
    let two = parser.parse(&mut buf, &limits, true).unwrap().unwrap();
    assert_ne!(one.args().as_ptr(), two.args().as_ptr());
}

#[test]
fn request_accessors() {
    let mut buf = BytesMut::from(&b"*2\r\n$7\r\nPublish\r\n$1\r\nc\r\n"[..]);
    let request = RequestParser::default()
        .parse(&mut buf, &Limits::default(), true)
        .unwrap()
        .unwrap();
    assert_eq!(request.name(), b"Publish");
    assert_eq!(request.len(), 2);
    assert!(!request.is_empty());
    assert_eq!(request.into_args()[1], "c");
}

#[test]
fn pipelined_requests_in_one_buffer() {
    let wire = b"*1\r\n$4\r\nPING\r\nECHO hi\r\n*2\r\n$4\r\nECHO\r\n$2\r\nyo\r\nPING\n";
    assert_eq!(
        requests(wire),
        [
            cmd(&["PING"]),
            cmd(&["ECHO", "hi"]),
            cmd(&["ECHO", "yo"]),
            cmd(&["PING"])
        ]
    );
}

#[test]
fn inline_requests() {
    assert_eq!(requests(b"PING\r\n"), [cmd(&["PING"])]);
    // Bare `\n`, as telnet or `nc` may send.
    assert_eq!(requests(b"PING\n"), [cmd(&["PING"])]);
    // Only one `\r` belongs to the line end; another is a blank.
    assert_eq!(requests(b"GET k\r\r\n"), [cmd(&["GET", "k"])]);
    assert_eq!(
        requests(b"SET \"a key\" '\\'v\\''\r\n"),
        [cmd(&["SET", "a key", "'v'"])]
    );
    assert_eq!(
        requests(b"SET k \"\\x41\\x00\\xff\\n\"\r\n"),
        [vec![b"SET".to_vec(), b"k".to_vec(), b"A\0\xff\n".to_vec()]]
    );
    // A line that does not start with `*` is inline even if it looks like RESP.
    assert_eq!(requests(b"$4\r\n"), [cmd(&["$4"])]);
}

#[test]
fn empty_requests_are_skipped() {
    let wire = b"\r\n\n   \r\n*0\r\n*-1\r\n*-5\r\n\0\r\nPING\r\n";
    assert_eq!(requests(wire), [cmd(&["PING"])]);
    // Skipped requests are consumed even when nothing follows them.
    assert_eq!(
        run(b"\r\n*0\r\n", &Limits::default(), true).1,
        Outcome::NeedMore(0)
    );
    // A count of zero or below is skipped before any pre-auth check.
    assert_eq!(
        run(b"*-100\r\n", &Limits::default(), false).1,
        Outcome::NeedMore(0)
    );
}

#[test]
fn incomplete_requests_wait() {
    for wire in [
        &b"PING"[..],
        b"PING\r",
        b"*",
        b"*1",
        b"*1\r",
        b"*1\r\n",
        b"*1\r\n$",
        b"*1\r\n$4",
        b"*1\r\n$4\r",
        b"*1\r\n$4\r\nPI",
        b"*1\r\n$4\r\nPING",
        b"*1\r\n$4\r\nPING\r",
        b"*2\r\n$4\r\nECHO\r\n",
    ] {
        assert_eq!(
            run(wire, &Limits::default(), true),
            (vec![], Outcome::NeedMore(wire.len()))
        );
    }
}

#[test]
fn byte_after_a_header_cr_is_not_checked() {
    // Redis skips the byte after the `\r` of a `*` or `$` line without looking at it.
    assert_eq!(requests(b"*1\rX$4\r?PING\r\n"), [cmd(&["PING"])]);
}

#[test]
fn inline_errors() {
    assert_eq!(
        error(b"SET \"k v\r\n"),
        "Protocol error: unbalanced quotes in request"
    );
    assert_eq!(
        error(b"SET 'k'v\r\n"),
        "Protocol error: unbalanced quotes in request"
    );
    let limits = small_limits();
    assert_eq!(
        error_with(&[b'A'; 17], &limits, true),
        "Protocol error: too big inline request"
    );
    // Exactly at the limit it still waits for the line end.
    assert_eq!(run(&[b'A'; 16], &limits, true).1, Outcome::NeedMore(16));
    // As in Redis, only a buffer *without* a line end is too big.
    let long_line = [&[b'A'; 40][..], b"\r\n"].concat();
    assert_eq!(run(&long_line, &limits, true).0.len(), 1);
}

#[test]
fn multibulk_count_errors() {
    for wire in [
        &b"*\r\n"[..],
        b"*abc\r\n",
        b"*+1\r\n",
        b"* 1\r\n",
        b"*01\r\n",
        b"*1x\r\n",
        b"*2147483648\r\n",
        b"*99999999999999999999\r\n",
    ] {
        assert_eq!(
            error(wire),
            "Protocol error: invalid multibulk length",
            "{wire:?}"
        );
    }
    let max = b"*2147483647\r\n";
    assert_eq!(
        run(max, &Limits::default(), true),
        (vec![], Outcome::NeedMore(max.len()))
    );
    let limits = small_limits();
    assert_eq!(
        error_with(b"*12345678901234567", &limits, true),
        "Protocol error: too big mbulk count string"
    );
    assert_eq!(
        run(b"*123456789012345", &limits, true).1,
        Outcome::NeedMore(16)
    );
}

#[test]
fn bulk_header_errors() {
    assert_eq!(
        error(b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\nfooz\r\n"),
        "Protocol error: expected '$', got 'f'"
    );
    assert_eq!(
        error(b"*1\r\n:1\r\n"),
        "Protocol error: expected '$', got ':'"
    );
    // An empty line: Redis prints the `\r`, then turns it into a space.
    assert_eq!(
        error(b"*1\r\n\r\n"),
        "Protocol error: expected '$', got ' '"
    );
    for wire in [
        &b"*1\r\n$\r\n"[..],
        b"*1\r\n$-1\r\n",
        b"*1\r\n$-5\r\n",
        b"*1\r\n$abc\r\n",
        b"*1\r\n$04\r\n",
        b"*1\r\n$536870913\r\n",
    ] {
        assert_eq!(
            error(wire),
            "Protocol error: invalid bulk length",
            "{wire:?}"
        );
    }
    let limits = small_limits();
    assert_eq!(
        error_with(b"*1\r\n$12345678901234567", &limits, true),
        "Protocol error: too big bulk count string"
    );
}

#[test]
fn bulk_at_the_configured_maximum() {
    let limits = Limits {
        max_bulk_len: 4,
        ..Limits::default()
    };
    let (done, outcome) = run(b"*1\r\n$4\r\nPING\r\n", &limits, true);
    assert_eq!(
        (done, outcome),
        (vec![cmd(&["PING"])], Outcome::NeedMore(0))
    );
    assert_eq!(
        error_with(b"*1\r\n$5\r\n", &limits, true),
        "Protocol error: invalid bulk length"
    );
}

#[test]
fn one_gigabyte_bulk_fails_before_its_bytes_arrive() {
    let wire = b"*2\r\n$7\r\nPUBLISH\r\n$1073741824\r\n";
    assert_eq!(error(wire), "Protocol error: invalid bulk length");
    // The size check comes before the pre-auth one, as in Redis.
    assert_eq!(
        error_with(wire, &Limits::default(), false),
        "Protocol error: invalid bulk length"
    );
}

#[test]
fn missing_crlf_after_payload() {
    for wire in [
        &b"*1\r\n$4\r\nPINGxx"[..],
        b"*1\r\n$4\r\nPING\rx",
        b"*1\r\n$3\r\nPING\r\n",
    ] {
        assert_eq!(
            error(wire),
            "Protocol error: expected '\\r\\n' after bulk payload",
            "{wire:?}"
        );
    }
}

#[test]
fn star_header_followed_by_garbage() {
    assert_eq!(
        error(b"*2\r\nhello\r\n"),
        "Protocol error: expected '$', got 'h'"
    );
    assert_eq!(
        error(b"*2\r\n\xff\r\n"),
        "Protocol error: expected '$', got '\u{ff}'"
    );
    assert_eq!(
        error(b"*2\r\n\0\r\n"),
        "Protocol error: expected '$', got '\0'"
    );
    assert_eq!(
        error(b"*garbage\r\n"),
        "Protocol error: invalid multibulk length"
    );
}

#[test]
fn pre_auth_multibulk_limit() {
    let at_limit = multibulk(&["x"; UNAUTHENTICATED_MAX_MULTIBULK_LEN]);
    let (done, outcome) = run(&at_limit, &Limits::default(), false);
    assert_eq!((done.len(), outcome), (1, Outcome::NeedMore(0)));

    let over = multibulk(&["x"; UNAUTHENTICATED_MAX_MULTIBULK_LEN + 1]);
    assert_eq!(
        error_with(&over, &Limits::default(), false),
        "Protocol error: unauthenticated multibulk length"
    );
    assert_eq!(run(&over, &Limits::default(), true).0.len(), 1);
}

#[test]
fn pre_auth_bulk_limit() {
    let at_limit = "v".repeat(UNAUTHENTICATED_MAX_BULK_BYTES);
    let wire = multibulk(&["SET", "k", &at_limit]);
    let (done, outcome) = run(&wire, &Limits::default(), false);
    assert_eq!((done.len(), outcome), (1, Outcome::NeedMore(0)));

    // Rejected on the header alone, before the payload arrives.
    let header = format!(
        "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${}\r\n",
        UNAUTHENTICATED_MAX_BULK_BYTES + 1
    );
    assert_eq!(
        error_with(header.as_bytes(), &Limits::default(), false),
        "Protocol error: unauthenticated bulk length"
    );
    assert_eq!(
        run(header.as_bytes(), &Limits::default(), true).1,
        Outcome::NeedMore(header.len())
    );
}

#[test]
fn error_texts() {
    let cases = [
        (ProtocolError::TooBigInlineRequest, "too big inline request"),
        (
            ProtocolError::UnbalancedQuotes,
            "unbalanced quotes in request",
        ),
        (
            ProtocolError::TooBigMultibulkCount,
            "too big mbulk count string",
        ),
        (
            ProtocolError::InvalidMultibulkLength,
            "invalid multibulk length",
        ),
        (
            ProtocolError::UnauthenticatedMultibulkLength,
            "unauthenticated multibulk length",
        ),
        (ProtocolError::ExpectedDollar(b'X'), "expected '$', got 'X'"),
        (
            ProtocolError::ExpectedDollar(b'\n'),
            "expected '$', got ' '",
        ),
        (ProtocolError::TooBigBulkCount, "too big bulk count string"),
        (ProtocolError::InvalidBulkLength, "invalid bulk length"),
        (
            ProtocolError::UnauthenticatedBulkLength,
            "unauthenticated bulk length",
        ),
        (
            ProtocolError::MissingBulkCrlf,
            "expected '\\r\\n' after bulk payload",
        ),
    ];
    for (err, text) in cases {
        assert_eq!(err.to_string(), format!("Protocol error: {text}"));
    }
}

#[test]
fn parser_starts_afresh_after_an_error() {
    let mut parser = RequestParser::default();
    let limits = Limits::default();
    let mut buf = BytesMut::from(&b"*1\r\n$x\r\n"[..]);
    assert!(parser.parse(&mut buf, &limits, true).is_err());
    let mut fresh = BytesMut::from(&b"PING\r\n"[..]);
    let request = parser.parse(&mut fresh, &limits, true).unwrap().unwrap();
    assert_eq!(words(&request), cmd(&["PING"]));
}

#[test]
fn a_shrunken_buffer_does_not_panic() {
    // Breaking the append-only contract must not panic either.
    let mut parser = RequestParser::default();
    let limits = Limits::default();
    let mut buf = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$3\r\nke"[..]);
    assert_eq!(parser.parse(&mut buf, &limits, true), Ok(None));
    buf.truncate(2);
    assert_eq!(parser.parse(&mut buf, &limits, true), Ok(None));
    buf.clear();
    assert_eq!(parser.parse(&mut buf, &limits, true), Ok(None));
}

fn multibulk(args: &[&str]) -> Vec<u8> {
    let mut wire = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        wire.extend_from_slice(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
    }
    wire
}
