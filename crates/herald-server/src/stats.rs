//! Server-wide counters (INFO stats). Relaxed atomics: they are statistics, not
//! synchronisation, and are bumped on hot paths.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters since start.
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Connections accepted.
    pub connections_received: AtomicU64,
    /// Connections refused because `maxclients` was reached.
    pub rejected_connections: AtomicU64,
    /// Commands executed (including rejected ones, as Redis counts calls).
    pub commands_processed: AtomicU64,
    /// Bytes read from clients.
    pub net_input_bytes: AtomicU64,
    /// Bytes written to clients.
    pub net_output_bytes: AtomicU64,
    /// Clients disconnected for exceeding an output-buffer limit (slow consumers).
    pub output_limit_disconnections: AtomicU64,
    /// Clients disconnected for exceeding the query-buffer limit.
    pub query_limit_disconnections: AtomicU64,
    /// Connections closed after a protocol error.
    pub protocol_errors: AtomicU64,
}

impl ServerStats {
    /// Adds `n` to `counter`.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads `counter`.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
