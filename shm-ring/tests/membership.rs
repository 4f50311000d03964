//! Membership at the edges, with real child processes (this test binary re-executed in a role):
//! processes joining and leaving in a loop while a publisher fills a small ring, and consumer
//! processes stopped with SIGSTOP, with and without interest in what is published.

mod common;

use common::{assert_idle, env, payload, say, spawn, unpayload, BusGuard, ChildGuard, Lines, ROLE};
use event_engine_shm::{Bus, BusConfig, BusError, Codec, SubscribeOptions};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::time::Duration;

const ENTRY: &str = "child";
/// A guard against a hung test; every wait below ends on an event well before it.
const WAIT: Option<Duration> = Some(Duration::from_secs(30));
const RING: u64 = 8;

fn cfg() -> BusConfig {
    BusConfig {
        ring_capacity: RING as u32,
        max_message: 4096,
        slab_memory: Some(20 << 10),
        max_processes: 64,
        // A group whose last member left is dropped at once: a kept group would hold the
        // publisher back, by design, until a member returns (docs/delivery.md).
        group_retention_ms: 0,
        ..BusConfig::default()
    }
}

fn topics(t: &str) -> Option<Vec<String>> {
    Some(vec![t.to_string()])
}

/// Child process entry point; a no-op when run as an ordinary test.
#[test]
fn child() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let name = env("BUS");
    match role.as_str() {
        // Attaches, subscribes (fan-out or group, wanting the published topic or another),
        // takes whatever is there without waiting, and leaves; again and again, at least
        // `ROUNDS` times and until `TOTAL` messages were published.
        "churn" => {
            let rounds: u32 = env("ROUNDS").parse().unwrap();
            let total: u64 = env("TOTAL").parse().unwrap();
            let watch = Bus::open(&name).unwrap();
            let mut round = 0u32;
            while round < rounds || watch.snapshot().counters.published < total {
                let bus = Bus::open(&name).unwrap();
                let opts = SubscribeOptions {
                    group: (round % 3 == 1).then(|| "churners".to_string()),
                    topics: if round % 4 == 3 {
                        topics("other")
                    } else {
                        topics("t")
                    },
                    ..SubscribeOptions::default()
                };
                let mut sub = bus.subscribe_with(&opts).unwrap();
                for _ in 0..round % 3 {
                    if sub.recv(Some(Duration::ZERO)).unwrap().is_none() {
                        break;
                    }
                }
                drop(sub);
                drop(bus);
                if round == 0 {
                    say("started");
                }
                round += 1;
            }
            say("done");
        }
        // Receives `TOTAL` messages on `t`, checking their order, then says so.
        "steady" => {
            let total: u64 = env("TOTAL").parse().unwrap();
            let bus = Bus::open(&name).unwrap();
            let mut sub = bus
                .subscribe_with(&SubscribeOptions {
                    group: None,
                    topics: topics("t"),
                    ..SubscribeOptions::default()
                })
                .unwrap();
            say("ready");
            for want in 0..total {
                let m = sub.recv(WAIT).unwrap().expect("a message");
                assert_eq!(m.topic, "t");
                assert_eq!(unpayload(m.payload), (0, want), "out of order");
            }
            assert!(sub.recv(Some(Duration::ZERO)).unwrap().is_none());
            say(format!("done {total}"));
        }
        // Wants `WANT` only; receives until a message on `stop`, saying how many came before
        // it and whether they were in order.
        "stoppable" => {
            let bus = Bus::open(&name).unwrap();
            let mut sub = bus
                .subscribe_with(&SubscribeOptions {
                    group: None,
                    topics: Some(vec![env("WANT"), "stop".to_string()]),
                    ..SubscribeOptions::default()
                })
                .unwrap();
            say("ready");
            let mut n = 0u64;
            loop {
                let m = sub.recv(WAIT).unwrap().expect("a message");
                if m.topic == "stop" {
                    break;
                }
                assert_eq!(unpayload(m.payload), (0, n), "out of order");
                n += 1;
            }
            say(format!("done {n}"));
        }
        other => panic!("unknown role {other}"),
    }
    std::process::exit(0);
}

fn signal(child: &ChildGuard, sig: Signal) {
    kill(Pid::from_raw(child.id() as i32), sig).unwrap();
}

/// Waits until `child` shows as stopped in /proc (SIGSTOP is delivered asynchronously).
fn wait_stopped(child: &ChildGuard) {
    let path = format!("/proc/{}/stat", child.id());
    let deadline = std::time::Instant::now() + WAIT.unwrap();
    loop {
        let stat = std::fs::read_to_string(&path).unwrap();
        let state = stat.rsplit(") ").next().unwrap().chars().next().unwrap();
        if state == 'T' {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "child never stopped");
        std::thread::yield_now();
    }
}

fn publish(
    p: &mut event_engine_shm::Publisher,
    topic: &str,
    i: u64,
    timeout: Option<Duration>,
) -> Result<Option<u64>, BusError> {
    p.publish(topic, Codec::Raw, &payload(0, i), timeout)
}

