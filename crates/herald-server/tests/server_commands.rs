//! Connection and server commands over raw RESP: exact replies and error texts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{bulk, TestServer};
use herald_server::ServerConfig;

#[tokio::test]
async fn hello_negotiates_and_refuses_unknown_versions() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    c.cmd(&[b"HELLO", b"4"]).await;
    c.expect(b"-NOPROTO unsupported protocol version\r\n").await;
    c.cmd(&[b"HELLO", b"x"]).await;
    c.expect(b"-ERR Protocol version is not an integer or out of range\r\n")
        .await;
    c.cmd(&[b"HELLO", b"3", b"BOGUS"]).await;
    c.expect(b"-ERR Syntax error in HELLO option 'BOGUS'\r\n")
        .await;
    c.cmd(&[b"HELLO", b"2", b"SETNAME", b"svc"]).await;
    c.expect(b"*14\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n")
        .await;
    c.expect(bulk(herald_server::REDIS_VERSION).as_bytes())
        .await;
    c.expect(b"$5\r\nproto\r\n:2\r\n$2\r\nid\r\n").await;
    let _id = c.read_line().await;
    c.expect(
        b"$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n",
    )
    .await;
    c.cmd(&[b"CLIENT", b"GETNAME"]).await;
    c.expect(b"$3\r\nsvc\r\n").await;
    c.cmd(&[b"HELLO", b"3"]).await;
    assert_eq!(c.read_line().await, "%7\r\n");
}

#[tokio::test]
async fn auth_and_hello_auth_with_requirepass() {
    let config = ServerConfig {
        requirepass: Some("pw".to_owned()),
        ..ServerConfig::default()
    };
    let server = TestServer::with_config(config).await;
    let mut c = server.client().await;
    c.cmd(&[b"PING"]).await;
    c.expect(b"-NOAUTH Authentication required.\r\n").await;
    c.cmd(&[b"HELLO", b"3"]).await;
    c.expect(b"-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time\r\n").await;
    c.cmd(&[b"HELLO", b"3", b"AUTH", b"default", b"nope"]).await;
    c.expect(b"-WRONGPASS invalid username-password pair or user is disabled.\r\n")
        .await;
    c.cmd(&[b"AUTH", b"someone", b"pw"]).await;
    c.expect(b"-WRONGPASS invalid username-password pair or user is disabled.\r\n")
        .await;
    c.cmd(&[b"HELLO", b"3", b"AUTH", b"default", b"pw"]).await;
    assert_eq!(c.read_line().await, "%7\r\n");
    let mut other = server.client().await;
    other.cmd(&[b"AUTH", b"default", b"pw"]).await;
    other.expect(b"+OK\r\n").await;
    other.cmd(&[b"RESET"]).await;
    other.expect(b"+RESET\r\n").await;
    other.cmd(&[b"PING"]).await;
    other.expect(b"-NOAUTH Authentication required.\r\n").await;
}

#[tokio::test]
async fn auth_without_a_password_configured() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    c.cmd(&[b"AUTH", b"x"]).await;
    c.expect(b"-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?\r\n").await;
    c.cmd(&[b"AUTH", b"default", b"anything"]).await;
    c.expect(b"+OK\r\n").await;
    c.cmd(&[b"AUTH", b"a", b"b", b"c"]).await;
    c.expect(b"-ERR syntax error\r\n").await;
}

#[tokio::test]
async fn select_dbsize_and_flush() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    c.cmd(&[b"SELECT", b"15"]).await;
    c.expect(b"+OK\r\n").await;
    c.cmd(&[b"SELECT", b"16"]).await;
    c.expect(b"-ERR DB index is out of range\r\n").await;
    c.cmd(&[b"SELECT", b"one"]).await;
    c.expect(b"-ERR value is not an integer or out of range\r\n")
        .await;
    c.cmd(&[b"DBSIZE"]).await;
    c.expect(b":0\r\n").await;
    c.cmd(&[b"FLUSHALL", b"ASYNC"]).await;
    c.expect(b"+OK\r\n").await;
    c.cmd(&[b"FLUSHDB", b"LATER"]).await;
    c.expect(b"-ERR syntax error\r\n").await;
    c.cmd(&[b"CLIENT", b"INFO"]).await;
    let info = String::from_utf8(c.read_bulk().await).unwrap();
    assert!(info.contains(" db=15 "), "{info}");
    assert!(info.contains(" cmd=client|info "), "{info}");
}

