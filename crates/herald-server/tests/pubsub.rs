//! Pub/sub semantics over raw RESP, asserting Redis's exact bytes
//! (see shared/design/pubsub-semantics.md).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{bulk, confirm, message, pmessage, TestServer};

#[tokio::test]
async fn subscribe_confirms_each_argument_and_repeats_keep_the_count() {
    let server = TestServer::start().await;
    let mut sub = server.client().await;
    sub.cmd(&[b"SUBSCRIBE", b"c", b"c", b"c"]).await;
    for _ in 0..3 {
        sub.expect(&confirm('*', "subscribe", "c", 1)).await;
    }
    sub.cmd(&[b"PSUBSCRIBE", b"c*"]).await;
    sub.expect(&confirm('*', "psubscribe", "c*", 2)).await;
    sub.cmd(&[b"UNSUBSCRIBE", b"c"]).await;
    sub.expect(&confirm('*', "unsubscribe", "c", 1)).await;
    sub.cmd(&[b"PUNSUBSCRIBE", b"c*"]).await;
    sub.expect(&confirm('*', "punsubscribe", "c*", 0)).await;
    sub.cmd(&[b"PING"]).await;
    sub.expect(b"+PONG\r\n").await;
}

#[tokio::test]
async fn unsubscribe_unknown_names_and_empty_unsubscribe() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    c.cmd(&[b"UNSUBSCRIBE", b"foo", b"bar"]).await;
    c.expect(&confirm('*', "unsubscribe", "foo", 0)).await;
    c.expect(&confirm('*', "unsubscribe", "bar", 0)).await;
    c.cmd(&[b"UNSUBSCRIBE"]).await;
    c.expect(b"*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n").await;
    c.cmd(&[b"PUNSUBSCRIBE"]).await;
    c.expect(b"*3\r\n$12\r\npunsubscribe\r\n$-1\r\n:0\r\n")
        .await;
    c.cmd(&[b"SUNSUBSCRIBE"]).await;
    c.expect(b"*3\r\n$12\r\nsunsubscribe\r\n$-1\r\n:0\r\n")
        .await;
    c.cmd(&[b"SUBSCRIBE", b"a", b"b"]).await;
    c.expect(&confirm('*', "subscribe", "a", 1)).await;
    c.expect(&confirm('*', "subscribe", "b", 2)).await;
    c.cmd(&[b"UNSUBSCRIBE"]).await;
    c.expect(&confirm('*', "unsubscribe", "a", 1)).await;
    c.expect(&confirm('*', "unsubscribe", "b", 0)).await;
    c.cmd(&[b"SUBSCRIBE"]).await;
    c.expect(b"-ERR wrong number of arguments for 'subscribe' command\r\n")
        .await;
}

