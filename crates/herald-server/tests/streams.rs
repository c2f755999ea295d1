//! Streams through the `redis` crate under RESP2 and RESP3 (entries, trimming, groups,
//! claiming, XINFO), with exact bytes where shape matters, keyspace events, WATCH, and
//! the generic key commands on stream keys.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::TestServer;
use redis::aio::MultiplexedConnection;
use redis::Value;

type Entries = Vec<(String, Vec<String>)>;

async fn query<T: redis::FromRedisValue>(conn: &mut MultiplexedConnection, args: &[&str]) -> T {
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    cmd.query_async(conn).await.unwrap()
}

async fn error(conn: &mut MultiplexedConnection, args: &[&str]) -> String {
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    let err = cmd.query_async::<Value>(conn).await.unwrap_err();
    // The crate splits the code from the text; put them back together.
    match (err.code(), err.detail()) {
        (Some(code), Some(detail)) => format!("{code} {detail}"),
        _ => err.to_string(),
    }
}

/// A field/value reply (a RESP3 map or a RESP2 flat array) as a map.
struct Dict(HashMap<String, Value>);

impl Dict {
    fn from(value: Value) -> Dict {
        let pairs: Vec<(Value, Value)> = match value {
            Value::Map(pairs) => pairs,
            Value::Array(items) => {
                let mut items = items.into_iter();
                std::iter::from_fn(|| Some((items.next()?, items.next()?))).collect()
            }
            other => panic!("not a dict: {other:?}"),
        };
        Dict(
            pairs
                .into_iter()
                .map(|(k, v)| (redis::from_redis_value(k).unwrap(), v))
                .collect(),
        )
    }

    fn get<T: redis::FromRedisValue>(&self, field: &str) -> Option<T> {
        self.0
            .get(field)
            .map(|v| redis::from_redis_value(v.clone()).unwrap())
    }
}

async fn dicts(conn: &mut MultiplexedConnection, args: &[&str]) -> Vec<Dict> {
    let items: Vec<Value> = query(conn, args).await;
    items.into_iter().map(Dict::from).collect()
}

