//! The in-process ceiling of W4: a `crossbeam` `ArrayQueue` of 64-byte payloads between a producer
//! thread and a consumer thread, both spinning (no blocking), the consumer checking every message
//! like the cross-process subscribers do.

use crate::clock::{now_ns, peak_rss_bytes, spin_until};
use crate::params::{Mode, RunParams};
use crate::payload::{self, OrderCheck, Payload};
use crate::report::SideReport;
use crate::stats::Percentiles;
use anyhow::{bail, Result};
use crossbeam_queue::ArrayQueue;
use std::sync::Arc;

/// Queue capacity (the bus ring's default).
pub const CAPACITY: usize = 4096;

/// Runs one measured run in this process and reports it.
pub fn run(p: &RunParams) -> Result<()> {
    if p.mode == Mode::Parked {
        bail!("the crossbeam peer has no parked mode (ArrayQueue never blocks)");
    }
    let q = Arc::new(ArrayQueue::<Payload>::new(CAPACITY));
    let consumer = {
        let q = q.clone();
        let p = p.clone();
        std::thread::spawn(move || -> Result<(u64, u64, Vec<u64>), String> {
            let mut check = OrderCheck::default();
            let mut lat = Vec::with_capacity(if p.mode == Mode::Throughput {
                0
            } else {
                p.messages as usize
            });
            while check.next < p.messages {
                match q.pop() {
                    Some(m) => {
                        let now = now_ns();
                        let (seq, sent) = payload::read(&m.bytes)?;
                        check.accept(seq)?;
                        if p.mode != Mode::Throughput && seq >= p.warmup {
                            lat.push(now.saturating_sub(sent));
                        }
                    }
                    None => std::hint::spin_loop(),
                }
            }
            Ok((now_ns(), check.next, lat))
        })
    };
    let start_ns = now_ns();
    let mut next = start_ns;
    for seq in 0..p.messages {
        let mut m = if p.mode == Mode::BusyPoll {
            next += p.interval_ns;
            spin_until(next);
            payload::make(seq, now_ns())
        } else {
            payload::make(seq, 0)
        };
        while let Err(back) = q.push(m) {
            m = back;
            std::hint::spin_loop();
        }
    }
    let (end_ns, received, mut lat) = consumer
        .join()
        .map_err(|_| anyhow::anyhow!("the consumer thread panicked"))?
        .map_err(anyhow::Error::msg)?;
    if let Some(extra) = q.pop() {
        bail!(
            "a message beyond the {} sent was queued ({:?})",
            p.messages,
            payload::read(&extra.bytes)
        );
    }
    SideReport {
        start_ns: Some(start_ns),
        end_ns: Some(end_ns),
        messages: received,
        latency: (p.mode != Mode::Throughput).then(|| Percentiles::of(&mut lat)),
        peak_rss: peak_rss_bytes(),
        sent_to_sleeper: None,
    }
    .emit();
    Ok(())
}
