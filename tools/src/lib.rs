//! The `event-engine` command line: inspect a shared-memory bus, watch it live, tail its
//! messages, publish to it from the shell, reap dead processes, remove it, and bridge it to
//! other machines' buses over NATS.
//!
//! All of it is this library so that any launcher (the `event-engine` binary, the Python
//! package's console script) runs the same code through [`run`]. Subcommands live in [`cmd`],
//! one module each; they return `anyhow` errors carrying typed causes, and only [`run`] turns
//! those into the one-line message and the exit status (see [`error`]). `inspect` and `watch`
//! render one [`model`] of the bus, computed from its snapshots.

#![warn(missing_docs)]

pub mod cmd;
pub mod error;
pub mod format;
pub mod jsonargs;
pub mod model;
pub mod payload;
pub mod signals;
pub mod table;
pub mod topic_filter;
pub mod units;

use clap::{Parser, Subcommand};
use std::ffi::OsString;
use std::io::Write;

/// `event-engine`: tools for the event engine's shared-memory buses.
#[derive(Parser, Debug)]
#[command(
    name = "event-engine",
    version,
    about = "Create, inspect, watch, tail, publish to, clean up and bridge event-engine shared-memory buses.",
    long_about = "Create, inspect, watch, tail, publish to, clean up and bridge (over NATS) event-engine \
shared-memory buses (files /dev/shm/event_engine.<name>).

Exit status: 0 success, 1 other failure, 2 usage error, 3 unknown bus, 4 bad bus name, \
5 corrupt or foreign bus file or a layout version this build does not read."
)]
pub struct Cli {
    /// The subcommand to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a bus of a chosen size (slots, largest message, slab memory).
    #[command(long_about = cmd::create::LONG_ABOUT)]
    Create(cmd::create::Args),
    /// List every bus on this machine.
    #[command(long_about = cmd::ls::LONG_ABOUT)]
    Ls(cmd::ls::Args),
    /// Show one bus in detail: processes, topics and rates, blocked publishers, bridges, slab.
    #[command(long_about = cmd::inspect::LONG_ABOUT)]
    Inspect(cmd::inspect::Args),
    /// Watch a bus live: rates per topic, blocked publishers, lag, ring and slab fill, bridges.
    #[command(long_about = cmd::watch::LONG_ABOUT)]
    Watch(cmd::watch::Args),
    /// Print messages as they pass (a lossy subscriber by default; --lossless, --observe).
    #[command(long_about = cmd::tail::LONG_ABOUT)]
    Tail(cmd::tail::Args),
    /// Publish messages from the shell.
    #[command(long_about = cmd::publish::LONG_ABOUT)]
    Publish(cmd::publish::Args),
    /// Reclaim what dead processes left on a bus, now.
    #[command(long_about = cmd::reap::LONG_ABOUT)]
    Reap(cmd::reap::Args),
    /// Remove a bus.
    #[command(long_about = cmd::rm::LONG_ABOUT)]
    Rm(cmd::rm::Args),
    /// Carry chosen topics between the bus and a NATS server.
    #[command(long_about = cmd::bridge::LONG_ABOUT)]
    Bridge(cmd::bridge::Args),
}

/// Parses `args` (including the program name), runs the subcommand, prints any error as one line
/// on stderr and returns the exit status (see [`error`] for the codes). Never panics outward: a
/// panic is reported as one line and gives status 1.
pub fn run(args: Vec<OsString>) -> i32 {
    // The host process (a Python interpreter, for the console script) gets its own hook back.
    let host_hook = std::panic::take_hook();
    install_panic_hook();
    let status = run_inner(args);
    std::panic::set_hook(host_hook);
    status
}

fn run_inner(args: Vec<OsString>) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => return report_parse_error(&e),
    };
    match std::panic::catch_unwind(move || dispatch(cli)) {
        Ok(Ok(())) => 0,
        Ok(Err(e)) if error::is_broken_pipe(&e) => 0,
        Ok(Err(e)) => {
            eprintln!("event-engine: error: {}", error::one_line(&e));
            error::exit_code(&e)
        }
        // The hook has already said what happened.
        Err(_) => error::EXIT_OTHER,
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let result = match &cli.command {
        Command::Create(a) => cmd::create::run(a, &mut out),
        Command::Ls(a) => cmd::ls::run(a, &mut out),
        Command::Inspect(a) => cmd::inspect::run(a, &mut out),
        Command::Watch(a) => cmd::watch::run(a, &mut out),
        Command::Tail(a) => cmd::tail::run(a, &mut out),
        Command::Publish(a) => cmd::publish::run(a, &mut out),
        Command::Reap(a) => cmd::reap::run(a, &mut out),
        Command::Rm(a) => cmd::rm::run(a, &mut out),
        Command::Bridge(a) => cmd::bridge::run(a, &mut out),
    };
    result.and_then(|()| out.flush().map_err(Into::into))
}

/// Help and version go to stdout with status 0; a usage error becomes one line and status 2.
fn report_parse_error(e: &clap::Error) -> i32 {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            0
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            error::EXIT_USAGE
        }
        _ => {
            // clap's first paragraph is the message (possibly continued on indented lines);
            // the usage and tips after it are left to --help.
            let rendered = e.render().to_string();
            let message = rendered
                .trim_start()
                .split("\n\n")
                .next()
                .unwrap_or_default();
            let message = message.strip_prefix("error: ").unwrap_or(message);
            let message = message.split_whitespace().collect::<Vec<_>>().join(" ");
            eprintln!("event-engine: error: {message} (see 'event-engine --help')");
            error::EXIT_USAGE
        }
    }
}

/// A panic prints one line (what and where), never a backtrace.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!(
            "event-engine: internal error: {}{at}",
            what.split_whitespace().collect::<Vec<_>>().join(" ")
        );
    }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn usage_errors_exit_2() {
        assert_eq!(run(vec!["event-engine".into(), "frobnicate".into()]), 2);
        assert_eq!(run(vec!["event-engine".into(), "inspect".into()]), 2);
    }
}
