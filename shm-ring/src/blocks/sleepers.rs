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
//!
//! Blind sleepers. A commit wakes the consumers it addresses, which is enough for a consumer
//! that waits at a position that is not claimed yet, or that is claimed for it. A consumer whose
//! position is claimed but whose claimant has not yet announced its addressees cannot tell: the
//! message may not be for it, and one for it may be committed behind it, waking it while the
//! position it waits at is still undecided. Such a consumer sleeps *blind*: it also adds itself
//! to a count of blind sleepers (before its own count, in the same handshake), and every
//! commit and discard that finds that count non-zero wakes every sleeping consumer
//! ([`wake_committed`]). So a wake-up reaches every consumer with a message ready.

use crate::blocks::atomics::{fence, saturating_dec, AtomicU32, Ordering};
use std::time::Duration;

/// In a `mark` word: the count named by the rest of the word includes this sleeper.
pub(crate) const SLEEPING_COUNTED: u32 = 4;
/// In a `mark` word: the blind sleepers' count includes this sleeper.
pub(crate) const SLEEPING_BLIND: u32 = 8;

/// One side's sleep: the futex word it sleeps on, the count of those asleep on it, and the
/// sleeper's own record of being counted.
pub(crate) struct Sleeper<'a> {
    pub futex: &'a AtomicU32,
    pub sleepers: &'a AtomicU32,
    /// The sleeper's row `sleeping` word.
    pub mark: &'a AtomicU32,
    /// What `mark` says while asleep (which count it is in), without [`SLEEPING_COUNTED`].
    pub tag: u32,
    /// The blind sleepers' count, when this sleeper waits at a claimed position whose
    /// addressees it does not know (see the module doc).
    pub blind: Option<&'a AtomicU32>,
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
        let mut tag = self.tag;
        self.mark.store(tag, Ordering::Relaxed);
        if let Some(blind) = self.blind {
            blind.fetch_add(1, Ordering::SeqCst);
            tag |= SLEEPING_BLIND;
            self.mark.store(tag, Ordering::Relaxed);
        }
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        self.mark.store(tag | SLEEPING_COUNTED, Ordering::Relaxed);
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
        let blind_tag = self.blind.map_or(0, |_| SLEEPING_BLIND);
        self.mark.store(self.tag | blind_tag, Ordering::Relaxed);
        saturating_dec(self.sleepers);
        if let Some(blind) = self.blind {
            self.mark.store(self.tag, Ordering::Relaxed);
            saturating_dec(blind);
        }
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

