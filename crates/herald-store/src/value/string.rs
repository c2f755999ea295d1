//! The string value: short strings inline in the keyspace's slot, medium ones in a boxed
//! slice, long ones in a shared buffer.
//!
//! Most stored strings are short (counters, flags, tokens, ids), and a `Bytes` of its
//! own costs a short string an allocation on every SET, a free on every overwrite, and
//! a cache miss on every read of a large keyspace, since its bytes live away from the
//! slot that was just looked up. Up to [`INLINE_CAPACITY`] bytes fit in the space a
//! `Bytes` takes anyway (the `Value` stays 40 bytes), so they cost none of that.
//!
//! Up to [`BOXED_MAX`] bytes a string is a boxed slice, copied when a read clones it. A
//! `Bytes` built by a copy is not shared yet: the first clone gives it a shared header,
//! an allocation of its own that stays for as long as the value does (GET of each of
//! 100 000 keys of 100 bytes grew the server by 32 bytes per key). A reply copies the
//! bytes into its buffer anyway, and below this size the extra copy costs less than
//! that header. Longer strings stay a `Bytes`: a read shares them.
//!
//! This type must not pin a connection's read buffer: [`StringValue::copy_from_slice`]
//! copies, and [`StringValue::from_bytes`] is for buffers built for the value.

use std::fmt;
use std::ops::{Deref, RangeBounds};

use bytes::Bytes;

use crate::inline::InlineBytes;

/// Longest string kept inline.
pub const INLINE_CAPACITY: usize = 38;

/// Longest string kept as a boxed slice (copied by a clone); longer ones are shared.
pub const BOXED_MAX: usize = 1024;

/// A binary-safe string value (see the module documentation).
#[derive(Clone)]
pub struct StringValue(Repr);

#[derive(Clone)]
enum Repr {
    Inline(InlineBytes<INLINE_CAPACITY>),
    Boxed(Box<[u8]>),
    Shared(Bytes),
}

impl StringValue {
    /// A copy of `bytes`: inline when it fits, otherwise in an allocation of its own.
    pub fn copy_from_slice(bytes: &[u8]) -> StringValue {
        if let Some(inline) = InlineBytes::new(bytes) {
            return StringValue(Repr::Inline(inline));
        }
        if bytes.len() <= BOXED_MAX {
            return StringValue(Repr::Boxed(Box::from(bytes)));
        }
        StringValue(Repr::Shared(Bytes::copy_from_slice(bytes)))
    }

    /// `bytes` as a value: copied when it is short enough to be inline or boxed,
    /// otherwise kept as it is, so it must be a buffer of its own (not a slice of a
    /// request).
    pub fn from_bytes(bytes: Bytes) -> StringValue {
        if bytes.len() <= BOXED_MAX {
            return StringValue::copy_from_slice(&bytes);
        }
        StringValue(Repr::Shared(bytes))
    }

    /// The value as `Bytes`: shared when it is stored in a shared buffer, copied otherwise.
    pub fn to_bytes(&self) -> Bytes {
        match &self.0 {
            Repr::Inline(_) | Repr::Boxed(_) => Bytes::copy_from_slice(self),
            Repr::Shared(bytes) => bytes.clone(),
        }
    }

    /// A range of the value as `Bytes` (shared or copied, as [`Self::to_bytes`]).
    ///
    /// # Panics
    /// When the range is out of bounds, as slicing does.
    pub fn slice(&self, range: impl RangeBounds<usize>) -> Bytes {
        match &self.0 {
            Repr::Inline(_) | Repr::Boxed(_) => {
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
            Repr::Boxed(boxed) => boxed,
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
    fn short_strings_are_inline_medium_ones_boxed_and_long_ones_shared() {
        let short = StringValue::copy_from_slice(&[7; INLINE_CAPACITY]);
        assert!(short.is_inline());
        let medium = StringValue::copy_from_slice(&[7; INLINE_CAPACITY + 1]);
        assert!(!medium.is_inline());
        assert!(matches!(medium.0, Repr::Boxed(_)));
        assert!(StringValue::default().is_inline());
        assert!(StringValue::default().is_empty());
        // A medium value is copied, so no read turns it into a shared buffer.
        let buffer = Bytes::from(vec![1u8; BOXED_MAX]);
        let stored = StringValue::from_bytes(buffer.clone());
        assert!(matches!(stored.0, Repr::Boxed(_)));
        assert_ne!(stored.to_bytes().as_ptr(), buffer.as_ptr());
        // A long value's buffer is shared, not copied, by reads.
        let buffer = Bytes::from(vec![1u8; BOXED_MAX + 1]);
        let stored = StringValue::from_bytes(buffer.clone());
        assert_eq!(stored.to_bytes().as_ptr(), buffer.as_ptr());
        assert_eq!(stored.slice(10..20).as_ptr(), buffer[10..].as_ptr());
        let copied = StringValue::copy_from_slice(&buffer);
        assert!(matches!(copied.0, Repr::Shared(_)));
    }

    #[test]
    fn a_value_takes_no_more_room_than_bytes() {
        assert_eq!(std::mem::size_of::<StringValue>(), 40);
        assert_eq!(std::mem::size_of::<crate::value::Value>(), 40);
    }

    proptest! {
        #[test]
        fn every_form_reads_back_what_was_stored(
            bytes in proptest::collection::vec(any::<u8>(), 0..(BOXED_MAX + 100)),
            start in 0usize..(BOXED_MAX + 100),
            len in 0usize..(BOXED_MAX + 100),
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
