//! End-to-end flow control between bridges over core NATS, which has no backpressure from a
//! subscriber to a publisher.
//!
//! Every exported message carries a serial number, one sequence per exporting bridge across
//! all its subjects (header `Event-Engine-Serial`). Each importing bridge tells every exporter
//! it hears from how far it has got: on `_EVENT_ENGINE.ack.<exporter id>` it publishes the
//! highest serial of that exporter it has put on its bus (or filtered out), its own import
//! subjects, and an epoch that moves whenever it may have lost messages in flight (a reconnect,
//! or its NATS client dropping for a full buffer). It does so at once when an exporter's first
//! message arrives, then after at most [`ACK_EVERY`] of that exporter's messages or
//! [`ACK_INTERVAL`], whichever comes first, and every
//! [`HEARTBEAT`] even without progress, so that a slow importer is told from a dead one.
//!
//! The exporter ([`Window`]) keeps, per importer it has heard from, the serials it has sent on
//! a subject that importer subscribes to and that the importer has not acknowledged yet. When
//! one importer owes a full window of them, the exporter takes no more messages from its bus:
//! its export queue fills, its bus subscriber stops reading, and the bus holds its publishers
//! back as it would for a slow local subscriber. An importer silent for `--ack-timeout` while
//! the exporter waits for it is forgotten (counted, and said on stderr), so a dead importer
//! never holds an exporter for good; one that leaves says so and is forgotten at once; a new
//! one counts from its first acknowledgement. After a reconnect of either side the messages
//! then in flight may be lost and will never be acknowledged: they are forgiven (the exporter
//! stops waiting for them), and the importer counts what was lost from the sequence gaps.

use crate::cmd::bridge::stats::Counters;
use async_nats::{HeaderMap, HeaderValue};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Subjects under this prefix are the bridges' own: never imported onto a bus, never exported.
pub const CONTROL_PREFIX: &str = "_EVENT_ENGINE.";
/// Header of an acknowledgement: the highest serial the importer has put on its bus.
pub const ACKED: &str = "Event-Engine-Acked";
/// Header of an acknowledgement: the importer's epoch (see the module documentation).
pub const EPOCH: &str = "Event-Engine-Epoch";
/// Header of an acknowledgement sent by an importer that stops: forget it now.
pub const LEAVING: &str = "Event-Engine-Leaving";

/// An importer acknowledges an exporter after this many of its messages at most...
pub const ACK_EVERY: u64 = 256;
/// ... or this long after the first one not acknowledged yet, whichever comes first.
pub const ACK_INTERVAL: Duration = Duration::from_millis(5);
/// An importer repeats its acknowledgement this often even without progress: a sign of life.
pub const HEARTBEAT: Duration = Duration::from_millis(250);
/// An importer stops acknowledging an exporter not heard from for this long.
const EXPORTER_SILENCE: Duration = Duration::from_secs(3600);
/// Most importers an exporter keeps (past it, new ones are not waited for).
const MAX_IMPORTERS: usize = 1024;
/// Most exporters an importer acknowledges (past it, new ones are not acknowledged).
const MAX_EXPORTERS: usize = 4096;
/// Subjects whose "does this importer subscribe to it" answer an exporter caches per importer.
const WANTS_CACHE: usize = 65_536;

/// The subject an exporter with id `exporter` receives its acknowledgements on.
pub fn ack_subject(exporter: &str) -> String {
    format!("{CONTROL_PREFIX}ack.{exporter}")
}

/// Whether `subject` is one of the bridges' control subjects.
pub fn is_control(subject: &str) -> bool {
    subject.starts_with(CONTROL_PREFIX)
}

/// An acknowledgement, as it travels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// The importing bridge's id.
    pub importer: String,
    /// The highest serial of the exporter the importer has put on its bus.
    pub acked: u64,
    /// The importer's epoch.
    pub epoch: u64,
    /// The importer stops.
    pub leaving: bool,
    /// The importer's subscription subjects (NATS syntax, `*` and `>` allowed).
    pub subjects: Vec<String>,
}

impl Ack {
    /// Headers and body of the acknowledgement.
    pub fn encode(&self) -> (HeaderMap, bytes::Bytes) {
        let mut h = HeaderMap::new();
        h.insert(
            crate::cmd::bridge::nats_side::ORIGIN,
            self.importer.as_str(),
        );
        h.insert(ACKED, HeaderValue::from(self.acked));
        h.insert(EPOCH, HeaderValue::from(self.epoch));
        if self.leaving {
            h.insert(LEAVING, "1");
        }
        (h, self.subjects.join(" ").into())
    }

