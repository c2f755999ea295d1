//! Blocking list commands: woken by pushes from other clients in arrival order, timeouts,
//! BLMOVE, EXEC semantics, disconnects, and the redis crate waiting on BLPOP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Raw, TestServer};

async fn blocked_clients(admin: &mut Raw) -> String {
    admin.cmd(&[b"INFO", b"clients"]).await;
    let info = String::from_utf8(admin.read_bulk().await).unwrap();
    info.lines()
        .find(|line| line.starts_with("blocked_clients:"))
        .unwrap()
        .to_owned()
}

async fn wait_until_blocked(admin: &mut Raw, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while blocked_clients(admin).await != format!("blocked_clients:{count}") {
        assert!(Instant::now() < deadline, "clients never blocked");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn blpop_is_woken_by_a_push_first_come_first_served() {
    let server = TestServer::start().await;
    let mut admin = server.client().await;
    let mut first = server.client().await;
    let mut second = server.client().await;
    first.cmd(&[b"BLPOP", b"jobs", b"other", b"0"]).await;
    wait_until_blocked(&mut admin, 1).await;
    second.cmd(&[b"BLPOP", b"jobs", b"0"]).await;
    wait_until_blocked(&mut admin, 2).await;
    // The pusher's reply counts the element before the waiter takes it, as in Redis.
    admin.cmd(&[b"RPUSH", b"jobs", b"a", b"b"]).await;
    admin.expect(b":2\r\n").await;
    first.expect(b"*2\r\n$4\r\njobs\r\n$1\r\na\r\n").await;
    second.expect(b"*2\r\n$4\r\njobs\r\n$1\r\nb\r\n").await;
    admin.cmd(&[b"EXISTS", b"jobs"]).await;
    admin.expect(b":0\r\n").await;
    // A served client goes on with its pipeline.
    first.cmd(&[b"PING"]).await;
    first.expect(b"+PONG\r\n").await;
    assert_eq!(blocked_clients(&mut admin).await, "blocked_clients:0");
}

#[tokio::test]
async fn immediate_results_timeouts_and_errors() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    c.cmd(&[b"RPUSH", b"l", b"x"]).await;
    c.expect(b":1\r\n").await;
    c.cmd(&[b"BRPOP", b"empty", b"l", b"1"]).await;
    c.expect(b"*2\r\n$1\r\nl\r\n$1\r\nx\r\n").await;
    let started = Instant::now();
    c.cmd(&[b"BLPOP", b"l", b"0.1"]).await;
    c.expect(b"*-1\r\n").await;
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(90), "{waited:?}");
    c.cmd(&[b"BLPOP", b"l", b"-1"]).await;
    c.expect(b"-ERR timeout is negative\r\n").await;
    c.cmd(&[b"BLPOP", b"l", b"soon"]).await;
    c.expect(b"-ERR timeout is not a float or out of range\r\n")
        .await;
    c.cmd(&[b"SET", b"s", b"v"]).await;
    c.expect(b"+OK\r\n").await;
    c.cmd(&[b"BLPOP", b"s", b"1"]).await;
    c.expect(b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n")
        .await;
    // Inside EXEC a blocking command does not block.
    for (args, expected) in [
        (&[&b"MULTI"[..]][..], &b"+OK\r\n"[..]),
        (&[b"BLPOP", b"nothing", b"0"], b"+QUEUED\r\n"),
        (&[b"EXEC"], b"*1\r\n*-1\r\n"),
    ] {
        c.cmd(args).await;
        c.expect(expected).await;
    }
}

#[tokio::test]
async fn blmove_and_blmpop_are_served() {
    let server = TestServer::start().await;
    let mut admin = server.client().await;
    let mut mover = server.client().await;
    let mut popper = server.client().await;
    mover
        .cmd(&[b"BLMOVE", b"src", b"dst", b"RIGHT", b"LEFT", b"0"])
        .await;
    wait_until_blocked(&mut admin, 1).await;
    popper
        .cmd(&[
            b"BLMPOP", b"0", b"2", b"none", b"dst", b"LEFT", b"COUNT", b"5",
        ])
        .await;
    wait_until_blocked(&mut admin, 2).await;
    admin.cmd(&[b"LPUSH", b"src", b"v"]).await;
    admin.expect(b":1\r\n").await;
    mover.expect(b"$1\r\nv\r\n").await;
    // The move filled `dst`, which serves the BLMPOP waiting there.
    popper.expect(b"*2\r\n$3\r\ndst\r\n*1\r\n$1\r\nv\r\n").await;
    mover.cmd(&[b"BRPOPLPUSH", b"src", b"dst", b"0.05"]).await;
    mover.expect(b"*-1\r\n").await;
}

#[tokio::test]
async fn a_disconnected_waiter_takes_nothing() {
    let server = TestServer::start().await;
    let mut admin = server.client().await;
    let mut gone = server.client().await;
    gone.cmd(&[b"BLPOP", b"q", b"0"]).await;
    wait_until_blocked(&mut admin, 1).await;
    drop(gone);
    wait_until_blocked(&mut admin, 0).await;
    admin.cmd(&[b"RPUSH", b"q", b"kept"]).await;
    admin.expect(b":1\r\n").await;
    admin.cmd(&[b"LLEN", b"q"]).await;
    admin.expect(b":1\r\n").await;
}

#[tokio::test]
async fn redis_crate_blpop_waits_for_a_push() {
    let server = TestServer::start().await;
    let client = redis::Client::open(server.url()).unwrap();
    let mut waiter = client.get_multiplexed_async_connection().await.unwrap();
    let task = tokio::spawn(async move {
        let result: Option<(String, String)> = redis::cmd("BLPOP")
            .arg("events")
            .arg(5)
            .query_async(&mut waiter)
            .await
            .unwrap();
        result
    });
    let mut admin = server.client().await;
    wait_until_blocked(&mut admin, 1).await;
    let mut pusher = client.get_multiplexed_async_connection().await.unwrap();
    let _: i64 = redis::cmd("LPUSH")
        .arg("events")
        .arg("hello")
        .query_async(&mut pusher)
        .await
        .unwrap();
    let popped = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(popped, Some(("events".to_owned(), "hello".to_owned())));
}
