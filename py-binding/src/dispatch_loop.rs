//! The dispatch loop of an engine (`run()`, on the thread `start()` makes): while the engine is
//! active, the source waits for messages without the GIL and dispatches a batch of them with
//! it, whichever source it is.

use std::sync::Mutex;

use pyo3::prelude::*;

use crate::dispatch::{Dispatcher, Hooks};
use crate::logger;
use crate::shared::{LoopGuard, Shared};
use crate::source::{MessageSource, Receipt};

/// Dispatches messages to `hooks` until the engine is stopped (or its bus fails).
pub(crate) fn run(
    py: Python<'_>,
    shared: &Shared,
    hooks: &Hooks,
    log: &Mutex<Option<Py<PyAny>>>,
) -> PyResult<()> {
    let _running = LoopGuard::enter(shared);
    let mut dispatcher = Dispatcher::new(hooks, log);
    while shared.is_active() {
        let receipt = shared.source.receive(py, &mut dispatcher)?;
        for text in shared.source.news() {
            logger::emit(py, logger::resolve(py, log), "info", text);
        }
        match receipt {
            Receipt::Dispatched(0) => py.check_signals()?,
            Receipt::Dispatched(_) => {}
            Receipt::Ended => break,
            Receipt::Failed(text) => {
                shared.set_active(false);
                logger::resolve(py, log)?.call_method1("error", (text,))?;
                break;
            }
        }
    }
    Ok(())
}
