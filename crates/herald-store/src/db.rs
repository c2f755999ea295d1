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

/// Keys the active expiry cycle examines per database per run (Redis:
/// `ACTIVE_EXPIRE_CYCLE_KEYS_PER_LOOP`).
pub const ACTIVE_EXPIRE_SAMPLES: usize = 20;
/// The cycle repeats on a database while more than this share of its sample was expired
/// (Redis: 10 %), up to [`ACTIVE_EXPIRE_MAX_ROUNDS`] times.
const ACTIVE_EXPIRE_REPEAT_PERCENT: usize = 10;
/// Bound on repeated sampling rounds per database per run, so one cycle stays short.
pub const ACTIVE_EXPIRE_MAX_ROUNDS: usize = 16;

/// A key's slot in the table. It is kept small (48 bytes) because a lookup in a large
/// keyspace is a few cache misses, and each slot of the table costs them in proportion
/// to its size: see `Value` for the other half.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    value: Value,
    expires_at: Deadline,
}

impl Entry {
    fn expires_at_ms(&self) -> Option<u64> {
        self.expires_at.get()
    }

    /// Live at `now_ms` by its expiry alone (whether expiry is paused is the `Db`'s
    /// business, see [`Db::is_due`]).
    fn unexpired_at(&self, now_ms: u64) -> bool {
        self.expires_at.get().is_none_or(|at| at > now_ms)
    }
}

/// An expiry time in Unix milliseconds, or none, in 8 bytes (`Option<u64>` takes 16).
/// `u64::MAX` stands for none; an expiry at that very millisecond is kept one earlier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Deadline(u64);

impl Deadline {
    const NONE: Deadline = Deadline(u64::MAX);

    fn new(at_ms: Option<u64>) -> Deadline {
        at_ms.map_or(Deadline::NONE, |at| Deadline(at.min(u64::MAX - 1)))
    }

    fn get(self) -> Option<u64> {
        (self != Deadline::NONE).then_some(self.0)
    }
}

/// One logical database.
#[derive(Debug, Default)]
pub struct Db {
    pub(crate) entries: IndexMap<Bytes, Entry>,
    pub(crate) volatile: IndexSet<Bytes>,
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
            if self.entries.contains_key(key)
                || other.is_some_and(|db| db.entries.contains_key(key))
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
                let entry = Entry {
                    value: make(),
                    expires_at: Deadline::NONE,
                };
                self.notify(events::NEW, "new", key);
                self.entries.insert_full(crate::value::owned(key), entry).0
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
        let entry = Entry {
            value,
            expires_at: Deadline::new(expires_at_ms),
        };
        let expiring = expires_at_ms.is_some();
        // An existing key keeps its stored name: only a new one is copied (a slice of the
        // request would pin the read buffer it arrived in, see `crate::value::owned`).
        // The name is shared with the volatile set only when the key expires.
        let volatile_name = match self.entries.get_full_mut(key) {
            Some((_, stored, slot)) => {
                *slot = entry;
                expiring.then(|| stored.clone())
            }
            None => {
                if self.notify_classes & events::NEW != 0 {
                    self.notify(events::NEW, "new", key);
                }
                let owned = Bytes::copy_from_slice(key);
                let shared = expiring.then(|| owned.clone());
                self.entries.insert(owned, entry);
                shared
            }
        };
        match volatile_name {
            Some(name) => {
                self.volatile.insert(name);
            }
            None => {
                self.volatile.swap_remove(key);
            }
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
        let Some((stored, entry)) = self.entries.get_key_value_mut(key) else {
            return false;
        };
        match expires_at_ms {
            Some(at) if at <= now_ms && !self.expiry_paused => {
                self.entries.swap_remove(key);
                self.volatile.swap_remove(key);
            }
            Some(at) => {
                entry.expires_at = Deadline::new(Some(at));
                let stored = stored.clone();
                self.volatile.insert(stored);
            }
            None => {
                entry.expires_at = Deadline::NONE;
                self.volatile.swap_remove(key);
            }
        }
        true
    }

    /// Live keys matching `pattern` (KEYS).
    pub fn keys(&mut self, pattern: &Glob, now_ms: u64) -> Vec<Bytes> {
        self.entries
            .iter()
            .filter(|(key, entry)| entry.unexpired_at(now_ms) && pattern.matches(key))
            .map(|(key, _)| key.clone())
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
                found.push(key.clone());
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
                return Some(key.clone());
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
            .map(|(key, entry)| (key.clone(), entry.value.clone(), entry.expires_at_ms()))
            .collect()
    }

