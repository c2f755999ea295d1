//! What every scenario shares: the payload format, subscribing many connections,
//! the checking subscriber loop and the pipelined publisher loop.
//!
//! Payload layout (little-endian), padded with `x` to `--payload` bytes:
//! `publisher id: u32 | sequence: u64 | send time: u64 ns since this process's epoch`.
//! Subscribers run in this process, so the send time compares directly with their clock.

pub mod channels;
pub mod connections;
pub mod fanout;
pub mod latency;
pub mod patterns;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::task::JoinSet;

use crate::resp::{Conn, PushTail, Reply};
use crate::BenchError;

/// Bytes of the payload header: publisher id, sequence number, send timestamp.
pub const HEADER_BYTES: usize = 4 + 8 + 8;
/// Names per SUBSCRIBE/PSUBSCRIBE command when subscribing in bulk.
const SUBSCRIBE_BATCH: usize = 1000;
/// Most names sent but not yet confirmed per connection while subscribing.
const SUBSCRIBE_WINDOW: usize = 10_000;
/// Connections being opened and subscribed at once: more only overflows the server's
/// listen backlog, and a dropped SYN costs a one-second retransmit.
const CONNECT_CONCURRENCY: usize = 256;
/// Highest latency the histograms hold: one hour, in nanoseconds.
const HIST_MAX_NS: u64 = 3_600_000_000_000;
/// Latencies a subscriber collects before adding them to the run's histogram: one lock
/// per this many deliveries, and at most this many `u64`s held per connection.
const LATENCY_BATCH: usize = 256;

/// Nanoseconds since the first call in this process (a monotonic clock).
pub fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// A fixed pseudo-random mix (SplitMix64): the same message always goes to the same channel.
pub fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A latency histogram in nanoseconds.
pub fn new_histogram() -> Result<Histogram<u64>, BenchError> {
    Histogram::new_with_max(HIST_MAX_NS, 3).map_err(|e| BenchError::Internal(e.to_string()))
}

/// Writes one payload: header then `x` padding up to `size` (never below the header).
pub fn write_payload(out: &mut Vec<u8>, publisher: u32, seq: u64, sent_ns: u64, size: usize) {
    out.clear();
    out.extend_from_slice(&publisher.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&sent_ns.to_le_bytes());
    out.resize(size.max(HEADER_BYTES), b'x');
}

/// Reads a payload header back: (publisher, sequence, send time).
pub fn read_payload(payload: &[u8]) -> Option<(u32, u64, u64)> {
    let publisher = u32::from_le_bytes(payload.get(0..4)?.try_into().ok()?);
    let seq = u64::from_le_bytes(payload.get(4..12)?.try_into().ok()?);
    let sent = u64::from_le_bytes(payload.get(12..20)?.try_into().ok()?);
    Some((publisher, seq, sent))
}

/// Appends a PUBLISH request to `out`.
pub fn encode_publish(out: &mut Vec<u8>, channel: &[u8], payload: &[u8]) {
    crate::resp::encode(out, &[b"PUBLISH", channel, payload]);
}

/// End-to-end latencies of one run, one histogram shared by all its subscribers.
///
/// A histogram per subscriber was 256 KB of counters at this range and precision; for
/// 10 000 connections that was 2.5 GB of memory zeroed and faulted in while the run was
/// timed, which made the load generator, not the server, set the `connections` rate.
/// Subscribers batch their samples (256 at a time) so the lock is rarely taken; it
/// is a `std` mutex because nothing awaits while holding it.
#[derive(Debug, Clone)]
pub struct Latencies(Arc<Mutex<Histogram<u64>>>);

impl Latencies {
    /// An empty set of latencies.
    pub fn new() -> Result<Latencies, BenchError> {
        Ok(Latencies(Arc::new(Mutex::new(new_histogram()?))))
    }

    fn histogram(&self) -> MutexGuard<'_, Histogram<u64>> {
        // Recording is a plain counter update: a panic elsewhere cannot leave it torn.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Moves `samples` (nanoseconds) into the histogram.
    fn add(&self, samples: &mut Vec<u64>) {
        let mut hist = self.histogram();
        for ns in samples.drain(..) {
            hist.saturating_record(ns);
        }
    }

