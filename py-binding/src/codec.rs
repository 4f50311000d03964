//! The encoding of a call's arguments on a bus (docs/wire-format.md): the compact codec when
//! every argument is a primitive, pickle otherwise (its buffers out of band: `oob.rs`); and
//! decoding a received payload back into
//! the `(args, kwargs)` of a handler call.

use pyo3::exceptions::{PyAttributeError, PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyList, PyString, PyTuple, PyType};
use shm_ring::wire::buffers;
use shm_ring::wire::compact::{CompactReader, CompactWriter, Item};
use shm_ring::Codec;

use crate::args::Args;
use crate::held::Keep;
use crate::oob::{self, Pickled, OOB_MIN_BYTES};
use crate::pystr;

static LOADS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// An encoded call.
pub(crate) enum Encoded<'py> {
    /// Compact-encoded, in the buffer given to [`encode`].
    Compact,
    /// A pickle with every buffer in band.
    Pickle(Bound<'py, PyBytes>),
    /// A protocol-5 pickle and the buffers it left out (codec `PickleBuffers`).
    Buffers(Pickled<'py>),
}

/// Encodes `(args, kwargs)`: into `buf` with the compact codec when every argument has a
/// compact form, else with pickle, protocol 5, its buffers out of band (`oob.rs`). An
/// unpicklable argument is an error naming `topic` and `bus`; nothing is sent.
pub(crate) fn encode<'py>(
    py: Python<'py>,
    args: &Args<'_, 'py>,
    buf: &mut Vec<u8>,
    topic: &str,
    bus: &str,
) -> PyResult<Encoded<'py>> {
    buf.clear();
    if encode_compact(args, buf) {
        return Ok(Encoded::Compact);
    }
    match encode_pickle(py, args) {
        Ok(p) if p.buffers.is_empty() => Ok(Encoded::Pickle(p.pickle)),
        Ok(p) => Ok(Encoded::Buffers(p)),
        Err(e) => Err(unpicklable(py, e, topic, bus)),
    }
}

/// Compact-encodes a call when every argument has a compact form; false (buffer in an
/// unspecified state) when pickle is needed.
pub(crate) fn encode_compact(args: &Args<'_, '_>, buf: &mut Vec<u8>) -> bool {
    let Some(mut w) = CompactWriter::begin(buf, args.len(), args.keyword_count()) else {
        return false;
    };
    args.all_positional(|a| write_value(&mut w, a.as_ptr(), true))
        && args.all_keywords(|k, v| {
            // SAFETY: `k` is a live object (the caller's `Bound`).
            match unsafe { exact_str(k.as_ptr()) } {
                Some(key) => w.key(key) && write_value(&mut w, v.as_ptr(), true),
                None => false,
            }
        })
}

/// Writes one value if it is exactly one of the compact types (subclasses such as `IntEnum`
/// go through pickle, which keeps their type). Type tests compare type pointers and values
/// are read with the C API's own accessors: this runs for every argument of every put on a
/// bus, where PyO3's checked casts cost a call into the interpreter each.
fn write_value(w: &mut CompactWriter<'_>, v: *mut ffi::PyObject, seq: bool) -> bool {
    use std::ptr::addr_of_mut;
    // SAFETY (every block below): `v` is a live object (the caller holds it for the call) and
    // the GIL is held; each accessor is called on an object of exactly its type, so it cannot
    // fail, except the int conversion, whose overflow is reported through `overflow`.
    unsafe {
        let t = ffi::Py_TYPE(v);
        if v == ffi::Py_None() {
            w.none();
        } else if t == addr_of_mut!(ffi::PyBool_Type) {
            w.bool(v == ffi::Py_True());
        } else if t == addr_of_mut!(ffi::PyLong_Type) {
            let mut overflow = 0;
            let i = ffi::PyLong_AsLongLongAndOverflow(v, &mut overflow);
            if overflow != 0 {
                return false;
            }
            w.int(i);
        } else if t == addr_of_mut!(ffi::PyFloat_Type) {
            w.float(ffi::PyFloat_AsDouble(v));
        } else if t == addr_of_mut!(ffi::PyUnicode_Type) {
            return pystr::utf8_ptr(v).is_some_and(|s| w.str(s));
        } else if t == addr_of_mut!(ffi::PyBytes_Type) {
            let data = ffi::PyBytes_AsString(v);
            let len = ffi::PyBytes_Size(v) as usize;
            // Large ones travel out of band (one copy instead of two each way).
            return len < OOB_MIN_BYTES
                && w.bytes(std::slice::from_raw_parts(data.cast::<u8>(), len));
        } else if seq && t == addr_of_mut!(ffi::PyTuple_Type) {
            let n = ffi::PyTuple_Size(v);
            return w.sequence(false, n as usize)
                && (0..n).all(|i| write_value(w, ffi::PyTuple_GetItem(v, i), false));
        } else if seq && t == addr_of_mut!(ffi::PyList_Type) {
            // Snapshot the items: the list is not ours and the count is already written (an
            // item's encoding runs no Python code, but the snapshot keeps that a non-issue).
            let items: Vec<Py<PyAny>> = (0..ffi::PyList_Size(v))
                .map(|i| {
                    Py::from_borrowed_ptr(Python::assume_attached(), ffi::PyList_GetItem(v, i))
                })
                .collect();
            return w.sequence(true, items.len())
                && items.iter().all(|x| write_value(w, x.as_ptr(), false));
        } else {
            return false;
        }
    }
    true
}

