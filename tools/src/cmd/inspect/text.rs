//! The readable view of `inspect`: a few lines about the bus, then one aligned table per
//! section (processes, rows with --verbose, blocked publishers, unpublished claims, topics,
//! bridges, groups, slab, counters), each written by its own function in that order.

use crate::format;
use crate::model::{per_process, Blocked, BusModel, Holding, ProcessSummary, TopicFlow};
use crate::table;
use std::io::{Result, Write};

/// The readable view of `m`, with ages computed against `now_ns`; `verbose` adds the rows.
pub fn write_text(m: &BusModel, now_ns: u64, verbose: bool, out: &mut dyn Write) -> Result<()> {
    write_about(m, now_ns, out)?;
    write_processes(m, out)?;
    if verbose && !m.processes.is_empty() {
        write_rows(m, now_ns, out)?;
    }
    if !m.blocked.is_empty() {
        write_blocked(m, now_ns, out)?;
    }
    if !m.holding.is_empty() {
        write_holding(m, out)?;
    }
    write_topics(m, out)?;
    if !m.bridges.is_empty() {
        write_bridges(m, out)?;
    }
    write_groups(m, out)?;
    write_slab(m, out)?;
    write_counters(m, out)
}

/// Writes a section title after a blank line.
fn title(out: &mut dyn Write, text: &str) -> Result<()> {
    writeln!(out, "\n{text}")
}

/// Writes a table indented under its section title.
fn write_table(out: &mut dyn Write, header: &[&str], rows: &[Vec<String>]) -> Result<()> {
    table::write(out, "  ", header, rows)
}

fn alive(yes: bool) -> String {
    if yes { "yes" } else { "DEAD" }.into()
}

