//! `herald-engine`: the transport-agnostic pub/sub core.
//!
//! # Layout
//! - [`glob`]: Redis glob patterns, compiled once and matched without recursion.
//! - [`message`]: what a publish hands to subscribers ([`Message`], [`Delivery`]).
//! - [`outbox`]: each subscriber's bounded queue of outgoing frames and deliveries, with
//!   Redis's hard/soft output-buffer limits (the slow-consumer policy).
//! - [`registry`]: the two scopes of channels (classic and sharded) and the pattern set,
//!   mapping names to outboxes; [`Engine`] ties them together and counts.
//!
//! RESP connections, WebSocket and SSE sessions are equal front-ends over one [`Engine`]:
//! each owns an [`Outbox`] and encodes what it drains in its own wire format. This crate
//! knows nothing of sockets, RESP, HTTP or metrics exporters; it exposes plain counters
//! ([`EngineStats`]) for the front-ends to render.

pub mod glob;
pub mod message;
pub mod outbox;
pub mod registry;

pub use glob::Glob;
pub use message::{ClientId, Delivery, DeliveryKind, Message, Scope};
pub use outbox::{
    ClientClass, CloseReason, Outbox, OutboxBatch, Outgoing, OutputLimit, OutputLimits,
};
pub use registry::{Engine, EngineStats};