async fn entries_and_trimming(resp3: bool) {
    let server = TestServer::start().await;
    let mut c = server.connection(resp3).await;
    assert_eq!(
        query::<String>(&mut c, &["XADD", "s", "1-1", "a", "1"]).await,
        "1-1"
    );
    assert_eq!(
        query::<String>(&mut c, &["XADD", "s", "1-*", "b", "2"]).await,
        "1-2"
    );
    assert_eq!(
        query::<String>(&mut c, &["XADD", "s", "5", "c", "3", "d", "4"]).await,
        "5-0"
    );
    let auto: String = query(&mut c, &["XADD", "s", "*", "e", "5"]).await;
    assert!(auto.ends_with("-0") && auto.len() > 10, "{auto}");
    assert_eq!(
        error(&mut c, &["XADD", "s", "5-0", "x", "y"]).await,
        "ERR The ID specified in XADD is equal or smaller than the target stream top item"
    );
    assert_eq!(
        error(&mut c, &["XADD", "t", "0-0", "x", "y"]).await,
        "ERR The ID specified in XADD must be greater than 0-0"
    );
    assert_eq!(
        error(&mut c, &["XADD", "s", "*", "odd"]).await,
        "ERR wrong number of arguments for 'xadd' command"
    );
    assert_eq!(
        query::<Value>(&mut c, &["XADD", "missing", "NOMKSTREAM", "*", "a", "b"]).await,
        Value::Nil
    );
    assert_eq!(query::<i64>(&mut c, &["EXISTS", "missing"]).await, 0);
    assert_eq!(query::<i64>(&mut c, &["XLEN", "s"]).await, 4);

    let range: Entries = query(&mut c, &["XRANGE", "s", "(1-1", "5"]).await;
    assert_eq!(
        range,
        vec![
            ("1-2".to_owned(), vec!["b".to_owned(), "2".to_owned()]),
            (
                "5-0".to_owned(),
                vec!["c".into(), "3".into(), "d".into(), "4".into()]
            ),
        ]
    );
    let rev: Entries = query(&mut c, &["XREVRANGE", "s", "+", "-", "COUNT", "2"]).await;
    assert_eq!(rev[1].0, "5-0");
    assert_eq!(
        error(
            &mut c,
            &[
                "XRANGE",
                "s",
                "(18446744073709551615-18446744073709551615",
                "+"
            ]
        )
        .await,
        "ERR invalid start ID for the interval"
    );
    assert_eq!(
        error(&mut c, &["XRANGE", "s", "abc", "+"]).await,
        "ERR Invalid stream ID specified as stream command argument"
    );

    assert_eq!(query::<i64>(&mut c, &["XDEL", "s", "1-2", "9-9"]).await, 1);
    assert_eq!(
        query::<i64>(&mut c, &["XTRIM", "s", "MAXLEN", "=", "2"]).await,
        1
    );
    assert_eq!(query::<i64>(&mut c, &["XTRIM", "s", "MINID", "6"]).await, 1);
    assert_eq!(query::<i64>(&mut c, &["XLEN", "s"]).await, 1);
    // Approximate trimming only drops whole blocks: nothing goes from one short block.
    for i in 0..50 {
        let _: String = query(
            &mut c,
            &["XADD", "s", "MAXLEN", "~", "10", "*", "n", &i.to_string()],
        )
        .await;
    }
    assert_eq!(query::<i64>(&mut c, &["XLEN", "s"]).await, 51);
    assert_eq!(
        error(&mut c, &["XTRIM", "s", "MAXLEN", "1", "LIMIT", "5"]).await,
        "ERR syntax error, LIMIT cannot be used without the special ~ option"
    );
    // Emptied streams stay, as in Redis.
    assert_eq!(
        query::<i64>(&mut c, &["XTRIM", "s", "MAXLEN", "0"]).await,
        51
    );
    assert_eq!(query::<String>(&mut c, &["TYPE", "s"]).await, "stream");

    let _: () = query(&mut c, &["SET", "str", "x"]).await;
    assert_eq!(
        error(&mut c, &["XADD", "str", "*", "a", "b"]).await,
        "WRONGTYPE Operation against a key holding the wrong kind of value"
    );
    assert_eq!(
        error(&mut c, &["XREAD", "STREAMS", "s", "str", "0", "0"]).await,
        "WRONGTYPE Operation against a key holding the wrong kind of value"
    );
}

#[tokio::test]
async fn entries_and_trimming_resp2() {
    entries_and_trimming(false).await;
}

#[tokio::test]
async fn entries_and_trimming_resp3() {
    entries_and_trimming(true).await;
}

