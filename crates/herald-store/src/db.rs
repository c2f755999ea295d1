//! Logical databases: keys, values and their expiry times.
//!
//! A [`Db`] keeps entries in an `IndexMap`, so RANDOMKEY and the active expiry cycle can
//! pick uniformly at random in O(1), and the keys that carry an expiry time in a separate
//! `IndexSet` that the active cycle samples, as Redis samples its `expires` dict.
//! Expired keys are removed lazily when touched and actively by
//! [`crate::Keyspace::active_expire_cycle`]. A `Db` is only ever used under the
//! [`crate::Store`] lock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use herald_engine::Glob;
use indexmap::{IndexMap, IndexSet};

use rand::Rng;

use crate::blocking::Waiters;
use crate::effects::EffectLog;
use crate::events::{self, KeyEvent};
use crate::value::Value;

mod slot;

use slot::{Deadline, Entry};
pub use slot::{Key, INLINE_KEY_CAPACITY};

/// Keys the active expiry cycle examines per database per run (Redis:
/// `ACTIVE_EXPIRE_CYCLE_KEYS_PER_LOOP`).
pub const ACTIVE_EXPIRE_SAMPLES: usize = 20;
/// The cycle repeats on a database while more than this share of its sample was expired
/// (Redis: 10 %), up to [`ACTIVE_EXPIRE_MAX_ROUNDS`] times.
const ACTIVE_EXPIRE_REPEAT_PERCENT: usize = 10;
/// Bound on repeated sampling rounds per database per run, so one cycle stays short.
pub const ACTIVE_EXPIRE_MAX_ROUNDS: usize = 16;

/// A key table is shrunk once its keys fill less than this share of it (Redis resizes a
/// dict below 10 %): deleting most keys must give their memory back, not keep a table
/// sized for the peak forever.
const SHRINK_BELOW_PERCENT: usize = 10;
/// Tables smaller than this are not worth shrinking.
const SHRINK_MIN_CAPACITY: usize = 4096;
/// A shrink copies every key left into the new table under the keyspace lock, so it is
/// done only while at most this many are left (about a millisecond); a larger sparse
/// table waits until more of its keys are gone.
const SHRINK_MAX_ENTRIES: usize = 1 << 16;

/// What one entry of the key table takes in its `IndexMap`: its hash, key and entry.
pub(crate) const TABLE_ENTRY_BYTES: usize = std::mem::size_of::<(u64, Key, Entry)>();

/// One logical database.
#[derive(Debug, Default)]
pub struct Db {
    pub(crate) entries: IndexMap<Key, Entry>,
    pub(crate) volatile: IndexSet<Key>,
    expired_keys: u64,
    /// Event classes to record ([`events::recorded_classes`]); 0 records nothing.
    pub(crate) notify_classes: u32,
    events: Vec<KeyEvent>,
    /// WATCHed keys and the dirty flags of the transactions watching them.
    watchers: HashMap<Bytes, Vec<Arc<AtomicBool>>>,
    /// Clients blocked on this database's lists.
    waiters: Waiters,
    /// Expiries and served blocked clients, for the append-only file.
    effects: EffectLog,
    /// While the append-only file is replayed nothing expires: keys vanish only where
    /// the file says `DEL`, as they did live.
    expiry_paused: bool,
    /// The most keys, and keys with an expiry, held since the tables were last shrunk:
    /// what their allocations are sized for (hashbrown's `capacity` shrinks as deletes
    /// leave tombstones, so it cannot tell).
    high_water: (usize, usize),
}

/// A key's remaining life, as TTL/PTTL report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// The key does not exist.
    Missing,
    /// The key exists and never expires.
    Persistent,
    /// The key expires at this Unix time in milliseconds.
    At(u64),
}

