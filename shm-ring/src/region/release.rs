//! Giving back what a message held (its ring slot and slab block) and waking whoever waits for
//! space or data. The publish and receive paths call these on every message; recovery calls
//! them too, on a dead process's behalf.

use super::layout::{ClassHead, CONSUMER_LIVE};
use super::table::TableGuard;
use super::Region;
use crate::blocks::atomics::{saturating_dec, Ordering};
use crate::blocks::sleepers::{wake, wake_committed};

impl Region {
    /// Wakes publishers sleeping on a full ring or slab, if any.
    pub(crate) fn wake_publishers(&self) {
        let h = self.header();
        wake(&h.space_futex, &h.pub_sleepers);
    }

    /// Wakes the receivers of consumers `mask` that sleep for data, if any, and every sleeping
    /// receiver while one sleeps blind (`blocks/sleepers.rs`): a consumer a message was not
    /// addressed to is otherwise not woken. Called after every commit and discard.
    pub(crate) fn wake_consumers(&self, mask: u64) {
        let consumers = self.consumers();
        wake_committed(mask, &self.header().blind_sleepers, |b| {
            consumers.get(b).map(|c| (&c.futex, &c.sleepers))
        });
    }

    /// Seals position `pos`, claimed and not announced by a claimant stopped in between, and
    /// tombstones it (see `RingView::seal`), waking whoever waits behind it. True if it did.
    pub(crate) fn seal(&self, pos: u64) -> bool {
        let sealed = self
            .ring()
            .seal(pos, self.rows().iter().map(|r| &r.publishing));
        if sealed {
            self.wake_consumers(u64::MAX);
            self.wake_publishers();
        }
        sealed
    }

    /// The ring lets a block go (slot `block` field: index + 1, 0 for inline): it goes back to
    /// its free list unless a holder keeps it, in which case the last holder to let go frees it
    /// (`blocks/holds.rs`). True if a block went back. Out-of-range values from a corrupt slot
    /// are ignored (the sweep restores the slab).
    pub(crate) fn free_block(&self, block: u32) -> bool {
        block != 0 && self.holds().drop_ring(block - 1) && self.push_block(block - 1)
    }

    /// A dead publisher's row named `block` (index + 1, 0 for none; `Row::held_block`): its
    /// reference goes, and the block back to its free list unless a seat of a loan keeps it.
    /// True if a block went back.
    pub(crate) fn free_popped(&self, block: u32) -> bool {
        block != 0 && self.holds().drop_popped(block - 1) && self.push_block(block - 1)
    }

    /// The head of the class of block `idx`.
    pub(crate) fn class_of(&self, idx: u32) -> Option<&ClassHead> {
        self.block(idx).map(|(class, _, _)| self.class(class))
    }

    /// A seat let go of block `idx`: one hold fewer in its class's count.
    pub(crate) fn count_unheld(&self, idx: u32) {
        if let Some((class, _, _)) = self.block(idx) {
            saturating_dec(&self.class(class).held);
        }
    }

    /// Puts block `idx`, whose last reference is gone, back on its free list; true if it went.
    pub(crate) fn push_block(&self, idx: u32) -> bool {
        if let Some((class, _, _)) = self.block(idx) {
            if self.free_list(class).push(idx).is_ok() {
                saturating_dec(&self.class(class).used);
                return true;
            }
        }
        false
    }

    /// A publisher found the ring full (`all == false`: it needs the slot at the head) or a slab
    /// class empty (`all == true`: it needs any block): takes from each lossy consumer the
    /// messages it has not read that stand in the way (up to the head's slot, or everything),
    /// counting them in its `missed`, so that nobody waits for a lossy consumer. True if a slot
    /// was freed (the caller retries at once).
    ///
    /// Only under the table lock, taken if free and never waited for (a busy lock: false, and
    /// the caller retries as it waits): a departure drains its consumer under that lock, so an
    /// eviction and a departure never both release one position, and the lossy consumers are
    /// exactly `lossy_mask` while it is held (an entry changes hands only under it).
    pub(crate) fn take_from_lossy(&self, all: bool) -> bool {
        let h = self.header();
        let lossy = h.lossy_mask.load(Ordering::SeqCst);
        if lossy == 0 {
            return false;
        }
        let ring = self.ring();
        let head = h.head.load(Ordering::SeqCst);
        let upto = if all {
            head.wrapping_sub(1)
        } else {
            let cap = ring.capacity();
            let Some(needed) = head.checked_sub(cap) else {
                return false;
            };
            // Only when a lossy consumer holds the slot the head needs; then a sixteenth of the
            // ring at once, so that publishers do not pay for this on every message.
            if ring.slot(needed).pending.load(Ordering::Acquire) & lossy == 0 {
                return false;
            }
            needed.wrapping_add(cap / 16).min(head.wrapping_sub(1))
        };
        let Some(table) = TableGuard::try_acquire(self) else {
            return false;
        };
        // Exact under the lock.
        let lossy = h.lossy_mask.load(Ordering::SeqCst);
        let mut freed = false;
        let mut bits = lossy;
        while bits != 0 {
            let b = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let Some(c) = self.consumers().get(b) else {
                break;
            };
            if c.state.load(Ordering::Acquire) != CONSUMER_LIVE {
                continue;
            }
            let n = ring.evict(b, &c.cursor, upto, |block| {
                self.free_block(block);
                freed = true;
            });
            if n > 0 {
                c.missed.fetch_add(n, Ordering::Relaxed);
            }
        }
        drop(table);
        if freed {
            self.wake_publishers();
        }
        freed
    }

    /// Clears `bits` from published position `pos`: `None` if other consumers still hold the
    /// slot, `Some(block freed)` if this call released it (and its block), in which case the
    /// caller must call [`Region::wake_publishers`] (once for a whole run of releases is enough).
    pub(crate) fn release_slot_quiet(&self, pos: u64, bits: u64) -> Option<bool> {
        let block = self.ring().release(pos, bits)?;
        Some(self.free_block(block))
    }
}
