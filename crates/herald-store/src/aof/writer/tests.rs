//! Tests of the writer: policies, group commit, shutdown, rewrites, a full disk.
use super::*;
use crate::aof::format::{encode_command, AofEntry, AofReader};
use std::time::Instant;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "herald-aof-{name}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn commands_in(path: &Path) -> Vec<Vec<String>> {
    let bytes = std::fs::read(path).unwrap();
    let mut reader = AofReader::new(&bytes[..]);
    let mut out = Vec::new();
    while let Some((_, entry)) = reader.next_entry().unwrap() {
        match entry {
            AofEntry::Command(args) => out.push(
                args.iter()
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect(),
            ),
            AofEntry::Transaction(_) => panic!("unexpected transaction"),
        }
    }
    out
}

fn append(writer: &AofWriter, words: &[&str]) -> u64 {
    writer.append_with(|out| encode_command(out, words))
}

#[tokio::test]
async fn every_policy_reaches_the_file_before_the_reply() {
    for policy in [FsyncPolicy::Always, FsyncPolicy::EverySec, FsyncPolicy::No] {
        let dir = temp_dir(&format!("policy-{policy}"));
        let path = dir.join("appendonly.aof");
        let writer = AofWriter::open(&path, policy).unwrap();
        let first = append(&writer, &["SET", "a", "1"]);
        let second = append(&writer, &["SET", "b", "2"]);
        assert_eq!((first, second), (1, 2));
        writer.durable(second).await;
        assert!(writer.is_written(second));
        assert_eq!(
            commands_in(&path),
            vec![vec!["SET", "a", "1"], vec!["SET", "b", "2"]],
            "{policy}"
        );
        let size = writer.status().current_size;
        let length = std::fs::metadata(&path).unwrap().len();
        if policy == FsyncPolicy::Always {
            // Zeros written ahead of the records (writer/runway.rs).
            assert!(length >= size + runway::RUNWAY_BYTES / 2, "{length} {size}");
        } else {
            assert_eq!(size, length, "{policy}");
        }
        // A clean shutdown leaves the records only, as Redis's file.
        drop(writer);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), size, "{policy}");
    }
}

