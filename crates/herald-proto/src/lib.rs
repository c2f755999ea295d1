//! `herald-proto`: the Redis serialization protocol (RESP2 and RESP3) as Herald speaks it.
//!
//! # Layout
//! - [`request`]: the resumable request parser (multibulk and inline), handing out
//!   arguments as zero-copy [`bytes::Bytes`] slices of the read buffer.
//! - [`limits`]: request-size limits with their Redis defaults.
//! - [`reply`]: the reply encoder, one API for both protocol versions; RESP3-only types
//!   degrade to their RESP2 equivalents exactly as Redis does.
//!
//! This crate knows nothing of sockets, commands or pub/sub: it turns bytes into
//! requests and replies into bytes, and must never panic on any input.

pub mod limits;
pub mod reply;
pub mod request;

pub use limits::Limits;
pub use reply::{Protocol, ReplyWriter};
pub use request::{ProtocolError, Request, RequestParser};
