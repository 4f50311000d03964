//! The bridge's command line (`Args`), checked whole before anything connects (`Settings`):
//! every mistake is a usage error saying what to write instead.

use super::{flow, nats_side, subject};
use crate::error::UsageError;
use async_nats::ServerAddr;
use engine_core::Topic;
use std::time::Duration;

/// Arguments of `bridge`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Bus name.
    pub name: String,
    /// NATS server URL, e.g. nats://127.0.0.1:4222 (several: comma-separated).
    #[arg(long, value_name = "URL")]
    pub nats: String,
    /// Publish bus messages matching this topic pattern to NATS (repeatable).
    #[arg(long = "export", value_name = "PATTERN")]
    pub export: Vec<String>,
    /// Publish NATS messages matching this topic pattern on the bus (repeatable).
    #[arg(long = "import", value_name = "PATTERN")]
    pub import: Vec<String>,
    /// Give up connecting after this many seconds.
    #[arg(long, default_value_t = 5.0, value_name = "SECS")]
    pub connect_timeout: f64,
    /// Imported messages held (per subscription) while the bus is full, before NATS messages
    /// are lost; at least twice the sum of the --window of the exporters imported from.
    #[arg(long, default_value_t = 262_144, value_name = "MESSAGES")]
    pub import_buffer: usize,
    /// Most exported messages one importer may not have acknowledged; then this bridge stops
    /// reading the bus until it catches up (0: no flow control).
    #[arg(long, default_value_t = 16_384, value_name = "MESSAGES")]
    pub window: usize,
    /// Forget an importer that sends no acknowledgement for this many seconds while this bridge
    /// waits for it (a killed bridge, or one cut off).
    #[arg(long, default_value_t = 5.0, value_name = "SECS")]
    pub ack_timeout: f64,
    /// Seconds between stats lines (0: only at exit).
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    pub stats_every: f64,
    /// This bridge's id in the messages it exports (default: host, pid and start time);
    /// 1 to 64 characters of [A-Za-z0-9_.-], unique among the bridges on a server.
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,
}

/// What `bridge` was asked to do, checked.
pub struct Settings {
    /// The NATS servers to connect to.
    pub servers: Vec<ServerAddr>,
    /// The topic patterns exported to NATS.
    pub export: Vec<Topic>,
    /// The topic patterns imported from NATS.
    pub import: Vec<Topic>,
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// Time between stats lines (zero: only at exit).
    pub stats_every: Duration,
    /// This bridge's id in the messages it exports.
    pub id: String,
    /// How long an importer may be silent while this bridge waits for it.
    pub ack_timeout: Duration,
}

impl Settings {
    /// The settings `args` give, or the first thing wrong with them.
    pub fn from_args(args: &Args) -> Result<Settings, UsageError> {
        let servers = nats_side::parse_servers(&args.nats).map_err(UsageError)?;
        let export = patterns("--export", &args.export)?;
        let import = patterns("--import", &args.import)?;
        if export.is_empty() && import.is_empty() {
            return Err(UsageError(
                "nothing to carry: give at least one --export or --import pattern".into(),
            ));
        }
        let connect_timeout = seconds("--connect-timeout", args.connect_timeout, false)?;
        let stats_every = seconds("--stats-every", args.stats_every, true)?;
        let id = bridge_id(args.id.as_deref())?;
        if args.import_buffer == 0 {
            return Err(UsageError("--import-buffer must be at least 1".into()));
        }
        let ack_timeout = ack_timeout(args.ack_timeout)?;
        Ok(Settings {
            servers,
            export,
            import,
            connect_timeout,
            stats_every,
            id,
            ack_timeout,
        })
    }
}

fn patterns(flag: &str, texts: &[String]) -> Result<Vec<Topic>, UsageError> {
    texts
        .iter()
        .map(|p| subject::parse_pattern(flag, p))
        .collect()
}

fn seconds(flag: &str, value: f64, zero_ok: bool) -> Result<Duration, UsageError> {
    if value.is_finite() && (value > 0.0 || (zero_ok && value == 0.0)) && value < 1e9 {
        return Ok(Duration::from_secs_f64(value));
    }
    Err(UsageError(format!(
        "{flag} {value} is not a number of seconds{}",
        if zero_ok {
            " (0 or more)"
        } else {
            " greater than 0"
        }
    )))
}

/// `--ack-timeout`: long enough for a few of the importers' signs of life.
fn ack_timeout(value: f64) -> Result<Duration, UsageError> {
    let timeout = seconds("--ack-timeout", value, false)?;
    if timeout < 4 * flow::HEARTBEAT {
        return Err(UsageError(format!(
            "--ack-timeout {value} is too short: importers show they are alive every {} ms; give \
             at least {} s",
            flow::HEARTBEAT.as_millis(),
            (4 * flow::HEARTBEAT).as_secs_f64()
        )));
    }
    Ok(timeout)
}

/// `--id` checked, or by default one made of the host name, the pid and the start time.
fn bridge_id(given: Option<&str>) -> Result<String, UsageError> {
    let Some(id) = given else {
        return Ok(default_id());
    };
    // The id is part of a subject (its acknowledgements'): no empty part.
    let ok = (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && id.split('.').all(|part| !part.is_empty());
    if !ok {
        return Err(UsageError(format!(
            "--id {id:?} is not a bridge id: use 1 to 64 characters of [A-Za-z0-9_.-], \
             without a dot at either end or two in a row"
        )));
    }
    Ok(id.to_string())
}

fn default_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host: String = host
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        .take(32)
        .collect();
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("{host}-{}-{:x}", std::process::id(), started as u64)
}
