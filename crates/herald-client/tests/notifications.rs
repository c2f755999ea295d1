//! NotificationService against every back end: live delivery and history stored
//! together, newest first and capped, unread counts, broadcasts, and mark_as_read under
//! concurrent sends and marks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use common::{collector, expect_nothing, recv, Backend};
use herald_client::notification::{history_key, user_channel, HISTORY_LIMIT};
use herald_client::{Notification, NotificationKind, NotificationService};
use uuid::Uuid;

on_every_backend!(
    sent_notifications_are_delivered_live_and_already_in_history,
    history_is_newest_first_and_capped,
    mark_as_read_finds_the_notification_by_id,
    broadcasts_reach_everyone_and_are_not_stored,
    concurrent_sends_and_marks_lose_no_update,
);

async fn sent_notifications_are_delivered_live_and_already_in_history(backend: Backend) {
    let notifications = NotificationService::new(&backend.herald);
    let (tx, mut live) = collector::<(Notification, Vec<Uuid>)>();
    let reader = notifications.clone();
    notifications
        .subscribe_user("7", move |notification: Notification| {
            let tx = Arc::clone(&tx);
            let reader = reader.clone();
            async move {
                // Stored and published atomically: the history has it when it arrives.
                let stored = reader.recent("7", 100).await.unwrap();
                tx.send((notification, stored.iter().map(|n| n.id).collect()))
                    .unwrap();
            }
        })
        .await
        .unwrap();
    let (other_tx, mut other) = collector::<Notification>();
    notifications
        .subscribe_user("8", move |notification: Notification| {
            let other_tx = Arc::clone(&other_tx);
            async move { other_tx.send(notification).unwrap() }
        })
        .await
        .unwrap();
    let data = serde_json::json!({"invoice": 42});
    let sent = notifications
        .send_to_user(
            "7",
            NotificationKind::Success,
            "Paid",
            "Invoice 42 paid",
            Some(data.clone()),
        )
        .await
        .unwrap();
    assert_eq!(sent.user_id.as_deref(), Some("7"));
    assert_eq!((sent.kind, sent.read), (NotificationKind::Success, false));
    let (received, stored_ids) = recv(&mut live).await;
    assert_eq!(received, sent);
    assert!(stored_ids.contains(&sent.id));
    assert_eq!(received.data, data);
    expect_nothing(&mut other).await;
    assert_eq!(user_channel("7"), "notifications:user:7");
    assert_eq!(history_key("7"), "user:7:notifications");

    // The wire format, field by field, as another language would read it.
    let raw = backend.herald.subscriber().unwrap();
    let mut wire = raw.stream("notifications:user:7").await.unwrap();
    notifications
        .send_to_user("7", NotificationKind::Warning, "Disk", "90% full", None)
        .await
        .unwrap();
    let msg = tokio::time::timeout(common::WAIT, futures_util::StreamExt::next(&mut wire))
        .await
        .unwrap()
        .unwrap();
    let value: serde_json::Value = msg.json().unwrap();
    let mut keys: Vec<&str> = value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "data",
            "id",
            "message",
            "read",
            "timestamp",
            "title",
            "type",
            "user_id"
        ]
    );
    assert_eq!(value["type"], "warning");
    assert_eq!(value["user_id"], "7");
    assert!(value["id"].as_str().unwrap().parse::<Uuid>().is_ok());
    assert!(value["data"].is_null());
    raw.stop().await;
    notifications.stop().await;
}

async fn history_is_newest_first_and_capped(backend: Backend) {
    let notifications = NotificationService::new(&backend.herald);
    assert!(notifications.recent("u", 10).await.unwrap().is_empty());
    assert_eq!(notifications.unread_count("u").await.unwrap(), 0);
    let mut ids = Vec::new();
    for n in 0..HISTORY_LIMIT + 5 {
        let sent = notifications
            .send_to_user("u", NotificationKind::Info, &format!("n{n}"), "m", None)
            .await
            .unwrap();
        ids.push(sent.id);
    }
    let all = notifications.recent("u", 1000).await.unwrap();
    assert_eq!(all.len(), HISTORY_LIMIT);
    let expected: Vec<Uuid> = ids.iter().rev().take(HISTORY_LIMIT).copied().collect();
    assert_eq!(all.iter().map(|n| n.id).collect::<Vec<_>>(), expected);
    assert_eq!(all[0].title, format!("n{}", HISTORY_LIMIT + 4));
    let three = notifications.recent("u", 3).await.unwrap();
    assert_eq!(
        three.iter().map(|n| n.id).collect::<Vec<_>>(),
        expected[..3]
    );
    assert!(notifications.recent("u", 0).await.unwrap().is_empty());
    assert_eq!(
        notifications.unread_count("u").await.unwrap(),
        HISTORY_LIMIT
    );
    // The oldest five were trimmed: they cannot be marked any more.
    assert!(!notifications.mark_as_read("u", ids[0]).await.unwrap());
    assert!(notifications.mark_as_read("u", ids[5]).await.unwrap());
    assert_eq!(
        notifications.unread_count("u").await.unwrap(),
        HISTORY_LIMIT - 1
    );
}

