//! Hash commands driven by the `redis` crate under RESP2 and RESP3, with exact replies
//! and error texts checked over raw RESP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};

use common::TestServer;
use redis::{cmd, AsyncCommands, Value};

#[tokio::test]
async fn hash_commands_round_trip_in_both_protocols() {
    let server = TestServer::start().await;
    for resp3 in [false, true] {
        let mut con = server.connection(resp3).await;
        let _: () = cmd("FLUSHALL").query_async(&mut con).await.unwrap();
        let added: i64 = cmd("HSET")
            .arg("h")
            .arg(&["a", "1", "b", "2", "a", "3"])
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(added, 2);
        let _: () = con
            .hset_multiple("h", &[("c", "x"), ("d", "")])
            .await
            .unwrap();
        assert!(con.hset_nx::<_, _, _, bool>("h", "e", "5").await.unwrap());
        assert!(!con.hset_nx::<_, _, _, bool>("h", "e", "6").await.unwrap());
        let a: Option<String> = con.hget("h", "a").await.unwrap();
        assert_eq!(a.as_deref(), Some("3"));
        let missing: Option<String> = con.hget("h", "zz").await.unwrap();
        assert_eq!(missing, None);
        let values: Vec<Option<String>> = cmd("HMGET")
            .arg("h")
            .arg(&["b", "zz", "e"])
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(values, vec![Some("2".into()), None, Some("5".into())]);
        let all: HashMap<String, String> = con.hgetall("h").await.unwrap();
        assert_eq!(all.len(), 5);
        assert_eq!(all["c"], "x");
        let raw_all: Value = con.hgetall("h").await.unwrap();
        assert_eq!(matches!(raw_all, Value::Map(_)), resp3, "{raw_all:?}");
        let empty: HashMap<String, String> = con.hgetall("nope").await.unwrap();
        assert!(empty.is_empty());
        let keys: Vec<String> = con.hkeys("h").await.unwrap();
        assert_eq!(keys, ["a", "b", "c", "d", "e"]);
        let vals: Vec<String> = con.hvals("h").await.unwrap();
        assert_eq!(vals, ["3", "2", "x", "", "5"]);
        assert_eq!(con.hlen::<_, i64>("h").await.unwrap(), 5);
        assert!(con.hexists::<_, _, bool>("h", "d").await.unwrap());
        assert!(!con.hexists::<_, _, bool>("h", "zz").await.unwrap());
        let strlen: i64 = cmd("HSTRLEN")
            .arg("h")
            .arg("c")
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(strlen, 1);
        assert_eq!(con.hincr::<_, _, _, i64>("h", "n", 5).await.unwrap(), 5);
        assert_eq!(con.hincr::<_, _, _, i64>("h", "n", -8).await.unwrap(), -3);
        let float: String = cmd("HINCRBYFLOAT")
            .arg("h")
            .arg("f")
            .arg("10.5")
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(float, "10.5");
        let float: String = cmd("HINCRBYFLOAT")
            .arg("h")
            .arg("f")
            .arg("0.1")
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(float, "10.6");
        assert_eq!(
            con.hdel::<_, _, i64>("h", &["a", "a", "zz"]).await.unwrap(),
            1
        );
        let _: () = con.del("h").await.unwrap();
        let _: () = con.hset("gone", "only", "1").await.unwrap();
        assert_eq!(con.hdel::<_, _, i64>("gone", "only").await.unwrap(), 1);
        assert_eq!(con.exists::<_, i64>("gone").await.unwrap(), 0);
        let kind: String = cmd("TYPE").arg("gone").query_async(&mut con).await.unwrap();
        assert_eq!(kind, "none");
    }
}