/// After a commit or a discard has been made visible: wakes the sleepers of the consumers
/// `addressees` and, while any consumer sleeps blind, of every consumer. `consumer(b)` gives
/// consumer `b`'s futex word and sleeper count (`None` past the table).
pub(crate) fn wake_committed<'a>(
    addressees: u64,
    blind: &AtomicU32,
    consumer: impl Fn(usize) -> Option<(&'a AtomicU32, &'a AtomicU32)>,
) {
    fence(Ordering::SeqCst);
    let mut bits = if blind.load(Ordering::Relaxed) > 0 {
        u64::MAX
    } else {
        addressees
    };
    while bits != 0 {
        let b = bits.trailing_zeros() as usize;
        bits &= bits - 1;
        let Some((futex, sleepers)) = consumer(b) else {
            break;
        };
        wake_counted(futex, sleepers);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::blocks::ring::loom_tests::{model, shared};
    use crate::blocks::ring::{Addressed, Poll, TestRow};
    use loom::sync::Arc;

    /// A consumer's futex word, sleeper count and row mark.
    struct Wakeups {
        futex: AtomicU32,
        sleepers: AtomicU32,
        mark: AtomicU32,
    }

    /// Mixed-topic traffic (issue: a consumer asleep at a position claimed for another consumer
    /// was not woken when a message for it was committed behind that position before it went to
    /// sleep: the claimant's commit woke only its own addressees, and the consumer slept out
    /// its slice). Publisher A has claimed position 0 for a message for consumer 0, publisher B
    /// position 1 for one for consumer 1; each finishes by the product's steps (address,
    /// commit, finish, wake) while consumer 1 walks
    /// the ring as a receiver does (`poll_past` with the claimants' announcements, sleeping
    /// blind at a claimed position it cannot decide). Under loom the futex has no timeout, so a
    /// lost wake-up is a deadlock. Consumer 1 gets B's message, and every count is back to 0.
    #[test]
    fn loom_no_wake_up_is_lost_behind_a_position_for_another_consumer() {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(2);
        builder.check(|| {
            let s = shared(2, 0b11);
            let w: Arc<[Wakeups; 2]> = Arc::new(std::array::from_fn(|_| Wakeups {
                futex: AtomicU32::new(0),
                sleepers: AtomicU32::new(0),
                mark: AtomicU32::new(0),
            }));
            let blind = Arc::new(AtomicU32::new(0));
            let rows: Arc<[TestRow; 2]> = Arc::new(Default::default());
            // The state the race starts from: A has claimed position 0, then B position 1.
            let runs: Vec<_> = rows
                .iter()
                .map(|row| s.view().claim_run(1, &row.intent).expect("a free slot"))
                .collect();
            let publishers: Vec<_> = [(0usize, 0b01u64, 7u64), (1, 0b10, 8)]
                .into_iter()
                .map(|(k, to, value)| {
                    let (s, w, blind, rows) = (s.clone(), w.clone(), blind.clone(), rows.clone());
                    let runs = runs.clone();
                    loom::thread::spawn(move || {
                        let r = s.view();
                        let row = &rows[k];
                        let (a, done) = r.finish_publish(runs[k], || to, &[value], row);
                        assert_eq!((a, done), (Addressed::To(to), 1));
                        wake_committed(to, &blind, |b| w.get(b).map(|w| (&w.futex, &w.sleepers)));
                    })
                })
                .collect();
            let (s1, w1, b1, rows1) = (s.clone(), w.clone(), blind.clone(), rows.clone());
            let consumer = loom::thread::spawn(move || {
                let r = s1.view();
                let announced =
                    |pos| r.announced(pos, rows1.iter().map(|c| (&c.intent, &c.addressed)));
                // What a patient look finds at `pos`, and whether it is blind there.
                let look = |pos: u64| {
                    let mut told = false;
                    let p = r.poll_past(pos, 0b10, |pos| {
                        let to = announced(pos);
                        told = to.is_some();
                        to
                    });
                    let claimed = r.head.load(Ordering::SeqCst) > pos;
                    (p, p == Poll::Empty && !told && claimed)
                };
                let mut pos = 0;
                loop {
                    let (p, blind) = look(pos);
                    match p {
                        Poll::Ready => break r.slot(pos).topic_hash.load(Ordering::Relaxed),
                        Poll::Skip => pos += 1,
                        Poll::Empty => {
                            let sleeper = Sleeper {
                                futex: &w1[1].futex,
                                sleepers: &w1[1].sleepers,
                                mark: &w1[1].mark,
                                tag: 1,
                                blind: blind.then_some(&*b1),
                            };
                            let _ = sleeper.sleep_unless(Duration::from_secs(1), || {
                                let (p, now_blind) = look(pos);
                                (p != Poll::Empty || now_blind != blind).then_some(())
                            });
                        }
                    }
                }
            });
            for p in publishers {
                p.join().unwrap();
            }
            assert_eq!(consumer.join().unwrap(), 8);
            assert_eq!(blind.load(Ordering::SeqCst), 0);
            assert_eq!(w[1].sleepers.load(Ordering::SeqCst), 0);
            assert_eq!(w[1].mark.load(Ordering::SeqCst), 0);
        });
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
                let row = TestRow::default();
                for v in 1..=2 {
                    let run = r.claim_run(1, &row.intent).expect("a free slot");
                    assert_eq!(r.finish_publish(run, || !0, &[v], &row).1, 1);
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
                    blind: None,
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
