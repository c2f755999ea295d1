//! Strings, expiry and generic key commands, driven by the `redis` crate under RESP2 and
//! RESP3, with exact error texts checked over raw RESP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::TestServer;
use redis::{cmd, AsyncCommands, Value};

#[tokio::test]
async fn strings_round_trip_in_both_protocols() {
    let server = TestServer::start().await;
    for resp3 in [false, true] {
        let mut con = server.connection(resp3).await;
        let _: () = cmd("FLUSHALL").query_async(&mut con).await.unwrap();
        let _: () = con.set("greeting", "hello").await.unwrap();
        let value: Option<String> = con.get("greeting").await.unwrap();
        assert_eq!(value.as_deref(), Some("hello"));
        let missing: Option<String> = con.get("nope").await.unwrap();
        assert_eq!(missing, None);
        assert_eq!(
            con.append::<_, _, i64>("greeting", " world").await.unwrap(),
            11
        );
        assert_eq!(con.strlen::<_, i64>("greeting").await.unwrap(), 11);
        let range: String = con.getrange("greeting", -5, -1).await.unwrap();
        assert_eq!(range, "world");
        assert_eq!(
            con.setrange::<_, _, i64>("greeting", 0, "J").await.unwrap(),
            11
        );
        let values: Vec<Option<String>> = con.mget(&["greeting", "nope"]).await.unwrap();
        assert_eq!(values, vec![Some("Jello world".to_owned()), None]);
        let _: () = con.mset(&[("a", "1"), ("b", "2")]).await.unwrap();
        let created: bool = cmd("MSETNX")
            .arg("b")
            .arg("x")
            .arg("c")
            .arg("y")
            .query_async(&mut con)
            .await
            .unwrap();
        assert!(!created);
        assert_eq!(
            con.exists::<_, i64>(&["a", "b", "c", "a"]).await.unwrap(),
            3
        );
        assert_eq!(con.incr::<_, _, i64>("counter", 5).await.unwrap(), 5);
        assert_eq!(con.decr::<_, _, i64>("counter", 7).await.unwrap(), -2);
        let float: String = cmd("INCRBYFLOAT")
            .arg("f")
            .arg("10.5")
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(float, "10.5");
        let float: String = cmd("INCRBYFLOAT")
            .arg("f")
            .arg("0.1")
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(float, "10.6");
        let old: Option<String> = cmd("GETSET")
            .arg("a")
            .arg("new")
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(old.as_deref(), Some("1"));
        let deleted: Option<String> = cmd("GETDEL").arg("a").query_async(&mut con).await.unwrap();
        assert_eq!(deleted.as_deref(), Some("new"));
        assert_eq!(con.del::<_, i64>(&["a", "b", "nope"]).await.unwrap(), 1);
        let kind: String = cmd("TYPE")
            .arg("greeting")
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(kind, "string");
        let kind: String = cmd("TYPE").arg("nope").query_async(&mut con).await.unwrap();
        assert_eq!(kind, "none");
    }
}

#[tokio::test]
async fn set_options_behave_like_redis() {
    let server = TestServer::start().await;
    let mut con = server.connection(false).await;
    let set = |args: &[&str]| {
        let mut c = cmd("SET");
        for arg in args {
            c.arg(*arg);
        }
        c
    };
    let reply: Value = set(&["k", "1", "NX"]).query_async(&mut con).await.unwrap();
    assert_eq!(reply, Value::Okay);
    let reply: Value = set(&["k", "2", "NX"]).query_async(&mut con).await.unwrap();
    assert_eq!(reply, Value::Nil);
    let reply: Option<String> = set(&["k", "3", "XX", "GET"])
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(reply.as_deref(), Some("1"));
    let _: () = set(&["k", "4", "PX", "100000"])
        .query_async(&mut con)
        .await
        .unwrap();
    let pttl: i64 = con.pttl("k").await.unwrap();
    assert!((99_000..=100_000).contains(&pttl), "{pttl}");
    let _: () = set(&["k", "5", "KEEPTTL"])
        .query_async(&mut con)
        .await
        .unwrap();
    assert!(con.pttl::<_, i64>("k").await.unwrap() > 0);
    let _: () = set(&["k", "6"]).query_async(&mut con).await.unwrap();
    assert_eq!(con.ttl::<_, i64>("k").await.unwrap(), -1);
    assert_eq!(con.ttl::<_, i64>("missing").await.unwrap(), -2);
}

