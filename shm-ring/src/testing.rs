//! Fault injection for process tests. Not part of the API.

use std::sync::atomic::{AtomicU8, Ordering};

/// Where the next publish of this process stops itself: 0 nowhere, else a [`Point`].
static STOP_AT: AtomicU8 = AtomicU8::new(0);

/// A point of the publish path, between the pop of a block or the claim of a position and the
/// commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Point {
    /// Right after the claim, before the addressees are decided and announced.
    Claimed = 1,
    /// After the addressees are announced, before the slot is written and committed.
    Addressed = 2,
    /// Right after a slab block is popped, before it is the ring's.
    Popped = 3,
    /// In a claim, after the run's intent is in the row and before the CAS that takes it.
    Intent = 4,
}

/// The next publish of this process stops it (`SIGSTOP`) at `at`, holding its claimed
/// position: the state of a publisher that a debugger, a swap storm or a stop signal catches
/// between claim and commit. `SIGCONT` resumes it.
pub fn stop_next_publish_at(at: Point) {
    STOP_AT.store(at as u8, Ordering::SeqCst);
}

/// A pause point of the publish path (one relaxed load when no test asked for a stop).
#[inline]
pub(crate) fn pause_point(here: Point) {
    if STOP_AT.load(Ordering::Relaxed) == here as u8
        && STOP_AT
            .compare_exchange(here as u8, 0, Ordering::SeqCst, Ordering::Relaxed)
            .is_ok()
    {
        // SAFETY: raise has no memory-safety preconditions; SIGSTOP stops this process until a
        // SIGCONT, which is what the test asked for.
        unsafe {
            libc::raise(libc::SIGSTOP);
        }
    }
}