#[tokio::test]
async fn message_then_pmessage_and_publish_counts_both() {
    let server = TestServer::start().await;
    let mut sub = server.client().await;
    sub.cmd(&[b"SUBSCRIBE", b"foo.1"]).await;
    sub.expect(&confirm('*', "subscribe", "foo.1", 1)).await;
    sub.cmd(&[b"PSUBSCRIBE", b"foo.*"]).await;
    sub.expect(&confirm('*', "psubscribe", "foo.*", 2)).await;
    let mut publisher = server.client().await;
    publisher.cmd(&[b"PUBLISH", b"foo.1", b"hello"]).await;
    publisher.expect(b":2\r\n").await;
    sub.expect(&message('*', "foo.1", "hello")).await;
    sub.expect(&pmessage('*', "foo.*", "foo.1", "hello")).await;
    // Whole-string globs: neither of these matches `foo.*`.
    publisher.cmd(&[b"PUBLISH", b"foo1", b"x"]).await;
    publisher.expect(b":0\r\n").await;
    publisher.cmd(&[b"PUBLISH", b"barfoo.1", b"x"]).await;
    publisher.expect(b":0\r\n").await;
    sub.expect_silence(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn binary_payloads_arrive_byte_for_byte() {
    let server = TestServer::start().await;
    let mut sub = server.client().await;
    sub.cmd(&[b"SUBSCRIBE", b"bin"]).await;
    sub.expect(&confirm('*', "subscribe", "bin", 1)).await;
    let payload: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let mut publisher = server.client().await;
    publisher.cmd(&[b"PUBLISH", b"bin", &payload]).await;
    publisher.expect(b":1\r\n").await;
    sub.expect(b"*3\r\n$7\r\nmessage\r\n$3\r\nbin\r\n").await;
    assert_eq!(sub.read_bulk().await, payload);
}

#[tokio::test]
async fn resp2_subscribed_context_allows_only_pubsub_commands() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    c.cmd(&[b"SUBSCRIBE", b"x"]).await;
    c.expect(&confirm('*', "subscribe", "x", 1)).await;
    c.cmd(&[b"ECHO", b"hi"]).await;
    c.expect(b"-ERR Can't execute 'echo': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n").await;
    c.cmd(&[b"HELLO", b"3"]).await;
    c.expect(b"-ERR Can't execute 'hello': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n").await;
    c.cmd(&[b"CLIENT", b"ID"]).await;
    c.expect(b"-ERR Can't execute 'client|id': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n").await;
    c.cmd(&[b"PING"]).await;
    c.expect(b"*2\r\n$4\r\npong\r\n$0\r\n\r\n").await;
    c.cmd(&[b"PING", b"foo"]).await;
    c.expect(b"*2\r\n$4\r\npong\r\n$3\r\nfoo\r\n").await;
    c.cmd(&[b"UNSUBSCRIBE", b"x"]).await;
    c.expect(&confirm('*', "unsubscribe", "x", 0)).await;
    c.cmd(&[b"PING"]).await;
    c.expect(b"+PONG\r\n").await;
}

#[tokio::test]
async fn resp3_runs_any_command_and_replies_before_its_own_pushes() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    c.cmd(&[b"HELLO", b"3"]).await;
    let header = c.read_line().await;
    assert_eq!(header, "%7\r\n");
    for _ in 0..14 {
        // Drain the seven key/value pairs; the modules value is an empty array.
        let line = c.read_line().await;
        if line.starts_with('$') {
            c.read_line().await;
        }
    }
    c.cmd(&[b"SUBSCRIBE", b"a", b"b"]).await;
    c.expect(&confirm('>', "subscribe", "a", 1)).await;
    c.expect(&confirm('>', "subscribe", "b", 2)).await;
    c.cmd(&[b"PING"]).await;
    c.expect(b"+PONG\r\n").await;
    c.cmd(&[b"ECHO", b"x"]).await;
    c.expect(b"$1\r\nx\r\n").await;
    c.cmd(&[b"PUBLISH", b"a", b"self"]).await;
    c.expect(b":1\r\n").await;
    c.expect(&message('>', "a", "self")).await;
    // A pipeline: each reply precedes the pushes it caused.
    let mut pipeline = Vec::new();
    for (channel, payload) in [("a", "1"), ("b", "2")] {
        pipeline.extend_from_slice(
            format!("*3\r\n$7\r\nPUBLISH\r\n{}{}", bulk(channel), bulk(payload)).as_bytes(),
        );
    }
    pipeline.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
    c.send(&pipeline).await;
    c.expect(b":1\r\n").await;
    c.expect(&message('>', "a", "1")).await;
    c.expect(b":1\r\n").await;
    c.expect(&message('>', "b", "2")).await;
    c.expect(b"+PONG\r\n").await;
    c.cmd(&[b"UNSUBSCRIBE"]).await;
    c.expect(&confirm('>', "unsubscribe", "a", 1)).await;
    c.expect(&confirm('>', "unsubscribe", "b", 0)).await;
    c.cmd(&[b"UNSUBSCRIBE"]).await;
    c.expect(b">3\r\n$11\r\nunsubscribe\r\n_\r\n:0\r\n").await;
}

#[tokio::test]
async fn shard_channels_are_a_separate_namespace() {
    let server = TestServer::start().await;
    let mut shard = server.client().await;
    let mut classic = server.client().await;
    shard.cmd(&[b"SSUBSCRIBE", b"chan1", b"other"]).await;
    shard.expect(&confirm('*', "ssubscribe", "chan1", 1)).await;
    shard.expect(&confirm('*', "ssubscribe", "other", 2)).await;
    classic.cmd(&[b"SUBSCRIBE", b"chan1"]).await;
    classic.expect(&confirm('*', "subscribe", "chan1", 1)).await;
    classic.cmd(&[b"PSUBSCRIBE", b"*"]).await;
    classic.expect(&confirm('*', "psubscribe", "*", 2)).await;
    let mut p = server.client().await;
    p.cmd(&[b"SPUBLISH", b"chan1", b"s"]).await;
    p.expect(b":1\r\n").await;
    shard
        .expect(format!("*3\r\n{}{}{}", bulk("smessage"), bulk("chan1"), bulk("s")).as_bytes())
        .await;
    p.cmd(&[b"PUBLISH", b"chan1", b"c"]).await;
    p.expect(b":2\r\n").await;
    p.cmd(&[b"PUBSUB", b"NUMSUB", b"chan1", b"nobody"]).await;
    p.expect(b"*4\r\n$5\r\nchan1\r\n:1\r\n$6\r\nnobody\r\n:0\r\n")
        .await;
    p.cmd(&[b"PUBSUB", b"SHARDNUMSUB", b"chan1"]).await;
    p.expect(b"*2\r\n$5\r\nchan1\r\n:1\r\n").await;
    p.cmd(&[b"PUBSUB", b"SHARDCHANNELS", b"chan*"]).await;
    p.expect(b"*1\r\n$5\r\nchan1\r\n").await;
    p.cmd(&[b"PUBSUB", b"CHANNELS"]).await;
    p.expect(b"*1\r\n$5\r\nchan1\r\n").await;
    p.cmd(&[b"PUBSUB", b"NUMPAT"]).await;
    p.expect(b":1\r\n").await;
    // The shard subscriber's count covers shard channels only.
    shard.cmd(&[b"SUNSUBSCRIBE", b"chan1"]).await;
    shard
        .expect(&confirm('*', "sunsubscribe", "chan1", 1))
        .await;
}

