//! The consumers of a bus as an operator knows them: fan-out subscribers and groups, by entry,
//! group name and the processes behind them, and which of them want a topic.
//!
//! A consumer index read from the region that names no live consumer is shown as such (`gone`),
//! never trusted to exist.

use engine_core::Topic;
use serde::Serialize;
use shm_ring::{Role, Snapshot};

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

/// One live consumer and what it wants.
#[derive(Serialize, Debug)]
pub struct Consumer {
    /// Consumer entry.
    pub consumer: u32,
    /// Group name (null: a fan-out subscriber).
    pub group: Option<String>,
    /// Patterns it wants (null: every topic).
    pub topics: Option<Vec<String>>,
    /// Pids subscribed through it.
    pub pids: Vec<u32>,
}

/// The live consumers of `s`.
pub fn consumers(s: &Snapshot) -> Vec<Consumer> {
    s.consumers
        .iter()
        .map(|c| Consumer {
            consumer: c.consumer,
            group: c.group.clone(),
            topics: c.topics.clone(),
            pids: consumer_ref(s, c.consumer).pids,
        })
        .collect()
}

/// One group.
#[derive(Serialize, Debug)]
pub struct Group {
    /// Group name.
    pub name: String,
    /// Live members.
    pub members: u32,
    /// The group's next position.
    pub cursor: u64,
    /// Messages published that the group has not taken yet.
    pub lag: u64,
    /// Messages handed to another member after a member died.
    pub redelivered: u64,
    /// With no live member, the group keeps its backlog this many more milliseconds (0: until
    /// the next reap); `null` while it has members.
    pub kept_for_ms: Option<u64>,
}

/// The groups of `s`, with their lag behind the ring's head.
pub fn groups(s: &Snapshot) -> Vec<Group> {
    s.groups
        .iter()
        .map(|g| Group {
            name: g.name.clone(),
            members: g.members,
            cursor: g.cursor,
            lag: s.ring.head.saturating_sub(g.cursor),
            redelivered: g.redelivered,
            kept_for_ms: g.kept_for_ms,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
