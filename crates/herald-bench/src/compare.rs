//! `--compare ADDR`: the same scenario against two servers, interleaved A B A B so that
//! machine noise (thermal, other load) hits both alike, then per-metric medians and the
//! A/B ratio's min/median/max over the rounds.

use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, Table};

use crate::report::{per_sec, BenchResult};
use crate::{BenchError, ScenarioArgs};

/// Runs `rounds` rounds of A then B; results in run order, `round` set.
pub async fn run(
    scenario: &ScenarioArgs,
    a: &str,
    b: &str,
    rounds: u32,
) -> Result<Vec<BenchResult>, BenchError> {
    let mut results = Vec::with_capacity(2 * rounds as usize);
    for round in 1..=rounds {
        for addr in [a, b] {
            let mut r = scenario.run_once(addr).await?;
            r.round = round;
            results.push(r);
        }
    }
    Ok(results)
}

/// A compared metric: its name, how to read it, and whether higher is better.
type Metric = (&'static str, fn(&BenchResult) -> f64, bool);

/// The metrics compared.
const METRICS: [Metric; 7] = [
    ("published/s", |r| r.published_per_sec, true),
    ("deliveries/s", |r| r.deliveries_per_sec, true),
    ("latency p50 µs", |r| r.latency.p50_us, false),
    ("latency p99 µs", |r| r.latency.p99_us, false),
    ("latency p99.9 µs", |r| r.latency.p999_us, false),
    ("latency max µs", |r| r.latency.max_us, false),
    (
        "server CPU ns/delivery",
        |r| r.server_cpu_ns_per_delivery.unwrap_or(0.0),
        false,
    ),
];

/// Median of a non-empty list (the lower middle for even lengths is averaged in).
pub fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

fn fmt(v: f64, rate: bool) -> String {
    if rate {
        per_sec(v)
    } else {
        format!("{v:.0}")
    }
}

/// A ratio with two significant digits at least (`0.0012×`, not `0.00×`).
fn ratio_text(v: f64) -> String {
    if v == 0.0 || v >= 0.1 {
        format!("{v:.2}×")
    } else {
        let digits = (-v.log10()).ceil() as usize + 1;
        format!("{v:.digits$}×")
    }
}

/// The comparison table: each server's median per metric and the ratio A/B per round.
pub fn ratio_table(results: &[BenchResult], a: &str, b: &str) -> String {
    let of = |addr: &str| -> Vec<&BenchResult> {
        results.iter().filter(|r| r.meta.server == addr).collect()
    };
    let (ra, rb) = (of(a), of(b));
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(vec![
        "metric".to_owned(),
        format!("A {a} median"),
        format!("B {b} median"),
        "A/B min".to_owned(),
        "A/B median".to_owned(),
        "A/B max".to_owned(),
        "better".to_owned(),
    ]);
    for (name, get, higher) in METRICS {
        let mut va: Vec<f64> = ra.iter().map(|r| get(r)).collect();
        let mut vb: Vec<f64> = rb.iter().map(|r| get(r)).collect();
        if va.iter().chain(&vb).all(|v| *v == 0.0) {
            continue;
        }
        let mut ratios: Vec<f64> = ra
            .iter()
            .zip(&rb)
            .filter(|(_, y)| get(y) > 0.0)
            .map(|(x, y)| get(x) / get(y))
            .collect();
        ratios.sort_by(f64::total_cmp);
        let ratio = |v: Option<&f64>| v.map_or("-".to_owned(), |v| ratio_text(*v));
        let right = |s: String| Cell::new(s).set_alignment(CellAlignment::Right);
        table.add_row(vec![
            Cell::new(name),
            right(fmt(median(&mut va), higher)),
            right(fmt(median(&mut vb), higher)),
            right(ratio(ratios.first())),
            right(if ratios.is_empty() {
                "-".to_owned()
            } else {
                ratio_text(median(&mut ratios.clone()))
            }),
            right(ratio(ratios.last())),
            Cell::new(if higher { "higher" } else { "lower" }),
        ]);
    }
    table.to_string()
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn small_ratios_keep_their_digits() {
        assert_eq!(super::ratio_text(1.234), "1.23×");
        assert_eq!(super::ratio_text(0.0012), "0.0012×");
        assert_eq!(super::ratio_text(0.05), "0.050×");
    }

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
