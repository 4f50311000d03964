//! The sleeper handshake: going to sleep on a futex word without missing a wake-up.
//!
//! A sleeper adds itself to a sleeper count, reads the futex word, and only then re-checks its
//! condition; if that still fails it sleeps while the futex word keeps the value it read. A waker
//! first makes its change visible (a commit, a release), then reads the count and, if anyone is
//! counted, bumps the futex word and wakes. Both sides put a SeqCst fence between their store and
//! their load (the store-buffering pattern, which loom models only with the fence): either the sleeper's re-check sees
//! the change, or the waker sees the count. In the second case the bump lands after the sleeper
//! read the word, so the futex call returns at once or is woken.
//!
//! The sleeper also records, in its own `mark` word (its process row's `sleeping`), which count it
//! is in and whether the count includes it yet, so that a reaper of a process killed asleep takes
//! back exactly what it added.

use crate::blocks::atomics::{fence, saturating_dec, AtomicU32, Ordering};
use std::time::Duration;

/// In a `mark` word: the count named by the rest of the word includes this sleeper.
pub(crate) const SLEEPING_COUNTED: u32 = 4;

/// One side's sleep: the futex word it sleeps on, the count of those asleep on it, and the
/// sleeper's own record of being counted.
pub(crate) struct Sleeper<'a> {
    pub futex: &'a AtomicU32,
    pub sleepers: &'a AtomicU32,
    /// The sleeper's row `sleeping` word.
    pub mark: &'a AtomicU32,
    /// What `mark` says while asleep (which count it is in), without [`SLEEPING_COUNTED`].
    pub tag: u32,
}

impl Sleeper<'_> {
    /// Counts itself in, re-checks with `attempt` (`Some` ends the wait), and sleeps at most
    /// `timeout` unless the re-check succeeded; counts itself out again either way. Returns the
    /// re-check's result, `None` after a sleep (the caller checks again).
    pub fn sleep_unless<R>(
        &self,
        timeout: Duration,
        attempt: impl FnOnce() -> Option<R>,
    ) -> Option<R> {
        // The mark says "counted" only once the count includes us, so a reaper of a process
        // killed in between never takes back a count it did not add (a count may stay one too
        // high, which costs a spare wake-up until the bus is idle, never a lost one).
        self.mark.store(self.tag, Ordering::Relaxed);
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        self.mark
            .store(self.tag | SLEEPING_COUNTED, Ordering::Relaxed);
        let seen = self.futex.load(Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if let Some(got) = attempt() {
            self.count_out();
            return Some(got);
        }
        crate::blocks::futex::wait(self.futex, seen, timeout);
        self.count_out();
        None
    }

    fn count_out(&self) {
        self.mark.store(self.tag, Ordering::Relaxed);
        saturating_dec(self.sleepers);
        self.mark.store(0, Ordering::Relaxed);
    }
}

/// After a change a sleeper on `futex` may wait for has been made visible: wakes the sleepers,
/// if `sleepers` counts any.
pub(crate) fn wake(futex: &AtomicU32, sleepers: &AtomicU32) {
    fence(Ordering::SeqCst);
    wake_counted(futex, sleepers);
}

/// [`wake`] for a caller that has already issued the SeqCst fence after its change (one fence
/// serves several futex words).
pub(crate) fn wake_counted(futex: &AtomicU32, sleepers: &AtomicU32) {
    if sleepers.load(Ordering::Relaxed) > 0 {
        futex.fetch_add(1, Ordering::SeqCst);
        crate::blocks::futex::wake_all(futex);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::blocks::ring::loom_tests::{model, shared};
    use crate::blocks::ring::Poll;
    use loom::sync::Arc;

    /// A consumer's futex word, sleeper count and row mark.
    struct Wakeups {
        futex: AtomicU32,
        sleepers: AtomicU32,
        mark: AtomicU32,
    }

    /// A publisher commits two messages and wakes the consumer's sleepers after each; the
    /// consumer polls and, finding nothing, goes to sleep through the handshake (the futex is a
    /// condition variable here, waited on without a timeout). No wake-up is lost: a lost one
    /// leaves the consumer asleep for ever, which loom reports as a deadlock. Both messages
    /// arrive, and the consumer's sleeper count and mark are back to zero.
    #[test]
    fn loom_sleeper_handshake_loses_no_wake_up() {
        model(|| {
            let s = shared(2, 1);
            let w = Arc::new(Wakeups {
                futex: AtomicU32::new(0),
                sleepers: AtomicU32::new(0),
                mark: AtomicU32::new(0),
            });
            let (s1, w1) = (s.clone(), w.clone());
            let publisher = loom::thread::spawn(move || {
                let r = s1.view();
                let intent = crate::blocks::atomics::AtomicU64::new(0);
                for v in 1..=2 {
                    let pos = r.claim(&intent).expect("a free slot");
                    r.slot(pos).topic_hash.store(v, Ordering::Relaxed);
                    assert!(r.commit(pos, r.addressees(pos, !0), &intent));
                    wake(&w1.futex, &w1.sleepers);
                }
            });
            let (s2, w2) = (s.clone(), w.clone());
            let consumer = loom::thread::spawn(move || {
                let r = s2.view();
                let sleeper = Sleeper {
                    futex: &w2.futex,
                    sleepers: &w2.sleepers,
                    mark: &w2.mark,
                    tag: 1,
                };
                let mut got = Vec::new();
                for pos in 0..2 {
                    let ready = loop {
                        match r.poll(pos, 1) {
                            Poll::Empty => {}
                            p => break p,
                        }
                        let woke = sleeper.sleep_unless(Duration::from_secs(1), || {
                            Some(r.poll(pos, 1)).filter(|p| *p != Poll::Empty)
                        });
                        if let Some(p) = woke {
                            break p;
                        }
                    };
                    assert_eq!(ready, Poll::Ready);
                    got.push(r.slot(pos).topic_hash.load(Ordering::Relaxed));
                    r.release(pos, 1);
                }
                got
            });
            publisher.join().unwrap();
            assert_eq!(consumer.join().unwrap(), vec![1, 2]);
            assert_eq!(w.sleepers.load(Ordering::SeqCst), 0);
            assert_eq!(w.mark.load(Ordering::SeqCst), 0);
        });
    }
}
