//! The subscription registry: [`Engine`] ties together both scopes' channel maps
//! ([`crate::channels`]) and the pattern index ([`crate::patterns`]), and counts.
//!
//! The other half of Redis's two-way index (client → its channels) belongs to each
//! front-end session, which knows what it subscribed to; unsubscribe-all and disconnect
//! therefore cost only the client's own subscriptions.
//!
//! A publish takes copy-on-write snapshots of the receiving sets (each under a read
//! lock held for an `Arc` clone) and appends to outboxes with no registry lock held; no
//! lock is ever held across an `.await`: this crate has none on its hot path. Counters
//! are per-thread slots ([`ShardedCounter`]), so cores publishing at once share no
//! cache line.
//!
//! Delivery order of one publish (deterministic, and what the tests pin down): the
//! channel's own subscribers first, in their set's order; then every matching pattern in
//! the order the patterns were registered, each pattern's subscribers in their set's
//! order. A client subscribed both ways therefore gets `message` before `pmessage`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::activity::{ChannelActivity, ChannelOrder};
use crate::channels::ChannelMap;
use crate::counter::ShardedCounter;
use crate::glob::Glob;
use crate::message::{ClientId, Delivery, DeliveryKind, Message, Scope};
use crate::outbox::{Appended, Outbox, PendingWakes};
use crate::patterns::{PatternFootprint, PatternIndex};
use crate::subscribers::Snapshot;

pub use crate::channels::CHANNEL_SHARDS;

/// Counters of the engine; a consistent-enough snapshot for INFO and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Classic channels with at least one subscriber.
    pub channels: usize,
    /// Shard channels with at least one subscriber.
    pub shard_channels: usize,
    /// Distinct patterns with at least one subscriber.
    pub patterns: usize,
    /// PUBLISH and SPUBLISH calls since start.
    pub messages_published: u64,
    /// Messages handed to subscribers since start (one per receiving subscription).
    pub deliveries: u64,
}

/// The pub/sub engine shared by every front-end.
#[derive(Debug, Default)]
pub struct Engine {
    classic: ChannelMap,
    shard: ChannelMap,
    patterns: PatternIndex,
    published: ShardedCounter,
    delivered: ShardedCounter,
}

impl Engine {
    /// An engine with no subscriptions.
    pub fn new() -> Self {
        Self::default()
    }

    /// An engine whose pattern index caches results per channel (`true`, the default)
    /// or walks its tries on every publish (`false`). Results are the same either way.
    pub fn with_pattern_cache(enabled: bool) -> Self {
        Engine {
            patterns: PatternIndex::new(enabled),
            ..Engine::default()
        }
    }

    fn map(&self, scope: Scope) -> &ChannelMap {
        match scope {
            Scope::Classic => &self.classic,
            Scope::Shard => &self.shard,
        }
    }

    /// Subscribes `outbox` to `channel`; false when it already was.
    pub fn subscribe(&self, scope: Scope, channel: Bytes, outbox: &Arc<Outbox>) -> bool {
        self.map(scope).subscribe(&channel, outbox)
    }

    /// Unsubscribes `client` from `channel`; false when it was not subscribed.
    pub fn unsubscribe(&self, scope: Scope, channel: &[u8], client: ClientId) -> bool {
        self.map(scope).unsubscribe(channel, client)
    }

    /// Subscribes `outbox` to `pattern`; false when it already was.
    pub fn psubscribe(&self, pattern: Bytes, outbox: &Arc<Outbox>) -> bool {
        self.patterns.subscribe(&pattern, outbox)
    }

    /// Unsubscribes `client` from `pattern`; false when it was not subscribed.
    pub fn punsubscribe(&self, pattern: &[u8], client: ClientId) -> bool {
        self.patterns.unsubscribe(pattern, client)
    }

    /// Delivers `payload` on `channel` and returns the number of deliveries made
    /// (Redis's PUBLISH reply), in the order given in the module docs. Shard channels
    /// never consult patterns.
    pub fn publish(&self, scope: Scope, channel: Bytes, payload: Bytes) -> usize {
        self.publish_with(scope, &channel, &payload, |receivers, kind, message| {
            for outbox in receivers.iter() {
                outbox.deliver(Delivery {
                    kind: kind.clone(),
                    message: Arc::clone(message),
                });
            }
        })
    }