#[tokio::test]
async fn numpat_counts_distinct_patterns_and_cleans_up_on_disconnect() {
    let server = TestServer::start().await;
    let mut a = server.client().await;
    let mut b = server.client().await;
    a.cmd(&[b"PSUBSCRIBE", b"foo*"]).await;
    a.expect(&confirm('*', "psubscribe", "foo*", 1)).await;
    b.cmd(&[b"PSUBSCRIBE", b"foo*"]).await;
    b.expect(&confirm('*', "psubscribe", "foo*", 1)).await;
    let mut p = server.client().await;
    p.cmd(&[b"PUBSUB", b"NUMPAT"]).await;
    p.expect(b":1\r\n").await;
    p.cmd(&[b"PUBLISH", b"food", b"x"]).await;
    p.expect(b":2\r\n").await;
    drop(a);
    drop(b);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        p.cmd(&[b"PUBSUB", b"NUMPAT"]).await;
        if p.read_line().await == ":0\r\n" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "patterns leaked after disconnect"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    p.cmd(&[b"PUBLISH", b"food", b"x"]).await;
    p.expect(b":0\r\n").await;
}

#[tokio::test]
async fn client_reply_off_still_delivers_confirmations_and_messages() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    c.cmd(&[b"CLIENT", b"REPLY", b"OFF"]).await;
    c.cmd(&[b"PING"]).await;
    c.cmd(&[b"SUBSCRIBE", b"ch"]).await;
    c.expect(&confirm('*', "subscribe", "ch", 1)).await;
    let mut p = server.client().await;
    p.cmd(&[b"PUBLISH", b"ch", b"m"]).await;
    p.expect(b":1\r\n").await;
    c.expect(&message('*', "ch", "m")).await;
    c.cmd(&[b"UNSUBSCRIBE"]).await;
    c.expect(&confirm('*', "unsubscribe", "ch", 0)).await;
    c.cmd(&[b"CLIENT", b"REPLY", b"ON"]).await;
    c.expect(b"+OK\r\n").await;
    c.cmd(&[b"CLIENT", b"REPLY", b"SKIP"]).await;
    c.cmd(&[b"ECHO", b"skipped"]).await;
    c.cmd(&[b"ECHO", b"shown"]).await;
    c.expect(b"$5\r\nshown\r\n").await;
}

#[tokio::test]
async fn reset_drops_subscriptions_and_returns_to_resp2() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    c.cmd(&[b"CLIENT", b"SETNAME", b"before"]).await;
    c.expect(b"+OK\r\n").await;
    c.cmd(&[b"CLIENT", b"SETINFO", b"LIB-NAME", b"keepme"])
        .await;
    c.expect(b"+OK\r\n").await;
    c.cmd(&[b"SELECT", b"3"]).await;
    c.expect(b"+OK\r\n").await;
    c.cmd(&[b"PSUBSCRIBE", b"p*"]).await;
    c.expect(&confirm('*', "psubscribe", "p*", 1)).await;
    c.cmd(&[b"RESET"]).await;
    c.expect(b"+RESET\r\n").await;
    c.cmd(&[b"ECHO", b"ok"]).await;
    c.expect(b"$2\r\nok\r\n").await;
    // The name and database are reset; the library name stays (Redis 7.2+).
    c.cmd(&[b"CLIENT", b"INFO"]).await;
    let info = String::from_utf8(c.read_bulk().await).unwrap();
    for field in [" name= ", " db=0 ", " psub=0 ", " lib-name=keepme "] {
        assert!(info.contains(field), "{field} missing from {info}");
    }
    let mut p = server.client().await;
    p.cmd(&[b"PUBLISH", b"pq", b"x"]).await;
    p.expect(b":0\r\n").await;
}

