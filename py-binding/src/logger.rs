//! The package logger: engines and hooks created without an explicit logger
//! log through it, looked up at log time so that `set_logger` reaches them all.

use std::sync::{Mutex, MutexGuard};

use pyo3::prelude::*;

static PACKAGE_LOGGER: Mutex<Option<Py<PyAny>>> = Mutex::new(None);

/// Locks a logger slot. Only clones and swaps happen under it (never Python
/// code), so a poisoned lock still holds a consistent value.
fn slot(m: &Mutex<Option<Py<PyAny>>>) -> MutexGuard<'_, Option<Py<PyAny>>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The package logger (`logging.getLogger("event_engine")` until `set_logger`).
pub(crate) fn package_logger(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    let current = slot(&PACKAGE_LOGGER).as_ref().map(|l| l.clone_ref(py));
    if let Some(l) = current {
        return Ok(l.into_bound(py));
    }
    let logger = py
        .import("logging")?
        .getattr("getLogger")?
        .call1(("event_engine",))?;
    let chosen = slot(&PACKAGE_LOGGER)
        .get_or_insert_with(|| logger.unbind())
        .clone_ref(py);
    Ok(chosen.into_bound(py))
}

/// An object's own logger (kept in `own`) if it has one, else the package logger.
pub(crate) fn resolve<'py>(
    py: Python<'py>,
    own: &Mutex<Option<Py<PyAny>>>,
) -> PyResult<Bound<'py, PyAny>> {
    let own = slot(own).as_ref().map(|l| l.clone_ref(py));
    match own {
        Some(l) => Ok(l.into_bound(py)),
        None => package_logger(py),
    }
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
/// explicit logger logs through it from now on.
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
    replace(&PACKAGE_LOGGER, Some(logger.unbind()));
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
