//! The string value: short strings inline in the keyspace's slot, longer ones in a
//! shared buffer.
//!
//! Most stored strings are short (counters, flags, tokens, ids), and a `Bytes` of its
//! own costs a short string an allocation on every SET, a free on every overwrite, and
//! a cache miss on every read of a large keyspace, since its bytes live away from the
//! slot that was just looked up. Up to [`INLINE_CAPACITY`] bytes fit in the space a
//! `Bytes` takes anyway (the `Value` stays 40 bytes), so they cost none of that. Longer
//! strings stay a `Bytes`: a GET of a large value shares it instead of copying it.
//! This type must not pin a connection's read buffer: [`StringValue::copy_from_slice`]
//! copies, and [`StringValue::from_bytes`] is for buffers built for the value.

use std::fmt;
use std::ops::{Deref, RangeBounds};

use bytes::Bytes;

use crate::inline::InlineBytes;

/// Longest string kept inline.
pub const INLINE_CAPACITY: usize = 38;

/// A binary-safe string value (see the module documentation).
#[derive(Clone)]
pub struct StringValue(Repr);

#[derive(Clone)]
enum Repr {
    Inline(InlineBytes<INLINE_CAPACITY>),
    Shared(Bytes),
}

impl StringValue {
    /// A copy of `bytes`, inline when it fits, otherwise in an allocation of its own.
    pub fn copy_from_slice(bytes: &[u8]) -> StringValue {
        match InlineBytes::new(bytes) {
            Some(inline) => StringValue(Repr::Inline(inline)),
            None => StringValue(Repr::Shared(Bytes::copy_from_slice(bytes))),
        }
    }

    /// `bytes` as a value: copied inline when it fits, otherwise kept as it is, so it
    /// must be a buffer of its own (not a slice of a request).
    pub fn from_bytes(bytes: Bytes) -> StringValue {
        match InlineBytes::new(&bytes) {
            Some(inline) => StringValue(Repr::Inline(inline)),
            None => StringValue(Repr::Shared(bytes)),
        }
    }

    /// The value as `Bytes`: shared when it is stored out of line, copied otherwise.
    pub fn to_bytes(&self) -> Bytes {
        match &self.0 {
            Repr::Inline(_) => Bytes::copy_from_slice(self),
            Repr::Shared(bytes) => bytes.clone(),
        }
    }

    /// A range of the value as `Bytes` (shared or copied, as [`Self::to_bytes`]).
    ///
    /// # Panics
    /// When the range is out of bounds, as slicing does.
    pub fn slice(&self, range: impl RangeBounds<usize>) -> Bytes {
        match &self.0 {
            Repr::Inline(_) => {
                let range = (range.start_bound().cloned(), range.end_bound().cloned());
                Bytes::copy_from_slice(&self[range])
            }
            Repr::Shared(bytes) => bytes.slice(range),
        }
    }

    /// True when the bytes live in the slot itself.
    pub fn is_inline(&self) -> bool {
        matches!(self.0, Repr::Inline(_))
    }
}

impl Default for StringValue {
    fn default() -> Self {
        StringValue::copy_from_slice(b"")
    }
}

impl Deref for StringValue {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline(inline) => inline.as_slice(),
            Repr::Shared(bytes) => bytes,
        }
    }
}

impl AsRef<[u8]> for StringValue {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl PartialEq for StringValue {
    fn eq(&self, other: &Self) -> bool {
        self[..] == other[..]
    }
}

impl Eq for StringValue {}

impl fmt::Debug for StringValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&Bytes::copy_from_slice(self), f)
    }
}

impl From<&[u8]> for StringValue {
    fn from(bytes: &[u8]) -> Self {
        StringValue::copy_from_slice(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn short_strings_are_inline_and_long_ones_shared() {
        let short = StringValue::copy_from_slice(&[7; INLINE_CAPACITY]);
        assert!(short.is_inline());
        let long = StringValue::copy_from_slice(&[7; INLINE_CAPACITY + 1]);
        assert!(!long.is_inline());
        assert!(StringValue::default().is_inline());
        assert!(StringValue::default().is_empty());
        // A long value's buffer is shared, not copied, by reads.
        let buffer = Bytes::from(vec![1u8; 100]);
        let stored = StringValue::from_bytes(buffer.clone());
        assert_eq!(stored.to_bytes().as_ptr(), buffer.as_ptr());
        assert_eq!(stored.slice(10..20).as_ptr(), buffer[10..].as_ptr());
    }

    #[test]
    fn a_value_takes_no_more_room_than_bytes() {
        assert_eq!(std::mem::size_of::<StringValue>(), 40);
        assert_eq!(std::mem::size_of::<crate::value::Value>(), 40);
    }

    proptest! {
        #[test]
        fn every_form_reads_back_what_was_stored(
            bytes in proptest::collection::vec(any::<u8>(), 0..100),
            start in 0usize..100,
            len in 0usize..100,
        ) {
            let copied = StringValue::copy_from_slice(&bytes);
            let owned = StringValue::from_bytes(Bytes::from(bytes.clone()));
            prop_assert_eq!(&copied[..], &bytes[..]);
            prop_assert_eq!(&owned[..], &bytes[..]);
            prop_assert_eq!(&copied, &owned);
            prop_assert_eq!(copied.is_inline(), bytes.len() <= INLINE_CAPACITY);
            prop_assert_eq!(&copied.to_bytes()[..], &bytes[..]);
            let start = start.min(bytes.len());
            let end = (start + len).min(bytes.len());
            prop_assert_eq!(&copied.slice(start..end)[..], &bytes[start..end]);
            prop_assert_eq!(&owned.slice(start..end)[..], &bytes[start..end]);
        }
    }
}
