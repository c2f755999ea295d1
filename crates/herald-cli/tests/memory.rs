//! The binary's allocator seen from a real client: INFO memory and MEMORY STATS report
//! jemalloc's figures, and memory freed by DEL or FLUSHALL goes back to the OS (the
//! process's resident set, read from /proc, shrinks), which glibc's malloc did not do.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;

use redis::Connection;

/// Keys the tests write, each with a 1 KiB value: about 20 MiB in all.
const KEYS: usize = 20_000;
const VALUE_BYTES: usize = 1024;
/// What a load must add to `used_memory`, and give back to the resident set once freed.
const SIGNIFICANT: u64 = 15 << 20;

fn start() -> (common::Running, Connection) {
    let server = common::start(["--port", "0", "--no-http"]);
    let client = redis::Client::open(format!("redis://{}", server.addr)).unwrap();
    let connection = client.get_connection().unwrap();
    (server, connection)
}

fn info_memory(connection: &mut Connection) -> HashMap<String, String> {
    let text: String = redis::cmd("INFO").arg("memory").query(connection).unwrap();
    text.lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(key, value)| (key.to_owned(), value.trim().to_owned()))
        .collect()
}

fn number(fields: &HashMap<String, String>, key: &str) -> u64 {
    fields
        .get(key)
        .unwrap_or_else(|| panic!("INFO memory has no {key}: {fields:?}"))
        .parse()
        .unwrap_or_else(|_| panic!("{key} is not a number: {fields:?}"))
}

fn resident_bytes(server: &common::Running) -> u64 {
    herald_bench::scenario::connections::vm_rss_bytes(server.child.id()).unwrap()
}

fn load(connection: &mut Connection) {
    let value = vec![b'v'; VALUE_BYTES];
    for chunk in (0..KEYS).collect::<Vec<_>>().chunks(1000) {
        let mut pipe = redis::pipe();
        for key in chunk {
            pipe.cmd("SET")
                .arg(format!("key:{key}"))
                .arg(&value)
                .ignore();
        }
        pipe.query::<()>(connection).unwrap();
    }
}

#[test]
fn info_memory_and_memory_stats_report_the_allocator() {
    let (_server, mut connection) = start();
    let before = info_memory(&mut connection);
    assert!(
        before["mem_allocator"].starts_with("jemalloc-5."),
        "{before:?}"
    );
    for key in [
        "allocator_allocated",
        "allocator_active",
        "allocator_resident",
        "used_memory_peak",
        "mem_fragmentation_ratio",
    ] {
        assert!(before.contains_key(key), "no {key} in {before:?}");
    }
    load(&mut connection);
    let after = info_memory(&mut connection);
    let grown = number(&after, "used_memory") - number(&before, "used_memory");
    assert!(
        grown >= SIGNIFICANT,
        "used_memory grew by {grown} bytes only"
    );
    assert!(number(&after, "used_memory_peak") >= number(&after, "used_memory"));
    assert!(number(&after, "used_memory_rss") >= number(&after, "used_memory"));

    let stats: HashMap<String, redis::Value> = redis::cmd("MEMORY")
        .arg("STATS")
        .query(&mut connection)
        .unwrap();
    let int = |key: &str| match &stats[key] {
        redis::Value::Int(n) => *n,
        other => panic!("{key}: {other:?}"),
    };
    assert_eq!(int("keys.count"), KEYS as i64);
    let per_key = int("keys.bytes-per-key");
    assert!(
        (VALUE_BYTES as i64..4 * VALUE_BYTES as i64).contains(&per_key),
        "{per_key} bytes per key for {VALUE_BYTES}-byte values"
    );
    assert!(int("total.allocated") >= int("startup.allocated"));
    assert!(stats.contains_key("allocator-fragmentation.ratio"));

    let doctor: String = redis::cmd("MEMORY")
        .arg("DOCTOR")
        .query(&mut connection)
        .unwrap();
    assert!(doctor.contains("Sam"), "{doctor}");
    let report: String = redis::cmd("MEMORY")
        .arg("MALLOC-STATS")
        .query(&mut connection)
        .unwrap();
    assert!(
        report.contains("Begin jemalloc statistics"),
        "{report:.200}"
    );
    let help: Vec<String> = redis::cmd("MEMORY")
        .arg("HELP")
        .query(&mut connection)
        .unwrap();
    assert!(
        help.iter().any(|line| line.starts_with("PURGE"))
            && help.iter().any(|line| line.starts_with("USAGE <key>")),
        "{help:?}"
    );
    let bare = redis::cmd("MEMORY")
        .query::<redis::Value>(&mut connection)
        .unwrap_err();
    assert!(
        bare.to_string().contains("wrong number of arguments"),
        "{bare}"
    );
}