    /// Removes every key (FLUSHDB), invalidating transactions that watch any of them.
    pub fn clear(&mut self) {
        self.touch_watched_present(None);
        self.waiters.mark_all_ready();
        self.entries = IndexMap::new();
        self.volatile = IndexSet::new();
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
mod tests {
    use super::*;
    use crate::error::StoreError;
    use crate::keyspace::{Keyspace, Store};

    fn s(value: &str) -> Value {
        Value::String(value.as_bytes().into())
    }

    fn k(key: &'static str) -> Bytes {
        Bytes::from_static(key.as_bytes())
    }

    #[test]
    fn set_copies_a_new_key_once_and_keeps_the_stored_one_on_overwrite() {
        let mut db = Db::default();
        let request = Bytes::from_static(b"*3 SET user:1 v");
        let key = request.slice(7..13);
        db.set(&key, s("1"), Some(5_000));
        let (stored, _) = db.entries.get_key_value(&b"user:1"[..]).unwrap();
        let stored_at = stored.as_ptr();
        assert_ne!(
            stored_at,
            key.as_ptr(),
            "a new key is copied out of the request"
        );
        assert!(db.volatile.contains(&b"user:1"[..]));
        // Overwrites keep the stored key and follow the expiry given each time.
        db.set(&key, s("2"), None);
        let (stored, entry) = db.entries.get_key_value(&b"user:1"[..]).unwrap();
        assert_eq!(stored.as_ptr(), stored_at);
        assert_eq!(entry.expires_at_ms(), None);
        assert!(!db.volatile.contains(&b"user:1"[..]));
        db.set(&key, s("3"), Some(9_000));
        assert!(db.volatile.contains(&b"user:1"[..]));
        assert_eq!(db.get(b"user:1", 0), Some(&s("3")));
        assert_eq!(db.get(b"user:1", 9_000), None, "expired on read");
        assert!(!db.volatile.contains(&b"user:1"[..]));
    }

    #[test]
    fn lazy_expiry_on_access() {
        let mut db = Db::default();
        db.set(&k("a"), s("1"), Some(1_000));
        assert_eq!(db.get(b"a", 999), Some(&s("1")));
        assert_eq!(db.get(b"a", 1_000), None);
        assert_eq!(db.len(), 0);
        assert_eq!(db.volatile_len(), 0);
        assert_eq!(db.expired_keys(), 1);
    }

    #[test]
    fn set_clears_or_keeps_ttl() {
        let mut db = Db::default();
        db.set(&k("a"), s("1"), Some(5_000));
        db.set_keep_ttl(&k("a"), s("2"), 0);
        assert_eq!(db.expiry(b"a", 0), Expiry::At(5_000));
        db.set(&k("a"), s("3"), None);
        assert_eq!(db.expiry(b"a", 0), Expiry::Persistent);
        assert_eq!(db.volatile_len(), 0);
        assert_eq!(db.expiry(b"nope", 0), Expiry::Missing);
    }

    #[test]
    fn expiry_in_the_past_deletes() {
        let mut db = Db::default();
        db.set(&k("a"), s("1"), None);
        assert!(db.set_expiry(b"a", Some(10), 10));
        assert!(!db.contains(b"a", 10));
        assert!(!db.set_expiry(b"a", Some(100), 10));
    }

    #[test]
    fn active_expiry_reclaims_without_access() {
        let mut db = Db::default();
        for i in 0..10_000 {
            db.set(&Bytes::from(format!("k{i}")), s("v"), Some(100));
        }
        db.set(&k("keep"), s("v"), Some(1_000_000));
        let mut removed = 0;
        for _ in 0..10_000 {
            removed += db.active_expire(200);
            if db.volatile_len() == 1 {
                break;
            }
        }
        assert_eq!(removed, 10_000);
        assert_eq!(db.len(), 1);
        assert!(db.contains(b"keep", 200));
    }

    #[test]
    fn keys_skips_expired() {
        let mut db = Db::default();
        db.set(&k("user:1"), s("a"), None);
        db.set(&k("user:2"), s("b"), Some(10));
        db.set(&k("other"), s("c"), None);
        let keys = db.keys(&Glob::new(b"user:*"), 20);
        assert_eq!(keys, vec![k("user:1")]);
    }

    #[test]
    fn move_and_swap() {
        let mut keyspace = Keyspace::default();
        keyspace.db(0).unwrap().set(&k("a"), s("1"), Some(99_999));
        assert_eq!(keyspace.move_key(b"a", 0, 1, 0), Ok(true));
        assert_eq!(keyspace.db(1).unwrap().expiry(b"a", 0), Expiry::At(99_999));
        assert_eq!(keyspace.move_key(b"a", 0, 1, 0), Ok(false));
        assert_eq!(
            keyspace.move_key(b"a", 1, 1, 0),
            Err(StoreError::SameObject)
        );
        keyspace.swap(0, 1).unwrap();
        assert!(keyspace.db(0).unwrap().contains(b"a", 0));
        assert!(keyspace.db(16).is_err());
        assert_eq!(keyspace.swap(0, 16), Err(StoreError::DbIndexOutOfRange));
    }

    #[test]
    fn scan_returns_every_stable_key_despite_deletions() {
        let mut db = Db::default();
        for i in 0..500 {
            db.set(&Bytes::from(format!("k{i}")), s("v"), None);
        }
        let mut seen = std::collections::HashSet::new();
        let mut cursor = 0;
        let mut step = 0;
        loop {
            let (next, keys) = db.scan(cursor, 7, None, None, 0);
            seen.extend(keys);
            // Delete some keys that are not part of the stable set while scanning.
            if step < 50 {
                db.remove(format!("k{}", 450 + step).as_bytes(), 0);
            }
            step += 1;
            if next == 0 {
                break;
            }
            cursor = next;
        }
        for i in 0..450 {
            assert!(seen.contains(&Bytes::from(format!("k{i}"))), "k{i} missed");
        }
    }

    #[test]
    fn scan_filters_by_pattern_type_and_expiry() {
        let mut db = Db::default();
        db.set(&k("user:1"), s("a"), None);
        db.set(&k("user:2"), s("a"), Some(5));
        db.set(&k("job:1"), s("a"), None);
        let (cursor, keys) = db.scan(0, 100, Some(&Glob::new(b"user:*")), Some("string"), 10);
        assert_eq!((cursor, keys), (0, vec![k("user:1")]));
        let (_, keys) = db.scan(0, 100, None, Some("list"), 10);
        assert!(keys.is_empty());
    }

    #[test]
    fn copy_keeps_ttl_and_respects_replace() {
        let mut keyspace = Keyspace::default();
        keyspace.db(0).unwrap().set(&k("a"), s("1"), Some(9_000));
        keyspace.db(0).unwrap().set(&k("b"), s("2"), None);
        assert_eq!(keyspace.copy_key(b"a", &k("b"), 0, 0, false, 0), Ok(false));
        assert_eq!(keyspace.copy_key(b"a", &k("b"), 0, 0, true, 0), Ok(true));
        assert_eq!(keyspace.db(0).unwrap().expiry(b"b", 0), Expiry::At(9_000));
        assert_eq!(keyspace.copy_key(b"a", &k("a"), 0, 3, false, 0), Ok(true));
        assert_eq!(
            keyspace.copy_key(b"a", &k("a"), 0, 0, false, 0),
            Err(StoreError::SameObject)
        );
        assert_eq!(keyspace.copy_key(b"zz", &k("y"), 0, 0, false, 0), Ok(false));
    }

    #[test]
    fn atomically_reenters_on_its_thread_and_excludes_others() {
        let store = Arc::new(Store::new());
        let other = Arc::clone(&store);
        let (started, wait_started) = std::sync::mpsc::channel();
        let result = store.atomically(|| {
            store.with(|keyspace| keyspace.db(0).map(|db| db.set(&k("a"), s("1"), None)))?;
            let writer = std::thread::spawn(move || {
                let _ = started.send(());
                other.with(|keyspace| keyspace.db(0).map(|db| db.get(b"a", 0).cloned()))
            });
            wait_started.recv().ok();
            std::thread::sleep(std::time::Duration::from_millis(50));
            // The other thread is still blocked: this transaction is not finished.
            assert!(!writer.is_finished());
            store.with(|keyspace| keyspace.db(0).map(|db| db.set(&k("a"), s("2"), None)))?;
            Ok::<_, StoreError>(writer)
        });
        let seen = result.unwrap().join().unwrap().unwrap();
        assert_eq!(
            seen,
            Some(s("2")),
            "the other thread saw only the final state"
        );
    }

    #[test]
    fn watchers_are_told_of_changes_expiry_and_flushes() {
        let mut keyspace = Keyspace::default();
        let flag = Arc::new(AtomicBool::new(false));
        let db = keyspace.db(0).unwrap();
        db.watch(&k("w"), &flag);
        db.set(&k("other"), s("1"), None);
        db.notify(events::STRING, "set", b"other");
        assert!(!flag.load(Ordering::Relaxed), "another key changed");
        db.set(&k("w"), s("1"), Some(10));
        db.notify(events::STRING, "set", b"w");
        assert!(flag.swap(false, Ordering::Relaxed));
        assert_eq!(db.get(b"w", 20), None, "expired");
        assert!(
            flag.swap(false, Ordering::Relaxed),
            "expiry counts as a change"
        );
        db.set(&k("w"), s("1"), None);
        keyspace.swap(0, 1).unwrap();
        assert!(
            flag.swap(false, Ordering::Relaxed),
            "SWAPDB replaced the watched key"
        );
        keyspace.db(0).unwrap().clear();
        assert!(
            !flag.load(Ordering::Relaxed),
            "flushing a db without the key"
        );
        keyspace.db(0).unwrap().unwatch(b"w", &flag);
        keyspace.db(0).unwrap().set(&k("w"), s("2"), None);
        keyspace.db(0).unwrap().notify(events::STRING, "set", b"w");
        assert!(!flag.load(Ordering::Relaxed), "unwatched");
    }

    #[test]
    fn random_key_returns_live_keys_only() {
        let mut db = Db::default();
        assert_eq!(db.random_key(0), None);
        db.set(&k("dead"), s("x"), Some(1));
        assert_eq!(db.random_key(5), None);
        db.set(&k("live"), s("x"), None);
        assert_eq!(db.random_key(5), Some(k("live")));
    }
}
#[cfg(test)]
mod layout {
    /// A lookup in a large keyspace costs cache misses in proportion to a slot's size.
    #[test]
    fn an_entry_takes_48_bytes() {
        assert_eq!(std::mem::size_of::<super::Entry>(), 48);
    }
}
