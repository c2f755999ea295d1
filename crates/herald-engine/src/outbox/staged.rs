//! Deliveries staged per subscriber over a batch of publishes, appended with one lock each.
//!
//! A pipelined batch of PUBLISH commands used to take every receiver's outbox lock once
//! per message: 16 publishes to 20 subscribers, 320 lock round trips on cache lines the
//! subscribers' writers share. [`Staging`] collects the batch's deliveries per receiver
//! instead and [`Staging::commit`] appends each receiver's run under one lock.
//!
//! Order is kept because staging only ever spans consecutive publishes of one connection
//! (the front-end commits before anything else runs: a command that could cause output
//! elsewhere, a blocking-pop wake-up, a keyspace event) and each receiver's run keeps the
//! order the publishes made. The publisher's own outbox is never staged: its deliveries
//! must follow its own replies, which the outbox's hold does ([`super::Outbox::hold`]).
//!
//! A batch whose publishes all go to one snapshot the same way (a pipeline to one
//! channel, no pattern matching) keeps its messages once, not per receiver, and gives
//! every receiver one shared [`DeliveryRun`] at the commit: one reference count per
//! receiver, not per message and receiver. Once the batch publishes elsewhere, that
//! start becomes the first entry of each receiver's run. Otherwise consecutive
//! publishes to one channel walk the same subscriber snapshot, so the slot of each
//! subscriber is remembered per snapshot (kept alive by the memo, so a pointer
//! comparison is exact) and the hash lookup runs once per batch, not per delivery.
//!
//! Output limits are checked when the run is appended: a client past its hard limit is
//! killed by the commit, at most one batch (one read of the publisher's query buffer)
//! later than a per-message check would have.
//!
//! This module never locks anything but the receivers' outboxes, one at a time, in
//! [`Staging::commit`].

use std::collections::HashMap;
use std::sync::Arc;

use super::{Appended, Outbox, Outgoing};
use crate::message::{Delivery, DeliveryKind, DeliveryRun, Message};
use crate::subscribers::Snapshot;

/// Snapshots whose slots are remembered in one batch: a channel's subscribers and a few
/// patterns'. Beyond that the oldest is forgotten (its receivers then cost one hash
/// lookup each, still no lock).
const REMEMBERED_SNAPSHOTS: usize = 4;

/// Staged runs whose entry vectors are kept for the next batch, and the largest kept.
const SPARE_RUNS_KEPT: usize = 256;
const SPARE_RUN_CAPACITY: usize = 1024;

/// Slot marking the publisher's own outbox: delivered at once, never staged.
const OWN: u32 = u32::MAX;

/// One receiver's deliveries of this batch, in publish order.
struct Run {
    outbox: Arc<Outbox>,
    entries: Vec<Outgoing>,
    bytes: usize,
}

/// An outbox's address: the key of its run. Stable and unique while the run (or the
/// owner's session) holds the `Arc`, and independent of how front-ends number clients.
fn address(outbox: &Arc<Outbox>) -> usize {
    Arc::as_ptr(outbox) as usize
}

/// A batch whose publishes so far all went to one snapshot, delivered the same way:
/// its messages, kept once rather than per receiver, become one shared
/// [`DeliveryRun`] per receiver at the commit.
struct Uniform {
    receivers: Snapshot,
    kind: DeliveryKind,
    messages: Vec<Arc<Message>>,
    /// The publisher's own position in `receivers`, if it is one.
    owner_at: Option<usize>,
}

impl Uniform {
    /// What each receiver gets: the delivery itself when there is one message, else the
    /// shared run. The emptied message vector goes back to `spare`.
    fn entry(
        mut self,
        spare: &mut Vec<Arc<Message>>,
    ) -> (Snapshot, Option<usize>, Outgoing, usize) {
        let entry = match (self.messages.len(), self.messages.pop()) {
            (1, Some(message)) => Outgoing::Delivery(Delivery {
                kind: self.kind,
                message,
            }),
            (_, last) => {
                self.messages.extend(last);
                let messages: Arc<[Arc<Message>]> = self.messages.drain(..).collect();
                Outgoing::Run(DeliveryRun::new(self.kind, messages))
            }
        };
        if self.messages.capacity() <= SPARE_RUN_CAPACITY {
            *spare = self.messages;
        }
        let bytes = entry.budget_bytes();
        (self.receivers, self.owner_at, entry, bytes)
    }
}

