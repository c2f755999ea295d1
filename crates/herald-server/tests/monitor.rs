//! MONITOR end to end over raw RESP, byte for byte where Redis's format is fixed: what is
//! shown (commands after they ran, in their database, from their client, escaped, AUTH
//! redacted), what is not (administrative commands, refused or only queued ones), the
//! monitor's own commands, RESET and disconnection.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Raw, TestServer};

/// The next monitor line, checked for `+<secs>.<6 digits> [<db> <client addr>] ` and
/// returned without that prefix and its CRLF.
async fn shown(monitor: &mut Raw, db: usize, client: &Raw) -> String {
    let line = monitor.read_line().await;
    let addr = client.stream.local_addr().unwrap();
    let (time, rest) = line
        .strip_prefix('+')
        .and_then(|line| line.split_once(' '))
        .unwrap_or_else(|| panic!("not a monitor line: {line:?}"));
    let (secs, micros) = time.split_once('.').expect("seconds.micros");
    assert!(secs.parse::<u64>().is_ok() && micros.len() == 6, "{line:?}");
    assert!(micros.chars().all(|c| c.is_ascii_digit()), "{line:?}");
    let prefix = format!("[{db} {addr}] ");
    rest.strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("expected {prefix:?} in {line:?}"))
        .trim_end_matches("\r\n")
        .to_owned()
}

/// Waits (at most 5 s) for the server to have no monitor left.
async fn until_nobody_monitors(server: &TestServer, failure: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !server.shared.monitors.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "{failure}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn monitor(server: &TestServer) -> Raw {
    let mut monitor = server.client().await;
    monitor.cmd(&[b"MONITOR"]).await;
    monitor.expect(b"+OK\r\n").await;
    monitor
}

