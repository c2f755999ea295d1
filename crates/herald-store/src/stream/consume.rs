//! Consumer-group operations on a database: XGROUP, XREADGROUP and XACK, with Redis's
//! error texts and keyspace events (`xgroup-create`, `xgroup-setid`, `xgroup-destroy`,
//! `xgroup-createconsumer`, `xgroup-delconsumer`). Inspecting and moving pending entries
//! (XPENDING, XCLAIM, XAUTOCLAIM) is in [`super::claim`].

use bytes::Bytes;

use super::id::StreamId;
use super::ops::{stream, stream_mut};
use super::{Group, Stream, StreamEntry};
use crate::db::Db;
use crate::error::StoreError;
use crate::events;
use crate::value::Value;

fn name(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn no_group(key: &[u8], group: &[u8]) -> StoreError {
    StoreError::Custom(format!(
        "NOGROUP No such consumer group '{}' for key name '{}'",
        name(group),
        name(key)
    ))
}

pub(super) fn no_key_or_group(key: &[u8], group: &[u8]) -> StoreError {
    StoreError::Custom(format!(
        "NOGROUP No such key '{}' or consumer group '{}'",
        name(key),
        name(group)
    ))
}

/// Where XGROUP CREATE/SETID put the group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupStart {
    /// `$`: the stream's last ID.
    Last,
    /// An explicit ID.
    At(StreamId),
}

fn existing_stream<'a>(
    db: &'a mut Db,
    key: &[u8],
    now_ms: u64,
) -> Result<&'a mut Stream, StoreError> {
    stream_mut(db, key, now_ms)?.ok_or(StoreError::XGroupNeedsKey)
}

/// XGROUP CREATE; with `make_stream` an empty stream is created for a missing key.
/// Returns the group's position.
pub fn create_group(
    db: &mut Db,
    key: &Bytes,
    group: &Bytes,
    start: GroupStart,
    make_stream: bool,
    entries_read: Option<u64>,
    now_ms: u64,
) -> Result<StreamId, StoreError> {
    if stream(db, key, now_ms)?.is_none() {
        if !make_stream {
            return Err(StoreError::XGroupNeedsKey);
        }
        db.get_or_insert_with(key, now_ms, || Value::Stream(Box::default()));
    }
    let stream = existing_stream(db, key, now_ms)?;
    if stream.groups.contains_key(group) {
        return Err(StoreError::BusyGroup);
    }
    let at = match start {
        GroupStart::Last => stream.last_id(),
        GroupStart::At(id) => id,
    };
    stream
        .groups
        .insert(crate::value::owned(group), Group::new(at, entries_read));
    db.notify(events::STREAM, "xgroup-create", key);
    Ok(at)
}

/// XGROUP SETID; returns the group's new position.
pub fn set_group_id(
    db: &mut Db,
    key: &[u8],
    group: &[u8],
    start: GroupStart,
    entries_read: Option<u64>,
    now_ms: u64,
) -> Result<StreamId, StoreError> {
    let stream = existing_stream(db, key, now_ms)?;
    let last = stream.last_id();
    let Some(found) = stream.groups.get_mut(group) else {
        return Err(no_group(key, group));
    };
    let at = match start {
        GroupStart::Last => last,
        GroupStart::At(id) => id,
    };
    found.last_id = at;
    found.entries_read = entries_read;
    db.notify(events::STREAM, "xgroup-setid", key);
    Ok(at)
}

/// XGROUP DESTROY: true when the group existed. Clients blocked reading it are then
/// served an error (their read is retried and fails).
pub fn destroy_group(
    db: &mut Db,
    key: &[u8],
    group: &[u8],
    now_ms: u64,
) -> Result<bool, StoreError> {
    let stream = existing_stream(db, key, now_ms)?;
    let existed = stream.groups.remove(group).is_some();
    if existed {
        db.notify(events::STREAM, "xgroup-destroy", key);
    }
    Ok(existed)
}

/// XGROUP CREATECONSUMER: true when it was created.
pub fn create_consumer(
    db: &mut Db,
    key: &[u8],
    group: &[u8],
    consumer: &Bytes,
    now_ms: u64,
) -> Result<bool, StoreError> {
    let stream = existing_stream(db, key, now_ms)?;
    let Some(found) = stream.groups.get_mut(group) else {
        return Err(no_group(key, group));
    };
    let (_, created) = found.consumer_or_create(consumer, now_ms);
    if created {
        db.notify(events::STREAM, "xgroup-createconsumer", key);
    }
    Ok(created)
}

/// XGROUP DELCONSUMER: how many pending entries the consumer held (0 if it did not exist).
pub fn delete_consumer(
    db: &mut Db,
    key: &[u8],
    group: &[u8],
    consumer: &[u8],
    now_ms: u64,
) -> Result<usize, StoreError> {
    let stream = existing_stream(db, key, now_ms)?;
    let Some(found) = stream.groups.get_mut(group) else {
        return Err(no_group(key, group));
    };
    let Some(held) = found.delete_consumer(consumer) else {
        return Ok(0);
    };
    db.notify(events::STREAM, "xgroup-delconsumer", key);
    Ok(held)
}

