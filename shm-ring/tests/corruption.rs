//! Invariant 4: a corrupted region gives an error or valid-looking data, never a panic, undefined
//! behaviour or a fault. A live region (with rows, a fan-out subscriber, a group, messages inline
//! and in blocks) is copied, bytes of the copy are flipped, and the copy is inspected, attached,
//! read from, published to and reaped.

mod common;

use common::{small, BusGuard};
use event_engine_shm::{inspect, shm_path, Bus, BusConfig, BusError, Codec};
use proptest::prelude::*;
use std::sync::OnceLock;
use std::time::Duration;

const NOW: Option<Duration> = Some(Duration::ZERO);

/// Bytes of a region in use, taken while its handles were attached.
fn template() -> &'static Vec<u8> {
    static T: OnceLock<Vec<u8>> = OnceLock::new();
    T.get_or_init(|| {
        let g = BusGuard::new("corrupt-template");
        let bus = Bus::create(
            &g.name,
            &BusConfig {
                ring_capacity: 8,
                ..small()
            },
        )
        .unwrap();
        let _fan = bus.subscribe().unwrap();
        let _member = bus.subscribe_group("grp").unwrap();
        let mut p = bus.publisher().unwrap();
        p.publish("inline", Codec::Raw, b"small", NOW).unwrap();
        p.publish("block", Codec::Raw, &[7; 1500], NOW).unwrap();
        p.publish_pickled("pickled", &[event_engine_shm::PyValue::Int(1)], &[], NOW)
            .unwrap();
        std::fs::read(shm_path(&g.name)).unwrap()
    })
}

/// Everything a process might do with a bus, with no waiting; errors are fine, panics are not.
fn exercise(name: &str) {
    if let Ok(snap) = inspect(name) {
        let _ = serde_json_like(&snap);
    }
    let bus = match Bus::open(name) {
        Ok(b) => b,
        Err(e) => {
            // Every error names what was wrong.
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    let _ = bus.snapshot();
    if let Ok(mut sub) = bus.subscribe() {
        for _ in 0..4 {
            if let Ok(Some(m)) = sub.recv(NOW) {
                let _ = (
                    m.topic.len(),
                    m.payload.iter().map(|b| *b as u64).sum::<u64>(),
                );
            }
        }
        let _ = sub.recv_batch(8, NOW, |m| assert!(m.payload.len() <= 4096));
    }
    if let Ok(mut member) = bus.subscribe_group("grp") {
        let _ = member.recv(NOW).map(|m| m.map(|m| m.payload.len()));
    }
    if let Ok(mut obs) = bus.observe() {
        let _ = obs.recv(NOW).map(|m| m.map(|m| m.payload.len()));
    }
    if let Ok(mut p) = bus.publisher() {
        let _ = p.publish("after", Codec::Raw, &[1; 600], NOW);
        let _ = p.publish("after", Codec::Raw, b"x", NOW);
    }
    let _ = bus.reap();
}

/// Formats a snapshot the way a tool would (touches every field).
fn serde_json_like(s: &event_engine_shm::Snapshot) -> String {
    format!("{s:?}")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn flipped_bytes_never_crash(flips in prop::collection::vec((0.0f64..1.0, 1u8..=255, 0u8..3), 1..12)) {
        let t = template();
        let g = BusGuard::new("corrupt");
        let mut bytes = t.clone();
        for (at, xor, area) in flips {
            // Two thirds of the flips land in the header or the tables, where they matter most.
            let span = match area {
                0 => 256,
                1 => 64 * 1024,
                _ => bytes.len(),
            }
            .min(bytes.len());
            let i = ((at * span as f64) as usize).min(bytes.len() - 1);
            bytes[i] ^= xor;
        }
        std::fs::write(shm_path(&g.name), &bytes).unwrap();
        exercise(&g.name);
    }
}

#[test]
fn foreign_and_truncated_files_are_named_errors() {
    let g = BusGuard::new("foreign");
    std::fs::write(shm_path(&g.name), b"definitely not a bus").unwrap();
    let err = Bus::open(&g.name).err().unwrap();
    assert!(matches!(err, BusError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("shorter than a header"), "{err}");
    std::fs::write(shm_path(&g.name), vec![0u8; 8192]).unwrap();
    let err = Bus::open(&g.name).err().unwrap();
    assert!(err.to_string().contains("bad magic"), "{err}");
    // A valid header on a truncated file.
    let mut t = template().clone();
    t.truncate(t.len() / 2);
    std::fs::write(shm_path(&g.name), &t).unwrap();
    let err = inspect(&g.name).err().unwrap();
    assert!(err.to_string().contains("file size"), "{err}");
    // A different layout version is a mismatch naming the field.
    let mut t = template().clone();
    t[8] ^= 0x40;
    std::fs::write(shm_path(&g.name), &t).unwrap();
    match Bus::open(&g.name) {
        Err(BusError::Mismatch { field, .. }) => assert_eq!(field, "layout version"),
        other => panic!("expected a version mismatch, got {:?}", other.err()),
    }
}