    /// A copy of everything recorded so far.
    pub fn snapshot(&self) -> Histogram<u64> {
        self.histogram().clone()
    }
}

/// What one subscriber connection saw.
#[derive(Debug)]
pub struct SubStats {
    /// Messages received.
    pub received: u64,
    /// Messages whose sequence was not above the last one seen from the same publisher.
    pub reordered: u64,
    /// Messages whose payload did not decode or named an unknown publisher.
    pub foreign: u64,
    /// When the last message arrived ([`now_ns`]).
    pub last_ns: u64,
    /// The run's latencies, which [`SubStats::flush`] adds `pending` to.
    latencies: Latencies,
    /// End-to-end latencies (ns) not yet in `latencies`.
    pending: Vec<u64>,
    /// Highest sequence number seen per publisher.
    last_seq: Vec<Option<u64>>,
}

impl SubStats {
    /// Empty statistics for a run with `publishers` publishers, recording into `latencies`.
    pub fn new(publishers: usize, latencies: &Latencies) -> SubStats {
        SubStats {
            received: 0,
            reordered: 0,
            foreign: 0,
            last_ns: 0,
            latencies: latencies.clone(),
            pending: Vec::new(),
            last_seq: vec![None; publishers],
        }
    }

    /// Adds the latencies collected so far to the run's histogram.
    pub fn flush(&mut self) {
        if !self.pending.is_empty() {
            self.latencies.add(&mut self.pending);
        }
    }

    /// Checks one push of kind `kind` carrying `payload`, received at `now` ns.
    pub fn record(&mut self, kind: &[u8], payload: &[u8], now: u64) {
        if kind != b"message" && kind != b"pmessage" {
            self.foreign += 1;
            return;
        }
        let Some((publisher, seq, sent)) = read_payload(payload) else {
            self.foreign += 1;
            return;
        };
        let Some(last) = self.last_seq.get_mut(publisher as usize) else {
            self.foreign += 1;
            return;
        };
        self.received += 1;
        self.last_ns = now;
        match *last {
            Some(prev) if seq <= prev => self.reordered += 1,
            _ => *last = Some(seq),
        }
        self.pending.push(now.saturating_sub(sent).max(1));
        if self.pending.len() >= LATENCY_BATCH {
            self.flush();
        }
    }
}

/// What one publisher connection did.
#[derive(Debug, Default)]
pub struct PubStats {
    /// PUBLISH commands answered.
    pub published: u64,
    /// Replies whose receiver count differed from the expected one.
    pub mismatches: u64,
    /// Sum of the expected receiver counts.
    pub expected: u64,
    /// When the last reply arrived ([`now_ns`]).
    pub last_ns: u64,
}

/// Opens `conns` connections; connection `i` subscribes to `names(i)` (PSUBSCRIBE when
/// `pattern`), in pipelined batches, and waits for every confirmation (each within `timeout`:
/// subscribing 25 000 patterns on one connection took Redis 7.0 over 10 s here, so a
/// deadline for the whole batch would fail where the server is merely slow).
pub async fn subscribe_all(
    addr: &str,
    conns: usize,
    pattern: bool,
    names: Arc<dyn Fn(usize) -> Vec<Vec<u8>> + Send + Sync>,
    timeout: Duration,
) -> Result<Vec<Conn>, BenchError> {
    let mut tasks = JoinSet::new();
    let gate = Arc::new(tokio::sync::Semaphore::new(CONNECT_CONCURRENCY));
    for i in 0..conns {
        let addr = addr.to_owned();
        let names = Arc::clone(&names);
        let gate = Arc::clone(&gate);
        tasks.spawn(async move {
            let permit = gate
                .acquire_owned()
                .await
                .map_err(|e| BenchError::Internal(e.to_string()))?;
            let mut conn = Conn::connect(&addr, timeout).await?;
            let names = names(i);
            let verb: &[u8] = if pattern { b"PSUBSCRIBE" } else { b"SUBSCRIBE" };
            let want: &[u8] = if pattern { b"psubscribe" } else { b"subscribe" };
            let total = names.len();
            let mut confirmed = 0;
            let mut sent = 0;
            for batch in names.chunks(SUBSCRIBE_BATCH) {
                let mut args: Vec<&[u8]> = Vec::with_capacity(batch.len() + 1);
                args.push(verb);
                args.extend(batch.iter().map(Vec::as_slice));
                conn.queue(&args);
                conn.flush().await?;
                sent += batch.len();
                // Keep a bounded window unconfirmed so neither side's buffers fill up
                // while the other is blocked writing (a deadlock with 100 000 patterns).
                let floor = sent.saturating_sub(SUBSCRIBE_WINDOW);
                while confirmed < floor {
                    confirmed += 1;
                    confirm(&mut conn, want, confirmed, total, timeout).await?;
                }
            }
            while confirmed < total {
                confirmed += 1;
                confirm(&mut conn, want, confirmed, total, timeout).await?;
            }
            drop(permit);
            Ok::<_, BenchError>((i, conn))
        });
    }
    let mut out: Vec<Option<Conn>> = (0..conns).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        let (i, conn) = joined.map_err(|e| BenchError::Internal(e.to_string()))??;
        out[i] = Some(conn);
    }
    Ok(out.into_iter().flatten().collect())
}

