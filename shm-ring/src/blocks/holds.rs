//! Who keeps a published slab block out of its free list: the ring, and the processes that hold
//! views of it (`docs/delivery.md`, "Holds").
//!
//! Each block has one `u64` word. Bit 63 ([`RING`]) is the ring's reference: set by the
//! publisher that popped the block, before the block goes into a slot, and cleared when the
//! slot is released (by its last consumer, an eviction, a departure or a reap). Bits 0..62 are
//! *seats*: a process that keeps a view of the block after acknowledging its message sets its
//! seat's bit first, while its pending bit still keeps the slot, and so the ring's reference,
//! in place. Whoever's read-modify-write leaves the word 0 owns the block and pushes it back on
//! its free list: exactly one of them, because they all change one word. A word of 0 on a block
//! said to be released is a double release and frees nothing.
//!
//! A loan (a block a producer fills in place) is held by its seat alone until it is published:
//! [`Holds::lend`], then [`Holds::lend_to_ring`] gives it to the ring before the seat lets go.
//!
//! Every index comes from shared memory and is checked against the table; an out-of-range index
//! does nothing and frees nothing.

use crate::blocks::atomics::{AtomicU64, Ordering};

/// The ring's reference: the block is in a slot (or on its way into one).
pub(crate) const RING: u64 = 1 << 63;
/// How many seats there are (bits 0..62).
pub(crate) const SEATS: u32 = 63;

/// The bit of seat `seat` (< [`SEATS`]).
pub(crate) fn seat_bit(seat: u32) -> u64 {
    debug_assert!(seat < SEATS);
    1u64 << (seat % SEATS)
}

/// The hold words of every slab block, indexed by global block index.
pub(crate) struct Holds<'a> {
    pub words: &'a [AtomicU64],
}

