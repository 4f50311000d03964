//! Crash scenarios: processes are SIGKILLed at chosen and at random points, and the survivors must
//! keep the bus working (invariant 3), lose nothing beyond counted redelivery (invariant 1) and
//! end with every block free once everyone has left (invariant 2).

mod common;

use common::{assert_idle, env, kill, payload, say, spawn, unpayload, BusGuard, Lines, ROLE};
use event_engine_shm::{shm_path, Bus, BusConfig, Codec, SubscribeOptions, Subscriber};
use std::collections::HashMap;
use std::os::unix::fs::FileExt;
use std::time::Duration;

const ENTRY: &str = "child";
const WAIT: Option<Duration> = Some(Duration::from_secs(30));

fn cfg(ring: u32) -> BusConfig {
    BusConfig {
        ring_capacity: ring,
        max_message: 4096,
        slab_memory: Some(80 << 10),
        max_processes: 32,
        ..BusConfig::default()
    }
}

/// A small xorshift generator; the seed is printed so a failing run can be repeated.
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = std::env::var("CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        eprintln!("crash test seed {seed} (set CRASH_SEED to repeat)");
        Rng(seed)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Child process entry point; a no-op when run as an ordinary test.
#[test]
fn child() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let bus = Bus::open(&env("BUS")).unwrap();
    match role.as_str() {
        // Takes one message and holds it forever.
        "hold-fanout" | "hold-member" => {
            let mut sub = if role == "hold-fanout" {
                bus.subscribe()
            } else {
                bus.subscribe_group("w")
            }
            .unwrap();
            say("ready");
            let m = sub.recv(WAIT).unwrap().expect("message");
            say(format!("held {}", unpayload(m.payload).1));
            loop {
                std::thread::park();
            }
        }
        // Publishes numbered messages until killed.
        "spam" => {
            let id: u32 = env("ID").parse().unwrap();
            let mut p = bus.publisher().unwrap();
            say("ready");
            for i in 0.. {
                let mut body = vec![0u8; if i % 2 == 0 { 900 } else { 12 }];
                body[..12].copy_from_slice(&payload(id, i));
                p.publish("spam", Codec::Raw, &body, WAIT).unwrap();
            }
        }
        // Publishes numbered messages in runs of 1 to 9 until killed.
        "spam-batch" => {
            let id: u32 = env("ID").parse().unwrap();
            let mut p = bus.publisher().unwrap();
            say("ready");
            let mut next = 0u64;
            for run in 0.. {
                let k = 1 + run % 9;
                let first = next;
                next += p
                    .publish_many("spam", Codec::Raw, 12, k, WAIT, |i, b| {
                        b.copy_from_slice(&payload(id, first + i as u64))
                    })
                    .unwrap() as u64;
            }
        }
        // Publishes N numbered messages and exits.
        "publish" => {
            let id: u32 = env("ID").parse().unwrap();
            let n: u64 = env("N").parse().unwrap();
            let mut p = bus.publisher().unwrap();
            for i in 0..n {
                p.publish("data", Codec::Raw, &payload(id, i), WAIT)
                    .unwrap();
            }
        }
        // Receives (fan-out or as a group member) and reports each message before acknowledging it.
        "recv-fanout" | "recv-member" => {
            let mut sub = if role == "recv-fanout" {
                bus.subscribe()
            } else {
                bus.subscribe_group("w")
            }
            .unwrap();
            say("ready");
            loop {
                let m = sub.recv(WAIT).unwrap().expect("message");
                let (id, i) = unpayload(m.payload);
                say(format!("{id} {i}"));
            }
        }
        // Pops a slab block for a large message and is killed while filling it, before the claim.
        "die-in-fill" => {
            let mut p = bus.publisher().unwrap();
            let _ = p.publish_with("data", Codec::Raw, 2000, WAIT, |_| {
                say("filling");
                loop {
                    std::thread::park();
                }
            });
        }
        // Stops itself (SIGSTOP) at a point of a large message's publish: right after popping
        // its block, or in the claim between the intent and the CAS; or after a loan's pop.
        "stop-at-pop" | "stop-at-intent" | "loan-stop-at-pop" => {
            use event_engine_shm::testing::{stop_next_publish_at, Point};
            let mut p = bus.publisher().unwrap();
            stop_next_publish_at(match role.as_str() {
                "stop-at-intent" => Point::Intent,
                _ => Point::Popped,
            });
            if role != "loan-stop-at-pop" {
                let _ = p.publish("data", Codec::Raw, &[1u8; 2000], WAIT);
            } else {
                let _ = p.loan_block(2000, WAIT);
            }
        }
        // Attaches as a publisher and waits to be killed.
        "idle-publisher" => {
            let _p = bus.publisher().unwrap();
            say(format!("row {}", _p.row()));
            loop {
                std::thread::park();
            }
        }
        other => panic!("unknown role {other}"),
    }
    std::process::exit(0);
}

