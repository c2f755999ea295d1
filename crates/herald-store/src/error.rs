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
    /// A malformed stream ID.
    #[error("ERR Invalid stream ID specified as stream command argument")]
    InvalidStreamId,
    /// An exclusive start bound past the largest ID.
    #[error("ERR invalid start ID for the interval")]
    InvalidIntervalStart,
    /// An exclusive end bound below the smallest ID.
    #[error("ERR invalid end ID for the interval")]
    InvalidIntervalEnd,
    /// XADD with ID 0-0.
    #[error("ERR The ID specified in XADD must be greater than 0-0")]
    XAddIdZero,
    /// XADD with an ID at or below the stream's last ID.
    #[error("ERR The ID specified in XADD is equal or smaller than the target stream top item")]
    XAddIdTooSmall,
    /// XADD `*` after the largest possible ID.
    #[error("ERR The stream has exhausted the last possible ID, unable to add more items")]
    StreamExhausted,
    /// XSETID below the last entry.
    #[error("ERR The ID specified in XSETID is smaller than the target stream top item")]
    XSetIdTooSmall,
    /// XSETID ENTRIESADDED below the stream's length.
    #[error("ERR The entries_added specified in XSETID is smaller than the target stream length")]
    XSetIdEntriesAdded,
    /// XSETID below its own MAXDELETEDID.
    #[error("ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id")]
    XSetIdBelowMaxDeleted,
    /// XGROUP on a missing key (without MKSTREAM).
    #[error("ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.")]
    XGroupNeedsKey,
    /// XGROUP CREATE of an existing group.
    #[error("BUSYGROUP Consumer Group name already exists")]
    BusyGroup,
    /// An error whose text names keys or groups (NOGROUP ...), code included.
    #[error("{0}")]
    Custom(String),
    /// MOVE/COPY to the same database.
    #[error("ERR source and destination objects are the same")]
    SameObject,
}
