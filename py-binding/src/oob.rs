//! Out-of-band encoding (codec `PickleBuffers`, docs/wire-format.md): `(args, kwargs)` pickled
//! with protocol 5, every buffer pickle hands out (numpy arrays, `PickleBuffer`s of pandas or
//! Arrow...) kept out of the pickle and copied once, from the caller's memory straight into
//! the slab block; and the reverse, given the buffers' objects.
//!
//! `bytes` and `bytearray` of at least [`OOB_MIN_BYTES`], every `memoryview`, and numpy arrays
//! that are neither C- nor Fortran-contiguous (which numpy itself would pickle in band, a copy
//! more, and which a `PickleBuffer` cannot carry) are pickled as persistent ids naming their
//! type (and format or dtype, and shape): [`persistent_id`] adds the object itself to the
//! buffers, in pickling order, so one sequence of buffers serves both the pickle's own
//! out-of-band buffers and these; the receiver's [`persistent_load`] takes the next buffer of
//! that same sequence and rebuilds the object. That pickler is used only when the call holds one of them (a bounded scan of its
//! arguments, through tuples, lists and dicts); other calls use `pickle.dumps` with a buffer
//! callback, which calls no Python code per object.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyList, PyMemoryView, PyString, PyTuple};
use shm_ring::wire::buffers::{self, Layout};

use crate::held::{buffer_objects, Keep};
use crate::pybuffer::Exported;

/// `bytes` and `bytearray` at least this long travel out of band. Below it, copying them twice
/// (into the pickle or compact buffer, then into the block) costs less than the out-of-band
/// path's fixed cost (a pickler and a persistent id, a few microseconds, and up to 63 bytes
/// of alignment); at 64 KiB one copy saved is worth several microseconds.
pub(crate) const OOB_MIN_BYTES: usize = 64 * 1024;

/// Nodes the scan for such arguments visits at most (a bound, not an expected size).
const SCAN_LIMIT: usize = 4096;
/// Deepest nesting the scan enters.
const SCAN_DEPTH: usize = 8;

static DUMPS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static PICKLER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static UNPICKLER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static BYTES_IO: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static PARTIAL: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static PERSISTENT_ID: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static PERSISTENT_LOAD: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// A call pickled with protocol 5: the pickle and the buffers it left out (empty when it
/// needs none: then it is an ordinary `Pickle` payload).
pub(crate) struct Pickled<'py> {
    pub(crate) pickle: Bound<'py, PyBytes>,
    pub(crate) buffers: Vec<Exported>,
}

impl Pickled<'_> {
    /// The payload's layout on a topic of `topic_len` bytes; `None` if its size overflows.
    pub(crate) fn layout(&self, topic_len: usize) -> Option<Layout> {
        let lens: Vec<usize> = self.buffers.iter().map(Exported::len).collect();
        buffers::plan(topic_len, self.pickle.as_bytes().len(), &lens)
    }
}

/// Writes a payload of `layout` (from [`Pickled::layout`]) into `out`: the header, the pickle,
/// and each buffer copied straight from its exporter's memory.
pub(crate) fn fill(layout: &Layout, pickle: &[u8], buffers: &[Exported], out: &mut [u8]) {
    buffers::write_header(layout, out);
    out[layout.pickle.clone()].copy_from_slice(pickle);
    for (range, b) in layout.buffers.iter().zip(buffers) {
        b.copy_to(&mut out[range.clone()]);
    }
}

/// Pickles `call` (the `(args, kwargs)` tuple) with protocol 5, its buffers out of band.
pub(crate) fn pickle<'py>(py: Python<'py>, call: &Bound<'py, PyTuple>) -> PyResult<Pickled<'py>> {
    let handed = PyList::empty(py);
    let kwargs = PyDict::new(py);
    kwargs.set_item("buffer_callback", handed.getattr("append")?)?;
    let pickle = if needs_persistent_ids(call.as_any(), 0, &mut 0) {
        let file = BYTES_IO.import(py, "io", "BytesIO")?.call0()?;
        let pickler = PICKLER
            .import(py, "pickle", "Pickler")?
            .call((&file, 5), Some(&kwargs))?;
        let id = PARTIAL
            .import(py, "functools", "partial")?
            .call1((persistent_id_fn(py)?, &handed))?;
        pickler.setattr("persistent_id", id)?;
        pickler.call_method1("dump", (call,))?;
        file.call_method0("getvalue")?.cast_into::<PyBytes>()?
    } else {
        DUMPS
            .import(py, "pickle", "dumps")?
            .call((call, 5), Some(&kwargs))?
            .cast_into::<PyBytes>()?
    };
    let buffers = handed
        .iter()
        .map(|b| Exported::get(&b))
        .collect::<PyResult<Vec<_>>>()?;
    Ok(Pickled { pickle, buffers })
}

