//! Malformed input and limits: one error reply, the connection closes, and every other
//! client keeps working.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{confirm, Raw, TestServer};
use herald_server::ServerConfig;

async fn assert_protocol_error(server: &TestServer, input: &[u8], error: &str) {
    let mut bystander = server.client().await;
    bystander.cmd(&[b"SUBSCRIBE", b"still-here"]).await;
    bystander
        .expect(&confirm('*', "subscribe", "still-here", 1))
        .await;

    let mut c = server.client().await;
    c.send(input).await;
    c.expect(format!("-ERR Protocol error: {error}\r\n").as_bytes())
        .await;
    c.expect_closed().await;

    let mut other = server.client().await;
    other.cmd(&[b"PUBLISH", b"still-here", b"alive"]).await;
    other.expect(b":1\r\n").await;
    bystander
        .expect(&common::message('*', "still-here", "alive"))
        .await;
}

#[tokio::test]
async fn inline_commands_work_like_telnet() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    c.send(b"PING\r\n").await;
    c.expect(b"+PONG\r\n").await;
    c.send(b"ping\n").await;
    c.expect(b"+PONG\r\n").await;
    c.send(b"\r\n\r\nECHO \"a b\" 'c'\r\n").await;
    c.expect(b"-ERR wrong number of arguments for 'echo' command\r\n")
        .await;
    c.send(b"ECHO \"a\\x41 b\"\r\n").await;
    c.expect(b"$4\r\naA b\r\n").await;
    // An empty multibulk is skipped without a reply.
    c.send(b"*0\r\n*1\r\n$4\r\nPING\r\n").await;
    c.expect(b"+PONG\r\n").await;
}

#[tokio::test]
async fn garbage_after_a_frame_is_an_inline_command() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    c.send(b"*1\r\n$4\r\nPING\r\nGARBAGE x\r\n").await;
    c.expect(b"+PONG\r\n-ERR unknown command 'GARBAGE', with args beginning with: 'x' \r\n")
        .await;
    c.send(b"PING\r\n").await;
    c.expect(b"+PONG\r\n").await;
}

#[tokio::test]
async fn malformed_frames_close_only_their_connection() {
    let server = TestServer::start().await;
    let cases: &[(&[u8], &str)] = &[
        (b"*1\r\n+PING\r\n", "expected '$', got '+'"),
        (b"*abc\r\n", "invalid multibulk length"),
        (b"*-\r\n", "invalid multibulk length"),
        (b"*1\r\n$-5\r\n", "invalid bulk length"),
        (b"*1\r\n$abc\r\n", "invalid bulk length"),
        (b"*1\r\n$1073741824\r\n", "invalid bulk length"),
        (b"*1\r\n$99999999999999999999999\r\n", "invalid bulk length"),
        (b"*3000000000\r\n", "invalid multibulk length"),
        (b"ECHO \"unterminated\r\n", "unbalanced quotes in request"),
    ];
    for (input, error) in cases {
        assert_protocol_error(&server, input, error).await;
    }
}

#[tokio::test]
async fn missing_crlf_after_a_bulk_is_an_error() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    c.send(b"*1\r\n$4\r\nPINGxx").await;
    let line = c.read_line().await;
    assert!(line.starts_with("-ERR Protocol error: "), "{line:?}");
    assert!(line.contains("after bulk"), "{line:?}");
    c.expect_closed().await;
}

#[tokio::test]
async fn oversized_inline_and_count_lines_are_refused() {
    let server = TestServer::start().await;
    let long = vec![b'a'; 70 * 1024];
    assert_protocol_error(&server, &long, "too big inline request").await;
    let mut count = b"*".to_vec();
    count.extend(std::iter::repeat_n(b'1', 70 * 1024));
    assert_protocol_error(&server, &count, "too big mbulk count string").await;
    let mut bulk_len = b"*1\r\n$".to_vec();
    bulk_len.extend(std::iter::repeat_n(b'1', 70 * 1024));
    assert_protocol_error(&server, &bulk_len, "too big bulk count string").await;
}

#[tokio::test]
async fn proto_max_bulk_len_is_configurable() {
    let server = TestServer::start().await;
    let mut admin = server.client().await;
    admin.config_set(b"proto-max-bulk-len", b"1mb").await;
    assert_protocol_error(&server, b"*1\r\n$2000000\r\n", "invalid bulk length").await;
    let mut c = server.client().await;
    let payload = vec![b'z'; 1024 * 1024];
    c.cmd(&[b"ECHO", &payload]).await;
    assert_eq!(c.read_bulk().await.len(), payload.len());
}

