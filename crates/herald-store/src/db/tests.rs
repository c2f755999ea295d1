//! Unit tests of `Db`: expiry, scans, watchers and how keys are stored.

use super::*;
use crate::error::StoreError;
use crate::keyspace::{Keyspace, Store};

fn s(value: &str) -> Value {
    Value::String(value.as_bytes().into())
}

fn k(key: &'static str) -> Bytes {
    Bytes::from_static(key.as_bytes())
}

#[test]
fn set_copies_a_new_key_once_and_keeps_the_stored_one_on_overwrite() {
    let mut db = Db::default();
    let request = Bytes::from_static(b"*3 SET user:1 v");
    let key = request.slice(7..13);
    db.set(&key, s("1"), Some(5_000));
    let (stored, _) = db.entries.get_key_value(&b"user:1"[..]).unwrap();
    let stored_at = stored.as_ptr();
    assert_ne!(
        stored_at,
        key.as_ptr(),
        "a new key is copied out of the request"
    );
    assert!(db.volatile.contains(&b"user:1"[..]));
    // Overwrites keep the stored key and follow the expiry given each time.
    db.set(&key, s("2"), None);
    let (stored, entry) = db.entries.get_key_value(&b"user:1"[..]).unwrap();
    assert_eq!(stored.as_ptr(), stored_at);
    assert_eq!(entry.expires_at_ms(), None);
    assert!(!db.volatile.contains(&b"user:1"[..]));
    db.set(&key, s("3"), Some(9_000));
    assert!(db.volatile.contains(&b"user:1"[..]));
    assert_eq!(db.get(b"user:1", 0), Some(&s("3")));
    assert_eq!(db.get(b"user:1", 9_000), None, "expired on read");
    assert!(!db.volatile.contains(&b"user:1"[..]));
}

#[test]
fn lazy_expiry_on_access() {
    let mut db = Db::default();
    db.set(&k("a"), s("1"), Some(1_000));
    assert_eq!(db.get(b"a", 999), Some(&s("1")));
    assert_eq!(db.get(b"a", 1_000), None);
    assert_eq!(db.len(), 0);
    assert_eq!(db.volatile_len(), 0);
    assert_eq!(db.expired_keys(), 1);
}

#[test]
fn set_clears_or_keeps_ttl() {
    let mut db = Db::default();
    db.set(&k("a"), s("1"), Some(5_000));
    db.set_keep_ttl(&k("a"), s("2"), 0);
    assert_eq!(db.expiry(b"a", 0), Expiry::At(5_000));
    db.set(&k("a"), s("3"), None);
    assert_eq!(db.expiry(b"a", 0), Expiry::Persistent);
    assert_eq!(db.volatile_len(), 0);
    assert_eq!(db.expiry(b"nope", 0), Expiry::Missing);
}

#[test]
fn expiry_in_the_past_deletes() {
    let mut db = Db::default();
    db.set(&k("a"), s("1"), None);
    assert!(db.set_expiry(b"a", Some(10), 10));
    assert!(!db.contains(b"a", 10));
    assert!(!db.set_expiry(b"a", Some(100), 10));
}

#[test]
fn active_expiry_reclaims_without_access() {
    let mut db = Db::default();
    for i in 0..10_000 {
        db.set(&Bytes::from(format!("k{i}")), s("v"), Some(100));
    }
    db.set(&k("keep"), s("v"), Some(1_000_000));
    let mut removed = 0;
    for _ in 0..10_000 {
        removed += db.active_expire(200);
        if db.volatile_len() == 1 {
            break;
        }
    }
    assert_eq!(removed, 10_000);
    assert_eq!(db.len(), 1);
    assert!(db.contains(b"keep", 200));
}

#[test]
fn keys_skips_expired() {
    let mut db = Db::default();
    db.set(&k("user:1"), s("a"), None);
    db.set(&k("user:2"), s("b"), Some(10));
    db.set(&k("other"), s("c"), None);
    let keys = db.keys(&Glob::new(b"user:*"), 20);
    assert_eq!(keys, vec![k("user:1")]);
}

