//! Surviving the loss of the connection, on every back end, with a channel, a pattern and
//! a shard channel subscribed: handlers must get what is published after the reconnect.
//!
//! - Herald server and redis-server: the server kills the subscriber's connection
//!   (CLIENT KILL TYPE pubsub), then the server is stopped and started again on the same
//!   port.
//! - redis-server without HELLO: the same, over the RESP2 fallback (channel and pattern;
//!   shard channels are refused there).
//! - Embedded: a subscriber whose handler stalls is cut off by the engine's output limit
//!   (slow consumer), as a server would cut it off.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{collector, quick_backoff, recv, wait_event, Backend, WAIT};
use herald_client::{ConnectionEvent, Message, Subscriber};
use tokio::sync::{mpsc, Semaphore};

on_every_backend!(handlers_get_messages_published_after_a_reconnect);

const CHANNEL: &str = "rc:channel";
const PATTERN: &str = "rc:pattern:*";
const SHARD: &str = "rc:shard";

/// The Resubscribed event of [`subscribe_all_kinds`]'s subscriptions.
fn all_kinds_resubscribed(backend: &Backend) -> impl Fn(&ConnectionEvent) -> bool {
    let shard_channels = usize::from(backend.shard_channels());
    move |event| {
        *event
            == ConnectionEvent::Resubscribed {
                channels: 1,
                patterns: 1,
                shard_channels,
            }
    }
}

/// Subscribes a handler of each kind (no shard channel where the back end has none);
/// each reports `kind:payload`.
async fn subscribe_all_kinds(
    backend: &Backend,
    subscriber: &Subscriber,
    gate: Option<Arc<Semaphore>>,
) -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = collector::<String>();
    let handler = |label: &'static str, gate: Option<Arc<Semaphore>>| {
        let tx = Arc::clone(&tx);
        move |msg: Message| {
            let tx = Arc::clone(&tx);
            let gate = gate.clone();
            async move {
                if let Some(gate) = gate {
                    // Stalls the whole dispatcher until the test opens the gate.
                    gate.acquire().await.unwrap().forget();
                }
                let text = match msg.payload_str() {
                    Some(text) if text.len() < 100 => text.to_owned(),
                    _ => format!("<{} bytes>", msg.payload.len()),
                };
                tx.send(format!("{label}:{text}")).unwrap();
            }
        }
    };
    subscriber
        .subscribe(CHANNEL, handler("channel", gate))
        .await
        .unwrap();
    subscriber
        .psubscribe(PATTERN, handler("pattern", None))
        .await
        .unwrap();
    let shard = subscriber.ssubscribe(SHARD, handler("shard", None)).await;
    if backend.shard_channels() {
        shard.unwrap();
    } else {
        common::assert_shard_refused(shard);
    }
    rx
}

/// Publishes `label` on the channel, a channel matching the pattern, and the shard
/// channel, retrying while the publisher's own connection comes back; each must reach
/// exactly one subscription.
async fn publish_round(backend: &Backend, label: &str) {
    let publisher = backend.herald.publisher();
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut targets = vec![
        (false, CHANNEL.to_owned()),
        (false, "rc:pattern:x".to_owned()),
    ];
    if backend.shard_channels() {
        targets.push((true, SHARD.to_owned()));
    }
    for (shard, channel) in targets {
        loop {
            let sent = if shard {
                publisher.spublish(&channel, label.to_owned()).await
            } else {
                publisher.publish(&channel, label.to_owned()).await
            };
            match sent {
                Ok(receivers) => {
                    assert_eq!(receivers, 1, "{channel}");
                    break;
                }
                Err(err) if err.is_connection_error() && tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(err) => panic!("publish {channel}: {err}"),
            }
        }
    }
}

async fn expect_round(
    backend: &Backend,
    received: &mut mpsc::UnboundedReceiver<String>,
    label: &str,
) {
    let mut expected = vec![format!("channel:{label}"), format!("pattern:{label}")];
    if backend.shard_channels() {
        expected.push(format!("shard:{label}"));
    }
    let mut got = Vec::new();
    while got.len() < expected.len() {
        let item = recv(received).await;
        // Messages from before the reconnect may still drain first.
        if item.ends_with(&format!(":{label}")) {
            got.push(item);
        }
    }
    got.sort();
    assert_eq!(got, expected);
}

async fn handlers_get_messages_published_after_a_reconnect(backend: Backend) {
    if backend.is_remote() {
        server_side_disconnects(backend).await;
    } else {
        embedded_slow_consumer(backend).await;
    }
}

