//! `herald-engine`: the transport-agnostic pub/sub core.
//!
//! # Layout
//! - [`glob`]: Redis glob patterns, compiled once and matched without recursion.
//! - [`message`]: what a publish hands to subscribers ([`Message`], [`Delivery`]).
//! - [`outbox`]: each subscriber's bounded queue of outgoing frames and deliveries, with
//!   Redis's hard/soft output-buffer limits (the slow-consumer policy).
//! - [`subscribers`]: one channel's or pattern's subscribers, with copy-on-write snapshots.
//! - [`channels`]: one scope's channel map (classic or shard), sharded.
//! - [`activity`]: per-channel publish rates and top-K channel queries for dashboards.
//! - [`trie`]: the compressed byte trie the pattern index files patterns in.
//! - [`patterns`]: the pattern set, indexed by literal prefix/suffix, with a result cache.
//! - [`counter`]: per-thread counter slots for the publish path.
//! - [`registry`]: [`Engine`], which ties channels and patterns together and counts.
//!
//! RESP connections, WebSocket and SSE sessions are equal front-ends over one [`Engine`]:
//! each owns an [`Outbox`] and encodes what it drains in its own wire format. This crate
//! knows nothing of sockets, RESP, HTTP or metrics exporters; it exposes plain counters
//! ([`EngineStats`]) for the front-ends to render.

pub mod activity;
pub mod channels;
pub mod counter;
pub mod glob;
pub mod message;
pub mod outbox;
pub mod patterns;
pub mod registry;
pub mod subscribers;
pub mod trie;

pub use activity::{ChannelActivity, ChannelOrder};
pub use glob::Glob;
pub use message::{
    ClientId, Delivery, DeliveryKind, DeliveryRun, Message, Scope, WireFormat,
    DELIVERY_FRAMING_BYTES,
};
pub use outbox::{
    Appended, ClientClass, CloseReason, DirectClaim, DirectWrite, Outbox, OutboxBatch, Outgoing,
    OutputLimit, OutputLimits, PendingWakes, WriteClaim,
};
pub use patterns::PatternFootprint;
pub use registry::{Engine, EngineStats};
