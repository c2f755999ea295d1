//! Values stored under keys.

use bytes::Bytes;

use crate::packed::PackedList;
use crate::stream::Stream;

mod string;

pub use string::{StringValue, INLINE_CAPACITY};

/// What a key holds. Every variant but the string is boxed, so that a value takes 40
/// bytes in the keyspace's table: a lookup's cache misses grow with the size of a slot
/// (see `Db`), and most keys hold strings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// A binary-safe string (short ones inline, see [`StringValue`]).
    String(StringValue),
    /// A list of strings, pushed and popped at both ends, stored compactly.
    List(Box<PackedList>),
    /// A hash of fields to values; insertion-ordered so HRANDFIELD and HSCAN can index it.
    Hash(Box<crate::hashes::Hash>),
    /// A stream with its consumer groups.
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
