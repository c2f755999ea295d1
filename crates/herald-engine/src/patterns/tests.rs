//! Pattern-index tests. Every test runs twice, with and without the result cache, and
//! the property test checks the index against a plain scan of every pattern.

use super::*;
use crate::outbox::OutputLimits;
use indexmap::IndexMap;
use proptest::prelude::*;

fn outbox(id: u64) -> Arc<Outbox> {
    Arc::new(Outbox::new(ClientId(id), Arc::new(OutputLimits::default())))
}

/// (pattern, client) pairs in delivery order.
fn flat(matches: &Matches) -> Vec<(Vec<u8>, u64)> {
    matches
        .iter()
        .flat_map(|m| {
            m.subscribers
                .iter()
                .map(|outbox| (m.pattern.to_vec(), outbox.id().0))
        })
        .collect()
}

fn both(test: impl Fn(PatternIndex)) {
    test(PatternIndex::new(true));
    test(PatternIndex::new(false));
}

#[test]
fn files_patterns_by_prefix_suffix_or_residual() {
    both(|index| {
        let a = outbox(1);
        for pattern in ["user:*", "*:p5", "*", "u?er:*x", "[u]ser:*"] {
            assert!(index.subscribe(pattern.as_bytes(), &a));
        }
        assert!(!index.subscribe(b"user:*", &a));
        let footprint = index.footprint();
        assert_eq!(footprint.patterns, 5);
        // `*` and `[u]ser:*` have neither a literal prefix nor suffix.
        assert_eq!(footprint.residual, 2);
        let got: Vec<_> = flat(&index.matching(b"user:p5"))
            .into_iter()
            .map(|(pattern, _)| String::from_utf8(pattern).unwrap())
            .collect();
        // Registration order, whatever trie each came from.
        assert_eq!(got, ["user:*", "*:p5", "*", "[u]ser:*"]);
        assert!(flat(&index.matching(b"")).is_empty());
        assert_eq!(flat(&index.matching(b"user:x")).len(), 4);
    });
}

#[test]
fn results_follow_every_change() {
    both(|index| {
        let (a, b) = (outbox(1), outbox(2));
        index.subscribe(b"news.*", &a);
        assert_eq!(flat(&index.matching(b"news.eu")).len(), 1);
        index.subscribe(b"news.*", &b);
        assert_eq!(
            flat(&index.matching(b"news.eu")),
            vec![(b"news.*".to_vec(), 1), (b"news.*".to_vec(), 2)]
        );
        assert!(index.unsubscribe(b"news.*", ClientId(1)));
        assert!(!index.unsubscribe(b"news.*", ClientId(1)));
        assert_eq!(
            flat(&index.matching(b"news.eu")),
            vec![(b"news.*".to_vec(), 2)]
        );
        assert!(index.unsubscribe(b"news.*", ClientId(2)));
        assert!(flat(&index.matching(b"news.eu")).is_empty());
        assert_eq!(index.len(), 0);
    });
}

#[test]
fn a_returning_pattern_goes_to_the_end_of_the_order() {
    both(|index| {
        let a = outbox(1);
        index.subscribe(b"a*", &a);
        index.subscribe(b"*b", &a);
        index.unsubscribe(b"a*", ClientId(1));
        index.subscribe(b"a*", &a);
        let order: Vec<_> = flat(&index.matching(b"ab"))
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(order, vec![b"*b".to_vec(), b"a*".to_vec()]);
    });
}

#[test]
fn the_cache_is_bounded_and_emptied_by_changes() {
    let index = PatternIndex::new(true);
    index.subscribe(b"*", &outbox(1));
    for n in 0..CACHE_SHARDS * CACHE_CHANNELS_PER_SHARD * 3 {
        index.matching(format!("channel:{n}").as_bytes());
    }
    let cached = index.footprint().cached_channels;
    assert!(cached > 0);
    assert!(
        cached <= CACHE_SHARDS * CACHE_CHANNELS_PER_SHARD,
        "{cached}"
    );
    index.subscribe(b"x*", &outbox(1));
    assert_eq!(index.footprint().cached_channels, 0);
    // Long names are matched but never copied into the cache.
    let long = vec![b'x'; CACHE_MAX_CHANNEL_BYTES + 1];
    assert_eq!(flat(&index.matching(&long)).len(), 2);
    assert_eq!(index.footprint().cached_channels, 0);
}