#[tokio::test]
async fn commands_are_shown_after_they_ran_escaped_and_redacted() {
    let server = TestServer::start().await;
    let mut watcher = monitor(&server).await;
    let mut client = server.client().await;
    client.cmd(&[b"SET", b"k", b"v"]).await;
    client.expect(b"+OK\r\n").await;
    assert_eq!(shown(&mut watcher, 0, &client).await, r#""SET" "k" "v""#);
    // Refused before running (unknown, arity) or administrative: not shown.
    client.cmd(&[b"NOSUCH", b"x"]).await;
    client.read_line().await;
    client.cmd(&[b"GET"]).await;
    client.read_line().await;
    client.cmd(&[b"CONFIG", b"GET", b"maxclients"]).await;
    client
        .read_exact(b"*2\r\n$10\r\nmaxclients\r\n$5\r\n10000\r\n".len())
        .await;
    // Quotes, backslashes, control and non-ASCII bytes, as Redis's sdscatrepr.
    client.cmd(&[b"GET", b"a\"b\\c\n\x92"]).await;
    client.expect(b"$-1\r\n").await;
    assert_eq!(
        shown(&mut watcher, 0, &client).await,
        r#""GET" "a\"b\\c\n\x92""#
    );
    // AUTH ran (and failed: no password is set), so it is shown, without its secret.
    client.cmd(&[b"AUTH", b"secret"]).await;
    client.read_line().await;
    assert_eq!(
        shown(&mut watcher, 0, &client).await,
        r#""AUTH" "(redacted)""#
    );
    // In its database; a transaction's commands when EXEC runs them, before EXEC.
    client.cmd(&[b"SELECT", b"2"]).await;
    client.expect(b"+OK\r\n").await;
    // Shown after it ran, so in the database it selected (as Redis 7.0).
    assert_eq!(shown(&mut watcher, 2, &client).await, r#""SELECT" "2""#);
    client.cmd(&[b"MULTI"]).await;
    client.expect(b"+OK\r\n").await;
    client.cmd(&[b"INCR", b"n"]).await;
    client.expect(b"+QUEUED\r\n").await;
    client.cmd(&[b"EXEC"]).await;
    client.expect(b"*1\r\n:1\r\n").await;
    assert_eq!(shown(&mut watcher, 2, &client).await, r#""MULTI""#);
    assert_eq!(shown(&mut watcher, 2, &client).await, r#""INCR" "n""#);
    assert_eq!(shown(&mut watcher, 2, &client).await, r#""EXEC""#);
    watcher.expect_silence(Duration::from_millis(100)).await;
    server.stop().await;
}

#[tokio::test]
async fn a_monitor_sees_its_own_commands_after_their_replies_and_stays_off_the_keyspace() {
    let server = TestServer::start().await;
    let mut watcher = monitor(&server).await;
    watcher.cmd(&[b"PING"]).await;
    watcher.expect(b"+PONG\r\n").await;
    // The line names the monitor's own address.
    let line = watcher.read_line().await;
    assert!(line.ends_with("\"PING\"\r\n"), "{line:?}");
    assert!(
        line.contains(&format!(" {}] ", watcher.stream.local_addr().unwrap())),
        "{line:?}"
    );
    // As Redis 7: a monitor counts as a replica, and replicas may not use the keyspace.
    watcher.cmd(&[b"GET", b"k"]).await;
    watcher
        .expect(b"-ERR Replica can't interact with the keyspace\r\n")
        .await;
    // Nor publish: PUBLISH goes to replicas (Redis 7.0.15 answers the same).
    watcher.cmd(&[b"PUBLISH", b"news", b"x"]).await;
    watcher
        .expect(b"-ERR Replica can't interact with the keyspace\r\n")
        .await;
    // CLIENT LIST flags a monitor with O.
    let mut other = server.client().await;
    other.cmd(&[b"CLIENT", b"LIST"]).await;
    let list = String::from_utf8_lossy(&other.read_bulk().await).into_owned();
    let own_addr = format!("addr={} ", watcher.stream.local_addr().unwrap());
    let entry = list
        .lines()
        .find(|line| line.contains(&own_addr))
        .expect("the monitor in CLIENT LIST");
    assert!(entry.contains(" flags=O "), "{entry}");
    // MONITOR again: no reply at all, as Redis.
    watcher.cmd(&[b"MONITOR"]).await;
    watcher.expect_silence(Duration::from_millis(100)).await;
    // RESET leaves monitor mode.
    watcher.cmd(&[b"RESET"]).await;
    watcher.expect(b"+RESET\r\n").await;
    let mut client = server.client().await;
    client.cmd(&[b"SET", b"k", b"v"]).await;
    client.expect(b"+OK\r\n").await;
    watcher.expect_silence(Duration::from_millis(100)).await;
    watcher.cmd(&[b"GET", b"k"]).await;
    watcher.expect(b"$1\r\nv\r\n").await;
    assert!(server.shared.monitors.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn monitor_is_refused_inside_a_transaction_and_forgotten_on_disconnect() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    client.cmd(&[b"MULTI"]).await;
    client.expect(b"+OK\r\n").await;
    client.cmd(&[b"MONITOR"]).await;
    client.expect(b"+QUEUED\r\n").await;
    client.cmd(&[b"EXEC"]).await;
    client
        .expect(b"*1\r\n-ERR MONITOR isn't allowed for DENY BLOCKING client\r\n")
        .await;
    assert!(server.shared.monitors.is_empty());
    let watcher = monitor(&server).await;
    assert_eq!(server.shared.monitors.len(), 1);
    drop(watcher);
    until_nobody_monitors(&server, "monitor never forgotten").await;
    // Nobody watches: commands run as before.
    client.cmd(&[b"PING"]).await;
    client.expect(b"+PONG\r\n").await;
    server.stop().await;
}

#[tokio::test]
async fn a_monitor_that_does_not_read_is_cut_off_by_the_replica_limit() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    client
        .cmd(&[
            b"CONFIG",
            b"SET",
            b"client-output-buffer-limit",
            b"replica 1mb 0 0",
        ])
        .await;
    client.expect(b"+OK\r\n").await;
    let mut watcher = monitor(&server).await;
    // 32 MB of commands the monitor never reads: past what the kernel's socket buffers
    // take for it, and then past its 1 MB.
    let value = vec![b'x'; 128 * 1024];
    for _ in 0..256 {
        client.cmd(&[b"SET", b"big", &value]).await;
        client.expect(b"+OK\r\n").await;
    }
    until_nobody_monitors(&server, "the slow monitor was kept").await;
    // Its connection is closed once what it was sent is drained; the writer was not hurt.
    let mut sink = vec![0u8; 1 << 16];
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        use tokio::io::AsyncReadExt;
        while watcher.stream.read(&mut sink).await.is_ok_and(|n| n > 0) {}
    });
    closed.await.expect("the monitor's connection stayed open");
    client.cmd(&[b"PING"]).await;
    client.expect(b"+PONG\r\n").await;
    server.stop().await;
}