#[tokio::test]
async fn client_names_and_setinfo_are_validated() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    c.cmd(&[b"CLIENT", b"GETNAME"]).await;
    c.expect(b"$-1\r\n").await;
    c.cmd(&[b"CLIENT", b"SETNAME", b"bad name"]).await;
    c.expect(b"-ERR Client names cannot contain spaces, newlines or special characters.\r\n")
        .await;
    c.cmd(&[b"CLIENT", b"SETINFO", b"LIB-NAME", b"redis-py"])
        .await;
    c.expect(b"+OK\r\n").await;
    c.cmd(&[b"CLIENT", b"SETINFO", b"LIB-VER", b"8.1.0"]).await;
    c.expect(b"+OK\r\n").await;
    c.cmd(&[b"CLIENT", b"SETINFO", b"COLOR", b"red"]).await;
    c.expect(b"-ERR Unrecognized option 'COLOR'\r\n").await;
    c.cmd(&[b"CLIENT", b"INFO"]).await;
    let info = String::from_utf8(c.read_bulk().await).unwrap();
    assert!(info.contains("lib-name=redis-py lib-ver=8.1.0"), "{info}");
    c.cmd(&[b"CLIENT", b"NOPE"]).await;
    c.expect(b"-ERR unknown subcommand 'NOPE'. Try CLIENT HELP.\r\n")
        .await;
}

#[tokio::test]
async fn client_kill_by_id_address_and_self() {
    let server = TestServer::start().await;
    let mut victim = server.client().await;
    victim.cmd(&[b"CLIENT", b"ID"]).await;
    let id = victim.read_line().await;
    let id = id.trim_start_matches(':').trim_end().to_owned();
    let mut admin = server.client().await;
    admin.cmd(&[b"CLIENT", b"KILL", b"ID", id.as_bytes()]).await;
    admin.expect(b":1\r\n").await;
    victim.expect_closed().await;
    admin.cmd(&[b"CLIENT", b"KILL", b"ID", b"0"]).await;
    admin
        .expect(b"-ERR client-id should be greater than 0\r\n")
        .await;
    admin.cmd(&[b"CLIENT", b"KILL", b"TYPE", b"bogus"]).await;
    admin.expect(b"-ERR Unknown client type 'bogus'\r\n").await;
    admin.cmd(&[b"CLIENT", b"KILL", b"127.0.0.1:1"]).await;
    admin.expect(b"-ERR No such client\r\n").await;
    let addr = admin.stream.local_addr().unwrap().to_string();
    admin.cmd(&[b"CLIENT", b"KILL", addr.as_bytes()]).await;
    admin.expect(b"+OK\r\n").await;
    admin.expect_closed().await;
}

#[tokio::test]
async fn config_get_and_set() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    c.cmd(&[b"CONFIG", b"GET", b"client-output-buffer-limit"])
        .await;
    c.expect(b"*2\r\n$26\r\nclient-output-buffer-limit\r\n")
        .await;
    c.expect(
        bulk("normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60").as_bytes(),
    )
    .await;
    c.cmd(&[
        b"CONFIG",
        b"SET",
        b"client-output-buffer-limit",
        b"pubsub 1mb 512kb 10",
    ])
    .await;
    c.expect(b"+OK\r\n").await;
    c.cmd(&[b"CONFIG", b"GET", b"client-output-*"]).await;
    c.expect(b"*2\r\n$26\r\nclient-output-buffer-limit\r\n")
        .await;
    c.expect(bulk("normal 0 0 0 slave 268435456 67108864 60 pubsub 1048576 524288 10").as_bytes())
        .await;
    c.cmd(&[b"CONFIG", b"SET", b"nonsense", b"1"]).await;
    c.expect(b"-ERR Unknown option or number of arguments for CONFIG SET - 'nonsense'\r\n")
        .await;
    c.cmd(&[b"CONFIG", b"SET", b"port", b"1"]).await;
    c.expect(b"-ERR CONFIG SET failed (possibly related to argument 'port') - can't set immutable config\r\n").await;
    c.cmd(&[b"CONFIG", b"SET", b"maxclients", b"lots"]).await;
    c.expect(b"-ERR CONFIG SET failed (possibly related to argument 'maxclients') - argument couldn't be parsed into an integer\r\n").await;
    // Atomic: a bad second pair leaves the first unapplied.
    c.cmd(&[
        b"CONFIG",
        b"SET",
        b"maxclients",
        b"5",
        b"client-output-buffer-limit",
        b"weird 1 2 3",
    ])
    .await;
    let line = c.read_line().await;
    assert!(
        line.starts_with(
            "-ERR CONFIG SET failed (possibly related to argument 'client-output-buffer-limit')"
        ),
        "{line}"
    );
    c.cmd(&[b"CONFIG", b"GET", b"maxclients"]).await;
    c.expect(b"*2\r\n$10\r\nmaxclients\r\n$5\r\n10000\r\n")
        .await;
    c.cmd(&[b"CONFIG", b"GET", b"*"]).await;
    let header = c.read_line().await;
    let entries: usize = header.trim_start_matches('*').trim_end().parse().unwrap();
    assert_eq!(entries % 2, 0);
    assert!(entries >= 16, "{header}");
}

