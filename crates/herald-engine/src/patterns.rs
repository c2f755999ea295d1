//! The pattern index: which PSUBSCRIBE patterns match a channel, without testing them all.
//!
//! Every pattern is filed under one key that any matching channel must contain:
//! - its literal prefix (`user:*` under `user:`) in a forward [`Trie`];
//! - else its literal suffix (`*:p5` under `:p5`) in a backward trie;
//! - else (`*`, `?x*`, `*a*`) in a short residual list that every publish scans.
//!
//! A publish walks both tries along the channel name, so it visits only patterns whose
//! key the channel starts (or ends) with, plus the residual list, and confirms each with
//! [`Glob::matches`]. Results are cached per channel in a bounded, sharded cache stamped
//! with the index generation (as NATS's sublist): every PSUBSCRIBE/PUNSUBSCRIBE bumps
//! the generation and clears the cache, and a result computed under an older generation
//! is never stored, so a hit is always what a fresh walk would find.
//!
//! Order: the matching patterns of one publish come in the order the patterns were first
//! registered (a pattern that loses its last subscriber and comes back goes to the end),
//! each pattern's subscribers in their set's order ([`SubscriberSet`]). The trie layout
//! never shows through.
//!
//! Locking: one `parking_lot::RwLock` over the index, written by (un)subscribes and
//! read-locked by a publish only to walk and take the matched sets' snapshots; each cache
//! shard has its own `Mutex`, held for one map operation. Delivery happens after both
//! are released. Removing a pattern deletes its trie nodes, slot and cache entries, so
//! the index shrinks back to its empty size when the patterns go.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};

use crate::glob::Glob;
use crate::message::ClientId;
use crate::outbox::Outbox;
use crate::subscribers::{Snapshot, SubscriberSet};
use crate::trie::{Direction, Trie};

/// Cache shards: publishers on different channels rarely share a lock.
pub const CACHE_SHARDS: usize = 16;
/// Channels remembered per cache shard; a full shard forgets half of them.
pub const CACHE_CHANNELS_PER_SHARD: usize = 256;
/// Longest channel name whose result is cached: the cache keeps a copy of each name,
/// and this bounds it to 16 × 256 × 256 bytes (1 MB) of names whatever clients publish to.
pub const CACHE_MAX_CHANNEL_BYTES: usize = 256;

/// One pattern that matched, and who receives through it.
#[derive(Clone, Debug)]
pub struct PatternMatch {
    /// The pattern as subscribed (the `pmessage` header names it).
    pub pattern: Bytes,
    /// Its subscribers at the time of the match.
    pub subscribers: Snapshot,
}

/// Every pattern matching one channel, in delivery order.
pub type Matches = Arc<[PatternMatch]>;

/// One shard of the result cache: channel → its matches at the current generation.
type CacheShard = Mutex<HashMap<Bytes, Matches>>;

/// Where a pattern is filed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Placement {
    Prefix,
    Suffix,
    Residual,
}

#[derive(Debug)]
struct PatternEntry {
    pattern: Bytes,
    glob: Glob,
    /// Registration order: decides delivery order among matching patterns.
    seq: u64,
    placement: Placement,
    subscribers: SubscriberSet,
}

#[derive(Debug)]
struct IndexState {
    slots: Vec<Option<PatternEntry>>,
    free: Vec<u32>,
    by_name: HashMap<Bytes, u32>,
    prefixes: Trie,
    suffixes: Trie,
    residual: Vec<u32>,
    next_seq: u64,
}

impl Default for IndexState {
    fn default() -> Self {
        IndexState {
            slots: Vec::new(),
            free: Vec::new(),
            by_name: HashMap::new(),
            prefixes: Trie::new(Direction::Forward),
            suffixes: Trie::new(Direction::Backward),
            residual: Vec::new(),
            next_seq: 0,
        }
    }
}

