//! Keyspace notifications end to end: CONFIG SET notify-keyspace-events, then a real
//! subscriber sees Redis's channels, payloads and order.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{bulk, confirm, pmessage, Raw, TestServer};

async fn configured(flags: &str) -> (TestServer, Raw, Raw) {
    let server = TestServer::start().await;
    let mut admin = server.client().await;
    admin
        .cmd(&[
            b"CONFIG",
            b"SET",
            b"notify-keyspace-events",
            flags.as_bytes(),
        ])
        .await;
    admin.expect(b"+OK\r\n").await;
    let mut watcher = server.client().await;
    watcher.cmd(&[b"PSUBSCRIBE", b"__key*__:*"]).await;
    watcher
        .expect(&confirm('*', "psubscribe", "__key*__:*", 1))
        .await;
    (server, admin, watcher)
}

/// Expects the keyspace message, then the keyevent message, for one event.
async fn expect_event(watcher: &mut Raw, db: u32, event: &str, key: &str) {
    watcher
        .expect(&pmessage(
            '*',
            "__key*__:*",
            &format!("__keyspace@{db}__:{key}"),
            event,
        ))
        .await;
    watcher
        .expect(&pmessage(
            '*',
            "__key*__:*",
            &format!("__keyevent@{db}__:{event}"),
            key,
        ))
        .await;
}

#[tokio::test]
async fn flags_are_echoed_in_canonical_order() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    for (given, canonical) in [
        ("KEA", "AKE"),
        ("Kx", "xK"),
        ("g$lshzxetdKE", "AKE"),
        ("El", "lE"),
        ("", ""),
    ] {
        c.cmd(&[
            b"CONFIG",
            b"SET",
            b"notify-keyspace-events",
            given.as_bytes(),
        ])
        .await;
        c.expect(b"+OK\r\n").await;
        c.cmd(&[b"CONFIG", b"GET", b"notify-keyspace-events"]).await;
        c.expect(
            format!(
                "*2\r\n$22\r\nnotify-keyspace-events\r\n${}\r\n{canonical}\r\n",
                canonical.len()
            )
            .as_bytes(),
        )
        .await;
    }
    c.cmd(&[b"CONFIG", b"SET", b"notify-keyspace-events", b"KEQ"])
        .await;
    let line = c.read_line().await;
    assert!(
        line.starts_with(
            "-ERR CONFIG SET failed (possibly related to argument 'notify-keyspace-events')"
        ),
        "{line}"
    );
}

#[tokio::test]
async fn string_list_and_generic_events_in_order() {
    let (server, mut admin, mut watcher) = configured("KEA").await;
    let script: &[(&[&[u8]], &[u8])] = &[
        (&[b"SET", b"foo", b"bar"], b"+OK\r\n"),
        (&[b"INCRBY", b"n", b"2"], b":2\r\n"),
        (&[b"RPUSH", b"l", b"a"], b":1\r\n"),
        (&[b"LREM", b"l", b"0", b"zz"], b":0\r\n"),
        (&[b"RPOP", b"l"], b"$1\r\na\r\n"),
        (&[b"EXPIRE", b"foo", b"100"], b":1\r\n"),
        (&[b"RENAME", b"foo", b"bar"], b"+OK\r\n"),
        (&[b"DEL", b"bar", b"missing"], b":1\r\n"),
    ];
    for (args, expected) in script {
        admin.cmd(args).await;
        admin.expect(expected).await;
    }
    expect_event(&mut watcher, 0, "set", "foo").await;
    expect_event(&mut watcher, 0, "incrby", "n").await;
    expect_event(&mut watcher, 0, "rpush", "l").await;
    // LREM removed nothing: no event. RPOP empties the list: rpop, then del.
    expect_event(&mut watcher, 0, "rpop", "l").await;
    expect_event(&mut watcher, 0, "del", "l").await;
    expect_event(&mut watcher, 0, "expire", "foo").await;
    expect_event(&mut watcher, 0, "rename_from", "foo").await;
    expect_event(&mut watcher, 0, "rename_to", "bar").await;
    expect_event(&mut watcher, 0, "del", "bar").await;
    watcher.expect_silence(Duration::from_millis(100)).await;
    drop(server);
}