#[test]
fn killed_fanout_subscriber_stops_holding_publishers_back() {
    let g = BusGuard::new("crash-fanout");
    let bus = Bus::create(&g.name, &cfg(8)).unwrap();
    let mut mine = bus.subscribe().unwrap();
    let mut child = spawn(ENTRY, "hold-fanout", &[("BUS", g.name.clone())]);
    let mut lines = Lines::of(&mut child);
    assert_eq!(lines.next().as_deref(), Some("ready"));
    const N: u64 = 100;
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..N {
                assert_eq!(unpayload(mine.recv(WAIT).unwrap().unwrap().payload).1, i);
            }
        });
        let mut p = bus.publisher().unwrap();
        p.publish("data", Codec::Raw, &payload(0, 0), WAIT).unwrap();
        assert_eq!(lines.next().as_deref(), Some("held 0"));
        // The ring fills up behind the child's held message; kill it, and the blocked publisher
        // must reap it and carry on.
        let killer = s.spawn(|| kill(&mut child.0));
        for i in 1..N {
            p.publish("data", Codec::Raw, &payload(0, i), WAIT).unwrap();
        }
        killer.join().unwrap();
    });
    assert!(bus.snapshot().counters.reaped >= 1);
    drop((mine, bus));
    assert_idle(&g.name);
}

#[test]
fn reap_report_lists_each_process_once_and_counts_every_freed_block() {
    let g = BusGuard::new("crash-report");
    let bus = Bus::create(&g.name, &cfg(8)).unwrap();
    let mut child = spawn(ENTRY, "hold-fanout", &[("BUS", g.name.clone())]);
    let pid = child.0.id();
    let mut lines = Lines::of(&mut child);
    assert_eq!(lines.next().as_deref(), Some("ready"));
    let mut p = bus.publisher().unwrap();
    // Large enough to need a slab block, so releasing it frees one.
    let mut body = vec![0u8; 900];
    body[..12].copy_from_slice(&payload(0, 0));
    p.publish("data", Codec::Raw, &body, WAIT).unwrap();
    assert_eq!(lines.next().as_deref(), Some("held 0"));
    assert_eq!(bus.snapshot().slab.iter().map(|c| c.used).sum::<u32>(), 1);
    kill(&mut child.0);
    // Our bus handle and publisher stay live, so this is a live reap, not the final sweep.
    let report = bus.reap().unwrap();
    assert_eq!(report.processes.len(), 1, "{report:?}");
    assert_eq!(report.processes[0].pid, pid);
    assert_eq!(
        report.processes[0].rows.len(),
        2,
        "its bus row and its subscriber row"
    );
    assert_eq!(
        report.blocks_freed, 1,
        "the block only the dead subscriber held"
    );
    assert_eq!(bus.snapshot().slab.iter().map(|c| c.used).sum::<u32>(), 0);
    drop((p, bus));
    assert_idle(&g.name);
}

