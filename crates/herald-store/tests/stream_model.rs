//! Model-based test of consumer groups: random XADD / XDEL / XREADGROUP (new and history)
//! / XACK / XCLAIM / XAUTOCLAIM sequences on a real database, checked after every step
//! against a plain model of the entries, the group's position and its pending entries.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use bytes::Bytes;
use herald_store::stream::claim::{self, ClaimOptions, PendingQuery};
use herald_store::stream::consume::{self, GroupFrom, GroupStart};
use herald_store::stream::id::AddId;
use herald_store::stream::ops;
use herald_store::stream::StreamId;
use herald_store::Db;
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Add,
    Delete(usize),
    ReadNew(u8, usize),
    ReadHistory(u8),
    Ack(usize),
    Claim(u8, usize),
    AutoClaim(u8, usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Add),
        1 => (0usize..64).prop_map(Op::Delete),
        3 => (0u8..3, 0usize..4).prop_map(|(c, n)| Op::ReadNew(c, n)),
        1 => (0u8..3).prop_map(Op::ReadHistory),
        2 => (0usize..64).prop_map(Op::Ack),
        2 => (0u8..3, 0usize..64).prop_map(|(c, i)| Op::Claim(c, i)),
        1 => (0u8..3, 1usize..5).prop_map(|(c, n)| Op::AutoClaim(c, n)),
    ]
}

#[derive(Default)]
struct Model {
    entries: BTreeMap<StreamId, Bytes>,
    added: Vec<StreamId>,
    last_delivered: StreamId,
    /// id -> (consumer, deliveries)
    pel: BTreeMap<StreamId, (u8, u64)>,
}

fn consumer(c: u8) -> Bytes {
    Bytes::from(format!("consumer-{c}"))
}

const KEY: &[u8] = b"jobs";
const GROUP: &[u8] = b"workers";

