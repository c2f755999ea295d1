//! Blocking stream reads: XREAD and XREADGROUP woken by XADD from other connections in
//! arrival order, errored by XGROUP DESTROY, deletion and type changes, never served
//! after their timeout, never blocking inside EXEC; and the redis crate waiting on them.

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

/// RESP2 XREAD/XREADGROUP reply with one key and one entry of one field.
fn one_entry(key: &str, id: &str, field: &str, value: &str) -> Vec<u8> {
    format!(
        "*1\r\n*2\r\n${}\r\n{key}\r\n*1\r\n*2\r\n${}\r\n{id}\r\n*2\r\n${}\r\n{field}\r\n${}\r\n{value}\r\n",
        key.len(),
        id.len(),
        field.len(),
        value.len()
    )
    .into_bytes()
}

#[tokio::test]
async fn xread_waiters_all_see_a_new_entry() {
    let server = TestServer::start().await;
    let mut admin = server.client().await;
    let mut first = server.client().await;
    let mut second = server.client().await;
    admin.cmd(&[b"XADD", b"s", b"1-0", b"f", b"old"]).await;
    admin.expect(b"$3\r\n1-0\r\n").await;
    first
        .cmd(&[b"XREAD", b"BLOCK", b"0", b"STREAMS", b"s", b"$"])
        .await;
    wait_until_blocked(&mut admin, 1).await;
    second
        .cmd(&[
            b"XREAD", b"BLOCK", b"5000", b"STREAMS", b"other", b"s", b"0", b"1-0",
        ])
        .await;
    wait_until_blocked(&mut admin, 2).await;
    admin.cmd(&[b"XADD", b"s", b"2-0", b"f", b"new"]).await;
    admin.expect(b"$3\r\n2-0\r\n").await;
    // XREAD does not consume: every reader past its start gets the entry.
    first.expect(&one_entry("s", "2-0", "f", "new")).await;
    second.expect(&one_entry("s", "2-0", "f", "new")).await;
    assert_eq!(blocked_clients(&mut admin).await, "blocked_clients:0");
    first.cmd(&[b"PING"]).await;
    first.expect(b"+PONG\r\n").await;
}

#[tokio::test]
async fn xreadgroup_waiters_are_served_first_come_first_served() {
    let server = TestServer::start().await;
    let mut admin = server.client().await;
    let mut alice = server.client().await;
    let mut bob = server.client().await;
    admin
        .cmd(&[b"XGROUP", b"CREATE", b"jobs", b"g", b"$", b"MKSTREAM"])
        .await;
    admin.expect(b"+OK\r\n").await;
    for (client, name) in [(&mut alice, &b"alice"[..]), (&mut bob, b"bob")] {
        client
            .cmd(&[
                b"XREADGROUP",
                b"GROUP",
                b"g",
                name,
                b"BLOCK",
                b"0",
                b"STREAMS",
                b"jobs",
                b">",
            ])
            .await;
        wait_until_blocked(&mut admin, if name == b"alice" { 1 } else { 2 }).await;
    }
    admin.cmd(&[b"XADD", b"jobs", b"1-0", b"job", b"a"]).await;
    admin.expect(b"$3\r\n1-0\r\n").await;
    alice.expect(&one_entry("jobs", "1-0", "job", "a")).await;
    // One new entry serves one group reader; the next waits for the next entry.
    bob.expect_silence(Duration::from_millis(100)).await;
    admin.cmd(&[b"XADD", b"jobs", b"2-0", b"job", b"b"]).await;
    admin.expect(b"$3\r\n2-0\r\n").await;
    bob.expect(&one_entry("jobs", "2-0", "job", "b")).await;
    admin.cmd(&[b"XPENDING", b"jobs", b"g"]).await;
    admin
        .expect(b"*4\r\n:2\r\n$3\r\n1-0\r\n$3\r\n2-0\r\n*2\r\n*2\r\n$5\r\nalice\r\n$1\r\n1\r\n*2\r\n$3\r\nbob\r\n$1\r\n1\r\n")
        .await;
}

