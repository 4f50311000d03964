//! `event-engine rm NAME`: remove a bus file, refusing while live processes use it unless forced.

use crate::error::Refused;
use anyhow::{Context, Result};
use shm_ring::{Bus, BusError};
use std::io::Write;

/// The long help of the subcommand (`event-engine rm --help`).
pub const LONG_ABOUT: &str =
    "Remove the bus file /dev/shm/event_engine.<name>. Refuses while live \
processes are attached, and refuses a file it cannot read as a bus (corrupt, foreign, another \
layout version, or not a file at all); --force removes it anyway, a directory with what it \
holds. Processes still attached keep their mapping until \
they exit; new attachers no longer find the bus.";

/// Arguments of `rm`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Bus name.
    pub name: String,
    /// Remove even with live processes attached or when the file cannot be read as a bus.
    #[arg(long)]
    pub force: bool,
}

/// Removes what is at the bus's path. A directory there (never a bus; reached only with
/// `--force`, since it cannot be read as a bus) is removed with what it holds, as the error that
/// names it says; symbolic links in it are removed, never followed.
fn remove(name: &str) -> Result<()> {
    let path = shm_ring::shm_path(name);
    match std::fs::symlink_metadata(&path) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(&path).with_context(|| {
            format!(
                "cannot remove the directory {} at the path of bus {name}",
                path.display()
            )
        }),
        _ => Ok(Bus::unlink(name)?),
    }
}

/// Removes the bus.
pub fn run(args: &Args, out: &mut dyn Write) -> Result<()> {
    let live: Vec<u32> = match shm_ring::inspect(&args.name) {
        Ok(snap) => snap
            .processes
            .iter()
            .filter(|p| p.alive)
            .map(|p| p.pid)
            .collect(),
        Err(e @ (BusError::NotFound { .. } | BusError::BadName { .. })) => return Err(e.into()),
        Err(e) if !args.force => {
            return Err(e).context(format!(
                "cannot tell whether bus {} is in use (--force removes it anyway)",
                args.name
            ))
        }
        Err(_) => Vec::new(),
    };
    if !live.is_empty() && !args.force {
        let mut pids: Vec<String> = live.iter().map(u32::to_string).collect();
        pids.sort();
        pids.dedup();
        return Err(Refused(format!(
            "bus {} is in use by {} live attachment{} (pid {}); stop them first or use --force",
            args.name,
            live.len(),
            if live.len() == 1 { "" } else { "s" },
            pids.join(", ")
        ))
        .into());
    }
    remove(&args.name)?;
    if live.is_empty() {
        writeln!(out, "removed bus {}", args.name)?;
    } else {
        writeln!(
            out,
            "removed bus {} ({} live attachments keep their mapping until they exit)",
            args.name,
            live.len()
        )?;
    }
    Ok(())
}
