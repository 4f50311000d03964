//! `event-engine tail NAME`: print messages as they pass through a bus.
//!
//! Three ways to read. By default as a lossy subscriber wanting the `--topic` patterns: every
//! matching message published after it joined is addressed to it, so it shows them all, in order,
//! while it keeps up; when it falls a full ring behind, publishers take what it has not read
//! instead of waiting for it, and tail reports how many it missed. With `--lossless`, as a
//! lossless fan-out subscriber: it misses nothing, at the price of holding publishers back when it
//! falls a full ring behind. With `--observe`, as a read-only observer that takes no row: it sees
//! a message only while some other subscriber still holds it in the ring.

use crate::error::UsageError;
use crate::payload;
use crate::signals::StopFlag;
use crate::topic_filter::TopicFilter;
use anyhow::Result;
use engine_core::Topic;
use shm_ring::{BusError, Codec, Message, Observer, SubscribeOptions, Subscriber};
use std::io::Write;
use std::time::Duration;

/// How long one wait for a message lasts before the stop flag is looked at again.
const POLL: Duration = Duration::from_millis(100);

/// The long help of the subcommand (`event-engine tail --help`).
pub const LONG_ABOUT: &str = "Print messages as they pass through the bus, one line each: \
sequence number, topic, publisher pid, payload size and the arguments a Python handler would \
receive, as Python would write them: `(4242, 123.5, 'ZQXW', size=100)` for a compact or pickled \
call, `(b'...')` for a raw payload. A buffer sent out of band (a numpy array, a large bytes, a \
memoryview) is shown as its type, shape and size, never its bytes: \
`(ndarray(uint8, (1024, 1024), 1.0 MiB), seq=7)`; other objects as their class and arguments, \
no code being imported or run. A payload that cannot be decoded (an unknown codec, corrupt \
or hostile bytes, a pickle beyond the decoder's depth and size limits) is shown as the reason \
and the start of its bytes in hex, counted, and tail goes on. --topic (repeatable) keeps the \
messages whose topic matches one of the patterns.

By default tail joins the bus as a lossy subscriber wanting the --topic patterns (every topic \
without one): every matching message published after it started is addressed to it, on a bus \
with or without other subscribers, and it shows them all, in order, while it keeps up. It never \
holds a publisher back: when it falls a full ring behind (a slow terminal, output paused or \
piped into a pager), publishers take the messages it has not read yet instead of waiting, and \
tail prints how many it missed and goes on. It takes a process-table row like any subscriber; \
on Ctrl-C or SIGTERM it leaves the bus, and if it is killed (SIGKILL), `event-engine reap` (or \
the next reap any process of the bus runs) reclaims its row.

With --lossless, tail is a lossless fan-out subscriber instead: it misses nothing, but when it \
falls a full ring behind, publishers of the topics it wants wait for it. It says so on stderr \
when it starts. If it is killed, blocked publishers reap it within a second, and \
`event-engine reap` does at once.

With --observe, tail reads as a read-only observer: it takes no process-table row (so it works \
on a bus whose table is full, maps the bus read-only, and leaves nothing behind if killed) and \
changes nothing publishers do, but it sees a message only while some other subscriber still \
holds it in the ring. What it misses is counted and reported as skipped: every message of a bus \
with no subscriber attached (publishers then drop each message at once), messages every \
subscriber acknowledged before tail reached them (most of the traffic on a busy bus whose \
subscribers keep up), messages whose slot was reused while being copied.

Every way it starts with the next message published and runs until Ctrl-C, or until -n \
messages were shown.

With --json, prints one JSON object per line: for a message {\"seq\": int, \"topic\": str, \
\"publisher_pid\": int, \"publisher_row\": int, \"timestamp_ns\": int, \"size\": int, \
\"codec\": \"raw\"|\"pickle\"|\"compact\"|\"pickle-buffers\"|\"codec-<n>\", \"payload\": str (the text described \
above), \"undecodable\": bool}, and (default and --observe) {\"skipped\": int} each time \
messages were missed since the previous line.";

/// Arguments of `tail`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Bus name.
    pub name: String,
    /// Only messages whose topic matches this pattern (topic grammar, e.g. 'md.{symbol}' or
    /// 'md.+symbol'); repeat for several.
    #[arg(long, value_name = "PATTERN")]
    pub topic: Vec<String>,
    /// Miss nothing, as a subscriber that holds publishers back while it is a full ring behind
    /// (default: a lossy subscriber that never does, and reports what it missed).
    #[arg(long, conflicts_with = "observe")]
    pub lossless: bool,
    /// Read as an observer without a process-table row: sees only messages another subscriber
    /// still holds in the ring.
    #[arg(long)]
    pub observe: bool,
    /// Stop after this many messages.
    #[arg(short = 'n', long = "count", value_name = "N")]
    pub count: Option<u64>,
    /// Show whole payloads instead of cutting them at 200 characters.
    #[arg(long)]
    pub full: bool,
    /// Print one JSON object per line.
    #[arg(long)]
    pub json: bool,
}

