//! Reaps running beside live publishers never touch their messages (issue 20, defect 1: a reap
//! cleared the block of a message whose publisher committed it during the reap, and every
//! consumer then found the bus corrupt).

mod common;

use common::{assert_idle, BusGuard};
use event_engine_shm::{Bus, BusConfig, Codec};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A publisher sends messages that need slab blocks as fast as it can, a subscriber checks each
/// one, and a third thread reaps without pause (as joins, leaves and blocked publishers do).
/// Every message arrives whole, in order.
#[test]
fn reaps_beside_a_live_publisher_leave_its_messages_whole() {
    let g = BusGuard::new("reap-race");
    let cfg = BusConfig {
        ring_capacity: 8,
        max_message: 1024,
        slab_memory: Some(40 << 10),
        max_processes: 8,
        ..BusConfig::default()
    };
    let bus = Bus::create(&g.name, &cfg).unwrap();
    let mut sub = bus.subscribe().unwrap();
    let mut p = bus.publisher().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let reaper = {
        let (bus, stop) = (Bus::open(&g.name).unwrap(), stop.clone());
        std::thread::spawn(move || {
            let mut reaps = 0u64;
            while !stop.load(Ordering::Relaxed) {
                bus.reap().unwrap();
                reaps += 1;
            }
            reaps
        })
    };
    // Publishes until told to stop, then says how many it sent.
    let done = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(u64::MAX));
    let publisher = {
        let (done, sent) = (done.clone(), sent.clone());
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !done.load(Ordering::Relaxed) {
                let mut body = vec![(i % 251) as u8; 300];
                body[..8].copy_from_slice(&i.to_le_bytes());
                p.publish("big", Codec::Raw, &body, Some(Duration::from_secs(10)))
                    .unwrap_or_else(|e| panic!("message {i}: {e}"));
                i += 1;
            }
            sent.store(i, Ordering::SeqCst);
        })
    };
    // Ten seconds of traffic (the race showed within seconds), then whatever is left.
    let stop_at = Instant::now() + Duration::from_secs(10);
    let mut next = 0u64;
    let result = (|| {
        while next < sent.load(Ordering::SeqCst) {
            if Instant::now() > stop_at {
                done.store(true, Ordering::Relaxed);
            }
            let Some(m) = sub.recv(Some(Duration::from_millis(100)))? else {
                continue;
            };
            let i = u64::from_le_bytes(m.payload[..8].try_into().unwrap());
            assert_eq!(i, next, "out of order");
            assert!(
                m.payload.len() == 300 && m.payload[8..].iter().all(|&b| b == (i % 251) as u8),
                "message {i} damaged"
            );
            next += 1;
        }
        Ok::<(), event_engine_shm::BusError>(())
    })();
    stop.store(true, Ordering::Relaxed);
    done.store(true, Ordering::Relaxed);
    let reaps = reaper.join().unwrap();
    if let Err(e) = result {
        panic!("after {next} messages and {reaps} reaps: {e}");
    }
    publisher.join().unwrap();
    drop((sub, bus));
    assert_idle(&g.name);
}
