//! Publisher and Subscriber against every back end: delivery through channels, patterns
//! and shard channels, several handlers, streams, introspection, unsubscribing, handler
//! failures and stopping.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{collector, expect_nothing, recv, Backend, WAIT};
use futures_util::StreamExt;
use herald_client::{Error, HandlerFailure, Message, MessageKind, Subscriber};
use serde::Deserialize;

on_every_backend!(
    handlers_receive_channel_pattern_and_shard_messages,
    several_handlers_each_get_every_message_in_order,
    publisher_reports_subscribers_channels_and_patterns,
    unsubscribing_stops_delivery,
    streams_deliver_and_unsubscribe_when_dropped,
    failing_panicking_and_undecodable_are_reported_and_isolated,
    json_handlers_get_typed_values,
    payloads_arrive_byte_for_byte,
    stop_waits_for_handlers_in_flight,
);

async fn handlers_receive_channel_pattern_and_shard_messages(backend: Backend) {
    let herald = &backend.herald;
    let subscriber = herald.subscriber().unwrap();
    let (tx, mut rx) = collector::<Message>();
    for (kind, name) in [
        ("channel", "news"),
        ("pattern", "news.*"),
        ("shard", "orders"),
    ] {
        let tx = Arc::clone(&tx);
        let handler = move |msg: Message| {
            let tx = Arc::clone(&tx);
            async move {
                tx.send(msg).unwrap();
            }
        };
        match kind {
            "channel" => subscriber.subscribe(name, handler).await.unwrap(),
            "pattern" => subscriber.psubscribe(name, handler).await.unwrap(),
            _ if !backend.shard_channels() => {
                common::assert_shard_refused(subscriber.ssubscribe(name, handler).await);
                continue;
            }
            _ => subscriber.ssubscribe(name, handler).await.unwrap(),
        };
    }
    let publisher = herald.publisher();
    assert_eq!(publisher.publish("news", "plain").await.unwrap(), 1);
    assert_eq!(
        recv(&mut rx).await,
        Message::new(MessageKind::Channel, "news", "plain")
    );
    assert_eq!(publisher.publish("news.eu", "matched").await.unwrap(), 1);
    let got = recv(&mut rx).await;
    assert_eq!(got.kind, MessageKind::Pattern("news.*".into()));
    assert_eq!(got.pattern(), Some("news.*"));
    assert_eq!(
        (got.channel.as_str(), got.payload_str()),
        ("news.eu", Some("matched"))
    );
    let shards = usize::from(backend.shard_channels());
    assert_eq!(
        publisher.spublish("orders", "sharded").await.unwrap(),
        shards
    );
    if shards > 0 {
        assert_eq!(
            recv(&mut rx).await,
            Message::new(MessageKind::Shard, "orders", "sharded")
        );
    }
    // Shard channels and classic channels are separate namespaces.
    assert_eq!(publisher.publish("orders", "classic").await.unwrap(), 0);
    assert_eq!(publisher.spublish("news", "shard").await.unwrap(), 0);
    expect_nothing(&mut rx).await;
    let mut subscriptions = subscriber.subscriptions();
    subscriptions.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(subscriptions.len(), 2 + shards);
    subscriber.stop().await;
}

async fn several_handlers_each_get_every_message_in_order(backend: Backend) {
    let subscriber = backend.herald.subscriber().unwrap();
    let (tx, mut rx) = collector::<(u8, String)>();
    for handler_number in 1..=3u8 {
        let tx = Arc::clone(&tx);
        subscriber
            .subscribe("ticks", move |msg: Message| {
                let tx = Arc::clone(&tx);
                async move {
                    tx.send((handler_number, msg.payload_str().unwrap().to_owned()))
                        .unwrap();
                }
            })
            .await
            .unwrap();
    }
    let publisher = backend.herald.publisher();
    for n in 0..50 {
        // One server subscription however many handlers.
        assert_eq!(publisher.publish("ticks", n.to_string()).await.unwrap(), 1);
    }
    let mut seen: [Vec<String>; 3] = Default::default();
    for _ in 0..150 {
        let (handler, payload) = recv(&mut rx).await;
        seen[usize::from(handler) - 1].push(payload);
    }
    let expected: Vec<String> = (0..50).map(|n| n.to_string()).collect();
    for each in &seen {
        assert_eq!(each, &expected);
    }
    subscriber.stop().await;
}

