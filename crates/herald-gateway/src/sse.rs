//! `GET /sse?channel=...&pattern=...`: Server-Sent Events, one event per message.
//!
//! Subscriptions are fixed by the query (repeat `channel` / `pattern`); authorization is
//! all-or-nothing before the response starts (401/403 JSON). The stream opens with an
//! `event: herald.subscribed` event, then one event per message with `event:` set to the
//! channel and `data:` the same JSON `message` frame as WebSocket sends, and a keep-alive
//! comment (`: keep-alive`) after each quiet interval. A client that falls behind its
//! output budget gets a last `event: herald.close` (if it still fits) and its connection
//! is closed, though hyper may be parked writing to it (`crate::conn`); a stream whose
//! token expires (`token_expired`) ends too, as a WebSocket is closed with 4001.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use futures_util::stream::{self, Stream};
use herald_engine::{Delivery, OutboxBatch, Outgoing};
use serde_json::json;

use crate::api::{authenticate, query_pairs};
use crate::auth::now_secs;
use crate::conn::{ConnectionCut, Cut};
use crate::error::RequestError;
use crate::hub::{GatewayStats, Hub, Session, Transport};

/// Event name of the first event, listing the subscriptions.
pub const SUBSCRIBED_EVENT: &str = "herald.subscribed";
/// Event name of the last event of a stream closed by the server.
pub const CLOSE_EVENT: &str = "herald.close";
/// Most bytes taken from the outbox at a time.
const READ_BATCH_BYTES: usize = 64 * 1024;

/// The SSE handler.
pub async fn stream(
    State(hub): State<Arc<Hub>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    // Absent only where the router is served without the gateway's listener (tests).
    connection: Option<Extension<ConnectInfo<ConnectionCut>>>,
) -> Response {
    let connection = connection.map(|Extension(ConnectInfo(info))| info.cut);
    match open(&hub, query.as_deref(), &headers, connection) {
        Ok((session, expires_at)) => {
            let keep_alive = KeepAlive::new()
                .interval(hub.config.sse_keep_alive)
                .text("keep-alive");
            Sse::new(events(session, expires_at))
                .keep_alive(keep_alive)
                .into_response()
        }
        Err(err) => err.into_response(),
    }
}

/// The session and its token's expiry (seconds since the epoch).
fn open(
    hub: &Arc<Hub>,
    query: Option<&str>,
    headers: &HeaderMap,
    connection: Option<Arc<Cut>>,
) -> Result<(Session, Option<u64>), RequestError> {
    let query = query_pairs(query);
    let grants = authenticate(hub, headers, &query)?;
    let mut channels = Vec::new();
    let mut patterns = Vec::new();
    for (key, value) in query {
        match key.as_str() {
            "channel" => channels.push(value),
            "pattern" => patterns.push(value),
            "token" => {}
            other => {
                return Err(RequestError::bad_request(
                    "bad_request",
                    format!("unknown query parameter '{other}' (channel, pattern, token)"),
                ))
            }
        }
    }
    if channels.is_empty() && patterns.is_empty() {
        return Err(RequestError::bad_request(
            "bad_request",
            "name at least one 'channel' or 'pattern' query parameter",
        ));
    }
    for channel in &channels {
        grants.check_subscribe(channel)?;
    }
    for pattern in &patterns {
        grants.check_psubscribe(pattern)?;
    }
    let mut session = hub.open(Transport::Sse)?;
    session.check_room(&channels, &patterns)?;
    for channel in &channels {
        session.subscribe(channel);
    }
    for pattern in &patterns {
        session.psubscribe(pattern);
    }
    session.release_when_killed(connection);
    Ok((session, grants.expires_at()))
}

struct Reader {
    session: Session,
    /// When the token expires; the stream ends there.
    deadline: Option<tokio::time::Instant>,
    pending: VecDeque<Delivery>,
    batch: Vec<Outgoing>,
    greeted: bool,
    done: bool,
}

fn events(
    session: Session,
    expires_at: Option<u64>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let deadline = expires_at.map(|exp| {
        tokio::time::Instant::now() + Duration::from_secs(exp.saturating_sub(now_secs()))
    });
    let reader = Reader {
        session,
        deadline,
        pending: VecDeque::new(),
        batch: Vec::new(),
        greeted: false,
        done: false,
    };
    stream::unfold(reader, |mut reader| async move {
        let event = reader.next_event().await?;
        Some((Ok(event), reader))
    })
}

impl Reader {
    async fn next_event(&mut self) -> Option<Event> {
        if self.done {
            return None;
        }
        if !self.greeted {
            self.greeted = true;
            let data = json!({
                "type": "subscribed",
                "channels": self.session.channels(),
                "patterns": self.session.patterns(),
                "count": self.session.subscription_count(),
            });
            return Some(
                Event::default()
                    .event(SUBSCRIBED_EVENT)
                    .data(data.to_string()),
            );
        }
        loop {
            if self
                .deadline
                .is_some_and(|deadline| tokio::time::Instant::now() >= deadline)
            {
                self.done = true;
                let data = json!({ "type": "close", "code": "token_expired" });
                return Some(Event::default().event(CLOSE_EVENT).data(data.to_string()));
            }
            if let Some(delivery) = self.pending.pop_front() {
                return Some(self.message_event(&delivery));
            }
            let outbox = Arc::clone(self.session.outbox());
            self.batch.clear();
            match outbox.take_batch(&mut self.batch, READ_BATCH_BYTES) {
                OutboxBatch::Ready => {
                    // SSE sessions queue no frames of their own, only deliveries.
                    self.pending
                        .extend(self.batch.drain(..).flat_map(Outgoing::deliveries));
                }
                OutboxBatch::Empty => {
                    let expiry = async {
                        match self.deadline {
                            Some(deadline) => tokio::time::sleep_until(deadline).await,
                            None => std::future::pending().await,
                        }
                    };
                    tokio::select! {
                        _ = outbox.output_ready() => {}
                        _ = outbox.killed() => {}
                        _ = expiry => {}
                    }
                }
                OutboxBatch::Finished | OutboxBatch::Killed => {
                    self.done = true;
                    // Counted by the session's watchdog when the outbox was killed.
                    let code = if self.session.is_slow_consumer() {
                        "slow_consumer"
                    } else {
                        "shutting_down"
                    };
                    let data = json!({ "type": "close", "code": code });
                    return Some(Event::default().event(CLOSE_EVENT).data(data.to_string()));
                }
            }
        }
    }

    fn message_event(&self, delivery: &Delivery) -> Event {
        let data = self.session.hub().frames.frame(delivery);
        let stats = self.session.stats();
        GatewayStats::add(&stats.delivered, 1);
        let channel = String::from_utf8_lossy(&delivery.message.channel);
        // An event name cannot hold a line break; such a channel keeps the default
        // `message` event and is still named in the data.
        let event = if channel.contains(['\r', '\n']) {
            Event::default()
        } else {
            Event::default().event(channel.as_ref())
        };
        GatewayStats::add(&stats.bytes_out, (data.len() + channel.len() + 16) as u64);
        event.data(data.as_str())
    }
}
