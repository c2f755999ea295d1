//! Streams: append-only logs of field/value entries with strictly increasing IDs, and
//! consumer groups that deliver, track and acknowledge their entries.
//!
//! # Layout
//! - [`id`]: entry IDs, their parsing forms and ordering.
//! - [`entries`]: the compact block storage of entries, trimming.
//! - [`group`]: consumer groups, consumers and the pending-entry list.
//! - [`ops`]: XADD, XRANGE, XDEL, XTRIM, XSETID, XREAD on a [`crate::Db`].
//! - [`consume`]: XGROUP, XREADGROUP, XACK on a `Db`.
//! - [`claim`]: XPENDING, XCLAIM, XAUTOCLAIM on a `Db`.
//! - [`propagate`]: group reads, claims, trims and whole streams as replayable commands.
//!
//! A [`Stream`] is a plain value inside [`crate::Value`]: no global state, so the whole
//! keyspace, streams and groups included, stays reachable for a snapshot. Operations
//! return the concrete IDs they produced (XADD's ID, the new group position), so a future
//! append-only log can record them deterministically.

pub mod claim;
pub mod consume;
pub mod entries;
pub mod group;
pub mod id;
pub mod ops;
pub mod propagate;

use std::collections::BTreeMap;

use bytes::Bytes;

pub use entries::{StreamEntry, Trim};
pub use group::{Consumer, Group, Pending};
pub use id::StreamId;

use crate::error::StoreError;
use entries::Entries;
use id::AddId;

/// One stream value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stream {
    entries: Entries,
    last_id: StreamId,
    max_deleted_id: StreamId,
    entries_added: u64,
    /// Consumer groups by name (sorted, as XINFO GROUPS lists them).
    pub groups: BTreeMap<Bytes, Group>,
}

impl Stream {
    /// An empty stream with no groups.
    pub fn new() -> Stream {
        Stream::default()
    }

    /// Live entries (XLEN).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True without live entries (the key still exists: streams are not deleted when
    /// emptied).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The largest ID ever added or set by XSETID.
    pub fn last_id(&self) -> StreamId {
        self.last_id
    }

    /// The first live ID, `0-0` when empty.
    pub fn first_id(&self) -> StreamId {
        self.entries.first_id().unwrap_or(StreamId::MIN)
    }

    /// The largest ID XDEL removed (`max-deleted-entry-id`).
    pub fn max_deleted_id(&self) -> StreamId {
        self.max_deleted_id
    }

    /// Entries ever added (`entries-added`).
    pub fn entries_added(&self) -> u64 {
        self.entries_added
    }

    /// The entry storage, for reads.
    pub fn entries(&self) -> &Entries {
        &self.entries
    }

    /// The ID an XADD would give its entry now; errors as Redis's.
    pub fn next_id(&self, spec: AddId, now_ms: u64) -> Result<StreamId, StoreError> {
        let last = self.last_id;
        // Redis's order: 0-0 first, then a stream at the last possible ID, whatever form.
        if spec == AddId::Explicit(StreamId::MIN) {
            return Err(StoreError::XAddIdZero);
        }
        if last == StreamId::MAX {
            return Err(StoreError::StreamExhausted);
        }
        match spec {
            AddId::Auto => {
                if now_ms > last.ms {
                    Ok(StreamId::new(now_ms, 0))
                } else {
                    last.successor().ok_or(StoreError::StreamExhausted)
                }
            }
            AddId::AutoSeq(ms) => {
                if ms == last.ms {
                    last.seq
                        .checked_add(1)
                        .map(|seq| StreamId::new(ms, seq))
                        .ok_or(StoreError::XAddIdTooSmall)
                } else if ms > last.ms {
                    Ok(StreamId::new(ms, 0))
                } else {
                    Err(StoreError::XAddIdTooSmall)
                }
            }
            AddId::Explicit(id) if id.is_zero() => Err(StoreError::XAddIdZero),
            AddId::Explicit(id) if id <= last => Err(StoreError::XAddIdTooSmall),
            AddId::Explicit(id) => Ok(id),
        }
    }