#[tokio::test]
async fn tighter_limits_apply_before_authentication() {
    let config = ServerConfig {
        requirepass: Some("s3cret".to_owned()),
        ..ServerConfig::default()
    };
    let server = TestServer::with_config(config).await;
    let mut c = server.client().await;
    c.send(b"*11\r\n").await;
    c.expect(b"-ERR Protocol error: unauthenticated multibulk length\r\n")
        .await;
    c.expect_closed().await;

    let mut c = server.client().await;
    c.send(b"*2\r\n$4\r\nAUTH\r\n$16385\r\n").await;
    c.expect(b"-ERR Protocol error: unauthenticated bulk length\r\n")
        .await;
    c.expect_closed().await;

    // Exactly at the limits is fine, and after AUTH the normal limits apply.
    let mut c = server.client().await;
    let mut at_limit = b"*10\r\n$9\r\nSUBSCRIBE\r\n".to_vec();
    for _ in 0..9 {
        at_limit.extend_from_slice(b"$1\r\nx\r\n");
    }
    c.send(&at_limit).await;
    c.expect(b"-NOAUTH Authentication required.\r\n").await;
    c.cmd(&[b"AUTH", b"wrong"]).await;
    c.expect(b"-WRONGPASS invalid username-password pair or user is disabled.\r\n")
        .await;
    c.cmd(&[b"AUTH", b"s3cret"]).await;
    c.expect(b"+OK\r\n").await;
    let big = vec![b'y'; 100_000];
    c.cmd(&[b"ECHO", &big]).await;
    assert_eq!(c.read_bulk().await.len(), big.len());
}

#[tokio::test]
async fn query_buffer_limit_closes_the_client() {
    let server = TestServer::start().await;
    let mut admin = server.client().await;
    admin.config_set(b"client-query-buffer-limit", b"1mb").await;
    let mut c = server.client().await;
    c.flood_until_closed().await;
    admin.cmd(&[b"INFO", b"stats"]).await;
    let info = String::from_utf8(admin.read_bulk().await).unwrap();
    assert!(
        info.contains("client_query_buffer_limit_disconnections:1\r\n"),
        "{info}"
    );
}

#[tokio::test]
async fn maxclients_refuses_extra_connections_with_an_error() {
    let server = TestServer::start().await;
    let mut admin = server.client().await;
    admin.config_set(b"maxclients", b"1").await;
    let mut extra = Raw::connect(server.addr).await;
    extra
        .expect(b"-ERR max number of clients reached\r\n")
        .await;
    extra.expect_closed().await;
    admin.cmd(&[b"PING"]).await;
    admin.expect(b"+PONG\r\n").await;
}

/// A server whose `client-output-buffer-limit` is `limit`, and its admin connection.
async fn server_with_output_limit(limit: &str) -> (TestServer, Raw) {
    let server = TestServer::start().await;
    let mut admin = server.client().await;
    admin
        .cmd(&[
            b"CONFIG",
            b"SET",
            b"client-output-buffer-limit",
            limit.as_bytes(),
        ])
        .await;
    admin.expect(b"+OK\r\n").await;
    (server, admin)
}

/// A subscriber that never reads, with a tiny receive window so the kernel's buffers
/// fill quickly and the server-side outbox has to grow.
async fn stalled_subscriber(server: &TestServer, channel: &str) -> Raw {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut slow = Raw {
        stream: socket.connect(server.addr).await.unwrap(),
    };
    slow.cmd(&[b"SUBSCRIBE", channel.as_bytes()]).await;
    slow.expect(&confirm('*', "subscribe", channel, 1)).await;
    slow
}

