//! `channels`: C channels; each subscriber subscribes to a pseudo-random subset of M of
//! them; publishers spread their messages over all C channels. Every PUBLISH reply is
//! checked against the number of subscribers the plan put on that channel.

use std::collections::BTreeSet;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use clap::Args;

use super::{run_tag, splitmix, subscribe_all};
use super::{Route, HEADER_BYTES};
use crate::report::{BenchResult, RunMeta};
use crate::resp::{Conn, Reply};
use crate::{BenchError, CommonArgs};

/// `herald bench channels`: many channels, subscribers on random subsets.
#[derive(Debug, Clone, Args)]
pub struct ChannelsArgs {
    /// Server address, rounds, output format.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Channels (C).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub channels: u64,
    /// Channels per subscriber (M ≤ C), chosen pseudo-randomly.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub channels_per_subscriber: u64,
    /// Publisher connections.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub publishers: u32,
    /// Subscriber connections.
    #[arg(long, default_value_t = 20)]
    pub subscribers: usize,
    /// Messages per publisher.
    #[arg(long, default_value_t = 100_000)]
    pub messages: u64,
    /// Payload bytes (at least 20).
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
    /// Unanswered PUBLISH commands each publisher keeps in flight.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub pipeline: u64,
}

impl ChannelsArgs {
    /// Total PUBLISH commands of one run.
    pub fn total_publishes(&self) -> u64 {
        u64::from(self.publishers) * self.messages
    }
}

/// Subscriber `i`'s channel numbers: M distinct ones, the same on every run.
fn subset(i: usize, m: u64, c: u64) -> BTreeSet<u64> {
    let mut set = BTreeSet::new();
    let mut j = 0u64;
    while (set.len() as u64) < m.min(c) {
        set.insert(splitmix((i as u64) << 32 ^ j) % c);
        j += 1;
    }
    set
}

/// The channel of message `seq` from publisher `p`.
fn target(p: u32, seq: u64, c: u64) -> u64 {
    splitmix(u64::from(p) << 40 ^ seq ^ 0x5eed) % c
}

/// Runs the channels scenario once against `addr`.
pub async fn run(
    args: &ChannelsArgs,
    addr: &str,
    progress: Arc<AtomicU64>,
) -> Result<BenchResult, BenchError> {
    let timeout = args.common.timeout();
    let (c, m, subs_n) = (
        args.channels,
        args.channels_per_subscriber,
        args.subscribers,
    );
    if m > c {
        return Err(BenchError::Usage(format!(
            "--channels-per-subscriber {m} exceeds --channels {c}"
        )));
    }
    let prefix = Arc::new(format!("herald-bench:channels:{}:", run_tag()));
    let name = |prefix: &str, ch: u64| format!("{prefix}{ch}").into_bytes();
    let subsets: Arc<Vec<BTreeSet<u64>>> = Arc::new((0..subs_n).map(|i| subset(i, m, c)).collect());
    let mut receivers = vec![0u64; c as usize];
    for set in subsets.iter() {
        for &ch in set {
            receivers[ch as usize] += 1;
        }
    }
    let names = {
        let (prefix, subsets) = (Arc::clone(&prefix), Arc::clone(&subsets));
        Arc::new(move |i: usize| subsets[i].iter().map(|&ch| name(&prefix, ch)).collect())
    };
    let subs = subscribe_all(addr, subs_n, false, names, timeout).await?;

    // Server-side check of every channel's subscriber count.
    let mut control = Conn::connect(addr, timeout).await?;
    let channel_names: Vec<Vec<u8>> = (0..c).map(|ch| name(&prefix, ch)).collect();
    let mut cmd: Vec<&[u8]> = vec![b"PUBSUB", b"NUMSUB"];
    cmd.extend(channel_names.iter().map(Vec::as_slice));
    let Reply::Array(Some(items)) = control.call(&cmd, timeout).await? else {
        return Err(BenchError::Protocol(
            "PUBSUB NUMSUB did not reply an array".into(),
        ));
    };
    for (ch, want) in receivers.iter().enumerate() {
        let got = items.get(2 * ch + 1).and_then(Reply::as_int);
        if got != Some(*want as i64) {
            return Err(BenchError::Verify(format!(
                "PUBSUB NUMSUB channel {ch}: server says {got:?}, expected {want}"
            )));
        }
    }

    let mut expected = vec![0u64; subs_n];
    for p in 0..args.publishers {
        for seq in 0..args.messages {
            let ch = target(p, seq, c);
            for (i, set) in subsets.iter().enumerate() {
                if set.contains(&ch) {
                    expected[i] += 1;
                }
            }
        }
    }
    let pubs = super::connect_n(addr, args.publishers, timeout).await?;
    let route: Route = {
        let prefix = Arc::clone(&prefix);
        let receivers = Arc::new(receivers);
        Arc::new(move |p, seq, out: &mut Vec<u8>| {
            let ch = target(p, seq, c);
            out.extend_from_slice(&name(&prefix, ch));
            receivers[ch as usize]
        })
    };
    let publishers = args.publishers as usize;
    let load = super::Load {
        messages: args.messages,
        pipeline: args.pipeline as usize,
        payload: args.payload,
    };
    let driven = super::drive(
        subs,
        &expected,
        pubs,
        route,
        load,
        timeout,
        Arc::clone(&progress),
    )
    .await?;
    let meta = RunMeta {
        scenario: "channels",
        server: addr.to_owned(),
        publishers,
        subscribers: subs_n,
        patterns: 0,
        payload_bytes: args.payload.max(HEADER_BYTES),
        target_rate: None,
    };
    BenchResult::assemble(
        meta,
        driven.start,
        expected.iter().sum(),
        &driven.publishers,
        &driven.subscribers,
        &driven.latencies,
    )
}

#[cfg(test)]
mod tests {
    use super::subset;

    #[test]
    fn subsets_are_distinct_and_sized() {
        let s = subset(3, 10, 100);
        assert_eq!(s.len(), 10);
        assert_eq!(s, subset(3, 10, 100), "deterministic");
        assert_eq!(subset(0, 5, 5).len(), 5, "M = C takes every channel");
    }
}
