//! Single-process behaviour of the bus: creation and attaching, validation errors, fan-out,
//! groups, backpressure, slab exhaustion, large messages, observers, and the idle state after
//! everyone leaves.

mod common;

use common::{assert_idle, payload, small, unpayload, BusGuard};
use event_engine_shm::{inspect, shm_path, Bus, BusConfig, BusError, Codec, Role};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

const SEC: Option<Duration> = Some(Duration::from_secs(5));
const NOW: Option<Duration> = Some(Duration::ZERO);

#[test]
fn create_open_and_mismatch() {
    let g = BusGuard::new("open");
    assert!(matches!(Bus::open(&g.name), Err(BusError::NotFound { .. })));
    let bus = Bus::create(&g.name, &small()).unwrap();
    assert!(matches!(
        Bus::create(&g.name, &small()),
        Err(BusError::Exists { .. })
    ));
    let mode = std::fs::metadata(shm_path(&g.name))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let other = Bus::open(&g.name).unwrap();
    assert_eq!(other.config(), bus.config());
    assert_eq!(other.max_payload(), 4096);
    let bigger = BusConfig {
        ring_capacity: 32,
        ..small()
    };
    match Bus::open_or_create(&g.name, &bigger) {
        Err(BusError::Mismatch {
            field,
            expected,
            found,
            ..
        }) => {
            assert_eq!((field, expected, found), ("ring_capacity", 32, 16));
        }
        other => panic!("expected a mismatch, got {:?}", other.err()),
    }
    let mismatches = [
        (
            BusConfig {
                slab_memory: Some(40 << 10),
                ..small()
            },
            ("slab_memory", 40 << 10, 20 << 10),
        ),
        (
            BusConfig {
                group_retention_ms: 5,
                ..small()
            },
            ("group_retention_ms", 5, 60_000),
        ),
    ];
    for (cfg, want) in mismatches {
        match Bus::open_or_create(&g.name, &cfg) {
            Err(BusError::Mismatch {
                field,
                expected,
                found,
                ..
            }) => assert_eq!((field, expected, found), want),
            other => panic!("expected a mismatch, got {:?}", other.err()),
        }
    }
    // An impossible geometry is named as such, not as a mismatch.
    let impossible = BusConfig {
        slab_memory: Some(100),
        ..small()
    };
    assert!(matches!(
        Bus::open_or_create(&g.name, &impossible),
        Err(BusError::BadConfig { .. })
    ));
    assert!(Bus::open_or_create(&g.name, &small()).is_ok());
    let s = bus.snapshot();
    assert_eq!(s.processes.len(), 2);
    assert!(s.processes.iter().all(|p| p.role == Role::Bus && p.alive));
    drop((bus, other));
    assert_idle(&g.name);
}

#[test]
fn explicit_mode_and_bad_names() {
    let g = BusGuard::new("mode");
    let bus = Bus::create(
        &g.name,
        &BusConfig {
            mode: 0o640,
            ..small()
        },
    )
    .unwrap();
    let mode = std::fs::metadata(shm_path(&g.name))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o640);
    drop(bus);
    for bad in ["", "a/b", "..", "x\0y"] {
        let err = Bus::create(bad, &small()).err().unwrap();
        assert!(matches!(err, BusError::BadName { .. }), "{bad:?}: {err}");
    }
    let err = Bus::create(
        "x",
        &BusConfig {
            ring_capacity: 10,
            ..small()
        },
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("ring_capacity 10"), "{err}");
}

#[test]
fn foreign_owner_is_refused_unless_allowed() {
    let g = BusGuard::new("owner");
    drop(Bus::create(&g.name, &small()).unwrap());
    if !nix::unistd::geteuid().is_root() {
        return; // only root can give the file away; elsewhere the check is covered by reading the code path
    }
    std::os::unix::fs::chown(shm_path(&g.name), Some(4242), None).unwrap();
    match Bus::open(&g.name) {
        Err(BusError::ForeignOwner { uid, .. }) => assert_eq!(uid, 4242),
        other => panic!("expected ForeignOwner, got {:?}", other.err()),
    }
    assert!(Bus::open_with(&g.name, true).is_ok());
}

#[test]
fn concurrent_creators_end_with_one_region() {
    let g = BusGuard::new("race");
    let buses: Vec<Bus> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8)
            .map(|_| s.spawn(|| Bus::open_or_create(&g.name, &small()).unwrap()))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // All attached to the same region: one process table holds all eight rows.
    assert_eq!(inspect(&g.name).unwrap().processes.len(), 8);
    drop(buses);
    assert_idle(&g.name);
}

