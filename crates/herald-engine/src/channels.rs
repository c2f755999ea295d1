//! One scope's channels (classic or shard): channel name → [`SubscriberSet`].
//!
//! Locking: the map is split into [`CHANNEL_SHARDS`] shards, each a
//! `parking_lot::RwLock<HashMap>`. A publish read-locks one shard only long enough to
//! take the channel's snapshot (an `Arc` clone), then delivers with no lock held, so
//! publishers never wait on each other and a subscribe waits at most for a map lookup.
//! Entries with no subscriber left are deleted at once, so PUBSUB CHANNELS and memory
//! reflect live subscriptions only. Each entry also carries its channel's
//! [`Activity`] (publish counter and rate) for dashboards.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::RwLock;

use crate::activity::{Activity, ChannelActivity, ChannelOrder, TopChannels};
use crate::glob::Glob;
use crate::message::ClientId;
use crate::outbox::Outbox;
use crate::subscribers::{Snapshot, SubscriberSet};

/// Shards per channel map: enough to spread two-digit core counts, few enough that
/// listing every channel stays cheap.
pub const CHANNEL_SHARDS: usize = 32;

/// One channel: its subscribers and its activity.
#[derive(Debug, Default)]
struct Entry {
    set: SubscriberSet,
    activity: Activity,
}

type Shard = RwLock<HashMap<Bytes, Entry>>;

/// The channels of one scope; see the module docs.
#[derive(Debug, Default)]
pub struct ChannelMap {
    shards: [Shard; CHANNEL_SHARDS],
}

impl ChannelMap {
    fn shard(&self, channel: &[u8]) -> &Shard {
        let mut hasher = DefaultHasher::new();
        channel.hash(&mut hasher);
        &self.shards[(hasher.finish() as usize) % CHANNEL_SHARDS]
    }

    /// Adds `outbox` to `channel`; false when it already was subscribed.
    pub fn subscribe(&self, channel: &[u8], outbox: &Arc<Outbox>) -> bool {
        let mut shard = self.shard(channel).write();
        match shard.get_mut(channel) {
            Some(entry) => entry.set.insert(outbox),
            None => {
                let mut entry = Entry::default();
                entry.set.insert(outbox);
                // Owned, so the name never pins the subscriber's network read buffer.
                shard.insert(Bytes::copy_from_slice(channel), entry);
                true
            }
        }
    }

    /// Removes `client` from `channel`; false when it was not subscribed.
    pub fn unsubscribe(&self, channel: &[u8], client: ClientId) -> bool {
        let mut shard = self.shard(channel).write();
        let Some(entry) = shard.get_mut(channel) else {
            return false;
        };
        let removed = entry.set.remove(client);
        if entry.set.is_empty() {
            shard.remove(channel);
            if shard.len() < shard.capacity() / 4 {
                shard.shrink_to_fit();
            }
        }
        removed
    }

    /// The subscribers of `channel` now, if any, counting a publish to it.
    pub fn snapshot_for_publish(&self, channel: &[u8]) -> Option<Snapshot> {
        self.shard(channel).read().get(channel).map(|entry| {
            entry.activity.count_publish();
            entry.set.snapshot()
        })
    }

    /// Subscribers of `channel`.
    pub fn count(&self, channel: &[u8]) -> usize {
        self.shard(channel)
            .read()
            .get(channel)
            .map_or(0, |entry| entry.set.len())
    }

    /// Folds every channel's publishes since the last call into its rate; see
    /// [`Activity::sample`].
    pub fn sample_rates(&self, elapsed: std::time::Duration) {
        for shard in &self.shards {
            for entry in shard.read().values() {
                entry.activity.sample(elapsed);
            }
        }
    }

    /// For each of `orders`, the `limit` top channels whose names contain `search` (any
    /// channel when `None` or empty). One walk for all orders, at most `limit` rows held
    /// per order.
    pub fn top(
        &self,
        orders: &[ChannelOrder],
        limit: usize,
        search: Option<&[u8]>,
    ) -> Vec<Vec<ChannelActivity>> {
        let search = search.filter(|needle| !needle.is_empty());
        let mut tops: Vec<TopChannels> = orders
            .iter()
            .map(|order| TopChannels::new(*order, limit))
            .collect();
        for shard in &self.shards {
            for (name, entry) in shard.read().iter() {
                if search.is_some_and(|needle| !contains(name, needle)) {
                    continue;
                }
                for top in &mut tops {
                    top.offer(entry.set.len(), &entry.activity, name);
                }
            }
        }
        tops.into_iter().map(TopChannels::into_sorted).collect()
    }

    /// Channel names, optionally only those matching `filter`.
    pub fn names(&self, filter: Option<&Glob>) -> Vec<Bytes> {
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

    /// Channels with at least one subscriber.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|shard| shard.read().len()).sum()
    }

    /// True when no channel has a subscriber.
    pub fn is_empty(&self) -> bool {
        self.shards.iter().all(|shard| shard.read().is_empty())
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}
