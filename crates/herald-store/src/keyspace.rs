//! The sixteen databases ([`Keyspace`]) and the lock around them ([`Store`]).
//!
//! Commands that span databases (MOVE, COPY ... DB, SWAPDB, FLUSHALL) and MULTI/EXEC need
//! them together, so one `parking_lot::Mutex` guards all sixteen; each operation is short
//! and never awaits. Pub/sub does not take this lock.

use std::cell::RefCell;
use std::marker::PhantomData;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::lock_api::ArcMutexGuard;
use parking_lot::{Mutex, RawMutex};

use crate::db::{Db, Expiry};
use crate::error::StoreError;
use crate::events::{self, KeyEvent};

/// Logical databases, as Redis's default `databases 16`.
pub const DATABASES: usize = 16;

/// The sixteen databases.
#[derive(Debug)]
pub struct Keyspace {
    dbs: Vec<Db>,
    notify_flags: u32,
}

impl Default for Keyspace {
    fn default() -> Self {
        Keyspace {
            dbs: (0..DATABASES).map(|_| Db::default()).collect(),
            notify_flags: 0,
        }
    }
}

impl Keyspace {
    /// The `notify-keyspace-events` flags in force.
    pub fn notify_flags(&self) -> u32 {
        self.notify_flags
    }

    /// Sets `notify-keyspace-events` ([`events::parse_flags`]).
    pub fn set_notify_flags(&mut self, flags: u32) {
        self.notify_flags = flags;
        let classes = events::recorded_classes(flags);
        for db in &mut self.dbs {
            db.notify_classes = classes;
        }
    }

    /// Takes every database's recorded events, with the database index.
    /// Called after every command, so the usual case (nothing recorded) only checks each
    /// database's vector.
    pub fn take_events(&mut self) -> Vec<(usize, KeyEvent)> {
        let mut events = Vec::new();
        for (index, db) in self.dbs.iter_mut().enumerate() {
            if db.has_events() {
                events.extend(db.take_events().into_iter().map(|event| (index, event)));
            }
        }
        events
    }

    /// Database `index`; `Err` outside 0..16.
    pub fn db(&mut self, index: usize) -> Result<&mut Db, StoreError> {
        self.dbs.get_mut(index).ok_or(StoreError::DbIndexOutOfRange)
    }

    /// Every database, for INFO keyspace.
    pub fn dbs(&self) -> &[Db] {
        &self.dbs
    }

    /// Removes every key of every database (FLUSHALL).
    pub fn flush_all(&mut self) {
        for db in &mut self.dbs {
            db.clear();
        }
    }

    /// Exchanges two databases (SWAPDB).
    pub fn swap(&mut self, a: usize, b: usize) -> Result<(), StoreError> {
        if a >= DATABASES || b >= DATABASES {
            return Err(StoreError::DbIndexOutOfRange);
        }
        if a == b {
            return Ok(());
        }
        // Watchers stay with the database number, as in Redis: swap only the contents.
        self.dbs[a].touch_watched_present(Some(&self.dbs[b]));
        self.dbs[b].touch_watched_present(Some(&self.dbs[a]));
        let (low, high) = (a.min(b), a.max(b));
        let (head, tail) = self.dbs.split_at_mut(high);
        let (first, second) = (&mut head[low], &mut tail[0]);
        std::mem::swap(&mut first.entries, &mut second.entries);
        std::mem::swap(&mut first.volatile, &mut second.volatile);
        first.waiters_mut().mark_all_ready();
        second.waiters_mut().mark_all_ready();
        Ok(())
    }

    /// Copies `source` in database `from` to `destination` in database `to` with its
    /// expiry (COPY); false when the source is missing or the destination exists and
    /// `replace` is not set.
    pub fn copy_key(
        &mut self,
        source: &[u8],
        destination: &Bytes,
        from: usize,
        to: usize,
        replace: bool,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        if from >= DATABASES || to >= DATABASES {
            return Err(StoreError::DbIndexOutOfRange);
        }
        if from == to && source == &destination[..] {
            return Err(StoreError::SameObject);
        }
        let expiry = self.dbs[from].expiry(source, now_ms);
        let Some(value) = self.dbs[from].get(source, now_ms).cloned() else {
            return Ok(false);
        };
        if self.dbs[to].contains(destination, now_ms) && !replace {
            return Ok(false);
        }
        let at = match expiry {
            Expiry::At(at) => Some(at),
            Expiry::Missing | Expiry::Persistent => None,
        };
        self.dbs[to].set(destination, value, at);
        self.dbs[to].notify(events::GENERIC, "copy_to", destination);
        Ok(true)
    }

