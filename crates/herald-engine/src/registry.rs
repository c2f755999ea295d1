//! The subscription registry: channel → subscribers for both scopes, and the pattern set.
//!
//! The other half of Redis's two-way index (client → its channels) belongs to each
//! front-end session, which knows what it subscribed to; unsubscribe-all and disconnect
//! therefore cost only the client's own subscriptions. Entries with no subscriber left
//! are deleted at once, so PUBSUB CHANNELS and memory reflect live subscriptions only.
//!
//! Locking: each scope's channel map is split into [`CHANNEL_SHARDS`] shards, each a
//! `parking_lot::RwLock<HashMap>` whose values are `Arc`'d subscriber sets with a lock of
//! their own. PUBLISH read-locks one shard only long enough to clone the set's `Arc`, then
//! read-locks the set while it appends to outboxes (a short, non-blocking push each), so
//! publishers on different channels never contend and subscribes to other channels proceed.
//! Patterns live in one `RwLock`'d map, read-locked by PUBLISH for the match. No lock is
//! ever held across an `.await`: this crate has none on its hot path.
//!
//! Patterns are matched by testing every distinct pattern once per publish (Redis's cost
//! model); subscribers sharing a pattern share that one test.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use indexmap::IndexMap;
use parking_lot::RwLock;

use crate::glob::Glob;
use crate::message::{ClientId, Delivery, DeliveryKind, Message, Scope};
use crate::outbox::Outbox;

/// Shards per channel map: enough to spread two-digit core counts, few enough that
/// listing every channel stays cheap.
pub const CHANNEL_SHARDS: usize = 32;

type Subscribers = IndexMap<ClientId, Arc<Outbox>>;

#[derive(Debug, Default)]
struct ChannelMap {
    shards: [RwLock<HashMap<Bytes, Arc<RwLock<Subscribers>>>>; CHANNEL_SHARDS],
}

impl ChannelMap {
    fn shard(&self, channel: &[u8]) -> &RwLock<HashMap<Bytes, Arc<RwLock<Subscribers>>>> {
        let mut hasher = DefaultHasher::new();
        channel.hash(&mut hasher);
        &self.shards[(hasher.finish() as usize) % CHANNEL_SHARDS]
    }

    fn subscribe(&self, channel: Bytes, outbox: &Arc<Outbox>) -> bool {
        let mut shard = self.shard(&channel).write();
        let set = shard.entry(channel).or_default();
        let mut set = set.write();
        match set.entry(outbox.id()) {
            indexmap::map::Entry::Occupied(_) => false,
            indexmap::map::Entry::Vacant(slot) => {
                slot.insert(Arc::clone(outbox));
                true
            }
        }
    }

    fn unsubscribe(&self, channel: &[u8], client: ClientId) -> bool {
        let mut shard = self.shard(channel).write();
        let Some(set) = shard.get(channel) else {
            return false;
        };
        let mut subscribers = set.write();
        let removed = subscribers.swap_remove(&client).is_some();
        let now_empty = subscribers.is_empty();
        drop(subscribers);
        if now_empty {
            shard.remove(channel);
        }
        removed
    }

    fn get(&self, channel: &[u8]) -> Option<Arc<RwLock<Subscribers>>> {
        self.shard(channel).read().get(channel).cloned()
    }

    fn count(&self, channel: &[u8]) -> usize {
        self.get(channel).map_or(0, |set| set.read().len())
    }

    fn names(&self, filter: Option<&Glob>) -> Vec<Bytes> {
        let mut names = Vec::new();
        for shard in &self.shards {
            let shard = shard.read();
            names.extend(
                shard
                    .keys()
                    .filter(|name| filter.is_none_or(|glob| glob.matches(name)))
                    .cloned(),
            );
        }
        names
    }

    fn len(&self) -> usize {
        self.shards.iter().map(|shard| shard.read().len()).sum()
    }
}

#[derive(Debug)]
struct PatternEntry {
    glob: Glob,
    subscribers: Subscribers,
}

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
    patterns: RwLock<IndexMap<Bytes, PatternEntry>>,
    published: AtomicU64,
    delivered: AtomicU64,
}

impl Engine {
    /// An engine with no subscriptions.
    pub fn new() -> Self {
        Self::default()
    }

    fn map(&self, scope: Scope) -> &ChannelMap {
        match scope {
            Scope::Classic => &self.classic,
            Scope::Shard => &self.shard,
        }
    }

    /// Subscribes `outbox` to `channel`; false when it already was.
    pub fn subscribe(&self, scope: Scope, channel: Bytes, outbox: &Arc<Outbox>) -> bool {
        self.map(scope).subscribe(channel, outbox)
    }

    /// Unsubscribes `client` from `channel`; false when it was not subscribed.
    pub fn unsubscribe(&self, scope: Scope, channel: &[u8], client: ClientId) -> bool {
        self.map(scope).unsubscribe(channel, client)
    }

