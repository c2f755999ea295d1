//! The dashboard's data: server totals, a five-minute history of message rates, the top
//! channels, and a live stream of all that.
//!
//! - `GET /api/stats`: totals now and the rate history ([`stats_json`]).
//! - `GET /api/top-channels?by=rate|subscribers&limit=N&search=TEXT`: the top channels
//!   (the engine keeps no row per channel for this; see `herald_engine::activity`).
//! - `GET /api/stats/stream`: Server-Sent Events, one `stats` event per second with the
//!   totals and both top-10 lists; it ends when the token expires.
//! - `GET /api/whoami`: what the request's token allows, for the pages to adapt.
//!
//! Every route but `whoami` needs an operator: a token with the `admin` claim, or the
//! anonymous mode on a loopback address ([`require_operator`]).
//!
//! The numbers come from the sampler (`sampler.rs`: rates and history, sampled once
//! a second) and straight from the engine and the RESP side's counters.

mod sampler;

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream::{self, Stream};
use herald_engine::{ChannelActivity, ChannelOrder, Scope};
use serde_json::{json, Value};

pub use sampler::{Dashboard, HISTORY_POINTS, SAMPLE_INTERVAL, VIEWER_WINDOW};

use sampler::unix_ms;

use crate::api::{authenticate, parse_limit, query_pairs};
use crate::auth::{now_secs, Grants};
use crate::error::RequestError;
use crate::hub::{Hub, Transport};

/// Rows in each top list of the live stream.
pub const STREAM_TOP: usize = 10;
/// Default and largest `limit` of `/api/top-channels`.
pub const DEFAULT_TOP: usize = 20;
/// Largest `limit` of `/api/top-channels`.
pub const MAX_TOP: usize = 100;
/// Rows of the slow-consumer table.
pub const BACKLOG_ROWS: usize = 10;
/// Longest `search` text, bytes.
pub const MAX_SEARCH_BYTES: usize = 256;

/// Refuses anyone but an operator: an `admin` token, or anonymous mode on loopback.
pub fn require_operator(hub: &Hub, grants: &Grants) -> Result<(), RequestError> {
    if hub.config.verifier.is_none() {
        if hub.config.addr.ip().is_loopback() {
            return Ok(());
        }
        return Err(RequestError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the dashboard needs a token with the 'admin' claim; without authentication it is served on a loopback address only",
        ));
    }
    if grants.is_admin() {
        Ok(())
    } else {
        Err(RequestError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the dashboard needs a token with the 'admin' claim",
        ))
    }
}

fn operator(
    hub: &Hub,
    headers: &HeaderMap,
    query: &[(String, String)],
) -> Result<Grants, RequestError> {
    let grants = authenticate(hub, headers, query)?;
    require_operator(hub, &grants)?;
    hub.dashboard.viewed();
    Ok(grants)
}

