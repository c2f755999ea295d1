//! Interop: a Rust EventBus and a Python one (redis-py, `tests/compat/event_bus_peer.py`)
//! exchange events in both directions through a Herald server and through redis-server.
//! The embedded back end has no network for Python to reach, so it is not part of this
//! suite.
//!
//! Needs the Python venv that scripts/test builds (`HERALD_PYTHON`, default
//! `.venv/bin/python` in the workspace); scripts/test runs it with `--ignored`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;

use common::{collector, recv, Backend, Kind};
use herald_client::{Event, EventBus};
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python() -> PathBuf {
    let python = std::env::var_os("HERALD_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".venv/bin/python"));
    assert!(
        python.exists(),
        "{} not found: run scripts/test once (it builds the venv) or set HERALD_PYTHON",
        python.display()
    );
    python
}

#[derive(Debug, Deserialize)]
struct Pong {
    echo: serde_json::Value,
    seen_type: String,
}

async fn exchange(kind: Kind) {
    let backend = Backend::start(kind).await;
    let mut peer = Command::new(python())
        .arg(workspace().join("tests/compat/event_bus_peer.py"))
        .args(["--port", &backend.port().unwrap().to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the Python peer");
    let mut lines = BufReader::new(peer.stdout.take().unwrap()).lines();
    let bus = EventBus::new(&backend.herald);
    let (pong_tx, mut pongs) = collector::<Event<Pong>>();
    bus.on("python.pong", move |event: Event<Pong>| {
        let pong_tx = Arc::clone(&pong_tx);
        async move { pong_tx.send(event).unwrap() }
    })
    .await
    .unwrap();
    let (seen_tx, mut seen) = collector::<String>();
    bus.on_pattern("python.*", move |event: Event| {
        let seen_tx = Arc::clone(&seen_tx);
        async move { seen_tx.send(event.event_type).unwrap() }
    })
    .await
    .unwrap();

    let ready = tokio::time::timeout(common::WAIT, lines.next_line())
        .await
        .expect("the Python peer did not get ready")
        .unwrap();
    assert_eq!(ready.as_deref(), Some("READY"));

    let data = serde_json::json!({
        "n": 1,
        "text": "héllo ✓",
        "nested": {"list": [1, 2.5, null, true]},
    });
    // Python listens by channel and by pattern.
    assert_eq!(bus.emit("rust.ping", &data).await.unwrap(), 2);
    let pong = recv(&mut pongs).await;
    assert_eq!(pong.event_type, "python.pong");
    assert_eq!(pong.data.seen_type, "rust.ping");
    assert_eq!(pong.data.echo, data);
    let age = chrono::Utc::now() - pong.timestamp;
    assert!(age < chrono::Duration::minutes(5) && age > chrono::Duration::minutes(-5));
    assert_eq!(recv(&mut seen).await, "python.pong");

    bus.emit("rust.done", &serde_json::json!({})).await.unwrap();
    assert_eq!(recv(&mut seen).await, "python.bye");
    let status = tokio::time::timeout(common::WAIT, peer.wait())
        .await
        .expect("the Python peer did not exit")
        .unwrap();
    let mut output = Vec::new();
    while let Ok(Some(line)) = lines.next_line().await {
        println!("python: {line}");
        output.push(line);
    }
    assert!(status.success(), "the Python peer failed: {output:?}");
    let summary = output.last().unwrap();
    assert!(summary.ends_with(" 0 failed"), "{summary}");
    assert!(
        !summary.starts_with("event-bus-peer: 0 passed"),
        "{summary}"
    );
    bus.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the Python venv; scripts/test runs it"]
async fn rust_and_python_event_buses_talk_through_herald() {
    tokio::time::timeout(common::TEST_TIMEOUT, exchange(Kind::Herald))
        .await
        .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the Python venv; scripts/test runs it"]
async fn rust_and_python_event_buses_talk_through_redis() {
    tokio::time::timeout(common::TEST_TIMEOUT, exchange(Kind::Redis))
        .await
        .expect("test timed out");
}
