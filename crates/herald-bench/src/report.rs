//! Results: assembling per-connection statistics into one [`BenchResult`], and printing
//! it as a human table (comfy-table) or as one JSON line (serde_json).

use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, Table};
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::scenario::{Latencies, PubStats, SubStats};
use crate::BenchError;

/// Latency percentiles in microseconds (end to end: send time in the payload to receipt).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest seen.
    pub max_us: f64,
}

impl Latency {
    fn from_histogram(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        Latency {
            p50_us: us(h.value_at_quantile(0.50)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            max_us: us(h.max()),
        }
    }
}

/// What a run was: the fixed facts a scenario knows before it starts.
#[derive(Debug, Clone, Serialize)]
pub struct RunMeta {
    /// `fanout`, `patterns`, `latency`.
    pub scenario: &'static str,
    /// The server's address.
    pub server: String,
    /// Publisher connections.
    pub publishers: usize,
    /// Subscriber connections.
    pub subscribers: usize,
    /// Patterns registered by the run (0 when none).
    pub patterns: usize,
    /// Payload size in bytes.
    pub payload_bytes: usize,
    /// Open-loop send rate in messages/s, for the latency scenario.
    pub target_rate: Option<f64>,
}

/// One run of one scenario against one server.
#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    /// What was run.
    #[serde(flatten)]
    pub meta: RunMeta,
    /// 1-based round within a `--compare` run (1 otherwise).
    pub round: u32,
    /// PUBLISH commands answered.
    pub published: u64,
    /// Publishes per second, from the start to the last PUBLISH reply.
    pub published_per_sec: f64,
    /// Deliveries the scenario's design calls for.
    pub expected_deliveries: u64,
    /// Messages the subscribers received.
    pub deliveries: u64,
    /// Deliveries per second, from the start to the last delivery.
    pub deliveries_per_sec: f64,
    /// Expected deliveries that never arrived.
    pub lost: u64,
    /// Messages that arrived out of per-publisher order (or twice).
    pub reordered: u64,
    /// Messages that did not decode as this run's payloads.
    pub foreign: u64,
    /// PUBLISH replies whose receiver count differed from the expected count.
    pub receiver_mismatches: u64,
    /// End-to-end latency.
    pub latency: Latency,
    /// Seconds from the start of publishing to the last reply or delivery.
    pub duration_s: f64,
    /// Server RSS growth per subscriber connection (`connections --server-pid`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_bytes_per_connection: Option<f64>,
    /// Server CPU seconds (user + system) over the measured window (`--pid`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_cpu_s: Option<f64>,
    /// Server CPU nanoseconds per delivery (per publish when nothing is delivered).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_cpu_ns_per_delivery: Option<f64>,
}

impl BenchResult {
    /// Builds a result from every connection's statistics and the subscribers' shared
    /// `latencies`; `start_ns` is when publishing began.
    pub fn assemble(
        meta: RunMeta,
        start_ns: u64,
        expected_deliveries: u64,
        pubs: &[PubStats],
        subs: &[SubStats],
        latencies: &Latencies,
    ) -> Result<BenchResult, BenchError> {
        let hist = latencies.snapshot();
        let published: u64 = pubs.iter().map(|p| p.published).sum();
        let deliveries: u64 = subs.iter().map(|s| s.received).sum();
        let publish_end = pubs.iter().map(|p| p.last_ns).max().unwrap_or(start_ns);
        let deliver_end = subs.iter().map(|s| s.last_ns).max().unwrap_or(start_ns);
        let secs = |end: u64| end.saturating_sub(start_ns) as f64 / 1e9;
        let rate = |n: u64, end: u64| {
            let s = secs(end);
            if s > 0.0 {
                n as f64 / s
            } else {
                0.0
            }
        };
        Ok(BenchResult {
            round: 1,
            published,
            published_per_sec: rate(published, publish_end),
            expected_deliveries,
            deliveries,
            deliveries_per_sec: rate(deliveries, deliver_end),
            lost: expected_deliveries.saturating_sub(deliveries),
            reordered: subs.iter().map(|s| s.reordered).sum(),
            foreign: subs.iter().map(|s| s.foreign).sum(),
            receiver_mismatches: pubs.iter().map(|p| p.mismatches).sum(),
            latency: Latency::from_histogram(&hist),
            duration_s: secs(publish_end.max(deliver_end)),
            rss_bytes_per_connection: None,
            server_cpu_s: None,
            server_cpu_ns_per_delivery: None,
            meta,
        })
    }

