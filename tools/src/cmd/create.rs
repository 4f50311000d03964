//! `event-engine create NAME`: create a bus of a chosen geometry (or find it there already with
//! that geometry), with sizes and durations as an operator types them.

use crate::error::Refused;
use crate::format;
use crate::units::{parse_seconds, parse_size};
use anyhow::{Context, Result};
use shm_ring::{Bus, BusConfig, BusError};
use std::io::Write;

/// The long help of the subcommand (`event-engine create --help`).
pub const LONG_ABOUT: &str = "Create the bus /dev/shm/event_engine.<name> with the given \
geometry, for processes to attach to (Python: EventEngine(bus=name), which takes any geometry, or \
create_bus(name, ...) with the same values). A bus that exists with the same geometry is left as \
it is; one with another geometry is an error naming what differs (a bus is never resized: remove \
it with `event-engine rm` once unused).

Sizes are bytes, or a number with KiB, MiB or GiB (64MiB, 1.5GiB); durations are seconds, or a \
number with ms, s, m or h. --memory is the total of the slab's payload blocks; without it, it is \
derived from --max-message (room for four messages of that size plus the small size classes, \
about 16 MiB for 1 MiB messages). Messages up to 1 GiB are possible where /dev/shm has room.";

/// Arguments of `create`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Bus name.
    pub name: String,
    /// Ring slots: messages in flight at once (a power of two).
    #[arg(long, default_value_t = 4096)]
    pub slots: u32,
    /// Largest message, e.g. 64MiB (at most 1GiB).
    #[arg(long, default_value = "1MiB", value_parser = parse_size)]
    pub max_message: u64,
    /// Bytes of payload blocks, e.g. 2GiB (default: derived from --max-message).
    #[arg(long, value_parser = parse_size)]
    pub memory: Option<u64>,
    /// Process-table rows (each engine takes three).
    #[arg(long, default_value_t = 256)]
    pub max_processes: u32,
    /// How long a group without members keeps its backlog, e.g. 60s.
    #[arg(long, default_value = "60s", value_parser = parse_seconds)]
    pub group_retention: f64,
}

impl Args {
    fn config(&self) -> Result<BusConfig> {
        let max_message = u32::try_from(self.max_message)
            .ok()
            .filter(|m| (1..=shm_ring::MAX_MESSAGE_LIMIT).contains(m))
            .ok_or_else(|| {
                crate::error::UsageError(format!(
                    "--max-message {} is not between 1 byte and 1GiB",
                    self.max_message
                ))
            })?;
        if !(2..=1 << 24).contains(&self.slots) || !self.slots.is_power_of_two() {
            return Err(crate::error::UsageError(format!(
                "--slots {} is not a power of two from 2 to 16777216",
                self.slots
            ))
            .into());
        }
        Ok(BusConfig {
            ring_capacity: self.slots,
            max_message,
            slab_memory: self.memory,
            max_processes: self.max_processes,
            group_retention_ms: (self.group_retention * 1000.0).round() as u64,
            ..BusConfig::default()
        })
    }
}

/// Each option whose value differs between `want` and `have`, with both values.
fn differences(want: &BusConfig, have: &BusConfig) -> Vec<String> {
    let memory = |c: &BusConfig| {
        c.slab_memory
            .unwrap_or_else(|| shm_ring::default_slab_memory(c.max_message))
    };
    let sized = |n: u64| format!("{n} ({})", format::bytes(n));
    let rows = [
        (
            "--slots",
            want.ring_capacity.to_string(),
            have.ring_capacity.to_string(),
        ),
        (
            "--max-message",
            sized(want.max_message.into()),
            sized(have.max_message.into()),
        ),
        ("--memory", sized(memory(want)), sized(memory(have))),
        (
            "--max-processes",
            want.max_processes.to_string(),
            have.max_processes.to_string(),
        ),
        (
            "--group-retention",
            format!("{}s", want.group_retention_ms as f64 / 1000.0),
            format!("{}s", have.group_retention_ms as f64 / 1000.0),
        ),
    ];
    rows.into_iter()
        .filter(|(_, w, h)| w != h)
        .map(|(flag, w, h)| format!("{flag} is {h} there, {w} asked for"))
        .collect()
}

/// Creates the bus, or finds it there with the same geometry.
pub fn run(args: &Args, out: &mut dyn Write) -> Result<()> {
    let cfg = args.config()?;
    let existed = shm_ring::inspect(&args.name).is_ok();
    match Bus::open_or_create(&args.name, &cfg) {
        Ok(bus) => drop(bus),
        Err(e @ BusError::Mismatch { field, .. }) if field != "layout version" => {
            let have = shm_ring::inspect(&args.name)
                .with_context(|| e.to_string())?
                .geometry;
            return Err(Refused(format!(
                "bus {} exists with another geometry: {}; a bus is never resized: use it as it \
                 is, pick another name, or remove it with `event-engine rm {}` once no process \
                 uses it",
                args.name,
                differences(&cfg, &have).join("; "),
                args.name
            ))
            .into());
        }
        Err(e @ BusError::BadConfig { .. }) => {
            return Err(crate::error::UsageError(format!("bus {}: {e}", args.name)).into())
        }
        Err(e) => return Err(e.into()),
    }
    let snap = shm_ring::inspect(&args.name)?;
    let classes: Vec<String> = snap
        .slab
        .iter()
        .map(|c| format!("{} x {}", format::block_size(c.block_size.into()), c.total))
        .collect();
    writeln!(
        out,
        "{} bus {} ({}, {}): ring {} slots, max message {}, slab {} ({}), {} process rows, \
         group retention {}s",
        if existed { "found" } else { "created" },
        args.name,
        shm_ring::shm_path(&args.name).display(),
        format::bytes(snap.file_size),
        snap.geometry.ring_capacity,
        format::bytes(snap.geometry.max_message.into()),
        format::bytes(snap.geometry.slab_memory.unwrap_or_default()),
        classes.join(", "),
        snap.geometry.max_processes,
        snap.geometry.group_retention_ms as f64 / 1000.0,
    )?;
    Ok(())
}
