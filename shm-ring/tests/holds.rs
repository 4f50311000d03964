//! Holds (`docs/delivery.md`, "Holds"): a received message's block kept past its
//! acknowledgement, never reused under the hold, bounded per subscriber and per class, and given
//! back when the holder drops it, leaves, or is killed.

mod common;

use common::{assert_idle, env, kill, say, small, spawn, BusGuard, Lines, ROLE};
use event_engine_shm::{Bus, Codec, Refused, Role, DEFAULT_HOLD_LIMIT};
use std::time::Duration;

const SEC: Option<Duration> = Some(Duration::from_secs(5));

/// A payload of `len` bytes, every byte `tag`: needs a slab block when `len` > 136.
fn filled(tag: u8, len: usize) -> Vec<u8> {
    vec![tag; len]
}

fn holder_rows(bus: &Bus) -> Vec<(u64, u64)> {
    bus.snapshot()
        .processes
        .iter()
        .filter(|p| p.role == Role::Holder)
        .map(|p| (p.held_blocks, p.held_bytes))
        .collect()
}

#[test]
fn a_held_payload_stays_in_place_while_publishers_go_on_and_its_block_comes_back() {
    let g = BusGuard::new("hold");
    let bus = Bus::create(&g.name, &small()).unwrap();
    let mut sub = bus.subscribe().unwrap();
    let mut publisher = bus.publisher().unwrap();
    let holder = sub.holder();
    assert_eq!(holder.limit(), DEFAULT_HOLD_LIMIT);
    publisher
        .publish("frame", Codec::Raw, &filled(1, 600), SEC)
        .unwrap();
    let held = {
        let m = sub.recv(SEC).unwrap().unwrap();
        holder.hold(&m).unwrap()
    };
    assert_eq!(holder.live(), 1);
    // The 1 KiB class has 6 blocks: 40 more messages reuse the others many times over, never
    // the held one.
    for i in 0..40u8 {
        publisher
            .publish("frame", Codec::Raw, &filled(i + 2, 600), SEC)
            .unwrap();
        let m = sub.recv(SEC).unwrap().unwrap();
        assert_eq!(m.payload, &filled(i + 2, 600)[..]);
    }
    assert!(sub.recv(Some(Duration::ZERO)).unwrap().is_none());
    assert_eq!(
        held.payload(),
        &filled(1, 600)[..],
        "the held payload changed"
    );
    let s = bus.snapshot();
    assert_eq!(holder_rows(&bus), [(1, 1024)]);
    assert_eq!(s.slab[1].held, 1);
    assert_eq!(s.slab[1].used, 1, "only the held block is out");
    drop(held);
    assert_eq!(holder.live(), 0);
    let s = bus.snapshot();
    assert_eq!((s.slab[1].held, s.slab[1].used), (0, 0));
    assert_eq!(holder_rows(&bus), [(0, 0)]);
    drop((sub, publisher, holder, bus));
    assert_idle(&g.name);
}

#[test]
fn holds_stop_at_the_subscribers_limit_and_at_half_a_class_and_count_copies() {
    let g = BusGuard::new("hold-limit");
    let bus = Bus::create(&g.name, &small()).unwrap();
    let mut sub = bus.subscribe().unwrap();
    let mut publisher = bus.publisher().unwrap();
    sub.set_hold_limit(2);
    let holder = sub.holder();
    let mut holds = Vec::new();
    for i in 0..4u8 {
        publisher
            .publish("frame", Codec::Raw, &filled(i, 600), SEC)
            .unwrap();
        let m = sub.recv(SEC).unwrap().unwrap();
        match holder.hold(&m) {
            Ok(h) => holds.push(h),
            Err(e) => assert_eq!(e, Refused::Bound),
        }
    }
    assert_eq!(holds.len(), 2, "the subscriber's limit");
    // Inline messages have no block to hold, and count no copy.
    publisher.publish("tick", Codec::Raw, b"x", SEC).unwrap();
    let m = sub.recv(SEC).unwrap().unwrap();
    assert_eq!(holder.hold(&m).unwrap_err(), Refused::NoBlock);
    // The largest class has 2 blocks: holds take at most one of them, whatever the limit.
    sub.set_hold_limit(DEFAULT_HOLD_LIMIT);
    let roomy = sub.holder();
    let mut big = Vec::new();
    for i in 0..3u8 {
        publisher
            .publish("frame", Codec::Raw, &filled(i, 3000), SEC)
            .unwrap();
        let m = sub.recv(SEC).unwrap().unwrap();
        if let Ok(h) = roomy.hold(&m) {
            big.push(h);
        }
        // Acknowledged, so that only the hold keeps a block of this two-block class.
        assert!(sub.recv(Some(Duration::ZERO)).unwrap().is_none());
    }
    assert_eq!(big.len(), 1, "half of a two-block class");
    let s = bus.snapshot();
    let me = s
        .processes
        .iter()
        .find(|p| p.role == Role::Subscriber)
        .unwrap();
    assert_eq!(
        me.copies,
        2 + 2,
        "two past the limit, two past half the class"
    );
    drop((holds, big));
    drop((sub, publisher, holder, roomy, bus));
    assert_idle(&g.name);
}

