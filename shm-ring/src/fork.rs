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
//! `holder::adopter`); the parent's seat is never touched by the child.

use crate::handle::Inner;
use crate::holder::{adopt, adopted, attached};
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex, PoisonError};

/// The write end of the pipe of the fork in progress (between `before_fork` and the `after_`s).
static WRITE_END: Mutex<Option<OwnedFd>> = Mutex::new(None);

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
            Ok(own) if adopt(&own, &blocks) => adopted(&inner, own),
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
