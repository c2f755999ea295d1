//! Unit tests for [`super`]: every operation, its edges and HSCAN's guarantee.

use std::collections::HashSet;

use super::*;

const NOW: u64 = 1_000;

fn b(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

fn args(words: &[&str]) -> Vec<Bytes> {
    words.iter().map(|word| b(word)).collect()
}

fn db_with(key: &str, pairs: &[&str]) -> Db {
    let mut db = Db::default();
    set(&mut db, &b(key), &args(pairs), NOW).unwrap();
    db
}

fn string_db() -> Db {
    let mut db = Db::default();
    db.set(&b("s"), Value::String(b"x"[..].into()), None);
    db
}

#[test]
fn set_counts_new_fields_and_overwrites() {
    let mut db = Db::default();
    let h = b("h");
    assert_eq!(set(&mut db, &h, &args(&["a", "1", "b", "2"]), NOW), Ok(2));
    assert_eq!(set(&mut db, &h, &args(&["a", "3", "c", "4"]), NOW), Ok(1));
    assert_eq!(set(&mut db, &h, &args(&["d", "5", "d", "6"]), NOW), Ok(1));
    assert_eq!(get(&mut db, b"h", b"a", NOW), Ok(Some(b("3"))));
    assert_eq!(get(&mut db, b"h", b"d", NOW), Ok(Some(b("6"))));
    assert_eq!(get(&mut db, b"h", b"zz", NOW), Ok(None));
    assert_eq!(get(&mut db, b"nope", b"a", NOW), Ok(None));
    assert_eq!(len(&mut db, b"h", NOW), Ok(4));
    assert_eq!(keys(&mut db, b"h", NOW), Ok(args(&["a", "b", "c", "d"])));
    assert_eq!(values(&mut db, b"h", NOW), Ok(args(&["3", "2", "4", "6"])));
}

#[test]
fn set_with_no_pairs_creates_nothing() {
    let mut db = Db::default();
    assert_eq!(set(&mut db, &b("h"), &[], NOW), Ok(0));
    assert!(db.is_empty());
}

#[test]
fn stored_bytes_do_not_share_the_argument_buffer() {
    let buffer = Bytes::from(b"fieldvalue".to_vec());
    let mut db = Db::default();
    set(
        &mut db,
        &b("h"),
        &[buffer.slice(0..5), buffer.slice(5..)],
        NOW,
    )
    .unwrap();
    let stored = get(&mut db, b"h", b"field", NOW).unwrap().unwrap();
    assert_eq!(stored, "value");
    assert_ne!(stored.as_ptr(), buffer.slice(5..).as_ptr());
}

#[test]
fn setnx_only_creates() {
    let mut db = Db::default();
    let (h, f) = (b("h"), b("f"));
    assert_eq!(set_nx(&mut db, &h, &f, &b("1"), NOW), Ok(true));
    assert_eq!(set_nx(&mut db, &h, &f, &b("2"), NOW), Ok(false));
    assert_eq!(get(&mut db, b"h", b"f", NOW), Ok(Some(b("1"))));
}

#[test]
fn get_many_and_get_all() {
    let mut db = db_with("h", &["a", "1", "b", "2"]);
    assert_eq!(
        get_many(&mut db, b"h", &args(&["b", "x", "a"]), NOW),
        Ok(vec![Some(b("2")), None, Some(b("1"))])
    );
    assert_eq!(
        get_many(&mut db, b"nope", &args(&["a"]), NOW),
        Ok(vec![None])
    );
    assert_eq!(
        get_all(&mut db, b"h", NOW),
        Ok(vec![(b("a"), b("1")), (b("b"), b("2"))])
    );
    assert_eq!(get_all(&mut db, b"nope", NOW), Ok(vec![]));
}

#[test]
fn del_counts_and_deletes_empty_hash() {
    let mut db = db_with("h", &["a", "1", "b", "2"]);
    assert_eq!(del(&mut db, b"h", &args(&["a", "a", "x"]), NOW), Ok(1));
    assert!(db.contains(b"h", NOW));
    assert_eq!(del(&mut db, b"h", &args(&["b"]), NOW), Ok(1));
    assert!(!db.contains(b"h", NOW));
    assert!(db.is_empty());
    assert_eq!(del(&mut db, b"h", &args(&["b"]), NOW), Ok(0));
}

#[test]
fn exists_strlen_len() {
    let mut db = db_with("h", &["a", "hello", "e", ""]);
    assert_eq!(exists(&mut db, b"h", b"a", NOW), Ok(true));
    assert_eq!(exists(&mut db, b"h", b"x", NOW), Ok(false));
    assert_eq!(exists(&mut db, b"nope", b"a", NOW), Ok(false));
    assert_eq!(strlen(&mut db, b"h", b"a", NOW), Ok(5));
    assert_eq!(strlen(&mut db, b"h", b"e", NOW), Ok(0));
    assert_eq!(strlen(&mut db, b"h", b"x", NOW), Ok(0));
    assert_eq!(len(&mut db, b"nope", NOW), Ok(0));
}

#[test]
fn every_operation_rejects_other_types() {
    let mut db = string_db();
    let (s, f) = (b("s"), b("f"));
    let wrong = Err(StoreError::WrongType);
    assert_eq!(
        set(&mut db, &s, &args(&["f", "v"]), NOW),
        wrong.clone().map(|()| 0)
    );
    assert_eq!(set(&mut db, &s, &[], NOW), wrong.clone().map(|()| 0));
    assert_eq!(
        set_nx(&mut db, &s, &f, &f, NOW),
        wrong.clone().map(|()| true)
    );
    assert_eq!(get(&mut db, b"s", b"f", NOW), wrong.clone().map(|()| None));
    assert_eq!(
        get_many(&mut db, b"s", std::slice::from_ref(&f), NOW),
        wrong.clone().map(|()| vec![])
    );
    assert_eq!(get_all(&mut db, b"s", NOW), wrong.clone().map(|()| vec![]));
    assert_eq!(keys(&mut db, b"s", NOW), wrong.clone().map(|()| vec![]));
    assert_eq!(values(&mut db, b"s", NOW), wrong.clone().map(|()| vec![]));
    assert_eq!(
        del(&mut db, b"s", std::slice::from_ref(&f), NOW),
        wrong.clone().map(|()| 0)
    );
    assert_eq!(
        exists(&mut db, b"s", b"f", NOW),
        wrong.clone().map(|()| false)
    );
    assert_eq!(len(&mut db, b"s", NOW), wrong.clone().map(|()| 0));
    assert_eq!(strlen(&mut db, b"s", b"f", NOW), wrong.clone().map(|()| 0));
    assert_eq!(incr_by(&mut db, &s, &f, 1, NOW), wrong.clone().map(|()| 0));
    assert_eq!(
        incr_by_float(&mut db, &s, &f, 1.0, NOW),
        wrong.clone().map(|()| Bytes::new())
    );
    assert_eq!(
        random_field(&mut db, b"s", NOW),
        wrong.clone().map(|()| None)
    );
    assert_eq!(
        random_fields(&mut db, b"s", 0, NOW),
        wrong.clone().map(|()| vec![])
    );
    assert_eq!(
        scan(&mut db, b"s", 0, 10, None, NOW),
        wrong.map(|()| ScanPage::default())
    );
    assert_eq!(strings_value(&mut db), "x");
}

fn strings_value(db: &mut Db) -> Bytes {
    crate::strings::get(db, b"s", NOW)
        .unwrap()
        .unwrap()
        .to_bytes()
}

#[test]
fn expired_hash_reads_as_missing() {
    let mut db = db_with("h", &["a", "1"]);
    assert!(db.set_expiry(b"h", Some(NOW + 10), NOW));
    assert_eq!(len(&mut db, b"h", NOW + 10), Ok(0));
    assert_eq!(set(&mut db, &b("h"), &args(&["b", "2"]), NOW + 10), Ok(1));
    assert_eq!(keys(&mut db, b"h", NOW + 10), Ok(args(&["b"])));
}

#[test]
fn incr_by_counts_from_zero_and_checks_values() {
    let mut db = Db::default();
    let (h, f) = (b("h"), b("f"));
    assert_eq!(incr_by(&mut db, &h, &f, 5, NOW), Ok(5));
    assert_eq!(incr_by(&mut db, &h, &f, -7, NOW), Ok(-2));
    assert_eq!(get(&mut db, b"h", b"f", NOW), Ok(Some(b("-2"))));
    set(&mut db, &h, &args(&["big", &i64::MAX.to_string()]), NOW).unwrap();
    assert_eq!(
        incr_by(&mut db, &h, &b("big"), 1, NOW),
        Err(StoreError::Overflow)
    );
    assert_eq!(incr_by(&mut db, &h, &b("big"), -1, NOW), Ok(i64::MAX - 1));
    for bad in ["x", " 1", "1.5", "01", "-0", ""] {
        set(&mut db, &h, &args(&["bad", bad]), NOW).unwrap();
        assert_eq!(
            incr_by(&mut db, &h, &b("bad"), 1, NOW),
            Err(StoreError::HashNotInteger),
            "{bad:?}"
        );
    }
    assert_eq!(
        StoreError::HashNotInteger.to_string(),
        "ERR hash value is not an integer"
    );
}

#[test]
fn incr_by_float_formats_like_redis() {
    let mut db = Db::default();
    let (h, f) = (b("h"), b("f"));
    assert_eq!(incr_by_float(&mut db, &h, &f, 10.5, NOW), Ok(b("10.5")));
    assert_eq!(incr_by_float(&mut db, &h, &f, 0.1, NOW), Ok(b("10.6")));
    assert_eq!(incr_by_float(&mut db, &h, &f, -10.6, NOW), Ok(b("0")));
    assert_eq!(incr_by_float(&mut db, &h, &f, 5e3, NOW), Ok(b("5000")));
    assert_eq!(get(&mut db, b"h", b"f", NOW), Ok(Some(b("5000"))));
    set(
        &mut db,
        &h,
        &args(&["i", "3", "bad", "1x", "max", "1.7e308"]),
        NOW,
    )
    .unwrap();
    assert_eq!(incr_by_float(&mut db, &h, &b("i"), 1.5, NOW), Ok(b("4.5")));
    assert_eq!(
        incr_by_float(&mut db, &h, &b("bad"), 1.0, NOW),
        Err(StoreError::HashNotFloat)
    );
    assert_eq!(
        incr_by_float(&mut db, &h, &b("max"), 1.7e308, NOW),
        Err(StoreError::NanOrInfinity)
    );
    assert_eq!(
        StoreError::HashNotFloat.to_string(),
        "ERR hash value is not a float"
    );
}

#[test]
fn keyspace_events_in_redis_order() {
    let mut keyspace = crate::Keyspace::default();
    keyspace.set_notify_flags(events::KEYSPACE | events::ALL);
    let db = keyspace.db(0).unwrap();
    let (h, f) = (b("h"), b("f"));
    set(db, &h, &args(&["f", "1"]), NOW).unwrap();
    set_nx(db, &h, &f, &f, NOW).unwrap();
    set_nx(db, &h, &b("g"), &f, NOW).unwrap();
    incr_by(db, &h, &f, 1, NOW).unwrap();
    incr_by_float(db, &h, &f, 1.5, NOW).unwrap();
    del(db, b"h", &args(&["zz"]), NOW).unwrap();
    del(db, b"h", &args(&["f"]), NOW).unwrap();
    del(db, b"h", &args(&["g"]), NOW).unwrap();
    let names: Vec<&str> = db.take_events().iter().map(|event| event.name).collect();
    assert_eq!(
        names,
        [
            "hset",
            "hset",
            "hincrby",
            "hincrbyfloat",
            "hdel",
            "hdel",
            "del"
        ]
    );
}

#[test]
fn random_field_without_count() {
    let mut db = db_with("h", &["a", "1", "b", "2"]);
    for _ in 0..20 {
        let field = random_field(&mut db, b"h", NOW).unwrap().unwrap();
        assert!(field == "a" || field == "b");
    }
    assert_eq!(random_field(&mut db, b"nope", NOW), Ok(None));
}

#[test]
fn random_fields_count_semantics() {
    let pairs: Vec<String> = (0..10)
        .flat_map(|i| [format!("f{i}"), format!("v{i}")])
        .collect();
    let pairs: Vec<&str> = pairs.iter().map(String::as_str).collect();
    let mut db = db_with("h", &pairs);
    // Positive: distinct, at most the size.
    for count in [1, 3, 9] {
        let got = random_fields(&mut db, b"h", count, NOW).unwrap();
        assert_eq!(got.len(), count as usize);
        let distinct: HashSet<_> = got.iter().map(|(f, _)| f.clone()).collect();
        assert_eq!(distinct.len(), got.len());
        for (field, value) in &got {
            assert_eq!(field[1..], value[1..]);
        }
    }
    for count in [10, 11, 1000, i64::MAX] {
        let got = random_fields(&mut db, b"h", count, NOW).unwrap();
        assert_eq!(got, get_all(&mut db, b"h", NOW).unwrap());
    }
    // Negative: exactly |count|, repeats allowed (and certain with 100 draws of 10).
    let got = random_fields(&mut db, b"h", -100, NOW).unwrap();
    assert_eq!(got.len(), 100);
    let distinct: HashSet<_> = got.iter().map(|(f, _)| f.clone()).collect();
    assert!(distinct.len() <= 10);
    assert_eq!(random_fields(&mut db, b"h", -1, NOW).unwrap().len(), 1);
    assert_eq!(random_fields(&mut db, b"h", 0, NOW), Ok(vec![]));
    assert_eq!(random_fields(&mut db, b"nope", 5, NOW), Ok(vec![]));
    assert_eq!(random_fields(&mut db, b"nope", -5, NOW), Ok(vec![]));
}

fn full_scan(db: &mut Db, count: usize, pattern: Option<&Glob>) -> Vec<Bytes> {
    let mut cursor = 0;
    let mut seen = Vec::new();
    loop {
        let page = scan(db, b"h", cursor, count, pattern, NOW).unwrap();
        seen.extend(page.entries.into_iter().map(|(field, _)| field));
        if page.cursor == 0 {
            return seen;
        }
        cursor = page.cursor;
    }
}

fn numbered(n: usize) -> Db {
    let pairs: Vec<String> = (0..n)
        .flat_map(|i| [format!("f{i}"), format!("{i}")])
        .collect();
    let pairs: Vec<&str> = pairs.iter().map(String::as_str).collect();
    db_with("h", &pairs)
}

#[test]
fn scan_returns_every_field_once_when_nothing_changes() {
    for count in [1, 3, 10, 1000] {
        let mut db = numbered(57);
        let mut seen = full_scan(&mut db, count, None);
        assert_eq!(seen.len(), 57);
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 57);
    }
    let mut db = numbered(3);
    let page = scan(&mut db, b"h", 0, SCAN_DEFAULT_COUNT, None, NOW).unwrap();
    assert_eq!(page.cursor, 0);
    assert_eq!(page.entries.len(), 3);
    assert_eq!(
        scan(&mut db, b"nope", 0, 10, None, NOW),
        Ok(ScanPage::default())
    );
}

