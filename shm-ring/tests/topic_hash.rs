//! A message carries its topic's hash, and the Python engine looks its hooks up by
//! `engine_core::topic_hash`: the two must agree for every topic, or messages are misrouted.

use proptest::prelude::*;

#[test]
fn known_topics_hash_alike() {
    for t in [
        "",
        "Market.Data.AAPL",
        "订单.动作",
        "a..b",
        "EventEngine.Internal.Timer.Second",
    ] {
        assert_eq!(shm_ring::topic_hash(t), engine_core::topic_hash(t), "{t:?}");
    }
}

proptest! {
    #[test]
    fn any_topic_hashes_alike(t in ".{0,80}") {
        prop_assert_eq!(shm_ring::topic_hash(&t), engine_core::topic_hash(&t));
    }
}
