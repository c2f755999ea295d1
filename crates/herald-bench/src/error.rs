//! The one error type of the load generator.

use std::time::Duration;

/// Why a benchmark run could not complete.
///
/// A run that completes but finds lost or reordered messages is not an error: it is a
/// [`crate::report::BenchResult`] whose [`crate::report::BenchResult::is_clean`] is false.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The TCP connection to the server could not be opened.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The address we dialled.
        addr: String,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// Reading or writing an open connection failed.
    #[error("i/o error talking to {addr}: {source}")]
    Io {
        /// The server's address.
        addr: String,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The server closed the connection.
    #[error("{addr} closed the connection")]
    Closed {
        /// The server's address.
        addr: String,
    },
    /// A network wait exceeded its bound.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What we were waiting for.
        what: String,
        /// How long we waited.
        after: Duration,
    },
    /// The server sent bytes that are not valid RESP, or a reply of an unexpected shape.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The server answered a command with an error reply.
    #[error("server error reply: {0}")]
    ServerError(String),
    /// A server-side check failed before the run (e.g. PUBSUB NUMSUB disagrees).
    #[error("verification failed: {0}")]
    Verify(String),
    /// A bug or resource limit in the load generator itself.
    #[error("internal error: {0}")]
    Internal(String),
    /// The arguments are valid for the parser but make no sense together.
    #[error("invalid arguments: {0}")]
    Usage(String),
}

impl BenchError {
    /// True for errors caused by the command line, not by the server or the network.
    pub fn is_usage(&self) -> bool {
        matches!(self, BenchError::Usage(_))
    }
}
