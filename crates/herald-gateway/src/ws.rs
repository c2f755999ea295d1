//! `GET /ws`: the WebSocket session.
//!
//! Authentication and the connection limit are checked before the upgrade (401/403/503
//! with a JSON body). After it, a reader loop handles the client's JSON requests and a
//! writer loop drains the session's outbox into text frames, batched per flush. Replies
//! go through the outbox too, behind a hold (as on the RESP side), so a `subscribed`
//! acknowledgement always precedes the messages of that subscription.
//!
//! Close codes (also in `docs/gateway-protocol.md`): 1000 normal, 1001 server shutting
//! down, 1009 inbound message too large, [`CLOSE_SLOW_CONSUMER`] output budget exceeded,
//! [`CLOSE_TOKEN_EXPIRED`] the token's `exp` passed.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use herald_engine::{OutboxBatch, Outgoing, Scope};
use serde_json::{json, Value};

use crate::api::{authenticate, query_pairs};
use crate::auth::{now_secs, Grants};
use crate::error::RequestError;
use crate::hub::{GatewayStats, Hub, Session, Transport};
use crate::protocol::{error_json, payload_of, reply_json, ClientFrame};

/// Close code: the client fell behind its output budget (slow consumer).
pub const CLOSE_SLOW_CONSUMER: u16 = 4008;
/// Close code: the token expired while connected.
pub const CLOSE_TOKEN_EXPIRED: u16 = 4001;
/// Close code: an inbound message exceeded the size limit (RFC 6455 "message too big").
pub const CLOSE_TOO_LARGE: u16 = 1009;
/// Close code: the server is shutting down.
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// Most bytes taken from the outbox per flush.
const WRITE_BATCH_BYTES: usize = 256 * 1024;
/// How long a close frame may take to go out before the socket is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// The upgrade handler.
pub async fn upgrade(
    State(hub): State<Arc<Hub>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let grants = match authenticate(&hub, &headers, &query_pairs(query.as_deref())) {
        Ok(grants) => grants,
        Err(err) => return err.into_response(),
    };
    let session = match hub.open(Transport::WebSocket) {
        Ok(session) => session,
        Err(err) => return err.into_response(),
    };
    let max = hub.config.limits.max_message_bytes;
    upgrade
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| run(socket, session, grants))
}

/// Why a session ended.
#[derive(Debug)]
enum End {
    ClientClosed,
    ReadFailed,
    TooLarge,
    TokenExpired,
    OutboxClosed,
    WriteFailed,
}

async fn run(socket: WebSocket, mut session: Session, grants: Grants) {
    let (mut sink, mut stream) = socket.split();
    let outbox = Arc::clone(session.outbox());
    let hub = Arc::clone(session.hub());
    let end = {
        let reader = read_loop(&mut stream, &mut session, &grants);
        let writer = write_loop(&mut sink, &outbox, &hub);
        let expiry = expiry(&grants);
        tokio::select! {
            end = reader => end,
            end = writer => end,
            () = expiry => End::TokenExpired,
        }
    };
    let close = match end {
        End::ClientClosed | End::ReadFailed | End::WriteFailed => None,
        End::TooLarge => Some((CLOSE_TOO_LARGE, "message too large")),
        End::TokenExpired => Some((CLOSE_TOKEN_EXPIRED, "token expired")),
        End::OutboxClosed if session.note_slow_consumer() => Some((
            CLOSE_SLOW_CONSUMER,
            "slow consumer: output buffer limit exceeded",
        )),
        End::OutboxClosed => Some((CLOSE_GOING_AWAY, "server shutting down")),
    };
    tracing::debug!(client = %outbox.id(), ?end, "websocket session ended");
    if let Some((code, reason)) = close {
        let frame = Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        }));
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.send(frame)).await;
    }
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.close()).await;
    drop(session);
}

async fn expiry(grants: &Grants) {
    match grants.expires_at() {
        Some(exp) => {
            let left = exp.saturating_sub(now_secs());
            tokio::time::sleep(Duration::from_secs(left)).await;
        }
        None => std::future::pending().await,
    }
}

async fn read_loop(
    stream: &mut futures_util::stream::SplitStream<WebSocket>,
    session: &mut Session,
    grants: &Grants,
) -> End {
    while let Some(message) = stream.next().await {
        let message = match message {
            Ok(message) => message,
            Err(err) => {
                let text = err.to_string();
                tracing::debug!(error = %text, "websocket read failed");
                // tungstenite reports a size limit as a capacity error.
                return if text.contains("too long") || text.contains("Space limit") {
                    End::TooLarge
                } else {
                    End::ReadFailed
                };
            }
        };
        let outbox = Arc::clone(session.outbox());
        match message {
            Message::Text(text) => {
                GatewayStats::add(&session.stats().bytes_in, text.len() as u64);
                outbox.hold();
                let reply = handle(session, grants, text.as_str());
                outbox.push_frame(bytes::Bytes::from(reply.into_bytes()));
                outbox.release_held(false);
            }
            Message::Binary(data) => {
                GatewayStats::add(&session.stats().bytes_in, data.len() as u64);
                let reply = error_json(
                    "binary_frame",
                    "requests are JSON text frames; send binary payloads base64-encoded",
                    None,
                );
                outbox.push_frame(bytes::Bytes::from(reply.into_bytes()));
            }
            Message::Close(_) => return End::ClientClosed,
            Message::Ping(_) | Message::Pong(_) => {}
        }
        if outbox.is_killed() {
            return End::OutboxClosed;
        }
    }
    End::ClientClosed
}

