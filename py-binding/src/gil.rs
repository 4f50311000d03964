//! Releasing the GIL, and never taking it back once the interpreter is exiting.
//!
//! CPython (3.9 to 3.13) ends a daemon thread that wants the GIL back once finalization has
//! begun with `pthread_exit()`. When that thread is in this extension (a dispatch loop waiting
//! without the GIL, or a handler it called), the forced unwind crosses Rust frames: PyO3's
//! panic guard catches it (glibc aborts with "FATAL: exception not rethrown") or Rust
//! destructors run without the GIL (a segmentation fault). [`detach`] is therefore the only way
//! this crate releases the GIL: once exit has begun ([`begin_exit`], called by `exit.rs` after
//! every loop has returned), a thread other than the exiting one that comes back from a wait
//! parks for ever instead of asking for the GIL (the process is ending: it never wakes), like
//! Python 3.14 does itself.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::thread::ThreadId;
use std::time::Duration;

use pyo3::prelude::*;

/// Set by [`begin_exit`].
static EXITING: AtomicBool = AtomicBool::new(false);
/// Threads between the end of a wait and taking the GIL back (see [`detach`]).
static RETURNING: AtomicUsize = AtomicUsize::new(0);
/// The thread that runs the exit (it must never park: it finalizes the interpreter).
static EXIT_THREAD: OnceLock<ThreadId> = OnceLock::new();

/// `py.detach(f)`, except that once exit has begun a thread other than the exiting one never
/// takes the GIL again (see the module notes).
pub(crate) fn detach<T, F>(py: Python<'_>, f: F) -> T
where
    F: Send + FnOnce() -> T,
    T: Send,
{
    let out = py.detach(|| {
        let out = f();
        // Counted before EXITING is read, and EXITING is set before the count is read: either
        // this thread sees the exit and parks, or the exit sees it and waits for it to have
        // taken the GIL back (finalization must not find it waiting for the GIL).
        RETURNING.fetch_add(1, Ordering::SeqCst);
        if EXITING.load(Ordering::SeqCst) && EXIT_THREAD.get() != Some(&std::thread::current().id())
        {
            RETURNING.fetch_sub(1, Ordering::SeqCst);
            loop {
                std::thread::park();
            }
        }
        out
    });
    RETURNING.fetch_sub(1, Ordering::SeqCst);
    out
}

/// Names the calling thread as the one that finalizes the interpreter.
pub(crate) fn set_exit_thread() {
    let _ = EXIT_THREAD.set(std::thread::current().id());
}

/// From now on threads coming back from [`detach`] park instead of taking the GIL.
pub(crate) fn begin_exit() {
    EXITING.store(true, Ordering::SeqCst);
}

/// Waits (GIL released) until threads that a wait released just before [`begin_exit`] have
/// taken the GIL back, so that none of them is still asking for it during finalization.
pub(crate) fn wait_returning(py: Python<'_>) {
    while RETURNING.load(Ordering::SeqCst) > 0 {
        py.detach(|| std::thread::sleep(Duration::from_millis(1)));
    }
}
