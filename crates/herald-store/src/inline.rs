//! Up to `N` bytes held in place: the inline form of the keyspace's short names
//! (`db::Key`) and short strings (`value::StringValue`). It owns no heap memory and is
//! `N + 1` bytes with alignment 1, so it fits beside another variant's pointer.

/// At most `N` (≤ 255) bytes and their length.
#[derive(Clone)]
pub(crate) struct InlineBytes<const N: usize> {
    len: u8,
    bytes: [u8; N],
}

impl<const N: usize> InlineBytes<N> {
    /// A copy of `bytes` when they fit, `None` when they do not.
    pub(crate) fn new(bytes: &[u8]) -> Option<Self> {
        const { assert!(N <= u8::MAX as usize, "the length is kept in a u8") };
        if bytes.len() > N {
            return None;
        }
        let mut stored = [0; N];
        stored[..bytes.len()].copy_from_slice(bytes);
        Some(InlineBytes {
            len: u8::try_from(bytes.len()).ok()?,
            bytes: stored,
        })
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_up_to_its_capacity() {
        assert_eq!(
            InlineBytes::<4>::new(b"").map(|b| b.as_slice().to_vec()),
            Some(vec![])
        );
        assert_eq!(
            InlineBytes::<4>::new(b"abcd").map(|b| b.as_slice().to_vec()),
            Some(b"abcd".to_vec())
        );
        assert!(InlineBytes::<4>::new(b"abcde").is_none());
        assert_eq!(std::mem::size_of::<InlineBytes<30>>(), 31);
    }
}
