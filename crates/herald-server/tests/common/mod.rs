//! Shared helpers for the integration tests: an in-process server on an ephemeral port
//! and a raw RESP client that asserts exact bytes, every read bounded in time.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use herald_server::{Server, ServerConfig, Shared};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Upper bound for any single expected reply.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// A running server; shuts down when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    pub shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::with_config(ServerConfig::default()).await
    }

    pub async fn with_config(mut config: ServerConfig) -> TestServer {
        config.port = 0;
        let server = Server::bind(&config).await.expect("bind");
        let addr = server.local_addrs()[0];
        let shared = Arc::clone(server.shared());
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        TestServer {
            addr,
            shared,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// A server whose append-only file is `/dev/full`, which accepts the open and fails
    /// every write with ENOSPC (a full disk); `None` where there is no `/dev/full`.
    pub async fn on_a_full_disk(fsync: herald_store::aof::FsyncPolicy) -> Option<TestServer> {
        if !std::path::Path::new("/dev/full").exists() {
            return None;
        }
        let server = TestServer::start().await;
        let persistence = herald_server::persistence::Persistence::open(
            herald_server::persistence::AofSettings {
                dir: std::path::PathBuf::from("/dev"),
                file_name: "full".to_owned(),
                fsync,
                load_truncated: true,
            },
        )
        .expect("open /dev/full");
        server.shared.set_persistence(Some(Arc::new(persistence)));
        Some(server)
    }

    /// `n` raw clients, each subscribed to `channel` (confirmed) before this returns.
    pub async fn subscribers(&self, channel: &str, n: usize) -> Vec<Raw> {
        let mut subs = Vec::with_capacity(n);
        for _ in 0..n {
            let mut sub = self.client().await;
            sub.cmd(&[b"SUBSCRIBE", channel.as_bytes()]).await;
            sub.expect(&confirm('*', "subscribe", channel, 1)).await;
            subs.push(sub);
        }
        subs
    }

    pub async fn client(&self) -> Raw {
        Raw::connect(self.addr).await
    }

    pub fn url(&self) -> String {
        format!("redis://{}/", self.addr)
    }

    /// The URL of this server for the `redis` crate, asking for RESP3 when `resp3`.
    pub fn url_for(&self, resp3: bool) -> String {
        if resp3 {
            format!("{}?protocol=resp3", self.url())
        } else {
            self.url()
        }
    }

    /// A `redis` crate connection in RESP2 or RESP3.
    pub async fn connection(&self, resp3: bool) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url_for(resp3))
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    /// Waits for the server to stop on its own (a client's SHUTDOWN), without asking it
    /// to; panics if it is still running after `wait`.
    pub async fn stops_by_itself(mut self, wait: Duration) {
        if let Some(task) = self.task.take() {
            tokio::time::timeout(wait, task)
                .await
                .expect("the server kept running")
                .expect("server task panicked");
        }
    }

    /// True while the server's task is running.
    pub fn is_running(&self) -> bool {
        self.task.as_ref().is_some_and(|task| !task.is_finished())
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("server did not stop")
                .expect("server task panicked");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A raw RESP connection.
pub struct Raw {
    pub stream: TcpStream,
}

impl Raw {
    pub async fn connect(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).unwrap();
        Raw { stream }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// Sends a command as a multibulk request.
    pub async fn cmd(&mut self, args: &[&[u8]]) {
        let mut frame = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            frame.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            frame.extend_from_slice(arg);
            frame.extend_from_slice(b"\r\n");
        }
        self.send(&frame).await;
    }

    /// Reads exactly `expected.len()` bytes and compares them.
    /// CONFIG SET `name` `value`, which must answer `+OK`.
    pub async fn config_set(&mut self, name: &[u8], value: &[u8]) {
        self.cmd(&[b"CONFIG", b"SET", name, value]).await;
        self.expect(b"+OK\r\n").await;
    }

    pub async fn expect(&mut self, expected: &[u8]) {
        let got = self.read_exact(expected.len()).await;
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(expected),
            "unexpected reply"
        );
    }

    pub async fn read_exact(&mut self, n: usize) -> Vec<u8> {
        let mut buf = vec![0; n];
        tokio::time::timeout(REPLY_TIMEOUT, self.stream.read_exact(&mut buf))
            .await
            .expect("timed out waiting for a reply")
            .expect("read");
        buf
    }

    /// Reads one line (through CRLF).
    pub async fn read_line(&mut self) -> String {
        let mut line = Vec::new();
        loop {
            let byte = self.read_exact(1).await[0];
            line.push(byte);
            if line.ends_with(b"\r\n") {
                return String::from_utf8_lossy(&line).into_owned();
            }
        }
    }

    /// Reads one bulk string reply and returns its payload.
    pub async fn read_bulk(&mut self) -> Vec<u8> {
        let header = self.read_line().await;
        let len: usize = header
            .trim_start_matches(['$', '='])
            .trim_end()
            .parse()
            .unwrap_or_else(|_| panic!("not a bulk header: {header:?}"));
        let mut payload = self.read_exact(len + 2).await;
        payload.truncate(len);
        payload
    }

    /// Asserts the server closes the connection (EOF) within the timeout, skipping
    /// nothing: any bytes before EOF fail the test.
    pub async fn expect_closed(&mut self) {
        let mut buf = [0u8; 256];
        let n = tokio::time::timeout(REPLY_TIMEOUT, self.stream.read(&mut buf))
            .await
            .expect("connection was not closed");
        match n {
            Ok(0) => {}
            Ok(n) => panic!("expected EOF, got {:?}", String::from_utf8_lossy(&buf[..n])),
            // A reset also means closed.
            Err(_) => {}
        }
    }

    /// Starts a 3 MB argument and sends it in 64 KB pieces, as a flooding client does,
    /// until the server closes the connection (asserted: within the reply timeout).
    pub async fn flood_until_closed(&mut self) {
        self.send(b"*2\r\n$4\r\nECHO\r\n$3000000\r\n").await;
        let chunk = vec![b'q'; 64 * 1024];
        for _ in 0..40 {
            if self.stream.write_all(&chunk).await.is_err() {
                return;
            }
        }
        self.expect_closed().await;
    }

    /// Asserts nothing arrives for `wait`.
    pub async fn expect_silence(&mut self, wait: Duration) {
        let mut buf = [0u8; 64];
        if let Ok(read) = tokio::time::timeout(wait, self.stream.read(&mut buf)).await {
            match read {
                Ok(n) => panic!(
                    "expected silence, got {:?}",
                    String::from_utf8_lossy(&buf[..n])
                ),
                Err(err) => panic!("expected silence, got error {err}"),
            }
        }
    }
}

/// RESP2 bulk string.
pub fn bulk(s: &str) -> String {
    format!("${}\r\n{}\r\n", s.len(), s)
}

/// A subscription confirmation in RESP2 (`*`) or RESP3 (`>`).
pub fn confirm(head: char, kind: &str, name: &str, count: i64) -> Vec<u8> {
    format!("{head}3\r\n{}{}:{count}\r\n", bulk(kind), bulk(name)).into_bytes()
}

/// A `message` in RESP2 (`*`) or RESP3 (`>`).
pub fn message(head: char, channel: &str, payload: &str) -> Vec<u8> {
    format!(
        "{head}3\r\n{}{}{}",
        bulk("message"),
        bulk(channel),
        bulk(payload)
    )
    .into_bytes()
}

/// A `pmessage`.
pub fn pmessage(head: char, pattern: &str, channel: &str, payload: &str) -> Vec<u8> {
    format!(
        "{head}4\r\n{}{}{}{}",
        bulk("pmessage"),
        bulk(pattern),
        bulk(channel),
        bulk(payload)
    )
    .into_bytes()
}