#[test]
fn fan_out_delivers_everything_in_order_to_each_subscriber() {
    let g = BusGuard::new("fanout");
    let bus = Bus::create(
        &g.name,
        &BusConfig {
            ring_capacity: 8,
            ..small()
        },
    )
    .unwrap();
    let subs: Vec<_> = (0..3).map(|_| bus.subscribe().unwrap()).collect();
    const N: u64 = 500;
    let bus2 = bus.clone();
    std::thread::scope(|s| {
        s.spawn(move || {
            let mut p = bus2.publisher().unwrap();
            for i in 0..N {
                // Mix inline and slab-block payloads.
                let mut body = vec![0u8; if i % 3 == 0 { 1000 } else { 12 }];
                body[..12].copy_from_slice(&payload(7, i));
                p.publish("t.x", Codec::Raw, &body, SEC).unwrap();
            }
        });
        for mut sub in subs {
            s.spawn(move || {
                for i in 0..N {
                    let m = sub.recv(SEC).unwrap().expect("message");
                    assert_eq!(m.topic, "t.x");
                    assert_eq!(m.topic_hash, event_engine_shm::topic_hash("t.x"));
                    assert_eq!(unpayload(m.payload), (7, i));
                    assert_eq!(m.payload.len(), if i % 3 == 0 { 1000 } else { 12 });
                    assert_eq!(m.publisher_pid, std::process::id());
                }
                assert!(sub.recv(NOW).unwrap().is_none());
            });
        }
    });
    drop(bus);
    assert_idle(&g.name);
}

#[test]
fn late_subscriber_gets_only_later_messages() {
    let g = BusGuard::new("late");
    let bus = Bus::create(&g.name, &small()).unwrap();
    let mut early = bus.subscribe().unwrap();
    let mut p = bus.publisher().unwrap();
    p.publish("a", Codec::Raw, b"1", NOW).unwrap();
    let mut late = bus.subscribe().unwrap();
    p.publish("a", Codec::Raw, b"2", NOW).unwrap();
    assert_eq!(early.recv(NOW).unwrap().unwrap().payload, b"1");
    assert_eq!(early.recv(NOW).unwrap().unwrap().payload, b"2");
    assert_eq!(late.recv(NOW).unwrap().unwrap().payload, b"2");
    assert!(late.recv(NOW).unwrap().is_none());
    assert_eq!(late.pending(), 0);
}

#[test]
fn group_members_share_messages_exactly_once() {
    let g = BusGuard::new("group");
    let bus = Bus::create(
        &g.name,
        &BusConfig {
            ring_capacity: 8,
            ..small()
        },
    )
    .unwrap();
    let members: Vec<_> = (0..3)
        .map(|_| bus.subscribe_group("workers").unwrap())
        .collect();
    let mut fan = bus.subscribe().unwrap();
    const N: u64 = 600;
    let seen = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        let bus2 = bus.clone();
        s.spawn(move || {
            let mut p = bus2.publisher().unwrap();
            for i in 0..N {
                p.publish("job", Codec::Raw, &payload(1, i), SEC).unwrap();
            }
            // One stop per member: a member leaves after its stop, so each takes exactly one.
            for _ in 0..3 {
                p.publish("stop", Codec::Raw, &payload(1, u64::MAX), SEC)
                    .unwrap();
            }
        });
        s.spawn(|| {
            for i in 0..N + 3 {
                let m = fan.recv(SEC).unwrap().unwrap();
                if i < N {
                    assert_eq!(unpayload(m.payload).1, i);
                }
            }
        });
        for mut m in members {
            let seen = &seen;
            s.spawn(move || loop {
                let msg = m.recv(SEC).unwrap().expect("message");
                if msg.topic == "stop" {
                    break;
                }
                seen.lock().unwrap().push(unpayload(msg.payload).1);
            });
        }
    });
    let mut seen = seen.into_inner().unwrap();
    seen.sort_unstable();
    assert_eq!(seen, (0..N).collect::<Vec<_>>());
    drop((fan, bus));
    assert_idle(&g.name);
}

#[test]
fn full_ring_blocks_then_times_out_and_never_overwrites() {
    let g = BusGuard::new("full");
    let bus = Bus::create(
        &g.name,
        &BusConfig {
            ring_capacity: 4,
            ..small()
        },
    )
    .unwrap();
    let mut sub = bus.subscribe().unwrap();
    let mut p = bus.publisher().unwrap();
    for i in 0..4 {
        p.publish("t", Codec::Raw, &[i], NOW).unwrap();
    }
    assert!(matches!(
        p.publish("t", Codec::Raw, &[9], NOW),
        Err(BusError::Full)
    ));
    assert!(matches!(
        p.try_publish("t", Codec::Raw, &[9]),
        Err(BusError::Full)
    ));
    assert!(matches!(
        p.publish("t", Codec::Raw, &[9], Some(Duration::from_millis(30))),
        Err(BusError::Timeout)
    ));
    assert!(bus.snapshot().counters.full_waits >= 3);
    // A blocked publisher is woken by the subscriber releasing a slot.
    std::thread::scope(|s| {
        s.spawn(|| p.publish("t", Codec::Raw, &[4], None).unwrap());
        for i in 0..5 {
            assert_eq!(sub.recv(SEC).unwrap().unwrap().payload, [i]);
        }
    });
}

