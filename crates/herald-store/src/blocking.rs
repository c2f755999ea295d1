//! Clients blocked on lists (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP) and streams
//! (XREAD, XREADGROUP with BLOCK).
//!
//! A blocked client registers one [`Waiter`] under every key it waits on, in arrival
//! order. Any change to such a key marks it ready ([`Waiters::mark_ready`] is called from
//! `Db::notify`, the path every change takes); [`serve_ready`] then hands elements to the
//! waiters of each ready key, first come first served, performing the pop (or move) under
//! the keyspace lock and sending the result through the waiter's oneshot channel. A waiter
//! is served at most once: the sender is taken when it is served, times out or goes away.
//!
//! Redis semantics kept: a key that holds another type while clients wait on it simply
//! does not serve them (they keep waiting); serving happens after the command that made
//! the key ready, and after a whole transaction, never in its middle.
//!
//! Stream readers follow Redis 7.2, which re-runs a woken XREAD/XREADGROUP: an XREAD
//! waiter is served once any of its keys has entries past its start and keeps waiting
//! through deletions and type changes; an XREADGROUP waiter is served new entries, or
//! the error its read now gets (NOGROUP after XGROUP DESTROY or deletion, WRONGTYPE after
//! a type change).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::db::Db;
use crate::error::StoreError;
use crate::lists::{self, End};
use crate::stream::consume::{self, GroupFrom, GroupRead};
use crate::stream::ops::{self as stream_ops, ReadFrom};
use crate::stream::{StreamEntry, StreamId};
use crate::value::Value;

/// What a blocked client will do once a key has elements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockedOp {
    /// BLPOP / BRPOP / BLMPOP: pop up to `count` elements from `end`.
    Pop {
        /// Which end.
        end: End,
        /// How many at most.
        count: usize,
    },
    /// BLMOVE / BRPOPLPUSH: move one element to `destination`.
    Move {
        /// The destination list.
        destination: Bytes,
        /// Popped from this end of the source.
        from: End,
        /// Pushed at this end of the destination.
        to: End,
    },
    /// XREAD BLOCK: entries after `after[i]` on key `i`.
    StreamRead {
        /// One start per key, `$` already resolved.
        after: Vec<StreamId>,
        /// COUNT per key.
        count: Option<usize>,
    },
    /// XREADGROUP BLOCK with `>` on every key.
    GroupRead {
        /// The group.
        group: Bytes,
        /// The consumer.
        consumer: Bytes,
        /// COUNT per key.
        count: Option<usize>,
        /// NOACK.
        noack: bool,
    },
}

/// What a served waiter receives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Served {
    /// Elements popped from `key`.
    Popped {
        /// The key they came from.
        key: Bytes,
        /// The elements, in pop order.
        values: Vec<Bytes>,
    },
    /// The element moved.
    Moved(Bytes),
    /// The operation failed (a wrong-typed destination, a destroyed group).
    Failed(StoreError),
    /// XREAD: entries per key.
    Streams(Vec<(Bytes, Vec<StreamEntry>)>),
    /// XREADGROUP: entries per key.
    Group(Vec<GroupRead>),
}

/// One blocked client.
#[derive(Debug)]
pub struct Waiter {
    keys: Vec<Bytes>,
    op: BlockedOp,
    reply: Mutex<Option<oneshot::Sender<Served>>>,
}

impl Waiter {
    /// A waiter on `keys` (in the order the client named them) and the receiver its
    /// connection awaits.
    pub fn new(keys: Vec<Bytes>, op: BlockedOp) -> (Arc<Waiter>, oneshot::Receiver<Served>) {
        let (sender, receiver) = oneshot::channel();
        let waiter = Waiter {
            keys: keys.iter().map(crate::value::owned).collect(),
            op,
            reply: Mutex::new(Some(sender)),
        };
        (Arc::new(waiter), receiver)
    }