    /// Reads an acknowledgement; `None` for anything else (headers are untrusted).
    pub fn decode(headers: Option<&HeaderMap>, body: &[u8]) -> Option<Ack> {
        let h = headers?;
        let number = |name: &str| h.get(name)?.as_str().parse::<u64>().ok();
        let subjects = std::str::from_utf8(body).ok()?;
        Some(Ack {
            importer: h
                .get(crate::cmd::bridge::nats_side::ORIGIN)?
                .as_str()
                .to_string(),
            acked: number(ACKED)?,
            epoch: number(EPOCH)?,
            leaving: h.get(LEAVING).is_some(),
            subjects: subjects.split_whitespace().map(str::to_string).collect(),
        })
    }
}

/// Whether the subscription subject `pattern` (tokens, `*` one token, `>` the rest) covers
/// `subject`.
fn covers(pattern: &[String], subject: &str) -> bool {
    let mut tokens = subject.split('.');
    for p in pattern {
        if p == ">" {
            return tokens.next().is_some();
        }
        match tokens.next() {
            Some(t) if p == "*" || p == t => {}
            _ => return false,
        }
    }
    tokens.next().is_none()
}

/// What an exporter knows of one importer.
struct Importer {
    /// Its subscription subjects, split into tokens.
    subjects: Vec<Vec<String>>,
    /// The body they came in, to parse them again only when they change.
    subjects_text: Vec<String>,
    /// Whether it subscribes to a subject, per subject seen.
    wants: HashMap<String, bool>,
    /// Serials sent on a subject it subscribes to and not acknowledged yet, oldest first.
    owed: VecDeque<u64>,
    /// Its epoch when last heard from.
    epoch: u64,
    /// When it was last heard from.
    heard: Instant,
}

impl Importer {
    fn wants(&mut self, subject: &str) -> bool {
        if let Some(&w) = self.wants.get(subject) {
            return w;
        }
        if self.wants.len() >= WANTS_CACHE {
            self.wants.clear();
        }
        let w = self.subjects.iter().any(|p| covers(p, subject));
        self.wants.insert(subject.to_string(), w);
        w
    }

    fn set_subjects(&mut self, subjects: Vec<String>) {
        if subjects != self.subjects_text {
            self.subjects = subjects
                .iter()
                .map(|s| s.split('.').map(str::to_string).collect())
                .collect();
            self.subjects_text = subjects;
            self.wants.clear();
        }
    }
}

/// What [`Window::ack`] changed about the importers.
#[derive(Debug, PartialEq, Eq)]
pub enum Heard {
    /// An importer acknowledged for the first time: it counts from now.
    Joined,
    /// A known importer acknowledged.
    Known,
    /// An importer said it leaves and was forgotten.
    Left,
    /// A new importer past [`MAX_IMPORTERS`], or a leaving one not known: nothing changed.
    Ignored,
}

/// The exporter's side: how many messages each importer owes, and whether more may be sent.
pub struct Window {
    /// Most messages one importer may owe; 0: no flow control.
    size: usize,
    /// How long an importer owing a full window may stay silent while this bridge waits.
    timeout: Duration,
    importers: HashMap<String, Importer>,
    /// Since when no message may be sent (an importer owes a full window), if so.
    waiting_since: Option<Instant>,
}

impl Window {
    /// A window of `size` messages per importer (0: never wait), forgetting an importer silent
    /// for `timeout` while waited for.
    pub fn new(size: usize, timeout: Duration) -> Window {
        Window {
            size,
            timeout,
            importers: HashMap::new(),
            waiting_since: None,
        }
    }

    /// Whether a message may be sent now: no importer owes a full window. Also notes when a
    /// wait begins and ends; true in `.1` when a wait began with this call.
    pub fn credit(&mut self, now: Instant) -> (bool, bool) {
        let open = self.size == 0 || self.importers.values().all(|i| i.owed.len() < self.size);
        match (open, self.waiting_since) {
            (true, _) => {
                self.waiting_since = None;
                (true, false)
            }
            (false, None) => {
                self.waiting_since = Some(now);
                (false, true)
            }
            (false, Some(_)) => (false, false),
        }
    }

