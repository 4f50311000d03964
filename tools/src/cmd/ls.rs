//! `event-engine ls`: every bus on this machine with its size, age and attached processes.

use crate::format;
use anyhow::Result;
use std::io::Write;

/// The long help of the subcommand (`event-engine ls --help`).
pub const LONG_ABOUT: &str =
    "List every bus on this machine (files /dev/shm/event_engine.<name>): \
name, file size, age (time since the bus was created, as inspect shows it), processes attached \
and how many of those processes are alive. A file that cannot be read as a bus, or that belongs \
to another user (as inspect, ls does not read those), is listed with the reason. Files are read, \
never mapped, so one that shrinks while it is read is an error in its line, not a crash.

With --json, prints one object: {\"buses\": [{\"name\": str, \"size\": int (bytes), \
\"age_secs\": int, \"created_ns\": int|null, \"attached\": int|null, \"alive\": int|null, \
\"error\": str|null}, ...]} sorted by name; age_secs is the time since the file last changed, \
created_ns the bus's creation time (ns since the Unix epoch); created_ns, attached and alive \
are null and error says why when the file could not be read.";

/// Arguments of `ls`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One bus as `ls --json` prints it (field names are part of the command-line API).
#[derive(serde::Serialize, Debug)]
pub struct BusEntry {
    /// Bus name.
    pub name: String,
    /// File size in bytes.
    pub size: u64,
    /// Seconds since the file last changed.
    pub age_secs: u64,
    /// When the bus was created (ns since the Unix epoch), from its header.
    pub created_ns: Option<u64>,
    /// Distinct processes attached, when the file could be read.
    pub attached: Option<u32>,
    /// Of those, processes that are alive.
    pub alive: Option<u32>,
    /// Why the file could not be read as a bus.
    pub error: Option<String>,
}

/// Lists the buses.
pub fn run(args: &Args, out: &mut dyn Write) -> Result<()> {
    let buses: Vec<BusEntry> = shm_ring::list_buses()?
        .into_iter()
        .map(|b| BusEntry {
            created_ns: b.created_ns,
            name: b.name,
            size: b.size,
            age_secs: b.age_secs,
            attached: b.attached,
            alive: b.alive,
            error: b.error,
        })
        .collect();
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &serde_json::json!({ "buses": buses }))?;
        writeln!(out)?;
        return Ok(());
    }
    if buses.is_empty() {
        writeln!(out, "no buses in /dev/shm")?;
        return Ok(());
    }
    let now = format::now_ns();
    let rows: Vec<Vec<String>> = buses
        .iter()
        .map(|b| {
            vec![
                b.name.clone(),
                format::bytes(b.size),
                b.created_ns
                    .map_or_else(|| "-".into(), |c| format::age_ns(c, now)),
                format::opt(b.attached),
                format::opt(b.alive),
                b.error.clone().unwrap_or_else(|| "ok".into()),
            ]
        })
        .collect();
    crate::table::write(
        out,
        "",
        &["NAME", "SIZE", "AGE", "ATTACHED", "ALIVE", "STATUS"],
        &rows,
    )?;
    Ok(())
}
