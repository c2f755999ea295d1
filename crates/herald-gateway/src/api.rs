//! Routing, authentication of requests, the HTTP API and the health checks.
//!
//! - `POST /api/publish/{channel}`: the body is the payload; `{"receivers": n}`.
//! - `POST /api/broadcast`: `{"channels": [...], "data": ..., "encoding"?}`, one payload
//!   to many channels, all-or-nothing on authorization.
//! - `GET /api/channels?pattern=`: active channels (PUBSUB CHANNELS), filtered to what
//!   the token may read unless it is an admin token.
//! - `GET /api/numsub?channel=...`: subscribers per channel (PUBSUB NUMSUB).
//! - `GET /healthz` (the process serves), `GET /readyz` (and is not shutting down).
//! - the dashboard's routes ([`crate::dashboard`]), the notification demo's
//!   ([`crate::notify`]) and the pages ([`crate::pages`]) are routed here too.
//!
//! Errors are JSON (`{"error": {"code", "message"}}`), unknown routes included.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use herald_engine::{Glob, Scope};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::{AuthError, Grants};
use crate::error::RequestError;
use crate::hub::{GatewayStats, Hub};
use crate::protocol::payload_of;

/// Most channels one broadcast may name.
pub const MAX_BROADCAST_CHANNELS: usize = 1024;
/// Most channels one numsub request may name.
pub const MAX_NUMSUB_CHANNELS: usize = 1024;

