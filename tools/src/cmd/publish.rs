//! `event-engine publish NAME TOPIC [ARGS_JSON]`: publish messages from the shell, as a Python
//! `put(topic, *args, **kwargs)` would (or a raw-bytes payload with `--raw`).

use crate::error::UsageError;
use crate::jsonargs;
use crate::signals::StopFlag;
use anyhow::Result;
use engine_core::Topic;
use shm_ring::{Bus, BusError, Codec, PyValue};
use std::io::Write;
use std::time::{Duration, Instant};

/// How long one attempt to publish into a full bus lasts before the stop flag is looked at again.
const ATTEMPT: Duration = Duration::from_millis(200);

/// The long help of the subcommand (`event-engine publish --help`).
pub const LONG_ABOUT: &str =
    "Publish messages on an exact topic (no wildcards, ranges or patterns).

ARGS_JSON gives the positional arguments Python handlers receive: a JSON array is the argument \
list ('[1, \"a\"]' calls handler(1, 'a')), any other JSON value is one argument. --kwargs gives \
keyword arguments as a JSON object. JSON null/true/false/numbers/strings/arrays/objects arrive as \
None/True/False/int or float/str/list/dict. --raw sends the text as a raw-bytes payload instead \
(handlers receive one bytes argument).

Waits while the bus is full (Ctrl-C stops). --count publishes that many copies, --rate spaces \
them at that many messages per second.";

/// Arguments of `publish`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Bus name.
    pub name: String,
    /// Exact topic, e.g. 'md.tick.AAPL'.
    pub topic: String,
    /// Positional arguments as JSON (an array is the argument list; anything else is one argument).
    #[arg(value_name = "ARGS_JSON", conflicts_with = "raw")]
    pub args_json: Option<String>,
    /// Keyword arguments as a JSON object.
    #[arg(long, value_name = "JSON", conflicts_with = "raw")]
    pub kwargs: Option<String>,
    /// Send TEXT as a raw-bytes payload instead of pickled arguments.
    #[arg(long, value_name = "TEXT")]
    pub raw: Option<String>,
    /// How many messages to publish.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub count: u64,
    /// Messages per second (default: as fast as the bus takes them).
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,
}

/// What one message carries.
enum Body {
    Raw(Vec<u8>),
    Call(Vec<PyValue>, Vec<(String, PyValue)>),
}

/// Checks the topic is one a message can be published on.
pub fn exact_topic(topic: &str) -> Result<(), UsageError> {
    if topic.is_empty() {
        return Err(UsageError("the topic is empty".into()));
    }
    let parsed = Topic::parse(topic)
        .map_err(|e| UsageError(format!("topic {topic:?} is not valid: {e}")))?;
    if !parsed.is_exact() {
        return Err(UsageError(format!(
            "topic {topic:?} is not exact: messages are published on literal topics such as \
             'md.tick.AAPL' (wildcards, ranges and patterns are for subscribing)"
        )));
    }
    Ok(())
}

fn body(args: &Args) -> Result<Body, UsageError> {
    if let Some(text) = &args.raw {
        return Ok(Body::Raw(text.as_bytes().to_vec()));
    }
    let usage = |e: jsonargs::ArgsError| UsageError(e.to_string());
    let positional = match &args.args_json {
        Some(text) => jsonargs::positional(text).map_err(usage)?,
        None => Vec::new(),
    };
    let keywords = match &args.kwargs {
        Some(text) => jsonargs::keywords(text).map_err(usage)?,
        None => Vec::new(),
    };
    Ok(Body::Call(positional, keywords))
}

/// Sleeps until `deadline`, returning early (false) if a stop is asked for.
fn sleep_until(deadline: Instant, stop: &StopFlag) -> bool {
    loop {
        if stop.is_set() {
            return false;
        }
        let now = Instant::now();
        if now >= deadline {
            return true;
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(100)));
    }
}

/// Publishes.
pub fn run(args: &Args, out: &mut dyn Write) -> Result<()> {
    exact_topic(&args.topic)?;
    if let Some(rate) = args.rate {
        check_rate(rate, args.count)?;
    }
    let body = body(args)?;
    let stop = StopFlag::install()?;
    let bus = Bus::open(&args.name)?;
    let mut publisher = bus.publisher()?;
    let sent = publish_all(args, &body, &mut publisher, &stop)?;
    report(args, &sent, out)
}