#[tokio::test]
async fn timeouts_answer_null_and_nothing_is_delivered_after_them() {
    let server = TestServer::start().await;
    let mut admin = server.client().await;
    let mut reader = server.client().await;
    admin
        .cmd(&[b"XGROUP", b"CREATE", b"s", b"g", b"$", b"MKSTREAM"])
        .await;
    admin.expect(b"+OK\r\n").await;
    let started = Instant::now();
    reader
        .cmd(&[b"XREAD", b"BLOCK", b"150", b"STREAMS", b"s", b"$"])
        .await;
    reader.expect(b"*-1\r\n").await;
    assert!(started.elapsed() >= Duration::from_millis(150));
    reader
        .cmd(&[
            b"XREADGROUP",
            b"GROUP",
            b"g",
            b"c",
            b"BLOCK",
            b"100",
            b"STREAMS",
            b"s",
            b">",
        ])
        .await;
    reader.expect(b"*-1\r\n").await;
    admin.cmd(&[b"XADD", b"s", b"1-0", b"f", b"v"]).await;
    admin.expect(b"$3\r\n1-0\r\n").await;
    reader.expect_silence(Duration::from_millis(100)).await;
    // The timed-out group read took nothing: the entry is still undelivered.
    admin.cmd(&[b"XPENDING", b"s", b"g"]).await;
    admin.expect(b"*4\r\n:0\r\n$-1\r\n$-1\r\n*-1\r\n").await;
    assert_eq!(blocked_clients(&mut admin).await, "blocked_clients:0");
}

#[tokio::test]
async fn group_readers_get_errors_when_the_group_or_key_goes() {
    let server = TestServer::start().await;
    let mut admin = server.client().await;
    let mut reader = server.client().await;
    let nogroup =
        b"-NOGROUP No such key 's' or consumer group 'g' in XREADGROUP with GROUP option\r\n";
    let block = [
        &b"XREADGROUP"[..],
        b"GROUP",
        b"g",
        b"c",
        b"BLOCK",
        b"0",
        b"STREAMS",
        b"s",
        b">",
    ];
    let create = [&b"XGROUP"[..], b"CREATE", b"s", b"g", b"$", b"MKSTREAM"];

    admin.cmd(&create).await;
    admin.expect(b"+OK\r\n").await;
    reader.cmd(&block).await;
    wait_until_blocked(&mut admin, 1).await;
    admin.cmd(&[b"XGROUP", b"DESTROY", b"s", b"g"]).await;
    admin.expect(b":1\r\n").await;
    reader.expect(nogroup).await;

    admin.cmd(&[b"XGROUP", b"CREATE", b"s", b"g", b"$"]).await;
    admin.expect(b"+OK\r\n").await;
    reader.cmd(&block).await;
    wait_until_blocked(&mut admin, 1).await;
    admin.cmd(&[b"DEL", b"s"]).await;
    admin.expect(b":1\r\n").await;
    reader.expect(nogroup).await;

    admin.cmd(&create).await;
    admin.expect(b"+OK\r\n").await;
    reader.cmd(&block).await;
    wait_until_blocked(&mut admin, 1).await;
    admin.cmd(&[b"SET", b"s", b"now a string"]).await;
    admin.expect(b"+OK\r\n").await;
    reader
        .expect(b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n")
        .await;
    assert_eq!(blocked_clients(&mut admin).await, "blocked_clients:0");
}

#[tokio::test]
async fn xread_keeps_waiting_through_deletion_and_type_changes() {
    let server = TestServer::start().await;
    let mut admin = server.client().await;
    let mut reader = server.client().await;
    admin.cmd(&[b"XADD", b"s", b"5-0", b"f", b"v"]).await;
    admin.expect(b"$3\r\n5-0\r\n").await;
    reader
        .cmd(&[b"XREAD", b"BLOCK", b"0", b"STREAMS", b"s", b"$"])
        .await;
    wait_until_blocked(&mut admin, 1).await;
    admin.cmd(&[b"DEL", b"s"]).await;
    admin.expect(b":1\r\n").await;
    admin.cmd(&[b"SET", b"s", b"x"]).await;
    admin.expect(b"+OK\r\n").await;
    admin.cmd(&[b"DEL", b"s"]).await;
    admin.expect(b":1\r\n").await;
    reader.expect_silence(Duration::from_millis(50)).await;
    // An entry below the reader's start does not serve it; one above does.
    admin.cmd(&[b"XADD", b"s", b"3-0", b"f", b"low"]).await;
    admin.expect(b"$3\r\n3-0\r\n").await;
    reader.expect_silence(Duration::from_millis(50)).await;
    admin.cmd(&[b"XADD", b"s", b"6-0", b"f", b"high"]).await;
    admin.expect(b"$3\r\n6-0\r\n").await;
    reader.expect(&one_entry("s", "6-0", "f", "high")).await;
}

#[tokio::test]
async fn blocking_reads_inside_exec_answer_at_once() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    c.cmd(&[b"XGROUP", b"CREATE", b"s", b"g", b"$", b"MKSTREAM"])
        .await;
    c.expect(b"+OK\r\n").await;
    c.cmd(&[b"MULTI"]).await;
    c.expect(b"+OK\r\n").await;
    c.cmd(&[b"XREAD", b"BLOCK", b"0", b"STREAMS", b"s", b"$"])
        .await;
    c.expect(b"+QUEUED\r\n").await;
    c.cmd(&[
        b"XREADGROUP",
        b"GROUP",
        b"g",
        b"c",
        b"BLOCK",
        b"0",
        b"STREAMS",
        b"s",
        b">",
    ])
    .await;
    c.expect(b"+QUEUED\r\n").await;
    c.cmd(&[b"XADD", b"s", b"1-0", b"f", b"v"]).await;
    c.expect(b"+QUEUED\r\n").await;
    c.cmd(&[b"EXEC"]).await;
    c.expect(b"*3\r\n*-1\r\n*-1\r\n$3\r\n1-0\r\n").await;
}