/// Unpickles a `PickleBuffers` payload: `message` is the payload, `layout` its checked layout.
pub(crate) fn unpickle<'py>(
    py: Python<'py>,
    message: &[u8],
    layout: &Layout,
    keep: Option<Keep<'_>>,
) -> PyResult<Bound<'py, PyAny>> {
    let objects = buffer_objects(py, message, &layout.buffers, keep)?;
    // One iterator: the unpickler's out-of-band buffers and the persistent ids take from it
    // in the order they were written.
    let next = PyList::new(py, objects)?.try_iter()?;
    let file = BYTES_IO
        .import(py, "io", "BytesIO")?
        .call1((PyBytes::new(py, &message[layout.pickle.clone()]),))?;
    let kwargs = PyDict::new(py);
    kwargs.set_item("buffers", &next)?;
    let unpickler = UNPICKLER
        .import(py, "pickle", "Unpickler")?
        .call((file,), Some(&kwargs))?;
    let load = PARTIAL
        .import(py, "functools", "partial")?
        .call1((persistent_load_fn(py)?, &next))?;
    unpickler.setattr("persistent_load", load)?;
    unpickler.call_method0("load")
}

/// True when `obj` is, or holds within tuples, lists and dicts (bounded), an object that
/// travels out of band only through a persistent id.
fn needs_persistent_ids(obj: &Bound<'_, PyAny>, depth: usize, seen: &mut usize) -> bool {
    *seen += 1;
    if *seen > SCAN_LIMIT || depth > SCAN_DEPTH {
        return false;
    }
    if let Ok(t) = obj.cast::<PyTuple>() {
        return t.iter().any(|x| needs_persistent_ids(&x, depth + 1, seen));
    }
    if let Ok(l) = obj.cast::<PyList>() {
        return l.iter().any(|x| needs_persistent_ids(&x, depth + 1, seen));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        return d
            .values()
            .iter()
            .any(|x| needs_persistent_ids(&x, depth + 1, seen));
    }
    matches!(kind_of(obj), Ok(Some(_)))
}

/// What travels as a persistent id.
#[derive(Clone, Copy)]
enum Kind {
    Bytes,
    ByteArray,
    MemoryView,
    /// A numpy array neither C- nor Fortran-contiguous.
    Strided,
}

impl Kind {
    fn tag(self) -> &'static str {
        match self {
            Kind::Bytes => "bytes",
            Kind::ByteArray => "bytearray",
            Kind::MemoryView => "memoryview",
            Kind::Strided => "ndarray",
        }
    }
}

fn kind_of(obj: &Bound<'_, PyAny>) -> PyResult<Option<Kind>> {
    let t = obj.get_type();
    // Exact types (a subclass keeps its type through its own pickling).
    let is_bytes = t.as_type_ptr() == std::ptr::addr_of_mut!(ffi::PyBytes_Type);
    let is_bytearray = t.as_type_ptr() == std::ptr::addr_of_mut!(ffi::PyByteArray_Type);
    if is_bytes {
        let n = obj.cast::<PyBytes>()?.as_bytes().len();
        return Ok((n >= OOB_MIN_BYTES).then_some(Kind::Bytes));
    }
    if is_bytearray {
        let n = obj.cast::<PyByteArray>()?.len();
        return Ok((n >= OOB_MIN_BYTES).then_some(Kind::ByteArray));
    }
    if obj.is_instance_of::<PyMemoryView>() || crate::shmbuf::is_buffer_object(obj) {
        return Ok(Some(Kind::MemoryView));
    }
    if t.name()? == "ndarray" && t.module()? == "numpy" {
        let flags = obj.getattr("flags")?;
        let contiguous = flags.getattr("c_contiguous")?.is_truthy()?
            || flags.getattr("f_contiguous")?.is_truthy()?;
        let has_objects = obj.getattr("dtype")?.getattr("hasobject")?.is_truthy()?;
        return Ok((!contiguous && !has_objects).then_some(Kind::Strided));
    }
    Ok(None)
}

