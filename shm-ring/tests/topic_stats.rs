//! What a publisher's row counts per topic, as `Snapshot` reads it: messages, bytes and unrouted
//! messages by topic, the first 16 topics by name and the rest together, totals kept when a
//! publisher leaves, and a bridge's counters.

mod common;

use common::*;
use event_engine_shm::{Bus, Codec, SubscribeOptions, TopicCount};

fn named<'a>(topics: &'a [TopicCount], topic: &str) -> &'a TopicCount {
    topics
        .iter()
        .find(|t| t.topic.as_deref() == Some(topic))
        .unwrap_or_else(|| panic!("{topic} not in {topics:?}"))
}

#[test]
fn a_publisher_counts_messages_and_bytes_per_topic() {
    let g = BusGuard::new("topics");
    let bus = Bus::create(&g.name, &small()).unwrap();
    let mut sub = bus
        .subscribe_with(&SubscribeOptions {
            topics: Some(vec!["md.{symbol}".into()]),
            ..SubscribeOptions::default()
        })
        .unwrap();
    let mut publisher = bus.publisher().unwrap();
    for _ in 0..3 {
        publisher
            .publish("md.A", Codec::Raw, b"12345", None)
            .unwrap();
    }
    publisher
        .publish("md.B", Codec::Raw, &[0; 200], None)
        .unwrap();
    // Nobody wants it: counted as unrouted under its topic.
    publisher.publish("news.x", Codec::Raw, b"1", None).unwrap();
    // A run counts every message of it.
    let sent = publisher
        .publish_many("md.A", Codec::Raw, 10, 5, None, |_, b| b.fill(7))
        .unwrap();
    assert_eq!(sent, 5);
    let mut got = 0;
    while got < 9 {
        got += sub
            .recv_batch(64, Some(std::time::Duration::from_secs(5)), |_| {})
            .unwrap();
    }

    let snap = bus.snapshot();
    let row = snap
        .processes
        .iter()
        .find(|p| p.row == publisher.row())
        .unwrap();
    let a = named(&row.topics, "md.A");
    assert_eq!((a.messages, a.bytes, a.unrouted), (8, 3 * 5 + 5 * 10, 0));
    assert_eq!(a.hash, event_engine_shm::topic_hash("md.A"));
    let b = named(&row.topics, "md.B");
    assert_eq!((b.messages, b.bytes), (1, 200));
    let n = named(&row.topics, "news.x");
    assert_eq!((n.messages, n.unrouted), (0, 1));
    assert_eq!(row.topics.len(), 3, "no other entry: {:?}", row.topics);
    // Interests are in the snapshot, so tools can say who consumes each topic.
    assert_eq!(snap.consumers.len(), 1);
    assert_eq!(
        snap.consumers[0].topics.as_deref(),
        Some(&["md.{symbol}".to_string()][..])
    );
    assert!(snap.departed_topics.is_empty());
}

#[test]
fn topics_beyond_the_table_count_as_other_and_totals_outlive_the_publisher() {
    let g = BusGuard::new("topicsother");
    let bus = Bus::create(&g.name, &small()).unwrap();
    let mut sub = bus.subscribe().unwrap();
    let mut publisher = bus.publisher().unwrap();
    let long = format!("long.{}", "x".repeat(100));
    for i in 0..20 {
        let topic = if i == 19 {
            long.clone()
        } else {
            format!("t.{i}")
        };
        publisher.publish(&topic, Codec::Raw, b"xy", None).unwrap();
        publisher.publish(&topic, Codec::Raw, b"xy", None).unwrap();
        while sub.recv(Some(std::time::Duration::ZERO)).unwrap().is_some() {}
    }
    let snap = bus.snapshot();
    let row = snap
        .processes
        .iter()
        .find(|p| p.row == publisher.row())
        .unwrap();
    assert_eq!(row.topics.len(), 17, "{:?}", row.topics);
    for i in 0..16 {
        assert_eq!(named(&row.topics, &format!("t.{i}")).messages, 2);
    }
    let other = row.topics.last().unwrap();
    assert_eq!(other.topic, None);
    assert_eq!((other.messages, other.bytes), (8, 16));

    // A publisher that leaves hands its counts to the departed totals.
    drop(publisher);
    let snap = bus.snapshot();
    assert!(snap.processes.iter().all(|p| p.topics.is_empty()));
    assert_eq!(named(&snap.departed_topics, "t.3").messages, 2);
    assert_eq!(snap.departed_topics.last().unwrap().messages, 8);
    // Another one on the same topics adds to them, and its new row starts from zero.
    let mut again = bus.publisher().unwrap();
    again.publish("t.3", Codec::Raw, b"xyz", None).unwrap();
    let snap = bus.snapshot();
    let row = snap
        .processes
        .iter()
        .find(|p| p.row == again.row())
        .unwrap();
    assert_eq!(row.topics.len(), 1);
    assert_eq!(named(&row.topics, "t.3").bytes, 3);
    assert_eq!(row.unrouted, 0);
    drop(again);
    assert_eq!(named(&bus.snapshot().departed_topics, "t.3").messages, 3);
    drop(sub);
    drop(bus);
    assert!(event_engine_shm::inspect(&g.name).unwrap().is_idle());
}

#[test]
fn a_long_topic_is_kept_cut() {
    let g = BusGuard::new("topiccut");
    let bus = Bus::create(&g.name, &small()).unwrap();
    let _sub = bus.subscribe().unwrap();
    let mut publisher = bus.publisher().unwrap();
    let long = format!("long.{}", "é".repeat(60));
    publisher.publish(&long, Codec::Raw, b"1", None).unwrap();
    let snap = bus.snapshot();
    let row = snap
        .processes
        .iter()
        .find(|p| p.row == publisher.row())
        .unwrap();
    let t = &row.topics[0];
    assert!(t.cut);
    let text = t.topic.as_deref().unwrap();
    assert!(
        long.starts_with(text) && text.len() <= 40 && text.len() > 30,
        "{text}"
    );
    assert_eq!(t.messages, 1);
}

#[test]
fn a_bridge_says_so_in_its_row() {
    let g = BusGuard::new("bridgerow");
    let bus = Bus::create(&g.name, &small()).unwrap();
    assert!(bus.snapshot().processes.iter().all(|p| p.bridge.is_none()));
    // A label longer than the row keeps is cut, at a character boundary.
    let long = format!("nats://broker:4222,{}", "é".repeat(40));
    let counters = bus.announce_bridge(&long);
    counters.store(&event_engine_shm::BridgeCounts {
        out: 5,
        in_: 6,
        dropped: 1,
        reconnects: 2,
        held: 3,
        forgotten: 4,
    });
    let snap = bus.snapshot();
    let b = snap
        .processes
        .iter()
        .find_map(|p| p.bridge.clone())
        .expect("a bridge row");
    assert!(long.starts_with(&b.server), "{}", b.server);
    assert!(b.server.len() > 60 && b.server.len() <= 64, "{}", b.server);
    assert_eq!(
        (b.out, b.in_, b.dropped, b.reconnects, b.held, b.forgotten),
        (5, 6, 1, 2, 3, 4)
    );
}