#[tokio::test]
async fn a_disconnected_reader_is_forgotten() {
    let server = TestServer::start().await;
    let mut admin = server.client().await;
    let mut reader = server.client().await;
    reader
        .cmd(&[b"XREAD", b"BLOCK", b"0", b"STREAMS", b"s", b"$"])
        .await;
    wait_until_blocked(&mut admin, 1).await;
    drop(reader);
    wait_until_blocked(&mut admin, 0).await;
    admin.cmd(&[b"XADD", b"s", b"1-0", b"f", b"v"]).await;
    admin.expect(b"$3\r\n1-0\r\n").await;
}

async fn redis_crate_xreadgroup_waits(resp3: bool) {
    let server = TestServer::start().await;
    let mut setup = server.connection(resp3).await;
    let _: () = redis::cmd("XGROUP")
        .arg(&["CREATE", "events", "workers", "$", "MKSTREAM"])
        .query_async(&mut setup)
        .await
        .unwrap();
    let mut waiter = server.connection(resp3).await;
    let task = tokio::spawn(async move {
        let reply: redis::Value = redis::cmd("XREADGROUP")
            .arg(&[
                "GROUP", "workers", "w1", "BLOCK", "5000", "STREAMS", "events", ">",
            ])
            .query_async(&mut waiter)
            .await
            .unwrap();
        reply
    });
    let mut admin = server.client().await;
    wait_until_blocked(&mut admin, 1).await;
    let id: String = redis::cmd("XADD")
        .arg(&["events", "*", "kind", "signup"])
        .query_async(&mut setup)
        .await
        .unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
    let entries = match (resp3, reply) {
        (true, redis::Value::Map(mut pairs)) => pairs.remove(0).1,
        (false, redis::Value::Array(mut keys)) => match keys.remove(0) {
            redis::Value::Array(mut pair) => pair.remove(1),
            other => panic!("{other:?}"),
        },
        (_, other) => panic!("unexpected reply shape {other:?}"),
    };
    let entries: Vec<(String, Vec<String>)> = redis::from_redis_value(entries).unwrap();
    assert_eq!(
        entries,
        vec![(id, vec!["kind".to_owned(), "signup".to_owned()])]
    );
}