#[test]
fn killed_group_member_message_goes_to_a_live_member() {
    let g = BusGuard::new("crash-member");
    let bus = Bus::create(&g.name, &cfg(64)).unwrap();
    let mut child = spawn(ENTRY, "hold-member", &[("BUS", g.name.clone())]);
    let mut lines = Lines::of(&mut child);
    assert_eq!(lines.next().as_deref(), Some("ready"));
    let mut p = bus.publisher().unwrap();
    p.publish("data", Codec::Raw, &payload(0, 0), WAIT).unwrap();
    // The child is the group's only member, so it takes message 0; we join after that.
    assert_eq!(lines.next().as_deref(), Some("held 0"));
    let mut mine = bus.subscribe_group("w").unwrap();
    const N: u64 = 40;
    for i in 1..N {
        p.publish("data", Codec::Raw, &payload(0, i), WAIT).unwrap();
    }
    kill(&mut child.0);
    let mut got = Vec::new();
    while got.len() < N as usize {
        // Waiting long enough makes the subscriber reap on its own; no explicit reap here.
        let m = mine.recv(WAIT).unwrap().expect("message");
        got.push(unpayload(m.payload).1);
    }
    got.sort_unstable();
    assert_eq!(got, (0..N).collect::<Vec<_>>());
    assert_eq!(mine.redelivered(), 1);
    let snap = bus.snapshot();
    assert_eq!(snap.counters.redeliveries, 1);
    assert_eq!(snap.groups[0].redelivered, 1);
    drop((mine, p, bus));
    assert_idle(&g.name);
}

/// A group whose only member is killed keeps its backlog, the message the member held
/// included, whoever reaps in between: a worker started later handles every message.
#[test]
fn group_keeps_its_backlog_when_every_member_dies() {
    let g = BusGuard::new("crash-orphan");
    let bus = Bus::create(&g.name, &cfg(64)).unwrap();
    let mut child = spawn(ENTRY, "hold-member", &[("BUS", g.name.clone())]);
    let mut lines = Lines::of(&mut child);
    assert_eq!(lines.next().as_deref(), Some("ready"));
    let mut p = bus.publisher().unwrap();
    p.publish("data", Codec::Raw, &payload(0, 0), WAIT).unwrap();
    assert_eq!(lines.next().as_deref(), Some("held 0"));
    const N: u64 = 40;
    for i in 1..N / 2 {
        p.publish("data", Codec::Raw, &payload(0, i), WAIT).unwrap();
    }
    kill(&mut child.0);
    // What an idle subscriber or `event-engine reap` does meanwhile.
    let report = bus.reap().unwrap();
    assert_eq!(report.processes.len(), 1);
    assert_eq!(report.redelivered, 1);
    let snap = bus.snapshot();
    assert_eq!(snap.groups.len(), 1, "{snap:#?}");
    assert_eq!(snap.groups[0].members, 0);
    assert!(snap.groups[0].kept_for_ms.is_some());
    // The group goes on receiving while it has no member.
    for i in N / 2..N {
        p.publish("data", Codec::Raw, &payload(0, i), WAIT).unwrap();
    }
    let mut worker = bus.subscribe_group("w").unwrap();
    let mut got = Vec::new();
    while got.len() < N as usize {
        let m = worker
            .recv(Some(Duration::from_secs(5)))
            .unwrap()
            .expect("the kept backlog");
        got.push(unpayload(m.payload).1);
    }
    got.sort_unstable();
    assert_eq!(got, (0..N).collect::<Vec<_>>());
    assert_eq!(bus.snapshot().groups[0].kept_for_ms, None);
    drop((worker, p, bus));
    assert_idle(&g.name);
}

/// Starts `n` group members that each take one message and hold it, publishes `n` messages,
/// waits until every member holds one, and kills them all. Returns the publisher, kept so that
/// its leave's reap does not run before the test's.
fn kill_members_holding_messages(bus: &Bus, name: &str, n: u64) -> event_engine_shm::Publisher {
    let mut members: Vec<_> = (0..n)
        .map(|_| spawn(ENTRY, "hold-member", &[("BUS", name.to_owned())]))
        .collect();
    let mut lines: Vec<_> = members.iter_mut().map(|c| Lines::of(&mut c.0)).collect();
    for l in &mut lines {
        assert_eq!(l.next().as_deref(), Some("ready"));
    }
    let mut p = bus.publisher().unwrap();
    for i in 0..n {
        p.publish("data", Codec::Raw, &payload(0, i), WAIT).unwrap();
    }
    let mut held: Vec<u64> = lines
        .iter_mut()
        .map(|l| {
            let line = l.next().expect("a held message");
            line.strip_prefix("held ").unwrap().parse().unwrap()
        })
        .collect();
    held.sort_unstable();
    assert_eq!(held, (0..n).collect::<Vec<_>>());
    for m in &mut members {
        kill(&mut m.0);
    }
    p
}