impl Db {
    /// Records a keyspace event if its class is enabled. Operations call this in the
    /// order Redis signals events.
    /// Every change goes through here, so it also invalidates transactions that WATCH
    /// the key (Redis's `signalModifiedKey`).
    pub fn notify(&mut self, class: u32, name: &'static str, key: &[u8]) {
        self.touch(key);
        self.waiters.mark_ready(key);
        if self.notify_classes & class != 0 {
            self.events.push(KeyEvent {
                class,
                name,
                key: Bytes::copy_from_slice(key),
            });
        }
    }

    /// Marks the transactions watching `key` as dirty.
    fn touch(&self, key: &[u8]) {
        // Checked first: hashing the key for an empty map is the common case's whole cost.
        if self.watchers.is_empty() {
            return;
        }
        if let Some(flags) = self.watchers.get(key) {
            for flag in flags {
                flag.store(true, Ordering::Relaxed);
            }
        }
    }

    /// Registers `flag` to be set when `key` changes (WATCH).
    pub fn watch(&mut self, key: &Bytes, flag: &Arc<AtomicBool>) {
        let flags = self.watchers.entry(crate::value::owned(key)).or_default();
        if !flags.iter().any(|f| Arc::ptr_eq(f, flag)) {
            flags.push(Arc::clone(flag));
        }
    }

    /// Removes a registration made by [`Db::watch`] (UNWATCH, EXEC, disconnect).
    pub fn unwatch(&mut self, key: &[u8], flag: &Arc<AtomicBool>) {
        if let Some(flags) = self.watchers.get_mut(key) {
            flags.retain(|f| !Arc::ptr_eq(f, flag));
            if flags.is_empty() {
                self.watchers.remove(key);
            }
        }
    }

    /// Invalidates watchers of every key that exists here or in `other` (FLUSH*, SWAPDB).
    pub(crate) fn touch_watched_present(&self, other: Option<&Db>) {
        for key in self.watchers.keys() {
            if self.entries.contains_key(&key[..])
                || other.is_some_and(|db| db.entries.contains_key(&key[..]))
            {
                self.touch(key);
            }
        }
    }

    /// The clients blocked on this database's lists, to look at.
    pub fn waiters(&self) -> &Waiters {
        &self.waiters
    }

    /// The clients blocked on this database's lists.
    pub fn waiters_mut(&mut self) -> &mut Waiters {
        &mut self.waiters
    }

    /// What this database changed on its own (expiries, served blocked clients).
    pub fn effects(&self) -> &EffectLog {
        &self.effects
    }

    /// The changes this database made on its own, to take or to record into.
    pub fn effects_mut(&mut self) -> &mut EffectLog {
        &mut self.effects
    }

    /// True when events were recorded since the last [`Db::take_events`].
    #[inline]
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// Takes the events recorded since the last call.
    pub fn take_events(&mut self) -> Vec<KeyEvent> {
        std::mem::take(&mut self.events)
    }

    /// Keys stored, counting expired keys not yet reclaimed (as Redis's DBSIZE does).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no key is stored.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Keys with an expiry time (INFO keyspace `expires=`).
    pub fn volatile_len(&self) -> usize {
        self.volatile.len()
    }

    /// Keys removed because they expired since start (INFO stats `expired_keys`).
    pub fn expired_keys(&self) -> u64 {
        self.expired_keys
    }

    /// Stops (or resumes) expiry, for replaying the append-only file.
    pub fn set_expiry_paused(&mut self, paused: bool) {
        self.expiry_paused = paused;
    }

    /// True while expiry is stopped.
    pub fn is_expiry_paused(&self) -> bool {
        self.expiry_paused
    }

    /// True when `entry`'s time has come (never while expiry is paused).
    fn is_due(&self, entry: &Entry, now_ms: u64) -> bool {
        !self.expiry_paused && !entry.unexpired_at(now_ms)
    }

    /// Removes `key` if its time has come; true when it did.
    fn expire_if_due(&mut self, key: &[u8], now_ms: u64) -> bool {
        let due = self
            .entries
            .get(key)
            .is_some_and(|entry| self.is_due(entry, now_ms));
        if due {
            self.expire(key);
        }
        due
    }

