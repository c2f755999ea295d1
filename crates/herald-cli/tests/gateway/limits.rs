//! Limits: subscriptions per connection, message size, connections, slow consumers,
//! and the SSE keep-alive.

use std::time::Duration;

use futures_util::SinkExt;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use crate::*;

#[tokio::test]
async fn subscriptions_per_connection_are_capped() {
    let herald = start(&["--gateway-max-subscriptions", "2"]);
    let mut ws = ws_open(&herald.http, None).await;
    let reply = request(
        &mut ws,
        json!({"type": "subscribe", "channels": ["a", "b", "c"]}),
    )
    .await;
    assert_eq!(reply["code"], "too_many_subscriptions");
    assert_eq!(
        request(
            &mut ws,
            json!({"type": "subscribe", "channels": ["a", "b"]})
        )
        .await["count"],
        2
    );
    // Re-subscribing to held channels takes no room.
    assert_eq!(
        request(&mut ws, json!({"type": "subscribe", "channels": ["a"]})).await["count"],
        2
    );
    let reply = request(&mut ws, json!({"type": "subscribe", "patterns": ["p*"]})).await;
    assert_eq!(reply["code"], "too_many_subscriptions");
    let (status, body) = sse(&herald.http, "?channel=a&channel=b&channel=c")
        .await
        .unwrap_err();
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("too_many_subscriptions"))
    );
}

#[tokio::test]
async fn oversized_messages_are_refused() {
    let herald = start(&["--gateway-max-message-size", "1kb"]);
    let big = vec![b'x'; 2048];
    let (status, body) = http_json(&herald.http, "POST", "/api/publish/a", None, &big).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("message_too_large"))
    );
    let mut ws = ws_open(&herald.http, None).await;
    let text = json!({"type": "publish", "channel": "a", "data": String::from_utf8(big).unwrap()});
    ws.send(Message::Text(text.to_string().into()))
        .await
        .unwrap();
    assert_eq!(close_code(&mut ws).await, Some(1009));
}

#[tokio::test]
async fn connections_are_capped() {
    let herald = start(&["--gateway-max-connections", "1"]);
    let mut first = ws_open(&herald.http, None).await;
    let (status, body) = ws_connect(&herald.http, "", None).await.unwrap_err();
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("too_many_connections"))
    );
    let (status, _) = sse(&herald.http, "?channel=a").await.unwrap_err();
    assert_eq!(status, 503);
    assert_eq!(
        request(&mut first, json!({"type": "ping"})).await["type"],
        "pong"
    );
    let text = metrics(&herald.http).await;
    assert_eq!(
        sample(
            &text,
            "herald_net_connections_rejected_total{transport=\"ws\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "herald_net_connections_rejected_total{transport=\"sse\"}"
        ),
        Some(1.0)
    );
    // Closing frees the slot.
    drop(first);
    eventually("the slot to free up", || async {
        ws_connect(&herald.http, "", None).await.is_ok()
    })
    .await;
}

#[tokio::test]
async fn a_websocket_client_that_stops_reading_is_closed_as_a_slow_consumer() {
    let herald = start(&["--client-output-buffer-limit", "pubsub 256kb 0 0"]);
    let mut ws = ws_open(&herald.http, None).await;
    request(
        &mut ws,
        json!({"type": "subscribe", "channels": ["firehose"]}),
    )
    .await;
    // The client reads nothing while megabytes are published: socket buffers fill, then
    // the outbox passes its 256 KB budget.
    let payload = vec![b'x'; 64 * 1024];
    let mut conn = redis(&herald.resp).await;
    let mut published = 0;
    loop {
        let text = metrics(&herald.http).await;
        if sample(
            &text,
            "herald_pubsub_slow_consumer_disconnects_total{transport=\"ws\"}",
        ) == Some(1.0)
        {
            break;
        }
        publish_many(&mut conn, "firehose", &payload, 16).await;
        published += 16;
        assert!(
            published < 8192,
            "never closed after {published} messages of 64 KB"
        );
    }
    assert_eq!(
        numsub(&mut conn, "firehose").await,
        0,
        "the slow consumer's subscription is gone"
    );
    // Reading now: queued messages, then the documented close code (or a dropped socket
    // if the close frame could not be written in time).
    let code = close_code(&mut ws).await;
    assert!(matches!(code, Some(4008) | None), "{code:?}");
}