#[test]
fn a_market_data_topic_with_a_64_byte_payload_travels_inline() {
    let g = BusGuard::new("inline");
    let bus = Bus::create(&g.name, &small()).unwrap();
    let mut sub = bus.subscribe().unwrap();
    let mut p = bus.publisher().unwrap();
    p.publish("Market.Data.AAPL", Codec::Raw, &[7; 64], NOW)
        .unwrap();
    assert_eq!(bus.snapshot().slab.iter().map(|c| c.used).sum::<u32>(), 0);
    let m = sub.recv(NOW).unwrap().unwrap();
    assert_eq!((m.topic, m.payload), ("Market.Data.AAPL", &[7u8; 64][..]));
    // 136 bytes of topic and payload are the most a slot carries; one more takes a block.
    p.publish("t", Codec::Raw, &[1; 135], NOW).unwrap();
    assert_eq!(bus.snapshot().slab.iter().map(|c| c.used).sum::<u32>(), 0);
    p.publish("t", Codec::Raw, &[1; 136], NOW).unwrap();
    assert_eq!(bus.snapshot().slab.iter().map(|c| c.used).sum::<u32>(), 1);
    drop((sub, p, bus));
    assert_idle(&g.name);
}

#[test]
fn batch_publish_keeps_order_across_runs_blocks_and_a_full_ring() {
    let g = BusGuard::new("pubmany");
    let bus = Bus::create(&g.name, &small()).unwrap(); // ring of 16
    let mut sub = bus.subscribe().unwrap();
    let mut p = bus.publisher().unwrap();
    // Without waiting, a batch larger than the ring publishes what fits and says how many.
    assert_eq!(
        p.publish_many("t", Codec::Raw, 8, 40, NOW, |i, b| b
            .copy_from_slice(&(i as u64).to_le_bytes()))
            .unwrap(),
        16
    );
    assert!(matches!(
        p.publish_many("t", Codec::Raw, 8, 1, NOW, |_, _| ()),
        Err(BusError::Full)
    ));
    let mut got = Vec::new();
    sub.recv_batch(100, NOW, |m| {
        got.push(u64::from_le_bytes(m.payload.try_into().unwrap()))
    })
    .unwrap();
    assert_eq!(got, (0..16).collect::<Vec<_>>());
    // Mixed sizes (some need a slab block), more than the ring holds, with a reader running.
    let bodies: Vec<Vec<u8>> = (0..100u32)
        .map(|i| {
            let mut b = vec![i as u8; if i % 7 == 3 { 600 } else { 20 }];
            b[..4].copy_from_slice(&i.to_le_bytes());
            b
        })
        .collect();
    let refs: Vec<&[u8]> = bodies.iter().map(|b| &b[..]).collect();
    let got = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut got = Vec::new();
            while got.len() < 100 {
                sub.recv_batch(100, SEC, |m| got.push(m.payload.to_vec()))
                    .unwrap();
            }
            got
        });
        assert_eq!(
            p.publish_batch("mixed", Codec::Raw, &refs, SEC).unwrap(),
            100
        );
        reader.join().unwrap()
    });
    assert_eq!(got, bodies);
    assert_eq!(
        bus.snapshot()
            .processes
            .iter()
            .map(|r| r.published)
            .sum::<u64>(),
        116
    );
    // A too-large payload refuses the whole batch.
    assert!(matches!(
        p.publish_batch("t", Codec::Raw, &[b"ok", &[0; 5000]], NOW),
        Err(BusError::PayloadTooLarge { size: 5000, .. })
    ));
    assert!(sub.recv(NOW).unwrap().is_none());
    drop((sub, p, bus));
    assert_idle(&g.name);
}

#[test]
fn a_panicking_fill_in_a_batch_does_not_wedge_the_ring() {
    let g = BusGuard::new("pubpanic");
    let bus = Bus::create(&g.name, &small()).unwrap();
    let mut sub = bus.subscribe().unwrap();
    let mut p = bus.publisher().unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        p.publish_many("t", Codec::Raw, 1, 5, NOW, |i, b| {
            assert!(i < 2, "fill fails at message {i}");
            b[0] = i as u8;
        })
    }));
    assert!(r.is_err());
    p.publish("t", Codec::Raw, &[9], NOW).unwrap();
    let mut got = Vec::new();
    sub.recv_batch(100, NOW, |m| got.push(m.payload[0]))
        .unwrap();
    // The batch's messages are built before their positions are claimed: the panic leaves
    // nothing of the batch claimed, so nothing waits and the next publish goes through.
    assert_eq!(got, [9], "a panicking fill holds no position");
    drop((sub, p, bus));
    assert_idle(&g.name);
}