    /// Records the server CPU time of the measured window and derives the cost per
    /// delivery (per publish for runs that deliver nothing).
    pub fn set_server_cpu(&mut self, cpu: Option<std::time::Duration>) {
        let Some(cpu) = cpu else {
            return;
        };
        self.server_cpu_s = Some(cpu.as_secs_f64());
        let units = if self.deliveries > 0 {
            self.deliveries
        } else {
            self.published
        };
        self.server_cpu_ns_per_delivery =
            (units > 0).then(|| cpu.as_secs_f64() * 1e9 / units as f64);
    }

    /// True when nothing was lost, reordered, foreign or miscounted by the server.
    pub fn is_clean(&self) -> bool {
        self.lost == 0
            && self.reordered == 0
            && self.foreign == 0
            && self.receiver_mismatches == 0
            && self.deliveries == self.expected_deliveries
    }

    /// One JSON object on one line.
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

/// Formats a count per second with a thousands separator (`1 234 567`).
pub fn per_sec(v: f64) -> String {
    let n = v.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

fn right(text: String) -> Cell {
    Cell::new(text).set_alignment(CellAlignment::Right)
}

/// A table with one row per result.
pub fn results_table(results: &[BenchResult]) -> String {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(vec![
        "scenario",
        "server",
        "round",
        "pub→sub",
        "published/s",
        "deliveries/s",
        "p50 µs",
        "p99 µs",
        "p99.9 µs",
        "max µs",
        "lost",
        "reordered",
        "mismatch",
        "secs",
        "srv CPU ns/deliv",
    ]);
    for r in results {
        let shape = if r.meta.patterns > 0 {
            format!(
                "{}→{} ({} pat)",
                r.meta.publishers, r.meta.subscribers, r.meta.patterns
            )
        } else {
            format!("{}→{}", r.meta.publishers, r.meta.subscribers)
        };
        table.add_row(vec![
            Cell::new(r.meta.scenario),
            Cell::new(&r.meta.server),
            right(r.round.to_string()),
            Cell::new(shape),
            right(per_sec(r.published_per_sec)),
            right(per_sec(r.deliveries_per_sec)),
            right(format!("{:.0}", r.latency.p50_us)),
            right(format!("{:.0}", r.latency.p99_us)),
            right(format!("{:.0}", r.latency.p999_us)),
            right(format!("{:.0}", r.latency.max_us)),
            right(r.lost.to_string()),
            right(r.reordered.to_string()),
            right((r.receiver_mismatches + r.foreign).to_string()),
            right(format!("{:.2}", r.duration_s)),
            right(
                r.server_cpu_ns_per_delivery
                    .map_or("-".to_owned(), |ns| format!("{ns:.0}")),
            ),
        ]);
    }
    let mut out = table.to_string();
    for r in results {
        if let Some(bytes) = r.rss_bytes_per_connection {
            out.push_str(&format!(
                "\n{} round {}: server RSS grew {:.0} bytes per connection ({:.1} KB)",
                r.meta.server,
                r.round,
                bytes,
                bytes / 1024.0
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::per_sec;

    #[test]
    fn thousands_are_spaced() {
        assert_eq!(per_sec(0.4), "0");
        assert_eq!(per_sec(999.0), "999");
        assert_eq!(per_sec(1234567.0), "1 234 567");
    }
}
