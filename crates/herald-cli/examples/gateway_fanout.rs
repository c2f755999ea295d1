//! Load check of the gateway: one publisher fans out to N WebSocket subscribers of one
//! channel, beside the same fan-out to N RESP subscribers on Herald and, when given, on a
//! redis-server measured in the same run. Reports deliveries/s and delivery latency
//! (p50/p99, publisher send to subscriber receipt).
//!
//! ```text
//! cargo run --release -p herald-cli --example gateway_fanout -- \
//!     --resp 127.0.0.1:6379 --http 127.0.0.1:8080 --redis 127.0.0.1:6390 \
//!     --subscribers 200 --messages 2000 --rounds 3
//! ```
//! Run the servers without auth (anonymous gateway on loopback). Rounds alternate the
//! targets so drift in machine load spreads over all of them; the median round is shown.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

#[derive(Clone, Debug)]
struct Options {
    resp: String,
    http: String,
    redis: Option<String>,
    subscribers: usize,
    messages: u64,
    payload: usize,
    rounds: usize,
}

fn options() -> Options {
    let mut options = Options {
        resp: "127.0.0.1:6379".into(),
        http: "127.0.0.1:8080".into(),
        redis: None,
        subscribers: 100,
        messages: 2000,
        payload: 64,
        rounds: 3,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| panic!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--resp" => options.resp = value(),
            "--http" => options.http = value(),
            "--redis" => options.redis = Some(value()),
            "--subscribers" => options.subscribers = value().parse().expect("--subscribers N"),
            "--messages" => options.messages = value().parse().expect("--messages N"),
            "--payload" => options.payload = value().parse().expect("--payload BYTES"),
            "--rounds" => options.rounds = value().parse().expect("--rounds N"),
            other => panic!("unknown flag {other}"),
        }
    }
    assert!(options.payload >= 40, "--payload must be at least 40 bytes");
    options
}

fn micros_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// Payload: the send time in microseconds, padded to the requested size.
fn payload(size: usize) -> Vec<u8> {
    let mut text = format!("t{} ", micros_now()).into_bytes();
    text.resize(size, b'x');
    text
}

fn sent_at(payload: &[u8]) -> u64 {
    let text = std::str::from_utf8(payload).unwrap();
    text[1..].split(' ').next().unwrap().parse().unwrap()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    HeraldWs,
    HeraldResp,
    RedisResp,
}

struct Outcome {
    deliveries_per_sec: f64,
    p50_us: u64,
    p99_us: u64,
}

