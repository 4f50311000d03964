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
//! is needed and a publisher never overwrites. After the claim it works out the message's
//! addressees ([`RingView::addressees`], below), writes the slot, stores `pending` and finally
//! commits by CAS of `seq` from `pos` to `pos + 1` (Release): a commit never moves `seq` back,
//! even if a survivor wrongly took the claimant for dead and tombstoned the position.
//!
//! Joining and leaving (`docs/design.md`, invariant 8). Consumer `b` owns bit `b` of `active` and
//! a `start` word: the first position it receives. A joiner sets its bit (SeqCst) and then
//! resolves `start`, once, by CAS from [`UNSET`] to the head it reads; a publisher that finds the
//! bit set and `start` still unset resolves it the same way. A publisher includes `b` in position
//! `p` exactly when, after claiming `p`, it sees the bit and `p >= start`. Why that is enough:
//!
//! * a publisher that does not see the bit loaded `active` before the joiner set it, and claimed
//!   `p` before that; whoever resolves `start` reads head after seeing the bit, so `start > p`;
//! * a publisher that sees the bit uses the one resolved `start`, and the joiner's cursor starts
//!   there: every position `>= start` that carries the bit is visited, no position below does.
//!
//! Leaving clears the bit (SeqCst) and reads head: `end`. A publisher that saw the bit claimed
//! its position before that read, so every position carrying the bit is below `end`. Those that
//! are published are released at once ([`RingView::drain`]); those still being written are
//! released by a later drain once committed, never waited for. The bit (the consumer entry) is
//! reused only when a drain finds nothing of it left in `end - capacity .. end`.
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

use crate::blocks::atomics::{sc_store_load, AtomicU32, AtomicU64, Ordering};
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

    /// The run word `w` announces (`None` for 0, idle), its first position widened against
    /// `head` (a claimed run starts below the head).
    #[cfg_attr(loom, allow(dead_code))]
    pub fn read(w: u64, head: u64) -> Option<Intent> {
        let count = w >> Self::POS_BITS;
        if count == 0 {
            return None;
        }
        let back = head.wrapping_sub(w & Self::POS_MASK) & Self::POS_MASK;
        Some(Intent {
            first: head.wrapping_sub(back),
            count,
        })
    }

    /// True when word `w` announces position `pos`.
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

/// A consumer's `start` before it is resolved (see the module doc).
pub(crate) const UNSET: u64 = u64::MAX;

/// The ring as seen by one process: the shared head, the active mask, each consumer's first
/// position, and the slots.
pub(crate) struct RingView<'a> {
    pub head: &'a AtomicU64,
    pub active: &'a AtomicU64,
    /// `starts[b]`: the first position consumer `b` receives, or [`UNSET`] while it joins.
    pub starts: &'a [AtomicU64],
    pub slots: &'a [Slot],
}

