//! The bridge's side of NATS: connecting, the envelope a bus message travels in, the
//! subscriptions an import needs, and the sequence numbers that reveal what was lost.
//!
//! Envelope: the subject is the topic; the body is the payload, byte for byte; headers carry
//! the codec tag (absent: raw bytes, so any NATS client can feed a bus), the id of the bridge
//! that exported the message, a sequence number per (bridge, subject) starting at 1 (gaps in it
//! count what was lost), and a serial number per bridge across its subjects, also from 1 (what
//! importers acknowledge, see `flow`).
//! A bridge never imports a message that carries its own id (it also connects with `no_echo`),
//! and never exports what it imported (see `bus_side`), so several bridges on one server, each
//! importing and exporting the same pattern, carry every message across exactly once.

use crate::cmd::bridge::stats::Counters;
use anyhow::Context;
use async_nats::{ConnectOptions, Event, HeaderMap, HeaderValue, ServerAddr};
use futures_util::stream::SelectAll;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Header naming the bridge that exported the message.
pub const ORIGIN: &str = "Event-Engine-Origin";
/// Header holding the codec tag (decimal); absent means raw bytes.
pub const CODEC: &str = "Event-Engine-Codec";
/// Header holding the exporter's sequence number for this subject (decimal, from 1).
pub const SEQ: &str = "Event-Engine-Seq";
/// Header holding the exporter's serial number across all its subjects (decimal, from 1).
pub const SERIAL: &str = "Event-Engine-Serial";

/// (origin, subject) pairs whose last sequence number is remembered; past it the table restarts
/// (gaps are then not seen until each pair has been seen again).
const SEQ_TABLE: usize = 65_536;