    /// Appends an entry with an ID from [`Stream::next_id`].
    pub fn append(&mut self, id: StreamId, pairs: &[Bytes]) {
        self.entries.append(id, pairs);
        self.last_id = id;
        self.entries_added += 1;
    }

    /// Deletes live entries (XDEL); how many were deleted.
    pub fn delete(&mut self, ids: &[StreamId]) -> usize {
        let mut deleted = 0;
        for &id in ids {
            if self.entries.delete(id) {
                deleted += 1;
                if id > self.max_deleted_id {
                    self.max_deleted_id = id;
                }
            }
        }
        deleted
    }

    /// Trims (XTRIM, XADD's trimming options); how many entries were removed.
    pub fn trim(&mut self, strategy: Trim, approx: bool, limit: Option<usize>) -> usize {
        self.entries.trim(strategy, approx, limit)
    }

    /// Live entries in `start..=end` (see [`Entries::range`]).
    pub fn range(
        &self,
        start: StreamId,
        end: StreamId,
        count: Option<usize>,
        reverse: bool,
    ) -> Vec<StreamEntry> {
        self.entries.range(start, end, count, reverse)
    }

    /// Sets the last ID and counters (XSETID), checked as Redis checks them.
    pub fn set_id(
        &mut self,
        id: StreamId,
        entries_added: Option<u64>,
        max_deleted: Option<StreamId>,
    ) -> Result<(), StoreError> {
        if let Some(max_deleted) = max_deleted {
            if id < max_deleted {
                return Err(StoreError::XSetIdBelowMaxDeleted);
            }
        }
        if let Some(added) = entries_added {
            if (self.len() as u64) > added {
                return Err(StoreError::XSetIdEntriesAdded);
            }
        }
        if !self.is_empty() && id < self.entries.last_id().unwrap_or(StreamId::MIN) {
            return Err(StoreError::XSetIdTooSmall);
        }
        self.last_id = id;
        if let Some(added) = entries_added {
            self.entries_added = added;
        }
        if let Some(max_deleted) = max_deleted {
            self.max_deleted_id = max_deleted;
        }
        Ok(())
    }

    /// True when an XDEL tombstone may lie in `start..=end` (Redis's
    /// `streamRangeHasTombstones`).
    pub fn range_has_tombstones(&self, start: StreamId, end: StreamId) -> bool {
        if self.is_empty() || self.max_deleted_id.is_zero() {
            return false;
        }
        if self.first_id() > self.max_deleted_id {
            return false;
        }
        start <= self.max_deleted_id && self.max_deleted_id <= end
    }

    /// How many entries precede and include `id` counting from the first ever added,
    /// when that can be known (Redis's `streamEstimateDistanceFromFirstEverEntry`).
    pub fn entries_read_at(&self, id: StreamId) -> Option<u64> {
        if self.entries_added == 0 {
            return Some(0);
        }
        if self.is_empty() && id <= self.last_id {
            return Some(self.entries_added);
        }
        if id == self.last_id {
            return Some(self.entries_added);
        }
        if id > self.last_id {
            return None;
        }
        let first = self.first_id();
        if self.max_deleted_id.is_zero() || self.max_deleted_id < first {
            let before_first = self.entries_added - self.len() as u64;
            if id < first {
                return Some(before_first);
            }
            if id == first {
                return Some(before_first + 1);
            }
        }
        None
    }

    /// The group's lag: entries not yet delivered to it, when that can be known.
    pub fn lag(&self, group: &Group) -> Option<i64> {
        let difference = |read: u64| self.entries_added as i64 - read as i64;
        // (Signed because XSETID can lower entries-added below a group's counter.)
        if self.entries_added == 0 {
            return Some(0);
        }
        // The counter is trusted with no tombstone ahead (Redis 7.0) and, as redis-py's
        // tests expect of 7.2, only while the group is not behind the first entry; then
        // an ENTRIESREAD set beyond entries-added shows as a negative lag.
        if let Some(read) = group.entries_read {
            if !self.range_has_tombstones(group.last_id, StreamId::MAX)
                && group.last_id >= self.first_id()
            {
                return Some(difference(read));
            }
        }
        self.entries_read_at(group.last_id).map(difference)
    }

