//! `EventEngine.put` on the vectorcall protocol (`METH_FASTCALL | METH_KEYWORDS`).
//!
//! PyO3 gives a method that calling convention only where the limited C API declares it
//! (Python 3.10 on). Our abi3 build for 3.9 got `METH_VARARGS` instead, and every put paid
//! for a tuple and a dict built by the interpreter, then a second tuple, a second dict and a
//! `bytes` per keyword name built by PyO3's argument parsing, about half the cost of an
//! in-process put. CPython has called `METH_FASTCALL | METH_KEYWORDS` methods since 3.7 with
//! the signature below, unchanged since, and 3.10 made it part of the stable ABI; so at import
//! `put` is replaced by the same method taking the call's argument array (`install`). PyO3's
//! `put` stays declared in `engine.rs`: it is the one PyPy's build (not abi3, already on
//! fastcall) uses, and this one parses the same signature with the same errors.
//!
//! A put here borrows the arguments where they are ([`ArrayArgs`]): a bus encodes them from
//! the array, the in-process queue builds the handler's tuple and dict once.

use std::ffi::CStr;
use std::os::raw::c_int;

use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::impl_::extract_argument::argument_extraction_error;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple, PyType};

use crate::args::{Args, ArrayArgs};
use crate::engine::{PutOptions, PyEventEngine};
use crate::pystr;

/// `METH_FASTCALL` (0x0080, CPython 3.7 on), which pyo3-ffi declares only for 3.10 on.
const METH_FASTCALL: c_int = 0x0080;

/// A `METH_FASTCALL | METH_KEYWORDS` function (pyo3-ffi declares the type for 3.10 on only).
type FastCallWithKeywords = unsafe extern "C" fn(
    *mut ffi::PyObject,
    *const *mut ffi::PyObject,
    ffi::Py_ssize_t,
    *mut ffi::PyObject,
) -> *mut ffi::PyObject;

/// `put`'s doc, with the text signature `inspect.signature` reads (as PyO3 writes it).
const DOC: &CStr = ffi::c_str!(
    "put($self, topic, *args, block=True, max_spin=65535, timeout=0.0, **kwargs)\n--\n\n\
     Publishes a message: `topic` (exact) with `*args` and `**kwargs`."
);

/// Replaces `cls.put` (PyO3's) with the vectorcall one.
pub(crate) fn install(cls: &Bound<'_, PyType>) -> PyResult<()> {
    // Lives as long as the process: the method descriptor keeps a pointer to it.
    let def = Box::leak(Box::new(ffi::PyMethodDef {
        ml_name: ffi::c_str!("put").as_ptr(),
        ml_meth: ffi::PyMethodDefPointer {
            // SAFETY: a C function pointer stored in the union as C does with a cast; the
            // interpreter calls it with the signature `ml_flags` names, which is `put`'s.
            PyCFunctionWithKeywords: unsafe {
                std::mem::transmute::<FastCallWithKeywords, ffi::PyCFunctionWithKeywords>(put)
            },
        },
        ml_flags: METH_FASTCALL | ffi::METH_KEYWORDS,
        ml_doc: DOC.as_ptr(),
    }));
    // SAFETY: `cls` is a live type object and `def` a valid method definition that outlives it
    // (leaked above); the result is a new reference or null with an exception set.
    let descr = unsafe {
        Bound::from_owned_ptr_or_err(cls.py(), ffi::PyDescr_NewMethod(cls.as_type_ptr(), def))
    }?;
    cls.setattr("put", descr)
}

/// The C entry point: `self`, the positional arguments, then the keyword values named by
/// `kwnames` (a tuple, or null when there are none) in one array.
unsafe extern "C" fn put(
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: called by the interpreter with the GIL held, with the arguments of a
    // METH_FASTCALL | METH_KEYWORDS call; the trampoline turns a panic into an exception.
    unsafe { pyo3::impl_::trampoline::fastcall_with_keywords(slf, args, nargs, kwnames, put_body) }
}

