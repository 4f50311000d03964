//! A plain-data view of a bus for tools (`event-engine inspect`, `ls`, `top`): geometry, ring
//! occupancy, process and group tables, slab usage and counters. Reading it never changes the bus,
//! and every value is read with range checks, so a corrupt region gives odd numbers, never a fault.

use crate::blocks::atomics::Ordering;
use crate::blocks::entry;
use crate::blocks::ring::{dist, Intent};
use crate::region::interest::Wanted;
use crate::region::layout::{CONSUMER_LIVE, KIND_GROUP, ROW_LIVE};
pub use crate::region::stats::{BridgeRow, TopicCount};
use crate::region::table::{consumer_name, Role};
use crate::region::Region;
use crate::{BusConfig, BusError};

/// Everything the command line shows about a bus.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Snapshot {
    /// Bus name.
    pub name: String,
    /// Layout version of the region.
    pub version: u32,
    /// Geometry (mode and owner policy read as defaults).
    pub geometry: BusConfig,
    /// Size of the region file in bytes.
    pub file_size: u64,
    /// Creation time, nanoseconds since the Unix epoch.
    pub created_ns: u64,
    /// Ring state.
    pub ring: RingRow,
    /// Live process-table rows.
    pub processes: Vec<ProcessRow>,
    /// Live groups.
    pub groups: Vec<GroupRow>,
    /// Live consumers (fan-out subscribers and groups) and what they want.
    pub consumers: Vec<ConsumerRow>,
    /// Topic counts of the process-table rows that have left, summed.
    pub departed_topics: Vec<TopicCount>,
    /// Slab size classes.
    pub slab: Vec<SlabClassRow>,
    /// Bus-wide counters.
    pub counters: Counters,
    /// What is found to be corrupt in the region (state no run of the protocol produces: a ring
    /// head moved back, a damaged slot or free list, a cursor outside the ring), one sentence
    /// each; empty for a sound region.
    pub corruption: Vec<String>,
}

/// Ring state.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RingRow {
    /// Next position a publisher claims (= messages ever claimed).
    pub head: u64,
    /// Lowest cursor of any live consumer (`head` when there is none).
    pub tail: u64,
    /// Positions between tail and head.
    pub occupancy: u64,
    /// Number of slots.
    pub capacity: u64,
    /// Bits of the live consumers.
    pub active_mask: u64,
}

/// One live process-table row.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ProcessRow {
    /// Row index.
    pub row: u32,
    /// Process id.
    pub pid: u32,
    /// Process start time (clock ticks since boot).
    pub start_time: u64,
    /// Whether the process still runs.
    pub alive: bool,
    /// Group name for group members.
    pub group: Option<String>,
    /// What the row is used for.
    pub role: Role,
    /// Its consumer entry (subscribers and group members): what `waiting_for` names.
    pub consumer: Option<u32>,
    /// Cursor of its consumer (subscribers).
    pub cursor: Option<u64>,
    /// Messages published but not yet received (subscribers).
    pub lag: Option<u64>,
    /// A lossy subscriber: publishers take what it has not read instead of waiting for it.
    pub lossy: bool,
    /// Messages for a lossy subscriber that publishers took because it was a ring behind.
    pub missed: u64,
    /// Messages received and acknowledged.
    pub delivered: u64,
    /// Messages published.
    pub published: u64,
    /// Messages published that no consumer wanted (they took no ring position).
    pub unrouted: u64,
    /// A publisher waiting for ring space: the consumer entries holding the slot it needs.
    pub waiting_for: Vec<u32>,
    /// Since when it waits, nanoseconds since the Unix epoch (0 when it does not).
    pub waiting_since_ns: u64,
    /// A publisher between claim and commit: the positions it claimed that are not published
    /// yet. Consumers it addresses wait for them, and once the ring comes round to them every
    /// publisher does.
    pub unpublished: Option<Unpublished>,
    /// Messages received that a dead member had in flight.
    pub redelivered: u64,
    /// Last heartbeat, nanoseconds since the Unix epoch.
    pub last_heartbeat_ns: u64,
    /// A publisher's messages per topic (its first 16 topics by name, the rest as other).
    pub topics: Vec<TopicCount>,
    /// The counters of a bridge, on the row of its bus handle.
    pub bridge: Option<BridgeRow>,
    /// A holder row (`Role::Holder`): the slab blocks its process keeps (views of received
    /// messages, loans) and their bytes, by block size.
    pub held_blocks: u64,
    /// See `held_blocks`.
    pub held_bytes: u64,
    /// A subscriber: messages whose buffers it got as private copies because it held as many
    /// blocks as it may.
    pub copies: u64,
}

