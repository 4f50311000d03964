//! Keeping a received message's slab block after acknowledging it, so that a program can read
//! its payload in place for as long as it likes (`docs/delivery.md`, "Holds").
//!
//! An attachment takes a *seat* (a holder row, `blocks/holds.rs`) the first time one of its
//! subscribers holds something, and keeps it until the attachment goes. Each block it holds has
//! its seat's bit set once, however many holds of this process share it (counted here, in
//! process memory); the last [`Hold`] of a block to go clears the bit, and whoever clears the
//! last reference of a block frees it. A process killed with holds gives them back when its
//! holder row is reaped.
//!
//! Holding is bounded, so that a subscriber that keeps everything never wedges the bus: per
//! subscriber ([`Holder::limit`]), and bus-wide, where holds never take more than half of a size
//! class. Past a bound, [`Holder::hold`] refuses and counts a copy: the caller hands over a
//! private copy instead.

use crate::blocks::atomics::Ordering;
use crate::handle::Inner;
use crate::recovery::lock_table_to_join;
use crate::seat::{settle, SeatState};
use crate::{BusError, Message};
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex, PoisonError, Weak};

/// How many blocks one subscriber holds at most unless told otherwise.
pub const DEFAULT_HOLD_LIMIT: u32 = 64;

/// Why [`Holder::hold`] did not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The message is not in a slab block of its own (it travelled inline in its slot, or was
    /// copied out by a lossy subscriber): its bytes must be copied.
    NoBlock,
    /// A bound was reached (the subscriber's limit, half of the block's class, or every seat of
    /// the bus taken), or the attachment belongs to the parent of a forked process: copy, which
    /// [`Holder::hold`] counted.
    Bound,
}

/// A subscriber's right to hold blocks: made by [`crate::Subscriber::holder`], cloned freely,
/// used while a message it received is the current one (before the next receive).
#[derive(Clone)]
pub struct Holder {
    inner: Arc<Inner>,
    /// The subscriber's row, where copies are counted.
    row: u32,
    lossy: bool,
    live: Arc<AtomicU32>,
    limit: u32,
}

impl Holder {
    pub(crate) fn new(
        inner: Arc<Inner>,
        row: u32,
        lossy: bool,
        limit: u32,
        live: Arc<AtomicU32>,
    ) -> Holder {
        Holder {
            inner,
            row,
            lossy,
            live,
            limit,
        }
    }

    /// The subscriber's bound: how many blocks it holds at most at once.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// How many holds made by the subscriber's holders are alive.
    pub fn live(&self) -> u32 {
        self.live.load(Ordering::Relaxed)
    }

    /// Holds the block of `m`, the message this holder's subscriber received last and has not
    /// acknowledged yet (a later receive acknowledges it): its payload stays readable through the
    /// [`Hold`] after that, in any thread, until the hold is dropped. A lossy subscriber's
    /// messages are copies and cannot be held.
    pub fn hold(&self, m: &Message<'_>) -> Result<Hold, Refused> {
        if m.block == 0 || self.lossy {
            return Err(Refused::NoBlock);
        }
        if self.live.load(Ordering::Relaxed) >= self.limit || !hold_block(&self.inner, m.block - 1)
        {
            self.count_copy();
            return Err(Refused::Bound);
        }
        self.live.fetch_add(1, Ordering::Relaxed);
        Ok(Hold {
            inner: self.inner.clone(),
            block: m.block - 1,
            ptr: m.payload.as_ptr(),
            len: m.payload.len(),
            live: self.live.clone(),
        })
    }