async fn mark_as_read_finds_the_notification_by_id(backend: Backend) {
    let notifications = NotificationService::new(&backend.herald);
    let mut sent = Vec::new();
    for title in ["a", "b", "c"] {
        sent.push(
            notifications
                .send_to_user("m", NotificationKind::Error, title, "x", None)
                .await
                .unwrap(),
        );
    }
    assert!(!notifications
        .mark_as_read("m", Uuid::new_v4())
        .await
        .unwrap());
    assert!(!notifications
        .mark_as_read("nobody", sent[0].id)
        .await
        .unwrap());
    assert!(notifications.mark_as_read("m", sent[1].id).await.unwrap());
    // Idempotent.
    assert!(notifications.mark_as_read("m", sent[1].id).await.unwrap());
    let history = notifications.recent("m", 10).await.unwrap();
    let read: Vec<(&str, bool)> = history.iter().map(|n| (n.title.as_str(), n.read)).collect();
    assert_eq!(read, [("c", false), ("b", true), ("a", false)]);
    // Nothing but the flag changed.
    let b = history.iter().find(|n| n.id == sent[1].id).unwrap();
    assert_eq!(
        Notification {
            read: false,
            ..b.clone()
        },
        sent[1]
    );
    assert_eq!(notifications.unread_count("m").await.unwrap(), 2);
    assert_eq!(notifications.unread_count("nobody").await.unwrap(), 0);
}

async fn broadcasts_reach_everyone_and_are_not_stored(backend: Backend) {
    let first = NotificationService::new(&backend.herald);
    let second = NotificationService::new(&backend.herald);
    let (tx, mut got) = collector::<(u8, Notification)>();
    for (number, service) in [(1u8, &first), (2, &second)] {
        let tx = Arc::clone(&tx);
        service
            .subscribe_broadcast(move |notification: Notification| {
                let tx = Arc::clone(&tx);
                async move { tx.send((number, notification)).unwrap() }
            })
            .await
            .unwrap();
    }
    let sent = first
        .broadcast(NotificationKind::Info, "Maintenance", "At 22:00 UTC", None)
        .await
        .unwrap();
    assert_eq!(sent.user_id, None);
    let mut numbers = HashSet::new();
    for _ in 0..2 {
        let (number, notification) = recv(&mut got).await;
        assert_eq!(notification, sent);
        numbers.insert(number);
    }
    assert_eq!(numbers.len(), 2);
    assert!(first.recent("", 10).await.unwrap().is_empty());
    first.stop().await;
    second.stop().await;
}

async fn concurrent_sends_and_marks_lose_no_update(backend: Backend) {
    let notifications = NotificationService::new(&backend.herald);
    let mut existing = Vec::new();
    for n in 0..40 {
        existing.push(
            notifications
                .send_to_user("c", NotificationKind::Info, &format!("old{n}"), "", None)
                .await
                .unwrap()
                .id,
        );
    }
    // Even ones get marked, by two markers racing each other and four senders that keep
    // shifting every index.
    let to_mark: Vec<Uuid> = existing.iter().step_by(2).copied().collect();
    let mut tasks = Vec::new();
    for sender in 0..4 {
        let service = notifications.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..10 {
                service
                    .send_to_user(
                        "c",
                        NotificationKind::Info,
                        &format!("new{sender}.{n}"),
                        "",
                        None,
                    )
                    .await
                    .unwrap();
            }
        }));
    }
    for half in to_mark.chunks(10) {
        let service = notifications.clone();
        let ids = half.to_vec();
        tasks.push(tokio::spawn(async move {
            for id in ids {
                assert!(service.mark_as_read("c", id).await.unwrap());
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let history = notifications.recent("c", 100).await.unwrap();
    assert_eq!(history.len(), 80);
    let ids: HashSet<Uuid> = history.iter().map(|n| n.id).collect();
    assert_eq!(ids.len(), 80, "every notification once");
    let marked: HashSet<Uuid> = to_mark.iter().copied().collect();
    for notification in &history {
        assert_eq!(
            notification.read,
            marked.contains(&notification.id),
            "{}",
            notification.title
        );
    }
    assert_eq!(notifications.unread_count("c").await.unwrap(), 60);
}
