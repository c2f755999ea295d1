//! `connections`: N idle subscriber connections on one channel. With `--server-pid` the
//! server's resident memory (VmRSS in `/proc/PID/status`) is read before the connections
//! open and after they are all subscribed, giving bytes per connection. Then `--messages`
//! PUBLISH commands go out one at a time, each to all N subscribers.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use super::{numsub, run_tag, subscribe_all};
use super::{Route, HEADER_BYTES};
use crate::report::{BenchResult, RunMeta};
use crate::resp::Conn;
use crate::{BenchError, CommonArgs};

/// How long RSS is given to settle after the last subscription (allocator, lazy pages).
const RSS_SETTLE: Duration = Duration::from_millis(500);

/// `herald bench connections`: memory per idle subscriber, and one PUBLISH to all.
#[derive(Debug, Clone, Args)]
pub struct ConnectionsArgs {
    /// Server address, rounds, output format.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Idle subscriber connections (N). Mind `ulimit -n` and the server's maxclients.
    #[arg(long, default_value_t = 1000)]
    pub subscribers: usize,
    /// PUBLISH commands sent one after another, each to all N subscribers.
    #[arg(long, default_value_t = 10)]
    pub messages: u64,
    /// Payload bytes (at least 20).
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
    /// The server's process id on this machine, to read its VmRSS (Linux only).
    /// With --compare it applies to the --addr server only.
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,
}

/// The `VmRSS` line of `/proc/PID/status`, in bytes.
pub fn vm_rss_bytes(pid: u32) -> Result<u64, BenchError> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| BenchError::Usage(format!("--server-pid {pid}: cannot read {path}: {e}")))?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| BenchError::Internal(format!("no VmRSS line in {path}")))
}

/// Runs the connections scenario once against `addr`; `pid` is the server's, if known.
pub async fn run(
    args: &ConnectionsArgs,
    addr: &str,
    pid: Option<u32>,
    progress: Arc<AtomicU64>,
) -> Result<BenchResult, BenchError> {
    let timeout = args.common.timeout();
    let channel = format!("herald-bench:connections:{}", run_tag()).into_bytes();
    let n = args.subscribers;
    let mut control = Conn::connect(addr, timeout).await?;
    let before = pid.map(vm_rss_bytes).transpose()?;
    let names = {
        let channel = channel.clone();
        Arc::new(move |_| vec![channel.clone()])
    };
    let subs = subscribe_all(addr, n, false, names, timeout).await?;
    let counted = numsub(&mut control, &channel, timeout).await?;
    if counted != n as i64 {
        return Err(BenchError::Verify(format!(
            "PUBSUB NUMSUB says {counted} subscribers, expected {n}"
        )));
    }
    let after = match pid {
        Some(pid) => {
            tokio::time::sleep(RSS_SETTLE).await;
            Some(vm_rss_bytes(pid)?)
        }
        None => None,
    };

    let publisher = Conn::connect(addr, timeout).await?;
    let route: Route = {
        let channel = channel.clone();
        Arc::new(move |_, _, out: &mut Vec<u8>| {
            out.extend_from_slice(&channel);
            n as u64
        })
    };
    // Depth 1: each PUBLISH is answered before the next, as in "one PUBLISH to N".
    let load = super::Load {
        messages: args.messages,
        pipeline: 1,
        payload: args.payload,
    };
    let driven = super::drive(
        subs,
        &vec![args.messages; n],
        vec![publisher],
        route,
        load,
        timeout,
        progress,
    )
    .await?;
    let meta = RunMeta {
        scenario: "connections",
        server: addr.to_owned(),
        publishers: 1,
        subscribers: n,
        patterns: 0,
        payload_bytes: args.payload.max(HEADER_BYTES),
        target_rate: None,
    };
    let mut result = BenchResult::assemble(
        meta,
        driven.start,
        args.messages * n as u64,
        &driven.publishers,
        &driven.subscribers,
        &driven.latencies,
    )?;
    if let (Some(before), Some(after)) = (before, after) {
        result.rss_bytes_per_connection = Some((after as f64 - before as f64) / n.max(1) as f64);
    }
    Ok(result)
}
