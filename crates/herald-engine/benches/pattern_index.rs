//! Pattern index microbenchmarks at 10, 1 000 and 100 000 registered patterns:
//! `cargo bench -p herald-engine --bench pattern_index`.
//!
//! Patterns are shaped like `herald bench patterns`: 90% `t:user:<g>:*` (literal prefix),
//! 10% `*:t:p<g>` (leading star). Half the channels looked up match one pattern, half
//! match none; each iteration looks up a different channel, so the cached variant shows
//! a warm cache only once the channels repeat (1 024 distinct channels per run).
//! `scan` is Redis's cost model: test every pattern.

use std::sync::Arc;

use herald_engine::patterns::PatternIndex;
use herald_engine::{ClientId, Glob, Outbox, OutputLimits};

fn main() {
    divan::main();
}

const SIZES: &[usize] = &[10, 1_000, 100_000];
const CHANNELS: usize = 1024;

fn pattern(g: usize) -> String {
    if g.is_multiple_of(10) {
        format!("*:t:p{g}")
    } else {
        format!("t:user:{g}:*")
    }
}

fn channels(total: usize) -> Vec<Vec<u8>> {
    (0..CHANNELS)
        .map(|n| {
            let g = n.wrapping_mul(2_654_435_761) % total;
            match (n % 2, g % 10) {
                (1, _) => format!("miss:{n}"),
                (_, 0) => format!("evt:t:p{g}"),
                _ => format!("t:user:{g}:x"),
            }
            .into_bytes()
        })
        .collect()
}

fn index(total: usize, cache: bool) -> PatternIndex {
    let index = PatternIndex::new(cache);
    let outbox = Arc::new(Outbox::new(ClientId(1), Arc::new(OutputLimits::default())));
    for g in 0..total {
        index.subscribe(pattern(g).as_bytes(), &outbox);
    }
    index
}

fn lookups(bencher: divan::Bencher, total: usize, cache: bool) {
    let index = index(total, cache);
    let channels = channels(total);
    let mut next = 0;
    bencher.bench_local(|| {
        next = (next + 1) % CHANNELS;
        index.matching(&channels[next]).len()
    });
}

#[divan::bench(args = SIZES)]
fn index_with_cache(bencher: divan::Bencher, total: usize) {
    lookups(bencher, total, true);
}

#[divan::bench(args = SIZES)]
fn index_without_cache(bencher: divan::Bencher, total: usize) {
    lookups(bencher, total, false);
}

#[divan::bench(args = SIZES)]
fn scan_every_pattern(bencher: divan::Bencher, total: usize) {
    let globs: Vec<Glob> = (0..total)
        .map(|g| Glob::new(pattern(g).as_bytes()))
        .collect();
    let channels = channels(total);
    let mut next = 0;
    bencher.bench_local(|| {
        next = (next + 1) % CHANNELS;
        let channel = &channels[next];
        globs.iter().filter(|glob| glob.matches(channel)).count()
    });
}
