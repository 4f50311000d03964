//! A publisher stopped between claim and commit (a debugger, a swap storm, `SIGSTOP`), with
//! real processes: the consumers and groups it does not address keep receiving; stopped before
//! it says whom its position is for, it is sealed and publishes again when continued, so that
//! nobody waits for it beyond the bound `docs/delivery.md` states; and `event-engine inspect`
//! names it as the process that holds the others up.

mod common;

use common::*;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use serde_json::Value;
use shm_ring::{Bus, Codec, SubscribeOptions, Subscriber};
use std::io::BufRead;
use std::time::{Duration, Instant};

#[test]
fn child_process() {
    child_main();
}

/// A subscriber of `bus` that wants only `topic`.
fn wanting(bus: &Bus, topic: &str) -> Subscriber {
    let sub = bus.subscribe().unwrap();
    sub.interest().set(Some(&[topic.to_string()])).unwrap();
    sub
}

/// A member of group `group` of `bus`, the group (created here) wanting only `topic`.
fn member_wanting(bus: &Bus, group: &str, topic: &str) -> Subscriber {
    bus.subscribe_with(&SubscribeOptions {
        group: Some(group.to_string()),
        topics: Some(vec![topic.to_string()]),
        lossy: false,
    })
    .unwrap()
}

/// Starts a publisher child that stops itself at `at` (`claimed` or `addressed`) in its
/// publish of one message on `topic`, and waits until it has stopped.
fn stalled(name: &BusName, at: &str, topic: &str) -> ChildProcess {
    let child = ChildProcess::spawn(&format!("stall:{at}:{topic}"), name);
    let pid = Pid::from_raw(child.pid() as i32);
    match waitpid(pid, Some(WaitPidFlag::WUNTRACED)).expect("waitpid") {
        WaitStatus::Stopped(_, Signal::SIGSTOP) => {}
        other => panic!("the publisher did not stop: {other:?}"),
    }
    child
}

/// Continues a stopped child and reads the position it then published.
fn resume(child: &mut ChildProcess) -> String {
    kill(Pid::from_raw(child.pid() as i32), Signal::SIGCONT).expect("SIGCONT");
    let mut line = String::new();
    child.stdout.read_line(&mut line).expect("child stdout");
    line.trim().to_string()
}

