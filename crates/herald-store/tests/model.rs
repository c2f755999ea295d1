//! Model-based property test: random command sequences against the store and against a
//! plain `BTreeMap` model with explicit expiry times must agree at every step.

use std::collections::BTreeMap;

use bytes::Bytes;
use herald_store::db::Expiry;
use herald_store::strings::{self, SetCondition, SetExpiry, SetOptions};
use herald_store::value::StringValue;
use herald_store::{Db, StoreError};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Set(u8, u8, Option<u64>, u8),
    Get(u8),
    Del(u8),
    Incr(u8, i8),
    Append(u8, u8),
    Expire(u8, u64),
    Persist(u8),
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0u8..6;
    prop_oneof![
        (
            key.clone(),
            any::<u8>(),
            proptest::option::of(1u64..50),
            0u8..3
        )
            .prop_map(|(k, v, ttl, c)| Op::Set(k, v, ttl, c)),
        key.clone().prop_map(Op::Get),
        key.clone().prop_map(Op::Del),
        (key.clone(), any::<i8>()).prop_map(|(k, d)| Op::Incr(k, d)),
        (key.clone(), any::<u8>()).prop_map(|(k, v)| Op::Append(k, v)),
        (key.clone(), 0u64..50).prop_map(|(k, t)| Op::Expire(k, t)),
        key.prop_map(Op::Persist),
        (0u64..30).prop_map(Op::Advance),
    ]
}

#[derive(Default)]
struct Model {
    map: BTreeMap<u8, (Vec<u8>, Option<u64>)>,
}

impl Model {
    fn live(&mut self, key: u8, now: u64) -> Option<&mut (Vec<u8>, Option<u64>)> {
        if self
            .map
            .get(&key)
            .is_some_and(|(_, at)| at.is_some_and(|at| at <= now))
        {
            self.map.remove(&key);
        }
        self.map.get_mut(&key)
    }
}

/// Half the names are longer than a slot holds inline (30 bytes), so both forms of a
/// stored name are exercised.
fn name(key: u8) -> Bytes {
    if key.is_multiple_of(2) {
        Bytes::from(format!("key:{key}"))
    } else {
        Bytes::from(format!("a-name-longer-than-a-slot-holds-inline:{key}"))
    }
}

/// A value of `v` repeated; the lengths straddle what a slot holds inline (38 bytes).
fn value_of(v: u8) -> Vec<u8> {
    let len = [1, 37, 38, 39, 64][usize::from(v % 5)];
    vec![v; len]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn store_agrees_with_model(ops in proptest::collection::vec(op(), 1..80)) {
        let mut db = Db::default();
        let mut model = Model::default();
        let mut now = 1_000u64;
        for op in ops {
            match op {
                Op::Set(k, v, ttl, condition) => {
                    let exists = model.live(k, now).is_some();
                    let (condition, allowed) = match condition {
                        0 => (SetCondition::Always, true),
                        1 => (SetCondition::IfMissing, !exists),
                        _ => (SetCondition::IfExists, exists),
                    };
                    let options = SetOptions {
                        condition,
                        expiry: ttl.map_or(SetExpiry::Clear, |t| SetExpiry::At(now + t)),
                        get: false,
                    };
                    let outcome = strings::set(&mut db, &name(k), Bytes::from(value_of(v)), options, now).unwrap();
                    prop_assert_eq!(outcome.written, allowed);
                    if allowed {
                        model.map.insert(k, (value_of(v), ttl.map(|t| now + t)));
                    }
                }
                Op::Get(k) => {
                    let expected = model.live(k, now).map(|(v, _)| StringValue::from(&v[..]));
                    prop_assert_eq!(strings::get(&mut db, &name(k), now).unwrap(), expected);
                }
                Op::Del(k) => {
                    let expected = model.live(k, now).is_some();
                    model.map.remove(&k);
                    prop_assert_eq!(db.remove(&name(k), now).is_some(), expected);
                }
                Op::Incr(k, delta) => {
                    let result = strings::incr_by(&mut db, &name(k), i64::from(delta), now);
                    match model.live(k, now) {
                        None => {
                            prop_assert_eq!(result, Ok(i64::from(delta)));
                            model.map.insert(k, (delta.to_string().into_bytes(), None));
                        }
                        Some((value, _)) => match strings::parse_integer(value) {
                            Some(n) => {
                                let next = n + i64::from(delta);
                                prop_assert_eq!(result, Ok(next));
                                *value = next.to_string().into_bytes();
                            }
                            None => prop_assert_eq!(result, Err(StoreError::NotInteger)),
                        },
                    }
                }
                Op::Append(k, v) => {
                    let len = strings::append(&mut db, &name(k), &[v], 1 << 20, now).unwrap();
                    match model.live(k, now) {
                        Some((value, _)) => value.push(v),
                        None => {
                            model.map.insert(k, (vec![v], None));
                        }
                    }
                    prop_assert_eq!(len, model.map[&k].0.len());
                }
                Op::Expire(k, t) => {
                    let exists = model.live(k, now).is_some();
                    prop_assert_eq!(db.set_expiry(&name(k), Some(now + t), now), exists);
                    if exists {
                        if t == 0 {
                            model.map.remove(&k);
                        } else if let Some(entry) = model.map.get_mut(&k) {
                            entry.1 = Some(now + t);
                        }
                    }
                }
                Op::Persist(k) => {
                    let exists = model.live(k, now).is_some();
                    prop_assert_eq!(db.set_expiry(&name(k), None, now), exists);
                    if let Some(entry) = model.map.get_mut(&k) {
                        entry.1 = None;
                    }
                }
                Op::Advance(ms) => {
                    now += ms;
                    if ms % 3 == 0 {
                        db.active_expire(now);
                    }
                }
            }
            for k in 0..6 {
                let expected = match model.live(k, now) {
                    None => Expiry::Missing,
                    Some((_, None)) => Expiry::Persistent,
                    Some((_, Some(at))) => Expiry::At(*at),
                };
                prop_assert_eq!(db.expiry(&name(k), now), expected);
            }
        }
    }
}