    /// True while the waiter can still be served.
    fn is_waiting(&self) -> bool {
        self.reply
            .lock()
            .as_ref()
            .is_some_and(|sender| !sender.is_closed())
    }

    /// Gives up: a timeout or a disconnect. Returns false if it was served meanwhile.
    pub fn cancel(&self) -> bool {
        self.reply.lock().take().is_some()
    }
}

/// The waiters of one database.
#[derive(Debug, Default)]
pub struct Waiters {
    by_key: HashMap<Bytes, VecDeque<Arc<Waiter>>>,
    ready: Vec<Bytes>,
}

impl Waiters {
    /// Registers `waiter` under each of its keys.
    pub fn block(&mut self, waiter: &Arc<Waiter>) {
        for key in &waiter.keys {
            self.by_key
                .entry(key.clone())
                .or_default()
                .push_back(Arc::clone(waiter));
        }
    }

    /// Removes `waiter` from every key (served, timed out or disconnected).
    pub fn unblock(&mut self, waiter: &Arc<Waiter>) {
        for key in &waiter.keys {
            if let Some(queue) = self.by_key.get_mut(key) {
                queue.retain(|other| !Arc::ptr_eq(other, waiter));
                if queue.is_empty() {
                    self.by_key.remove(key);
                }
            }
        }
    }

    /// Notes that `key` changed; it is served if anyone waits on it.
    pub fn mark_ready(&mut self, key: &[u8]) {
        // Every write calls this; with nobody blocked it must not even hash the key.
        if self.by_key.is_empty() {
            return;
        }
        if self.by_key.contains_key(key) && !self.ready.iter().any(|k| k == key) {
            self.ready.push(Bytes::copy_from_slice(key));
        }
    }

