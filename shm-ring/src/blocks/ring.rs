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
//! One path publishes, in the product and in the models alike: [`RingView::claim_run`],
//! [`RingView::announce`], [`RingView::commit_slot`] for each position, [`RingView::give_back`].
//! The announcement (the addressees in the claimant's row, then the `ANNOUNCED` flag of its
//! intent word, by CAS) lets a consumer waiting at a claimed position pass it when it is for
//! others. A claimant stopped before it announces is *sealed* by whoever waits for it too long
//! ([`RingView::seal`]): the `SEALED` flag, by CAS from the same flagless word, so that exactly
//! one of announcement and seal happens; a sealed claimant writes nothing of its run, and the
//! sealer may therefore tombstone the position at once.
//!
//! A publisher that dies between claim and publish leaves `seq == pos`; a survivor that finds no
//! live process announcing that position (each publisher writes an [`Intent`] naming the
//! positions it claims to its row's `publishing` word before the claim) tombstones the slot by
//! CAS `pos -> pos + capacity`, which every consumer skips.
//!
//! A batch claim ([`RingView::claim_run`]) takes up to `n` consecutive positions with one CAS
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
    const COUNT_MASK: u64 = (1 << 14) - 1;
    /// Most positions one claim takes.
    pub const MAX_RUN: u64 = Self::COUNT_MASK;
    /// Flag of the word: the claimant announced the run's addressees in its row's `addressed`
    /// ([`RingView::announce`]). Set by the claimant only, by CAS from the bare word.
    pub const ANNOUNCED: u64 = 1 << 62;
    /// Flag of the word: a consumer or publisher that waited too long at a position of the run
    /// sealed it before the claimant announced it ([`RingView::seal`]). Set by CAS from the
    /// bare word; the claimant then writes none of the run's slots and gives it back.
    pub const SEALED: u64 = 1 << 63;

    /// The word: `first mod 2^48 | count << 48`, no flag. Never 0 (which means idle), since
    /// `count >= 1`.
    pub fn word(self) -> u64 {
        (self.first & Self::POS_MASK) | (self.count << Self::POS_BITS)
    }

    /// The run word `w` announces (`None` for 0, idle), its first position widened against
    /// `head` (a claimed run starts below the head).
    #[cfg_attr(loom, allow(dead_code))]
    pub fn read(w: u64, head: u64) -> Option<Intent> {
        let count = (w >> Self::POS_BITS) & Self::COUNT_MASK;
        if count == 0 {
            return None;
        }
        let back = head.wrapping_sub(w & Self::POS_MASK) & Self::POS_MASK;
        Some(Intent {
            first: head.wrapping_sub(back),
            count,
        })
    }

    /// True when word `w` announces position `pos` (whatever its flags).
    pub fn covers(w: u64, pos: u64) -> bool {
        let first = w & Self::POS_MASK;
        let count = (w >> Self::POS_BITS) & Self::COUNT_MASK;
        ((pos & Self::POS_MASK).wrapping_sub(first) & Self::POS_MASK) < count
    }

    /// True when word `w`'s claimant announced the run's addressees (and so may have committed
    /// some of it); never for 0.
    #[cfg_attr(loom, allow(dead_code))]
    pub fn announced(w: u64) -> bool {
        w & Self::ANNOUNCED != 0
    }

    /// True when word `w`'s run was sealed: its claimant never publishes it.
    #[cfg_attr(loom, allow(dead_code))]
    pub fn sealed(w: u64) -> bool {
        w & Self::SEALED != 0
    }
}

/// A run of positions one publisher claimed ([`RingView::claim_run`]). The run's life is the
/// one publish path, the product's (`publisher.rs`) and the models' alike:
/// [`RingView::announce`], then [`RingView::commit_slot`] for each position (or none), then
/// [`RingView::give_back`] of what was not committed, which also withdraws the announcement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Run {
    /// First claimed position.
    pub first: u64,
    /// Positions claimed, 1..=[`Intent::MAX_RUN`].
    pub count: u64,
    /// The intent word the claim stored ([`Intent::word`]).
    word: u64,
}

impl Run {
    /// The position after the run.
    pub fn end(&self) -> u64 {
        self.first.wrapping_add(self.count)
    }
}

/// What a claimant's announcement decided ([`RingView::announce`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Addressed {
    /// Announced for these consumers (non-zero): write and commit the run's positions.
    To(u64),
    /// Nobody wants the message now: give the run back.
    Nobody,
    /// The run was sealed before the announcement ([`RingView::seal`]): give it back and claim
    /// anew; nothing of it was published.
    Sealed,
}

