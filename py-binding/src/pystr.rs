//! The UTF-8 text of a Python `str`, borrowed from the object: no copy, no allocation.
//!
//! PyO3 offers this (`to_str`) only where the C API has it, from Python 3.10 on, so on our
//! abi3 build for 3.9 its `to_cow` copies every string twice (into a `bytes`, then a `String`).
//! `PyUnicode_AsUTF8AndSize` exists in every CPython 3 (public since 3.3, in the stable ABI
//! since 3.10 with the same signature); an ASCII string's text is returned in place, another's
//! is encoded once and cached in the object by CPython.

/// The UTF-8 text of the `str` at `s`, borrowed from it; `None` for a string that is not valid
/// Unicode (a lone surrogate), with the interpreter's error cleared: every caller then treats the
/// string as one it cannot use as text (pickle carries it), which is no error of the call.
///
/// # Safety
///
/// `s` is a live `str` (exactly or a subclass), the GIL is held, and the returned text is not
/// used after `s` is destroyed (CPython keeps it in the object).
pub(crate) unsafe fn utf8_ptr<'a>(s: *mut pyo3::ffi::PyObject) -> Option<&'a str> {
    use pyo3::ffi;
    #[cfg(all(Py_LIMITED_API, not(Py_3_10)))]
    extern "C" {
        fn PyUnicode_AsUTF8AndSize(
            unicode: *mut ffi::PyObject,
            size: *mut ffi::Py_ssize_t,
        ) -> *const std::os::raw::c_char;
    }
    #[cfg(not(all(Py_LIMITED_API, not(Py_3_10))))]
    use ffi::PyUnicode_AsUTF8AndSize;
    let mut len: ffi::Py_ssize_t = 0;
    // SAFETY: the function's contract.
    let data = unsafe { PyUnicode_AsUTF8AndSize(s, &mut len) };
    if data.is_null() {
        // SAFETY: the GIL is held (the contract); an error is set, and is cleared here.
        unsafe { ffi::PyErr_Clear() };
        return None;
    }
    // SAFETY: `len` bytes of UTF-8 that CPython owns in the string object and keeps until it is
    // destroyed (the contract); its encoder refuses lone surrogates (the null above), so they
    // are valid UTF-8.
    Some(unsafe {
        std::str::from_utf8_unchecked(std::slice::from_raw_parts(data.cast::<u8>(), len as usize))
    })
}
