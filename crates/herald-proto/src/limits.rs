//! Request-size limits: how big a request the parser accepts before it gives up.
//!
//! This module owns the numbers only, each a named constant with its unit and the
//! Redis setting or source it mirrors. It must not decide *when* a client counts as
//! authenticated (the server does) and it does not bound the read buffer as a whole
//! (that is the server's `client-query-buffer-limit`).

/// Largest bulk argument, in bytes, a client may declare.
///
/// Redis `proto-max-bulk-len` default (512 MB). Longer declarations fail with
/// `invalid bulk length` before any payload is read.
pub const PROTO_MAX_BULK_LEN_BYTES: usize = 512 * 1024 * 1024;

/// Longest inline request line, and longest multibulk or bulk header line, in bytes.
///
/// Redis `PROTO_INLINE_MAX_SIZE` (64 KB): past this many buffered bytes without a line
/// end the request is rejected rather than buffered without bound.
pub const PROTO_INLINE_MAX_BYTES: usize = 64 * 1024;

/// Largest argument count a multibulk header may declare.
///
/// Redis rejects a count above `INT_MAX` with `invalid multibulk length`.
pub const PROTO_MAX_MULTIBULK_LEN: usize = i32::MAX as usize;

/// Largest argument count accepted before the client has authenticated.
///
/// Redis hard-codes 10 so that a client without the password cannot make the server
/// hold a large argument vector (`unauthenticated multibulk length`).
pub const UNAUTHENTICATED_MAX_MULTIBULK_LEN: usize = 10;

/// Largest bulk argument, in bytes, accepted before the client has authenticated.
///
/// Redis hard-codes 16 KB for the same reason (`unauthenticated bulk length`).
pub const UNAUTHENTICATED_MAX_BULK_BYTES: usize = 16 * 1024;

/// The limits the request parser enforces for authenticated clients (and for every
/// client when no password is configured). The tighter pre-authentication limits are
/// the fixed constants [`UNAUTHENTICATED_MAX_MULTIBULK_LEN`] and
/// [`UNAUTHENTICATED_MAX_BULK_BYTES`], as in Redis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest declared bulk length in bytes (`proto-max-bulk-len`).
    pub max_bulk_len: usize,
    /// Largest declared multibulk argument count.
    pub max_multibulk_len: usize,
    /// Longest inline request or header line in bytes, counted while no line end has
    /// been buffered yet.
    pub max_inline_len: usize,
}

impl Default for Limits {
    /// The Redis defaults.
    fn default() -> Self {
        Limits {
            max_bulk_len: PROTO_MAX_BULK_LEN_BYTES,
            max_multibulk_len: PROTO_MAX_MULTIBULK_LEN,
            max_inline_len: PROTO_INLINE_MAX_BYTES,
        }
    }
}
