//! The W4 coordinator: runs every workload and peer `runs` times (interleaved, so a noisy moment
//! hits all of them alike), checks each run delivered exactly what was sent, and prints the table.

use crate::child::RoleChild;
use crate::params::{Mode, RunParams};
use crate::report::SideReport;
use crate::stats::{Percentiles, Spread};
use anyhow::{bail, Result};
use shm_ring::Bus;
use std::fmt::Write as _;

/// Who carries the messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    /// This project's shared-memory bus, two processes, one message per publish.
    ShmRing,
    /// The bus with the publisher handing it runs of this many messages per `publish_many` call
    /// (throughput only: paced latency runs have one message to send at a time).
    ShmRingBatch(usize),
    /// `crossbeam_queue::ArrayQueue`, two threads of one process.
    Crossbeam,
    /// iceoryx2 publish-subscribe, two processes.
    Iceoryx2,
}

impl Peer {
    /// Label in the table.
    pub fn label(self) -> String {
        match self {
            Peer::ShmRing => "shm-ring (2 procs, 1 msg/publish)".into(),
            Peer::ShmRingBatch(n) => format!("shm-ring (2 procs, publish_many runs of {n})"),
            Peer::Crossbeam => "crossbeam ArrayQueue (2 threads)".into(),
            Peer::Iceoryx2 => "iceoryx2 pub-sub (2 procs)".into(),
        }
    }

    /// This project's bus, in either way of publishing (the rows that get ratios to the peers).
    fn is_bus(self) -> bool {
        matches!(self, Peer::ShmRing | Peer::ShmRingBatch(_))
    }
}

/// Settings of a whole benchmark.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Runs of each workload.
    pub runs: usize,
    /// Messages per throughput run.
    pub messages: u64,
    /// Messages per busy-poll latency run.
    pub latency_messages: u64,
    /// Messages per parked run (0 skips the parked workload).
    pub parked_messages: u64,
    /// Nanoseconds between paced sends.
    pub interval_ns: u64,
    /// Nanoseconds of pause before each parked send.
    pub pause_ns: u64,
    /// Topic the bus publishers use.
    pub topic: String,
    /// Peers measured besides the bus.
    pub peers: Vec<Peer>,
    /// Messages per `publish_many` call in the bus's batch throughput row; 0 leaves the row out.
    pub batch: usize,
}

/// One run's figures.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Messages per second from first send to last receive (throughput mode).
    pub rate: Option<f64>,
    /// One-way latency (latency modes).
    pub latency: Option<Percentiles>,
    /// Peak RSS of the publishing side (the only process for in-process peers).
    pub rss_pub: u64,
    /// Peak RSS of the subscribing side.
    pub rss_sub: u64,
    /// Messages received and checked.
    pub delivered: u64,
    /// Parked mode: sends that found the subscriber asleep.
    pub to_sleeper: Option<u64>,
    /// Bus runs: publishes that found the ring full and had to wait.
    pub full_waits: Option<u64>,
}

/// Removes a bus file when dropped, so an aborted run leaves nothing in /dev/shm.
pub struct BusFile(pub String);

impl Drop for BusFile {
    fn drop(&mut self) {
        let _ = Bus::unlink(&self.0);
    }
}

fn role_args(role: &str, extra: &[String], p: &RunParams) -> Vec<String> {
    let mut a = vec!["--role".to_string(), role.to_string()];
    a.extend_from_slice(extra);
    a.extend(p.to_args());
    a
}

fn combine(p: &RunParams, publ: SideReport, sub: SideReport) -> Result<Outcome> {
    if publ.messages != p.messages || sub.messages != p.messages {
        bail!(
            "sent {} and received {} messages, expected exactly {}",
            publ.messages,
            sub.messages,
            p.messages
        );
    }
    let rate = match (p.mode, publ.start_ns, sub.end_ns) {
        (Mode::Throughput, Some(s), Some(e)) if e > s => {
            Some(p.messages as f64 / ((e - s) as f64 / 1e9))
        }
        (Mode::Throughput, _, _) => bail!("a throughput run reported no usable times"),
        _ => None,
    };
    Ok(Outcome {
        rate,
        latency: sub.latency,
        rss_pub: publ.peak_rss,
        rss_sub: sub.peak_rss,
        delivered: sub.messages,
        to_sleeper: publ.sent_to_sleeper,
        full_waits: None,
    })
}

