//! Hash operations: field reads and writes, the HINCRBY family, HRANDFIELD and HSCAN.
//!
//! A hash is an insertion-ordered `IndexMap` of field to value. Fields are only ever
//! removed with `swap_remove` (O(1): the last entry moves into the hole), never with
//! `shift_remove`; HSCAN's guarantee below depends on that. A hash that becomes empty
//! is deleted, as in Redis.
//!
//! Fields and values are stored as boxed slices, copied in on a write and copied out on
//! a read. A `Bytes` would take twice the room in the entry (32 bytes against 16), and
//! handing out a clone of one built by a copy turns it into a shared buffer with an
//! allocation of its own: HGETALL of a 100 000-field hash used to grow the server by
//! 65 bytes per field, for good. Redis copies a value into the reply buffer too.
//!
//! Keyspace events follow `t_hash.c`: `hset` (HSET, HMSET, and HSETNX when it writes),
//! `hdel` then `del` when HDEL empties the hash, `hincrby`, `hincrbyfloat`.

use bytes::Bytes;
use herald_engine::Glob;
use indexmap::IndexMap;
use rand::Rng;

use crate::db::Db;
use crate::error::StoreError;
use crate::events;
use crate::strings::{parse_float, parse_integer};
use crate::value::Value;

/// A hash's fields and values.
pub type Hash = IndexMap<Box<[u8]>, Box<[u8]>>;

/// A field or value as the hash stores it: a copy (arguments are slices of a
/// connection's read buffer, which must not be pinned).
fn stored(bytes: &[u8]) -> Box<[u8]> {
    Box::from(bytes)
}

/// A stored field or value as a reply carries it.
fn reply(bytes: &[u8]) -> Bytes {
    Bytes::copy_from_slice(bytes)
}

/// A stored entry as a reply carries it.
fn reply_entry(field: &[u8], value: &[u8]) -> (Bytes, Bytes) {
    (reply(field), reply(value))
}

/// The live hash at `key`, for reading; `Err(WrongType)` for other types.
fn read<'a>(db: &'a mut Db, key: &[u8], now_ms: u64) -> Result<Option<&'a Hash>, StoreError> {
    match db.get(key, now_ms) {
        None => Ok(None),
        Some(Value::Hash(hash)) => Ok(Some(hash)),
        Some(_) => Err(StoreError::WrongType),
    }
}

/// The live hash at `key`, for changes; `Err(WrongType)` for other types.
fn write<'a>(db: &'a mut Db, key: &[u8], now_ms: u64) -> Result<Option<&'a mut Hash>, StoreError> {
    match db.get_mut(key, now_ms) {
        None => Ok(None),
        Some(Value::Hash(hash)) => Ok(Some(hash)),
        Some(_) => Err(StoreError::WrongType),
    }
}

/// The hash at `key`, created empty when missing. The caller must store at least one
/// field before releasing the keyspace, or call [`Db::remove_if_empty`].
fn write_or_create<'a>(
    db: &'a mut Db,
    key: &Bytes,
    now_ms: u64,
) -> Result<&'a mut Hash, StoreError> {
    match db.get_or_insert_with(key, now_ms, || Value::Hash(Box::default())) {
        Value::Hash(hash) => Ok(hash),
        _ => Err(StoreError::WrongType),
    }
}

/// HSET key field value [field value ...] (and HMSET): `pairs` alternates fields and
/// values (an odd trailing field is ignored; the server rejects odd counts). Returns how
/// many fields were new; a field given twice counts once and keeps the last value.
pub fn set(db: &mut Db, key: &Bytes, pairs: &[Bytes], now_ms: u64) -> Result<usize, StoreError> {
    if pairs.len() < 2 {
        // Nothing to write: do not create an empty hash, but still check the type.
        return read(db, key, now_ms).map(|_| 0);
    }
    let hash = write_or_create(db, key, now_ms)?;
    let mut added = 0;
    for pair in pairs.chunks_exact(2) {
        match hash.get_mut(&pair[0][..]) {
            Some(value) => *value = stored(&pair[1]),
            None => {
                hash.insert(stored(&pair[0]), stored(&pair[1]));
                added += 1;
            }
        }
    }
    db.notify(events::HASH, "hset", key);
    Ok(added)
}

/// HSETNX key field value; true when the field was created.
pub fn set_nx(
    db: &mut Db,
    key: &Bytes,
    field: &Bytes,
    value: &Bytes,
    now_ms: u64,
) -> Result<bool, StoreError> {
    if read(db, key, now_ms)?.is_some_and(|hash| hash.contains_key(&field[..])) {
        return Ok(false);
    }
    write_or_create(db, key, now_ms)?.insert(stored(field), stored(value));
    db.notify(events::HASH, "hset", key);
    Ok(true)
}