#[test]
fn exhausted_slab_class_blocks_like_a_full_ring() {
    let g = BusGuard::new("slab");
    // max_message 200: classes of 256 and 768 bytes, one block each; a 200-byte payload is too
    // large to travel inline.
    let bus = Bus::create(
        &g.name,
        &BusConfig {
            max_message: 200,
            slab_memory: Some(1024),
            ..small()
        },
    )
    .unwrap();
    let mut sub = bus.subscribe().unwrap();
    let mut p = bus.publisher().unwrap();
    let big = [5u8; 200];
    p.publish("t", Codec::Raw, &big, NOW).unwrap();
    p.publish("t", Codec::Raw, &big, NOW).unwrap(); // falls back to the larger class
    assert!(matches!(
        p.publish("t", Codec::Raw, &big, NOW),
        Err(BusError::Full)
    ));
    p.publish("t", Codec::Raw, b"inline needs no block", NOW)
        .unwrap();
    let used: u32 = bus.snapshot().slab.iter().map(|c| c.used).sum();
    assert_eq!(used, 2);
    assert!(matches!(
        p.publish("t", Codec::Raw, &[0; 201], NOW),
        Err(BusError::PayloadTooLarge {
            size: 201,
            max: 200
        })
    ));
    std::thread::scope(|s| {
        s.spawn(|| p.publish("t", Codec::Raw, &big, SEC).unwrap());
        for _ in 0..4 {
            sub.recv(SEC).unwrap().unwrap();
        }
    });
    drop((sub, p, bus));
    assert_idle(&g.name);
}

#[test]
fn publish_with_fills_in_place_and_batches_release() {
    let g = BusGuard::new("batch");
    let bus = Bus::create(
        &g.name,
        &BusConfig {
            slab_memory: Some(80 << 10),
            ..small()
        },
    )
    .unwrap();
    let mut sub = bus.subscribe().unwrap();
    let mut p = bus.publisher().unwrap();
    for i in 0..10u8 {
        p.publish_with("b", Codec::Raw, 300, NOW, |buf| buf.fill(i))
            .unwrap();
    }
    let mut got = Vec::new();
    assert_eq!(
        sub.recv_batch(4, NOW, |m| got.push(m.payload[299]))
            .unwrap(),
        4
    );
    assert_eq!(
        sub.recv_batch(100, NOW, |m| got.push(m.payload[0]))
            .unwrap(),
        6
    );
    assert_eq!(got, (0..10).collect::<Vec<u8>>());
    assert_eq!(sub.recv_batch(100, NOW, |_| ()).unwrap(), 0);
    assert!(bus.snapshot().slab.iter().all(|c| c.used == 0));
}

#[test]
fn no_subscriber_means_nothing_is_kept() {
    let g = BusGuard::new("nosub");
    let bus = Bus::create(
        &g.name,
        &BusConfig {
            ring_capacity: 2,
            ..small()
        },
    )
    .unwrap();
    let mut p = bus.publisher().unwrap();
    for _ in 0..10 {
        p.publish("t", Codec::Raw, &[1; 500], NOW).unwrap();
    }
    assert!(bus.snapshot().slab.iter().all(|c| c.used == 0));
}

#[test]
fn observer_sees_messages_without_holding_publishers_back() {
    let g = BusGuard::new("observe");
    let bus = Bus::create(
        &g.name,
        &BusConfig {
            ring_capacity: 4,
            ..small()
        },
    )
    .unwrap();
    let mut obs = bus.observe().unwrap();
    let mut sub = bus.subscribe().unwrap();
    let mut p = bus.publisher().unwrap();
    p.publish_pickled("px", &[event_engine_shm::PyValue::Int(3)], &[], NOW)
        .unwrap();
    let m = obs.recv(NOW).unwrap().unwrap();
    assert_eq!((m.topic, m.codec), ("px", Codec::Pickle as u8));
    assert_eq!(
        event_engine_shm::wire::pickle::decode(m.payload)
            .unwrap()
            .to_string(),
        "((3,), {})"
    );
    assert!(obs.recv(NOW).unwrap().is_none());
    sub.recv(NOW).unwrap().unwrap();
    // Lap the observer: it reports what it missed.
    for i in 0..12u8 {
        p.publish("t", Codec::Raw, &[i], NOW).unwrap();
        sub.recv(NOW).unwrap().unwrap();
    }
    sub.recv(NOW).unwrap();
    while obs.recv(NOW).unwrap().is_some() {}
    assert!(obs.skipped() > 0);
}

