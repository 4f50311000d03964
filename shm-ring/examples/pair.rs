//! A publisher process and a subscriber process on one bus, for quick measurements of the fast
//! path and of wake-ups (the benchmark programs in `tools/` are the reference figures):
//!
//! ```text
//! cargo run -p shm-ring --release --example pair -- [messages] [batch] [interval_ns] [topic]
//! ```
//!
//! The parent creates the bus, starts itself again as the subscriber, waits until it is attached
//! and publishes `messages` 64-byte payloads on `topic` (default `Market.Data.AAPL`): one
//! `publish_with` per message when `batch` is 1, `publish_many` runs of `batch` otherwise, and,
//! when `interval_ns` is non-zero, one message every `interval_ns` (spinning between sends, like a
//! paced feed). The subscriber checks every message arrives in order and prints the throughput
//! from the first send to the last receive. `strace -f -c -e futex` on this program counts the
//! wake-ups a paced feed costs.

use event_engine_shm::{Bus, BusConfig, Codec};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PAYLOAD: usize = 64;

/// CLOCK_MONOTONIC in nanoseconds: the same clock in both processes.
fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn subscriber(name: &str, n: u64) -> Result<(), Box<dyn std::error::Error>> {
    let bus = Bus::open(name)?;
    let mut sub = bus.subscribe()?;
    println!("ready");
    std::io::stdout().flush()?;
    let mut next = 0u64;
    while next < n {
        let got = sub.recv_batch(4096, Some(Duration::from_secs(30)), |m| {
            let seq = u64::from_le_bytes(m.payload[..8].try_into().expect("8 bytes"));
            assert_eq!(seq, next, "message out of order");
            next += 1;
        })?;
        if got == 0 {
            return Err(format!("no message for 30 s after {next}").into());
        }
    }
    println!("end {}", mono_ns());
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--subscriber") {
        return subscriber(&args[1], args[2].parse()?);
    }
    let n: u64 = args
        .first()
        .and_then(|a| a.parse().ok())
        .unwrap_or(2_000_000);
    let batch: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1).max(1);
    let interval: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(0);
    let topic = args
        .get(3)
        .cloned()
        .unwrap_or_else(|| "Market.Data.AAPL".into());
    let name = format!("pair-{}", std::process::id());
    let bus = Bus::create(
        &name,
        &BusConfig {
            ring_capacity: 4096,
            max_message: 4096,
            ..BusConfig::default()
        },
    )?;
    let result = (|| -> Result<f64, Box<dyn std::error::Error>> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["--subscriber", &name, &n.to_string()])
            .stdout(Stdio::piped())
            .spawn()?;
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        if lines.next().transpose()?.as_deref() != Some("ready") {
            return Err("the subscriber did not start".into());
        }
        let mut publisher = bus.publisher()?;
        let fill = |seq: u64, b: &mut [u8]| {
            b[..8].copy_from_slice(&seq.to_le_bytes());
            b[8..].fill(0x5a);
        };
        let start = mono_ns();
        let mut seq = 0u64;
        let mut due = Instant::now();
        while seq < n {
            if interval > 0 {
                due += Duration::from_nanos(interval * batch as u64);
                while Instant::now() < due {
                    std::hint::spin_loop();
                }
            }
            if batch == 1 {
                publisher.publish_with(&topic, Codec::Raw, PAYLOAD, None, |b| fill(seq, b))?;
                seq += 1;
            } else {
                let k = batch.min((n - seq) as usize);
                let first = seq;
                seq += publisher.publish_many(&topic, Codec::Raw, PAYLOAD, k, None, |i, b| {
                    fill(first + i as u64, b)
                })? as u64;
            }
        }
        let end: u64 = loop {
            match lines.next().transpose()? {
                Some(l) if l.starts_with("end ") => break l[4..].parse()?,
                Some(_) => continue,
                None => return Err("the subscriber failed".into()),
            }
        };
        child.wait()?;
        Ok((end - start) as f64 / 1e9)
    })();
    drop(bus);
    Bus::unlink(&name)?;
    let secs = result?;
    println!(
        "{n} messages of {PAYLOAD} bytes on {topic:?}, batch {batch}, interval {interval} ns: \
         {secs:.3} s, {:.2} M msg/s",
        n as f64 / secs / 1e6
    );
    Ok(())
}
