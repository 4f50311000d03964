//! Holds across `fork` (`docs/delivery.md`, "Holds", "A forked child").
//!
//! A child made by `fork` inherits its parent's views of held blocks (the same addresses in its
//! copy of the mapping) but not its seat: its parent lets its holds go when it likes, and a
//! block it frees may be reused under the child's views. So a fork goes in three steps, which a
//! binding runs around every fork (Python: `os.register_at_fork`):
//!
//! 1. [`before_fork`], in the parent: a pipe; each attachment of this process pins what it holds
//!    on the pipe's read end (`Seat::pin`): a pinned block's seat bit is not cleared (its last
//!    hold's release is deferred) until the child is done.
//! 2. [`after_fork_in_parent`]: the parent closes the write end, so that only the child has it.
//! 3. [`after_fork_in_child`]: for each of its parent's attachments that held something, the
//!    child makes an attachment of its own with a seat of its own, sets that seat's bit on every
//!    inherited block, and then closes the write end. The parent sees the pipe's end of file and
//!    lets its pinned holds go. A child that dies first closes it too; a child that finds no free
//!    seat keeps it open until it exits, so that the parent keeps the blocks for it.
//!
//! From then on an inherited hold dropped in the child gives back the child's own bit (through
//! [`adopter`]); the parent's seat is never touched by the child.

use crate::handle::Inner;
use crate::holder::Seat;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

/// Attachments of this process that have a seat (and those inherited from the parent).
static ATTACHED: Mutex<Vec<Weak<Inner>>> = Mutex::new(Vec::new());
/// In a child: each attachment inherited from the parent (by address) and the child's own one
/// that took its holds over.
static ADOPTED: Mutex<Vec<(usize, Arc<Inner>)>> = Mutex::new(Vec::new());
/// The write end of the pipe of the fork in progress (between `before_fork` and the `after_`s).
static WRITE_END: Mutex<Option<OwnedFd>> = Mutex::new(None);

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

fn attached() -> Vec<Arc<Inner>> {
    let all = match ATTACHED.try_lock() {
        Ok(g) => g,
        Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
        Err(std::sync::TryLockError::WouldBlock) => return Vec::new(),
    };
    all.iter().filter_map(Weak::upgrade).collect()
}

/// Step 1, in the parent just before `fork`: pins every hold of this process's attachments.
pub fn before_fork() {
    let own: Vec<Arc<Inner>> = attached().into_iter().filter(|i| i.is_owner()).collect();
    if own.is_empty() {
        return;
    }
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return;
    }
    // SAFETY: pipe2 just made both descriptors; each is owned once from here.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let read = Arc::new(read);
    for inner in &own {
        inner.seat.pin(&read);
    }
    *WRITE_END.lock().unwrap_or_else(PoisonError::into_inner) = Some(write);
}

/// Step 2, in the parent just after `fork`.
pub fn after_fork_in_parent() {
    drop(
        WRITE_END
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take(),
    );
}

/// Step 3, in the child just after `fork`: takes its parent's holds over (see the module doc).
pub fn after_fork_in_child() {
    let write = WRITE_END
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    // SAFETY: getppid cannot fail.
    let parent = unsafe { libc::getppid() } as u32;
    let mut all_taken = true;
    for inner in attached() {
        if inner.pid != parent {
            continue;
        }
        let (blocks, _) = inner.seat.inherited();
        if blocks.is_empty() {
            continue;
        }
        let own = inner
            .region
            .reattach()
            .map(|region| Arc::new(Inner::new(region, None)));
        match own {
            Ok(own) if Seat::adopt(&own, &blocks) => ADOPTED
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((Arc::as_ptr(&inner) as usize, own)),
            _ => all_taken = false,
        }
    }
    match write {
        Some(w) if !all_taken => {
            // Kept open until this process exits: its parent keeps the blocks for it.
            std::mem::forget(w);
        }
        w => drop(w),
    }
}