    /// Notes that message `serial` was handed to NATS on `subject`.
    pub fn sent(&mut self, subject: &str, serial: u64) {
        if self.size == 0 {
            return;
        }
        for importer in self.importers.values_mut() {
            if importer.wants(subject) {
                importer.owed.push_back(serial);
            }
        }
    }

    /// Takes in an acknowledgement.
    pub fn ack(&mut self, ack: Ack, now: Instant) -> Heard {
        if ack.leaving {
            return match self.importers.remove(&ack.importer) {
                Some(_) => Heard::Left,
                None => Heard::Ignored,
            };
        }
        let known = self.importers.len();
        match self.importers.get_mut(&ack.importer) {
            Some(importer) => {
                if ack.epoch != importer.epoch {
                    // It may have lost what was in flight: that will never be acknowledged.
                    importer.owed.clear();
                    importer.epoch = ack.epoch;
                }
                importer.heard = now;
                importer.set_subjects(ack.subjects);
                while importer.owed.front().is_some_and(|&s| s <= ack.acked) {
                    importer.owed.pop_front();
                }
                Heard::Known
            }
            None if known >= MAX_IMPORTERS => Heard::Ignored,
            None => {
                let mut importer = Importer {
                    subjects: Vec::new(),
                    subjects_text: Vec::new(),
                    wants: HashMap::new(),
                    owed: VecDeque::new(),
                    epoch: ack.epoch,
                    heard: now,
                };
                importer.set_subjects(ack.subjects);
                self.importers.insert(ack.importer, importer);
                Heard::Joined
            }
        }
    }

    /// After this bridge reconnected: what was in flight may be lost and is forgiven.
    pub fn forgive_all(&mut self) {
        for importer in self.importers.values_mut() {
            importer.owed.clear();
        }
    }

    /// While waiting, forgets every importer that owes a full window and has been silent for the
    /// timeout since it was last heard from or since the wait began, whichever is later; returns
    /// their ids and how long each was silent.
    pub fn forget_silent(&mut self, now: Instant) -> Vec<(String, Duration)> {
        let Some(since) = self.waiting_since else {
            return Vec::new();
        };
        let (size, timeout) = (self.size, self.timeout);
        let silent: Vec<(String, Duration)> = self
            .importers
            .iter()
            .filter(|(_, i)| i.owed.len() >= size)
            .filter(|(_, i)| now.saturating_duration_since(i.heard.max(since)) >= timeout)
            .map(|(id, i)| (id.clone(), now.saturating_duration_since(i.heard)))
            .collect();
        for (id, _) in &silent {
            self.importers.remove(id);
        }
        silent
    }

    /// The importers that owe a full window now.
    pub fn holding(&self) -> Vec<&str> {
        self.importers
            .iter()
            .filter(|(_, i)| self.size > 0 && i.owed.len() >= self.size)
            .map(|(id, _)| id.as_str())
            .collect()
    }
}

/// The importer's side: per exporter, the highest serial put on the bus and what was last
/// acknowledged. The import thread notes progress; the acknowledging task reads it.
#[derive(Default)]
pub struct Progress {
    exporters: Mutex<HashMap<String, Exporter>>,
    /// Wakes the acknowledging task when an exporter is [`ACK_EVERY`] messages ahead.
    pub wake: tokio::sync::Notify,
}

struct Exporter {
    /// Highest serial put on the bus (or filtered out).
    done: u64,
    /// What the last acknowledgement said.
    acked: u64,
    /// When the last acknowledgement was sent.
    acked_at: Instant,
    /// When a message of this exporter was last done.
    heard: Instant,
}

impl Progress {
    /// Notes that a message of `exporter` has arrived from NATS. The first one makes this
    /// importer acknowledge at once (nothing done yet), so that the exporter counts what it
    /// sends from then on even while this bridge's bus is full.
    pub fn seen(&self, exporter: &str) {
        let mut table = self.exporters.lock().unwrap_or_else(|e| e.into_inner());
        if table.contains_key(exporter) || table.len() >= MAX_EXPORTERS {
            return;
        }
        let now = Instant::now();
        table.insert(
            exporter.to_string(),
            Exporter {
                done: 0,
                acked: 0,
                acked_at: now.checked_sub(HEARTBEAT).unwrap_or(now),
                heard: now,
            },
        );
        drop(table);
        self.wake.notify_one();
    }