/// Reads subscription confirmation number `n` (the server's running count).
async fn confirm(
    conn: &mut Conn,
    want: &[u8],
    n: usize,
    total: usize,
    timeout: Duration,
) -> Result<(), BenchError> {
    let push = conn
        .next_push(timeout)
        .await?
        .ok_or_else(|| BenchError::Timeout {
            what: format!("subscription confirmation {n} of {total}"),
            after: timeout,
        })?;
    match push.last {
        PushTail::Int(count) if push.kind == want && count == n as i64 => Ok(()),
        _ => Err(BenchError::Protocol(format!(
            "unexpected reply while subscribing: {} (confirmation {n} of {total})",
            String::from_utf8_lossy(push.kind)
        ))),
    }
}

/// Waits for every task in order; on the first error aborts the rest and returns it.
pub async fn join_all<T>(
    mut handles: Vec<tokio::task::JoinHandle<Result<T, BenchError>>>,
) -> Result<Vec<T>, BenchError> {
    let mut out = Vec::with_capacity(handles.len());
    let mut failure = None;
    for handle in handles.iter_mut() {
        match handle.await {
            Ok(Ok(value)) => out.push(value),
            Ok(Err(e)) => {
                failure = Some(e);
                break;
            }
            Err(e) => {
                failure = Some(BenchError::Internal(e.to_string()));
                break;
            }
        }
    }
    if let Some(e) = failure {
        for handle in &handles {
            handle.abort();
        }
        return Err(e);
    }
    Ok(out)
}

/// Joins the publishers, then the subscribers. If a publisher fails, the subscribers are
/// aborted rather than left to run into their idle timeout.
pub async fn join_run<P, S>(
    publishers: Vec<tokio::task::JoinHandle<Result<P, BenchError>>>,
    subscribers: Vec<tokio::task::JoinHandle<Result<S, BenchError>>>,
) -> Result<(Vec<P>, Vec<S>), BenchError> {
    let published = match join_all(publishers).await {
        Ok(done) => done,
        Err(e) => {
            for task in &subscribers {
                task.abort();
            }
            return Err(e);
        }
    };
    Ok((published, join_all(subscribers).await?))
}

/// Subscribes `n` connections to `channel` and checks, on a separate control connection,
/// that the server counts exactly `n` subscribers (PUBSUB NUMSUB): the server, not our
/// bookkeeping, must agree. Returns the subscribers and the control connection.
pub async fn subscribe_counted(
    addr: &str,
    channel: &[u8],
    n: usize,
    timeout: Duration,
) -> Result<(Vec<Conn>, Conn), BenchError> {
    let names = {
        let channel = channel.to_vec();
        Arc::new(move |_| vec![channel.clone()])
    };
    let subs = subscribe_all(addr, n, false, names, timeout).await?;
    let mut control = Conn::connect(addr, timeout).await?;
    let counted = numsub(&mut control, channel, timeout).await?;
    if counted != n as i64 {
        return Err(BenchError::Verify(format!(
            "PUBSUB NUMSUB says {counted} subscribers, expected {n}"
        )));
    }
    Ok((subs, control))
}

