//! `event-engine reap NAME`: reclaim now what dead processes left on a bus (their rows, their
//! subscriber bits, the messages only they still held, their claims in groups) and drop groups
//! whose retention has run out, saying what it did.

use anyhow::Result;
use shm_ring::{Bus, ReapReport};
use std::io::Write;

/// The long help of the subcommand (`event-engine reap --help`).
pub const LONG_ABOUT: &str =
    "Reclaim now what dead processes left on the bus: their process-table \
rows, their subscriptions (releasing messages only they still held), messages they had in flight \
in a group (handed to another member) and slots they claimed but never published; and drops the \
groups that have had no member for longer than the bus's group retention, with what they still \
held. Live processes do this on their own after a while; reap does it at once and says what it \
did.

With --json, prints {\"reaped\": [{\"pid\": int, \"row\": int}], \"blocks_freed\": int, \
\"slots_recovered\": int, \"redelivered\": int, \"redelivery_deferred\": int, \
\"groups_expired\": int, \"backlog_dropped\": int, \"slab_used_before\": int, \
\"slab_used_after\": int}.";

/// Arguments of `reap`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Bus name.
    pub name: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// One reclaimed process.
#[derive(serde::Serialize, Debug)]
pub struct Reaped {
    /// Its pid.
    pub pid: u32,
    /// The process-table row it held.
    pub row: u32,
}

/// `reap --json` output.
#[derive(serde::Serialize, Debug)]
pub struct Report {
    /// Dead processes whose rows were reclaimed.
    pub reaped: Vec<Reaped>,
    /// Slab blocks returned to the slab by the reap (messages only dead subscribers held, blocks
    /// dead publishers had taken, and the sweep that runs when nobody is left).
    pub blocks_freed: u64,
    /// Claimed-but-never-published slots recovered.
    pub slots_recovered: u64,
    /// In-flight group messages handed back to their group.
    pub redelivered: u64,
    /// In-flight group messages of dead members left in their group's backlog because its
    /// redelivery list was full; a later reap hands them back.
    pub redelivery_deferred: u64,
    /// Groups dropped because their retention ran out with no member.
    pub groups_expired: u64,
    /// Messages dropped with those groups (nobody will handle them).
    pub backlog_dropped: u64,
    /// Slab blocks in use before the reap.
    pub slab_used_before: u64,
    /// Slab blocks in use after it.
    pub slab_used_after: u64,
}

fn slab_used(bus: &Bus) -> u64 {
    bus.snapshot().slab.iter().map(|c| u64::from(c.used)).sum()
}

/// Reaps.
pub fn run(args: &Args, out: &mut dyn Write) -> Result<()> {
    let bus = Bus::open(&args.name)?;
    let before = slab_used(&bus);
    let r = bus.reap()?;
    let report = Report {
        reaped: r
            .processes
            .iter()
            .flat_map(|p| p.rows.iter().map(|&row| Reaped { pid: p.pid, row }))
            .collect(),
        blocks_freed: r.blocks_freed,
        slots_recovered: r.slots_recovered,
        redelivered: r.redelivered,
        redelivery_deferred: r.redelivery_deferred,
        groups_expired: r.groups_expired,
        backlog_dropped: r.backlog_dropped,
        slab_used_before: before,
        slab_used_after: slab_used(&bus),
    };
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &report)?;
        writeln!(out)?;
        return Ok(());
    }
    write_who(&args.name, &r, &report, out)?;
    writeln!(
        out,
        "slab blocks in use: {} -> {}; {} freed, {} slots recovered, {} messages redelivered",
        report.slab_used_before,
        report.slab_used_after,
        report.blocks_freed,
        report.slots_recovered,
        report.redelivered
    )?;
    write_left_and_dropped(&r, out)
}

/// Which dead processes were reaped (each once, with its rows), or that there were none.
fn write_who(name: &str, r: &ReapReport, report: &Report, out: &mut dyn Write) -> Result<()> {
    if r.is_empty() {
        writeln!(
            out,
            "nothing to reap on bus {name}: no dead process is attached and no group has expired"
        )?;
    } else if report.reaped.is_empty() {
        writeln!(out, "no dead process is attached to bus {name}")?;
    } else {
        // A process holds a row per handle (bus, publisher, subscriber): the report lists it once.
        let pids: Vec<String> = r
            .processes
            .iter()
            .map(|p| {
                let rows: Vec<String> = p.rows.iter().map(u32::to_string).collect();
                let s = if rows.len() == 1 { "" } else { "s" };
                format!("pid {} (row{s} {})", p.pid, rows.join(", "))
            })
            .collect();
        writeln!(
            out,
            "reaped {} dead process{} on bus {name}: {}",
            r.processes.len(),
            if r.processes.len() == 1 { "" } else { "es" },
            pids.join(", ")
        )?;
    }
    Ok(())
}

/// The messages of dead members left for a later reap, and the groups dropped with their
/// backlog, when there are any.
fn write_left_and_dropped(r: &ReapReport, out: &mut dyn Write) -> Result<()> {
    if r.redelivery_deferred > 0 {
        let one = r.redelivery_deferred == 1;
        writeln!(
            out,
            "{} message{} of dead group members wait{} in the group's backlog for room on its \
             redelivery list (a later reap hands {} back)",
            r.redelivery_deferred,
            if one { "" } else { "s" },
            if one { "s" } else { "" },
            if one { "it" } else { "them" },
        )?;
    }
    if r.groups_expired > 0 || r.backlog_dropped > 0 {
        writeln!(
            out,
            "dropped {} group{} whose retention ran out with no member; {} message{} dropped \
             with {} (nobody will handle {})",
            r.groups_expired,
            if r.groups_expired == 1 { "" } else { "s" },
            r.backlog_dropped,
            if r.backlog_dropped == 1 { "" } else { "s" },
            if r.groups_expired == 1 { "it" } else { "them" },
            if r.backlog_dropped == 1 { "it" } else { "them" },
        )?;
    }
    Ok(())
}
