//! Stress runs of the bus protocol with real processes, for the figures the delivery promises
//! rest on (docs/delivery.md): nothing lost from a live publisher, nothing corrupt, and how long
//! the longest stall lasts.
//!
//! * `storm kill`: steady publishers, a steady fan-out monitor and a steady group member run
//!   throughout, while victims (publishers, fan-out subscribers and members of the group, all
//!   wanting every topic, and idle engines that want nothing) are SIGKILLed at random moments,
//!   at any instruction, and replaced.
//! * `storm churn`: the same steady roles, while victims join and leave in a loop (subscribe,
//!   take a few messages, drop the subscriber) on a small ring.
//!
//! Every payload carries its publisher, its sequence number and bytes derived from both, so a
//! reader detects a torn or misplaced message. The monitor checks that it receives every
//! message of every steady publisher, in order, from its first one on. At the end every process
//! leaves, a reap runs, and the bus must be idle (invariant 2).
//!
//! ```text
//! storm kill  [--seconds 30] [--ring 64] [--victims 6] [--seed N]
//! storm churn [--seconds 30] [--ring 8] [--victims 6] [--seed N]
//! ```

use anyhow::{anyhow, bail, Context, Result};
use shm_ring::{Bus, BusConfig, Codec, SubscribeOptions};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// Steady publishers (never killed).
const STEADY: u32 = 2;
/// Their topics' prefix; victims publish on `Storm.V<id>`.
const TOPIC: &str = "Storm";
const WAIT: Option<Duration> = Some(Duration::from_secs(60));
/// Group retention of the stress bus: short, so that the end of a run waits little for it.
const RETENTION_MS: u64 = 2_000;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--role") {
        return role(&args[1..]);
    }
    let opts = Opts::parse(&args)?;
    coordinate(&opts)
}

struct Opts {
    mode: Mode,
    seconds: u64,
    ring: u32,
    victims: u32,
    seed: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Kill,
    Churn,
}

impl Opts {
    fn parse(args: &[String]) -> Result<Opts> {
        let usage = "usage: storm kill|churn [--seconds S] [--ring SLOTS] [--victims N] [--seed N]";
        let mode = match args.first().map(String::as_str) {
            Some("kill") => Mode::Kill,
            Some("churn") => Mode::Churn,
            _ => bail!("{usage}"),
        };
        let mut o = Opts {
            mode,
            seconds: 30,
            ring: if mode == Mode::Kill { 64 } else { 8 },
            victims: 6,
            seed: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_nanos() as u64
                | 1,
        };
        let mut it = args[1..].iter();
        while let Some(flag) = it.next() {
            let value = it
                .next()
                .ok_or_else(|| anyhow!("{flag} needs a value; {usage}"))?;
            let n: u64 = value
                .parse()
                .with_context(|| format!("{flag} {value}: not a number; {usage}"))?;
            match flag.as_str() {
                "--seconds" => o.seconds = n,
                "--ring" => o.ring = u32::try_from(n)?,
                "--victims" => o.victims = u32::try_from(n)?,
                "--seed" => o.seed = n | 1,
                _ => bail!("unknown option {flag}; {usage}"),
            }
        }
        if !o.ring.is_power_of_two() || o.ring < 2 {
            bail!("--ring {}: a power of two, at least 2", o.ring);
        }
        Ok(o)
    }
}

/// A small xorshift generator; the seed is printed so that a run can be repeated.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

// ---------------------------------------------------------------------------------------------
// Payloads

/// `publisher id (u32) | seq (u64) | filler`, the filler bytes a function of both. Sizes vary
/// so that some messages travel inline in the slot and some in slab blocks.
fn payload(id: u32, seq: u64, buf: &mut Vec<u8>) {
    let len = 12 + (seq.wrapping_mul(2654435761) % 400) as usize;
    buf.clear();
    buf.extend_from_slice(&id.to_le_bytes());
    buf.extend_from_slice(&seq.to_le_bytes());
    for i in 12..len {
        buf.push(filler(id, seq, i));
    }
}

fn filler(id: u32, seq: u64, i: usize) -> u8 {
    (seq as u8) ^ (id as u8).wrapping_mul(31) ^ (i as u8).wrapping_mul(7)
}

/// The publisher and sequence number of a sound payload; `None` for a torn or foreign one.
fn check(p: &[u8]) -> Option<(u32, u64)> {
    if p.len() < 12 {
        return None;
    }
    let id = u32::from_le_bytes(p[..4].try_into().ok()?);
    let seq = u64::from_le_bytes(p[4..12].try_into().ok()?);
    let len = 12 + (seq.wrapping_mul(2654435761) % 400) as usize;
    (p.len() == len && (12..len).all(|i| p[i] == filler(id, seq, i))).then_some((id, seq))
}