    /// [`Engine::publish`] without waking anyone: outboxes this publish made non-empty
    /// are added to `pending`, which the caller flushes once its batch of commands is
    /// done, so a pipeline of publishes costs each subscriber one write, not one per
    /// message. A staging `pending` ([`PendingWakes::staging_for`]) also holds the
    /// deliveries back until its commit, so that the batch locks each receiver once.
    /// Borrows the channel and payload: they are shared (one reference count each) only
    /// when someone receives them, so a publish nobody hears costs none.
    pub fn publish_deferred(
        &self,
        scope: Scope,
        channel: &Bytes,
        payload: &Bytes,
        pending: &mut PendingWakes,
    ) -> usize {
        self.publish_with(scope, channel, payload, |receivers, kind, message| {
            if pending.stage(receivers, kind, message) {
                return;
            }
            for outbox in receivers.iter() {
                let delivery = Delivery {
                    kind: kind.clone(),
                    message: Arc::clone(message),
                };
                if outbox.deliver_deferred(delivery) == Appended::NeedsFlush {
                    pending.push(outbox);
                }
            }
        })
    }

    /// Finds the receiving sets of one publish and hands each, in delivery order, to
    /// `deliver` with the kind of delivery its members get.
    fn publish_with(
        &self,
        scope: Scope,
        channel: &Bytes,
        payload: &Bytes,
        mut deliver: impl FnMut(&Snapshot, &DeliveryKind, &Arc<Message>),
    ) -> usize {
        self.published.add(1);
        let subscribers = self.map(scope).snapshot_for_publish(channel);
        let matches = match scope {
            Scope::Classic if !self.patterns.is_empty() => Some(self.patterns.matching(channel)),
            _ => None,
        };
        if subscribers.is_none() && matches.as_ref().is_none_or(|m| m.is_empty()) {
            return 0;
        }
        let message = Arc::new(Message::new(channel.clone(), payload.clone()));
        let mut receivers = 0;
        if let Some(subscribers) = subscribers {
            let kind = match scope {
                Scope::Classic => DeliveryKind::Channel,
                Scope::Shard => DeliveryKind::Shard,
            };
            deliver(&subscribers, &kind, &message);
            receivers += subscribers.len();
        }
        for matched in matches.iter().flat_map(|matches| matches.iter()) {
            deliver(
                &matched.subscribers,
                &DeliveryKind::Pattern(matched.pattern.clone()),
                &message,
            );
            receivers += matched.subscribers.len();
        }
        self.delivered.add(receivers as u64);
        receivers
    }

    /// Subscribers of `channel` in `scope` (PUBSUB NUMSUB / SHARDNUMSUB); patterns not counted.
    pub fn subscriber_count(&self, scope: Scope, channel: &[u8]) -> usize {
        self.map(scope).count(channel)
    }

    /// Active channels of `scope`, optionally filtered by a glob (PUBSUB CHANNELS).
    pub fn channels(&self, scope: Scope, filter: Option<&Glob>) -> Vec<Bytes> {
        self.map(scope).names(filter)
    }

    /// Distinct patterns with at least one subscriber (PUBSUB NUMPAT).
    pub fn pattern_count(&self) -> usize {
        self.patterns.len()
    }

    /// Sizes of the pattern index now (it shrinks back when patterns go).
    pub fn pattern_footprint(&self) -> PatternFootprint {
        self.patterns.footprint()
    }

    /// Folds the publishes since the last call into every channel's rate (both scopes).
    /// Call from one task, about once a second, `elapsed` after the previous call: the
    /// gateway's dashboard sampler does. Costs one walk of the channels.
    pub fn sample_channel_rates(&self, elapsed: Duration) {
        self.classic.sample_rates(elapsed);
        self.shard.sample_rates(elapsed);
    }

    /// The `limit` (at most [`crate::activity::MAX_TOP_CHANNELS`]) top channels of
    /// `scope` by `order`, among those whose name contains `search`. Rates are as of the
    /// last [`Engine::sample_channel_rates`]; 0 if nothing samples.
    pub fn top_channels(
        &self,
        scope: Scope,
        order: ChannelOrder,
        limit: usize,
        search: Option<&[u8]>,
    ) -> Vec<ChannelActivity> {
        self.top_channels_each(scope, &[order], limit, search)
            .pop()
            .unwrap_or_default()
    }

