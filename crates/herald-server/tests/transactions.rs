//! MULTI/EXEC/DISCARD/WATCH over raw RESP: exact replies, queue-time errors, WATCH races,
//! and the ordering of a transaction's own pushes after its EXEC reply.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{confirm, message, Raw, TestServer};

async fn run(c: &mut Raw, script: &[(&[&[u8]], &[u8])]) {
    for (args, expected) in script {
        c.cmd(args).await;
        c.expect(expected).await;
    }
}

#[tokio::test]
async fn exec_runs_the_queue_and_reports_each_result() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    run(
        &mut c,
        &[
            (&[b"EXEC"], b"-ERR EXEC without MULTI\r\n"),
            (&[b"DISCARD"], b"-ERR DISCARD without MULTI\r\n"),
            (&[b"MULTI"], b"+OK\r\n"),
            (&[b"MULTI"], b"-ERR MULTI calls can not be nested\r\n"),
            (&[b"WATCH", b"x"], b"-ERR WATCH inside MULTI is not allowed\r\n"),
            (&[b"SET", b"a", b"1"], b"+QUEUED\r\n"),
            (&[b"INCR", b"a"], b"+QUEUED\r\n"),
            (&[b"SET", b"s", b"text"], b"+QUEUED\r\n"),
            (&[b"INCR", b"s"], b"+QUEUED\r\n"),
            (&[b"GET", b"a"], b"+QUEUED\r\n"),
            (
                &[b"EXEC"],
                b"*5\r\n+OK\r\n:2\r\n+OK\r\n-ERR value is not an integer or out of range\r\n$1\r\n2\r\n",
            ),
            (&[b"MULTI"], b"+OK\r\n"),
            (&[b"SET", b"a", b"9"], b"+QUEUED\r\n"),
            (&[b"DISCARD"], b"+OK\r\n"),
            (&[b"GET", b"a"], b"$1\r\n2\r\n"),
        ],
    )
    .await;
}

#[tokio::test]
async fn queue_time_errors_abort_with_execabort() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    run(
        &mut c,
        &[
            (&[b"MULTI"], b"+OK\r\n"),
            (&[b"SET", b"a", b"1"], b"+QUEUED\r\n"),
            (
                &[b"SET", b"a"],
                b"-ERR wrong number of arguments for 'set' command\r\n",
            ),
            (
                &[b"NOSUCH"],
                b"-ERR unknown command 'NOSUCH', with args beginning with: \r\n",
            ),
            (
                &[b"EXEC"],
                b"-EXECABORT Transaction discarded because of previous errors.\r\n",
            ),
            (&[b"GET", b"a"], b"$-1\r\n"),
        ],
    )
    .await;
}