#[tokio::test]
async fn hrandfield_counts_in_both_protocols() {
    let server = TestServer::start().await;
    for resp3 in [false, true] {
        let mut con = server.connection(resp3).await;
        let _: () = cmd("FLUSHALL").query_async(&mut con).await.unwrap();
        let pairs: Vec<(String, String)> = (0..10)
            .map(|i| (format!("f{i}"), format!("v{i}")))
            .collect();
        let _: () = con.hset_multiple("h", &pairs).await.unwrap();
        let one: String = cmd("HRANDFIELD")
            .arg("h")
            .query_async(&mut con)
            .await
            .unwrap();
        assert!(one.starts_with('f'));
        let none: Option<String> = cmd("HRANDFIELD")
            .arg("nope")
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(none, None);
        let distinct: Vec<String> = cmd("HRANDFIELD")
            .arg("h")
            .arg(5)
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(distinct.iter().collect::<HashSet<_>>().len(), 5);
        let everything: Vec<String> = cmd("HRANDFIELD")
            .arg("h")
            .arg(50)
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(everything.len(), 10);
        let repeated: Vec<String> = cmd("HRANDFIELD")
            .arg("h")
            .arg(-30)
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(repeated.len(), 30);
        let with_values: Value = cmd("HRANDFIELD")
            .arg("h")
            .arg(-3)
            .arg("WITHVALUES")
            .query_async(&mut con)
            .await
            .unwrap();
        let Value::Array(items) = with_values else {
            panic!("{with_values:?}")
        };
        if resp3 {
            assert_eq!(items.len(), 3);
            for pair in items {
                let (field, value): (String, String) = redis::from_redis_value(pair).unwrap();
                assert_eq!(field[1..], value[1..]);
            }
        } else {
            assert_eq!(items.len(), 6);
        }
        let empty: Vec<String> = cmd("HRANDFIELD")
            .arg("nope")
            .arg(3)
            .query_async(&mut con)
            .await
            .unwrap();
        assert!(empty.is_empty());
    }
}

#[tokio::test]
async fn hscan_returns_every_field_exactly_once() {
    let server = TestServer::start().await;
    for resp3 in [false, true] {
        let mut con = server.connection(resp3).await;
        let _: () = cmd("FLUSHALL").query_async(&mut con).await.unwrap();
        let pairs: Vec<(String, String)> = (0..300)
            .map(|i| (format!("field:{i}"), i.to_string()))
            .collect();
        let _: () = con.hset_multiple("big", &pairs).await.unwrap();
        for (count, pattern) in [
            (None, None),
            (Some(7), None),
            (Some(1000), None),
            (Some(13), Some("field:1*")),
        ] {
            let mut cursor = 0u64;
            let mut seen: BTreeMap<String, String> = BTreeMap::new();
            let mut calls = 0;
            loop {
                let mut scan = cmd("HSCAN");
                scan.arg("big").arg(cursor);
                if let Some(pattern) = pattern {
                    scan.arg("MATCH").arg(pattern);
                }
                if let Some(count) = count {
                    scan.arg("COUNT").arg(count);
                }
                let (next, flat): (u64, Vec<String>) = scan.query_async(&mut con).await.unwrap();
                for pair in flat.chunks(2) {
                    assert!(
                        seen.insert(pair[0].clone(), pair[1].clone()).is_none(),
                        "{} twice",
                        pair[0]
                    );
                }
                calls += 1;
                if next == 0 {
                    break;
                }
                cursor = next;
            }
            let expected = pairs
                .iter()
                .filter(|(field, _)| pattern.is_none() || field.starts_with("field:1"))
                .count();
            assert_eq!(seen.len(), expected, "count {count:?} pattern {pattern:?}");
            assert!(seen
                .iter()
                .all(|(field, value)| field == &format!("field:{value}")));
            if count.is_none() {
                assert_eq!(calls, 30);
            }
        }
        let (next, fields): (u64, Vec<String>) = cmd("HSCAN")
            .arg("big")
            .arg(0)
            .arg("COUNT")
            .arg(1000)
            .arg("NOVALUES")
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(next, 0);
        assert_eq!(fields.len(), 300);
        assert!(fields.iter().all(|field| field.starts_with("field:")));
    }
}

