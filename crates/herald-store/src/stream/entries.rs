//! Compact entry storage: a B-tree of blocks keyed by their first ID, each block one byte
//! buffer of delta-encoded entries, as Redis keeps a radix tree of listpacks.
//!
//! A block holds up to [`BLOCK_MAX_ENTRIES`] entries (deleted ones included) or about
//! [`BLOCK_MAX_BYTES`] bytes. Its first entry's field names are the block's *master
//! fields*; a later entry with the same names stores only its values. An entry is
//!
//! ```text
//! flags:u8  ms-delta:varint  seq:varint  [nfields:varint field...]  value...
//! ```
//!
//! where a field or value is `len:varint bytes`, `ms-delta` is relative to the block's
//! first ID and `seq` is relative to it too when `ms-delta` is 0. Deleting marks the flag
//! in place (XDEL); a block whose entries are all deleted is dropped. Nothing here knows
//! of groups or commands: [`super::Stream`] keeps lengths and IDs consistent.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::id::StreamId;

/// Entries per block, deleted ones included (Redis `stream-node-max-entries` default).
pub const BLOCK_MAX_ENTRIES: u16 = 100;
/// A block stops taking entries once its buffer passes this size (Redis
/// `stream-node-max-bytes` default).
pub const BLOCK_MAX_BYTES: usize = 4096;

const FLAG_DELETED: u8 = 1;
const FLAG_SAME_FIELDS: u8 = 2;

/// One entry as read out: its ID and its field/value pairs, flattened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamEntry {
    /// The entry ID.
    pub id: StreamId,
    /// `field, value, field, value, ...`.
    pub fields: Vec<Bytes>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Block {
    first: StreamId,
    last: StreamId,
    master: Vec<Bytes>,
    data: Vec<u8>,
    total: u16,
    live: u16,
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn get_varint(data: &[u8], pos: &mut usize) -> u64 {
    let mut value = 0u64;
    let mut shift = 0;
    while let Some(&byte) = data.get(*pos) {
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    value
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn get_bytes<'a>(data: &'a [u8], pos: &mut usize) -> &'a [u8] {
    let len = get_varint(data, pos) as usize;
    let start = (*pos).min(data.len());
    let end = start.saturating_add(len).min(data.len());
    *pos = end;
    &data[start..end]
}

/// Where one encoded entry sits in its block.
struct Raw {
    at: usize,
    flags: u8,
    id: StreamId,
    body: usize,
    end: usize,
}

impl Block {
    fn new(id: StreamId, fields: &[Bytes]) -> Block {
        Block {
            first: id,
            last: id,
            master: fields
                .iter()
                .step_by(2)
                .map(|f| Bytes::copy_from_slice(f))
                .collect(),
            data: Vec::with_capacity(64),
            total: 0,
            live: 0,
        }
    }

    fn is_full(&self) -> bool {
        self.total >= BLOCK_MAX_ENTRIES || self.data.len() > BLOCK_MAX_BYTES
    }

    fn push(&mut self, id: StreamId, pairs: &[Bytes]) {
        let same = pairs.len() == self.master.len() * 2
            && pairs
                .iter()
                .step_by(2)
                .zip(&self.master)
                .all(|(a, b)| a == b);
        self.data.push(if same { FLAG_SAME_FIELDS } else { 0 });
        let ms_delta = id.ms - self.first.ms;
        put_varint(&mut self.data, ms_delta);
        put_varint(
            &mut self.data,
            if ms_delta == 0 {
                id.seq - self.first.seq
            } else {
                id.seq
            },
        );
        if same {
            for value in pairs.iter().skip(1).step_by(2) {
                put_bytes(&mut self.data, value);
            }
        } else {
            put_varint(&mut self.data, (pairs.len() / 2) as u64);
            for item in pairs {
                put_bytes(&mut self.data, item);
            }
        }
        self.last = id;
        self.total += 1;
        self.live += 1;
    }

    fn decode(&self, at: usize) -> Raw {
        let data = &self.data;
        let flags = data[at];
        let mut pos = at + 1;
        let ms_delta = get_varint(data, &mut pos);
        let seq = get_varint(data, &mut pos);
        let id = if ms_delta == 0 {
            StreamId::new(self.first.ms, self.first.seq + seq)
        } else {
            StreamId::new(self.first.ms + ms_delta, seq)
        };
        let body = pos;
        if flags & FLAG_SAME_FIELDS != 0 {
            for _ in 0..self.master.len() {
                get_bytes(data, &mut pos);
            }
        } else {
            let n = get_varint(data, &mut pos);
            for _ in 0..n.saturating_mul(2) {
                get_bytes(data, &mut pos);
            }
        }
        Raw {
            at,
            flags,
            id,
            body,
            end: pos,
        }
    }

    fn fields(&self, raw: &Raw) -> Vec<Bytes> {
        let data = &self.data;
        let mut pos = raw.body;
        if raw.flags & FLAG_SAME_FIELDS != 0 {
            let mut out = Vec::with_capacity(self.master.len() * 2);
            for field in &self.master {
                out.push(field.clone());
                out.push(Bytes::copy_from_slice(get_bytes(data, &mut pos)));
            }
            out
        } else {
            let n = get_varint(data, &mut pos) as usize;
            (0..n * 2)
                .map(|_| Bytes::copy_from_slice(get_bytes(data, &mut pos)))
                .collect()
        }
    }

    /// Every entry, deleted ones included, in ID order.
    fn raws(&self) -> impl Iterator<Item = Raw> + '_ {
        let mut at = 0;
        std::iter::from_fn(move || {
            (at < self.data.len()).then(|| {
                let raw = self.decode(at);
                at = raw.end;
                raw
            })
        })
    }

    fn live_raws(&self) -> impl Iterator<Item = Raw> + '_ {
        self.raws().filter(|raw| raw.flags & FLAG_DELETED == 0)
    }

    fn entry(&self, raw: &Raw) -> StreamEntry {
        StreamEntry {
            id: raw.id,
            fields: self.fields(raw),
        }
    }

    fn mark_deleted(&mut self, at: usize) {
        self.data[at] |= FLAG_DELETED;
        self.live -= 1;
    }
}