    fn count_copy(&self) {
        if let Some(r) = self.inner.region.row(self.row) {
            r.copies.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Attachments of this process that have a seat (and those inherited from the parent).
static ATTACHED: Mutex<Vec<Weak<Inner>>> = Mutex::new(Vec::new());
/// In a child: each attachment inherited from the parent (by address) and the child's own one
/// that took its holds over.
static ADOPTED: Mutex<Vec<(usize, Arc<Inner>)>> = Mutex::new(Vec::new());
/// Records an attachment that has just taken a seat.
pub(crate) fn register(inner: &Arc<Inner>) {
    let mut all = ATTACHED.lock().unwrap_or_else(PoisonError::into_inner);
    all.retain(|w| w.strong_count() > 0);
    all.push(Arc::downgrade(inner));
}

/// The child's own attachment that took over the holds inherited through `inner`.
pub(crate) fn adopter(inner: &Inner) -> Option<Arc<Inner>> {
    let key = inner as *const Inner as usize;
    ADOPTED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, own)| own.clone())
}

pub(crate) fn attached() -> Vec<Arc<Inner>> {
    let all = match ATTACHED.try_lock() {
        Ok(g) => g,
        Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
        Err(std::sync::TryLockError::WouldBlock) => return Vec::new(),
    };
    all.iter().filter_map(Weak::upgrade).collect()
}

/// Records that `own`, this child's attachment, took over the holds inherited through
/// `inherited`.
pub(crate) fn adopted(inherited: &Arc<Inner>, own: Arc<Inner>) {
    ADOPTED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push((Arc::as_ptr(inherited) as usize, own));
}

/// Takes over `blocks` (with their counts) in a new attachment of a forked child, setting
/// its own seat's bit on each. False if it has no seat (every seat taken).
pub(crate) fn adopt(inner: &Arc<Inner>, blocks: &[(u32, u32)]) -> bool {
    let mut st = inner.seat.lock();
    let Some(seat) = seat(inner, &mut st) else {
        return false;
    };
    for &(block, n) in blocks {
        let Some((_, _, size)) = inner.region.block(block) else {
            continue;
        };
        if inner.region.holds().hold(block, seat) {
            count_hold(inner, &mut st, block, size);
            st.blocks.insert(block, n);
        }
    }
    true
}

/// This attachment's seat, claimed on first use; `None` when every seat is taken (tried again
/// once one of its own holds has gone, never more than that).
fn seat(inner: &Arc<Inner>, st: &mut SeatState) -> Option<u32> {
    match st.seat {
        Some((_, seat)) => Some(seat),
        None if st.full => None,
        None => match lock_table_to_join(&inner.region).and_then(|g| g.claim_holder()) {
            Ok(Some((row, seat))) => {
                st.seat = Some((row, seat));
                register(inner);
                Some(seat)
            }
            Ok(None) | Err(_) => {
                st.full = true;
                None
            }
        },
    }
}

/// Counts a new hold of this process on `block` (its seat bit just set, or already set).
fn count_hold(inner: &Inner, st: &mut SeatState, block: u32, size: usize) {
    if let Some(c) = inner.region.class_of(block) {
        c.held.fetch_add(1, Ordering::Relaxed);
    }
    st.blocks.insert(block, 1);
    st.bytes += size as u64;
    store_counts(inner, st);
}

/// Sets this attachment's seat bit on `block` (claiming a seat first if it has none), unless
/// its process is a forked child, no seat is free, or holds already take half the block's class.
fn hold_block(inner: &Arc<Inner>, block: u32) -> bool {
    if !inner.is_owner() {
        return false;
    }
    let region = &inner.region;
    let Some((class, _, size)) = region.block(block) else {
        return false;
    };
    let mut st = inner.seat.lock();
    if !st.deferred.is_empty() {
        // Releases a fork kept back, now that its child may be done.
        let ready = settle(&mut st);
        if let (Some((_, seat)), false) = (st.seat, ready.is_empty()) {
            drop(st);
            release_all(inner, seat, ready);
            st = inner.seat.lock();
        }
    }
    if let Some(n) = st.blocks.get_mut(&block) {
        *n += 1;
        return true;
    }
    let count = region.layout().classes[class].count;
    if region
        .class(class)
        .held
        .load(Ordering::Relaxed)
        .saturating_add(1)
        > count / 2
    {
        return false;
    }
    let Some(seat) = seat(inner, &mut st) else {
        return false;
    };
    if !region.holds().hold(block, seat) {
        return false;
    }
    count_hold(inner, &mut st, block, size);
    true
}

/// Drops one hold of this process on `block`: the last one clears the seat bit, freeing the
/// block if nobody else references it.
fn unhold_block(inner: &Inner, block: u32) {
    if !inner.is_owner() {
        // A hold this process inherited at a fork: its own attachment took it over (`fork.rs`);
        // the parent's seat is the parent's to let go.
        if let Some(own) = adopter(inner) {
            unhold_block(&own, block);
        }
        return;
    }
    let region = &inner.region;
    let mut st = inner.seat.lock();
    let Some(n) = st.blocks.get_mut(&block) else {
        return;
    };
    *n -= 1;
    if *n > 0 {
        return;
    }
    st.blocks.remove(&block);
    st.full = false;
    if let Some((_, _, size)) = region.block(block) {
        st.bytes = st.bytes.saturating_sub(size as u64);
    }
    store_counts(inner, &st);
    let Some((_, seat)) = st.seat else {
        return;
    };
    st.deferred.push(block);
    let ready = settle(&mut st);
    drop(st);
    release_all(inner, seat, ready);
}

/// Clears seat `seat`'s bit on each of `blocks`, freeing those it held last.
fn release_all(inner: &Inner, seat: u32, blocks: Vec<u32>) {
    let region = &inner.region;
    for block in blocks {
        region.count_unheld(block);
        if region.holds().release(block, seat) && region.push_block(block) {
            region.wake_publishers();
        }
    }
}

/// Shows what the seat holds in its row's stats, for tools.
fn store_counts(inner: &Inner, st: &SeatState) {
    if let Some(stats) = st.seat.and_then(|(row, _)| inner.region.row_stats(row)) {
        stats.store_holds(st.blocks.len() as u64, st.bytes);
    }
}

/// A hold on a received message's slab block: its payload stays in place, unchanged, until the
/// hold is dropped (from any thread). Made by [`Holder::hold`].
pub struct Hold {
    inner: Arc<Inner>,
    block: u32,
    ptr: *const u8,
    len: usize,
    live: Arc<AtomicU32>,
}

// SAFETY: a `Hold` reads bytes in a shared mapping that no process writes while the hold lives
// (its seat bit keeps the block off the free list); the pointer is into that mapping, which its
// `Arc<Inner>` keeps mapped. Nothing in it is tied to a thread.
unsafe impl Send for Hold {}
// SAFETY: as for `Send`; a `Hold` only hands out shared reads.
unsafe impl Sync for Hold {}

impl Hold {
    /// The message's payload, in the slab block.
    pub fn payload(&self) -> &[u8] {
        // SAFETY: `ptr..ptr + len` is the payload `Holder::hold` was given, inside the block,
        // checked against the layout when the message was read (`read_message`); the block is
        // neither freed nor written while the hold lives, and `inner` keeps the mapping.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl std::fmt::Debug for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hold")
            .field("block", &self.block)
            .field("len", &self.len)
            .finish()
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        unhold_block(&self.inner, self.block);
        self.live.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A slab block lent to this process to fill in place, then published from there without a
/// copy ([`crate::Publisher::send_loan`]). Held by the attachment's seat like a [`Hold`], so
/// that it goes back to the slab when dropped unpublished, and when its process is killed, at
/// the reap. Made by [`crate::Publisher::loan`] and [`crate::Publisher::loan_block`].
pub struct Loan {
    inner: Arc<Inner>,
    block: u32,
    ptr: *mut u8,
    size: usize,
    /// Topic length and payload length, for a loan made with its topic.
    message: Option<(usize, usize)>,
    /// Sent (or being sent): it cannot be sent again.
    pub(crate) spent: bool,
}

// SAFETY: the block is this process's alone until the loan is published or dropped (its seat
// bit, with no ring reference, keeps every other process off it); `inner` keeps it mapped.
unsafe impl Send for Loan {}

impl Loan {
    /// Makes block `block` (popped by `alloc`, given to the ring) a loan of this attachment's
    /// seat. On failure the caller gives the block back.
    pub(crate) fn new(inner: &Arc<Inner>, block: u32) -> Result<Loan, BusError> {
        let region = &inner.region;
        let (_, ptr, size) = region.block(block).expect("allocated block is in range");
        let mut st = inner.seat.lock();
        let seat = if inner.is_owner() {
            seat(inner, &mut st)
        } else {
            None
        };
        let Some(seat) = seat else {
            // The publisher gives the block back (its row names it).
            return Err(BusError::NoSeat {
                bus: region.name().to_owned(),
            });
        };
        region.holds().lend(block, seat);
        count_hold(inner, &mut st, block, size);
        Ok(Loan {
            inner: inner.clone(),
            block,
            ptr,
            size,
            message: None,
            spent: false,
        })
    }

    /// The whole block, writable.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: `ptr..ptr + size` is the loaned block inside the mapping, this process's alone
        // while the loan lives (see `Send`), and `&mut self` makes this the only access here.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.size) }
    }

    /// The payload of a loan made with its topic ([`crate::Publisher::loan`]): the bytes after
    /// the topic, as many as asked for; the whole block for one made without.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (from, len) = self.message.map_or((0, self.size), |(t, l)| (t, l));
        &mut self.bytes_mut()[from..from + len]
    }

