//! SHUTDOWN in process: it stops the server only once what the append-only file holds
//! is on disk, refuses (and keeps serving) when that fails or when SAVE cannot be
//! honoured, exits anyway with FORCE, and parses its arguments as Redis does.
//!
//! The binary's side (the process exits, the gateway with it, the data is there after a
//! restart) is in `herald-cli/tests/shutdown.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::TestServer;
use herald_server::ServerConfig;
use herald_store::aof::FsyncPolicy;

const STOPS_WITHIN: Duration = Duration::from_secs(10);

async fn call(
    conn: &mut redis::aio::MultiplexedConnection,
    words: &[&str],
) -> redis::RedisResult<redis::Value> {
    let mut cmd = redis::cmd(words[0]);
    for word in &words[1..] {
        cmd.arg(*word);
    }
    cmd.query_async(conn).await
}

fn error_text(result: redis::RedisResult<redis::Value>) -> String {
    match result {
        Err(err) => err.to_string(),
        Ok(value) => panic!("expected an error, got {value:?}"),
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("herald-shutdown-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn arguments_are_checked_and_the_server_keeps_serving() {
    let server = TestServer::start().await;
    let mut raw = server.client().await;
    for (request, reply) in [
        (&["SHUTDOWN", "SAVE", "NOSAVE"][..], "-ERR syntax error\r\n"),
        (&["SHUTDOWN", "ABORT", "NOW"], "-ERR syntax error\r\n"),
        (&["SHUTDOWN", "SOON"], "-ERR syntax error\r\n"),
        (&["SHUTDOWN", "abort"], "-ERR No shutdown in progress.\r\n"),
    ] {
        let args: Vec<&[u8]> = request.iter().map(|word| word.as_bytes()).collect();
        raw.cmd(&args).await;
        raw.expect(reply.as_bytes()).await;
    }
    // Not inside a transaction: refused when queued, and the transaction fails.
    raw.cmd(&[b"MULTI"]).await;
    raw.expect(b"+OK\r\n").await;
    raw.cmd(&[b"SHUTDOWN", b"NOSAVE"]).await;
    raw.expect(b"-ERR Command not allowed inside a transaction\r\n")
        .await;
    raw.cmd(&[b"EXEC"]).await;
    raw.expect(b"-EXECABORT Transaction discarded because of previous errors.\r\n")
        .await;
    raw.cmd(&[b"PING"]).await;
    raw.expect(b"+PONG\r\n").await;
    // Flags and categories as Redis 7 reports them, in its order.
    raw.cmd(&[b"COMMAND", b"INFO", b"SHUTDOWN"]).await;
    let mut expected = String::from("*1\r\n*10\r\n$8\r\nshutdown\r\n:-1\r\n*6\r\n");
    for flag in [
        "admin",
        "noscript",
        "loading",
        "stale",
        "no_multi",
        "allow_busy",
    ] {
        expected.push_str(&format!("+{flag}\r\n"));
    }
    expected.push_str(":0\r\n:0\r\n:0\r\n*3\r\n");
    for category in ["@admin", "@slow", "@dangerous"] {
        expected.push_str(&format!("+{category}\r\n"));
    }
    raw.expect(expected.as_bytes()).await;
    assert!(server.is_running());
    server.stop().await;
}

#[tokio::test]
async fn save_without_the_append_only_file_is_refused_unless_forced() {
    let server = TestServer::start().await;
    let mut conn = server.connection(false).await;
    call(&mut conn, &["SET", "kept", "1"]).await.unwrap();
    let refused = error_text(call(&mut conn, &["SHUTDOWN", "SAVE"]).await);
    assert!(
        refused.contains("Errors trying to SHUTDOWN") && refused.contains("appendonly is off"),
        "{refused}"
    );
    // Still serving, the same connection included.
    assert_eq!(
        call(&mut conn, &["GET", "kept"]).await.unwrap(),
        redis::Value::BulkString(b"1".to_vec())
    );
    // NOSAVE (or no argument) exits without saving, as Redis with no save points.
    let mut raw = server.client().await;
    raw.cmd(&[b"SHUTDOWN", b"NOSAVE", b"NOW"]).await;
    raw.expect_closed().await;
    server.stops_by_itself(STOPS_WITHIN).await;
}

#[tokio::test]
async fn every_write_before_shutdown_is_in_the_file_and_loads_again() {
    let dir = temp_dir("flush");
    let config = ServerConfig {
        appendonly: true,
        dir: dir.clone(),
        appendfsync: "no".to_owned(),
        ..ServerConfig::default()
    };
    let server = TestServer::with_config(config.clone()).await;
    let mut raw = server.client().await;
    // One pipeline: the SHUTDOWN comes while the writes are still buffered.
    let mut pipeline = Vec::new();
    for n in 0..200 {
        let value = n.to_string();
        pipeline.extend_from_slice(
            format!(
                "*3\r\n$5\r\nRPUSH\r\n$4\r\nlist\r\n${}\r\n{value}\r\n",
                value.len()
            )
            .as_bytes(),
        );
    }
    pipeline.extend_from_slice(b"*2\r\n$8\r\nSHUTDOWN\r\n$4\r\nSAVE\r\n");
    raw.send(&pipeline).await;
    for n in 1..=200 {
        raw.expect(format!(":{n}\r\n").as_bytes()).await;
    }
    raw.expect_closed().await;
    server.stops_by_itself(STOPS_WITHIN).await;
    let file = std::fs::read(dir.join("appendonly.aof")).unwrap();
    let records = file.windows(5).filter(|window| window == b"RPUSH").count();
    assert_eq!(records, 200);

    let server = TestServer::with_config(config).await;
    let mut conn = server.connection(true).await;
    assert_eq!(
        call(&mut conn, &["LLEN", "list"]).await.unwrap(),
        redis::Value::Int(200)
    );
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_failing_disk_keeps_the_server_up_unless_forced() {
    let Some(server) = TestServer::on_a_full_disk(FsyncPolicy::No).await else {
        return;
    };
    let mut conn = server.connection(false).await;
    call(&mut conn, &["SET", "unwritten", "1"]).await.unwrap();
    let refused = error_text(call(&mut conn, &["SHUTDOWN"]).await);
    assert!(
        refused.contains("Errors trying to SHUTDOWN") && refused.contains("space"),
        "{refused}"
    );
    assert_eq!(
        call(&mut conn, &["PING"]).await.unwrap(),
        redis::Value::SimpleString("PONG".to_owned())
    );
    assert!(server.is_running());
    let mut raw = server.client().await;
    raw.cmd(&[b"SHUTDOWN", b"FORCE"]).await;
    raw.expect_closed().await;
    server.stops_by_itself(STOPS_WITHIN).await;
}