/// The publisher's own delivery, at once (it must follow the publisher's reply, which
/// its outbox's hold sees to); the outbox when that made its queue non-empty.
fn deliver_to_owner(
    receivers: &Snapshot,
    owner_at: Option<usize>,
    kind: &DeliveryKind,
    message: &Arc<Message>,
) -> Option<Arc<Outbox>> {
    let owner = receivers.get(owner_at?)?;
    let delivery = Delivery {
        kind: kind.clone(),
        message: Arc::clone(message),
    };
    (owner.deliver_deferred(delivery) == Appended::NeedsFlush).then(|| Arc::clone(owner))
}

/// Per-receiver runs of one batch of publishes; see the module docs.
pub(super) struct Staging {
    owner: usize,
    uniform: Option<Uniform>,
    runs: Vec<Run>,
    slots: HashMap<usize, u32, foldhash::fast::FixedState>,
    /// Each remembered snapshot with the slot of each of its members.
    remembered: Vec<(Snapshot, Vec<u32>)>,
    /// Entry vectors of committed runs, reused by the next batch.
    spare: Vec<Vec<Outgoing>>,
    /// Slot vectors of forgotten snapshots, likewise.
    spare_slots: Vec<Vec<u32>>,
    /// The message vector of the last uniform batch, likewise.
    spare_messages: Vec<Arc<Message>>,
}

impl Staging {
    /// Staging for the connection whose outbox is `owner`.
    pub(super) fn new(owner: &Arc<Outbox>) -> Self {
        Staging {
            owner: address(owner),
            uniform: None,
            runs: Vec::new(),
            slots: HashMap::default(),
            remembered: Vec::new(),
            spare: Vec::new(),
            spare_slots: Vec::new(),
            spare_messages: Vec::new(),
        }
    }

    /// True when nothing is staged.
    pub(super) fn is_empty(&self) -> bool {
        self.runs.is_empty() && self.uniform.is_none()
    }

    /// Stages `message` for every member of `receivers` as a delivery of `kind`. The
    /// publisher's own outbox gets its delivery at once; when that made its queue
    /// non-empty it is returned, for the caller's flush list.
    pub(super) fn stage(
        &mut self,
        receivers: &Snapshot,
        kind: &DeliveryKind,
        message: &Arc<Message>,
    ) -> Option<Arc<Outbox>> {
        if self.runs.is_empty() {
            match &mut self.uniform {
                None => {
                    let owner_at = receivers
                        .iter()
                        .position(|outbox| address(outbox) == self.owner);
                    let mut messages = std::mem::take(&mut self.spare_messages);
                    messages.push(Arc::clone(message));
                    self.uniform = Some(Uniform {
                        receivers: Arc::clone(receivers),
                        kind: kind.clone(),
                        messages,
                        owner_at,
                    });
                    return deliver_to_owner(receivers, owner_at, kind, message);
                }
                Some(uniform)
                    if Arc::ptr_eq(&uniform.receivers, receivers) && uniform.kind == *kind =>
                {
                    uniform.messages.push(Arc::clone(message));
                    let owner_at = uniform.owner_at;
                    return deliver_to_owner(receivers, owner_at, kind, message);
                }
                Some(_) => self.spread_uniform(),
            }
        }
        let slots = self.slots_of(receivers);
        let slots = &self.remembered[slots].1;
        let mut own_needs_flush = None;
        for (outbox, &slot) in receivers.iter().zip(slots) {
            let delivery = Delivery {
                kind: kind.clone(),
                message: Arc::clone(message),
            };
            if slot == OWN {
                if outbox.deliver_deferred(delivery) == Appended::NeedsFlush {
                    own_needs_flush = Some(Arc::clone(outbox));
                }
                continue;
            }
            let run = &mut self.runs[slot as usize];
            run.bytes += delivery.budget_bytes();
            run.entries.push(Outgoing::Delivery(delivery));
        }
        own_needs_flush
    }

