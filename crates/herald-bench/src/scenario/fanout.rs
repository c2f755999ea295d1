//! `fanout`: P publishers → one channel → S subscribers, pipelined publishes.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use clap::Args;

use super::{numsub, run_tag, Route};
use crate::report::{BenchResult, RunMeta};
use crate::{BenchError, CommonArgs};

/// `herald bench fanout`: saturated fan-out through one channel.
#[derive(Debug, Clone, Args)]
pub struct FanoutArgs {
    /// Server address, rounds, output format.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Publisher connections.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub publishers: u32,
    /// Subscriber connections (all on the one channel).
    #[arg(long, default_value_t = 20)]
    pub subscribers: usize,
    /// Messages per publisher.
    #[arg(long, default_value_t = 100_000)]
    pub messages: u64,
    /// Payload bytes (at least 20: publisher id, sequence, timestamp).
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
    /// Unanswered PUBLISH commands each publisher keeps in flight.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub pipeline: u64,
}

impl FanoutArgs {
    /// Total PUBLISH commands of one run.
    pub fn total_publishes(&self) -> u64 {
        u64::from(self.publishers) * self.messages
    }
}

/// Runs the fan-out scenario once against `addr`.
pub async fn run(
    args: &FanoutArgs,
    addr: &str,
    progress: Arc<AtomicU64>,
) -> Result<BenchResult, BenchError> {
    let timeout = args.common.timeout();
    let channel = format!("herald-bench:fanout:{}", run_tag()).into_bytes();
    let subs_n = args.subscribers;
    let (subs, mut control) = super::subscribe_counted(addr, &channel, subs_n, timeout).await?;

    let pubs = super::connect_n(addr, args.publishers, timeout).await?;
    let expected_each = args.total_publishes();
    let route: Route = {
        let channel = channel.clone();
        let receivers = subs_n as u64;
        Arc::new(move |_, _, out: &mut Vec<u8>| {
            out.extend_from_slice(&channel);
            receivers
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
        &vec![expected_each; subs_n],
        pubs,
        route,
        load,
        timeout,
        Arc::clone(&progress),
    )
    .await?;
    let still = numsub(&mut control, &channel, timeout).await?;
    let meta = RunMeta {
        scenario: "fanout",
        server: addr.to_owned(),
        publishers,
        subscribers: subs_n,
        patterns: 0,
        payload_bytes: args.payload.max(super::HEADER_BYTES),
        target_rate: None,
    };
    let mut result = BenchResult::assemble(
        meta,
        driven.start,
        expected_each * subs_n as u64,
        &driven.publishers,
        &driven.subscribers,
        &driven.latencies,
    )?;
    if still != subs_n as i64 {
        // A subscriber was dropped during the run (e.g. as a slow consumer).
        result.receiver_mismatches += 1;
    }
    Ok(result)
}