/// Name, geometry, ring, who is attached, and anything found corrupt.
fn write_about(m: &BusModel, now_ns: u64, out: &mut dyn Write) -> Result<()> {
    let (g, r, s) = (&m.geometry, &m.ring, &m.summary);
    writeln!(
        out,
        "bus {}  (layout version {}, {}, created {})",
        m.name,
        m.layout_version,
        format::bytes(m.file_size),
        format::ago(m.created_ns, now_ns)
    )?;
    let classes: Vec<String> = m
        .slab
        .iter()
        .map(|c| format!("{} x {}", format::block_size(c.block_size.into()), c.total))
        .collect();
    writeln!(
        out,
        "geometry: ring {} slots, max message {}, slab {} in {} blocks ({}), {} process rows, {} subscribers max",
        g.ring_capacity,
        format::bytes(g.max_message.into()),
        format::bytes(g.slab_memory),
        g.slab_blocks,
        classes.join(", "),
        g.max_processes,
        g.max_subscribers
    )?;
    writeln!(
        out,
        "ring: head {}, tail {}, occupancy {}/{} ({})",
        r.head,
        r.tail,
        r.occupancy,
        r.capacity,
        format::percent(r.occupancy, r.capacity)
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
    for problem in &m.corruption {
        writeln!(out, "CORRUPT: {problem}")?;
    }
    Ok(())
}

/// A line per process, its rows folded together.
fn write_processes(m: &BusModel, out: &mut dyn Write) -> Result<()> {
    title(out, "PROCESSES")?;
    if m.processes.is_empty() {
        return writeln!(out, "  (none)");
    }
    let rows: Vec<Vec<String>> = per_process(&m.processes)
        .into_iter()
        .map(process_row)
        .collect();
    write_table(
        out,
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
    )
}

fn process_row(p: ProcessSummary) -> Vec<String> {
    vec![
        p.pid.to_string(),
        alive(p.alive),
        what_it_does(&p),
        p.published.to_string(),
        p.delivered.to_string(),
        format::opt(p.lag),
        p.command.unwrap_or_else(|| "-".into()),
    ]
}

/// `publishes, subscribes lossy (missed 3), member of workers, holds 2 blocks (2.0 MiB)`, or
/// `attached`.
fn what_it_does(p: &ProcessSummary) -> String {
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
    if p.held_blocks > 0 {
        does.push(format!(
            "holds {} blocks ({})",
            p.held_blocks,
            format::bytes(p.held_bytes)
        ));
    }
    if p.copies > 0 {
        does.push(format!("copied {} past its hold limit", p.copies));
    }
    if does.is_empty() {
        does.push("attached".into());
    }
    does.join(", ")
}

/// A line per process-table row (--verbose).
fn write_rows(m: &BusModel, now_ns: u64, out: &mut dyn Write) -> Result<()> {
    title(out, "ROWS (one per handle: bus, publisher, subscriber)")?;
    let rows: Vec<Vec<String>> = m
        .processes
        .iter()
        .map(|p| {
            vec![
                p.row.to_string(),
                p.pid.to_string(),
                alive(p.alive),
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
    write_table(
        out,
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
    )
}

/// A line per publisher waiting for room and what it waits for: the publisher holding it up,
/// then each consumer.
fn write_blocked(m: &BusModel, now_ns: u64, out: &mut dyn Write) -> Result<()> {
    title(out, "BLOCKED PUBLISHERS (waiting for room on a full ring)")?;
    let rows: Vec<Vec<String>> = m
        .blocked
        .iter()
        .flat_map(|b| blocked_rows(m, b, now_ns))
        .collect();
    write_table(
        out,
        &["PID", "WAITING SINCE", "WAITS FOR", "ITS COMMAND"],
        &rows,
    )
}

fn blocked_rows(m: &BusModel, b: &Blocked, now_ns: u64) -> Vec<Vec<String>> {
    let since = format::ago(b.since_ns, now_ns);
    let command = |pid: Option<u32>| {
        pid.and_then(|pid| m.command(pid))
            .unwrap_or("-")
            .to_string()
    };
    let row = |waits_for: String, its_command: String| {
        vec![b.pid.to_string(), since.clone(), waits_for, its_command]
    };
    let mut rows = Vec::new();
    if let Some(h) = &b.held_by {
        let state = if h.alive { "" } else { ", dead" };
        rows.push(row(
            format!(
                "publisher pid {} (position {} claimed, not published{state})",
                h.pid, h.position
            ),
            command(Some(h.pid)),
        ));
    }
    if b.waiting_for.is_empty() && b.held_by.is_none() {
        rows.push(row("-".into(), "-".into()));
    }
    for c in &b.waiting_for {
        rows.push(row(c.describe(), command(c.pids.first().copied())));
    }
    rows
}

/// A line per publisher holding positions it claimed and has not published.
fn write_holding(m: &BusModel, out: &mut dyn Write) -> Result<()> {
    title(
        out,
        "UNPUBLISHED CLAIMS (claimed, not published: the consumers they are for wait)",
    )?;
    let rows: Vec<Vec<String>> = m.holding.iter().map(|h| holding_row(m, h)).collect();
    write_table(
        out,
        &["PID", "ALIVE", "POSITIONS", "FOR", "ITS COMMAND"],
        &rows,
    )
}

fn holding_row(m: &BusModel, h: &Holding) -> Vec<String> {
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
    vec![
        h.pid.to_string(),
        if h.alive { "yes" } else { "no" }.into(),
        positions,
        for_whom,
        m.command(h.pid).unwrap_or("-").to_string(),
    ]
}

/// A line per topic: rates, totals, publishers, consumers.
fn write_topics(m: &BusModel, out: &mut dyn Write) -> Result<()> {
    let over = m.rates_over_ms.map_or_else(
        || "no rates".to_string(),
        |ms| format!("rates over {ms} ms"),
    );
    title(
        out,
        &format!("TOPICS ({over}; totals since the bus was created)"),
    )?;
    if m.topics.is_empty() {
        return writeln!(out, "  (none published)");
    }
    let rows: Vec<Vec<String>> = m.topics.iter().map(topic_row).collect();
    write_table(
        out,
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
    )
}

fn topic_row(t: &TopicFlow) -> Vec<String> {
    let publishers = if t.publishers.is_empty() {
        "-".into()
    } else {
        t.publishers
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    vec![
        t.label(),
        format::rate(t.messages_per_s, ""),
        format::rate(t.bytes_per_s, "B"),
        t.messages.to_string(),
        format::bytes(t.bytes),
        t.unrouted.to_string(),
        publishers,
        t.consumers_text(),
    ]
}

/// A line per bridge and its counters.
fn write_bridges(m: &BusModel, out: &mut dyn Write) -> Result<()> {
    title(out, "BRIDGES")?;
    let rows: Vec<Vec<String>> = m
        .bridges
        .iter()
        .map(|b| {
            vec![
                b.pid.to_string(),
                alive(b.alive),
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
    write_table(
        out,
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
    )
}

/// A line per group; one without members says how long it is kept.
fn write_groups(m: &BusModel, out: &mut dyn Write) -> Result<()> {
    title(out, "GROUPS")?;
    if m.groups.is_empty() {
        return writeln!(out, "  (none)");
    }
    let rows: Vec<Vec<String>> = m
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
    write_table(
        out,
        &["NAME", "MEMBERS", "CURSOR", "LAG", "REDELIVERED"],
        &rows,
    )
}

/// A line per slab size class and how full it is (HELD: blocks kept by holders' views and
/// loans).
fn write_slab(m: &BusModel, out: &mut dyn Write) -> Result<()> {
    title(out, "SLAB")?;
    let rows: Vec<Vec<String>> = m
        .slab
        .iter()
        .map(|c| {
            vec![
                format::block_size(c.block_size.into()),
                c.total.to_string(),
                c.used.to_string(),
                c.free.to_string(),
                c.held.to_string(),
                format::percent(c.used.into(), c.total.into()),
            ]
        })
        .collect();
    write_table(
        out,
        &["BLOCK", "TOTAL", "USED", "FREE", "HELD", "FILL"],
        &rows,
    )
}

/// The bus-wide counters.
fn write_counters(m: &BusModel, out: &mut dyn Write) -> Result<()> {
    let c = &m.counters;
    title(out, "COUNTERS")?;
    write_table(
        out,
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
    )
}
