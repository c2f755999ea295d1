//! WAIT and WAITAOF over raw RESP: at once when met or inside MULTI, at the timeout
//! when waiting for replicas Herald does not have, at the fsync when waiting for the
//! append-only file, in order with what was pipelined after, and a client that leaves
//! while waiting for ever is let go.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::TestServer;
use herald_server::ServerConfig;

fn aof_server_config(name: &str, fsync: &str) -> (ServerConfig, PathBuf) {
    let dir = std::env::temp_dir().join(format!("herald-waits-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = ServerConfig {
        appendonly: true,
        dir: dir.clone(),
        appendfsync: fsync.to_owned(),
        ..ServerConfig::default()
    };
    (config, dir)
}

#[tokio::test]
async fn wait_answers_zero_replicas_at_once_or_at_the_timeout() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    client.cmd(&[b"WAIT", b"0", b"0"]).await;
    client.expect(b":0\r\n").await;
    let started = Instant::now();
    // Pipelined: PING's reply follows WAIT's, after the timeout.
    client
        .send(b"*3\r\n$4\r\nWAIT\r\n$1\r\n1\r\n$3\r\n150\r\nPING\r\n")
        .await;
    client.expect(b":0\r\n+PONG\r\n").await;
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "{:?}",
        started.elapsed()
    );
    for (args, reply) in [
        (
            &[&b"WAIT"[..], b"x", b"1"][..],
            "-ERR value is not an integer or out of range\r\n",
        ),
        (&[b"WAIT", b"1", b"-1"], "-ERR timeout is negative\r\n"),
        (
            &[b"WAIT", b"1", b"0.5"],
            "-ERR timeout is not an integer or out of range\r\n",
        ),
        (
            &[b"WAITAOF", b"1", b"0", b"0"],
            "-ERR WAITAOF cannot be used when numlocal is set but appendonly is disabled.\r\n",
        ),
        (&[b"WAITAOF", b"0", b"0", b"0"], "*2\r\n:0\r\n:0\r\n"),
    ] {
        client.cmd(args).await;
        client.expect(reply.as_bytes()).await;
    }
    // Inside MULTI nothing blocks: a wait for ever answers with what is reached.
    client.cmd(&[b"MULTI"]).await;
    client.expect(b"+OK\r\n").await;
    client.cmd(&[b"WAIT", b"1", b"0"]).await;
    client.expect(b"+QUEUED\r\n").await;
    client.cmd(&[b"EXEC"]).await;
    client.expect(b"*1\r\n:0\r\n").await;
    server.stop().await;
}

#[tokio::test]
async fn waitaof_answers_at_the_fsync_under_everysec() {
    let (config, dir) = aof_server_config("everysec", "everysec");
    let server = TestServer::with_config(config).await;
    let mut client = server.client().await;
    // No write yet: nothing to wait for.
    client.cmd(&[b"WAITAOF", b"1", b"0", b"0"]).await;
    client.expect(b"*2\r\n:1\r\n:0\r\n").await;
    client.cmd(&[b"SET", b"k", b"v"]).await;
    client.expect(b"+OK\r\n").await;
    let started = Instant::now();
    client.cmd(&[b"WAITAOF", b"1", b"0", b"5000"]).await;
    client.expect(b"*2\r\n:1\r\n:0\r\n").await;
    // The fsync of `everysec` came, well before the timeout.
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
    let persistence = server.shared.persistence().expect("appendonly");
    assert!(persistence.writer().status().fsyncs >= 1);
    // Replicas asked for: none will come, so the timeout answers, the file is synced.
    client.cmd(&[b"WAITAOF", b"1", b"1", b"100"]).await;
    client.expect(b"*2\r\n:1\r\n:0\r\n").await;
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn waitaof_times_out_under_appendfsync_no_which_never_fsyncs() {
    let (config, dir) = aof_server_config("no", "no");
    let server = TestServer::with_config(config).await;
    let mut client = server.client().await;
    client.cmd(&[b"SET", b"k", b"v"]).await;
    client.expect(b"+OK\r\n").await;
    let started = Instant::now();
    client.cmd(&[b"WAITAOF", b"1", b"0", b"200"]).await;
    client.expect(b"*2\r\n:0\r\n:0\r\n").await;
    assert!(started.elapsed() >= Duration::from_millis(200));
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_client_that_leaves_while_waiting_for_ever_is_let_go() {
    let server = TestServer::start().await;
    let before = server.shared.clients.snapshot().len();
    let mut client = server.client().await;
    client.cmd(&[b"WAIT", b"1", b"0"]).await;
    client.expect_silence(Duration::from_millis(100)).await;
    assert_eq!(server.shared.clients.snapshot().len(), before + 1);
    drop(client);
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.shared.clients.snapshot().len() > before {
        assert!(
            Instant::now() < deadline,
            "the waiting client was never let go"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_floods_while_waiting_hits_the_query_buffer_limit() {
    let server = TestServer::start().await;
    let mut admin = server.client().await;
    admin.config_set(b"client-query-buffer-limit", b"1mb").await;
    let mut client = server.client().await;
    client.cmd(&[b"WAIT", b"1", b"0"]).await;
    client.expect_silence(Duration::from_millis(50)).await;
    // Read ahead while waiting, and cut off past the limit rather than kept for ever.
    client.flood_until_closed().await;
    admin.cmd(&[b"INFO", b"stats"]).await;
    let info = String::from_utf8(admin.read_bulk().await).unwrap();
    assert!(
        info.contains("client_query_buffer_limit_disconnections:1\r\n"),
        "{info}"
    );
    server.stop().await;
}
