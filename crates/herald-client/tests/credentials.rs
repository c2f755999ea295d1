//! `ConnectOptions::password_from`: the password is asked for at every connection, so a
//! client whose server changed its password (and whose application knows the new one)
//! gets back in after it lost its connections: the command connection (reopened by the
//! `redis` crate's connection manager) and the subscriber's (reopened by the client).
//! Against Herald, redis-server, and redis-server without HELLO (RESP2 subscribers).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{collector, kill_other_clients, quick_backoff, recv, wait_event, Backend, WAIT};
use herald_client::{ConnectOptions, ConnectionEvent, Herald, Message, Subscriber};
use parking_lot::Mutex;

on_every_backend!(a_changed_password_is_used_on_reconnect);

const CHANNEL: &str = "cred:channel";

async fn admin(backend: &Backend, password: &str) -> redis::aio::MultiplexedConnection {
    let url = backend.url().expect("a remote back end");
    let url = url.replacen("redis://", &format!("redis://:{password}@"), 1);
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn set_password(admin: &mut redis::aio::MultiplexedConnection, password: &str) {
    let _: () = redis::cmd("CONFIG")
        .arg(&["SET", "requirepass", password])
        .query_async(admin)
        .await
        .unwrap();
}

/// Publishes until the publisher's connection is back; returns the receiver count.
async fn publish_when_back(herald: &Herald, payload: &str) -> usize {
    let publisher = herald.publisher();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match publisher.publish(CHANNEL, payload.to_owned()).await {
            Ok(receivers) => return receivers,
            Err(err) if tokio::time::Instant::now() < deadline => {
                println!("publish while reconnecting: {err}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(err) => panic!("publish after the password change: {err}"),
        }
    }
}

async fn a_changed_password_is_used_on_reconnect(backend: Backend) {
    if !backend.is_remote() {
        return;
    }
    let mut admin_conn = admin(&backend, "").await;
    set_password(&mut admin_conn, "first").await;
    let secret = Arc::new(Mutex::new(Some("first".to_owned())));
    let options = ConnectOptions::default().password_from({
        let secret = Arc::clone(&secret);
        move || secret.lock().clone()
    });
    // The URL names no password: every connection takes the source's.
    let herald = Herald::connect_with(&backend.url().unwrap(), &options)
        .await
        .unwrap();
    let subscriber = Subscriber::builder(&herald)
        .backoff(quick_backoff())
        .build()
        .unwrap();
    let mut events = subscriber.events();
    let (tx, mut received) = collector::<String>();
    subscriber
        .subscribe(CHANNEL, move |msg: Message| {
            let tx = Arc::clone(&tx);
            async move { tx.send(msg.payload_str().unwrap().to_owned()).unwrap() }
        })
        .await
        .unwrap();
    assert_eq!(publish_when_back(&herald, "before").await, 1);
    assert_eq!(recv(&mut received).await, "before");

    let mut admin_conn = admin(&backend, "first").await;
    set_password(&mut admin_conn, "second").await;
    *secret.lock() = Some("second".to_owned());
    let [normal, pubsub] = kill_other_clients(&mut admin_conn).await;
    assert!(
        normal >= 1 && pubsub >= 1,
        "the client's connections were not there to kill: {normal} normal, {pubsub} pubsub"
    );
    wait_event(&mut events, "resubscribed", |event| {
        matches!(event, ConnectionEvent::Resubscribed { channels: 1, .. })
    })
    .await;
    assert_eq!(publish_when_back(&herald, "after").await, 1);
    assert_eq!(recv(&mut received).await, "after");
}
