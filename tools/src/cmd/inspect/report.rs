//! The JSON shape `inspect --json` prints, built from a `shm_ring::Snapshot`. It is defined here,
//! apart from the snapshot, because its field names are an API that scripts rely on and must not
//! move when the bus internals do; `inspect --help` documents every field.

use super::flows::{self, Blocked, Bridge, Holding, TopicFlow};
use serde::Serialize;
use shm_ring::{Role, Snapshot};

/// Version of the JSON shape below; bumped only for changes that break readers.
pub const SCHEMA_VERSION: u32 = 1;

/// `inspect --json` output.
#[derive(Serialize, Debug)]
pub struct Report {
    /// [`SCHEMA_VERSION`].
    pub schema: u32,
    /// Bus name.
    pub name: String,
    /// Region layout version.
    pub layout_version: u32,
    /// File size in bytes.
    pub file_size: u64,
    /// Creation time, ns since the Unix epoch.
    pub created_ns: u64,
    /// Geometry stored in the header.
    pub geometry: Geometry,
    /// Ring positions.
    pub ring: Ring,
    /// Counts by kind of attachment.
    pub summary: Summary,
    /// One entry per process-table row in use.
    pub processes: Vec<Process>,
    /// One entry per group.
    pub groups: Vec<Group>,
    /// One entry per live consumer (fan-out subscriber or group).
    pub consumers: Vec<Consumer>,
    /// The topics published, summed over publishers (including those that left).
    pub topics: Vec<TopicFlow>,
    /// Milliseconds between the two snapshots the topic rates come from (null: one snapshot).
    pub rates_over_ms: Option<u64>,
    /// Publishers waiting for room, and whom they wait for.
    pub blocked: Vec<Blocked>,
    /// Publishers holding positions they claimed and have not published.
    pub holding: Vec<Holding>,
    /// Bridges attached to the bus.
    pub bridges: Vec<Bridge>,
    /// One entry per slab size class.
    pub slab: Vec<SlabClass>,
    /// Bus-wide counters.
    pub counters: Counters,
    /// What is corrupt in the region, one sentence each; empty for a sound bus.
    pub corruption: Vec<String>,
}

/// Geometry stored in the header.
#[derive(Serialize, Debug)]
pub struct Geometry {
    /// Ring slots.
    pub ring_capacity: u32,
    /// Largest payload in bytes.
    pub max_message: u32,
    /// Payload blocks across all size classes.
    pub slab_blocks: u32,
    /// Process-table rows.
    pub max_processes: u32,
    /// Fan-out subscribers plus groups.
    pub max_subscribers: u32,
}

/// Ring positions.
#[derive(Serialize, Debug)]
pub struct Ring {
    /// Messages ever published.
    pub head: u64,
    /// Lowest live consumer cursor (`head` when there is none).
    pub tail: u64,
    /// `head - tail`.
    pub occupancy: u64,
    /// Slots.
    pub capacity: u64,
}

/// Counts by kind of attachment.
#[derive(Serialize, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Distinct processes (pid and start time) holding rows.
    pub processes: u32,
    /// Of those, processes that are alive.
    pub alive: u32,
    /// Process-table rows in use (a process holds one per bus handle, publisher and subscriber).
    pub rows: u32,
    /// Publisher rows.
    pub publishers: u32,
    /// Fan-out subscriber rows.
    pub subscribers: u32,
    /// Group member rows.
    pub group_members: u32,
    /// Attached bus handles.
    pub handles: u32,
    /// Groups.
    pub groups: u32,
    /// Distinct processes holding at least one publisher row.
    pub publishing_processes: u32,
    /// Distinct processes holding at least one fan-out subscriber row.
    pub subscribing_processes: u32,
    /// Distinct processes holding at least one group member row.
    pub member_processes: u32,
}

/// One process-table row.
#[derive(Serialize, Debug)]
pub struct Process {
    /// Row index.
    pub row: u32,
    /// Process id.
    pub pid: u32,
    /// Whether the process runs.
    pub alive: bool,
    /// `bus`, `publisher`, `subscriber`, `group_member` or `unknown`.
    pub role: &'static str,
    /// Group of a group member.
    pub group: Option<String>,
    /// Next position the subscriber reads.
    pub cursor: Option<u64>,
    /// Messages published that the subscriber has not received.
    pub lag: Option<u64>,
    /// A lossy subscriber (publishers take what it has not read rather than wait for it).
    pub lossy: bool,
    /// Messages a lossy subscriber missed that way.
    pub missed: u64,
    /// Messages received and acknowledged.
    pub delivered: u64,
    /// Messages published.
    pub published: u64,
    /// Messages received that a dead member had in flight.
    pub redelivered: u64,
    /// Last heartbeat, ns since the Unix epoch.
    pub last_heartbeat_ns: u64,
    /// Consumer entry of a subscriber or group member.
    pub consumer: Option<u32>,
    /// Messages it published that no consumer wanted.
    pub unrouted: u64,
    /// A publisher waiting for room: the consumer entries holding the slot it needs.
    pub waiting_for: Vec<u32>,
    /// Since when it waits, ns since the Unix epoch (0: not waiting).
    pub waiting_since_ns: u64,
    /// The process's command line (`/proc/PID/cmdline`, arguments joined by spaces) while it
    /// is alive and readable; null otherwise.
    pub command: Option<String>,
}

