//! Values stored under keys.

use bytes::Bytes;
use indexmap::IndexMap;

use crate::packed::PackedList;
use crate::stream::Stream;

/// What a key holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// A binary-safe string.
    String(Bytes),
    /// A list of strings, pushed and popped at both ends, stored compactly.
    List(PackedList),
    /// A hash of fields to values; insertion-ordered so HRANDFIELD and HSCAN can index it.
    Hash(IndexMap<Bytes, Bytes>),
    /// A stream with its consumer groups (boxed: it is larger than the other variants).
    Stream(Box<Stream>),
}

impl Value {
    /// The name TYPE reports.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::String(_) => "string",
            Value::List(_) => "list",
            Value::Hash(_) => "hash",
            Value::Stream(_) => "stream",
        }
    }
}

/// Copies `bytes` into an allocation of its own before it is stored: arguments are
/// slices of a connection's read buffer, and keeping one alive would pin that whole
/// buffer in memory for as long as the key lives.
pub fn owned(bytes: &Bytes) -> Bytes {
    Bytes::copy_from_slice(bytes)
}
