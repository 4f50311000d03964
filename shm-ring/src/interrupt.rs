//! Interrupting a receive from another thread of the same process.
//!
//! An engine's dispatch thread sleeps in [`Subscriber::recv_interruptible`] while the bus is idle;
//! stopping the engine, or a local timer tick meant only for this process, must wake it without
//! publishing anything on the bus. An [`Interrupter`] sets a flag the wait checks on every attempt
//! and then wakes the bus's data futex (a spurious wake-up for any other sleeper, which simply
//! re-checks its own condition and sleeps again).

use crate::atomics::Ordering;
use crate::bus::Inner;
use crate::recovery::wake_subscribers;
use crate::subscriber::{read_message, Message, Subscriber};
use crate::wait::{wait_for, Side};
use crate::BusError;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A handle that makes a subscriber's [`Subscriber::recv_interruptible`] return early. Cheap to
/// clone; send it to the thread that must do the interrupting.
#[derive(Clone)]
pub struct Interrupter {
    flag: Arc<AtomicBool>,
    inner: Arc<Inner>,
}

impl Interrupter {
    /// Makes the current (or, if none is in progress, the next) interruptible receive of the
    /// subscriber it was made from return `Ok(None)` promptly.
    pub fn interrupt(&self) {
        self.flag.store(true, Ordering::SeqCst);
        // The waiter announces itself as a sleeper before its last check of the flag, and
        // `wake_subscribers` fences before reading the sleeper count: one of them sees the other.
        wake_subscribers(&self.inner.region);
    }

    /// Whether an interrupt is pending (not yet consumed by a receive).
    pub fn is_pending(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
}

impl Subscriber {
    /// A new interrupter for this subscriber's [`Subscriber::recv_interruptible`] calls.
    pub fn interrupter(&self) -> Interrupter {
        Interrupter {
            flag: Arc::new(AtomicBool::new(false)),
            inner: self.inner.clone(),
        }
    }

    /// Like [`Subscriber::recv`], but also returns `Ok(None)` as soon as `interrupter` (made by
    /// [`Subscriber::interrupter`] on this subscriber) is triggered; the interrupt is consumed.
    /// The message returned stays held (unacknowledged) until the next receive call, so a caller
    /// can handle it and then acknowledge it with that call (for example
    /// `recv_batch(n, Some(Duration::ZERO), ..)`, which acknowledges before it looks further).
    pub fn recv_interruptible(
        &mut self,
        timeout: Option<Duration>,
        interrupter: &Interrupter,
    ) -> Result<Option<Message<'_>>, BusError> {
        self.recv_interruptible_where(timeout, interrupter, |_| true)
    }

    /// [`Subscriber::recv_interruptible`] that acknowledges, without returning them, the
    /// messages `wanted` refuses (for example those no local handler would receive), so a
    /// caller can skip them without leaving the wait. `wanted` runs inside the wait: keep it
    /// short and free of locks the interrupting side may hold.
    pub fn recv_interruptible_where(
        &mut self,
        timeout: Option<Duration>,
        interrupter: &Interrupter,
        wanted: impl FnMut(&Message<'_>) -> bool,
    ) -> Result<Option<Message<'_>>, BusError> {
        self.recv_hot_where(timeout, Duration::ZERO, interrupter, wanted)
    }

    /// [`Subscriber::recv_interruptible_where`] that first polls for up to `hot` (spinning, and
    /// yielding the CPU now and then) before it may go to sleep. A subscriber that stays awake
    /// through a stream of messages spares every publisher the futex wake-up a sleeper costs;
    /// after `hot` without a message it sleeps as usual.
    pub fn recv_hot_where(
        &mut self,
        timeout: Option<Duration>,
        hot: Duration,
        interrupter: &Interrupter,
        mut wanted: impl FnMut(&Message<'_>) -> bool,
    ) -> Result<Option<Message<'_>>, BusError> {
        self.ack();
        let inner = self.inner.clone();
        let region = &inner.region;
        let row = region.row(self.row).expect("own row is in range");
        let flag = &interrupter.flag;
        let mut attempt = || {
            if flag.swap(false, Ordering::SeqCst) {
                return Ok(Some(None));
            }
            // Bounded by the ring: a live consumer is never more than a ring behind.
            for _ in 0..=region.ring().capacity() {
                let Some(pos) = self.next() else {
                    return Ok(None);
                };
                // On a corrupt slot the position stays held and is released by the next call.
                if wanted(&read_message(region, pos)?) {
                    return Ok(Some(Some(pos)));
                }
                self.ack();
            }
            Ok(None)
        };
        let mut got = None;
        if !hot.is_zero() && timeout != Some(Duration::ZERO) {
            let until = Instant::now() + hot.min(timeout.unwrap_or(hot));
            let mut i = 0u32;
            loop {
                if let Some(v) = attempt()? {
                    got = Some(v);
                    break;
                }
                i += 1;
                if i == HOT_SPINS {
                    i = 0;
                    if Instant::now() >= until {
                        break;
                    }
                    std::thread::yield_now();
                } else {
                    std::hint::spin_loop();
                }
            }
        }
        let got = match got {
            Some(v) => Some(v),
            None => wait_for(region, row, Side::Subscriber, timeout, &mut attempt)?,
        };
        match got {
            Some(Some(pos)) => read_message(&self.inner.region, pos).map(Some),
            _ => Ok(None),
        }
    }
}

/// Spins between two yields (and clock reads) of a hot poll.
const HOT_SPINS: u32 = 32;

#[cfg(test)]
mod tests {
    use crate::{Bus, BusConfig, Codec};
    use std::time::Duration;

    fn cfg() -> BusConfig {
        BusConfig {
            ring_capacity: 64,
            max_message: 4096,
            slab_blocks: 16,
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
            let got = sub.recv_interruptible(None, &intr).unwrap().is_some();
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
        let m = sub
            .recv_interruptible(Some(Duration::from_secs(5)), &intr)
            .unwrap()
            .unwrap();
        assert_eq!(m.payload, b"x");
        assert_eq!(sub.pending(), 1);
        assert_eq!(sub.recv_batch(8, Some(Duration::ZERO), |_| ()).unwrap(), 0);
        assert_eq!(sub.pending(), 0);
        drop(sub);
        drop(bus);
        Bus::unlink(&name).unwrap();
    }

    #[test]
    fn refused_messages_are_acknowledged_and_skipped() {
        let name = format!("test-interrupt-where-{}", std::process::id());
        let bus = Bus::create(&name, &cfg()).unwrap();
        let mut sub = bus.subscribe().unwrap();
        let intr = sub.interrupter();
        let mut publisher = bus.publisher().unwrap();
        for t in ["skip.a", "skip.b", "keep"] {
            publisher.publish(t, Codec::Raw, b"x", None).unwrap();
        }
        let m = sub
            .recv_interruptible_where(Some(Duration::from_secs(5)), &intr, |m| m.topic == "keep")
            .unwrap()
            .unwrap();
        assert_eq!(m.topic, "keep");
        assert_eq!(sub.pending(), 1);
        assert!(sub
            .recv_interruptible(Some(Duration::ZERO), &intr)
            .unwrap()
            .is_none());
        assert_eq!(sub.pending(), 0);
        drop((sub, publisher, bus));
        Bus::unlink(&name).unwrap();
    }
}