/// Positions a publisher has claimed and not published yet.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Unpublished {
    /// The first of them.
    pub first: u64,
    /// How many, from `first` on.
    pub count: u64,
    /// The consumer entries it announced them for (empty: not decided yet, which holds every
    /// consumer that reaches them).
    pub addressed: Vec<u32>,
}

/// One live consumer: a fan-out subscriber or a group.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ConsumerRow {
    /// Its consumer entry (what `ProcessRow::consumer` and `waiting_for` name).
    pub consumer: u32,
    /// The group's name, `None` for a fan-out subscriber.
    pub group: Option<String>,
    /// The patterns it wants (topic grammar); `None`: every topic.
    pub topics: Option<Vec<String>>,
}

/// One live group.
#[derive(Clone, Debug, serde::Serialize)]
pub struct GroupRow {
    /// Group name.
    pub name: String,
    /// Its consumer entry (what `ProcessRow::waiting_for` names).
    pub consumer: u32,
    /// The group's next position.
    pub cursor: u64,
    /// Live members.
    pub members: u32,
    /// Messages handed to another member after a member died.
    pub redelivered: u64,
    /// A group with no live member is kept, with its backlog, for the bus's group retention:
    /// the milliseconds it has left then (0: it goes at the next reap), `None` while it has a
    /// member.
    pub kept_for_ms: Option<u64>,
}

/// One slab size class.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SlabClassRow {
    /// Block size in bytes.
    pub block_size: u32,
    /// Blocks in the class.
    pub total: u32,
    /// Blocks free.
    pub free: u32,
    /// Blocks in use.
    pub used: u32,
    /// Blocks kept by holders (views and loans; one per holder and block, so it may exceed
    /// `used` when several hold one block).
    pub held: u32,
}

/// Bus-wide counters.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Counters {
    /// Messages published (ring positions claimed).
    pub published: u64,
    /// Messages published that no consumer wanted, since the bus was created (by the publishers
    /// attached now and those that left).
    pub unrouted: u64,
    /// Publishes that found the ring full and had to wait.
    pub full_waits: u64,
    /// Messages handed to another group member after a member died.
    pub redeliveries: u64,
    /// Dead process-table rows reclaimed.
    pub reaped: u64,
    /// Messages dropped with groups that had no member for longer than the group retention.
    pub backlog_dropped: u64,
    /// Subscribers currently asleep.
    pub sub_sleepers: u32,
    /// Publishers currently asleep.
    pub pub_sleepers: u32,
}

/// The positions row `r` announces that are claimed and not published yet. A sealed run is
/// left out: it is for nobody and holds nobody (whoever reaches one of its positions
/// tombstones it, `RingView::seal`).
fn unpublished(region: &Region, r: &crate::region::layout::Row, head: u64) -> Option<Unpublished> {
    let ring = region.ring();
    let word = r.publishing.load(Ordering::SeqCst);
    if Intent::sealed(word) {
        return None;
    }
    let run = Intent::read(word, head)?;
    // Its addressees are the run's only once announced.
    let addressed = if word & Intent::ANNOUNCED != 0 {
        r.addressed.load(Ordering::Acquire)
    } else {
        0
    };
    let claimed =
        |pos: u64| dist(head, pos) > 0 && ring.slot(pos).seq.load(Ordering::Acquire) == pos;
    // A run is at most a ring long; a corrupt word may say more.
    let count = run.count.min(ring.capacity());
    let first = (0..count)
        .map(|i| run.first.wrapping_add(i))
        .find(|&p| claimed(p))?;
    let left = (0..count)
        .map(|i| run.first.wrapping_add(i))
        .filter(|&p| dist(p, first) >= 0 && claimed(p))
        .count() as u64;
    Some(Unpublished {
        first,
        count: left,
        addressed: bits(addressed),
    })
}

/// The indices of the set bits of `mask`.
fn bits(mask: u64) -> Vec<u32> {
    (0..64).filter(|b| mask & 1 << b != 0).collect()
}

