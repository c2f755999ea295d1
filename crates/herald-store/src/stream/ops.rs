//! Stream operations on a database: XADD, XLEN, XRANGE/XREVRANGE, XDEL, XTRIM, XSETID and
//! XREAD, with WRONGTYPE checks and the keyspace events Redis signals (`xadd`, `xtrim`,
//! `xdel`, `xsetid`; none when nothing changed).

use bytes::Bytes;

use super::id::{AddId, StreamId};
use super::{Stream, StreamEntry, Trim};
use crate::db::Db;
use crate::error::StoreError;
use crate::events;
use crate::value::Value;

/// Trimming as XTRIM and XADD ask for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrimSpec {
    /// MAXLEN or MINID.
    pub strategy: Trim,
    /// `~`: only whole blocks.
    pub approx: bool,
    /// LIMIT (approximate trimming only); `None`: no cap.
    pub limit: Option<usize>,
}

/// The stream at `key`, if any; WRONGTYPE for another type.
pub fn stream<'a>(
    db: &'a mut Db,
    key: &[u8],
    now_ms: u64,
) -> Result<Option<&'a Stream>, StoreError> {
    match db.get(key, now_ms) {
        None => Ok(None),
        Some(Value::Stream(stream)) => Ok(Some(stream)),
        Some(_) => Err(StoreError::WrongType),
    }
}

/// The stream at `key` for changes, if any; WRONGTYPE for another type.
pub fn stream_mut<'a>(
    db: &'a mut Db,
    key: &[u8],
    now_ms: u64,
) -> Result<Option<&'a mut Stream>, StoreError> {
    match db.get_mut(key, now_ms) {
        None => Ok(None),
        Some(Value::Stream(stream)) => Ok(Some(stream)),
        Some(_) => Err(StoreError::WrongType),
    }
}

/// XADD: appends `pairs` (field, value, ...) under an ID chosen by `id`, then trims.
/// Returns the concrete ID added, or `None` when `no_create` and the key is missing.
pub fn add(
    db: &mut Db,
    key: &Bytes,
    pairs: &[Bytes],
    id: AddId,
    no_create: bool,
    trim: Option<TrimSpec>,
    now_ms: u64,
) -> Result<Option<StreamId>, StoreError> {
    let new_id = match stream(db, key, now_ms)? {
        Some(existing) => existing.next_id(id, now_ms)?,
        None if no_create => return Ok(None),
        None => Stream::new().next_id(id, now_ms)?,
    };
    let Value::Stream(stream) =
        db.get_or_insert_with(key, now_ms, || Value::Stream(Box::default()))
    else {
        return Err(StoreError::WrongType);
    };
    // The block copies the bytes it keeps, so the arguments are not copied first.
    stream.append(new_id, pairs);
    let trimmed = trim.map_or(0, |spec| {
        stream.trim(spec.strategy, spec.approx, spec.limit)
    });
    db.notify(events::STREAM, "xadd", key);
    if trimmed > 0 {
        db.notify(events::STREAM, "xtrim", key);
    }
    Ok(Some(new_id))
}

/// XLEN: 0 for a missing key.
pub fn len(db: &mut Db, key: &[u8], now_ms: u64) -> Result<usize, StoreError> {
    Ok(stream(db, key, now_ms)?.map_or(0, Stream::len))
}

/// XRANGE (`reverse` false) / XREVRANGE (true): entries in `start..=end`.
pub fn range(
    db: &mut Db,
    key: &[u8],
    start: StreamId,
    end: StreamId,
    count: Option<usize>,
    reverse: bool,
    now_ms: u64,
) -> Result<Vec<StreamEntry>, StoreError> {
    Ok(stream(db, key, now_ms)?
        .map(|stream| stream.range(start, end, count, reverse))
        .unwrap_or_default())
}

/// XDEL: how many of `ids` were live and are now deleted.
pub fn delete(db: &mut Db, key: &[u8], ids: &[StreamId], now_ms: u64) -> Result<usize, StoreError> {
    let Some(stream) = stream_mut(db, key, now_ms)? else {
        return Ok(0);
    };
    let deleted = stream.delete(ids);
    if deleted > 0 {
        db.notify(events::STREAM, "xdel", key);
    }
    Ok(deleted)
}

/// XTRIM: how many entries were removed.
pub fn trim(db: &mut Db, key: &[u8], spec: TrimSpec, now_ms: u64) -> Result<usize, StoreError> {
    let Some(stream) = stream_mut(db, key, now_ms)? else {
        return Ok(0);
    };
    let removed = stream.trim(spec.strategy, spec.approx, spec.limit);
    if removed > 0 {
        db.notify(events::STREAM, "xtrim", key);
    }
    Ok(removed)
}

/// XSETID: sets the last ID (and optionally entries-added and max-deleted-entry-id).
pub fn set_id(
    db: &mut Db,
    key: &[u8],
    id: StreamId,
    entries_added: Option<u64>,
    max_deleted: Option<StreamId>,
    now_ms: u64,
) -> Result<(), StoreError> {
    let Some(stream) = stream_mut(db, key, now_ms)? else {
        return Err(StoreError::NoSuchKey);
    };
    stream.set_id(id, entries_added, max_deleted)?;
    db.notify(events::STREAM, "xsetid", key);
    Ok(())
}

/// Where an XREAD starts on one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadFrom {
    /// Entries with IDs above this one (`$` is resolved to the last ID before reading).
    After(StreamId),
    /// `+`: the last entry only.
    Last,
}

/// Resolves `$` for each key: the stream's last ID, `0-0` when missing. Checks types.
pub fn last_ids(db: &mut Db, keys: &[Bytes], now_ms: u64) -> Result<Vec<StreamId>, StoreError> {
    keys.iter()
        .map(|key| Ok(stream(db, key, now_ms)?.map_or(StreamId::MIN, Stream::last_id)))
        .collect()
}

/// XREAD without blocking: per key (in order, only keys with entries), the entries after
/// its start, at most `count` per key.
pub fn read(
    db: &mut Db,
    keys: &[Bytes],
    from: &[ReadFrom],
    count: Option<usize>,
    now_ms: u64,
) -> Result<Vec<(Bytes, Vec<StreamEntry>)>, StoreError> {
    for key in keys {
        stream(db, key, now_ms)?;
    }
    let mut out = Vec::new();
    for (key, from) in keys.iter().zip(from) {
        let Some(stream) = stream(db, key, now_ms)? else {
            continue;
        };
        let entries = match from {
            ReadFrom::Last => stream.entries().last().into_iter().collect(),
            ReadFrom::After(id) => match id.successor() {
                Some(start) => stream.range(start, StreamId::MAX, count, false),
                None => Vec::new(),
            },
        };
        if !entries.is_empty() {
            out.push((key.clone(), entries));
        }
    }
    Ok(out)
}
