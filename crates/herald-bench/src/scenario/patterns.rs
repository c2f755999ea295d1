//! `patterns`: S subscribers with K PSUBSCRIBE patterns each; publishers send to a mix
//! of channels that match exactly one pattern and channels that match none.
//!
//! Pattern number `g` (0 ≤ g < S·K, subscriber `g / K`) is `<tag>:user:<g>:*`, or
//! `*:<tag>:p<g>` for the `--leading-star-percent` share, so every pattern has its own
//! literal prefix (or suffix) and no channel matches two of them.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use clap::Args;

use super::{numpat, run_tag, splitmix, subscribe_all, Route};
use crate::report::{BenchResult, RunMeta};
use crate::resp::Conn;
use crate::{BenchError, CommonArgs};

/// `herald bench patterns`: publish rate with many patterns registered.
#[derive(Debug, Clone, Args)]
pub struct PatternsArgs {
    /// Server address, rounds, output format.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Publisher connections.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub publishers: u32,
    /// Subscriber connections.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub subscribers: u64,
    /// Patterns per subscriber (K); S·K patterns in all.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub patterns: u64,
    /// Percent of patterns that start with `*` (no literal prefix).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=100))]
    pub leading_star_percent: u64,
    /// Percent of publishes to a channel that matches one pattern (the rest match none).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(0..=100))]
    pub match_percent: u64,
    /// Messages per publisher.
    #[arg(long, default_value_t = 2000)]
    pub messages: u64,
    /// Payload bytes (at least 20).
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
    /// Unanswered PUBLISH commands each publisher keeps in flight.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub pipeline: u64,
}

impl PatternsArgs {
    /// Total PUBLISH commands of one run.
    pub fn total_publishes(&self) -> u64 {
        u64::from(self.publishers) * self.messages
    }
}

/// The naming and routing plan shared by subscribers, publishers and the checker.
#[derive(Debug, Clone)]
struct Plan {
    tag: String,
    total: u64,
    star_percent: u64,
    match_percent: u64,
}

impl Plan {
    fn is_star(&self, g: u64) -> bool {
        g % 100 < self.star_percent
    }

    fn pattern(&self, g: u64) -> Vec<u8> {
        if self.is_star(g) {
            format!("*:{}:p{g}", self.tag).into_bytes()
        } else {
            format!("{}:user:{g}:*", self.tag).into_bytes()
        }
    }

    /// Writes the channel for message `seq` of publisher `p`; returns the pattern it
    /// matches, if any.
    fn channel(&self, p: u32, seq: u64, out: &mut Vec<u8>) -> Option<u64> {
        use std::io::Write;
        let h = splitmix(u64::from(p) << 40 ^ seq);
        if h % 100 < self.match_percent {
            let g = (h >> 8) % self.total;
            let _ = if self.is_star(g) {
                write!(out, "evt:{}:p{g}", self.tag)
            } else {
                write!(out, "{}:user:{g}:x", self.tag)
            };
            Some(g)
        } else {
            let _ = write!(out, "miss:{}:{h}", self.tag);
            None
        }
    }
}

/// Runs the patterns scenario once against `addr`.
pub async fn run(
    args: &PatternsArgs,
    addr: &str,
    progress: Arc<AtomicU64>,
) -> Result<BenchResult, BenchError> {
    let timeout = args.common.timeout();
    let k = args.patterns;
    let plan = Arc::new(Plan {
        tag: format!("hb{}", run_tag()),
        total: args.subscribers * k,
        star_percent: args.leading_star_percent,
        match_percent: args.match_percent,
    });
    let subs_n = args.subscribers as usize;
    let mut control = Conn::connect(addr, timeout).await?;
    let names = {
        let plan = Arc::clone(&plan);
        Arc::new(move |i: usize| {
            let first = i as u64 * k;
            (first..first + k).map(|g| plan.pattern(g)).collect()
        })
    };
    let subs = subscribe_all(addr, subs_n, true, names, timeout).await?;
    let registered = numpat(&mut control, timeout).await?;
    if registered < plan.total as i64 {
        return Err(BenchError::Verify(format!(
            "PUBSUB NUMPAT says {registered} patterns, expected at least {}",
            plan.total
        )));
    }

    // Who should receive what: replay the routing the publishers will use.
    let mut expected = vec![0u64; subs_n];
    let mut scratch = Vec::new();
    for p in 0..args.publishers {
        for seq in 0..args.messages {
            scratch.clear();
            if let Some(g) = plan.channel(p, seq, &mut scratch) {
                expected[(g / k) as usize] += 1;
            }
        }
    }

    let pubs = super::connect_n(addr, args.publishers, timeout).await?;
    let route: Route = {
        let plan = Arc::clone(&plan);
        Arc::new(move |p, seq, out: &mut Vec<u8>| u64::from(plan.channel(p, seq, out).is_some()))
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
        scenario: "patterns",
        server: addr.to_owned(),
        publishers,
        subscribers: subs_n,
        patterns: plan.total as usize,
        payload_bytes: args.payload.max(super::HEADER_BYTES),
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
    use super::*;

    #[test]
    fn channels_match_only_their_own_pattern() {
        let plan = Plan {
            tag: "t".into(),
            total: 1000,
            star_percent: 10,
            match_percent: 50,
        };
        assert_eq!(plan.pattern(5), b"*:t:p5");
        assert_eq!(plan.pattern(12), b"t:user:12:*");
        let mut out = Vec::new();
        let mut matched = 0;
        for seq in 0..1000 {
            out.clear();
            if plan.channel(0, seq, &mut out).is_some() {
                matched += 1;
            }
        }
        assert!((400..600).contains(&matched), "{matched}");
    }
}