#[tokio::test]
async fn redis_crate_xreadgroup_block_resp2() {
    redis_crate_xreadgroup_waits(false).await;
}

#[tokio::test]
async fn redis_crate_xreadgroup_block_resp3() {
    redis_crate_xreadgroup_waits(true).await;
}

#[tokio::test]
async fn redis_crate_xread_block_times_out_with_nil() {
    for resp3 in [false, true] {
        let server = TestServer::start().await;
        let mut conn = server.connection(resp3).await;
        let started = Instant::now();
        let reply: redis::Value = redis::cmd("XREAD")
            .arg(&["BLOCK", "100", "STREAMS", "nothing", "$"])
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(reply, redis::Value::Nil);
        assert!(started.elapsed() >= Duration::from_millis(100));
    }
}

#[tokio::test]
async fn flushall_and_swapdb_reach_blocked_group_readers() {
    let server = TestServer::start().await;
    let mut admin = server.client().await;
    let mut reader = server.client().await;
    let nogroup =
        b"-NOGROUP No such key 's' or consumer group 'g' in XREADGROUP with GROUP option\r\n";
    let block = [
        &b"XREADGROUP"[..],
        b"GROUP",
        b"g",
        b"c",
        b"BLOCK",
        b"0",
        b"STREAMS",
        b"s",
        b">",
    ];
    admin
        .cmd(&[b"XGROUP", b"CREATE", b"s", b"g", b"$", b"MKSTREAM"])
        .await;
    admin.expect(b"+OK\r\n").await;
    reader.cmd(&block).await;
    wait_until_blocked(&mut admin, 1).await;
    admin.cmd(&[b"FLUSHALL"]).await;
    admin.expect(b"+OK\r\n").await;
    reader.expect(nogroup).await;

    // Database 0 gets database 1's string under the same name: WRONGTYPE.
    admin
        .cmd(&[b"XGROUP", b"CREATE", b"s", b"g", b"$", b"MKSTREAM"])
        .await;
    admin.expect(b"+OK\r\n").await;
    admin.cmd(&[b"SELECT", b"1"]).await;
    admin.expect(b"+OK\r\n").await;
    admin.cmd(&[b"SET", b"s", b"x"]).await;
    admin.expect(b"+OK\r\n").await;
    reader.cmd(&block).await;
    wait_until_blocked(&mut admin, 1).await;
    admin.cmd(&[b"SWAPDB", b"0", b"1"]).await;
    admin.expect(b"+OK\r\n").await;
    reader
        .expect(b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n")
        .await;
}

#[tokio::test]
async fn an_expiring_stream_errors_its_blocked_group_readers() {
    let server = TestServer::start().await;
    let mut admin = server.client().await;
    let mut reader = server.client().await;
    admin
        .cmd(&[b"XGROUP", b"CREATE", b"s", b"g", b"$", b"MKSTREAM"])
        .await;
    admin.expect(b"+OK\r\n").await;
    admin.cmd(&[b"PEXPIRE", b"s", b"100"]).await;
    admin.expect(b":1\r\n").await;
    reader
        .cmd(&[
            b"XREADGROUP",
            b"GROUP",
            b"g",
            b"c",
            b"BLOCK",
            b"0",
            b"STREAMS",
            b"s",
            b">",
        ])
        .await;
    // Nobody touches the database again: active expiry alone must answer the reader.
    reader
        .expect(
            b"-NOGROUP No such key 's' or consumer group 'g' in XREADGROUP with GROUP option\r\n",
        )
        .await;
}