#[test]
fn read_only_observer_takes_no_row_and_works_on_a_full_table() {
    let g = BusGuard::new("observe-ro");
    let bus = Bus::create(
        &g.name,
        &BusConfig {
            max_processes: 3,
            ..small()
        },
    )
    .unwrap();
    let mut sub = bus.subscribe().unwrap();
    let mut p = bus.publisher().unwrap();
    // The bus handle, the subscriber and the publisher fill the table.
    assert!(matches!(bus.publisher(), Err(BusError::TableFull { .. })));
    let mut obs = event_engine_shm::observe(&g.name).unwrap();
    assert_eq!(inspect(&g.name).unwrap().processes.len(), 3);
    p.publish("md.x", Codec::Raw, b"abc", NOW).unwrap();
    let m = obs.recv(NOW).unwrap().unwrap();
    assert_eq!((m.topic, m.payload), ("md.x", &b"abc"[..]));
    sub.recv(NOW).unwrap().unwrap();
    drop((sub, p, bus));
    // The observer outlives every handle without holding anything.
    assert_idle(&g.name);
    assert!(obs.recv(NOW).unwrap().is_none());
    drop(obs);
    assert!(matches!(
        event_engine_shm::observe("no/such"),
        Err(BusError::BadName { .. })
    ));
}

#[test]
fn messages_nobody_wants_take_no_ring_position_and_are_counted() {
    let g = BusGuard::new("unrouted");
    let bus = Bus::create(&g.name, &small()).unwrap();
    let mut obs = event_engine_shm::observe(&g.name).unwrap();
    let mut p = bus.publisher().unwrap();
    // Twenty rings' worth with nobody listening: never full, never waiting.
    for _ in 0..20 * 16 {
        assert_eq!(p.publish("t", Codec::Raw, b"x", NOW).unwrap(), None);
    }
    assert!(obs.recv(NOW).unwrap().is_none());
    assert_eq!(obs.skipped(), 0);
    let s = bus.snapshot();
    assert_eq!(s.counters.unrouted, 320);
    assert_eq!((s.ring.head, s.counters.full_waits), (0, 0));
}

#[test]
fn a_subscriber_receives_only_the_topics_it_wants_and_others_do_not_hold_it_back() {
    let g = BusGuard::new("interest");
    let bus = Bus::create(&g.name, &small()).unwrap();
    let wants = |t: &[&str]| event_engine_shm::SubscribeOptions {
        topics: Some(t.iter().map(|s| s.to_string()).collect()),
        ..Default::default()
    };
    let mut trades = bus.subscribe_with(&wants(&["md.trade.{sym}"])).unwrap();
    // Wants quotes, never receives: it must not hold back trades.
    let _idle = bus.subscribe_with(&wants(&["md.quote.+sym"])).unwrap();
    let mut p = bus.publisher().unwrap();
    for i in 0..5 * 16u32 {
        let pos = p
            .publish("md.trade.AAPL", Codec::Raw, &i.to_le_bytes(), NOW)
            .unwrap();
        assert!(
            pos.is_some(),
            "message {i} was refused: the idle subscriber held it back"
        );
        let m = trades.recv(NOW).unwrap().expect("a trade");
        assert_eq!(m.payload, i.to_le_bytes());
    }
    assert_eq!(p.publish("md.other", Codec::Raw, b"x", NOW).unwrap(), None);
    assert!(matches!(
        bus.subscribe_with(&wants(&["md./unclosed"])),
        Err(BusError::BadTopic { .. })
    ));
}

#[test]
fn subscriber_table_and_process_table_limits() {
    let g = BusGuard::new("limits");
    let bus = Bus::create(
        &g.name,
        &BusConfig {
            max_subscribers: 2,
            max_processes: 4,
            ..small()
        },
    )
    .unwrap();
    let a = bus.subscribe().unwrap();
    let b = bus.subscribe_group("g").unwrap();
    let c = bus.subscribe_group("g").unwrap(); // same group, same bit
    assert!(matches!(bus.subscribe(), Err(BusError::TableFull { .. })));
    assert!(matches!(bus.publisher(), Err(BusError::TableFull { .. })));
    assert!(matches!(
        bus.subscribe_group("bad name"),
        Err(BusError::BadGroup { .. })
    ));
    let s = bus.snapshot();
    assert_eq!(s.groups.len(), 1);
    assert_eq!(s.groups[0].members, 2);
    drop((a, b, c));
    assert!(bus.subscribe().is_ok());
}

#[test]
fn handles_can_move_between_threads() {
    fn send<T: Send>() {}
    fn sync<T: Sync>() {}
    send::<Bus>();
    sync::<Bus>();
    send::<event_engine_shm::Publisher>();
    send::<event_engine_shm::Subscriber>();
    send::<event_engine_shm::Observer>();
}