/// HGET key field.
pub fn get(
    db: &mut Db,
    key: &[u8],
    field: &[u8],
    now_ms: u64,
) -> Result<Option<Bytes>, StoreError> {
    Ok(read(db, key, now_ms)?.and_then(|hash| hash.get(field).map(|value| reply(value))))
}

/// HMGET key field [field ...]: one entry per field, `None` where missing. Unlike MGET,
/// a key of another type is an error.
pub fn get_many(
    db: &mut Db,
    key: &[u8],
    fields: &[Bytes],
    now_ms: u64,
) -> Result<Vec<Option<Bytes>>, StoreError> {
    let hash = read(db, key, now_ms)?;
    Ok(fields
        .iter()
        .map(|field| hash.and_then(|hash| hash.get(&field[..]).map(|value| reply(value))))
        .collect())
}

/// HGETALL key: every field and value, in hash order; empty for a missing key.
pub fn get_all(db: &mut Db, key: &[u8], now_ms: u64) -> Result<Vec<(Bytes, Bytes)>, StoreError> {
    Ok(read(db, key, now_ms)?.map_or_else(Vec::new, |hash| {
        hash.iter()
            .map(|(field, value)| reply_entry(field, value))
            .collect()
    }))
}

/// HKEYS key.
pub fn keys(db: &mut Db, key: &[u8], now_ms: u64) -> Result<Vec<Bytes>, StoreError> {
    Ok(read(db, key, now_ms)?.map_or_else(Vec::new, |hash| {
        hash.keys().map(|field| reply(field)).collect()
    }))
}

/// HVALS key.
pub fn values(db: &mut Db, key: &[u8], now_ms: u64) -> Result<Vec<Bytes>, StoreError> {
    Ok(read(db, key, now_ms)?.map_or_else(Vec::new, |hash| {
        hash.values().map(|value| reply(value)).collect()
    }))
}

/// HDEL key field [field ...]; returns how many fields were removed and deletes the key
/// when the hash becomes empty.
pub fn del(db: &mut Db, key: &[u8], fields: &[Bytes], now_ms: u64) -> Result<usize, StoreError> {
    let Some(hash) = write(db, key, now_ms)? else {
        return Ok(0);
    };
    let removed = fields
        .iter()
        .filter(|field| hash.swap_remove(&field[..]).is_some())
        .count();
    if removed > 0 {
        db.notify(events::HASH, "hdel", key);
        // Deletes the emptied hash and signals `del`, after `hdel` as Redis does.
        db.remove_if_empty(key);
    }
    Ok(removed)
}

/// HEXISTS key field.
pub fn exists(db: &mut Db, key: &[u8], field: &[u8], now_ms: u64) -> Result<bool, StoreError> {
    Ok(read(db, key, now_ms)?.is_some_and(|hash| hash.contains_key(field)))
}

/// HLEN key.
pub fn len(db: &mut Db, key: &[u8], now_ms: u64) -> Result<usize, StoreError> {
    Ok(read(db, key, now_ms)?.map_or(0, IndexMap::len))
}

/// HSTRLEN key field: the value's length, 0 when missing.
pub fn strlen(db: &mut Db, key: &[u8], field: &[u8], now_ms: u64) -> Result<usize, StoreError> {
    Ok(read(db, key, now_ms)?
        .and_then(|hash| hash.get(field))
        .map_or(0, |value| value.len()))
}

/// HINCRBY key field delta; a missing field counts as 0.
pub fn incr_by(
    db: &mut Db,
    key: &Bytes,
    field: &Bytes,
    delta: i64,
    now_ms: u64,
) -> Result<i64, StoreError> {
    let current = match read(db, key, now_ms)?.and_then(|hash| hash.get(&field[..])) {
        None => 0,
        Some(value) => parse_integer(value).ok_or(StoreError::HashNotInteger)?,
    };
    let next = current.checked_add(delta).ok_or(StoreError::Overflow)?;
    write_or_create(db, key, now_ms)?.insert(stored(field), stored(next.to_string().as_bytes()));
    db.notify(events::HASH, "hincrby", key);
    Ok(next)
}

/// HINCRBYFLOAT key field delta; returns the new value as stored. `delta` must be finite
/// (the server replies `ERR value is NaN or Infinity` otherwise). Computed in `f64` and
/// written in the shortest form that reads back exactly, as INCRBYFLOAT is
/// ([`crate::strings::incr_by_float`]).
pub fn incr_by_float(
    db: &mut Db,
    key: &Bytes,
    field: &Bytes,
    delta: f64,
    now_ms: u64,
) -> Result<Bytes, StoreError> {
    let current = match read(db, key, now_ms)?.and_then(|hash| hash.get(&field[..])) {
        None => 0.0,
        Some(value) => parse_float(value).ok_or(StoreError::HashNotFloat)?,
    };
    let next = current + delta;
    if !next.is_finite() {
        return Err(StoreError::NanOrInfinity);
    }
    let text = Bytes::from(next.to_string());
    write_or_create(db, key, now_ms)?.insert(stored(field), stored(&text));
    db.notify(events::HASH, "hincrbyfloat", key);
    Ok(text)
}

