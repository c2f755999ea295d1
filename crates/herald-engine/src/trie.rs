//! A compressed byte trie (radix tree) from byte-string keys to small integer ids, used by
//! the pattern index to find every pattern whose literal prefix (or reversed literal
//! suffix) is a prefix of a channel name without looking at the others.
//!
//! Nodes live in one arena and are linked by index; every walk is a loop, never a
//! recursion, because keys come from clients and may be megabytes long. Edges carry
//! whole byte strings, so a trie of N keys has at most 2·N + 1 nodes whatever their
//! lengths. Removing the last id of a node deletes the node (and merges a parent left
//! with one child), so the trie shrinks back as keys go; when it is empty the arena is
//! released. It knows nothing of globs, locks or subscribers.

/// Which end of a subject a walk reads first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Keys are prefixes of the subject.
    Forward,
    /// Keys are stored reversed and are suffixes of the subject.
    Backward,
}

const ROOT: usize = 0;

#[derive(Debug, Default)]
struct Node {
    /// Bytes on the edge from the parent; empty only for the root.
    label: Box<[u8]>,
    /// Children as (first byte of their label, node), ordered by that byte (unique per
    /// node); the byte is kept here so a lookup reads one array, not every child.
    children: Vec<(u8, usize)>,
    /// Ids whose key ends exactly here, in insertion order.
    ids: Vec<u32>,
    parent: usize,
}

/// A compressed byte trie of `u32` ids; see the module docs.
#[derive(Debug)]
pub struct Trie {
    direction: Direction,
    nodes: Vec<Node>,
    free: Vec<usize>,
    ids: usize,
}

impl Trie {
    /// An empty trie whose keys are read in `direction`.
    pub fn new(direction: Direction) -> Trie {
        Trie {
            direction,
            nodes: vec![Node::default()],
            free: Vec::new(),
            ids: 0,
        }
    }

    /// Ids stored.
    pub fn len(&self) -> usize {
        self.ids
    }

    /// True when no id is stored.
    pub fn is_empty(&self) -> bool {
        self.ids == 0
    }

    /// Live nodes, the root included (1 when empty).
    pub fn node_count(&self) -> usize {
        self.nodes.len() - self.free.len()
    }

    /// Node slots allocated, live or free (what the arena holds on to).
    pub fn node_capacity(&self) -> usize {
        self.nodes.capacity()
    }

    fn key(&self, key: &[u8]) -> Vec<u8> {
        match self.direction {
            Direction::Forward => key.to_vec(),
            Direction::Backward => key.iter().rev().copied().collect(),
        }
    }

    fn child(&self, node: usize, first: u8) -> Result<usize, usize> {
        self.nodes[node]
            .children
            .binary_search_by_key(&first, |&(byte, _)| byte)
    }

    fn alloc(&mut self, node: Node) -> usize {
        match self.free.pop() {
            Some(slot) => {
                self.nodes[slot] = node;
                slot
            }
            None => {
                self.nodes.push(node);
                self.nodes.len() - 1
            }
        }
    }

    fn release(&mut self, slot: usize) {
        self.nodes[slot] = Node::default();
        self.free.push(slot);
    }

    /// Stores `id` under `key` (read in the trie's direction). The same id may be stored
    /// under several keys; the caller keeps one key per id.
    pub fn insert(&mut self, key: &[u8], id: u32) {
        let key = self.key(key);
        let mut node = ROOT;
        let mut rest: &[u8] = &key;
        loop {
            let Some(&first) = rest.first() else {
                self.nodes[node].ids.push(id);
                self.ids += 1;
                return;
            };
            let (position, child) = match self.child(node, first) {
                Ok(position) => (position, self.nodes[node].children[position].1),
                Err(position) => {
                    let leaf = self.alloc(Node {
                        label: rest.into(),
                        children: Vec::new(),
                        ids: vec![id],
                        parent: node,
                    });
                    self.nodes[node].children.insert(position, (first, leaf));
                    self.ids += 1;
                    return;
                }
            };
            let label = &self.nodes[child].label;
            let common = label.iter().zip(rest).take_while(|(a, b)| a == b).count();
            if common < label.len() {
                // Split the edge: a new node takes the shared part, the old child keeps
                // the rest of its label under it. Same first byte, so the parent's
                // ordering is unchanged.
                let shared: Box<[u8]> = label[..common].into();
                let remainder: Box<[u8]> = label[common..].into();
                let middle = self.alloc(Node {
                    label: shared,
                    children: vec![(remainder[0], child)],
                    ids: Vec::new(),
                    parent: node,
                });
                self.nodes[child].label = remainder;
                self.nodes[child].parent = middle;
                self.nodes[node].children[position] = (first, middle);
                node = middle;
            } else {
                node = child;
            }
            rest = &rest[common..];
        }
    }

