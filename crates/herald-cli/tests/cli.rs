//! The `herald` binary as an operator runs it: flags, config file, bad input, signals.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const HERALD: &str = env!("CARGO_BIN_EXE_herald");
const WAIT: Duration = Duration::from_secs(10);

/// A `herald server` child process, killed if the test fails early.
struct Running {
    child: Child,
    addr: String,
    log: mpsc::Receiver<String>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(args: &[&str]) -> Running {
    let mut child = Command::new(HERALD)
        .arg("server")
        .args(args)
        // Parallel tests must not all claim the gateway's default port.
        .args(["--http-port", "0"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn herald");
    let stderr = child.stderr.take().unwrap();
    let (lines, log) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut running = Running {
        child,
        addr: String::new(),
        log,
    };
    let ready = running.wait_for("ready to accept connections");
    running.addr = ready
        .rsplit("addr=")
        .next()
        .expect("address in the ready line")
        .trim()
        .to_owned();
    running
}

impl Running {
    fn wait_for(&self, needle: &str) -> String {
        loop {
            let line = self
                .log
                .recv_timeout(WAIT)
                .unwrap_or_else(|_| panic!("herald never logged {needle:?}"));
            if line.contains(needle) {
                return line;
            }
        }
    }

    fn command(&self, request: &[u8], reply_len: usize) -> Vec<u8> {
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream.write_all(request).unwrap();
        let mut reply = vec![0; reply_len];
        stream.read_exact(&mut reply).unwrap();
        reply
    }

    fn terminate(mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.wait_for("bye bye");
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "herald did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn serves_and_stops_cleanly_on_sigterm() {
    let server = start(&["--port", "0", "--bind", "127.0.0.1"]);
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
    let server = start(&["--config", file.to_str().unwrap(), "--port", "0"]);
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
}
