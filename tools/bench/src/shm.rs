//! W4 on the shared-memory bus: the publisher and subscriber roles, each run in its own process.
//!
//! The subscriber attaches first (a bus delivers only what is published after a subscriber
//! exists), says `ready`, receives and checks every message, says `received`, and on `check`
//! makes sure nothing more is waiting before it reports. The publisher sends `messages` 64-byte
//! payloads built in place in the ring slot, one per publish or, in batch throughput runs, runs of
//! `publish_run` per `publish_many` call (the subscriber checks both the same way).

use crate::child::{say, wait_word};
use crate::clock::{now_ns, peak_rss_bytes, spin_until};
use crate::params::{Mode, RunParams};
use crate::payload::{self, OrderCheck};
use crate::report::SideReport;
use crate::stats::Percentiles;
use anyhow::{bail, Context, Result};
use shm_ring::{Bus, BusConfig, Codec, Message};
use std::time::Duration;

/// Longest a role waits for the other side before giving up.
const STALL: Duration = Duration::from_secs(30);

/// Geometry of a W4 bus: the default ring, a small slab (a topic of up to 72 bytes and a 64-byte
/// payload travel inline in the slot; a longer topic uses the smallest slab class).
pub fn bus_config() -> BusConfig {
    BusConfig {
        ring_capacity: 4096,
        max_message: 4096,
        slab_memory: Some(10 << 20),
        max_processes: 16,
        max_subscribers: 8,
        ..BusConfig::default()
    }
}

/// Checks one received message and records its latency; `Err` names what was wrong.
#[inline]
fn accept(
    m: &Message<'_>,
    check: &mut OrderCheck,
    lat: &mut Vec<u64>,
    p: &RunParams,
) -> Result<(), String> {
    let now = now_ns();
    let (seq, sent) = payload::read(m.payload)?;
    check.accept(seq)?;
    if p.mode != Mode::Throughput && seq >= p.warmup {
        lat.push(now.saturating_sub(sent));
    }
    Ok(())
}

/// The subscriber role.
pub fn subscriber(bus: &str, p: &RunParams) -> Result<()> {
    let bus = Bus::open(bus).with_context(|| format!("opening bus {bus}"))?;
    let mut sub = bus.subscribe().context("subscribing")?;
    let mut check = OrderCheck::default();
    let mut lat = Vec::with_capacity(if p.mode == Mode::Throughput {
        0
    } else {
        p.messages as usize
    });
    say("ready");
    match p.mode {
        Mode::Throughput => {
            let mut err = None;
            while check.next < p.messages {
                let n = sub.recv_batch(4096, Some(STALL), |m| {
                    if err.is_none() {
                        err = accept(m, &mut check, &mut lat, p).err();
                    }
                })?;
                if let Some(e) = err {
                    bail!(e);
                }
                if n == 0 {
                    bail!("no message for {} s after {}", STALL.as_secs(), check.next);
                }
            }
        }
        Mode::BusyPoll => {
            let mut idle_since = now_ns();
            while check.next < p.messages {
                match sub.recv(Some(Duration::ZERO))? {
                    Some(m) => {
                        accept(&m, &mut check, &mut lat, p).map_err(anyhow::Error::msg)?;
                        idle_since = now_ns();
                    }
                    None => {
                        if now_ns() - idle_since > STALL.as_nanos() as u64 {
                            bail!("no message for {} s after {}", STALL.as_secs(), check.next);
                        }
                        std::hint::spin_loop();
                    }
                }
            }
        }
        Mode::Parked => {
            while check.next < p.messages {
                match sub.recv(Some(STALL))? {
                    Some(m) => accept(&m, &mut check, &mut lat, p).map_err(anyhow::Error::msg)?,
                    None => bail!("no message for {} s after {}", STALL.as_secs(), check.next),
                }
            }
        }
    }
    let end_ns = now_ns();
    say("received");
    wait_word("check")?;
    if let Some(m) = sub.recv(Some(Duration::ZERO))? {
        bail!(
            "a message beyond the {} sent arrived (seq {})",
            p.messages,
            m.seq
        );
    }
    SideReport {
        end_ns: Some(end_ns),
        messages: check.next,
        latency: (p.mode != Mode::Throughput).then(|| Percentiles::of(&mut lat)),
        peak_rss: peak_rss_bytes(),
        ..SideReport::default()
    }
    .emit();
    Ok(())
}

/// Waits until the bus shows a sleeping subscriber; false if none was seen within `limit`.
fn wait_for_sleeper(bus: &Bus, limit: Duration) -> bool {
    let give_up = now_ns() + limit.as_nanos() as u64;
    while now_ns() < give_up {
        if bus.snapshot().counters.sub_sleepers > 0 {
            return true;
        }
        std::thread::sleep(Duration::from_micros(50));
    }
    false
}

/// The publisher role.
pub fn publisher(bus: &str, topic: &str, p: &RunParams) -> Result<()> {
    let bus = Bus::open(bus).with_context(|| format!("opening bus {bus}"))?;
    let mut publisher = bus.publisher().context("creating a publisher")?;
    let mut to_sleeper = 0;
    let start_ns = now_ns();
    match p.mode {
        Mode::Throughput if p.publish_run > 0 => {
            let mut seq = 0;
            while seq < p.messages {
                let k = (p.messages - seq).min(p.publish_run as u64) as usize;
                let first = seq;
                let sent = publisher.publish_many(
                    topic,
                    Codec::Raw,
                    payload::SIZE,
                    k,
                    Some(STALL),
                    |i, b| payload::write(b, first + i as u64, 0),
                )?;
                // Fewer than asked means the ring stayed full for the whole stall limit.
                if sent < k {
                    bail!(
                        "the ring stayed full for {} s after message {}",
                        STALL.as_secs(),
                        first + sent as u64
                    );
                }
                seq += k as u64;
            }
        }
        Mode::Throughput => {
            for seq in 0..p.messages {
                publisher.publish_with(topic, Codec::Raw, payload::SIZE, Some(STALL), |b| {
                    payload::write(b, seq, 0)
                })?;
            }
        }
        Mode::BusyPoll => {
            let mut next = now_ns();
            for seq in 0..p.messages {
                next += p.interval_ns;
                spin_until(next);
                let t = now_ns();
                publisher.publish_with(topic, Codec::Raw, payload::SIZE, Some(STALL), |b| {
                    payload::write(b, seq, t)
                })?;
            }
        }
        Mode::Parked => {
            for seq in 0..p.messages {
                // A plain sleep paces the sends; whether the subscriber really sleeps is then
                // read from the bus rather than assumed.
                std::thread::sleep(Duration::from_nanos(p.pause_ns));
                if wait_for_sleeper(&bus, Duration::from_secs(1)) {
                    to_sleeper += 1;
                }
                let t = now_ns();
                publisher.publish_with(topic, Codec::Raw, payload::SIZE, Some(STALL), |b| {
                    payload::write(b, seq, t)
                })?;
            }
        }
    }
    SideReport {
        start_ns: Some(start_ns),
        messages: p.messages,
        peak_rss: peak_rss_bytes(),
        sent_to_sleeper: (p.mode == Mode::Parked).then_some(to_sleeper),
        ..SideReport::default()
    }
    .emit();
    Ok(())
}
