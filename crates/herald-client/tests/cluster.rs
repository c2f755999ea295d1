//! `redis+cluster://` URLs against a real three-node Redis Cluster started here (Herald
//! has no cluster protocol and embedded mode no network, so this suite is Redis-only):
//! pub/sub through channels, patterns and shard channels on several nodes, the event
//! bus, notifications with mark_as_read, reconnects after CLIENT KILL on every node, and
//! the publish counts a cluster gives (the receiving node's for PUBLISH, exact for SPUBLISH),
//! and a password rotated on every node while the client runs (`password_from`).

#![cfg(feature = "cluster")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::TcpListener as StdListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::{collector, kill_other_clients, quick_backoff, recv, TEST_TIMEOUT, WAIT};
use herald_client::{ConnectionEvent, Event, Herald, Message, NotificationKind, Subscriber};

const NODES: usize = 3;
const SLOTS: u16 = 16384;

struct Cluster {
    ports: Vec<u16>,
    children: Vec<Child>,
    dir: PathBuf,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_ports(count: usize) -> Vec<u16> {
    // Hold them all at once so that no two are the same.
    let listeners: Vec<StdListener> = (0..count)
        .map(|_| StdListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|listener| listener.local_addr().unwrap().port())
        .collect()
}

async fn node(port: u16) -> redis::aio::MultiplexedConnection {
    redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn start_cluster() -> Cluster {
    let ports = free_ports(NODES * 2);
    let (ports, bus_ports) = ports.split_at(NODES);
    let dir = std::env::temp_dir().join(format!(
        "herald-client-cluster-{}-{}",
        std::process::id(),
        ports[0]
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cluster = Cluster {
        ports: ports.to_vec(),
        children: Vec::new(),
        dir: dir.clone(),
    };
    for (port, bus_port) in ports.iter().zip(bus_ports) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--cluster-port",
                &bus_port.to_string(),
            ])
            .args(["--bind", "127.0.0.1", "--cluster-enabled", "yes"])
            .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server");
        cluster.children.push(child);
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    for &port in ports {
        loop {
            let up = match redis::Client::open(format!("redis://127.0.0.1:{port}/")) {
                Ok(client) => client.get_multiplexed_async_connection().await.is_ok(),
                Err(_) => false,
            };
            if up {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "node {port} did not start"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // Slots split in three, then everyone meets the first node.
    let per_node = SLOTS / NODES as u16;
    for (index, &port) in ports.iter().enumerate() {
        let first = per_node * index as u16;
        let last = if index == NODES - 1 {
            SLOTS - 1
        } else {
            first + per_node - 1
        };
        let () = redis::cmd("CLUSTER")
            .arg("ADDSLOTSRANGE")
            .arg(first)
            .arg(last)
            .query_async(&mut node(port).await)
            .await
            .unwrap();
        if index > 0 {
            let () = redis::cmd("CLUSTER")
                .arg("MEET")
                .arg("127.0.0.1")
                .arg(port)
                .arg(bus_ports[index])
                .query_async(&mut node(ports[0]).await)
                .await
                .unwrap();
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    'wait: loop {
        let mut all_ok = true;
        for &port in ports {
            let info: String = redis::cmd("CLUSTER")
                .arg("INFO")
                .query_async(&mut node(port).await)
                .await
                .unwrap();
            // Converged is not enough: a PUBLISH reaches the other nodes over the
            // cluster bus links, and one still being set up drops the message.
            let nodes: String = redis::cmd("CLUSTER")
                .arg("NODES")
                .query_async(&mut node(port).await)
                .await
                .unwrap();
            let linked = nodes
                .lines()
                .filter(|line| !line.contains("myself"))
                .all(|line| line.split(' ').nth(7) == Some("connected"));
            if !info.contains("cluster_state:ok")
                || !info.contains(&format!("cluster_known_nodes:{NODES}"))
                || !linked
            {
                all_ok = false;
            }
        }
        if all_ok {
            break 'wait;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the cluster did not converge"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cluster
}

impl Cluster {
    fn url(&self) -> String {
        let hosts: Vec<String> = self
            .ports
            .iter()
            .map(|port| format!("127.0.0.1:{port}"))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    /// The node that owns `key`'s slot.
    async fn owner(&self, key: &str) -> u16 {
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query_async(&mut node(self.ports[0]).await)
            .await
            .unwrap();
        let per_node = SLOTS / NODES as u16;
        self.ports[usize::from(slot / per_node).min(NODES - 1)]
    }
}

async fn expect(expected: Vec<String>, got: &mut tokio::sync::mpsc::UnboundedReceiver<String>) {
    let mut seen = Vec::new();
    let label = expected[0].split('=').nth(1).unwrap().to_owned();
    while seen.len() < expected.len() {
        let item = recv(got).await;
        if item.ends_with(&format!("={label}")) {
            seen.push(item);
        }
    }
    seen.sort();
    assert_eq!(seen, expected);
}

async fn cluster_flow() {
    let cluster = start_cluster().await;
    let herald = Herald::connect(&cluster.url()).await.unwrap();
    let subscriber = Subscriber::builder(&herald)
        .backoff(quick_backoff())
        .build()
        .unwrap();
    let mut events = subscriber.events();
    let (tx, mut got) = collector::<String>();
    let handler = |tx: &Arc<tokio::sync::mpsc::UnboundedSender<String>>| {
        let tx = Arc::clone(tx);
        move |msg: Message| {
            let tx = Arc::clone(&tx);
            async move {
                tx.send(format!("{}={}", msg.channel, msg.payload_str().unwrap()))
                    .unwrap();
            }
        }
    };
    subscriber.subscribe("c:news", handler(&tx)).await.unwrap();
    subscriber
        .psubscribe("c:news.*", handler(&tx))
        .await
        .unwrap();
    // Shard channels owned by different nodes.
    let mut shard_channels: Vec<String> = Vec::new();
    let mut owners = Vec::new();
    for n in 0..200 {
        let name = format!("s:{n}");
        let owner = cluster.owner(&name).await;
        if !owners.contains(&owner) {
            owners.push(owner);
            shard_channels.push(name);
        }
        if owners.len() == NODES {
            break;
        }
    }
    assert_eq!(shard_channels.len(), NODES);
    for name in &shard_channels {
        subscriber.ssubscribe(name, handler(&tx)).await.unwrap();
    }

    let round = |label: &'static str| {
        let herald = herald.clone();
        let shard_channels = shard_channels.clone();
        async move {
            let publisher = herald.publisher();
            let deadline = tokio::time::Instant::now() + WAIT;
            let mut expected = vec![format!("c:news={label}"), format!("c:news.eu={label}")];
            // Classic messages travel the cluster bus; the count is the local node's.
            loop {
                match publisher.publish("c:news", label).await {
                    Ok(_) => break,
                    Err(err)
                        if err.is_connection_error() && tokio::time::Instant::now() < deadline =>
                    {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Err(err) => panic!("publish: {err}"),
                }
            }
            publisher.publish("c:news.eu", label).await.unwrap();
            for name in &shard_channels {
                assert_eq!(publisher.spublish(name, label).await.unwrap(), 1, "{name}");
                expected.push(format!("{name}={label}"));
            }
            expected.sort();
            expected
        }
    };
    let expected = round("one").await;
    expect(expected, &mut got).await;
    let publisher = herald.publisher();
    assert_eq!(publisher.subscriber_count("c:news").await.unwrap(), 1);
    assert_eq!(publisher.pattern_count().await.unwrap(), 1);
    assert_eq!(
        publisher.active_channels(Some("c:*")).await.unwrap(),
        ["c:news"]
    );

    // Every node cuts its pub/sub clients; the subscriber comes back on all of them.
    for &port in &cluster.ports {
        let _: i64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("pubsub")
            .query_async(&mut node(port).await)
            .await
            .unwrap();
    }
    // The kills reach the nodes one after the other, so a reconnect made after the first
    // may be cut by the next: wait until the last event is a resubscription and nothing
    // follows it for a while.
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut settled = false;
    while !settled {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no resubscription after CLIENT KILL"
        );
        if let Ok(event) = tokio::time::timeout(Duration::from_millis(500), events.recv()).await {
            let event = event.unwrap();
            println!("cluster: {event:?}");
            if matches!(event, ConnectionEvent::Resubscribed { .. }) {
                // Settled only if nothing else comes within the next timeout.
                match tokio::time::timeout(Duration::from_millis(500), events.recv()).await {
                    Err(_) => settled = true,
                    Ok(event) => println!("cluster: {:?}", event.unwrap()),
                }
            }
        }
    }
    // The crate's cluster connection may also resubscribe by itself; either way:
    let expected = round("two").await;
    expect(expected, &mut got).await;

    // The event bus and notifications (WATCH/MULTI/EXEC on the key's node).
    let bus = herald.event_bus();
    let (event_tx, mut events_seen) = collector::<String>();
    bus.on_pattern("c.*", move |event: Event| {
        let event_tx = Arc::clone(&event_tx);
        async move { event_tx.send(event.event_type).unwrap() }
    })
    .await
    .unwrap();
    bus.emit("c.created", &1).await.unwrap();
    assert_eq!(recv(&mut events_seen).await, "c.created");
    let notifications = herald.notifications();
    let first = notifications
        .send_to_user("9", NotificationKind::Info, "a", "b", None)
        .await
        .unwrap();
    notifications
        .send_to_user("9", NotificationKind::Error, "c", "d", None)
        .await
        .unwrap();
    assert!(notifications.mark_as_read("9", first.id).await.unwrap());
    assert_eq!(notifications.unread_count("9").await.unwrap(), 1);
    let history = notifications.recent("9", 10).await.unwrap();
    assert_eq!(
        history
            .iter()
            .map(|n| (n.title.as_str(), n.read))
            .collect::<Vec<_>>(),
        [("c", false), ("a", true)]
    );
    bus.stop().await;
    subscriber.stop().await;
    drop(cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_cluster_works_through_a_cluster_url() {
    tokio::time::timeout(TEST_TIMEOUT, cluster_flow())
        .await
        .expect("test timed out");
}

/// What `Publisher::publish` documents for a cluster: the count is the receiving node's
/// (the primary of the channel's slot), though subscribers on every node get the message;
/// `subscriber_count` sums the nodes; SPUBLISH counts are exact.
async fn publish_counts() {
    let cluster = start_cluster().await;
    let herald = Herald::connect(&cluster.url()).await.unwrap();
    let publisher = herald.publisher();
    const CHANNEL: &str = "count:news";
    // One plain RESP2 subscriber on each node, whichever owns the slot.
    let mut subscribers = Vec::new();
    for &port in &cluster.ports {
        let mut pubsub = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
            .unwrap()
            .get_async_pubsub()
            .await
            .unwrap();
        pubsub.subscribe(CHANNEL).await.unwrap();
        subscribers.push(pubsub);
    }
    assert_eq!(publisher.subscriber_count(CHANNEL).await.unwrap(), NODES);
    assert_eq!(
        publisher.active_channels(Some("count:*")).await.unwrap(),
        [CHANNEL]
    );
    assert_eq!(publisher.publish(CHANNEL, "hello").await.unwrap(), 1);
    for (pubsub, port) in subscribers.iter_mut().zip(&cluster.ports) {
        use futures_util::StreamExt;
        let msg = tokio::time::timeout(WAIT, pubsub.on_message().next())
            .await
            .unwrap_or_else(|_| panic!("the subscriber on node {port} got nothing"))
            .unwrap();
        assert_eq!(msg.get_payload::<String>().unwrap(), "hello", "node {port}");
    }
    // A shard channel's subscribers are all on its slot's node: the count is exact.
    let subscriber = herald.subscriber().unwrap();
    for _ in 0..2 {
        subscriber
            .ssubscribe("count:shard", |_: Message| async {})
            .await
            .unwrap();
    }
    let other = herald.subscriber().unwrap();
    other
        .ssubscribe("count:shard", |_: Message| async {})
        .await
        .unwrap();
    assert_eq!(publisher.spublish("count:shard", "x").await.unwrap(), 2);
    subscriber.stop().await;
    other.stop().await;
    drop(cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_publish_counts_the_receiving_node_only() {
    tokio::time::timeout(TEST_TIMEOUT, publish_counts())
        .await
        .expect("test timed out");
}

#[tokio::test]
async fn malformed_cluster_urls_are_refused() {
    for url in [
        "redis+cluster://",
        "redis+cluster://127.0.0.1:1/0",
        "redis+cluster://,",
    ] {
        let err = Herald::connect(url).await.unwrap_err();
        assert!(
            matches!(err, herald_client::Error::InvalidUrl(_)),
            "{url}: {err}"
        );
    }
    let err = Herald::connect("nonsense://x").await.unwrap_err();
    assert!(matches!(err, herald_client::Error::InvalidUrl(_)), "{err}");
}

async fn authenticated_node(port: u16, password: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(format!("redis://:{password}@127.0.0.1:{port}/"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// `ConnectOptions::password_from` on a cluster: every node connection, the command
/// side's and the subscriber's, asks for the password when it (re)connects.
async fn rotated_password() {
    let cluster = start_cluster().await;
    let set_password = |old: &'static str, new: &'static str| {
        let ports = cluster.ports.clone();
        async move {
            for port in ports {
                let mut conn = authenticated_node(port, old).await;
                let () = redis::cmd("CONFIG")
                    .arg(&["SET", "requirepass", new])
                    .query_async(&mut conn)
                    .await
                    .unwrap();
            }
        }
    };
    set_password("", "first").await;
    let secret = Arc::new(parking_lot::Mutex::new(Some("first".to_owned())));
    let options = herald_client::ConnectOptions::default().password_from({
        let secret = Arc::clone(&secret);
        move || secret.lock().clone()
    });
    let herald = Herald::connect_with(&cluster.url(), &options)
        .await
        .unwrap();
    let subscriber = Subscriber::builder(&herald)
        .backoff(quick_backoff())
        .build()
        .unwrap();
    let mut events = subscriber.events();
    let (tx, mut got) = collector::<String>();
    subscriber
        .ssubscribe("pw:shard", move |msg: Message| {
            let tx = Arc::clone(&tx);
            async move { tx.send(msg.payload_str().unwrap().to_owned()).unwrap() }
        })
        .await
        .unwrap();
    let publisher = herald.publisher();
    assert_eq!(publisher.spublish("pw:shard", "before").await.unwrap(), 1);
    assert_eq!(recv(&mut got).await, "before");

    set_password("first", "second").await;
    *secret.lock() = Some("second".to_owned());
    for &port in &cluster.ports {
        // A node may hold none of the client's connections of one kind or the other.
        kill_other_clients(&mut authenticated_node(port, "second").await).await;
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        // The resubscription may land after the first publish that gets through.
        let receivers = publisher.spublish("pw:shard", "after").await;
        if receivers.as_ref().is_ok_and(|count| *count == 1) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no publish reached the resubscribed subscriber: {receivers:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    loop {
        if recv(&mut got).await == "after" {
            break;
        }
    }
    assert!(
        std::iter::from_fn(|| events.try_recv().ok())
            .any(|event| matches!(event, ConnectionEvent::Resubscribed { .. })),
        "the subscriber never resubscribed"
    );
    subscriber.stop().await;
    drop(cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_client_uses_the_password_of_the_moment_on_reconnect() {
    tokio::time::timeout(TEST_TIMEOUT, rotated_password())
        .await
        .expect("test timed out");
}