/// One run on the shared-memory bus.
pub fn run_shm(plan: &Plan, p: &RunParams, tag: &str) -> Result<Outcome> {
    let name = format!("w4-{}-{tag}", std::process::id());
    let file = BusFile(name.clone());
    let bus = Bus::create(&name, &crate::shm::bus_config())?;
    let extra = vec![
        "--bus".to_string(),
        name.clone(),
        "--topic".to_string(),
        plan.topic.clone(),
    ];
    let mut sub = RoleChild::spawn("shm-ring subscriber", &role_args("shm-sub", &extra, p))?;
    sub.expect("ready")?;
    let publ = RoleChild::spawn("shm-ring publisher", &role_args("shm-pub", &extra, p))?;
    let pr = publ.result()?;
    sub.expect("received")?;
    sub.send("check")?;
    let sr = sub.result()?;
    let full_waits = bus.snapshot().counters.full_waits;
    drop(bus);
    drop(file);
    let mut o = combine(p, pr, sr)?;
    o.full_waits = Some(full_waits);
    Ok(o)
}

/// One run of the crossbeam peer.
pub fn run_crossbeam(p: &RunParams) -> Result<Outcome> {
    let r = RoleChild::spawn("crossbeam", &role_args("crossbeam", &[], p))?.result()?;
    combine(p, r.clone(), r)
}

/// One run of the iceoryx2 peer: publisher first, then the subscriber, then the publisher checks
/// that it sees the subscriber before it sends anything (iceoryx2 drops samples sent earlier).
pub fn run_iceoryx2(p: &RunParams, tag: &str) -> Result<Outcome> {
    let service = format!("EventEngineBench/W4/{}/{tag}", std::process::id());
    let extra = vec![
        "--service".to_string(),
        service,
        "--iox-tag".to_string(),
        std::process::id().to_string(),
    ];
    let mut publ = RoleChild::spawn("iceoryx2 publisher", &role_args("ice-pub", &extra, p))?;
    publ.expect("ready")?;
    let mut sub = RoleChild::spawn("iceoryx2 subscriber", &role_args("ice-sub", &extra, p))?;
    sub.expect("ready")?;
    publ.send("go")?;
    let pr = publ.result()?;
    sub.expect("received")?;
    sub.send("check")?;
    let sr = sub.result()?;
    combine(p, pr, sr)
}

/// Runs `peer` once in `mode`.
pub fn run_one(plan: &Plan, peer: Peer, mode: Mode, run: usize) -> Result<Outcome> {
    let messages = match mode {
        Mode::Throughput => plan.messages,
        Mode::BusyPoll => plan.latency_messages,
        Mode::Parked => plan.parked_messages,
    };
    let p = RunParams {
        mode,
        messages,
        interval_ns: plan.interval_ns,
        pause_ns: plan.pause_ns,
        warmup: if mode == Mode::BusyPoll {
            (messages / 100).min(1000)
        } else {
            0
        },
        publish_run: match peer {
            Peer::ShmRingBatch(n) => n,
            _ => 0,
        },
    };
    let tag = format!("{run}-{}", mode.name());
    match peer {
        Peer::ShmRing => run_shm(plan, &p, &tag),
        Peer::ShmRingBatch(n) => run_shm(plan, &p, &format!("{tag}-run{n}")),
        Peer::Crossbeam => run_crossbeam(&p),
        Peer::Iceoryx2 => run_iceoryx2(&p, &tag),
    }
}

/// Every (peer, mode) pair the plan measures, in table order.
pub fn rows(plan: &Plan) -> Vec<(Peer, Mode)> {
    let mut v = Vec::new();
    let mut all = vec![Peer::ShmRing];
    if plan.batch > 0 {
        all.push(Peer::ShmRingBatch(plan.batch));
    }
    all.extend(plan.peers.iter().copied());
    for mode in [Mode::Throughput, Mode::BusyPoll, Mode::Parked] {
        for &peer in &all {
            let ok = match (peer, mode) {
                (Peer::ShmRingBatch(_), Mode::Throughput) => true,
                (Peer::ShmRingBatch(_), _) => false,
                (Peer::Crossbeam, Mode::Parked) => false,
                (_, Mode::Parked) => plan.parked_messages > 0,
                _ => true,
            };
            if ok {
                v.push((peer, mode));
            }
        }
    }
    v
}

/// Results of all runs of one row.
pub struct RowResult {
    /// Who.
    pub peer: Peer,
    /// What.
    pub mode: Mode,
    /// One outcome per run.
    pub runs: Vec<Outcome>,
}

impl RowResult {
    fn rate(&self) -> Option<Spread> {
        let v: Vec<f64> = self.runs.iter().filter_map(|o| o.rate).collect();
        Spread::of(&v)
    }

    fn pct(&self, f: impl Fn(&Percentiles) -> u64) -> Option<f64> {
        let v: Vec<f64> = self
            .runs
            .iter()
            .filter_map(|o| o.latency.as_ref().map(|l| f(l) as f64))
            .collect();
        Spread::of(&v).map(|s| s.median)
    }