/// Sizes of the index's parts, to show that it shrinks (tests, diagnostics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PatternFootprint {
    /// Distinct patterns.
    pub patterns: usize,
    /// Live nodes of both tries (2 when empty: the roots).
    pub trie_nodes: usize,
    /// Node slots the tries' arenas hold.
    pub trie_node_capacity: usize,
    /// Pattern slots allocated.
    pub slot_capacity: usize,
    /// Patterns in the residual list.
    pub residual: usize,
    /// Channels with a cached result.
    pub cached_channels: usize,
}

/// The pattern set and its index; see the module docs.
#[derive(Debug)]
pub struct PatternIndex {
    state: RwLock<IndexState>,
    /// Bumped (under the write lock) by every change to patterns or their subscribers.
    generation: AtomicU64,
    count: AtomicUsize,
    cache: Option<Box<[CacheShard; CACHE_SHARDS]>>,
}

impl Default for PatternIndex {
    fn default() -> Self {
        PatternIndex::new(true)
    }
}

impl PatternIndex {
    /// An empty index, with or without the result cache.
    pub fn new(cache: bool) -> PatternIndex {
        PatternIndex {
            state: RwLock::default(),
            generation: AtomicU64::new(0),
            count: AtomicUsize::new(0),
            cache: cache.then(Default::default),
        }
    }

    /// Distinct patterns with at least one subscriber.
    pub fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// True when no pattern is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Subscribes `outbox` to `pattern`; false when it already was.
    pub fn subscribe(&self, pattern: &[u8], outbox: &Arc<Outbox>) -> bool {
        let mut state = self.state.write();
        let id = match state.by_name.get(pattern) {
            Some(&id) => id,
            None => state.add(pattern),
        };
        let added = state.slots[id as usize]
            .as_mut()
            .is_some_and(|entry| entry.subscribers.insert(outbox));
        self.count.store(state.by_name.len(), Ordering::Relaxed);
        if added {
            self.changed();
        }
        added
    }

    /// Unsubscribes `client` from `pattern`; false when it was not subscribed.
    pub fn unsubscribe(&self, pattern: &[u8], client: ClientId) -> bool {
        let mut state = self.state.write();
        let Some(&id) = state.by_name.get(pattern) else {
            return false;
        };
        let Some(entry) = state.slots[id as usize].as_mut() else {
            return false;
        };
        let removed = entry.subscribers.remove(client);
        if entry.subscribers.is_empty() {
            state.delete(id);
        }
        self.count.store(state.by_name.len(), Ordering::Relaxed);
        if removed {
            self.changed();
        }
        removed
    }

    /// Called with the write lock held: later results differ, so forget cached ones.
    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::Release);
        if let Some(cache) = &self.cache {
            for shard in cache.iter() {
                let mut shard = shard.lock();
                if !shard.is_empty() {
                    *shard = HashMap::new();
                }
            }
        }
    }

    /// Every pattern matching `channel` with its subscribers, in delivery order.
    pub fn matching(&self, channel: &[u8]) -> Matches {
        let Some(cache) = self
            .cache
            .as_ref()
            .filter(|_| channel.len() <= CACHE_MAX_CHANNEL_BYTES)
        else {
            return self.state.read().matching(channel);
        };
        let shard = &cache[cache_shard(channel)];
        if let Some(hit) = shard.lock().get(channel) {
            return Arc::clone(hit);
        }
        let (generation, matches) = {
            let state = self.state.read();
            (
                self.generation.load(Ordering::Acquire),
                state.matching(channel),
            )
        };
        let mut shard = shard.lock();
        // A change since the walk would make this result stale: only the walk's own
        // generation may be stored. Writers bump before they clear, and clear under
        // this same lock, so a stale insert is either refused here or cleared after.
        if self.generation.load(Ordering::Acquire) == generation {
            if shard.len() >= CACHE_CHANNELS_PER_SHARD {
                let mut kept = 0;
                shard.retain(|_, _| {
                    kept += 1;
                    kept <= CACHE_CHANNELS_PER_SHARD / 2
                });
            }
            // An owned copy: the caller's bytes may pin a whole network read buffer.
            shard.insert(Bytes::copy_from_slice(channel), Arc::clone(&matches));
        }
        matches
    }

    /// Sizes of the structure now.
    pub fn footprint(&self) -> PatternFootprint {
        let state = self.state.read();
        PatternFootprint {
            patterns: state.by_name.len(),
            trie_nodes: state.prefixes.node_count() + state.suffixes.node_count(),
            trie_node_capacity: state.prefixes.node_capacity() + state.suffixes.node_capacity(),
            slot_capacity: state.slots.capacity(),
            residual: state.residual.len(),
            cached_channels: self
                .cache
                .iter()
                .flat_map(|cache| cache.iter())
                .map(|shard| shard.lock().len())
                .sum(),
        }
    }
}

