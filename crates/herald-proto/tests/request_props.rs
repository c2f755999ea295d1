//! Property tests of the request parser: random requests in random chunk sizes come out
//! as they went in, and random bytes never panic and parse the same however they are
//! split across reads.

use bytes::BytesMut;
use herald_proto::{Limits, ProtocolError, RequestParser};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

type Words = Vec<Vec<u8>>;

/// What feeding a stream produced: the requests, then how it ended.
#[derive(Debug, PartialEq)]
struct Fed {
    requests: Vec<Words>,
    end: End,
}

#[derive(Debug, PartialEq)]
enum End {
    /// All fed; this many bytes wait for more.
    Waiting(usize),
    /// The error that stopped the parse (the rest of the stream was not fed).
    Error(ProtocolError),
}

/// Feeds `stream` in chunks of the given sizes (cycled), parsing after each one, and
/// checks that the buffer only ever loses a prefix: what the parser consumed.
fn feed(stream: &[u8], chunk_sizes: &[usize], limits: &Limits, authenticated: bool) -> Fed {
    let mut parser = RequestParser::default();
    let mut buf = BytesMut::new();
    let (mut fed, mut consumed) = (0, 0);
    let mut requests = Vec::new();
    let mut sizes = chunk_sizes.iter().copied().cycle();
    while fed < stream.len() {
        let size = sizes.next().unwrap_or(1).clamp(1, stream.len() - fed);
        buf.extend_from_slice(&stream[fed..fed + size]);
        fed += size;
        loop {
            let before = buf.len();
            let result = parser.parse(&mut buf, limits, authenticated);
            assert!(buf.len() <= before, "the buffer grew");
            consumed += before - buf.len();
            assert_eq!(
                &buf[..],
                &stream[consumed..fed],
                "consumed bytes are not a prefix"
            );
            match result {
                Ok(Some(request)) => {
                    assert!(buf.len() < before, "a request consumed nothing");
                    assert!(!request.is_empty());
                    requests.push(request.args().iter().map(|arg| arg.to_vec()).collect());
                    // As the server does: the next request reuses this one's vector.
                    parser.recycle(request);
                }
                Ok(None) => break,
                Err(err) => {
                    return Fed {
                        requests,
                        end: End::Error(err),
                    }
                }
            }
        }
    }
    Fed {
        requests,
        end: End::Waiting(buf.len()),
    }
}

fn encode_multibulk(words: &Words, out: &mut Vec<u8>) {
    out.extend_from_slice(format!("*{}\r\n", words.len()).as_bytes());
    for word in words {
        out.extend_from_slice(format!("${}\r\n", word.len()).as_bytes());
        out.extend_from_slice(word);
        out.extend_from_slice(b"\r\n");
    }
}

/// Inline form: alphanumeric words bare, others double-quoted with `\xHH` escapes.
fn encode_inline(words: &Words, out: &mut Vec<u8>, crlf: bool) {
    for (i, word) in words.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        if !word.is_empty() && word.iter().all(u8::is_ascii_alphanumeric) {
            out.extend_from_slice(word);
            continue;
        }
        out.push(b'"');
        for &byte in word {
            if byte.is_ascii_alphanumeric() {
                out.push(byte);
            } else {
                out.extend_from_slice(format!("\\x{byte:02x}").as_bytes());
            }
        }
        out.push(b'"');
    }
    out.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
}

fn word() -> impl Strategy<Value = Vec<u8>> {
    let protocol_byte = prop_oneof![select(b"\r\n$*\"' \\".to_vec()), any::<u8>(),];
    prop_oneof![
        6 => vec(any::<u8>(), 0..32),
        3 => vec(protocol_byte, 0..16),
        1 => vec(any::<u8>(), 0..6000),
    ]
}

fn request() -> impl Strategy<Value = Words> {
    vec(word(), 1..8)
}

fn chunk_sizes() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![vec(1..64usize, 1..16), vec(1..10_000usize, 1..4)]
}

/// Bytes that look enough like requests to reach every parser state.
fn garbage() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        4 => select(b"*$\r\n0123456789-\"' \\x\0".to_vec()),
        1 => any::<u8>(),
    ];
    vec(byte, 0..512)
}

fn whole(stream: &[u8], limits: &Limits, authenticated: bool) -> Fed {
    feed(stream, &[stream.len().max(1)], limits, authenticated)
}

proptest! {
    #[test]
    fn multibulk_requests_round_trip(
        requests in vec(request(), 1..12),
        sizes in chunk_sizes(),
    ) {
        let mut stream = Vec::new();
        for words in &requests {
            encode_multibulk(words, &mut stream);
        }
        let fed = feed(&stream, &sizes, &Limits::default(), true);
        prop_assert_eq!(fed, Fed { requests, end: End::Waiting(0) });
    }

    #[test]
    fn mixed_inline_and_multibulk_round_trip(
        requests in vec((request(), 0..3u8), 1..12),
        sizes in chunk_sizes(),
    ) {
        let mut stream = Vec::new();
        for (words, form) in &requests {
            let mut line = Vec::new();
            encode_inline(words, &mut line, *form == 1);
            // A line past the inline limit is rejected (when it arrives in pieces).
            if *form == 0 || line.len() > Limits::default().max_inline_len {
                encode_multibulk(words, &mut stream);
            } else {
                stream.extend_from_slice(&line);
            }
        }
        let expected: Vec<Words> = requests.into_iter().map(|(words, _)| words).collect();
        let fed = feed(&stream, &sizes, &Limits::default(), true);
        prop_assert_eq!(fed, Fed { requests: expected, end: End::Waiting(0) });
    }

    #[test]
    fn garbage_parses_the_same_in_any_chunks(
        stream in garbage(),
        sizes in chunk_sizes(),
        authenticated in any::<bool>(),
    ) {
        // Default limits are far above the stream size, so no limit depends on how much
        // happened to be buffered: chunking must not change the outcome.
        let limits = Limits::default();
        prop_assert_eq!(
            feed(&stream, &sizes, &limits, authenticated),
            whole(&stream, &limits, authenticated)
        );
    }

    #[test]
    fn mutated_requests_parse_the_same_in_any_chunks(
        requests in vec(request(), 1..6),
        mutations in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        sizes in chunk_sizes(),
    ) {
        let mut stream = Vec::new();
        for words in &requests {
            encode_multibulk(words, &mut stream);
        }
        for (index, byte) in mutations {
            let at = index.index(stream.len());
            stream[at] = byte;
        }
        let limits = Limits::default();
        prop_assert_eq!(feed(&stream, &sizes, &limits, true), whole(&stream, &limits, true));
    }

    #[test]
    fn garbage_under_tight_limits_never_panics(
        stream in garbage(),
        sizes in chunk_sizes(),
        max_inline_len in 0..64usize,
        max_bulk_len in 0..64usize,
        max_multibulk_len in 0..16usize,
    ) {
        let limits = Limits { max_bulk_len, max_multibulk_len, max_inline_len };
        feed(&stream, &sizes, &limits, false);
        feed(&stream, &sizes, &limits, true);
    }
}