#[tokio::test]
async fn a_file_left_with_its_zero_runway_is_continued_after_its_last_record() {
    let dir = temp_dir("runway");
    let path = dir.join("appendonly.aof");
    // What a crash under `always` leaves: records, then zeros.
    let mut crashed = Vec::new();
    encode_command(&mut crashed, &["SET", "a", "1"]);
    let records = crashed.len() as u64;
    crashed.resize(crashed.len() + 200_000, 0);
    std::fs::write(&path, &crashed).unwrap();
    for policy in [FsyncPolicy::Always, FsyncPolicy::EverySec] {
        let writer = AofWriter::open(&path, policy).unwrap();
        assert_eq!(writer.status().current_size, records);
        let sequence = append(&writer, &["SET", "b", policy.to_string().as_str()]);
        writer.durable(sequence).await;
        drop(writer);
        let mut grown = Vec::new();
        encode_command(&mut grown, &["SET", "b", policy.to_string().as_str()]);
        assert_eq!(
            commands_in(&path).last().cloned(),
            Some(vec!["SET".to_owned(), "b".to_owned(), policy.to_string()])
        );
        // Right after the old record, and the file ends there (no zeros in between).
        let written = std::fs::read(&path).unwrap();
        assert_eq!(&written[records as usize..], &grown[..]);
        std::fs::write(&path, &crashed).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_keep_their_order_and_share_fsyncs() {
    let dir = temp_dir("group");
    let path = dir.join("appendonly.aof");
    let writer = Arc::new(AofWriter::open(&path, FsyncPolicy::Always).unwrap());
    let mut tasks = Vec::new();
    for task in 0..8 {
        let writer = Arc::clone(&writer);
        tasks.push(tokio::spawn(async move {
            for n in 0..50 {
                let sequence = append(&writer, &["RPUSH", &format!("l{task}"), &n.to_string()]);
                writer.durable(sequence).await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let commands = commands_in(&path);
    assert_eq!(commands.len(), 400);
    for task in 0..8 {
        let values: Vec<String> = commands
            .iter()
            .filter(|c| c[1] == format!("l{task}"))
            .map(|c| c[2].clone())
            .collect();
        let expected: Vec<String> = (0..50).map(|n: i32| n.to_string()).collect();
        assert_eq!(values, expected);
    }
    // Replies from both runtime workers wait at once: fsyncs must be shared.
    let fsyncs = writer.status().fsyncs;
    assert!(
        fsyncs <= 200,
        "{fsyncs} fsyncs for 400 replies: no group commit"
    );
}

#[test]
fn a_lone_always_writer_gets_one_fsync_per_write() {
    let dir = temp_dir("lone");
    let path = dir.join("appendonly.aof");
    let writer = AofWriter::open(&path, FsyncPolicy::Always).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for n in 0..20 {
        let sequence = append(&writer, &["SET", "k", &n.to_string()]);
        runtime.block_on(writer.durable(sequence));
        assert_eq!(
            writer.status().fsyncs,
            n + 1,
            "write {n} was not synced on its own"
        );
    }
}

#[test]
fn shutdown_flushes_what_is_buffered() {
    let dir = temp_dir("shutdown");
    let path = dir.join("appendonly.aof");
    let writer = AofWriter::open(&path, FsyncPolicy::No).unwrap();
    for n in 0..100 {
        append(&writer, &["SET", "k", &n.to_string()]);
    }
    drop(writer);
    assert_eq!(commands_in(&path).len(), 100);
}

#[test]
fn flush_writes_and_fsyncs_at_once_under_every_policy() {
    for policy in [FsyncPolicy::Always, FsyncPolicy::EverySec, FsyncPolicy::No] {
        let dir = temp_dir(&format!("flush-{policy}"));
        let path = dir.join("appendonly.aof");
        let writer = AofWriter::open(&path, policy).unwrap();
        let fsyncs_before = writer.status().fsyncs;
        for n in 0..50 {
            append(&writer, &["SET", "k", &n.to_string()]);
        }
        writer.flush().unwrap();
        // Without the flush, `no` and `everysec` would still be lingering or waiting
        // for their second: the records are in the file when it returns.
        assert_eq!(commands_in(&path).len(), 50, "{policy}");
        let status = writer.status();
        assert_eq!(status.buffered, 0, "{policy}");
        assert!(status.fsyncs > fsyncs_before, "{policy}: not fsynced");
        // Nothing buffered: answered at once, and the writer carries on.
        writer.flush().unwrap();
        append(&writer, &["SET", "after", "flush"]);
        drop(writer);
        assert_eq!(commands_in(&path).len(), 51, "{policy}");
    }
}

#[test]
fn flush_after_shutdown_fails_instead_of_hanging() {
    let dir = temp_dir("flush-shutdown");
    let writer = AofWriter::open(&dir.join("appendonly.aof"), FsyncPolicy::EverySec).unwrap();
    writer.shutdown();
    assert!(writer.flush().is_err());
}

#[test]
fn flush_reports_a_full_disk_and_keeps_the_bytes() {
    let path = Path::new("/dev/full");
    if !path.exists() {
        return;
    }
    let writer = AofWriter::open(path, FsyncPolicy::No).unwrap();
    append(&writer, &["SET", "a", "1"]);
    let error = writer.flush().unwrap_err();
    assert!(error.to_string().contains("space"), "{error}");
    assert!(
        writer.status().buffered > 0,
        "the failed bytes stay buffered"
    );
    assert!(writer.writable().is_err(), "writes are refused meanwhile");
}

#[tokio::test]
async fn reopening_appends_after_the_existing_records() {
    let dir = temp_dir("reopen");
    let path = dir.join("appendonly.aof");
    {
        let writer = AofWriter::open(&path, FsyncPolicy::Always).unwrap();
        let sequence = append(&writer, &["SET", "a", "1"]);
        writer.durable(sequence).await;
    }
    let writer = AofWriter::open(&path, FsyncPolicy::Always).unwrap();
    assert!(writer.status().base_size > 0);
    let sequence = append(&writer, &["SET", "b", "2"]);
    writer.durable(sequence).await;
    assert_eq!(commands_in(&path).len(), 2);
}

#[tokio::test]
async fn a_rewrite_keeps_the_appends_made_while_it_ran() {
    let dir = temp_dir("rewrite");
    let path = dir.join("appendonly.aof");
    let writer = AofWriter::open(&path, FsyncPolicy::EverySec).unwrap();
    for n in 0..10 {
        append(&writer, &["INCR", "counter"]);
        append(&writer, &["SET", "n", &n.to_string()]);
    }
    assert!(writer.begin_rewrite());
    assert!(!writer.begin_rewrite(), "one rewrite at a time");
    // The snapshot of the state at begin_rewrite, written while appends continue.
    let snapshot = dir.join("temp-rewrite.aof");
    let mut bytes = Vec::new();
    encode_command(&mut bytes, &["SET", "counter", "10"]);
    encode_command(&mut bytes, &["SET", "n", "9"]);
    std::fs::write(&snapshot, &bytes).unwrap();
    let during = append(&writer, &["SET", "after", "yes"]);
    writer.finish_rewrite(&snapshot).unwrap();
    writer.durable(during).await;
    let last = append(&writer, &["DEL", "n"]);
    writer.durable(last).await;
    assert_eq!(
        commands_in(&path),
        vec![
            vec!["SET", "counter", "10"],
            vec!["SET", "n", "9"],
            vec!["SET", "after", "yes"],
            vec!["DEL", "n"],
        ]
    );
    assert!(!snapshot.exists());
    let status = writer.status();
    assert!(!status.rewriting);
    assert!(status.base_size < status.current_size);
}

#[test]
fn a_failed_rewrite_leaves_the_live_file_alone() {
    let dir = temp_dir("rewrite-fail");
    let path = dir.join("appendonly.aof");
    let writer = AofWriter::open(&path, FsyncPolicy::EverySec).unwrap();
    append(&writer, &["SET", "a", "1"]);
    assert!(
        writer.finish_rewrite(&dir.join("missing")).is_err(),
        "not begun"
    );
    assert!(writer.begin_rewrite());
    assert!(writer.finish_rewrite(&dir.join("missing")).is_err());
    assert!(!writer.status().rewriting);
    append(&writer, &["SET", "b", "2"]);
    drop(writer);
    assert_eq!(commands_in(&path).len(), 2);
}

#[test]
fn a_rewrite_finishing_after_shutdown_fails_instead_of_hanging() {
    // SIGTERM during BGREWRITEAOF: the thread flushes and exits; the rewrite task that
    // then asks it to switch files must get an error, or the process never exits.
    let dir = temp_dir("rewrite-shutdown");
    let path = dir.join("appendonly.aof");
    let writer = AofWriter::open(&path, FsyncPolicy::EverySec).unwrap();
    assert!(writer.begin_rewrite());
    append(&writer, &["SET", "a", "1"]);
    writer.shutdown();
    let snapshot = dir.join("temp-rewrite.aof");
    std::fs::write(&snapshot, b"").unwrap();
    assert!(writer.finish_rewrite(&snapshot).is_err());
    assert_eq!(
        commands_in(&path).len(),
        1,
        "the live file keeps its record"
    );
}

#[tokio::test]
async fn a_full_disk_refuses_writes_and_acknowledges_nothing() {
    let path = Path::new("/dev/full");
    if !path.exists() {
        return;
    }
    let writer = AofWriter::open(path, FsyncPolicy::EverySec).unwrap();
    assert!(writer.writable().is_ok());
    let sequence = append(&writer, &["SET", "a", "1"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while writer.writable().is_ok() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let error = writer.writable().unwrap_err();
    assert!(error.contains("space"), "{error}");
    // everysec answers (the data is in memory, retried), as Redis does ...
    tokio::time::timeout(Duration::from_secs(1), writer.durable(sequence))
        .await
        .expect("an everysec reply does not hang on a failing disk");
    assert!(!writer.is_written(sequence));
    assert!(
        writer.status().buffered > 0,
        "the failed bytes stay buffered"
    );
    // ... always does not: nothing is acknowledged that is not on disk.
    writer.set_policy(FsyncPolicy::Always);
    let acknowledged =
        tokio::time::timeout(Duration::from_millis(300), writer.durable(sequence)).await;
    assert!(
        acknowledged.is_err(),
        "a write that failed was acknowledged"
    );
}

#[test]
fn policies_parse_like_redis() {
    assert_eq!("Always".parse(), Ok(FsyncPolicy::Always));
    assert_eq!("everysec".parse(), Ok(FsyncPolicy::EverySec));
    assert_eq!("no".parse(), Ok(FsyncPolicy::No));
    assert!("sometimes".parse::<FsyncPolicy>().is_err());
    assert_eq!(FsyncPolicy::EverySec.to_string(), "everysec");
}

/// A writer under `always` that expects cohorts of `expected` writes, with the waiting
/// limits scaled up so that a loaded machine cannot blur them.
fn gathering_writer(name: &str, expected: u64, quiet_ms: u64, patience_ms: u64) -> AofWriter {
    let path = temp_dir(name).join("appendonly.aof");
    let gathering = cohort::Gathering {
        quiet: Duration::from_millis(quiet_ms),
        patience_percent: 0,
        patience_floor: Duration::from_millis(patience_ms),
        patience_ceiling: Duration::from_millis(patience_ms),
    };
    AofWriter::open_with_cohorts(
        &path,
        FsyncPolicy::Always,
        cohort::Cohorts::expecting(expected, gathering),
    )
    .unwrap()
}

#[tokio::test]
async fn an_fsync_waits_for_the_cohort_it_expects() {
    let writer = gathering_writer("cohort", 4, 2_000, 10_000);
    let started = Instant::now();
    let mut last = 0;
    for n in 0..4 {
        last = append(&writer, &["SET", "k", &n.to_string()]);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    writer.durable(last).await;
    assert_eq!(
        writer.status().fsyncs,
        1,
        "the four writes shared one fsync"
    );
    // It went as soon as the fourth arrived, not at the end of its patience.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_smaller_cohort_ends_the_wait_when_writes_stop() {
    let writer = gathering_writer("quiet", 20, 200, 20_000);
    let started = Instant::now();
    let sequence = append(&writer, &["SET", "k", "v"]);
    writer.durable(sequence).await;
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(150), "{waited:?}");
    assert!(
        waited < Duration::from_secs(10),
        "waited for the missing 19: {waited:?}"
    );
    // INFO persistence's account of the writer's time: the wait, then the fsync.
    let status = writer.status();
    assert_eq!((status.appends, status.fsyncs), (1, 1));
    assert!(
        status.times.gathering >= Duration::from_millis(150),
        "{:?}",
        status.times
    );
    assert!(status.times.fsync > Duration::ZERO, "{:?}", status.times);
}

#[tokio::test]
async fn the_wait_for_a_cohort_is_bounded() {
    let writer = gathering_writer("patience", 20, 20_000, 300);
    let started = Instant::now();
    for n in 0..3 {
        let sequence = append(&writer, &["SET", "k", &n.to_string()]);
        writer.durable(sequence).await;
    }
    let waited = started.elapsed();
    // At most the patience per fsync, however long the quiet gap would have been.
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    assert!(waited < Duration::from_secs(10), "{waited:?}");
}

#[tokio::test]
async fn a_lone_writer_never_waits_for_a_cohort() {
    let writer = gathering_writer("lone", 1, 20_000, 20_000);
    let started = Instant::now();
    for n in 0..5 {
        let sequence = append(&writer, &["SET", "k", &n.to_string()]);
        writer.durable(sequence).await;
    }
    assert_eq!(writer.status().fsyncs, 5);
    assert_eq!(
        writer.status().times.gathering,
        Duration::ZERO,
        "it never waited"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}