/// Seventeen members, one more than a group's redelivery list holds, die each holding a
/// message. The reap completes all the same: every dead process is reclaimed, sixteen messages
/// go on the list and the seventeenth stays in the group's backlog, and the group counts as
/// having no member (before, the seventeenth dead row stayed in the table as a member, so the
/// group was never orphaned). A worker started later gets all seventeen: the last one is listed
/// by a later reap (here the worker's own) once the list has room.
#[test]
fn seventeen_members_killed_holding_messages_are_all_reaped() {
    let g = BusGuard::new("crash-17");
    let bus = Bus::create(
        &g.name,
        &BusConfig {
            max_processes: 64,
            ..cfg(32)
        },
    )
    .unwrap();
    let p = kill_members_holding_messages(&bus, &g.name, 17);
    let report = bus.reap().unwrap();
    assert_eq!(report.processes.len(), 17, "{report:#?}");
    assert_eq!(report.redelivered, 16, "{report:#?}");
    assert_eq!(report.redelivery_deferred, 1, "{report:#?}");
    let snap = bus.snapshot();
    assert_eq!(snap.groups[0].members, 0, "{snap:#?}");
    assert!(snap.groups[0].kept_for_ms.is_some(), "{snap:#?}");
    assert!(snap.processes.iter().all(|p| p.alive), "{snap:#?}");
    let mut worker = bus.subscribe_group("w").unwrap();
    let mut got = Vec::new();
    while got.len() < 17 {
        let m = worker
            .recv(Some(Duration::from_secs(5)))
            .unwrap()
            .expect("every message the dead members held");
        got.push(unpayload(m.payload).1);
    }
    got.sort_unstable();
    assert_eq!(got, (0..17).collect::<Vec<_>>());
    assert!(worker.recv(Some(Duration::ZERO)).unwrap().is_none());
    assert_eq!(bus.snapshot().counters.redeliveries, 17);
    drop((worker, p, bus));
    assert_idle(&g.name);
}

/// Seventeen members killed holding messages, and nobody joins again: once the retention has
/// passed, a reap drops the group and counts the seventeen messages, and publishers no longer
/// wait for it (before, the group was kept for ever: 15 of 40 later publishes went through on
/// a 32-slot ring, then every one timed out).
#[test]
fn group_of_seventeen_killed_members_is_dropped_after_its_retention() {
    let g = BusGuard::new("crash-17-expiry");
    const RETENTION_MS: u64 = 200;
    let bus = Bus::create(
        &g.name,
        &BusConfig {
            max_processes: 64,
            group_retention_ms: RETENTION_MS,
            ..cfg(32)
        },
    )
    .unwrap();
    let mut p = kill_members_holding_messages(&bus, &g.name, 17);
    let first = bus.reap().unwrap();
    assert_eq!(first.processes.len(), 17, "{first:#?}");
    assert_eq!(first.groups_expired, 0, "{first:#?}");
    // Waiting for time itself: the retention is a duration.
    std::thread::sleep(Duration::from_millis(RETENTION_MS + 50));
    let report = bus.reap().unwrap();
    assert_eq!(report.groups_expired, 1, "{report:#?}");
    assert_eq!(report.backlog_dropped, 17, "{report:#?}");
    assert!(bus.snapshot().groups.is_empty());
    for i in 0..40 {
        p.publish(
            "data",
            Codec::Raw,
            &payload(0, i),
            Some(Duration::from_secs(1)),
        )
        .unwrap();
    }
    assert_eq!(bus.snapshot().counters.backlog_dropped, 17);
    drop((p, bus));
    assert_idle(&g.name);
}