#[tokio::test]
async fn an_sse_client_that_stops_reading_is_cut_off_too() {
    let herald = start(&["--client-output-buffer-limit", "pubsub 256kb 0 0"]);
    let mut stalled = stalled_sse(&herald, "firehose").await;
    let payload = vec![b'y'; 64 * 1024];
    let mut conn = redis(&herald.resp).await;
    let mut published = 0;
    loop {
        let text = metrics(&herald.http).await;
        let series = "herald_pubsub_slow_consumer_disconnects_total{transport=\"sse\"}";
        if sample(&text, series) == Some(1.0) {
            break;
        }
        publish_many(&mut conn, "firehose", &payload, 16).await;
        published += 16;
        assert!(
            published < 8192,
            "never cut off after {published} messages of 64 KB"
        );
    }
    // Counted only after its subscription went back.
    assert_eq!(
        numsub(&mut conn, "firehose").await,
        0,
        "the slow consumer's subscription is gone"
    );
    // And its connection is closed: what was sent before, then the end (hyper alone would
    // keep it, parked in a write to a socket nobody reads).
    let closed = tokio::time::timeout(WAIT, async {
        let mut buf = vec![0; 64 * 1024];
        loop {
            match stalled.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the slow SSE consumer's connection stayed open"
    );
}

#[test]
fn sigterm_does_not_wait_for_an_sse_client_that_stopped_reading() {
    let herald = start(&[]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _stalled = runtime.block_on(async {
        let stalled = stalled_sse(&herald, "firehose").await;
        // About 12 MB: the socket buffers fill, the budget (32 MB) does not.
        let mut conn = redis(&herald.resp).await;
        let payload = vec![b'y'; 64 * 1024];
        publish_many(&mut conn, "firehose", &payload, 200).await;
        stalled
    });
    // Asserts the exit within `WAIT`; a graceful shutdown waiting for the stalled
    // response would never end.
    let status = herald.running.terminate();
    assert!(status.success(), "{status:?}");
}

/// An SSE subscriber of `channel` that sends its request and never reads: a raw TCP
/// connection with a small receive buffer, so that the server's writes soon stall.
async fn stalled_sse(herald: &Herald, channel: &str) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(herald.http.parse().unwrap()).await.unwrap();
    let request = format!("GET /sse?channel={channel} HTTP/1.1\r\nHost: herald\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut conn = redis(&herald.resp).await;
    let deadline = std::time::Instant::now() + WAIT;
    while numsub(&mut conn, channel).await != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the SSE client never subscribed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stream
}

#[tokio::test]
async fn sse_sends_keep_alive_comments() {
    let herald = start(&["--gateway-sse-keepalive", "1"]);
    let mut events = sse(&herald.http, "?channel=quiet").await.unwrap();
    assert_eq!(events.block().await, ": keep-alive");
}

/// PUBLISHes `payload` to `channel` `times` times, one after the other.
async fn publish_many(
    conn: &mut redis::aio::MultiplexedConnection,
    channel: &str,
    payload: &[u8],
    times: usize,
) {
    for _ in 0..times {
        let _: i64 = redis::cmd("PUBLISH")
            .arg(channel)
            .arg(payload)
            .query_async(conn)
            .await
            .unwrap();
    }
}

/// PUBSUB NUMSUB of one channel.
async fn numsub(conn: &mut redis::aio::MultiplexedConnection, channel: &str) -> i64 {
    let (_, count): (String, i64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query_async(conn)
        .await
        .unwrap();
    count
}
