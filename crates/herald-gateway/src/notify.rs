//! The notification demo's HTTP API, over `herald-client`'s [`NotificationService`] (so
//! the history is the same list, `user:<id>:notifications`, that Rust, Python and Node
//! services write), and the development sign-in.
//!
//! - `GET /api/notifications?limit=N`: the caller's history, newest first, and its
//!   unread count.
//! - `POST /api/notifications/{id}/read`: marks one notification read.
//! - `POST /api/notifications/send`: sends one (`"user"` absent or null: a broadcast);
//!   needs publish rights on the target channel.
//! - `POST /api/dev/token`: mints a token for any user id, only with
//!   `--gateway-dev-tokens` (loopback only); otherwise 404.
//!
//! A token's holder reads and marks only its own notifications; operators (admin
//! tokens, anonymous loopback mode) name the user with `?user=`. Live arrival is the
//! ordinary WebSocket subscription to `notifications:user:<id>`, which every token may
//! read. The binary wires the service to the RESP server in the same process (see
//! `herald-cli`), so writes go through the ordinary command path: logged to the
//! append-only file, visible to keyspace notifications, guarded by ACLs.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use herald_client::notification::{user_channel, BROADCAST_CHANNEL, HISTORY_LIMIT};
use herald_client::{NotificationKind, NotificationService};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::api::{authenticate, json_body, parse_limit, query_pairs};
use crate::auth::{now_secs, Claims, Grants};
use crate::dashboard::require_operator;
use crate::error::RequestError;
use crate::hub::Hub;

/// Lifetime of a development token.
pub const DEV_TOKEN_TTL_SECS: u64 = 3600;
/// Longest user id accepted by the development sign-in.
pub const MAX_USER_ID_BYTES: usize = 64;
/// Longest notification title, bytes.
pub const MAX_TITLE_BYTES: usize = 200;
/// Longest notification text, bytes.
pub const MAX_TEXT_BYTES: usize = 4096;

fn service(hub: &Hub) -> Result<&NotificationService, RequestError> {
    hub.config.notifications.as_ref().ok_or_else(|| {
        RequestError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "notifications_unavailable",
            "this gateway runs without a keyspace, so it keeps no notification history",
        )
    })
}

fn storage_error(err: herald_client::Error) -> RequestError {
    tracing::warn!(%err, "gateway: notification storage failed");
    RequestError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "storage_unavailable",
        format!("the notification history could not be reached: {err}"),
    )
}

/// Whose notifications a request is about: the token's user, or for operators the
/// `user` parameter.
fn target_user(
    hub: &Hub,
    grants: &Grants,
    query: &[(String, String)],
) -> Result<String, RequestError> {
    let named = query
        .iter()
        .find(|(key, _)| key == "user")
        .map(|(_, user)| user.clone());
    let operator = require_operator(hub, grants).is_ok();
    match (named, grants.user()) {
        (Some(named), Some(own)) if named == own => Ok(named),
        (Some(named), _) if operator => {
            check_user_id(&named)?;
            Ok(named)
        }
        (Some(_), _) => Err(RequestError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "only operators may read another user's notifications",
        )),
        (None, Some(own)) => Ok(own.to_owned()),
        (None, None) => Err(RequestError::bad_request(
            "bad_request",
            "no user: without a token, name one with '?user='",
        )),
    }
}

fn check_user_id(user: &str) -> Result<(), RequestError> {
    let valid = !user.is_empty()
        && user.len() <= MAX_USER_ID_BYTES
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'@'));
    if valid {
        Ok(())
    } else {
        Err(RequestError::bad_request(
            "bad_user",
            format!("a user id is 1 to {MAX_USER_ID_BYTES} letters, digits or '_-.@'"),
        ))
    }
}

fn unknown_parameters(query: &[(String, String)], allowed: &[&str]) -> Result<(), RequestError> {
    match query
        .iter()
        .find(|(key, _)| !allowed.contains(&key.as_str()))
    {
        Some((key, _)) => Err(RequestError::bad_request(
            "bad_request",
            format!("unknown query parameter '{key}' ({})", allowed.join(", ")),
        )),
        None => Ok(()),
    }
}

