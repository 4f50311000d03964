//! The buffers of a received message as Python objects: read-only views of its slab block,
//! kept in place by a hold (`event_engine_shm::Holder`), when the message is in a block of its
//! own and the subscriber may hold more; otherwise read-only private copies.

use std::ops::Range;
use std::sync::Arc;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use shm_ring::{Holder, Message};

use crate::shmbuf::{shared_buffer, Kind};

/// A received message that may be held: its subscriber's holder and the message itself (the
/// subscriber's current one, not acknowledged yet).
#[derive(Clone, Copy)]
pub(crate) struct Keep<'a> {
    pub(crate) holder: &'a Holder,
    pub(crate) message: &'a Message<'a>,
}

/// One object per range of `payload` (each checked against it; `wire::buffers::parse` made
/// them), given to the unpickler as the message's out-of-band buffers: views of the slab block
/// sharing one hold when `keep` can hold the message, else `bytes` copies. Both export
/// read-only buffers, so a numpy array or `memoryview` made from either is read-only. A
/// handler's `bytes` argument is made from its object by one copy either way.
pub(crate) fn buffer_objects<'py>(
    py: Python<'py>,
    payload: &[u8],
    ranges: &[Range<usize>],
    keep: Option<Keep<'_>>,
) -> PyResult<Vec<Bound<'py, PyAny>>> {
    for r in ranges {
        if r.start > r.end || r.end > payload.len() {
            return Err(PyValueError::new_err(format!(
                "an out-of-band buffer ({}..{}) lies outside its message of {} bytes",
                r.start,
                r.end,
                payload.len()
            )));
        }
    }
    let held = keep
        .filter(|k| std::ptr::eq(k.message.payload.as_ptr(), payload.as_ptr()))
        .and_then(|k| k.holder.hold(k.message).ok())
        .map(Arc::new);
    ranges
        .iter()
        .map(|r| match &held {
            Some(hold) => {
                let ptr = hold.payload()[r.start..].as_ptr().cast_mut();
                // SAFETY: `ptr..ptr + r.len()` lies in the held payload (checked above); the
                // hold, kept by the object, keeps the block mapped and unwritten while it lives.
                unsafe { shared_buffer(py, hold.clone(), ptr, r.len(), Kind::Shared) }
            }
            None => Ok(PyBytes::new(py, &payload[r.clone()]).into_any()),
        })
        .collect()
}

/// Registers the three steps of `event_engine_shm::fork` with `os.register_at_fork`, so that a
/// child forked while this process holds views (or loans) keeps them valid: its parent keeps
/// the blocks until the child has taken them over with a seat of its own.
pub(crate) fn watch_forks(py: Python<'_>) -> PyResult<()> {
    #[pyfunction]
    fn before() {
        shm_ring::fork::before_fork();
    }
    #[pyfunction]
    fn after_in_parent() {
        shm_ring::fork::after_fork_in_parent();
    }
    #[pyfunction]
    fn after_in_child() {
        shm_ring::fork::after_fork_in_child();
    }
    let kw = pyo3::types::PyDict::new(py);
    kw.set_item("before", wrap_pyfunction!(before, py)?)?;
    kw.set_item("after_in_parent", wrap_pyfunction!(after_in_parent, py)?)?;
    kw.set_item("after_in_child", wrap_pyfunction!(after_in_child, py)?)?;
    py.import("os")?
        .getattr("register_at_fork")?
        .call((), Some(&kw))?;
    Ok(())
}