async fn publisher_reports_subscribers_channels_and_patterns(backend: Backend) {
    let publisher = backend.herald.publisher();
    assert_eq!(publisher.subscriber_count("metrics.cpu").await.unwrap(), 0);
    assert_eq!(publisher.pattern_count().await.unwrap(), 0);
    let first = backend.herald.subscriber().unwrap();
    let second = backend.herald.subscriber().unwrap();
    first
        .subscribe("metrics.cpu", |_m: Message| async {})
        .await
        .unwrap();
    second
        .subscribe("metrics.cpu", |_m: Message| async {})
        .await
        .unwrap();
    second
        .subscribe("logs", |_m: Message| async {})
        .await
        .unwrap();
    first
        .psubscribe("metrics.*", |_m: Message| async {})
        .await
        .unwrap();
    second
        .psubscribe("metrics.*", |_m: Message| async {})
        .await
        .unwrap();
    second
        .psubscribe("logs.*", |_m: Message| async {})
        .await
        .unwrap();
    assert_eq!(publisher.subscriber_count("metrics.cpu").await.unwrap(), 2);
    assert_eq!(publisher.subscriber_count("logs").await.unwrap(), 1);
    assert_eq!(publisher.pattern_count().await.unwrap(), 2);
    let mut all = publisher.active_channels(None).await.unwrap();
    all.sort();
    assert_eq!(all, ["logs", "metrics.cpu"]);
    assert_eq!(
        publisher.active_channels(Some("metrics.*")).await.unwrap(),
        ["metrics.cpu"]
    );
    // Two exact subscribers and two pattern subscribers.
    assert_eq!(publisher.publish("metrics.cpu", "1").await.unwrap(), 4);
    first.stop().await;
    second.stop().await;
    wait_until(|| async { publisher.subscriber_count("metrics.cpu").await.unwrap() == 0 }).await;
    assert_eq!(publisher.pattern_count().await.unwrap(), 0);
}

async fn wait_until<F, Fut>(mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met in time"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn unsubscribing_stops_delivery(backend: Backend) {
    let subscriber = backend.herald.subscriber().unwrap();
    let publisher = backend.herald.publisher();
    let (tx, mut rx) = collector::<String>();
    let handler = |label: &'static str| {
        let tx = Arc::clone(&tx);
        move |msg: Message| {
            let tx = Arc::clone(&tx);
            async move {
                tx.send(format!("{label}:{}", msg.payload_str().unwrap()))
                    .unwrap();
            }
        }
    };
    let a = subscriber.subscribe("room", handler("a")).await.unwrap();
    subscriber.subscribe("room", handler("b")).await.unwrap();
    subscriber.psubscribe("room.*", handler("p")).await.unwrap();
    if backend.shard_channels() {
        subscriber.ssubscribe("room", handler("s")).await.unwrap();
    } else {
        common::assert_shard_refused(subscriber.ssubscribe("room", handler("s")).await);
    }

    subscriber.remove_handler(a).await.unwrap();
    assert_eq!(publisher.publish("room", "1").await.unwrap(), 1);
    assert_eq!(recv(&mut rx).await, "b:1");
    expect_nothing(&mut rx).await;

    subscriber.unsubscribe("room").await.unwrap();
    assert_eq!(publisher.publish("room", "2").await.unwrap(), 0);
    subscriber.punsubscribe("room.*").await.unwrap();
    assert_eq!(publisher.publish("room.x", "3").await.unwrap(), 0);
    if backend.shard_channels() {
        assert_eq!(publisher.spublish("room", "4").await.unwrap(), 1);
        assert_eq!(recv(&mut rx).await, "s:4");
    }
    subscriber.sunsubscribe("room").await.unwrap();
    assert_eq!(publisher.spublish("room", "5").await.unwrap(), 0);
    expect_nothing(&mut rx).await;
    assert!(subscriber.subscriptions().is_empty());
    // Unsubscribing what is not subscribed is harmless.
    subscriber.unsubscribe("never").await.unwrap();
    subscriber.stop().await;
}

async fn streams_deliver_and_unsubscribe_when_dropped(backend: Backend) {
    let subscriber = backend.herald.subscriber().unwrap();
    let publisher = backend.herald.publisher();
    let mut channel = subscriber.stream("feed").await.unwrap();
    let mut pattern = subscriber.pstream("feed.*").await.unwrap();
    let mut shard = if backend.shard_channels() {
        Some(subscriber.sstream("feed").await.unwrap())
    } else {
        let err = subscriber.sstream("feed").await.unwrap_err();
        assert!(
            err.to_string().contains("shard channels need RESP3"),
            "{err}"
        );
        None
    };
    publisher.publish("feed", "c").await.unwrap();
    publisher.publish("feed.1", "p").await.unwrap();
    publisher.spublish("feed", "s").await.unwrap();
    assert_eq!(
        next(&mut channel).await.unwrap().unwrap().payload_str(),
        Some("c")
    );
    let p = next(&mut pattern).await.unwrap().unwrap();
    assert_eq!(
        (p.channel.as_str(), p.pattern()),
        ("feed.1", Some("feed.*"))
    );
    if let Some(shard) = &mut shard {
        assert_eq!(next(shard).await.unwrap().unwrap().kind, MessageKind::Shard);
    }

    drop(channel);
    wait_until(|| async { publisher.subscriber_count("feed").await.unwrap() == 0 }).await;
    assert_eq!(publisher.publish("feed", "gone").await.unwrap(), 0);

    subscriber.stop().await;
    // Streams end when the subscriber stops.
    assert!(next(&mut pattern).await.unwrap().is_none());
    if let Some(shard) = &mut shard {
        assert!(next(shard).await.unwrap().is_none());
    }
}

