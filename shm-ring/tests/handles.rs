//! Handles and counters that outlive their subscriber's consumer entry, and a lossy subscriber's
//! backlog as every reader sees it (issue 20, defects 10 and 11).

mod common;

use common::{assert_idle, small, BusGuard};
use event_engine_shm::{Bus, BusError, Codec, SubscribeOptions};
use std::time::Duration;

const NOW: Option<Duration> = Some(Duration::ZERO);

fn lossy() -> SubscribeOptions {
    SubscribeOptions {
        lossy: true,
        ..Default::default()
    }
}

/// An interest handle used after its subscriber was dropped and its entry given to another
/// subscriber is refused, and leaves the new occupant's interest alone (it rewrote it).
#[test]
fn a_stale_interest_handle_is_refused_and_changes_nothing() {
    let g = BusGuard::new("stale-interest");
    let bus = Bus::create(&g.name, &small()).unwrap();
    let old = bus.subscribe().unwrap();
    let old_mask = old.consumer_mask();
    let handle = old.interest();
    drop(old);
    let mut new = bus.subscribe().unwrap();
    assert_eq!(new.consumer_mask(), old_mask, "the entry is reused");
    let only = vec!["only.this".to_string()];
    assert!(
        matches!(handle.set(Some(&only)), Err(BusError::SubscriberGone)),
        "a stale handle must be refused"
    );
    let mut p = bus.publisher().unwrap();
    assert!(p
        .publish("other.topic", Codec::Raw, b"x", NOW)
        .unwrap()
        .is_some());
    let m = new
        .recv(NOW)
        .unwrap()
        .expect("the new subscriber still wants everything");
    assert_eq!(m.topic, "other.topic");
    // Its own handle works.
    new.interest().set(Some(&only)).unwrap();
    drop((new, p, handle, bus));
    assert_idle(&g.name);
}

/// A missed counter reads its own subscriber's count, still after the subscriber is dropped,
/// and nothing once the entry is another subscriber's.
#[test]
fn a_stale_missed_counter_never_reads_the_next_occupant() {
    let g = BusGuard::new("stale-missed");
    let bus = Bus::create(&g.name, &small()).unwrap();
    let old = bus.subscribe_with(&lossy()).unwrap();
    let counter = old.missed_counter();
    let mut p = bus.publisher().unwrap();
    for _ in 0..20 {
        p.publish("t", Codec::Raw, b"x", NOW).unwrap();
    }
    let missed = old.missed();
    assert!(missed >= 4, "missed {missed}");
    assert_eq!(counter.get(), Some(missed));
    drop(old);
    assert_eq!(
        counter.get(),
        Some(missed),
        "its last count until the entry is reused"
    );
    let new = bus.subscribe_with(&lossy()).unwrap();
    for _ in 0..40 {
        p.publish("t", Codec::Raw, b"x", NOW).unwrap();
    }
    assert!(new.missed() > missed);
    assert_eq!(counter.get(), None, "the entry is another subscriber's now");
    assert_eq!(new.missed_counter().get(), Some(new.missed()));
    drop((new, p, counter, bus));
    assert_idle(&g.name);
}

/// A lossy subscriber's backlog once the head has passed 2^16: `pending()` and the snapshot's
/// lag (what `inspect` and `engine.pending` show) count the messages it has not read.
#[test]
fn a_lossy_backlog_counts_unread_messages_past_two_to_the_sixteen() {
    let g = BusGuard::new("lossy-pending");
    let bus = Bus::create(&g.name, &small()).unwrap();
    let mut sub = bus.subscribe_with(&lossy()).unwrap();
    let mut p = bus.publisher().unwrap();
    let n = (1u64 << 16) + 3;
    let mut sent = 0;
    while sent < n as usize {
        sent += p
            .publish_many("t", Codec::Raw, 1, n as usize - sent, None, |_, b| b[0] = 1)
            .unwrap();
    }
    while sub.recv(NOW).unwrap().is_some() {}
    assert_eq!(sub.pending(), 0);
    for _ in 0..5 {
        p.publish("t", Codec::Raw, b"x", NOW).unwrap();
    }
    assert_eq!(sub.pending(), 5);
    let snap = bus.snapshot();
    let row = snap
        .processes
        .iter()
        .find(|r| r.lossy)
        .expect("a lossy row");
    assert_eq!(row.lag, Some(5));
    drop((sub, p, bus));
    assert_idle(&g.name);
}
