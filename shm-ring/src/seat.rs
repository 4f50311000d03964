//! What an attachment holds in the slab, in process memory: its seat once claimed, its holds
//! per block, and the forks whose children have not taken their share over yet (`holder.rs`,
//! `fork.rs`).

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// What an attachment holds: its seat, once claimed, and its holds per block.
#[derive(Default)]
pub(crate) struct Seat {
    state: Mutex<SeatState>,
}

#[derive(Default)]
pub(crate) struct SeatState {
    /// `(holder row, seat)` once claimed.
    pub(crate) seat: Option<(u32, u32)>,
    /// A claim was tried and every seat was taken: not tried again until a hold goes.
    pub(crate) full: bool,
    /// Holds of this process per block index; a block is in here exactly while its seat bit is
    /// set by this process.
    pub(crate) blocks: HashMap<u32, u32>,
    /// Bytes of the blocks in `blocks` (for tools).
    pub(crate) bytes: u64,
    /// Forks whose child has not taken over its share of these holds yet (`fork.rs`): a block
    /// held at the fork is not let go until the child has set its own seat's bit on it.
    pub(crate) pins: Vec<Pin>,
    /// Blocks whose last hold went while a pin covered them: their seat bit is cleared once no
    /// pin covers them.
    pub(crate) deferred: Vec<u32>,
}

/// One fork in progress, as its parent sees it: the read end of a pipe whose write end only
/// the child holds (closed once it has taken its holds over, or at its exit), and the blocks
/// held at the fork.
pub(crate) struct Pin {
    pub(crate) fd: Arc<std::os::fd::OwnedFd>,
    pub(crate) blocks: std::collections::HashSet<u32>,
}

impl Seat {
    /// Forgets the seat (its row given back by the caller), so that holds dropped later do
    /// nothing more. Returns its row.
    pub(crate) fn take_row(&self) -> Option<u32> {
        let mut st = self.lock();
        st.blocks.clear();
        st.seat.take().map(|(row, _)| row)
    }

    /// The holder row to give back when the attachment goes.
    pub(crate) fn row(&self) -> Option<u32> {
        self.lock().seat.map(|(row, _)| row)
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, SeatState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Pins what is held now for a fork about to happen (see `fork.rs`).
    pub(crate) fn pin(&self, fd: &Arc<std::os::fd::OwnedFd>) {
        let mut st = self.lock();
        if !st.blocks.is_empty() {
            let blocks = st.blocks.keys().copied().collect();
            st.pins.push(Pin {
                fd: fd.clone(),
                blocks,
            });
        }
    }

    /// In a forked child: the holds its parent had through this attachment (block, count), and
    /// their bytes; forgets the parent's pins.
    pub(crate) fn inherited(&self) -> (Vec<(u32, u32)>, u64) {
        let mut st = self.lock();
        st.pins.clear();
        st.deferred.clear();
        (st.blocks.iter().map(|(b, n)| (*b, *n)).collect(), st.bytes)
    }

    /// Waits, at most `limit`, for the children of pending forks to take their holds over (an
    /// attachment about to give its seat up).
    pub(crate) fn settle_pins(&self, limit: std::time::Duration) {
        let end = std::time::Instant::now() + limit;
        loop {
            let mut st = self.lock();
            st.pins.retain(|p| !child_done(&p.fd, None));
            if st.pins.is_empty() {
                return;
            }
            let fd = st.pins[0].fd.clone();
            drop(st);
            let left = end.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return;
            }
            child_done(&fd, Some(left));
        }
    }
}

/// The deferred blocks no pending fork covers any more (their seat bits may be cleared now),
/// taken out of `st.deferred`; forgets the pins of children that are done.
pub(crate) fn settle(st: &mut SeatState) -> Vec<u32> {
    if !st.pins.is_empty() {
        st.pins.retain(|p| !child_done(&p.fd, None));
    }
    let pins = &st.pins;
    let (ready, kept): (Vec<u32>, Vec<u32>) = st
        .deferred
        .iter()
        .partition(|b| !pins.iter().any(|p| p.blocks.contains(b)));
    st.deferred = kept;
    ready
}

/// Whether the child of a pin's fork is done with it (end of file on `fd`), waiting up to `wait`
/// for that (not at all for `None`).
pub(crate) fn child_done(fd: &OwnedFd, wait: Option<Duration>) -> bool {
    let ms = wait.map_or(0, |d| d.as_millis().clamp(1, i32::MAX as u128) as i32);
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd record, for the call's duration.
    let n = unsafe { libc::poll(&mut p, 1, ms) };
    if n <= 0 {
        return false;
    }
    let mut byte = 0u8;
    // SAFETY: reads at most one byte into a local; the fd is ours (nobody writes to the pipe,
    // so a readable end means end of file).
    let r = unsafe { libc::read(fd.as_raw_fd(), (&mut byte as *mut u8).cast(), 1) };
    r == 0 || p.revents & (libc::POLLHUP | libc::POLLERR) != 0
}