#[test]
fn list_and_inspect_show_an_attached_bus() {
    let g = BusGuard::new("list");
    let bus = Bus::create(&g.name, &small()).unwrap();
    let _sub = bus.subscribe_group("readers").unwrap();
    let info = event_engine_shm::list_buses()
        .unwrap()
        .into_iter()
        .find(|b| b.name == g.name)
        .expect("listed");
    // Two rows (the handle and the member), one process.
    assert_eq!(
        (info.attached, info.alive, info.error),
        (Some(1), Some(1), None)
    );
    assert_eq!(
        info.size,
        std::fs::metadata(shm_path(&g.name)).unwrap().len()
    );
    let snap = inspect(&g.name).unwrap();
    let member = snap
        .processes
        .iter()
        .find(|p| p.role == Role::GroupMember)
        .unwrap();
    assert_eq!(member.group.as_deref(), Some("readers"));
    assert_eq!(member.lag, Some(0));
    assert_eq!(snap.geometry, bus.config());
    assert!(snap.slab.iter().all(|c| c.free == c.total));
}

#[test]
fn a_forked_child_dropping_inherited_handles_leaves_the_parent_attached() {
    let g = BusGuard::new("forkdrop");
    let bus = Bus::create(&g.name, &small()).unwrap();
    let mut sub = bus.subscribe().unwrap();
    let mut publisher = bus.publisher().unwrap();
    let rows_before = bus.snapshot().processes.len();
    // SAFETY: the child only drops handles (no allocation-heavy or locking work the parent's
    // other threads could hold) and ends with `_exit`.
    match unsafe { nix::unistd::fork() }.unwrap() {
        nix::unistd::ForkResult::Child => {
            // What a `multiprocessing` worker leaving a `with` block does to an inherited engine.
            drop(sub);
            drop(publisher);
            drop(bus);
            // SAFETY: ends the child at once.
            unsafe { libc::_exit(0) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            nix::sys::wait::waitpid(child, None).unwrap();
        }
    }
    assert_eq!(bus.snapshot().processes.len(), rows_before);
    for i in 0..10u8 {
        publisher.publish("t", Codec::Raw, &[i], SEC).unwrap();
    }
    let mut got = Vec::new();
    while got.len() < 10 {
        let m = sub.recv(SEC).unwrap().expect("the parent still receives");
        got.push(m.payload[0]);
    }
    assert_eq!(got, (0..10).collect::<Vec<u8>>());
    drop((sub, publisher, bus));
    assert_idle(&g.name);
}

/// Moves a new, idle bus's ring positions on to `head`, as if that many messages had passed
/// through it (the header's `head` word, and each slot's sequence word for its next position).
fn advance_positions(name: &str, head: u64) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(shm_path(name))
        .unwrap();
    let read_u64 = |off: u64| {
        let mut b = [0u8; 8];
        f.read_exact_at(&mut b, off).unwrap();
        u64::from_ne_bytes(b)
    };
    let cap = inspect(name).unwrap().geometry.ring_capacity as u64;
    let slots_off = read_u64(72);
    let len = f.metadata().unwrap().len();
    for pos in head..head + cap {
        let off = slots_off + (pos % cap) * 192;
        assert!(
            off + 8 <= len,
            "slot offset {off} outside the {len}-byte file"
        );
        f.write_all_at(&pos.to_ne_bytes(), off).unwrap();
    }
    f.write_all_at(&head.to_ne_bytes(), 256).unwrap();
}

#[test]
fn positions_past_two_to_the_48_keep_working() {
    let g = BusGuard::new("pos48");
    let bus = Bus::create(&g.name, &small()).unwrap();
    // 2^48 positions are about 163 days at 20M messages per second.
    advance_positions(&g.name, (1 << 48) - 20);
    let mut fanout = bus.subscribe().unwrap();
    let mut member = bus.subscribe_group("g").unwrap();
    let mut publisher = bus.publisher().unwrap();
    let mut late = None;
    let (mut got_fanout, mut got_group, mut got_late) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..60u8 {
        if i == 30 {
            late = Some(bus.subscribe().unwrap());
        }
        let pos = publisher.publish("t", Codec::Raw, &[i], SEC).unwrap();
        assert_eq!(pos, Some((1 << 48) - 20 + i as u64));
        got_fanout.push(fanout.recv(SEC).unwrap().expect("fan-out").payload[0]);
        got_group.push(member.recv(SEC).unwrap().expect("group").payload[0]);
        if let Some(late) = late.as_mut() {
            got_late.push(late.recv(SEC).unwrap().expect("late joiner").payload[0]);
        }
    }
    let all: Vec<u8> = (0..60).collect();
    assert_eq!(got_fanout, all);
    assert_eq!(got_group, all);
    assert_eq!(got_late, (30..60).collect::<Vec<u8>>());
    assert_eq!(member.pending(), 0);
    drop((fanout, member, late, publisher, bus));
    assert_idle(&g.name);
}

