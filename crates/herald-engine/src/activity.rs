//! Per-channel activity for dashboards: how often each channel is published to, as a
//! smoothed rate, and the top channels by rate or by subscribers.
//!
//! The state lives beside each channel's subscriber set ([`Activity`], three atomics), so
//! it costs nothing per channel beyond what the channel already costs and vanishes with
//! the channel. A publish adds one relaxed increment to its channel's counter. Rates are
//! derived by one sampler (the gateway's, about once a second) that walks the channels,
//! so a publish never does rate arithmetic. A top-K query walks the channels once and
//! keeps at most K rows in a heap: a million channels never become a million rows.
//!
//! Ties: among channels with equal figures, the first ones the walk meets are kept (a
//! later tie does not displace them), and the rows returned are sorted by figures, then
//! name. Breaking ties by name during the walk would read every channel's name from
//! memory, which made a top-20 over a million idle channels four times slower.
//!
//! Publishes to a channel nobody subscribes to are not tracked: such a channel has no
//! entry (as in PUBSUB CHANNELS), and tracking it would let a client grow server memory
//! by publishing to random names.
//!
//! This module must not take any lock: [`crate::channels`] calls it under its shard
//! locks.

use std::cmp::{Ordering as CmpOrdering, Reverse};
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;

/// Time constant of the rate smoothing: a step change shows ~63% after this long.
pub const RATE_TIME_CONSTANT: Duration = Duration::from_secs(3);
/// Most rows one top-channels query returns.
pub const MAX_TOP_CHANNELS: usize = 1000;

/// One channel's publish counter and smoothed rate.
#[derive(Debug, Default)]
pub struct Activity {
    /// Publishes since the channel got its first subscriber.
    published: AtomicU64,
    /// `published` as of the last sample.
    sampled: AtomicU64,
    /// Messages per second, smoothed, as `f64` bits; 0 before the first sample.
    rate_bits: AtomicU64,
}

impl Activity {
    /// Counts one publish.
    pub fn count_publish(&self) {
        self.published.fetch_add(1, Ordering::Relaxed);
    }

    /// Publishes since the channel got its first subscriber.
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    /// The smoothed rate, messages per second.
    pub fn rate(&self) -> f64 {
        f64::from_bits(self.rate_bits.load(Ordering::Relaxed))
    }

    /// Folds the publishes since the last sample, `elapsed` ago, into the rate. Meant
    /// for one sampler; two would each see only part of the publishes.
    pub fn sample(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        if seconds <= 0.0 {
            return;
        }
        let now = self.published.load(Ordering::Relaxed);
        let before = self.sampled.swap(now, Ordering::Relaxed);
        let instant = now.saturating_sub(before) as f64 / seconds;
        let weight = 1.0 - (-seconds / RATE_TIME_CONSTANT.as_secs_f64()).exp();
        let rate = self.rate() + weight * (instant - self.rate());
        // Below one message per hour is idle: show 0 instead of a long exponential tail.
        let rate = if rate < 1.0 / 3600.0 { 0.0 } else { rate };
        self.rate_bits.store(rate.to_bits(), Ordering::Relaxed);
    }
}

/// How to rank channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelOrder {
    /// By smoothed publish rate, highest first.
    Rate,
    /// By subscriber count, highest first.
    Subscribers,
}

/// One row of a top-channels answer.
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelActivity {
    /// The channel.
    pub channel: Bytes,
    /// Subscribers now (patterns not counted, as PUBSUB NUMSUB).
    pub subscribers: usize,
    /// Smoothed publishes per second.
    pub rate: f64,
    /// Publishes since the channel got its first subscriber.
    pub published: u64,
}

impl ChannelActivity {
    fn cmp_by(&self, other: &Self, order: ChannelOrder) -> CmpOrdering {
        let primary = match order {
            ChannelOrder::Rate => self
                .rate
                .total_cmp(&other.rate)
                .then(self.subscribers.cmp(&other.subscribers)),
            ChannelOrder::Subscribers => self
                .subscribers
                .cmp(&other.subscribers)
                .then(self.rate.total_cmp(&other.rate)),
        };
        // Equal figures: the smaller name first, so the rows read in a stable order.
        primary.then_with(|| other.channel.cmp(&self.channel))
    }
}

/// A bounded collector of the `limit` highest rows by `order`.
#[derive(Debug)]
pub struct TopChannels {
    order: ChannelOrder,
    limit: usize,
    heap: BinaryHeap<Reverse<Ranked>>,
}

#[derive(Debug)]
struct Ranked(ChannelActivity, ChannelOrder);

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == CmpOrdering::Equal
    }
}
impl Eq for Ranked {}
impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        self.0.cmp_by(&other.0, self.1)
    }
}

impl TopChannels {
    /// A collector of at most `limit` rows (capped at [`MAX_TOP_CHANNELS`]).
    pub fn new(order: ChannelOrder, limit: usize) -> Self {
        let limit = limit.min(MAX_TOP_CHANNELS);
        TopChannels {
            order,
            limit,
            heap: BinaryHeap::with_capacity(limit + 1),
        }
    }

