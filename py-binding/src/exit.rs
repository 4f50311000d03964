//! A clean interpreter exit while engines, timers or bus engines still run.
//!
//! Nothing of ours may still be running, or come back for the GIL, once the interpreter
//! finalizes (see `gil.rs` for why). [`stop_all`] runs from `atexit` (registered when the
//! module is imported; `atexit` runs after the non-daemon threads are joined and before
//! finalization begins). It deactivates every engine, waits for each running loop to return (a
//! loop finishes the batch in progress: every message it took from a bus is handled and
//! acknowledged; messages not yet taken stay on the bus, for the other members of the engine's
//! group if it has one), then detaches every bus engine no other thread is using, so that no
//! publisher waits for a process that is gone.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use pyo3::prelude::*;

use crate::gil;
use crate::lock::lock;
use crate::logger;
use crate::shared::Shared;
use crate::source::MessageSource;

/// Every engine created, with the id of the process that created it (dead entries pruned on
/// insert). A child made by `fork()` inherits the list but not the engines' threads, nor the
/// right to detach their bus rows: its exit leaves them alone.
static ENGINES: Mutex<Vec<(u32, Weak<Shared>)>> = Mutex::new(Vec::new());

/// How long [`stop_all`] waits for a loop before it says what it is waiting for.
const SLOW_HANDLER: Duration = Duration::from_secs(2);

/// Records a new engine, so that exit stops it (and detaches it from its bus).
pub(crate) fn watch(shared: &Arc<Shared>) {
    let mut live = lock(&ENGINES);
    live.retain(|(_, w)| w.strong_count() > 0);
    live.push((std::process::id(), Arc::downgrade(shared)));
}

/// Stops every running engine before the interpreter finalizes (registered with `atexit`).
#[pyfunction]
#[pyo3(name = "_stop_all_at_exit")]
pub(crate) fn stop_all(py: Python<'_>) {
    gil::set_exit_thread();
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
    gil::begin_exit();
    for shared in &live {
        // Skipped while another thread is in a get() or a blocked put() on this engine: its
        // process table row is then reclaimed as a dead process's.
        shared.source.close_if_idle();
    }
    // Views of received buffers and loans still alive (nothing is collected at exit on PyPy,
    // and a script may keep them in globals) give their seats and rows back now, so that the
    // bus holds nothing of this process once it has gone (docs/delivery.md, "Holds").
    py.detach(shm_ring::holds_at_exit);
    // Threads a wait released just before the exit began (a put that detaching another engine
    // made room for, say) take the GIL back now, not during finalization.
    gil::wait_returning(py);
}

fn warn_slow(py: Python<'_>, shared: &Shared) {
    let bus = shared
        .source
        .bus_name()
        .map(|b| format!(" on bus \"{b}\""))
        .unwrap_or_default();
    let text = format!(
        "exit waits for an EventEngine{bus} to finish the handlers of the messages it already \
         took; a handler that never returns holds the exit"
    );
    if let Ok(log) = logger::engine_logger(py) {
        let _ = log.call_method1("warning", (text,));
    }
}
