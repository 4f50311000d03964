//! What flows on a bus and what holds it up, derived from snapshots for `inspect` and `watch`:
//! topics summed over the publishers (and the rows that left) with the consumers that want
//! them and rates between two snapshots; publishers blocked on a full ring and the consumers
//! they wait for; bridges and their counters.
//!
//! Everything here comes from the region and is only shown: text is whatever the snapshot
//! validated, and a consumer index that names no live consumer is shown as such.

use engine_core::Topic;
use serde::Serialize;
use shm_ring::{BridgeRow, Role, Snapshot};
use std::collections::HashMap;

/// A consumer as an operator knows it: its entry, its group, the processes behind it.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRef {
    /// Consumer entry.
    pub consumer: u32,
    /// Group name (null for a fan-out subscriber).
    pub group: Option<String>,
    /// Pids of the processes subscribed through it (a group: its members).
    pub pids: Vec<u32>,
}

impl ConsumerRef {
    /// `pid 123`, `pids 1,2`, `group workers (pid 123)`, `group workers (no member)` (a group
    /// kept for its retention), or `consumer 5 (gone)`.
    pub fn describe(&self) -> String {
        let pids = match self.pids.as_slice() {
            [] => String::new(),
            [one] => format!("pid {one}"),
            many => format!(
                "pids {}",
                many.iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        };
        match (&self.group, pids.is_empty()) {
            (Some(g), true) => format!("group {g} (no member)"),
            (Some(g), false) => format!("group {g} ({pids})"),
            (None, false) => pids,
            (None, true) => format!("consumer {} (gone)", self.consumer),
        }
    }
}

/// Consumer entry `idx` of `s` as a [`ConsumerRef`].
pub fn consumer_ref(s: &Snapshot, idx: u32) -> ConsumerRef {
    let mut pids: Vec<u32> = s
        .processes
        .iter()
        .filter(|p| {
            matches!(p.role, Role::Subscriber | Role::GroupMember) && p.consumer == Some(idx)
        })
        .map(|p| p.pid)
        .collect();
    pids.dedup();
    ConsumerRef {
        consumer: idx,
        group: s
            .consumers
            .iter()
            .find(|c| c.consumer == idx)
            .and_then(|c| c.group.clone()),
        pids,
    }
}

/// The consumers of `s` whose interest matches the topic literal `topic` (as publishers
/// address them: a pattern that does not parse counts as wanting everything).
pub fn consumers_of(s: &Snapshot, topic: &str) -> Vec<ConsumerRef> {
    let literal = Topic::parse(topic).ok();
    s.consumers
        .iter()
        .filter(|c| match &c.topics {
            None => true,
            Some(patterns) => patterns.iter().any(|p| match Topic::parse(p) {
                Ok(p) => literal.as_ref().is_some_and(|t| p.matches(t)),
                Err(_) => true,
            }),
        })
        .map(|c| consumer_ref(s, c.consumer))
        .collect()
}

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
    /// The topic as shown: `(other topics)`, or with `…` when cut.
    pub fn label(&self) -> String {
        match (&self.topic, self.cut) {
            (None, _) => "(other topics)".into(),
            (Some(t), true) => format!("{t}…"),
            (Some(t), false) => t.clone(),
        }
    }

    /// The consumers as shown: `-` when none, `?` when unknown.
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
            .or_insert_with(|| TopicFlow {
                topic: t.topic.clone(),
                cut: t.cut,
                messages: 0,
                bytes: 0,
                unrouted: 0,
                messages_per_s: None,
                bytes_per_s: None,
                publishers: Vec::new(),
                consumers: Vec::new(),
            });
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
    sort(&mut flows);
    flows
}