/// One message's slot fields, as [`RingView::commit_slot`] writes them.
pub(crate) struct SlotWrite<'m> {
    pub topic_hash: u64,
    pub timestamp_ns: u64,
    /// Process-table row and pid of the publisher.
    pub publisher: u32,
    pub publisher_pid: u32,
    /// Slab block index + 1 holding topic and payload, or 0 when they are in `inline`.
    pub block: u32,
    pub payload_len: u32,
    /// `topic_len | codec << 16`.
    pub meta: u64,
    /// Topic bytes then payload bytes when `block` is 0 (at most [`INLINE_CAP`]); else empty.
    pub inline: &'m [u8],
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

    /// Claims up to `max` (1..=[`Intent::MAX_RUN`]) consecutive positions with one CAS of the
    /// head: as many as have free slots, at least one. `intent` (the claimant's row
    /// `publishing` word) announces the whole run before the CAS, so that survivors can tell a
    /// live claimant from a dead one.
    pub fn claim_run(&self, max: u64, intent: &AtomicU64) -> Result<Run, RingFull> {
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
                let word = Intent { first: h, count: n }.word();
                intent.store(word, Ordering::SeqCst);
                #[cfg(not(loom))]
                crate::testing::pause_point(crate::testing::Point::Intent);
                match self.head.compare_exchange_weak(
                    h,
                    h.wrapping_add(n),
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                ) {
                    Ok(_) => {
                        return Ok(Run {
                            first: h,
                            count: n,
                            word,
                        })
                    }
                    Err(now) => {
                        // Perhaps sealed meanwhile (a sealer may take a failed claim's word for
                        // the claimant's); it was never ours to publish, and is withdrawn.
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

    /// After the claim of `run`: decides its addressees and announces them in the claimant's
    /// row (`addressed`, then the [`Intent::ANNOUNCED`] flag of its `intent` word by CAS),
    /// before any slot write. `wanting()` says which consumers want the message's topic; it is
    /// asked here, after the claim, and not before a wait for space: a consumer counted before
    /// the wait may have left and its entry been taken by one that wants nothing, which would
    /// then be addressed and never release the slot.
    ///
    /// The announcement lets a consumer that waits at a claimed position pass it before it is
    /// committed when the claimant does not address it ([`RingView::poll_past`]), so a claimant
    /// stalled after its announcement holds only its own addressees; a claimant stalled before
    /// it is sealed by whoever waits for it too long ([`RingView::seal`]). The CAS decides
    /// between the two: [`Addressed::Sealed`] means a seal came first, and the claimant must
    /// write nothing of the run, give it back ([`RingView::give_back`]) and claim anew.
    pub fn announce(
        &self,
        run: &Run,
        wanting: impl FnOnce() -> u64,
        intent: &AtomicU64,
        addressed: &AtomicU64,
    ) -> Addressed {
        // Our claim (a SeqCst CAS of head) before the interest is read; a joiner's interest
        // before its head read: either we read the joiner's interest, or it starts after us.
        sc_store_load();
        let to = self.addressees(run.first, wanting());
        if to == 0 {
            return Addressed::Nobody;
        }
        // Release: a consumer that reads these addressees reads our intent after them, and must
        // then see at least this run's word (see `RingView::announced`).
        addressed.store(to, Ordering::Release);
        match intent.compare_exchange(
            run.word,
            run.word | Intent::ANNOUNCED,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => Addressed::To(to),
            // Only a seal changes the word of a claimed run before its announcement.
            Err(_) => Addressed::Sealed,
        }
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

    /// Writes message `m` into the slot of position `pos` of a run announced for `to`
    /// ([`Addressed::To`]) and publishes it. `held_block` is the claimant's row word that names
    /// the block it holds until the slot does (see `Row::held_block`): cleared once the commit
    /// hands the block to the slot, before the run's intent goes. False if the position is no
    /// longer ours (a survivor tombstoned it, taking this process for dead): the message is then
    /// not published, and the block still ours unless that survivor took it.
    #[must_use]
    pub fn commit_slot(
        &self,
        pos: u64,
        to: u64,
        m: &SlotWrite<'_>,
        held_block: &AtomicU32,
    ) -> bool {
        let slot = self.slot(pos);
        slot.topic_hash.store(m.topic_hash, Ordering::Relaxed);
        slot.timestamp_ns.store(m.timestamp_ns, Ordering::Relaxed);
        slot.publisher.store(m.publisher, Ordering::Relaxed);
        slot.publisher_pid.store(m.publisher_pid, Ordering::Relaxed);
        slot.block.store(m.block, Ordering::Relaxed);
        slot.payload_len.store(m.payload_len, Ordering::Relaxed);
        slot.meta.store(m.meta, Ordering::Relaxed);
        if m.block == 0 && !m.inline.is_empty() {
            let n = m.inline.len().min(INLINE_CAP);
            // SAFETY: we claimed `pos` and announced it (not sealed), so no one else writes this
            // slot and no consumer reads it until the Release CAS below publishes it; `n` is
            // within both the source and the slot's inline bytes.
            unsafe {
                std::ptr::copy_nonoverlapping(m.inline.as_ptr(), slot.inline.get().cast::<u8>(), n)
            };
        }
        // Release: a consumer whose poll reads this `pending` must then see the `seq` that
        // freed the slot for `pos` (see [`RingView::poll`]).
        slot.pending.store(to, Ordering::Release);
        let ok = slot
            .seq
            .compare_exchange(
                pos,
                pos.wrapping_add(1),
                Ordering::Release,
                Ordering::Relaxed,
            )
            .is_ok();
        if ok && m.block != 0 {
            // The slot holds the block now; before the intent goes (see `Row::held_block`).
            held_block.store(0, Ordering::Release);
        }
        ok
    }

    /// Gives claimed positions `from..end` back unpublished (consumers skip them), then
    /// withdraws the run's announcement: `addressed` first, then the intent, so that a consumer
    /// that still finds the intent never reads a later run's addressees under it. Ends every
    /// run, committed or not (`from == end` gives nothing back).
    pub fn give_back(&self, from: u64, end: u64, intent: &AtomicU64, addressed: &AtomicU64) {
        let mut p = from;
        while p != end {
            // From the claimed state only, like a commit (a survivor may have tombstoned it).
            let _ = self.slot(p).seq.compare_exchange(
                p,
                p.wrapping_add(self.capacity()),
                Ordering::Release,
                Ordering::Relaxed,
            );
            p = p.wrapping_add(1);
        }
        addressed.store(0, Ordering::Relaxed);
        intent.store(0, Ordering::Release);
    }

    /// Called by a consumer or publisher that has waited too long at position `pos`, claimed
    /// and not committed, whose claimant has not announced it (stopped between its claim and
    /// its announcement: SIGSTOP, a debugger, swap). Seals every run that covers `pos` in one of
    /// `intents` (every row's `publishing` word) and is not announced, by CAS of the bare word
    /// to [`Intent::SEALED`]; then, unless a run covering `pos` is announced, tombstones `pos`.
    /// True if it tombstoned `pos`.
    ///
    /// Why the tombstone is safe although the claimant may be alive: a claimant writes a slot
    /// only after its announcement CAS succeeds ([`RingView::announce`]), and that CAS and the
    /// seal are CASes of the same word from the same bare value, so exactly one succeeds. The
    /// claimant's word is among the covering ones (it is stored before the claim moves the head
    /// past `pos`, and stays until the run is given back). A word of a claim that failed may
    /// cover `pos` too: sealing it costs nothing (the failed claimant withdraws it), but it is
    /// not the claimant's, which is why a covering announced word forbids the tombstone. A
    /// sealed claimant gives its run back when it resumes (its CASes from the claimed state
    /// fail where a seal tombstoned) and publishes the messages at new positions, so nothing is
    /// lost and its order is kept.
    pub fn seal<'i>(&self, pos: u64, intents: impl IntoIterator<Item = &'i AtomicU64>) -> bool {
        if dist(self.slot(pos).seq.load(Ordering::Acquire), pos) != 0
            || dist(self.head.load(Ordering::SeqCst), pos) <= 0
        {
            return false;
        }
        let (mut sealed, mut announced) = (false, false);
        for intent in intents {
            let mut w = intent.load(Ordering::SeqCst);
            while Intent::covers(w, pos) {
                if w & Intent::ANNOUNCED != 0 {
                    announced = true;
                    break;
                }
                if w & Intent::SEALED != 0 {
                    sealed = true;
                    break;
                }
                match intent.compare_exchange(
                    w,
                    w | Intent::SEALED,
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                ) {
                    Ok(_) => {
                        sealed = true;
                        break;
                    }
                    Err(now) => w = now,
                }
            }
        }
        sealed && !announced && self.tombstone(pos)
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
    /// claimant announced ([`RingView::announced`]), if it has yet; a position announced for
    /// others (or sealed, for nobody) is skipped. The claimant commits it for exactly those (or gives it back), so
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
            // Decided from the rows, read after the slot: if the run ended meanwhile (its
            // position committed, perhaps for us), the slot says so now.
            Some(to) if to & bit == 0 => {
                if dist(self.slot(pos).seq.load(Ordering::Acquire), pos) == 0 {
                    Poll::Skip
                } else {
                    self.poll(pos, bit)
                }
            }
            _ => Poll::Empty,
        }
    }

    /// Whom claimed position `pos` is for, from the claimants' rows (`rows`: every row's
    /// `publishing` and `addressed` words): `Some(addressees)` once decided (those its claimant
    /// announced, or 0 when every run covering `pos` is sealed: it is for nobody), `None` while
    /// a run covering it may still be announced (or none covers it, or the run ended while it
    /// looked: the slot says what it became).
    ///
    /// The head is read first: a claimant stores its intent before its claim moves the head past
    /// `pos`, so its run is among those seen, unless it has ended since. A run whose word is
    /// bare (neither announced nor sealed) may be a claim that failed (its word withdrawn a
    /// moment later) or the claimant's: undecided either way. An announced word is only ever
    /// the claimant's, and its addressees are read between two reads of the word, so that they
    /// are that run's (a row clears `addressed` before its intent, and stores the next run's
    /// intent before its addressees).
    pub fn announced<'w>(
        &self,
        pos: u64,
        rows: impl IntoIterator<Item = (&'w AtomicU64, &'w AtomicU64)>,
    ) -> Option<u64> {
        if dist(self.head.load(Ordering::SeqCst), pos) <= 0 {
            return None;
        }
        let (mut sealed, mut bare) = (false, false);
        for (intent, addressed) in rows {
            let w = intent.load(Ordering::SeqCst);
            if !Intent::covers(w, pos) {
                continue;
            }
            if w & Intent::ANNOUNCED != 0 {
                // Never 0 while announced: 0 is the row's `give_back` clearing it (a Relaxed
                // store, which the second read of the word need not see yet).
                let to = addressed.load(Ordering::Acquire);
                return (to != 0 && intent.load(Ordering::Acquire) == w).then_some(to);
            }
            if w & Intent::SEALED != 0 {
                sealed = true;
            } else {
                bare = true;
            }
        }
        (sealed && !bare).then_some(0)
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

#[cfg(test)]
impl SlotWrite<'static> {
    /// A test message: `value` in `topic_hash`, in slab block `block` (0: none).
    pub(crate) fn value(value: u64, block: u32) -> SlotWrite<'static> {
        SlotWrite {
            topic_hash: value,
            timestamp_ns: 0,
            publisher: 0,
            publisher_pid: 0,
            block,
            payload_len: 0,
            meta: 0,
            inline: &[],
        }
    }
}

