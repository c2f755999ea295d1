//! Model-based property test for hashes: random HSET/HSETNX/HDEL/HINCRBY/HGET/HLEN
//! sequences against the store and against a `BTreeMap` of `BTreeMap`s must agree at
//! every step; a hash emptied by HDEL must disappear from the keyspace.

use std::collections::BTreeMap;

use bytes::Bytes;
use herald_store::hashes;
use herald_store::{Db, StoreError, Value};
use proptest::prelude::*;

const NOW: u64 = 1;

#[derive(Clone, Debug)]
enum Op {
    Set(u8, Vec<(u8, u8)>),
    SetNx(u8, u8, u8),
    Del(u8, Vec<u8>),
    IncrBy(u8, u8, i64),
    Get(u8, u8),
    Len(u8),
    SetString(u8),
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0u8..4;
    let field = 0u8..6;
    prop_oneof![
        (
            key.clone(),
            proptest::collection::vec((field.clone(), any::<u8>()), 1..4)
        )
            .prop_map(|(k, pairs)| Op::Set(k, pairs)),
        (key.clone(), field.clone(), any::<u8>()).prop_map(|(k, f, v)| Op::SetNx(k, f, v)),
        (key.clone(), proptest::collection::vec(field.clone(), 1..4))
            .prop_map(|(k, fields)| Op::Del(k, fields)),
        (
            key.clone(),
            field.clone(),
            prop_oneof![
                -1000i64..1000,
                Just(i64::MAX),
                Just(i64::MIN),
                Just(i64::MAX / 2 + 1)
            ]
        )
            .prop_map(|(k, f, d)| Op::IncrBy(k, f, d)),
        (key.clone(), field).prop_map(|(k, f)| Op::Get(k, f)),
        key.clone().prop_map(Op::Len),
        key.prop_map(Op::SetString),
    ]
}

fn name(n: u8) -> Bytes {
    Bytes::from(format!("k{n}"))
}

fn field(n: u8) -> Bytes {
    Bytes::from(format!("f{n}"))
}

/// A model key: a hash, or a string (to exercise WRONGTYPE).
#[derive(Clone, Debug)]
enum Model {
    Hash(BTreeMap<u8, Vec<u8>>),
    String,
}

fn hash_mut(
    model: &mut BTreeMap<u8, Model>,
    key: u8,
) -> Result<&mut BTreeMap<u8, Vec<u8>>, StoreError> {
    match model
        .entry(key)
        .or_insert_with(|| Model::Hash(BTreeMap::new()))
    {
        Model::Hash(hash) => Ok(hash),
        Model::String => Err(StoreError::WrongType),
    }
}

fn hash_ref(
    model: &BTreeMap<u8, Model>,
    key: u8,
) -> Result<Option<&BTreeMap<u8, Vec<u8>>>, StoreError> {
    match model.get(&key) {
        None => Ok(None),
        Some(Model::Hash(hash)) => Ok(Some(hash)),
        Some(Model::String) => Err(StoreError::WrongType),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn hashes_agree_with_a_btreemap(ops in proptest::collection::vec(op(), 1..60)) {
        let mut db = Db::default();
        let mut model: BTreeMap<u8, Model> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Set(k, pairs) => {
                    let args: Vec<Bytes> = pairs
                        .iter()
                        .flat_map(|(f, v)| [field(*f), Bytes::from(vec![*v])])
                        .collect();
                    let got = hashes::set(&mut db, &name(k), &args, NOW);
                    let expected = hash_mut(&mut model, k).map(|hash| {
                        pairs
                            .iter()
                            .filter(|(f, v)| hash.insert(*f, vec![*v]).is_none())
                            .count()
                    });
                    prop_assert_eq!(got, expected);
                }
                Op::SetNx(k, f, v) => {
                    let got = hashes::set_nx(&mut db, &name(k), &field(f), &Bytes::from(vec![v]), NOW);
                    let expected = hash_mut(&mut model, k).map(|hash| {
                        let new = !hash.contains_key(&f);
                        hash.entry(f).or_insert_with(|| vec![v]);
                        new
                    });
                    prop_assert_eq!(got, expected);
                }
                Op::Del(k, fields) => {
                    let args: Vec<Bytes> = fields.iter().map(|f| field(*f)).collect();
                    let got = hashes::del(&mut db, &name(k)[..], &args, NOW);
                    let expected = match model.get_mut(&k) {
                        None => Ok(0),
                        Some(Model::String) => Err(StoreError::WrongType),
                        Some(Model::Hash(hash)) => {
                            let removed = fields.iter().filter(|f| hash.remove(f).is_some()).count();
                            if hash.is_empty() {
                                model.remove(&k);
                            }
                            Ok(removed)
                        }
                    };
                    prop_assert_eq!(got, expected);
                }
                Op::IncrBy(k, f, delta) => {
                    let got = hashes::incr_by(&mut db, &name(k), &field(f), delta, NOW);
                    let expected = hash_ref(&model, k).and_then(|hash| {
                        let current = match hash.and_then(|hash| hash.get(&f)) {
                            None => 0,
                            Some(bytes) => std::str::from_utf8(bytes)
                                .ok()
                                .and_then(|text| text.parse::<i64>().ok())
                                .filter(|n| n.to_string().as_bytes() == &bytes[..])
                                .ok_or(StoreError::HashNotInteger)?,
                        };
                        current.checked_add(delta).ok_or(StoreError::Overflow)
                    });
                    if let Ok(next) = expected {
                        hash_mut(&mut model, k)
                            .map(|hash| hash.insert(f, next.to_string().into_bytes()))
                            .ok();
                    }
                    prop_assert_eq!(got, expected);
                }
                Op::Get(k, f) => {
                    let got = hashes::get(&mut db, &name(k)[..], &field(f)[..], NOW);
                    let expected = hash_ref(&model, k)
                        .map(|hash| hash.and_then(|hash| hash.get(&f)).map(|v| Bytes::from(v.clone())));
                    prop_assert_eq!(got, expected);
                }
                Op::Len(k) => {
                    let got = hashes::len(&mut db, &name(k)[..], NOW);
                    let expected = hash_ref(&model, k).map(|hash| hash.map_or(0, BTreeMap::len));
                    prop_assert_eq!(got, expected);
                }
                Op::SetString(k) => {
                    db.set(&name(k), Value::String(b"s"[..].into()), None);
                    model.insert(k, Model::String);
                }
            }
            // The keyspace holds exactly the model's keys: no empty hash is left behind.
            prop_assert_eq!(db.len(), model.len());
            for (k, entry) in &model {
                if let Model::Hash(hash) = entry {
                    prop_assert!(!hash.is_empty());
                    let all = hashes::get_all(&mut db, &name(*k)[..], NOW).unwrap_or_default();
                    let mut all: Vec<(Bytes, Bytes)> = all;
                    all.sort();
                    let expected: Vec<(Bytes, Bytes)> = hash
                        .iter()
                        .map(|(f, v)| (field(*f), Bytes::from(v.clone())))
                        .collect();
                    prop_assert_eq!(all, expected);
                }
            }
        }
    }
}