fn sort(flows: &mut [TopicFlow]) {
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

/// The topics of `cur` with their rates since `prev`, taken `secs` earlier, busiest (by rate)
/// first. A topic absent from `prev` counts from zero.
pub fn topics_with_rates(prev: &Snapshot, cur: &Snapshot, secs: f64) -> Vec<TopicFlow> {
    let before: HashMap<(Option<String>, bool), (u64, u64)> = topics(prev)
        .into_iter()
        .map(|f| ((f.topic, f.cut), (f.messages, f.bytes)))
        .collect();
    let mut flows = topics(cur);
    if secs > 0.0 {
        for f in &mut flows {
            let (m, b) = before
                .get(&(f.topic.clone(), f.cut))
                .copied()
                .unwrap_or((0, 0));
            f.messages_per_s = Some(f.messages.saturating_sub(m) as f64 / secs);
            f.bytes_per_s = Some(f.bytes.saturating_sub(b) as f64 / secs);
        }
        flows.sort_by(|a, b| {
            let rate = |f: &TopicFlow| f.messages_per_s.unwrap_or(0.0);
            (a.topic.is_none())
                .cmp(&b.topic.is_none())
                .then(rate(b).total_cmp(&rate(a)))
                .then((b.messages + b.unrouted).cmp(&(a.messages + a.unrouted)))
                .then(a.topic.cmp(&b.topic))
        });
    }
    flows
}

/// A publisher waiting for room on a full ring.
#[derive(Serialize, Debug, Clone)]
pub struct Blocked {
    /// Its pid.
    pub pid: u32,
    /// Its process-table row.
    pub row: u32,
    /// Since when it waits, ns since the Unix epoch.
    pub since_ns: u64,
    /// The consumers holding the slot it needs.
    pub waiting_for: Vec<ConsumerRef>,
    /// The publisher that really holds it up, when there is one: it claimed the position the
    /// head needs, or one the consumers it waits for stand at, and has not published it.
    pub held_by: Option<Holder>,
}

/// A publisher between claim and commit that others wait for.
#[derive(Serialize, Debug, Clone)]
pub struct Holder {
    /// Its pid.
    pub pid: u32,
    /// Its process-table row.
    pub row: u32,
    /// The position it claimed and has not published.
    pub position: u64,
    /// Whether the process still runs (a dead one is reaped; a live one may be stopped).
    pub alive: bool,
}

/// The publishers of `s` that wait for room, longest waiting first. A publisher that holds
/// claimed positions it has not published is not waiting but holding, whatever its row says.
pub fn blocked(s: &Snapshot) -> Vec<Blocked> {
    let mut out: Vec<Blocked> = s
        .processes
        .iter()
        .filter(|p| p.role == Role::Publisher && p.waiting_since_ns != 0 && p.unpublished.is_none())
        .map(|p| Blocked {
            pid: p.pid,
            row: p.row,
            since_ns: p.waiting_since_ns,
            waiting_for: p.waiting_for.iter().map(|&c| consumer_ref(s, c)).collect(),
            held_by: holder(s, &p.waiting_for),
        })
        .collect();
    out.sort_by_key(|b| (b.since_ns, b.row));
    out
}

/// The claimant of an unpublished position that holds up a publisher waiting for `consumers`:
/// the position the head needs (a ring behind it), or the one where one of `consumers` stands
/// (for it, or not announced yet).
pub fn holder(s: &Snapshot, consumers: &[u32]) -> Option<Holder> {
    let needed = s.ring.head.wrapping_sub(s.ring.capacity);
    let cursors: Vec<u64> = s
        .processes
        .iter()
        .filter(|p| p.consumer.is_some_and(|c| consumers.contains(&c)))
        .filter_map(|p| p.cursor)
        .collect();
    s.processes.iter().find_map(|p| {
        let u = p.unpublished.as_ref()?;
        let covers = |pos: u64| pos.wrapping_sub(u.first) < u.count;
        let blocks_consumer = cursors.iter().any(|&c| covers(c))
            && (u.addressed.is_empty() || u.addressed.iter().any(|a| consumers.contains(a)));
        (covers(needed) || blocks_consumer).then(|| Holder {
            pid: p.pid,
            row: p.row,
            position: if covers(needed) { needed } else { u.first },
            alive: p.alive,
        })
    })
}

/// A publisher holding positions it claimed and has not published: the consumers it addresses
/// (all of them, until it has said whom) wait for it, and a ring later every publisher does.
#[derive(Serialize, Debug, Clone)]
pub struct Holding {
    /// Its pid.
    pub pid: u32,
    /// Its process-table row.
    pub row: u32,
    /// Whether the process still runs.
    pub alive: bool,
    /// The first unpublished position.
    pub first: u64,
    /// How many from `first` are unpublished.
    pub count: u64,
    /// The consumers it announced them for (empty: not decided yet).
    pub addressed: Vec<ConsumerRef>,
}

/// The publishers of `s` that hold claimed positions they have not published.
pub fn holding(s: &Snapshot) -> Vec<Holding> {
    s.processes
        .iter()
        .filter_map(|p| {
            let u = p.unpublished.as_ref()?;
            Some(Holding {
                pid: p.pid,
                row: p.row,
                alive: p.alive,
                first: u.first,
                count: u.count,
                addressed: u.addressed.iter().map(|&c| consumer_ref(s, c)).collect(),
            })
        })
        .collect()
}

/// A bridge attached to the bus: its process and the counters its row holds.
#[derive(Serialize, Debug, Clone)]
pub struct Bridge {
    /// Its pid.
    pub pid: u32,
    /// Whether it still runs.
    pub alive: bool,
    /// Server and counters, as the bridge's row holds them (flattened into this object).
    #[serde(flatten)]
    pub row: BridgeRow,
}

/// The bridges attached to `s`.
pub fn bridges(s: &Snapshot) -> Vec<Bridge> {
    s.processes
        .iter()
        .filter_map(|p| {
            Some(Bridge {
                pid: p.pid,
                alive: p.alive,
                row: p.bridge.clone()?,
            })
        })
        .collect()
}

/// A rate for people: `0`, `12.5`, `1.2k`, `3.4M` per second.
pub fn rate(per_s: Option<f64>, unit: &str) -> String {
    let Some(r) = per_s else {
        return "-".into();
    };
    let (value, prefix) = match r {
        r if r >= 1e9 => (r / 1e9, "G"),
        r if r >= 1e6 => (r / 1e6, "M"),
        r if r >= 1e3 => (r / 1e3, "k"),
        r => (r, ""),
    };
    let digits = if prefix.is_empty() && value >= 100.0 || value == 0.0 {
        0
    } else {
        1
    };
    format!("{value:.digits$}{prefix}{unit}/s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_as_people_write_them() {
        assert_eq!(rate(None, ""), "-");
        assert_eq!(rate(Some(0.0), ""), "0/s");
        assert_eq!(rate(Some(12.5), ""), "12.5/s");
        assert_eq!(rate(Some(250.0), ""), "250/s");
        assert_eq!(rate(Some(1234.0), "B"), "1.2kB/s");
        assert_eq!(rate(Some(3_400_000.0), ""), "3.4M/s");
    }

    #[test]
    fn consumers_are_described_by_group_and_pids() {
        let c = |group: Option<&str>, pids: Vec<u32>| ConsumerRef {
            consumer: 3,
            group: group.map(Into::into),
            pids,
        };
        assert_eq!(c(None, vec![7]).describe(), "pid 7");
        assert_eq!(c(Some("w"), vec![7, 8]).describe(), "group w (pids 7,8)");
        assert_eq!(c(Some("w"), vec![]).describe(), "group w (no member)");
        assert_eq!(c(None, vec![]).describe(), "consumer 3 (gone)");
    }
}