#[tokio::test]
async fn new_key_events_and_database_numbers() {
    let (_server, mut admin, mut watcher) = configured("KEAn").await;
    for (args, expected) in [
        (&[&b"SELECT"[..], b"3"][..], &b"+OK\r\n"[..]),
        (&[b"LPUSH", b"fresh", b"x"], b":1\r\n"),
        (&[b"LPUSH", b"fresh", b"y"], b":2\r\n"),
        (&[b"MOVE", b"fresh", b"4"], b":1\r\n"),
    ] {
        admin.cmd(args).await;
        admin.expect(expected).await;
    }
    expect_event(&mut watcher, 3, "new", "fresh").await;
    expect_event(&mut watcher, 3, "lpush", "fresh").await;
    expect_event(&mut watcher, 3, "lpush", "fresh").await;
    expect_event(&mut watcher, 3, "move_from", "fresh").await;
    expect_event(&mut watcher, 4, "new", "fresh").await;
    expect_event(&mut watcher, 4, "move_to", "fresh").await;
}

#[tokio::test]
async fn expired_events_from_lazy_and_active_expiry() {
    let (_server, mut admin, mut watcher) = configured("Ex").await;
    admin.cmd(&[b"PSETEX", b"lazy", b"20", b"v"]).await;
    admin.expect(b"+OK\r\n").await;
    tokio::time::sleep(Duration::from_millis(40)).await;
    admin.cmd(&[b"GET", b"lazy"]).await;
    admin.expect(b"$-1\r\n").await;
    watcher
        .expect(&pmessage(
            '*',
            "__key*__:*",
            "__keyevent@0__:expired",
            "lazy",
        ))
        .await;
    // Nobody reads this one: the cron's active cycle expires it.
    admin.cmd(&[b"PSETEX", b"active", b"20", b"v"]).await;
    admin.expect(b"+OK\r\n").await;
    watcher
        .expect(&pmessage(
            '*',
            "__key*__:*",
            "__keyevent@0__:expired",
            "active",
        ))
        .await;
    // Only `x` and `E` are on: SET itself published nothing.
    watcher.expect_silence(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn nothing_without_k_or_e() {
    let (_server, mut admin, mut watcher) = configured("A").await;
    admin.cmd(&[b"SET", b"quiet", b"v"]).await;
    admin.expect(b"+OK\r\n").await;
    watcher.expect_silence(Duration::from_millis(100)).await;
}

/// One RESP command, to build pipelines with.
fn command(args: &[&str]) -> Vec<u8> {
    let mut encoded = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        encoded.extend_from_slice(bulk(arg).as_bytes());
    }
    encoded
}

#[tokio::test]
async fn publishes_and_key_events_of_one_pipeline_arrive_in_command_order() {
    // The publishes of a pipeline are delivered together at the end of the batch; a
    // command between them that publishes a key event itself must still see the
    // earlier message go first, in a plain pipeline and inside MULTI/EXEC.
    let (_server, mut admin, mut watcher) = configured("KEA").await;
    let channel = "__keyspace@0__:app";
    let mut pipeline = Vec::new();
    for args in [
        &["PUBLISH", channel, "first"][..],
        &["SET", "foo", "bar"],
        &["PUBLISH", channel, "second"],
        &["MULTI"],
        &["PUBLISH", channel, "third"],
        &["SET", "foo", "baz"],
        &["PUBLISH", channel, "fourth"],
        &["EXEC"],
    ] {
        pipeline.extend(command(args));
    }
    admin.send(&pipeline).await;
    admin
        .expect(b":1\r\n+OK\r\n:1\r\n+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n")
        .await;
    admin.expect(b"*3\r\n:1\r\n+OK\r\n:1\r\n").await;
    for payload in ["first", "second", "third", "fourth"] {
        watcher
            .expect(&pmessage('*', "__key*__:*", channel, payload))
            .await;
        if payload == "first" || payload == "third" {
            expect_event(&mut watcher, 0, "set", "foo").await;
        }
    }
    watcher.expect_silence(Duration::from_millis(100)).await;
}
