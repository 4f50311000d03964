//! A clean interpreter exit while engines, timers or bus engines still run.
//!
//! CPython (3.9 to 3.13) ends a daemon thread that wants the GIL back once finalization has
//! begun with `pthread_exit()`. When that thread is in this extension (a dispatch loop waiting
//! without the GIL, or a handler it called), the forced unwind crosses Rust frames: PyO3's
//! panic guard catches it (glibc aborts with "FATAL: exception not rethrown") or Rust
//! destructors run without the GIL (a segmentation fault). So nothing of ours may still be
//! running, or come back for the GIL, once the interpreter finalizes:
//!
//! - [`stop_all`] runs from `atexit` (registered when the module is imported; `atexit` runs
//!   after the non-daemon threads are joined and before finalization begins). It deactivates
//!   every engine, waits for each running loop to return (a loop finishes the batch in
//!   progress: every message it took from a bus is handled and acknowledged; messages not yet
//!   taken stay on the bus, for the other members of the engine's group if it has one), then
//!   detaches every bus engine no other thread is using, so that no publisher waits for a
//!   process that is gone.
//! - [`detach`] is the only way this crate releases the GIL. Once exit has begun, a thread
//!   other than the exiting one that comes back from a wait parks for ever instead of asking
//!   for the GIL (the process is ending: it never wakes), like Python 3.14 does itself.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::thread::ThreadId;
use std::time::Duration;

use pyo3::prelude::*;

use crate::lock;
use crate::logger;
use crate::source::Shared;

/// Every engine created, with the id of the process that created it (dead entries pruned on
/// insert). A child made by `fork()` inherits the list but not the engines' threads, nor the
/// right to detach their bus rows: its exit leaves them alone.
static ENGINES: Mutex<Vec<(u32, Weak<Shared>)>> = Mutex::new(Vec::new());
/// Set by [`stop_all`] once every loop has returned.
static EXITING: AtomicBool = AtomicBool::new(false);
/// Threads between the end of a wait and taking the GIL back (see [`detach`]).
static RETURNING: AtomicUsize = AtomicUsize::new(0);
/// The thread that runs the exit (it must never park: it finalizes the interpreter).
static EXIT_THREAD: OnceLock<ThreadId> = OnceLock::new();

/// How long [`stop_all`] waits for a loop before it says what it is waiting for.
const SLOW_HANDLER: Duration = Duration::from_secs(2);

/// Records a new engine, so that exit stops it (and detaches it from its bus).
pub(crate) fn watch(shared: &Arc<Shared>) {
    let mut live = lock(&ENGINES);
    live.retain(|(_, w)| w.strong_count() > 0);
    live.push((std::process::id(), Arc::downgrade(shared)));
}

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

/// Stops every running engine before the interpreter finalizes (registered with `atexit`).
#[pyfunction]
#[pyo3(name = "_stop_all_at_exit")]
pub(crate) fn stop_all(py: Python<'_>) {
    let _ = EXIT_THREAD.set(std::thread::current().id());
    let pid = std::process::id();
    let live: Vec<Arc<Shared>> = lock(&ENGINES)
        .drain(..)
        .filter(|(created_by, _)| *created_by == pid)
        .filter_map(|(_, w)| w.upgrade())
        .collect();
    for shared in &live {
        shared.set_active(false);
    }
    for shared in &live {
        // The loop needs the GIL to finish its batch: wait without it.
        if !py.detach(|| shared.wait_loops_done(SLOW_HANDLER)) {
            warn_slow(py, shared);
            py.detach(|| while !shared.wait_loops_done(SLOW_HANDLER) {});
        }
    }
    EXITING.store(true, Ordering::SeqCst);
    for shared in &live {
        if let Some(bs) = shared.source.bus() {
            // Skipped while another thread is in a get() or a blocked put() on this engine:
            // its process table row is then reclaimed as a dead process's.
            bs.close_if_idle();
        }
    }
    // Threads a wait released just before EXITING was set (a put that detaching another
    // engine made room for, say) take the GIL back now, not during finalization.
    while RETURNING.load(Ordering::SeqCst) > 0 {
        py.detach(|| std::thread::sleep(Duration::from_millis(1)));
    }
}

fn warn_slow(py: Python<'_>, shared: &Shared) {
    let bus = shared
        .source
        .bus()
        .map(|b| format!(" on bus \"{}\"", b.name()))
        .unwrap_or_default();
    let text = format!(
        "exit waits for an EventEngine{bus} to finish the handlers of the messages it already \
         took; a handler that never returns holds the exit"
    );
    if let Ok(log) = logger::package_logger(py) {
        let _ = log.call_method1("warning", (text,));
    }
}
