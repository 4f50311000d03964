//! `event-engine inspect NAME`: everything about one bus, as aligned tables or as JSON.
//!
//! The bus is opened read-only and not joined, so inspecting never shows up in (or changes) what
//! it reports.

pub mod flows;
pub mod report;

use crate::format;
use anyhow::Result;
pub use report::{command_of, per_process, role_name, summary, Report, SCHEMA_VERSION};
use std::io::Write;
use std::time::Duration;

/// The long help of the subcommand (`event-engine inspect --help`).
pub const LONG_ABOUT: &str = "Show one bus: geometry and layout version, ring occupancy, a line per \
attached process (pid, alive, what it does, groups, messages published and delivered, its largest \
lag, command line), the topics published (messages and bytes per second, totals, unrouted \
messages, publishers, and the consumers whose interest matches each), publishers blocked on a \
full ring and the consumers they wait for (pid, group, command line) and since when, bridges \
(NATS server, out, in, dropped, reconnects, held: waits for the importers' credit, forgotten: \
importers that went silent), groups, slab use per size class and the bus \
counters (with unrouted: messages no consumer wanted). A process holds a \
process-table row per handle (its bus, each publisher, each subscriber); --verbose also lists the \
rows (role, group, cursor, lag, delivered, last wait). ALIVE is checked now from the pid and its \
start time; LAST WAIT is when the row last woke from waiting (for messages, or for room) or \
attached: a busy subscriber or a publisher that never waits keeps an old one while alive. The \
bus is read without being joined.

Topic rates come from two snapshots --interval milliseconds apart (default 250; 0: one \
snapshot, no rates). Totals count since the bus was created, including publishers that left. \
Each publisher names its first 16 topics and counts the rest together, shown as (other \
topics); a topic longer than 40 bytes is shown cut, ending in '…'. Consumers are listed as \
`pid N` (a fan-out subscriber) or `group NAME (pids ...)`.

With --json, prints one object whose field names are a stable API (schema 1):
  schema          int, 1
  name            str
  layout_version  int, the region layout version
  file_size       int, bytes
  created_ns      int, creation time, ns since the Unix epoch
  geometry        {ring_capacity, max_message, slab_blocks, max_processes, max_subscribers}: int
  ring            {head, tail, occupancy, capacity}: int; head = messages ever published,
                  tail = lowest consumer cursor, occupancy = head - tail
  summary         {processes, alive, rows, publishers, subscribers, group_members, handles, groups,
                  publishing_processes, subscribing_processes, member_processes}: int
                  (publishers, subscribers, group_members, handles count rows; subscribers =
                  fan-out subscribers; handles = attached bus handles; *_processes count
                  distinct processes holding such a row)
  processes       [{row, pid, alive: bool, role: \"bus\"|\"publisher\"|\"subscriber\"|\"group_member\"|
                  \"unknown\", group: str|null, cursor: int|null, lag: int|null, lossy: bool,
                  missed, delivered, published, redelivered, last_heartbeat_ns (LAST WAIT),
                  consumer: int|null, unrouted, waiting_for: [int], waiting_since_ns,
                  command: str|null}], one per
                  process-table row;
                  cursor and lag are null for non-subscribers, command is the command line of a
                  live process (null when dead or unreadable); waiting_for names the consumer
                  entries a blocked publisher waits for (waiting_since_ns 0: not waiting)
  groups          [{name: str, members, cursor, lag, redelivered, kept_for_ms: int|null}];
                  kept_for_ms: a group with no live member keeps its backlog this much longer
  consumers       [{consumer: int, group: str|null, topics: [str]|null (null: every topic),
                  pids: [int]}], one per fan-out subscriber or group
  topics          [{topic: str|null (null: other topics), cut: bool, messages, bytes, unrouted,
                  messages_per_s: float|null, bytes_per_s: float|null, publishers: [pid],
                  consumers: [{consumer, group: str|null, pids: [int]}]}], busiest first
  rates_over_ms   int|null, the time between the two snapshots of the rates
  blocked         [{pid, row, since_ns, waiting_for: [{consumer, group, pids}],
                  held_by: {pid, row, position, alive}|null}], publishers waiting for room on a
                  full ring; held_by names the publisher that claimed the position they need
                  (or the one the consumers they wait for stand at) and has not published it
  holding         [{pid, row, alive: bool, first, count, addressed: [{consumer, group, pids}]}],
                  publishers between claim and commit (addressed empty: not decided yet)
  bridges         [{pid, alive: bool, server: str, out, in, dropped, reconnects, held,
                  forgotten}]
  slab            [{block_size, total, used, free}], one per size class, smallest first
  counters        {published, unrouted, full_waits, redeliveries, reaped, backlog_dropped,
                  sleeping_subscribers, sleeping_publishers}: int; reaped counts process-table
                  rows, backlog_dropped the messages of groups dropped after their retention
  corruption      [str], what is found corrupt in the region (a ring head moved back, a damaged
                  slot or free list, a cursor outside the ring); empty for a sound bus

