//! The worker scenario of the streams issue: three consumers in one group process 10 000
//! jobs; one is killed mid-way holding unacknowledged jobs; the survivors take them over
//! with XAUTOCLAIM; in the end every job is acknowledged exactly once. Driven with the
//! `redis` crate, each worker on its own connection, the whole run bounded in time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::TestServer;
use redis::aio::MultiplexedConnection;
use redis::Value;

const JOBS: usize = 10_000;
const BATCH: usize = 50;
/// Pending jobs idle this long belong to a dead worker.
const CLAIM_IDLE_MS: u64 = 1_000;

/// The IDs of an XREADGROUP reply (either protocol) or of XAUTOCLAIM's claimed list.
fn entry_ids(entries: Value) -> Vec<String> {
    let entries: Vec<(String, Value)> = redis::from_redis_value(entries).unwrap();
    entries.into_iter().map(|(id, _)| id).collect()
}

fn read_ids(reply: Value) -> Vec<String> {
    match reply {
        Value::Nil => Vec::new(),
        Value::Map(mut keys) => entry_ids(keys.remove(0).1),
        Value::Array(mut keys) => match keys.remove(0) {
            Value::Array(mut pair) => entry_ids(pair.remove(1)),
            other => panic!("{other:?}"),
        },
        other => panic!("unexpected XREADGROUP reply {other:?}"),
    }
}

struct Ledger {
    acked: Mutex<HashSet<String>>,
    acks: AtomicUsize,
    /// Jobs taken over from the dead worker.
    claimed: AtomicUsize,
}

async fn ack(conn: &mut MultiplexedConnection, ledger: &Ledger, ids: &[String]) {
    if ids.is_empty() {
        return;
    }
    let acked: usize = redis::cmd("XACK")
        .arg("jobs")
        .arg("workers")
        .arg(ids)
        .query_async(conn)
        .await
        .unwrap();
    // Only this worker holds these IDs: each must be acknowledged here, for the first time.
    assert_eq!(acked, ids.len(), "a job was acknowledged twice or lost");
    let mut seen = ledger.acked.lock().unwrap();
    for id in ids {
        assert!(seen.insert(id.clone()), "{id} acknowledged twice");
    }
    ledger.acks.fetch_add(acked, Ordering::Relaxed);
}

async fn worker(mut conn: MultiplexedConnection, name: &'static str, ledger: Arc<Ledger>) {
    let mut claim_from = "0-0".to_owned();
    while ledger.acks.load(Ordering::Relaxed) < JOBS {
        let reply: Value = redis::cmd("XREADGROUP")
            .arg(&["GROUP", "workers", name, "COUNT"])
            .arg(BATCH)
            .arg(&["BLOCK", "50", "STREAMS", "jobs", ">"])
            .query_async(&mut conn)
            .await
            .unwrap();
        let ids = read_ids(reply);
        ack(&mut conn, &ledger, &ids).await;
        if ids.is_empty() {
            // Nothing new: look for jobs a dead worker left behind.
            let (next, claimed, _deleted): (String, Value, Value) = redis::cmd("XAUTOCLAIM")
                .arg(&["jobs", "workers", name])
                .arg(CLAIM_IDLE_MS)
                .arg(&claim_from)
                .arg(&["COUNT", "100"])
                .query_async(&mut conn)
                .await
                .unwrap();
            claim_from = next;
            let ids = entry_ids(claimed);
            ledger.claimed.fetch_add(ids.len(), Ordering::Relaxed);
            ack(&mut conn, &ledger, &ids).await;
        }
    }
}

async fn run(resp3: bool) {
    let server = TestServer::start().await;
    let mut producer = server.connection(resp3).await;
    let _: () = redis::cmd("XGROUP")
        .arg(&["CREATE", "jobs", "workers", "$", "MKSTREAM"])
        .query_async(&mut producer)
        .await
        .unwrap();
    let ledger = Arc::new(Ledger {
        acked: Mutex::new(HashSet::new()),
        acks: AtomicUsize::new(0),
        claimed: AtomicUsize::new(0),
    });

    // The doomed worker takes two batches and dies without acknowledging them.
    let mut doomed = server.connection(resp3).await;
    let survivors = [
        tokio::spawn(worker(
            server.connection(resp3).await,
            "w1",
            Arc::clone(&ledger),
        )),
        tokio::spawn(worker(
            server.connection(resp3).await,
            "w2",
            Arc::clone(&ledger),
        )),
    ];
    let mut all = Vec::with_capacity(JOBS);
    let mut doomed_held = 0;
    for chunk in 0..JOBS / 500 {
        let mut pipe = redis::pipe();
        for job in 0..500 {
            pipe.cmd("XADD")
                .arg(&["jobs", "*", "job"])
                .arg(chunk * 500 + job);
        }
        let ids: Vec<String> = pipe.query_async(&mut producer).await.unwrap();
        all.extend(ids);
        if chunk == 4 {
            let mut held = Vec::new();
            for _ in 0..2 {
                let reply: Value = redis::cmd("XREADGROUP")
                    .arg(&["GROUP", "workers", "doomed", "COUNT"])
                    .arg(BATCH)
                    .arg(&["STREAMS", "jobs", ">"])
                    .query_async(&mut doomed)
                    .await
                    .unwrap();
                held.extend(read_ids(reply));
            }
            assert!(!held.is_empty(), "the doomed worker got jobs before dying");
            doomed_held = held.len();
            drop(doomed);
            doomed = server.connection(resp3).await;
        }
    }
    drop(doomed);

    for survivor in survivors {
        tokio::time::timeout(Duration::from_secs(60), survivor)
            .await
            .expect("workers finished in time")
            .unwrap();
    }
    assert_eq!(ledger.acks.load(Ordering::Relaxed), JOBS);
    assert_eq!(
        ledger.claimed.load(Ordering::Relaxed),
        doomed_held,
        "the survivors claimed exactly what the dead worker held"
    );
    {
        let acked = ledger.acked.lock().unwrap();
        assert_eq!(acked.len(), JOBS);
        assert!(
            all.iter().all(|id| acked.contains(id)),
            "every job acknowledged"
        );
    }
    let pending: (i64, Value, Value, Value) = redis::cmd("XPENDING")
        .arg(&["jobs", "workers"])
        .query_async(&mut producer)
        .await
        .unwrap();
    assert_eq!(pending.0, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_one_killed_every_job_acked_once_resp2() {
    run(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_one_killed_every_job_acked_once_resp3() {
    run(true).await;
}
