//! `event_engine.SharedBuffer`: a buffer object (PEP 3118) over bytes in a bus's shared memory,
//! which keeps alive whatever keeps those bytes in place (a hold on a received message's block,
//! or a loan) for as long as the object or any view of it lives.
//!
//! Made with `PyType_FromSpec` and the buffer slots directly: the package is built for the
//! stable ABI from Python 3.9, where PyO3 offers no buffer protocol, although every supported
//! interpreter fills these slots and `PyBuffer_FillInfo` does the rest. A `memoryview`, a numpy
//! array or a `pickle` loader made from it holds a reference to it through its `Py_buffer`, so
//! the bytes stay put until the last of them is collected, in whatever thread.

use std::any::Any;
use std::ffi::{c_int, c_void};
use std::sync::Arc;

use pyo3::exceptions::PyRuntimeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

/// What keeps the bytes of a [`shared_buffer`] in place.
pub(crate) type Keeper = Arc<dyn Any + Send + Sync>;

/// The object: `PyObject` header, then ours. Zeroed by `PyType_GenericAlloc`, so an instance made
/// any other way (there is no constructor) has no keeper and exports nothing.
#[repr(C)]
struct Object {
    base: ffi::PyObject,
    /// `Box<Keeper>` as a raw pointer, null when empty.
    keeper: *mut Keeper,
    ptr: *mut u8,
    len: ffi::Py_ssize_t,
    writable: c_int,
}

extern "C" {
    // In every CPython since 3.0 and in PyPy; part of the limited API only from 3.11, hence
    // declared here. The view is passed through untouched, so its layout (which differs on
    // PyPy) does not matter here.
    #[cfg_attr(PyPy, link_name = "PyPyBuffer_FillInfo")]
    fn PyBuffer_FillInfo(
        view: *mut c_void,
        o: *mut ffi::PyObject,
        buf: *mut c_void,
        len: ffi::Py_ssize_t,
        readonly: c_int,
        flags: c_int,
    ) -> c_int;
}

unsafe extern "C" fn get_buffer(obj: *mut ffi::PyObject, view: *mut c_void, flags: c_int) -> c_int {
    // SAFETY: called by the interpreter with an instance of our type, laid out as `Object`.
    let o = unsafe { &*(obj as *const Object) };
    if o.keeper.is_null() {
        // SAFETY: the GIL is held in a buffer slot; the message is a static C string.
        unsafe {
            ffi::PyErr_SetString(
                ffi::PyExc_BufferError,
                c"this SharedBuffer holds no memory".as_ptr(),
            )
        };
        return -1;
    }
    // SAFETY: `ptr..ptr + len` stays mapped and in place while `keeper` lives, which the view's
    // reference to `obj` (taken by PyBuffer_FillInfo) guarantees; it fails with BufferError
    // when a writable view of read-only memory is asked for.
    unsafe { PyBuffer_FillInfo(view, obj, o.ptr.cast(), o.len, 1 - o.writable, flags) }
}

unsafe extern "C" fn dealloc(obj: *mut ffi::PyObject) {
    // SAFETY: `obj` is an instance of our heap type being destroyed, laid out as `Object`; no
    // view of it is left (each view holds a reference to it).
    unsafe {
        let o = &mut *(obj as *mut Object);
        if !o.keeper.is_null() {
            drop(Box::from_raw(o.keeper));
            o.keeper = std::ptr::null_mut();
        }
        let tp = ffi::Py_TYPE(obj);
        let free = ffi::PyType_GetSlot(tp, ffi::Py_tp_free);
        let free: ffi::freefunc = std::mem::transmute(free);
        free(obj.cast());
        // Instances of heap types hold a reference to their type.
        ffi::Py_DECREF(tp.cast());
    }
}

/// The two types made with these slots: received buffers, and loans (which `event_engine`
/// makes context managers in Python).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Shared,
    Loan,
}