/// Three processes attach, subscribe (fan-out and group, wanting the topic or not) and leave,
/// hundreds of times each and for as long as the parent publishes on a ring of 8. A steady subscriber
/// process gets every message in order, no publish waits for a process that left (each has a
/// generous timeout and none runs out), and the bus is idle in the end.
#[test]
fn a_join_and_leave_storm_wedges_no_publisher_and_loses_nothing() {
    let g = BusGuard::new("mb-storm");
    let bus = Bus::create(&g.name, &cfg()).unwrap();
    const N: u64 = 20_000;
    let mut steady = spawn(
        ENTRY,
        "steady",
        &[("BUS", g.name.clone()), ("TOTAL", N.to_string())],
    );
    let mut steady_out = Lines::of(&mut steady);
    assert_eq!(steady_out.next().as_deref(), Some("ready"));
    let mut churners: Vec<_> = (0..3)
        .map(|_| {
            spawn(
                ENTRY,
                "churn",
                &[
                    ("BUS", g.name.clone()),
                    ("ROUNDS", "300".to_string()),
                    ("TOTAL", N.to_string()),
                ],
            )
        })
        .collect();
    let mut churn_out: Vec<_> = churners.iter_mut().map(|c| Lines::of(c)).collect();
    for out in &mut churn_out {
        assert_eq!(out.next().as_deref(), Some("started"));
    }
    let mut p = bus.publisher().unwrap();
    for i in 0..N {
        let got = publish(&mut p, "t", i, WAIT);
        assert!(matches!(got, Ok(Some(_))), "publish {i}: {got:?}");
    }
    assert_eq!(steady_out.next(), Some(format!("done {N}")));
    assert!(steady.wait().unwrap().success());
    for (c, out) in churners.iter_mut().zip(&mut churn_out) {
        assert_eq!(out.next().as_deref(), Some("done"));
        assert!(c.wait().unwrap().success());
    }
    drop(p);
    drop(bus);
    assert_idle(&g.name);
}

/// A consumer process that wants the topic is stopped with SIGSTOP: publishers fill the ring
/// and then wait (they do not take a stopped process for dead, nor overwrite it); after SIGCONT
/// it receives every message, in order.
#[test]
fn a_stopped_consumer_with_interest_holds_publishers_back_by_one_ring_and_loses_nothing() {
    let g = BusGuard::new("mb-stop-want");
    let bus = Bus::create(&g.name, &cfg()).unwrap();
    let mut c = spawn(
        ENTRY,
        "stoppable",
        &[("BUS", g.name.clone()), ("WANT", "t".to_string())],
    );
    let mut out = Lines::of(&mut c);
    assert_eq!(out.next().as_deref(), Some("ready"));
    signal(&c, Signal::SIGSTOP);
    wait_stopped(&c);
    let mut p = bus.publisher().unwrap();
    for i in 0..RING {
        assert!(matches!(
            publish(&mut p, "t", i, Some(Duration::ZERO)),
            Ok(Some(_))
        ));
    }
    assert!(matches!(
        publish(&mut p, "t", RING, Some(Duration::ZERO)),
        Err(BusError::Full)
    ));
    // Long enough for the blocked publisher to reap: a stopped process is alive, and stays.
    assert!(matches!(
        publish(&mut p, "t", RING, Some(Duration::from_millis(400))),
        Err(BusError::Timeout)
    ));
    let pid = c.id();
    assert!(
        bus.snapshot().processes.iter().any(|r| r.pid == pid),
        "the stopped consumer was reaped"
    );
    const N: u64 = 20 * RING;
    let rest = std::thread::spawn(move || {
        for i in RING..N {
            publish(&mut p, "t", i, WAIT).unwrap().expect("a position");
        }
        publish(&mut p, "stop", 0, WAIT)
            .unwrap()
            .expect("a position");
    });
    signal(&c, Signal::SIGCONT);
    assert_eq!(out.next(), Some(format!("done {N}")));
    assert!(c.wait().unwrap().success());
    rest.join().unwrap();
    drop(bus);
    assert_idle(&g.name);
}

/// A consumer process that wants another topic is stopped with SIGSTOP while twenty rings' worth
/// of messages go to a steady subscriber: no publish ever waits for it. After SIGCONT it gets
/// only what it wants.
#[test]
fn a_stopped_consumer_without_interest_never_holds_a_publisher_back() {
    let g = BusGuard::new("mb-stop-other");
    let bus = Bus::create(&g.name, &cfg()).unwrap();
    let mut c = spawn(
        ENTRY,
        "stoppable",
        &[("BUS", g.name.clone()), ("WANT", "other".to_string())],
    );
    let mut out = Lines::of(&mut c);
    assert_eq!(out.next().as_deref(), Some("ready"));
    signal(&c, Signal::SIGSTOP);
    wait_stopped(&c);
    let mut steady = bus
        .subscribe_with(&SubscribeOptions {
            group: None,
            topics: topics("t"),
            ..SubscribeOptions::default()
        })
        .unwrap();
    let mut p = bus.publisher().unwrap();
    // The steady subscriber drains a ring at a time in this thread, so a publish that found the
    // ring full could only be waiting for the stopped process: none may.
    let mut next = 0;
    for round in 0..20 {
        for i in round * RING..(round + 1) * RING {
            let got = publish(&mut p, "t", i, Some(Duration::ZERO));
            assert!(matches!(got, Ok(Some(_))), "publish {i}: {got:?}");
        }
        // A batch acknowledges each message as it goes (a plain receive holds its message
        // until the next receive).
        let got = steady
            .recv_batch(RING as usize, Some(Duration::ZERO), |m| {
                assert_eq!(unpayload(m.payload), (0, next));
                next += 1;
            })
            .unwrap();
        assert_eq!(got, RING as usize);
    }
    signal(&c, Signal::SIGCONT);
    publish(&mut p, "other", 0, WAIT)
        .unwrap()
        .expect("a position");
    publish(&mut p, "stop", 0, WAIT)
        .unwrap()
        .expect("a position");
    assert_eq!(out.next().as_deref(), Some("done 1"));
    assert!(c.wait().unwrap().success());
    drop((steady, p, bus));
    assert_idle(&g.name);
}
