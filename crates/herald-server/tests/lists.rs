//! List commands with the `redis` crate (RESP2 and RESP3) and exact texts over raw RESP,
//! including the notification-history flow the issue describes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestServer;
use futures_util::StreamExt;
use redis::{cmd, AsyncCommands};

#[tokio::test]
async fn notification_history_flow() {
    let server = TestServer::start().await;
    for resp3 in [false, true] {
        let client = redis::Client::open(server.url_for(resp3)).unwrap();
        let mut con = client.get_multiplexed_async_connection().await.unwrap();
        let _: () = cmd("FLUSHALL").query_async(&mut con).await.unwrap();
        let mut pubsub = client.get_async_pubsub().await.unwrap();
        pubsub.subscribe("notifications:user:42").await.unwrap();
        for i in 0..130 {
            let note = format!("{{\"id\":{i},\"read\":false}}");
            let _: () = redis::pipe()
                .lpush("notifications:history:42", &note)
                .ignore()
                .ltrim("notifications:history:42", 0, 99)
                .ignore()
                .publish("notifications:user:42", &note)
                .ignore()
                .query_async(&mut con)
                .await
                .unwrap();
        }
        assert_eq!(
            con.llen::<_, i64>("notifications:history:42")
                .await
                .unwrap(),
            100
        );
        let recent: Vec<String> = con.lrange("notifications:history:42", 0, 19).await.unwrap();
        assert_eq!(recent.len(), 20);
        assert_eq!(recent[0], "{\"id\":129,\"read\":false}");
        let _: () = con
            .lset("notifications:history:42", 0, "{\"id\":129,\"read\":true}")
            .await
            .unwrap();
        let all: Vec<String> = con.lrange("notifications:history:42", 0, -1).await.unwrap();
        let unread = all.iter().filter(|n| n.contains("\"read\":false")).count();
        assert_eq!(unread, 99);
        let mut messages = pubsub.on_message();
        for i in 0..130 {
            let message = tokio::time::timeout(std::time::Duration::from_secs(5), messages.next())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                message.get_payload::<String>().unwrap(),
                format!("{{\"id\":{i},\"read\":false}}")
            );
        }
    }
}

#[tokio::test]
async fn list_commands_in_redis_terms() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let script: &[(&[&[u8]], &[u8])] = &[
        (&[b"RPUSH", b"l", b"a", b"b", b"c", b"b"], b":4\r\n"),
        (&[b"LPUSHX", b"missing", b"x"], b":0\r\n"),
        (&[b"LINDEX", b"l", b"-1"], b"$1\r\nb\r\n"),
        (&[b"LPOS", b"l", b"b"], b":1\r\n"),
        (&[b"LPOS", b"l", b"b", b"RANK", b"-1"], b":3\r\n"),
        (&[b"LPOS", b"l", b"b", b"COUNT", b"0"], b"*2\r\n:1\r\n:3\r\n"),
        (&[b"LPOS", b"l", b"zz"], b"$-1\r\n"),
        (&[b"LPOS", b"l", b"b", b"RANK", b"0"], b"-ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list\r\n"),
        (&[b"LPOS", b"l", b"b", b"COUNT", b"-1"], b"-ERR COUNT can't be negative\r\n"),
        (&[b"LINSERT", b"l", b"BEFORE", b"c", b"x"], b":5\r\n"),
        (&[b"LINSERT", b"l", b"MIDDLE", b"c", b"x"], b"-ERR syntax error\r\n"),
        (&[b"LREM", b"l", b"0", b"b"], b":2\r\n"),
        (&[b"LRANGE", b"l", b"0", b"-1"], b"*3\r\n$1\r\na\r\n$1\r\nx\r\n$1\r\nc\r\n"),
        (&[b"LSET", b"l", b"9", b"z"], b"-ERR index out of range\r\n"),
        (&[b"LSET", b"nokey", b"0", b"z"], b"-ERR no such key\r\n"),
        (&[b"LMOVE", b"l", b"dst", b"LEFT", b"RIGHT"], b"$1\r\na\r\n"),
        (&[b"RPOPLPUSH", b"l", b"dst"], b"$1\r\nc\r\n"),
        (&[b"LRANGE", b"dst", b"0", b"-1"], b"*2\r\n$1\r\nc\r\n$1\r\na\r\n"),
        (&[b"LMPOP", b"2", b"empty", b"dst", b"RIGHT", b"COUNT", b"5"], b"*2\r\n$3\r\ndst\r\n*2\r\n$1\r\na\r\n$1\r\nc\r\n"),
        (&[b"LMPOP", b"1", b"dst", b"LEFT"], b"*-1\r\n"),
        (&[b"LMPOP", b"0", b"dst", b"LEFT"], b"-ERR numkeys should be greater than 0\r\n"),
        (&[b"LPOP", b"l"], b"$1\r\nx\r\n"),
        (&[b"LPOP", b"l", b"-1"], b"-ERR value is out of range, must be positive\r\n"),
        (&[b"LPOP", b"l"], b"$-1\r\n"),
        (&[b"LPOP", b"l", b"2"], b"*-1\r\n"),
        (&[b"EXISTS", b"l", b"dst"], b":0\r\n"),
        (&[b"SET", b"s", b"v"], b"+OK\r\n"),
        (&[b"LPUSH", b"s", b"x"], b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"),
        (&[b"GET", b"s"], b"$1\r\nv\r\n"),
        (&[b"RPUSH", b"l2", b"q"], b":1\r\n"),
        (&[b"GET", b"l2"], b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"),
        (&[b"TYPE", b"l2"], b"+list\r\n"),
        (&[b"LTRIM", b"l2", b"1", b"0"], b"+OK\r\n"),
        (&[b"EXISTS", b"l2"], b":0\r\n"),
    ];
    for (args, expected) in script {
        c.cmd(args).await;
        c.expect(expected).await;
    }
}