    /// True when a key someone waits on changed since it was last served.
    #[inline]
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Marks every key someone waits on as ready (FLUSHDB, SWAPDB: keys changed without
    /// a per-key event).
    pub fn mark_all_ready(&mut self) {
        let keys: Vec<Bytes> = self.by_key.keys().cloned().collect();
        for key in keys {
            if !self.ready.contains(&key) {
                self.ready.push(key);
            }
        }
    }

    /// Clients currently blocked (INFO `blocked_clients` counts distinct waiters).
    pub fn waiting(&self) -> usize {
        let mut seen: Vec<*const Waiter> =
            self.by_key.values().flatten().map(Arc::as_ptr).collect();
        seen.sort();
        seen.dedup();
        seen.len()
    }
}

/// Serves the waiters of every ready key of `db`, in arrival order, until the ready keys
/// have no elements left or nobody waits on them.
pub fn serve_ready(db: &mut Db, now_ms: u64) {
    // Serving can make more keys ready (BLMOVE pushes to its destination): loop until
    // quiet. Each round pops at least one element or drops a waiter, so it ends.
    loop {
        let ready = std::mem::take(&mut db.waiters_mut().ready);
        if ready.is_empty() {
            return;
        }
        for key in ready {
            serve_key(db, &key, now_ms);
        }
    }
}

fn serve_key(db: &mut Db, key: &Bytes, now_ms: u64) {
    // A snapshot: serving unblocks waiters (changing the queue) and stream reads serve
    // several waiters from the same entries.
    let queue: Vec<Arc<Waiter>> = match db.waiters_mut().by_key.get(key) {
        Some(queue) => queue.iter().cloned().collect(),
        None => return,
    };
    for waiter in queue {
        if !waiter.is_waiting() {
            db.waiters_mut().unblock(&waiter);
            continue;
        }
        let served = match &waiter.op {
            BlockedOp::Pop { .. } | BlockedOp::Move { .. } => {
                let has_elements =
                    matches!(db.get(key, now_ms), Some(Value::List(list)) if !list.is_empty());
                if !has_elements {
                    continue;
                }
                match serve_list(db, key, &waiter.op, now_ms) {
                    Some(served) => served,
                    None => return,
                }
            }
            BlockedOp::StreamRead { after, count } => {
                match serve_stream_read(db, &waiter.keys, after, *count, now_ms) {
                    Some(served) => served,
                    None => continue,
                }
            }
            BlockedOp::GroupRead {
                group,
                consumer,
                count,
                noack,
            } => {
                match serve_group_read(db, &waiter.keys, group, consumer, *count, *noack, now_ms) {
                    Some(served) => served,
                    None => continue,
                }
            }
        };
        db.waiters_mut().unblock(&waiter);
        let effect = match (&waiter.op, &served) {
            (BlockedOp::Pop { end, .. }, Served::Popped { values, .. }) => {
                Some((None, *end, *end, values.len()))
            }
            (
                BlockedOp::Move {
                    destination,
                    from,
                    to,
                },
                Served::Moved(_),
            ) => Some((Some(destination.clone()), *from, *to, 1)),
            _ => None,
        };
        let sender = waiter.reply.lock().take();
        // The receiver can only be gone if the connection died this instant; popped
        // elements would be lost, so push them back where they came from. (Stream reads
        // lose nothing: XREAD does not consume, XREADGROUP leaves the entries pending.)
        if let Some(Err(Served::Popped { values, .. })) = sender.map(|sender| sender.send(served)) {
            if let BlockedOp::Pop { end, .. } = waiter.op {
                let mut values = values;
                values.reverse();
                let _ = lists::push(db, key, &values, end, false, now_ms);
            }
            continue;
        }
        match effect {
            Some((None, end, _, count)) => db.effects_mut().popped(key, end, count),
            Some((Some(destination), from, to, _)) => {
                db.effects_mut().moved(key, &destination, from, to)
            }
            None => {}
        }
    }
}

fn serve_list(db: &mut Db, key: &Bytes, op: &BlockedOp, now_ms: u64) -> Option<Served> {
    match op {
        BlockedOp::Pop { end, count } => match lists::pop(db, key, *end, *count, now_ms) {
            Ok(Some(values)) => Some(Served::Popped {
                key: key.clone(),
                values,
            }),
            Ok(None) => None,
            Err(err) => Some(Served::Failed(err)),
        },
        BlockedOp::Move {
            destination,
            from,
            to,
        } => match lists::move_element(db, key, destination, *from, *to, now_ms) {
            Ok(Some(value)) => Some(Served::Moved(value)),
            Ok(None) => None,
            Err(err) => Some(Served::Failed(err)),
        },
        BlockedOp::StreamRead { .. } | BlockedOp::GroupRead { .. } => None,
    }
}

fn serve_stream_read(
    db: &mut Db,
    keys: &[Bytes],
    after: &[StreamId],
    count: Option<usize>,
    now_ms: u64,
) -> Option<Served> {
    // Like Redis, a key of another type (or none) just leaves the reader waiting.
    let ready = keys.iter().zip(after).any(|(key, after)| {
        matches!(db.get(key, now_ms), Some(Value::Stream(stream)) if stream.last_id() > *after)
    });
    if !ready {
        return None;
    }
    let from: Vec<ReadFrom> = after.iter().map(|id| ReadFrom::After(*id)).collect();
    match stream_ops::read(db, keys, &from, count, now_ms) {
        Ok(found) if found.is_empty() => None,
        Ok(found) => Some(Served::Streams(found)),
        Err(err) => Some(Served::Failed(err)),
    }
}

fn serve_group_read(
    db: &mut Db,
    keys: &[Bytes],
    group: &[u8],
    consumer: &Bytes,
    count: Option<usize>,
    noack: bool,
    now_ms: u64,
) -> Option<Served> {
    if let Err(err) = consume::check_groups(db, keys, group, now_ms) {
        return Some(Served::Failed(err));
    }
    let from = vec![GroupFrom::New; keys.len()];
    match consume::read_group(db, keys, &from, group, consumer, count, noack, now_ms) {
        Ok(found) if found.is_empty() => None,
        Ok(found) => {
            // The read changed the group even if the reader is gone: log it either way.
            if db.effects_mut().is_enabled() {
                let mut records = Vec::new();
                for read in &found {
                    let ids: Vec<_> = read.entries.iter().map(|(id, _)| *id).collect();
                    if let Ok(Some(stream)) = crate::stream::ops::stream(db, &read.key, now_ms) {
                        records.extend(crate::stream::propagate::group_records(
                            stream,
                            &read.key,
                            group,
                            Some(consumer),
                            &ids,
                        ));
                    }
                }
                db.effects_mut().served_records(records);
            }
            Some(Served::Group(found))
        }
        Err(err) => Some(Served::Failed(err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn pop_waiter(keys: &[&str]) -> (Arc<Waiter>, oneshot::Receiver<Served>) {
        Waiter::new(
            keys.iter().map(|k| b(k)).collect(),
            BlockedOp::Pop {
                end: End::Left,
                count: 1,
            },
        )
    }

    #[test]
    fn first_come_first_served_and_one_element_each() {
        let mut db = Db::default();
        let (first, mut first_rx) = pop_waiter(&["q"]);
        let (second, mut second_rx) = pop_waiter(&["other", "q"]);
        db.waiters_mut().block(&first);
        db.waiters_mut().block(&second);
        lists::push(&mut db, &b("q"), &[b("x")], End::Right, false, 0).unwrap();
        serve_ready(&mut db, 0);
        assert_eq!(
            first_rx.try_recv().unwrap(),
            Served::Popped {
                key: b("q"),
                values: vec![b("x")]
            }
        );
        assert!(
            second_rx.try_recv().is_err(),
            "one element serves one waiter"
        );
        assert!(!db.contains(b"q", 0));
        lists::push(&mut db, &b("other"), &[b("y")], End::Right, false, 0).unwrap();
        serve_ready(&mut db, 0);
        assert!(matches!(second_rx.try_recv(), Ok(Served::Popped { .. })));
        assert_eq!(db.waiters_mut().waiting(), 0);
    }

    #[test]
    fn cancelled_waiters_are_skipped() {
        let mut db = Db::default();
        let (gone, _gone_rx) = pop_waiter(&["q"]);
        let (live, mut live_rx) = pop_waiter(&["q"]);
        db.waiters_mut().block(&gone);
        db.waiters_mut().block(&live);
        assert!(gone.cancel());
        lists::push(&mut db, &b("q"), &[b("x")], End::Right, false, 0).unwrap();
        serve_ready(&mut db, 0);
        assert!(matches!(live_rx.try_recv(), Ok(Served::Popped { .. })));
    }

    #[test]
    fn a_dropped_receiver_does_not_lose_the_element() {
        let mut db = Db::default();
        let (waiter, receiver) = pop_waiter(&["q"]);
        db.waiters_mut().block(&waiter);
        drop(receiver);
        lists::push(&mut db, &b("q"), &[b("x")], End::Right, false, 0).unwrap();
        serve_ready(&mut db, 0);
        assert_eq!(lists::len(&mut db, b"q", 0), Ok(1));
    }

    #[test]
    fn blmove_chains_to_waiters_on_the_destination() {
        let mut db = Db::default();
        let (mover, mut mover_rx) = Waiter::new(
            vec![b("src")],
            BlockedOp::Move {
                destination: b("dst"),
                from: End::Right,
                to: End::Left,
            },
        );
        let (popper, mut popper_rx) = pop_waiter(&["dst"]);
        db.waiters_mut().block(&mover);
        db.waiters_mut().block(&popper);
        lists::push(&mut db, &b("src"), &[b("v")], End::Right, false, 0).unwrap();
        serve_ready(&mut db, 0);
        assert_eq!(mover_rx.try_recv().unwrap(), Served::Moved(b("v")));
        assert_eq!(
            popper_rx.try_recv().unwrap(),
            Served::Popped {
                key: b("dst"),
                values: vec![b("v")]
            }
        );
    }
}