/// Each subscriber sends one latency sample per message received, then ends.
async fn run(options: &Options, target: Target, channel: &str) -> Outcome {
    let (samples, mut received) = mpsc::unbounded_channel::<u64>();
    let (ready_tx, mut ready) = mpsc::unbounded_channel::<()>();
    let mut tasks = Vec::new();
    for _ in 0..options.subscribers {
        let samples = samples.clone();
        let ready_tx = ready_tx.clone();
        let messages = options.messages;
        let channel = channel.to_owned();
        match target {
            Target::HeraldWs => {
                let url = format!("ws://{}/ws", options.http);
                tasks.push(tokio::spawn(async move {
                    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
                    let subscribe = serde_json::json!({"type": "subscribe", "channels": [channel]});
                    ws.send(Message::Text(subscribe.to_string().into()))
                        .await
                        .unwrap();
                    ws.next().await.unwrap().unwrap();
                    ready_tx.send(()).unwrap();
                    let mut got = 0;
                    while got < messages {
                        let Message::Text(text) = ws.next().await.unwrap().unwrap() else {
                            continue;
                        };
                        let now = micros_now();
                        let frame: serde_json::Value = serde_json::from_str(&text).unwrap();
                        let data = frame["data"].as_str().unwrap();
                        samples
                            .send(now.saturating_sub(sent_at(data.as_bytes())))
                            .unwrap();
                        got += 1;
                    }
                }));
            }
            Target::HeraldResp | Target::RedisResp => {
                let addr = if target == Target::HeraldResp {
                    options.resp.clone()
                } else {
                    options.redis.clone().unwrap()
                };
                tasks.push(tokio::spawn(async move {
                    let client = redis::Client::open(format!("redis://{addr}/")).unwrap();
                    let mut pubsub = client.get_async_pubsub().await.unwrap();
                    pubsub.subscribe(&channel).await.unwrap();
                    ready_tx.send(()).unwrap();
                    let mut stream = pubsub.on_message();
                    let mut got = 0;
                    while got < messages {
                        let message = stream.next().await.unwrap();
                        let now = micros_now();
                        samples
                            .send(now.saturating_sub(sent_at(message.get_payload_bytes())))
                            .unwrap();
                        got += 1;
                    }
                }));
            }
        }
    }
    drop(samples);
    drop(ready_tx);
    for _ in 0..options.subscribers {
        ready.recv().await.unwrap();
    }
    let publish_addr = match target {
        Target::RedisResp => options.redis.clone().unwrap(),
        _ => options.resp.clone(),
    };
    let client = redis::Client::open(format!("redis://{publish_addr}/")).unwrap();
    let mut publisher = client.get_multiplexed_async_connection().await.unwrap();
    let start = Instant::now();
    let size = options.payload;
    let batch = 16;
    let mut sent = 0;
    while sent < options.messages {
        let mut pipe = redis::pipe();
        for _ in 0..batch.min(options.messages - sent) {
            pipe.cmd("PUBLISH").arg(channel).arg(payload(size));
            sent += 1;
        }
        let receivers: Vec<i64> = pipe.query_async(&mut publisher).await.unwrap();
        assert!(
            receivers.iter().all(|&n| n == options.subscribers as i64),
            "{receivers:?}"
        );
    }
    let mut histogram = Histogram::<u64>::new(3).unwrap();
    let expected = options.messages * options.subscribers as u64;
    let mut count = 0;
    while count < expected {
        let sample = tokio::time::timeout(Duration::from_secs(60), received.recv())
            .await
            .expect("deliveries stalled")
            .expect("a subscriber ended early");
        histogram.record(sample.max(1)).unwrap();
        count += 1;
    }
    let elapsed = start.elapsed();
    for task in tasks {
        task.await.unwrap();
    }
    Outcome {
        deliveries_per_sec: expected as f64 / elapsed.as_secs_f64(),
        p50_us: histogram.value_at_quantile(0.50),
        p99_us: histogram.value_at_quantile(0.99),
    }
}

#[tokio::main]
async fn main() {
    let options = options();
    let mut targets = vec![Target::HeraldWs, Target::HeraldResp];
    if options.redis.is_some() {
        targets.push(Target::RedisResp);
    }
    let mut results: Vec<(Target, Vec<Outcome>)> =
        targets.iter().map(|&t| (t, Vec::new())).collect();
    for round in 0..options.rounds {
        for (target, outcomes) in &mut results {
            let channel = format!("gateway-fanout:{round}:{target:?}");
            outcomes.push(run(&options, *target, &channel).await);
        }
    }
    println!(
        "fan-out: 1 publisher -> {} subscribers, {} messages of {} bytes, median of {} rounds",
        options.subscribers, options.messages, options.payload, options.rounds
    );
    println!(
        "{:<20} {:>16} {:>10} {:>10}",
        "target", "deliveries/s", "p50 us", "p99 us"
    );
    let mut medians = Vec::new();
    for (target, outcomes) in &mut results {
        outcomes.sort_by(|a, b| a.deliveries_per_sec.total_cmp(&b.deliveries_per_sec));
        let median = &outcomes[outcomes.len() / 2];
        let name = match target {
            Target::HeraldWs => "herald websocket",
            Target::HeraldResp => "herald resp",
            Target::RedisResp => "redis-server resp",
        };
        println!(
            "{name:<20} {:>16.0} {:>10} {:>10}",
            median.deliveries_per_sec, median.p50_us, median.p99_us
        );
        medians.push((*target, median.deliveries_per_sec, median.p99_us));
    }
    if let Some(&(_, redis_rate, redis_p99)) =
        medians.iter().find(|(t, _, _)| *t == Target::RedisResp)
    {
        for (target, rate, p99) in &medians {
            if *target != Target::RedisResp {
                println!(
                    "{target:?} / redis-server: deliveries/s x{:.2}, p99 x{:.2}",
                    rate / redis_rate,
                    *p99 as f64 / redis_p99.max(1) as f64
                );
            }
        }
    }
}