fn cache_shard(channel: &[u8]) -> usize {
    let mut hasher = DefaultHasher::new();
    channel.hash(&mut hasher);
    (hasher.finish() as usize) % CACHE_SHARDS
}

impl IndexState {
    fn add(&mut self, pattern: &[u8]) -> u32 {
        let glob = Glob::new(pattern);
        let placement = if !glob.literal_prefix().is_empty() {
            Placement::Prefix
        } else if !glob.literal_suffix().is_empty() {
            Placement::Suffix
        } else {
            Placement::Residual
        };
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                self.slots.push(None);
                (self.slots.len() - 1) as u32
            }
        };
        match placement {
            Placement::Prefix => self.prefixes.insert(glob.literal_prefix(), id),
            Placement::Suffix => self.suffixes.insert(glob.literal_suffix(), id),
            Placement::Residual => self.residual.push(id),
        }
        // Owned, so the pattern never pins the subscriber's network read buffer.
        let pattern = Bytes::copy_from_slice(pattern);
        self.by_name.insert(pattern.clone(), id);
        self.slots[id as usize] = Some(PatternEntry {
            pattern,
            glob,
            seq: self.next_seq,
            placement,
            subscribers: SubscriberSet::default(),
        });
        self.next_seq += 1;
        id
    }

    fn delete(&mut self, id: u32) {
        let Some(entry) = self.slots[id as usize].take() else {
            return;
        };
        match entry.placement {
            Placement::Prefix => {
                self.prefixes.remove(entry.glob.literal_prefix(), id);
            }
            Placement::Suffix => {
                self.suffixes.remove(entry.glob.literal_suffix(), id);
            }
            Placement::Residual => {
                if let Some(position) = self.residual.iter().position(|&other| other == id) {
                    self.residual.swap_remove(position);
                }
            }
        }
        self.by_name.remove(&entry.pattern);
        self.free.push(id);
        if self.by_name.is_empty() {
            // Back to the size of a fresh index, whatever the peak was.
            *self = IndexState {
                next_seq: self.next_seq,
                ..IndexState::default()
            };
        } else if self.by_name.len() < self.by_name.capacity() / 4 {
            self.by_name.shrink_to_fit();
            self.residual.shrink_to_fit();
        }
    }

    fn matching(&self, channel: &[u8]) -> Matches {
        let mut found: Vec<(u64, u32)> = Vec::new();
        let mut consider = |id: u32| {
            if let Some(entry) = &self.slots[id as usize] {
                if entry.glob.matches(channel) {
                    found.push((entry.seq, id));
                }
            }
        };
        self.prefixes.for_each_prefix_of(channel, &mut consider);
        self.suffixes.for_each_prefix_of(channel, &mut consider);
        self.residual.iter().for_each(|&id| consider(id));
        found.sort_unstable_by_key(|&(seq, _)| seq);
        found
            .iter()
            .filter_map(|&(_, id)| self.slots[id as usize].as_ref())
            .map(|entry| PatternMatch {
                pattern: entry.pattern.clone(),
                subscribers: entry.subscribers.snapshot(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