    /// Removes `key`, whose time has come, and says so.
    fn expire(&mut self, key: &[u8]) {
        self.entries.swap_remove(key);
        self.volatile.swap_remove(key);
        self.expired_keys += 1;
        self.effects.expired(key);
        self.notify(events::EXPIRED, "expired", key);
    }

    /// Where the live entry of `key` is, after expiring it when due: one hash lookup for
    /// a key that is there and live (every read and most writes), a second only on the
    /// rare path that expires it.
    fn live_index(&mut self, key: &[u8], now_ms: u64) -> Option<usize> {
        let (index, _, entry) = self.entries.get_full(key)?;
        if !self.is_due(entry, now_ms) {
            return Some(index);
        }
        self.expire(key);
        None
    }

    /// Bytes the live `key` and its value take (MEMORY USAGE), with `samples` elements
    /// of a hash looked at (0: all); see [`crate::usage`].
    pub fn memory_usage(&mut self, key: &[u8], now_ms: u64, samples: usize) -> Option<usize> {
        let index = self.live_index(key, now_ms)?;
        let (stored, entry) = self.entries.get_index(index)?;
        Some(crate::usage::key_usage(stored, &entry.value, samples))
    }

    /// The live value of `key`.
    pub fn get(&mut self, key: &[u8], now_ms: u64) -> Option<&Value> {
        let index = self.live_index(key, now_ms)?;
        self.entries.get_index(index).map(|(_, entry)| &entry.value)
    }

    /// The live value of `key`, for in-place changes (the expiry is kept).
    pub fn get_mut(&mut self, key: &[u8], now_ms: u64) -> Option<&mut Value> {
        let index = self.live_index(key, now_ms)?;
        self.entries
            .get_index_mut(index)
            .map(|(_, entry)| &mut entry.value)
    }

    /// True when `key` exists and has not expired.
    pub fn contains(&mut self, key: &[u8], now_ms: u64) -> bool {
        self.get(key, now_ms).is_some()
    }

    /// The live value of `key`, created with `make` (and no expiry) when missing. The key
    /// is copied before it is stored (see [`crate::value::owned`]).
    pub fn get_or_insert_with(
        &mut self,
        key: &Bytes,
        now_ms: u64,
        make: impl FnOnce() -> Value,
    ) -> &mut Value {
        self.expire_if_due(key, now_ms);
        let index = match self.entries.get_index_of(&key[..]) {
            Some(index) => index,
            None => {
                self.notify(events::NEW, "new", key);
                let entry = Entry::new(make(), None);
                self.insert_new(key, entry)
            }
        };
        &mut self.entries[index].value
    }

    /// Deletes `key` when it holds an empty list or hash: Redis never keeps empty
    /// collections, so a pop or delete that empties one removes the key.
    pub fn remove_if_empty(&mut self, key: &[u8]) {
        let empty = match self.entries.get(key).map(|entry| &entry.value) {
            Some(Value::List(list)) => list.is_empty(),
            Some(Value::Hash(hash)) => hash.is_empty(),
            // Streams stay when emptied, as in Redis (their groups and IDs live on).
            Some(Value::String(_) | Value::Stream(_)) | None => false,
        };
        if empty {
            self.entries.swap_remove(key);
            self.volatile.swap_remove(key);
            self.notify(events::GENERIC, "del", key);
        }
    }

    /// Stores `value` under `key`, replacing any value, with `expires_at_ms` as its expiry.
    pub fn set(&mut self, key: &[u8], value: Value, expires_at_ms: Option<u64>) {
        let entry = Entry::new(value, expires_at_ms);
        // An existing key keeps its stored name: only a new one is copied (a slice of the
        // request would pin the read buffer it arrived in).
        match self.entries.get_full_mut(key) {
            Some((_, _, slot)) => *slot = entry,
            None => {
                if self.notify_classes & events::NEW != 0 {
                    self.notify(events::NEW, "new", key);
                }
                self.insert_new(key, entry);
            }
        }
        self.track_expiry(key, expires_at_ms.is_some());
    }