/// Parses `--nats` (one URL, or several separated by commas).
pub fn parse_servers(text: &str) -> Result<Vec<ServerAddr>, String> {
    let servers = text
        .split(',')
        .map(str::trim)
        .map(|url| {
            url.parse::<ServerAddr>().map_err(|e| {
                format!("--nats {url:?} is not a NATS URL ({e}); write nats://HOST:PORT")
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if text.trim().is_empty() {
        return Err("--nats is empty; write nats://HOST:PORT".into());
    }
    Ok(servers)
}

/// Connects within `timeout`, counting each later reconnection in `counters`.
pub async fn connect(
    servers: Vec<ServerAddr>,
    name: &str,
    timeout: Duration,
    import_buffer: usize,
    counters: Arc<Counters>,
) -> anyhow::Result<async_nats::Client> {
    let shown = servers
        .iter()
        .map(|s| format!("{}:{}", s.host(), s.port()))
        .collect::<Vec<_>>()
        .join(",");
    let connected_once = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let slow_warned = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let options = ConnectOptions::new()
        .name(name)
        .no_echo()
        .connection_timeout(timeout)
        .subscription_capacity(import_buffer)
        .max_reconnects(None)
        // Back off to at most one attempt per 500 ms: a restarted server is found quickly.
        .reconnect_delay_callback(|attempts| Duration::from_millis((attempts as u64 * 50).min(500)))
        .event_callback(move |event| {
            let counters = counters.clone();
            let connected_once = connected_once.clone();
            let slow_warned = slow_warned.clone();
            async move {
                match event {
                    Event::Connected => {
                        if connected_once.swap(true, std::sync::atomic::Ordering::Relaxed) {
                            Counters::add(&counters.reconnects, 1);
                            eprintln!("event-engine bridge: reconnected to NATS");
                        }
                    }
                    Event::Disconnected => {
                        eprintln!("event-engine bridge: lost the NATS connection; reconnecting")
                    }
                    // Once per message dropped: said once, counted by the sequence gaps.
                    Event::SlowConsumer(_) => {
                        Counters::add(&counters.overflows, 1);
                        if !slow_warned.swap(true, std::sync::atomic::Ordering::Relaxed) {
                            eprintln!(
                                "event-engine bridge: the bus takes imported messages more \
                                 slowly than they arrive and --import-buffer is full (an \
                                 exporter without --window, or more exporters' windows than it \
                                 holds): messages are being lost (counted as dropped)"
                            )
                        }
                    }
                    other => eprintln!("event-engine bridge: NATS: {other}"),
                }
            }
        });
    match tokio::time::timeout(timeout, options.connect(servers)).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(e)) => Err(anyhow::anyhow!(
            "cannot connect to NATS at {shown}: {e} (is nats-server running there?)"
        )),
        Err(_) => Err(anyhow::anyhow!(
            "cannot connect to NATS at {shown}: no answer within {} s (is nats-server \
             running there? --connect-timeout gives more time)",
            timeout.as_secs_f64()
        )),
    }
}

/// Subscribes to `subjects` (see [`disjoint_subjects`]) and waits until the server has them.
pub async fn subscribe(
    client: &async_nats::Client,
    subjects: &[String],
) -> anyhow::Result<SelectAll<async_nats::Subscriber>> {
    let mut subscriptions = SelectAll::new();
    for s in subjects {
        let sub = client
            .subscribe(s.clone())
            .await
            .with_context(|| format!("subscribing to NATS subject {s}"))?;
        subscriptions.push(sub);
    }
    client.flush().await.context("reaching the NATS server")?;
    Ok(subscriptions)
}

/// The subjects to subscribe to for the import patterns' subjects (`*` for every non-exact
/// part): a subject another covers is left out, and two that overlap are merged into one with
/// `*` where they differ, so no message is delivered twice. The import filter then keeps
/// exactly what the patterns match.
pub fn disjoint_subjects(subjects: Vec<String>) -> Vec<String> {
    let tokens = |s: &str| s.split('.').map(str::to_string).collect::<Vec<_>>();
    let mut set: Vec<Vec<String>> = subjects.iter().map(|s| tokens(s)).collect();
    let overlap = |a: &[String], b: &[String]| {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y || x == "*" || y == "*")
    };
    // Each merge removes one subject, so this ends after at most `set.len()` merges.
    'merge: loop {
        for i in 0..set.len() {
            for j in i + 1..set.len() {
                if overlap(&set[i], &set[j]) {
                    let merged = set[i]
                        .iter()
                        .zip(&set[j])
                        .map(|(x, y)| if x == y { x.clone() } else { "*".to_string() })
                        .collect();
                    set[i] = merged;
                    set.remove(j);
                    continue 'merge;
                }
            }
        }
        break;
    }
    set.into_iter().map(|t| t.join(".")).collect()
}

/// The headers of an exported message.
pub fn headers(origin: &HeaderValue, codec: u8, seq: u64, serial: u64) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(ORIGIN, origin.clone());
    h.insert(CODEC, HeaderValue::from(codec as u64));
    h.insert(SEQ, HeaderValue::from(seq));
    h.insert(SERIAL, HeaderValue::from(serial));
    h
}

/// What the headers of a received message say.
#[derive(Debug, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// The exporting bridge, if a bridge exported it.
    pub origin: Option<&'a str>,
    /// The codec tag.
    pub codec: u8,
    /// The exporter's sequence number for the subject, if any.
    pub seq: Option<u64>,
    /// The exporter's serial number across its subjects, if any.
    pub serial: Option<u64>,
}

/// Reads the envelope of a received message; an error says which header is malformed.
pub fn envelope(headers: Option<&HeaderMap>) -> Result<Envelope<'_>, String> {
    let Some(h) = headers else {
        return Ok(Envelope {
            origin: None,
            codec: shm_ring::Codec::Raw as u8,
            seq: None,
            serial: None,
        });
    };
    let number = |name: &str| -> Result<Option<u64>, String> {
        h.get(name)
            .map(|v| {
                v.as_str()
                    .parse::<u64>()
                    .map_err(|_| format!("header {name} is {:?}, not a number", v.as_str()))
            })
            .transpose()
    };
    let codec = match number(CODEC)? {
        None => shm_ring::Codec::Raw as u8,
        Some(c) => {
            u8::try_from(c).map_err(|_| format!("header {CODEC} is {c}, not a codec tag"))?
        }
    };
    Ok(Envelope {
        origin: h.get(ORIGIN).map(|v| v.as_str()),
        codec,
        seq: number(SEQ)?,
        serial: number(SERIAL)?,
    })
}

