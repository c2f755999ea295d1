//! The errors of this crate: what a caller of the API gets back ([`Error`]) and what a
//! subscriber reports about one message it could not hand to a handler ([`HandlerFailure`]).
//!
//! Nothing here logs; the subscriber reports failures through `tracing` and the
//! application's error callback.

use std::fmt;

/// An error from a call to this crate's API.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server could not be reached or answered with an error.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The URL given to [`crate::Herald::connect`] is not usable.
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    /// The TLS certificates or key given in [`crate::ConnectOptions`] are not usable
    /// (malformed PEM, no certificate in it, a key that does not parse).
    #[error("invalid TLS configuration: {0}")]
    InvalidTls(String),
    /// A value could not be encoded to or decoded from JSON.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The embedded keyspace refused an operation (for instance the key holds another type).
    #[error("store: {0}")]
    Store(#[from] herald_store::StoreError),
    /// Background tasks need a Tokio runtime and none is running on this thread.
    #[error("no Tokio runtime is running")]
    NoRuntime,
    /// The subscriber was stopped; no further subscriptions can be made.
    #[error("the subscriber is stopped")]
    Stopped,
    /// A stored notification could not be updated because other writers kept changing the
    /// list (optimistic retries exhausted).
    #[error("gave up after {attempts} attempts: the list kept changing concurrently")]
    Contended {
        /// How many WATCH/MULTI/EXEC rounds were tried.
        attempts: u32,
    },
    /// The server replied with something this crate did not expect.
    #[error("unexpected reply: {0}")]
    UnexpectedReply(String),
}

impl Error {
    /// True for failures of the network or the server connection (worth retrying later).
    pub fn is_connection_error(&self) -> bool {
        match self {
            Error::Redis(err) => {
                err.is_io_error()
                    || err.is_connection_dropped()
                    || err.is_connection_refusal()
                    || err.is_timeout()
            }
            _ => false,
        }
    }
}

/// The error type a handler may return: anything that is an error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a message did not reach a handler cleanly; passed to the error callback.
#[derive(Debug)]
pub enum HandlerFailure {
    /// The handler returned an error.
    Failed(BoxError),
    /// The handler panicked; carries the panic message when it was a string.
    Panicked(String),
    /// The payload was not the JSON the handler expects; the handler was not called.
    Decode(serde_json::Error),
}

impl fmt::Display for HandlerFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandlerFailure::Failed(err) => write!(f, "handler failed: {err}"),
            HandlerFailure::Panicked(message) => write!(f, "handler panicked: {message}"),
            HandlerFailure::Decode(err) => {
                write!(f, "payload is not valid JSON for the handler: {err}")
            }
        }
    }
}

impl std::error::Error for HandlerFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HandlerFailure::Failed(err) => Some(err.as_ref()),
            HandlerFailure::Decode(err) => Some(err),
            HandlerFailure::Panicked(_) => None,
        }
    }
}
