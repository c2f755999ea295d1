//! `herald-store`: the keyspace that messaging applications keep beside pub/sub.
//!
//! # Layout
//! - [`value`]: the value types a key can hold.
//! - [`db`]: one logical database (keys, values, expiry, watchers, blocked clients).
//! - [`keyspace`]: the [`Keyspace`] of sixteen databases behind one lock ([`Store`]).
//! - [`strings`]: string operations (SET options, INCR family, ranges).
//! - [`blocking`]: clients blocked on lists and how they are served.
//! - [`packed`]: the compact representation of list values.
//! - [`lists`]: list operations (pushes, pops, ranges, LPOS, LMOVE, LMPOP).
//! - [`hashes`]: hash operations (fields, HINCRBY family, HRANDFIELD, HSCAN).
//! - [`aof`]: the append-only file (format, group-committed writer, offline check).
//! - [`effects`]: expiries and served blocked clients, recorded for the append-only file.
//! - [`stream`]: streams, consumer groups and their pending-entry lists.
//! - [`events`]: keyspace-notification classes and the events operations record.
//! - [`error`]: failures with Redis's error texts.
//!
//! Time is always passed in (`now_ms`, Unix milliseconds) so expiry is deterministic
//! under test. This crate knows nothing of sockets or RESP: the server parses commands,
//! calls these operations and encodes the results. It never touches the pub/sub engine's
//! locks: publishing does not wait for the keyspace.

pub mod aof;
pub mod blocking;
pub mod db;
pub mod effects;
pub mod error;
pub mod events;
pub mod hashes;
mod inline;
pub mod keyspace;
pub mod lists;
pub mod packed;
pub mod stream;
pub mod strings;
pub mod usage;
pub mod value;

pub use db::Db;
pub use error::StoreError;
pub use keyspace::{Held, Keyspace, Store, DATABASES};
pub use value::Value;