#[test]
fn freed_memory_goes_back_to_the_os_after_del_and_flushall() {
    let (server, mut connection) = start();
    load(&mut connection);
    // Every report raises the peak; the cron's sampling alone would depend on timing.
    info_memory(&mut connection);
    let loaded = resident_bytes(&server);
    for chunk in (0..KEYS).collect::<Vec<_>>().chunks(1000) {
        let mut pipe = redis::pipe();
        for key in chunk {
            pipe.cmd("DEL").arg(format!("key:{key}")).ignore();
        }
        pipe.query::<()>(&mut connection).unwrap();
    }
    let purged: String = redis::cmd("MEMORY")
        .arg("PURGE")
        .query(&mut connection)
        .unwrap();
    assert_eq!(purged, "OK");
    let after_del = resident_bytes(&server);
    assert!(
        after_del + SIGNIFICANT <= loaded,
        "resident set {loaded} bytes loaded, {after_del} after DEL and MEMORY PURGE"
    );
    let fields = info_memory(&mut connection);
    assert!(
        number(&fields, "used_memory_peak") >= number(&fields, "used_memory") + SIGNIFICANT,
        "the peak remembers the load: {fields:?}"
    );

    // A synchronous FLUSHALL purges by itself, as Redis's does.
    load(&mut connection);
    let reloaded = resident_bytes(&server);
    let flushed: String = redis::cmd("FLUSHALL").query(&mut connection).unwrap();
    assert_eq!(flushed, "OK");
    let after_flush = resident_bytes(&server);
    assert!(
        after_flush + SIGNIFICANT <= reloaded,
        "resident set {reloaded} bytes loaded, {after_flush} after FLUSHALL"
    );
}

