//! Buses as the package's module functions see them: which bus an engine attaches to (its
//! `bus=`, or the one `init_allocator(with_shm=True)` chose), `inspect_bus`, `unlink_bus`, and
//! the Python exception for each bus error.

use std::sync::Mutex;

use pyo3::exceptions::{PyOSError, PyRuntimeError, PyTimeoutError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use shm_ring::{Bus, BusConfig, BusError};

use crate::errors::Full;
use crate::geometry::{self, Geometry};
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
        // The bare mismatch says what differs (create_bus and init_allocator say it in their
        // keywords' terms, `geometry::mismatch`); the user also needs to know the ways out.
        BusError::Mismatch { ref name, .. } => PyValueError::new_err(format!(
            "{e}: pick another bus name, or remove this one with unlink_bus({name:?}) once no \
             process uses it"
        )),
        other => PyValueError::new_err(other.to_string()),
    }
}

/// The error of `create_bus` or `init_allocator` for bus `name` asked with `want`: a `/dev/shm`
/// without room is the caller's choice of geometry, a ValueError with the sizes, and another
/// geometry is named in the keywords' terms; other bus errors keep their mapping.
fn creation_err(name: &str, want: &BusConfig, e: BusError) -> PyErr {
    match e {
        BusError::NoSpace { .. } => PyValueError::new_err(e.to_string()),
        BusError::Mismatch { field, .. } if field != "layout version" => {
            geometry::mismatch(name, want).unwrap_or_else(|| bus_err(e))
        }
        e => bus_err(e),
    }
}

/// The error of any call that needs the bus once `close()` detached the engine.
pub(crate) fn closed() -> PyErr {
    PyRuntimeError::new_err(
        "the engine is closed (detached from its bus): create a new engine to re-attach",
    )
}

/// `init_allocator`: with `with_shm=True`, engines created afterwards in this process attach to
/// bus `name` (default "default"), which is created now if absent with the geometry the
/// keywords give (`capacity`, the slab size of earlier versions in blocks, stands for
/// `memory`); those engines, and `EventEngine(bus=...)` creating an absent bus, use it. An
/// existing bus of another geometry is a ValueError saying what differs.
#[pyfunction]
#[pyo3(signature = (
    capacity = None, with_shm = false, name = None, *, slots = 4096, max_message = 1 << 20,
    memory = None, max_processes = 256, group_retention = 60.0
))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn init_allocator(
    py: Python<'_>,
    capacity: Option<i64>,
    with_shm: bool,
    name: Option<&str>,
    slots: i64,
    max_message: i64,
    memory: Option<i64>,
    max_processes: i64,
    group_retention: f64,
) -> PyResult<()> {
    if !with_shm {
        *lock(&DEFAULT_BUS) = None;
        return Ok(());
    }
    let name = name.unwrap_or("default");
    let mut geometry = Geometry {
        slots,
        max_message,
        memory,
        max_processes,
        group_retention,
    };
    if let Some(capacity) = capacity {
        let blocks = u32::try_from(capacity)
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| {
                PyValueError::new_err(format!(
                    "init_allocator capacity must be between 1 and {} slab blocks, got {capacity}",
                    u32::MAX
                ))
            })?;
        if memory.is_some() {
            return Err(PyValueError::new_err(
                "init_allocator takes capacity or memory, not both: memory is the slab's size \
                 in bytes, capacity the older way to give it (4 KiB a block)",
            ));
        }
        let max = u32::try_from(max_message).unwrap_or(1);
        geometry.memory = Some(geometry::memory_of_capacity(blocks.into(), max) as i64);
    }
    let cfg = geometry.config()?;
    // Attach once now so that a bad name or another geometry is reported here.
    let bus = gil::detach(py, || Bus::open_or_create(name, &cfg))
        .map_err(|e| creation_err(name, &cfg, e))?;
    let memory = bus.config().slab_memory.unwrap_or_default();
    drop(bus);
    *lock(&DEFAULT_BUS) = Some((name.to_owned(), cfg));
    logger::emit(
        py,
        logger::package_logger(py),
        "debug",
        format!(
            "engines created from now on attach to bus \"{name}\" ({} slab memory)",
            shm_ring::human_bytes(memory)
        ),
    );
    Ok(())
}

/// `create_bus`: creates bus `name` with the given geometry, or attaches to an existing one of
/// the same geometry; another geometry is a ValueError naming every keyword that differs.
#[pyfunction]
#[pyo3(signature = (
    name, *, slots = 4096, max_message = 1 << 20, memory = None, max_processes = 256,
    group_retention = 60.0
))]
pub(crate) fn create_bus(
    py: Python<'_>,
    name: &str,
    slots: i64,
    max_message: i64,
    memory: Option<i64>,
    max_processes: i64,
    group_retention: f64,
) -> PyResult<()> {
    let cfg = Geometry {
        slots,
        max_message,
        memory,
        max_processes,
        group_retention,
    }
    .config()?;
    let bus = gil::detach(py, || Bus::open_or_create(name, &cfg))
        .map_err(|e| creation_err(name, &cfg, e))?;
    drop(bus);
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
            // An explicit bus is taken with whatever geometry it has; created if absent, with
            // the geometry init_allocator was given.
            let cfg = chosen.map(|(_, c)| c).unwrap_or_default();
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
