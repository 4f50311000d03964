//! `MessagePayload`: a message as Python sees it (topic, args, kwargs, seq_id),
//! returned by `EventEngine.get()` and accepted by `EventHook.trigger()`.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use crate::topic::PyTopic;

/// One message: its topic, positional and keyword arguments and sequence id.
#[pyclass(name = "MessagePayload", module = "event_engine")]
pub struct PyMessagePayload {
    /// The topic the message was published on.
    #[pyo3(get, set)]
    pub(crate) topic: Option<Py<PyTopic>>,
    /// Positional arguments for the handlers.
    #[pyo3(get, set)]
    pub(crate) args: Option<Py<PyTuple>>,
    /// Keyword arguments for the handlers.
    #[pyo3(get, set)]
    pub(crate) kwargs: Option<Py<PyDict>>,
    /// Sequence number given by the engine at publish time.
    #[pyo3(get, set)]
    pub(crate) seq_id: u64,
}

#[pymethods]
impl PyMessagePayload {
    #[new]
    #[pyo3(signature = (alloc = false))]
    fn new(alloc: bool) -> Self {
        let _ = alloc;
        PyMessagePayload {
            topic: None,
            args: None,
            kwargs: None,
            seq_id: 0,
        }
    }

    /// Always True: the payload owns its topic, args and kwargs.
    #[getter]
    fn owner(&self) -> bool {
        true
    }

    /// Always True (see `owner`).
    #[getter]
    fn args_owner(&self) -> bool {
        true
    }

    /// Always True (see `owner`).
    #[getter]
    fn kwargs_owner(&self) -> bool {
        true
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let topic = match &self.topic {
            Some(t) => format!("\"{}\"", t.borrow(py).inner.literal()),
            None => "NO_TOPIC".to_owned(),
        };
        let args = match &self.args {
            Some(a) => a.bind(py).repr()?.to_string(),
            None => "None".to_owned(),
        };
        let kwargs = match &self.kwargs {
            Some(k) => k.bind(py).repr()?.to_string(),
            None => "None".to_owned(),
        };
        Ok(format!(
            "<MessagePayload {topic}>(seq_id={}, args={args}, kwargs={kwargs})",
            self.seq_id
        ))
    }
}