/// Many small keys, deleted one by one: the key table sized for them is given back by
/// the cron (Redis resizes its dicts the same way), not kept at its peak forever.
#[test]
fn the_key_table_shrinks_after_most_keys_are_deleted() {
    const SMALL_KEYS: usize = 200_000;
    let (_server, mut connection) = start();
    let empty = number(&info_memory(&mut connection), "used_memory");
    let keys: Vec<usize> = (0..SMALL_KEYS).collect();
    for chunk in keys.chunks(5000) {
        let mut pipe = redis::pipe();
        for key in chunk {
            pipe.cmd("SET").arg(format!("k{key}")).arg("v").ignore();
        }
        pipe.query::<()>(&mut connection).unwrap();
    }
    let loaded = number(&info_memory(&mut connection), "used_memory");
    assert!(loaded > empty + (8 << 20), "{empty} -> {loaded}");
    for chunk in keys.chunks(5000) {
        let mut pipe = redis::pipe();
        for key in chunk {
            pipe.cmd("DEL").arg(format!("k{key}")).ignore();
        }
        pipe.query::<()>(&mut connection).unwrap();
    }
    // The cron runs ten times a second; give it three seconds.
    let mut used = u64::MAX;
    for _ in 0..60 {
        used = number(&info_memory(&mut connection), "used_memory");
        if used < empty + (loaded - empty) / 10 {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("used_memory {empty} empty, {loaded} with {SMALL_KEYS} keys, still {used} after deleting them");
}

fn usage(connection: &mut Connection, args: &[&str]) -> redis::RedisResult<Option<i64>> {
    redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(args)
        .query(connection)
}

/// MEMORY USAGE, as redis-cli's `--memkeys` and RedisInsight call it: nil for a missing
/// key, a size that follows what the value holds, Redis's errors for bad options.
#[test]
fn memory_usage_estimates_a_key_and_its_value() {
    let (_server, mut connection) = start();
    assert_eq!(usage(&mut connection, &["missing"]).unwrap(), None);
    let _: () = redis::cmd("SET")
        .arg("small")
        .arg("v")
        .query(&mut connection)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("large")
        .arg(vec![b'x'; 10_000])
        .query(&mut connection)
        .unwrap();
    let small = usage(&mut connection, &["small"]).unwrap().unwrap();
    let large = usage(&mut connection, &["large"]).unwrap().unwrap();
    assert!(small > 0 && small < 200, "{small}");
    assert!(
        large >= small + 10_000 && large < small + 11_000,
        "{small} {large}"
    );

    let elements: Vec<String> = (0..10_000).map(|n| format!("element-{n:06}")).collect();
    let _: () = redis::cmd("RPUSH")
        .arg("list")
        .arg(&elements[..10])
        .query(&mut connection)
        .unwrap();
    let short_list = usage(&mut connection, &["list"]).unwrap().unwrap();
    let _: () = redis::cmd("RPUSH")
        .arg("list")
        .arg(&elements[10..])
        .query(&mut connection)
        .unwrap();
    let long_list = usage(&mut connection, &["list"]).unwrap().unwrap();
    assert!(long_list > short_list + 100_000, "{short_list} {long_list}");

    // A hash whose fields grow: the first five say little, SAMPLES 0 looks at all.
    for n in 0..1000 {
        let _: () = redis::cmd("HSET")
            .arg("hash")
            .arg(format!("f{n}"))
            .arg(vec![b'v'; if n < 5 { 1 } else { 1000 }])
            .query(&mut connection)
            .unwrap();
    }
    let sampled = usage(&mut connection, &["hash"]).unwrap().unwrap();
    let exact = usage(&mut connection, &["hash", "SAMPLES", "0"])
        .unwrap()
        .unwrap();
    assert!(
        exact > 990_000 && exact > sampled + 900_000,
        "{sampled} {exact}"
    );

    let _: () = redis::cmd("XADD")
        .arg("stream")
        .arg("*")
        .arg("field")
        .arg("value")
        .query(&mut connection)
        .unwrap();
    assert!(usage(&mut connection, &["stream"]).unwrap().unwrap() > 0);

    for (args, error) in [
        (&["small", "SAMPLES"][..], "syntax error"),
        (&["small", "FOO", "1"][..], "syntax error"),
        (&["small", "SAMPLES", "-1"][..], "syntax error"),
        (&["small", "SAMPLES", "many"][..], "not an integer"),
    ] {
        let err = usage(&mut connection, args).unwrap_err();
        assert!(err.to_string().contains(error), "{args:?}: {err}");
    }
    let err = redis::cmd("MEMORY")
        .arg("USAGE")
        .query::<Option<i64>>(&mut connection)
        .unwrap_err();
    assert!(
        err.to_string().contains("wrong number of arguments"),
        "{err}"
    );
}

/// Reading a hash must not make it bigger: its fields and values used to be `Bytes`
/// built by a copy, which a reply's clone turned into shared buffers with an allocation
/// each (HGETALL of 100 000 small fields: +65 bytes per field, kept).
#[test]
fn reading_a_hash_does_not_grow_it() {
    const FIELDS: usize = 50_000;
    let (_server, mut connection) = start();
    for chunk in (0..FIELDS).collect::<Vec<_>>().chunks(1000) {
        let mut hset = redis::cmd("HSET");
        hset.arg("h");
        for field in chunk {
            hset.arg(format!("field:{field}"))
                .arg(format!("value:{field}"));
        }
        hset.query::<()>(&mut connection).unwrap();
    }
    let used = |connection: &mut Connection| number(&info_memory(connection), "used_memory");
    let before = used(&mut connection);
    for _ in 0..2 {
        let all: Vec<String> = redis::cmd("HGETALL")
            .arg("h")
            .query(&mut connection)
            .unwrap();
        assert_eq!(all.len(), 2 * FIELDS);
        let _: Vec<String> = redis::cmd("HVALS").arg("h").query(&mut connection).unwrap();
        let _: Option<String> = redis::cmd("HGET")
            .arg("h")
            .arg("field:7")
            .query(&mut connection)
            .unwrap();
    }
    let after = used(&mut connection);
    // The replies' buffers are gone by now; allow their allocator's slack, not a
    // per-field growth (50 000 fields × 65 bytes is 3.2 MB).
    assert!(
        after < before + (512 << 10),
        "used_memory {before} before the reads, {after} after"
    );
}

/// The same for strings too long to be inline and short enough to be copied out
/// (100 bytes: a read used to add 32 bytes per key, for good).
#[test]
fn reading_strings_does_not_grow_them() {
    const KEYS_READ: usize = 50_000;
    let (_server, mut connection) = start();
    let value = vec![b'v'; 100];
    let chunks: Vec<Vec<usize>> = (0..KEYS_READ)
        .collect::<Vec<_>>()
        .chunks(1000)
        .map(<[usize]>::to_vec)
        .collect();
    for chunk in &chunks {
        let mut pipe = redis::pipe();
        for key in chunk {
            pipe.cmd("SET").arg(format!("s:{key}")).arg(&value).ignore();
        }
        pipe.query::<()>(&mut connection).unwrap();
    }
    let used = |connection: &mut Connection| number(&info_memory(connection), "used_memory");
    let before = used(&mut connection);
    for chunk in &chunks {
        let mut pipe = redis::pipe();
        for key in chunk {
            pipe.cmd("GET").arg(format!("s:{key}"));
        }
        let values: Vec<Vec<u8>> = pipe.query(&mut connection).unwrap();
        assert!(values.iter().all(|read| *read == value));
    }
    let after = used(&mut connection);
    assert!(
        after < before + (512 << 10),
        "used_memory {before} before the reads, {after} after"
    );
}