/// Where XREADGROUP reads one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupFrom {
    /// `>`: entries never delivered to the group.
    New,
    /// The consumer's own pending entries above this ID.
    Pending(StreamId),
}

/// An entry as XREADGROUP and XCLAIM return it: fields `None` when the entry was
/// deleted from the stream while pending.
pub type Delivered = (StreamId, Option<Vec<Bytes>>);

/// What XREADGROUP found on one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupRead {
    /// The key.
    pub key: Bytes,
    /// Its entries (may be empty for a pending-history read).
    pub entries: Vec<Delivered>,
}

/// Checks that every key is a stream with `group` (XREADGROUP's up-front check).
pub fn check_groups(
    db: &mut Db,
    keys: &[Bytes],
    group: &[u8],
    now_ms: u64,
) -> Result<(), StoreError> {
    for key in keys {
        let found = stream(db, key, now_ms)?.is_some_and(|s| s.groups.contains_key(group));
        if !found {
            return Err(StoreError::Custom(format!(
                "NOGROUP No such key '{}' or consumer group '{}' in XREADGROUP with GROUP option",
                name(key),
                name(group)
            )));
        }
    }
    Ok(())
}

/// XREADGROUP without blocking. Keys read with [`GroupFrom::New`] appear only when they
/// had entries; history reads always appear. `noack` delivers without recording
/// pending entries.
#[allow(clippy::too_many_arguments)]
pub fn read_group(
    db: &mut Db,
    keys: &[Bytes],
    from: &[GroupFrom],
    group: &[u8],
    consumer: &Bytes,
    count: Option<usize>,
    noack: bool,
    now_ms: u64,
) -> Result<Vec<GroupRead>, StoreError> {
    check_groups(db, keys, group, now_ms)?;
    let mut out = Vec::new();
    for (key, from) in keys.iter().zip(from) {
        let (entries, created) = read_one(db, key, *from, group, consumer, count, noack, now_ms)?;
        if created {
            db.notify(events::STREAM, "xgroup-createconsumer", key);
        }
        if *from == GroupFrom::New && entries.is_empty() {
            continue;
        }
        out.push(GroupRead {
            key: key.clone(),
            entries,
        });
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn read_one(
    db: &mut Db,
    key: &Bytes,
    from: GroupFrom,
    group: &[u8],
    consumer: &Bytes,
    count: Option<usize>,
    noack: bool,
    now_ms: u64,
) -> Result<(Vec<Delivered>, bool), StoreError> {
    let stream = stream_mut(db, key, now_ms)?.ok_or_else(|| no_key_or_group(key, group))?;
    let mut found = stream
        .groups
        .remove(group)
        .ok_or_else(|| no_key_or_group(key, group))?;
    let created = {
        let (holder, created) = found.consumer_or_create(consumer, now_ms);
        holder.seen_ms = now_ms;
        created
    };
    let limit = count.unwrap_or(usize::MAX);
    let mut delivered = Vec::new();
    match from {
        GroupFrom::New => {
            if let Some(start) = found.last_id.successor() {
                for entry in stream.range(start, StreamId::MAX, count, false) {
                    stream.advance_group(&mut found, entry.id);
                    if !noack {
                        found.deliver(entry.id, consumer, now_ms);
                    }
                    delivered.push((entry.id, Some(entry.fields)));
                }
            }
        }
        GroupFrom::Pending(after) => {
            let ids: Vec<StreamId> = found
                .consumers
                .get(consumer)
                .map(|c| {
                    c.pending
                        .range(after.successor().unwrap_or(StreamId::MAX)..)
                        .filter(|id| **id > after)
                        .take(limit)
                        .copied()
                        .collect()
                })
                .unwrap_or_default();
            for id in ids {
                if let Some(pending) = found.pel.get_mut(&id) {
                    pending.delivered_ms = now_ms;
                    pending.deliveries += 1;
                }
                delivered.push((id, stream.entries().get(id).map(|e| e.fields)));
            }
        }
    }
    if !delivered.is_empty() {
        if let Some(holder) = found.consumers.get_mut(consumer) {
            holder.active_ms = Some(now_ms);
        }
    }
    stream.groups.insert(Bytes::copy_from_slice(group), found);
    Ok((delivered, created))
}

/// XACK: how many of `ids` were pending and are now acknowledged.
pub fn ack(
    db: &mut Db,
    key: &[u8],
    group: &[u8],
    ids: &[StreamId],
    now_ms: u64,
) -> Result<usize, StoreError> {
    let Some(stream) = stream_mut(db, key, now_ms)? else {
        return Ok(0);
    };
    let Some(found) = stream.groups.get_mut(group) else {
        return Ok(0);
    };
    Ok(ids.iter().filter(|id| found.ack(**id)).count())
}

/// The entries of a stream for XINFO STREAM FULL, with at most `count` (0: all).
pub fn full_entries(stream: &Stream, count: usize) -> Vec<StreamEntry> {
    let limit = (count > 0).then_some(count);
    stream.range(StreamId::MIN, StreamId::MAX, limit, false)
}