    /// Inserts a key that is not there (its name copied out of the request) and returns
    /// its index; the one place the table grows, so the high-water mark is kept here.
    fn insert_new(&mut self, key: &[u8], entry: Entry) -> usize {
        let index = self.entries.insert_full(Key::copy_from_slice(key), entry).0;
        self.high_water.0 = self.high_water.0.max(self.entries.len());
        index
    }

    /// Keeps the volatile set (the keys with an expiry) in step with `key`'s entry.
    fn track_expiry(&mut self, key: &[u8], expiring: bool) {
        if !expiring {
            self.volatile.swap_remove(key);
        } else if !self.volatile.contains(key) {
            self.volatile.insert(Key::copy_from_slice(key));
            self.high_water.1 = self.high_water.1.max(self.volatile.len());
        }
    }

    /// Replaces the value of `key`, keeping its expiry (a new key gets none).
    pub fn set_keep_ttl(&mut self, key: &[u8], value: Value, now_ms: u64) {
        let expiry = match self.expiry(key, now_ms) {
            Expiry::At(at) => Some(at),
            Expiry::Missing | Expiry::Persistent => None,
        };
        self.set(key, value, expiry);
    }

    /// Removes `key`; its value if it was live.
    pub fn remove(&mut self, key: &[u8], now_ms: u64) -> Option<Value> {
        self.expire_if_due(key, now_ms);
        self.volatile.swap_remove(key);
        self.entries.swap_remove(key).map(|entry| entry.value)
    }

    /// The expiry of `key`.
    pub fn expiry(&mut self, key: &[u8], now_ms: u64) -> Expiry {
        self.expire_if_due(key, now_ms);
        match self.entries.get(key).map(Entry::expires_at_ms) {
            None => Expiry::Missing,
            Some(None) => Expiry::Persistent,
            Some(Some(at)) => Expiry::At(at),
        }
    }

    /// Sets (`Some`) or clears (`None`) the expiry of a live key; false if it is missing.
    /// An expiry at or before `now_ms` deletes the key at once, as Redis does.
    pub fn set_expiry(&mut self, key: &[u8], expires_at_ms: Option<u64>, now_ms: u64) -> bool {
        self.expire_if_due(key, now_ms);
        let Some(entry) = self.entries.get_mut(key) else {
            return false;
        };
        match expires_at_ms {
            Some(at) if at <= now_ms && !self.expiry_paused => {
                self.entries.swap_remove(key);
                self.volatile.swap_remove(key);
            }
            _ => {
                entry.expires_at = Deadline::new(expires_at_ms);
                self.track_expiry(key, expires_at_ms.is_some());
            }
        }
        true
    }

    /// Live keys matching `pattern` (KEYS).
    pub fn keys(&mut self, pattern: &Glob, now_ms: u64) -> Vec<Bytes> {
        self.entries
            .iter()
            .filter(|(key, entry)| entry.unexpired_at(now_ms) && pattern.matches(key))
            .map(|(key, _)| key.to_bytes())
            .collect()
    }

    /// One SCAN step: visits up to `count` slots downward from `cursor` (0 starts a new
    /// scan) and returns the next cursor (0 when done) with the live keys found that match
    /// `pattern` and hold `type_name` (when given).
    ///
    /// Walking downward keeps Redis's guarantee — a key present for the whole scan is
    /// returned at least once — because a deletion moves only the *last* entry into the
    /// hole: that entry was either visited already or will be visited (again) later.
    /// Keys added during the scan land at the end, already passed, and may be missed, as
    /// Redis allows.
    pub fn scan(
        &mut self,
        cursor: u64,
        count: usize,
        pattern: Option<&Glob>,
        type_name: Option<&str>,
        now_ms: u64,
    ) -> (u64, Vec<Bytes>) {
        let len = self.entries.len();
        let mut next = match cursor {
            0 => len,
            cursor => usize::try_from(cursor).map_or(len, |c| c.min(len)),
        };
        let mut found = Vec::new();
        let mut visited = 0;
        while next > 0 && visited < count.max(1) {
            next -= 1;
            visited += 1;
            let Some((key, entry)) = self.entries.get_index(next) else {
                continue;
            };
            let live = entry.unexpired_at(now_ms);
            if live
                && type_name.is_none_or(|name| entry.value.type_name() == name)
                && pattern.is_none_or(|glob| glob.matches(key))
            {
                found.push(key.to_bytes());
            }
        }
        (next as u64, found)
    }

