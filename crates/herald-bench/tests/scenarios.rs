//! Every scenario at a tiny size against an in-process Herald on an ephemeral port, and
//! `--compare` against a real `redis-server` when one is installed.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use herald_bench::report::BenchResult;
use herald_bench::{BenchArgs, BenchError};
use herald_server::{Server, ServerConfig};
use tokio::sync::oneshot;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    bench: BenchArgs,
}

fn args(line: &[&str]) -> BenchArgs {
    let mut argv = vec!["bench"];
    argv.extend_from_slice(line);
    Cli::try_parse_from(argv).expect("arguments parse").bench
}

/// An in-process Herald; stops when dropped.
struct Herald {
    addr: String,
    _stop: oneshot::Sender<()>,
}

async fn herald() -> Herald {
    let config = ServerConfig {
        port: 0,
        ..ServerConfig::default()
    };
    let server = Server::bind(&config).await.expect("bind");
    let addr = server.local_addrs()[0].to_string();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    Herald { addr, _stop: stop }
}

async fn run(line: &[&str]) -> Vec<BenchResult> {
    tokio::time::timeout(Duration::from_secs(60), herald_bench::run(&args(line)))
        .await
        .expect("bench finished in time")
        .expect("bench succeeded")
}

fn assert_clean(r: &BenchResult, expected: u64) {
    assert_eq!(r.expected_deliveries, expected, "{r:?}");
    assert_eq!(r.deliveries, expected, "{r:?}");
    assert_eq!(
        (r.lost, r.reordered, r.foreign, r.receiver_mismatches),
        (0, 0, 0, 0),
        "{r:?}"
    );
    assert!(r.is_clean());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_delivers_every_message_in_order() {
    let server = herald().await;
    let results = run(&[
        "fanout",
        "--addr",
        &server.addr,
        "--publishers",
        "3",
        "--subscribers",
        "4",
        "--messages",
        "500",
        "--pipeline",
        "8",
        "--payload",
        "10",
    ])
    .await;
    assert_eq!(results.len(), 1);
    let r = &results[0];
    assert_eq!(r.published, 1500);
    assert_eq!(
        r.meta.payload_bytes, 20,
        "payload never shorter than its header"
    );
    assert_clean(r, 1500 * 4);
    assert!(r.latency.max_us > 0.0 && r.latency.p50_us <= r.latency.p99_us);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patterns_deliver_exactly_the_matching_messages() {
    let server = herald().await;
    let results = run(&[
        "patterns",
        "--addr",
        &server.addr,
        "--publishers",
        "2",
        "--subscribers",
        "3",
        "--patterns",
        "1500",
        "--leading-star-percent",
        "20",
        "--match-percent",
        "60",
        "--messages",
        "300",
        "--json",
    ])
    .await;
    let r = &results[0];
    assert_eq!(r.meta.patterns, 4500);
    assert_eq!(r.published, 600);
    // about 60% of 600 match one pattern each; the exact count is the plan's
    assert!((250..450).contains(&r.expected_deliveries), "{r:?}");
    assert_clean(r, r.expected_deliveries);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_runs_open_loop_at_the_rate() {
    let server = herald().await;
    let t0 = Instant::now();
    let results = run(&[
        "latency",
        "--addr",
        &server.addr,
        "--rate",
        "2000",
        "--duration",
        "0.5",
        "--subscribers",
        "3",
        "--publishers",
        "2",
    ])
    .await;
    let r = &results[0];
    assert_eq!(r.published, 1000);
    assert_clean(r, 3000);
    assert!(
        t0.elapsed() >= Duration::from_millis(450),
        "the schedule was honoured"
    );
    assert!(
        r.published_per_sec > 1000.0 && r.published_per_sec < 2500.0,
        "{r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_deliver_to_each_channels_subscribers() {
    let server = herald().await;
    let results = run(&[
        "channels",
        "--addr",
        &server.addr,
        "--channels",
        "30",
        "--channels-per-subscriber",
        "7",
        "--subscribers",
        "6",
        "--publishers",
        "2",
        "--messages",
        "400",
    ])
    .await;
    let r = &results[0];
    assert_eq!(r.published, 800);
    // 6 subscribers × 7 of 30 channels: on average 1.4 receivers per message
    assert!(
        r.expected_deliveries > 500 && r.expected_deliveries < 2000,
        "{r:?}"
    );
    assert_clean(r, r.expected_deliveries);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_reports_rss_per_connection() {
    let server = herald().await;
    // The server runs in this process, so our own PID is the server's.
    let pid = std::process::id().to_string();
    let results = run(&[
        "connections",
        "--addr",
        &server.addr,
        "--subscribers",
        "300",
        "--messages",
        "3",
        "--server-pid",
        &pid,
    ])
    .await;
    let r = &results[0];
    assert_clean(r, 900);
    assert!(r.rss_bytes_per_connection.is_some(), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_server_fails_fast() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let err = herald_bench::run(&args(&["fanout", "--addr", &addr, "--timeout-secs", "2"]))
        .await
        .unwrap_err();
    assert!(matches!(err, BenchError::Connect { .. }), "{err}");
}

#[test]
fn compare_needs_at_least_three_rounds() {
    let argv = [
        "bench",
        "fanout",
        "--compare",
        "127.0.0.1:1",
        "--rounds",
        "2",
    ];
    assert!(Cli::try_parse_from(argv).is_err());
}

/// A `redis-server` child on a free loopback port; killed when dropped.
struct Redis {
    child: Child,
    addr: String,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn redis() -> Option<Redis> {
    let bin = "/usr/bin/redis-server";
    if !std::path::Path::new(bin).exists() {
        eprintln!("skipping: no {bin}");
        return None;
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(bin)
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start redis-server");
    let redis = Redis {
        child,
        addr: format!("127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(&redis.addr).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(redis)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_interleaves_herald_and_redis() {
    let Some(redis) = redis() else { return };
    let server = herald().await;
    let common = [
        "--addr",
        &server.addr,
        "--compare",
        &redis.addr,
        "--messages",
        "200",
    ];
    let fanout = ["fanout", "--subscribers", "3"];
    let patterns = ["patterns", "--subscribers", "2", "--patterns", "100"];
    for scenario in [&fanout[..], &patterns[..]] {
        let line: Vec<&str> = scenario.iter().chain(common.iter()).copied().collect();
        let results = run(&line).await;
        assert_eq!(results.len(), 6, "3 rounds × 2 servers");
        for (i, r) in results.iter().enumerate() {
            let want = if i % 2 == 0 {
                &server.addr
            } else {
                &redis.addr
            };
            assert_eq!(&r.meta.server, want, "interleaved A B A B");
            assert_eq!(r.round as usize, i / 2 + 1);
            assert_clean(r, r.expected_deliveries);
        }
    }
}