/// The text of `s` if it is exactly a `str` (valid Unicode), else `None`.
///
/// # Safety
///
/// `s` is a live object and the GIL is held.
unsafe fn exact_str<'a>(s: *mut ffi::PyObject) -> Option<&'a str> {
    // SAFETY: the function's contract.
    unsafe {
        if ffi::Py_TYPE(s) != std::ptr::addr_of_mut!(ffi::PyUnicode_Type) {
            return None;
        }
        pystr::utf8_ptr(s)
    }
}

/// Pickles `(args, kwargs)` (protocol 5, buffers out of band): raises in the caller for
/// anything unpicklable.
fn encode_pickle<'py>(py: Python<'py>, args: &Args<'_, 'py>) -> PyResult<Pickled<'py>> {
    let (args, kwargs) = args.to_objects()?;
    let kw = kwargs.unwrap_or_else(|| PyDict::new(py));
    oob::pickle(py, &PyTuple::new(py, [args.into_any(), kw.into_any()])?)
}

/// The error of a put whose arguments cannot be pickled, naming the topic and the bus. Python's
/// pickle reports some objects (a lambda or a function defined inside another) with an
/// `AttributeError`; the contract is `TypeError` or `pickle.PicklingError`, so the error becomes
/// one of those, with the original as its cause. Other errors (raised by a `__reduce__`, say)
/// pass through unchanged.
fn unpicklable(py: Python<'_>, err: PyErr, topic: &str, bus: &str) -> PyErr {
    let pickling_error = py
        .import("pickle")
        .and_then(|m| m.getattr("PicklingError"))
        .ok()
        .and_then(|t| t.cast_into::<PyType>().ok());
    let is_pickling = pickling_error
        .as_ref()
        .is_some_and(|t| err.is_instance(py, t));
    if !(is_pickling
        || err.is_instance_of::<PyTypeError>(py)
        || err.is_instance_of::<PyAttributeError>(py))
    {
        return err;
    }
    let msg = format!(
        "cannot publish on \"{topic}\" over bus \"{bus}\": the arguments must be picklable \
         ({}: {})",
        err.get_type(py)
            .name()
            .map_or_else(|_| "Exception".to_owned(), |n| n.to_string()),
        err.value(py)
    );
    let new = match pickling_error {
        Some(t) if is_pickling => PyErr::from_type(t, msg),
        _ => PyTypeError::new_err(msg),
    };
    new.set_cause(py, Some(err));
    new
}

