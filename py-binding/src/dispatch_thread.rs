//! Which engine's dispatch loop runs on the calling thread: a put made by one of that engine's
//! handlers must never wait on the engine's own consumption (docs/delivery.md, "Puts from a
//! handler"). Engines are told apart by an id (the address of their shared state); only a put
//! that would have to wait asks, so a put that finds room pays nothing for it.

use std::cell::Cell;

thread_local! {
    /// The id of the engine whose loop runs on this thread (0: none).
    static DISPATCHING: Cell<usize> = const { Cell::new(0) };
}

/// Marks the calling thread as running the loop of engine `id` until dropped.
pub(crate) struct Dispatching {
    outer: usize,
}

impl Dispatching {
    pub(crate) fn enter(id: usize) -> Self {
        Dispatching {
            outer: DISPATCHING.with(|d| d.replace(id)),
        }
    }
}

impl Drop for Dispatching {
    fn drop(&mut self) {
        DISPATCHING.with(|d| d.set(self.outer));
    }
}

/// Whether the calling thread runs the loop of engine `id`.
pub(crate) fn is_dispatching(id: usize) -> bool {
    DISPATCHING.with(|d| d.get() == id)
}
