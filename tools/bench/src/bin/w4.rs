//! W4, Rust to Rust: one publisher process and one subscriber process on the shared-memory bus,
//! 64-byte payloads. Measures throughput and one-way latency (subscriber busy-polling, and
//! subscriber parked on the futex), against crossbeam's `ArrayQueue` between two threads and,
//! built with `--features iceoryx2`, iceoryx2 publish-subscribe between two processes. Prints a
//! table of medians over `--runs` runs; every run of every peer is checked to deliver exactly the
//! messages sent, in order. Bus throughput is measured twice: one message per publish, and runs of
//! `--batch` messages per `publish_many` call.

use anyhow::{bail, Result};
use clap::Parser;
use event_engine_bench::coord::{self, Peer, Plan, RowResult};
use event_engine_bench::params::RunParams;
use std::process::ExitCode;

/// W4 benchmark: Rust publisher process to Rust subscriber process, 64-byte payloads.
///
/// Runs the shared-memory bus and its peers (crossbeam ArrayQueue between two threads; iceoryx2
/// when built with `--features iceoryx2`) interleaved, `--runs` times each, and prints a table:
/// messages per second (median, min–max), one-way latency p50/p99/p99.9 with the subscriber
/// busy-polling and with it parked on the futex, ratios to each peer, and peak memory. Bus
/// throughput has a second row with the publisher using publish_many runs of `--batch` messages.
///
/// Example: cargo run --release -p event-engine-bench --features iceoryx2 --bin w4 -- --runs 5
#[derive(Parser, Debug)]
#[command(name = "w4", version)]
struct Cli {
    /// Runs of each workload (the table shows medians).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Messages per throughput run.
    #[arg(long, default_value_t = 1_000_000)]
    messages: u64,
    /// Messages per busy-poll latency run.
    #[arg(long, default_value_t = 100_000)]
    latency_messages: u64,
    /// Messages per parked wake-up run (each after a pause); 0 skips the parked workload.
    #[arg(long, default_value_t = 2_000)]
    parked_messages: u64,
    /// Microseconds between two sends in busy-poll latency runs.
    #[arg(long, default_value_t = 5)]
    interval_us: u64,
    /// Microseconds the publisher pauses before each parked send (the subscriber must be asleep
    /// by then; the publisher also checks that it is).
    #[arg(long, default_value_t = 1000)]
    park_pause_us: u64,
    /// Topic of the bus messages. A ring slot carries up to 136 bytes of topic and payload inline,
    /// so with the 64-byte payload a topic of up to 72 bytes (e.g. Market.Data.AAPL) travels in
    /// the slot; a longer one uses a slab block (and publish_many then publishes one at a time).
    #[arg(long, default_value = "W4")]
    topic: String,
    /// Messages per `publish_many` call in the bus's extra throughput row (the publisher claims a
    /// run of free slots at once); 0 leaves that row out.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Leave out the crossbeam peer.
    #[arg(long)]
    no_crossbeam: bool,
    /// Leave out the iceoryx2 peer (only present when built with `--features iceoryx2`).
    #[arg(long)]
    no_iceoryx2: bool,

    /// Internal: run one side of a measurement (used by the coordinator).
    #[arg(long, hide = true)]
    role: Option<String>,
    /// Internal: bus name for a role.
    #[arg(long, hide = true)]
    bus: Option<String>,
    /// Internal: iceoryx2 service name for a role.
    #[arg(long, hide = true)]
    service: Option<String>,
    /// Internal: tag of the iceoryx2 files of this benchmark (for their removal).
    #[arg(long, hide = true)]
    iox_tag: Option<String>,
    #[command(flatten)]
    run: RunParams,
}

