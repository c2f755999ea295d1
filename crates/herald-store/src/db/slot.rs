//! One slot of a database's table: the key's name, its value and its expiry, laid out
//! small.
//!
//! A lookup in a keyspace larger than the CPU caches costs a few cache misses: the
//! table's control bytes, its index, the slot, and whatever the slot points to. So a
//! slot holds short names and short strings inline (no pointer to follow, no allocation
//! to make or free), and the whole slot with its hash takes 88 bytes where it took 128.
//! The tests below keep those sizes from creeping back.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

use bytes::Bytes;

use crate::inline::InlineBytes;
use crate::value::Value;

/// Longest name kept inline.
pub const INLINE_KEY_CAPACITY: usize = 30;

/// A key's name as the table stores it: inline up to [`INLINE_KEY_CAPACITY`] bytes,
/// otherwise in an allocation of its own (never a slice of a request, which would pin
/// the read buffer it arrived in). It hashes and compares as the bytes it holds, so the
/// table is looked up with a plain `&[u8]`.
#[derive(Clone)]
pub struct Key(KeyRepr);

#[derive(Clone)]
enum KeyRepr {
    Inline(InlineBytes<INLINE_KEY_CAPACITY>),
    Heap(Box<[u8]>),
}

impl Key {
    /// A copy of `name`.
    pub fn copy_from_slice(name: &[u8]) -> Key {
        match InlineBytes::new(name) {
            Some(inline) => Key(KeyRepr::Inline(inline)),
            None => Key(KeyRepr::Heap(name.into())),
        }
    }

    /// The name as `Bytes` (a copy), for replies and snapshots.
    pub fn to_bytes(&self) -> Bytes {
        Bytes::copy_from_slice(self)
    }

    /// True when the name lives in the slot itself.
    pub fn is_inline(&self) -> bool {
        matches!(self.0, KeyRepr::Inline(_))
    }
}

impl Deref for Key {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.0 {
            KeyRepr::Inline(inline) => inline.as_slice(),
            KeyRepr::Heap(bytes) => bytes,
        }
    }
}

impl Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        self
    }
}

impl Hash for Key {
    /// As `[u8]` hashes, which `Borrow<[u8]>` requires.
    fn hash<H: Hasher>(&self, state: &mut H) {
        (**self).hash(state);
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self[..] == other[..]
    }
}

impl Eq for Key {}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&Bytes::copy_from_slice(self), f)
    }
}

/// A key's value and expiry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(super) value: Value,
    pub(super) expires_at: Deadline,
}

impl Entry {
    pub(super) fn new(value: Value, expires_at_ms: Option<u64>) -> Entry {
        Entry {
            value,
            expires_at: Deadline::new(expires_at_ms),
        }
    }

    pub(super) fn expires_at_ms(&self) -> Option<u64> {
        self.expires_at.get()
    }

    /// Live at `now_ms` by its expiry alone (whether expiry is paused is the `Db`'s
    /// business, see `Db::is_due`).
    pub(super) fn unexpired_at(&self, now_ms: u64) -> bool {
        self.expires_at.get().is_none_or(|at| at > now_ms)
    }
}

/// An expiry time in Unix milliseconds, or none, in 8 bytes (`Option<u64>` takes 16).
/// `u64::MAX` stands for none; an expiry at that very millisecond is kept one earlier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Deadline(u64);

impl Deadline {
    pub(super) const NONE: Deadline = Deadline(u64::MAX);

    pub(super) fn new(at_ms: Option<u64>) -> Deadline {
        at_ms.map_or(Deadline::NONE, |at| Deadline(at.min(u64::MAX - 1)))
    }

    pub(super) fn get(self) -> Option<u64> {
        (self != Deadline::NONE).then_some(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::hash::BuildHasher;

    #[test]
    fn slots_stay_small() {
        assert_eq!(std::mem::size_of::<Key>(), 32);
        assert_eq!(std::mem::size_of::<Entry>(), 48);
    }

    #[test]
    fn short_names_are_inline() {
        assert!(Key::copy_from_slice(&[b'k'; INLINE_KEY_CAPACITY]).is_inline());
        assert!(!Key::copy_from_slice(&[b'k'; INLINE_KEY_CAPACITY + 1]).is_inline());
        assert!(Key::copy_from_slice(b"").is_inline());
    }

    #[test]
    fn deadlines_round_trip() {
        assert_eq!(Deadline::new(None).get(), None);
        assert_eq!(Deadline::new(Some(0)).get(), Some(0));
        assert_eq!(Deadline::new(Some(42)).get(), Some(42));
        assert_eq!(Deadline::new(Some(u64::MAX)).get(), Some(u64::MAX - 1));
    }

    proptest! {
        #[test]
        fn a_key_hashes_and_compares_as_its_bytes(
            name in proptest::collection::vec(any::<u8>(), 0..80),
            other in proptest::collection::vec(any::<u8>(), 0..80),
        ) {
            let key = Key::copy_from_slice(&name);
            prop_assert_eq!(&key[..], &name[..]);
            prop_assert_eq!(key.is_inline(), name.len() <= INLINE_KEY_CAPACITY);
            prop_assert_eq!(&key.to_bytes()[..], &name[..]);
            let state = std::hash::RandomState::new();
            prop_assert_eq!(state.hash_one(&key), state.hash_one(&name[..]));
            prop_assert_eq!(key == Key::copy_from_slice(&other), name == other);
        }
    }
}