/// A message still being written when its group is dropped is dropped with the group, and
/// counted in `backlog_dropped` by the reap that finds it published (before, only what the
/// group held at the drop was counted).
#[test]
fn a_message_being_written_to_a_dropped_group_is_counted() {
    let g = BusGuard::new("expiry-in-flight");
    let bus = Bus::create(
        &g.name,
        &BusConfig {
            group_retention_ms: 0,
            ..cfg(8)
        },
    )
    .unwrap();
    let member = bus.subscribe_group("w").unwrap();
    let mut p = bus.publisher().unwrap();
    for i in 0..3 {
        p.publish("data", Codec::Raw, &payload(0, i), WAIT).unwrap();
    }
    let (claimed_tx, claimed_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|s| {
        let writer = s.spawn(move || {
            // `fill` runs once the position is claimed, before the commit.
            p.publish_many("data", Codec::Raw, 12, 1, WAIT, |_, b| {
                claimed_tx.send(()).unwrap();
                go_rx.recv().unwrap();
                b.copy_from_slice(&payload(0, 3));
            })
            .unwrap();
            p
        });
        claimed_rx.recv().unwrap();
        // The last member leaves; with no retention its leave's reap drops the group.
        drop(member);
        let snap = bus.snapshot();
        assert!(snap.groups.is_empty(), "{snap:#?}");
        assert_eq!(snap.counters.backlog_dropped, 3);
        let unrouted = snap.counters.unrouted;
        go_tx.send(()).unwrap();
        let p = writer.join().unwrap();
        // The message went to the dropped group unless it was counted as wanted by nobody.
        let addressed = 1 - (bus.snapshot().counters.unrouted - unrouted);
        let report = bus.reap().unwrap();
        assert_eq!(report.backlog_dropped, addressed, "{report:#?}");
        let snap = bus.snapshot();
        assert_eq!(snap.counters.backlog_dropped, 3 + addressed);
        drop(p);
    });
    drop(bus);
    assert_idle(&g.name);
}

/// The last member leaving keeps the group too; past the retention the next reap drops it and
/// counts what it held, and publishers no longer wait for it.
#[test]
fn group_without_members_is_kept_for_the_retention_then_dropped() {
    let g = BusGuard::new("orphan-expiry");
    let bus = Bus::create(
        &g.name,
        &BusConfig {
            group_retention_ms: 60_000,
            ..cfg(8)
        },
    )
    .unwrap();
    let mut p = bus.publisher().unwrap();
    drop(bus.subscribe_group("w").unwrap());
    for i in 0..5 {
        p.publish("data", Codec::Raw, &payload(0, i), WAIT).unwrap();
    }
    let mut again = bus.subscribe_group("w").unwrap();
    for i in 0..5 {
        let m = again.recv(Some(Duration::ZERO)).unwrap().expect("kept");
        assert_eq!(unpayload(m.payload).1, i);
    }
    drop(again);
    drop((p, bus));

    let g = BusGuard::new("orphan-expired");
    let bus = Bus::create(
        &g.name,
        &BusConfig {
            group_retention_ms: 0,
            ..cfg(8)
        },
    )
    .unwrap();
    let mut p = bus.publisher().unwrap();
    let member = bus.subscribe_group("w").unwrap();
    for i in 0..5 {
        p.publish("data", Codec::Raw, &payload(0, i), WAIT).unwrap();
    }
    // With no retention, leaving ends the group at once (the leave's own reap).
    drop(member);
    let snap = bus.snapshot();
    assert!(snap.groups.is_empty(), "{snap:#?}");
    assert_eq!(snap.counters.backlog_dropped, 5);
    // Nobody holds the ring: a ring and a half more goes through without waiting.
    for i in 0..12 {
        p.publish("data", Codec::Raw, &payload(0, i), Some(Duration::ZERO))
            .unwrap();
    }
    drop((p, bus));
    assert_idle(&g.name);
}

/// A publisher killed after popping a block, before claiming a slot for it: a reap gives the
/// block back at once, while others are still attached (before, only the final sweep did).
#[test]
fn block_popped_by_a_publisher_killed_before_its_claim_comes_back_at_reap() {
    let g = BusGuard::new("crash-popped");
    let bus = Bus::create(&g.name, &cfg(16)).unwrap();
    let sub = bus.subscribe().unwrap();
    let mut child = spawn(ENTRY, "die-in-fill", &[("BUS", g.name.clone())]);
    let mut lines = Lines::of(&mut child);
    assert_eq!(lines.next().as_deref(), Some("filling"));
    kill_and_reap_one_block(bus, &mut child.0, sub, &g.name);
}