static SHARED: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static LOAN: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// The type object of `kind` (made on first use; `event_engine` also reads it, to name it and
/// to add the loan's context-manager methods).
pub(crate) fn buffer_type(py: Python<'_>, kind: Kind) -> PyResult<&Bound<'_, PyType>> {
    let (cell, name, doc) = match kind {
        Kind::Shared => (
            &SHARED,
            c"event_engine.SharedBuffer",
            c"Read-only bytes of a received message in the bus's shared memory, kept in place \
              while this object or a view of it lives.",
        ),
        Kind::Loan => (
            &LOAN,
            c"event_engine.Loan",
            c"Writable bytes in the bus's shared memory, lent by EventEngine.loan() to be \
              filled in place and published by put() without a copy.",
        ),
    };
    cell.get_or_try_init(py, || {
        let mut slots = [
            ffi::PyType_Slot {
                slot: ffi::Py_bf_getbuffer,
                pfunc: get_buffer as *mut c_void,
            },
            ffi::PyType_Slot {
                slot: ffi::Py_tp_dealloc,
                pfunc: dealloc as *mut c_void,
            },
            ffi::PyType_Slot {
                slot: ffi::Py_tp_doc,
                pfunc: doc.as_ptr() as *mut c_void,
            },
            ffi::PyType_Slot {
                slot: 0,
                pfunc: std::ptr::null_mut(),
            },
        ];
        let mut spec = ffi::PyType_Spec {
            name: name.as_ptr(),
            basicsize: std::mem::size_of::<Object>() as c_int,
            itemsize: 0,
            flags: ffi::Py_TPFLAGS_DEFAULT as _,
            slots: slots.as_mut_ptr(),
        };
        // SAFETY: the spec and slots are valid for the call (the interpreter copies them).
        let tp = unsafe { ffi::PyType_FromSpec(&mut spec) };
        // SAFETY: a new reference or null with an exception set.
        let tp = unsafe { Bound::from_owned_ptr_or_err(py, tp)? };
        Ok::<_, PyErr>(tp.cast_into::<PyType>()?.unbind())
    })
    .map(|t| t.bind(py))
}

/// An object of `kind` over `ptr..ptr + len`, kept in place by `keeper` until it and every
/// view of it are gone; writable for a loan.
///
/// # Safety
/// `ptr..ptr + len` must stay valid (mapped, and written by nobody else unless a loan's)
/// for as long as `keeper` lives.
pub(crate) unsafe fn shared_buffer<'py>(
    py: Python<'py>,
    keeper: Keeper,
    ptr: *mut u8,
    len: usize,
    kind: Kind,
) -> PyResult<Bound<'py, PyAny>> {
    let writable = kind == Kind::Loan;
    let tp = buffer_type(py, kind)?;
    let len = ffi::Py_ssize_t::try_from(len)
        .map_err(|_| PyRuntimeError::new_err("a shared buffer larger than the address space"))?;
    // SAFETY: allocating an instance of our heap type (zeroed, with a reference to the type).
    let obj = unsafe { ffi::PyType_GenericAlloc(tp.as_ptr().cast(), 0) };
    // SAFETY: a new reference or null with an exception set.
    let obj = unsafe { Bound::from_owned_ptr_or_err(py, obj)? };
    // SAFETY: `obj` is a fresh instance laid out as `Object`, not shared with anyone yet.
    unsafe {
        let o = &mut *(obj.as_ptr() as *mut Object);
        o.keeper = Box::into_raw(Box::new(keeper));
        o.ptr = ptr;
        o.len = len;
        o.writable = c_int::from(writable);
    }
    Ok(obj)
}

/// Whether `obj` is a `SharedBuffer` or a `Loan` (which a put sends as a `memoryview`).
pub(crate) fn is_buffer_object(obj: &Bound<'_, PyAny>) -> bool {
    let py = obj.py();
    [&SHARED, &LOAN]
        .iter()
        .any(|t| t.get(py).is_some_and(|t| obj.get_type().is(t.bind(py))))
}

/// The keeper of `obj` if it is a [`Kind::Loan`] object.
pub(crate) fn loan_keeper(obj: &Bound<'_, PyAny>) -> Option<Keeper> {
    let tp = LOAN.get(obj.py())?;
    if !obj.get_type().is(tp.bind(obj.py())) {
        return None;
    }
    // SAFETY: `obj` is an instance of our type, laid out as `Object`, alive (borrowed).
    let o = unsafe { &*(obj.as_ptr() as *const Object) };
    // SAFETY: a non-null keeper is a live `Box<Keeper>` owned by `obj`.
    (!o.keeper.is_null()).then(|| unsafe { (*o.keeper).clone() })
}
