//! The JSON shape `inspect --json` prints, built from a `shm_ring::Snapshot`. It is defined here,
//! apart from the snapshot, because its field names are an API that scripts rely on and must not
//! move when the bus internals do; `inspect --help` documents every field.

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
    /// One entry per slab size class.
    pub slab: Vec<SlabClass>,
    /// Bus-wide counters.
    pub counters: Counters,
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
    /// Messages received and acknowledged.
    pub delivered: u64,
    /// Messages published.
    pub published: u64,
    /// Messages received that a dead member had in flight.
    pub redelivered: u64,
    /// Last heartbeat, ns since the Unix epoch.
    pub last_heartbeat_ns: u64,
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
    /// Publishes that found the ring or slab full and waited.
    pub full_waits: u64,
    /// Messages handed to another group member after a member died.
    pub redeliveries: u64,
    /// Dead process-table rows reclaimed.
    pub reaped: u64,
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
    for p in &snap.processes {
        s.rows += 1;
        if seen.insert((p.pid, p.start_time)) {
            s.processes += 1;
            s.alive += u32::from(p.alive);
        }
        match p.role {
            Role::Publisher => s.publishers += 1,
            Role::Subscriber => s.subscribers += 1,
            Role::GroupMember => s.group_members += 1,
            Role::Bus => s.handles += 1,
            _ => {}
        }
    }
    s
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
                    delivered: p.delivered,
                    published: p.published,
                    redelivered: p.redelivered,
                    last_heartbeat_ns: p.last_heartbeat_ns,
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
                })
                .collect(),
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
                full_waits: s.counters.full_waits,
                redeliveries: s.counters.redeliveries,
                reaped: s.counters.reaped,
                sleeping_subscribers: s.counters.sub_sleepers,
                sleeping_publishers: s.counters.pub_sleepers,
            },
        }
    }
}