async fn groups_pending_and_claims(resp3: bool) {
    let server = TestServer::start().await;
    let mut c = server.connection(resp3).await;
    let _: () = query(&mut c, &["XGROUP", "CREATE", "q", "g", "$", "MKSTREAM"]).await;
    assert_eq!(
        error(&mut c, &["XGROUP", "CREATE", "q", "g", "$"]).await,
        "BUSYGROUP Consumer Group name already exists"
    );
    for id in ["1-0", "2-0", "3-0", "4-0"] {
        let _: String = query(&mut c, &["XADD", "q", id, "job", id]).await;
    }
    let read: Value = query(
        &mut c,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "alice",
            "COUNT",
            "3",
            "STREAMS",
            "q",
            ">",
        ],
    )
    .await;
    let shape_ok = matches!(
        (&read, resp3),
        (Value::Map(_), true) | (Value::Array(_), false)
    );
    assert!(shape_ok, "{read:?}");
    let pending: (i64, String, String, Vec<(String, String)>) =
        query(&mut c, &["XPENDING", "q", "g"]).await;
    assert_eq!(
        pending,
        (
            3,
            "1-0".into(),
            "3-0".into(),
            vec![("alice".into(), "3".into())]
        )
    );
    assert_eq!(
        query::<i64>(&mut c, &["XACK", "q", "g", "1-0", "1-0", "9-0"]).await,
        1
    );

    // History read of alice's own pending entries counts a delivery.
    let _: Value = query(
        &mut c,
        &["XREADGROUP", "GROUP", "g", "alice", "STREAMS", "q", "0"],
    )
    .await;
    let detail: Vec<(String, String, i64, i64)> =
        query(&mut c, &["XPENDING", "q", "g", "-", "+", "10", "alice"]).await;
    assert_eq!(
        detail
            .iter()
            .map(|d| (d.0.as_str(), d.3))
            .collect::<Vec<_>>(),
        vec![("2-0", 2), ("3-0", 2)]
    );

    // XCLAIM with a min-idle-time nobody reaches claims nothing; JUSTID moves without counting.
    let none: Vec<String> = query(
        &mut c,
        &["XCLAIM", "q", "g", "bob", "3600000", "2-0", "JUSTID"],
    )
    .await;
    assert!(none.is_empty());
    let ids: Vec<String> = query(&mut c, &["XCLAIM", "q", "g", "bob", "0", "2-0", "JUSTID"]).await;
    assert_eq!(ids, vec!["2-0"]);
    let claimed: Entries = query(
        &mut c,
        &["XCLAIM", "q", "g", "bob", "0", "3-0", "RETRYCOUNT", "7"],
    )
    .await;
    assert_eq!(
        claimed,
        vec![("3-0".to_owned(), vec!["job".to_owned(), "3-0".to_owned()])]
    );
    let detail: Vec<(String, String, i64, i64)> =
        query(&mut c, &["XPENDING", "q", "g", "-", "+", "10"]).await;
    assert_eq!(
        detail
            .iter()
            .map(|d| (d.0.as_str(), d.1.as_str(), d.3))
            .collect::<Vec<_>>(),
        vec![("2-0", "bob", 2), ("3-0", "bob", 7)]
    );

    // XAUTOCLAIM reports entries deleted while pending and drops them from the PEL.
    let _: Value = query(
        &mut c,
        &["XREADGROUP", "GROUP", "g", "alice", "STREAMS", "q", ">"],
    )
    .await;
    assert_eq!(query::<i64>(&mut c, &["XDEL", "q", "3-0"]).await, 1);
    let (next, claimed, deleted): (String, Entries, Vec<String>) = query(
        &mut c,
        &["XAUTOCLAIM", "q", "g", "carol", "0", "0", "COUNT", "10"],
    )
    .await;
    assert_eq!(next, "0-0");
    assert_eq!(
        claimed.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(),
        vec!["2-0", "4-0"]
    );
    assert_eq!(deleted, vec!["3-0"]);
    assert_eq!(
        error(
            &mut c,
            &["XAUTOCLAIM", "q", "g", "carol", "0", "0", "COUNT", "0"]
        )
        .await,
        "ERR COUNT must be > 0"
    );
    assert_eq!(
        error(&mut c, &["XAUTOCLAIM", "q", "nope", "carol", "0", "0"]).await,
        "NOGROUP No such key 'q' or consumer group 'nope'"
    );

    // XINFO agrees with what happened.
    let groups = dicts(&mut c, &["XINFO", "GROUPS", "q"]).await;
    assert_eq!(groups[0].get::<i64>("pending"), Some(2));
    assert_eq!(groups[0].get::<i64>("consumers"), Some(3));
    assert_eq!(
        groups[0].get::<String>("last-delivered-id").as_deref(),
        Some("4-0")
    );
    assert_eq!(groups[0].get::<i64>("lag"), Some(0));
    let consumers = dicts(&mut c, &["XINFO", "CONSUMERS", "q", "g"]).await;
    let names: Vec<String> = consumers
        .iter()
        .map(|d| d.get::<String>("name").unwrap())
        .collect();
    assert_eq!(names, vec!["alice", "bob", "carol"]);
    assert_eq!(consumers[2].get::<i64>("pending"), Some(2));
    assert!(consumers[0].get::<i64>("inactive").unwrap() >= 0);
    let stream = Dict::from(query(&mut c, &["XINFO", "STREAM", "q"]).await);
    assert_eq!(stream.get::<i64>("length"), Some(3));
    assert_eq!(stream.get::<i64>("entries-added"), Some(4));
    assert_eq!(
        stream.get::<String>("max-deleted-entry-id").as_deref(),
        Some("3-0")
    );
    let full: Value = query(&mut c, &["XINFO", "STREAM", "q", "FULL", "COUNT", "1"]).await;
    let text = format!("{full:?}");
    assert!(
        text.contains("active-time") && text.contains("pel-count"),
        "{text}"
    );

    assert_eq!(
        query::<i64>(&mut c, &["XGROUP", "DELCONSUMER", "q", "g", "carol"]).await,
        2
    );
    assert_eq!(
        query::<i64>(&mut c, &["XGROUP", "CREATECONSUMER", "q", "g", "dave"]).await,
        1
    );
    let _: () = query(
        &mut c,
        &["XGROUP", "SETID", "q", "g", "0", "ENTRIESREAD", "0"],
    )
    .await;
    let again: Value = query(
        &mut c,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "dave",
            "NOACK",
            "STREAMS",
            "q",
            ">",
        ],
    )
    .await;
    assert_ne!(again, Value::Nil);
    let pending: (i64, Value, Value, Value) = query(&mut c, &["XPENDING", "q", "g"]).await;
    assert_eq!(pending.0, 0, "NOACK records nothing");
    assert_eq!(
        query::<i64>(&mut c, &["XGROUP", "DESTROY", "q", "g"]).await,
        1
    );
    assert_eq!(
        error(
            &mut c,
            &["XREADGROUP", "GROUP", "g", "x", "STREAMS", "q", ">"]
        )
        .await,
        "NOGROUP No such key 'q' or consumer group 'g' in XREADGROUP with GROUP option"
    );
}

