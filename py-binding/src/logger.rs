//! The package's loggers, named as PyEventEngine names them: the package logger
//! `logging.getLogger("EventEngine")`, its child `EventEngine.Engine` for engines and
//! `EventEngine.Event` for hooks. Engines and hooks created without an explicit logger log
//! through these, looked up at log time so that `set_logger` reaches them all.

use std::sync::{Mutex, MutexGuard};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

/// The logger `set_logger` chose, used by every engine and hook without its own; `None`: the
/// named loggers below.
static CHOSEN_LOGGER: Mutex<Option<Py<PyAny>>> = Mutex::new(None);

/// Name of the package logger (PyEventEngine's).
const PACKAGE_LOGGER_NAME: &str = "EventEngine";
/// Name of the logger engines log on by default (PyEventEngine's).
const ENGINE_LOGGER_NAME: &str = "EventEngine.Engine";
/// Name of the logger hooks log on by default (PyEventEngine's).
const EVENT_LOGGER_NAME: &str = "EventEngine.Event";

static PACKAGE_LOGGER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static ENGINE_LOGGER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static EVENT_LOGGER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Locks a logger slot. Only clones and swaps happen under it (never Python
/// code), so a poisoned lock still holds a consistent value.
fn slot(m: &Mutex<Option<Py<PyAny>>>) -> MutexGuard<'_, Option<Py<PyAny>>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `logging.getLogger(name)`, looked up once (`logging` hands out one logger per name for the
/// life of the process).
fn named<'py>(
    py: Python<'py>,
    cell: &'static PyOnceLock<Py<PyAny>>,
    name: &str,
) -> PyResult<Bound<'py, PyAny>> {
    cell.get_or_try_init(py, || {
        Ok::<_, PyErr>(
            py.import("logging")?
                .getattr("getLogger")?
                .call1((name,))?
                .unbind(),
        )
    })
    .map(|l| l.bind(py).clone())
}

/// The logger `set_logger` chose, or else `logging.getLogger(name)`.
fn chosen_or<'py>(
    py: Python<'py>,
    cell: &'static PyOnceLock<Py<PyAny>>,
    name: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let chosen = slot(&CHOSEN_LOGGER).as_ref().map(|l| l.clone_ref(py));
    match chosen {
        Some(l) => Ok(l.into_bound(py)),
        None => named(py, cell, name),
    }
}

/// The package logger (`logging.getLogger("EventEngine")` unless `set_logger` chose another).
pub(crate) fn package_logger(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    chosen_or(py, &PACKAGE_LOGGER, PACKAGE_LOGGER_NAME)
}

/// The logger of engines without their own (`EventEngine.Engine` unless `set_logger` chose
/// another).
pub(crate) fn engine_logger(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    chosen_or(py, &ENGINE_LOGGER, ENGINE_LOGGER_NAME)
}

/// The logger of hooks without their own (`EventEngine.Event` unless `set_logger` chose another).
pub(crate) fn event_logger(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    chosen_or(py, &EVENT_LOGGER, EVENT_LOGGER_NAME)
}

/// The logger kept in `own` if there is one, else `fallback`'s.
fn own_or<'py>(
    py: Python<'py>,
    own: &Mutex<Option<Py<PyAny>>>,
    fallback: fn(Python<'py>) -> PyResult<Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let own = slot(own).as_ref().map(|l| l.clone_ref(py));
    match own {
        Some(l) => Ok(l.into_bound(py)),
        None => fallback(py),
    }
}

/// An engine's own logger (kept in `own`) if it has one, else [`engine_logger`].
pub(crate) fn resolve<'py>(
    py: Python<'py>,
    own: &Mutex<Option<Py<PyAny>>>,
) -> PyResult<Bound<'py, PyAny>> {
    own_or(py, own, engine_logger)
}

/// A hook's own logger (kept in `own`) if it has one, else [`event_logger`].
pub(crate) fn resolve_event<'py>(
    py: Python<'py>,
    own: &Mutex<Option<Py<PyAny>>>,
) -> PyResult<Bound<'py, PyAny>> {
    own_or(py, own, event_logger)
}