#[tokio::test]
async fn exact_replies_and_error_texts() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let wrongtype: &[u8] =
        b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";
    let cases: &[(&[&[u8]], &[u8])] = &[
        (&[b"HSET", b"h", b"a", b"1", b"b"], b"-ERR wrong number of arguments for 'hset' command\r\n"),
        (&[b"HSET", b"h", b"a"], b"-ERR wrong number of arguments for 'hset' command\r\n"),
        (&[b"HMSET", b"h", b"a", b"1", b"b"], b"-ERR wrong number of arguments for 'hmset' command\r\n"),
        (&[b"HGET", b"h"], b"-ERR wrong number of arguments for 'hget' command\r\n"),
        (&[b"HSET", b"h", b"a", b"1", b"s", b"x", b"sp", b" 1"], b":3\r\n"),
        (&[b"HMSET", b"h", b"a", b"1"], b"+OK\r\n"),
        (&[b"HGET", b"h", b"a"], b"$1\r\n1\r\n"),
        (&[b"HGET", b"h", b"zz"], b"$-1\r\n"),
        (&[b"HMGET", b"nope", b"a", b"b"], b"*2\r\n$-1\r\n$-1\r\n"),
        (&[b"HGETALL", b"nope"], b"*0\r\n"),
        (&[b"HINCRBY", b"h", b"s", b"1"], b"-ERR hash value is not an integer\r\n"),
        (&[b"HINCRBY", b"h", b"sp", b"1"], b"-ERR hash value is not an integer\r\n"),
        (&[b"HINCRBY", b"h", b"a", b"x"], b"-ERR value is not an integer or out of range\r\n"),
        (&[b"HINCRBY", b"h", b"a", b"-0"], b"-ERR value is not an integer or out of range\r\n"),
        (&[b"HINCRBY", b"h", b"a", b"9223372036854775807"], b"-ERR increment or decrement would overflow\r\n"),
        (&[b"HINCRBYFLOAT", b"h", b"s", b"1"], b"-ERR hash value is not a float\r\n"),
        (&[b"HINCRBYFLOAT", b"h", b"sp", b"1"], b"-ERR hash value is not a float\r\n"),
        (&[b"HINCRBYFLOAT", b"h", b"a", b"abc"], b"-ERR value is not a valid float\r\n"),
        (&[b"HINCRBYFLOAT", b"h", b"a", b"nan"], b"-ERR value is not a valid float\r\n"),
        (&[b"HINCRBYFLOAT", b"h", b"a", b"inf"], b"-ERR value is NaN or Infinity\r\n"),
        (&[b"HINCRBYFLOAT", b"h", b"a", b"1.5"], b"$3\r\n2.5\r\n"),
        (&[b"HSET", b"h", b"max", b"1.7e308"], b":1\r\n"),
        (&[b"HINCRBYFLOAT", b"h", b"max", b"1.7e308"], b"-ERR increment would produce NaN or Infinity\r\n"),
        (&[b"HRANDFIELD", b"h", b"-9223372036854775808"], b"-ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807\r\n"),
        (&[b"HRANDFIELD", b"h", b"4611686018427387904", b"WITHVALUES"], b"-ERR value is out of range\r\n"),
        (&[b"HRANDFIELD", b"h", b"1", b"WITHVALUE"], b"-ERR syntax error\r\n"),
        (&[b"HRANDFIELD", b"h", b"1", b"WITHVALUES", b"x"], b"-ERR syntax error\r\n"),
        (&[b"HRANDFIELD", b"h", b"x"], b"-ERR value is not an integer or out of range\r\n"),
        (&[b"HRANDFIELD", b"h", b"0"], b"*0\r\n"),
        (&[b"HRANDFIELD", b"nope"], b"$-1\r\n"),
        (&[b"HRANDFIELD", b"nope", b"3", b"WITHVALUES"], b"*0\r\n"),
        (&[b"HSCAN", b"h", b"x"], b"-ERR invalid cursor\r\n"),
        (&[b"HSCAN", b"h", b"18446744073709551616"], b"-ERR invalid cursor\r\n"),
        (&[b"HSCAN", b"h", b"0", b"COUNT", b"0"], b"-ERR syntax error\r\n"),
        (&[b"HSCAN", b"h", b"0", b"COUNT", b"x"], b"-ERR value is not an integer or out of range\r\n"),
        (&[b"HSCAN", b"h", b"0", b"MATCH"], b"-ERR syntax error\r\n"),
        (&[b"HSCAN", b"h", b"0", b"bogus"], b"-ERR syntax error\r\n"),
        (&[b"HSCAN", b"nope", b"0", b"bogus"], b"*2\r\n$1\r\n0\r\n*0\r\n"),
        (&[b"HSCAN", b"h", b"0", b"MATCH", b"a"], b"*2\r\n$1\r\n0\r\n*2\r\n$1\r\na\r\n$3\r\n2.5\r\n"),
        (&[b"HSCAN", b"h", b"0", b"MATCH", b"a", b"NOVALUES"], b"*2\r\n$1\r\n0\r\n*1\r\n$1\r\na\r\n"),
        (&[b"HDEL", b"h", b"a", b"s", b"sp", b"max", b"zz"], b":4\r\n"),
        (&[b"EXISTS", b"h"], b":0\r\n"),
        (&[b"SET", b"str", b"v"], b"+OK\r\n"),
        (&[b"HINCRBY", b"str", b"f", b"x"], b"-ERR value is not an integer or out of range\r\n"),
        (&[b"HINCRBYFLOAT", b"str", b"f", b"x"], b"-ERR value is not a valid float\r\n"),
        (&[b"HRANDFIELD", b"str", b"x"], b"-ERR value is not an integer or out of range\r\n"),
        (&[b"HSCAN", b"str", b"x"], b"-ERR invalid cursor\r\n"),
        (&[b"HSCAN", b"str", b"0", b"bogus"], wrongtype),
    ];
    for (args, expected) in cases {
        c.cmd(args).await;
        c.expect(expected).await;
    }
    let wrongtype_cases: &[&[&[u8]]] = &[
        &[b"HSET", b"str", b"f", b"v"],
        &[b"HMSET", b"str", b"f", b"v"],
        &[b"HSETNX", b"str", b"f", b"v"],
        &[b"HGET", b"str", b"f"],
        &[b"HMGET", b"str", b"f"],
        &[b"HGETALL", b"str"],
        &[b"HDEL", b"str", b"f"],
        &[b"HEXISTS", b"str", b"f"],
        &[b"HLEN", b"str"],
        &[b"HKEYS", b"str"],
        &[b"HVALS", b"str"],
        &[b"HSTRLEN", b"str", b"f"],
        &[b"HINCRBY", b"str", b"f", b"1"],
        &[b"HINCRBYFLOAT", b"str", b"f", b"1"],
        &[b"HRANDFIELD", b"str"],
        &[b"HRANDFIELD", b"str", b"0"],
        &[b"HSCAN", b"str", b"0"],
    ];
    for args in wrongtype_cases {
        c.cmd(args).await;
        c.expect(wrongtype).await;
    }
}