/// The gateway's routes over `hub`.
pub fn router(hub: Arc<Hub>) -> Router {
    let body_limit = hub.config.limits.max_message_bytes;
    let metrics = crate::metrics::Exporter::new(Arc::clone(&hub));
    Router::new()
        .route("/ws", get(crate::ws::upgrade))
        .route("/sse", get(crate::sse::stream))
        .route("/api/publish/{channel}", post(publish))
        .route("/api/broadcast", post(broadcast))
        .route("/api/channels", get(channels))
        .route("/api/numsub", get(numsub))
        .route("/api/stats", get(crate::dashboard::stats))
        .route("/api/stats/stream", get(crate::dashboard::stats_stream))
        .route("/api/top-channels", get(crate::dashboard::top_channels))
        .route("/api/whoami", get(crate::dashboard::whoami))
        .route("/api/notifications", get(crate::notify::list))
        .route("/api/notifications/send", post(crate::notify::send))
        .route(
            "/api/notifications/{id}/read",
            post(crate::notify::mark_read),
        )
        .route("/api/dev/token", post(crate::notify::dev_token))
        .route("/", get(crate::pages::dashboard))
        .route("/demo/notifications", get(crate::pages::notifications))
        .route("/assets/{name}", get(crate::pages::asset))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route(
            "/metrics",
            get(move || {
                let metrics = Arc::clone(&metrics);
                async move { metrics.render() }
            }),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(hub)
}

/// The query parameters of a request, repeated keys kept in order.
pub fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .map(|query| {
            form_urlencoded::parse(query.as_bytes())
                .map(|(key, value)| (key.into_owned(), value.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// A `limit` query value: a number from 1 to `max`, or 400 `bad_request`.
pub fn parse_limit(value: &str, max: usize) -> Result<usize, RequestError> {
    value
        .parse()
        .ok()
        .filter(|limit| (1..=max).contains(limit))
        .ok_or_else(|| {
            RequestError::bad_request(
                "bad_request",
                format!("'limit' must be a number from 1 to {max}, not '{value}'"),
            )
        })
}

/// Authenticates a request: `Authorization: Bearer <jwt>` or the `token` query parameter.
pub fn authenticate(
    hub: &Hub,
    headers: &HeaderMap,
    query: &[(String, String)],
) -> Result<Grants, RequestError> {
    let Some(verifier) = &hub.config.verifier else {
        return Ok(Grants::anonymous());
    };
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            let (scheme, token) = value.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_owned())
        });
    let token = from_header.or_else(|| {
        query
            .iter()
            .find(|(key, _)| key == "token")
            .map(|(_, value)| value.clone())
    });
    let result = match token {
        None => Err(AuthError::MissingToken),
        Some(token) => verifier.verify(&token),
    };
    result.map_err(|err| {
        hub.stats.auth_failed(err.code());
        RequestError::from(err)
    })
}

async fn publish(
    State(hub): State<Arc<Hub>>,
    Path(channel): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, RequestError> {
    let grants = authenticate(&hub, &headers, &query_pairs(query.as_deref()))?;
    grants.check_publish(&channel)?;
    let payload = body.map_err(body_error)?;
    let receivers = hub
        .engine
        .publish(Scope::Classic, Bytes::from(channel.into_bytes()), payload);
    GatewayStats::add(&hub.stats.published, 1);
    Ok(Json(json!({ "receivers": receivers })))
}

/// A JSON request body of type `T`: 413 `message_too_large` or 400 `bad_body` when it
/// could not be read, 400 `bad_json` naming the expected `shape` when it does not parse.
pub fn json_body<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
    shape: &str,
) -> Result<T, RequestError> {
    let body = body.map_err(body_error)?;
    serde_json::from_slice(&body)
        .map_err(|err| RequestError::bad_request("bad_json", format!("expected {shape}: {err}")))
}

fn body_error(rejection: BytesRejection) -> RequestError {
    let status = rejection.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        RequestError::new(status, "message_too_large", rejection.body_text())
    } else {
        RequestError::new(status, "bad_body", rejection.body_text())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BroadcastBody {
    channels: Vec<String>,
    data: Value,
    #[serde(default)]
    encoding: Option<String>,
}

async fn broadcast(
    State(hub): State<Arc<Hub>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, RequestError> {
    let grants = authenticate(&hub, &headers, &query_pairs(query.as_deref()))?;
    let request: BroadcastBody = json_body(body, r#"{"channels": [...], "data": ...}"#)?;
    if request.channels.is_empty() || request.channels.len() > MAX_BROADCAST_CHANNELS {
        return Err(RequestError::bad_request(
            "bad_request",
            format!("'channels' must name 1 to {MAX_BROADCAST_CHANNELS} channels"),
        ));
    }
    for channel in &request.channels {
        grants.check_publish(channel)?;
    }
    let payload = payload_of(&request.data, request.encoding.as_deref())?;
    let mut total = 0;
    let mut per_channel = Vec::with_capacity(request.channels.len());
    for channel in request.channels {
        let receivers = hub.engine.publish(
            Scope::Classic,
            Bytes::copy_from_slice(channel.as_bytes()),
            payload.clone(),
        );
        GatewayStats::add(&hub.stats.published, 1);
        total += receivers;
        per_channel.push(json!({ "channel": channel, "receivers": receivers }));
    }
    Ok(Json(json!({ "receivers": total, "channels": per_channel })))
}

async fn channels(
    State(hub): State<Arc<Hub>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Json<Value>, RequestError> {
    let query = query_pairs(query.as_deref());
    let grants = authenticate(&hub, &headers, &query)?;
    let filter = query
        .iter()
        .find(|(key, _)| key == "pattern")
        .map(|(_, pattern)| Glob::new(pattern.as_bytes()));
    let mut names: Vec<String> = hub
        .engine
        .channels(Scope::Classic, filter.as_ref())
        .into_iter()
        .filter(|name| grants.is_admin() || grants.may_subscribe(name))
        .map(|name| String::from_utf8_lossy(&name).into_owned())
        .collect();
    names.sort();
    Ok(Json(json!({ "channels": names })))
}

async fn numsub(
    State(hub): State<Arc<Hub>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Json<Value>, RequestError> {
    let query = query_pairs(query.as_deref());
    let grants = authenticate(&hub, &headers, &query)?;
    let requested: Vec<&String> = query
        .iter()
        .filter(|(key, _)| key == "channel")
        .map(|(_, channel)| channel)
        .collect();
    if requested.len() > MAX_NUMSUB_CHANNELS {
        return Err(RequestError::bad_request(
            "bad_request",
            format!("at most {MAX_NUMSUB_CHANNELS} channels per request"),
        ));
    }
    let mut counts = Vec::with_capacity(requested.len());
    for channel in requested {
        if !grants.is_admin() {
            grants.check_subscribe(channel)?;
        }
        let subscribers = hub
            .engine
            .subscriber_count(Scope::Classic, channel.as_bytes());
        counts.push(json!({ "channel": channel, "subscribers": subscribers }));
    }
    Ok(Json(json!({ "channels": counts })))
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(hub): State<Arc<Hub>>) -> Response {
    if hub.shutdown.is_cancelled() {
        return RequestError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the server is shutting down",
        )
        .into_response();
    }
    Json(json!({ "status": "ready" })).into_response()
}

async fn not_found() -> RequestError {
    RequestError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

async fn method_not_allowed() -> RequestError {
    RequestError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this route",
    )
}