#[tokio::test]
async fn exact_error_texts() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let cases: &[(&[&[u8]], &[u8])] = &[
        (
            &[b"SET", b"k", b"v", b"NX", b"XX"],
            b"-ERR syntax error\r\n",
        ),
        (
            &[b"SET", b"k", b"v", b"EX", b"10", b"PX", b"5"],
            b"-ERR syntax error\r\n",
        ),
        (
            &[b"SET", b"k", b"v", b"EX", b"0"],
            b"-ERR invalid expire time in 'set' command\r\n",
        ),
        (
            &[b"SET", b"k", b"v", b"EX", b"ten"],
            b"-ERR value is not an integer or out of range\r\n",
        ),
        (
            &[b"SETEX", b"k", b"-1", b"v"],
            b"-ERR invalid expire time in 'setex' command\r\n",
        ),
        (&[b"SET", b"s", b"abc"], b"+OK\r\n"),
        (
            &[b"INCR", b"s"],
            b"-ERR value is not an integer or out of range\r\n",
        ),
        (
            &[b"INCRBYFLOAT", b"s", b"1"],
            b"-ERR value is not a valid float\r\n",
        ),
        (
            &[b"INCRBYFLOAT", b"f", b"nan"],
            b"-ERR value is not a valid float\r\n",
        ),
        (&[b"SET", b"max", b"9223372036854775807"], b"+OK\r\n"),
        (
            &[b"INCR", b"max"],
            b"-ERR increment or decrement would overflow\r\n",
        ),
        (
            &[b"DECRBY", b"x", b"-9223372036854775808"],
            b"-ERR value is not an integer or out of range\r\n",
        ),
        (&[b"RENAME", b"missing", b"x"], b"-ERR no such key\r\n"),
        (
            &[b"EXPIRE", b"s", b"10", b"NX", b"XX"],
            b"-ERR NX and XX, GT or LT options at the same time are not compatible\r\n",
        ),
        (
            &[b"EXPIRE", b"s", b"10", b"GT", b"LT"],
            b"-ERR GT and LT options at the same time are not compatible\r\n",
        ),
        (
            &[b"EXPIRE", b"s", b"10", b"SOON"],
            b"-ERR Unsupported option SOON\r\n",
        ),
        (
            &[b"EXPIRE", b"s", b"99999999999999999"],
            b"-ERR invalid expire time in 'expire' command\r\n",
        ),
        (
            &[b"MSET", b"a"],
            b"-ERR wrong number of arguments for 'mset' command\r\n",
        ),
        (
            &[b"MSET", b"a", b"1", b"b"],
            b"-ERR wrong number of arguments for 'mset' command\r\n",
        ),
        (
            &[b"MOVE", b"s", b"16"],
            b"-ERR DB index is out of range\r\n",
        ),
        (
            &[b"MOVE", b"s", b"0"],
            b"-ERR source and destination objects are the same\r\n",
        ),
        (
            &[b"SWAPDB", b"0", b"x"],
            b"-ERR invalid second DB index\r\n",
        ),
        (
            &[b"SETRANGE", b"s", b"-1", b"x"],
            b"-ERR offset is out of range\r\n",
        ),
        (&[b"GETEX", b"s", b"EX"], b"-ERR syntax error\r\n"),
    ];
    for (args, expected) in cases {
        c.cmd(args).await;
        c.expect(expected).await;
    }
}

#[tokio::test]
async fn expire_conditions_and_ttl_family() {
    let server = TestServer::start().await;
    let mut con = server.connection(true).await;
    let _: () = con.set("k", "v").await.unwrap();
    let expire = |args: &[&str]| {
        let mut c = cmd("EXPIRE");
        for arg in args {
            c.arg(*arg);
        }
        c
    };
    let set: i64 = expire(&["k", "100", "XX"])
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(set, 0, "XX on a key without expiry");
    let set: i64 = expire(&["k", "100", "GT"])
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(set, 0, "GT: no expiry counts as infinite");
    let set: i64 = expire(&["k", "100", "NX"])
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(set, 1);
    let set: i64 = expire(&["k", "50", "GT"])
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(set, 0);
    let set: i64 = expire(&["k", "50", "LT"])
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(set, 1);
    assert_eq!(con.ttl::<_, i64>("k").await.unwrap(), 50);
    let at: i64 = cmd("EXPIRETIME")
        .arg("k")
        .query_async(&mut con)
        .await
        .unwrap();
    let pat: i64 = cmd("PEXPIRETIME")
        .arg("k")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(at, pat / 1000);
    assert_eq!(con.persist::<_, i64>("k").await.unwrap(), 1);
    assert_eq!(con.persist::<_, i64>("k").await.unwrap(), 0);
    let missing: i64 = cmd("EXPIRETIME")
        .arg("nope")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(missing, -2);
    // An expiry in the past deletes at once.
    let set: i64 = cmd("EXPIREAT")
        .arg("k")
        .arg(1)
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(set, 1);
    assert_eq!(con.exists::<_, i64>("k").await.unwrap(), 0);
}

