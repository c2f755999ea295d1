//! The subscriber's health check: a connection that stays open but stops answering (a
//! black-holing proxy between client and server, as a dead NAT entry or a frozen peer
//! would) is detected by its PING, reported, and replaced; handlers get what is published
//! afterwards. Remote back ends only: the embedded mode has no connection to go silent.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{collector, recv, Backend, Kind, TEST_TIMEOUT, WAIT};
use herald_client::{ConnectionEvent, Herald, Message, Subscriber};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Forwards TCP to a server; [`Proxy::black_hole_existing`] makes every connection
/// accepted so far stop forwarding without closing.
struct Proxy {
    addr: SocketAddr,
    frozen_below: Arc<AtomicU64>,
    next_id: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    id: u64,
    frozen_below: Arc<AtomicU64>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if id < frozen_below.load(Ordering::SeqCst) {
            // Swallow everything from now on, keeping the socket open.
            std::future::pending::<()>().await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

impl Proxy {
    async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let frozen_below = Arc::new(AtomicU64::new(0));
        let next_id = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn({
            let frozen_below = Arc::clone(&frozen_below);
            let next_id = Arc::clone(&next_id);
            async move {
                let mut pumps = tokio::task::JoinSet::new();
                while let Ok((client, _)) = listener.accept().await {
                    let id = next_id.fetch_add(1, Ordering::SeqCst);
                    let Ok(server) = TcpStream::connect(target).await else {
                        continue;
                    };
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    pumps.spawn(pump(
                        client_read,
                        server_write,
                        id,
                        Arc::clone(&frozen_below),
                    ));
                    pumps.spawn(pump(
                        server_read,
                        client_write,
                        id,
                        Arc::clone(&frozen_below),
                    ));
                }
            }
        });
        Proxy {
            addr,
            frozen_below,
            next_id,
            task,
        }
    }

    fn black_hole_existing(&self) {
        self.frozen_below
            .store(self.next_id.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

async fn silent_connection_is_replaced(kind: Kind) {
    let backend = Backend::start(kind).await;
    let target: SocketAddr = format!("127.0.0.1:{}", backend.port().unwrap())
        .parse()
        .unwrap();
    let proxy = Proxy::start(target).await;
    let through_proxy = Herald::connect(&format!("redis://{}/", proxy.addr))
        .await
        .unwrap();
    let subscriber = Subscriber::builder(&through_proxy)
        .health_check(Duration::from_millis(200))
        .build()
        .unwrap();
    let mut events = subscriber.events();
    let (tx, mut got) = collector::<String>();
    for (shard, name) in [(false, "hc:channel"), (true, "hc:shard")] {
        let tx = Arc::clone(&tx);
        let handler = move |msg: Message| {
            let tx = Arc::clone(&tx);
            async move {
                tx.send(format!("{}={}", msg.channel, msg.payload_str().unwrap()))
                    .unwrap()
            }
        };
        if shard && !backend.shard_channels() {
            // The RESP2 fallback has no shard channels: a pattern takes the second place.
            subscriber.psubscribe("hc:shard*", handler).await.unwrap();
        } else if shard {
            subscriber.ssubscribe(name, handler).await.unwrap();
        } else {
            subscriber.subscribe(name, handler).await.unwrap();
        }
    }
    // Publishing goes around the proxy.
    let publisher = backend.herald.publisher();
    publisher.publish("hc:channel", "before").await.unwrap();
    assert_eq!(recv(&mut got).await, "hc:channel=before");

    proxy.black_hole_existing();
    let deadline = tokio::time::Instant::now() + WAIT;
    let reason = loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, events.recv())
            .await
            .expect("no disconnection")
            .unwrap()
        {
            ConnectionEvent::Disconnected { reason } => break reason,
            _ => continue,
        }
    };
    assert!(reason.starts_with("PING"), "{reason}");
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let event = tokio::time::timeout(left, events.recv())
            .await
            .expect("no resubscription")
            .unwrap();
        let shards = usize::from(backend.shard_channels());
        if event
            == (ConnectionEvent::Resubscribed {
                channels: 1,
                patterns: 1 - shards,
                shard_channels: shards,
            })
        {
            break;
        }
    }
    // The server still counts the black-holed connection until it times it out itself.
    assert!(publisher.publish("hc:channel", "after").await.unwrap() >= 1);
    if backend.shard_channels() {
        assert!(publisher.spublish("hc:shard", "after").await.unwrap() >= 1);
    } else {
        assert!(publisher.publish("hc:shard", "after").await.unwrap() >= 1);
    }
    let mut seen = vec![recv(&mut got).await, recv(&mut got).await];
    seen.sort();
    assert_eq!(seen, ["hc:channel=after", "hc:shard=after"]);
    subscriber.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn herald_server_silent_connection_is_replaced() {
    tokio::time::timeout(TEST_TIMEOUT, silent_connection_is_replaced(Kind::Herald))
        .await
        .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_resp2_silent_connection_is_replaced() {
    tokio::time::timeout(
        TEST_TIMEOUT,
        silent_connection_is_replaced(Kind::RedisResp2),
    )
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_server_silent_connection_is_replaced() {
    tokio::time::timeout(TEST_TIMEOUT, silent_connection_is_replaced(Kind::Redis))
        .await
        .expect("test timed out");
}
