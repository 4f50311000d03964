//! A quick one-to-one throughput check of the bus inside one process (two threads): the publisher
//! builds small payloads in place, the subscriber drains in batches. The benchmark programs in
//! `tools/` are the reference figures; this is a smoke test of the fast path.
//!
//! `cargo run -p shm-ring --release --example throughput [messages] [payload bytes]`

use event_engine_shm::{Bus, BusConfig, Codec};
use std::time::Instant;

fn main() -> Result<(), event_engine_shm::BusError> {
    let mut args = std::env::args().skip(1);
    let n: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(5_000_000);
    let size: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(16);
    let name = format!("throughput-{}", std::process::id());
    let bus = Bus::create(
        &name,
        &BusConfig {
            ring_capacity: 4096,
            max_message: 4096,
            ..BusConfig::default()
        },
    )?;
    let mut sub = bus.subscribe()?;
    let mut publisher = bus.publisher()?;
    let start = Instant::now();
    let result = std::thread::scope(|s| {
        let reader = s.spawn(move || {
            let mut got = 0u64;
            let mut sum = 0u64;
            while got < n {
                got += sub.recv_batch(256, None, |m| sum = sum.wrapping_add(m.payload[0] as u64))?
                    as u64;
            }
            Ok::<u64, event_engine_shm::BusError>(sum)
        });
        for i in 0..n {
            publisher.publish_with("bench.tick", Codec::Raw, size, None, |buf| buf[0] = i as u8)?;
        }
        reader.join().expect("reader thread")
    });
    let secs = start.elapsed().as_secs_f64();
    drop(publisher);
    drop(bus);
    Bus::unlink(&name)?;
    result?;
    println!(
        "{n} messages of {size} bytes in {secs:.3} s: {:.2} M msg/s",
        n as f64 / secs / 1e6
    );
    Ok(())
}
