//! The append-only file end to end, in process: random writes survive a restart with the
//! same state, BGREWRITEAOF under load loses nothing and shrinks the file, a truncated
//! tail loads with the partial record dropped, damage in the middle refuses to start,
//! and a file that cannot be written turns writes into `-MISCONF`.
//!
//! The crash tests (kill -9 of a real process) are in `herald-cli/tests/crash.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::TestServer;
use herald_server::{Server, ServerConfig};
use herald_store::aof::FsyncPolicy;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use redis::aio::MultiplexedConnection;
use redis::Value;

fn aof_config(dir: &Path, fsync: &str) -> ServerConfig {
    ServerConfig {
        appendonly: true,
        dir: dir.to_owned(),
        appendfsync: fsync.to_owned(),
        ..ServerConfig::default()
    }
}

type State = BTreeMap<(usize, String), (String, String, i64)>;

/// Asserts two dumps are equal, naming only the keys that differ.
fn assert_same(got: &State, want: &State, context: &str) {
    let mut differences = Vec::new();
    for key in got.keys().chain(want.keys()) {
        if got.get(key) != want.get(key) && !differences.iter().any(|(k, _, _)| k == key) {
            differences.push((key.clone(), got.get(key), want.get(key)));
        }
    }
    assert!(differences.is_empty(), "{context}: {differences:#?}");
}

/// Starts a server on `config`'s file and asserts it holds `before`.
async fn assert_restarts_as(config: ServerConfig, before: &State, context: &str) {
    let restarted = TestServer::with_config(config).await;
    let mut conn = restarted.connection(false).await;
    assert_same(&dump(&mut conn).await, before, context);
    drop(conn);
    restarted.stop().await;
}

fn aof_path(dir: &Path) -> PathBuf {
    dir.join("appendonly.aof")
}

async fn run(conn: &mut MultiplexedConnection, words: &[&str]) -> redis::RedisResult<Value> {
    let mut command = redis::cmd(words[0]);
    for word in &words[1..] {
        command.arg(*word);
    }
    command.query_async(conn).await
}

/// Every key of every database: type, contents and absolute expiry.
async fn dump(
    conn: &mut MultiplexedConnection,
) -> BTreeMap<(usize, String), (String, String, i64)> {
    let mut state = BTreeMap::new();
    for db in 0..16 {
        run(conn, &["SELECT", &db.to_string()]).await.unwrap();
        let keys: Vec<String> = redis::cmd("KEYS").arg("*").query_async(conn).await.unwrap();
        for key in keys {
            let kind: String = redis::cmd("TYPE")
                .arg(&key)
                .query_async(conn)
                .await
                .unwrap();
            let contents = match kind.as_str() {
                "string" => format!("{:?}", run(conn, &["GET", &key]).await.unwrap()),
                "list" => format!(
                    "{:?}",
                    run(conn, &["LRANGE", &key, "0", "-1"]).await.unwrap()
                ),
                "hash" => {
                    let mut pairs: Vec<(String, String)> = redis::cmd("HGETALL")
                        .arg(&key)
                        .query_async(conn)
                        .await
                        .unwrap();
                    pairs.sort();
                    format!("{pairs:?}")
                }
                "stream" => {
                    let full = run(conn, &["XINFO", "STREAM", &key, "FULL"]).await.unwrap();
                    format!("{:?}", without_clock_fields(full))
                }
                other => format!("<{other}>"),
            };
            let at: i64 = redis::cmd("PEXPIRETIME")
                .arg(&key)
                .query_async(conn)
                .await
                .unwrap();
            state.insert((db, key), (kind, contents, at));
        }
    }
    run(conn, &["SELECT", "0"]).await.unwrap();
    state
}

