//! The ring: a bounded multi-producer, multi-consumer sequence of slots with per-consumer
//! acknowledgement, after Dmitry Vyukov's bounded MPMC queue.
//!
//! Semantics: positions grow forever; position `pos` lives in slot `pos % capacity`. Each slot's
//! `seq` says where that slot is in its life:
//!
//! * `seq == pos`: free for the publisher of `pos` (or claimed by it and being written);
//! * `seq == pos + 1`: published; `pending` holds one bit per consumer that must still see it;
//! * `seq == pos + capacity`: released by its last consumer, free for position `pos + capacity`.
//!
//! A publisher claims `head` only when `slot[head].seq == head`, by CAS on `head`: a full ring is
//! exactly "the previous occupant is not released by every consumer yet", so no cursor scanning
//! is needed and a publisher never overwrites. After the claim it reads the active-consumer mask
//! (SeqCst, so a consumer that joined before the claim is included and one that left is not),
//! writes the slot, stores `pending` and finally `seq = pos + 1` (Release).
//!
//! A consumer at `pos` reads `seq`: `pos + 1` with its bit set is a message for it; `pos + 1`
//! without its bit, or anything beyond, is a slot it was not counted in and skips; below that it
//! waits. Releasing clears its bit; whoever clears the last bit frees the payload block and sets
//! `seq = pos + capacity`.
//!
//! A publisher that dies between claim and publish leaves `seq == pos`; a survivor that finds no
//! live process announcing that position (each publisher writes an [`Intent`] naming the
//! positions it claims to its row's `publishing` word before the claim) tombstones the slot by
//! CAS `pos -> pos + capacity`, which every consumer skips.
//!
//! A batch claim ([`RingView::claim_many`]) takes up to `n` consecutive positions with one CAS
//! on `head`, after checking that each of their slots is free. No other publisher can claim any
//! of them in between: claiming position `h + i` needs `head == h + i`, and `head` leaves `h`
//! only by a CAS from `h`, which is the one that succeeded. A free slot stays free until its
//! claimant writes it, so the checks still hold after the CAS.

use crate::blocks::atomics::{AtomicU32, AtomicU64, Ordering};
use std::cell::UnsafeCell;

/// Bytes of topic plus payload a slot carries itself, with no slab block: 136, so that a topic
/// like `Market.Data.AAPL` with a 64-byte payload (80 bytes) and a pickled call of a few small
/// arguments stay inline. A block costs two shared cache lines per message (the class free-list
/// head and its `used` count) bouncing between publisher and subscriber.
pub(crate) const INLINE_CAP: usize = 136;

/// One ring slot (192 bytes, three cache lines: 56 bytes of fields, then the inline bytes).
#[repr(C)]
pub(crate) struct Slot {
    /// Life-cycle word, see the module doc.
    pub seq: AtomicU64,
    /// Consumers that have not released this message yet, one bit per consumer entry.
    pub pending: AtomicU64,
    pub topic_hash: AtomicU64,
    pub timestamp_ns: AtomicU64,
    /// Process-table row of the publisher.
    pub publisher: AtomicU32,
    pub publisher_pid: AtomicU32,
    /// Slab block index + 1 holding topic and payload, or 0 when they are inline.
    pub block: AtomicU32,
    pub payload_len: AtomicU32,
    /// `topic_len | codec << 16`.
    pub meta: AtomicU64,
    /// Topic bytes then payload bytes, when they fit ([`INLINE_CAP`]).
    pub inline: UnsafeCell<[u8; INLINE_CAP]>,
}

/// What a publisher announces in its row's `publishing` word while it claims and writes a run of
/// positions: the first position and how many, packed into one word so that a reaper reads both
/// at once. Positions are taken modulo 2^48 here (group cursors pack them the same way); a run is
/// at most 65535 positions, far below that.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Intent {
    /// First claimed position.
    pub first: u64,
    /// Positions claimed, 1..=[`Intent::MAX_RUN`].
    pub count: u64,
}

impl Intent {
    const POS_BITS: u32 = 48;
    const POS_MASK: u64 = (1 << Self::POS_BITS) - 1;
    /// Most positions one claim takes.
    pub const MAX_RUN: u64 = (1 << (64 - Self::POS_BITS)) - 1;

