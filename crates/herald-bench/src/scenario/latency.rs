//! `latency`: open loop at a fixed rate. Each publisher sends on a schedule whatever the
//! server does, and stamps each payload with its *scheduled* send time, so a stall shows
//! up as latency of every message it delayed (no coordinated omission).
//!
//! The sending side is a plain OS thread with blocking writes: tokio's timer has a 1 ms
//! granularity, too coarse for a 100 µs schedule. A second thread reads PUBLISH replies.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use super::{consume, encode_publish, now_ns, run_tag, write_payload, Latencies};
use super::{PubStats, HEADER_BYTES};
use crate::report::{BenchResult, RunMeta};
use crate::resp::{parse, Reply};
use crate::{BenchError, CommonArgs};

/// `herald bench latency`: end-to-end latency at a fixed publish rate.
#[derive(Debug, Clone, Args)]
pub struct LatencyArgs {
    /// Server address, rounds, output format.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Publish rate in messages per second, shared by all publishers.
    #[arg(long, default_value_t = 10_000.0)]
    pub rate: f64,
    /// Seconds to publish for.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Publisher connections.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub publishers: u32,
    /// Subscriber connections (all on one channel).
    #[arg(long, default_value_t = 20)]
    pub subscribers: usize,
    /// Payload bytes (at least 20).
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
}

impl LatencyArgs {
    /// Messages each publisher sends.
    pub fn messages_each(&self) -> u64 {
        (self.rate * self.duration / f64::from(self.publishers)).round() as u64
    }

    /// Checks what clap cannot: a positive, finite rate and duration.
    pub fn validate(&self) -> Result<(), BenchError> {
        let ok = |v: f64| v.is_finite() && v > 0.0;
        if !ok(self.rate) || !ok(self.duration) {
            return Err(BenchError::Usage(
                "--rate and --duration must be positive".into(),
            ));
        }
        Ok(())
    }
}

/// Runs the latency scenario once against `addr`.
pub async fn run(
    args: &LatencyArgs,
    addr: &str,
    progress: Arc<AtomicU64>,
) -> Result<BenchResult, BenchError> {
    args.validate()?;
    let timeout = args.common.timeout();
    let channel = format!("herald-bench:latency:{}", run_tag()).into_bytes();
    let subs_n = args.subscribers;
    let (subs, _control) = super::subscribe_counted(addr, &channel, subs_n, timeout).await?;

    let n = args.messages_each();
    let publishers = args.publishers as usize;
    let interval_ns = 1e9 * f64::from(args.publishers) / args.rate;
    // Subscribers may legitimately wait a whole interval between messages.
    let idle = timeout + Duration::from_nanos(interval_ns as u64);
    let latencies = Latencies::new()?;
    crate::cpu::begin();
    let start = now_ns() + 20_000_000;
    let sub_tasks: Vec<_> = subs
        .into_iter()
        .map(|conn| {
            let want = n * publishers as u64;
            tokio::spawn(consume(conn, publishers, want, idle, latencies.clone()))
        })
        .collect();
    let mut pub_tasks = Vec::new();
    for id in 0..args.publishers {
        let job = Job {
            addr: addr.to_owned(),
            channel: channel.clone(),
            id,
            n,
            start,
            interval_ns,
            payload: args.payload,
            receivers: subs_n as i64,
            timeout,
            progress: Arc::clone(&progress),
        };
        pub_tasks.push(tokio::task::spawn_blocking(move || job.run()));
    }
    let (pub_done, sub_done) = super::join_run(pub_tasks, sub_tasks).await?;
    crate::cpu::end();
    let sub_stats: Vec<_> = sub_done.into_iter().map(|(s, _)| s).collect();
    let meta = RunMeta {
        scenario: "latency",
        server: addr.to_owned(),
        publishers,
        subscribers: subs_n,
        patterns: 0,
        payload_bytes: args.payload.max(HEADER_BYTES),
        target_rate: Some(args.rate),
    };
    let expected = n * publishers as u64 * subs_n as u64;
    BenchResult::assemble(meta, start, expected, &pub_done, &sub_stats, &latencies)
}