async fn next(
    stream: &mut herald_client::MessageStream,
) -> Result<Option<Message>, tokio::time::error::Elapsed> {
    tokio::time::timeout(WAIT, stream.next()).await
}

async fn failing_panicking_and_undecodable_are_reported_and_isolated(backend: Backend) {
    let (report_tx, mut reports) = collector::<String>();
    let subscriber = Subscriber::builder(&backend.herald)
        .on_error(move |report| {
            let kind = match &report.failure {
                HandlerFailure::Failed(err) => format!("failed:{err}"),
                HandlerFailure::Panicked(text) => format!("panicked:{text}"),
                HandlerFailure::Decode(_) => "decode".to_owned(),
            };
            report_tx
                .send(format!("{}:{kind}", report.message.channel))
                .unwrap();
        })
        .build()
        .unwrap();
    let (tx, mut good) = collector::<String>();
    subscriber
        .subscribe("jobs", |msg: Message| async move {
            if msg.payload_str() == Some("boom") {
                panic!("handler exploded");
            }
        })
        .await
        .unwrap();
    subscriber
        .subscribe("jobs", |_msg: Message| async {
            Err::<(), _>(std::io::Error::other("disk full"))
        })
        .await
        .unwrap();
    subscriber
        .subscribe_json("jobs", |_value: serde_json::Value| async {})
        .await
        .unwrap();
    {
        let tx = Arc::clone(&tx);
        subscriber
            .subscribe("jobs", move |msg: Message| {
                let tx = Arc::clone(&tx);
                async move { tx.send(msg.payload_str().unwrap().to_owned()).unwrap() }
            })
            .await
            .unwrap();
    }
    let publisher = backend.herald.publisher();
    for payload in ["boom", "not json", "{\"ok\":true}"] {
        publisher.publish("jobs", payload).await.unwrap();
    }
    for payload in ["boom", "not json", "{\"ok\":true}"] {
        assert_eq!(recv(&mut good).await, payload);
    }
    let mut got = Vec::new();
    // boom: panic + error + decode; "not json": error + decode; valid JSON: error.
    for _ in 0..6 {
        got.push(recv(&mut reports).await);
    }
    got.sort();
    assert_eq!(
        got,
        [
            "jobs:decode",
            "jobs:decode",
            "jobs:failed:disk full",
            "jobs:failed:disk full",
            "jobs:failed:disk full",
            "jobs:panicked:handler exploded",
        ]
    );
    expect_nothing(&mut reports).await;
    subscriber.stop().await;
}

#[derive(Debug, Deserialize, PartialEq)]
struct Order {
    id: u32,
    item: String,
}

async fn json_handlers_get_typed_values(backend: Backend) {
    let subscriber = backend.herald.subscriber().unwrap();
    let (tx, mut rx) = collector::<Order>();
    {
        let tx = Arc::clone(&tx);
        subscriber
            .subscribe_json("orders", move |order: Order| {
                let tx = Arc::clone(&tx);
                async move { tx.send(order).unwrap() }
            })
            .await
            .unwrap();
    }
    subscriber
        .psubscribe_json("order*", move |order: Order| {
            let tx = Arc::clone(&tx);
            async move { tx.send(order).unwrap() }
        })
        .await
        .unwrap();
    let publisher = backend.herald.publisher();
    let receivers = publisher
        .publish_json("orders", &serde_json::json!({"id": 7, "item": "tea"}))
        .await
        .unwrap();
    assert_eq!(receivers, 2);
    for _ in 0..2 {
        assert_eq!(
            recv(&mut rx).await,
            Order {
                id: 7,
                item: "tea".into()
            }
        );
    }
    // Wrong shape: both handlers skip it (decode errors), later messages still arrive.
    publisher
        .publish_json("orders", &serde_json::json!({"id": "x"}))
        .await
        .unwrap();
    publisher
        .publish_json("orders", &serde_json::json!({"id": 8, "item": "milk"}))
        .await
        .unwrap();
    for _ in 0..2 {
        assert_eq!(recv(&mut rx).await.id, 8);
    }
    subscriber.stop().await;
}