/// The entries of one stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Entries {
    blocks: BTreeMap<StreamId, Block>,
    len: usize,
}

impl Entries {
    /// Live entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Bytes the entries have allocated, for MEMORY USAGE: each block's buffer and
    /// master fields, and the B-tree's share per block. O(blocks): a block holds
    /// [`BLOCK_MAX_BYTES`] of entries.
    pub fn heap_bytes(&self) -> usize {
        const BTREE_SLOT_BYTES: usize = 16 + std::mem::size_of::<Block>();
        self.blocks
            .values()
            .map(|block| {
                BTREE_SLOT_BYTES
                    + block.data.capacity()
                    + block.master.capacity() * std::mem::size_of::<Bytes>()
                    + block.master.iter().map(Bytes::len).sum::<usize>()
            })
            .sum()
    }

    /// True without live entries.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends an entry; `id` must be above every ID stored so far, `pairs` non-empty and
    /// of even length (the caller checks both).
    pub fn append(&mut self, id: StreamId, pairs: &[Bytes]) {
        // A block stays sorted even after XSETID lowered the last ID below a deleted tail
        // entry: an ID not above the block's last one starts a new block.
        let tail_open = self
            .blocks
            .last_key_value()
            .is_some_and(|(_, block)| !block.is_full() && id > block.last);
        if !tail_open {
            if let Some(mut tail) = self.blocks.last_entry() {
                tail.get_mut().data.shrink_to_fit();
            }
            self.blocks.insert(id, Block::new(id, pairs));
        }
        if let Some(mut tail) = self.blocks.last_entry() {
            tail.get_mut().push(id, pairs);
            self.len += 1;
        }
    }

    /// The key of the block that would hold `id`.
    fn block_key_for(&self, id: StreamId) -> Option<StreamId> {
        self.blocks.range(..=id).next_back().map(|(key, _)| *key)
    }

