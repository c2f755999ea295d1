//! Request parser microbenchmarks: `cargo bench -p herald-proto --bench parser`.
//! Each iteration parses a whole pipeline out of a fresh buffer copy.

use bytes::BytesMut;
use herald_proto::{Limits, RequestParser};

fn main() {
    divan::main();
}

fn multibulk_pipeline(requests: usize, payload: usize) -> Vec<u8> {
    let body = "x".repeat(payload);
    let one = format!(
        "*3\r\n$7\r\nPUBLISH\r\n$12\r\nchannel:1234\r\n${}\r\n{body}\r\n",
        body.len()
    );
    one.repeat(requests).into_bytes()
}

fn parse_all(wire: &[u8]) -> usize {
    let mut buffer = BytesMut::from(wire);
    let mut parser = RequestParser::default();
    let limits = Limits::default();
    let mut parsed = 0;
    while let Ok(Some(request)) = parser.parse(&mut buffer, &limits, true) {
        parsed += divan::black_box(request).args().len();
    }
    parsed
}

/// 16 pipelined `PUBLISH channel payload` requests (what `redis-benchmark -P 16` sends).
#[divan::bench(args = [16, 1024, 16 * 1024])]
fn publish_pipeline_16(bencher: divan::Bencher, payload: usize) {
    let wire = multibulk_pipeline(16, payload);
    bencher
        .counter(divan::counter::ItemsCount::new(16usize))
        .bench(|| parse_all(&wire));
}

/// 16 inline `PING` lines (telnet-style requests).
#[divan::bench]
fn inline_ping_16(bencher: divan::Bencher) {
    let wire = "PING\r\n".repeat(16).into_bytes();
    bencher
        .counter(divan::counter::ItemsCount::new(16usize))
        .bench(|| parse_all(&wire));
}
