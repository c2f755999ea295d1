//! A `herald server` child process for the binary's tests: stderr read on a thread,
//! the RESP address taken from the "ready" line, killed when dropped.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const HERALD: &str = env!("CARGO_BIN_EXE_herald");
pub const WAIT: Duration = Duration::from_secs(10);

/// A running `herald server`.
pub struct Running {
    pub child: Child,
    /// The RESP address from the "ready to accept connections" line.
    pub addr: String,
    log: mpsc::Receiver<String>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `herald server ARGS` and waits until it accepts connections.
pub fn start<I, S>(args: I) -> Running
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    start_until(args, &[READY]).0
}

/// The RESP server's "ready" line, which names its address.
pub const READY: &str = "ready to accept connections";

/// Starts `herald server ARGS` and waits for a log line containing each of `needles`,
/// in any order (the RESP and HTTP listeners come up concurrently); returns the lines in
/// the order of `needles`. One of them must be [`READY`].
pub fn start_until<I, S>(args: I, needles: &[&str]) -> (Running, Vec<String>)
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new(HERALD);
    command.arg("server").args(args);
    spawn_until(command, needles)
}

/// Starts `herald server ARGS` allowed to run on CPU `cpu` only (`taskset`, as the
/// benchmarks pin servers) and waits until it accepts connections.
pub fn start_on_cpu<I, S>(cpu: &str, args: I) -> Running
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new("taskset");
    command.args(["-c", cpu, HERALD, "server"]).args(args);
    spawn_until(command, &[READY]).0
}

/// Spawns `command` (a `herald server`) and waits for `needles` as [`start_until`].
fn spawn_until(mut command: Command, needles: &[&str]) -> (Running, Vec<String>) {
    let mut child = command
        .env("RUST_LOG", "info")
        .env_remove("HERALD_GATEWAY_JWT_SECRET")
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
    let found = running.wait_for_all(needles);
    let ready = needles
        .iter()
        .position(|needle| *needle == READY)
        .map(|i| &found[i])
        .expect("start_until needs the READY line among its needles");
    running.addr = value_after(ready, "addr=").expect("address in the ready line");
    (running, found)
}

/// The whitespace-delimited value after `key` in a log line.
pub fn value_after(line: &str, key: &str) -> Option<String> {
    line.rsplit(key)
        .next()
        .filter(|_| line.contains(key))
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
}

impl Running {
    /// The next log line containing `needle` (earlier lines are skipped).
    pub fn wait_for(&self, needle: &str) -> String {
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

    /// The first line containing each of `needles`, in any order, in the order of
    /// `needles` (lines matching none are skipped).
    pub fn wait_for_all(&self, needles: &[&str]) -> Vec<String> {
        let mut found: Vec<Option<String>> = vec![None; needles.len()];
        while found.iter().any(Option::is_none) {
            let line = self.log.recv_timeout(WAIT).unwrap_or_else(|_| {
                let missing: Vec<_> = needles
                    .iter()
                    .zip(&found)
                    .filter(|(_, line)| line.is_none())
                    .map(|(needle, _)| *needle)
                    .collect();
                panic!("herald never logged {missing:?}")
            });
            for (needle, slot) in needles.iter().zip(found.iter_mut()) {
                if slot.is_none() && line.contains(needle) {
                    *slot = Some(line.clone());
                }
            }
        }
        found.into_iter().flatten().collect()
    }

    /// Stops reading the server's stderr: the pipe closes at its next log line, and
    /// every log write after that fails (what a dead log collector does to a server).
    pub fn close_log(&mut self) {
        self.log = mpsc::channel().1;
    }

    /// Sends SIGTERM and waits for the goodbye line and the exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        self.send_sigterm();
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

    /// Sends SIGTERM without waiting.
    pub fn send_sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// SIGKILL, and reap it.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}