/// Numbers exported messages per subject.
#[derive(Default)]
pub struct Numbering {
    next: HashMap<String, u64>,
}

impl Numbering {
    /// The next sequence number for `subject` (1 for its first message).
    pub fn next(&mut self, subject: &str) -> u64 {
        if let Some(n) = self.next.get_mut(subject) {
            *n += 1;
            return *n;
        }
        if self.next.len() >= SEQ_TABLE {
            // Importers see the restart as a new run of this bridge, not as a gap.
            self.next.clear();
        }
        self.next.insert(subject.to_string(), 1);
        1
    }
}

/// Remembers the last sequence number seen per (origin, subject) and counts the gaps.
#[derive(Default)]
pub struct GapCounter {
    /// origin -> subject -> last sequence number (nested so that a lookup allocates nothing).
    last: HashMap<String, HashMap<String, u64>>,
    /// Pairs held in `last`.
    pairs: usize,
}

impl GapCounter {
    /// How many messages from `origin` on `subject` were skipped before `seq`. A number at or
    /// below the last one means the exporter started again: nothing is counted.
    pub fn missed(&mut self, origin: &str, subject: &str, seq: u64) -> u64 {
        if let Some(last) = self.last.get_mut(origin).and_then(|m| m.get_mut(subject)) {
            let missed = seq.saturating_sub(*last).saturating_sub(1);
            *last = seq;
            return missed;
        }
        if self.pairs >= SEQ_TABLE {
            self.last.clear();
            self.pairs = 0;
        }
        self.last
            .entry(origin.to_string())
            .or_default()
            .insert(subject.to_string(), seq);
        self.pairs += 1;
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_subscriptions_are_merged_and_covered_ones_left_out() {
        let s = |v: &[&str]| disjoint_subjects(v.iter().map(|s| s.to_string()).collect());
        assert_eq!(s(&["a.*", "a.b"]), ["a.*"]);
        assert_eq!(s(&["a.*", "a.*"]), ["a.*"]);
        assert_eq!(s(&["a.*.c", "a.b.*"]), ["a.*.*"]);
        assert_eq!(s(&["a.b", "a.c", "a.b.c"]), ["a.b", "a.c", "a.b.c"]);
    }

    #[test]
    fn the_envelope_round_trips_and_bad_headers_are_named() {
        let origin = HeaderValue::from("bridge-1");
        let h = headers(&origin, 2, 7, 9);
        assert_eq!(
            envelope(Some(&h)).unwrap(),
            Envelope {
                origin: Some("bridge-1"),
                codec: 2,
                seq: Some(7),
                serial: Some(9),
            }
        );
        assert_eq!(envelope(None).unwrap().codec, 0);
        let mut bad = HeaderMap::new();
        bad.insert(CODEC, "300");
        assert!(envelope(Some(&bad))
            .unwrap_err()
            .contains("not a codec tag"));
        let mut bad = HeaderMap::new();
        bad.insert(SEQ, "x");
        assert!(envelope(Some(&bad)).unwrap_err().contains("not a number"));
    }

    #[test]
    fn gaps_are_counted_per_origin_and_subject() {
        let mut n = Numbering::default();
        assert_eq!((n.next("a"), n.next("a"), n.next("b")), (1, 2, 1));
        let mut g = GapCounter::default();
        assert_eq!(g.missed("x", "a", 1), 0);
        assert_eq!(g.missed("x", "a", 2), 0);
        assert_eq!(g.missed("x", "a", 5), 2);
        assert_eq!(g.missed("y", "a", 9), 0); // first seen: nothing to compare with
        assert_eq!(g.missed("x", "a", 1), 0); // the exporter started again
        assert_eq!(g.missed("x", "a", 2), 0);
    }
}