/// Totals now and the rate history, as `/api/stats` answers.
pub fn stats_json(hub: &Hub) -> Value {
    let engine = hub.engine.stats();
    let resp = hub
        .resp
        .as_ref()
        .map(|resp| resp.snapshot())
        .unwrap_or_default();
    let ws = hub.stats.of(Transport::WebSocket);
    let sse = hub.stats.of(Transport::Sse);
    let load = |counter: &std::sync::atomic::AtomicI64| {
        counter.load(std::sync::atomic::Ordering::Relaxed).max(0) as u64
    };
    let load_u =
        |counter: &std::sync::atomic::AtomicU64| counter.load(std::sync::atomic::Ordering::Relaxed);
    let (ws_now, sse_now) = (load(&ws.connections), load(&sse.connections));
    let (ws_slow, sse_slow) = (load_u(&ws.slow_consumers), load_u(&sse.slow_consumers));
    let history = hub.dashboard.history();
    let latest = history.last().copied();
    let mut backlog = hub.backlog(BACKLOG_ROWS);
    if let Some(resp) = &hub.resp {
        backlog.extend(resp.backlog(BACKLOG_ROWS));
    }
    crate::metrics::Backlog::keep_largest(&mut backlog, BACKLOG_ROWS);
    let backlog: Vec<Value> = backlog
        .into_iter()
        .map(|row| {
            json!({
                "transport": row.transport,
                "client": row.client,
                "peer": row.peer,
                "name": row.name,
                "queued_bytes": row.queued_bytes,
            })
        })
        .collect();
    json!({
        "time_ms": unix_ms(),
        "uptime_seconds": hub.dashboard.started.elapsed().as_secs(),
        "connections": {
            "resp": resp.connections,
            "ws": ws_now,
            "sse": sse_now,
            "total": resp.connections + ws_now + sse_now,
        },
        "channels": engine.channels,
        "shard_channels": engine.shard_channels,
        "patterns": engine.patterns,
        "messages": {
            "published_total": engine.messages_published,
            "delivered_total": engine.deliveries,
            "published_per_second": latest.map_or(0.0, |p| round2(p.published_per_sec)),
            "delivered_per_second": latest.map_or(0.0, |p| round2(p.delivered_per_sec)),
        },
        "slow_consumer_disconnects": {
            "resp": resp.slow_consumer_disconnects,
            "ws": ws_slow,
            "sse": sse_slow,
            "total": resp.slow_consumer_disconnects + ws_slow + sse_slow,
        },
        "backlog": backlog,
        "history": {
            "interval_seconds": SAMPLE_INTERVAL.as_secs(),
            "end_ms": latest.map_or(0, |p| p.unix_ms),
            "published_per_second": history.iter().map(|p| round2(p.published_per_sec)).collect::<Vec<_>>(),
            "delivered_per_second": history.iter().map(|p| round2(p.delivered_per_sec)).collect::<Vec<_>>(),
        },
    })
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

fn rows_json(rows: Vec<ChannelActivity>) -> Value {
    Value::Array(
        rows.into_iter()
            .map(|row| {
                json!({
                    "channel": String::from_utf8_lossy(&row.channel),
                    "subscribers": row.subscribers,
                    "rate": round2(row.rate),
                    "published": row.published,
                })
            })
            .collect(),
    )
}

/// `GET /api/stats`.
pub async fn stats(
    State(hub): State<Arc<Hub>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Json<Value>, RequestError> {
    operator(&hub, &headers, &query_pairs(query.as_deref()))?;
    Ok(Json(stats_json(&hub)))
}

/// What `/api/top-channels` was asked.
#[derive(Debug, PartialEq)]
struct TopQuery {
    order: ChannelOrder,
    limit: usize,
    search: Option<String>,
}

fn parse_top_query(query: &[(String, String)]) -> Result<TopQuery, RequestError> {
    let mut parsed = TopQuery {
        order: ChannelOrder::Rate,
        limit: DEFAULT_TOP,
        search: None,
    };
    for (key, value) in query {
        match key.as_str() {
            "by" => {
                parsed.order = match value.as_str() {
                    "rate" => ChannelOrder::Rate,
                    "subscribers" => ChannelOrder::Subscribers,
                    _ => {
                        return Err(RequestError::bad_request(
                            "bad_request",
                            format!("'by' must be 'rate' or 'subscribers', not '{value}'"),
                        ))
                    }
                }
            }
            "limit" => parsed.limit = parse_limit(value, MAX_TOP)?,
            "search" => {
                if value.len() > MAX_SEARCH_BYTES {
                    return Err(RequestError::bad_request(
                        "bad_request",
                        format!("'search' is longer than {MAX_SEARCH_BYTES} bytes"),
                    ));
                }
                parsed.search = Some(value.clone());
            }
            "token" => {}
            other => {
                return Err(RequestError::bad_request(
                    "bad_request",
                    format!("unknown query parameter '{other}' (by, limit, search, token)"),
                ))
            }
        }
    }
    Ok(parsed)
}

/// `GET /api/top-channels`.
pub async fn top_channels(
    State(hub): State<Arc<Hub>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Json<Value>, RequestError> {
    let query = query_pairs(query.as_deref());
    operator(&hub, &headers, &query)?;
    let top = parse_top_query(&query)?;
    let rows = hub.engine.top_channels(
        Scope::Classic,
        top.order,
        top.limit,
        top.search.as_deref().map(str::as_bytes),
    );
    Ok(Json(json!({
        "by": match top.order { ChannelOrder::Rate => "rate", ChannelOrder::Subscribers => "subscribers" },
        "limit": top.limit,
        "search": top.search.unwrap_or_default(),
        "channels": rows_json(rows),
    })))
}

/// The live stream's event body: the stats and both top-10 lists.
fn live_body(hub: &Hub) -> String {
    let mut body = stats_json(hub);
    let mut tops = hub
        .engine
        .top_channels_each(
            Scope::Classic,
            &[ChannelOrder::Rate, ChannelOrder::Subscribers],
            STREAM_TOP,
            None,
        )
        .into_iter();
    body["top_by_rate"] = rows_json(tops.next().unwrap_or_default());
    body["top_by_subscribers"] = rows_json(tops.next().unwrap_or_default());
    body.to_string()
}

/// `GET /api/stats/stream`.
pub async fn stats_stream(
    State(hub): State<Arc<Hub>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let grants = match operator(&hub, &headers, &query_pairs(query.as_deref())) {
        Ok(grants) => grants,
        Err(err) => return err.into_response(),
    };
    Sse::new(live(hub, grants.expires_at()))
        .keep_alive(KeepAlive::default())
        .into_response()
}

fn live(hub: Arc<Hub>, expires_at: Option<u64>) -> impl Stream<Item = Result<Event, Infallible>> {
    let updates = hub.dashboard.live.subscribe();
    // The first event at once, built for this stream; then one per tick, shared.
    let first: Arc<str> = live_body(&hub).into();
    stream::unfold(Some((hub, updates, Some(first))), move |state| async move {
        let (hub, mut updates, first) = state?;
        let body = match first {
            Some(body) => Some(body),
            None => {
                tokio::select! {
                    changed = updates.changed() => {
                        if changed.is_err() {
                            return None;
                        }
                    }
                    _ = hub.shutdown.cancelled() => return None,
                }
                updates.borrow_and_update().clone()
            }
        };
        if expires_at.is_some_and(|at| now_secs() >= at) {
            let closing = Event::default()
                .event("herald.close")
                .data(r#"{"type":"close","code":"token_expired"}"#);
            return Some((Ok(closing), None));
        }
        hub.dashboard.viewed();
        let event = match body {
            Some(body) => Event::default().event("stats").data(&*body),
            None => Event::default().comment("no stats yet"),
        };
        Some((Ok(event), Some((hub, updates, None))))
    })
}

/// `GET /api/whoami`: the request's grants, for the pages.
pub async fn whoami(
    State(hub): State<Arc<Hub>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Json<Value>, RequestError> {
    let grants = authenticate(&hub, &headers, &query_pairs(query.as_deref()))?;
    let operator = require_operator(&hub, &grants).is_ok();
    Ok(Json(json!({
        "user": grants.user(),
        "anonymous": hub.config.verifier.is_none(),
        "admin": grants.is_admin(),
        "operator": operator,
        "subscribe": grants.subscribe_globs(),
        "publish": grants.publish_globs(),
        "may_publish": hub.config.verifier.is_none() || !grants.publish_globs().is_empty(),
        "expires_at": grants.expires_at(),
        "dev_tokens": hub.config.dev_tokens.is_some(),
        "notifications": hub.config.notifications.is_some(),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn top_query_defaults_and_checks_every_parameter() {
        assert_eq!(
            parse_top_query(&[]).ok(),
            Some(TopQuery {
                order: ChannelOrder::Rate,
                limit: DEFAULT_TOP,
                search: None
            })
        );
        let parsed = parse_top_query(&pairs(&[
            ("by", "subscribers"),
            ("limit", "5"),
            ("search", "ord"),
        ]));
        assert_eq!(
            parsed.ok(),
            Some(TopQuery {
                order: ChannelOrder::Subscribers,
                limit: 5,
                search: Some("ord".to_owned())
            })
        );
        for bad in [
            pairs(&[("by", "size")]),
            pairs(&[("limit", "0")]),
            pairs(&[("limit", "101")]),
            pairs(&[("limit", "ten")]),
            pairs(&[("search", &"x".repeat(MAX_SEARCH_BYTES + 1))]),
            pairs(&[("sort", "rate")]),
        ] {
            let err = parse_top_query(&bad).err();
            assert_eq!(
                err.map(|e| e.status),
                Some(StatusCode::BAD_REQUEST),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_backlog_lists_sessions_with_output_waiting_most_first() {
        let hub = Arc::new(Hub::new(
            Arc::new(herald_engine::Engine::new()),
            crate::GatewayConfig::default(),
            None,
        ));
        let idle = hub.open(Transport::WebSocket).ok();
        let small = hub.open(Transport::Sse).ok();
        let large = hub.open(Transport::WebSocket).ok();
        let (Some(_idle), Some(small), Some(large)) = (idle, small, large) else {
            panic!("sessions refused");
        };
        small
            .outbox()
            .push_frame(bytes::Bytes::from(vec![b'x'; 10]));
        large
            .outbox()
            .push_frame(bytes::Bytes::from(vec![b'x'; 1000]));
        let rows = hub.backlog(10);
        let summary: Vec<_> = rows.iter().map(|row| (row.transport, row.client)).collect();
        assert_eq!(
            summary,
            vec![
                ("ws", large.outbox().id().0),
                ("sse", small.outbox().id().0)
            ]
        );
        assert!(rows[0].queued_bytes >= 1000);
        assert_eq!(hub.backlog(1).len(), 1);
        assert_eq!(stats_json(&hub)["backlog"][0]["transport"], "ws");
    }
}