#[tokio::test]
async fn slow_subscriber_is_disconnected_and_nobody_else_suffers() {
    let (server, mut admin) = server_with_output_limit("pubsub 256kb 0 0").await;
    let _slow = stalled_subscriber(&server, "firehose").await;
    let mut fast = server.client().await;
    fast.cmd(&[b"SUBSCRIBE", b"firehose"]).await;
    fast.expect(&confirm('*', "subscribe", "firehose", 1)).await;

    let payload = vec![b'p'; 16 * 1024];
    let mut publisher = server.client().await;
    let mut sent = 0;
    let mut slow_gone = false;
    for _ in 0..2000 {
        publisher.cmd(&[b"PUBLISH", b"firehose", &payload]).await;
        let reply = publisher.read_line().await;
        sent += 1;
        // The fast subscriber reads everything, in order.
        fast.expect(b"*3\r\n$7\r\nmessage\r\n$8\r\nfirehose\r\n")
            .await;
        assert_eq!(fast.read_bulk().await.len(), payload.len());
        if reply == ":1\r\n" {
            slow_gone = true;
            break;
        }
        assert_eq!(reply, ":2\r\n");
    }
    assert!(
        slow_gone,
        "slow subscriber still subscribed after {sent} messages"
    );
    admin.cmd(&[b"INFO", b"stats"]).await;
    let info = String::from_utf8(admin.read_bulk().await).unwrap();
    assert!(
        info.contains("client_output_buffer_limit_disconnections:1\r\n"),
        "{info}"
    );
    // Its memory is released: the slow client leaves the client table.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        admin.cmd(&[b"CLIENT", b"LIST"]).await;
        let list = String::from_utf8(admin.read_bulk().await).unwrap();
        if list.lines().count() == 3 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{list}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn soft_limit_disconnects_after_its_window() {
    let (server, _admin) = server_with_output_limit("pubsub 0 64kb 2").await;
    let _slow = stalled_subscriber(&server, "soft").await;
    let payload = vec![b's'; 32 * 1024];
    let mut publisher = server.client().await;
    // 12 MB: more than the kernel's socket buffers absorb, so the outbox stays above
    // the soft limit; there is no hard limit.
    for _ in 0..400 {
        publisher.cmd(&[b"PUBLISH", b"soft", &payload]).await;
        publisher.expect(b":1\r\n").await;
    }
    // Not yet: the soft limit must hold for more than two seconds.
    publisher.cmd(&[b"PUBSUB", b"NUMSUB", b"soft"]).await;
    publisher.expect(b"*2\r\n$4\r\nsoft\r\n:1\r\n").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        publisher.cmd(&[b"PUBSUB", b"NUMSUB", b"soft"]).await;
        if publisher
            .read_exact(b"*2\r\n$4\r\nsoft\r\n:0\r\n".len())
            .await
            == b"*2\r\n$4\r\nsoft\r\n:0\r\n"
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "soft limit never enforced"
        );
    }
}

#[tokio::test]
async fn a_client_that_does_not_read_stops_being_read() {
    let server = TestServer::start().await;
    let mut admin = server.client().await;
    let reader = server.client().await;
    let (mut read_half, mut write_half) = reader.stream.into_split();
    // 64 requests of 1 MB each: far more than the 4 MB of unread replies after which the
    // server stops reading this client.
    let payload = vec![b'e'; 1024 * 1024];
    let mut request = format!("*2\r\n$4\r\nECHO\r\n${}\r\n", payload.len()).into_bytes();
    request.extend_from_slice(&payload);
    request.extend_from_slice(b"\r\n");
    let writer = tokio::spawn(async move {
        for _ in 0..64 {
            tokio::io::AsyncWriteExt::write_all(&mut write_half, &request)
                .await
                .unwrap();
        }
        write_half
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !writer.is_finished(),
        "the server kept reading a client that reads nothing"
    );
    // The replies waiting for it stay bounded by the backpressure threshold, not 64 MB.
    admin.cmd(&[b"CLIENT", b"LIST"]).await;
    let list = String::from_utf8(admin.read_bulk().await).unwrap();
    let omem: usize = list
        .lines()
        .filter_map(|line| line.split(" omem=").nth(1))
        .filter_map(|rest| rest.split(' ').next()?.parse().ok())
        .max()
        .unwrap();
    assert!(omem <= 5 * 1024 * 1024, "omem={omem}");
    // Once the client reads, everything is answered in order.
    let mut received = 0usize;
    let expected = 64 * (payload.len() + format!("${}\r\n\r\n", payload.len()).len());
    let mut buffer = vec![0u8; 1 << 16];
    while received < expected {
        let n = tokio::time::timeout(
            Duration::from_secs(10),
            tokio::io::AsyncReadExt::read(&mut read_half, &mut buffer),
        )
        .await
        .expect("replies stalled")
        .unwrap();
        assert!(n > 0, "connection closed after {received} bytes");
        received += n;
    }
    assert_eq!(received, expected);
    tokio::time::timeout(Duration::from_secs(10), writer)
        .await
        .expect("writer finished")
        .unwrap();
}