/// Kills `child`, which holds one slab block, and checks that the reap gives that block back
/// and that it is usable again: a ring's worth of large messages goes through to `sub`. Then
/// everyone leaves, and nothing is left in use.
fn kill_and_reap_one_block(
    bus: Bus,
    child: &mut std::process::Child,
    mut sub: Subscriber,
    name: &str,
) {
    let used = |bus: &Bus| bus.snapshot().slab.iter().map(|c| c.used).sum::<u32>();
    assert_eq!(used(&bus), 1);
    kill(child);
    let report = bus.reap().unwrap();
    assert_eq!(report.blocks_freed, 1, "{report:?}");
    assert_eq!(used(&bus), 0);
    let mut p = bus.publisher().unwrap();
    for i in 0..32u64 {
        p.publish("data", Codec::Raw, &vec![i as u8; 2000], WAIT)
            .unwrap();
        assert_eq!(sub.recv(WAIT).unwrap().unwrap().payload[0], i as u8);
    }
    drop((sub, p, bus));
    assert_idle(name);
}

/// A publisher killed right after its pop of a block, before the block is the ring's or a
/// loan's seat's: the pop itself named the block in its row, so a reap gives it back (it used
/// to stay out of use until everyone had left).
#[test]
fn block_of_a_publisher_killed_right_after_its_pop_comes_back_at_reap() {
    block_of_a_publisher_stopped_and_killed_comes_back_as("stop-at-pop");
}

/// A publisher killed in its claim, after its intent names the head position and before the
/// CAS that would take it: nothing was claimed, so no slot can hold its block, and the reap
/// gives the block back (it used to be stranded until everyone had left).
#[test]
fn block_of_a_publisher_killed_between_its_intent_and_its_claim_comes_back_at_reap() {
    block_of_a_publisher_stopped_and_killed_comes_back_as("stop-at-intent");
}

/// [`block_of_a_publisher_killed_right_after_its_pop_comes_back_at_reap`] for a loan.
#[test]
fn block_of_a_loan_killed_right_after_its_pop_comes_back_at_reap() {
    block_of_a_publisher_stopped_and_killed_comes_back_as("loan-stop-at-pop");
}

fn block_of_a_publisher_stopped_and_killed_comes_back_as(role: &str) {
    let g = BusGuard::new("crash-pop");
    let bus = Bus::create(&g.name, &cfg(16)).unwrap();
    let sub = bus.subscribe().unwrap();
    let mut child = spawn(ENTRY, role, &[("BUS", g.name.clone())]);
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let stopped = nix::sys::wait::waitpid(pid, Some(nix::sys::wait::WaitPidFlag::WUNTRACED));
    assert!(
        matches!(stopped, Ok(nix::sys::wait::WaitStatus::Stopped(..))),
        "the child did not stop where it was asked to: {stopped:?}"
    );
    kill_and_reap_one_block(bus, &mut child.0, sub, &g.name);
}

/// An idle lossy subscriber (a monitor) takes no table lock while it waits, not even for the
/// reap an idle subscriber makes every second: stopped during one, it would keep the lock that
/// publishers need to take what it has not read, and so hold them back. A lossless subscriber
/// waiting as long reaps the dead process.
#[test]
fn an_idle_lossy_subscriber_never_takes_the_table_lock_to_reap() {
    let g = BusGuard::new("crash-lossy-idle");
    let bus = Bus::create(&g.name, &cfg(16)).unwrap();
    let mut child = spawn(ENTRY, "idle-publisher", &[("BUS", g.name.clone())]);
    let pid = child.id();
    let mut lines = Lines::of(&mut child);
    assert!(lines.next().is_some_and(|l| l.starts_with("row ")));
    kill(&mut child.0);
    let listed = |bus: &Bus| bus.snapshot().processes.iter().any(|p| p.pid == pid);
    let opts = SubscribeOptions {
        lossy: true,
        ..SubscribeOptions::default()
    };
    let mut monitor = bus.subscribe_with(&opts).unwrap();
    assert!(listed(&bus), "subscribing reaped the dead process already");
    let idle = Some(Duration::from_millis(1500));
    assert!(monitor.recv(idle).unwrap().is_none());
    assert!(listed(&bus), "the idle lossy subscriber reaped");
    let mut sub = bus.subscribe().unwrap();
    assert!(sub.recv(idle).unwrap().is_none());
    assert!(!listed(&bus), "the idle lossless subscriber did not reap");
    drop((monitor, sub, bus));
    assert_idle(&g.name);
}