#[tokio::test]
async fn groups_pending_and_claims_resp2() {
    groups_pending_and_claims(false).await;
}

#[tokio::test]
async fn groups_pending_and_claims_resp3() {
    groups_pending_and_claims(true).await;
}

#[tokio::test]
async fn generic_key_commands_work_on_streams() {
    let server = TestServer::start().await;
    let mut c = server.connection(false).await;
    let _: String = query(&mut c, &["XADD", "s", "1-0", "f", "v"]).await;
    let _: () = query(&mut c, &["XGROUP", "CREATE", "s", "g", "0"]).await;
    assert_eq!(query::<i64>(&mut c, &["COPY", "s", "copy"]).await, 1);
    let _: () = query(&mut c, &["RENAME", "copy", "renamed"]).await;
    let groups = dicts(&mut c, &["XINFO", "GROUPS", "renamed"]).await;
    assert_eq!(groups.len(), 1, "groups travel with the stream");
    // The copy is independent of the original.
    let _: String = query(&mut c, &["XADD", "renamed", "2-0", "f", "v"]).await;
    assert_eq!(query::<i64>(&mut c, &["XLEN", "s"]).await, 1);
    let keys: (String, Vec<String>) = query(&mut c, &["SCAN", "0", "TYPE", "stream"]).await;
    assert_eq!(keys.1.len(), 2);
    assert_eq!(query::<i64>(&mut c, &["PEXPIRE", "s", "50"]).await, 1);
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_eq!(query::<i64>(&mut c, &["XLEN", "s"]).await, 0);
    assert_eq!(query::<i64>(&mut c, &["DEL", "renamed"]).await, 1);
}

