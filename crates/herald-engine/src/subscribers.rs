//! One channel's (or one pattern's) subscribers, with a copy-on-write snapshot for
//! publishers.
//!
//! Writers (subscribe, unsubscribe) change the member map under their registry lock and
//! drop the snapshot. Readers (publish) take an `Arc` of the snapshot, rebuilding it
//! first when a write dropped it, and then deliver with no lock held at all. Rebuilding
//! lazily, on the first publish after a change, makes N subscribes in a row cost O(N)
//! instead of the O(N²) of copying the set on every write, while a publish never costs
//! more than one copy of the set it is about to walk anyway.
//!
//! Delivery order within a set is the order of the member map: subscription order,
//! except that an unsubscribe moves the newest member into the leaver's place (an O(1)
//! removal; the order stays a deterministic function of the subscribe/unsubscribe
//! sequence).

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use indexmap::IndexMap;

use crate::message::ClientId;
use crate::outbox::Outbox;

/// What a publish walks: the subscribers at one instant.
pub type Snapshot = Arc<Vec<Arc<Outbox>>>;

/// The members of one channel or pattern; see the module docs.
#[derive(Debug, Default)]
pub struct SubscriberSet {
    members: IndexMap<ClientId, Arc<Outbox>>,
    /// `None` after a change until the next publish rebuilds it. Written by readers
    /// too, which is safe because every reader rebuilds from the same members: writers
    /// are excluded by the registry lock while any reader looks.
    snapshot: ArcSwapOption<Vec<Arc<Outbox>>>,
}

impl SubscriberSet {
    /// Adds `outbox`; false when it already was a member.
    pub fn insert(&mut self, outbox: &Arc<Outbox>) -> bool {
        match self.members.entry(outbox.id()) {
            indexmap::map::Entry::Occupied(_) => false,
            indexmap::map::Entry::Vacant(slot) => {
                slot.insert(Arc::clone(outbox));
                self.snapshot.store(None);
                true
            }
        }
    }

    /// Removes `client`; false when it was not a member.
    pub fn remove(&mut self, client: ClientId) -> bool {
        let removed = self.members.swap_remove(&client).is_some();
        if removed {
            self.snapshot.store(None);
            if self.members.len() < self.members.capacity() / 4 {
                self.members.shrink_to_fit();
            }
        }
        removed
    }

    /// Members now.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// True without members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The members as of now, shared with every other reader until the next change.
    pub fn snapshot(&self) -> Snapshot {
        if let Some(current) = self.snapshot.load_full() {
            return current;
        }
        let fresh: Snapshot = Arc::new(self.members.values().cloned().collect());
        self.snapshot.store(Some(Arc::clone(&fresh)));
        fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::OutputLimits;

    fn outbox(id: u64) -> Arc<Outbox> {
        Arc::new(Outbox::new(ClientId(id), Arc::new(OutputLimits::default())))
    }

    fn ids(snapshot: &Snapshot) -> Vec<u64> {
        snapshot.iter().map(|outbox| outbox.id().0).collect()
    }

    #[test]
    fn snapshots_are_shared_until_a_change() {
        let mut set = SubscriberSet::default();
        let (a, b) = (outbox(1), outbox(2));
        assert!(set.insert(&a));
        assert!(!set.insert(&a));
        let first = set.snapshot();
        assert!(Arc::ptr_eq(&first, &set.snapshot()));
        assert!(set.insert(&b));
        let second = set.snapshot();
        assert_eq!(ids(&first), vec![1]);
        assert_eq!(ids(&second), vec![1, 2]);
        assert!(set.remove(ClientId(1)));
        assert!(!set.remove(ClientId(1)));
        assert_eq!(ids(&set.snapshot()), vec![2]);
        // A publish that took the old snapshot still holds it, unchanged.
        assert_eq!(ids(&second), vec![1, 2]);
    }

    #[test]
    fn removal_moves_the_newest_member_into_the_gap() {
        let mut set = SubscriberSet::default();
        for id in 1..=4 {
            set.insert(&outbox(id));
        }
        set.remove(ClientId(2));
        assert_eq!(ids(&set.snapshot()), vec![1, 4, 3]);
    }
}