    /// The word: `first mod 2^48 | count << 48`. Never 0 (which means idle), since `count >= 1`.
    pub fn word(self) -> u64 {
        (self.first & Self::POS_MASK) | (self.count << Self::POS_BITS)
    }

    /// True when word `w` announces position `pos`.
    #[cfg_attr(loom, allow(dead_code))]
    pub fn covers(w: u64, pos: u64) -> bool {
        let first = w & Self::POS_MASK;
        let count = w >> Self::POS_BITS;
        ((pos & Self::POS_MASK).wrapping_sub(first) & Self::POS_MASK) < count
    }
}

/// What a consumer finds at its cursor.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(crate) enum Poll {
    /// Nothing published there yet.
    Empty,
    /// A message this consumer must handle.
    Ready,
    /// A slot this consumer is not counted in (joined later, tombstone): move on.
    Skip,
}

/// Why a claim failed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct RingFull;

/// The ring as seen by one process: the shared head, the active mask and the slots.
pub(crate) struct RingView<'a> {
    pub head: &'a AtomicU64,
    pub active: &'a AtomicU64,
    pub slots: &'a [Slot],
}

/// Signed distance `a - b` between two positions.
#[inline]
pub(crate) fn dist(a: u64, b: u64) -> i64 {
    a.wrapping_sub(b) as i64
}

impl<'a> RingView<'a> {
    /// Number of slots (a power of two).
    #[inline]
    pub fn capacity(&self) -> u64 {
        self.slots.len() as u64
    }

    /// The slot of position `pos`.
    #[inline]
    pub fn slot(&self, pos: u64) -> &'a Slot {
        &self.slots[(pos & (self.capacity() - 1)) as usize]
    }

    /// Claims the next position. `intent` (the caller's row `publishing` word) is set to
    /// [`Intent::word`] of the position before the CAS so that survivors can tell a live claimant
    /// from a dead one.
    pub fn claim(&self, intent: &AtomicU64) -> Result<u64, RingFull> {
        self.claim_many(1, intent).map(|(pos, _)| pos)
    }

    /// Claims up to `max` (1..=[`Intent::MAX_RUN`]) consecutive positions with one CAS: as many
    /// as have free slots, at least one. Returns the first position and how many were claimed.
    /// `intent` announces the whole run before the CAS.
    pub fn claim_many(&self, max: u64, intent: &AtomicU64) -> Result<(u64, u64), RingFull> {
        debug_assert!((1..=Intent::MAX_RUN).contains(&max));
        let max = max.clamp(1, Intent::MAX_RUN.min(self.capacity()));
        let mut h = self.head.load(Ordering::SeqCst);
        loop {
            let s = self.slot(h).seq.load(Ordering::Acquire);
            let d = dist(s, h);
            if d == 0 {
                let mut n = 1;
                while n < max
                    && self.slot(h.wrapping_add(n)).seq.load(Ordering::Acquire) == h.wrapping_add(n)
                {
                    n += 1;
                }
                intent.store(Intent { first: h, count: n }.word(), Ordering::SeqCst);
                match self.head.compare_exchange_weak(
                    h,
                    h.wrapping_add(n),
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                ) {
                    Ok(_) => return Ok((h, n)),
                    Err(now) => {
                        intent.store(0, Ordering::Relaxed);
                        h = now;
                    }
                }
            } else {
                // d < 0: the previous occupant of this slot is still held by some consumer.
                // d > 0: another publisher claimed `h` already, so `head` has moved on (it is
                // advanced before the slot is written); if it has not, the region is corrupt and
                // reporting a full ring is the safe answer.
                let now = self.head.load(Ordering::SeqCst);
                if now == h {
                    return Err(RingFull);
                }
                h = now;
            }
            crate::blocks::atomics::spin_hint();
        }
    }

    /// After the claim: the consumers this message is for. Zero means nobody listens; the caller
    /// then calls [`RingView::discard`].
    pub fn consumers(&self) -> u64 {
        self.active.load(Ordering::SeqCst)
    }

    /// Publishes claimed position `pos` for `consumers` (non-zero); the slot fields must be written.
    pub fn commit(&self, pos: u64, consumers: u64, intent: &AtomicU64) {
        self.commit_one(pos, consumers);
        intent.store(0, Ordering::Release);
    }

    /// Publishes one position of a claimed run, leaving the intent in place for the rest; the
    /// caller clears it (Release) once the whole run is published or discarded.
    pub fn commit_one(&self, pos: u64, consumers: u64) {
        let slot = self.slot(pos);
        slot.pending.store(consumers, Ordering::Relaxed);
        slot.seq.store(pos.wrapping_add(1), Ordering::Release);
    }

    /// Gives claimed positions `pos..pos + count` back unpublished (nobody to deliver to).
    #[cfg_attr(loom, allow(dead_code))]
    pub fn discard(&self, pos: u64, count: u64, intent: &AtomicU64) {
        for p in pos..pos.wrapping_add(count) {
            self.slot(p)
                .seq
                .store(p.wrapping_add(self.capacity()), Ordering::Release);
        }
        intent.store(0, Ordering::Release);
    }

    /// What consumer `bit` finds at `pos`.
    #[inline]
    pub fn poll(&self, pos: u64, bit: u64) -> Poll {
        let slot = self.slot(pos);
        let s = slot.seq.load(Ordering::Acquire);
        match dist(s, pos.wrapping_add(1)) {
            0 => {
                if slot.pending.load(Ordering::Acquire) & bit != 0 {
                    Poll::Ready
                } else {
                    Poll::Skip
                }
            }
            d if d > 0 => Poll::Skip,
            _ => Poll::Empty,
        }
    }

    /// Clears `bits` from published position `pos`. Returns `Some(block field)` when this call
    /// cleared the last bit, in which case the slot has been released and the caller owns the
    /// block (0 = inline, nothing to free).
    pub fn release(&self, pos: u64, bits: u64) -> Option<u32> {
        let slot = self.slot(pos);
        let prev = slot.pending.fetch_and(!bits, Ordering::AcqRel);
        if prev & bits != 0 && prev & !bits == 0 {
            let block = slot.block.load(Ordering::Relaxed);
            slot.seq
                .store(pos.wrapping_add(self.capacity()), Ordering::Release);
            Some(block)
        } else {
            None
        }
    }

    /// Tombstones position `pos` if it is still claimed but unpublished (its claimant is dead).
    #[cfg_attr(loom, allow(dead_code))]
    pub fn tombstone(&self, pos: u64) -> bool {
        self.slot(pos)
            .seq
            .compare_exchange(
                pos,
                pos.wrapping_add(self.capacity()),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }
}

