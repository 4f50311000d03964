//! `event-engine inspect NAME`: everything about one bus, as aligned tables (`text`) or as
//! JSON (the [`BusModel`] serialized).
//!
//! The bus is opened read-only and not joined, so inspecting never shows up in (or changes) what
//! it reports.

mod text;

use crate::format;
use crate::model::BusModel;
use anyhow::Result;
use std::io::Write;
use std::time::{Duration, Instant};
pub use text::write_text;

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
  geometry        {ring_capacity, max_message, slab_memory, slab_blocks, max_processes,
                  max_subscribers}: int; slab_memory = bytes of payload blocks, slab_blocks =
                  their number (the classes are in `slab`)
  ring            {head, tail, occupancy, capacity}: int; head = messages ever published,
                  tail = lowest consumer cursor, occupancy = head - tail
  summary         {processes, alive, rows, publishers, subscribers, group_members, handles, groups,
                  publishing_processes, subscribing_processes, member_processes}: int
                  (publishers, subscribers, group_members, handles count rows; subscribers =
                  fan-out subscribers; handles = attached bus handles; *_processes count
                  distinct processes holding such a row)
  processes       [{row, pid, alive: bool, role: \"bus\"|\"publisher\"|\"subscriber\"|\"group_member\"|
                  \"holder\"|\"unknown\", group: str|null, cursor: int|null, lag: int|null, lossy: bool,
                  missed, delivered, published, redelivered, last_heartbeat_ns (LAST WAIT),
                  consumer: int|null, unrouted, waiting_for: [int], waiting_since_ns,
                  command: str|null, held_blocks, held_bytes, copies}], one per
                  process-table row (role \"holder\": a process's seat for holds; held_blocks
                  and held_bytes: the slab blocks it keeps, views of received buffers and loans;
                  copies: a subscriber's messages copied past its hold bounds);
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
  slab            [{block_size, total, used, free, held}], one per size class, smallest first;
                  held: holds on its blocks (views of received buffers, loans)
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
    let model = read(&args.name, args.interval)?;
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &model)?;
        writeln!(out)?;
    } else {
        write_text(&model, format::now_ns(), args.verbose, out)?;
    }
    match corrupt(&args.name, &model.corruption) {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

/// The model of bus `name`: from one snapshot when `interval_ms` is 0, else from two taken that
/// far apart (for the rates).
fn read(name: &str, interval_ms: u64) -> Result<BusModel> {
    let first = shm_ring::inspect(name)?;
    if interval_ms == 0 {
        return Ok(BusModel::of(&first));
    }
    let started = Instant::now();
    std::thread::sleep(Duration::from_millis(interval_ms));
    let cur = shm_ring::inspect(name)?;
    Ok(BusModel::between(&first, &cur, started.elapsed()))
}

/// The error a corrupt bus ends the command with, after it was shown: the first problem, how
/// many more, and what to do.
fn corrupt(name: &str, corruption: &[String]) -> Option<shm_ring::BusError> {
    let first = corruption.first()?;
    let more = match corruption.len() - 1 {
        0 => String::new(),
        n => format!(
            " (and {n} more problem{}, listed above)",
            if n == 1 { "" } else { "s" }
        ),
    };
    Some(shm_ring::BusError::Corrupt {
        name: name.to_string(),
        what: format!(
            "{first}{more}; processes using it may fail or wait: stop them, then remove \
             the bus (`event-engine rm --force {name}`)"
        ),
    })
}