async fn payloads_arrive_byte_for_byte(backend: Backend) {
    let subscriber = backend.herald.subscriber().unwrap();
    let mut stream = subscriber.stream("bin").await.unwrap();
    let payloads: Vec<Vec<u8>> = vec![
        vec![],
        vec![0, 255, 13, 10, 0],
        "héllo wörld ✓".as_bytes().to_vec(),
        (0..=255u8).cycle().take(200_000).collect(),
    ];
    let publisher = backend.herald.publisher();
    for payload in &payloads {
        publisher.publish("bin", payload.clone()).await.unwrap();
    }
    for payload in &payloads {
        let msg = tokio::time::timeout(WAIT, stream.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(msg.payload.as_ref(), payload.as_slice());
    }
    subscriber.stop().await;
}

async fn stop_waits_for_handlers_in_flight(backend: Backend) {
    let subscriber = backend.herald.subscriber().unwrap();
    let finished = Arc::new(AtomicBool::new(false));
    let (started_tx, mut started) = collector::<()>();
    {
        let finished = Arc::clone(&finished);
        subscriber
            .subscribe("slow", move |_msg: Message| {
                let finished = Arc::clone(&finished);
                let started_tx = Arc::clone(&started_tx);
                async move {
                    started_tx.send(()).unwrap();
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    finished.store(true, Ordering::SeqCst);
                }
            })
            .await
            .unwrap();
    }
    backend
        .herald
        .publisher()
        .publish("slow", "x")
        .await
        .unwrap();
    recv(&mut started).await;
    let clone = subscriber.clone();
    clone.stop().await;
    assert!(
        finished.load(Ordering::SeqCst),
        "stop returned before the handler finished"
    );
    // Stopping again, on any handle, is immediate and harmless.
    subscriber.stop().await;
    let refused = subscriber.subscribe("later", |_m: Message| async {}).await;
    assert!(matches!(refused, Err(Error::Stopped)), "{refused:?}");
}

/// A subscription the server refuses (an ACL without the channel) fails with the
/// server's error and is not kept for replay; allowed ones still work. Redis only: Herald
/// has no ACL, and the embedded engine refuses nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_subscriptions_fail_and_are_forgotten() {
    let backend = Backend::start(common::Kind::Redis).await;
    let mut admin = backend.admin().await;
    let () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("limited")
        .arg(&["on", "nopass", "resetchannels", "&allowed:*", "+@all"])
        .query_async(&mut admin)
        .await
        .unwrap();
    let url = format!("redis://limited:x@127.0.0.1:{}/", backend.port().unwrap());
    let herald = herald_client::Herald::connect(&url).await.unwrap();
    let subscriber = herald.subscriber().unwrap();
    let refused = subscriber
        .subscribe("forbidden", |_m: Message| async {})
        .await
        .unwrap_err();
    assert!(
        refused.to_string().to_lowercase().contains("noperm"),
        "{refused}"
    );
    assert!(!refused.is_connection_error());
    assert!(subscriber.subscriptions().is_empty());
    let mut allowed = subscriber.stream("allowed:1").await.unwrap();
    assert_eq!(
        backend
            .herald
            .publisher()
            .publish("allowed:1", "ok")
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        next(&mut allowed).await.unwrap().unwrap().payload_str(),
        Some("ok")
    );
    subscriber.stop().await;
}

/// Two embedded handles over one engine and store see each other's messages and keys,
/// as front-ends sharing the engine in one process would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_handles_can_share_an_engine_and_store() {
    let engine = Arc::new(herald_engine::Engine::new());
    let store = Arc::new(herald_store::Store::new());
    let first = herald_client::Herald::embedded_with(Arc::clone(&engine), Arc::clone(&store));
    let second = herald_client::Herald::embedded_with(engine, store);
    let separate = herald_client::Herald::embedded();
    assert!(first.is_embedded());
    let subscriber = first.subscriber().unwrap();
    let mut shared = subscriber.stream("shared").await.unwrap();
    assert_eq!(second.publisher().publish("shared", "hi").await.unwrap(), 1);
    assert_eq!(
        next(&mut shared).await.unwrap().unwrap().payload_str(),
        Some("hi")
    );
    assert_eq!(
        separate
            .publisher()
            .publish("shared", "lost")
            .await
            .unwrap(),
        0
    );
    let sent = second
        .notifications()
        .send_to_user("1", herald_client::NotificationKind::Info, "t", "m", None)
        .await
        .unwrap();
    assert_eq!(first.notifications().recent("1", 5).await.unwrap(), [sent]);
    assert!(separate
        .notifications()
        .recent("1", 5)
        .await
        .unwrap()
        .is_empty());
    subscriber.stop().await;
}