/// Runs one request; returns the reply frame.
fn handle(session: &mut Session, grants: &Grants, text: &str) -> String {
    let frame: ClientFrame = match serde_json::from_str(text) {
        Ok(frame) => frame,
        Err(err) => {
            let id = serde_json::from_str::<Value>(text)
                .ok()
                .and_then(|value| value.get("id").cloned());
            let code = if serde_json::from_str::<Value>(text).is_ok() {
                "bad_request"
            } else {
                "bad_json"
            };
            return error_json(code, &err.to_string(), id.as_ref());
        }
    };
    match frame {
        ClientFrame::Subscribe {
            channels,
            patterns,
            id,
        } => match subscribe(session, grants, &channels, &patterns) {
            Ok(()) => reply_json(
                "subscribed",
                id.as_ref(),
                json!({
                    "channels": channels,
                    "patterns": patterns,
                    "count": session.subscription_count(),
                }),
            ),
            Err(err) => error_json(err.code, &err.message, id.as_ref()),
        },
        ClientFrame::Unsubscribe {
            channels,
            patterns,
            id,
        } => {
            let everything = channels.is_none() && patterns.is_none();
            let channels = channels.unwrap_or_else(|| {
                if everything {
                    session.channels()
                } else {
                    Vec::new()
                }
            });
            let patterns = patterns.unwrap_or_else(|| {
                if everything {
                    session.patterns()
                } else {
                    Vec::new()
                }
            });
            for channel in &channels {
                session.unsubscribe(channel);
            }
            for pattern in &patterns {
                session.punsubscribe(pattern);
            }
            reply_json(
                "unsubscribed",
                id.as_ref(),
                json!({
                    "channels": channels,
                    "patterns": patterns,
                    "count": session.subscription_count(),
                }),
            )
        }
        ClientFrame::Publish {
            channel,
            data,
            encoding,
            id,
        } => match publish(session, grants, channel, &data, encoding.as_deref()) {
            Ok(receivers) => {
                reply_json("published", id.as_ref(), json!({ "receivers": receivers }))
            }
            Err(err) => error_json(err.code, &err.message, id.as_ref()),
        },
        ClientFrame::Ping { id } => reply_json("pong", id.as_ref(), json!({})),
    }
}

/// All-or-nothing: one forbidden name and nothing is subscribed.
fn subscribe(
    session: &mut Session,
    grants: &Grants,
    channels: &[String],
    patterns: &[String],
) -> Result<(), RequestError> {
    if channels.is_empty() && patterns.is_empty() {
        return Err(RequestError::bad_request(
            "bad_request",
            "subscribe needs 'channels' or 'patterns'",
        ));
    }
    for channel in channels {
        grants.check_subscribe(channel)?;
    }
    for pattern in patterns {
        grants.check_psubscribe(pattern)?;
    }
    session.check_room(channels, patterns)?;
    for channel in channels {
        session.subscribe(channel);
    }
    for pattern in patterns {
        session.psubscribe(pattern);
    }
    Ok(())
}

fn publish(
    session: &Session,
    grants: &Grants,
    channel: String,
    data: &Value,
    encoding: Option<&str>,
) -> Result<usize, RequestError> {
    grants.check_publish(&channel)?;
    let payload = payload_of(data, encoding)?;
    let hub = session.hub();
    GatewayStats::add(&hub.stats.published, 1);
    Ok(hub.engine.publish(
        Scope::Classic,
        bytes::Bytes::from(channel.into_bytes()),
        payload,
    ))
}

async fn write_loop(
    sink: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    outbox: &herald_engine::Outbox,
    hub: &Hub,
) -> End {
    let stats = hub.stats.of(Transport::WebSocket);
    let mut entries = Vec::new();
    loop {
        entries.clear();
        match outbox.take_batch(&mut entries, WRITE_BATCH_BYTES) {
            OutboxBatch::Ready => {}
            OutboxBatch::Empty => {
                tokio::select! {
                    _ = outbox.output_ready() => {}
                    _ = outbox.killed() => return End::OutboxClosed,
                }
                continue;
            }
            OutboxBatch::Finished | OutboxBatch::Killed => return End::OutboxClosed,
        }
        let mut bytes = 0u64;
        let mut delivered = 0u64;
        let mut frames = Vec::with_capacity(entries.len());
        for entry in entries.drain(..) {
            let text = match entry {
                Outgoing::Frame(frame) => match Utf8Bytes::try_from(frame) {
                    Ok(text) => text,
                    Err(_) => continue,
                },
                deliveries => {
                    for delivery in deliveries.deliveries() {
                        delivered += 1;
                        let text = hub.frames.frame(&delivery);
                        bytes += text.len() as u64;
                        frames.push(Message::Text(text));
                    }
                    continue;
                }
            };
            bytes += text.len() as u64;
            frames.push(Message::Text(text));
        }
        let write = async {
            for frame in frames {
                sink.feed(frame).await?;
            }
            sink.flush().await
        };
        let result = tokio::select! {
            result = write => result,
            _ = outbox.killed() => return End::OutboxClosed,
        };
        if result.is_err() {
            return End::WriteFailed;
        }
        GatewayStats::add(&stats.bytes_out, bytes);
        GatewayStats::add(&stats.delivered, delivered);
    }
}