/// Consumers and groups that the stopped claimant does not address receive every message
/// published after its position, within the bound `docs/delivery.md` states, while the
/// consumer it addresses waits for it; once the ring comes round to the held position,
/// publishers wait, and `inspect` names the stopped publisher as what they wait for (and lists
/// its claim); after `SIGCONT` everything flows.
#[test]
fn a_stopped_claimant_holds_only_its_addressees_and_inspect_names_it() {
    let name = BusName::new("stall");
    let bus = create(&name);
    let capacity = bus.config().ring_capacity as usize;
    let mut for_a = wanting(&bus, "a");
    let mut for_b = wanting(&bus, "b");
    let mut group_b = member_wanting(&bus, "workers", "b");
    let mut child = stalled(&name, "addressed", "a");
    let child_pid = child.pid();

    // Position 0 is claimed for `for_a` and held. `for_b` and the group pass it.
    let mut publisher = bus.publisher().unwrap();
    let mut slowest = Duration::ZERO;
    for i in 0..capacity - 1 {
        let pos = publisher
            .publish("b", Codec::Raw, &[i as u8], Some(Duration::from_secs(5)))
            .unwrap()
            .expect("for_b wants b");
        assert_eq!(pos, i as u64 + 1);
        for (who, sub) in [("for_b", &mut for_b), ("the group", &mut group_b)] {
            let t = Instant::now();
            let m = sub
                .recv(Some(Duration::from_secs(5)))
                .unwrap()
                .unwrap_or_else(|| panic!("{who} got nothing at position {pos}: frozen"));
            slowest = slowest.max(t.elapsed());
            assert_eq!(m.payload, [i as u8]);
        }
    }
    eprintln!("slowest receive behind the stopped claimant: {slowest:?}");
    assert!(
        slowest < Duration::from_millis(100),
        "a consumer the stopped claimant does not address waited {slowest:?}"
    );
    assert!(for_a.recv(Some(Duration::ZERO)).unwrap().is_none());

    // Inspect lists the claim and whom it is for.
    let r = inspect_json(&name);
    let holding = r["holding"].as_array().unwrap();
    assert_eq!(holding.len(), 1, "{r:#}");
    assert_eq!(holding[0]["pid"], child_pid);
    assert_eq!(holding[0]["first"], 0);
    assert_eq!(holding[0]["addressed"].as_array().unwrap().len(), 1);
    assert_eq!(holding[0]["addressed"][0]["pids"][0], std::process::id());

    // The ring has come round to the held position: the next publish waits, and inspect names
    // the stopped publisher as what it waits for (not the subscribers).
    let t = std::thread::spawn({
        let bus = Bus::open(&name.0).unwrap();
        move || {
            let mut p = bus.publisher().unwrap();
            p.publish("b", Codec::Raw, b"late", Some(Duration::from_secs(30)))
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let blocked = loop {
        let r = inspect_json(&name);
        if let Some(b) = r["blocked"].as_array().and_then(|b| b.first()) {
            break b.clone();
        }
        assert!(Instant::now() < deadline, "no blocked publisher: {r:#}");
        std::thread::yield_now();
    };
    assert_eq!(blocked["held_by"]["pid"], child_pid, "{blocked:#}");
    assert_eq!(blocked["held_by"]["position"], 0);
    let text = stdout(&run(&["inspect", &name.0]));
    let names = format!("publisher pid {child_pid} (position 0 claimed, not published)");
    assert!(text.contains(&names), "{text}");
    // The stopped publisher itself is holding, not waiting.
    let r = inspect_json(&name);
    assert!(
        r["blocked"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["pid"] != child_pid),
        "{r:#}"
    );

    // Continued, it publishes; the waiting publisher gets its slot.
    assert_eq!(resume(&mut child), "published Some(0)");
    let m = for_a.recv(Some(Duration::from_secs(5))).unwrap().unwrap();
    assert_eq!((m.topic, m.payload), ("a", &b"held"[..]));
    // Acknowledges it: the slot is free for the waiting publisher.
    assert!(for_a.recv(Some(Duration::ZERO)).unwrap().is_none());
    let late = t.join().unwrap().unwrap();
    assert_eq!(late, Some(capacity as u64));
    for sub in [&mut for_b, &mut group_b] {
        let m = sub.recv(Some(Duration::from_secs(5))).unwrap().unwrap();
        assert_eq!(m.payload, b"late");
    }
    let v: Value = inspect_json(&name);
    assert!(v["holding"].as_array().unwrap().is_empty(), "{v:#}");
}

/// A claimant stopped before it says whom its position is for: every consumer that reaches
/// the position waits for it (it cannot know whether the message is its own) no longer than the
/// seal bound (1 ms), then seals the position and goes on; the claimant, continued, publishes
/// its message at a new position, and the consumer it was for gets it. Measured from the
/// moment the message behind the stopped position is published (the receiver is asleep at the
/// stopped position by then), in every round: far below the 50 ms sleep slice, and never
/// waiting for the `SIGCONT`.
#[test]
fn a_claimant_stopped_before_announcing_is_sealed_and_publishes_again() {
    let name = BusName::new("seal");
    let bus = create(&name);
    let mut for_a = wanting(&bus, "a");
    let mut for_b = wanting(&bus, "b");
    let mut group_b = member_wanting(&bus, "workers", "b");
    let mut publisher = bus.publisher().unwrap();
    let mut latencies = Vec::new();
    for round in 0..10u8 {
        let mut child = stalled(&name, "claimed", "a");
        let sleeping = bus_sleepers(&name);
        std::thread::scope(|s| {
            let receiver = s.spawn(|| {
                let m = for_b
                    .recv(Some(Duration::from_secs(10)))
                    .unwrap()
                    .expect("the b message");
                assert_eq!(m.payload, [round]);
                Instant::now()
            });
            // `for_b` is parked at the claimed position, asleep, before the b message exists.
            wait_until(|| bus_sleepers(&name) > sleeping, "the receiver to sleep");
            let published = Instant::now();
            publisher
                .publish("b", Codec::Raw, &[round], None)
                .unwrap()
                .expect("for_b wants b");
            let got = receiver.join().unwrap();
            latencies.push(got.duration_since(published));
        });
        let m = group_b
            .recv(Some(Duration::from_secs(10)))
            .unwrap()
            .unwrap();
        assert_eq!(m.payload, [round]);
        // The sealed claimant publishes again, later in the ring, for `for_a`.
        let line = resume(&mut child);
        let pos: u64 = line
            .strip_prefix("published Some(")
            .and_then(|l| l.strip_suffix(')'))
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the claimant said {line:?}"));
        let m = for_a.recv(Some(Duration::from_secs(10))).unwrap().unwrap();
        assert_eq!((m.topic, m.payload, m.seq), ("a", &b"held"[..], pos));
        drop(child);
    }
    eprintln!("receives behind a claimant stopped before announcing: {latencies:?}");
    let worst = latencies.iter().max().unwrap();
    assert!(
        *worst < Duration::from_millis(20),
        "a receiver waited {worst:?} behind a stopped claimant (the seal bound is 1 ms)"
    );
    assert!(inspect_json(&name)["holding"]
        .as_array()
        .unwrap()
        .is_empty());
}

/// No receiver reaches the stopped claimant's position (the only subscriber is not reading):
/// when the ring comes round to it, the publisher that needs its slot seals it instead of
/// waiting for the `SIGCONT`, and nothing is lost.
#[test]
fn a_publisher_a_ring_later_seals_a_claim_never_announced() {
    let name = BusName::new("sealpub");
    let bus = create(&name);
    let capacity = bus.config().ring_capacity as u64;
    let mut for_all = bus.subscribe().unwrap();
    let mut child = stalled(&name, "claimed", "a");
    let mut publisher = bus.publisher().unwrap();
    for i in 1..capacity {
        let pos = publisher
            .publish("b", Codec::Raw, &[i as u8], Some(Duration::ZERO))
            .unwrap();
        assert_eq!(pos, Some(i));
    }
    // Slot 0 holds the stopped claim: this publish needs it.
    let t = Instant::now();
    let pos = publisher
        .publish("b", Codec::Raw, b"round", Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(pos, Some(capacity), "after {:?}", t.elapsed());
    eprintln!("publisher waited {:?} for the stopped claim", t.elapsed());
    let mut got = Vec::new();
    while let Some(m) = for_all.recv(Some(Duration::ZERO)).unwrap() {
        got.push(m.seq);
    }
    assert_eq!(got, (1..=capacity).collect::<Vec<_>>());
    // Continued, the claimant publishes its message after them.
    let line = resume(&mut child);
    assert_eq!(line, format!("published Some({})", capacity + 1));
    let m = for_all.recv(Some(Duration::from_secs(5))).unwrap().unwrap();
    assert_eq!((m.topic, m.seq), ("a", capacity + 1));
}

/// Subscribers asleep on the bus, as `inspect` counts them.
fn bus_sleepers(name: &BusName) -> u64 {
    inspect_json(name)["counters"]["sleeping_subscribers"]
        .as_u64()
        .unwrap()
}

/// Polls `cond` until it holds (at most 10 s).
fn wait_until(mut cond: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::yield_now();
    }
}
