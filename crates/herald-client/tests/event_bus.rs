//! EventBus against every back end: the envelope on the wire, typed and pattern
//! handlers, prefixes, and envelopes that do not decode.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::{collector, expect_nothing, recv, Backend};
use futures_util::StreamExt;
use herald_client::{Event, EventBus, HandlerFailure, Subscriber};
use serde::{Deserialize, Serialize};

on_every_backend!(
    typed_and_pattern_handlers_receive_emitted_events,
    the_envelope_on_the_wire_is_type_timestamp_data,
    foreign_envelopes_are_accepted_and_bad_ones_reported,
    prefixes_are_configurable_and_matched_literally,
    off_removes_handlers,
);

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct UserCreated {
    id: u64,
    name: String,
}

async fn typed_and_pattern_handlers_receive_emitted_events(backend: Backend) {
    let bus = EventBus::new(&backend.herald);
    let (typed_tx, mut typed) = collector::<Event<UserCreated>>();
    bus.on("user.created", move |event: Event<UserCreated>| {
        let typed_tx = Arc::clone(&typed_tx);
        async move { typed_tx.send(event).unwrap() }
    })
    .await
    .unwrap();
    let (any_tx, mut any) = collector::<(String, serde_json::Value)>();
    bus.on_pattern("user.*", move |event: Event| {
        let any_tx = Arc::clone(&any_tx);
        async move { any_tx.send((event.event_type, event.data)).unwrap() }
    })
    .await
    .unwrap();
    let ada = UserCreated {
        id: 1,
        name: "Ada".into(),
    };
    let before = chrono::Utc::now() - chrono::Duration::milliseconds(1);
    assert_eq!(bus.emit("user.created", &ada).await.unwrap(), 2);
    let event = recv(&mut typed).await;
    assert_eq!(event.event_type, "user.created");
    assert_eq!(event.data, ada);
    assert!(event.timestamp >= before && event.timestamp <= chrono::Utc::now());
    assert_eq!(
        recv(&mut any).await,
        (
            "user.created".to_owned(),
            serde_json::json!({"id": 1, "name": "Ada"})
        )
    );
    assert_eq!(
        bus.emit("user.deleted", &serde_json::json!({"id": 1}))
            .await
            .unwrap(),
        1
    );
    assert_eq!(recv(&mut any).await.0, "user.deleted");
    assert_eq!(bus.emit("order.paid", &1).await.unwrap(), 0);
    expect_nothing(&mut typed).await;
    bus.stop().await;
}

async fn the_envelope_on_the_wire_is_type_timestamp_data(backend: Backend) {
    let raw = backend.herald.subscriber().unwrap();
    let mut wire = raw.stream("events:invoice.sent").await.unwrap();
    let bus = backend.herald.event_bus();
    bus.emit(
        "invoice.sent",
        &serde_json::json!({"amount": 12.5, "lines": ["a"]}),
    )
    .await
    .unwrap();
    let msg = tokio::time::timeout(common::WAIT, wire.next())
        .await
        .unwrap()
        .unwrap();
    let value: serde_json::Value = msg.json().unwrap();
    let object = value.as_object().unwrap();
    let mut keys: Vec<&String> = object.keys().collect();
    keys.sort();
    assert_eq!(keys, ["data", "timestamp", "type"]);
    assert_eq!(value["type"], "invoice.sent");
    assert_eq!(
        value["data"],
        serde_json::json!({"amount": 12.5, "lines": ["a"]})
    );
    // ISO-8601 UTC with milliseconds: 2026-12-01T19:40:00.123Z
    let timestamp = value["timestamp"].as_str().unwrap();
    assert_eq!(timestamp.len(), 24, "{timestamp}");
    assert!(
        timestamp.ends_with('Z') && timestamp.as_bytes()[10] == b'T',
        "{timestamp}"
    );
    assert!(chrono::DateTime::parse_from_rfc3339(timestamp).is_ok());
    raw.stop().await;
}

