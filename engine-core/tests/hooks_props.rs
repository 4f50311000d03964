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
#[derive(Default)]
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
                    prop_assert_eq!(
                        table.has_route(topic.hash_value(), topic.literal()),
                        !expected.is_empty()
                    );
                    let key = table.find_route(topic.hash_value(), topic.literal());
                    prop_assert_eq!(key.is_empty(), expected.is_empty());
                    let by_key: Option<Vec<u32>> = table
                        .route_by_key(key, topic.literal())
                        .map(|r| r.copied().collect());
                    prop_assert_eq!(by_key.as_ref(), Some(&expected));
                }
            }
            // A key is read only for what it was found for, and only while the table has not
            // changed: never another topic's hooks.
            if let (Some(a), Some(b)) = (published.first(), published.last()) {
                let key = table.find_route(a.hash_value(), a.literal());
                if a.literal() != b.literal() {
                    prop_assert!(table.route_by_key(key, b.literal()).is_none());
                }
                table.insert(Topic::parse("Key.Changes.The.Table").unwrap(), 0);
                prop_assert!(table.route_by_key(key, a.literal()).is_none());
                table.remove(&Topic::parse("Key.Changes.The.Table").unwrap());
            }
        }
    }
}