#[tokio::test]
async fn keyspace_events_only_when_something_changed() {
    let server = TestServer::start().await;
    let mut admin = server.client().await;
    let mut events = server.client().await;
    admin.config_set(b"notify-keyspace-events", b"Et").await;
    events.cmd(&[b"PSUBSCRIBE", b"__keyevent@0__:*"]).await;
    events
        .expect(b"*3\r\n$10\r\npsubscribe\r\n$16\r\n__keyevent@0__:*\r\n:1\r\n")
        .await;
    // (command, its reply, the event it must publish if any)
    type Step<'a> = (&'a [&'a [u8]], &'a [u8], Option<&'a str>);
    let steps: &[Step<'_>] = &[
        (
            &[b"XADD", b"s", b"1-0", b"f", b"v"],
            b"$3\r\n1-0\r\n",
            Some("xadd"),
        ),
        (&[b"XDEL", b"s", b"9-9"], b":0\r\n", None),
        (&[b"XTRIM", b"s", b"MAXLEN", b"5"], b":0\r\n", None),
        (
            &[b"XGROUP", b"CREATE", b"s", b"g", b"0"],
            b"+OK\r\n",
            Some("xgroup-create"),
        ),
        (
            &[b"XGROUP", b"CREATECONSUMER", b"s", b"g", b"c"],
            b":1\r\n",
            Some("xgroup-createconsumer"),
        ),
        (
            &[b"XGROUP", b"CREATECONSUMER", b"s", b"g", b"c"],
            b":0\r\n",
            None,
        ),
        (
            &[b"XGROUP", b"DELCONSUMER", b"s", b"g", b"c"],
            b":0\r\n",
            Some("xgroup-delconsumer"),
        ),
        (&[b"XSETID", b"s", b"5-0"], b"+OK\r\n", Some("xsetid")),
        (
            &[b"XADD", b"s", b"6-0", b"f", b"v"],
            b"$3\r\n6-0\r\n",
            Some("xadd"),
        ),
        (&[b"XTRIM", b"s", b"MAXLEN", b"1"], b":1\r\n", Some("xtrim")),
        (&[b"XDEL", b"s", b"6-0"], b":1\r\n", Some("xdel")),
    ];
    for (command, reply, event) in steps {
        admin.cmd(command).await;
        admin.expect(reply).await;
        match event {
            Some(name) => {
                let channel = format!("__keyevent@0__:{name}");
                events
                    .expect(&common::pmessage('*', "__keyevent@0__:*", &channel, "s"))
                    .await;
            }
            None => events.expect_silence(Duration::from_millis(30)).await,
        }
    }
}

#[tokio::test]
async fn xadd_invalidates_watch() {
    let server = TestServer::start().await;
    let mut watcher = server.client().await;
    let mut writer = server.client().await;
    watcher.cmd(&[b"WATCH", b"s"]).await;
    watcher.expect(b"+OK\r\n").await;
    writer.cmd(&[b"XADD", b"s", b"1-0", b"f", b"v"]).await;
    writer.expect(b"$3\r\n1-0\r\n").await;
    watcher.cmd(&[b"MULTI"]).await;
    watcher.expect(b"+OK\r\n").await;
    watcher.cmd(&[b"XLEN", b"s"]).await;
    watcher.expect(b"+QUEUED\r\n").await;
    watcher.cmd(&[b"EXEC"]).await;
    watcher.expect(b"*-1\r\n").await;
}

#[tokio::test]
async fn help_replies_are_well_formed_and_bad_options_name_the_subcommand() {
    let server = TestServer::start().await;
    let mut c = server.connection(false).await;
    for container in ["XINFO", "XGROUP", "CONFIG"] {
        let lines: Vec<String> = query(&mut c, &[container, "HELP"]).await;
        assert!(lines[0].starts_with(&format!("{container} <subcommand>")));
        assert_eq!(&lines[lines.len() - 2..], ["HELP", "    Prints this help."]);
        // The connection is still in step: the next reply is the next command's.
        assert_eq!(query::<String>(&mut c, &["PING"]).await, "PONG");
    }
    let _: String = query(&mut c, &["XADD", "s", "1-0", "f", "v"]).await;
    assert_eq!(
        error(&mut c, &["XINFO", "stream", "s", "EXTRA"]).await,
        "ERR unknown subcommand or wrong number of arguments for 'stream'. Try XINFO HELP."
    );
    assert_eq!(
        error(&mut c, &["XGROUP", "CREATE", "s", "g", "0", "FOO"]).await,
        "ERR unknown subcommand or wrong number of arguments for 'CREATE'. Try XGROUP HELP."
    );
    let _: String = query(
        &mut c,
        &[
            "XADD",
            "full",
            "18446744073709551615-18446744073709551615",
            "f",
            "v",
        ],
    )
    .await;
    assert_eq!(
        error(
            &mut c,
            &["XADD", "full", "18446744073709551615-*", "f", "v"]
        )
        .await,
        "ERR The stream has exhausted the last possible ID, unable to add more items"
    );
}