#[test]
fn small_hash_scans_in_insertion_order() {
    let mut db = db_with("h", &["c", "1", "a", "2", "b", "3"]);
    let page = scan(&mut db, b"h", 0, SCAN_DEFAULT_COUNT, None, NOW).unwrap();
    let fields: Vec<Bytes> = page.entries.into_iter().map(|(field, _)| field).collect();
    assert_eq!(fields, args(&["c", "a", "b"]));
}

#[test]
fn scan_match_filters_after_visiting() {
    let mut db = numbered(30);
    let glob = Glob::new(b"f1*");
    let mut seen = full_scan(&mut db, 4, Some(&glob));
    seen.sort();
    let expected: Vec<Bytes> = {
        let mut names: Vec<Bytes> = (0..30)
            .map(|i| format!("f{i}"))
            .filter(|name| name.starts_with("f1"))
            .map(Bytes::from)
            .collect();
        names.sort();
        names
    };
    assert_eq!(seen, expected);
}

#[test]
fn scan_cursor_past_the_end_is_clamped() {
    let mut db = numbered(5);
    let page = scan(&mut db, b"h", u64::MAX, 2, None, NOW).unwrap();
    assert_eq!(page.cursor, 3);
    assert_eq!(page.entries.len(), 2);
}

#[test]
fn scan_returns_fields_present_throughout_despite_deletes_and_inserts() {
    // Delete and insert between every page; fields never touched must all come back.
    for seed in 0..40u64 {
        let mut db = numbered(60);
        let mut cursor = 0;
        let mut seen = HashSet::new();
        let mut step = seed;
        loop {
            let page = scan(&mut db, b"h", cursor, 7, None, NOW).unwrap();
            seen.extend(page.entries.into_iter().map(|(field, _)| field));
            if page.cursor == 0 {
                break;
            }
            cursor = page.cursor;
            // Churn: delete a pseudo-random victim from the "d" group (f0..f29) and
            // add a new field.
            step = step
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let victim = format!("f{}", (step >> 33) % 30);
            del(&mut db, b"h", &[Bytes::from(victim)], NOW).unwrap();
            let fresh = format!("new{step}");
            set(&mut db, &b("h"), &[Bytes::from(fresh), b("x")], NOW).unwrap();
        }
        for i in 30..60 {
            assert!(
                seen.contains(&Bytes::from(format!("f{i}"))),
                "seed {seed}: f{i} missed"
            );
        }
    }
}

#[test]
fn random_fields_with_repeats_are_capped() {
    let mut db = db_with("h", &["f", "v"]);
    let too_many = -(RANDOM_WITH_REPEATS_MAX as i64) - 1;
    assert_eq!(
        random_fields(&mut db, b"h", too_many, NOW),
        Err(StoreError::RandomCountTooLarge)
    );
    assert_eq!(random_fields(&mut db, b"h", -3, NOW).unwrap().len(), 3);
}