#[test]
fn slot_claimed_by_a_dead_publisher_is_tombstoned() {
    let g = BusGuard::new("crash-claim");
    let bus = Bus::create(&g.name, &cfg(8)).unwrap();
    let mut sub = bus.subscribe().unwrap();
    let mut child = spawn(ENTRY, "idle-publisher", &[("BUS", g.name.clone())]);
    let row: u64 = Lines::of(&mut child)
        .next()
        .unwrap()
        .strip_prefix("row ")
        .unwrap()
        .parse()
        .unwrap();
    kill(&mut child.0);
    // Make the region look as if the child died right after claiming position 0: head moved to
    // 1, the child's row announces position 0 (a run of one: `0 | 1 << 48`), slot 0 never
    // published. (Offsets: the head word is at 256, rows start at 1024 and are 128 bytes,
    // `publishing` is at 48 within a row.)
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(shm_path(&g.name))
        .unwrap();
    file.write_at(&1u64.to_le_bytes(), 256).unwrap();
    file.write_at(&(1u64 << 48).to_le_bytes(), 1024 + row * 128 + 48)
        .unwrap();
    let mut p = bus.publisher().unwrap();
    p.publish("after", Codec::Raw, b"x", WAIT).unwrap();
    // The subscriber waits at position 0, reaps, finds the claimant dead and moves on.
    let m = sub.recv(WAIT).unwrap().expect("message");
    assert_eq!((m.seq, m.topic), (1, "after"));
    let report = bus.reap().unwrap();
    assert_eq!(
        report.slots_recovered, 0,
        "already recovered by the waiting subscriber"
    );
    drop((sub, p, bus));
    assert_idle(&g.name);
}

#[test]
fn publishers_killed_at_random_points() {
    publishers_killed_at_random_points_as("spam");
}

#[test]
fn batch_publishers_killed_at_random_points() {
    publishers_killed_at_random_points_as("spam-batch");
}

/// Kills a child publishing in role `role` at a random moment, six times over: every message it
/// published arrives once, in order, and the bus ends idle.
fn publishers_killed_at_random_points_as(role: &str) {
    let mut rng = Rng::new();
    let g = BusGuard::new(&format!("crash-{role}"));
    let bus = Bus::create(&g.name, &cfg(16)).unwrap();
    let mut sub = bus.subscribe().unwrap();
    let mut p = bus.publisher().unwrap();
    for round in 0..6u32 {
        let mut child = spawn(
            ENTRY,
            role,
            &[("BUS", g.name.clone()), ("ID", round.to_string())],
        );
        assert_eq!(Lines::of(&mut child).next().as_deref(), Some("ready"));
        let delay = rng.below(20_000);
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_micros(delay));
                kill(&mut child.0);
            });
            // Keep receiving while the child publishes; stop at our own marker after the kill.
            let mut next = 0u64;
            let mut marker_sent = false;
            loop {
                match sub.recv(Some(Duration::from_millis(20))).unwrap() {
                    Some(m) if m.topic == "marker" => break,
                    Some(m) => {
                        let (id, i) = unpayload(m.payload);
                        assert_eq!((id, i), (round, next), "lost or reordered message");
                        next += 1;
                    }
                    None if !marker_sent && child_gone(&bus) => {
                        bus.reap().unwrap();
                        p.publish("marker", Codec::Raw, b"", WAIT).unwrap();
                        marker_sent = true;
                    }
                    None => {}
                }
            }
        });
    }
    drop((sub, p));
    let leftover = bus.reap().unwrap();
    assert!(leftover.processes.is_empty());
    drop(bus);
    assert_idle(&g.name);
}

/// True once no publisher row other than our own remains alive.
fn child_gone(bus: &Bus) -> bool {
    bus.snapshot()
        .processes
        .iter()
        .all(|p| p.pid == std::process::id() || !p.alive)
}