/// XINFO STREAM FULL without what a replay cannot reproduce: when consumers were last
/// seen (a replay runs at another time) and the block layout of the entries.
fn without_clock_fields(value: Value) -> Value {
    const DROPPED: &[&[u8]] = &[
        b"seen-time",
        b"active-time",
        b"radix-tree-keys",
        b"radix-tree-nodes",
    ];
    match value {
        Value::Array(items) => {
            let is_map = items.len() % 2 == 0
                && items
                    .iter()
                    .step_by(2)
                    .all(|item| matches!(item, Value::BulkString(_) | Value::SimpleString(_)));
            if is_map && !items.is_empty() {
                let mut kept = Vec::new();
                let mut pairs = items.into_iter();
                while let (Some(name), Some(item)) = (pairs.next(), pairs.next()) {
                    let dropped =
                        matches!(&name, Value::BulkString(b) if DROPPED.contains(&&b[..]));
                    if !dropped {
                        kept.push(name);
                        kept.push(without_clock_fields(item));
                    }
                }
                Value::Array(kept)
            } else {
                Value::Array(items.into_iter().map(without_clock_fields).collect())
            }
        }
        other => other,
    }
}

/// One random write (or a transaction of them) from a mix that covers every rewritten
/// form: relative expiry, float increments, blocking pops, expiry of short-lived keys.
fn random_command(rng: &mut StdRng) -> Vec<Vec<String>> {
    let key = |rng: &mut StdRng, prefix: &str| format!("{prefix}{}", rng.random_range(0..6));
    let n = |rng: &mut StdRng| rng.random_range(0..100).to_string();
    let one = |words: &[&str]| vec![words.iter().map(|w| w.to_string()).collect::<Vec<_>>()];
    let (s, l, h) = (key(rng, "s"), key(rng, "l"), key(rng, "h"));
    let v = n(rng);
    let x = key(rng, "x");
    if rng.random_range(0..3) == 0 {
        let id = format!("0-{}", rng.random_range(1..3));
        return match rng.random_range(0..10) {
            0 | 1 => one(&["XADD", &x, "MAXLEN", "~", "20", "*", "f", &v]),
            2 => one(&["XADD", &x, "*", "f", &v, "g", "h"]),
            3 => one(&["XGROUP", "CREATE", &x, "g", "0", "MKSTREAM"]),
            4 | 5 => one(&[
                "XREADGROUP",
                "GROUP",
                "g",
                &key(rng, "c"),
                "COUNT",
                "3",
                "STREAMS",
                &x,
                ">",
            ]),
            6 => one(&["XACK", &x, "g", &id]),
            7 => one(&[
                "XAUTOCLAIM",
                &x,
                "g",
                &key(rng, "c"),
                "0",
                "0-0",
                "COUNT",
                "2",
            ]),
            8 => one(&["XTRIM", &x, "MAXLEN", "~", "5"]),
            _ => one(&["XDEL", &x, &id]),
        };
    }
    match rng.random_range(0..26) {
        0 => one(&["SET", &s, &v]),
        1 => one(&["SET", &s, &v, "EX", "1000"]),
        2 => one(&["SET", &s, &v, "PX", &rng.random_range(1..40).to_string()]),
        3 => one(&["SET", &s, &v, "NX", "KEEPTTL"]),
        4 => one(&["SETEX", &s, "500", &v]),
        5 => one(&[
            "INCRBYFLOAT",
            &format!("f{}", rng.random_range(0..3)),
            "0.1",
        ]),
        6 => one(&["APPEND", &s, &v]),
        7 => one(&["DEL", &s, &l]),
        8 => one(&["EXPIRE", &l, "100"]),
        9 => one(&["PEXPIRE", &h, &rng.random_range(1..30).to_string()]),
        10 => one(&["PERSIST", &l]),
        11 => one(&["RPUSH", &l, &v, &n(rng)]),
        12 => one(&["LPUSH", &l, &v]),
        13 => one(&["LPOP", &l]),
        14 => one(&["LTRIM", &l, "0", "4"]),
        15 => one(&["LMOVE", &l, &key(rng, "l"), "LEFT", "RIGHT"]),
        16 => one(&["BLPOP", &l, "0.01"]),
        17 => one(&["HSET", &h, &v, &n(rng)]),
        18 => one(&["HDEL", &h, &v]),
        19 => one(&["HINCRBYFLOAT", &h, "x", "1.5"]),
        20 => one(&["GETEX", &s, "PX", "200000"]),
        21 => one(&["EXPIRE", &s, "-1"]),
        22 => one(&[
            "COPY",
            &l,
            &format!("copy{}", rng.random_range(0..3)),
            "REPLACE",
        ]),
        23 => one(&["MOVE", &s, "1"]),
        24 => one(&["INCR", &format!("c{}", rng.random_range(0..3))]),
        _ => vec![
            vec!["MULTI".to_owned()],
            vec!["RPUSH".to_owned(), l.clone(), v.clone()],
            vec![
                "HINCRBY".to_owned(),
                h.clone(),
                "n".to_owned(),
                "1".to_owned(),
            ],
            vec!["SET".to_owned(), s, v, "EX".to_owned(), "300".to_owned()],
            vec!["EXEC".to_owned()],
        ],
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("herald-persistence-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_writes_survive_a_restart_and_a_rewrite() {
    for seed in [1_u64, 2, 3] {
        let dir = temp_dir(&format!("random-{seed}"));
        let server = TestServer::with_config(aof_config(&dir, "everysec")).await;
        let mut conn = server.connection(seed % 2 == 0).await;
        let mut rng = StdRng::seed_from_u64(seed);
        for _ in 0..400 {
            for words in random_command(&mut rng) {
                let words: Vec<&str> = words.iter().map(String::as_str).collect();
                // Errors (WRONGTYPE and the like) are part of the mix; they are not logged.
                let _ = run(&mut conn, &words).await;
            }
        }
        // Short-lived keys expire: some lazily (touched below), some by the active cycle.
        tokio::time::sleep(Duration::from_millis(60)).await;
        // Dumps read RESP2: the shape `without_clock_fields` filters.
        let before = dump(&mut server.connection(false).await).await;
        drop(conn);
        server.stop().await;

        let restarted = TestServer::with_config(aof_config(&dir, "everysec")).await;
        let mut conn = restarted.connection(false).await;
        assert_same(
            &dump(&mut conn).await,
            &before,
            &format!("seed {seed}: after restart"),
        );
        let size_before = std::fs::metadata(aof_path(&dir)).unwrap().len();
        run(&mut conn, &["BGREWRITEAOF"]).await.unwrap();
        wait_rewrite_done(&mut conn).await;
        let size_after = std::fs::metadata(aof_path(&dir)).unwrap().len();
        assert!(
            size_after < size_before,
            "seed {seed}: {size_after} >= {size_before}"
        );
        drop(conn);
        restarted.stop().await;

        assert_restarts_as(
            aof_config(&dir, "everysec"),
            &before,
            &format!("seed {seed}: after rewrite"),
        )
        .await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}

async fn info_field(conn: &mut MultiplexedConnection, name: &str) -> String {
    let info: String = redis::cmd("INFO")
        .arg("persistence")
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in {info}"))
        .trim()
        .to_owned()
}

async fn wait_rewrite_done(conn: &mut MultiplexedConnection) {
    for _ in 0..500 {
        if info_field(conn, "aof_rewrite_in_progress").await == "0" {
            assert_eq!(info_field(conn, "aof_last_bgrewrite_status").await, "ok");
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the rewrite did not finish");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_clients_writing_at_once_share_fsyncs() {
    let dir = temp_dir("group-commit");
    let server = TestServer::with_config(aof_config(&dir, "always")).await;
    let mut conn = server.connection(false).await;
    let counter = |name: &'static str| {
        let url = server.url();
        async move {
            let mut conn = redis::Client::open(url)
                .unwrap()
                .get_multiplexed_async_connection()
                .await
                .unwrap();
            info_field(&mut conn, name).await.parse::<u64>().unwrap()
        }
    };
    let before = counter("herald_aof_fsyncs").await;
    let appends_before = counter("herald_aof_appends").await;
    let (clients, writes) = (20u64, 20u64);
    let writers: Vec<_> = (0..clients)
        .map(|client| {
            let url = server.url();
            tokio::spawn(async move {
                let redis = redis::Client::open(url).unwrap();
                let mut conn = redis.get_multiplexed_async_connection().await.unwrap();
                for n in 0..writes {
                    run(&mut conn, &["SET", &format!("k{client}"), &n.to_string()])
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        tokio::time::timeout(Duration::from_secs(60), writer)
            .await
            .expect("writers hung")
            .unwrap();
    }
    let fsyncs = info_field(&mut conn, "herald_aof_fsyncs")
        .await
        .parse::<u64>()
        .unwrap()
        - before;
    assert!(fsyncs >= 1, "acknowledged writes without an fsync");
    assert!(
        fsyncs < clients * writes,
        "{fsyncs} fsyncs for {} acknowledged writes: no group commit",
        clients * writes
    );
    // Where the writer's time went: every fsync takes some, and every one of them
    // released replies; the appends are exactly the writes.
    assert_eq!(
        counter("herald_aof_appends").await - appends_before,
        clients * writes
    );
    assert!(counter("herald_aof_fsync_usec").await > 0);
    assert!(counter("herald_aof_release_usec").await > 0);
    drop(conn);
    server.stop().await;
}

/// Under `always` a reply waits for its fsync (and is then sent by the file's thread),
/// while the keyspace notification the same command caused for this very client waits
/// behind the reply: reply first, then the push, one after the other and pipelined.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_replies_precede_the_notifications_they_caused() {
    let dir = temp_dir("always-order");
    let server = TestServer::with_config(aof_config(&dir, "always")).await;
    let mut raw = server.client().await;
    raw.config_set(b"notify-keyspace-events", b"K$").await;
    raw.cmd(&[b"HELLO", b"3"]).await;
    // The HELLO map ends with its `modules` entry, an empty array.
    while !raw.read_line().await.starts_with("*0") {}
    raw.cmd(&[b"SUBSCRIBE", b"__keyspace@0__:k"]).await;
    raw.expect(&common::confirm('>', "subscribe", "__keyspace@0__:k", 1))
        .await;
    let event = common::message('>', "__keyspace@0__:k", "set");
    raw.cmd(&[b"SET", b"k", b"1"]).await;
    raw.expect(b"+OK\r\n").await;
    raw.expect(&event).await;
    let pipeline =
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\n2\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\n3\r\n";
    raw.send(pipeline).await;
    for _ in 0..2 {
        raw.expect(b"+OK\r\n").await;
        raw.expect(&event).await;
    }
    raw.expect_silence(Duration::from_millis(50)).await;
    drop(raw);
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewrite_under_load_loses_nothing() {
    let dir = temp_dir("rewrite-load");
    let server = TestServer::with_config(aof_config(&dir, "always")).await;
    let mut setup = server.connection(false).await;
    for n in 0..2000 {
        run(&mut setup, &["SET", "counter", &n.to_string()])
            .await
            .unwrap();
    }
    let writers: Vec<_> = (0..4)
        .map(|task| {
            let url = server.url();
            tokio::spawn(async move {
                let client = redis::Client::open(url).unwrap();
                let mut conn = client.get_multiplexed_async_connection().await.unwrap();
                for n in 0..300 {
                    run(
                        &mut conn,
                        &["RPUSH", &format!("list{task}"), &n.to_string()],
                    )
                    .await
                    .unwrap();
                    run(&mut conn, &["INCR", "hits"]).await.unwrap();
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(20)).await;
    // The records' size: under `always` the file also holds zeros ahead of them.
    let size_before: u64 = info_field(&mut setup, "aof_current_size")
        .await
        .parse()
        .unwrap();
    let started = run(&mut setup, &["BGREWRITEAOF"]).await.unwrap();
    assert_eq!(
        started,
        Value::SimpleString("Background append only file rewriting started".to_owned())
    );
    for writer in writers {
        writer.await.unwrap();
    }
    wait_rewrite_done(&mut setup).await;
    let size_after: u64 = info_field(&mut setup, "aof_current_size")
        .await
        .parse()
        .unwrap();
    assert!(size_after < size_before, "{size_after} >= {size_before}");
    let before = dump(&mut setup).await;
    assert_eq!(
        run(&mut setup, &["GET", "hits"]).await.unwrap(),
        Value::BulkString(b"1200".to_vec())
    );
    drop(setup);
    server.stop().await;

    assert_restarts_as(aof_config(&dir, "always"), &before, "after restart").await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_truncated_tail_loads_without_the_partial_transaction() {
    let dir = temp_dir("truncated");
    let server = TestServer::with_config(aof_config(&dir, "always")).await;
    let mut conn = server.connection(false).await;
    run(&mut conn, &["SET", "kept", "yes"]).await.unwrap();
    let mut pipe = redis::pipe();
    pipe.atomic()
        .cmd("SET")
        .arg("lost")
        .arg("1")
        .cmd("RPUSH")
        .arg("lost-list")
        .arg("a");
    let _: Value = pipe.query_async(&mut conn).await.unwrap();
    drop(conn);
    server.stop().await;

    // Cut inside the transaction's last record, as a crash mid-write would.
    let path = aof_path(&dir);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 9]).unwrap();
    let restarted = TestServer::with_config(aof_config(&dir, "always")).await;
    let mut conn = restarted.connection(false).await;
    assert_eq!(
        run(&mut conn, &["GET", "kept"]).await.unwrap(),
        Value::BulkString(b"yes".to_vec())
    );
    assert_eq!(
        run(&mut conn, &["EXISTS", "lost", "lost-list"])
            .await
            .unwrap(),
        Value::Int(0)
    );
    // The partial transaction was cut off, so new records follow whole ones.
    run(&mut conn, &["SET", "after", "1"]).await.unwrap();
    drop(conn);
    restarted.stop().await;
    let again = TestServer::with_config(aof_config(&dir, "always")).await;
    let mut conn = again.connection(false).await;
    assert_eq!(
        run(&mut conn, &["MGET", "kept", "after"]).await.unwrap(),
        Value::Array(vec![
            Value::BulkString(b"yes".to_vec()),
            Value::BulkString(b"1".to_vec()),
        ])
    );
    drop(conn);
    again.stop().await;

    // With aof-load-truncated no, the same damage refuses to start.
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
    let mut strict = aof_config(&dir, "always");
    strict.aof_load_truncated = false;
    strict.port = 0;
    let error = Server::bind(&strict).await.expect_err("refused");
    assert!(error.to_string().contains("truncated at offset"), "{error}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn damage_in_the_middle_refuses_to_start_and_names_the_offset() {
    let dir = temp_dir("corrupt");
    let server = TestServer::with_config(aof_config(&dir, "always")).await;
    let mut conn = server.connection(false).await;
    for n in 0..10 {
        run(&mut conn, &["SET", &format!("k{n}"), "v"])
            .await
            .unwrap();
    }
    drop(conn);
    server.stop().await;
    let path = aof_path(&dir);
    let mut bytes = std::fs::read(&path).unwrap();
    // The `*` of the fifth record becomes `#`.
    let offset = bytes
        .iter()
        .enumerate()
        .filter(|(_, byte)| **byte == b'*')
        .nth(5)
        .map(|(at, _)| at)
        .unwrap();
    bytes[offset] = b'#';
    std::fs::write(&path, &bytes).unwrap();
    let mut config = aof_config(&dir, "always");
    config.port = 0;
    let error = Server::bind(&config).await.expect_err("refused");
    assert!(
        error.to_string().contains(&format!("at offset {offset}")),
        "{error}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_failing_disk_turns_writes_into_misconf() {
    let Some(server) = TestServer::on_a_full_disk(FsyncPolicy::EverySec).await else {
        return;
    };
    let mut conn = server.connection(false).await;
    let mut refused = None;
    for n in 0..500 {
        match run(&mut conn, &["SET", "k", &n.to_string()]).await {
            Ok(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            Err(err) => {
                refused = Some(err.to_string());
                break;
            }
        }
    }
    let refused = refused.expect("writes were never refused");
    assert!(
        refused.contains("MISCONF") && refused.contains("AOF"),
        "{refused}"
    );
    // Reads still work, and INFO says why.
    run(&mut conn, &["GET", "k"]).await.unwrap();
    assert_eq!(info_field(&mut conn, "aof_last_write_status").await, "err");
    // Detach before the server stops: its shutdown would retry the full device.
    drop(server.shared.set_persistence(None));
    drop(conn);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_racing_config_set_appendonly_yes_are_all_kept() {
    let dir = temp_dir("config-set-race");
    let config = ServerConfig {
        dir: dir.clone(),
        ..ServerConfig::default()
    };
    let server = TestServer::with_config(config).await;
    let mut conn = server.connection(false).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|task| {
            let url = server.url();
            let stop = Arc::clone(&stop);
            tokio::spawn(async move {
                let client = redis::Client::open(url).unwrap();
                let mut conn = client.get_multiplexed_async_connection().await.unwrap();
                let mut acknowledged = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    run(
                        &mut conn,
                        &["RPUSH", &format!("race{task}"), &acknowledged.to_string()],
                    )
                    .await
                    .unwrap();
                    acknowledged += 1;
                }
                acknowledged
            })
        })
        .collect();
    // Each `yes` replaces the file with a snapshot taken while the writers write.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        run(&mut conn, &["CONFIG", "SET", "appendonly", "yes"])
            .await
            .unwrap();
        wait_rewrite_done(&mut conn).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        run(&mut conn, &["CONFIG", "SET", "appendonly", "no"])
            .await
            .unwrap();
    }
    run(&mut conn, &["CONFIG", "SET", "appendonly", "yes"])
        .await
        .unwrap();
    wait_rewrite_done(&mut conn).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut acknowledged = Vec::new();
    for writer in writers {
        acknowledged.push(writer.await.unwrap());
    }
    let before = dump(&mut conn).await;
    drop(conn);
    server.stop().await;
    for (task, count) in acknowledged.iter().enumerate() {
        assert!(*count > 0, "writer {task} wrote nothing");
    }
    assert_restarts_as(aof_config(&dir, "everysec"), &before, "after restart").await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn config_set_appendonly_writes_the_current_keyspace() {
    let dir = temp_dir("config-set");
    let config = ServerConfig {
        dir: dir.clone(),
        ..ServerConfig::default()
    };
    let server = TestServer::with_config(config.clone()).await;
    let mut conn = server.connection(false).await;
    run(&mut conn, &["RPUSH", "early", "a", "b"]).await.unwrap();
    assert_eq!(info_field(&mut conn, "aof_enabled").await, "0");
    let refused = run(&mut conn, &["BGREWRITEAOF"]).await.unwrap_err();
    assert!(
        refused.to_string().contains("needs appendonly yes"),
        "{refused}"
    );
    for (name, value, why) in [
        ("dir", "/tmp", "immutable"),
        ("appendfilename", "other.aof", "immutable"),
        ("auto-aof-rewrite-percentage", "-1", "between 0 and"),
        ("auto-aof-rewrite-min-size", "lots", "memory value"),
        ("appendonly", "maybe", "'yes' or 'no'"),
    ] {
        let bad = run(&mut conn, &["CONFIG", "SET", name, value])
            .await
            .unwrap_err();
        assert!(bad.to_string().contains(why), "{name} {value}: {bad}");
    }
    run(&mut conn, &["CONFIG", "SET", "appendonly", "yes"])
        .await
        .unwrap();
    wait_rewrite_done(&mut conn).await;
    run(&mut conn, &["HSET", "late", "f", "v"]).await.unwrap();
    run(&mut conn, &["CONFIG", "SET", "appendfsync", "always"])
        .await
        .unwrap();
    let got: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("append*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        got,
        vec![
            "appendonly",
            "yes",
            "appendfsync",
            "always",
            "appendfilename",
            "appendonly.aof"
        ]
    );
    let before = dump(&mut conn).await;
    let bad = run(&mut conn, &["CONFIG", "SET", "appendfsync", "sometimes"])
        .await
        .unwrap_err();
    assert!(bad.to_string().contains("appendfsync"), "{bad}");
    drop(conn);
    server.stop().await;

    assert_restarts_as(aof_config(&dir, "always"), &before, "after restart").await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_clients_served_by_a_push_are_logged_after_it() {
    let dir = temp_dir("served");
    let server = TestServer::with_config(aof_config(&dir, "always")).await;
    let url = server.url();
    let blocked = |words: Vec<&'static str>| {
        let url = url.clone();
        tokio::spawn(async move {
            let client = redis::Client::open(url).unwrap();
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            run(&mut conn, &words).await.unwrap()
        })
    };
    let mut conn = server.connection(false).await;
    run(
        &mut conn,
        &["XGROUP", "CREATE", "tasks", "workers", "$", "MKSTREAM"],
    )
    .await
    .unwrap();
    let pop = blocked(vec!["BLPOP", "jobs", "5"]);
    let mover = blocked(vec!["BLMOVE", "inbox", "done", "RIGHT", "LEFT", "5"]);
    let reader = blocked(vec![
        "XREADGROUP",
        "GROUP",
        "workers",
        "w1",
        "BLOCK",
        "5000",
        "STREAMS",
        "tasks",
        ">",
    ]);
    for _ in 0..200 {
        let waiting = info_blocked(&mut conn).await;
        if waiting == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    run(&mut conn, &["RPUSH", "jobs", "first", "second"])
        .await
        .unwrap();
    run(&mut conn, &["RPUSH", "inbox", "a", "b"]).await.unwrap();
    assert_eq!(
        pop.await.unwrap(),
        Value::Array(vec![
            Value::BulkString(b"jobs".to_vec()),
            Value::BulkString(b"first".to_vec())
        ])
    );
    assert_eq!(mover.await.unwrap(), Value::BulkString(b"b".to_vec()));
    run(&mut conn, &["XADD", "tasks", "*", "job", "1"])
        .await
        .unwrap();
    // The blocked group read took the entry: its pending-entry record must replay.
    assert!(matches!(reader.await.unwrap(), Value::Array(found) if found.len() == 1));
    let pending = run(&mut conn, &["XPENDING", "tasks", "workers"])
        .await
        .unwrap();
    assert!(
        matches!(&pending, Value::Array(summary) if summary[0] == Value::Int(1)),
        "{pending:?}"
    );
    let before = dump(&mut conn).await;
    drop(conn);
    server.stop().await;

    assert_restarts_as(aof_config(&dir, "always"), &before, "after restart").await;
    let _ = std::fs::remove_dir_all(&dir);
}

async fn info_blocked(conn: &mut MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("clients")
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix("blocked_clients:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn the_file_is_rewritten_automatically_once_it_doubles() {
    let dir = temp_dir("auto-rewrite");
    let mut config = aof_config(&dir, "everysec");
    config.auto_aof_rewrite_min_size = "4kb".to_owned();
    config.auto_aof_rewrite_percentage = 100;
    let server = TestServer::with_config(config.clone()).await;
    let mut conn = server.connection(false).await;
    for n in 0..600 {
        run(&mut conn, &["SET", "counter", &n.to_string()])
            .await
            .unwrap();
    }
    // The cron (10 Hz) rewrites whenever the file passes 4 kB and twice its base size.
    let (mut rewrites, mut size) = (String::new(), u64::MAX);
    for _ in 0..300 {
        rewrites = info_field(&mut conn, "aof_rewrites").await;
        size = std::fs::metadata(aof_path(&dir)).unwrap().len();
        if rewrites != "0" && size < 4096 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_ne!(rewrites, "0", "no automatic rewrite");
    assert!(size < 4096, "the file is still {size} bytes");
    drop(conn);
    server.stop().await;
    let restarted = TestServer::with_config(config).await;
    let mut conn = restarted.connection(false).await;
    assert_eq!(
        run(&mut conn, &["GET", "counter"]).await.unwrap(),
        Value::BulkString(b"599".to_vec())
    );
    drop(conn);
    restarted.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Under `always` a connection does not wait for its reply's fsync before reading on:
/// a client that sends its last writes and closes its side at once must still get
/// every reply, in order, before the connection closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_replies_reach_a_client_that_closed_its_side() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = temp_dir("half-close");
    let server = TestServer::with_config(aof_config(&dir, "always")).await;
    for round in 0..5 {
        let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let request = format!(
            "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\n{round}\r\n*2\r\n$4\r\nINCR\r\n$1\r\nn\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        stream.shutdown().await.unwrap();
        let mut replies = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut replies))
            .await
            .expect("the connection closes")
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&replies),
            format!("+OK\r\n:{}\r\n", round + 1),
            "round {round}"
        );
    }
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