/// One open-loop publisher.
struct Job {
    addr: String,
    channel: Vec<u8>,
    id: u32,
    n: u64,
    start: u64,
    interval_ns: f64,
    payload: usize,
    receivers: i64,
    timeout: Duration,
    progress: Arc<AtomicU64>,
}

impl Job {
    fn io(&self, source: std::io::Error) -> BenchError {
        BenchError::Io {
            addr: self.addr.clone(),
            source,
        }
    }

    fn run(self) -> Result<PubStats, BenchError> {
        let stream = TcpStream::connect(&self.addr).map_err(|source| BenchError::Connect {
            addr: self.addr.clone(),
            source,
        })?;
        stream.set_nodelay(true).map_err(|e| self.io(e))?;
        stream
            .set_write_timeout(Some(self.timeout))
            .map_err(|e| self.io(e))?;
        let reader_stream = stream.try_clone().map_err(|e| self.io(e))?;
        let reader = {
            let addr = self.addr.clone();
            let (n, receivers, timeout) = (self.n, self.receivers, self.timeout);
            let progress = Arc::clone(&self.progress);
            std::thread::spawn(move || {
                read_replies(reader_stream, &addr, n, receivers, timeout, &progress)
            })
        };
        let mut writer = stream;
        let mut buf = Vec::new();
        let mut payload = Vec::new();
        let mut seq = 0;
        while seq < self.n {
            let due = self.start + (seq as f64 * self.interval_ns) as u64;
            let now = now_ns();
            if due > now {
                std::thread::sleep(Duration::from_nanos(due - now));
            }
            // Everything already due goes out in one write, stamped with its own due time.
            let now = now_ns();
            buf.clear();
            loop {
                let due = self.start + (seq as f64 * self.interval_ns) as u64;
                if seq >= self.n || due > now {
                    break;
                }
                write_payload(&mut payload, self.id, seq, due, self.payload);
                encode_publish(&mut buf, &self.channel, &payload);
                seq += 1;
            }
            writer.write_all(&buf).map_err(|e| self.io(e))?;
        }
        let (published, mismatches, last_ns) = reader
            .join()
            .map_err(|_| BenchError::Internal("reply reader panicked".into()))??;
        Ok(PubStats {
            published,
            mismatches,
            expected: published * self.receivers as u64,
            last_ns,
        })
    }
}

/// Reads `n` PUBLISH replies, counting those whose receiver count is not `receivers`.
fn read_replies(
    mut stream: TcpStream,
    addr: &str,
    n: u64,
    receivers: i64,
    timeout: Duration,
    progress: &AtomicU64,
) -> Result<(u64, u64, u64), BenchError> {
    let io = |source| BenchError::Io {
        addr: addr.to_owned(),
        source,
    };
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    let mut buf = vec![0u8; 64 * 1024];
    let (mut len, mut got, mut mismatches) = (0, 0u64, 0u64);
    while got < n {
        let read = stream.read(&mut buf[len..]).map_err(|e| {
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) {
                BenchError::Timeout {
                    what: format!("PUBLISH replies from {addr}"),
                    after: timeout,
                }
            } else {
                io(e)
            }
        })?;
        if read == 0 {
            return Err(BenchError::Closed {
                addr: addr.to_owned(),
            });
        }
        len += read;
        let mut pos = 0;
        while let Some((reply, used)) = parse(&buf[pos..len], 0)? {
            pos += used;
            got += 1;
            match reply {
                Reply::Int(count) if count == receivers => {}
                Reply::Int(_) => mismatches += 1,
                Reply::Error(e) => return Err(BenchError::ServerError(e)),
                other => return Err(BenchError::Protocol(format!("PUBLISH replied {other:?}"))),
            }
            progress.fetch_add(1, Ordering::Relaxed);
        }
        buf.copy_within(pos..len, 0);
        len -= pos;
        if len == buf.len() {
            buf.resize(len * 2, 0);
        }
    }
    Ok((got, mismatches, now_ns()))
}
