//! `MessagePayload`: a message as Python sees it (topic, args, kwargs, seq_id),
//! returned by `EventEngine.get()` and accepted by `EventHook.trigger()`.

use pyo3::exceptions::PyTypeError;
use pyo3::intern;
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

/// `kwargs` (copied) with `topic` added, unless the caller's kwargs already hold a `topic`:
/// what a handler that takes `topic=` is called with.
pub(crate) fn kwargs_with_topic<'py>(
    py: Python<'py>,
    topic: Option<&Bound<'py, PyAny>>,
    kwargs: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyDict>> {
    let kw = match kwargs {
        Some(k) => k.copy()?,
        None => PyDict::new(py),
    };
    if let Some(topic) = topic {
        if !kw.contains(intern!(py, "topic"))? {
            kw.set_item(intern!(py, "topic"), topic)?;
        }
    }
    Ok(kw)
}

#[pymethods]
impl PyMessagePayload {
    /// `MessagePayload(topic, args, kwargs)` as PyEventEngine builds it; every argument may
    /// be omitted (and set later). `alloc` is accepted for the reference's signature.
    #[new]
    #[pyo3(signature = (topic = None, args = None, kwargs = None, *, alloc = false))]
    fn new(
        topic: Option<&Bound<'_, PyAny>>,
        args: Option<&Bound<'_, PyAny>>,
        kwargs: Option<&Bound<'_, PyAny>>,
        alloc: bool,
    ) -> PyResult<Self> {
        let _ = alloc;
        let wrong = |what: &str, expected: &str, got: &Bound<'_, PyAny>| -> PyResult<PyErr> {
            Ok(PyTypeError::new_err(format!(
                "MessagePayload {what} must be {expected} or None, got {}",
                got.get_type().name()?
            )))
        };
        let topic = match topic {
            None => None,
            Some(t) => match t.cast::<PyTopic>() {
                Ok(t) => Some(t.clone().unbind()),
                Err(_) => return Err(wrong("topic", "a Topic", t)?),
            },
        };
        let args = match args {
            None => None,
            Some(a) => match a.cast::<PyTuple>() {
                Ok(a) => Some(a.clone().unbind()),
                Err(_) => return Err(wrong("args", "a tuple", a)?),
            },
        };
        let kwargs = match kwargs {
            None => None,
            Some(k) => match k.cast::<PyDict>() {
                Ok(k) => Some(k.clone().unbind()),
                Err(_) => return Err(wrong("kwargs", "a dict", k)?),
            },
        };
        Ok(PyMessagePayload {
            topic,
            args,
            kwargs,
            seq_id: 0,
        })
    }

    /// A copy of `kwargs` with `topic` added (a `topic` already in `kwargs` is kept): the
    /// keyword arguments of a handler that takes `topic=`.
    #[getter]
    fn kwargs_with_topic<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let topic = self.topic.as_ref().map(|t| t.bind(py).as_any().clone());
        let kwargs = self.kwargs.as_ref().map(|k| k.bind(py).clone());
        kwargs_with_topic(py, topic.as_ref(), kwargs.as_ref())
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