    /// Ends the uniform start of the batch: each of its receivers gets a run that begins
    /// with what the batch had for it so far.
    fn spread_uniform(&mut self) {
        let Some(uniform) = self.uniform.take() else {
            return;
        };
        let (receivers, _, entry, bytes) = uniform.entry(&mut self.spare_messages);
        let slots = self.slots_of(&receivers);
        for &slot in &self.remembered[slots].1 {
            if slot == OWN {
                continue;
            }
            let run = &mut self.runs[slot as usize];
            run.bytes += bytes;
            run.entries.push(entry.clone());
        }
    }

    /// Index into `remembered` of `receivers`' slots, computed (and runs opened) on first use.
    fn slots_of(&mut self, receivers: &Snapshot) -> usize {
        if let Some(found) = self
            .remembered
            .iter()
            .position(|(known, _)| Arc::ptr_eq(known, receivers))
        {
            return found;
        }
        if self.remembered.len() == REMEMBERED_SNAPSHOTS {
            let (_, slots) = self.remembered.remove(0);
            self.spare_slots.push(slots);
        }
        let mut slots = self.spare_slots.pop().unwrap_or_default();
        slots.clear();
        for outbox in receivers.iter() {
            let key = address(outbox);
            if key == self.owner {
                slots.push(OWN);
                continue;
            }
            let next = self.runs.len() as u32;
            let slot = *self.slots.entry(key).or_insert(next);
            if slot == next {
                self.runs.push(Run {
                    outbox: Arc::clone(outbox),
                    entries: self.spare.pop().unwrap_or_default(),
                    bytes: 0,
                });
            }
            slots.push(slot);
        }
        self.remembered.push((Arc::clone(receivers), slots));
        self.remembered.len() - 1
    }

    /// Appends every staged run to its outbox, in the order the runs were opened; each
    /// outbox whose queue this made non-empty is handed to `needs_flush`. Returns how
    /// many receivers had runs.
    pub(super) fn commit(&mut self, mut needs_flush: impl FnMut(Arc<Outbox>)) -> usize {
        if let Some(uniform) = self.uniform.take() {
            // Nothing else was staged: one entry per receiver, no runs.
            let (receivers, owner_at, entry, bytes) = uniform.entry(&mut self.spare_messages);
            let mut count = 0;
            for (at, outbox) in receivers.iter().enumerate() {
                if Some(at) == owner_at {
                    continue;
                }
                count += 1;
                if outbox.append_sized(entry.clone(), bytes) == Appended::NeedsFlush {
                    needs_flush(Arc::clone(outbox));
                }
            }
            return count;
        }
        let receivers = self.runs.len();
        for mut run in self.runs.drain(..) {
            if run.outbox.append_run(&mut run.entries, run.bytes) == Appended::NeedsFlush {
                needs_flush(run.outbox);
            }
            run.entries.clear();
            if self.spare.len() < SPARE_RUNS_KEPT && run.entries.capacity() <= SPARE_RUN_CAPACITY {
                self.spare.push(run.entries);
            }
        }
        self.slots.clear();
        // The snapshots are released: a set that changed may be freed now.
        for (_, slots) in self.remembered.drain(..) {
            if self.spare_slots.len() < REMEMBERED_SNAPSHOTS
                && slots.capacity() <= SPARE_RUN_CAPACITY
            {
                self.spare_slots.push(slots);
            }
        }
        if self.slots.capacity() > SPARE_RUN_CAPACITY {
            self.slots.shrink_to(SPARE_RUN_CAPACITY);
        }
        receivers
    }
}

