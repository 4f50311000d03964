//! The package logger: engines and hooks created without an explicit logger
//! log through it, looked up at log time so that `set_logger` reaches them all.

use std::sync::Mutex;

use pyo3::prelude::*;

static PACKAGE_LOGGER: Mutex<Option<Py<PyAny>>> = Mutex::new(None);

/// The package logger (`logging.getLogger("event_engine")` until `set_logger`).
pub(crate) fn package_logger(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    if let Some(l) = PACKAGE_LOGGER
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
    {
        return Ok(l.bind(py).clone());
    }
    let logger = py
        .import("logging")?
        .getattr("getLogger")?
        .call1(("event_engine",))?;
    let mut guard = PACKAGE_LOGGER.lock().unwrap_or_else(|e| e.into_inner());
    Ok(guard
        .get_or_insert_with(|| logger.unbind())
        .bind(py)
        .clone())
}

/// An object's own logger if it has one, else the package logger.
pub(crate) fn resolve<'py>(
    py: Python<'py>,
    own: &Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    match own {
        Some(l) => Ok(l.bind(py).clone()),
        None => package_logger(py),
    }
}

/// Sets the logger of the package: every engine and hook created without an
/// explicit logger logs through it from now on.
#[pyfunction]
pub(crate) fn set_logger(logger: Bound<'_, PyAny>) -> PyResult<()> {
    for method in ["debug", "info", "warning", "error"] {
        if !logger.hasattr(method)? {
            return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                "set_logger() needs a logging.Logger-like object; {} has no {method}()",
                logger.repr()?
            )));
        }
    }
    *PACKAGE_LOGGER.lock().unwrap_or_else(|e| e.into_inner()) = Some(logger.unbind());
    Ok(())
}
