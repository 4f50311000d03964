//! Who waits for whom on a bus: publishers blocked on a full ring and the consumers they wait
//! for, and publishers holding positions they claimed and have not published (which the
//! consumers they address wait for, and a ring later every publisher).

use super::consumers::{consumer_ref, ConsumerRef};
use serde::Serialize;
use shm_ring::{Role, Snapshot};

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
