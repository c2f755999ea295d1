//! `herald-server`: the Redis-protocol front-end of Herald.
//!
//! # Layout
//! - [`server`]: binding, the accept loop, the cron, shutdown; [`server::Shared`] state.
//! - [`connection`]: one client: the read/parse/execute loop; [`writer`] drains its outbox.
//! - [`session`]: per-connection state (protocol, auth, subscriptions, reply mode) and
//!   the checks every command passes.
//! - [`command`]: the declarative command table and the handlers, one file per family.
//! - [`clients`]: the client table behind CLIENT LIST/KILL; [`info`]: INFO text;
//!   [`config`]: start-up and run-time configuration; [`stats`]: counters.
//! - [`memory`]: the allocator's figures (INFO memory, MEMORY) and purging.
//! - [`persistence`]: the append-only file: logging writes, loading, rewriting.
//! - [`monitor`]: the clients in MONITOR mode and the line each command becomes.
//!
//! This crate speaks RESP over TCP and renders INFO; pub/sub itself lives in
//! `herald-engine` and wire framing in `herald-proto`. No lock here is held across an
//! `.await`.

pub mod clients;
pub mod command;
pub mod config;
pub mod connection;
pub(crate) mod cork;
pub mod info;
pub mod memory;
pub mod monitor;
pub mod persistence;
pub mod server;
pub mod session;
pub mod stats;
pub mod writer;

pub use config::ServerConfig;
pub use server::{Server, ServerError, Shared};

/// The Redis version whose behaviour Herald matches, reported by INFO and HELLO so that
/// clients enable the features they would use with that Redis.
pub const REDIS_VERSION: &str = "7.2.4";
