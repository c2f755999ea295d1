//! Consumer groups: the last delivered ID, the group's pending-entry list (PEL), and its
//! consumers, each with its own view of the PEL.
//!
//! The group PEL maps every delivered, unacknowledged ID to the consumer holding it, the
//! last delivery time and the delivery count; each consumer keeps the set of IDs it holds,
//! so per-consumer reads (XREADGROUP with an ID, XPENDING ... consumer) never scan the
//! whole group. Both halves change together in this module only, which is what the
//! model-based test checks. Times are Unix milliseconds passed in by the caller.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use super::id::StreamId;

/// One delivered, unacknowledged entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    /// The consumer that holds it.
    pub consumer: Bytes,
    /// When it was last delivered.
    pub delivered_ms: u64,
    /// How many times it was delivered.
    pub deliveries: u64,
}

/// One consumer of a group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Consumer {
    /// Last time it tried to read or claim (XINFO `seen-time`).
    pub seen_ms: u64,
    /// Last time a read or claim gave it entries (XINFO `active-time`); `None`: never.
    pub active_ms: Option<u64>,
    /// The IDs it holds.
    pub pending: BTreeSet<StreamId>,
}

/// One consumer group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Group {
    /// The last ID delivered to the group (`>` reads start after it).
    pub last_id: StreamId,
    /// Entries the group has read, counted from the first ever added; `None` when it
    /// cannot be known (Redis's `SCG_INVALID_ENTRIES_READ`).
    pub entries_read: Option<u64>,
    /// The pending-entry list.
    pub pel: BTreeMap<StreamId, Pending>,
    /// Consumers by name (sorted, as XINFO CONSUMERS lists them).
    pub consumers: BTreeMap<Bytes, Consumer>,
}

impl Group {
    /// A group whose next `>` read starts after `last_id`.
    pub fn new(last_id: StreamId, entries_read: Option<u64>) -> Group {
        Group {
            last_id,
            entries_read,
            ..Group::default()
        }
    }

    /// The consumer `name`, created when missing; true in the second place when created.
    pub fn consumer_or_create(&mut self, name: &Bytes, now_ms: u64) -> (&mut Consumer, bool) {
        let created = !self.consumers.contains_key(name);
        let consumer = self
            .consumers
            .entry(crate::value::owned(name))
            .or_insert_with(|| Consumer {
                seen_ms: now_ms,
                ..Consumer::default()
            });
        (consumer, created)
    }

    /// Records that `consumer` (which must exist) got `id`: a new PEL entry, or an
    /// existing one moved to it with its delivery count reset to 1, as Redis does when
    /// a `>` read delivers an ID that is already pending.
    pub fn deliver(&mut self, id: StreamId, consumer: &Bytes, now_ms: u64) {
        let previous = self.pel.insert(
            id,
            Pending {
                consumer: consumer.clone(),
                delivered_ms: now_ms,
                deliveries: 1,
            },
        );
        if let Some(previous) = previous {
            if let Some(old) = self.consumers.get_mut(&previous.consumer) {
                old.pending.remove(&id);
            }
        }
        if let Some(holder) = self.consumers.get_mut(consumer) {
            holder.pending.insert(id);
        }
    }

    /// Acknowledges `id`; false when it was not pending.
    pub fn ack(&mut self, id: StreamId) -> bool {
        let Some(pending) = self.pel.remove(&id) else {
            return false;
        };
        if let Some(consumer) = self.consumers.get_mut(&pending.consumer) {
            consumer.pending.remove(&id);
        }
        true
    }

    /// Gives the pending `id` to `consumer` (which must exist), setting its delivery
    /// time and adding `bump` to the delivery count (XCLAIM, XAUTOCLAIM).
    pub fn claim(&mut self, id: StreamId, consumer: &Bytes, delivered_ms: u64, deliveries: u64) {
        let previous = self.pel.insert(
            id,
            Pending {
                consumer: consumer.clone(),
                delivered_ms,
                deliveries,
            },
        );
        if let Some(previous) = previous {
            if previous.consumer != *consumer {
                if let Some(old) = self.consumers.get_mut(&previous.consumer) {
                    old.pending.remove(&id);
                }
            }
        }
        if let Some(holder) = self.consumers.get_mut(consumer) {
            holder.pending.insert(id);
        }
    }

    /// Deletes consumer `name`; the number of entries it held (now dropped from the
    /// PEL), `None` when there was no such consumer.
    pub fn delete_consumer(&mut self, name: &[u8]) -> Option<usize> {
        let consumer = self.consumers.remove(name)?;
        for id in &consumer.pending {
            self.pel.remove(id);
        }
        Some(consumer.pending.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[derive(Clone, Debug)]
    enum Op {
        Deliver(u8, u8),
        Ack(u8),
        Claim(u8, u8),
        DeleteConsumer(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..20, 0u8..4).prop_map(|(id, c)| Op::Deliver(id, c)),
            (0u8..20).prop_map(Op::Ack),
            (0u8..20, 0u8..4).prop_map(|(id, c)| Op::Claim(id, c)),
            (0u8..4).prop_map(Op::DeleteConsumer),
        ]
    }

    fn name(c: u8) -> Bytes {
        Bytes::from(format!("c{c}"))
    }

    proptest! {
        /// The two halves of the PEL always agree, and agree with a plain map model.
        #[test]
        fn pel_halves_agree_with_a_model(ops in proptest::collection::vec(op(), 1..200)) {
            let mut group = Group::new(StreamId::MIN, Some(0));
            let mut model: HashMap<u8, (u8, u64)> = HashMap::new();
            for (now, op) in ops.into_iter().enumerate() {
                let now = now as u64;
                match op {
                    Op::Deliver(id, c) => {
                        group.consumer_or_create(&name(c), now);
                        group.deliver(StreamId::new(u64::from(id), 0), &name(c), now);
                        model.insert(id, (c, 1));
                    }
                    Op::Ack(id) => {
                        prop_assert_eq!(group.ack(StreamId::new(u64::from(id), 0)), model.remove(&id).is_some());
                    }
                    Op::Claim(id, c) => {
                        if let Some(entry) = model.get_mut(&id) {
                            group.consumer_or_create(&name(c), now);
                            let count = group.pel[&StreamId::new(u64::from(id), 0)].deliveries + 1;
                            group.claim(StreamId::new(u64::from(id), 0), &name(c), now, count);
                            *entry = (c, entry.1 + 1);
                        }
                    }
                    Op::DeleteConsumer(c) => {
                        let held = model.values().filter(|(holder, _)| *holder == c).count();
                        let deleted = group.delete_consumer(&name(c));
                        prop_assert!(deleted.is_none() || deleted == Some(held));
                        model.retain(|_, (holder, _)| *holder != c);
                    }
                }
                prop_assert_eq!(group.pel.len(), model.len());
                for (id, (c, count)) in &model {
                    let pending = &group.pel[&StreamId::new(u64::from(*id), 0)];
                    prop_assert_eq!(&pending.consumer, &name(*c));
                    prop_assert_eq!(pending.deliveries, *count);
                }
                let held: usize = group.consumers.values().map(|c| c.pending.len()).sum();
                prop_assert_eq!(held, group.pel.len());
                for (consumer_name, consumer) in &group.consumers {
                    for id in &consumer.pending {
                        prop_assert_eq!(&group.pel[id].consumer, consumer_name);
                    }
                }
            }
        }
    }
}