    /// The block's address and size, for a binding that hands the memory to its language.
    pub fn as_mut_ptr(&mut self) -> (*mut u8, usize) {
        (self.ptr, self.size)
    }

    pub(crate) fn set_message(&mut self, topic: &str, len: usize) {
        self.message = Some((topic.len(), len));
    }

    /// The topic (read back from the block) and payload length of a loan made with its topic.
    pub(crate) fn message(&self) -> Option<(&str, usize)> {
        let (t, len) = self.message?;
        // SAFETY: as in `bytes_mut`, shared read of the first `t` bytes, written by `loan`.
        let topic = unsafe { std::slice::from_raw_parts(self.ptr, t) };
        Some((std::str::from_utf8(topic).ok()?, len))
    }

    /// Whether it was sent.
    pub fn is_spent(&self) -> bool {
        self.spent
    }

    /// Marks it spent without sending it (a binding's `release`): it can no longer be sent, and
    /// its block goes back when it is dropped.
    pub fn spend(&mut self) {
        self.spent = true;
    }

    pub(crate) fn block(&self) -> u32 {
        self.block
    }

    pub(crate) fn is_of(&self, inner: &Arc<Inner>) -> bool {
        Arc::ptr_eq(&self.inner, inner)
    }
}

impl Drop for Loan {
    fn drop(&mut self) {
        // Published: the ring holds the block too and this only lets the seat go; unpublished:
        // the seat held the last reference and the block goes back.
        unhold_block(&self.inner, self.block);
    }
}

impl std::fmt::Debug for Loan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loan")
            .field("block", &self.block)
            .field("size", &self.size)
            .finish()
    }
}

/// At the end of the process: every attachment of this process that holds something gives its
/// seat and its rows back, freeing the blocks it held last, although views of them may still
/// exist (the interpreter is about to end and reads nothing more of them; the mapping stays
/// until the process exits). Without it, the rows stay until the next reap after the exit.
pub fn holds_at_exit() {
    for inner in attached().into_iter().filter(|i| i.is_owner()) {
        if let Some(row) = inner.seat.take_row() {
            inner.leave(row, None);
        }
        if let Some(row) = inner.row {
            inner.leave(row, None);
        }
    }
}
