//! MEMORY USAGE: how many bytes a key and its value take, estimated from the structures'
//! sizes and capacities (not asked of the allocator, which rounds every allocation up to
//! its size class: the figures here are the requested sizes, as Redis's are).
//!
//! Lists and stream entries are stored in blocks, so they are measured exactly in
//! O(blocks). A hash is measured from its table's capacity plus its fields and values:
//! from `samples` of them scaled to the whole hash, or all of them when `samples` is 0
//! (Redis's `SAMPLES` option, default 5). Stream consumer groups are counted by their
//! pending entries and consumers. This module only reads; it must not change a value.

use std::mem::size_of;

use crate::db::Key;
use crate::stream::{Consumer, Group, Pending, Stream, StreamId};
use crate::value::Value;

/// What one slot of the key table takes: the entry (hash, key, value, expiry) and its
/// index (a `usize` and a control byte), at the table's maximum load (7/8).
pub const SLOT_BYTES: usize = crate::db::TABLE_ENTRY_BYTES + (9 * 8) / 7;

/// A B-tree's share per element beyond the element itself (node headers, spare room).
const BTREE_OVERHEAD_BYTES: usize = 16;

/// Bytes `key` holding `value` takes.
pub fn key_usage(key: &Key, value: &Value, samples: usize) -> usize {
    let key_heap = if key.is_inline() { 0 } else { key.len() };
    SLOT_BYTES + key_heap + value_heap_bytes(value, samples)
}

/// Bytes `value` has allocated beyond its slot in the key table.
pub fn value_heap_bytes(value: &Value, samples: usize) -> usize {
    match value {
        Value::String(string) => {
            if string.is_inline() {
                0
            } else {
                string.len()
            }
        }
        Value::List(list) => size_of_val(&**list) + list.heap_bytes(),
        Value::Hash(hash) => size_of_val(&**hash) + hash_heap_bytes(hash, samples),
        Value::Stream(stream) => size_of::<Stream>() + stream_heap_bytes(stream, samples),
    }
}

fn hash_heap_bytes(hash: &crate::hashes::Hash, samples: usize) -> usize {
    // Each entry: its hash and two boxed slices; each index: a `usize` and a control byte.
    let table =
        hash.capacity() * (size_of::<(u64, Box<[u8]>, Box<[u8]>)>() + size_of::<usize>() + 1);
    table
        + sampled(
            hash.len(),
            samples,
            hash.iter().map(|(f, v)| f.len() + v.len()),
        )
}

fn stream_heap_bytes(stream: &Stream, samples: usize) -> usize {
    let groups_bytes = sampled(
        stream.groups.len(),
        samples,
        stream
            .groups
            .iter()
            .map(|(name, group)| name.len() + group_bytes(group, samples)),
    );
    stream.entries().heap_bytes() + groups_bytes
}

fn group_bytes(group: &Group, samples: usize) -> usize {
    let pending =
        group.pel.len() * (size_of::<StreamId>() + size_of::<Pending>() + BTREE_OVERHEAD_BYTES);
    let consumers = sampled(
        group.consumers.len(),
        samples,
        group.consumers.iter().map(|(name, consumer)| {
            name.len()
                + size_of::<Consumer>()
                + BTREE_OVERHEAD_BYTES
                + consumer.pending.len() * (size_of::<StreamId>() + BTREE_OVERHEAD_BYTES)
        }),
    );
    size_of::<Group>() + BTREE_OVERHEAD_BYTES + pending + consumers
}

/// How many of `len` elements to look at: `samples`, or all of them when it is 0.
fn sample_count(len: usize, samples: usize) -> usize {
    if samples == 0 {
        len
    } else {
        samples.min(len)
    }
}

/// The sum of `sizes` over the whole collection of `len` elements, from the first
/// `samples` of them (all when `samples` is 0) scaled up.
fn sampled(len: usize, samples: usize, sizes: impl Iterator<Item = usize>) -> usize {
    let looked = sample_count(len, samples);
    if looked == 0 {
        return 0;
    }
    let total: usize = sizes.take(looked).sum();
    if looked == len {
        total
    } else {
        (total as u128 * len as u128 / looked as u128) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packed::PackedList;
    use crate::value::StringValue;
    use indexmap::IndexMap;

    fn key(name: &str) -> Key {
        Key::copy_from_slice(name.as_bytes())
    }

    #[test]
    fn a_string_costs_its_slot_and_what_does_not_fit_inline() {
        let short = Value::String(StringValue::copy_from_slice(b"v"));
        let long = Value::String(StringValue::copy_from_slice(&[b'x'; 1000]));
        assert_eq!(key_usage(&key("k"), &short, 5), SLOT_BYTES);
        assert_eq!(key_usage(&key("k"), &long, 5), SLOT_BYTES + 1000);
        let long_name = "n".repeat(100);
        assert_eq!(key_usage(&key(&long_name), &short, 5), SLOT_BYTES + 100);
    }

    #[test]
    fn a_list_grows_with_its_elements() {
        let mut list = PackedList::new();
        let empty = value_heap_bytes(&Value::List(Box::new(list.clone())), 5);
        for n in 0..10_000 {
            list.push_back(format!("element-{n:06}").as_bytes());
        }
        let full = value_heap_bytes(&Value::List(Box::new(list)), 5);
        // 14 bytes of payload each, plus a length byte: between that and twice it.
        assert!(
            full >= empty + 150_000 && full <= empty + 300_000,
            "{empty} {full}"
        );
    }

    #[test]
    fn hash_samples_are_scaled_to_the_whole_hash() {
        let mut hash = IndexMap::new();
        for n in 0..1000 {
            hash.insert(
                format!("f{n:04}").into_bytes().into_boxed_slice(),
                vec![b'v'; 95].into_boxed_slice(),
            );
        }
        let value = Value::Hash(Box::new(hash));
        let exact = value_heap_bytes(&value, 0);
        assert_eq!(
            value_heap_bytes(&value, 5),
            exact,
            "every field has the same size"
        );
        assert!(exact > 100 * 1000, "{exact}");
    }

    #[test]
    fn sampling_scales_and_zero_means_all() {
        assert_eq!(sampled(10, 2, [3, 5, 100].into_iter()), 40);
        assert_eq!(sampled(3, 0, [3, 5, 100].into_iter()), 108);
        assert_eq!(sampled(0, 5, std::iter::empty()), 0);
        assert_eq!(sampled(2, 5, [1, 2].into_iter()), 3);
    }
}