/// `GET /api/notifications`.
pub async fn list(
    State(hub): State<Arc<Hub>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Json<Value>, RequestError> {
    let query = query_pairs(query.as_deref());
    let grants = authenticate(&hub, &headers, &query)?;
    unknown_parameters(&query, &["limit", "user", "token"])?;
    let user = target_user(&hub, &grants, &query)?;
    let limit = match query.iter().find(|(key, _)| key == "limit") {
        None => 20,
        Some((_, value)) => parse_limit(value, HISTORY_LIMIT)?,
    };
    let service = service(&hub)?;
    // One read for both answers, so the count matches the list's moment.
    let all = service
        .recent(&user, HISTORY_LIMIT)
        .await
        .map_err(storage_error)?;
    let unread = all.iter().filter(|notification| !notification.read).count();
    let shown: Vec<_> = all.into_iter().take(limit).collect();
    Ok(Json(
        json!({ "user": user, "unread": unread, "notifications": shown }),
    ))
}

/// `POST /api/notifications/{id}/read`.
pub async fn mark_read(
    State(hub): State<Arc<Hub>>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Json<Value>, RequestError> {
    let query = query_pairs(query.as_deref());
    let grants = authenticate(&hub, &headers, &query)?;
    unknown_parameters(&query, &["user", "token"])?;
    let user = target_user(&hub, &grants, &query)?;
    let id: Uuid = id.parse().map_err(|_| {
        RequestError::bad_request(
            "bad_id",
            format!("'{id}' is not a notification id (a UUID)"),
        )
    })?;
    let service = service(&hub)?;
    let marked = service
        .mark_as_read(&user, id)
        .await
        .map_err(storage_error)?;
    if !marked {
        return Err(RequestError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no notification {id} in the history of user '{user}'"),
        ));
    }
    let unread = service.unread_count(&user).await.map_err(storage_error)?;
    Ok(Json(json!({ "id": id, "read": true, "unread": unread })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SendBody {
    #[serde(default)]
    user: Option<String>,
    #[serde(rename = "type", default = "default_kind")]
    kind: NotificationKind,
    title: String,
    message: String,
    #[serde(default)]
    data: Option<Value>,
}

fn default_kind() -> NotificationKind {
    NotificationKind::Info
}

/// `POST /api/notifications/send`.
pub async fn send(
    State(hub): State<Arc<Hub>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, RequestError> {
    let grants = authenticate(&hub, &headers, &query_pairs(query.as_deref()))?;
    let request: SendBody = json_body(
        body,
        r#"{"user": "<id>" or null, "type": "info|warning|error|success", "title": "...", "message": "...", "data"?: ...}"#,
    )?;
    if request.title.is_empty() || request.title.len() > MAX_TITLE_BYTES {
        return Err(RequestError::bad_request(
            "bad_request",
            format!("'title' must be 1 to {MAX_TITLE_BYTES} bytes"),
        ));
    }
    if request.message.len() > MAX_TEXT_BYTES {
        return Err(RequestError::bad_request(
            "bad_request",
            format!("'message' must be at most {MAX_TEXT_BYTES} bytes"),
        ));
    }
    let service = service(&hub)?;
    let sent = match &request.user {
        Some(user) => {
            check_user_id(user)?;
            grants.check_publish(&user_channel(user))?;
            service
                .send_to_user(
                    user,
                    request.kind,
                    &request.title,
                    &request.message,
                    request.data,
                )
                .await
        }
        None => {
            grants.check_publish(BROADCAST_CHANNEL)?;
            service
                .broadcast(request.kind, &request.title, &request.message, request.data)
                .await
        }
    }
    .map_err(storage_error)?;
    Ok(Json(json!({ "notification": sent })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DevTokenBody {
    user: String,
    #[serde(default)]
    admin: bool,
}

/// `POST /api/dev/token`.
pub async fn dev_token(
    State(hub): State<Arc<Hub>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, RequestError> {
    let Some(signer) = &hub.config.dev_tokens else {
        return Err(RequestError::new(
            StatusCode::NOT_FOUND,
            "dev_tokens_disabled",
            "development sign-in is off: start the server with --gateway-dev-tokens (loopback only)",
        ));
    };
    let request: DevTokenBody = json_body(body, r#"{"user": "<id>", "admin"?: bool}"#)?;
    check_user_id(&request.user)?;
    let expires_at = now_secs().saturating_add(DEV_TOKEN_TTL_SECS);
    // Users may send demo notifications to anyone but read only their own; operators
    // may read and publish everything.
    let claims = if request.admin {
        Claims {
            sub: request.user.clone(),
            subscribe: vec!["*".to_owned()],
            publish: vec!["*".to_owned()],
            exp: expires_at,
            admin: true,
        }
    } else {
        Claims {
            sub: request.user.clone(),
            subscribe: Vec::new(),
            publish: vec![format!("{}*", user_channel(""))],
            exp: expires_at,
            admin: false,
        }
    };
    let token = signer.sign(&claims)?;
    tracing::info!(user = %request.user, admin = request.admin, "gateway: minted a development token");
    Ok(Json(
        json!({ "token": token, "user": request.user, "admin": request.admin, "expires_at": expires_at }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_keyspace_the_routes_answer_503() {
        let hub = Hub::new(
            Arc::new(herald_engine::Engine::new()),
            crate::GatewayConfig::default(),
            None,
        );
        let err = service(&hub).err();
        assert_eq!(
            err.map(|e| (e.status, e.code)),
            Some((StatusCode::SERVICE_UNAVAILABLE, "notifications_unavailable"))
        );
    }

    #[test]
    fn user_ids_are_short_and_plain() {
        for good in ["alice", "42", "a.b-c_d@example.com"] {
            assert!(check_user_id(good).is_ok(), "{good}");
        }
        let long = "x".repeat(MAX_USER_ID_BYTES + 1);
        for bad in ["", "a b", "a*", "ü", "a:b", long.as_str()] {
            assert_eq!(
                check_user_id(bad).err().map(|e| e.code),
                Some("bad_user"),
                "{bad}"
            );
        }
    }
}