    /// Moves `group` past `id` after delivering it, keeping `entries_read` exact while it
    /// can be (Redis's bookkeeping in `streamReplyWithRange`).
    pub fn advance_group(&self, group: &mut Group, id: StreamId) {
        if id <= group.last_id {
            return;
        }
        match group.entries_read {
            Some(read) if !self.range_has_tombstones(group.last_id, StreamId::MAX) => {
                group.entries_read = Some(read + 1);
            }
            _ if self.entries_added > 0 => group.entries_read = self.entries_read_at(id),
            _ => {}
        }
        group.last_id = id;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> Vec<Bytes> {
        vec![Bytes::from_static(b"f"), Bytes::from_static(b"v")]
    }

    #[test]
    fn auto_ids_stay_monotonic_when_the_clock_goes_back() {
        let mut stream = Stream::new();
        let a = stream.next_id(AddId::Auto, 1_000).unwrap();
        stream.append(a, &fields());
        let b = stream.next_id(AddId::Auto, 900).unwrap();
        assert_eq!(b, StreamId::new(1_000, 1));
        stream.append(b, &fields());
        assert_eq!(
            stream.next_id(AddId::AutoSeq(1_000), 0),
            Ok(StreamId::new(1_000, 2))
        );
        assert_eq!(
            stream.next_id(AddId::AutoSeq(999), 0),
            Err(StoreError::XAddIdTooSmall)
        );
        assert_eq!(
            stream.next_id(AddId::Explicit(StreamId::new(1_000, 1)), 0),
            Err(StoreError::XAddIdTooSmall)
        );
        assert_eq!(
            Stream::new().next_id(AddId::AutoSeq(0), 0),
            Ok(StreamId::new(0, 1))
        );
        assert_eq!(
            Stream::new().next_id(AddId::Explicit(StreamId::MIN), 0),
            Err(StoreError::XAddIdZero)
        );
        let mut full = Stream::new();
        full.append(StreamId::MAX, &fields());
        assert_eq!(
            full.next_id(AddId::Auto, 5),
            Err(StoreError::StreamExhausted)
        );
    }

    #[test]
    fn entries_read_counters_are_trusted_only_from_the_first_entry_on() {
        let mut stream = Stream::new();
        stream.append(StreamId::new(5, 0), &fields());
        // XGROUP CREATE ... 0 ENTRIESREAD 7: behind the first entry, so estimated.
        assert_eq!(stream.lag(&Group::new(StreamId::MIN, Some(7))), Some(1));
        // XGROUP SETID ... <last> ENTRIESREAD 2: trusted, even negative.
        assert_eq!(
            stream.lag(&Group::new(StreamId::new(5, 0), Some(2))),
            Some(-1)
        );
        // An emptied stream trusts the counter (Redis 7.0.15 answers 3 here).
        let mut emptied = Stream::new();
        for ms in 1..=6 {
            emptied.append(StreamId::new(ms, 0), &fields());
        }
        emptied.trim(Trim::MaxLen(0), false, None);
        assert_eq!(emptied.lag(&Group::new(StreamId::MIN, Some(3))), Some(3));
    }

    #[test]
    fn lag_follows_redis_rules() {
        let mut stream = Stream::new();
        for ms in 1..=5 {
            stream.append(StreamId::new(ms, 0), &fields());
        }
        let mut group = Group::new(StreamId::MIN, None);
        assert_eq!(stream.lag(&group), Some(5));
        stream.advance_group(&mut group, StreamId::new(1, 0));
        assert_eq!(group.entries_read, Some(1));
        assert_eq!(stream.lag(&group), Some(4));
        stream.delete(&[StreamId::new(3, 0)]);
        assert_eq!(stream.lag(&group), None, "a tombstone ahead hides the lag");
        stream.advance_group(&mut group, StreamId::new(5, 0));
        assert_eq!(stream.lag(&group), Some(0));
    }
}