/// Opens `n` connections (publishers).
pub async fn connect_n(addr: &str, n: u32, timeout: Duration) -> Result<Vec<Conn>, BenchError> {
    let mut conns = Vec::with_capacity(n as usize);
    for _ in 0..n {
        conns.push(Conn::connect(addr, timeout).await?);
    }
    Ok(conns)
}

/// A channel or pattern tag unique to this run, so rounds and runs never collide.
pub fn run_tag() -> String {
    format!("{}-{}", std::process::id(), now_ns())
}

/// PUBSUB NUMSUB for one channel, as the server counts it.
pub async fn numsub(conn: &mut Conn, channel: &[u8], timeout: Duration) -> Result<i64, BenchError> {
    let reply = conn.call(&[b"PUBSUB", b"NUMSUB", channel], timeout).await?;
    match reply {
        Reply::Array(Some(items)) if items.len() == 2 => items[1]
            .as_int()
            .ok_or_else(|| BenchError::Protocol("PUBSUB NUMSUB count is not an integer".into())),
        other => Err(BenchError::Protocol(format!(
            "PUBSUB NUMSUB replied {other:?}"
        ))),
    }
}

/// PUBSUB NUMPAT: patterns registered on the whole server.
pub async fn numpat(conn: &mut Conn, timeout: Duration) -> Result<i64, BenchError> {
    conn.call(&[b"PUBSUB", b"NUMPAT"], timeout)
        .await?
        .as_int()
        .ok_or_else(|| BenchError::Protocol("PUBSUB NUMPAT is not an integer".into()))
}

/// Reads messages until `expected` have arrived or none came for `idle`, checking each
/// payload: per-publisher order, and latency from its send time to the read that brought
/// it (into `latencies`).
pub async fn consume(
    mut conn: Conn,
    publishers: usize,
    expected: u64,
    idle: Duration,
    latencies: Latencies,
) -> Result<(SubStats, Conn), BenchError> {
    let mut stats = SubStats::new(publishers, &latencies);
    while stats.received < expected {
        let Some(push) = conn.next_push(idle).await? else {
            break;
        };
        match push.last {
            PushTail::Bulk(payload) => stats.record(push.kind, payload, push.read_ns),
            PushTail::Int(_) => stats.foreign += 1,
        }
    }
    stats.flush();
    Ok((stats, conn))
}

/// How much a saturated scenario publishes.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    /// Messages per publisher.
    pub messages: u64,
    /// Unanswered PUBLISHes allowed per publisher.
    pub pipeline: usize,
    /// Payload size in bytes.
    pub payload: usize,
}

/// What [`drive`] measured.
pub struct Driven {
    /// When publishing started (`now_ns`).
    pub start: u64,
    /// Each publisher's statistics.
    pub publishers: Vec<PubStats>,
    /// Each subscriber's statistics.
    pub subscribers: Vec<SubStats>,
    /// Every subscriber's latencies.
    pub latencies: Latencies,
    /// The subscriber connections, still open so the caller can check the server's
    /// counts before they go.
    pub connections: Vec<Conn>,
}

/// Runs subscribers (each expecting its count from `expected`) and pipelined publishers
/// to completion. A failing publisher stops the subscribers instead of leaving them to
/// time out.
pub async fn drive(
    subs: Vec<Conn>,
    expected: &[u64],
    pubs: Vec<Conn>,
    route: Route,
    load: Load,
    timeout: Duration,
    progress: Arc<AtomicU64>,
) -> Result<Driven, BenchError> {
    let publishers = pubs.len();
    let latencies = Latencies::new()?;
    crate::cpu::begin();
    let start = now_ns();
    let sub_tasks: Vec<_> = subs
        .into_iter()
        .zip(expected.iter().copied())
        .map(|(conn, want)| {
            tokio::spawn(consume(conn, publishers, want, timeout, latencies.clone()))
        })
        .collect();
    let pub_tasks: Vec<_> = pubs
        .into_iter()
        .enumerate()
        .map(|(id, conn)| {
            tokio::spawn(publish_pipelined(
                conn,
                id as u32,
                load.messages,
                load.pipeline,
                load.payload,
                Arc::clone(&route),
                timeout,
                Arc::clone(&progress),
            ))
        })
        .collect();
    let (pub_done, sub_done) = join_run(pub_tasks, sub_tasks).await?;
    crate::cpu::end();
    let (subscribers, connections) = sub_done.into_iter().unzip();
    Ok(Driven {
        start,
        publishers: pub_done.into_iter().map(|(stats, _)| stats).collect(),
        subscribers,
        latencies,
        connections,
    })
}