async fn server_side_disconnects(mut backend: Backend) {
    let subscriber = Subscriber::builder(&backend.herald)
        .backoff(quick_backoff())
        .build()
        .unwrap();
    let mut events = subscriber.events();
    let mut received = subscribe_all_kinds(&backend, &subscriber, None).await;
    publish_round(&backend, "before").await;
    expect_round(&backend, &mut received, "before").await;

    assert!(backend.kill_subscriber_connections().await >= 1);
    let event = wait_event(&mut events, "disconnected", |e| {
        matches!(e, ConnectionEvent::Disconnected { .. })
    })
    .await;
    println!("after CLIENT KILL: {event:?}");
    wait_event(&mut events, "connected", |e| {
        *e == ConnectionEvent::Connected
    })
    .await;
    wait_event(
        &mut events,
        "resubscribed",
        all_kinds_resubscribed(&backend),
    )
    .await;
    publish_round(&backend, "after-kill").await;
    expect_round(&backend, &mut received, "after-kill").await;

    backend.stop_server().await;
    wait_event(&mut events, "disconnected", |e| {
        matches!(e, ConnectionEvent::Disconnected { .. })
    })
    .await;
    // While the server is down, attempts fail and back off.
    let failed = wait_event(&mut events, "connect failed", |e| {
        matches!(e, ConnectionEvent::ConnectFailed { .. })
    })
    .await;
    println!("while the server is down: {failed:?}");
    // A subscription made while disconnected is recorded and made on reconnect.
    let (late_tx, mut late) = collector::<String>();
    let late_subscription = tokio::spawn({
        let subscriber = subscriber.clone();
        async move {
            subscriber
                .subscribe("rc:late", move |msg: Message| {
                    let late_tx = Arc::clone(&late_tx);
                    async move { late_tx.send(msg.payload_str().unwrap().to_owned()).unwrap() }
                })
                .await
        }
    });
    let deadline = tokio::time::Instant::now() + WAIT;
    while !subscriber
        .subscriptions()
        .iter()
        .any(|(_, name)| name == "rc:late")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the late subscription was not recorded"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    backend.start_server_again().await;
    wait_event(&mut events, "resubscribed", |e| {
        *e == ConnectionEvent::Resubscribed {
            channels: 2,
            patterns: 1,
            shard_channels: usize::from(backend.shard_channels()),
        }
    })
    .await;
    tokio::time::timeout(WAIT, late_subscription)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    publish_round(&backend, "after-restart").await;
    expect_round(&backend, &mut received, "after-restart").await;
    assert_eq!(
        backend
            .herald
            .publisher()
            .publish("rc:late", "hi")
            .await
            .unwrap(),
        1
    );
    assert_eq!(recv(&mut late).await, "hi");
    subscriber.stop().await;
}

async fn embedded_slow_consumer(backend: Backend) {
    let subscriber = Subscriber::builder(&backend.herald)
        .queue_capacity(1)
        .build()
        .unwrap();
    let mut events = subscriber.events();
    let gate = Arc::new(Semaphore::new(0));
    let mut received = subscribe_all_kinds(&backend, &subscriber, Some(Arc::clone(&gate))).await;
    // 40 MB for a subscriber that does not read: over the 32 MB hard limit.
    let big = Bytes::from(vec![b'x'; 1 << 20]);
    let publisher = backend.herald.publisher();
    for _ in 0..40 {
        publisher.publish(CHANNEL, big.clone()).await.unwrap();
    }
    gate.add_permits(Semaphore::MAX_PERMITS);
    let event = wait_event(&mut events, "disconnected", |e| {
        matches!(e, ConnectionEvent::Disconnected { reason } if reason.contains("slow consumer"))
    })
    .await;
    println!("embedded: {event:?}");
    wait_event(
        &mut events,
        "resubscribed",
        all_kinds_resubscribed(&backend),
    )
    .await;
    publish_round(&backend, "after-cutoff").await;
    expect_round(&backend, &mut received, "after-cutoff").await;
    subscriber.stop().await;
}

/// A remote subscriber whose handlers stall until its queue overflows drops the
/// connection like a slow consumer, says so, and comes back with its subscriptions.
async fn remote_slow_consumer(backend: Backend) {
    const QUEUE: usize = 4;
    let subscriber = Subscriber::builder(&backend.herald)
        .queue_capacity(QUEUE)
        .build()
        .unwrap();
    let mut events = subscriber.events();
    let gate = Arc::new(Semaphore::new(0));
    let mut received = subscribe_all_kinds(&backend, &subscriber, Some(Arc::clone(&gate))).await;
    let publisher = backend.herald.publisher();
    // Flood until the subscriber gives up, not further: a flood that went on would
    // overflow the new connection too.
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut n = 0;
    let reason = 'flood: loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no slow-consumer disconnection"
        );
        publisher
            .publish(CHANNEL, format!("flood{n}"))
            .await
            .unwrap();
        n += 1;
        tokio::time::sleep(Duration::from_millis(2)).await;
        while let Ok(event) = events.try_recv() {
            if let ConnectionEvent::Disconnected { reason } = event {
                break 'flood reason;
            }
        }
    };
    println!("remote: {reason}");
    assert!(reason.contains("slow consumer"), "{reason}");
    wait_event(
        &mut events,
        "resubscribed",
        all_kinds_resubscribed(&backend),
    )
    .await;
    gate.add_permits(Semaphore::MAX_PERMITS);
    // The one in the handler and the queued ones come through; the rest were lost.
    for n in 0..=QUEUE {
        assert_eq!(recv(&mut received).await, format!("channel:flood{n}"));
    }
    publish_round(&backend, "after-overflow").await;
    expect_round(&backend, &mut received, "after-overflow").await;
    subscriber.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn herald_server_slow_consumer_comes_back() {
    let backend = Backend::start(common::Kind::Herald).await;
    tokio::time::timeout(common::TEST_TIMEOUT, remote_slow_consumer(backend))
        .await
        .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_resp2_slow_consumer_comes_back() {
    let backend = Backend::start(common::Kind::RedisResp2).await;
    tokio::time::timeout(common::TEST_TIMEOUT, remote_slow_consumer(backend))
        .await
        .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_server_slow_consumer_comes_back() {
    let backend = Backend::start(common::Kind::Redis).await;
    tokio::time::timeout(common::TEST_TIMEOUT, remote_slow_consumer(backend))
        .await
        .expect("test timed out");
}