/// The command line of live process `pid`, arguments joined by spaces (`None` when it cannot
/// be read: gone, or another user's process on a hardened /proc).
pub fn command_of(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let words: Vec<String> = raw
        .split(|&b| b == 0)
        .filter(|w| !w.is_empty())
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
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

/// One live consumer.
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

/// One slab size class.
#[derive(Serialize, Debug)]
pub struct SlabClass {
    /// Block size in bytes.
    pub block_size: u32,
    /// Blocks in the class.
    pub total: u32,
    /// Blocks holding a message.
    pub used: u32,
    /// Blocks free.
    pub free: u32,
}

/// Bus-wide counters.
#[derive(Serialize, Debug)]
pub struct Counters {
    /// Messages published.
    pub published: u64,
    /// Messages no consumer wanted, since the bus was created.
    pub unrouted: u64,
    /// Publishes that found the ring or slab full and waited.
    pub full_waits: u64,
    /// Messages handed to another group member after a member died.
    pub redeliveries: u64,
    /// Dead process-table rows reclaimed.
    pub reaped: u64,
    /// Messages dropped with groups kept past the group retention without a member.
    pub backlog_dropped: u64,
    /// Subscribers asleep waiting for messages.
    pub sleeping_subscribers: u32,
    /// Publishers asleep waiting for room.
    pub sleeping_publishers: u32,
}

/// The JSON name of a role.
pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Bus => "bus",
        Role::Publisher => "publisher",
        Role::Subscriber => "subscriber",
        Role::GroupMember => "group_member",
        _ => "unknown",
    }
}

/// Counts of `snap`'s rows by role.
pub fn summary(snap: &Snapshot) -> Summary {
    let mut s = Summary {
        groups: snap.groups.len() as u32,
        ..Summary::default()
    };
    let mut seen = std::collections::HashSet::new();
    let mut seen_in_role = std::collections::HashSet::new();
    for p in &snap.processes {
        s.rows += 1;
        if seen.insert((p.pid, p.start_time)) {
            s.processes += 1;
            s.alive += u32::from(p.alive);
        }
        let first_of_role = seen_in_role.insert((p.pid, p.start_time, role_name(p.role)));
        match p.role {
            Role::Publisher => {
                s.publishers += 1;
                s.publishing_processes += u32::from(first_of_role);
            }
            Role::Subscriber => {
                s.subscribers += 1;
                s.subscribing_processes += u32::from(first_of_role);
            }
            Role::GroupMember => {
                s.group_members += 1;
                s.member_processes += u32::from(first_of_role);
            }
            Role::Bus => s.handles += 1,
            _ => {}
        }
    }
    s
}

/// One attached process with its rows folded together (what the readable view lists).
#[derive(Debug, PartialEq, Eq)]
pub struct ProcessSummary {
    /// Process id.
    pub pid: u32,
    /// Whether it runs.
    pub alive: bool,
    /// Its rows.
    pub rows: u32,
    /// Publisher rows.
    pub publishers: u32,
    /// Fan-out subscriber rows.
    pub subscribers: u32,
    /// Of those, lossy ones.
    pub lossy: u32,
    /// Messages its lossy subscribers missed.
    pub missed: u64,
    /// Groups it is a member of, in row order, each once.
    pub groups: Vec<String>,
    /// Messages it published.
    pub published: u64,
    /// Messages it received and acknowledged.
    pub delivered: u64,
    /// Largest lag of its subscriber rows (`None` when it does not subscribe).
    pub lag: Option<u64>,
    /// Its command line (see [`Process::command`]).
    pub command: Option<String>,
}

