//! Interrupting a receive from another thread of the same process.
//!
//! An engine's dispatch thread sleeps in a receive while the bus is idle; stopping the engine,
//! or a local timer tick meant only for this process, must wake it without publishing anything
//! on the bus. An [`Interrupter`] sets a flag the wait checks on every attempt and then wakes the
//! bus's data futex (a spurious wake-up for any other sleeper, which simply re-checks its own
//! condition and sleeps again).

use crate::blocks::atomics::Ordering;
use crate::handle::Inner;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// A handle that makes a subscriber's receive return early (see
/// [`RecvOptions::interrupter`](crate::RecvOptions::interrupter)). Cheap to clone; send it to the
/// thread that must do the interrupting.
#[derive(Clone)]
pub struct Interrupter {
    flag: Arc<AtomicBool>,
    inner: Arc<Inner>,
    /// The subscriber's consumer entry, whose futex it sleeps on.
    consumer: u32,
}

impl Interrupter {
    pub(crate) fn new(inner: Arc<Inner>, consumer: u32) -> Interrupter {
        Interrupter {
            flag: Arc::new(AtomicBool::new(false)),
            inner,
            consumer,
        }
    }

    /// Makes the current (or, if none is in progress, the next) interruptible receive of the
    /// subscriber it was made from return `Ok(None)` promptly.
    pub fn interrupt(&self) {
        self.flag.store(true, Ordering::SeqCst);
        // The waiter announces itself as a sleeper before its last check of the flag, and
        // `wake_consumers` fences before reading the sleeper count: one of them sees the other.
        self.inner.region.wake_consumers(1 << self.consumer);
    }

    /// Whether an interrupt is pending (not yet consumed by a receive).
    pub fn is_pending(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Consumes a pending interrupt: true if there was one.
    pub(crate) fn take(&self) -> bool {
        self.flag.swap(false, Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use crate::{Bus, BusConfig, Codec, RecvOptions};
    use std::time::Duration;

    fn cfg() -> BusConfig {
        BusConfig {
            ring_capacity: 64,
            max_message: 4096,
            slab_memory: Some(20 << 10),
            ..BusConfig::default()
        }
    }

    #[test]
    fn interrupt_wakes_a_blocked_receive_and_is_consumed() {
        let name = format!("test-interrupt-{}", std::process::id());
        let bus = Bus::create(&name, &cfg()).unwrap();
        let mut sub = bus.subscribe().unwrap();
        let intr = sub.interrupter();
        let remote = intr.clone();
        let t = std::thread::spawn(move || {
            // Blocks for ever unless interrupted.
            let opts = RecvOptions {
                interrupter: Some(&intr),
                ..RecvOptions::default()
            };
            let got = sub.recv_with(opts).unwrap().is_some();
            (got, intr.is_pending(), sub)
        });
        remote.interrupt();
        let (got, pending, mut sub) = t.join().unwrap();
        assert!(!got);
        assert!(!pending);
        // A message after the interrupt is received normally, and held until the next call.
        let intr = sub.interrupter();
        bus.publisher()
            .unwrap()
            .publish("t", Codec::Raw, b"x", None)
            .unwrap();
        let opts = RecvOptions {
            timeout: Some(Duration::from_secs(5)),
            interrupter: Some(&intr),
            ..RecvOptions::default()
        };
        let m = sub.recv_with(opts).unwrap().unwrap();
        assert_eq!(m.payload, b"x");
        assert_eq!(sub.pending(), 1);
        assert_eq!(sub.recv_batch(8, Some(Duration::ZERO), |_| ()).unwrap(), 0);
        assert_eq!(sub.pending(), 0);
        drop(sub);
        drop(bus);
        Bus::unlink(&name).unwrap();
    }

    #[test]
    fn a_held_message_is_read_again_until_the_next_receive_acknowledges_it() {
        let name = format!("test-held-{}", std::process::id());
        let bus = Bus::create(&name, &cfg()).unwrap();
        let mut sub = bus.subscribe().unwrap();
        let mut publisher = bus.publisher().unwrap();
        assert!(sub.held().is_none());
        publisher.publish("a", Codec::Raw, b"one", None).unwrap();
        publisher.publish("b", Codec::Raw, b"two", None).unwrap();
        // Received on one side and let go of without reading it...
        let seq = sub.recv(Some(Duration::from_secs(5))).unwrap().unwrap().seq;
        // ...then read again (the asyncio relay's hand-over), still held.
        let again = sub.held().unwrap().unwrap();
        assert_eq!(
            (again.seq, again.topic, again.payload),
            (seq, "a", &b"one"[..])
        );
        assert_eq!(sub.pending(), 2);
        // The next receive acknowledges it and holds the next one.
        let next = sub.recv(Some(Duration::ZERO)).unwrap().unwrap();
        assert_eq!(next.payload, b"two");
        assert_eq!(sub.held().unwrap().unwrap().topic, "b");
        assert_eq!(sub.pending(), 1);
        assert!(sub.recv(Some(Duration::ZERO)).unwrap().is_none());
        assert!(sub.held().is_none());
        assert_eq!(sub.pending(), 0);
        drop((sub, publisher, bus));
        Bus::unlink(&name).unwrap();
    }

    #[test]
    fn refused_messages_are_acknowledged_and_skipped() {
        let name = format!("test-interrupt-where-{}", std::process::id());
        let bus = Bus::create(&name, &cfg()).unwrap();
        let mut sub = bus.subscribe().unwrap();
        let mut publisher = bus.publisher().unwrap();
        for t in ["skip.a", "skip.b", "keep"] {
            publisher.publish(t, Codec::Raw, b"x", None).unwrap();
        }
        let mut keep = |m: &crate::Message<'_>| m.topic == "keep";
        let opts = RecvOptions {
            timeout: Some(Duration::from_secs(5)),
            wanted: Some(&mut keep),
            ..RecvOptions::default()
        };
        let m = sub.recv_with(opts).unwrap().unwrap();
        assert_eq!(m.topic, "keep");
        assert_eq!(sub.pending(), 1);
        assert!(sub.recv(Some(Duration::ZERO)).unwrap().is_none());
        assert_eq!(sub.pending(), 0);
        drop((sub, publisher, bus));
        Bus::unlink(&name).unwrap();
    }
}