// ---------------------------------------------------------------------------------------------
// Roles (child processes)

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// The coordinator's `stop` line, once it arrives (or stdin closes): a monitor's carries what
/// each steady publisher published (`stop 0:N 1:M`), so that it stops once it has them all.
type StopLine = std::sync::Arc<std::sync::Mutex<Option<String>>>;

fn stop_line() -> StopLine {
    let stop: StopLine = Default::default();
    let s = stop.clone();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        *s.lock().unwrap() = Some(line);
    });
    stop
}

/// What each steady publisher published, from a monitor's stop line.
fn totals(line: &str) -> HashMap<u32, u64> {
    line.split_whitespace()
        .skip(1)
        .filter_map(|kv| kv.split_once(':'))
        .filter_map(|(p, n)| Some((p.parse().ok()?, n.parse().ok()?)))
        .collect()
}

fn role(args: &[String]) -> Result<()> {
    let (kind, bus, id) = match args {
        [k, b, i] => (k.as_str(), b.as_str(), i.parse::<u32>()?),
        _ => bail!("--role KIND BUS ID"),
    };
    let bus = Bus::open(bus)?;
    let stop = stop_line();
    let stopped = || stop.lock().unwrap().is_some();
    match kind {
        // Publishes numbered messages until told to stop (or killed); reports how many and the
        // longest single publish.
        "publisher" => {
            let mut p = bus.publisher()?;
            let topic = if id < STEADY {
                format!("{TOPIC}.S{id}")
            } else {
                format!("{TOPIC}.V{id}")
            };
            let mut buf = Vec::new();
            let mut longest = Duration::ZERO;
            say("ready");
            let mut seq = 0u64;
            while !stopped() {
                payload(id, seq, &mut buf);
                let t = Instant::now();
                // A steady publisher's message goes to the monitor: it must go out.
                match p.publish(&topic, Codec::Raw, &buf, WAIT) {
                    Ok(_) => seq += 1,
                    Err(e) => bail!("publisher {id}: message {seq}: {e}"),
                }
                longest = longest.max(t.elapsed());
            }
            say(&format!(
                "report published={seq} longest_publish_us={}",
                longest.as_micros()
            ));
        }
        // Receives every topic, checks each payload and the order of each steady publisher.
        "monitor" | "subscriber" | "member" | "churn-member" => {
            let group = match kind {
                "member" => Some("storm".to_owned()),
                "churn-member" => Some("churn".to_owned()),
                _ => None,
            };
            let mut sub = bus.subscribe_with(&SubscribeOptions {
                group,
                topics: None,
                lossy: false,
            })?;
            say("ready");
            let mut next: HashMap<u32, u64> = HashMap::new();
            let (mut got, mut corrupt, mut gaps) = (0u64, 0u64, 0u64);
            let mut longest = Duration::ZERO;
            let mut last = Instant::now();
            // Until told to stop; a monitor then goes on until it has every steady message (or
            // for a minute at most, and its report shows what it is missing).
            let mut drain_until: Option<(HashMap<u32, u64>, Instant)> = None;
            loop {
                if drain_until.is_none() {
                    if let Some(line) = stop.lock().unwrap().as_deref() {
                        if kind != "monitor" {
                            break;
                        }
                        drain_until =
                            Some((totals(line), Instant::now() + Duration::from_secs(60)));
                    }
                }
                if let Some((want, until)) = &drain_until {
                    let done = want
                        .iter()
                        .all(|(p, n)| next.get(p).copied().unwrap_or(0) >= *n);
                    if done || Instant::now() > *until {
                        break;
                    }
                }
                let Some(m) = sub.recv(Some(Duration::from_millis(100)))? else {
                    continue;
                };
                let now = Instant::now();
                if drain_until.is_none() {
                    longest = longest.max(now - last);
                }
                let now = Instant::now();
                longest = longest.max(now - last);
                last = now;
                got += 1;
                match check(m.payload) {
                    None => {
                        corrupt += 1;
                        eprintln!(
                            "{kind} {id}: corrupt payload at position {} on {} ({} bytes)",
                            m.seq,
                            m.topic,
                            m.payload.len()
                        );
                    }
                    Some((p, seq)) if kind == "monitor" && p < STEADY => {
                        if let Some(want) = next.get(&p) {
                            if seq != *want {
                                gaps += 1;
                                eprintln!("monitor: publisher {p}: got {seq}, wanted {want}");
                            }
                        }
                        next.insert(p, seq + 1);
                    }
                    Some(_) => {}
                }
            }
            let first: Vec<String> = next.iter().map(|(p, n)| format!("{p}:{n}")).collect();
            say(&format!(
                "report received={got} corrupt={corrupt} gaps={gaps} longest_gap_us={} next={}",
                longest.as_micros(),
                first.join(",")
            ));
        }
        // What a Python engine that only publishes holds: a subscriber that wants nothing and
        // never receives. It must never be addressed, so it never holds a publisher back.
        "idle" => {
            let _sub = bus.subscribe_with(&SubscribeOptions {
                group: None,
                topics: Some(Vec::new()),
                lossy: false,
            })?;
            let mut p = bus.publisher()?;
            let mut buf = Vec::new();
            payload(id, 0, &mut buf);
            p.publish(&format!("{TOPIC}.V{id}"), Codec::Raw, &buf, WAIT)?;
            say("ready");
            while !stopped() {
                std::thread::sleep(Duration::from_millis(10));
            }
            say("report");
        }
        // Joins and leaves in a loop: subscribe, take up to a few messages, drop.
        "churner" => {
            say("ready");
            let mut rounds = 0u64;
            let mut corrupt = 0u64;
            let mut n = u64::from(id);
            while !stopped() {
                let mut sub = bus.subscribe_with(&SubscribeOptions {
                    group: (n % 3 == 0).then(|| "churn".to_owned()),
                    topics: None,
                    lossy: n % 3 != 0 && n % 5 == 0,
                })?;
                for _ in 0..(n % 7) {
                    match sub.recv(Some(Duration::from_millis(5)))? {
                        Some(m) if check(m.payload).is_none() => corrupt += 1,
                        _ => {}
                    }
                }
                drop(sub);
                rounds += 1;
                n = n
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407)
                    >> 1;
            }
            say(&format!("report rounds={rounds} corrupt={corrupt}"));
        }
        other => bail!("unknown role {other}"),
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The coordinator

struct Proc {
    label: String,
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Proc {
    fn spawn(kind: &str, bus: &str, id: u32) -> Result<Proc> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["--role", kind, bus, &id.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let out = BufReader::new(child.stdout.take().expect("piped"));
        let mut p = Proc {
            label: format!("{kind} {id}"),
            child,
            out,
        };
        p.line("ready")?;
        Ok(p)
    }

    /// The next line that starts with `prefix`.
    fn line(&mut self, prefix: &str) -> Result<String> {
        let mut line = String::new();
        loop {
            line.clear();
            if self.out.read_line(&mut line)? == 0 {
                let status = self.child.wait()?;
                bail!("{} ended ({status}) before saying {prefix:?}", self.label);
            }
            if line.starts_with(prefix) {
                return Ok(line.trim().to_owned());
            }
        }
    }

    /// Tells it to stop (`stop` and `words`) and returns its report's `key=value` fields.
    fn finish(mut self, words: &str) -> Result<HashMap<String, String>> {
        if let Some(stdin) = self.child.stdin.as_mut() {
            writeln!(stdin, "stop {words}")?;
        }
        let report = self.line("report")?;
        let status = self.child.wait()?;
        if !status.success() {
            bail!("{} exited with {status}", self.label);
        }
        Ok(report
            .split_whitespace()
            .skip(1)
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect())
    }

    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn num(r: &HashMap<String, String>, key: &str) -> u64 {
    r.get(key).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn coordinate(o: &Opts) -> Result<()> {
    let name = format!("storm-{}", std::process::id());
    let cfg = BusConfig {
        ring_capacity: o.ring,
        max_message: 4096,
        slab_memory: Some(300 << 10),
        max_processes: 64,
        group_retention_ms: RETENTION_MS,
        ..BusConfig::default()
    };
    let bus = Bus::create(&name, &cfg)?;
    let result = run(o, &name, &bus);
    drop(bus);
    let result = result.and_then(|()| check_idle(&name));
    let _ = Bus::unlink(&name);
    result
}

fn run(o: &Opts, name: &str, bus: &Bus) -> Result<()> {
    let mut rng = Rng(o.seed);
    let mode = if o.mode == Mode::Kill {
        "kill"
    } else {
        "churn"
    };
    println!(
        "storm {mode}: {} s, ring {} slots, {} victims, seed {}",
        o.seconds, o.ring, o.victims, o.seed
    );
    let monitor = Proc::spawn("monitor", name, 0)?;
    // A member of each group that stays throughout: a group left with no live member is kept
    // for its retention, and publishers wait for it meanwhile (by design, docs/delivery.md);
    // the stalls measured here are those of recovery, not of retention.
    let steady_members = [
        Proc::spawn("member", name, 0)?,
        Proc::spawn("churn-member", name, 0)?,
    ];
    let publishers: Vec<Proc> = (0..STEADY)
        .map(|id| Proc::spawn("publisher", name, id))
        .collect::<Result<_>>()?;
    let kinds = ["publisher", "subscriber", "member", "idle"];
    let mut next_id = STEADY;
    let mut spawn_victim = |rng: &mut Rng| -> Result<Proc> {
        next_id += 1;
        if o.mode == Mode::Churn {
            Proc::spawn("churner", name, next_id)
        } else {
            Proc::spawn(kinds[rng.below(kinds.len() as u64) as usize], name, next_id)
        }
    };
    let mut victims: Vec<Proc> = (0..o.victims)
        .map(|_| spawn_victim(&mut rng))
        .collect::<Result<_>>()?;
    let start = Instant::now();
    let mut kills = 0u64;
    let mut longest_reap = Duration::ZERO;
    let mut churn_rounds = 0u64;
    let mut corrupt = 0u64;
    while start.elapsed() < Duration::from_secs(o.seconds) {
        std::thread::sleep(Duration::from_millis(1 + rng.below(30)));
        if o.mode == Mode::Kill && !victims.is_empty() {
            let i = rng.below(victims.len() as u64) as usize;
            victims.swap_remove(i).kill();
            kills += 1;
            if kills.is_multiple_of(8) {
                let t = Instant::now();
                bus.reap()?;
                longest_reap = longest_reap.max(t.elapsed());
            }
            victims.push(spawn_victim(&mut rng)?);
        }
    }
    for v in victims {
        if o.mode == Mode::Churn {
            let r = v.finish("")?;
            churn_rounds += num(&r, "rounds");
            corrupt += num(&r, "corrupt");
        } else {
            v.kill();
        }
    }
    let mut published = 0u64;
    let mut longest_publish_us = 0u64;
    let mut want = Vec::new();
    for (id, p) in publishers.into_iter().enumerate() {
        let r = p.finish("")?;
        published += num(&r, "published");
        want.push(format!("{id}:{}", num(&r, "published")));
        longest_publish_us = longest_publish_us.max(num(&r, "longest_publish_us"));
    }
    let m = monitor.finish(&want.join(" "))?;
    for member in steady_members {
        corrupt += num(&member.finish("")?, "corrupt");
    }
    corrupt += num(&m, "corrupt");
    let wanted: HashMap<u32, u64> = totals(&format!("stop {}", want.join(" ")));
    let got = totals(&format!(
        "stop {}",
        m.get("next").map_or("", |s| s).replace(',', " ")
    ));
    let lost: u64 = wanted
        .iter()
        .map(|(p, n)| n.saturating_sub(got.get(p).copied().unwrap_or(0)))
        .sum();
    // A kept group's backlog goes once its retention has run out (a time, not an event).
    std::thread::sleep(Duration::from_millis(RETENTION_MS + 100));
    let t = Instant::now();
    let reaped = bus.reap()?;
    longest_reap = longest_reap.max(t.elapsed());
    println!(
        "steady publishers published {published}; monitor received {} (every topic), \
         {} gaps and {lost} missing at the end in the steady publishers' sequences, \
         {corrupt} corrupt payloads",
        num(&m, "received"),
        num(&m, "gaps")
    );
    println!(
        "longest stall: a steady publish {:.1} ms, the monitor between two messages {:.1} ms, \
         a reap {:.1} ms",
        longest_publish_us as f64 / 1e3,
        num(&m, "longest_gap_us") as f64 / 1e3,
        longest_reap.as_secs_f64() * 1e3
    );
    if o.mode == Mode::Kill {
        println!("{kills} victims killed with SIGKILL");
    } else {
        println!("{churn_rounds} joins and leaves");
    }
    println!("last reap: {} processes", reaped.processes.len());
    if num(&m, "gaps") != 0 || lost != 0 || corrupt != 0 {
        bail!("lost or corrupt messages (see above)");
    }
    Ok(())
}

/// After everyone has left and the last reap: every block and slot is free (invariant 2).
fn check_idle(name: &str) -> Result<()> {
    let snap = shm_ring::inspect(name)?;
    if !snap.is_idle() || !snap.corruption.is_empty() {
        bail!(
            "the bus is not idle after everyone left: processes {:?}, slab {:?}, counters {:?}, \
             corruption {:?}",
            snap.processes.iter().map(|p| p.pid).collect::<Vec<_>>(),
            snap.slab,
            snap.counters,
            snap.corruption
        );
    }
    println!("bus idle after everyone left: every block and slot free, no count left");
    Ok(())
}