#[tokio::test]
async fn info_and_client_list_report_subscribers() {
    let server = TestServer::start().await;
    let mut sub = server.client().await;
    sub.cmd(&[b"CLIENT", b"SETNAME", b"listener"]).await;
    sub.expect(b"+OK\r\n").await;
    sub.cmd(&[b"SUBSCRIBE", b"a", b"b"]).await;
    sub.expect(&confirm('*', "subscribe", "a", 1)).await;
    sub.expect(&confirm('*', "subscribe", "b", 2)).await;
    sub.cmd(&[b"PSUBSCRIBE", b"x*"]).await;
    sub.expect(&confirm('*', "psubscribe", "x*", 3)).await;
    let mut admin = server.client().await;
    admin.cmd(&[b"CLIENT", b"LIST"]).await;
    let list = String::from_utf8(admin.read_bulk().await).unwrap();
    let line = list
        .lines()
        .find(|line| line.contains("name=listener"))
        .expect("subscriber listed");
    for field in [
        "sub=2",
        "psub=1",
        "ssub=0",
        "flags=P",
        "db=0",
        "cmd=psubscribe",
        "resp=2",
    ] {
        assert!(line.contains(field), "{field} missing from {line}");
    }
    assert!(line.starts_with("id="), "{line}");
    admin.cmd(&[b"INFO", b"clients"]).await;
    let info = String::from_utf8(admin.read_bulk().await).unwrap();
    assert!(info.contains("pubsub_clients:1\r\n"), "{info}");
    assert!(info.contains("connected_clients:2\r\n"), "{info}");
    admin.cmd(&[b"CLIENT", b"KILL", b"TYPE", b"pubsub"]).await;
    admin.expect(b":1\r\n").await;
    sub.expect_closed().await;
}

#[tokio::test]
async fn a_subscriber_that_reads_late_gets_every_message_in_order() {
    // One PUBLISH at a time to one subscriber: the publishing connection writes each
    // delivery straight to the socket until the socket is full, then the rest goes back
    // to the queue for the writer task. Nothing may be lost, doubled or reordered.
    let server = TestServer::start().await;
    let mut sub = server.client().await;
    sub.cmd(&[b"SUBSCRIBE", b"late"]).await;
    sub.expect(&confirm('*', "subscribe", "late", 1)).await;
    let mut publisher = server.client().await;
    let payload = |seq: usize| -> Vec<u8> {
        // Mostly large payloads (shared, written in place), every third one small.
        let len = if seq.is_multiple_of(3) {
            100
        } else {
            64 * 1024
        };
        let mut bytes = format!("{seq:08}").into_bytes();
        bytes.resize(len, b'a' + (seq % 26) as u8);
        bytes
    };
    const MESSAGES: usize = 150;
    for seq in 0..MESSAGES {
        publisher.cmd(&[b"PUBLISH", b"late", &payload(seq)]).await;
        publisher.expect(b":1\r\n").await;
    }
    for seq in 0..MESSAGES {
        sub.expect(b"*3\r\n$7\r\nmessage\r\n$4\r\nlate\r\n").await;
        assert_eq!(sub.read_bulk().await, payload(seq), "message {seq}");
    }
    sub.expect_silence(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn a_pipeline_of_publishes_reaches_every_subscriber_whole_and_in_order() {
    // One channel: each subscriber's share is queued as one run, encoded message by
    // message; then a second channel joins mid-pipeline and the runs split.
    let server = TestServer::start().await;
    let mut subs = Vec::new();
    for _ in 0..3 {
        let mut sub = server.client().await;
        sub.cmd(&[b"SUBSCRIBE", b"one", b"two"]).await;
        sub.expect(&confirm('*', "subscribe", "one", 1)).await;
        sub.expect(&confirm('*', "subscribe", "two", 2)).await;
        subs.push(sub);
    }
    let mut publisher = server.client().await;
    let mut pipeline = Vec::new();
    let sent: Vec<(&str, String)> = (0..100)
        .map(|seq| {
            (
                if seq < 60 || seq % 3 != 0 {
                    "one"
                } else {
                    "two"
                },
                format!("m{seq}"),
            )
        })
        .collect();
    for (channel, payload) in &sent {
        pipeline.extend_from_slice(
            format!("*3\r\n$7\r\nPUBLISH\r\n{}{}", bulk(channel), bulk(payload)).as_bytes(),
        );
    }
    publisher.send(&pipeline).await;
    publisher
        .expect(":3\r\n".repeat(sent.len()).as_bytes())
        .await;
    for sub in &mut subs {
        for (channel, payload) in &sent {
            sub.expect(&message('*', channel, payload)).await;
        }
        sub.expect_silence(Duration::from_millis(50)).await;
    }
}