#[test]
fn move_and_swap() {
    let mut keyspace = Keyspace::default();
    keyspace.db(0).unwrap().set(&k("a"), s("1"), Some(99_999));
    assert_eq!(keyspace.move_key(b"a", 0, 1, 0), Ok(true));
    assert_eq!(keyspace.db(1).unwrap().expiry(b"a", 0), Expiry::At(99_999));
    assert_eq!(keyspace.move_key(b"a", 0, 1, 0), Ok(false));
    assert_eq!(
        keyspace.move_key(b"a", 1, 1, 0),
        Err(StoreError::SameObject)
    );
    keyspace.swap(0, 1).unwrap();
    assert!(keyspace.db(0).unwrap().contains(b"a", 0));
    assert!(keyspace.db(16).is_err());
    assert_eq!(keyspace.swap(0, 16), Err(StoreError::DbIndexOutOfRange));
}

#[test]
fn scan_returns_every_stable_key_despite_deletions() {
    let mut db = Db::default();
    for i in 0..500 {
        db.set(&Bytes::from(format!("k{i}")), s("v"), None);
    }
    let mut seen = std::collections::HashSet::new();
    let mut cursor = 0;
    let mut step = 0;
    loop {
        let (next, keys) = db.scan(cursor, 7, None, None, 0);
        seen.extend(keys);
        // Delete some keys that are not part of the stable set while scanning.
        if step < 50 {
            db.remove(format!("k{}", 450 + step).as_bytes(), 0);
        }
        step += 1;
        if next == 0 {
            break;
        }
        cursor = next;
    }
    for i in 0..450 {
        assert!(seen.contains(&Bytes::from(format!("k{i}"))), "k{i} missed");
    }
}

#[test]
fn scan_filters_by_pattern_type_and_expiry() {
    let mut db = Db::default();
    db.set(&k("user:1"), s("a"), None);
    db.set(&k("user:2"), s("a"), Some(5));
    db.set(&k("job:1"), s("a"), None);
    let (cursor, keys) = db.scan(0, 100, Some(&Glob::new(b"user:*")), Some("string"), 10);
    assert_eq!((cursor, keys), (0, vec![k("user:1")]));
    let (_, keys) = db.scan(0, 100, None, Some("list"), 10);
    assert!(keys.is_empty());
}

#[test]
fn copy_keeps_ttl_and_respects_replace() {
    let mut keyspace = Keyspace::default();
    keyspace.db(0).unwrap().set(&k("a"), s("1"), Some(9_000));
    keyspace.db(0).unwrap().set(&k("b"), s("2"), None);
    assert_eq!(keyspace.copy_key(b"a", &k("b"), 0, 0, false, 0), Ok(false));
    assert_eq!(keyspace.copy_key(b"a", &k("b"), 0, 0, true, 0), Ok(true));
    assert_eq!(keyspace.db(0).unwrap().expiry(b"b", 0), Expiry::At(9_000));
    assert_eq!(keyspace.copy_key(b"a", &k("a"), 0, 3, false, 0), Ok(true));
    assert_eq!(
        keyspace.copy_key(b"a", &k("a"), 0, 0, false, 0),
        Err(StoreError::SameObject)
    );
    assert_eq!(keyspace.copy_key(b"zz", &k("y"), 0, 0, false, 0), Ok(false));
}

#[test]
fn atomically_reenters_on_its_thread_and_excludes_others() {
    let store = Arc::new(Store::new());
    let other = Arc::clone(&store);
    let (started, wait_started) = std::sync::mpsc::channel();
    let result = store.atomically(|| {
        store.with(|keyspace| keyspace.db(0).map(|db| db.set(&k("a"), s("1"), None)))?;
        let writer = std::thread::spawn(move || {
            let _ = started.send(());
            other.with(|keyspace| keyspace.db(0).map(|db| db.get(b"a", 0).cloned()))
        });
        wait_started.recv().ok();
        std::thread::sleep(std::time::Duration::from_millis(50));
        // The other thread is still blocked: this transaction is not finished.
        assert!(!writer.is_finished());
        store.with(|keyspace| keyspace.db(0).map(|db| db.set(&k("a"), s("2"), None)))?;
        Ok::<_, StoreError>(writer)
    });
    let seen = result.unwrap().join().unwrap().unwrap();
    assert_eq!(
        seen,
        Some(s("2")),
        "the other thread saw only the final state"
    );
}