#[test]
fn interest_changes_while_the_subscriber_waits_in_another_thread() {
    let g = BusGuard::new("interest-change");
    let bus = Bus::create(&g.name, &small()).unwrap();
    let mut sub = bus
        .subscribe_with(&event_engine_shm::SubscribeOptions {
            topics: Some(Vec::new()),
            ..Default::default()
        })
        .unwrap();
    let interest = sub.interest();
    let mut p = bus.publisher().unwrap();
    // Wanting nothing, it is addressed nothing: a publish-only peer never waits for it.
    for _ in 0..3 * 16 {
        assert_eq!(p.publish("a.b", Codec::Raw, b"x", NOW).unwrap(), None);
    }
    let waiter = std::thread::spawn(move || {
        let m = sub.recv(SEC).unwrap().map(|m| m.topic.to_string());
        (m, sub)
    });
    interest.set(Some(&["a.{x}".to_string()])).unwrap();
    assert!(p.publish("a.b", Codec::Raw, b"y", SEC).unwrap().is_some());
    let (got, sub) = waiter.join().unwrap();
    assert_eq!(got.as_deref(), Some("a.b"));
    assert!(matches!(
        interest.set(Some(&["a./x".to_string()])),
        Err(BusError::BadTopic { .. })
    ));
    assert_eq!(p.publish("z", Codec::Raw, b"x", NOW).unwrap(), None);
    interest.set(None).unwrap();
    assert!(p.publish("z", Codec::Raw, b"x", NOW).unwrap().is_some());
    // The handle shares the attachment, like the subscriber: the bus row goes with the last.
    drop((sub, p, bus, interest));
    assert_idle(&g.name);
}

fn lossy() -> event_engine_shm::SubscribeOptions {
    event_engine_shm::SubscribeOptions {
        lossy: true,
        ..Default::default()
    }
}

/// A payload of `len` bytes that says which message it is in every byte, so a copy torn by a
/// slot's reuse shows.
fn stamped(i: u64, len: usize) -> Vec<u8> {
    let mut b = vec![(i % 251) as u8; len];
    b[..8].copy_from_slice(&i.to_le_bytes());
    b
}

fn check_stamped(p: &[u8]) -> u64 {
    let i = u64::from_le_bytes(p[..8].try_into().unwrap());
    assert!(
        p[8..].iter().all(|&x| x == (i % 251) as u8),
        "torn copy of {i}"
    );
    i
}