/// HRANDFIELD key (no count): a uniformly random field, `None` for a missing key.
pub fn random_field(db: &mut Db, key: &[u8], now_ms: u64) -> Result<Option<Bytes>, StoreError> {
    let Some(hash) = read(db, key, now_ms)?.filter(|hash| !hash.is_empty()) else {
        return Ok(None);
    };
    let index = rand::rng().random_range(0..hash.len());
    Ok(hash.get_index(index).map(|(field, _)| reply(field)))
}

/// Most fields one HRANDFIELD with a negative count (repeats allowed) may return: the
/// whole reply is built before it is queued, so an unbounded count could exhaust memory
/// and abort the server. Redis has no such cap (it streams the reply); this is a
/// deliberate, documented difference.
pub const RANDOM_WITH_REPEATS_MAX: usize = 1_000_000;

/// HRANDFIELD key count: a positive count returns distinct entries, `min(count, len)` of
/// them (the whole hash, in hash order, when `count >= len`; a random subset in random
/// order otherwise); a negative count returns exactly `-count` entries picked
/// independently, so they may repeat, at most [`RANDOM_WITH_REPEATS_MAX`]. Empty for a
/// missing key or a zero count.
pub fn random_fields(
    db: &mut Db,
    key: &[u8],
    count: i64,
    now_ms: u64,
) -> Result<Vec<(Bytes, Bytes)>, StoreError> {
    let Some(hash) = read(db, key, now_ms)?.filter(|hash| !hash.is_empty()) else {
        return Ok(Vec::new());
    };
    let entry = |index: usize| {
        hash.get_index(index)
            .map(|(field, value)| reply_entry(field, value))
    };
    let mut rng = rand::rng();
    let len = hash.len();
    let wanted = usize::try_from(count.unsigned_abs()).unwrap_or(usize::MAX);
    if count < 0 && wanted > RANDOM_WITH_REPEATS_MAX {
        return Err(StoreError::RandomCountTooLarge);
    }
    if count < 0 {
        return Ok((0..wanted)
            .filter_map(|_| entry(rng.random_range(0..len)))
            .collect());
    }
    if wanted >= len {
        return Ok((0..len).filter_map(entry).collect());
    }
    Ok(rand::seq::index::sample(&mut rng, len, wanted)
        .into_iter()
        .filter_map(entry)
        .collect())
}

/// Fields HSCAN visits per call when COUNT is not given (Redis's default COUNT).
pub const SCAN_DEFAULT_COUNT: usize = 10;

/// One HSCAN reply.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanPage {
    /// The cursor for the next call; 0 when the scan is complete.
    pub cursor: u64,
    /// Matching fields and their values.
    pub entries: Vec<(Bytes, Bytes)>,
}

/// HSCAN key cursor [MATCH pattern] [COUNT count]: visits up to `count` fields (at least
/// one) and returns those matching `pattern`.
///
/// The cursor is the number of hash indexes still to visit: a scan starts (cursor 0) at
/// the top of the hash and visits pages of indexes from the last one down to index 0,
/// then replies cursor 0 (each page lists its entries in ascending index order). Walking downward is
/// what keeps Redis's guarantee under concurrent changes: **every field present for the
/// whole scan is returned at least once**. New fields are appended at indexes the scan
/// has passed, so they may be missed (Redis allows that). Deleting a field with
/// `swap_remove` moves only the *last* entry into the hole: if the hole is below the
/// cursor (unvisited), the moved entry is either already visited (it may then be
/// returned twice, which Redis allows) or was unvisited anyway; if the hole is at or
/// above the cursor, the moved entry came from above it too, so nothing unvisited moves
/// into visited territory. A cursor larger than the hash (fields were deleted) is
/// clamped to its length. With no changes, each field is returned exactly once.
pub fn scan(
    db: &mut Db,
    key: &[u8],
    cursor: u64,
    count: usize,
    pattern: Option<&Glob>,
    now_ms: u64,
) -> Result<ScanPage, StoreError> {
    let Some(hash) = read(db, key, now_ms)? else {
        return Ok(ScanPage::default());
    };
    let len = hash.len() as u64;
    let start = if cursor == 0 { len } else { cursor.min(len) };
    let stop = start.saturating_sub(count.max(1) as u64);
    // The page lists its entries in index order, so a small hash scanned in one call comes
    // back in insertion order, as Redis returns a small (listpack) hash.
    let entries = (stop..start)
        .filter_map(|index| hash.get_index(usize::try_from(index).ok()?))
        .filter(|(field, _)| pattern.is_none_or(|glob| glob.matches(field)))
        .map(|(field, value)| reply_entry(field, value))
        .collect();
    Ok(ScanPage {
        cursor: stop,
        entries,
    })
}

#[cfg(test)]
mod tests;
