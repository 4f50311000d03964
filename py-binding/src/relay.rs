//! The relay of a bus engine that dispatches (or runs `aget`) on an asyncio loop: a thread
//! that waits on the bus exactly as a dispatch thread does (polling briefly, then sleeping on
//! the bus's futex, without the GIL) and, when a message comes, leaves it held in the
//! subscriber and writes the loop's eventfd (`aio.rs`). It never takes the GIL and never
//! touches a Python object: the loop's thread reads, dispatches and acknowledges the message,
//! and the ones behind it in the same drain without any other thread. A futex cannot be watched
//! by `epoll`, so some thread has to turn the bus's wake-up into a readable descriptor: this
//! one does only that (docs/design.md, "asyncio").

use std::sync::Arc;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

use crate::shared::{LoopGuard, Shared};
use crate::source::Source;

/// Starts the relay of `shared`'s bus engine if it has none yet (an in-process engine needs
/// none: its puts write the loop's fd themselves). It lives until the engine closes or is
/// dropped, parked (holding nothing) while the loop does not wait.
pub(crate) fn start(shared: &Arc<Shared>) -> PyResult<()> {
    let Source::Bus(bus) = &shared.source else {
        return Ok(());
    };
    if !bus.relay_to_start() {
        return Ok(());
    }
    let shared_again = shared.clone();
    let shared = shared.clone();
    std::thread::Builder::new()
        .name("EventEngine-relay".to_owned())
        .spawn(move || {
            let Source::Bus(bus) = &shared.source else {
                return;
            };
            while bus.relay_next() {
                // Counted as a loop while it waits: a stop or the exit wakes it, and the exit
                // waits for it to let go of the bus before detaching.
                let _counted = LoopGuard::enter(&shared);
                bus.relay_wait();
            }
        })
        .map(drop)
        .map_err(|e| {
            if let Source::Bus(bus) = &shared_again.source {
                bus.relay_not_started();
            }
            PyRuntimeError::new_err(format!(
                "cannot start the thread that relays bus wake-ups to the asyncio loop: {e}"
            ))
        })
}