/// Where publisher `p`'s message `seq` goes: writes the channel into the buffer and
/// returns how many subscribers should receive it.
pub type Route = Arc<dyn Fn(u32, u64, &mut Vec<u8>) -> u64 + Send + Sync>;

/// Publishes `n` messages with at most `depth` unanswered, checking every PUBLISH reply
/// against the receiver count `route` expects. `progress` counts answered publishes.
#[allow(clippy::too_many_arguments)]
pub async fn publish_pipelined(
    mut conn: Conn,
    publisher: u32,
    n: u64,
    depth: usize,
    payload_size: usize,
    route: Route,
    timeout: Duration,
    progress: Arc<AtomicU64>,
) -> Result<(PubStats, Conn), BenchError> {
    let mut stats = PubStats::default();
    let mut channel = Vec::new();
    let mut payload = Vec::with_capacity(payload_size.max(HEADER_BYTES));
    let mut inflight: VecDeque<u64> = VecDeque::with_capacity(depth);
    let mut seq = 0;
    let mut reported = 0;
    while stats.published < n {
        // What is queued now goes out in one write: one send time for all of it.
        let sent = now_ns();
        while seq < n && inflight.len() < depth.max(1) {
            channel.clear();
            let expected = route(publisher, seq, &mut channel);
            write_payload(&mut payload, publisher, seq, sent, payload_size);
            encode_publish(conn.wbuf(), &channel, &payload);
            inflight.push_back(expected);
            stats.expected += expected;
            seq += 1;
        }
        conn.flush().await?;
        let mut reply = Some(conn.read_reply(timeout).await?);
        while let Some(r) = reply {
            let expected = inflight
                .pop_front()
                .ok_or_else(|| BenchError::Protocol("more replies than requests".into()))?;
            match r {
                Reply::Int(got) => {
                    if got != expected as i64 {
                        stats.mismatches += 1;
                    }
                }
                Reply::Error(e) => return Err(BenchError::ServerError(e)),
                other => return Err(BenchError::Protocol(format!("PUBLISH replied {other:?}"))),
            }
            stats.published += 1;
            reply = conn.try_reply()?;
        }
        progress.fetch_add(stats.published - reported, Ordering::Relaxed);
        reported = stats.published;
    }
    stats.last_ns = now_ns();
    Ok((stats, conn))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn payload(publisher: u32, seq: u64, sent: u64) -> Vec<u8> {
        let mut out = Vec::new();
        write_payload(&mut out, publisher, seq, sent, 64);
        out
    }

    #[test]
    fn payload_round_trips_and_pads() {
        let p = payload(7, 42, 1_000);
        assert_eq!(p.len(), 64);
        assert_eq!(read_payload(&p), Some((7, 42, 1_000)));
        let mut short = Vec::new();
        write_payload(&mut short, 1, 2, 3, 5);
        assert_eq!(short.len(), HEADER_BYTES);
        assert_eq!(read_payload(b"too short"), None);
    }

    #[test]
    fn checker_counts_reorders_per_publisher_and_foreign_messages() {
        let latencies = Latencies::new().unwrap();
        let mut s = SubStats::new(2, &latencies);
        for (publisher, seq) in [(0, 0), (1, 0), (0, 1), (1, 2), (1, 1), (0, 1), (0, 5)] {
            s.record(b"message", &payload(publisher, seq, 10), 1_010);
        }
        assert_eq!(s.received, 7);
        assert_eq!(
            s.reordered, 2,
            "1 after 2 from publisher 1; 1 twice from publisher 0"
        );
        s.record(b"message", &payload(9, 0, 0), 5); // unknown publisher
        s.record(b"message", b"not ours", 5);
        s.record(b"subscribe", &payload(0, 6, 0), 5);
        assert_eq!(s.foreign, 3);
        assert_eq!(s.received, 7);
        assert!(latencies.snapshot().is_empty(), "held until flushed");
        s.flush();
        let hist = latencies.snapshot();
        assert_eq!((hist.len(), hist.max()), (7, 1_000));
    }
}
