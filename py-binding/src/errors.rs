//! Python exceptions of the package (`Full`, `Empty`) and the conversion of
//! engine-core errors into the Python exception a user expects.

use engine_core::TopicError;
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyKeyError, PyValueError};
use pyo3::PyErr;

create_exception!(
    event_engine,
    Full,
    PyException,
    "Raised when the queue is full and a put could not wait (block=False) or timed out."
);
create_exception!(
    event_engine,
    Empty,
    PyException,
    "Raised when the queue is empty and a get could not wait (block=False) or timed out."
);

/// Maps a topic error to `ValueError` (bad topic text, unformattable topic) or
/// `KeyError` (a wildcard name missing from `format()`'s arguments).
pub(crate) fn topic_err(err: TopicError) -> PyErr {
    match err {
        TopicError::MissingKey { name } => PyKeyError::new_err(name),
        other => PyValueError::new_err(other.to_string()),
    }
}