    /// Subscribes `outbox` to `pattern`; false when it already was.
    pub fn psubscribe(&self, pattern: Bytes, outbox: &Arc<Outbox>) -> bool {
        let mut patterns = self.patterns.write();
        let entry = patterns
            .entry(pattern.clone())
            .or_insert_with(|| PatternEntry {
                glob: Glob::new(&pattern),
                subscribers: Subscribers::default(),
            });
        match entry.subscribers.entry(outbox.id()) {
            indexmap::map::Entry::Occupied(_) => false,
            indexmap::map::Entry::Vacant(slot) => {
                slot.insert(Arc::clone(outbox));
                true
            }
        }
    }

    /// Unsubscribes `client` from `pattern`; false when it was not subscribed.
    pub fn punsubscribe(&self, pattern: &[u8], client: ClientId) -> bool {
        let mut patterns = self.patterns.write();
        let Some(entry) = patterns.get_mut(pattern) else {
            return false;
        };
        let removed = entry.subscribers.swap_remove(&client).is_some();
        if entry.subscribers.is_empty() {
            patterns.swap_remove(pattern);
        }
        removed
    }

    /// Delivers `payload` on `channel` and returns the number of deliveries made
    /// (Redis's PUBLISH reply): exact subscribers first, then each matching pattern's
    /// subscribers, so a client subscribed both ways gets `message` before `pmessage`.
    /// Shard channels never consult patterns.
    pub fn publish(&self, scope: Scope, channel: Bytes, payload: Bytes) -> usize {
        self.published.fetch_add(1, Ordering::Relaxed);
        let message = Arc::new(Message { channel, payload });
        let mut receivers = 0;
        if let Some(set) = self.map(scope).get(&message.channel) {
            let kind = match scope {
                Scope::Classic => DeliveryKind::Channel,
                Scope::Shard => DeliveryKind::Shard,
            };
            for outbox in set.read().values() {
                outbox.deliver(Delivery {
                    kind: kind.clone(),
                    message: Arc::clone(&message),
                });
                receivers += 1;
            }
        }
        if scope == Scope::Classic {
            let patterns = self.patterns.read();
            for (pattern, entry) in patterns.iter() {
                if !entry.glob.matches(&message.channel) {
                    continue;
                }
                for outbox in entry.subscribers.values() {
                    outbox.deliver(Delivery {
                        kind: DeliveryKind::Pattern(pattern.clone()),
                        message: Arc::clone(&message),
                    });
                    receivers += 1;
                }
            }
        }
        self.delivered
            .fetch_add(receivers as u64, Ordering::Relaxed);
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
        self.patterns.read().len()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> EngineStats {
        EngineStats {
            channels: self.classic.len(),
            shard_channels: self.shard.len(),
            patterns: self.pattern_count(),
            messages_published: self.published.load(Ordering::Relaxed),
            deliveries: self.delivered.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::{OutboxBatch, Outgoing, OutputLimits};

    fn client(id: u64) -> Arc<Outbox> {
        Arc::new(Outbox::new(ClientId(id), Arc::new(OutputLimits::default())))
    }

    fn deliveries(outbox: &Outbox) -> Vec<Delivery> {
        let mut out = Vec::new();
        while outbox.take_batch(&mut out, usize::MAX) == OutboxBatch::Ready {}
        out.into_iter()
            .filter_map(|entry| match entry {
                Outgoing::Delivery(delivery) => Some(delivery),
                Outgoing::Frame(_) => None,
            })
            .collect()
    }

    fn b(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    #[test]
    fn publish_counts_every_receiver_and_orders_message_before_pmessage() {
        let engine = Engine::new();
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
    }

    #[test]
    fn scopes_are_separate_namespaces_and_shards_skip_patterns() {
        let engine = Engine::new();
        let (a, c) = (client(1), client(2));
        engine.subscribe(Scope::Shard, b("chan1"), &a);
        engine.subscribe(Scope::Classic, b("chan1"), &c);
        engine.psubscribe(b("*"), &c);
        assert_eq!(engine.publish(Scope::Shard, b("chan1"), b("x")), 1);
        assert_eq!(engine.publish(Scope::Classic, b("chan1"), b("x")), 2);
        assert_eq!(engine.subscriber_count(Scope::Shard, b"chan1"), 1);
        assert_eq!(engine.subscriber_count(Scope::Classic, b"chan1"), 1);
        assert_eq!(deliveries(&a)[0].kind, DeliveryKind::Shard);
    }

    #[test]
    fn empty_entries_are_removed() {
        let engine = Engine::new();
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
    }

    #[test]
    fn numpat_counts_distinct_patterns() {
        let engine = Engine::new();
        engine.psubscribe(b("foo*"), &client(1));
        engine.psubscribe(b("foo*"), &client(2));
        engine.psubscribe(b("bar*"), &client(2));
        assert_eq!(engine.pattern_count(), 2);
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
}