/// Replaces the logger kept in `own` (the old one is released after the lock).
pub(crate) fn replace(own: &Mutex<Option<Py<PyAny>>>, logger: Option<Py<PyAny>>) {
    let old = std::mem::replace(&mut *slot(own), logger);
    drop(old);
}

/// Whether `obj` can serve as a logger (it has the methods this package calls).
pub(crate) fn is_logger(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    for method in LOGGER_METHODS {
        if !obj.hasattr(method)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The methods a logger must have.
const LOGGER_METHODS: [&str; 4] = ["debug", "info", "warning", "error"];

/// Sets the logger of the package: every engine and hook created without an
/// explicit logger logs through it from now on. Given the package logger itself
/// (`logging.getLogger("EventEngine")`), goes back to the default: engines on
/// `EventEngine.Engine`, hooks on `EventEngine.Event`.
#[pyfunction]
pub(crate) fn set_logger(logger: Bound<'_, PyAny>) -> PyResult<()> {
    for method in LOGGER_METHODS {
        if !logger.hasattr(method)? {
            return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                "set_logger() needs a logging.Logger-like object; {} has no {method}()",
                logger.repr()?
            )));
        }
    }
    let package = named(logger.py(), &PACKAGE_LOGGER, PACKAGE_LOGGER_NAME)?;
    let chosen = (!logger.is(&package)).then(|| logger.unbind());
    replace(&CHOSEN_LOGGER, chosen);
    Ok(())
}

/// Logs `text` at `level` (`"debug"`, `"info"`, ...) through `log`. Logging never fails the
/// caller: a logger that cannot be found or that raises is reported as unraisable.
pub(crate) fn emit(py: Python<'_>, log: PyResult<Bound<'_, PyAny>>, level: &str, text: String) {
    if let Err(e) = log.and_then(|l| l.call_method1(level, (text,))) {
        e.write_unraisable(py, None);
    }
}

/// One line for a reap: what it reclaimed on which bus.
pub(crate) fn describe_reap(bus: &str, r: &shm_ring::ReapReport) -> String {
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let mut parts = Vec::new();
    if !r.processes.is_empty() {
        let pids: Vec<String> = r.processes.iter().map(|p| p.pid.to_string()).collect();
        parts.push(format!(
            "{} (pid {})",
            plural(
                r.processes.len(),
                "dead process reclaimed",
                "dead processes reclaimed"
            ),
            pids.join(", ")
        ));
    }
    if r.redelivered > 0 {
        parts.push(format!(
            "{} handed back to its group for redelivery",
            plural(r.redelivered as usize, "message", "messages")
        ));
    }
    if r.blocks_freed > 0 {
        parts.push(plural(
            r.blocks_freed as usize,
            "slab block freed",
            "slab blocks freed",
        ));
    }
    if r.slots_recovered > 0 {
        parts.push(plural(
            r.slots_recovered as usize,
            "unpublished ring slot recovered",
            "unpublished ring slots recovered",
        ));
    }
    if r.redelivery_deferred > 0 {
        parts.push(format!(
            "{} left in its group's backlog until its redelivery list has room",
            plural(r.redelivery_deferred as usize, "message", "messages")
        ));
    }
    if r.groups_expired > 0 || r.backlog_dropped > 0 {
        parts.push(format!(
            "{} dropped after its retention with no member, {} with it",
            plural(r.groups_expired as usize, "group", "groups"),
            plural(r.backlog_dropped as usize, "message", "messages")
        ));
    }
    format!("reaped bus \"{bus}\": {}", parts.join("; "))
}

/// Logs at INFO, through `log`, the reaps this process did since the last call (reaps run
/// inside the bus, under its lock, where no Python code may run; they are logged from here).
pub(crate) fn log_reaps<'py>(py: Python<'py>, log: impl Fn() -> PyResult<Bound<'py, PyAny>>) {
    for (bus, report) in shm_ring::take_reaps() {
        emit(py, log(), "info", describe_reap(&bus, &report));
    }
}