#[test]
fn watchers_are_told_of_changes_expiry_and_flushes() {
    let mut keyspace = Keyspace::default();
    let flag = Arc::new(AtomicBool::new(false));
    let db = keyspace.db(0).unwrap();
    db.watch(&k("w"), &flag);
    db.set(&k("other"), s("1"), None);
    db.notify(events::STRING, "set", b"other");
    assert!(!flag.load(Ordering::Relaxed), "another key changed");
    db.set(&k("w"), s("1"), Some(10));
    db.notify(events::STRING, "set", b"w");
    assert!(flag.swap(false, Ordering::Relaxed));
    assert_eq!(db.get(b"w", 20), None, "expired");
    assert!(
        flag.swap(false, Ordering::Relaxed),
        "expiry counts as a change"
    );
    db.set(&k("w"), s("1"), None);
    keyspace.swap(0, 1).unwrap();
    assert!(
        flag.swap(false, Ordering::Relaxed),
        "SWAPDB replaced the watched key"
    );
    keyspace.db(0).unwrap().clear();
    assert!(
        !flag.load(Ordering::Relaxed),
        "flushing a db without the key"
    );
    keyspace.db(0).unwrap().unwatch(b"w", &flag);
    keyspace.db(0).unwrap().set(&k("w"), s("2"), None);
    keyspace.db(0).unwrap().notify(events::STRING, "set", b"w");
    assert!(!flag.load(Ordering::Relaxed), "unwatched");
}

#[test]
fn random_key_returns_live_keys_only() {
    let mut db = Db::default();
    assert_eq!(db.random_key(0), None);
    db.set(&k("dead"), s("x"), Some(1));
    assert_eq!(db.random_key(5), None);
    db.set(&k("live"), s("x"), None);
    assert_eq!(db.random_key(5), Some(k("live")));
}

#[test]
fn tables_that_deletes_left_mostly_empty_are_shrunk() {
    let mut db = Db::default();
    for n in 0..100_000 {
        db.set(format!("key:{n}").as_bytes(), s("v"), Some(u64::MAX / 2));
    }
    let peak = (db.entries.capacity(), db.volatile.capacity());
    assert!(!db.shrink_if_sparse(), "a full table stays");
    for n in 0..99_000 {
        assert!(db.remove(format!("key:{n}").as_bytes(), 0).is_some());
    }
    assert!(db.shrink_if_sparse());
    assert!(db.entries.capacity() < peak.0 / 20, "{peak:?}");
    assert!(db.volatile.capacity() < peak.1 / 20, "{peak:?}");
    assert!(!db.shrink_if_sparse(), "already shrunk");
    // What is left is all there.
    assert_eq!(db.entries.len(), 1000);
    assert!(db.entries.contains_key(&b"key:99999"[..]));
    assert!(db.volatile.contains(&b"key:99000"[..]));
}

#[test]
fn a_sparse_table_with_many_keys_left_waits_and_small_tables_are_left_alone() {
    let mut db = Db::default();
    for n in 0..(SHRINK_MAX_ENTRIES * 11) {
        db.set(format!("key:{n}").as_bytes(), s("v"), None);
    }
    let capacity = db.entries.capacity();
    for n in (SHRINK_MAX_ENTRIES + 1)..(SHRINK_MAX_ENTRIES * 11) {
        db.remove(format!("key:{n}").as_bytes(), 0);
    }
    // Under 10 % full, but a shrink would copy more than SHRINK_MAX_ENTRIES keys.
    assert!(!db.shrink_if_sparse());
    db.remove(b"key:0", 0);
    assert!(db.shrink_if_sparse());
    assert!(db.entries.capacity() < capacity / 4, "{capacity}");
    let mut small = Db::default();
    for n in 0..1000 {
        small.set(format!("key:{n}").as_bytes(), s("v"), None);
    }
    for n in 0..1000 {
        small.remove(format!("key:{n}").as_bytes(), 0);
    }
    assert!(!small.shrink_if_sparse(), "below SHRINK_MIN_CAPACITY");
}
