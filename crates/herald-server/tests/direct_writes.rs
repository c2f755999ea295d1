//! Direct writes from the publishing connection to its subscribers' sockets, through
//! io_uring when the `io-uring` feature is on (and `HERALD_IO_URING` is not `0`), else
//! one `writev` each: every message arrives, in order, also when a socket takes only
//! part of a send or has gone away.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{confirm, message, Raw, TestServer};
use tokio::net::TcpSocket;

/// Whether this build should have sent through io_uring.
fn uring_expected() -> bool {
    cfg!(feature = "io-uring") && std::env::var_os("HERALD_IO_URING").is_none_or(|v| v != "0")
}

async fn subscribe(sub: &mut Raw, channel: &str) {
    sub.cmd(&[b"SUBSCRIBE", channel.as_bytes()]).await;
    sub.expect(&confirm('*', "subscribe", channel, 1)).await;
}

async fn publish(publisher: &mut Raw, channel: &str, payload: &[u8], receivers: usize) {
    publisher
        .cmd(&[b"PUBLISH", channel.as_bytes(), payload])
        .await;
    publisher
        .expect(format!(":{receivers}\r\n").as_bytes())
        .await;
}

/// Payload `index` of a run: its number, padded to a length that varies around the size
/// from which payloads are shared instead of copied.
fn payload(index: usize) -> Vec<u8> {
    let len = 100 + (index * 397) % 3000;
    let mut bytes = format!("{index}:").into_bytes();
    bytes.resize(len, b'a' + (index % 26) as u8);
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_subscribers_get_every_message_in_order() {
    let server = TestServer::start().await;
    let mut subs = Vec::new();
    for _ in 0..40 {
        let mut sub = server.client().await;
        subscribe(&mut sub, "news").await;
        subs.push(sub);
    }
    let mut publisher = server.client().await;
    let before = server.shared.stats.uring_sends.load(Ordering::Relaxed);
    let held_before = server
        .shared
        .stats
        .held_publish_batches
        .load(Ordering::Relaxed);
    for index in 0..200 {
        publish(&mut publisher, "news", format!("m{index}").as_bytes(), 40).await;
    }
    for sub in &mut subs {
        for index in 0..200 {
            sub.expect(&message('*', "news", &format!("m{index}")))
                .await;
        }
    }
    let sends = server.shared.stats.uring_sends.load(Ordering::Relaxed) - before;
    let submissions = server
        .shared
        .stats
        .uring_submissions
        .load(Ordering::Relaxed);
    // A publisher busy enough has some batches held, each written with the next one
    // (`cork`): one send per subscriber for both.
    let held = server
        .shared
        .stats
        .held_publish_batches
        .load(Ordering::Relaxed)
        - held_before;
    if uring_expected() {
        // Every publish not held is one submission for the 40 subscribers and the reply.
        assert!(
            sends >= (200 - held) * 40,
            "only {sends} sends through io_uring ({held} batches held)"
        );
        assert!(
            submissions * 20 <= sends,
            "{submissions} submissions for {sends} sends"
        );
    } else {
        assert_eq!(sends, 0);
        assert_eq!(submissions, 0);
    }
}

/// A subscriber whose socket receives little and that does not read for a while gets
/// partial sends and `EAGAIN`s; once it reads, it gets everything in order, and a
/// subscriber served in the same submissions is not held up meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_sends_lose_nothing_and_keep_order() {
    partial_sends_with(4000, payload).await;
}

/// The same with only small payloads: every batch is one contiguous buffer (written with
/// one `send`, the rest of a partial one queued again, and the writer task's partial
/// sends resumed where they stopped).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_contiguous_sends_lose_nothing_and_keep_order() {
    partial_sends_with(20_000, |index| {
        let mut bytes = format!("{index}:").into_bytes();
        bytes.resize(100 + index % 700, b'a' + (index % 26) as u8);
        bytes
    })
    .await;
}

async fn partial_sends_with(messages: usize, payload: fn(usize) -> Vec<u8>) {
    let server = TestServer::start().await;
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut slow = Raw {
        stream: socket.connect(server.addr).await.unwrap(),
    };
    subscribe(&mut slow, "feed").await;
    let mut fast = server.client().await;
    subscribe(&mut fast, "feed").await;
    let mut publisher = server.client().await;
    for index in 0..messages {
        let payload = payload(index);
        publish(&mut publisher, "feed", &payload, 2).await;
        let expected = message('*', "feed", std::str::from_utf8(&payload).unwrap());
        fast.expect(&expected).await;
    }
    // Megabytes went to a socket with a 4 KB receive buffer: some of it waits in the
    // slow subscriber's queue, behind what its socket did not take.
    publisher.cmd(&[b"CLIENT", b"LIST"]).await;
    let list = String::from_utf8(publisher.read_bulk().await).unwrap();
    let queued: usize = list
        .lines()
        .filter(|line| line.contains(" sub=1 "))
        .filter_map(|line| {
            line.split(' ')
                .find_map(|field| field.strip_prefix("omem="))
                .and_then(|omem| omem.parse::<usize>().ok())
        })
        .max()
        .expect("subscribers in CLIENT LIST");
    assert!(queued > 0, "nothing was left queued: {list}");
    for index in 0..messages {
        let payload = payload(index);
        let expected = message('*', "feed", std::str::from_utf8(&payload).unwrap());
        slow.expect(&expected).await;
    }
    slow.expect_silence(Duration::from_millis(100)).await;
}

/// A subscriber that resets its connection: the sends to it fail, the server closes it
/// as it does any connection whose write failed, and the other subscribers of the same
/// submissions get everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_subscriber_is_closed_and_the_others_get_everything() {
    let server = TestServer::start().await;
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_zero_linger().unwrap();
    let mut gone = Raw {
        stream: socket.connect(server.addr).await.unwrap(),
    };
    subscribe(&mut gone, "alerts").await;
    let mut others = Vec::new();
    for _ in 0..3 {
        let mut sub = server.client().await;
        subscribe(&mut sub, "alerts").await;
        others.push(sub);
    }
    let mut publisher = server.client().await;
    publish(&mut publisher, "alerts", b"before", 4).await;
    gone.expect(&message('*', "alerts", "before")).await;
    // Linger 0: closing sends a reset, so a later send to it fails.
    drop(gone);
    let mut sent = vec!["before".to_owned()];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let payload = format!("after{}", sent.len());
        publisher
            .cmd(&[b"PUBLISH", b"alerts", payload.as_bytes()])
            .await;
        let reply = publisher.read_line().await;
        sent.push(payload);
        if reply == ":3\r\n" {
            break;
        }
        assert_eq!(reply, ":4\r\n");
        assert!(
            tokio::time::Instant::now() < deadline,
            "the reset subscriber was never dropped"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for sub in &mut others {
        for payload in &sent {
            sub.expect(&message('*', "alerts", payload)).await;
        }
    }
    publisher.cmd(&[b"PUBSUB", b"NUMSUB", b"alerts"]).await;
    publisher.expect(b"*2\r\n$6\r\nalerts\r\n:3\r\n").await;
}