    /// Offers a channel; its row is built (the name cloned) only when it is kept, so a
    /// walk over many channels that do not make the list allocates nothing.
    pub fn offer(&mut self, subscribers: usize, activity: &Activity, name: &Bytes) {
        if self.limit == 0 {
            return;
        }
        let rate = activity.rate();
        if self.heap.len() == self.limit {
            let Some(Reverse(lowest)) = self.heap.peek() else {
                return;
            };
            let lowest = &lowest.0;
            let figures = match self.order {
                ChannelOrder::Rate => (rate, subscribers as f64)
                    .partial_cmp(&(lowest.rate, lowest.subscribers as f64)),
                ChannelOrder::Subscribers => (subscribers as f64, rate)
                    .partial_cmp(&(lowest.subscribers as f64, lowest.rate)),
            };
            // A tie does not displace a row already kept: see the module docs.
            if figures != Some(CmpOrdering::Greater) {
                return;
            }
        }
        let row = ChannelActivity {
            channel: name.clone(),
            subscribers,
            rate,
            published: activity.published(),
        };
        self.heap.push(Reverse(Ranked(row, self.order)));
        if self.heap.len() > self.limit {
            self.heap.pop();
        }
    }

    /// The rows kept, best first.
    pub fn into_sorted(self) -> Vec<ChannelActivity> {
        let mut rows: Vec<ChannelActivity> = self
            .heap
            .into_iter()
            .map(|Reverse(Ranked(row, _))| row)
            .collect();
        rows.sort_by(|a, b| b.cmp_by(a, self.order));
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn activity_with_rate(rate: f64) -> Activity {
        let activity = Activity::default();
        activity.rate_bits.store(rate.to_bits(), Ordering::Relaxed);
        activity
    }

    #[test]
    fn a_steady_rate_converges_and_stopping_decays_to_zero() {
        let activity = Activity::default();
        for _ in 0..30 {
            for _ in 0..100 {
                activity.count_publish();
            }
            activity.sample(Duration::from_secs(1));
        }
        assert!((activity.rate() - 100.0).abs() < 1.0, "{}", activity.rate());
        assert_eq!(activity.published(), 3000);
        activity.sample(Duration::from_secs(1));
        assert!(activity.rate() < 100.0 * 0.8);
        for _ in 0..200 {
            activity.sample(Duration::from_secs(1));
        }
        assert_eq!(activity.rate(), 0.0);
    }

    #[test]
    fn a_zero_interval_changes_nothing() {
        let activity = Activity::default();
        activity.count_publish();
        activity.sample(Duration::ZERO);
        assert_eq!(activity.rate(), 0.0);
        activity.sample(Duration::from_secs(1));
        assert!(activity.rate() > 0.0);
    }

    #[test]
    fn the_first_ties_are_kept_and_sorted_by_name_and_limit_zero_keeps_nothing() {
        let idle = Activity::default();
        let mut top = TopChannels::new(ChannelOrder::Subscribers, 2);
        for name in ["c", "a", "b"] {
            top.offer(1, &idle, &Bytes::from(name));
        }
        top.offer(2, &idle, &Bytes::from("z"));
        let names: Vec<_> = top.into_sorted().into_iter().map(|r| r.channel).collect();
        // Of the kept ties c and a, the one that sorts last (c) makes room for z.
        assert_eq!(names, vec![Bytes::from("z"), Bytes::from("a")]);
        let mut none = TopChannels::new(ChannelOrder::Rate, 0);
        none.offer(5, &idle, &Bytes::from("x"));
        assert!(none.into_sorted().is_empty());
    }

    proptest! {
        /// The collector returns the top figures exactly (ties may be any of the tied
        /// channels), best first, equal figures by name.
        #[test]
        fn top_k_has_the_figures_of_sort_and_truncate(
            rows in proptest::collection::vec((0usize..20, 0u32..5), 0..200),
            limit in 0usize..30,
            by_rate in any::<bool>(),
        ) {
            let order = if by_rate { ChannelOrder::Rate } else { ChannelOrder::Subscribers };
            let mut top = TopChannels::new(order, limit);
            let mut all = Vec::new();
            for (i, (subscribers, rate)) in rows.iter().enumerate() {
                let activity = activity_with_rate(f64::from(*rate));
                let name = Bytes::from(format!("ch{i:04}"));
                top.offer(*subscribers, &activity, &name);
                all.push(ChannelActivity { channel: name, subscribers: *subscribers, rate: f64::from(*rate), published: 0 });
            }
            all.sort_by(|a, b| b.cmp_by(a, order));
            all.truncate(limit);
            let kept = top.into_sorted();
            let figures = |rows: &[ChannelActivity]| -> Vec<(usize, u64)> {
                rows.iter().map(|row| (row.subscribers, row.rate.to_bits())).collect()
            };
            prop_assert_eq!(figures(&kept), figures(&all));
            for pair in kept.windows(2) {
                prop_assert!(pair[0].cmp_by(&pair[1], order) == CmpOrdering::Greater);
            }
            let mut names: Vec<_> = kept.iter().map(|row| row.channel.clone()).collect();
            names.sort();
            names.dedup();
            prop_assert_eq!(names.len(), kept.len());
        }
    }
}
