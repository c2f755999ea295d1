//! What the dashboard costs the engine: the per-second rate sample and one top-K query,
//! over 1 000, 100 000 and 1 000 000 channels (one subscriber each), and a publish with
//! its per-channel counter: `cargo bench -p herald-engine --bench channel_activity`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use herald_engine::{ChannelOrder, ClientId, Engine, Outbox, OutputLimits, Scope};

fn main() {
    divan::main();
}

const SIZES: &[usize] = &[1_000, 100_000, 1_000_000];

fn engine(channels: usize) -> Engine {
    let engine = Engine::new();
    let outbox = Arc::new(Outbox::new(ClientId(1), Arc::new(OutputLimits::default())));
    for n in 0..channels {
        engine.subscribe(Scope::Classic, Bytes::from(format!("ch:{n}")), &outbox);
    }
    engine
}

/// The dashboard sampler's walk, once a second while someone looks.
#[divan::bench(args = SIZES, sample_count = 10)]
fn sample_rates(bencher: divan::Bencher, channels: usize) {
    let engine = engine(channels);
    bencher.bench_local(|| engine.sample_channel_rates(Duration::from_secs(1)));
}

/// One `/api/top-channels?limit=20` answer.
#[divan::bench(args = SIZES, sample_count = 10)]
fn top_20_by_rate(bencher: divan::Bencher, channels: usize) {
    let engine = engine(channels);
    bencher.bench_local(|| engine.top_channels(Scope::Classic, ChannelOrder::Rate, 20, None));
}

/// The live stream's two top-10 lists, in one walk.
#[divan::bench(args = SIZES, sample_count = 10)]
fn top_10_both_orders(bencher: divan::Bencher, channels: usize) {
    let engine = engine(channels);
    let orders = [ChannelOrder::Rate, ChannelOrder::Subscribers];
    bencher.bench_local(|| engine.top_channels_each(Scope::Classic, &orders, 10, None));
}
