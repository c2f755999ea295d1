//! The `herald` binary as an operator runs it: flags, config file, bad input, signals.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;

mod common;

use common::{start, Running, HERALD, WAIT};

/// `herald server ARGS` with the gateway on an ephemeral port: parallel tests must not
/// all claim its default port.
fn start_server(args: &[&str]) -> Running {
    start(args.iter().copied().chain(["--http-port", "0"]))
}

/// A one-shot RESP exchange with a running server.
trait Exchange {
    fn command(&self, request: &[u8], reply_len: usize) -> Vec<u8>;
}

impl Exchange for Running {
    fn command(&self, request: &[u8], reply_len: usize) -> Vec<u8> {
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream.write_all(request).unwrap();
        let mut reply = vec![0; reply_len];
        stream.read_exact(&mut reply).unwrap();
        reply
    }
}

#[test]
fn serves_and_stops_cleanly_on_sigterm() {
    let server = start_server(&["--port", "0", "--bind", "127.0.0.1"]);
    assert_eq!(server.command(b"PING\r\n", 7), b"+PONG\r\n");
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
}

#[test]
fn config_file_and_flags_combine() {
    let dir = std::env::temp_dir().join(format!("herald-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("herald.toml");
    std::fs::write(&file, "requirepass = \"from-file\"\nport = 6379\n").unwrap();
    // The flag wins over the file's port.
    let server = start_server(&["--config", file.to_str().unwrap(), "--port", "0"]);
    assert_eq!(
        server.command(b"PING\r\n", 34),
        b"-NOAUTH Authentication required.\r\n"
    );
    assert_eq!(
        server.command(b"AUTH from-file\r\nPING\r\n", 12),
        b"+OK\r\n+PONG\r\n"
    );
    drop(server);
    std::fs::remove_dir_all(&dir).unwrap();
}

fn usage_error(args: &[&str]) -> String {
    let output = Command::new(HERALD).args(args).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn bad_input_exits_with_code_2_and_a_message() {
    assert!(usage_error(&["server", "--port", "notaport"]).contains("--port"));
    assert!(usage_error(&["server", "--bind", "nowhere"]).contains("--bind"));
    assert!(usage_error(&["server", "--proto-max-bulk-len", "12xb"]).contains("memory value"));
    assert!(
        usage_error(&["server", "--client-output-buffer-limit", "pubsub 1 2"])
            .contains("buffer limit")
    );
    assert!(
        usage_error(&["server", "--config", "/nonexistent/herald.toml"]).contains("cannot read")
    );
    assert!(usage_error(&["frobnicate"]).contains("frobnicate"));
    assert!(usage_error(&["server", "--appendonly", "maybe"]).contains("'yes' or 'no'"));
    assert!(usage_error(&["server", "--appendfsync", "sometimes"]).contains("appendfsync"));
    assert!(usage_error(&["server", "--appendfilename", "a/b.aof"]).contains("just a filename"));
    assert!(
        usage_error(&["server", "--auto-aof-rewrite-min-size", "lots"]).contains("memory value")
    );
    assert!(usage_error(&["server", "--maxclients", "0"])
        .contains("maxclients: argument must be between"));
    assert!(usage_error(&["server", "--threads", "0"])
        .contains("threads: argument must be between 1 and 1024"));
    assert!(usage_error(&["server", "--threads", "many"]).contains("--threads"));
}

/// The `herald_worker_threads` field of INFO server.
fn worker_threads(server: &Running) -> String {
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.write_all(b"INFO server\r\n").unwrap();
    let mut info = Vec::new();
    let mut chunk = [0; 4096];
    while !String::from_utf8_lossy(&info).contains("executable:") {
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "INFO cut short");
        info.extend_from_slice(&chunk[..n]);
    }
    let info = String::from_utf8_lossy(&info).into_owned();
    common::value_after(&info, "herald_worker_threads:").expect("herald_worker_threads in INFO")
}

#[test]
fn threads_size_the_runtime_from_the_flag_or_the_file() {
    let server = start_server(&["--port", "0", "--threads", "1"]);
    assert_eq!(worker_threads(&server), "1");
    drop(server);
    let dir = std::env::temp_dir().join(format!("herald-cli-threads-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("herald.toml");
    std::fs::write(&file, "threads = 3\n").unwrap();
    let server = start_server(&["--config", file.to_str().unwrap(), "--port", "0"]);
    assert_eq!(worker_threads(&server), "3");
    drop(server);
    let default = start_server(&["--port", "0"]);
    let cpus = std::thread::available_parallelism().unwrap().get();
    assert_eq!(
        worker_threads(&default),
        cpus.saturating_sub(1).max(1).to_string(),
        "one per CPU but one by default"
    );
    drop(default);
    // Pinned to one CPU (as the benchmarks pin servers): one worker, not zero.
    let pinned = common::start_on_cpu("0", ["--port", "0", "--http-port", "0"]);
    assert_eq!(worker_threads(&pinned), "1", "at least one");
    drop(pinned);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn port_in_use_is_a_clear_startup_failure() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let output = Command::new(HERALD)
        .args(["server", "--port", &port])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot listen on 127.0.0.1:"), "{stderr}");
    assert_eq!(
        stderr.matches("Address already in use").count(),
        1,
        "the cause once: {stderr}"
    );
}