A corrupt bus is shown, then reported on stderr with exit status 5.
New fields may be added; existing ones keep their name, type and meaning.";

/// Arguments of `inspect`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Bus name.
    pub name: String,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Also list the process-table rows (a process holds one per handle).
    #[arg(long, short)]
    pub verbose: bool,
    /// Milliseconds between the two snapshots topic rates come from (0: no rates).
    #[arg(long, value_name = "MS", default_value_t = 250)]
    pub interval: u64,
}

/// Inspects the bus.
pub fn run(args: &Args, out: &mut dyn Write) -> Result<()> {
    let first = shm_ring::inspect(&args.name)?;
    let report = if args.interval == 0 {
        Report::from(&first)
    } else {
        let interval = Duration::from_millis(args.interval);
        let started = std::time::Instant::now();
        std::thread::sleep(interval);
        let cur = shm_ring::inspect(&args.name)?;
        Report::with_rates(&first, &cur, started.elapsed())
    };
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &report)?;
        writeln!(out)?;
    } else {
        write_text(&report, format::now_ns(), args.verbose, out)?;
    }
    if let Some(first) = report.corruption.first() {
        let more = match report.corruption.len() - 1 {
            0 => String::new(),
            n => format!(
                " (and {n} more problem{}, listed above)",
                if n == 1 { "" } else { "s" }
            ),
        };
        return Err(shm_ring::BusError::Corrupt {
            name: args.name.clone(),
            what: format!(
                "{first}{more}; processes using it may fail or wait: stop them, then remove \
                 the bus (`event-engine rm --force {}`)",
                args.name
            ),
        }
        .into());
    }
    Ok(())
}

