//! The append-only file: the on-disk log of write commands that rebuilds the keyspace at
//! start-up.
//!
//! # Layout
//! - [`mod@format`]: the record format (Redis's: each command a RESP multibulk array) and a
//!   reader that tells a truncated tail apart from corruption in the middle, by offset.
//! - [`writer`]: the [`AofWriter`] that the server appends to while it holds the keyspace
//!   lock, and the background thread that writes and fsyncs batches (group commit) under
//!   one of the three [`FsyncPolicy`]s.
//! - [`snapshot`]: the keyspace copied and written as the commands that rebuild it.
//! - [`check`]: what `herald check-aof` reports and how `--fix` repairs.
//!
//! The format is Redis's own, so a Herald file loads in `redis-server` and Redis's
//! `redis-check-aof` reads it. Like Redis's, it has no checksums: a flipped byte inside a
//! payload changes a value undetected, a flipped byte in the framing is reported with its
//! offset.
//!
//! This module owns bytes and files only: which commands are logged and in what form
//! (absolute expiry times, concrete IDs) is the server's business, as is replaying them.

pub mod check;
pub mod format;
pub mod snapshot;
pub mod writer;

pub use check::{check_file, fix_file, CheckReport};
pub use format::{encode_command, AofEntry, AofReader, FormatError};
pub use snapshot::Snapshot;
pub use writer::{AofWriter, FsyncPolicy, WriteStatus, WriterTimes};