#[tokio::test]
async fn keys_expire_lazily_and_actively() {
    let server = TestServer::start().await;
    let mut con = server.connection(false).await;
    let _: () = con.pset_ex("lazy", "v", 30).await.unwrap();
    for i in 0..200 {
        let _: () = con.pset_ex(format!("active:{i}"), "v", 30).await.unwrap();
    }
    let _: () = con.set("forever", "v").await.unwrap();
    tokio::time::sleep(Duration::from_millis(80)).await;
    let lazy: Option<String> = con.get("lazy").await.unwrap();
    assert_eq!(lazy, None);
    // Nobody touches the active:* keys: the cron's sampling must reclaim them.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let size: i64 = cmd("DBSIZE").query_async(&mut con).await.unwrap();
        if size == 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "DBSIZE stuck at {size}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let info: redis::InfoDict = cmd("INFO")
        .arg("stats")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(info.get::<i64>("expired_keys"), Some(201));
}

#[tokio::test]
async fn databases_are_separate() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let script: &[(&[&[u8]], &[u8])] = &[
        (&[b"SET", b"k", b"zero"], b"+OK\r\n"),
        (&[b"SELECT", b"1"], b"+OK\r\n"),
        (&[b"GET", b"k"], b"$-1\r\n"),
        (&[b"SET", b"k", b"one"], b"+OK\r\n"),
        (&[b"MOVE", b"k", b"0"], b":0\r\n"),
        (&[b"SET", b"other", b"x"], b"+OK\r\n"),
        (&[b"MOVE", b"other", b"0"], b":1\r\n"),
        (&[b"DBSIZE"], b":1\r\n"),
        (&[b"SWAPDB", b"0", b"1"], b"+OK\r\n"),
        (&[b"GET", b"k"], b"$4\r\nzero\r\n"),
        (&[b"FLUSHDB"], b"+OK\r\n"),
        (&[b"DBSIZE"], b":0\r\n"),
        (&[b"SELECT", b"0"], b"+OK\r\n"),
        (&[b"DBSIZE"], b":1\r\n"),
        (&[b"RENAME", b"k", b"renamed"], b"+OK\r\n"),
        (&[b"RENAMENX", b"renamed", b"renamed"], b":0\r\n"),
        (&[b"SET", b"taken", b"x"], b"+OK\r\n"),
        (&[b"RENAMENX", b"renamed", b"taken"], b":0\r\n"),
        (&[b"KEYS", b"ren*"], b"*1\r\n$7\r\nrenamed\r\n"),
        (&[b"FLUSHALL"], b"+OK\r\n"),
        (&[b"RANDOMKEY"], b"$-1\r\n"),
        (&[b"SET", b"only", b"x"], b"+OK\r\n"),
        (&[b"RANDOMKEY"], b"$4\r\nonly\r\n"),
    ];
    for (args, expected) in script {
        c.cmd(args).await;
        c.expect(expected).await;
    }
    c.cmd(&[b"INFO", b"keyspace"]).await;
    let info = String::from_utf8(c.read_bulk().await).unwrap();
    assert_eq!(info, "# Keyspace\r\ndb0:keys=1,expires=0,avg_ttl=0\r\n");
}

#[tokio::test]
async fn scan_visits_every_key_once_and_copy_copies() {
    let server = TestServer::start().await;
    let mut con = server.connection(true).await;
    for i in 0..300 {
        let _: () = con.set(format!("scan:{i}"), i).await.unwrap();
    }
    let _: () = con.rpush("scan:list", "x").await.unwrap();
    let mut cursor = 0u64;
    let mut seen = Vec::new();
    loop {
        let (next, keys): (u64, Vec<String>) = cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg("scan:*")
            .arg("COUNT")
            .arg(25)
            .arg("TYPE")
            .arg("string")
            .query_async(&mut con)
            .await
            .unwrap();
        seen.extend(keys);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 300);
    let copied: i64 = cmd("COPY")
        .arg("scan:1")
        .arg("scan:copy")
        .arg("DB")
        .arg(2)
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(copied, 1);
    let copied: i64 = cmd("COPY")
        .arg("scan:1")
        .arg("scan:2")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(copied, 0);
    let copied: i64 = cmd("COPY")
        .arg("scan:1")
        .arg("scan:2")
        .arg("REPLACE")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(copied, 1);
    let value: String = con.get("scan:2").await.unwrap();
    assert_eq!(value, "1");
    let mut raw = server.client().await;
    raw.cmd(&[b"SCAN", b"abc"]).await;
    raw.expect(b"-ERR invalid cursor\r\n").await;
    raw.cmd(&[b"SCAN", b"0", b"COUNT", b"0"]).await;
    raw.expect(b"-ERR syntax error\r\n").await;
    raw.cmd(&[b"SELECT", b"2"]).await;
    raw.expect(b"+OK\r\n").await;
    raw.cmd(&[b"GET", b"scan:copy"]).await;
    raw.expect(b"$1\r\n1\r\n").await;
}
