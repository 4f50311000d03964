//! `event-engine inspect NAME`: everything about one bus, as aligned tables or as JSON.
//!
//! The bus is opened read-only and not joined, so inspecting never shows up in (or changes) what
//! it reports. The JSON shape is defined here, apart from `shm_ring::Snapshot`, because its field
//! names are an API that scripts rely on and must not move when the bus internals do.

use crate::format;
use anyhow::Result;
use serde::Serialize;
use shm_ring::{Role, Snapshot};
use std::io::Write;

/// Version of the JSON shape below; bumped only for changes that break readers.
pub const SCHEMA_VERSION: u32 = 1;

/// The long help of the subcommand (`event-engine inspect --help`).
pub const LONG_ABOUT: &str = "Show one bus: geometry and layout version, ring occupancy, a row per \
attached process (pid, alive, role, group, cursor, lag, delivered, last heartbeat), groups, \
slab use per size class and the bus counters. The bus is read without being joined.

With --json, prints one object whose field names are a stable API (schema 1):
  schema          int, 1
  name            str
  layout_version  int, the region layout version
  file_size       int, bytes
  created_ns      int, creation time, ns since the Unix epoch
  geometry        {ring_capacity, max_message, slab_blocks, max_processes, max_subscribers}: int
  ring            {head, tail, occupancy, capacity}: int; head = messages ever published,
                  tail = lowest consumer cursor, occupancy = head - tail
  summary         {processes, alive, publishers, subscribers, group_members, handles, groups}: int
                  (subscribers = fan-out subscribers; handles = attached bus handles)
  processes       [{row, pid, alive: bool, role: \"bus\"|\"publisher\"|\"subscriber\"|\"group_member\"|
                  \"unknown\", group: str|null, cursor: int|null, lag: int|null, delivered, published,
                  redelivered, last_heartbeat_ns}]; cursor and lag are null for non-subscribers
  groups          [{name: str, members, cursor, lag, redelivered}]
  slab            [{block_size, total, used, free}], one per size class, smallest first
  counters        {published, full_waits, redeliveries, reaped, sleeping_subscribers,
                  sleeping_publishers}: int
New fields may be added; existing ones keep their name, type and meaning.";

/// Arguments of `inspect`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Bus name.
    pub name: String,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

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
    /// Process-table rows in use.
    pub processes: u32,
    /// Of those, rows whose process is alive.
    pub alive: u32,
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
    for p in &snap.processes {
        s.processes += 1;
        s.alive += u32::from(p.alive);
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

/// Inspects the bus.
pub fn run(args: &Args, out: &mut dyn Write) -> Result<()> {
    let snap = shm_ring::inspect(&args.name)?;
    let report = Report::from(&snap);
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &report)?;
        writeln!(out)?;
    } else {
        write_text(&report, format::now_ns(), out)?;
    }
    Ok(())
}

/// The readable view of `r`, with ages computed against `now_ns`.
pub fn write_text(r: &Report, now_ns: u64, out: &mut dyn Write) -> std::io::Result<()> {
    let g = &r.geometry;
    let s = &r.summary;
    writeln!(
        out,
        "bus {}  (layout version {}, {}, created {})",
        r.name,
        r.layout_version,
        format::bytes(r.file_size),
        format::ago(r.created_ns, now_ns)
    )?;
    writeln!(
        out,
        "geometry: ring {} slots, max message {}, {} slab blocks, {} process rows, {} subscribers max",
        g.ring_capacity,
        format::bytes(g.max_message.into()),
        g.slab_blocks,
        g.max_processes,
        g.max_subscribers
    )?;
    writeln!(
        out,
        "ring: head {}, tail {}, occupancy {}/{} ({})",
        r.ring.head,
        r.ring.tail,
        r.ring.occupancy,
        r.ring.capacity,
        format::percent(r.ring.occupancy, r.ring.capacity)
    )?;
    writeln!(
        out,
        "attached: {} processes ({} alive): {} publishers, {} subscribers, {} group members, {} bus handles",
        s.processes, s.alive, s.publishers, s.subscribers, s.group_members, s.handles
    )?;

    writeln!(out, "\nPROCESSES")?;
    if r.processes.is_empty() {
        writeln!(out, "  (none)")?;
    } else {
        let rows: Vec<Vec<String>> = r
            .processes
            .iter()
            .map(|p| {
                vec![
                    p.row.to_string(),
                    p.pid.to_string(),
                    if p.alive { "yes" } else { "DEAD" }.into(),
                    p.role.into(),
                    p.group.clone().unwrap_or_else(|| "-".into()),
                    format::opt(p.cursor),
                    format::opt(p.lag),
                    p.delivered.to_string(),
                    p.published.to_string(),
                    format::ago(p.last_heartbeat_ns, now_ns),
                ]
            })
            .collect();
        crate::table::write(
            out,
            "  ",
            &[
                "ROW",
                "PID",
                "ALIVE",
                "ROLE",
                "GROUP",
                "CURSOR",
                "LAG",
                "DELIVERED",
                "PUBLISHED",
                "HEARTBEAT",
            ],
            &rows,
        )?;
    }

    writeln!(out, "\nGROUPS")?;
    if r.groups.is_empty() {
        writeln!(out, "  (none)")?;
    } else {
        let rows: Vec<Vec<String>> = r
            .groups
            .iter()
            .map(|g| {
                vec![
                    g.name.clone(),
                    g.members.to_string(),
                    g.cursor.to_string(),
                    g.lag.to_string(),
                    g.redelivered.to_string(),
                ]
            })
            .collect();
        crate::table::write(
            out,
            "  ",
            &["NAME", "MEMBERS", "CURSOR", "LAG", "REDELIVERED"],
            &rows,
        )?;
    }

    writeln!(out, "\nSLAB")?;
    let rows: Vec<Vec<String>> = r
        .slab
        .iter()
        .map(|c| {
            vec![
                format::block_size(c.block_size.into()),
                c.total.to_string(),
                c.used.to_string(),
                c.free.to_string(),
                format::percent(c.used.into(), c.total.into()),
            ]
        })
        .collect();
    crate::table::write(
        out,
        "  ",
        &["BLOCK", "TOTAL", "USED", "FREE", "FILL"],
        &rows,
    )?;

    let c = &r.counters;
    writeln!(out, "\nCOUNTERS")?;
    crate::table::write(
        out,
        "  ",
        &["PUBLISHED", "FULL WAITS", "REDELIVERIES", "REAPED"],
        &[vec![
            c.published.to_string(),
            c.full_waits.to_string(),
            c.redeliveries.to_string(),
            c.reaped.to_string(),
        ]],
    )?;
    Ok(())
}