/// The rows of `r` folded per process, in order of first row.
pub fn per_process(r: &Report) -> Vec<ProcessSummary> {
    let mut out: Vec<ProcessSummary> = Vec::new();
    for p in &r.processes {
        let idx = match out
            .iter()
            .position(|q| q.pid == p.pid && q.alive == p.alive)
        {
            Some(i) => i,
            None => {
                out.push(ProcessSummary {
                    pid: p.pid,
                    alive: p.alive,
                    rows: 0,
                    publishers: 0,
                    subscribers: 0,
                    lossy: 0,
                    missed: 0,
                    groups: Vec::new(),
                    published: 0,
                    delivered: 0,
                    lag: None,
                    command: p.command.clone(),
                });
                out.len() - 1
            }
        };
        let q = &mut out[idx];
        q.rows += 1;
        q.published += p.published;
        q.delivered += p.delivered;
        q.lossy += u32::from(p.lossy);
        q.missed += p.missed;
        if let Some(lag) = p.lag {
            q.lag = Some(q.lag.map_or(lag, |l| l.max(lag)));
        }
        match p.role {
            "publisher" => q.publishers += 1,
            "subscriber" => q.subscribers += 1,
            _ => {}
        }
        if let Some(g) = &p.group {
            if !q.groups.contains(g) {
                q.groups.push(g.clone());
            }
        }
        if q.command.is_none() {
            q.command.clone_from(&p.command);
        }
    }
    out
}

impl Report {
    /// The report of `cur`, with topic rates since `prev`, taken `elapsed` earlier.
    pub fn with_rates(prev: &Snapshot, cur: &Snapshot, elapsed: std::time::Duration) -> Report {
        let mut r = Report::from(cur);
        r.topics = flows::topics_with_rates(prev, cur, elapsed.as_secs_f64());
        r.rates_over_ms = Some(elapsed.as_millis() as u64);
        r
    }
}

impl From<&Snapshot> for Report {
    fn from(s: &Snapshot) -> Report {
        Report {
            schema: SCHEMA_VERSION,
            name: s.name.clone(),
            layout_version: s.version,
            file_size: s.file_size,
            created_ns: s.created_ns,
            geometry: Geometry {
                ring_capacity: s.geometry.ring_capacity,
                max_message: s.geometry.max_message,
                slab_blocks: s.geometry.slab_blocks,
                max_processes: s.geometry.max_processes,
                max_subscribers: s.geometry.max_subscribers,
            },
            ring: Ring {
                head: s.ring.head,
                tail: s.ring.tail,
                occupancy: s.ring.occupancy,
                capacity: s.ring.capacity,
            },
            summary: summary(s),
            processes: s
                .processes
                .iter()
                .map(|p| Process {
                    row: p.row,
                    pid: p.pid,
                    alive: p.alive,
                    role: role_name(p.role),
                    group: p.group.clone(),
                    cursor: p.cursor,
                    lag: p.lag,
                    lossy: p.lossy,
                    missed: p.missed,
                    delivered: p.delivered,
                    published: p.published,
                    redelivered: p.redelivered,
                    last_heartbeat_ns: p.last_heartbeat_ns,
                    consumer: p.consumer,
                    unrouted: p.unrouted,
                    waiting_for: p.waiting_for.clone(),
                    waiting_since_ns: p.waiting_since_ns,
                    command: p.alive.then(|| command_of(p.pid)).flatten(),
                })
                .collect(),
            groups: s
                .groups
                .iter()
                .map(|g| Group {
                    name: g.name.clone(),
                    members: g.members,
                    cursor: g.cursor,
                    lag: s.ring.head.saturating_sub(g.cursor),
                    redelivered: g.redelivered,
                    kept_for_ms: g.kept_for_ms,
                })
                .collect(),
            consumers: s
                .consumers
                .iter()
                .map(|c| Consumer {
                    consumer: c.consumer,
                    group: c.group.clone(),
                    topics: c.topics.clone(),
                    pids: flows::consumer_ref(s, c.consumer).pids,
                })
                .collect(),
            topics: flows::topics(s),
            rates_over_ms: None,
            blocked: flows::blocked(s),
            holding: flows::holding(s),
            bridges: flows::bridges(s),
            slab: s
                .slab
                .iter()
                .map(|c| SlabClass {
                    block_size: c.block_size,
                    total: c.total,
                    used: c.used,
                    free: c.free,
                })
                .collect(),
            counters: Counters {
                published: s.counters.published,
                unrouted: s.counters.unrouted,
                full_waits: s.counters.full_waits,
                redeliveries: s.counters.redeliveries,
                reaped: s.counters.reaped,
                backlog_dropped: s.counters.backlog_dropped,
                sleeping_subscribers: s.counters.sub_sleepers,
                sleeping_publishers: s.counters.pub_sleepers,
            },
            corruption: s.corruption.clone(),
        }
    }
}
