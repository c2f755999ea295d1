#![no_main]
//! Fuzzing `herald_proto::RequestParser` with arbitrary bytes fed in chunks, as reads
//! from a socket would arrive.
//!
//! Input layout: the first byte is the control byte: its low 6 bits pick the chunk size
//! (1 to 64 bytes), bit 6 whether the client is authenticated, bit 7 tight limits
//! (to reach the "too big" and length-limit errors with small inputs). The rest is the
//! stream.
//!
//! Checked: no panic; every call only removes a prefix of the buffer (what it consumed),
//! so the buffer is always exactly the fed bytes not yet consumed; a request consumes
//! at least as many bytes as its arguments hold; and, under the default limits (far
//! above any input size here), parsing in chunks gives the same requests and the same
//! error as parsing the whole stream at once.

use bytes::BytesMut;
use herald_proto::{Limits, ProtocolError, RequestParser};
use libfuzzer_sys::fuzz_target;

/// Small enough that short inputs cross every limit.
const TIGHT: Limits = Limits {
    max_bulk_len: 64,
    max_multibulk_len: 8,
    max_inline_len: 32,
};

#[derive(Debug, PartialEq)]
enum End {
    Waiting(usize),
    Error(ProtocolError),
}

fn feed(
    stream: &[u8],
    chunk: usize,
    limits: &Limits,
    authenticated: bool,
) -> (Vec<Vec<Vec<u8>>>, End) {
    let mut parser = RequestParser::default();
    let mut buf = BytesMut::new();
    let (mut fed, mut consumed) = (0, 0);
    let mut requests = Vec::new();
    for piece in stream.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        fed += piece.len();
        loop {
            let before = buf.len();
            let result = parser.parse(&mut buf, limits, authenticated);
            assert!(buf.len() <= before, "the buffer grew");
            consumed += before - buf.len();
            assert_eq!(&buf[..], &stream[consumed..fed], "not a prefix consumed");
            match result {
                Ok(Some(request)) => {
                    assert!(!request.is_empty());
                    let payload: usize = request.args().iter().map(|arg| arg.len()).sum();
                    assert!(
                        payload < before - buf.len(),
                        "arguments larger than their bytes"
                    );
                    requests.push(request.args().iter().map(|arg| arg.to_vec()).collect());
                }
                Ok(None) => break,
                Err(err) => {
                    assert!(err.to_string().starts_with("Protocol error: "));
                    return (requests, End::Error(err));
                }
            }
        }
    }
    (requests, End::Waiting(buf.len()))
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(control & 0x3f) + 1;
    let authenticated = control & 0x40 != 0;
    if control & 0x80 != 0 {
        feed(stream, chunk, &TIGHT, authenticated);
        return;
    }
    let limits = Limits::default();
    let chunked = feed(stream, chunk, &limits, authenticated);
    if stream.len() <= limits.max_inline_len {
        assert_eq!(chunked, feed(stream, stream.len(), &limits, authenticated));
    }
});