    /// [`Engine::top_channels`] for each of `orders`, in one walk of the channels.
    pub fn top_channels_each(
        &self,
        scope: Scope,
        orders: &[ChannelOrder],
        limit: usize,
        search: Option<&[u8]>,
    ) -> Vec<Vec<ChannelActivity>> {
        self.map(scope).top(orders, limit, search)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> EngineStats {
        EngineStats {
            channels: self.classic.len(),
            shard_channels: self.shard.len(),
            patterns: self.pattern_count(),
            messages_published: self.published.get(),
            deliveries: self.delivered.get(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::{OutboxBatch, Outgoing, OutputLimits, PendingWakes};

    fn client(id: u64) -> Arc<Outbox> {
        Arc::new(Outbox::new(ClientId(id), Arc::new(OutputLimits::default())))
    }

    fn deliveries(outbox: &Outbox) -> Vec<Delivery> {
        let mut out = Vec::new();
        while outbox.take_batch(&mut out, usize::MAX) == OutboxBatch::Ready {}
        out.into_iter().flat_map(Outgoing::deliveries).collect()
    }

    /// Runs `test` on an engine with the pattern cache and on one without.
    fn each_engine(test: impl Fn(Engine)) {
        test(Engine::with_pattern_cache(true));
        test(Engine::with_pattern_cache(false));
    }

    fn b(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    #[test]
    fn deferred_publishes_ask_each_subscriber_for_one_flush_per_batch() {
        each_engine(|engine| {
            let (a, c) = (client(1), client(2));
            engine.subscribe(Scope::Classic, b("news"), &a);
            engine.psubscribe(b("n*"), &a);
            engine.subscribe(Scope::Classic, b("news"), &c);
            let mut pending = PendingWakes::default();
            for _ in 0..3 {
                assert_eq!(
                    engine.publish_deferred(Scope::Classic, &b("news"), &b("hi"), &mut pending),
                    3
                );
            }
            assert_eq!(pending.outboxes_for_test(), vec![ClientId(1), ClientId(2)]);
            pending.flush();
            assert!(pending.is_empty());
            assert_eq!(deliveries(&a).len(), 6);
            assert_eq!(deliveries(&c).len(), 3);
            assert_eq!(engine.stats().deliveries, 9);
        });
    }

    #[test]
    fn publish_counts_every_receiver_and_orders_message_before_pmessage() {
        each_engine(|engine| {
            let (a, c) = (client(1), client(2));
            assert!(engine.subscribe(Scope::Classic, b("news"), &a));
            assert!(!engine.subscribe(Scope::Classic, b("news"), &a));
            assert!(engine.psubscribe(b("n*"), &a));
            assert!(engine.subscribe(Scope::Classic, b("news"), &c));
            assert_eq!(engine.publish(Scope::Classic, b("news"), b("hi")), 3);
            let got = deliveries(&a);
            assert_eq!(got.len(), 2);
            assert_eq!(got[0].kind, DeliveryKind::Channel);
            assert_eq!(got[1].kind, DeliveryKind::Pattern(b("n*")));
            assert!(Arc::ptr_eq(&got[0].message, &got[1].message));
            assert_eq!(deliveries(&c).len(), 1);
        });
    }

    #[test]
    fn one_publish_orders_exact_subscribers_then_patterns_by_registration() {
        each_engine(|engine| {
            let (a, c) = (client(1), client(2));
            engine.psubscribe(b("*s"), &c);
            engine.psubscribe(b("ne*"), &a);
            engine.subscribe(Scope::Classic, b("news"), &c);
            engine.psubscribe(b("n*"), &a);
            engine.psubscribe(b("ne*"), &c);
            assert_eq!(engine.publish(Scope::Classic, b("news"), b("hi")), 5);
            let kinds = |outbox: &Outbox| -> Vec<DeliveryKind> {
                deliveries(outbox).into_iter().map(|d| d.kind).collect()
            };
            assert_eq!(
                kinds(&c),
                vec![
                    DeliveryKind::Channel,
                    DeliveryKind::Pattern(b("*s")),
                    DeliveryKind::Pattern(b("ne*")),
                ]
            );
            assert_eq!(
                kinds(&a),
                vec![
                    DeliveryKind::Pattern(b("ne*")),
                    DeliveryKind::Pattern(b("n*"))
                ]
            );
        });
    }

    #[test]
    fn names_are_copied_out_of_the_callers_buffer() {
        each_engine(|engine| {
            let buffer = Bytes::from(b"SUBSCRIBE news p*".to_vec());
            engine.subscribe(Scope::Classic, buffer.slice(10..14), &client(1));
            engine.psubscribe(buffer.slice(15..17), &client(1));
            // Only the caller's handle is left on the read buffer.
            assert!(buffer.is_unique());
        });
    }

    #[test]
    fn scopes_are_separate_namespaces_and_shards_skip_patterns() {
        each_engine(|engine| {
            let (a, c) = (client(1), client(2));
            engine.subscribe(Scope::Shard, b("chan1"), &a);
            engine.subscribe(Scope::Classic, b("chan1"), &c);
            engine.psubscribe(b("*"), &c);
            assert_eq!(engine.publish(Scope::Shard, b("chan1"), b("x")), 1);
            assert_eq!(engine.publish(Scope::Classic, b("chan1"), b("x")), 2);
            assert_eq!(engine.subscriber_count(Scope::Shard, b"chan1"), 1);
            assert_eq!(engine.subscriber_count(Scope::Classic, b"chan1"), 1);
            assert_eq!(deliveries(&a)[0].kind, DeliveryKind::Shard);
        });
    }

    #[test]
    fn empty_entries_are_removed() {
        each_engine(|engine| {
            let a = client(1);
            engine.subscribe(Scope::Classic, b("x"), &a);
            engine.psubscribe(b("x*"), &a);
            assert!(engine.unsubscribe(Scope::Classic, b"x", a.id()));
            assert!(!engine.unsubscribe(Scope::Classic, b"x", a.id()));
            assert!(engine.punsubscribe(b"x*", a.id()));
            assert!(!engine.punsubscribe(b"x*", a.id()));
            assert_eq!(engine.stats().channels, 0);
            assert_eq!(engine.pattern_count(), 0);
            assert_eq!(engine.publish(Scope::Classic, b("x"), b("gone")), 0);
        });
    }

    #[test]
    fn numpat_counts_distinct_patterns() {
        each_engine(|engine| {
            engine.psubscribe(b("foo*"), &client(1));
            engine.psubscribe(b("foo*"), &client(2));
            engine.psubscribe(b("bar*"), &client(2));
            assert_eq!(engine.pattern_count(), 2);
        });
    }

    #[test]
    fn channels_filter_by_glob() {
        let engine = Engine::new();
        let a = client(1);
        for name in ["foo.1", "foo1", "barfoo.1"] {
            engine.subscribe(Scope::Classic, Bytes::from(name), &a);
        }
        let mut all = engine.channels(Scope::Classic, None);
        all.sort();
        assert_eq!(all.len(), 3);
        let matched = engine.channels(Scope::Classic, Some(&Glob::new(b"foo.*")));
        assert_eq!(matched, vec![b("foo.1")]);
    }

    #[test]
    fn stats_count_publishes_and_deliveries() {
        let engine = Engine::new();
        let a = client(1);
        engine.subscribe(Scope::Classic, b("c"), &a);
        engine.publish(Scope::Classic, b("c"), b("1"));
        engine.publish(Scope::Classic, b("nobody"), b("2"));
        let stats = engine.stats();
        assert_eq!(stats.messages_published, 2);
        assert_eq!(stats.deliveries, 1);
        assert_eq!(stats.channels, 1);
    }

    #[test]
    fn top_channels_rank_by_rate_and_by_subscribers_and_filter_by_name() {
        let engine = Engine::new();
        let clients: Vec<_> = (1..=3).map(client).collect();
        // orders:hot has 1 subscriber and most publishes; users:big has 3 and few.
        engine.subscribe(Scope::Classic, b("orders:hot"), &clients[0]);
        for outbox in &clients {
            engine.subscribe(Scope::Classic, b("users:big"), outbox);
        }
        engine.subscribe(Scope::Classic, b("orders:cold"), &clients[1]);
        for _ in 0..50 {
            engine.publish(Scope::Classic, b("orders:hot"), b("x"));
        }
        for _ in 0..5 {
            engine.publish(Scope::Classic, b("users:big"), b("x"));
        }
        // Not tracked: nobody subscribes.
        engine.publish(Scope::Classic, b("nobody"), b("x"));
        engine.sample_channel_rates(Duration::from_secs(1));
        let names = |rows: Vec<ChannelActivity>| -> Vec<Bytes> {
            rows.into_iter().map(|row| row.channel).collect()
        };
        let by_rate = engine.top_channels(Scope::Classic, ChannelOrder::Rate, 10, None);
        assert_eq!(by_rate[0].published, 50);
        assert!(by_rate[0].rate > by_rate[1].rate);
        assert_eq!(
            names(by_rate),
            vec![b("orders:hot"), b("users:big"), b("orders:cold")]
        );
        let by_subscribers =
            engine.top_channels(Scope::Classic, ChannelOrder::Subscribers, 2, None);
        assert_eq!(by_subscribers[0].subscribers, 3);
        assert_eq!(
            names(by_subscribers),
            // A tie on subscribers goes to the higher rate.
            vec![b("users:big"), b("orders:hot")]
        );
        let searched = engine.top_channels(Scope::Classic, ChannelOrder::Rate, 10, Some(b"orders"));
        assert_eq!(names(searched), vec![b("orders:hot"), b("orders:cold")]);
        assert!(engine
            .top_channels(Scope::Shard, ChannelOrder::Rate, 10, None)
            .is_empty());
        // A channel that loses its last subscriber loses its history with it.
        engine.unsubscribe(Scope::Classic, b"orders:hot", ClientId(1));
        engine.subscribe(Scope::Classic, b("orders:hot"), &clients[0]);
        let again = engine.top_channels(Scope::Classic, ChannelOrder::Rate, 10, Some(b"hot"));
        assert_eq!((again[0].published, again[0].rate), (0, 0.0));
    }
}
