//! `tick-producer`: a Rust feed for Python consumers on the shared-memory bus (benchmark W3, demos).
//!
//! Opens (or creates) a bus, optionally waits until K consumers are attached, publishes N market
//! ticks round-robin over the symbols on `Market.Data.<SYMBOL>` (raw bytes or a pickled
//! `(args, kwargs)` call, see `event_engine_bench::ticks` for the layouts), and prints one JSON line
//! with the counts per topic, the elapsed time and the rate.

use anyhow::{bail, Context, Result};
use clap::Parser;
use event_engine_bench::ticks::{self, Encoding, RAW_MIN};
use shm_ring::{Bus, BusConfig, BusError};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Publish market ticks on a shared-memory bus for Python (or Rust) consumers.
///
/// Ticks go round-robin over the symbols, each on topic `Market.Data.<SYMBOL>`; `seq` counts each
/// symbol's ticks from 0. Payloads are either raw little-endian bytes (`--raw-size`, the handler
/// receives one `bytes`: seq u64, price f64, size u64, symbol 8 bytes NUL-padded, zero-filled to
/// the size) or, with `--pickled`, a pickle so the handler is called as
/// `handler(seq, price, symbol, size=size)`.
///
/// At the end one JSON line goes to stdout:
/// {"bus":..,"encoding":..,"published":{"Market.Data.AAPL":N,..},"total":N,"elapsed_s":..,"msgs_per_s":..}
///
/// Example: tick-producer --bus demo --symbols AAPL,MSFT --count 100000 --pickled --wait-subscribers 1
#[derive(Parser, Debug)]
#[command(name = "tick-producer", version)]
struct Cli {
    /// Bus to publish on (opened if it exists, else created with the geometry options below).
    #[arg(long)]
    bus: String,
    /// A single topic to publish on; its last dot-separated part is the symbol. Not with --symbols.
    #[arg(long, conflicts_with = "symbols")]
    topic: Option<String>,
    /// Comma-separated symbols; ticks go round-robin to Market.Data.<SYMBOL>.
    #[arg(long, value_delimiter = ',')]
    symbols: Vec<String>,
    /// Ticks to publish in total.
    #[arg(long, default_value_t = 100_000)]
    count: u64,
    /// Ticks per second (0: as fast as the bus takes them).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Raw payload size in bytes (at least 32).
    #[arg(long, default_value_t = 64, conflicts_with = "pickled")]
    raw_size: usize,
    /// Publish pickled (args, kwargs) calls instead of raw bytes.
    #[arg(long)]
    pickled: bool,
    /// Before publishing, wait until this many subscribers (fan-out or group members) are attached.
    #[arg(long, default_value_t = 0)]
    wait_subscribers: usize,
    /// Seconds to wait for --wait-subscribers.
    #[arg(long, default_value_t = 30.0)]
    wait_timeout: f64,
    /// Seconds a single publish may wait for ring or slab space (a stuck consumer) before failing.
    #[arg(long, default_value_t = 30.0)]
    publish_timeout: f64,
    /// When creating the bus: ring slots (a power of two).
    #[arg(long, default_value_t = BusConfig::default().ring_capacity)]
    ring_capacity: u32,
    /// When creating the bus: bytes of payload blocks in the slab (default: derived from
    /// --max-message, room for four messages of it plus the small classes).
    #[arg(long)]
    slab_memory: Option<u64>,
    /// When creating the bus: largest payload in bytes.
    #[arg(long, default_value_t = BusConfig::default().max_message)]
    max_message: u32,
}

fn seconds(name: &str, s: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(s).map_err(|_| anyhow::anyhow!("--{name} {s} is not a duration"))
}

fn run(cli: Cli) -> Result<()> {
    let topics: Vec<(String, String)> = match (&cli.topic, cli.symbols.is_empty()) {
        (Some(t), _) => {
            let sym = t.rsplit('.').next().unwrap_or(t).to_string();
            vec![(t.clone(), sym)]
        }
        (None, true) => vec![(ticks::topic("AAPL"), "AAPL".into())],
        (None, false) => {
            for s in &cli.symbols {
                if s.is_empty() || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                    bail!("--symbols: {s:?} is not a symbol (letters, digits and '_' only)");
                }
            }
            cli.symbols
                .iter()
                .map(|s| (ticks::topic(s), s.clone()))
                .collect()
        }
    };
    let enc = if cli.pickled {
        Encoding::Pickled
    } else {
        if cli.raw_size < RAW_MIN {
            bail!(
                "--raw-size {} is too small: a raw tick needs at least {RAW_MIN} bytes",
                cli.raw_size
            );
        }
        Encoding::Raw(cli.raw_size)
    };
    if !(cli.rate >= 0.0 && cli.rate.is_finite()) {
        bail!("--rate {} must be a non-negative number", cli.rate);
    }
    let wait_timeout = seconds("wait-timeout", cli.wait_timeout)?;
    let publish_timeout = seconds("publish-timeout", cli.publish_timeout)?;
    let bus = match Bus::open(&cli.bus) {
        Ok(b) => b,
        Err(BusError::NotFound { .. }) => {
            let cfg = BusConfig {
                ring_capacity: cli.ring_capacity,
                slab_memory: cli.slab_memory,
                max_message: cli.max_message,
                ..BusConfig::default()
            };
            Bus::open_or_create(&cli.bus, &cfg)
                .with_context(|| format!("creating bus {:?}", cli.bus))?
        }
        Err(e) => return Err(e).with_context(|| format!("opening bus {:?}", cli.bus)),
    };
    if let Encoding::Raw(n) = enc {
        if n > bus.max_payload() {
            bail!(
                "--raw-size {n} is larger than bus {:?} allows ({} bytes)",
                cli.bus,
                bus.max_payload()
            );
        }
    }
    let mut publisher = bus.publisher().context("creating a publisher")?;
    if cli.wait_subscribers > 0 {
        ticks::wait_consumers(&bus, cli.wait_subscribers, wait_timeout)?;
    }
    let mut counts = vec![0u64; topics.len()];
    let start = Instant::now();
    for i in 0..cli.count {
        if cli.rate > 0.0 {
            pace(start + Duration::from_secs_f64(i as f64 / cli.rate));
        }
        let k = (i % topics.len() as u64) as usize;
        let (topic, symbol) = &topics[k];
        ticks::publish(
            &mut publisher,
            topic,
            symbol,
            counts[k],
            enc,
            publish_timeout,
        )
        .with_context(|| format!("publishing tick {i} on {topic}"))?;
        counts[k] += 1;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let published: serde_json::Map<String, serde_json::Value> = topics
        .iter()
        .zip(&counts)
        .map(|((t, _), n)| (t.clone(), (*n).into()))
        .collect();
    let summary = serde_json::json!({
        "bus": cli.bus,
        "encoding": match enc { Encoding::Raw(n) => format!("raw{n}"), Encoding::Pickled => "pickled".into() },
        "published": published,
        "total": cli.count,
        "elapsed_s": elapsed,
        "msgs_per_s": if elapsed > 0.0 { cli.count as f64 / elapsed } else { 0.0 },
    });
    println!("{summary}");
    Ok(())
}

/// Waits until `at`: sleeps while far from it, spins the last stretch.
fn pace(at: Instant) {
    loop {
        let now = Instant::now();
        if now >= at {
            return;
        }
        let left = at - now;
        if left > Duration::from_micros(200) {
            std::thread::sleep(left - Duration::from_micros(100));
        } else {
            std::hint::spin_loop();
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tick-producer: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
