//! The Python objects a received message's out-of-band buffers are given to the unpickler as
//! (`pickle.loads(..., buffers=...)`): numpy arrays, memoryviews and the like are rebuilt over
//! them, read-only.

use std::ops::Range;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// One read-only object per range of `message` (ranges checked by `wire::buffers::parse`):
/// for now each a `bytes` copy of its range, so the objects outlive the message's slot. A
/// handler's `bytes` argument is that object itself, with no further copy.
pub(crate) fn buffer_objects<'py>(
    py: Python<'py>,
    message: &[u8],
    ranges: &[Range<usize>],
) -> PyResult<Vec<Bound<'py, PyAny>>> {
    ranges
        .iter()
        .map(|r| {
            let bytes = message.get(r.clone()).ok_or_else(|| {
                PyValueError::new_err("an out-of-band buffer lies outside its message")
            })?;
            Ok(PyBytes::new(py, bytes).into_any())
        })
        .collect()
}