#[test]
fn a_lossy_subscriber_cannot_hold() {
    let g = BusGuard::new("hold-lossy");
    let bus = Bus::create(&g.name, &small()).unwrap();
    let mut sub = bus
        .subscribe_with(&event_engine_shm::SubscribeOptions {
            lossy: true,
            ..Default::default()
        })
        .unwrap();
    let mut publisher = bus.publisher().unwrap();
    publisher
        .publish("frame", Codec::Raw, &filled(3, 600), SEC)
        .unwrap();
    let holder = sub.holder();
    let m = sub.recv(SEC).unwrap().unwrap();
    assert_eq!(holder.hold(&m).unwrap_err(), Refused::NoBlock);
    drop((sub, publisher, holder, bus));
    assert_idle(&g.name);
}

/// Child role: holds one message's block, says so, and waits to be killed.
fn hold_and_wait() {
    let bus = Bus::open(&env("BUS")).unwrap();
    let mut sub = bus.subscribe().unwrap();
    let holder = sub.holder();
    say("ready");
    let m = sub.recv(SEC).unwrap().unwrap();
    let h = holder.hold(&m).unwrap();
    let _ = sub.recv(Some(Duration::ZERO)); // acknowledges the message
    say(format!("held {}", h.payload()[0]));
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn a_killed_holder_gives_its_blocks_back_at_the_reap() {
    if std::env::var(ROLE).as_deref() == Ok("holder") {
        return hold_and_wait();
    }
    let g = BusGuard::new("hold-kill");
    let bus = Bus::create(&g.name, &small()).unwrap();
    let mut child = spawn(
        "a_killed_holder_gives_its_blocks_back_at_the_reap",
        "holder",
        &[("BUS", g.name.clone())],
    );
    let mut lines = Lines::of(&mut child);
    assert_eq!(lines.next().as_deref(), Some("ready"));
    let mut publisher = bus.publisher().unwrap();
    publisher
        .publish("frame", Codec::Raw, &filled(7, 600), SEC)
        .unwrap();
    assert_eq!(lines.next().as_deref(), Some("held 7"));
    assert_eq!(bus.snapshot().slab[1].used, 1);
    kill(&mut child);
    let report = bus.reap().unwrap();
    assert!(!report.is_empty());
    let s = bus.snapshot();
    assert_eq!((s.slab[1].used, s.slab[1].held), (0, 0), "{s:#?}");
    assert!(holder_rows(&bus).is_empty());
    drop((publisher, bus));
    assert_idle(&g.name);
}

#[test]
fn a_loan_is_published_from_its_block_and_a_dropped_one_goes_back() {
    let g = BusGuard::new("loan");
    let bus = Bus::create(&g.name, &small()).unwrap();
    let mut sub = bus.subscribe().unwrap();
    let mut publisher = bus.publisher().unwrap();
    let mut loan = publisher.loan("frame", 700, SEC).unwrap();
    loan.payload_mut().fill(9);
    assert_eq!(holder_rows(&bus), [(1, 1024)], "a loan is held by its seat");
    let pos = publisher.send_loan(loan, Codec::Raw, SEC).unwrap();
    assert!(pos.is_some());
    {
        let m = sub.recv(SEC).unwrap().unwrap();
        assert_eq!((m.topic, m.payload), ("frame", &filled(9, 700)[..]));
    }
    assert!(sub.recv(Some(Duration::ZERO)).unwrap().is_none());
    let s = bus.snapshot();
    assert_eq!((s.slab[1].used, s.slab[1].held), (0, 0));
    // Dropped unpublished: straight back to the slab.
    let loan = publisher.loan("frame", 700, SEC).unwrap();
    assert_eq!(bus.snapshot().slab[1].used, 1);
    drop(loan);
    let s = bus.snapshot();
    assert_eq!((s.slab[1].used, s.slab[1].held), (0, 0));
    // Nobody wants the topic: the loan is spent and its block goes back.
    sub.interest().set(Some(&["other".to_string()])).unwrap();
    let loan = publisher.loan("frame", 700, SEC).unwrap();
    assert_eq!(publisher.send_loan(loan, Codec::Raw, SEC).unwrap(), None);
    assert_eq!(bus.snapshot().slab[1].used, 0);
    drop((sub, publisher, bus));
    assert_idle(&g.name);
}

/// Child role: takes a loan, says so, and waits to be killed.
fn loan_and_wait() {
    let bus = Bus::open(&env("BUS")).unwrap();
    let mut publisher = bus.publisher().unwrap();
    let mut loan = publisher.loan("frame", 700, SEC).unwrap();
    loan.payload_mut().fill(1);
    say("lent");
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn a_loan_of_a_killed_process_goes_back_at_the_reap() {
    if std::env::var(ROLE).as_deref() == Ok("lender") {
        return loan_and_wait();
    }
    let g = BusGuard::new("loan-kill");
    let bus = Bus::create(&g.name, &small()).unwrap();
    let mut child = spawn(
        "a_loan_of_a_killed_process_goes_back_at_the_reap",
        "lender",
        &[("BUS", g.name.clone())],
    );
    let mut lines = Lines::of(&mut child);
    assert_eq!(lines.next().as_deref(), Some("lent"));
    assert_eq!(bus.snapshot().slab[1].used, 1);
    kill(&mut child);
    bus.reap().unwrap();
    let s = bus.snapshot();
    assert_eq!((s.slab[1].used, s.slab[1].held), (0, 0), "{s:#?}");
    drop(bus);
    assert_idle(&g.name);
}