impl Holds<'_> {
    fn word(&self, block: u32) -> Option<&AtomicU64> {
        self.words.get(block as usize)
    }

    /// The publisher that popped `block` gives it to the ring (the word of a free block is 0).
    pub fn to_ring(&self, block: u32) {
        if let Some(w) = self.word(block) {
            w.store(RING, Ordering::Release);
        }
    }

    /// Seat `seat` keeps `block`. The caller must keep the ring's reference in place meanwhile
    /// (its pending bit on the slot that carries the block), so that the block cannot be freed,
    /// and so reused, under the new hold. False for an index out of range.
    pub fn hold(&self, block: u32, seat: u32) -> bool {
        match self.word(block) {
            Some(w) => {
                w.fetch_or(seat_bit(seat), Ordering::AcqRel);
                true
            }
            None => false,
        }
    }

    /// The ring lets `block` go. True when nobody holds it: the caller must free it.
    pub fn drop_ring(&self, block: u32) -> bool {
        self.word(block)
            .is_some_and(|w| w.fetch_and(!RING, Ordering::AcqRel) == RING)
    }

    /// The reap of a dead publisher drops the ring's reference to the block its row names
    /// (`Row::held_block`), which it may have popped without giving it to the ring yet (the word
    /// is then 0). True when no seat holds it: the caller must free it. Never for a block that is
    /// the ring's through a slot: only the publisher's own row names it until the commit.
    pub fn drop_popped(&self, block: u32) -> bool {
        self.word(block)
            .is_some_and(|w| w.fetch_and(!RING, Ordering::AcqRel) & !RING == 0)
    }

    /// Seat `seat` lets `block` go. True when it was the last reference: the caller must free it.
    pub fn release(&self, block: u32, seat: u32) -> bool {
        let bit = seat_bit(seat);
        self.word(block)
            .is_some_and(|w| w.fetch_and(!bit, Ordering::AcqRel) == bit)
    }

    /// A block just popped becomes a loan of seat `seat`.
    pub fn lend(&self, block: u32, seat: u32) {
        if let Some(w) = self.word(block) {
            w.store(seat_bit(seat), Ordering::Release);
        }
    }

    /// A loan goes to the ring; its seat still holds it until it calls [`Holds::release`].
    pub fn lend_to_ring(&self, block: u32) {
        if let Some(w) = self.word(block) {
            w.fetch_or(RING, Ordering::AcqRel);
        }
    }

    /// Lets seat `seat` go of every block it holds (the reap of a dead holder, or a holder
    /// leaving with views it can no longer give back one by one), calling `each(block, last)` for
    /// every block it held, `last` when it held the last reference (the caller must free it).
    /// Returns how many blocks it held.
    pub fn release_everywhere(&self, seat: u32, mut each: impl FnMut(u32, bool)) -> u32 {
        let bit = seat_bit(seat);
        let mut held = 0;
        for (i, w) in self.words.iter().enumerate() {
            if w.load(Ordering::Acquire) & bit != 0 {
                held += 1;
                each(i as u32, w.fetch_and(!bit, Ordering::AcqRel) == bit);
            }
        }
        held
    }

    /// Zeroes every word. Only for the sweep, when nobody else can touch the slab.
    pub fn reset(&self) {
        for w in self.words {
            w.store(0, Ordering::Relaxed);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn words(n: usize) -> Vec<AtomicU64> {
        (0..n).map(|_| AtomicU64::new(0)).collect()
    }

    #[test]
    fn the_last_reference_frees_whichever_goes_last() {
        let w = words(2);
        let h = Holds { words: &w };
        h.to_ring(0);
        assert!(h.drop_ring(0), "nobody held it");
        h.to_ring(1);
        assert!(h.hold(1, 3) && h.hold(1, 62));
        assert!(!h.drop_ring(1));
        assert!(!h.release(1, 3));
        assert!(h.release(1, 62), "the last seat frees it");
        assert_eq!(w[1].load(Ordering::Relaxed), 0);
        // A second release of a freed block frees nothing.
        assert!(!h.release(1, 62) && !h.drop_ring(1));
    }

    #[test]
    fn a_loan_goes_to_the_ring_and_the_ring_frees_it() {
        let w = words(1);
        let h = Holds { words: &w };
        h.lend(0, 5);
        h.lend_to_ring(0);
        assert!(!h.release(0, 5));
        assert!(h.drop_ring(0));
    }

    #[test]
    fn indices_out_of_range_do_nothing() {
        let w = words(1);
        let h = Holds { words: &w };
        h.to_ring(7);
        assert!(!h.hold(7, 0) && !h.drop_ring(7) && !h.release(7, 0));
    }
}

#[cfg(all(test, loom))]
pub(crate) mod loom_tests {
    //! The hold protocol with the slab's own free list: a block is never handed to a publisher
    //! while a view of it lives, and every block comes back exactly once.
    use super::*;
    use crate::blocks::atomics::AtomicU32;
    use crate::blocks::slab::FreeList;
    use loom::cell::UnsafeCell;
    use loom::sync::Arc;

    /// One block's worth of slab: a free list of `n` blocks, their hold words, and their bytes
    /// (loom cells, so that a write racing a read of the same block fails the model).
    pub(crate) struct Slab {
        head: AtomicU64,
        links: Vec<AtomicU32>,
        words: Vec<AtomicU64>,
        data: Vec<UnsafeCell<u64>>,
    }

    impl Slab {
        pub(crate) fn new(n: usize) -> Arc<Slab> {
            let s = Slab {
                head: AtomicU64::new(0),
                links: (0..n).map(|_| AtomicU32::new(0)).collect(),
                words: (0..n).map(|_| AtomicU64::new(0)).collect(),
                data: (0..n).map(|_| UnsafeCell::new(0)).collect(),
            };
            s.list().reset();
            Arc::new(s)
        }
        pub(crate) fn list(&self) -> FreeList<'_> {
            FreeList {
                head: &self.head,
                links: &self.links,
                first: 0,
                count: self.links.len() as u32,
            }
        }
        pub(crate) fn holds(&self) -> Holds<'_> {
            Holds { words: &self.words }
        }
        /// A publisher: pops a block, writes `v` into it, gives it to the ring.
        pub(crate) fn publish(&self, v: u64) -> Option<u32> {
            let b = self.list().pop(None).unwrap()?;
            self.data[b as usize].with_mut(|p| unsafe { *p = v });
            self.holds().to_ring(b);
            Some(b)
        }
        pub(crate) fn read(&self, b: u32) -> u64 {
            self.data[b as usize].with(|p| unsafe { *p })
        }
        /// Frees `b` if `last` says this caller let go of the last reference.
        pub(crate) fn free_if(&self, last: bool, b: u32) {
            if last {
                self.list().push(b).unwrap();
            }
        }
        pub(crate) fn free_count(&self) -> u32 {
            self.list().len().unwrap()
        }
    }

    fn model(f: impl Fn() + Sync + Send + 'static) {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(3);
        b.check(f);
    }

    /// A consumer takes a hold while its message is pending, then the slot is released (the
    /// ring lets go) on one thread while the holder reads and lets go on another, and a
    /// publisher tries to reuse the block on a third: it gets the block only after the view is
    /// gone (loom fails the model on a write racing the read), and the block comes back once.
    #[test]
    fn loom_a_block_is_never_reused_under_a_view() {
        model(|| {
            let slab = Slab::new(1);
            let b = slab.publish(7).unwrap();
            // The consumer's pending bit keeps the ring's reference while it takes the hold.
            assert!(slab.holds().hold(b, 4));
            let ring = {
                let s = slab.clone();
                loom::thread::spawn(move || {
                    let last = s.holds().drop_ring(b);
                    s.free_if(last, b);
                })
            };
            let holder = {
                let s = slab.clone();
                loom::thread::spawn(move || {
                    assert_eq!(s.read(b), 7, "the view reads what was published");
                    let last = s.holds().release(b, 4);
                    s.free_if(last, b);
                })
            };
            let publisher = {
                let s = slab.clone();
                loom::thread::spawn(move || {
                    // Reuses the block if it is back; gives it back again.
                    if let Some(b2) = s.publish(9) {
                        let last = s.holds().drop_ring(b2);
                        s.free_if(last, b2);
                    }
                })
            };
            ring.join().unwrap();
            holder.join().unwrap();
            publisher.join().unwrap();
            assert_eq!(slab.free_count(), 1, "the block came back exactly once");
        });
    }

    /// The whole path with the product's ring: a publisher publishes two messages through a
    /// one-slot ring and a one-block slab; consumer A keeps a view of the first (a hold taken
    /// while its pending bit keeps the slot) and acknowledges it, so that the publisher reclaims
    /// the slot at once; consumer B only reads. The second message needs the block back: the
    /// publisher gets it only once A's view is gone, never writing under it.
    #[test]
    fn loom_a_hold_taken_while_the_publisher_reclaims_the_slot() {
        use crate::blocks::ring::loom_tests::{model_bounded, shared};
        use crate::blocks::ring::{Addressed, Poll, SlotWrite, TestRow};
        model_bounded(2, || {
            let ring = shared(1, 0b11);
            let slab = Slab::new(1);
            let publisher = {
                let (ring, slab) = (ring.clone(), slab.clone());
                loom::thread::spawn(move || {
                    let row = TestRow::default();
                    for v in [7u64, 9] {
                        let b = ring.wait(|| slab.publish(v));
                        let run = ring.wait(|| ring.view().claim_run(1, &row.intent).ok());
                        let r = ring.view();
                        let a = r.announce(&run, || 0b11, &row.intent, &row.addressed);
                        assert_eq!(a, Addressed::To(0b11));
                        row.held.store(b + 1, Ordering::Relaxed);
                        assert!(r.commit_slot(
                            run.first,
                            0b11,
                            &SlotWrite::value(v, b + 1),
                            &row.held
                        ));
                        r.give_back(run.end(), run.end(), &row.intent, &row.addressed);
                        ring.wake();
                    }
                })
            };
            let consumer = |bit: u64, seat: Option<u32>| {
                let (ring, slab) = (ring.clone(), slab.clone());
                loom::thread::spawn(move || {
                    let r = ring.view();
                    for pos in 0..2u64 {
                        let ready = ring.wait(|| match r.poll(pos, bit) {
                            Poll::Empty => None,
                            p => Some(p),
                        });
                        assert_eq!(ready, Poll::Ready);
                        let b = r.slot(pos).block.load(Ordering::Relaxed) - 1;
                        let want = r.slot(pos).topic_hash.load(Ordering::Relaxed);
                        let held = pos == 0 && seat.is_some_and(|s| slab.holds().hold(b, s));
                        if let Some(block) = r.release(pos, bit) {
                            let last = slab.holds().drop_ring(block - 1);
                            slab.free_if(last, block - 1);
                        }
                        ring.wake();
                        if held {
                            assert_eq!(slab.read(b), want, "the view still reads its message");
                            let last = slab.holds().release(b, seat.unwrap());
                            slab.free_if(last, b);
                            ring.wake();
                        }
                    }
                })
            };
            let a = consumer(0b01, Some(0));
            let b = consumer(0b10, None);
            publisher.join().unwrap();
            a.join().unwrap();
            b.join().unwrap();
            assert_eq!(slab.free_count(), 1, "the block came back exactly once");
        });
    }

    /// A holder dies with a view of a block another holder also keeps; the reap lets go of
    /// everything the dead seat held while the live holder and the ring let go too, and a
    /// publisher tries to reuse the block: it is freed once, never written under a live view.
    #[test]
    fn loom_a_reap_of_a_dead_holder_races_the_last_view_and_the_ring() {
        model(|| {
            let slab = Slab::new(1);
            let b = slab.publish(5).unwrap();
            assert!(slab.holds().hold(b, 0)); // the holder that dies
            assert!(slab.holds().hold(b, 1)); // the live one
            let reaper = {
                let s = slab.clone();
                loom::thread::spawn(move || {
                    let held = s
                        .holds()
                        .release_everywhere(0, |blk, last| s.free_if(last, blk));
                    assert_eq!(held, 1);
                })
            };
            let live = {
                let s = slab.clone();
                loom::thread::spawn(move || {
                    assert_eq!(s.read(b), 5);
                    let last = s.holds().release(b, 1);
                    s.free_if(last, b);
                })
            };
            let ring = {
                let s = slab.clone();
                loom::thread::spawn(move || {
                    let last = s.holds().drop_ring(b);
                    s.free_if(last, b);
                })
            };
            let publisher = {
                let s = slab.clone();
                loom::thread::spawn(move || {
                    if let Some(b2) = s.publish(6) {
                        let last = s.holds().drop_ring(b2);
                        s.free_if(last, b2);
                    }
                })
            };
            for t in [reaper, live, ring, publisher] {
                t.join().unwrap();
            }
            assert_eq!(slab.free_count(), 1);
        });
    }

    /// Two seats hold one block and let go while the ring does: one of the three frees it.
    #[test]
    fn loom_two_holders_and_the_ring_free_a_block_once() {
        model(|| {
            let slab = Slab::new(1);
            let b = slab.publish(1).unwrap();
            assert!(slab.holds().hold(b, 0));
            assert!(slab.holds().hold(b, 1));
            let threads: Vec<_> = [None, Some(0u32), Some(1u32)]
                .into_iter()
                .map(|seat| {
                    let s = slab.clone();
                    loom::thread::spawn(move || {
                        let last = match seat {
                            None => s.holds().drop_ring(b),
                            Some(seat) => s.holds().release(b, seat),
                        };
                        s.free_if(last, b);
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!(slab.free_count(), 1);
        });
    }
}