/// A test ring's slot, free for the publisher of position `pos` (as a new region's are).
#[cfg(test)]
impl Slot {
    pub(crate) fn free_at(pos: u64) -> Slot {
        Slot {
            seq: AtomicU64::new(pos),
            pending: AtomicU64::new(0),
            topic_hash: AtomicU64::new(0),
            timestamp_ns: AtomicU64::new(0),
            publisher: AtomicU32::new(0),
            publisher_pid: AtomicU32::new(0),
            block: AtomicU32::new(0),
            payload_len: AtomicU32::new(0),
            meta: AtomicU64::new(0),
            inline: UnsafeCell::new([0; INLINE_CAP]),
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    pub(crate) fn slots(n: usize) -> Vec<Slot> {
        (0..n).map(|i| Slot::free_at(i as u64)).collect()
    }

    #[test]
    fn full_ring_waits_for_every_consumer() {
        let (head, active, intent) = (AtomicU64::new(0), AtomicU64::new(0b11), AtomicU64::new(0));
        let s = slots(2);
        let r = RingView {
            head: &head,
            active: &active,
            slots: &s,
        };
        for pos in 0..2 {
            assert_eq!(r.claim(&intent), Ok(pos));
            assert_eq!(intent.load(Ordering::Relaxed), pos | 1 << 48);
            r.commit(pos, r.consumers(), &intent);
        }
        assert_eq!(r.claim(&intent), Err(RingFull));
        assert_eq!(r.poll(0, 1), Poll::Ready);
        assert_eq!(r.release(0, 1), None);
        assert_eq!(r.claim(&intent), Err(RingFull));
        assert_eq!(r.release(0, 2), Some(0));
        assert_eq!(r.poll(0, 1), Poll::Skip);
        assert_eq!(r.poll(2, 1), Poll::Empty);
        assert_eq!(r.claim(&intent), Ok(2));
        assert_eq!(r.poll(2, 1), Poll::Empty);
        assert!(r.tombstone(2));
        assert_eq!(r.poll(2, 1), Poll::Skip);
        assert_eq!(r.poll(3, 4), Poll::Empty);
    }

    #[test]
    fn claim_many_takes_only_free_slots_and_announces_the_run() {
        let (head, active, intent) = (AtomicU64::new(0), AtomicU64::new(1), AtomicU64::new(0));
        let s = slots(4);
        let r = RingView {
            head: &head,
            active: &active,
            slots: &s,
        };
        assert_eq!(r.claim_many(3, &intent), Ok((0, 3)));
        let w = intent.load(Ordering::Relaxed);
        assert!((0..3).all(|p| Intent::covers(w, p)));
        assert!(!Intent::covers(w, 3) && !Intent::covers(0, 0));
        for p in 0..3 {
            r.commit_one(p, 1);
        }
        // Only slot 3 is free: a run of 4 gets one position.
        assert_eq!(r.claim_many(4, &intent), Ok((3, 1)));
        r.commit(3, 1, &intent);
        assert_eq!(r.claim_many(2, &intent), Err(RingFull));
        assert_eq!(r.release(0, 1), Some(0));
        assert_eq!(r.release(1, 1), Some(0));
        assert_eq!(r.claim_many(4, &intent), Ok((4, 2)));
        let w = Intent {
            first: (1 << 48) - 1,
            count: 2,
        }
        .word();
        assert!(Intent::covers(w, (1 << 48) - 1) && Intent::covers(w, 1 << 48));
        assert!(!Intent::covers(w, (1 << 48) + 1));
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! Loom models of the ring. Waiting sides sleep on a condition variable (standing in for the
    //! futex of the real code) instead of spinning: loom explores stale reads of a spinning thread
    //! without bound, which no real processor does.

    use super::*;
    use loom::sync::{Arc, Condvar, Mutex};

    struct Shared {
        head: AtomicU64,
        active: AtomicU64,
        slots: Vec<Slot>,
        lock: Mutex<()>,
        changed: Condvar,
    }

    fn shared(cap: usize, active: u64) -> Arc<Shared> {
        Arc::new(Shared {
            head: AtomicU64::new(0),
            active: AtomicU64::new(active),
            slots: (0..cap).map(|i| Slot::free_at(i as u64)).collect(),
            lock: Mutex::new(()),
            changed: Condvar::new(),
        })
    }

    impl Shared {
        fn view(&self) -> RingView<'_> {
            RingView {
                head: &self.head,
                active: &self.active,
                slots: &self.slots,
            }
        }

        /// Runs `attempt` until it succeeds, sleeping between tries (the re-check under the lock
        /// rules out a lost wake-up, as the sleeper count does for the futex).
        fn wait<T>(&self, mut attempt: impl FnMut() -> Option<T>) -> T {
            loop {
                if let Some(v) = attempt() {
                    return v;
                }
                let g = self.lock.lock().unwrap();
                if let Some(v) = attempt() {
                    return v;
                }
                drop(self.changed.wait(g).unwrap());
            }
        }

        fn wake(&self) {
            drop(self.lock.lock().unwrap());
            self.changed.notify_all();
        }

        /// Publishes `value` (in `topic_hash`), waiting while the ring is full.
        fn publish(&self, value: u64) {
            let r = self.view();
            let intent = AtomicU64::new(0);
            let pos = self.wait(|| r.claim(&intent).ok());
            r.slot(pos).topic_hash.store(value, Ordering::Relaxed);
            r.commit(pos, r.consumers(), &intent);
            self.wake();
        }

        /// Publishes `values` in order, claiming runs of free slots with one CAS each.
        fn publish_run(&self, values: &[u64]) {
            let r = self.view();
            let intent = AtomicU64::new(0);
            let mut done = 0;
            while done < values.len() {
                let want = (values.len() - done) as u64;
                let (pos, n) = self.wait(|| r.claim_many(want, &intent).ok());
                let consumers = r.consumers();
                for j in 0..n {
                    let slot = r.slot(pos + j);
                    slot.topic_hash
                        .store(values[done + j as usize], Ordering::Relaxed);
                    r.commit_one(pos + j, consumers);
                }
                intent.store(0, Ordering::Release);
                done += n as usize;
                self.wake();
            }
        }

        /// Receives `n` messages as consumer `bit`, returning their values in order.
        fn consume(&self, bit: u64, n: usize) -> Vec<u64> {
            let r = self.view();
            let mut pos = 0;
            let mut got = Vec::new();
            while got.len() < n {
                let ready = self.wait(|| match r.poll(pos, bit) {
                    Poll::Empty => None,
                    p => Some(p),
                });
                if ready == Poll::Ready {
                    got.push(r.slot(pos).topic_hash.load(Ordering::Relaxed));
                    r.release(pos, bit);
                    self.wake();
                }
                pos += 1;
            }
            got
        }
    }

    fn model(f: impl Fn() + Sync + Send + 'static) {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(3);
        b.check(f);
    }

    /// Two publishers, one consumer, capacity 2, three messages (so a publisher must wait for the
    /// consumer): every message arrives exactly once, each publisher's in order.
    #[test]
    fn loom_ring_two_publishers_one_consumer() {
        model(|| {
            let s = shared(2, 1);
            let s2 = s.clone();
            let p = loom::thread::spawn(move || {
                s2.publish(11);
                s2.publish(12);
            });
            let s3 = s.clone();
            let q = loom::thread::spawn(move || s3.publish(21));
            let got = s.consume(1, 3);
            p.join().unwrap();
            q.join().unwrap();
            let mine: Vec<_> = got.iter().copied().filter(|v| *v < 20).collect();
            assert_eq!(mine, vec![11, 12]);
            assert_eq!(got.iter().filter(|v| **v == 21).count(), 1);
        });
    }

    /// A batch publisher (runs of up to three, capacity 2, so a run is cut short by the full
    /// ring) and a single publisher, one consumer: every message arrives exactly once, the batch
    /// publisher's in order, and no slot is claimed twice.
    #[test]
    fn loom_ring_batch_claim_with_a_single_publisher() {
        model(|| {
            let s = shared(2, 1);
            let s2 = s.clone();
            let p = loom::thread::spawn(move || s2.publish_run(&[11, 12, 13]));
            let s3 = s.clone();
            let q = loom::thread::spawn(move || s3.publish(21));
            let got = s.consume(1, 4);
            p.join().unwrap();
            q.join().unwrap();
            let mine: Vec<_> = got.iter().copied().filter(|v| *v < 20).collect();
            assert_eq!(mine, vec![11, 12, 13]);
            assert_eq!(got.iter().filter(|v| **v == 21).count(), 1);
        });
    }

    /// One publisher, two consumers, capacity 2: both see all three messages in order, and the
    /// publisher never reuses a slot one of them still holds.
    #[test]
    fn loom_ring_one_publisher_two_consumers() {
        model(|| {
            let s = shared(2, 0b11);
            let c: Vec<_> = [1u64, 2]
                .into_iter()
                .map(|bit| {
                    let s = s.clone();
                    loom::thread::spawn(move || s.consume(bit, 3))
                })
                .collect();
            for v in 1..=3 {
                s.publish(v);
            }
            for t in c {
                assert_eq!(t.join().unwrap(), vec![1, 2, 3]);
            }
        });
    }

    /// A consumer that is not in the active mask when a message is claimed skips it and never
    /// holds the slot: the publisher can lap it.
    #[test]
    fn loom_ring_inactive_consumer_is_skipped() {
        model(|| {
            let s = shared(2, 0b01);
            let s2 = s.clone();
            let c = loom::thread::spawn(move || s2.consume(1, 3));
            for v in 1..=3 {
                s.publish(v);
            }
            assert_eq!(c.join().unwrap(), vec![1, 2, 3]);
            // Consumer bit 2 was never active: every slot is free again.
            let r = s.view();
            assert_eq!(r.poll(0, 2), Poll::Skip);
            assert_eq!(r.poll(2, 2), Poll::Skip);
        });
    }
}

// SAFETY: every field but `inline` is atomic. `inline` is written only by the publisher that
// claimed the slot, before its Release store of `seq`, and read only by consumers after their
// Acquire load of `seq` shows the message published and while their pending bit keeps the slot
// from being reused; observers copy it with volatile reads and discard the copy if `seq` moved.
unsafe impl Sync for Slot {}
