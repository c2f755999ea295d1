//! Values stored under keys.

use bytes::Bytes;

/// What a key holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// A binary-safe string.
    String(Bytes),
}

impl Value {
    /// The name TYPE reports.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::String(_) => "string",
        }
    }
}

/// Copies `bytes` into an allocation of its own before it is stored: arguments are
/// slices of a connection's read buffer, and keeping one alive would pin that whole
/// buffer in memory for as long as the key lives.
pub fn owned(bytes: &Bytes) -> Bytes {
    Bytes::copy_from_slice(bytes)
}