    /// Removes one `id` stored under `key`; false when it was not there.
    pub fn remove(&mut self, key: &[u8], id: u32) -> bool {
        let key = self.key(key);
        let mut node = ROOT;
        let mut rest: &[u8] = &key;
        while let Some(&first) = rest.first() {
            let Ok(position) = self.child(node, first) else {
                return false;
            };
            let child = self.nodes[node].children[position].1;
            let label = &self.nodes[child].label;
            if !rest.starts_with(label) {
                return false;
            }
            rest = &rest[label.len()..];
            node = child;
        }
        let ids = &mut self.nodes[node].ids;
        let Some(position) = ids.iter().position(|&stored| stored == id) else {
            return false;
        };
        ids.remove(position);
        self.ids -= 1;
        self.prune(node);
        true
    }

    /// Deletes nodes left without ids, from `node` upwards, and merges a node left with
    /// a single child and no ids into that child, so the trie stays compressed.
    fn prune(&mut self, mut node: usize) {
        while node != ROOT && self.nodes[node].ids.is_empty() {
            let parent = self.nodes[node].parent;
            match self.nodes[node].children.len() {
                0 => {
                    let first = self.nodes[node].label[0];
                    if let Ok(position) = self.child(parent, first) {
                        self.nodes[parent].children.remove(position);
                    }
                    self.release(node);
                    node = parent;
                }
                1 => {
                    let only = self.nodes[node].children[0].1;
                    let position = self.child(parent, self.nodes[node].label[0]);
                    let mut label = std::mem::take(&mut self.nodes[node].label).into_vec();
                    label.extend_from_slice(&self.nodes[only].label);
                    self.nodes[only].label = label.into();
                    self.nodes[only].parent = parent;
                    if let Ok(position) = position {
                        self.nodes[parent].children[position].1 = only;
                    }
                    self.release(node);
                    return;
                }
                _ => return,
            }
        }
        if self.ids == 0 {
            self.nodes = vec![Node::default()];
            self.free = Vec::new();
        }
    }

    /// Calls `found` with every id whose key is a prefix of `subject` (a suffix, for a
    /// backward trie), shortest key first. Cost: the subject's length plus the ids found.
    pub fn for_each_prefix_of(&self, subject: &[u8], mut found: impl FnMut(u32)) {
        let mut node = ROOT;
        let mut consumed = 0;
        loop {
            self.nodes[node].ids.iter().for_each(|&id| found(id));
            let Some(first) = self.byte_at(subject, consumed) else {
                return;
            };
            let Ok(position) = self.child(node, first) else {
                return;
            };
            let child = self.nodes[node].children[position].1;
            let label = &self.nodes[child].label;
            if !self.continues_with(subject, consumed, label) {
                return;
            }
            consumed += label.len();
            node = child;
        }
    }

    fn byte_at(&self, subject: &[u8], consumed: usize) -> Option<u8> {
        match self.direction {
            Direction::Forward => subject.get(consumed).copied(),
            Direction::Backward => subject
                .len()
                .checked_sub(consumed + 1)
                .map(|index| subject[index]),
        }
    }