async fn foreign_envelopes_are_accepted_and_bad_ones_reported(backend: Backend) {
    let (report_tx, mut reports) = collector::<String>();
    let subscriber = Subscriber::builder(&backend.herald)
        .on_error(move |report| {
            assert!(matches!(report.failure, HandlerFailure::Decode(_)));
            report_tx
                .send(report.message.payload_str().unwrap_or("?").to_owned())
                .unwrap();
        })
        .build()
        .unwrap();
    let bus = EventBus::new(&backend.herald).with_subscriber(subscriber);
    let (tx, mut got) = collector::<Event<UserCreated>>();
    bus.on("user.created", move |event: Event<UserCreated>| {
        let tx = Arc::clone(&tx);
        async move { tx.send(event).unwrap() }
    })
    .await
    .unwrap();
    let publisher = backend.herald.publisher();
    let bad = [
        "not json",
        r#"{"type":"user.created","data":{"id":1,"name":"x"}}"#,
        r#"{"type":"user.created","timestamp":"2026-12-01T19:40:00Z","data":{"id":"one"}}"#,
    ];
    for payload in bad {
        publisher
            .publish("events:user.created", payload)
            .await
            .unwrap();
    }
    // What Python's datetime.isoformat() writes, with an offset.
    let python = r#"{"type": "user.created", "timestamp": "2026-12-01T19:40:00.123456+00:00", "data": {"id": 2, "name": "Grace"}}"#;
    publisher
        .publish("events:user.created", python)
        .await
        .unwrap();
    let event = recv(&mut got).await;
    assert_eq!(event.data.name, "Grace");
    assert_eq!(event.timestamp.timestamp_subsec_micros(), 123_456);
    let mut reported = Vec::new();
    for _ in 0..3 {
        reported.push(recv(&mut reports).await);
    }
    assert_eq!(reported, bad);
    // publish_event puts a ready-made envelope wherever it is told.
    let own = Event::new(
        "user.created",
        UserCreated {
            id: 3,
            name: "Lin".into(),
        },
    );
    publisher
        .publish_event("events:user.created", &own)
        .await
        .unwrap();
    assert_eq!(recv(&mut got).await.data.id, 3);
    bus.stop().await;
}

async fn prefixes_are_configurable_and_matched_literally(backend: Backend) {
    let bus = EventBus::with_prefix(&backend.herald, "app[1]:");
    assert_eq!(bus.channel("tick"), "app[1]:tick");
    assert_eq!(bus.prefix(), "app[1]:");
    let (tx, mut got) = collector::<String>();
    bus.on_pattern("t*", move |event: Event| {
        let tx = Arc::clone(&tx);
        async move { tx.send(event.event_type).unwrap() }
    })
    .await
    .unwrap();
    bus.emit("tick", &0).await.unwrap();
    assert_eq!(recv(&mut got).await, "tick");
    // "app1:tock" would match the unescaped glob app[1]:t*; the bus must not see it.
    let other = EventBus::with_prefix(&backend.herald, "app1:");
    assert_eq!(other.emit("tock", &0).await.unwrap(), 0);
    let default_bus = EventBus::new(&backend.herald);
    assert_eq!(default_bus.emit("tick", &0).await.unwrap(), 0);
    expect_nothing(&mut got).await;
    bus.stop().await;
}

async fn off_removes_handlers(backend: Backend) {
    let bus = EventBus::new(&backend.herald);
    bus.on("a", |_event: Event| async {}).await.unwrap();
    bus.on_pattern("b.*", |_event: Event| async {})
        .await
        .unwrap();
    assert_eq!(bus.emit("a", &1).await.unwrap(), 1);
    assert_eq!(bus.emit("b.x", &1).await.unwrap(), 1);
    bus.off("a").await.unwrap();
    bus.off_pattern("b.*").await.unwrap();
    assert_eq!(bus.emit("a", &1).await.unwrap(), 0);
    assert_eq!(bus.emit("b.x", &1).await.unwrap(), 0);
    assert!(bus.subscriber().unwrap().subscriptions().is_empty());
    bus.stop().await;
}
