//! The UTF-8 text of a Python `str`, borrowed from the object: no copy, no allocation.
//!
//! PyO3 offers this (`to_str`) only where the C API has it, from Python 3.10 on, so on our
//! abi3 build for 3.9 its `to_cow` copies every string twice (into a `bytes`, then a `String`).
//! `PyUnicode_AsUTF8AndSize` exists in every CPython 3 (public since 3.3, in the stable ABI
//! since 3.10 with the same signature); an ASCII string's text is returned in place, another's
//! is encoded once and cached in the object by CPython.

use pyo3::prelude::*;
use pyo3::types::PyString;

/// `s`'s text; an error for a string that is not valid Unicode (a lone surrogate).
#[cfg(all(Py_LIMITED_API, not(Py_3_10)))]
#[inline]
pub(crate) fn utf8<'a>(s: &'a Bound<'_, PyString>) -> PyResult<&'a str> {
    use pyo3::ffi;

    extern "C" {
        fn PyUnicode_AsUTF8AndSize(
            unicode: *mut ffi::PyObject,
            size: *mut ffi::Py_ssize_t,
        ) -> *const std::os::raw::c_char;
    }
    let mut len: ffi::Py_ssize_t = 0;
    // SAFETY: `s` is a live `str` (a `Bound` holds a reference) and the call is made attached
    // to the interpreter (`s` proves it).
    let data = unsafe { PyUnicode_AsUTF8AndSize(s.as_ptr(), &mut len) };
    if data.is_null() {
        return Err(PyErr::fetch(s.py()));
    }
    // SAFETY: on success CPython returns `len` bytes of UTF-8 owned by the string object and
    // kept until it is destroyed; the returned borrow of `s` keeps the object alive meanwhile.
    let bytes = unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len as usize) };
    // SAFETY: CPython's UTF-8 encoder wrote them, and it refuses lone surrogates (the null
    // return above), so they are valid UTF-8.
    Ok(unsafe { std::str::from_utf8_unchecked(bytes) })
}

/// `s`'s text; an error for a string that is not valid Unicode (a lone surrogate).
#[cfg(not(all(Py_LIMITED_API, not(Py_3_10))))]
#[inline]
pub(crate) fn utf8<'a>(s: &'a Bound<'_, PyString>) -> PyResult<&'a str> {
    s.to_str()
}