    /// Lowest p50 latency of any run, in nanoseconds (the run least disturbed by other load).
    pub fn best_p50(&self) -> Option<f64> {
        self.runs
            .iter()
            .filter_map(|o| o.latency.as_ref().map(|l| l.p50 as f64))
            .reduce(f64::min)
    }

    /// Median over runs of the p50 latency, in nanoseconds.
    pub fn p50(&self) -> Option<f64> {
        self.pct(|l| l.p50)
    }
}

/// Median over runs of `a`'s rate divided by `b`'s rate in the same run: runs are interleaved,
/// so each pair saw the same machine state (this host has fast and slow phases that move every
/// peer alike).
fn paired_ratio(a: &RowResult, b: &RowResult) -> Option<f64> {
    let v: Vec<f64> = a
        .runs
        .iter()
        .zip(&b.runs)
        .filter_map(|(x, y)| Some(x.rate? / y.rate?))
        .collect();
    Spread::of(&v).map(|s| s.median)
}

fn fmt_rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2}M", r / 1e6)
    } else {
        format!("{:.0}k", r / 1e3)
    }
}

fn fmt_ns(ns: Option<f64>) -> String {
    match ns {
        Some(ns) if ns >= 10_000.0 => format!("{:.1} µs", ns / 1000.0),
        Some(ns) => format!("{:.2} µs", ns / 1000.0),
        None => "-".into(),
    }
}

/// The table: one row per (peer, mode), ratios of the bus to each peer in the same mode.
pub fn table(plan: &Plan, results: &[RowResult]) -> String {
    let mut out = String::new();
    let peers: Vec<Peer> = plan.peers.clone();
    let mut header = format!(
        "{:<60} {:>26} {:>9} {:>9} {:>9} {:>9}",
        "workload", "msg/s median (min–max)", "p50", "p99", "p99.9", "best p50"
    );
    for p in &peers {
        let short = match p {
            Peer::Crossbeam => "vs crossbeam",
            Peer::Iceoryx2 => "vs iceoryx2",
            Peer::ShmRing | Peer::ShmRingBatch(_) => "vs shm-ring",
        };
        let _ = write!(header, " {short:>15}");
    }
    let _ = write!(header, " {:>20} {:>12}", "peak RSS pub/sub", "checked");
    let _ = writeln!(out, "{header}");
    let _ = writeln!(out, "{}", "-".repeat(header.chars().count()));
    let find = |peer: Peer, mode: Mode| results.iter().find(|r| r.peer == peer && r.mode == mode);
    for r in results {
        let what = match r.mode {
            Mode::Throughput => "throughput",
            Mode::BusyPoll => "latency, busy-poll",
            Mode::Parked => "wake-up, parked",
        };
        let rate = r
            .rate()
            .map(|s| {
                format!(
                    "{} ({}–{})",
                    fmt_rate(s.median),
                    fmt_rate(s.min),
                    fmt_rate(s.max)
                )
            })
            .unwrap_or_else(|| "paced".into());
        let mut line = format!(
            "{:<60} {:>26} {:>9} {:>9} {:>9} {:>9}",
            format!("W4 {what}: {}", r.peer.label()),
            rate,
            fmt_ns(r.p50()),
            fmt_ns(r.pct(|l| l.p99)),
            fmt_ns(r.pct(|l| l.p999)),
            fmt_ns(r.best_p50()),
        );
        for &peer in &peers {
            let ratio = if !r.peer.is_bus() {
                None
            } else {
                find(peer, r.mode).and_then(|o| match r.mode {
                    Mode::Throughput => Some(format!("{:.2}x", paired_ratio(r, o)?)),
                    _ => Some(format!("{:.2}x p50", r.p50()? / o.p50()?)),
                })
            };
            let _ = write!(line, " {:>15}", ratio.unwrap_or_else(|| "-".into()));
        }
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        let rp = r.runs.iter().map(|o| o.rss_pub).max().unwrap_or(0);
        let rs = r.runs.iter().map(|o| o.rss_sub).max().unwrap_or(0);
        let rss = if r.peer == Peer::Crossbeam {
            format!("{:.1} MiB (1 proc)", mib(rp))
        } else {
            format!("{:.1} / {:.1} MiB", mib(rp), mib(rs))
        };
        let per = r.runs.first().map(|o| o.delivered).unwrap_or(0);
        let checked = format!("{}x{}", r.runs.len(), per);
        let _ = writeln!(line, " {rss:>20} {checked:>12}");
        out.push_str(&line);
    }
    let _ = writeln!(
        out,
        "\nmsg/s: messages over the time from the first send to the last receive, median of {} runs.",
        plan.runs
    );
    let _ = writeln!(
        out,
        "Latency: one-way, CLOCK_MONOTONIC in the payload; median over runs of each percentile; best p50 = lowest p50 of any run. \
         Ratios: throughput = median over runs of shm-ring / peer in the same run (>1 is faster); latency = shm-ring p50 / peer p50 (<1 is faster)."
    );
    let _ = writeln!(
        out,
        "checked: runs x messages, each run received exactly that many, in order, intact, nothing extra."
    );
    for r in results
        .iter()
        .filter(|r| r.peer.is_bus() && r.mode == Mode::Throughput)
    {
        let waits: Vec<String> = r
            .runs
            .iter()
            .filter_map(|o| o.full_waits.map(|w| w.to_string()))
            .collect();
        let _ = writeln!(
            out,
            "{} throughput runs: claims that found the ring full, per run: {}.",
            r.peer.label(),
            waits.join(", ")
        );
    }
    if plan.batch > 0 {
        let _ = writeln!(
            out,
            "publish_many runs of {n}: the publisher claims up to {n} free slots with one CAS and checks once per run whether a subscriber needs waking; \
             the subscriber receives and checks every message one by one as in the 1 msg/publish row. \
             The peers have no comparable call, so their rows stay one message per send: crossbeam's ArrayQueue has no batch push, \
             and an iceoryx2 sample is one message (a slice sample would be one message holding many payloads, not {n} messages). \
             Ratios of this row are to those one-per-send peers.",
            n = plan.batch
        );
    }
    if find(Peer::Iceoryx2, Mode::Parked).is_some() {
        let _ = writeln!(
            out,
            "iceoryx2 parked: the subscriber waits on an iceoryx2 event listener; the publisher notifies after each send."
        );
    }
    if let Some(r) = find(Peer::ShmRing, Mode::Parked) {
        let sent: u64 = r.runs.iter().map(|o| o.delivered).sum();
        let asleep: u64 = r.runs.iter().filter_map(|o| o.to_sleeper).sum();
        let _ = writeln!(
            out,
            "Parked: {asleep} of {sent} sends found the subscriber asleep on the futex (read from the bus before sending)."
        );
    }
    out.push_str(&targets(results));
    out
}

fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT met"
    }
}

/// The team's targets and whether this run met them.
fn targets(results: &[RowResult]) -> String {
    let find = |peer: Peer, mode: Mode| results.iter().find(|r| r.peer == peer && r.mode == mode);
    let mut out = String::from("\nTargets:\n");
    let mut line = |what: &str, got: Option<String>, ok: Option<&str>| {
        let verdict = ok.unwrap_or("not measured");
        let _ = writeln!(
            out,
            "  {what:<50} {:>14}  {verdict}",
            got.unwrap_or_else(|| "-".into())
        );
    };
    let thr = find(Peer::ShmRing, Mode::Throughput).and_then(|r| r.rate());
    line(
        ">= 20M msg/s one-to-one, 1 msg/publish",
        thr.map(|s| fmt_rate(s.median)),
        thr.map(|s| met(s.median >= 20e6)),
    );
    for r in results.iter().filter(|r| r.mode == Mode::Throughput) {
        if let Peer::ShmRingBatch(n) = r.peer {
            let thr = r.rate();
            line(
                &format!(">= 20M msg/s one-to-one, publish_many runs of {n}"),
                thr.map(|s| fmt_rate(s.median)),
                thr.map(|s| met(s.median >= 20e6)),
            );
        }
    }
    let busy = find(Peer::ShmRing, Mode::BusyPoll).and_then(|r| r.p50());
    line(
        "p50 < 1 µs busy-polling",
        busy.map(|v| fmt_ns(Some(v))),
        busy.map(|v| met(v < 1000.0)),
    );
    let parked = find(Peer::ShmRing, Mode::Parked).and_then(|r| r.p50());
    line(
        "parked wake-up p50 < 30 µs",
        parked.map(|v| fmt_ns(Some(v))),
        parked.map(|v| met(v < 30_000.0)),
    );
    let ratio = find(Peer::ShmRing, Mode::Throughput)
        .zip(find(Peer::Iceoryx2, Mode::Throughput))
        .and_then(|(a, b)| paired_ratio(a, b));
    line(
        "ahead of iceoryx2 on throughput",
        ratio.map(|x| format!("{x:.2}x")),
        ratio.map(|x| {
            if (0.95..=1.05).contains(&x) {
                "tie (within 5%)"
            } else {
                met(x > 1.05)
            }
        }),
    );
    out
}
