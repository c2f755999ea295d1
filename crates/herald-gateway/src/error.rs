//! Errors: failure to start the gateway, and request errors with their stable codes.
//!
//! Every request error has an HTTP status, a stable machine-readable `code` and a human
//! message. HTTP answers it as `{"error": {"code", "message"}}`; WebSocket sends the same
//! code in an `error` frame. The codes are listed in `docs/gateway-protocol.md`.

use std::net::SocketAddr;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::auth::AuthError;

/// Failure to start the gateway.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The HTTP address could not be bound (port in use, no permission).
    #[error("cannot listen on {addr} for HTTP (the gateway; choose another port with --http-port or turn it off with --no-http)")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// No auth configured on an address other machines can reach.
    #[error("refusing to serve the gateway without authentication on {0}, which is not a loopback address: configure a JWT secret or public key, or pass --gateway-allow-anonymous")]
    AnonymousOnNetwork(SocketAddr),
    /// Development sign-in asked for on an address others can reach.
    #[error("refusing development sign-in (--gateway-dev-tokens) on {0}, which is not a loopback address: it lets anyone sign in as anyone")]
    DevTokensOnNetwork(SocketAddr),
    /// A limit that cannot work (zero).
    #[error("invalid gateway limit: {0}")]
    BadLimit(String),
}

/// A request the gateway refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RequestError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code.
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
}

impl RequestError {
    /// 400 with `code`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// Any status.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        RequestError {
            status,
            code,
            message: message.into(),
        }
    }
}

impl From<AuthError> for RequestError {
    fn from(err: AuthError) -> Self {
        let status = if err.is_unauthenticated() {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::FORBIDDEN
        };
        RequestError::new(status, err.code(), err.to_string())
    }
}

impl IntoResponse for RequestError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error": { "code": self.code, "message": self.message }
        });
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