/// The pickler's `persistent_id` (bound to the buffers being collected): for an object that
/// travels out of band this way (see the module notes), adds it to `handed` and returns
/// `(tag,)`, `("memoryview", format, shape)` or `("ndarray", dtype, shape)`; `None` for
/// anything else.
#[pyfunction]
fn persistent_id<'py>(
    handed: &Bound<'py, PyList>,
    obj: &Bound<'py, PyAny>,
) -> PyResult<Option<Bound<'py, PyTuple>>> {
    let py = obj.py();
    let Some(kind) = kind_of(obj)? else {
        return Ok(None);
    };
    let tag = PyString::new(py, kind.tag()).into_any();
    let pid = match kind {
        Kind::Bytes | Kind::ByteArray => PyTuple::new(py, [tag])?,
        Kind::MemoryView => {
            // A loan or a received buffer travels as a memoryview of its bytes.
            let view = PyMemoryView::from(obj)?;
            PyTuple::new(py, [tag, view.getattr("format")?, view.getattr("shape")?])?
        }
        Kind::Strided => PyTuple::new(py, [tag, obj.getattr("dtype")?, obj.getattr("shape")?])?,
    };
    handed.append(obj)?;
    Ok(Some(pid))
}

/// The unpickler's `persistent_load` (bound to the iterator of the message's buffers):
/// rebuilds what [`persistent_id`] wrote from the next buffer (read-only).
#[pyfunction]
fn persistent_load<'py>(
    next: &Bound<'py, PyAny>,
    pid: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = pid.py();
    let bad = || {
        PyValueError::new_err(format!(
            "unknown persistent id in a received pickle: {}",
            pid.repr().map_or_else(|_| "?".into(), |r| r.to_string())
        ))
    };
    let t = pid.cast::<PyTuple>().map_err(|_| bad())?;
    if t.is_empty() {
        return Err(bad());
    }
    let tag = t.get_item(0)?;
    let tag = tag
        .cast::<PyString>()
        .map_err(|_| bad())?
        .to_cow()?
        .into_owned();
    let buf = || {
        next.call_method0("__next__").map_err(|_| {
            PyValueError::new_err("a received pickle refers to more buffers than it carries")
        })
    };
    let builtins = py.import("builtins")?;
    match (tag.as_str(), t.len()) {
        ("bytes", 1) => builtins.getattr("bytes")?.call1((buf()?,)),
        ("bytearray", 1) => builtins.getattr("bytearray")?.call1((buf()?,)),
        ("memoryview", 3) => {
            let view = PyMemoryView::from(&buf()?)?;
            let (format, shape) = (t.get_item(1)?, t.get_item(2)?);
            let flat = format.extract::<String>().is_ok_and(|f| f == "B")
                && shape.cast::<PyTuple>().is_ok_and(|s| s.len() == 1);
            if flat {
                return Ok(view.into_any());
            }
            // A cast the memoryview cannot express (a struct format, say) leaves it as bytes.
            Ok(view
                .call_method1("cast", (format, shape))
                .unwrap_or_else(|_| view.clone().into_any()))
        }
        ("ndarray", 3) => {
            let numpy = py.import("numpy").map_err(|e| {
                let err = PyTypeError::new_err(
                    "a received message holds a numpy array, and numpy cannot be imported here",
                );
                err.set_cause(py, Some(e));
                err
            })?;
            let kwargs = PyDict::new(py);
            kwargs.set_item("dtype", t.get_item(1)?)?;
            numpy
                .call_method("frombuffer", (buf()?,), Some(&kwargs))?
                .call_method1("reshape", (t.get_item(2)?,))
        }
        _ => Err(bad()),
    }
}

fn persistent_id_fn(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    PERSISTENT_ID
        .get_or_try_init(py, || {
            Ok::<_, PyErr>(wrap_pyfunction!(persistent_id, py)?.into_any().unbind())
        })
        .map(|f| f.bind(py))
}

fn persistent_load_fn(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    PERSISTENT_LOAD
        .get_or_try_init(py, || {
            Ok::<_, PyErr>(wrap_pyfunction!(persistent_load, py)?.into_any().unbind())
        })
        .map(|f| f.bind(py))
}