    /// Notes that the message numbered `serial` by `exporter` is on the bus (or was filtered
    /// out or refused: in any case, no longer held here).
    pub fn done(&self, exporter: &str, serial: u64) {
        let now = Instant::now();
        let mut table = self.exporters.lock().unwrap_or_else(|e| e.into_inner());
        let known = table.len();
        let wake = match table.get_mut(exporter) {
            Some(e) => {
                e.done = e.done.max(serial);
                e.heard = now;
                e.done.saturating_sub(e.acked) >= ACK_EVERY
            }
            None if known >= MAX_EXPORTERS => false,
            None => {
                table.insert(
                    exporter.to_string(),
                    Exporter {
                        done: serial,
                        acked: 0,
                        // Acknowledged at the next interval at the latest.
                        acked_at: now.checked_sub(HEARTBEAT).unwrap_or(now),
                        heard: now,
                    },
                );
                true
            }
        };
        drop(table);
        if wake {
            self.wake.notify_one();
        }
    }

    /// The acknowledgements due now, as (exporter, highest serial done): those with progress not
    /// yet acknowledged, and every exporter not acknowledged for a [`HEARTBEAT`]. With
    /// `all`, every exporter (a last acknowledgement before leaving).
    pub fn due(&self, now: Instant, all: bool) -> Vec<(String, u64)> {
        let mut table = self.exporters.lock().unwrap_or_else(|e| e.into_inner());
        table.retain(|_, e| now.saturating_duration_since(e.heard) < EXPORTER_SILENCE);
        table
            .iter_mut()
            .filter(|(_, e)| {
                all || e.done > e.acked || now.saturating_duration_since(e.acked_at) >= HEARTBEAT
            })
            .map(|(id, e)| {
                e.acked = e.done;
                e.acked_at = now;
                (id.clone(), e.done)
            })
            .collect()
    }
}

/// This bridge's epoch as an importer: it moves whenever messages in flight to it may have been
/// lost (a reconnect, or its client dropping for a full buffer).
pub fn epoch(counters: &Counters) -> u64 {
    let get = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    get(&counters.reconnects) + get(&counters.overflows)
}

/// Acknowledges to each exporter what this bridge has put on its bus (see `flow`), until
/// aborted.
pub async fn acknowledge(
    client: async_nats::Client,
    id: String,
    subjects: Vec<String>,
    progress: Arc<Progress>,
    counters: Arc<Counters>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(ACK_INTERVAL) => {}
            _ = progress.wake.notified() => {}
        }
        let epoch = epoch(&counters);
        for (exporter, acked) in progress.due(Instant::now(), false) {
            let ack = Ack {
                importer: id.clone(),
                acked,
                epoch,
                leaving: false,
                subjects: subjects.clone(),
            };
            let (headers, body) = ack.encode();
            // Lost only with the connection; the next one (a heartbeat at the latest) repeats it.
            let _ = client
                .publish_with_headers(ack_subject(&exporter), headers, body)
                .await;
        }
    }
}