#[tokio::test]
async fn resp3_shapes() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    c.cmd(&[b"HELLO", b"3"]).await;
    // Skip the HELLO map: read until the server answers a PING after it.
    c.cmd(&[b"PING"]).await;
    loop {
        if c.read_line().await == "+PONG\r\n" {
            break;
        }
    }
    c.cmd(&[b"HSET", b"h", b"a", b"1"]).await;
    c.expect(b":1\r\n").await;
    c.cmd(&[b"HGETALL", b"h"]).await;
    c.expect(b"%1\r\n$1\r\na\r\n$1\r\n1\r\n").await;
    c.cmd(&[b"HGETALL", b"nope"]).await;
    c.expect(b"%0\r\n").await;
    c.cmd(&[b"HRANDFIELD", b"h", b"-2", b"WITHVALUES"]).await;
    c.expect(b"*2\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n")
        .await;
    c.cmd(&[b"HRANDFIELD", b"h", b"5", b"WITHVALUES"]).await;
    c.expect(b"*1\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n").await;
    c.cmd(&[b"HGET", b"h", b"zz"]).await;
    c.expect(b"_\r\n").await;
    c.cmd(&[b"HSCAN", b"h", b"0"]).await;
    c.expect(b"*2\r\n$1\r\n0\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n")
        .await;
}