fn role(cli: &Cli, role: &str) -> Result<()> {
    let bus = || {
        cli.bus
            .clone()
            .ok_or_else(|| anyhow::anyhow!("--bus is required for role {role}"))
    };
    match role {
        "shm-sub" => event_engine_bench::shm::subscriber(&bus()?, &cli.run),
        "shm-pub" => event_engine_bench::shm::publisher(&bus()?, &cli.topic, &cli.run),
        "crossbeam" => event_engine_bench::inproc::run(&cli.run),
        #[cfg(feature = "iceoryx2")]
        "ice-pub" | "ice-sub" => {
            let service = cli
                .service
                .clone()
                .ok_or_else(|| anyhow::anyhow!("--service is required for role {role}"))?;
            let tag = cli
                .iox_tag
                .clone()
                .ok_or_else(|| anyhow::anyhow!("--iox-tag is required for role {role}"))?;
            if role == "ice-pub" {
                event_engine_bench::ice::publisher(&tag, &service, &cli.run)
            } else {
                event_engine_bench::ice::subscriber(&tag, &service, &cli.run)
            }
        }
        other => bail!("unknown role {other:?}"),
    }
}

/// The first three fields of /proc/loadavg.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn coordinate(cli: &Cli) -> Result<()> {
    if cli.runs == 0 || cli.messages == 0 || cli.latency_messages == 0 {
        bail!("--runs, --messages and --latency-messages must be at least 1");
    }
    if cli.interval_us == 0 {
        bail!("--interval-us must be at least 1");
    }
    if cli.topic.is_empty() {
        bail!("--topic must not be empty");
    }
    let mut peers = Vec::new();
    if !cli.no_crossbeam {
        peers.push(Peer::Crossbeam);
    }
    if cfg!(feature = "iceoryx2") && !cli.no_iceoryx2 {
        peers.push(Peer::Iceoryx2);
    }
    let plan = Plan {
        runs: cli.runs,
        messages: cli.messages,
        latency_messages: cli.latency_messages,
        parked_messages: cli.parked_messages,
        interval_ns: cli.interval_us * 1000,
        pause_ns: cli.park_pause_us * 1000,
        topic: cli.topic.clone(),
        peers,
        batch: cli.batch,
    };
    #[cfg(feature = "iceoryx2")]
    let _iox_files = IoxFiles;
    let mut results: Vec<RowResult> = coord::rows(&plan)
        .into_iter()
        .map(|(peer, mode)| RowResult {
            peer,
            mode,
            runs: Vec::new(),
        })
        .collect();
    let load_before = loadavg();
    for run in 0..plan.runs {
        for r in results.iter_mut() {
            eprintln!(
                "run {}/{}: {} {}",
                run + 1,
                plan.runs,
                r.peer.label(),
                r.mode.name()
            );
            let o = coord::run_one(&plan, r.peer, r.mode, run)
                .map_err(|e| e.context(format!("{} {}", r.peer.label(), r.mode.name())))?;
            match (o.rate, &o.latency) {
                (Some(rate), _) => eprintln!("    {:.0} msg/s", rate),
                (None, Some(l)) => eprintln!(
                    "    p50 {} ns, p99 {} ns, p99.9 {} ns",
                    l.p50, l.p99, l.p999
                ),
                _ => {}
            }
            r.runs.push(o);
        }
    }
    if !cfg!(feature = "iceoryx2") {
        println!("(iceoryx2 peer not built: add --features iceoryx2)");
    }
    print!("{}", coord::table(&plan, &results));
    println!(
        "Load average (1/5/15 min) before: {load_before}; after: {} ({} CPUs). Busy-poll figures need both processes on a CPU at once: read them against the load.",
        loadavg(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    Ok(())
}

/// Removes this benchmark's iceoryx2 files when the coordinator finishes, even on an error.
#[cfg(feature = "iceoryx2")]
struct IoxFiles;

#[cfg(feature = "iceoryx2")]
impl Drop for IoxFiles {
    fn drop(&mut self) {
        event_engine_bench::ice::cleanup(&std::process::id().to_string());
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res = match cli.role.as_deref() {
        Some(r) => role(&cli, r),
        None => coordinate(&cli),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("w4: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