/// One message as `tail --json` prints it (field names are part of the command-line API).
#[derive(serde::Serialize, Debug)]
pub struct JsonMessage<'a> {
    /// Ring position.
    pub seq: u64,
    /// Topic.
    pub topic: &'a str,
    /// Pid of the publishing process.
    pub publisher_pid: u32,
    /// Process-table row of the publisher.
    pub publisher_row: u32,
    /// When it was published, ns since the Unix epoch.
    pub timestamp_ns: u64,
    /// Payload size in bytes.
    pub size: usize,
    /// `raw`, `pickle`, `compact`, `pickle-buffers` or `codec-<n>`.
    pub codec: String,
    /// The payload as text: its arguments, or why it could not be decoded.
    pub payload: String,
    /// Whether the payload could not be decoded.
    pub undecodable: bool,
}

fn codec_name(codec: u8) -> String {
    match Codec::from_id(codec) {
        Some(c) => c.name().into(),
        None => format!("codec-{codec}"),
    }
}

/// The line for message `m`, and whether its payload was undecodable.
fn message_line(m: &Message<'_>, json: bool, max_chars: usize) -> Result<(String, bool)> {
    let (text, undecodable) = match payload::describe(m.codec, m.payload, max_chars) {
        Ok(text) => (text, false),
        Err(why) => (why, true),
    };
    if json {
        let line = serde_json::to_string(&JsonMessage {
            seq: m.seq,
            topic: m.topic,
            publisher_pid: m.publisher_pid,
            publisher_row: m.publisher,
            timestamp_ns: m.timestamp_ns,
            size: m.payload.len(),
            codec: codec_name(m.codec),
            payload: text,
            undecodable,
        })?;
        return Ok((line, undecodable));
    }
    let line = format!(
        "#{} {} pid {} {} B {text}",
        m.seq,
        m.topic,
        m.publisher_pid,
        m.payload.len()
    );
    Ok((line, undecodable))
}

/// Where tail reads from.
enum Source {
    /// `--observe`: no row, never addressed, never waited for.
    Observer(Observer),
    /// A fan-out subscriber wanting the patterns: lossy (the default) or lossless.
    Subscriber(Subscriber),
}

impl Source {
    /// Waits up to [`POLL`] for the next message.
    fn recv(&mut self) -> Result<Option<Message<'_>>, BusError> {
        match self {
            Source::Observer(o) => o.recv(Some(POLL)),
            Source::Subscriber(s) => s.recv(Some(POLL)),
        }
    }

    /// Messages missed so far: skipped by the observer, or taken from the lossy subscriber by
    /// publishers (always 0 for a lossless subscriber).
    fn skipped(&self) -> u64 {
        match self {
            Source::Observer(o) => o.skipped(),
            Source::Subscriber(s) => s.missed(),
        }
    }
}

/// Joins bus `name` as a fan-out subscriber wanting `topics` (every topic when empty).
fn subscribe(bus: &shm_ring::Bus, topics: &[String], lossy: bool) -> Result<Subscriber> {
    let topics = (!topics.is_empty()).then(|| topics.to_vec());
    bus.subscribe_with(&SubscribeOptions {
        topics,
        lossy,
        ..SubscribeOptions::default()
    })
    .map_err(|e| match e {
        BusError::TableFull { .. } => anyhow::Error::new(e).context(
            "tail joins the bus as a subscriber and found no room; \
             `event-engine tail --observe` reads without joining",
        ),
        e => e.into(),
    })
}

