//! Held deliveries (`HERALD_CORK=always`: every other short batch with deliveries is
//! held for the publisher's next request, whatever the load): whether released by that
//! request, by the time bound, by the publisher closing, being killed or pausing for
//! its own unread output, or behind a subscriber's own reply, every message arrives,
//! once, in order.
//!
//! One test function, so that the process-wide switch is set before any server reads
//! it and no other test in this binary runs with it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{message, Raw, TestServer};

const SUBSCRIBERS: usize = 3;

async fn publish(publisher: &mut Raw, channel: &str, payload: &str) {
    publisher
        .cmd(&[b"PUBLISH", channel.as_bytes(), payload.as_bytes()])
        .await;
    publisher
        .expect(format!(":{SUBSCRIBERS}\r\n").as_bytes())
        .await;
}

async fn expect_messages(subs: &mut [Raw], channel: &str, payloads: &[&str]) {
    for sub in subs {
        for payload in payloads {
            sub.expect(&message('*', channel, payload)).await;
        }
    }
}

fn held(server: &TestServer) -> u64 {
    server
        .shared
        .stats
        .held_publish_batches
        .load(Ordering::Relaxed)
}

fn timeouts(server: &TestServer) -> u64 {
    server
        .shared
        .stats
        .held_publish_timeouts
        .load(Ordering::Relaxed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_deliveries_all_arrive_in_order() {
    // Safe here: this binary's only test, before any server thread exists.
    std::env::set_var("HERALD_CORK", "always");
    let server = TestServer::start().await;
    let mut subs = server.subscribers("news", SUBSCRIBERS).await;
    let mut publisher = server.client().await;

    // Held, and released by the time bound: no other request comes.
    publish(&mut publisher, "news", "alone").await;
    expect_messages(&mut subs, "news", &["alone"]).await;
    assert_eq!(held(&server), 1, "the first batch was not held");
    assert_eq!(timeouts(&server), 1, "not released by the time bound");

    // Held, and released by the next request, which is not held itself.
    publish(&mut publisher, "news", "first").await;
    publish(&mut publisher, "news", "second").await;
    expect_messages(&mut subs, "news", &["first", "second"]).await;
    assert_eq!(held(&server), 2);
    assert_eq!(
        timeouts(&server),
        1,
        "released by the time bound, not the request"
    );

    // Held, then a pipeline long enough to wake the writers: all in order.
    publish(&mut publisher, "news", "before").await;
    let mut pipeline = Vec::new();
    let names: Vec<String> = (0..8).map(|i| format!("piped{i}")).collect();
    for name in &names {
        pipeline.extend_from_slice(
            format!(
                "*3\r\n$7\r\nPUBLISH\r\n$4\r\nnews\r\n${}\r\n{name}\r\n",
                name.len()
            )
            .as_bytes(),
        );
    }
    publisher.send(&pipeline).await;
    publisher
        .expect(format!(":{SUBSCRIBERS}\r\n").repeat(names.len()).as_bytes())
        .await;
    let mut expected = vec!["before"];
    expected.extend(names.iter().map(String::as_str));
    expect_messages(&mut subs, "news", &expected).await;

    // A subscriber's own reply queued behind a held message follows it.
    publish(&mut publisher, "news", "ahead").await;
    subs[0].cmd(&[b"PING"]).await;
    subs[0].expect(&message('*', "news", "ahead")).await;
    subs[0].expect(b"*2\r\n$4\r\npong\r\n$0\r\n\r\n").await;
    expect_messages(&mut subs[1..], "news", &["ahead"]).await;

    // A publisher that closes, or is killed, right after a held batch: still delivered.
    for (index, ending) in ["closed", "killed"].into_iter().enumerate() {
        let mut short_lived = server.client().await;
        short_lived.cmd(&[b"CLIENT", b"ID"]).await;
        let id = short_lived.read_line().await;
        let id = id.trim_start_matches(':').trim_end().to_owned();
        let before = held(&server);
        publish(&mut short_lived, "news", ending).await;
        assert_eq!(held(&server), before + 1, "{ending}: not held");
        if index == 0 {
            drop(short_lived);
        } else {
            let mut admin = server.client().await;
            admin.cmd(&[b"CLIENT", b"KILL", b"ID", id.as_bytes()]).await;
            admin.read_line().await;
            short_lived.expect_closed().await;
        }
        expect_messages(&mut subs, "news", &[ending]).await;
    }

    // A publisher paused for its own unread output (a 20 MB reply it does not read)
    // right after a held batch: what it held still goes out.
    let mut setter = server.client().await;
    setter
        .cmd(&[b"SET", b"big", &vec![b'v'; 20 * 1024 * 1024]])
        .await;
    setter.expect(b"+OK\r\n").await;
    let mut not_reading = server.client().await;
    let before = held(&server);
    not_reading
        .send(b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n*3\r\n$7\r\nPUBLISH\r\n$4\r\nnews\r\n$6\r\npaused\r\n")
        .await;
    expect_messages(&mut subs, "news", &["paused"]).await;
    assert_eq!(
        held(&server),
        before + 1,
        "the paused publisher's batch was not held"
    );
    drop(not_reading);

    // Nothing more than was published, and the counter is in INFO.
    for sub in &mut subs {
        sub.expect_silence(Duration::from_millis(20)).await;
    }
    publisher.cmd(&[b"INFO", b"stats"]).await;
    let info = String::from_utf8_lossy(&publisher.read_bulk().await).into_owned();
    for (field, count) in [
        ("herald_held_publish_batches", held(&server)),
        ("herald_held_publish_timeouts", timeouts(&server)),
    ] {
        assert!(
            info.contains(&format!("{field}:{count}\r\n")),
            "INFO stats lacks {field}:{count}: {info}"
        );
    }
}
