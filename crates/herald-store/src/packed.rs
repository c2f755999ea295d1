//! A compact list of byte strings: elements packed back to back in chunks of about
//! [`CHUNK_BYTES`], each framed by its length as a LEB128 varint before the payload and
//! the same varint, byte-reversed, after it (Redis's quicklist of listpacks is the model,
//! `backlen` included). A 16-byte element costs 18 bytes plus its share of one allocation
//! per chunk, instead of a `Bytes` handle and a heap allocation of its own.
//!
//! Both ends are O(1) (push and pop touch one chunk; the trailing length lets the tail be
//! popped without scanning); indexing walks the chunk counts; edits in the middle rebuild
//! the list. Reads copy elements out, so nothing outside ever borrows a chunk.

use std::collections::VecDeque;

use bytes::Bytes;

/// Target payload of one chunk. Small enough that scanning or shifting a chunk is cheap,
/// large enough that per-chunk overhead disappears (Redis: `list-max-listpack-size -2`,
/// 8 KB).
pub const CHUNK_BYTES: usize = 4096;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Chunk {
    data: Vec<u8>,
    count: usize,
}

fn put_len(out: &mut Vec<u8>, mut len: usize) {
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn varint_len(len: usize) -> usize {
    let mut bytes = 1;
    let mut rest = len >> 7;
    while rest > 0 {
        bytes += 1;
        rest >>= 7;
    }
    bytes
}

/// Bytes one entry occupies: length, payload, trailing length.
fn encoded_len(len: usize) -> usize {
    2 * varint_len(len) + len
}

/// Appends one framed entry.
fn put_entry(out: &mut Vec<u8>, value: &[u8]) {
    put_len(out, value.len());
    out.extend_from_slice(value);
    let back = out.len();
    put_len(out, value.len());
    out[back..].reverse();
}

/// Decodes the entry at `offset`: (payload start, payload end, next entry's offset).
fn entry_at(data: &[u8], offset: usize) -> Option<(usize, usize, usize)> {
    let (start, end) = payload_at(data, offset)?;
    let next = end.checked_add(varint_len(end - start))?;
    (next <= data.len()).then_some((start, end, next))
}

/// The payload range of the entry whose trailing length ends at `end` (exclusive):
/// (entry start, payload start, payload end).
fn entry_before(data: &[u8], end: usize) -> Option<(usize, usize, usize)> {
    let mut len = 0usize;
    let mut shift = 0;
    let mut at = end;
    loop {
        at = at.checked_sub(1)?;
        let byte = *data.get(at)?;
        len |= usize::from(byte & 0x7f).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    let payload_end = at;
    let payload_start = payload_end.checked_sub(len)?;
    let entry_start = payload_start.checked_sub(varint_len(len))?;
    Some((entry_start, payload_start, payload_end))
}

/// The payload range of the entry at `offset`.
fn payload_at(data: &[u8], offset: usize) -> Option<(usize, usize)> {
    let mut len = 0usize;
    let mut shift = 0;
    let mut at = offset;
    loop {
        let byte = *data.get(at)?;
        at += 1;
        len |= usize::from(byte & 0x7f).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    let end = at.checked_add(len)?;
    (end <= data.len()).then_some((at, end))
}

impl Chunk {
    /// A chunk sized for its first entry; it grows as entries arrive and is shrunk to
    /// fit once a new chunk takes over its end, so only the two end chunks carry slack
    /// and a short list costs little more than its bytes.
    fn with_capacity(bytes: usize) -> Self {
        Chunk {
            data: Vec::with_capacity(bytes),
            count: 0,
        }
    }

    fn fits(&self, value: &[u8]) -> bool {
        self.count == 0 || self.data.len() + encoded_len(value.len()) <= CHUNK_BYTES
    }

    fn entries(&self) -> impl Iterator<Item = &[u8]> {
        let mut offset = 0;
        std::iter::from_fn(move || {
            let (start, end, next) = entry_at(&self.data, offset)?;
            offset = next;
            self.data.get(start..end)
        })
    }

    fn push_back(&mut self, value: &[u8]) {
        put_entry(&mut self.data, value);
        self.count += 1;
    }

    fn push_front(&mut self, value: &[u8]) {
        let mut entry = Vec::with_capacity(encoded_len(value.len()));
        put_entry(&mut entry, value);
        self.data.splice(0..0, entry);
        self.count += 1;
    }

    fn pop_front(&mut self) -> Option<Bytes> {
        let (start, end, next) = entry_at(&self.data, 0)?;
        let value = Bytes::copy_from_slice(self.data.get(start..end)?);
        self.data.drain(..next);
        self.count -= 1;
        Some(value)
    }

    fn pop_back(&mut self) -> Option<Bytes> {
        let (entry_start, start, end) = entry_before(&self.data, self.data.len())?;
        let value = Bytes::copy_from_slice(self.data.get(start..end)?);
        self.data.truncate(entry_start);
        self.count -= 1;
        Some(value)
    }
}

/// A list of byte strings stored compactly; see the module docs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PackedList {
    chunks: VecDeque<Chunk>,
    len: usize,
}

impl PackedList {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Bytes this list has allocated (its chunks' buffers and their index), for MEMORY
    /// USAGE. O(chunks), which is O(len / hundreds).
    pub fn heap_bytes(&self) -> usize {
        self.chunks.capacity() * std::mem::size_of::<Chunk>()
            + self
                .chunks
                .iter()
                .map(|chunk| chunk.data.capacity())
                .sum::<usize>()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends at the tail.
    pub fn push_back(&mut self, value: &[u8]) {
        if !self.chunks.back().is_some_and(|chunk| chunk.fits(value)) {
            if let Some(sealed) = self.chunks.back_mut() {
                sealed.data.shrink_to_fit();
            }
            self.chunks
                .push_back(Chunk::with_capacity(encoded_len(value.len())));
        }
        if let Some(chunk) = self.chunks.back_mut() {
            chunk.push_back(value);
            self.len += 1;
        }
    }

    /// Prepends at the head.
    pub fn push_front(&mut self, value: &[u8]) {
        if !self.chunks.front().is_some_and(|chunk| chunk.fits(value)) {
            if let Some(sealed) = self.chunks.front_mut() {
                sealed.data.shrink_to_fit();
            }
            self.chunks
                .push_front(Chunk::with_capacity(encoded_len(value.len())));
        }
        if let Some(chunk) = self.chunks.front_mut() {
            chunk.push_front(value);
            self.len += 1;
        }
    }

    /// Removes and returns the head.
    pub fn pop_front(&mut self) -> Option<Bytes> {
        let chunk = self.chunks.front_mut()?;
        let value = chunk.pop_front()?;
        if chunk.count == 0 {
            self.chunks.pop_front();
        }
        self.len -= 1;
        Some(value)
    }

    /// Removes and returns the tail.
    pub fn pop_back(&mut self) -> Option<Bytes> {
        let chunk = self.chunks.back_mut()?;
        let value = chunk.pop_back()?;
        if chunk.count == 0 {
            self.chunks.pop_back();
        }
        self.len -= 1;
        Some(value)
    }

    /// The elements from head to tail, borrowed.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.chunks.iter().flat_map(Chunk::entries)
    }

    /// A copy of element `index`.
    pub fn get(&self, index: usize) -> Option<Bytes> {
        let mut skip = index;
        for chunk in &self.chunks {
            if skip < chunk.count {
                return chunk.entries().nth(skip).map(Bytes::copy_from_slice);
            }
            skip -= chunk.count;
        }
        None
    }

    /// Rebuilds the list from `values` (edits in the middle: LSET, LINSERT, LREM, LTRIM).
    pub fn from_values<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut list = PackedList::new();
        for value in values {
            list.push_back(value);
        }
        list
    }

    /// Replaces element `index`; false when out of range.
    pub fn set(&mut self, index: usize, value: &[u8]) -> bool {
        if index >= self.len {
            return false;
        }
        let rebuilt = PackedList::from_values(self.iter().enumerate().map(|(at, item)| {
            if at == index {
                value
            } else {
                item
            }
        }));
        *self = rebuilt;
        true
    }

    /// Inserts `value` before position `index` (`index == len` appends).
    pub fn insert(&mut self, index: usize, value: &[u8]) {
        let head = self.iter().take(index);
        let tail = self.iter().skip(index);
        let rebuilt = PackedList::from_values(head.chain(std::iter::once(value)).chain(tail));
        *self = rebuilt;
    }

    /// Keeps only elements `first..=last` (LTRIM): pops from both ends, so the common
    /// "push then trim to the newest N" costs only what it removes.
    pub fn keep_range(&mut self, first: usize, last: usize) {
        let drop_back = self.len.saturating_sub(last.saturating_add(1));
        for _ in 0..drop_back {
            self.pop_back();
        }
        for _ in 0..first.min(self.len) {
            self.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn entries_decode_forwards_and_backwards() {
        for len in [0usize, 1, 127, 128, 300, 16_383, 16_384, 1 << 20] {
            let value = vec![7u8; len];
            let mut buffer = vec![0xAA];
            put_entry(&mut buffer, &value);
            assert_eq!(buffer.len() - 1, encoded_len(len));
            let (start, end, next) = entry_at(&buffer, 1).expect("forward");
            assert_eq!((end - start, next), (len, buffer.len()));
            let (entry_start, start, end) = entry_before(&buffer, buffer.len()).expect("backward");
            assert_eq!((entry_start, end - start), (1, len));
        }
    }

    #[test]
    fn large_elements_get_their_own_chunk() {
        let mut list = PackedList::new();
        let big = vec![b'z'; CHUNK_BYTES * 3];
        list.push_back(b"a");
        list.push_back(&big);
        list.push_front(&big);
        assert_eq!(list.len(), 3);
        assert_eq!(list.get(1).as_deref(), Some(&b"a"[..]));
        assert_eq!(list.pop_back().map(|b| b.len()), Some(big.len()));
        assert_eq!(list.pop_front().map(|b| b.len()), Some(big.len()));
        assert_eq!(list.pop_front().as_deref(), Some(&b"a"[..]));
        assert!(list.is_empty());
        assert_eq!(list.pop_back(), None);
    }

    #[derive(Clone, Debug)]
    enum Op {
        PushBack(Vec<u8>),
        PushFront(Vec<u8>),
        PopFront,
        PopBack,
        Set(usize, Vec<u8>),
        Insert(usize, Vec<u8>),
        Keep(usize, usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        let value = prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..40),
            proptest::collection::vec(any::<u8>(), 100..3000),
        ];
        prop_oneof![
            4 => value.clone().prop_map(Op::PushBack),
            4 => value.clone().prop_map(Op::PushFront),
            2 => Just(Op::PopFront),
            2 => Just(Op::PopBack),
            1 => (0usize..50, value.clone()).prop_map(|(i, v)| Op::Set(i, v)),
            1 => (0usize..50, value).prop_map(|(i, v)| Op::Insert(i, v)),
            1 => (0usize..30, 0usize..60).prop_map(|(a, b)| Op::Keep(a, b)),
        ]
    }

    proptest! {
        #[test]
        fn behaves_like_a_vecdeque(ops in proptest::collection::vec(op(), 1..120)) {
            let mut list = PackedList::new();
            let mut model: VecDeque<Vec<u8>> = VecDeque::new();
            for op in ops {
                match op {
                    Op::PushBack(v) => { list.push_back(&v); model.push_back(v); }
                    Op::PushFront(v) => { list.push_front(&v); model.push_front(v); }
                    Op::PopFront => prop_assert_eq!(list.pop_front().map(|b| b.to_vec()), model.pop_front()),
                    Op::PopBack => prop_assert_eq!(list.pop_back().map(|b| b.to_vec()), model.pop_back()),
                    Op::Set(i, v) => {
                        let ok = i < model.len();
                        prop_assert_eq!(list.set(i, &v), ok);
                        if ok { model[i] = v; }
                    }
                    Op::Insert(i, v) => {
                        let at = i.min(model.len());
                        list.insert(at, &v);
                        model.insert(at, v);
                    }
                    Op::Keep(first, last) => {
                        if first <= last && last < model.len() {
                            list.keep_range(first, last);
                            model = model.drain(first..=last).collect();
                        }
                    }
                }
                prop_assert_eq!(list.len(), model.len());
                let items: Vec<Vec<u8>> = list.iter().map(<[u8]>::to_vec).collect();
                prop_assert_eq!(&items, &model.iter().cloned().collect::<Vec<_>>());
                if let Some(last) = model.len().checked_sub(1) {
                    prop_assert_eq!(list.get(last).map(|b| b.to_vec()), model.back().cloned());
                }
            }
        }
    }
}
