//! Store failures. `Display` is the exact Redis error text (code included), so the
//! server can reply with it as is.

/// Why an operation failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The key holds another type.
    #[error("WRONGTYPE Operation against a key holding the wrong kind of value")]
    WrongType,
    /// The value or argument is not an integer in range.
    #[error("ERR value is not an integer or out of range")]
    NotInteger,
    /// The value or argument is not a finite float.
    #[error("ERR value is not a valid float")]
    NotFloat,
    /// INCR/DECR would overflow.
    #[error("ERR increment or decrement would overflow")]
    Overflow,
    /// HINCRBY on a field whose value is not an integer.
    #[error("ERR hash value is not an integer")]
    HashNotInteger,
    /// HINCRBYFLOAT on a field whose value is not a float.
    #[error("ERR hash value is not a float")]
    HashNotFloat,
    /// INCRBYFLOAT would produce NaN or infinity.
    #[error("ERR increment would produce NaN or Infinity")]
    NanOrInfinity,
    /// A string would grow beyond `proto-max-bulk-len`.
    #[error("ERR string exceeds maximum allowed size (proto-max-bulk-len)")]
    StringTooLong,
    /// HRANDFIELD with a negative count beyond [`crate::hashes::RANDOM_WITH_REPEATS_MAX`].
    #[error("ERR value is out of range, HRANDFIELD count with repetitions is limited to 1000000")]
    RandomCountTooLarge,
    /// LSET past the end of the list.
    #[error("ERR index out of range")]
    IndexOutOfRange,
    /// RENAME and friends on a missing key.
    #[error("ERR no such key")]
    NoSuchKey,
    /// A database index outside 0..16.
    #[error("ERR DB index is out of range")]
    DbIndexOutOfRange,
    /// MOVE/COPY to the same database.
    #[error("ERR source and destination objects are the same")]
    SameObject,
}