#[test]
fn subscribers_killed_at_random_points_while_several_publishers_run() {
    let mut rng = Rng::new();
    let g = BusGuard::new("crash-subs");
    let bus = Bus::create(&g.name, &cfg(16)).unwrap();
    let mut fan = bus.subscribe().unwrap();
    let mut member = bus.subscribe_group("w").unwrap();
    let mut victims: Vec<_> = ["recv-fanout", "recv-member", "recv-member", "recv-fanout"]
        .iter()
        .map(|role| spawn(ENTRY, role, &[("BUS", g.name.clone())]))
        .collect();
    let mut outputs: Vec<_> = victims.iter_mut().map(|c| Lines::of(c)).collect();
    for o in &mut outputs {
        assert_eq!(o.next().as_deref(), Some("ready"));
    }
    const PUBS: u32 = 2;
    const N: u64 = 400;
    let delays: Vec<u64> = victims.iter().map(|_| rng.below(30_000)).collect();
    let mut group_seen: Vec<(u32, u64)> = Vec::new();
    std::thread::scope(|s| {
        let fan = &mut fan;
        s.spawn(move || {
            let mut next: HashMap<u32, u64> = HashMap::new();
            for _ in 0..PUBS as u64 * N {
                let (id, i) = unpayload(fan.recv(WAIT).unwrap().unwrap().payload);
                let want = next.entry(id).or_insert(0);
                assert_eq!(
                    i, *want,
                    "fan-out subscriber lost or reordered publisher {id}"
                );
                *want += 1;
            }
        });
        let mine = s.spawn(|| {
            let mut seen = Vec::new();
            loop {
                let m = member.recv(WAIT).unwrap().unwrap();
                if m.topic == "stop" {
                    return seen;
                }
                seen.push(unpayload(m.payload));
            }
        });
        let pubs: Vec<_> = (0..PUBS)
            .map(|id| {
                spawn(
                    ENTRY,
                    "publish",
                    &[
                        ("BUS", g.name.clone()),
                        ("ID", id.to_string()),
                        ("N", N.to_string()),
                    ],
                )
            })
            .collect();
        for (v, d) in victims.iter_mut().zip(&delays) {
            std::thread::sleep(Duration::from_micros(*d / 4));
            kill(&mut v.0);
        }
        for mut p in pubs {
            assert!(p.wait().unwrap().success());
        }
        bus.reap().unwrap();
        bus.publisher()
            .unwrap()
            .publish("stop", Codec::Raw, b"", WAIT)
            .unwrap();
        group_seen = mine.join().unwrap();
    });
    for (role, o) in ["recv-fanout", "recv-member", "recv-member", "recv-fanout"]
        .iter()
        .zip(&mut outputs)
    {
        let lines = o.rest();
        if *role == "recv-member" {
            group_seen.extend(lines.iter().map(|l| {
                let mut it = l.split(' ').map(|x| x.parse::<u64>().unwrap());
                (it.next().unwrap() as u32, it.next().unwrap())
            }));
        }
    }
    // Every message reached the group at least once; duplicates only through counted redelivery.
    let total = group_seen.len() as u64;
    group_seen.sort_unstable();
    group_seen.dedup();
    let expected: Vec<(u32, u64)> = (0..PUBS)
        .flat_map(|id| (0..N).map(move |i| (id, i)))
        .collect();
    assert_eq!(group_seen, expected);
    let snap = bus.snapshot();
    assert!(
        total - expected.len() as u64 <= snap.counters.redeliveries,
        "{total} deliveries, {snap:#?}"
    );
    drop((fan, member, bus));
    assert_idle(&g.name);
}

#[test]
fn table_lock_held_by_a_dead_process_is_taken_over() {
    let g = BusGuard::new("crash-lock");
    let bus = Bus::create(&g.name, &cfg(8)).unwrap();
    let mut dead = std::process::Command::new("true").spawn().unwrap();
    let pid = dead.id() as u64;
    dead.wait().unwrap();
    // The lock word (offset 128) names the dead process as owner, as if it died holding it.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(shm_path(&g.name))
        .unwrap();
    file.write_at(&(pid << 32 | 12345).to_le_bytes(), 128)
        .unwrap();
    // Joining needs the lock: it must be taken over, not waited for forever.
    let mut sub = bus.subscribe().unwrap();
    bus.publisher()
        .unwrap()
        .publish("t", Codec::Raw, b"ok", WAIT)
        .unwrap();
    assert_eq!(sub.recv(WAIT).unwrap().unwrap().payload, b"ok");
    drop((sub, bus));
    assert_idle(&g.name);
}
