//! Property tests of `HookTable`: routing, with its cache, agrees with a plain model that
//! re-checks every registered topic, through any sequence of inserts and removals.

use event_engine_core::{topic_hash, HookTable, Topic};
use proptest::prelude::*;

mod common;
use common::valid_topic;

#[derive(Clone, Debug)]
enum Op {
    Insert(String, u32),
    Remove(String),
    Clear,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (valid_topic(), any::<u32>()).prop_map(|(t, h)| Op::Insert(t, h)),
        3 => valid_topic().prop_map(Op::Remove),
        1 => Just(Op::Clear),
    ]
}

/// Registered (topic, hook) pairs in registration order, exact and generic apart.
#[derive(Clone, Default)]
struct Model {
    exact: Vec<(Topic, u32)>,
    generic: Vec<(Topic, u32)>,
}

impl Model {
    fn list(&mut self, topic: &Topic) -> &mut Vec<(Topic, u32)> {
        if topic.is_exact() {
            &mut self.exact
        } else {
            &mut self.generic
        }
    }

    fn route(&self, published: &Topic) -> Vec<u32> {
        let exact = self
            .exact
            .iter()
            .filter(|(t, _)| t.literal() == published.literal())
            .map(|&(_, h)| h);
        let generic = self
            .generic
            .iter()
            .filter(|(t, _)| t.matches(published))
            .map(|&(_, h)| h);
        exact.chain(generic).collect()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn routing_agrees_with_the_model(
        ops in prop::collection::vec(op(), 0..30),
        published in prop::collection::vec(valid_topic(), 1..8),
    ) {
        let published: Vec<Topic> = published.iter().map(|s| Topic::parse(s).unwrap()).collect();
        let mut table = HookTable::new();
        let mut model = Model::default();
        for op in ops {
            match op {
                Op::Insert(s, hook) => {
                    let topic = Topic::parse(&s).unwrap();
                    let list = model.list(&topic);
                    let old = match list.iter_mut().find(|(t, _)| *t == topic) {
                        Some(entry) => Some(std::mem::replace(&mut entry.1, hook)),
                        None => {
                            list.push((topic.clone(), hook));
                            None
                        }
                    };
                    prop_assert_eq!(table.insert(topic, hook), old);
                }
                Op::Remove(s) => {
                    let topic = Topic::parse(&s).unwrap();
                    let list = model.list(&topic);
                    let old = list
                        .iter()
                        .position(|(t, _)| *t == topic)
                        .map(|i| list.remove(i));
                    prop_assert_eq!(table.remove(&topic), old);
                }
                Op::Clear => {
                    table.clear();
                    model = Model::default();
                }
            }
            prop_assert_eq!(table.len(), model.exact.len() + model.generic.len());
            for topic in &published {
                let expected = model.route(topic);
                // Twice each: the first call may fill the cache, the second reads it.
                for _ in 0..2 {
                    let by_topic: Vec<u32> = table.route(topic).copied().collect();
                    prop_assert_eq!(&by_topic, &expected);
                    let by_literal: Vec<u32> = table
                        .route_literal(topic_hash(topic.literal()), topic.literal())
                        .copied()
                        .collect();
                    prop_assert_eq!(&by_literal, &expected);
                    let key = table.find_route(topic.hash_value(), topic.literal());
                    prop_assert_eq!(key.is_empty(), expected.is_empty());
                    let by_key: Vec<u32> = table
                        .route_keyed(Some(key), topic.hash_value(), topic.literal())
                        .copied()
                        .collect();
                    prop_assert_eq!(&by_key, &expected);
                }
            }
            // A key routes only what it was found for, and only while the table has not
            // changed: never another topic's hooks, and never stale ones.
            if let (Some(a), Some(b)) = (published.first(), published.last()) {
                let key = table.find_route(a.hash_value(), a.literal());
                let other: Vec<u32> = table
                    .route_keyed(Some(key), b.hash_value(), b.literal())
                    .copied()
                    .collect();
                prop_assert_eq!(other, model.route(b));
                // A hook registered on `a` itself changes its route: the old key must not hide it.
                if a.is_exact() && model.exact.iter().all(|(t, _)| t.literal() != a.literal()) {
                    let mut model = model.clone();
                    model.exact.push((a.clone(), u32::MAX));
                    table.insert(a.clone(), u32::MAX);
                    let after: Vec<u32> = table
                        .route_keyed(Some(key), a.hash_value(), a.literal())
                        .copied()
                        .collect();
                    prop_assert_eq!(after, model.route(a));
                    table.remove(a);
                }
            }
        }
    }
}
