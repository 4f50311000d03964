//! Buses as the package's module functions see them: which bus an engine attaches to (its
//! `bus=`, or the one `init_allocator(with_shm=True)` chose), `inspect_bus`, `unlink_bus`, and
//! the Python exception for each bus error.

use std::sync::Mutex;

use pyo3::exceptions::{PyOSError, PyRuntimeError, PyTimeoutError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use shm_ring::{Bus, BusConfig, BusError};

use crate::errors::Full;
use crate::gil;
use crate::lock::lock;
use crate::logger;

/// The bus `init_allocator(with_shm=True)` chose for this process's engines.
static DEFAULT_BUS: Mutex<Option<(String, BusConfig)>> = Mutex::new(None);

static JSON_LOADS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Maps a bus error to the Python exception a user can act on.
pub(crate) fn bus_err(e: BusError) -> PyErr {
    match e {
        BusError::Full | BusError::Timeout => Full::new_err(format!("bus full: {e}")),
        BusError::Io { .. } | BusError::NoSpace { .. } => PyOSError::new_err(e.to_string()),
        BusError::LockHeld { .. } => PyTimeoutError::new_err(e.to_string()),
        BusError::TableFull { .. } | BusError::Closed | BusError::SubscriberGone => {
            PyRuntimeError::new_err(e.to_string())
        }
        // The bare mismatch says what differs; the user also needs to know the ways out.
        BusError::Mismatch {
            ref name,
            field,
            found,
            ..
        } => {
            let keep = if field == "slab_blocks" {
                format!("init_allocator(capacity={found}) uses the bus as it is; otherwise ")
            } else {
                String::new()
            };
            PyValueError::new_err(format!(
                "{e}: {keep}pick another bus name, or remove this one with \
                 unlink_bus({name:?}) once no process uses it"
            ))
        }
        other => PyValueError::new_err(other.to_string()),
    }
}

/// The error of any call that needs the bus once `close()` detached the engine.
pub(crate) fn closed() -> PyErr {
    PyRuntimeError::new_err(
        "the engine is closed (detached from its bus): create a new engine to re-attach",
    )
}

fn default_config(slab_blocks: Option<u32>) -> BusConfig {
    let mut cfg = BusConfig::default();
    if let Some(n) = slab_blocks {
        cfg.slab_blocks = n;
    }
    cfg
}

/// `init_allocator`: with `with_shm=True`, engines created afterwards in this process attach to
/// bus `name` (default "default"), which is created now if absent; `capacity` sizes its slab.
/// An existing bus of another geometry is a ValueError saying what differs.
#[pyfunction]
#[pyo3(signature = (capacity = 4096, with_shm = false, name = None))]
pub(crate) fn init_allocator(
    py: Python<'_>,
    capacity: i64,
    with_shm: bool,
    name: Option<&str>,
) -> PyResult<()> {
    if !with_shm {
        *lock(&DEFAULT_BUS) = None;
        return Ok(());
    }
    let name = name.unwrap_or("default");
    let blocks = u32::try_from(capacity)
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| {
            PyValueError::new_err(format!(
                "init_allocator capacity must be between 1 and {} slab blocks, got {capacity}",
                u32::MAX
            ))
        })?;
    let cfg = default_config(Some(blocks));
    // Attach once now so that a bad name or another geometry is reported here.
    let bus = gil::detach(py, || Bus::open_or_create(name, &cfg)).map_err(bus_err)?;
    drop(bus);
    *lock(&DEFAULT_BUS) = Some((name.to_owned(), cfg));
    logger::emit(
        py,
        logger::package_logger(py),
        "debug",
        format!("engines created from now on attach to bus \"{name}\" ({blocks} slab blocks)"),
    );
    Ok(())
}

/// A read-only snapshot of bus `name` as a dict (processes, groups, slab classes, counters),
/// taken without joining the bus.
#[pyfunction]
pub(crate) fn inspect_bus<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    let snap = gil::detach(py, || shm_ring::inspect(name)).map_err(bus_err)?;
    let text = serde_json::to_string(&snap)
        .map_err(|e| PyRuntimeError::new_err(format!("cannot serialise the snapshot: {e}")))?;
    JSON_LOADS.import(py, "json", "loads")?.call1((text,))
}

/// Removes the file of bus `name` (attached processes keep their mapping).
#[pyfunction]
pub(crate) fn unlink_bus(name: &str) -> PyResult<()> {
    Bus::unlink(name).map_err(bus_err)
}

/// Opens the bus an engine asked for (`bus=`), or the one `init_allocator` chose; `None` when
/// neither applies (an in-process engine). A bad group name is refused before any bus is
/// opened, so it neither creates a bus file nor is reported as a bad bus name.
pub(crate) fn open(
    py: Python<'_>,
    bus: Option<&str>,
    group: Option<&str>,
) -> PyResult<Option<Bus>> {
    if let Some(g) = group {
        shm_ring::validate_group(g).map_err(|e| PyValueError::new_err(e.to_string()))?;
    }
    let chosen = lock(&DEFAULT_BUS).clone();
    let opened = match (bus, chosen) {
        (Some(name), chosen) => {
            // An explicit bus is taken with whatever geometry it has; created if absent.
            let blocks = chosen.map(|(_, c)| c.slab_blocks);
            let cfg = default_config(blocks);
            gil::detach(py, || match Bus::open(name) {
                Err(BusError::NotFound { .. }) => Bus::open_or_create(name, &cfg),
                other => other,
            })
        }
        (None, Some((name, cfg))) => gil::detach(py, || Bus::open_or_create(&name, &cfg)),
        (None, None) => {
            if let Some(g) = group {
                return Err(PyValueError::new_err(format!(
                    "group={g:?} needs a bus: pass bus=\"name\" or call \
                     init_allocator(with_shm=True) first"
                )));
            }
            return Ok(None);
        }
    };
    opened.map(Some).map_err(bus_err)
}