/// Decodes a received payload into handler arguments: Raw is one `bytes` argument, Pickle,
/// PickleBuffers and Compact are the `(args, kwargs)` of the call (kwargs `None` when there are none).
///
/// `keep`: the message is still held in the ring by its subscriber, whose buffers may then
/// stay there as views (`held.rs`); `None` makes copies.
pub(crate) fn decode<'py>(
    py: Python<'py>,
    codec: u8,
    payload: &[u8],
    keep: Option<Keep<'_>>,
) -> PyResult<(Bound<'py, PyTuple>, Option<Bound<'py, PyDict>>)> {
    match codec {
        c if c == Codec::Raw as u8 => Ok((PyTuple::new(py, [PyBytes::new(py, payload)])?, None)),
        c if c == Codec::Compact as u8 => decode_compact(py, payload),
        c if c == Codec::Pickle as u8 => {
            let obj = LOADS
                .import(py, "pickle", "loads")?
                .call1((PyBytes::new(py, payload),))?;
            split_call(py, obj)
        }
        c if c == Codec::PickleBuffers as u8 => {
            let layout =
                buffers::parse(payload).map_err(|e| PyValueError::new_err(e.to_string()))?;
            split_call(py, oob::unpickle(py, payload, &layout, keep)?)
        }
        other => Err(PyValueError::new_err(format!(
            "message with unknown codec tag {other} ({} bytes)",
            payload.len()
        ))),
    }
}

/// `(args, kwargs)` from an unpickled object; anything else is passed as the one argument.
fn split_call<'py>(
    py: Python<'py>,
    obj: Bound<'py, PyAny>,
) -> PyResult<(Bound<'py, PyTuple>, Option<Bound<'py, PyDict>>)> {
    if let Ok(pair) = obj.cast::<PyTuple>() {
        if pair.len() == 2 {
            let a = pair.get_item(0)?;
            let k = pair.get_item(1)?;
            if let Ok(kw) = k.cast::<PyDict>() {
                let args = match a.cast::<PyTuple>() {
                    Ok(t) => Some(t.clone()),
                    Err(_) => a.cast::<PyList>().ok().map(|l| l.to_tuple()),
                };
                if let Some(args) = args {
                    let kw = (!kw.is_empty()).then(|| kw.clone());
                    return Ok((args, kw));
                }
            }
        }
    }
    Ok((PyTuple::new(py, [obj])?, None))
}

fn compact_err(e: shm_ring::wire::compact::CompactError) -> PyErr {
    PyValueError::new_err(e.to_string())
}

fn decode_compact<'py>(
    py: Python<'py>,
    payload: &[u8],
) -> PyResult<(Bound<'py, PyTuple>, Option<Bound<'py, PyDict>>)> {
    let (mut r, nargs, nkwargs) = CompactReader::new(payload).map_err(compact_err)?;
    let mut items = Vec::with_capacity(nargs.min(payload.len()));
    for _ in 0..nargs {
        items.push(read_value(py, &mut r)?);
    }
    let args = PyTuple::new(py, items)?;
    let kwargs = if nkwargs > 0 {
        let d = PyDict::new(py);
        for _ in 0..nkwargs {
            let k = r.key().map_err(compact_err)?;
            let v = read_value(py, &mut r)?;
            d.set_item(PyString::new(py, k), v)?;
        }
        Some(d)
    } else {
        None
    };
    if !r.is_done() {
        return Err(PyValueError::new_err("compact payload: trailing bytes"));
    }
    Ok((args, kwargs))
}

fn read_value<'py>(py: Python<'py>, r: &mut CompactReader<'_>) -> PyResult<Bound<'py, PyAny>> {
    Ok(match r.value().map_err(compact_err)? {
        Item::None => py.None().into_bound(py),
        Item::Bool(b) => PyBool::new(py, b).to_owned().into_any(),
        Item::Int(i) => i.into_pyobject(py)?.into_any(),
        Item::Float(f) => PyFloat::new(py, f).into_any(),
        Item::Str(s) => PyString::new(py, s).into_any(),
        Item::Bytes(b) => PyBytes::new(py, b).into_any(),
        Item::Tuple(n) => {
            let v = (0..n)
                .map(|_| read_value(py, r))
                .collect::<PyResult<Vec<_>>>()?;
            PyTuple::new(py, v)?.into_any()
        }
        Item::List(n) => {
            let v = (0..n)
                .map(|_| read_value(py, r))
                .collect::<PyResult<Vec<_>>>()?;
            PyList::new(py, v)?.into_any()
        }
    })
}