#[tokio::test]
async fn watch_aborts_on_writes_by_others_and_on_expiry() {
    let server = TestServer::start().await;
    let mut a = server.client().await;
    let mut b = server.client().await;
    run(
        &mut a,
        &[
            (&[b"SET", b"k", b"1"], b"+OK\r\n"),
            (&[b"WATCH", b"k"], b"+OK\r\n"),
        ],
    )
    .await;
    run(&mut b, &[(&[b"SET", b"k", b"2"], b"+OK\r\n")]).await;
    run(
        &mut a,
        &[
            (&[b"MULTI"], b"+OK\r\n"),
            (&[b"SET", b"k", b"from-a"], b"+QUEUED\r\n"),
            (&[b"EXEC"], b"*-1\r\n"),
            (&[b"GET", b"k"], b"$1\r\n2\r\n"),
            // The watch is gone after EXEC: the next transaction commits.
            (&[b"MULTI"], b"+OK\r\n"),
            (&[b"SET", b"k", b"from-a"], b"+QUEUED\r\n"),
            (&[b"EXEC"], b"*1\r\n+OK\r\n"),
            // A write to another key does not disturb the watch.
            (&[b"WATCH", b"k"], b"+OK\r\n"),
        ],
    )
    .await;
    run(&mut b, &[(&[b"SET", b"other", b"x"], b"+OK\r\n")]).await;
    run(
        &mut a,
        &[
            (&[b"MULTI"], b"+OK\r\n"),
            (&[b"GET", b"k"], b"+QUEUED\r\n"),
            (&[b"EXEC"], b"*1\r\n$6\r\nfrom-a\r\n"),
            // Expiry of a watched key counts as a change, even unobserved.
            (&[b"PSETEX", b"k", b"20", b"v"], b"+OK\r\n"),
            (&[b"WATCH", b"k"], b"+OK\r\n"),
        ],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    run(
        &mut a,
        &[
            (&[b"MULTI"], b"+OK\r\n"),
            (&[b"SET", b"k", b"late"], b"+QUEUED\r\n"),
            (&[b"EXEC"], b"*-1\r\n"),
            // UNWATCH and FLUSHALL-by-others.
            (&[b"SET", b"k", b"1"], b"+OK\r\n"),
            (&[b"WATCH", b"k"], b"+OK\r\n"),
            (&[b"UNWATCH"], b"+OK\r\n"),
        ],
    )
    .await;
    run(&mut b, &[(&[b"SET", b"k", b"2"], b"+OK\r\n")]).await;
    run(
        &mut a,
        &[
            (&[b"MULTI"], b"+OK\r\n"),
            (&[b"GET", b"k"], b"+QUEUED\r\n"),
            (&[b"EXEC"], b"*1\r\n$1\r\n2\r\n"),
            (&[b"WATCH", b"k"], b"+OK\r\n"),
        ],
    )
    .await;
    run(&mut b, &[(&[b"FLUSHALL"], b"+OK\r\n")]).await;
    run(
        &mut a,
        &[
            (&[b"MULTI"], b"+OK\r\n"),
            (&[b"PING"], b"+QUEUED\r\n"),
            (&[b"EXEC"], b"*-1\r\n"),
        ],
    )
    .await;
}

#[tokio::test]
async fn resp3_pushes_follow_the_exec_reply() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    c.cmd(&[b"HELLO", b"3"]).await;
    assert_eq!(c.read_line().await, "%7\r\n");
    for _ in 0..14 {
        let line = c.read_line().await;
        if line.starts_with('$') {
            c.read_line().await;
        }
    }
    c.cmd(&[b"SUBSCRIBE", b"foo", b"bar", b"baz"]).await;
    c.expect(&confirm('>', "subscribe", "foo", 1)).await;
    c.expect(&confirm('>', "subscribe", "bar", 2)).await;
    c.expect(&confirm('>', "subscribe", "baz", 3)).await;
    run(
        &mut c,
        &[
            (&[b"MULTI"], b"+OK\r\n"),
            (&[b"PING", b"abc"], b"+QUEUED\r\n"),
            (&[b"PUBLISH", b"foo", b"m1"], b"+QUEUED\r\n"),
            (&[b"PUBLISH", b"foo", b"m2"], b"+QUEUED\r\n"),
            (&[b"UNSUBSCRIBE", b"bar"], b"+QUEUED\r\n"),
            (&[b"PING", b"def"], b"+QUEUED\r\n"),
        ],
    )
    .await;
    c.cmd(&[b"EXEC"]).await;
    // The confirmation of an UNSUBSCRIBE inside MULTI is an element of the EXEC array.
    c.expect(b"*5\r\n$3\r\nabc\r\n:1\r\n:1\r\n").await;
    c.expect(&confirm('>', "unsubscribe", "bar", 2)).await;
    c.expect(b"$3\r\ndef\r\n").await;
    c.expect(&message('>', "foo", "m1")).await;
    c.expect(&message('>', "foo", "m2")).await;
}

#[tokio::test]
async fn reset_discards_the_transaction() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    run(
        &mut c,
        &[
            (&[b"MULTI"], b"+OK\r\n"),
            (&[b"SET", b"a", b"1"], b"+QUEUED\r\n"),
            (&[b"RESET"], b"+RESET\r\n"),
            (&[b"EXEC"], b"-ERR EXEC without MULTI\r\n"),
            (&[b"GET", b"a"], b"$-1\r\n"),
        ],
    )
    .await;
}