/// # Safety
///
/// The arguments of a `METH_FASTCALL | METH_KEYWORDS` call of a method descriptor: `slf` is an
/// instance of the descriptor's class, `args` holds `nargs` positional values followed by one
/// value per name of `kwnames` (a tuple of `str`, or null), all live for the call.
unsafe fn put_body(
    py: Python<'_>,
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> PyResult<*mut ffi::PyObject> {
    // SAFETY (all three): the function's contract.
    let slf = unsafe { Borrowed::from_ptr(py, slf) };
    let names = unsafe { Borrowed::from_ptr_or_opt(py, kwnames) };
    let names = names
        .map(|n| n.to_owned().cast_into::<PyTuple>())
        .transpose()?;
    let nargs = nargs as usize;
    let nkw = names.as_ref().map_or(0, |n| n.len());
    let all: &[*mut ffi::PyObject] = if nargs + nkw == 0 {
        &[]
    } else {
        unsafe { std::slice::from_raw_parts(args, nargs + nkw) }
    };
    let (positional, values) = all.split_at(nargs);
    let engine = slf.cast::<PyEventEngine>()?;
    let item = |p: *mut ffi::PyObject| {
        // SAFETY: every pointer of the array is a live object for the call.
        unsafe { Borrowed::from_ptr(py, p) }
    };

    let mut topic = positional.first().map(|&p| item(p));
    // `put`'s own keywords, converted once the topic is known (PyO3's order of errors).
    let (mut block, mut max_spin, mut timeout) = (None, None, None);
    // Keywords that are `put`'s own, not the message's (a bit per index).
    let mut skip = 0u64;
    // A call with more keywords than the mask has bits takes the message's into a dict.
    let overflow = (nkw > ArrayArgs::MAX_KEYWORDS).then(|| PyDict::new(py));
    if let Some(names) = &names {
        let own = OwnNames::get(py);
        for (i, &v) in values.iter().enumerate() {
            // SAFETY: `names` is the call's tuple of `nkw` names and `i < nkw`; the item is
            // borrowed from it for the call.
            let name = unsafe { ffi::PyTuple_GetItem(names.as_ptr(), i as ffi::Py_ssize_t) };
            let slot = match own.which(name) {
                Some(Own::Block) => &mut block,
                Some(Own::MaxSpin) => &mut max_spin,
                Some(Own::Timeout) => &mut timeout,
                Some(Own::Topic) if topic.is_none() => &mut topic,
                Some(Own::Topic) => {
                    return Err(PyTypeError::new_err(
                        "EventEngine.put() got multiple values for argument 'topic'",
                    ))
                }
                None => {
                    if let Some(d) = &overflow {
                        // SAFETY: as above; `name` is a live str of the call.
                        d.set_item(unsafe { Borrowed::from_ptr(py, name) }, item(v))?;
                    }
                    continue;
                }
            };
            *slot = Some(item(v));
            if i < ArrayArgs::MAX_KEYWORDS {
                skip |= 1 << i;
            }
        }
    }
    let Some(topic) = topic else {
        return Err(PyTypeError::new_err(
            "EventEngine.put() missing 1 required positional argument: 'topic'",
        ));
    };
    let mut options = PutOptions::default();
    if let Some(v) = block {
        options.block = extract(&v, "block")?;
    }
    if let Some(v) = max_spin {
        options.max_spin = extract(&v, "max_spin")?;
    }
    if let Some(v) = timeout {
        options.timeout = extract(&v, "timeout")?;
    }
    let positional = positional.get(1..).unwrap_or(&[]);
    let message_args = match overflow {
        None => {
            // SAFETY: the function's contract; `names` has one item per value.
            Args::Array(unsafe { ArrayArgs::new(py, positional, names.as_ref(), values, skip) })
        }
        Some(kwargs) => {
            let args = PyTuple::new(py, positional.iter().map(|&p| item(p)))?;
            let kwargs = (!kwargs.is_empty()).then_some(kwargs);
            Args::Objects { args, kwargs }
        }
    };
    engine.get().enqueue(py, &topic, message_args, options)?;
    Ok(py.None().into_ptr())
}

/// `put`'s own keyword arguments (the rest are the message's).
#[derive(Clone, Copy)]
enum Own {
    Block,
    MaxSpin,
    Timeout,
    Topic,
}

/// The names of `put`'s own keywords as interned strings. The interpreter passes a call's
/// keyword names as they appear in the caller's code, interned, so most are told apart from
/// these by address, with no look at their text.
struct OwnNames<'a, 'py> {
    names: [(&'a Bound<'py, PyString>, Own, &'static str); 4],
}

impl<'a, 'py> OwnNames<'a, 'py> {
    fn get(py: Python<'py>) -> Self {
        OwnNames {
            names: [
                (intern!(py, "block"), Own::Block, "block"),
                (intern!(py, "max_spin"), Own::MaxSpin, "max_spin"),
                (intern!(py, "timeout"), Own::Timeout, "timeout"),
                (intern!(py, "topic"), Own::Topic, "topic"),
            ],
        }
    }

    /// Which of `put`'s keywords `name` (a live object, a keyword name of the call) is.
    fn which(&self, name: *mut ffi::PyObject) -> Option<Own> {
        if let Some((_, own, _)) = self.names.iter().find(|(n, _, _)| n.as_ptr() == name) {
            return Some(*own);
        }
        // A name built at run time (`**kwargs` of a dict, whose keys may be `str` subclasses)
        // may be equal without being the same object. Only a `str` of one of the lengths can be.
        // SAFETY: `name` is live and the GIL is held (`self` holds objects of this thread); a
        // lone surrogate gives no text, and is no name of ours.
        let text = unsafe {
            if ffi::PyUnicode_Check(name) == 0
                || !matches!(ffi::PyUnicode_GetLength(name), 5 | 7 | 8)
            {
                return None;
            }
            pystr::utf8_ptr(name)?
        };
        self.names
            .iter()
            .find(|(_, _, s)| *s == text)
            .map(|(_, own, _)| *own)
    }
}

/// One of `put`'s own keyword arguments, with PyO3's error for a wrong type.
fn extract<'a, 'py, T>(value: &Borrowed<'a, 'py, PyAny>, name: &str) -> PyResult<T>
where
    T: FromPyObject<'a, 'py>,
{
    value
        .extract::<T>()
        .map_err(|e| argument_extraction_error(value.py(), name, e.into()))
}
