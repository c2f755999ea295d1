//! SHUTDOWN against the `herald` binary, with the `redis` crate as the client: the whole
//! process exits (the HTTP gateway with the RESP server), with status 0, after the
//! append-only file took every write, which a restart then loads.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

mod common;

use common::{start_until, READY, WAIT};

fn temp_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("herald-cli-shutdown-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn connect(addr: &str) -> redis::Connection {
    let client = redis::Client::open(format!("redis://{addr}/")).unwrap();
    client.get_connection_with_timeout(WAIT).unwrap()
}

#[test]
fn shutdown_stops_the_process_gateway_included_and_keeps_the_data() {
    let dir = temp_dir("exit");
    let args = [
        "--port",
        "0",
        "--http-port",
        "0",
        "--appendonly",
        "yes",
        "--appendfsync",
        "no",
        "--dir",
    ];
    let server_args = || {
        args.iter()
            .map(|arg| (*arg).to_owned())
            .chain([dir.display().to_string()])
    };
    let (mut server, _) = start_until(server_args(), &[READY, "gateway serving HTTP"]);
    let mut conn = connect(&server.addr);
    for n in 0..300 {
        let length: i64 = redis::cmd("RPUSH")
            .arg("list")
            .arg(n)
            .query(&mut conn)
            .unwrap();
        assert_eq!(length, n + 1);
    }
    // No reply: the connection closes, which the client reports as an I/O error.
    let result: redis::RedisResult<()> = redis::cmd("SHUTDOWN").query(&mut conn);
    let error = result.expect_err("SHUTDOWN replied");
    assert!(
        error.is_io_error() || error.is_connection_dropped(),
        "{error}"
    );
    server.wait_for("SHUTDOWN from a client");
    server.wait_for("bye bye");
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "herald did not exit after SHUTDOWN"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    drop(server);

    let (server, _) = start_until(server_args(), &[READY]);
    let mut conn = connect(&server.addr);
    let length: i64 = redis::cmd("LLEN").arg("list").query(&mut conn).unwrap();
    assert_eq!(length, 300);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