impl Snapshot {
    pub(crate) fn read(region: &Region) -> Snapshot {
        let l = region.layout();
        let h = region.header();
        let head = h.head.load(Ordering::Acquire);
        let consumers = region.consumers();
        let lossy_mask = h.lossy_mask.load(Ordering::Relaxed);
        let cursor_of = |idx: u32| -> Option<u64> {
            let c = consumers.get(idx as usize)?;
            let lossy = lossy_mask & 1u64.checked_shl(idx).unwrap_or(0) != 0;
            (c.state.load(Ordering::Acquire) == CONSUMER_LIVE)
                .then(|| entry::position(c.cursor.load(Ordering::Relaxed), lossy, head))
        };
        let mut processes = Vec::new();
        for (i, r) in region.rows().iter().enumerate() {
            if r.state.load(Ordering::Acquire) != ROW_LIVE {
                continue;
            }
            let role = Role::from_code(r.role.load(Ordering::Relaxed));
            let consumer = r.consumer.load(Ordering::Relaxed);
            let cursor = matches!(role, Role::Subscriber | Role::GroupMember)
                .then(|| cursor_of(consumer))
                .flatten();
            let group = (role == Role::GroupMember)
                .then(|| consumers.get(consumer as usize).and_then(consumer_name))
                .flatten();
            let held = (role == Role::Holder)
                .then(|| region.row_stats(i as u32).map(|s| s.holds()))
                .flatten()
                .unwrap_or((0, 0));
            processes.push(ProcessRow {
                row: i as u32,
                pid: r.pid.load(Ordering::Relaxed),
                start_time: r.start_time.load(Ordering::Relaxed),
                alive: region.row_alive(r),
                group,
                role,
                consumer: matches!(role, Role::Subscriber | Role::GroupMember).then_some(consumer),
                cursor,
                lag: cursor.map(|c| head.saturating_sub(c)),
                lossy: role == Role::Subscriber
                    && h.lossy_mask.load(Ordering::Relaxed)
                        & 1u64.checked_shl(consumer).unwrap_or(0)
                        != 0,
                missed: (role == Role::Subscriber)
                    .then(|| consumers.get(consumer as usize))
                    .flatten()
                    .map_or(0, |c| c.missed.load(Ordering::Relaxed)),
                delivered: r.delivered.load(Ordering::Relaxed),
                published: r.published.load(Ordering::Relaxed),
                unrouted: r.unrouted.load(Ordering::Relaxed),
                waiting_for: bits(r.waiting_for.load(Ordering::Relaxed)),
                waiting_since_ns: r.waiting_since_ns.load(Ordering::Relaxed),
                unpublished: unpublished(region, r, head),
                redelivered: r.redelivered.load(Ordering::Relaxed),
                last_heartbeat_ns: r.heartbeat_ns.load(Ordering::Relaxed),
                topics: region
                    .row_stats(i as u32)
                    .map(|s| s.read_topics())
                    .unwrap_or_default(),
                bridge: region.row_stats(i as u32).and_then(|s| s.read_bridge()),
                held_blocks: held.0,
                held_bytes: held.1,
                copies: r.copies.load(Ordering::Relaxed),
            });
        }
        let retention_ms = h.group_retention_ms.load(Ordering::Relaxed);
        let mut groups = Vec::new();
        let mut live_consumers = Vec::new();
        let mut tail = head;
        for (i, c) in consumers
            .iter()
            .enumerate()
            .take(l.max_subscribers as usize)
        {
            let Some(cursor) = cursor_of(i as u32) else {
                continue;
            };
            tail = tail.min(cursor);
            let group = c.kind.load(Ordering::Relaxed) == KIND_GROUP;
            live_consumers.push(ConsumerRow {
                consumer: i as u32,
                group: group.then(|| consumer_name(c).unwrap_or_else(|| "<corrupt name>".into())),
                topics: match region.read_interest(i).1 {
                    Wanted::All => None,
                    Wanted::Patterns(p) => Some(p),
                },
            });
            if group {
                groups.push(GroupRow {
                    name: consumer_name(c).unwrap_or_else(|| "<corrupt name>".into()),
                    consumer: i as u32,
                    cursor,
                    members: c.members.load(Ordering::Relaxed),
                    redelivered: c.redelivered.load(Ordering::Relaxed),
                    kept_for_ms: match c.orphaned_ns.load(Ordering::Relaxed) {
                        0 => None,
                        since => Some(retention_ms.saturating_sub(
                            crate::recovery::retention_clock_ns().saturating_sub(since) / 1_000_000,
                        )),
                    },
                });
            }
        }
        let slab = l
            .classes
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let used = region.class(i).used.load(Ordering::Relaxed).min(c.count);
                SlabClassRow {
                    block_size: c.block_size,
                    total: c.count,
                    free: c.count - used,
                    used,
                    held: region.class(i).held.load(Ordering::Relaxed),
                }
            })
            .collect();
        let departed_topics = region.departed_stats().read_topics();
        // Every unrouted message is counted under some topic entry (named or other), so the
        // departed rows' entries hold all of theirs.
        let unrouted = processes
            .iter()
            .map(|p| p.unrouted)
            .chain(departed_topics.iter().map(|t| t.unrouted))
            .fold(0u64, u64::saturating_add);
        Snapshot {
            name: region.name().to_string(),
            version: h.version.load(Ordering::Relaxed),
            geometry: BusConfig {
                group_retention_ms: retention_ms,
                ..l.config()
            },
            file_size: l.total_size,
            created_ns: h.created_ns.load(Ordering::Relaxed),
            ring: RingRow {
                head,
                tail,
                occupancy: head.saturating_sub(tail),
                capacity: l.ring_capacity as u64,
                active_mask: h.active_mask.load(Ordering::Relaxed),
            },
            processes,
            groups,
            consumers: live_consumers,
            departed_topics,
            slab,
            counters: Counters {
                published: head,
                unrouted,
                full_waits: h.full_waits.load(Ordering::Relaxed),
                redeliveries: h.redeliveries.load(Ordering::Relaxed),
                reaped: h.reaped.load(Ordering::Relaxed),
                backlog_dropped: h.backlog_dropped.load(Ordering::Relaxed),
                sub_sleepers: region
                    .consumers()
                    .iter()
                    .map(|c| c.sleepers.load(Ordering::Relaxed))
                    .sum(),
                pub_sleepers: h.pub_sleepers.load(Ordering::Relaxed),
            },
            corruption: crate::recovery::check::problems(region),
        }
    }

    /// True when nothing is attached and every resource is back to idle: no live row, no live
    /// consumer but groups kept without members, every block free, no sleeper (invariant 2).
    pub fn is_idle(&self) -> bool {
        let kept = self
            .groups
            .iter()
            .filter(|g| g.kept_for_ms.is_some())
            .fold(0u64, |m, g| m | 1u64.checked_shl(g.consumer).unwrap_or(0));
        self.processes.is_empty()
            && self.ring.active_mask & !kept == 0
            && self.slab.iter().all(|c| c.used == 0 && c.free == c.total)
            && self.counters.sub_sleepers == 0
            && self.counters.pub_sleepers == 0
    }
}