    /// The entry `id`, if live.
    pub fn get(&self, id: StreamId) -> Option<StreamEntry> {
        let block = self.blocks.get(&self.block_key_for(id)?)?;
        if id > block.last {
            return None;
        }
        block
            .live_raws()
            .find(|raw| raw.id == id)
            .map(|raw| block.entry(&raw))
    }

    /// True when `id` is a live entry.
    pub fn contains(&self, id: StreamId) -> bool {
        self.block_key_for(id)
            .and_then(|key| self.blocks.get(&key))
            .is_some_and(|block| id <= block.last && block.live_raws().any(|raw| raw.id == id))
    }

    /// Marks `id` deleted; false when it was not a live entry.
    pub fn delete(&mut self, id: StreamId) -> bool {
        let Some(key) = self.block_key_for(id) else {
            return false;
        };
        let Some(block) = self.blocks.get_mut(&key) else {
            return false;
        };
        if id > block.last {
            return false;
        }
        let Some(at) = block.live_raws().find(|raw| raw.id == id).map(|raw| raw.at) else {
            return false;
        };
        block.mark_deleted(at);
        self.len -= 1;
        if block.live == 0 {
            self.blocks.remove(&key);
        }
        true
    }

    /// Live entries with IDs in `start..=end`, ascending (or descending when `reverse`),
    /// at most `count` of them (`None`: all).
    pub fn range(
        &self,
        start: StreamId,
        end: StreamId,
        count: Option<usize>,
        reverse: bool,
    ) -> Vec<StreamEntry> {
        let mut out = Vec::new();
        let limit = count.unwrap_or(usize::MAX);
        if start > end || limit == 0 {
            return out;
        }
        if reverse {
            for block in self.blocks.range(..=end).rev().map(|(_, block)| block) {
                if block.last < start {
                    break;
                }
                let mut found: Vec<Raw> = block
                    .live_raws()
                    .filter(|raw| raw.id >= start && raw.id <= end)
                    .collect();
                found.reverse();
                for raw in found {
                    out.push(block.entry(&raw));
                    if out.len() >= limit {
                        return out;
                    }
                }
            }
        } else {
            let from = self.block_key_for(start).unwrap_or(StreamId::MIN);
            for block in self.blocks.range(from..).map(|(_, block)| block) {
                if block.first > end {
                    break;
                }
                if block.last < start {
                    continue;
                }
                for raw in block.live_raws() {
                    if raw.id > end {
                        return out;
                    }
                    if raw.id >= start {
                        out.push(block.entry(&raw));
                        if out.len() >= limit {
                            return out;
                        }
                    }
                }
            }
        }
        out
    }

    /// The first live ID.
    pub fn first_id(&self) -> Option<StreamId> {
        let (_, block) = self.blocks.first_key_value()?;
        block.live_raws().next().map(|raw| raw.id)
    }

    /// The last live ID.
    pub fn last_id(&self) -> Option<StreamId> {
        let (_, block) = self.blocks.last_key_value()?;
        block.live_raws().last().map(|raw| raw.id)
    }

    /// The first live entry.
    pub fn first(&self) -> Option<StreamEntry> {
        let (_, block) = self.blocks.first_key_value()?;
        block.live_raws().next().map(|raw| block.entry(&raw))
    }

    /// The last live entry.
    pub fn last(&self) -> Option<StreamEntry> {
        let (_, block) = self.blocks.last_key_value()?;
        block.live_raws().last().map(|raw| block.entry(&raw))
    }

    /// Blocks in use (XINFO STREAM `radix-tree-nodes` reports a figure in this spirit).
    pub fn blocks(&self) -> usize {
        self.blocks.len()
    }