impl std::fmt::Debug for Staging {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Staging")
            .field("runs", &self.runs.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use proptest::prelude::*;

    use super::*;
    use crate::message::ClientId;
    use crate::outbox::tests::{drain, outbox_with};
    use crate::outbox::{ClientClass, CloseReason, OutputLimit, PendingWakes};

    fn outboxes(n: u64) -> Vec<Arc<Outbox>> {
        let limits = Arc::new(crate::outbox::OutputLimits::default());
        (1..=n)
            .map(|id| Arc::new(Outbox::new(ClientId(id), Arc::clone(&limits))))
            .collect()
    }

    fn message(payload: &str) -> Arc<Message> {
        Arc::new(Message::new(
            Bytes::from_static(b"ch"),
            Bytes::copy_from_slice(payload.as_bytes()),
        ))
    }

    fn set(members: &[&Arc<Outbox>]) -> Snapshot {
        Arc::new(members.iter().map(|outbox| Arc::clone(outbox)).collect())
    }

    /// (kind, payload) of every delivery queued for `outbox`, in queue order.
    fn received(outbox: &Outbox) -> Vec<(DeliveryKind, Bytes)> {
        drain(outbox)
            .into_iter()
            .flat_map(|entry| {
                assert!(!matches!(entry, Outgoing::Frame(_)), "unexpected {entry:?}");
                entry.deliveries()
            })
            .map(|delivery| (delivery.kind, delivery.message.payload.clone()))
            .collect()
    }

    fn pattern(name: &'static [u8]) -> DeliveryKind {
        DeliveryKind::Pattern(Bytes::from_static(name))
    }

    #[test]
    fn staged_deliveries_wait_for_the_commit_and_keep_each_receivers_order() {
        let all = outboxes(3);
        let (owner, a, b) = (&all[0], &all[1], &all[2]);
        let mut pending = PendingWakes::staging_for(owner);
        let channel = set(&[a, b]);
        let by_pattern = set(&[b]);
        for payload in ["1", "2"] {
            let message = message(payload);
            assert!(pending.stage(&channel, &DeliveryKind::Channel, &message));
            assert!(pending.stage(&by_pattern, &pattern(b"c*"), &message));
        }
        assert_eq!(a.queued_bytes(), 0, "visible before the commit");
        assert!(!pending.is_empty());
        pending.commit();
        assert_eq!(pending.outboxes_for_test(), vec![a.id(), b.id()]);
        let payload = |p: &'static str| Bytes::from_static(p.as_bytes());
        assert_eq!(
            received(a),
            vec![
                (DeliveryKind::Channel, payload("1")),
                (DeliveryKind::Channel, payload("2")),
            ]
        );
        // message before pmessage for each publish, publish by publish.
        assert_eq!(
            received(b),
            vec![
                (DeliveryKind::Channel, payload("1")),
                (pattern(b"c*"), payload("1")),
                (DeliveryKind::Channel, payload("2")),
                (pattern(b"c*"), payload("2")),
            ]
        );
    }

    #[test]
    fn a_batch_to_one_channel_queues_one_shared_run_per_receiver() {
        let all = outboxes(3);
        let (owner, a, b) = (&all[0], &all[1], &all[2]);
        let receivers = set(&[a, owner, b]);
        let mut pending = PendingWakes::staging_for(owner);
        for payload in ["1", "2", "3"] {
            pending.stage(&receivers, &DeliveryKind::Channel, &message(payload));
        }
        pending.commit();
        let (in_a, in_b) = (drain(a), drain(b));
        let (Outgoing::Run(run_a), Outgoing::Run(run_b)) = (&in_a[0], &in_b[0]) else {
            panic!("not runs: {in_a:?} {in_b:?}");
        };
        assert_eq!((in_a.len(), in_b.len()), (1, 1));
        assert_eq!(run_a.messages().len(), 3);
        assert!(
            std::ptr::eq(run_a.messages(), run_b.messages()),
            "the run is shared"
        );
        assert_eq!(
            run_a.budget_bytes(),
            3 * (2 + 1 + crate::message::DELIVERY_FRAMING_BYTES)
        );
        // The publisher's own deliveries went out one by one, at once.
        assert_eq!(drain(owner).len(), 3);
        // One message is a plain delivery, not a run.
        pending.stage(&receivers, &DeliveryKind::Channel, &message("4"));
        pending.commit();
        assert!(matches!(drain(a)[..], [Outgoing::Delivery(_)]));
    }

    #[test]
    fn the_publishers_own_outbox_gets_its_delivery_at_once_behind_its_hold() {
        let all = outboxes(2);
        let (owner, other) = (&all[0], &all[1]);
        let mut pending = PendingWakes::staging_for(owner);
        owner.hold();
        pending.stage(&set(&[other, owner]), &DeliveryKind::Channel, &message("x"));
        assert!(
            owner.has_held(),
            "the own delivery must be held, not staged"
        );
        assert_eq!(other.queued_bytes(), 0);
        owner.release_held(false);
        assert_eq!(received(owner).len(), 1);
        pending.commit();
        assert_eq!(received(other).len(), 1);
    }

    #[test]
    fn a_receiver_running_its_own_commands_holds_the_committed_run() {
        let all = outboxes(2);
        let mut pending = PendingWakes::staging_for(&all[0]);
        let receiver = &all[1];
        pending.stage(&set(&[receiver]), &DeliveryKind::Channel, &message("x"));
        receiver.hold();
        pending.commit();
        assert!(receiver.has_held());
        receiver.push_frame(Bytes::from_static(b"+OK\r\n"));
        receiver.release_held(false);
        let queued = drain(receiver);
        assert!(matches!(queued[0], Outgoing::Frame(_)), "{queued:?}");
        assert!(matches!(queued[1], Outgoing::Delivery(_)));
    }

    #[test]
    fn a_commit_past_the_hard_limit_kills_and_a_closed_receiver_refuses() {
        let limited = Arc::new(outbox_with(
            ClientClass::Pubsub,
            OutputLimit {
                hard_bytes: 200,
                soft_bytes: 0,
                soft_seconds: 0,
            },
        ));
        let all = outboxes(2);
        let closed = &all[1];
        closed.close_after_flush();
        // The publisher is neither receiver.
        let mut pending = PendingWakes::staging_for(&all[0]);
        let receivers = set(&[&limited, closed]);
        for _ in 0..10 {
            pending.stage(&receivers, &DeliveryKind::Channel, &message("0123456789"));
        }
        assert!(!limited.is_killed(), "limits are checked at the commit");
        pending.commit();
        assert!(limited.is_killed());
        assert!(
            matches!(
                limited.close_reason(),
                Some(CloseReason::HardLimit {
                    class: ClientClass::Pubsub,
                    ..
                })
            ),
            "{:?}",
            limited.close_reason()
        );
        assert_eq!(closed.queued_bytes(), 0);
        assert!(pending.outboxes_for_test().is_empty());
    }

    proptest! {
        /// Staging changes when deliveries reach the queues, never what each receiver
        /// gets or in which order: the same publishes, staged with commits at random
        /// points or appended one by one, leave every queue the same, and the same
        /// outboxes asking for a flush. More sets than the memo remembers, receivers in
        /// several sets, the owner among them.
        #[test]
        fn staging_delivers_exactly_what_appending_one_by_one_does(
            sets in proptest::collection::vec(
                proptest::sample::subsequence((0..6usize).collect::<Vec<_>>(), 0..=6)
                    .prop_shuffle(),
                1..8,
            ),
            publishes in proptest::collection::vec(
                (proptest::collection::vec((0..8usize, any::<bool>()), 1..4), any::<bool>()),
                1..40,
            ),
        ) {
            let staged = outboxes(6);
            let direct = outboxes(6);
            let snapshots = |boxes: &[Arc<Outbox>]| -> Vec<Snapshot> {
                sets.iter()
                    .map(|members| Arc::new(members.iter().map(|&i| Arc::clone(&boxes[i])).collect()))
                    .collect()
            };
            let (staged_sets, direct_sets) = (snapshots(&staged), snapshots(&direct));
            let mut staging = PendingWakes::staging_for(&staged[0]);
            let mut appending = PendingWakes::default();
            for (seq, (targets, commit_after)) in publishes.iter().enumerate() {
                let message = message(&seq.to_string());
                for &(set, by_pattern) in targets {
                    let set = set % sets.len();
                    let kind = if by_pattern { pattern(b"p") } else { DeliveryKind::Channel };
                    prop_assert!(staging.stage(&staged_sets[set], &kind, &message));
                    prop_assert!(!appending.stage(&direct_sets[set], &kind, &message));
                    for outbox in direct_sets[set].iter() {
                        let delivery = Delivery { kind: kind.clone(), message: Arc::clone(&message) };
                        if outbox.deliver_deferred(delivery) == Appended::NeedsFlush {
                            appending.push(outbox);
                        }
                    }
                }
                if *commit_after {
                    staging.commit();
                }
            }
            staging.commit();
            let mut flushed = staging.outboxes_for_test();
            let mut expected = appending.outboxes_for_test();
            flushed.sort();
            expected.sort();
            prop_assert_eq!(flushed, expected);
            for (staged, direct) in staged.iter().zip(&direct) {
                prop_assert_eq!(received(staged), received(direct));
            }
        }
    }
}