/// One bus file in `/dev/shm`, for `event-engine ls`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BusInfo {
    /// Bus name.
    pub name: String,
    /// File size in bytes.
    pub size: u64,
    /// Seconds since the file was last modified (about its age).
    pub age_secs: u64,
    /// Distinct processes (pid and start time) attached, if the region could be read.
    pub attached: Option<u32>,
    /// Of those, processes that are alive.
    pub alive: Option<u32>,
    /// When the bus was created (ns since the Unix epoch), if the region could be read.
    pub created_ns: Option<u64>,
    /// Why the region could not be read, if it could not.
    pub error: Option<String>,
}

/// Every bus file in `/dev/shm`; those of other users (and any that cannot be read as a bus)
/// with the reason in `error`.
pub fn list_buses() -> Result<Vec<BusInfo>, BusError> {
    let dir = std::fs::read_dir(crate::config::SHM_DIR).map_err(|source| BusError::ShmDir {
        path: crate::config::SHM_DIR.to_string(),
        source,
    })?;
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let file_name = entry.file_name();
        let Some(name) = file_name
            .to_str()
            .and_then(|n| n.strip_prefix(crate::config::FILE_PREFIX))
        else {
            continue;
        };
        if crate::validate_name(name).is_err() {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        let age_secs = meta
            .modified()
            .ok()
            .and_then(|m| m.elapsed().ok())
            .map_or(0, |d| d.as_secs());
        // Read, not mapped, and only files of this user (`region::peek`): a file another user
        // shrinks or leaves sparse on a full /dev/shm must not crash the reader with SIGBUS.
        let (attached, alive, created_ns, error) = match crate::region::peek(name) {
            Ok(p) => {
                // A process holds several rows (bus handle, publisher, subscriber): count it once.
                let mut procs = p.rows;
                procs.sort_unstable();
                procs.dedup_by(|b, a| {
                    (a.0, a.1) == (b.0, b.1) && {
                        a.2 |= b.2;
                        true
                    }
                });
                let alive = procs.iter().filter(|p| p.2).count() as u32;
                (
                    Some(procs.len() as u32),
                    Some(alive),
                    Some(p.created_ns),
                    None,
                )
            }
            Err(e) => (None, None, None, Some(e.to_string())),
        };
        out.push(BusInfo {
            name: name.to_string(),
            size: meta.len(),
            age_secs,
            attached,
            alive,
            created_ns,
            error,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}
