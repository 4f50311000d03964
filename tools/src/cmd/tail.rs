//! `event-engine tail NAME`: print messages as they pass through a bus.
//!
//! Two ways to read. By default through a lossy observer: it copies messages while they sit in
//! the ring and never holds a publisher back, so a fast bus may move on before it looks; such
//! messages are counted as skipped and reported, never waited for. With `--lossless`, as a
//! fan-out subscriber wanting the topics asked for: every matching message, in order, at the
//! price of holding their publishers back when tail falls a full ring behind.

use crate::error::UsageError;
use crate::payload;
use crate::signals::StopFlag;
use crate::topic_filter::TopicFilter;
use anyhow::Result;
use engine_core::Topic;
use shm_ring::{Codec, Message, Observer, SubscribeOptions, Subscriber};
use std::io::Write;
use std::time::Duration;

/// How long one wait for a message lasts before the stop flag is looked at again.
const POLL: Duration = Duration::from_millis(100);

/// The long help of the subcommand (`event-engine tail --help`).
pub const LONG_ABOUT: &str = "Print messages as they pass through the bus, one line each: \
sequence number, topic, publisher pid, payload size and the arguments a Python handler would \
receive, as Python would write them: `(4242, 123.5, 'ZQXW', size=100)` for a compact or pickled \
call, `(b'...')` for a raw payload. A payload that cannot be decoded (an unknown codec, corrupt \
or hostile bytes, a pickle beyond the decoder's depth and size limits) is shown as the reason \
and the start of its bytes in hex, counted, and tail goes on. --topic (repeatable) keeps the \
messages whose topic matches one of the patterns.

By default tail reads as a lossy observer: it takes no process-table row and never holds \
publishers back, and it sees a message only while some subscriber still holds it in the ring. \
What it misses, counted and reported as skipped: every message of a bus with no subscriber \
attached (publishers then drop each message at once, so tail shows nothing); messages every \
subscriber acknowledged before tail reached them (most of the traffic on a busy bus whose \
subscribers keep up); messages whose slot was reused while being copied.

With --lossless, tail joins the bus as a fan-out subscriber wanting the --topic patterns \
(every topic without one) and shows every matching message published after it started, in \
order, on a bus with or without other subscribers. It misses nothing, but it is then a consumer \
like any other: when it falls a full ring behind (a slow terminal, output paused or piped into \
a pager), publishers of the topics it wants wait for it. It says so on stderr when it starts. \
On Ctrl-C or SIGTERM it leaves the bus; if it is killed (SIGKILL), blocked publishers reap it \
within a second, and `event-engine reap` does at once.

Either way it starts with the next message published and runs until Ctrl-C, or until -n \
messages were shown.

With --json, prints one JSON object per line: for a message {\"seq\": int, \"topic\": str, \
\"publisher_pid\": int, \"publisher_row\": int, \"timestamp_ns\": int, \"size\": int, \
\"codec\": \"raw\"|\"pickle\"|\"compact\"|\"codec-<n>\", \"payload\": str (the text described \
above), \"undecodable\": bool}, and (lossy mode only) \
{\"skipped\": int} each time messages were skipped since the previous line.";

/// Arguments of `tail`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Bus name.
    pub name: String,
    /// Only messages whose topic matches this pattern (topic grammar, e.g. 'md.{symbol}' or
    /// 'md.+symbol'); repeat for several.
    #[arg(long, value_name = "PATTERN")]
    pub topic: Vec<String>,
    /// See every matching message, in order, as a subscriber that may hold publishers back
    /// (default: a lossy observer that never does, and skips what it cannot keep up with).
    #[arg(long)]
    pub lossless: bool,
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
    /// `raw`, `pickle`, `compact` or `codec-<n>`.
    pub codec: String,
    /// The payload as text: its arguments, or why it could not be decoded.
    pub payload: String,
    /// Whether the payload could not be decoded.
    pub undecodable: bool,
}

fn codec_name(codec: u8) -> String {
    match codec {
        c if c == Codec::Raw as u8 => "raw".into(),
        c if c == Codec::Pickle as u8 => "pickle".into(),
        c if c == Codec::Compact as u8 => "compact".into(),
        c => format!("codec-{c}"),
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
    /// Lossy: no row, never waited for.
    Observer(Observer),
    /// Lossless: a fan-out subscriber wanting the patterns.
    Subscriber(Subscriber),
}

impl Source {
    /// Waits up to [`POLL`] for the next message.
    fn recv(&mut self) -> Result<Option<Message<'_>>, shm_ring::BusError> {
        match self {
            Source::Observer(o) => o.recv(Some(POLL)),
            Source::Subscriber(s) => s.recv(Some(POLL)),
        }
    }

    /// Messages missed so far (always 0 for a subscriber).
    fn skipped(&self) -> u64 {
        match self {
            Source::Observer(o) => o.skipped(),
            Source::Subscriber(_) => 0,
        }
    }
}

/// Tails the bus.
pub fn run(args: &Args, out: &mut dyn Write) -> Result<()> {
    let patterns = args
        .topic
        .iter()
        .map(|p| {
            Topic::parse(p)
                .map_err(|e| UsageError(format!("--topic {p:?} is not a valid topic: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut filter = (!patterns.is_empty()).then(|| TopicFilter::new(patterns));
    let stop = StopFlag::install()?;
    // Kept alive for as long as the subscriber reads: the subscriber leaves the bus (gives its
    // row and consumer entry back) when it is dropped, on every way out of this function.
    let bus;
    let mut source = if args.lossless {
        bus = shm_ring::Bus::open(&args.name)?;
        let topics = (!args.topic.is_empty()).then(|| args.topic.clone());
        let subscriber = bus.subscribe_with(&SubscribeOptions {
            topics,
            ..SubscribeOptions::default()
        })?;
        eprintln!(
            "tailing bus {} losslessly as a subscriber (pid {}): every matching message is \
             shown, and publishers of the topics it wants wait while tail is a full ring behind \
             (Ctrl-C to stop)",
            args.name,
            std::process::id()
        );
        Source::Subscriber(subscriber)
    } else {
        // A read-only observer: tail takes no process-table row, so it works on a bus whose
        // table is full and leaves nothing behind if it is killed.
        let observer = shm_ring::observe(&args.name)?;
        eprintln!(
            "tailing bus {} (Ctrl-C to stop; skipped messages are reported; --lossless sees \
             every message but may hold publishers back)",
            args.name
        );
        Source::Observer(observer)
    };
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
            let n = skipped - skipped_reported;
            if args.json {
                writeln!(out, "{}", serde_json::json!({ "skipped": n }))?;
            } else {
                writeln!(
                    out,
                    "-- skipped {n} messages (the bus moved on before tail read them)"
                )?;
            }
            skipped_reported = skipped;
        }
        if let Some((line, bad)) = line {
            undecodable += u64::from(bad);
            writeln!(out, "{line}")?;
            out.flush()?;
            shown += 1;
        }
    }
    out.flush()?;
    match source {
        Source::Observer(o) => eprintln!(
            "tail: {shown} messages shown ({undecodable} undecodable), {} skipped",
            o.skipped()
        ),
        Source::Subscriber(s) => {
            drop(s);
            eprintln!(
                "tail: {shown} messages shown ({undecodable} undecodable), lossless: none skipped"
            )
        }
    }
    Ok(())
}