/// A claimant's row words, for tests and models: `publishing`, `addressed`, `held_block`.
#[cfg(test)]
#[derive(Default)]
pub(crate) struct TestRow {
    pub intent: AtomicU64,
    pub addressed: AtomicU64,
    pub held: AtomicU32,
}

#[cfg(test)]
impl RingView<'_> {
    /// The rest of a publish after the claim of `run`, in the order `publisher.rs` takes it:
    /// announce for `wanting()`, commit `values[i]` (in `topic_hash`) at the run's position `i`
    /// while commits succeed, give back the rest. Returns the announcement and how many it
    /// committed.
    pub(crate) fn finish_publish(
        &self,
        run: Run,
        wanting: impl FnOnce() -> u64,
        values: &[u64],
        row: &TestRow,
    ) -> (Addressed, u64) {
        let a = self.announce(&run, wanting, &row.intent, &row.addressed);
        let mut done = 0;
        if let Addressed::To(to) = a {
            while done < run.count
                && self.commit_slot(
                    run.first.wrapping_add(done),
                    to,
                    &SlotWrite::value(values[done as usize], 0),
                    &row.held,
                )
            {
                done += 1;
            }
        }
        self.give_back(
            run.first.wrapping_add(done),
            run.end(),
            &row.intent,
            &row.addressed,
        );
        (a, done)
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

    /// Claims one position and publishes `value` there for everyone it is for.
    fn publish(r: &RingView<'_>, value: u64, row: &TestRow) -> u64 {
        let run = r.claim_run(1, &row.intent).expect("a free slot");
        let (a, done) = r.finish_publish(run, || !0, &[value], row);
        assert!(matches!(a, Addressed::To(_)) && done == 1, "{a:?}");
        run.first
    }

    #[test]
    fn full_ring_waits_for_every_consumer() {
        let (head, active, row) = (AtomicU64::new(0), AtomicU64::new(0b11), TestRow::default());
        let s = slots(2);
        let st = starts(&[0, 0]);
        let r = RingView {
            head: &head,
            active: &active,
            starts: &st,
            slots: &s,
        };
        for pos in 0..2 {
            let run = r.claim_run(1, &row.intent).unwrap();
            assert_eq!(run.first, pos);
            assert_eq!(row.intent.load(Ordering::Relaxed), pos | 1 << 48);
            let published = r.finish_publish(run, || !0, &[pos], &row);
            assert_eq!(published, (Addressed::To(0b11), 1));
            assert_eq!(row.intent.load(Ordering::Relaxed), 0);
        }
        assert_eq!(r.claim_run(1, &row.intent), Err(RingFull));
        assert_eq!(r.poll(0, 1), Poll::Ready);
        assert_eq!(r.release(0, 1), None);
        assert_eq!(r.claim_run(1, &row.intent), Err(RingFull));
        assert_eq!(r.release(0, 2), Some(0));
        assert_eq!(r.poll(0, 1), Poll::Skip);
        assert_eq!(r.poll(2, 1), Poll::Empty);
        let run = r.claim_run(1, &row.intent).unwrap();
        assert_eq!(run.first, 2);
        assert_eq!(r.poll(2, 1), Poll::Empty);
        assert!(r.tombstone(2));
        assert_eq!(r.poll(2, 1), Poll::Skip);
        assert_eq!(r.poll(3, 4), Poll::Empty);
        // The claimant, taken for dead, cannot publish over the tombstone.
        let published = r.finish_publish(run, || !0, &[2], &row);
        assert_eq!(published, (Addressed::To(0b11), 0));
        assert_eq!(r.poll(2, 1), Poll::Skip);
    }

    #[test]
    fn a_sealed_run_is_given_back_and_an_announced_one_is_never_sealed() {
        let (head, active) = (AtomicU64::new(0), AtomicU64::new(0b11));
        let (a, b) = (TestRow::default(), TestRow::default());
        let s = slots(4);
        let st = starts(&[0, 0]);
        let r = RingView {
            head: &head,
            active: &active,
            starts: &st,
            slots: &s,
        };
        let rows = [(&a.intent, &a.addressed), (&b.intent, &b.addressed)];
        let announced = |p| r.announced(p, rows);
        // A claims 0 and 1 and stalls before announcing; a waiter seals and tombstones 0.
        let run = r.claim_run(2, &a.intent).unwrap();
        assert_eq!(announced(0), None);
        assert!(r.seal(0, [&b.intent, &a.intent]));
        assert_eq!(r.poll(0, 1), Poll::Skip);
        // Position 1 is still claimed, and sealed: for nobody.
        assert_eq!(announced(1), Some(0));
        assert_eq!(r.poll_past(1, 1, announced), Poll::Skip);
        // A resumes: it publishes nothing of the run and gives it back.
        let published = r.finish_publish(run, || !0, &[7, 8], &a);
        assert_eq!(published, (Addressed::Sealed, 0));
        assert_eq!(r.poll(1, 1), Poll::Skip);
        assert_eq!(a.intent.load(Ordering::Relaxed), 0);
        // An announced run is not sealed: its claimant may be writing the slot.
        let run = r.claim_run(1, &a.intent).unwrap();
        assert_eq!(run.first, 2);
        let to = r.announce(&run, || 0b01, &a.intent, &a.addressed);
        assert_eq!(to, Addressed::To(0b01));
        assert!(!r.seal(2, [&a.intent]));
        assert_eq!(announced(2), Some(0b01));
        assert!(r.commit_slot(2, 0b01, &SlotWrite::value(9, 0), &a.held));
        r.give_back(3, 3, &a.intent, &a.addressed);
        assert_eq!(r.poll(2, 1), Poll::Ready);
        // Nothing claimed there, or not below the head: nothing to seal.
        assert!(!r.seal(3, [&a.intent]));
    }

    #[test]
    fn a_joiner_is_addressed_from_its_start_and_a_leaver_is_drained() {
        let (head, active, row) = (AtomicU64::new(0), AtomicU64::new(0b01), TestRow::default());
        let s = slots(4);
        let st = starts(&[0]);
        let r = RingView {
            head: &head,
            active: &active,
            starts: &st,
            slots: &s,
        };
        // Position 0 is claimed before consumer 1 joins; its publisher looks after the join.
        let run = r.claim_run(1, &row.intent).unwrap();
        assert_eq!(r.join(1), 1);
        assert_eq!(
            r.finish_publish(run, || !0, &[0], &row),
            (Addressed::To(0b01), 1),
            "claimed before the join: not for the joiner"
        );
        assert_eq!(publish(&r, 1, &row), 1);
        assert_eq!(r.poll(1, 0b10), Poll::Ready);
        // A publisher may resolve a joiner's start before the joiner does.
        let run = r.claim_run(1, &row.intent).unwrap();
        assert_eq!(run.first, 2);
        active.fetch_or(0b100, Ordering::SeqCst);
        assert_eq!(
            r.announce(&run, || !0, &row.intent, &row.addressed),
            Addressed::To(0b011)
        );
        assert_eq!(r.start(2), 3);
        // Consumer 1 leaves while position 2 is still being written for it.
        assert_eq!(r.leave(1), 3);
        let d = r.drain(1, 3, |_| ());
        assert_eq!((d.released, d.in_flight), (1, 1));
        assert!(r.commit_slot(2, 0b011, &SlotWrite::value(2, 0), &row.held));
        r.give_back(3, 3, &row.intent, &row.addressed);
        assert_eq!(r.drain(1, 3, |_| ()).released, 1);
        assert_eq!(r.drain(1, 3, |_| ()), Drained::default());
        assert_eq!(r.poll(1, 0b10), Poll::Skip);
        assert_eq!(r.poll(2, 0b10), Poll::Skip);
    }

    #[test]
    fn claim_run_takes_only_free_slots_and_announces_the_run() {
        let (head, active, row) = (AtomicU64::new(0), AtomicU64::new(1), TestRow::default());
        let s = slots(4);
        let st = starts(&[0]);
        let r = RingView {
            head: &head,
            active: &active,
            starts: &st,
            slots: &s,
        };
        let run = r.claim_run(3, &row.intent).unwrap();
        assert_eq!((run.first, run.count), (0, 3));
        let w = row.intent.load(Ordering::Relaxed);
        assert!((0..3).all(|p| Intent::covers(w, p)));
        assert!(!Intent::covers(w, 3) && !Intent::covers(0, 0));
        assert_eq!(
            r.finish_publish(run, || !0, &[0, 1, 2], &row),
            (Addressed::To(1), 3)
        );
        // Only slot 3 is free: a run of 4 gets one position.
        let run = r.claim_run(4, &row.intent).unwrap();
        assert_eq!((run.first, run.count), (3, 1));
        assert_eq!(
            r.finish_publish(run, || !0, &[3], &row),
            (Addressed::To(1), 1)
        );
        assert_eq!(r.claim_run(2, &row.intent), Err(RingFull));
        assert_eq!(r.release(0, 1), Some(0));
        assert_eq!(r.release(1, 1), Some(0));
        let run = r.claim_run(4, &row.intent).unwrap();
        assert_eq!((run.first, run.count), (4, 2));
        let w = Intent {
            first: (1 << 48) - 1,
            count: 2,
        }
        .word();
        assert!(Intent::covers(w, (1 << 48) - 1) && Intent::covers(w, 1 << 48));
        assert!(!Intent::covers(w, (1 << 48) + 1));
        // Flags do not change what a word covers.
        assert!(Intent::covers(
            w | Intent::SEALED | Intent::ANNOUNCED,
            1 << 48
        ));
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

        /// Claims up to `max` positions, draining departed consumers while the ring is full.
        fn claim(&self, max: u64, intent: &AtomicU64) -> Run {
            let r = self.view();
            self.wait(|| match r.claim_run(max, intent) {
                Ok(run) => Some(run),
                Err(RingFull) => {
                    self.drain_departed();
                    r.claim_run(max, intent).ok()
                }
            })
        }

        /// Publishes `value` (in `topic_hash`) to every consumer, waiting while the ring is full.
        pub(crate) fn publish(&self, value: u64) {
            self.publish_to(value, !0);
        }

        /// Publishes `value` to those of `candidates` that are active, waiting while the ring
        /// is full (as a publisher does for a topic only some consumers want), by the product's
        /// steps: claim, announce, write and commit, give back.
        fn publish_to(&self, value: u64, candidates: u64) {
            self.publish_wanting(value, || candidates);
        }

        /// [`Shared::publish_to`] where `wanting()` says who wants the message now (the
        /// interest, read when the product reads it).
        fn publish_wanting(&self, value: u64, wanting: impl FnOnce() -> u64) {
            let row = TestRow::default();
            let run = self.claim(1, &row.intent);
            let (a, done) = self.view().finish_publish(run, wanting, &[value], &row);
            assert!(a == Addressed::Nobody || done == 1, "{a:?}");
            self.wake();
        }

        /// Publishes `values` in order, claiming runs of free slots with one CAS each.
        fn publish_run(&self, values: &[u64]) {
            let row = TestRow::default();
            let mut done = 0;
            while done < values.len() {
                let want = (values.len() - done) as u64;
                let run = self.wait(|| self.view().claim_run(want, &row.intent).ok());
                let published = self
                    .view()
                    .finish_publish(run, || !0, &values[done..], &row);
                assert_eq!(published, (Addressed::To(0b1), run.count));
                done += run.count as usize;
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
                    let row = TestRow::default();
                    let run = s1.wait(|| match r.claim_run(1, &row.intent) {
                        Ok(run) => Some(run),
                        Err(RingFull) => {
                            let head = s1.head.load(Ordering::SeqCst);
                            let n = r.evict(1, &c1, head - 2, |_| ());
                            m1.fetch_add(n, Ordering::SeqCst);
                            r.claim_run(1, &row.intent).ok()
                        }
                    });
                    assert_eq!(r.finish_publish(run, || !0, &[v], &row).1, 1);
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
                let (r, row) = (s.view(), TestRow::default());
                for v in 1..=2 {
                    let run = r.claim_run(1, &row.intent).expect("a free slot");
                    assert_eq!(r.finish_publish(run, || 1, &[v], &row).1, 1);
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
        rows: [TestRow; 2],
        alive: [AtomicU64; 2],
    }

    impl Rows {
        fn new() -> Arc<Rows> {
            Arc::new(Rows {
                rows: Default::default(),
                alive: [AtomicU64::new(1), AtomicU64::new(1)],
            })
        }

        /// The reaper's question: does a live row announce `pos`?
        fn announced(&self, pos: u64) -> bool {
            (0..2).any(|r| {
                self.alive[r].load(Ordering::Acquire) == 1
                    && Intent::covers(self.rows[r].intent.load(Ordering::SeqCst), pos)
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
                let run = s1.view().claim_run(1, &r1.rows[0].intent);
                r1.alive[0].store(0, Ordering::Release);
                s1.wake();
                run.expect("a free slot").first
            });
            let (s2, r2) = (s.clone(), rows.clone());
            let live = loom::thread::spawn(move || {
                let r = s2.view();
                let run = r.claim_run(1, &r2.rows[1].intent).expect("a free slot");
                let (_, done) = r.finish_publish(run, || !0, &[7], &r2.rows[1]);
                s2.wake();
                done == 1
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
            let row = Arc::new(TestRow::default());
            let (s1, row1) = (s.clone(), row.clone());
            let publisher = loom::thread::spawn(move || {
                let r = s1.view();
                let run = r.claim_run(1, &row1.intent).expect("a free slot");
                // The block it holds (`Row::held_block`) goes to the slot with the commit.
                row1.held.store(5, Ordering::Relaxed);
                let ok = match r.announce(&run, || !0, &row1.intent, &row1.addressed) {
                    Addressed::To(to) => r.commit_slot(0, to, &SlotWrite::value(0, 5), &row1.held),
                    a => panic!("{a:?}"),
                };
                r.give_back(run.end(), run.end(), &row1.intent, &row1.addressed);
                s1.wake();
                ok
            });
            let (s2, row2) = (s.clone(), row.clone());
            let reaper = loom::thread::spawn(move || {
                s2.wait(|| (s2.head.load(Ordering::SeqCst) > 0).then_some(()));
                let r = s2.view();
                let t = r.tombstone_abandoned(0, |pos| {
                    Intent::covers(row2.intent.load(Ordering::SeqCst), pos)
                });
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
            assert_eq!(
                row.held.load(Ordering::Relaxed),
                0,
                "the slot and the row both hold the block"
            );
        });
    }

    /// A live but slow claimant races a reaper that wrongly takes it for dead. The commit and
    /// the tombstone are both CASes from the claimed state: exactly one wins, the consumer gets
    /// the message exactly when the commit won, and nobody ever sees `seq` move backwards.
    #[test]
    fn loom_false_reap_of_a_slow_claimant_leaves_one_winner() {
        model(|| {
            let s = shared(2, 1);
            let s1 = s.clone();
            let publisher = loom::thread::spawn(move || {
                let (r, row) = (s1.view(), TestRow::default());
                let run = r.claim_run(1, &row.intent).expect("a free slot");
                let (_, done) = r.finish_publish(run, || !0, &[7], &row);
                s1.wake();
                done == 1
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

    /// Publishes `value` for `to` from `row`, as `publisher.rs` does: claim (waiting while the
    /// ring is full), announce, write and commit, give back; and when the run was sealed
    /// before its announcement, all of it again at a new position. `stall` runs between the
    /// first claim and its announcement (a claimant stopped there). The position published.
    fn publish_sealable(s: &Shared, value: u64, to: u64, row: &TestRow, stall: impl Fn()) -> u64 {
        let mut first = true;
        loop {
            let run = s.claim(1, &row.intent);
            if std::mem::take(&mut first) {
                // A receiver asleep before this claim looks again within its sleep slice in
                // the product (then sleeping blind, and sealing after `SEAL_AFTER`); here, a
                // wake-up stands for that timeout.
                s.wake();
                stall();
            }
            let (a, done) = s.view().finish_publish(run, || to, &[value], row);
            s.wake();
            if a != Addressed::Sealed {
                assert_eq!((a, done), (Addressed::To(to), 1));
                return run.first;
            }
        }
    }

    /// Consumer `bit` reads from position 0 until it has `n` messages, as a patient receiver
    /// does: it passes a position its claimant announced for others and, when it may `seal`,
    /// seals one claimed and not announced (at once: how long a receiver waits before it seals
    /// is no part of the protocol). The values, in order.
    fn consume_sealing(s: &Shared, bit: u64, n: usize, rows: &[TestRow], seal: bool) -> Vec<u64> {
        let r = s.view();
        let announced = |pos| r.announced(pos, rows.iter().map(|w| (&w.intent, &w.addressed)));
        let (mut pos, mut got) = (0, Vec::new());
        while got.len() < n {
            // (No wake-up inside the attempt: the harness runs it under its lock.)
            let (p, sealed) = s.wait(|| match r.poll_past(pos, bit, announced) {
                Poll::Empty => (seal && r.seal(pos, rows.iter().map(|row| &row.intent)))
                    .then_some((Poll::Skip, true)),
                p => Some((p, false)),
            });
            if sealed {
                s.wake();
            }
            if p == Poll::Ready {
                got.push(r.slot(pos).topic_hash.load(Ordering::Relaxed));
                r.release(pos, bit);
                s.wake();
            }
            pos += 1;
        }
        got
    }

    /// Issue 20, defect 6: a publisher stopped between its claim and its announcement. It
    /// claims position 0 for consumer A and stays stopped until consumer B has passed position
    /// 0, sealing it as a receiver does that finds it claimed and not announced (without the
    /// seal B waits there for ever, and the model deadlocks). A waits at the position instead.
    /// The claimant, continued, finds its run sealed and publishes at position 1: A gets the
    /// message once. (That a sealed claimant writes nothing into its old slot is the race
    /// model's check, below.)
    #[test]
    fn loom_a_claimant_stalled_before_announcing_is_sealed_and_publishes_again() {
        model_bounded(2, || {
            let s = shared(2, 0b11);
            let rows: Arc<[TestRow; 1]> = Arc::new(Default::default());
            let passed = Arc::new(AtomicU64::new(0));
            let (s1, rows1, passed1) = (s.clone(), rows.clone(), passed.clone());
            let p = loom::thread::spawn(move || {
                publish_sealable(&s1, 10, 0b01, &rows1[0], || {
                    s1.wait(|| (passed1.load(Ordering::SeqCst) == 1).then_some(()));
                })
            });
            let (s2, rows2, passed2) = (s.clone(), rows.clone(), passed.clone());
            let b = loom::thread::spawn(move || {
                let r = s2.view();
                let announced = |pos| r.announced(pos, [(&rows2[0].intent, &rows2[0].addressed)]);
                let (p, sealed) = s2.wait(|| match r.poll_past(0, 0b10, announced) {
                    Poll::Empty => r.seal(0, [&rows2[0].intent]).then_some((Poll::Skip, true)),
                    p => Some((p, false)),
                });
                passed2.store(1, Ordering::SeqCst);
                s2.wake();
                (p, sealed)
            });
            let (s3, rows3) = (s.clone(), rows.clone());
            let a = loom::thread::spawn(move || consume_sealing(&s3, 0b01, 1, &rows3[..], false));
            let at = p.join().unwrap();
            assert_eq!(b.join().unwrap(), (Poll::Skip, true));
            assert_eq!(a.join().unwrap(), vec![10]);
            assert_eq!(at, 1);
            assert!(s.all_released(2));
        });
    }

    /// A seal racing a live claimant's announcement: a consumer seals position 0 as soon as it
    /// is claimed while its claimant announces it for another consumer. Exactly one wins: the
    /// announcement (the message is published at 0, the seal tombstones nothing) or the seal
    /// (position 0 is a tombstone and the claimant, which wrote nothing there, publishes at 1).
    /// Either way the addressee gets the message once.
    #[test]
    fn loom_a_seal_racing_an_announcement_leaves_one_winner() {
        model(|| {
            let s = shared(2, 0b11);
            let rows: Arc<[TestRow; 1]> = Arc::new(Default::default());
            let (s1, rows1) = (s.clone(), rows.clone());
            let p = loom::thread::spawn(move || publish_sealable(&s1, 10, 0b01, &rows1[0], || ()));
            let (s2, rows2) = (s.clone(), rows.clone());
            let sealer = loom::thread::spawn(move || {
                s2.wait(|| (s2.head.load(Ordering::SeqCst) > 0).then_some(()));
                let sealed = s2.view().seal(0, [&rows2[0].intent]);
                s2.wake();
                sealed
            });
            let (s3, rows3) = (s.clone(), rows.clone());
            let a = loom::thread::spawn(move || consume_sealing(&s3, 0b01, 1, &rows3[..], false));
            let at = p.join().unwrap();
            let sealed = sealer.join().unwrap();
            assert_eq!(a.join().unwrap(), vec![10]);
            // The seal tombstones position 0 unless the claimant's own give-back of its sealed
            // run does first; either way the message moves to position 1.
            assert!(
                at <= 1 && (!sealed || at == 1),
                "at {at}, tombstoned {sealed}"
            );
            let r = s.view();
            if at == 1 {
                assert_eq!(r.poll(0, 0b01), Poll::Skip);
                assert_eq!(s.slots[0].topic_hash.load(Ordering::Relaxed), 0);
            }
            assert!(s.all_released(at + 1));
        });
    }
}

// SAFETY: every field but `inline` is atomic. `inline` is written only by the publisher that
// claimed the slot, before its Release store of `seq`, and read only by consumers after their
// Acquire load of `seq` shows the message published and while their pending bit keeps the slot
// from being reused; observers copy it with volatile reads and discard the copy if `seq` moved.
unsafe impl Sync for Slot {}
