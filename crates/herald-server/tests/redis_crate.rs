//! The `redis` crate, an independent client, against Herald under RESP2 and RESP3.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::TestServer;
use futures_util::StreamExt;
use redis::AsyncCommands;

const WAIT: Duration = Duration::from_secs(5);

fn client(server: &TestServer, resp3: bool) -> redis::Client {
    redis::Client::open(server.url_for(resp3)).unwrap()
}

async fn pubsub_round_trip(resp3: bool) {
    let server = TestServer::start().await;
    let client = client(&server, resp3);
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.subscribe("news").await.unwrap();
    pubsub.psubscribe("news.*").await.unwrap();
    let mut publisher = client.get_multiplexed_async_connection().await.unwrap();
    let receivers: i64 = publisher.publish("news", "plain").await.unwrap();
    assert_eq!(receivers, 1);
    let receivers: i64 = publisher.publish("news.eu", "matched").await.unwrap();
    assert_eq!(receivers, 1);
    let numsub: Vec<(String, i64)> = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg("news")
        .arg("none")
        .query_async(&mut publisher)
        .await
        .unwrap();
    assert_eq!(numsub, vec![("news".to_owned(), 1), ("none".to_owned(), 0)]);
    let numpat: i64 = redis::cmd("PUBSUB")
        .arg("NUMPAT")
        .query_async(&mut publisher)
        .await
        .unwrap();
    assert_eq!(numpat, 1);

    let mut messages = pubsub.on_message();
    let first = tokio::time::timeout(WAIT, messages.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.get_channel_name(), "news");
    assert_eq!(first.get_payload::<String>().unwrap(), "plain");
    assert!(!first.from_pattern());
    let second = tokio::time::timeout(WAIT, messages.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.get_channel_name(), "news.eu");
    assert_eq!(second.get_pattern::<String>().unwrap(), "news.*");
    assert_eq!(second.get_payload::<String>().unwrap(), "matched");
}

#[tokio::test]
async fn pubsub_round_trip_resp2() {
    pubsub_round_trip(false).await;
}

#[tokio::test]
async fn pubsub_round_trip_resp3() {
    pubsub_round_trip(true).await;
}

#[tokio::test]
async fn resp3_push_messages_on_a_multiplexed_connection() {
    let server = TestServer::start().await;
    let client = client(&server, true);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let config = redis::AsyncConnectionConfig::new().set_push_sender(tx);
    let mut con = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap();
    con.subscribe(&["alpha", "beta"]).await.unwrap();
    // Ordinary commands keep working while subscribed.
    let pong: String = redis::cmd("PING").query_async(&mut con).await.unwrap();
    assert_eq!(pong, "PONG");
    let receivers: i64 = con.publish("beta", "to myself").await.unwrap();
    assert_eq!(receivers, 1);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let push = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("no push arrived")
            .expect("push channel closed");
        if push.kind == redis::PushKind::Message {
            assert_eq!(
                push.data,
                vec![
                    redis::Value::BulkString(b"beta".to_vec()),
                    redis::Value::BulkString(b"to myself".to_vec()),
                ]
            );
            break;
        }
    }
}

#[tokio::test]
async fn server_commands_redis_crate_relies_on() {
    let server = TestServer::start().await;
    for resp3 in [false, true] {
        let mut con = client(&server, resp3)
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let info: redis::InfoDict = redis::cmd("INFO").query_async(&mut con).await.unwrap();
        assert_eq!(
            info.get::<String>("redis_version").as_deref(),
            Some(herald_server::REDIS_VERSION)
        );
        assert_eq!(info.get::<i64>("cluster_enabled"), Some(0));
        let id: i64 = redis::cmd("CLIENT")
            .arg("ID")
            .query_async(&mut con)
            .await
            .unwrap();
        assert!(id > 0);
        let config: std::collections::HashMap<String, String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("*")
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(config.get("databases").map(String::as_str), Some("16"));
        let error = redis::cmd("NOSUCHCOMMAND")
            .query_async::<()>(&mut con)
            .await
            .unwrap_err();
        assert!(error.to_string().contains("unknown command"), "{error}");
        let time: (String, String) = redis::cmd("TIME").query_async(&mut con).await.unwrap();
        assert!(time.0.parse::<u64>().unwrap() > 1_700_000_000);
    }
}