    /// A random live key (RANDOMKEY).
    pub fn random_key(&mut self, now_ms: u64) -> Option<Bytes> {
        let mut rng = rand::rng();
        // Expired keys met on the way are reclaimed; bounded so a database of expired keys
        // cannot make this loop long.
        for _ in 0..100 {
            if self.entries.is_empty() {
                return None;
            }
            let index = rng.random_range(0..self.entries.len());
            let (key, entry) = self.entries.get_index(index)?;
            if entry.unexpired_at(now_ms) {
                return Some(key.to_bytes());
            }
            let key = key.clone();
            self.expire_if_due(&key, now_ms);
        }
        None
    }

    /// Copies of every key live at `now_ms`: key, value and expiry (a rewrite's snapshot).
    pub fn live_entries(&self, now_ms: u64) -> Vec<crate::aof::snapshot::CopiedKey> {
        self.entries
            .iter()
            .filter(|(_, entry)| entry.unexpired_at(now_ms))
            .map(|(key, entry)| (key.to_bytes(), entry.value.clone(), entry.expires_at_ms()))
            .collect()
    }

    /// Removes every key (FLUSHDB), invalidating transactions that watch any of them.
    pub fn clear(&mut self) {
        self.touch_watched_present(None);
        self.waiters.mark_all_ready();
        self.entries = IndexMap::new();
        self.volatile = IndexSet::new();
        self.high_water = (0, 0);
    }

    /// Shrinks the key tables that deletes left mostly empty (see
    /// `SHRINK_BELOW_PERCENT`), to twice what they hold. True when one was shrunk.
    pub fn shrink_if_sparse(&mut self) -> bool {
        let sparse = |len: usize, high_water: usize| {
            high_water >= SHRINK_MIN_CAPACITY
                && len * 100 < high_water * SHRINK_BELOW_PERCENT
                && len <= SHRINK_MAX_ENTRIES
        };
        let mut shrunk = false;
        if sparse(self.entries.len(), self.high_water.0) {
            self.entries.shrink_to(self.entries.len() * 2);
            self.high_water.0 = self.entries.len();
            shrunk = true;
        }
        if sparse(self.volatile.len(), self.high_water.1) {
            self.volatile.shrink_to(self.volatile.len() * 2);
            self.high_water.1 = self.volatile.len();
            shrunk = true;
        }
        shrunk
    }

    /// One round of active expiry on this database: samples keys with an expiry and
    /// removes the expired ones, repeating while many of the sample were expired.
    /// Returns how many keys it removed.
    pub fn active_expire(&mut self, now_ms: u64) -> usize {
        let mut rng = rand::rng();
        let mut removed = 0;
        for _ in 0..ACTIVE_EXPIRE_MAX_ROUNDS {
            let samples = ACTIVE_EXPIRE_SAMPLES.min(self.volatile.len());
            if samples == 0 {
                break;
            }
            let mut expired_in_round = 0;
            for _ in 0..samples {
                if self.volatile.is_empty() {
                    break;
                }
                let index = rng.random_range(0..self.volatile.len());
                let Some(key) = self.volatile.get_index(index).cloned() else {
                    break;
                };
                if self.expire_if_due(&key, now_ms) {
                    expired_in_round += 1;
                }
            }
            removed += expired_in_round;
            if expired_in_round * 100 <= samples * ACTIVE_EXPIRE_REPEAT_PERCENT {
                break;
            }
        }
        removed
    }
}

#[cfg(test)]
mod tests;