    /// Removes entries from the front while `keep_going(id, remaining_len)` says so, as
    /// Redis's `streamTrim`: whole blocks first; with `approx` it stops at the first
    /// block it cannot drop whole; `limit` (approx only) caps the entries removed.
    /// Returns how many entries it removed.
    pub fn trim(&mut self, strategy: Trim, approx: bool, limit: Option<usize>) -> usize {
        let mut removed = 0;
        while let Some(mut first) = self.blocks.first_entry() {
            let live = usize::from(first.get().live);
            if limit.is_some_and(|limit| removed + live > limit) {
                break;
            }
            let whole = match strategy {
                Trim::MaxLen(max) => self.len - live >= max,
                Trim::MinId(min) => first.get().last < min,
            };
            if whole {
                first.remove();
                self.len -= live;
                removed += live;
                continue;
            }
            if approx {
                break;
            }
            let block = first.get_mut();
            let doomed: Vec<usize> = {
                let mut remaining = self.len;
                block
                    .live_raws()
                    .take_while(|raw| {
                        let go = match strategy {
                            Trim::MaxLen(max) => remaining > max,
                            Trim::MinId(min) => raw.id < min,
                        };
                        if go {
                            remaining -= 1;
                        }
                        go
                    })
                    .map(|raw| raw.at)
                    .collect()
            };
            for at in &doomed {
                block.mark_deleted(*at);
            }
            self.len -= doomed.len();
            removed += doomed.len();
            if block.live == 0 {
                first.remove();
                continue;
            }
            break;
        }
        removed
    }

    /// Bytes held by entry data (for MEMORY-style estimates and tests of compactness).
    pub fn data_bytes(&self) -> usize {
        self.blocks
            .values()
            .map(|block| block.data.capacity() + block.master.iter().map(Bytes::len).sum::<usize>())
            .sum()
    }
}