fn check(db: &mut Db, model: &Model, now: u64) -> Result<(), TestCaseError> {
    let key = Bytes::from_static(KEY);
    prop_assert_eq!(ops::len(db, &key, now).unwrap(), model.entries.len());
    let query = PendingQuery {
        start: StreamId::MIN,
        end: StreamId::MAX,
        count: usize::MAX,
        min_idle_ms: 0,
        consumer: None,
    };
    let pending = claim::pending_range(db, &key, GROUP, &query, now).unwrap();
    let got: Vec<(StreamId, Bytes, u64)> = pending
        .into_iter()
        .map(|(id, p)| (id, p.consumer, p.deliveries))
        .collect();
    let want: Vec<(StreamId, Bytes, u64)> = model
        .pel
        .iter()
        .map(|(id, (c, n))| (*id, consumer(*c), *n))
        .collect();
    prop_assert_eq!(got, want);
    let summary = claim::pending_summary(db, &key, GROUP, now).unwrap();
    prop_assert_eq!(summary.count, model.pel.len());
    for (name, held) in summary.consumers {
        let expected = model
            .pel
            .values()
            .filter(|(c, _)| consumer(*c) == name)
            .count();
        prop_assert_eq!(held, expected);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn consumer_groups_agree_with_a_model(ops_list in proptest::collection::vec(op(), 1..120)) {
        let mut db = Db::default();
        let key = Bytes::from_static(KEY);
        let group = Bytes::from_static(GROUP);
        consume::create_group(&mut db, &key, &group, GroupStart::At(StreamId::MIN), true, None, 0).unwrap();
        let mut model = Model::default();
        for (step, op) in ops_list.into_iter().enumerate() {
            let now = 1_000 + step as u64;
            match op {
                Op::Add => {
                    let value = Bytes::from(format!("job-{step}"));
                    let fields = [Bytes::from_static(b"job"), value.clone()];
                    let id = ops::add(&mut db, &key, &fields, AddId::Auto, false, None, now).unwrap().unwrap();
                    prop_assert!(model.added.last().is_none_or(|last| id > *last));
                    model.entries.insert(id, value);
                    model.added.push(id);
                }
                Op::Delete(i) => {
                    if let Some(&id) = model.added.get(i) {
                        let deleted = ops::delete(&mut db, &key, &[id], now).unwrap();
                        prop_assert_eq!(deleted == 1, model.entries.remove(&id).is_some());
                    }
                }
                Op::ReadNew(c, count) => {
                    let count = (count > 0).then_some(count);
                    let read = consume::read_group(&mut db, std::slice::from_ref(&key), &[GroupFrom::New], &group, &consumer(c), count, false, now).unwrap();
                    let got: Vec<StreamId> = read.iter().flat_map(|r| r.entries.iter().map(|e| e.0)).collect();
                    let want: Vec<StreamId> = model.entries
                        .range(model.last_delivered.successor().unwrap()..)
                        .map(|(id, _)| *id)
                        .take(count.unwrap_or(usize::MAX))
                        .collect();
                    prop_assert_eq!(&got, &want);
                    for id in want {
                        model.pel.insert(id, (c, 1));
                        model.last_delivered = id;
                    }
                }
                Op::ReadHistory(c) => {
                    let read = consume::read_group(&mut db, std::slice::from_ref(&key), &[GroupFrom::Pending(StreamId::MIN)], &group, &consumer(c), None, false, now).unwrap();
                    prop_assert_eq!(read.len(), 1, "history reads always answer the key");
                    let got: Vec<(StreamId, bool)> = read[0].entries.iter().map(|(id, f)| (*id, f.is_some())).collect();
                    let mut want = Vec::new();
                    for (id, (holder, deliveries)) in model.pel.iter_mut() {
                        if *holder == c {
                            *deliveries += 1;
                            want.push((*id, model.entries.contains_key(id)));
                        }
                    }
                    prop_assert_eq!(got, want);
                }
                Op::Ack(i) => {
                    if let Some(&id) = model.added.get(i) {
                        let acked = consume::ack(&mut db, &key, &group, &[id], now).unwrap();
                        prop_assert_eq!(acked == 1, model.pel.remove(&id).is_some());
                    }
                }
                Op::Claim(c, i) => {
                    if let Some(&id) = model.added.get(i) {
                        let claimed = claim::claim(&mut db, &key, &group, &consumer(c), &[id], &ClaimOptions::default(), now).unwrap();
                        let exists = model.entries.contains_key(&id);
                        match model.pel.get_mut(&id) {
                            Some(entry) if exists => {
                                *entry = (c, entry.1 + 1);
                                prop_assert_eq!(claimed.len(), 1);
                            }
                            Some(_) => {
                                model.pel.remove(&id);
                                prop_assert!(claimed.is_empty());
                            }
                            None => prop_assert!(claimed.is_empty()),
                        }
                    }
                }
                Op::AutoClaim(c, count) => {
                    let result = claim::auto_claim(&mut db, &key, &group, &consumer(c), 0, StreamId::MIN, count, false, now).unwrap();
                    let mut claimed = Vec::new();
                    let mut deleted = Vec::new();
                    let ids: Vec<StreamId> = model.pel.keys().copied().collect();
                    let mut next = StreamId::MIN;
                    for (scanned, id) in ids.into_iter().enumerate() {
                        if claimed.len() == count || scanned == count * 10 {
                            next = id;
                            break;
                        }
                        if model.entries.contains_key(&id) {
                            let entry = model.pel.get_mut(&id).unwrap();
                            *entry = (c, entry.1 + 1);
                            claimed.push(id);
                        } else {
                            model.pel.remove(&id);
                            deleted.push(id);
                        }
                    }
                    prop_assert_eq!(result.claimed.iter().map(|e| e.0).collect::<Vec<_>>(), claimed);
                    prop_assert_eq!(result.deleted, deleted);
                    prop_assert_eq!(result.next, next);
                }
            }
            check(&mut db, &model, now)?;
        }
    }
}
