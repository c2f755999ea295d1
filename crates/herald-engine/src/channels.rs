//! One scope's channels (classic or shard): channel name → [`SubscriberSet`].
//!
//! Locking: the map is split into [`CHANNEL_SHARDS`] shards, each a
//! `parking_lot::RwLock<HashMap>`. A publish read-locks one shard only long enough to
//! take the channel's snapshot (an `Arc` clone), then delivers with no lock held, so
//! publishers never wait on each other and a subscribe waits at most for a map lookup.
//! Entries with no subscriber left are deleted at once, so PUBSUB CHANNELS and memory
//! reflect live subscriptions only.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::RwLock;

use crate::glob::Glob;
use crate::message::ClientId;
use crate::outbox::Outbox;
use crate::subscribers::{Snapshot, SubscriberSet};

/// Shards per channel map: enough to spread two-digit core counts, few enough that
/// listing every channel stays cheap.
pub const CHANNEL_SHARDS: usize = 32;

type Shard = RwLock<HashMap<Bytes, SubscriberSet>>;

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
            Some(set) => set.insert(outbox),
            None => {
                let mut set = SubscriberSet::default();
                set.insert(outbox);
                // Owned, so the name never pins the subscriber's network read buffer.
                shard.insert(Bytes::copy_from_slice(channel), set);
                true
            }
        }
    }

    /// Removes `client` from `channel`; false when it was not subscribed.
    pub fn unsubscribe(&self, channel: &[u8], client: ClientId) -> bool {
        let mut shard = self.shard(channel).write();
        let Some(set) = shard.get_mut(channel) else {
            return false;
        };
        let removed = set.remove(client);
        if set.is_empty() {
            shard.remove(channel);
            if shard.len() < shard.capacity() / 4 {
                shard.shrink_to_fit();
            }
        }
        removed
    }

    /// The subscribers of `channel` now, if any.
    pub fn snapshot(&self, channel: &[u8]) -> Option<Snapshot> {
        self.shard(channel)
            .read()
            .get(channel)
            .map(SubscriberSet::snapshot)
    }

    /// Subscribers of `channel`.
    pub fn count(&self, channel: &[u8]) -> usize {
        self.shard(channel)
            .read()
            .get(channel)
            .map_or(0, SubscriberSet::len)
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