/// The readable view of `r`, with ages computed against `now_ns`.
pub fn write_text(
    r: &Report,
    now_ns: u64,
    verbose: bool,
    out: &mut dyn Write,
) -> std::io::Result<()> {
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
        "attached: {} ({} alive): {} publishing, {} subscribing, {} in groups; {}",
        format::count(s.processes.into(), "process", "processes"),
        s.alive,
        s.publishing_processes,
        s.subscribing_processes,
        s.member_processes,
        format::count(s.rows.into(), "process-table row", "process-table rows"),
    )?;

    for problem in &r.corruption {
        writeln!(out, "CORRUPT: {problem}")?;
    }

    writeln!(out, "\nPROCESSES")?;
    if r.processes.is_empty() {
        writeln!(out, "  (none)")?;
    } else {
        let rows: Vec<Vec<String>> = per_process(r)
            .into_iter()
            .map(|p| {
                let mut does = Vec::new();
                if p.publishers > 0 {
                    does.push("publishes".to_string());
                }
                if p.subscribers > p.lossy {
                    does.push("subscribes".to_string());
                }
                if p.lossy > 0 {
                    does.push(format!("subscribes lossy (missed {})", p.missed));
                }
                if !p.groups.is_empty() {
                    does.push(format!("member of {}", p.groups.join(", ")));
                }
                if does.is_empty() {
                    does.push("attached".into());
                }
                vec![
                    p.pid.to_string(),
                    if p.alive { "yes" } else { "DEAD" }.into(),
                    does.join(", "),
                    p.published.to_string(),
                    p.delivered.to_string(),
                    format::opt(p.lag),
                    p.command.unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        crate::table::write(
            out,
            "  ",
            &[
                "PID",
                "ALIVE",
                "DOES",
                "PUBLISHED",
                "DELIVERED",
                "LAG",
                "COMMAND",
            ],
            &rows,
        )?;
    }

    if verbose && !r.processes.is_empty() {
        writeln!(out, "\nROWS (one per handle: bus, publisher, subscriber)")?;
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
                "LAST WAIT",
            ],
            &rows,
        )?;
    }

    if !r.blocked.is_empty() {
        writeln!(
            out,
            "\nBLOCKED PUBLISHERS (waiting for room on a full ring)"
        )?;
        let mut rows = Vec::new();
        for b in &r.blocked {
            let since = format::ago(b.since_ns, now_ns);
            if let Some(h) = &b.held_by {
                let state = if h.alive { "" } else { ", dead" };
                rows.push(vec![
                    b.pid.to_string(),
                    since.clone(),
                    format!(
                        "publisher pid {} (position {} claimed, not published{state})",
                        h.pid, h.position
                    ),
                    command_of(h.pid).unwrap_or_else(|| "-".into()),
                ]);
            }
            if b.waiting_for.is_empty() && b.held_by.is_none() {
                rows.push(vec![
                    b.pid.to_string(),
                    since.clone(),
                    "-".into(),
                    "-".into(),
                ]);
            }
            for c in &b.waiting_for {
                let command = c.pids.first().and_then(|&pid| command_of(pid));
                rows.push(vec![
                    b.pid.to_string(),
                    since.clone(),
                    c.describe(),
                    command.unwrap_or_else(|| "-".into()),
                ]);
            }
        }
        crate::table::write(
            out,
            "  ",
            &["PID", "WAITING SINCE", "WAITS FOR", "ITS COMMAND"],
            &rows,
        )?;
    }

    if !r.holding.is_empty() {
        writeln!(
            out,
            "\nUNPUBLISHED CLAIMS (claimed, not published: the consumers they are for wait)"
        )?;
        let mut rows = Vec::new();
        for h in &r.holding {
            let positions = match h.count {
                1 => h.first.to_string(),
                n => format!("{}..{}", h.first, h.first + n),
            };
            let for_whom = if h.addressed.is_empty() {
                "not decided: every consumer there".to_string()
            } else {
                h.addressed
                    .iter()
                    .map(|c| c.describe())
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            rows.push(vec![
                h.pid.to_string(),
                if h.alive { "yes" } else { "no" }.into(),
                positions,
                for_whom,
                command_of(h.pid).unwrap_or_else(|| "-".into()),
            ]);
        }
        crate::table::write(
            out,
            "  ",
            &["PID", "ALIVE", "POSITIONS", "FOR", "ITS COMMAND"],
            &rows,
        )?;
    }

    let over = r.rates_over_ms.map_or_else(
        || "no rates".to_string(),
        |ms| format!("rates over {ms} ms"),
    );
    writeln!(out, "\nTOPICS ({over}; totals since the bus was created)")?;
    if r.topics.is_empty() {
        writeln!(out, "  (none published)")?;
    } else {
        let rows: Vec<Vec<String>> = r
            .topics
            .iter()
            .map(|t| {
                vec![
                    t.label(),
                    flows::rate(t.messages_per_s, ""),
                    flows::rate(t.bytes_per_s, "B"),
                    t.messages.to_string(),
                    format::bytes(t.bytes),
                    t.unrouted.to_string(),
                    if t.publishers.is_empty() {
                        "-".into()
                    } else {
                        t.publishers
                            .iter()
                            .map(u32::to_string)
                            .collect::<Vec<_>>()
                            .join(",")
                    },
                    t.consumers_text(),
                ]
            })
            .collect();
        crate::table::write(
            out,
            "  ",
            &[
                "TOPIC",
                "MSG/S",
                "BYTES/S",
                "MESSAGES",
                "BYTES",
                "UNROUTED",
                "PUBLISHERS",
                "CONSUMERS",
            ],
            &rows,
        )?;
    }

    if !r.bridges.is_empty() {
        writeln!(out, "\nBRIDGES")?;
        let rows: Vec<Vec<String>> = r
            .bridges
            .iter()
            .map(|b| {
                vec![
                    b.pid.to_string(),
                    if b.alive { "yes" } else { "DEAD" }.into(),
                    b.row.server.clone(),
                    b.row.out.to_string(),
                    b.row.in_.to_string(),
                    b.row.dropped.to_string(),
                    b.row.reconnects.to_string(),
                    b.row.held.to_string(),
                    b.row.forgotten.to_string(),
                ]
            })
            .collect();
        crate::table::write(
            out,
            "  ",
            &[
                "PID",
                "ALIVE",
                "SERVER",
                "OUT",
                "IN",
                "DROPPED",
                "RECONNECTS",
                "HELD",
                "FORGOTTEN",
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
                    match g.kept_for_ms {
                        None => g.members.to_string(),
                        Some(ms) => format!("0 (kept {}s)", ms.div_ceil(1000)),
                    },
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
        &[
            "PUBLISHED",
            "UNROUTED",
            "FULL WAITS",
            "REDELIVERIES",
            "ROWS REAPED",
        ],
        &[vec![
            c.published.to_string(),
            c.unrouted.to_string(),
            c.full_waits.to_string(),
            c.redeliveries.to_string(),
            c.reaped.to_string(),
        ]],
    )?;
    Ok(())
}
