//! The topics that flow on a bus: each topic's messages and bytes summed over the publishers
//! (live ones and the rows that left), the consumers whose interest matches it, and its rates
//! between two snapshots.

use super::consumers::{consumers_of, ConsumerRef};
use serde::Serialize;
use shm_ring::Snapshot;
use std::collections::HashMap;

/// One topic as it flows on the bus, summed over publishers.
#[derive(Serialize, Debug, Clone)]
pub struct TopicFlow {
    /// The topic; null for the topics publishers count together beyond their 16 named ones.
    pub topic: Option<String>,
    /// Whether `topic` is only the start of a longer topic (40 bytes are kept).
    pub cut: bool,
    /// Messages published on it (that took a ring position), by live publishers and those
    /// that left.
    pub messages: u64,
    /// Payload bytes of those messages.
    pub bytes: u64,
    /// Messages published on it that no consumer wanted.
    pub unrouted: u64,
    /// Messages per second between the two snapshots (null with one snapshot).
    pub messages_per_s: Option<f64>,
    /// Payload bytes per second between the two snapshots.
    pub bytes_per_s: Option<f64>,
    /// Pids of the live publishers that published on it.
    pub publishers: Vec<u32>,
    /// Consumers whose interest matches it (empty for other and cut topics: unknown).
    pub consumers: Vec<ConsumerRef>,
}

impl TopicFlow {
    fn new(topic: Option<String>, cut: bool) -> TopicFlow {
        TopicFlow {
            topic,
            cut,
            messages: 0,
            bytes: 0,
            unrouted: 0,
            messages_per_s: None,
            bytes_per_s: None,
            publishers: Vec::new(),
            consumers: Vec::new(),
        }
    }

    /// The topic as shown: `(other topics)`, or with `…` when cut.
    pub fn label(&self) -> String {
        match (&self.topic, self.cut) {
            (None, _) => "(other topics)".into(),
            (Some(t), true) => format!("{t}…"),
            (Some(t), false) => t.clone(),
        }
    }

    /// The consumers as shown: `none` when none, `?` when unknown.
    pub fn consumers_text(&self) -> String {
        if self.topic.is_none() || self.cut {
            return "?".into();
        }
        if self.consumers.is_empty() {
            return "none".into();
        }
        self.consumers
            .iter()
            .map(ConsumerRef::describe)
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// The topics of `s`: live publishers' counts plus those of rows that left, summed by topic,
/// busiest first, the other topics last.
pub fn topics(s: &Snapshot) -> Vec<TopicFlow> {
    let mut by_key: HashMap<(Option<String>, bool), TopicFlow> = HashMap::new();
    let live = s
        .processes
        .iter()
        .flat_map(|p| p.topics.iter().map(move |t| (Some(p.pid), t)));
    let departed = s.departed_topics.iter().map(|t| (None, t));
    for (pid, t) in live.chain(departed) {
        let f = by_key
            .entry((t.topic.clone(), t.cut))
            .or_insert_with(|| TopicFlow::new(t.topic.clone(), t.cut));
        f.messages = f.messages.saturating_add(t.messages);
        f.bytes = f.bytes.saturating_add(t.bytes);
        f.unrouted = f.unrouted.saturating_add(t.unrouted);
        if let Some(pid) = pid {
            if !f.publishers.contains(&pid) {
                f.publishers.push(pid);
            }
        }
    }
    let mut flows: Vec<TopicFlow> = by_key.into_values().collect();
    for f in &mut flows {
        if let (Some(t), false) = (&f.topic, f.cut) {
            f.consumers = consumers_of(s, t);
        }
    }
    sort_by_total(&mut flows);
    flows
}

/// Busiest (by messages ever) first, the other topics last, ties by name.
fn sort_by_total(flows: &mut [TopicFlow]) {
    flows.sort_by(|a, b| {
        (
            a.topic.is_none(),
            std::cmp::Reverse(a.messages + a.unrouted),
            &a.topic,
        )
            .cmp(&(
                b.topic.is_none(),
                std::cmp::Reverse(b.messages + b.unrouted),
                &b.topic,
            ))
    });
}

/// Busiest (by rate) first, the other topics last, ties by messages ever, then by name.
fn sort_by_rate(flows: &mut [TopicFlow]) {
    flows.sort_by(|a, b| {
        let rate = |f: &TopicFlow| f.messages_per_s.unwrap_or(0.0);
        (a.topic.is_none())
            .cmp(&b.topic.is_none())
            .then(rate(b).total_cmp(&rate(a)))
            .then((b.messages + b.unrouted).cmp(&(a.messages + a.unrouted)))
            .then(a.topic.cmp(&b.topic))
    });
}

/// The topics of `cur` with their rates since `prev`, taken `secs` earlier, busiest (by rate)
/// first. A topic absent from `prev` counts from zero. With `secs` 0 there are no rates.
pub fn topics_with_rates(prev: &Snapshot, cur: &Snapshot, secs: f64) -> Vec<TopicFlow> {
    let mut flows = topics(cur);
    if secs > 0.0 {
        add_rates(&mut flows, &topics(prev), secs);
        sort_by_rate(&mut flows);
    }
    flows
}

/// Sets the rates of `flows` from their counts `secs` after those of `before`.
fn add_rates(flows: &mut [TopicFlow], before: &[TopicFlow], secs: f64) {
    let before: HashMap<(&Option<String>, bool), (u64, u64)> = before
        .iter()
        .map(|f| ((&f.topic, f.cut), (f.messages, f.bytes)))
        .collect();
    for f in flows {
        let (m, b) = before.get(&(&f.topic, f.cut)).copied().unwrap_or((0, 0));
        f.messages_per_s = Some(f.messages.saturating_sub(m) as f64 / secs);
        f.bytes_per_s = Some(f.bytes.saturating_sub(b) as f64 / secs);
    }
}