/// Tells every exporter this bridge has acknowledged that it leaves, and waits until the server
/// has it.
pub async fn leave(
    client: &async_nats::Client,
    id: &str,
    progress: &Progress,
    counters: &Counters,
) -> Result<(), async_nats::client::FlushError> {
    let epoch = epoch(counters);
    for (exporter, acked) in progress.due(Instant::now(), true) {
        let ack = Ack {
            importer: id.to_string(),
            acked,
            epoch,
            leaving: true,
            subjects: Vec::new(),
        };
        let (headers, body) = ack.encode();
        let _ = client
            .publish_with_headers(ack_subject(&exporter), headers, body)
            .await;
    }
    client.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(importer: &str, acked: u64, subjects: &[&str]) -> Ack {
        Ack {
            importer: importer.into(),
            acked,
            epoch: 0,
            leaving: false,
            subjects: subjects.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn subscription_subjects_cover_what_nats_would_deliver() {
        let t = |s: &str| s.split('.').map(str::to_string).collect::<Vec<_>>();
        assert!(covers(&t("Md.*"), "Md.X"));
        assert!(!covers(&t("Md.*"), "Md.X.Y"));
        assert!(!covers(&t("Md.*"), "Md"));
        assert!(covers(&t("Md.>"), "Md.X.Y"));
        assert!(!covers(&t("Md.>"), "Md"));
        assert!(covers(&t("a.b"), "a.b"));
        assert!(!covers(&t("a.b"), "a.c"));
    }

    #[test]
    fn an_acknowledgement_round_trips() {
        let mut a = ack("imp-1", 42, &["Md.*", "Orders.X"]);
        a.epoch = 3;
        a.leaving = true;
        let (h, body) = a.encode();
        assert_eq!(Ack::decode(Some(&h), &body), Some(a));
        assert_eq!(Ack::decode(None, b""), None);
        let mut bad = HeaderMap::new();
        bad.insert(ACKED, "x");
        assert_eq!(Ack::decode(Some(&bad), b""), None);
    }

    #[test]
    fn the_window_holds_for_the_slowest_importer_of_each_subject() {
        let now = Instant::now();
        let mut w = Window::new(3, Duration::from_secs(5));
        assert_eq!(w.credit(now), (true, false)); // nobody heard from: no limit
        assert_eq!(w.ack(ack("b", 0, &["Md.*"]), now), Heard::Joined);
        assert_eq!(w.ack(ack("c", 0, &["Orders.*"]), now), Heard::Joined);
        for serial in 1..=3 {
            w.sent("Md.X", serial);
        }
        // c does not subscribe to Md.X: only b owes them.
        assert_eq!(w.holding(), ["b"]);
        assert_eq!(w.credit(now), (false, true));
        assert_eq!(w.credit(now), (false, false)); // the same wait
        assert_eq!(w.ack(ack("b", 2, &["Md.*"]), now), Heard::Known);
        assert_eq!(w.credit(now), (true, false));
        w.sent("Orders.Y", 4);
        w.sent("Orders.Y", 5);
        w.sent("Orders.Y", 6);
        assert_eq!(w.holding(), ["c"]);
        // A leaving importer is forgotten at once.
        let mut bye = ack("c", 4, &[]);
        bye.leaving = true;
        assert_eq!(w.ack(bye, now), Heard::Left);
        assert_eq!(w.credit(now), (true, false));
        // A new epoch forgives what was in flight.
        w.sent("Md.X", 7);
        w.sent("Md.X", 8);
        assert!(w.holding().contains(&"b"));
        let mut again = ack("b", 2, &["Md.*"]);
        again.epoch = 1;
        w.ack(again, now);
        assert!(w.holding().is_empty());
        // Size 0: never waits.
        let mut off = Window::new(0, Duration::from_secs(5));
        off.ack(ack("b", 0, &["Md.*"]), now);
        off.sent("Md.X", 1);
        assert_eq!(off.credit(now), (true, false));
    }

    #[test]
    fn only_an_importer_silent_for_the_timeout_while_waited_for_is_forgotten() {
        let t0 = Instant::now();
        let timeout = Duration::from_secs(5);
        let mut w = Window::new(1, timeout);
        w.ack(ack("slow", 0, &["Md.*"]), t0);
        w.ack(ack("dead", 0, &["Md.*"]), t0);
        // Long silence before any wait does not count.
        let t1 = t0 + 3 * timeout;
        assert!(w.forget_silent(t1).is_empty());
        w.sent("Md.X", 1);
        assert_eq!(w.credit(t1), (false, true));
        assert!(w.forget_silent(t1 + timeout / 2).is_empty());
        // The slow one keeps sending signs of life without progress.
        w.ack(ack("slow", 0, &["Md.*"]), t1 + timeout / 2);
        let gone = w.forget_silent(t1 + timeout);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].0, "dead");
        assert_eq!(w.holding(), ["slow"]);
        // A reconnect forgives everything in flight.
        w.forgive_all();
        assert_eq!(w.credit(t1 + timeout), (true, false));
    }

    #[test]
    fn an_importer_acknowledges_progress_and_signs_of_life() {
        let p = Progress::default();
        let t0 = Instant::now();
        assert!(p.due(t0, false).is_empty());
        // The first message seen is acknowledged at once, before any is done.
        p.seen("x");
        assert_eq!(p.due(Instant::now(), false), [("x".to_string(), 0)]);
        p.seen("x");
        assert!(p.due(Instant::now(), false).is_empty());
        p.done("x", 5);
        p.done("x", 7);
        assert_eq!(p.due(Instant::now(), false), [("x".to_string(), 7)]);
        assert!(p.due(Instant::now(), false).is_empty());
        // A heartbeat repeats the last acknowledgement.
        assert_eq!(
            p.due(Instant::now() + HEARTBEAT, false),
            [("x".to_string(), 7)]
        );
        assert_eq!(p.due(Instant::now(), true), [("x".to_string(), 7)]);
    }
}
