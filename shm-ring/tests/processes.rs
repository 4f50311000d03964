//! Multi-process scenarios with real child processes (this test binary re-executed in a role):
//! fan-out to several subscriber processes, a group of processes, several publisher processes.

mod common;

use common::{assert_idle, env, payload, say, spawn, unpayload, BusGuard, Lines, ROLE};
use event_engine_shm::{Bus, BusConfig, Codec};
use std::collections::HashMap;
use std::time::Duration;

const ENTRY: &str = "child";
const WAIT: Option<Duration> = Some(Duration::from_secs(30));

fn cfg() -> BusConfig {
    BusConfig {
        ring_capacity: 32,
        max_message: 4096,
        slab_memory: Some(80 << 10),
        max_processes: 32,
        ..BusConfig::default()
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
        "publish" => {
            let id: u32 = env("ID").parse().unwrap();
            let n: u64 = env("N").parse().unwrap();
            let mut p = bus.publisher().unwrap();
            for i in 0..n {
                let mut body = vec![0u8; if i % 4 == 0 { 700 } else { 12 }];
                body[..12].copy_from_slice(&payload(id, i));
                p.publish(&format!("t.{id}"), Codec::Raw, &body, WAIT)
                    .unwrap();
            }
        }
        "fanout" => {
            let total: u64 = env("TOTAL").parse().unwrap();
            let mut sub = bus.subscribe().unwrap();
            say("ready");
            let mut next: HashMap<u32, u64> = HashMap::new();
            for _ in 0..total {
                let m = sub.recv(WAIT).unwrap().expect("message");
                let (id, i) = unpayload(m.payload);
                let want = next.entry(id).or_insert(0);
                assert_eq!(i, *want, "publisher {id} out of order");
                *want += 1;
            }
            assert!(sub.recv(Some(Duration::ZERO)).unwrap().is_none());
            say(format!("done {total}"));
        }
        "member" => {
            let mut sub = bus.subscribe_group("workers").unwrap();
            say("ready");
            loop {
                let m = sub.recv(WAIT).unwrap().expect("message");
                if m.topic == "stop" {
                    break;
                }
                let (id, i) = unpayload(m.payload);
                say(format!("{id} {i}"));
            }
        }
        other => panic!("unknown role {other}"),
    }
    drop(bus);
    std::process::exit(0);
}

fn run_publishers(g: &BusGuard, count: u32, n: u64) {
    let mut pubs: Vec<_> = (0..count)
        .map(|id| {
            spawn(
                ENTRY,
                "publish",
                &[
                    ("BUS", g.name.clone()),
                    ("ID", id.to_string()),
                    ("N", n.to_string()),
                ],
            )
        })
        .collect();
    for p in &mut pubs {
        assert!(p.wait().unwrap().success());
    }
}

#[test]
fn fan_out_to_subscriber_processes_from_several_publisher_processes() {
    let g = BusGuard::new("mp-fanout");
    let bus = Bus::create(&g.name, &cfg()).unwrap();
    const PUBS: u32 = 3;
    const N: u64 = 1500;
    let total = (PUBS as u64 * N).to_string();
    let mut subs: Vec<_> = (0..3)
        .map(|_| {
            spawn(
                ENTRY,
                "fanout",
                &[("BUS", g.name.clone()), ("TOTAL", total.clone())],
            )
        })
        .collect();
    let mut lines: Vec<_> = subs.iter_mut().map(|c| Lines::of(c)).collect();
    for l in &mut lines {
        assert_eq!(l.next().as_deref(), Some("ready"));
    }
    run_publishers(&g, PUBS, N);
    for (l, s) in lines.iter_mut().zip(&mut subs) {
        assert_eq!(l.next(), Some(format!("done {total}")));
        assert!(s.wait().unwrap().success());
    }
    let snap = bus.snapshot();
    assert_eq!(snap.counters.published, PUBS as u64 * N);
    drop(bus);
    assert_idle(&g.name);
}

#[test]
fn group_of_processes_gets_each_message_exactly_once() {
    let g = BusGuard::new("mp-group");
    let bus = Bus::create(&g.name, &cfg()).unwrap();
    const MEMBERS: usize = 3;
    let mut members: Vec<_> = (0..MEMBERS)
        .map(|_| spawn(ENTRY, "member", &[("BUS", g.name.clone())]))
        .collect();
    let mut lines: Vec<_> = members.iter_mut().map(|c| Lines::of(c)).collect();
    for l in &mut lines {
        assert_eq!(l.next().as_deref(), Some("ready"));
    }
    const N: u64 = 1000;
    run_publishers(&g, 2, N);
    let mut p = bus.publisher().unwrap();
    for _ in 0..MEMBERS {
        p.publish("stop", Codec::Raw, b"", WAIT).unwrap();
    }
    let mut seen: Vec<(u32, u64)> = Vec::new();
    for (l, m) in lines.iter_mut().zip(&mut members) {
        for line in l.rest() {
            let mut it = line.split(' ').map(|x| x.parse::<u64>().unwrap());
            seen.push((it.next().unwrap() as u32, it.next().unwrap()));
        }
        assert!(m.wait().unwrap().success());
    }
    seen.sort_unstable();
    let expected: Vec<(u32, u64)> = (0..2).flat_map(|id| (0..N).map(move |i| (id, i))).collect();
    assert_eq!(seen, expected);
    drop((p, bus));
    assert_idle(&g.name);
}