/// Tails the bus.
pub fn run(args: &Args, out: &mut dyn Write) -> Result<()> {
    let patterns = patterns(&args.topic)?;
    // A subscriber is only addressed what it wants; the observer sees everything and filters.
    let filter = (args.observe && !patterns.is_empty()).then(|| TopicFilter::new(patterns));
    let stop = StopFlag::install()?;
    // The bus is kept alive for as long as the subscriber reads: the subscriber leaves the bus
    // (gives its row and consumer entry back) when it is dropped, on every way out of here.
    let (_bus, mut source) = open(args)?;
    let (shown, undecodable) = show(args, &mut source, filter, &stop, out)?;
    out.flush()?;
    let skipped = source.skipped();
    // Leaves the bus before saying it is done.
    drop(source);
    if args.lossless {
        eprintln!(
            "tail: {shown} messages shown ({undecodable} undecodable), lossless: none skipped"
        );
    } else {
        eprintln!("tail: {shown} messages shown ({undecodable} undecodable), {skipped} skipped");
    }
    Ok(())
}

/// The `--topic` patterns, parsed.
fn patterns(texts: &[String]) -> Result<Vec<Topic>, UsageError> {
    texts
        .iter()
        .map(|p| {
            Topic::parse(p)
                .map_err(|e| UsageError(format!("--topic {p:?} is not a valid topic: {e}")))
        })
        .collect()
}

/// What tail reads from, as `args` ask, said on stderr; with the bus a subscriber is on.
fn open(args: &Args) -> Result<(Option<shm_ring::Bus>, Source)> {
    let pid = std::process::id();
    if args.observe {
        // A read-only observer: tail takes no process-table row, so it works on a bus whose
        // table is full and leaves nothing behind if it is killed.
        let observer = shm_ring::observe(&args.name)?;
        eprintln!(
            "tailing bus {} as an observer: it sees only messages another subscriber still \
             holds in the ring and reports the rest as skipped (Ctrl-C to stop)",
            args.name
        );
        return Ok((None, Source::Observer(observer)));
    }
    let bus = shm_ring::Bus::open(&args.name)?;
    let subscriber = subscribe(&bus, &args.topic, !args.lossless)?;
    if args.lossless {
        eprintln!(
            "tailing bus {} losslessly as a subscriber (pid {pid}): every matching message is \
             shown, and publishers of the topics it wants wait while tail is a full ring behind \
             (Ctrl-C to stop)",
            args.name
        );
    } else {
        eprintln!(
            "tailing bus {} as a lossy subscriber (pid {pid}): every matching message is shown \
             while tail keeps up; it never holds publishers back, and says how many it missed \
             when it falls a full ring behind (Ctrl-C to stop)",
            args.name
        );
    }
    Ok((Some(bus), Source::Subscriber(subscriber)))
}

/// Prints what `source` reads (that `filter` accepts) until `stop` or `--count`, with a line
/// for what it skipped each time it skips; returns the messages shown and how many of them
/// were undecodable.
fn show(
    args: &Args,
    source: &mut Source,
    mut filter: Option<TopicFilter>,
    stop: &StopFlag,
    out: &mut dyn Write,
) -> Result<(u64, u64)> {
    let max_chars = if args.full { usize::MAX } else { 200 };
    let mut shown = 0u64;
    let mut skipped_reported = 0u64;
    let mut undecodable = 0u64;
    while !stop.is_set() && args.count.is_none_or(|n| shown < n) {
        let line = match source.recv()? {
            None => None,
            Some(m) if filter.as_mut().is_some_and(|f| !f.accepts(m.topic)) => None,
            Some(m) => Some(message_line(&m, args.json, max_chars)?),
        };
        let skipped = source.skipped();
        if skipped > skipped_reported {
            write_skipped(args, skipped - skipped_reported, out)?;
            skipped_reported = skipped;
        }
        if let Some((line, bad)) = line {
            undecodable += u64::from(bad);
            writeln!(out, "{line}")?;
            out.flush()?;
            shown += 1;
        }
    }
    Ok((shown, undecodable))
}

/// The line saying `n` messages were skipped, and why.
fn write_skipped(args: &Args, n: u64, out: &mut dyn Write) -> Result<()> {
    if args.json {
        writeln!(out, "{}", serde_json::json!({ "skipped": n }))?;
    } else if args.observe {
        writeln!(
            out,
            "-- skipped {n} messages (the bus moved on before tail read them)"
        )?;
    } else {
        writeln!(
            out,
            "-- skipped {n} messages (tail fell a full ring behind and publishers took them)"
        )?;
    }
    Ok(())
}