/// What a [`RingView::drain`] of a departed consumer found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Drained {
    /// Published positions whose bit it released.
    pub released: u64,
    /// Positions still being written (their publisher may yet commit them with the bit).
    pub in_flight: u64,
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

    /// After the claim of the run starting at `pos`: decides its addressees and announces them
    /// in the claimant's row (`addressed`, beside the `intent` word), before any slot write.
    /// `wanting()` says which consumers want the message's topic; it is asked here, after the
    /// claim, and not before a wait for space: a consumer counted before the wait may have left
    /// and its entry been taken by one that wants nothing, which would then be addressed and
    /// never release the slot. Returns the addressees; zero means nobody listens, and the caller
    /// then calls [`RingView::discard`].
    ///
    /// The announcement lets a consumer that waits at a claimed position pass it before it is
    /// committed when the claimant does not address it ([`RingView::poll_past`]), so a claimant
    /// stalled before its commit holds only its own addressees.
    pub fn address(&self, pos: u64, wanting: impl FnOnce() -> u64, addressed: &AtomicU64) -> u64 {
        // Our claim (a SeqCst CAS of head) before the interest is read; a joiner's interest
        // before its head read: either we read the joiner's interest, or it starts after us.
        sc_store_load();
        let to = self.addressees(pos, wanting());
        if to != 0 {
            addressed.store(to, Ordering::Release);
        }
        to
    }

    /// After a run is committed or discarded: withdraws its announcement (`addressed` first, then
    /// the intent, so that a consumer that still finds the intent never reads a later run's
    /// addressees under it).
    pub fn finish(&self, intent: &AtomicU64, addressed: &AtomicU64) {
        addressed.store(0, Ordering::Relaxed);
        intent.store(0, Ordering::Release);
    }

    /// After the claim of `pos`: the consumers among `candidates` the message is for (the
    /// active ones that joined at or before `pos`, see the module doc). Zero means nobody
    /// listens; the caller then calls [`RingView::discard`].
    pub fn addressees(&self, pos: u64, candidates: u64) -> u64 {
        // Our claim (a SeqCst CAS of head) before this load; a joiner's bit before its head read.
        sc_store_load();
        let mut mask = self.active.load(Ordering::SeqCst) & candidates;
        let mut bits = mask;
        while bits != 0 {
            let b = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            if dist(pos, self.start(b)) < 0 {
                mask &= !(1 << b);
            }
        }
        mask
    }

    /// After a claim found the ring full: `Some((head, seq))` when the slot at the head holds a
    /// later position than the head itself while the head stays put, which no run of the
    /// protocol produces (a publisher advances the head before it writes the slot). The head was
    /// moved back, or the slot overwritten: the ring would look full for ever.
    #[cfg_attr(loom, allow(dead_code))]
    pub fn head_overrun(&self) -> Option<(u64, u64)> {
        let h = self.head.load(Ordering::SeqCst);
        let s = self.slot(h).seq.load(Ordering::Acquire);
        (dist(s, h) > 0 && self.head.load(Ordering::SeqCst) == h).then_some((h, s))
    }

    /// Consumer `b`'s first position, resolving it (head now) if its joiner has not yet.
    pub fn start(&self, b: usize) -> u64 {
        let Some(w) = self.starts.get(b) else {
            return UNSET;
        };
        let s = w.load(Ordering::SeqCst);
        if s != UNSET {
            return s;
        }
        let h = self.head.load(Ordering::SeqCst);
        match w.compare_exchange(UNSET, h, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => h,
            Err(s) => s,
        }
    }

    /// Makes consumer `b` (whose `start` is [`UNSET`]) active; returns its first position.
    pub fn join(&self, b: usize) -> u64 {
        self.active.fetch_or(1 << b, Ordering::SeqCst);
        sc_store_load();
        self.start(b)
    }

    /// Makes consumer `b` inactive; returns `end`: no position at or past it carries its bit.
    /// Then [`RingView::drain`] until nothing of it is left.
    pub fn leave(&self, b: usize) -> u64 {
        self.active.fetch_and(!(1 << b), Ordering::SeqCst);
        sc_store_load();
        self.head.load(Ordering::SeqCst)
    }

    /// Releases departed consumer `b`'s bit from every published position below `end` (from
    /// [`RingView::leave`]) that still holds it, calling `freed(block field)` for each slot that
    /// this frees. Positions still being written are counted, not waited for: drain again later.
    /// Only one party may drain a consumer at a time (the table lock's holder), and nobody else
    /// clears a departed consumer's bit (a publisher evicts a lossy consumer only under the same
    /// lock, [`RingView::evict`]), so a slot that shows the bit stays that message's until the
    /// drain clears it.
    pub fn drain(&self, b: usize, end: u64, mut freed: impl FnMut(u32)) -> Drained {
        let bit = 1u64 << b;
        let mut out = Drained::default();
        let from = end.saturating_sub(self.capacity());
        for pos in from..end {
            let slot = self.slot(pos);
            match dist(slot.seq.load(Ordering::Acquire), pos) {
                0 => out.in_flight += 1,
                1 if slot.pending.load(Ordering::Acquire) & bit != 0 => {
                    out.released += 1;
                    if let Some(block) = self.release(pos, bit) {
                        freed(block);
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// Publishes claimed position `pos` for `consumers` (non-zero); the slot fields must be
    /// written. False if the position is no longer ours (a survivor tombstoned it, taking this
    /// process for dead): the message is then not published.
    #[must_use]
    #[cfg(test)]
    pub fn commit(&self, pos: u64, consumers: u64, intent: &AtomicU64) -> bool {
        let ok = self.commit_one(pos, consumers);
        intent.store(0, Ordering::Release);
        ok
    }

    /// Publishes one position of a claimed run, leaving the intent in place for the rest; the
    /// caller clears it (Release) once the whole run is published or discarded. False as for
    /// [`RingView::commit`].
    #[must_use]
    pub fn commit_one(&self, pos: u64, consumers: u64) -> bool {
        let slot = self.slot(pos);
        // Release: a consumer whose poll reads this `pending` must then see the `seq` that
        // freed the slot for `pos` (see [`RingView::poll`]).
        slot.pending.store(consumers, Ordering::Release);
        slot.seq
            .compare_exchange(
                pos,
                pos.wrapping_add(1),
                Ordering::Release,
                Ordering::Relaxed,
            )
            .is_ok()
    }

    /// Gives claimed positions `pos..pos + count` back unpublished (nobody to deliver to), and
    /// withdraws the run's announcement ([`RingView::finish`]).
    pub fn discard(&self, pos: u64, count: u64, intent: &AtomicU64, addressed: &AtomicU64) {
        for p in pos..pos.wrapping_add(count) {
            // From the claimed state only, like a commit (a survivor may have tombstoned it).
            let _ = self.slot(p).seq.compare_exchange(
                p,
                p.wrapping_add(self.capacity()),
                Ordering::Release,
                Ordering::Relaxed,
            );
        }
        self.finish(intent, addressed);
    }

    /// What consumer `bit` finds at `pos`.
    ///
    /// A slot whose message is not for `bit` can be released and reused for `pos + capacity`
    /// between the two loads below, and `pending` then holds the new message's bits. So `seq` is
    /// read again: unchanged, the `pending` read was `pos`'s (a reuse stores `seq` before it
    /// stores the new `pending`, Release); changed, `pos` was not for `bit` (its bit would have
    /// kept the slot), and it is skipped.
    #[inline]
    pub fn poll(&self, pos: u64, bit: u64) -> Poll {
        let slot = self.slot(pos);
        let s = slot.seq.load(Ordering::Acquire);
        match dist(s, pos.wrapping_add(1)) {
            0 => {
                if slot.pending.load(Ordering::Acquire) & bit != 0
                    && slot.seq.load(Ordering::Acquire) == s
                {
                    Poll::Ready
                } else {
                    Poll::Skip
                }
            }
            d if d > 0 => Poll::Skip,
            _ => Poll::Empty,
        }
    }

    /// [`RingView::poll`] that does not wait for a claimant that does not address `bit`: at a
    /// position that is claimed but not committed, `announced(pos)` gives the addressees its
    /// claimant announced ([`RingView::address`]), if it has yet; a position announced for
    /// others is skipped. The claimant commits it for exactly those (or gives it back), so
    /// nothing for `bit` is passed.
    pub fn poll_past(
        &self,
        pos: u64,
        bit: u64,
        announced: impl FnOnce(u64) -> Option<u64>,
    ) -> Poll {
        match self.poll(pos, bit) {
            Poll::Empty => {}
            p => return p,
        }
        // Free for `pos` (claimed or not): only then can an announcement be about this lap.
        if dist(self.slot(pos).seq.load(Ordering::Acquire), pos) != 0 {
            return Poll::Empty;
        }
        match announced(pos) {
            Some(to) if to & bit == 0 => Poll::Skip,
            _ => Poll::Empty,
        }
    }

    /// Whether a claimant's row announces addressees for `pos`: `intent` and `addressed` are its
    /// row's words. The intent is read again after the addressees, so that they belong to the
    /// run that covers `pos` (a row clears `addressed` before its intent, and stores the next
    /// run's intent before its addressees).
    pub fn announced_by(pos: u64, intent: &AtomicU64, addressed: &AtomicU64) -> Option<u64> {
        let w = intent.load(Ordering::Acquire);
        if !Intent::covers(w, pos) {
            return None;
        }
        let to = addressed.load(Ordering::Acquire);
        (to != 0 && intent.load(Ordering::Acquire) == w).then_some(to)
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

    /// The consumers still holding the message in slot `i` (its `pending`), or 0 when the slot
    /// holds no published message: a released slot or a tombstone keeps the fields of its last
    /// occupant (a reap never writes to a slot it has not won, `tombstone_abandoned`), and they
    /// are nobody's.
    #[cfg_attr(loom, allow(dead_code))]
    pub fn published_holders(&self, i: u64) -> u64 {
        let slot = self.slot(i);
        let s = slot.seq.load(Ordering::Acquire);
        let pending = slot.pending.load(Ordering::Acquire);
        // Published for some position `p` of this slot: `seq == p + 1`, so `seq - 1` is `i`
        // modulo the capacity (free and released slots have `seq == p`, `p + capacity`).
        if s.wrapping_sub(1) & (self.capacity() - 1) == i & (self.capacity() - 1)
            && slot.seq.load(Ordering::Acquire) == s
        {
            pending
        } else {
            0
        }
    }

    /// True when position `pos` is published and still holds one of `bits`.
    pub fn holds(&self, pos: u64, bits: u64) -> bool {
        let slot = self.slot(pos);
        dist(slot.seq.load(Ordering::Acquire), pos.wrapping_add(1)) == 0
            && slot.pending.load(Ordering::Acquire) & bits != 0
    }

    /// A reaper's step for position `pos`: if it is claimed but unpublished and
    /// `announced(pos)` says no live process announces it (an [`Intent`] in a live row),
    /// tombstones it. Never waits for a live claimant. True if it tombstoned.
    ///
    /// A claimant announces its intent before its claim moves the head, so a reaper that sees
    /// the head past `pos` sees the intent too, until the claimant commits. Even a wrong verdict
    /// (a live claimant taken for dead) leaves one winner: the tombstone and the commit are both
    /// CASes from the claimed state, and `seq` only moves forward.
    ///
    /// It writes nothing to the slot but that CAS: before it, the claimant may commit (between
    /// the `seq` read and the announcement check), and the slot is then its published message;
    /// after it, the slot is free for `pos + capacity`, whose publisher may already be writing
    /// it. The tombstone keeps the claimant's fields, `block` included, which nobody reads (a
    /// consumer skips a tombstone, and only published slots are read); the reaper gives the
    /// claimant's block back through its row's `held_block`, never through the slot.
    pub fn tombstone_abandoned(&self, pos: u64, announced: impl FnOnce(u64) -> bool) -> bool {
        let slot = self.slot(pos);
        if dist(slot.seq.load(Ordering::Acquire), pos) != 0 || announced(pos) {
            return false;
        }
        self.tombstone(pos)
    }

    /// Lossy consumers (see the module doc): takes from consumer `b`, whose next position is in
    /// `cursor` (a plain position), the published positions from there up to `upto` inclusive
    /// that it has not read, so that no publisher waits for it. Stops early at a position still
    /// being written (its bit may yet be committed; the consumer reads it in turn). Returns how
    /// many messages for `b` it took (the consumer missed them) and calls `freed(block field)` for
    /// each slot that this released.
    ///
    /// The cursor is the consumer's claim on what it reads: it copies a message and then moves
    /// the cursor past it by CAS, and only the party whose CAS moved the cursor past a position
    /// clears `b`'s bit there. So a message is either read (and released by the reader) or taken
    /// here, never both, and a reader whose CAS fails drops its copy, which may be torn.
    ///
    /// Only under the lock a departure drains under (the table lock), and only while `b` is
    /// still a live lossy consumer: the poll below and the release after it are then not
    /// separated by a drain of `b`, so the slot cannot be released, reused and published for
    /// the entry's next occupant in between (which the release would then take from it).
    #[cfg_attr(loom, allow(dead_code))]
    pub fn evict(
        &self,
        b: usize,
        cursor: &AtomicU64,
        upto: u64,
        mut freed: impl FnMut(u32),
    ) -> u64 {
        let bit = 1u64 << b;
        loop {
            let c = cursor.load(Ordering::SeqCst);
            if dist(c, upto) > 0 {
                return 0;
            }
            let mut e = c;
            while dist(e, upto) <= 0 && dist(self.slot(e).seq.load(Ordering::Acquire), e) != 0 {
                e = e.wrapping_add(1);
            }
            if e == c {
                return 0;
            }
            if cursor
                .compare_exchange(c, e, Ordering::SeqCst, Ordering::SeqCst)
                .is_err()
            {
                continue;
            }
            let mut missed = 0;
            for pos in c..e {
                if self.poll(pos, bit) == Poll::Ready {
                    missed += 1;
                    if let Some(block) = self.release(pos, bit) {
                        freed(block);
                    }
                }
            }
            return missed;
        }
    }

    /// Tombstones position `pos` if it is still claimed but unpublished (its claimant is dead).
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

    pub(crate) fn starts(resolved: &[u64]) -> Vec<AtomicU64> {
        (0..64)
            .map(|i| AtomicU64::new(resolved.get(i).copied().unwrap_or(UNSET)))
            .collect()
    }

    #[test]
    fn full_ring_waits_for_every_consumer() {
        let (head, active, intent) = (AtomicU64::new(0), AtomicU64::new(0b11), AtomicU64::new(0));
        let s = slots(2);
        let st = starts(&[0, 0]);
        let r = RingView {
            head: &head,
            active: &active,
            starts: &st,
            slots: &s,
        };
        for pos in 0..2 {
            assert_eq!(r.claim(&intent), Ok(pos));
            assert_eq!(intent.load(Ordering::Relaxed), pos | 1 << 48);
            assert!(r.commit(pos, r.addressees(pos, !0), &intent));
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
        // The claimant, taken for dead, cannot publish over the tombstone.
        assert!(!r.commit(2, 1, &intent));
        assert_eq!(r.poll(2, 1), Poll::Skip);
    }

    #[test]
    fn a_joiner_is_addressed_from_its_start_and_a_leaver_is_drained() {
        let (head, active, intent) = (AtomicU64::new(0), AtomicU64::new(0b01), AtomicU64::new(0));
        let s = slots(4);
        let st = starts(&[0]);
        let r = RingView {
            head: &head,
            active: &active,
            starts: &st,
            slots: &s,
        };
        // Position 0 is claimed before consumer 1 joins; its publisher looks after the join.
        assert_eq!(r.claim(&intent), Ok(0));
        assert_eq!(r.join(1), 1);
        assert_eq!(
            r.addressees(0, !0),
            0b01,
            "claimed before the join: not for the joiner"
        );
        assert!(r.commit(0, 0b01, &intent));
        assert_eq!(r.claim(&intent), Ok(1));
        assert_eq!(r.addressees(1, !0), 0b11);
        assert!(r.commit(1, 0b11, &intent));
        // A publisher may resolve a joiner's start before the joiner does.
        assert_eq!(r.claim(&intent), Ok(2));
        active.fetch_or(0b100, Ordering::SeqCst);
        assert_eq!(r.addressees(2, !0), 0b011);
        assert_eq!(r.start(2), 3);
        // Consumer 1 leaves while position 2 is still being written for it.
        assert_eq!(r.leave(1), 3);
        let d = r.drain(1, 3, |_| ());
        assert_eq!((d.released, d.in_flight), (1, 1));
        assert!(r.commit(2, 0b011, &intent));
        assert_eq!(r.drain(1, 3, |_| ()).released, 1);
        assert_eq!(r.drain(1, 3, |_| ()), Drained::default());
        assert_eq!(r.poll(1, 0b10), Poll::Skip);
        assert_eq!(r.poll(2, 0b10), Poll::Skip);
    }

    #[test]
    fn claim_many_takes_only_free_slots_and_announces_the_run() {
        let (head, active, intent) = (AtomicU64::new(0), AtomicU64::new(1), AtomicU64::new(0));
        let s = slots(4);
        let st = starts(&[0]);
        let r = RingView {
            head: &head,
            active: &active,
            starts: &st,
            slots: &s,
        };
        assert_eq!(r.claim_many(3, &intent), Ok((0, 3)));
        let w = intent.load(Ordering::Relaxed);
        assert!((0..3).all(|p| Intent::covers(w, p)));
        assert!(!Intent::covers(w, 3) && !Intent::covers(0, 0));
        for p in 0..3 {
            assert!(r.commit_one(p, 1));
        }
        // Only slot 3 is free: a run of 4 gets one position.
        assert_eq!(r.claim_many(4, &intent), Ok((3, 1)));
        assert!(r.commit(3, 1, &intent));
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
pub(crate) mod loom_tests {
    //! Loom models of the ring. Waiting sides sleep on a condition variable (standing in for the
    //! futex of the real code) instead of spinning: loom explores stale reads of a spinning thread
    //! without bound, which no real processor does. The other blocks' models use this harness.

    use super::*;
    use loom::sync::{Arc, Condvar, Mutex};

    pub(crate) struct Shared {
        pub head: AtomicU64,
        pub active: AtomicU64,
        pub starts: Vec<AtomicU64>,
        pub slots: Vec<Slot>,
        /// Consumers that left and the `end` of each, drained by whoever holds this lock (the
        /// table lock in the real code) when a publisher finds the ring full.
        departed: Mutex<Vec<(usize, u64)>>,
        lock: Mutex<()>,
        changed: Condvar,
    }

    /// A ring of `cap` slots whose consumers `active` have joined at position 0.
    pub(crate) fn shared(cap: usize, active: u64) -> Arc<Shared> {
        Arc::new(Shared {
            head: AtomicU64::new(0),
            active: AtomicU64::new(active),
            starts: (0..4)
                .map(|b| AtomicU64::new(if active & 1 << b != 0 { 0 } else { UNSET }))
                .collect(),
            slots: (0..cap).map(|i| Slot::free_at(i as u64)).collect(),
            departed: Mutex::new(Vec::new()),
            lock: Mutex::new(()),
            changed: Condvar::new(),
        })
    }

    impl Shared {
        pub(crate) fn view(&self) -> RingView<'_> {
            RingView {
                head: &self.head,
                active: &self.active,
                starts: &self.starts,
                slots: &self.slots,
            }
        }

        /// Runs `attempt` until it succeeds, sleeping between tries (the re-check under the lock
        /// rules out a lost wake-up, as the sleeper count does for the futex).
        pub(crate) fn wait<T>(&self, mut attempt: impl FnMut() -> Option<T>) -> T {
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

        pub(crate) fn wake(&self) {
            drop(self.lock.lock().unwrap());
            self.changed.notify_all();
        }

        /// What a blocked publisher's reap does: drains every departed consumer once more.
        fn drain_departed(&self) {
            let r = self.view();
            let mut departed = self.departed.lock().unwrap();
            departed.retain(|&(b, end)| r.drain(b, end, |_| ()).in_flight > 0);
        }

        /// Claims a position, draining departed consumers while the ring is full.
        fn claim(&self, intent: &AtomicU64) -> u64 {
            let r = self.view();
            self.wait(|| match r.claim(intent) {
                Ok(pos) => Some(pos),
                Err(RingFull) => {
                    self.drain_departed();
                    r.claim(intent).ok()
                }
            })
        }

        /// Publishes `value` (in `topic_hash`) to every consumer, waiting while the ring is full.
        pub(crate) fn publish(&self, value: u64) {
            self.publish_to(value, !0);
        }

        /// Publishes `value` to those of `candidates` that are active, waiting while the ring
        /// is full (as a publisher does for a topic only some consumers want), by the product's
        /// steps: claim, address, write, commit, finish.
        fn publish_to(&self, value: u64, candidates: u64) {
            self.publish_wanting(value, || candidates);
        }

        /// [`Shared::publish_to`] where `wanting()` says who wants the message now (the
        /// interest, read when the product reads it).
        fn publish_wanting(&self, value: u64, wanting: impl FnOnce() -> u64) {
            let r = self.view();
            let (intent, addressed) = (AtomicU64::new(0), AtomicU64::new(0));
            let pos = self.claim(&intent);
            let to = r.address(pos, wanting, &addressed);
            if to == 0 {
                r.discard(pos, 1, &intent, &addressed);
            } else {
                r.slot(pos).topic_hash.store(value, Ordering::Relaxed);
                assert!(r.commit_one(pos, to));
                r.finish(&intent, &addressed);
            }
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
                let addressed = AtomicU64::new(0);
                let to = r.address(pos, || !0, &addressed);
                for j in 0..n {
                    let slot = r.slot(pos + j);
                    slot.topic_hash
                        .store(values[done + j as usize], Ordering::Relaxed);
                    assert!(r.commit_one(pos + j, to));
                }
                r.finish(&intent, &addressed);
                done += n as usize;
                self.wake();
            }
        }

        /// Consumer `b` reads positions `from..to`, releasing what is for it; returns the values.
        fn consume_range(&self, b: usize, from: u64, to: u64) -> Vec<u64> {
            let r = self.view();
            let bit = 1 << b;
            let mut got = Vec::new();
            for pos in from..to {
                let ready = self.wait(|| match r.poll(pos, bit) {
                    Poll::Empty => None,
                    p => Some(p),
                });
                if ready == Poll::Ready {
                    got.push(r.slot(pos).topic_hash.load(Ordering::Relaxed));
                    r.release(pos, bit);
                    self.wake();
                }
            }
            got
        }

        /// Receives `n` messages as consumer `bit` (joined at 0), returning their values in order.
        pub(crate) fn consume(&self, bit: u64, n: usize) -> Vec<u64> {
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

        /// True when every position below `end` has been released by everyone.
        pub(crate) fn all_released(&self, end: u64) -> bool {
            let cap = self.slots.len() as u64;
            (end.saturating_sub(cap)..end).all(|p| {
                dist(
                    self.slots[(p % cap) as usize].seq.load(Ordering::Acquire),
                    p,
                ) >= cap as i64
            })
        }
    }

    pub(crate) fn model(f: impl Fn() + Sync + Send + 'static) {
        model_bounded(3, f);
    }

    /// [`model`] with another preemption bound: 2 for the models whose every role (three or
    /// more) is a spawned thread and whose 3-bound exploration does not end in minutes.
    pub(crate) fn model_bounded(bound: usize, f: impl Fn() + Sync + Send + 'static) {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(bound);
        b.check(f);
    }

    /// Two publishers, one consumer, capacity 2, three messages (so a publisher must wait for the
    /// consumer): every message arrives exactly once, each publisher's in order.
    #[test]
    fn loom_ring_two_publishers_one_consumer() {
        model_bounded(2, || {
            let s = shared(2, 1);
            let s2 = s.clone();
            let p = loom::thread::spawn(move || {
                s2.publish(11);
                s2.publish(12);
            });
            let s3 = s.clone();
            let q = loom::thread::spawn(move || s3.publish(21));
            let s4 = s.clone();
            let c = loom::thread::spawn(move || s4.consume(1, 3));
            p.join().unwrap();
            let got = c.join().unwrap();
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
        model_bounded(2, || {
            let s = shared(2, 1);
            let s2 = s.clone();
            let p = loom::thread::spawn(move || s2.publish_run(&[11, 12, 13]));
            let s3 = s.clone();
            let q = loom::thread::spawn(move || s3.publish(21));
            let s4 = s.clone();
            let c = loom::thread::spawn(move || s4.consume(1, 4));
            p.join().unwrap();
            let got = c.join().unwrap();
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
        model_bounded(2, || {
            let s = shared(2, 0b11);
            let c: Vec<_> = [1u64, 2]
                .into_iter()
                .map(|bit| {
                    let s = s.clone();
                    loom::thread::spawn(move || s.consume(bit, 3))
                })
                .collect();
            let s1 = s.clone();
            let p = loom::thread::spawn(move || (1..=3).for_each(|v| s1.publish(v)));
            p.join().unwrap();
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
            let s1 = s.clone();
            let p = loom::thread::spawn(move || (1..=3).for_each(|v| s1.publish(v)));
            p.join().unwrap();
            assert_eq!(c.join().unwrap(), vec![1, 2, 3]);
            // Consumer bit 2 was never active: every slot is free again.
            let r = s.view();
            assert_eq!(r.poll(0, 2), Poll::Skip);
            assert_eq!(r.poll(2, 2), Poll::Skip);
        });
    }

    /// A consumer that wants few topics polls a slot that holds a message for somebody else
    /// while that message is released and the slot reused for a message that is for it (issue:
    /// the poll read `seq` of the old message and `pending` of the new one, took the new message
    /// for the old position, and its release moved `seq` back). Consumer 1 wants only the third
    /// message, which reuses the first one's slot: it gets exactly that message, at its own
    /// position, and every slot ends released.
    #[test]
    fn loom_a_reused_slot_is_not_read_as_its_previous_position() {
        model(|| {
            let s = shared(2, 0b11);
            let (s1, s2, s3) = (s.clone(), s.clone(), s.clone());
            let p = loom::thread::spawn(move || {
                s1.publish_to(1, 0b01);
                s1.publish_to(2, 0b01);
                s1.publish_to(3, 0b10);
            });
            let a = loom::thread::spawn(move || s2.consume(1, 2));
            let b = loom::thread::spawn(move || s3.consume(2, 1));
            p.join().unwrap();
            assert_eq!(a.join().unwrap(), vec![1, 2]);
            assert_eq!(b.join().unwrap(), vec![3]);
            assert!(s.all_released(3));
        });
    }

    /// A lossy consumer (bit 1) that reads once while a publisher sends three messages through a
    /// ring of two, with a lossless consumer (bit 0) beside it: the publisher, finding the ring
    /// full, takes the lossy consumer's unread messages instead of waiting for it. The lossy
    /// reader copies and then claims by CAS; what it keeps is the message of the position it
    /// claimed, every message is read by it, counted as missed or still waiting for it (never two
    /// of these), and every slot ends released.
    #[test]
    fn loom_lossy_consumer_is_evicted_not_waited_for() {
        model(|| {
            let s = shared(2, 0b11);
            let cursor = Arc::new(AtomicU64::new(0));
            let missed = Arc::new(AtomicU64::new(0));
            let (s1, s2, s3) = (s.clone(), s.clone(), s.clone());
            let (c1, m1) = (cursor.clone(), missed.clone());
            let p = loom::thread::spawn(move || {
                let r = s1.view();
                for v in 1..=3u64 {
                    let intent = AtomicU64::new(0);
                    let pos = s1.wait(|| match r.claim(&intent) {
                        Ok(pos) => Some(pos),
                        Err(RingFull) => {
                            let head = s1.head.load(Ordering::SeqCst);
                            let n = r.evict(1, &c1, head - 2, |_| ());
                            m1.fetch_add(n, Ordering::SeqCst);
                            r.claim(&intent).ok()
                        }
                    });
                    r.slot(pos).topic_hash.store(v, Ordering::Relaxed);
                    let to = r.addressees(pos, !0);
                    assert!(r.commit(pos, to, &intent));
                    s1.wake();
                }
            });
            let a = loom::thread::spawn(move || s2.consume(1, 3));
            let (c3, _) = (cursor.clone(), ());
            let l = loom::thread::spawn(move || {
                // One read attempt at position 0, as a lossy reader does it.
                let r = s3.view();
                let c = c3.load(Ordering::SeqCst);
                if r.poll(c, 2) == Poll::Ready {
                    let v = r.slot(c).topic_hash.load(Ordering::Relaxed);
                    if c3
                        .compare_exchange(c, c + 1, Ordering::SeqCst, Ordering::SeqCst)
                        .is_ok()
                    {
                        r.release(c, 2);
                        s3.wake();
                        return Some((c, v));
                    }
                }
                None
            });
            p.join().unwrap();
            assert_eq!(a.join().unwrap(), vec![1, 2, 3]);
            let read = l.join().unwrap();
            // What it read is the message of the position it claimed, never a later occupant's.
            if let Some((c, v)) = read {
                assert_eq!(v, c + 1);
            }
            // Whatever it neither read nor missed is still in the ring, from its cursor on.
            let c = cursor.load(Ordering::SeqCst);
            let r = s.view();
            let left = (c..3).filter(|&p| r.poll(p, 2) == Poll::Ready).count() as u64;
            assert_eq!(
                read.is_some() as u64 + missed.load(Ordering::SeqCst) + left,
                3
            );
            // Take the rest as a final eviction would: then every slot is released.
            r.evict(1, &cursor, 2, |_| ());
            assert!(s.all_released(3));
        });
    }

    /// A publisher takes a lossy consumer's unread message while that consumer departs and its
    /// entry is reused (issue 20, defect 3: the evictor polled a position, the departure's drain
    /// released it, the slot was republished for the entry's next occupant, and the evictor's
    /// release then cleared the new occupant's bit one lap later and moved `seq` back). The ring
    /// of two is full of messages for lossy consumer 0. The evictor takes them as a publisher
    /// does, under the table lock (here `departed`'s) and only while the consumer is still lossy;
    /// the leaver departs, drains and gives the entry to a lossless consumer under the same
    /// lock; a publisher sends one message once there is room. Eviction and departure never both
    /// release one position: a message addressed to the new occupant stays published for it.
    #[test]
    fn loom_eviction_racing_a_departure_never_touches_the_next_lap() {
        model(|| {
            let s = shared(2, 0b1);
            let lossy = Arc::new(AtomicU64::new(0b1));
            let cursor = Arc::new(AtomicU64::new(0));
            {
                let r = s.view();
                let intent = AtomicU64::new(0);
                for v in 1..=2 {
                    let pos = r.claim(&intent).expect("a free slot");
                    r.slot(pos).topic_hash.store(v, Ordering::Relaxed);
                    assert!(r.commit(pos, 1, &intent));
                }
            }
            let (s1, l1, c1) = (s.clone(), lossy.clone(), cursor.clone());
            let evictor = loom::thread::spawn(move || {
                let r = s1.view();
                // What `Region::take_from_lossy` does when the ring is full: try the table lock
                // (never wait for it), then evict only a consumer that is still lossy.
                let Ok(table) = s1.departed.try_lock() else {
                    return 0;
                };
                let n = if l1.load(Ordering::SeqCst) & 1 != 0 {
                    r.evict(0, &c1, 0, |_| ())
                } else {
                    0
                };
                drop(table);
                s1.wake();
                n
            });
            let (s2, l2, c2) = (s.clone(), lossy.clone(), cursor.clone());
            let leaver = loom::thread::spawn(move || {
                let r = s2.view();
                let mut table = s2.departed.lock().unwrap();
                let end = r.leave(0);
                l2.fetch_and(!1, Ordering::SeqCst);
                let drained = r.drain(0, end, |_| ());
                let mut start = None;
                if drained.in_flight > 0 {
                    // A later drain finishes (a publisher's, or the last one below).
                    table.push((0, end));
                } else {
                    // The entry is free: a lossless consumer takes it.
                    s2.starts[0].store(UNSET, Ordering::SeqCst);
                    start = Some(r.join(0));
                    c2.store(start.unwrap(), Ordering::SeqCst);
                }
                drop(table);
                s2.wake();
                start
            });
            let s3 = s.clone();
            let publisher = loom::thread::spawn(move || s3.publish(3));
            evictor.join().unwrap();
            let start = leaver.join().unwrap();
            publisher.join().unwrap();
            let r = s.view();
            // Position 2 is addressed to the new occupant exactly when it starts there (a
            // claim of 2 before its join would have made it start at 3).
            if start.is_some_and(|start| start <= 2) {
                assert_eq!(
                    r.poll(2, 1),
                    Poll::Ready,
                    "the new occupant's message was taken (seq {})",
                    s.slots[0].seq.load(Ordering::Acquire)
                );
                assert_eq!(r.release(2, 1), Some(0));
            }
            s.drain_departed();
            assert!(s.all_released(3));
        });
    }

    /// A consumer joins while a publisher is between its claim and its commit (issue: the
    /// joiner's bit was committed on a position before its cursor, which nobody then released,
    /// and one lap later every publisher blocked). Every role on its own thread: the publisher
    /// sends two messages, consumer 0 takes them, consumer 1 joins and reads from its start.
    /// The joiner gets every message at or after its start, and every slot is released in the
    /// end: no bit is left where nobody will clear it.
    #[test]
    fn loom_join_during_a_claim_strands_no_bit() {
        model(|| {
            let s = shared(2, 0b01);
            let (s1, s2, s3) = (s.clone(), s.clone(), s.clone());
            let p = loom::thread::spawn(move || (1..=2).for_each(|v| s1.publish(v)));
            let c = loom::thread::spawn(move || s2.consume(1, 2));
            let j = loom::thread::spawn(move || {
                let start = s3.view().join(1);
                let got = s3.consume_range(1, start, 2);
                (start, got)
            });
            p.join().unwrap();
            assert_eq!(c.join().unwrap(), vec![1, 2]);
            let (start, got) = j.join().unwrap();
            assert_eq!(got, (start + 1..=2).collect::<Vec<_>>());
            assert!(s.all_released(2));
        });
    }

    /// A consumer leaves while a publisher may be between its claim and its commit (issue: the
    /// leave gave up on a stalled claimant, which then committed the departed consumer's bit).
    /// The leaver drains once and never waits; whoever drains later (a publisher that finds the
    /// ring full, here the last drain) finishes. Both messages reach consumer 0 and every slot
    /// is released in the end.
    #[test]
    fn loom_leave_during_a_claim_strands_no_bit() {
        model(|| {
            let s = shared(2, 0b11);
            let (s1, s2, s3) = (s.clone(), s.clone(), s.clone());
            let p = loom::thread::spawn(move || (1..=2).for_each(|v| s1.publish(v)));
            let c = loom::thread::spawn(move || s2.consume(1, 2));
            let l = loom::thread::spawn(move || {
                let r = s3.view();
                let end = r.leave(1);
                let mut departed = s3.departed.lock().unwrap();
                if r.drain(1, end, |_| ()).in_flight > 0 {
                    departed.push((1, end));
                }
                drop(departed);
                s3.wake();
            });
            p.join().unwrap();
            assert_eq!(c.join().unwrap(), vec![1, 2]);
            l.join().unwrap();
            s.drain_departed();
            assert!(s.all_released(2));
        });
    }

    /// A blocked publisher addresses its message from the interest after its claim (issue: it
    /// used the mask it computed before waiting for space, so when a consumer it counted left
    /// and its entry was taken by an engine that wants nothing, that engine was addressed, never
    /// released the slot, and every publisher of the topic waited for as long as it lived).
    /// Ring of two slots; entry 1 wants the topic and holds the first messages; it leaves (the
    /// drain releases its bits) and its entry is taken by an engine that wants nothing, while
    /// the publisher waits to claim the third position. Every role on its own thread. In the
    /// end every position is released: nothing is addressed to the engine that wants nothing.
    #[test]
    fn loom_addressing_is_decided_after_the_wait() {
        model(|| {
            let s = shared(2, 0b10);
            // Entry 1's interest in the topic: 1 for the first occupant, 0 for the next.
            let wants = Arc::new(AtomicU64::new(1));
            let (s1, w1) = (s.clone(), wants.clone());
            let p = loom::thread::spawn(move || {
                for v in 1..=3 {
                    s1.publish_wanting(v, || w1.load(Ordering::SeqCst) << 1);
                }
            });
            let (s2, w2) = (s.clone(), wants.clone());
            let churn = loom::thread::spawn(move || {
                let r = s2.view();
                // The first occupant leaves without reading; its bit is drained (again and
                // again while a claimant of a position that may carry it has not committed).
                let end = r.leave(1);
                s2.wait(|| (r.drain(1, end, |_| ()).in_flight == 0).then_some(()));
                s2.wake();
                // Its entry is reused by an engine that wants nothing.
                w2.store(0, Ordering::SeqCst);
                s2.starts[1].store(UNSET, Ordering::SeqCst);
                r.join(1);
            });
            p.join().unwrap();
            churn.join().unwrap();
            assert!(
                s.all_released(3),
                "a position was addressed to an entry that wants nothing"
            );
        });
    }

    /// Two publishers' rows as a reaper sees them: each one's `publishing` intent and whether
    /// its process is alive.
    struct Rows {
        intents: [AtomicU64; 2],
        alive: [AtomicU64; 2],
    }

    impl Rows {
        fn new() -> Arc<Rows> {
            Arc::new(Rows {
                intents: [AtomicU64::new(0), AtomicU64::new(0)],
                alive: [AtomicU64::new(1), AtomicU64::new(1)],
            })
        }

        /// The reaper's question: does a live row announce `pos`?
        fn announced(&self, pos: u64) -> bool {
            (0..2).any(|r| {
                self.alive[r].load(Ordering::Acquire) == 1
                    && Intent::covers(self.intents[r].load(Ordering::SeqCst), pos)
            })
        }
    }

    /// A publisher claims a position and dies before publishing it, while a live publisher
    /// claims and publishes the other, and a reaper (once the first is dead) tombstones what no
    /// live row announces. The live publisher's claim is never taken (its commit succeeds), and
    /// the dead one's is tombstoned: consumers skip it and get the live message.
    #[test]
    fn loom_reap_of_a_dead_claimant_spares_a_live_one() {
        model(|| {
            let s = shared(2, 1);
            let rows = Rows::new();
            let (s1, r1) = (s.clone(), rows.clone());
            let dead = loom::thread::spawn(move || {
                let pos = s1.view().claim(&r1.intents[0]).expect("a free slot");
                r1.alive[0].store(0, Ordering::Release);
                s1.wake();
                pos
            });
            let (s2, r2) = (s.clone(), rows.clone());
            let live = loom::thread::spawn(move || {
                let r = s2.view();
                let pos = r.claim(&r2.intents[1]).expect("a free slot");
                r.slot(pos).topic_hash.store(7, Ordering::Relaxed);
                let ok = r.commit(pos, r.addressees(pos, !0), &r2.intents[1]);
                s2.wake();
                ok
            });
            let (s3, r3) = (s.clone(), rows.clone());
            let reaper = loom::thread::spawn(move || {
                // Reaps again after every change, as blocked processes do: a publisher trying to
                // claim a position announces it before it knows whether it gets it, which
                // postpones the tombstone to a later reap (never wrongly brings it forward).
                let r = s3.view();
                let tombstoned = s3.wait(|| {
                    if r3.alive[0].load(Ordering::Acquire) == 1 {
                        return None;
                    }
                    let head = r.head.load(Ordering::SeqCst);
                    let t: Vec<u64> = (head.saturating_sub(2)..head)
                        .filter(|&pos| r.tombstone_abandoned(pos, |pos| r3.announced(pos)))
                        .collect();
                    (!t.is_empty()).then_some(t)
                });
                s3.wake();
                tombstoned
            });
            let dead_pos = dead.join().unwrap();
            assert!(
                live.join().unwrap(),
                "a live claimant's position was tombstoned"
            );
            assert_eq!(reaper.join().unwrap(), vec![dead_pos]);
            let r = s.view();
            assert_eq!(r.poll(dead_pos, 1), Poll::Skip);
            assert_eq!(r.poll(1 - dead_pos, 1), Poll::Ready);
        });
    }

    /// A reap runs while a live publisher claims, writes (with a slab block) and commits a
    /// position (issue 20, defect 1: the reap read the slot claimed, found no announcement
    /// because the claimant had committed and cleared it meanwhile, and then cleared the slot's
    /// block before its tombstone CAS failed: the published message lost its block). A reap
    /// writes nothing to a slot it has not won: the message keeps its block, and a live
    /// claimant that announces its position is never tombstoned.
    #[test]
    fn loom_a_reap_never_writes_to_a_message_it_did_not_tombstone() {
        model(|| {
            let s = shared(2, 1);
            let intent = Arc::new(AtomicU64::new(0));
            let (s1, i1) = (s.clone(), intent.clone());
            let publisher = loom::thread::spawn(move || {
                let r = s1.view();
                let pos = r.claim(&i1).expect("a free slot");
                r.slot(pos).block.store(5, Ordering::Relaxed);
                let ok = r.commit(pos, r.addressees(pos, !0), &i1);
                s1.wake();
                ok
            });
            let (s2, i2) = (s.clone(), intent.clone());
            let reaper = loom::thread::spawn(move || {
                s2.wait(|| (s2.head.load(Ordering::SeqCst) > 0).then_some(()));
                let r = s2.view();
                let t =
                    r.tombstone_abandoned(0, |pos| Intent::covers(i2.load(Ordering::SeqCst), pos));
                s2.wake();
                t
            });
            let s3 = s.clone();
            let consumer = loom::thread::spawn(move || {
                let r = s3.view();
                let p = s3.wait(|| match r.poll(0, 1) {
                    Poll::Empty => None,
                    p => Some(p),
                });
                (p == Poll::Ready).then(|| r.slot(0).block.load(Ordering::Relaxed))
            });
            assert!(
                publisher.join().unwrap(),
                "a live claimant lost its position"
            );
            assert!(!reaper.join().unwrap(), "a live claimant was tombstoned");
            assert_eq!(consumer.join().unwrap(), Some(5));
            assert_eq!(
                s.slots[0].block.load(Ordering::Relaxed),
                5,
                "the message lost its block"
            );
            assert_eq!(s.slots[0].seq.load(Ordering::Acquire), 1);
        });
    }

    /// A live but slow claimant races a reaper that wrongly takes it for dead. The commit and
    /// the tombstone are both CASes from the claimed state: exactly one wins, the consumer gets
    /// the message exactly when the commit won, and nobody ever sees `seq` move backwards.
    #[test]
    fn loom_false_reap_of_a_slow_claimant_leaves_one_winner() {
        model(|| {
            let s = shared(2, 1);
            let intent = Arc::new(AtomicU64::new(0));
            let (s1, i1) = (s.clone(), intent.clone());
            let publisher = loom::thread::spawn(move || {
                let r = s1.view();
                let pos = r.claim(&i1).expect("a free slot");
                r.slot(pos).topic_hash.store(7, Ordering::Relaxed);
                let ok = r.commit(pos, r.addressees(pos, !0), &i1);
                s1.wake();
                ok
            });
            let s2 = s.clone();
            let reaper = loom::thread::spawn(move || {
                s2.wait(|| (s2.head.load(Ordering::SeqCst) > 0).then_some(()));
                let tombstoned = s2.view().tombstone_abandoned(0, |_| false);
                s2.wake();
                tombstoned
            });
            let s3 = s.clone();
            let consumer = loom::thread::spawn(move || {
                let r = s3.view();
                let mut seen = vec![r.slot(0).seq.load(Ordering::Acquire)];
                let p = s3.wait(|| {
                    seen.push(r.slot(0).seq.load(Ordering::Acquire));
                    match r.poll(0, 1) {
                        Poll::Empty => None,
                        p => Some(p),
                    }
                });
                seen.push(r.slot(0).seq.load(Ordering::Acquire));
                let got = (p == Poll::Ready).then(|| r.slot(0).topic_hash.load(Ordering::Relaxed));
                if got.is_some() {
                    r.release(0, 1);
                }
                seen.push(r.slot(0).seq.load(Ordering::Acquire));
                (got, seen)
            });
            let committed = publisher.join().unwrap();
            let tombstoned = reaper.join().unwrap();
            let (got, seen) = consumer.join().unwrap();
            assert!(
                committed != tombstoned,
                "commit {committed}, tombstone {tombstoned}"
            );
            assert_eq!(got, committed.then_some(7));
            assert!(
                seen.windows(2).all(|w| w[0] <= w[1]),
                "seq moved back: {seen:?}"
            );
            assert_eq!(s.slots[0].seq.load(Ordering::Acquire), 2);
        });
    }
}

// SAFETY: every field but `inline` is atomic. `inline` is written only by the publisher that
// claimed the slot, before its Release store of `seq`, and read only by consumers after their
// Acquire load of `seq` shows the message published and while their pending bit keeps the slot
// from being reused; observers copy it with volatile reads and discard the copy if `seq` moved.
unsafe impl Sync for Slot {}
