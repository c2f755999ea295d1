//! Shared by the integration tests: the four back ends every test runs against (a Herald
//! server started in this process, the embedded mode, a real redis-server child on a free
//! port, and one started with HELLO renamed away so that subscribers must fall back to
//! RESP2), helpers to wait for things with a deadline, and the macro that turns
//! one test body into one test per back end.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, TcpListener as StdListener};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use herald_client::Herald;
use herald_server::{Server, ServerConfig};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Upper bound for anything a test waits for.
pub const WAIT: Duration = Duration::from_secs(10);
/// Upper bound for a whole test.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Herald,
    Embedded,
    Redis,
    /// redis-server refusing HELLO (`--rename-command HELLO ""`): RESP2 subscribers.
    RedisResp2,
}

enum Running {
    Herald {
        stop: Option<oneshot::Sender<()>>,
        task: Option<JoinHandle<()>>,
    },
    Redis(Child),
}

/// One back end, with a [`Herald`] handle on it. Servers stop when it is dropped.
pub struct Backend {
    pub kind: Kind,
    pub herald: Herald,
    addr: Option<SocketAddr>,
    running: Option<Running>,
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_herald(port: u16) -> (SocketAddr, Running) {
    let config = ServerConfig {
        port,
        ..ServerConfig::default()
    };
    let server = Server::bind(&config).await.expect("bind herald");
    let addr = server.local_addrs()[0];
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    (
        addr,
        Running::Herald {
            stop: Some(stop),
            task: Some(task),
        },
    )
}

async fn start_redis(port: u16, resp2: bool) -> (SocketAddr, Running) {
    let mut command = Command::new("redis-server");
    if resp2 {
        // The config parser reads `""` as the empty name: the command is gone.
        command.args(["--rename-command", "HELLO", "\"\""]);
    }
    let child = command
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .args(["--dir", &std::env::temp_dir().to_string_lossy()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server must be installed (scripts/test installs Debian's redis-server)");
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let running = Running::Redis(child);
    let url = format!("redis://{addr}/");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Ok(client) = redis::Client::open(url.as_str()) {
            if let Ok(mut conn) = client.get_multiplexed_async_connection().await {
                let pong: redis::RedisResult<String> =
                    redis::cmd("PING").query_async(&mut conn).await;
                if pong.is_ok() {
                    if resp2 {
                        let hello: redis::RedisResult<redis::Value> =
                            redis::cmd("HELLO").arg(3).query_async(&mut conn).await;
                        let err = hello.expect_err("this redis-server must refuse HELLO");
                        assert!(err.to_string().contains("unknown command"), "{err}");
                    }
                    return (addr, running);
                }
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "redis-server did not start on port {port}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl Running {
    async fn stop(mut self) {
        match &mut self {
            Running::Herald { stop, task } => {
                if let Some(stop) = stop.take() {
                    let _ = stop.send(());
                }
                if let Some(task) = task.take() {
                    tokio::time::timeout(WAIT, task)
                        .await
                        .expect("herald did not stop")
                        .expect("herald panicked");
                }
            }
            Running::Redis(child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        match self {
            Running::Herald { stop, .. } => {
                if let Some(stop) = stop.take() {
                    let _ = stop.send(());
                }
            }
            Running::Redis(child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl Backend {
    pub async fn start(kind: Kind) -> Backend {
        let (addr, running) = match kind {
            Kind::Embedded => {
                return Backend {
                    kind,
                    herald: Herald::embedded(),
                    addr: None,
                    running: None,
                }
            }
            Kind::Herald => start_herald(0).await,
            Kind::Redis => start_redis(free_port(), false).await,
            Kind::RedisResp2 => start_redis(free_port(), true).await,
        };
        let herald = Herald::connect(&format!("redis://{addr}/"))
            .await
            .expect("connect");
        Backend {
            kind,
            herald,
            addr: Some(addr),
            running: Some(running),
        }
    }

    /// False where shard channels cannot be subscribed: the RESP2 fallback (the `redis`
    /// crate's RESP2 pub/sub has no SSUBSCRIBE).
    pub fn shard_channels(&self) -> bool {
        self.kind != Kind::RedisResp2
    }

    pub fn is_remote(&self) -> bool {
        self.kind != Kind::Embedded
    }

    pub fn url(&self) -> Option<String> {
        self.addr.map(|addr| format!("redis://{addr}/"))
    }

    pub fn port(&self) -> Option<u16> {
        self.addr.map(|addr| addr.port())
    }

    /// A plain `redis` crate connection to the server (remote back ends only).
    pub async fn admin(&self) -> redis::aio::MultiplexedConnection {
        let url = self.url().expect("a remote back end");
        redis::Client::open(url)
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    /// CLIENT KILL TYPE pubsub: cuts every subscriber's connection.
    pub async fn kill_subscriber_connections(&self) -> i64 {
        let mut admin = self.admin().await;
        redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("pubsub")
            .query_async(&mut admin)
            .await
            .unwrap()
    }

    /// Stops the server (its connections go with it).
    pub async fn stop_server(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
    }

    /// Starts the server again on the same port.
    pub async fn start_server_again(&mut self) {
        let port = self.port().expect("a remote back end");
        let deadline = tokio::time::Instant::now() + WAIT;
        // The old listener is closed; binding again may race its teardown briefly.
        let (_, running) = loop {
            let started = match self.kind {
                Kind::Herald => {
                    let config = ServerConfig {
                        port,
                        ..ServerConfig::default()
                    };
                    match Server::bind(&config).await {
                        Ok(server) => {
                            let addr = server.local_addrs()[0];
                            let (stop, stopped) = oneshot::channel();
                            let task = tokio::spawn(server.run(async {
                                let _ = stopped.await;
                            }));
                            Some((
                                addr,
                                Running::Herald {
                                    stop: Some(stop),
                                    task: Some(task),
                                },
                            ))
                        }
                        Err(_) => None,
                    }
                }
                Kind::Redis => Some(start_redis(port, false).await),
                Kind::RedisResp2 => Some(start_redis(port, true).await),
                Kind::Embedded => unreachable!("embedded has no server"),
            };
            if let Some(started) = started {
                break started;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "cannot bind port {port} again"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        self.running = Some(running);
    }
}

/// Receives from `rx` within [`WAIT`].
pub async fn recv<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("timed out waiting")
        .expect("channel closed")
}

/// Asserts nothing arrives on `rx` for a short while.
pub async fn expect_nothing<T: std::fmt::Debug>(rx: &mut mpsc::UnboundedReceiver<T>) {
    if let Ok(Some(got)) = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await {
        panic!("expected nothing, got {got:?}");
    }
}

/// A sender usable from many handlers, and its receiver.
pub fn collector<T>() -> (Arc<mpsc::UnboundedSender<T>>, mpsc::UnboundedReceiver<T>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (Arc::new(tx), rx)
}

/// Asserts that a shard subscription on the RESP2 fallback failed, clearly.
pub fn assert_shard_refused(result: Result<herald_client::HandlerId, herald_client::Error>) {
    let err = result.expect_err("SSUBSCRIBE over RESP2 must fail");
    assert!(
        err.to_string().contains("shard channels need RESP3"),
        "{err}"
    );
}

/// One `#[tokio::test]` per back end for each listed async fn taking a [`Backend`].
#[macro_export]
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod herald_server {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let backend = $crate::common::Backend::start($crate::common::Kind::Herald).await;
                    tokio::time::timeout($crate::common::TEST_TIMEOUT, super::$name(backend))
                        .await
                        .expect("test timed out");
                }
            )*
        }
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let backend = $crate::common::Backend::start($crate::common::Kind::Embedded).await;
                    tokio::time::timeout($crate::common::TEST_TIMEOUT, super::$name(backend))
                        .await
                        .expect("test timed out");
                }
            )*
        }
        mod redis_server {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let backend = $crate::common::Backend::start($crate::common::Kind::Redis).await;
                    tokio::time::timeout($crate::common::TEST_TIMEOUT, super::$name(backend))
                        .await
                        .expect("test timed out");
                }
            )*
        }
        mod redis_resp2 {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let backend = $crate::common::Backend::start($crate::common::Kind::RedisResp2).await;
                    tokio::time::timeout($crate::common::TEST_TIMEOUT, super::$name(backend))
                        .await
                        .expect("test timed out");
                }
            )*
        }
    };
}

/// CLIENT KILL TYPE normal, then TYPE pubsub, both SKIPME yes: cuts every connection but
/// `admin`'s. Returns how many of each kind were killed.
pub async fn kill_other_clients(admin: &mut redis::aio::MultiplexedConnection) -> [i64; 2] {
    let mut killed = [0; 2];
    for (count, kind) in killed.iter_mut().zip(["normal", "pubsub"]) {
        *count = redis::cmd("CLIENT")
            .arg(&["KILL", "TYPE", kind, "SKIPME", "yes"])
            .query_async(admin)
            .await
            .unwrap();
    }
    killed
}

/// A reconnect backoff short enough for tests: 20 ms doubling up to 200 ms.
pub fn quick_backoff() -> herald_client::Backoff {
    herald_client::Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
        factor: 2.0,
    }
}

/// Waits (at most [`WAIT`]) for the first connection event `matches` accepts, skipping
/// others.
pub async fn wait_event(
    events: &mut tokio::sync::broadcast::Receiver<herald_client::ConnectionEvent>,
    what: &str,
    matches: impl Fn(&herald_client::ConnectionEvent) -> bool,
) -> herald_client::ConnectionEvent {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let event = tokio::time::timeout(left, events.recv())
            .await
            .unwrap_or_else(|_| panic!("no {what} event in time"))
            .expect("event channel");
        if matches(&event) {
            return event;
        }
    }
}
