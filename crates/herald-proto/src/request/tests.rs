//! Unit tests of the parser's internals (its public behaviour is tested in `tests/`).

use super::*;

fn parse(parser: &mut RequestParser, buf: &mut BytesMut) -> Option<Request> {
    parser.parse(buf, &Limits::default(), true).unwrap()
}

#[test]
fn integers_follow_string2ll() {
    for (text, value) in [
        ("0", 0),
        ("7", 7),
        ("-1", -1),
        ("1234567890", 1_234_567_890),
        ("9223372036854775807", i64::MAX),
        ("-9223372036854775808", i64::MIN),
    ] {
        assert_eq!(parse_integer(text.as_bytes()), Some(value), "{text}");
    }
    for text in [
        "",
        "-",
        "+1",
        " 1",
        "1 ",
        "01",
        "-0",
        "00",
        "1a",
        "0x10",
        "9223372036854775808",
        "-9223372036854775809",
        "123456789012345678901",
    ] {
        assert_eq!(parse_integer(text.as_bytes()), None, "{text:?}");
    }
}

#[test]
fn big_bulk_in_chunks_is_not_rescanned() {
    const PAYLOAD_BYTES: usize = 4 * 1024 * 1024;
    // A payload full of `\r` would cost a full rescan per chunk if the parser searched it.
    let mut wire = format!("*2\r\n$7\r\nPUBLISH\r\n${PAYLOAD_BYTES}\r\n").into_bytes();
    let header_bytes = wire.len();
    wire.extend(std::iter::repeat_n(b'\r', PAYLOAD_BYTES));
    wire.extend_from_slice(b"\r\n");

    let mut parser = RequestParser::default();
    let mut buf = BytesMut::new();
    let mut calls = 0;
    let mut request = None;
    for chunk in wire.chunks(4097) {
        buf.extend_from_slice(chunk);
        calls += 1;
        if let Some(done) = parse(&mut parser, &mut buf) {
            request = Some(done);
        }
    }
    let request = request.expect("the request completes");
    assert_eq!(request.len(), 2);
    assert_eq!(request.args()[1].len(), PAYLOAD_BYTES);
    assert!(buf.is_empty());
    assert!(calls > 1000);
    // Only the header lines were ever searched, whatever the number of calls.
    assert!(
        parser.scan.bytes_examined <= header_bytes,
        "examined {} bytes",
        parser.scan.bytes_examined
    );
}

#[test]
fn header_lines_fed_byte_by_byte_are_searched_once() {
    let wire = b"*3\r\n$9\r\nSUBSCRIBE\r\n$100000\r\n";
    let mut parser = RequestParser::default();
    let mut buf = BytesMut::new();
    for &byte in wire.iter() {
        buf.extend_from_slice(&[byte]);
        assert_eq!(parse(&mut parser, &mut buf), None);
    }
    // Each byte examined once; the bulk payload `SUBSCRIBE` never.
    assert!(parser.scan.bytes_examined <= wire.len() - 9);
}

#[test]
fn pending_bulk_hint_counts_the_missing_payload() {
    let mut parser = RequestParser::default();
    let mut buf = BytesMut::from(&b"*2\r\n$3\r\nSET\r\n$1000\r\nabc"[..]);
    assert_eq!(parser.pending_bulk_hint(), 0);
    assert_eq!(parse(&mut parser, &mut buf), None);
    assert_eq!(parser.pending_bulk_hint(), 1000 - 3 + 2);
    buf.extend_from_slice(&[b'x'; 997]);
    assert_eq!(parse(&mut parser, &mut buf), None);
    assert_eq!(parser.pending_bulk_hint(), 2);
    buf.extend_from_slice(b"\r\n");
    assert!(parse(&mut parser, &mut buf).is_some());
    assert_eq!(parser.pending_bulk_hint(), 0);
    // Unknown while a header line is awaited.
    buf.extend_from_slice(b"*1\r\n$5");
    assert_eq!(parse(&mut parser, &mut buf), None);
    assert_eq!(parser.pending_bulk_hint(), 0);
}

#[test]
fn huge_count_does_not_preallocate() {
    let mut parser = RequestParser::default();
    let mut buf = BytesMut::from(&b"*2147483647\r\n$4\r\nPING\r\n"[..]);
    assert_eq!(parse(&mut parser, &mut buf), None);
    let State::Bulks(multibulk) = &parser.state else {
        panic!("expected to be reading bulks");
    };
    assert!(parser.spans.capacity() <= ARGS_PREALLOC_MAX);
    assert_eq!(multibulk.remaining, i32::MAX as usize - 1);
}

#[test]
fn a_request_with_many_arguments_leaves_no_large_vectors_behind() {
    let count = ARGS_PREALLOC_MAX * 2;
    let mut wire = format!("*{count}\r\n").into_bytes();
    for _ in 0..count {
        wire.extend_from_slice(b"$1\r\nx\r\n");
    }
    let mut parser = RequestParser::default();
    let mut buf = BytesMut::from(&wire[..]);
    let request = parse(&mut parser, &mut buf).expect("complete");
    assert_eq!(request.len(), count);
    assert!(parser.spans.capacity() <= ARGS_PREALLOC_MAX);
    parser.recycle(request);
    assert_eq!(
        parser.spare.capacity(),
        0,
        "a large argument vector is not kept"
    );
}