/// A lossy subscriber that does not read never makes a publisher wait, even beside a lossless
/// one that keeps up; what publishers took from it is counted, and what is left it reads in
/// order.
#[test]
fn lossy_subscriber_never_holds_a_publisher_back_and_counts_what_it_missed() {
    let g = BusGuard::new("lossy");
    let bus = Bus::create(&g.name, &small()).unwrap();
    let monitor = bus.subscribe_with(&lossy()).unwrap();
    let mut keeper = bus.subscribe().unwrap();
    let mut p = bus.publisher().unwrap();
    const N: u64 = 16 * 20;
    for i in 0..N {
        // Inline and slab-block payloads alike; never a wait (timeout zero).
        let body = stamped(i, if i % 3 == 0 { 600 } else { 40 });
        p.publish("t", Codec::Raw, &body, NOW)
            .unwrap_or_else(|e| panic!("message {i}: {e}"));
        assert_eq!(check_stamped(keeper.recv(NOW).unwrap().unwrap().payload), i);
    }
    let mut monitor = monitor;
    let missed = monitor.missed();
    assert!(missed >= N - 16, "missed {missed}");
    let mut got = Vec::new();
    while let Some(m) = monitor.recv(NOW).unwrap() {
        got.push(check_stamped(m.payload));
    }
    assert_eq!(got.len() as u64 + missed, N);
    assert!(got.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(got.last(), Some(&(N - 1)));
    let snap = bus.snapshot();
    let row = snap
        .processes
        .iter()
        .find(|r| r.lossy)
        .expect("a lossy row");
    assert_eq!(row.missed, missed);
    drop((monitor, keeper, p, bus));
    assert_idle(&g.name);
}

/// A slow lossy reader on its own thread while a publisher sends as fast as it can: every copy it
/// returns is whole and in order, and what it read plus what it missed is everything. The
/// publisher never waits for the reader's backlog, but it may wait for the one message the reader
/// is between claiming and releasing (a few instructions, unless the reader is descheduled
/// there), so it publishes with a timeout rather than none.
#[test]
fn lossy_reader_racing_a_publisher_gets_whole_messages_in_order() {
    let g = BusGuard::new("lossy-race");
    let bus = Bus::create(&g.name, &small()).unwrap();
    let mut monitor = bus.subscribe_with(&lossy()).unwrap();
    const N: u64 = 20_000;
    std::thread::scope(|s| {
        let bus2 = bus.clone();
        s.spawn(move || {
            let mut p = bus2.publisher().unwrap();
            for i in 0..N {
                let body = stamped(i, if i % 2 == 0 { 300 } else { 24 });
                p.publish("t", Codec::Raw, &body, SEC)
                    .unwrap_or_else(|e| panic!("message {i}: {e}"));
            }
            p.publish("end", Codec::Raw, &stamped(N, 24), SEC).unwrap();
        });
        let mut got = Vec::new();
        loop {
            let m = monitor.recv(SEC).unwrap().expect("the end marker");
            let i = check_stamped(m.payload);
            if m.topic == "end" {
                break;
            }
            got.push(i);
            if got.len() % 64 == 0 {
                std::thread::yield_now();
            }
        }
        assert!(got.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(got.len() as u64 + monitor.missed(), N);
    });
    drop((monitor, bus));
    assert_idle(&g.name);
}

/// A group cannot be lossy: the error says why and what to do instead.
#[test]
fn a_lossy_group_is_refused_with_the_reason() {
    let g = BusGuard::new("lossy-group");
    let bus = Bus::create(&g.name, &small()).unwrap();
    let err = bus
        .subscribe_with(&event_engine_shm::SubscribeOptions {
            group: Some("w".into()),
            lossy: true,
            ..Default::default()
        })
        .err()
        .expect("refused");
    let text = err.to_string();
    assert!(matches!(err, BusError::BadConfig { .. }), "{text}");
    assert!(
        text.contains("cannot be lossy") && text.contains("without a group"),
        "{text}"
    );
}

#[test]
fn a_publisher_never_waits_for_the_consumers_it_is_told_to_avoid() {
    let g = BusGuard::new("never-wait");
    let bus = Bus::create(&g.name, &small()).unwrap();
    let mut mine = bus.subscribe().unwrap();
    let mut other = bus.subscribe().unwrap();
    assert_ne!(mine.consumer_mask(), other.consumer_mask());
    let mut p = bus.publisher().unwrap();
    for i in 0..u64::from(bus.config().ring_capacity) {
        p.publish("t", Codec::Raw, &payload(0, i), NOW).unwrap();
    }
    // Full, and the slot the next message needs is held by both subscribers.
    p.set_never_wait_for(mine.consumer_mask());
    let started = std::time::Instant::now();
    match p.publish("t", Codec::Raw, b"x", SEC) {
        Err(BusError::WouldWaitFor { consumers }) => assert_eq!(consumers, mine.consumer_mask()),
        other => panic!("expected WouldWaitFor, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(1));
    // Once `mine` released that slot, the publish waits for `other` like any other.
    assert_eq!(mine.recv_batch(1, NOW, |_| {}).unwrap(), 1);
    assert!(matches!(
        p.publish("t", Codec::Raw, b"x", Some(Duration::from_millis(50))),
        Err(BusError::Timeout)
    ));
    assert_eq!(other.recv_batch(1, NOW, |_| {}).unwrap(), 1);
    assert!(p.publish("t", Codec::Raw, b"x", NOW).unwrap().is_some());
    // Large messages: a slab class found empty refuses while an avoided consumer holds blocks.
    drop((mine, other, p));
    let mut mine = bus.subscribe().unwrap();
    let mut p = bus.publisher().unwrap();
    let big = vec![7u8; 2000];
    let mut sent = 0;
    while p.publish("t", Codec::Raw, &big, NOW).is_ok() {
        sent += 1;
    }
    // The blocks ran out before the ring did.
    assert!(sent > 0 && sent < bus.config().ring_capacity, "{sent}");
    p.set_never_wait_for(mine.consumer_mask());
    assert!(matches!(
        p.publish("t", Codec::Raw, &big, SEC),
        Err(BusError::WouldWaitFor { .. })
    ));
    while mine.recv_batch(64, NOW, |_| {}).unwrap() > 0 {}
    assert!(p.publish("t", Codec::Raw, &big, NOW).unwrap().is_some());
    drop((mine, p, bus));
    assert_idle(&g.name);
}

#[test]
fn a_derived_slab_memory_matches_the_bus_it_derived() {
    let g = BusGuard::new("derived");
    let cfg = BusConfig {
        max_message: 64 << 10,
        slab_memory: None,
        ..small()
    };
    let bus = Bus::create(&g.name, &cfg).unwrap();
    let memory = event_engine_shm::default_slab_memory(64 << 10);
    assert_eq!(bus.config().slab_memory, Some(memory));
    // Asking again with `None`, or with the value it derived, attaches.
    drop(Bus::open_or_create(&g.name, &cfg).unwrap());
    let explicit = BusConfig {
        slab_memory: Some(memory),
        ..cfg.clone()
    };
    drop(Bus::open_or_create(&g.name, &explicit).unwrap());
    let s = bus.snapshot();
    let used: u64 = s
        .slab
        .iter()
        .map(|c| c.block_size as u64 * c.total as u64)
        .sum();
    assert!(used <= memory && memory - used < 256, "{used} of {memory}");
    assert!(s.slab.last().unwrap().total >= 4);
    drop(bus);
    assert_idle(&g.name);
}