/// `--rate`: positive, and not so low that the last of `count` messages is due later than this
/// system can wait for.
fn check_rate(rate: f64, count: u64) -> Result<(), UsageError> {
    if !(rate.is_finite() && rate > 0.0) {
        return Err(UsageError(format!(
            "--rate must be a positive number, not {rate}"
        )));
    }
    // The last message is due (count - 1) / rate seconds after the start.
    let span = count.saturating_sub(1).max(1) as f64 / rate;
    let representable = Duration::try_from_secs_f64(span)
        .ok()
        .and_then(|d| Instant::now().checked_add(d))
        .is_some();
    if !representable {
        return Err(UsageError(format!(
            "--rate {rate:e} is too low: one message every {:.3e} s is longer than this \
             system can wait; use a rate of at least 1e-9 per second",
            1.0 / rate
        )));
    }
    Ok(())
}

/// What was published.
#[derive(Default)]
struct Sent {
    /// Messages published.
    count: u64,
    /// The first and last sequence numbers given (none when no subscriber wanted any).
    first_last: Option<(u64, u64)>,
    /// Messages no subscriber wanted.
    unrouted: u64,
}

/// Publishes `--count` messages of `body` (at `--rate` if given) until done or stopped.
fn publish_all(
    args: &Args,
    body: &Body,
    publisher: &mut shm_ring::Publisher,
    stop: &StopFlag,
) -> Result<Sent> {
    let kwargs: Vec<(&str, PyValue)> = match body {
        Body::Call(_, kw) => kw.iter().map(|(k, v)| (k.as_str(), v.clone())).collect(),
        Body::Raw(_) => Vec::new(),
    };
    let start = Instant::now();
    let mut sent = Sent::default();
    while sent.count < args.count {
        if let Some(rate) = args.rate {
            let due = start + Duration::from_secs_f64(sent.count as f64 / rate);
            if !sleep_until(due, stop) {
                break;
            }
        }
        let Some(seq) = publish_one(args, body, &kwargs, publisher, stop)? else {
            break;
        };
        match seq {
            Some(seq) => {
                sent.first_last = Some((sent.first_last.map_or(seq, |(f, _)| f), seq));
            }
            None => sent.unrouted += 1,
        }
        sent.count += 1;
    }
    Ok(sent)
}

/// Publishes one message, waiting while the bus is full: its sequence number (`None` inside
/// when no subscriber wanted it), or `None` when stopped first.
fn publish_one(
    args: &Args,
    body: &Body,
    kwargs: &[(&str, PyValue)],
    publisher: &mut shm_ring::Publisher,
    stop: &StopFlag,
) -> Result<Option<Option<u64>>> {
    loop {
        if stop.is_set() {
            return Ok(None);
        }
        let attempt = match body {
            Body::Raw(bytes) => publisher.publish(&args.topic, Codec::Raw, bytes, Some(ATTEMPT)),
            Body::Call(positional, _) => {
                publisher.publish_pickled(&args.topic, positional, kwargs, Some(ATTEMPT))
            }
        };
        match attempt {
            Ok(seq) => return Ok(Some(seq)),
            // The bus is full: keep waiting, but stay responsive to Ctrl-C.
            Err(BusError::Timeout) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Says what was published (and, on stderr, when nobody wanted it).
fn report(args: &Args, sent: &Sent, out: &mut dyn Write) -> Result<()> {
    let n = sent.count;
    let what = if n == 1 { "message" } else { "messages" };
    let (topic, name) = (&args.topic, &args.name);
    match sent.first_last {
        Some((f, l)) if f == l => writeln!(
            out,
            "published {n} {what} on {topic} to bus {name} (seq {f})"
        )?,
        Some((f, l)) => writeln!(
            out,
            "published {n} {what} on {topic} to bus {name} (seq {f}..={l})"
        )?,
        None if n > 0 => writeln!(
            out,
            "published {n} {what} on {topic} to bus {name}; no subscriber wanted them"
        )?,
        None => writeln!(out, "published nothing")?,
    }
    if sent.unrouted > 0 {
        // Not an error (publishing what nobody listens to is allowed), but rarely what was meant.
        eprintln!(
            "note: no subscriber on bus {name} wants {topic}: {} of these messages reached nobody",
            sent.unrouted
        );
    }
    if n < args.count {
        writeln!(out, "stopped before publishing all {} messages", args.count)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::exact_topic;

    #[test]
    fn only_exact_topics_are_published() {
        assert!(exact_topic("md.tick.AAPL").is_ok());
        for bad in ["md.{symbol}", "md.+symbol", "md.(a|b)", "md./x.*/", ""] {
            assert!(exact_topic(bad).is_err(), "{bad:?}");
        }
        let msg = exact_topic("md.{symbol}").unwrap_err().to_string();
        assert!(msg.contains("not exact"), "{msg}");
    }
}