#[test]
fn ten_thousand_patterns_added_and_removed_leave_nothing_behind() {
    both(|index| {
        let fresh = index.footprint();
        let clients: Vec<_> = (0..10).map(outbox).collect();
        let pattern = |g: usize| match g % 100 {
            0..=9 => format!("*:tag:p{g}"),
            10 => format!("*{g}*"),
            _ => format!("tag:user:{g}:*"),
        };
        for g in 0..10_000 {
            assert!(index.subscribe(pattern(g).as_bytes(), &clients[g % 10]));
        }
        for g in (0..10_000).step_by(97) {
            index.matching(format!("tag:user:{g}:x").as_bytes());
        }
        let full = index.footprint();
        assert_eq!(full.patterns, 10_000);
        assert!(full.trie_nodes > 9_000, "{full:?}");
        for g in 0..10_000 {
            assert!(index.unsubscribe(pattern(g).as_bytes(), ClientId((g % 10) as u64)));
        }
        assert_eq!(index.footprint(), fresh);
        assert!(flat(&index.matching(b"tag:user:5:x")).is_empty());
    });
}

/// The reference: every pattern in registration order, tested one by one.
#[derive(Default)]
struct Scan {
    patterns: Vec<(Vec<u8>, IndexMap<u64, ()>)>,
}

impl Scan {
    fn subscribe(&mut self, pattern: &[u8], client: u64) -> bool {
        let position = match self.patterns.iter().position(|(p, _)| p == pattern) {
            Some(position) => position,
            None => {
                self.patterns.push((pattern.to_vec(), IndexMap::new()));
                self.patterns.len() - 1
            }
        };
        self.patterns[position].1.insert(client, ()).is_none()
    }

    fn unsubscribe(&mut self, pattern: &[u8], client: u64) -> bool {
        let Some(position) = self.patterns.iter().position(|(p, _)| p == pattern) else {
            return false;
        };
        let removed = self.patterns[position].1.swap_remove(&client).is_some();
        if self.patterns[position].1.is_empty() {
            self.patterns.remove(position);
        }
        removed
    }

    fn matching(&self, channel: &[u8]) -> Vec<(Vec<u8>, u64)> {
        self.patterns
            .iter()
            .filter(|(pattern, _)| Glob::new(pattern).matches(channel))
            .flat_map(|(pattern, clients)| clients.keys().map(|&c| (pattern.clone(), c)))
            .collect()
    }
}

#[derive(Debug, Clone)]
enum Op {
    Subscribe(u64, Vec<u8>),
    Unsubscribe(u64, Vec<u8>),
    Publish(Vec<u8>),
}

fn op() -> impl Strategy<Value = Op> {
    let pattern = proptest::collection::vec(prop::sample::select(b"ab:*?[]^\\".to_vec()), 0..7);
    let channel = proptest::collection::vec(prop::sample::select(b"ab:".to_vec()), 0..6);
    prop_oneof![
        (0u64..4, pattern.clone()).prop_map(|(c, p)| Op::Subscribe(c, p)),
        (0u64..4, pattern).prop_map(|(c, p)| Op::Unsubscribe(c, p)),
        channel.prop_map(Op::Publish),
    ]
}

proptest! {
    #[test]
    fn index_agrees_with_a_scan_of_every_pattern(
        ops in proptest::collection::vec(op(), 1..80),
        cache in any::<bool>(),
    ) {
        let index = PatternIndex::new(cache);
        let clients: Vec<_> = (0..4).map(outbox).collect();
        let mut scan = Scan::default();
        for op in ops {
            match op {
                Op::Subscribe(c, p) => {
                    prop_assert_eq!(index.subscribe(&p, &clients[c as usize]), scan.subscribe(&p, c));
                }
                Op::Unsubscribe(c, p) => {
                    prop_assert_eq!(index.unsubscribe(&p, ClientId(c)), scan.unsubscribe(&p, c));
                }
                Op::Publish(channel) => {
                    // Twice: the second may come from the cache.
                    prop_assert_eq!(flat(&index.matching(&channel)), scan.matching(&channel));
                    prop_assert_eq!(flat(&index.matching(&channel)), scan.matching(&channel));
                }
            }
            prop_assert_eq!(index.len(), scan.patterns.len());
        }
    }
}