#[tokio::test]
async fn command_introspection_for_redis_cli() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    c.cmd(&[b"COMMAND", b"COUNT"]).await;
    let count = c.read_line().await;
    assert!(count.starts_with(':'), "{count}");
    c.cmd(&[b"COMMAND", b"INFO", b"publish", b"nosuch"]).await;
    c.expect(
        b"*2\r\n*10\r\n$7\r\npublish\r\n:3\r\n*4\r\n+pubsub\r\n+loading\r\n+stale\r\n+fast\r\n\
          :0\r\n:0\r\n:0\r\n*2\r\n+@pubsub\r\n+@fast\r\n*0\r\n*0\r\n*0\r\n*-1\r\n",
    )
    .await;
    c.cmd(&[b"COMMAND", b"DOCS", b"spublish"]).await;
    let spec = &herald_server::command::pubsub::SPUBLISH;
    let mut expected = "*2\r\n$8\r\nspublish\r\n*8\r\n".to_owned();
    for (key, value) in [
        ("summary", spec.summary),
        ("since", "7.0.0"),
        ("group", "pubsub"),
        ("complexity", spec.complexity),
    ] {
        expected.push_str(&bulk(key));
        expected.push_str(&bulk(value));
    }
    c.expect(expected.as_bytes()).await;
}

#[tokio::test]
async fn quit_replies_then_closes() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    c.send(b"*1\r\n$4\r\nQUIT\r\n*1\r\n$4\r\nPING\r\n").await;
    c.expect(b"+OK\r\n").await;
    c.expect_closed().await;
}

#[tokio::test]
async fn unknown_commands_get_redis_text() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    c.cmd(&[b"FOO", b"bar", b"baz"]).await;
    c.expect(b"-ERR unknown command 'FOO', with args beginning with: 'bar' 'baz' \r\n")
        .await;
    c.cmd(&[b"PUBSUB", b"WHAT"]).await;
    c.expect(b"-ERR unknown subcommand 'WHAT'. Try PUBSUB HELP.\r\n")
        .await;
}

#[tokio::test]
async fn shutdown_closes_connections() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    c.cmd(&[b"SUBSCRIBE", b"x"]).await;
    c.expect(&common::confirm('*', "subscribe", "x", 1)).await;
    server.stop().await;
    c.expect_closed().await;
}

#[tokio::test]
async fn client_list_filters_and_command_list_filters() {
    let server = TestServer::start().await;
    let mut sub = server.client().await;
    sub.cmd(&[b"SUBSCRIBE", b"x"]).await;
    sub.expect(&common::confirm('*', "subscribe", "x", 1)).await;
    let mut c = server.client().await;
    c.cmd(&[b"CLIENT", b"ID"]).await;
    let id = c
        .read_line()
        .await
        .trim_start_matches(':')
        .trim_end()
        .to_owned();
    c.cmd(&[b"CLIENT", b"LIST", b"TYPE", b"pubsub"]).await;
    let pubsub = String::from_utf8(c.read_bulk().await).unwrap();
    assert_eq!(pubsub.lines().count(), 1, "{pubsub}");
    assert!(pubsub.contains(" sub=1 "), "{pubsub}");
    c.cmd(&[b"CLIENT", b"LIST", b"ID", id.as_bytes()]).await;
    let mine = String::from_utf8(c.read_bulk().await).unwrap();
    assert!(mine.starts_with(&format!("id={id} ")), "{mine}");
    assert_eq!(mine.lines().count(), 1);
    c.cmd(&[b"CLIENT", b"LIST", b"TYPE", b"bogus"]).await;
    c.expect(b"-ERR Unknown client type 'bogus'\r\n").await;
    c.cmd(&[b"CLIENT", b"LIST", b"ID", b"0"]).await;
    c.expect(b"-ERR Invalid client ID\r\n").await;
    c.cmd(&[b"COMMAND", b"LIST", b"FILTERBY", b"PATTERN", b"client|*"])
        .await;
    let header = c.read_line().await;
    let count: usize = header.trim_start_matches('*').trim_end().parse().unwrap();
    let mut names = Vec::new();
    for _ in 0..count {
        names.push(String::from_utf8(c.read_bulk().await).unwrap());
    }
    assert!(names.contains(&"client|list".to_owned()), "{names:?}");
    assert!(
        names.iter().all(|name| name.starts_with("client|")),
        "{names:?}"
    );
    c.cmd(&[b"COMMAND", b"LIST", b"FILTERBY", b"ACLCAT", b"pubsub"])
        .await;
    let header = c.read_line().await;
    assert_ne!(header, "*0\r\n");
    for _ in 0..header
        .trim_start_matches('*')
        .trim_end()
        .parse::<usize>()
        .unwrap()
    {
        c.read_bulk().await;
    }
    c.cmd(&[b"COMMAND", b"LIST", b"FILTERBY", b"COLOR", b"x"])
        .await;
    c.expect(b"-ERR syntax error\r\n").await;
}

#[tokio::test]
async fn config_resetstat_zeroes_the_counters() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    c.cmd(&[b"PING"]).await;
    c.expect(b"+PONG\r\n").await;
    c.cmd(&[b"CONFIG", b"RESETSTAT"]).await;
    c.expect(b"+OK\r\n").await;
    c.cmd(&[b"INFO", b"stats"]).await;
    let info = String::from_utf8(c.read_bulk().await).unwrap();
    assert!(info.contains("total_connections_received:0\r\n"), "{info}");
    // As in Redis, RESETSTAT counts itself once it has run; INFO is counted after it replies.
    assert!(info.contains("total_commands_processed:1\r\n"), "{info}");
}