    /// Moves `key` from database `from` to `to` (MOVE); false when it is missing in
    /// `from` or already exists in `to`.
    pub fn move_key(
        &mut self,
        key: &[u8],
        from: usize,
        to: usize,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        if from >= DATABASES || to >= DATABASES {
            return Err(StoreError::DbIndexOutOfRange);
        }
        if from == to {
            return Err(StoreError::SameObject);
        }
        if self.dbs[to].contains(key, now_ms) {
            return Ok(false);
        }
        let expiry = self.dbs[from].expiry(key, now_ms);
        let Some(value) = self.dbs[from].remove(key, now_ms) else {
            return Ok(false);
        };
        let at = match expiry {
            Expiry::At(at) => Some(at),
            Expiry::Missing | Expiry::Persistent => None,
        };
        self.dbs[from].notify(events::GENERIC, "move_from", key);
        self.dbs[to].set(key, value, at);
        self.dbs[to].notify(events::GENERIC, "move_to", key);
        Ok(true)
    }

    /// Stops (or resumes) expiry in every database ([`Db::set_expiry_paused`]).
    pub fn set_expiry_paused(&mut self, paused: bool) {
        for db in &mut self.dbs {
            db.set_expiry_paused(paused);
        }
    }

    /// Starts or stops recording what the databases change on their own
    /// ([`crate::effects`]), for the append-only file.
    pub fn set_effect_logging(&mut self, enabled: bool) {
        for db in &mut self.dbs {
            db.effects_mut().set_enabled(enabled);
        }
    }

    /// True when some database recorded an expiry or a served client since the last
    /// [`Keyspace::take_expired`]/[`Keyspace::take_served`]. The append-only file asks
    /// after every command; this is the whole cost when the answer is no.
    pub fn has_effects(&self) -> bool {
        self.dbs.iter().any(|db| !db.effects().is_empty())
    }

    /// Commands equivalent to the blocked clients served since the last call, with their
    /// database, in database order.
    pub fn take_served(&mut self) -> Vec<(usize, Vec<Bytes>)> {
        let mut served = Vec::new();
        for (index, db) in self.dbs.iter_mut().enumerate() {
            if !db.effects().is_empty() {
                served.extend(
                    db.effects_mut()
                        .take_served()
                        .into_iter()
                        .map(|c| (index, c)),
                );
            }
        }
        served
    }

    /// Keys reclaimed by expiry since the last call, with their database.
    pub fn take_expired(&mut self) -> Vec<(usize, Bytes)> {
        let mut expired = Vec::new();
        for (index, db) in self.dbs.iter_mut().enumerate() {
            if !db.effects().is_empty() {
                expired.extend(
                    db.effects_mut()
                        .take_expired()
                        .into_iter()
                        .map(|k| (index, k)),
                );
            }
        }
        expired
    }

    /// True when some database has a key a blocked client waits on that changed (what
    /// [`Keyspace::serve_blocked`] would serve).
    pub fn has_ready(&self) -> bool {
        self.dbs.iter().any(|db| db.waiters().has_ready())
    }

    /// True when anything waits to be taken after an operation: ready keys to serve,
    /// effects to log, events to publish. One pass; after most commands the answer is no.
    pub fn has_pending(&self) -> bool {
        self.dbs
            .iter()
            .any(|db| db.waiters().has_ready() || !db.effects().is_empty() || db.has_events())
    }

    /// Serves clients blocked on keys that became ready, in every database.
    pub fn serve_blocked(&mut self, now_ms: u64) {
        for db in &mut self.dbs {
            if db.waiters_mut().has_ready() {
                crate::blocking::serve_ready(db, now_ms);
            }
        }
    }