/// What XTRIM/XADD trim to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trim {
    /// Keep at most this many entries.
    MaxLen(usize),
    /// Drop entries with IDs below this one.
    MinId(StreamId),
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pairs(items: &[&str]) -> Vec<Bytes> {
        items
            .iter()
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect()
    }

    fn ids(entries: &[StreamEntry]) -> Vec<StreamId> {
        entries.iter().map(|e| e.id).collect()
    }

    #[test]
    fn same_and_different_fields_read_back() {
        let mut entries = Entries::default();
        entries.append(StreamId::new(1, 0), &pairs(&["a", "1", "b", "2"]));
        entries.append(StreamId::new(1, 1), &pairs(&["a", "3", "b", "4"]));
        entries.append(StreamId::new(300, 7), &pairs(&["x", ""]));
        let all = entries.range(StreamId::MIN, StreamId::MAX, None, false);
        assert_eq!(all[1].fields, pairs(&["a", "3", "b", "4"]));
        assert_eq!(all[2].id, StreamId::new(300, 7));
        assert_eq!(all[2].fields, pairs(&["x", ""]));
        assert_eq!(
            ids(&entries.range(StreamId::MIN, StreamId::MAX, Some(2), true)),
            vec![StreamId::new(300, 7), StreamId::new(1, 1)]
        );
    }

    #[test]
    fn an_id_below_a_deleted_tail_entry_keeps_order() {
        let mut entries = Entries::default();
        for ms in 1..=3 {
            entries.append(StreamId::new(ms, 0), &pairs(&["f", "v"]));
        }
        assert!(entries.delete(StreamId::new(3, 0)));
        // What XSETID 2-0 followed by XADD 2-5 produces.
        entries.append(StreamId::new(2, 5), &pairs(&["f", "w"]));
        assert_eq!(
            ids(&entries.range(StreamId::MIN, StreamId::MAX, None, false)),
            vec![
                StreamId::new(1, 0),
                StreamId::new(2, 0),
                StreamId::new(2, 5)
            ]
        );
        assert_eq!(entries.last_id(), Some(StreamId::new(2, 5)));
        assert!(entries.contains(StreamId::new(2, 5)));
    }

    #[test]
    fn small_entries_take_few_bytes() {
        let mut entries = Entries::default();
        for i in 0..10_000u64 {
            entries.append(
                StreamId::new(1_700_000_000_000 + i / 3, i % 3),
                &pairs(&["name", "job", "state", "new", "n", "42"]),
            );
        }
        let per_entry = entries.data_bytes() as f64 / 10_000.0;
        assert!(per_entry < 16.0, "{per_entry} bytes per entry");
    }

    #[derive(Clone, Debug)]
    enum Op {
        Add(u8, u8),
        Del(usize),
        MaxLen(usize, bool),
        MinId(usize, bool),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0u8..3, 1u8..4).prop_map(|(gap, n)| Op::Add(gap, n)),
            2 => (0usize..400).prop_map(Op::Del),
            1 => (0usize..300, any::<bool>()).prop_map(|(n, a)| Op::MaxLen(n, a)),
            1 => (0usize..400, any::<bool>()).prop_map(|(n, a)| Op::MinId(n, a)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Against a `BTreeMap` model: every read agrees, exact trims leave exactly the
        /// asked-for entries, approximate trims never remove more than exact ones would.
        #[test]
        fn agrees_with_a_btreemap(ops in proptest::collection::vec(op(), 1..400)) {
            let mut entries = Entries::default();
            let mut model: BTreeMap<StreamId, Vec<Bytes>> = BTreeMap::new();
            let mut next = StreamId::new(1, 0);
            let mut all = Vec::new();
            for op in ops {
                match op {
                    Op::Add(gap, n) => {
                        let id = if gap == 0 { next } else { StreamId::new(next.ms + u64::from(gap), 0) };
                        let fields: Vec<Bytes> = (0..n).flat_map(|i| {
                            [Bytes::from(format!("f{}", i % 2)), Bytes::from(format!("v{}", id.seq))]
                        }).collect();
                        entries.append(id, &fields);
                        model.insert(id, fields);
                        all.push(id);
                        next = id.successor().unwrap();
                    }
                    Op::Del(i) => {
                        if let Some(&id) = all.get(i) {
                            prop_assert_eq!(entries.delete(id), model.remove(&id).is_some());
                        }
                    }
                    Op::MaxLen(max, approx) => {
                        let removed = entries.trim(Trim::MaxLen(max), approx, None);
                        let excess = model.len().saturating_sub(max);
                        if approx { prop_assert!(removed <= excess); } else { prop_assert_eq!(removed, excess); }
                        for _ in 0..removed { model.pop_first(); }
                    }
                    Op::MinId(i, approx) => {
                        let min = all.get(i).copied().unwrap_or(StreamId::MAX);
                        let removed = entries.trim(Trim::MinId(min), approx, None);
                        let below = model.range(..min).count();
                        if approx { prop_assert!(removed <= below); } else { prop_assert_eq!(removed, below); }
                        for _ in 0..removed { model.pop_first(); }
                    }
                }
                prop_assert_eq!(entries.len(), model.len());
            }
            let got = entries.range(StreamId::MIN, StreamId::MAX, None, false);
            let want: Vec<StreamEntry> = model.iter().map(|(id, f)| StreamEntry { id: *id, fields: f.clone() }).collect();
            prop_assert_eq!(&got, &want);
            let mut reversed = entries.range(StreamId::MIN, StreamId::MAX, None, true);
            reversed.reverse();
            prop_assert_eq!(&reversed, &want);
            prop_assert_eq!(entries.first_id(), model.keys().next().copied());
            prop_assert_eq!(entries.last_id(), model.keys().next_back().copied());
            if let (Some(&a), Some(&b)) = (all.get(all.len() / 3), all.get(all.len() * 2 / 3)) {
                let got = ids(&entries.range(a, b, Some(7), false));
                let want: Vec<StreamId> = model.range(a..=b).map(|(id, _)| *id).take(7).collect();
                prop_assert_eq!(got, want);
                let got = ids(&entries.range(a, b, Some(7), true));
                let want: Vec<StreamId> = model.range(a..=b).rev().map(|(id, _)| *id).take(7).collect();
                prop_assert_eq!(got, want);
                prop_assert_eq!(entries.get(a).map(|e| e.fields), model.get(&a).cloned());
            }
        }
    }
}