    fn continues_with(&self, subject: &[u8], consumed: usize, label: &[u8]) -> bool {
        match self.direction {
            Direction::Forward => subject
                .get(consumed..)
                .is_some_and(|rest| rest.starts_with(label)),
            Direction::Backward => subject
                .len()
                .checked_sub(consumed)
                .and_then(|end| subject.get(..end))
                .is_some_and(|rest| {
                    rest.len() >= label.len() && rest.iter().rev().zip(label).all(|(a, b)| a == b)
                }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn found(trie: &Trie, subject: &[u8]) -> Vec<u32> {
        let mut ids = Vec::new();
        trie.for_each_prefix_of(subject, |id| ids.push(id));
        ids
    }

    #[test]
    fn finds_every_stored_prefix_shortest_first() {
        let mut trie = Trie::new(Direction::Forward);
        trie.insert(b"user:", 1);
        trie.insert(b"user:12:", 2);
        trie.insert(b"user:1", 3);
        trie.insert(b"", 4);
        trie.insert(b"admin", 5);
        assert_eq!(found(&trie, b"user:12:x"), vec![4, 1, 3, 2]);
        assert_eq!(found(&trie, b"user:2"), vec![4, 1]);
        assert_eq!(found(&trie, b"use"), vec![4]);
        assert_eq!(found(&trie, b"admin"), vec![4, 5]);
    }

    #[test]
    fn backward_tries_match_suffixes() {
        let mut trie = Trie::new(Direction::Backward);
        trie.insert(b":p5", 1);
        trie.insert(b"5", 2);
        trie.insert(b":p15", 3);
        assert_eq!(found(&trie, b"evt:p5"), vec![2, 1]);
        assert_eq!(found(&trie, b"evt:p15"), vec![2, 3]);
        assert_eq!(found(&trie, b"p5"), vec![2]);
        assert_eq!(found(&trie, b""), Vec::<u32>::new());
    }

    #[test]
    fn removing_everything_gives_the_arena_back() {
        let mut trie = Trie::new(Direction::Forward);
        for id in 0..10_000u32 {
            trie.insert(format!("tag:user:{id}:").as_bytes(), id);
        }
        assert!(trie.node_count() > 10_000);
        for id in (0..10_000u32).rev() {
            assert!(trie.remove(format!("tag:user:{id}:").as_bytes(), id));
        }
        assert!(trie.is_empty());
        assert_eq!(trie.node_count(), 1);
        assert!(trie.node_capacity() <= 4, "{}", trie.node_capacity());
    }

    #[test]
    fn removal_keeps_the_trie_compressed() {
        let mut trie = Trie::new(Direction::Forward);
        trie.insert(b"abc", 1);
        trie.insert(b"abd", 2);
        trie.insert(b"x", 3);
        assert_eq!(trie.node_count(), 5);
        assert!(trie.remove(b"abd", 2));
        // "ab" is merged back into "abc": root, "abc", "x".
        assert_eq!(trie.node_count(), 3);
        assert!(!trie.remove(b"abd", 2));
        assert!(!trie.remove(b"ab", 1));
        assert_eq!(found(&trie, b"abcdef"), vec![1]);
    }

    proptest! {
        #[test]
        fn agrees_with_a_list_of_keys(
            keys in proptest::collection::vec(proptest::collection::vec(0u8..4, 0..6), 0..40),
            removals in proptest::collection::vec(any::<prop::sample::Index>(), 0..30),
            subjects in proptest::collection::vec(proptest::collection::vec(0u8..4, 0..8), 1..10),
            backward in any::<bool>(),
        ) {
            let direction = if backward { Direction::Backward } else { Direction::Forward };
            let mut trie = Trie::new(direction);
            let mut live: Vec<(Vec<u8>, u32)> = Vec::new();
            for (id, key) in keys.iter().enumerate() {
                trie.insert(key, id as u32);
                live.push((key.clone(), id as u32));
            }
            for index in removals {
                if live.is_empty() {
                    break;
                }
                let (key, id) = live.remove(index.index(live.len()));
                prop_assert!(trie.remove(&key, id));
            }
            prop_assert_eq!(trie.len(), live.len());
            prop_assert!(trie.node_count() <= 2 * live.len() + 1);
            for subject in subjects {
                let mut expected: Vec<u32> = live
                    .iter()
                    .filter(|(key, _)| match direction {
                        Direction::Forward => subject.starts_with(key),
                        Direction::Backward => subject.ends_with(key),
                    })
                    .map(|(_, id)| *id)
                    .collect();
                let mut got = found(&trie, &subject);
                expected.sort_unstable();
                got.sort_unstable();
                prop_assert_eq!(got, expected);
            }
        }
    }
}