    /// Clients blocked on lists, all databases.
    pub fn blocked_clients(&mut self) -> usize {
        self.dbs
            .iter_mut()
            .map(|db| db.waiters_mut().waiting())
            .sum()
    }

    /// Runs active expiry over every database; returns the keys removed.
    pub fn active_expire_cycle(&mut self, now_ms: u64) -> usize {
        self.dbs.iter_mut().map(|db| db.active_expire(now_ms)).sum()
    }

    /// Shrinks the key tables that deletes left mostly empty, all databases (the
    /// server's cron calls it); returns how many databases had one shrunk.
    pub fn shrink_sparse_tables(&mut self) -> usize {
        self.dbs
            .iter_mut()
            .map(|db| usize::from(db.shrink_if_sparse()))
            .sum()
    }

    /// Expired keys reclaimed since start, all databases.
    pub fn expired_keys(&self) -> u64 {
        self.dbs.iter().map(Db::expired_keys).sum()
    }
}

/// The keyspace behind its lock.
///
/// [`Store::with`] locks it for one operation. [`Store::atomically`] holds the lock
/// while a whole closure runs (MULTI/EXEC): the guard is parked in a thread-local so
/// that [`Store::with`] calls made by that closure, on the same thread, reuse it instead
/// of deadlocking, while every other thread waits. Nothing here awaits, so the guard never
/// crosses a task switch.
#[derive(Debug, Default)]
pub struct Store {
    keyspace: Arc<Mutex<Keyspace>>,
}

type HeldGuard = ArcMutexGuard<RawMutex, Keyspace>;

thread_local! {
    static HELD: RefCell<Option<HeldGuard>> = const { RefCell::new(None) };
}

/// The keyspace lock held by this thread until dropped ([`Store::hold`]); dropping it
/// releases the lock (even on a panic), unless it was taken inside an outer hold.
#[derive(Debug)]
#[must_use = "the lock is released when this is dropped"]
pub struct Held {
    outermost: bool,
    /// Not `Send`: the lock is parked in this thread's local storage, so a future that
    /// kept a `Held` across an `.await` (and could resume on another thread) must not
    /// compile as a spawned task.
    _thread_bound: PhantomData<*const ()>,
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.outermost {
            HELD.with(|held| held.borrow_mut().take());
        }
    }
}

impl Store {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `f` with the keyspace locked (or with the lock this thread already holds
    /// inside [`Store::atomically`]). `f` must not call back into this store.
    pub fn with<R>(&self, f: impl FnOnce(&mut Keyspace) -> R) -> R {
        HELD.with(|held| {
            let mut held = held.borrow_mut();
            match held.as_mut() {
                Some(guard) if Arc::ptr_eq(ArcMutexGuard::mutex(guard), &self.keyspace) => f(guard),
                _ => {
                    drop(held);
                    f(&mut self.keyspace.lock())
                }
            }
        })
    }

    /// True while this thread runs inside [`Store::atomically`] (blocked clients are then
    /// served after the whole transaction, not in its middle).
    pub fn in_atomic(&self) -> bool {
        HELD.with(|held| {
            held.borrow()
                .as_ref()
                .is_some_and(|guard| Arc::ptr_eq(ArcMutexGuard::mutex(guard), &self.keyspace))
        })
    }

    /// Runs `f` while holding the keyspace lock throughout, so that the operations `f`
    /// makes through [`Store::with`] are atomic with respect to every other client.
    pub fn atomically<R>(&self, f: impl FnOnce() -> R) -> R {
        let _held = self.hold();
        f()
    }

    /// Takes the keyspace lock until the returned [`Held`] is dropped, as
    /// [`Store::atomically`] does for a closure (for callers that need `&mut` access to
    /// what owns the store meanwhile). Never keep it across an `.await`.
    pub fn hold(&self) -> Held {
        let nested = HELD.with(|held| held.borrow().is_some());
        if nested {
            return Held {
                outermost: false,
                _thread_bound: PhantomData,
            };
        }
        let guard = self.keyspace.lock_arc();
        HELD.with(|held| *held.borrow_mut() = Some(guard));
        Held {
            outermost: true,
            _thread_bound: PhantomData,
        }
    }
}
