//! A Python object's memory, exported through the buffer protocol and read without the GIL:
//! how an out-of-band buffer is copied straight from the caller's memory into a slab block.
//!
//! The abi3 build for Python 3.9 has no buffer functions in the limited API (they joined it in
//! 3.11, unchanged since 3.3), so they are declared here for that build; every other build
//! (version-specific, PyPy) takes PyO3's declarations.

use std::ffi::c_int;

use pyo3::exceptions::PyBufferError;
use pyo3::prelude::*;

#[cfg(all(Py_LIMITED_API, not(Py_3_11)))]
mod raw {
    use std::ffi::{c_char, c_int, c_void};

    use pyo3::ffi::{PyObject, Py_ssize_t};

    /// `Py_buffer` as CPython 3.3 and later lay it out (the layout 3.11 made part of the stable
    /// ABI).
    #[repr(C)]
    pub(super) struct Py_buffer {
        pub(super) buf: *mut c_void,
        pub(super) obj: *mut PyObject,
        pub(super) len: Py_ssize_t,
        pub(super) itemsize: Py_ssize_t,
        pub(super) readonly: c_int,
        pub(super) ndim: c_int,
        pub(super) format: *mut c_char,
        pub(super) shape: *mut Py_ssize_t,
        pub(super) strides: *mut Py_ssize_t,
        pub(super) suboffsets: *mut Py_ssize_t,
        pub(super) internal: *mut c_void,
    }

    impl Py_buffer {
        pub(super) const fn new() -> Self {
            Py_buffer {
                buf: std::ptr::null_mut(),
                obj: std::ptr::null_mut(),
                len: 0,
                itemsize: 0,
                readonly: 0,
                ndim: 0,
                format: std::ptr::null_mut(),
                shape: std::ptr::null_mut(),
                strides: std::ptr::null_mut(),
                suboffsets: std::ptr::null_mut(),
                internal: std::ptr::null_mut(),
            }
        }
    }

    extern "C" {
        pub(super) fn PyObject_GetBuffer(
            obj: *mut PyObject,
            view: *mut Py_buffer,
            flags: c_int,
        ) -> c_int;
        pub(super) fn PyBuffer_Release(view: *mut Py_buffer);
    }
}

#[cfg(not(all(Py_LIMITED_API, not(Py_3_11))))]
mod raw {
    pub(super) use pyo3::ffi::{PyBuffer_Release, PyObject_GetBuffer, Py_buffer};
}

/// `PyBUF_RECORDS_RO`: strides and format, read-only is fine (no suboffsets: an exporter
/// that needs them refuses, and the put fails with its error).
const FLAGS: c_int = 0x0008 | 0x0010 | 0x0004;

/// A buffer exported by a Python object: its memory stays valid and unmoved until this is
/// dropped (the exporter refuses to resize or free it meanwhile).
pub(crate) struct Exported {
    view: Box<raw::Py_buffer>,
}

// SAFETY: the view only describes memory owned by the exporter, pinned while the export lives;
// reading it from another thread needs no interpreter state. Dropping it (which does) happens
// only with the GIL held: `Exported` lives in the put's frame, which holds the GIL at its end.
unsafe impl Send for Exported {}
// SAFETY: as for `Send`; shared access only reads.
unsafe impl Sync for Exported {}

impl Exported {
    /// Exports `obj`'s buffer.
    pub(crate) fn get(obj: &Bound<'_, PyAny>) -> PyResult<Exported> {
        let mut view = Box::new(raw::Py_buffer::new());
        // SAFETY: `obj` is a live object, the GIL is held, and `view` is a `Py_buffer` with the
        // layout of the running interpreter (see the module notes).
        let rc = unsafe { raw::PyObject_GetBuffer(obj.as_ptr(), &mut *view, FLAGS) };
        if rc != 0 {
            return Err(PyErr::take(obj.py())
                .unwrap_or_else(|| PyBufferError::new_err("the object exports no buffer")));
        }
        let out = Exported { view };
        if !out.view.suboffsets.is_null() || out.view.len < 0 || out.view.ndim < 0 {
            return Err(PyBufferError::new_err(
                "the object's buffer uses suboffsets, which cannot be sent out of band",
            ));
        }
        Ok(out)
    }

    /// The buffer's shape and strides (empty for a plain run of `len` bytes).
    fn dims(&self) -> (&[isize], &[isize]) {
        let v = &*self.view;
        let ndim = v.ndim as usize;
        // SAFETY: while the export lives (as long as `self`), `shape` and `strides` hold `ndim`
        // entries, or are null for a plain run of `len` bytes.
        unsafe {
            if v.shape.is_null() || v.strides.is_null() || ndim == 0 {
                (&[][..], &[][..])
            } else {
                (
                    std::slice::from_raw_parts(v.shape, ndim),
                    std::slice::from_raw_parts(v.strides, ndim),
                )
            }
        }
    }

    /// The address of the buffer's bytes when they are one contiguous run (C or Fortran
    /// order), as they would be copied.
    pub(crate) fn contiguous_ptr(&self) -> Option<usize> {
        let (shape, strides) = self.dims();
        let v = &*self.view;
        (shape.is_empty() || is_contiguous(shape, strides, v.itemsize.max(1)))
            .then_some(v.buf as usize)
    }

    /// The buffer's size in bytes (of its contiguous copy).
    pub(crate) fn len(&self) -> usize {
        self.view.len as usize
    }

    /// Copies the buffer into `out` (of [`Exported::len`] bytes): as it lies when contiguous
    /// (in C or Fortran order), else in C order, element by element.
    pub(crate) fn copy_to(&self, out: &mut [u8]) {
        assert_eq!(out.len(), self.len(), "destination of the wrong size");
        let v = &*self.view;
        // While the export lives, `buf` holds every element `shape` and `strides` address.
        let (shape, strides) = self.dims();
        let item = v.itemsize.max(1);
        if shape.is_empty() || is_contiguous(shape, strides, item) {
            // SAFETY: as above; a contiguous buffer is `len` bytes from `buf`.
            let src = unsafe { std::slice::from_raw_parts(v.buf.cast::<u8>(), out.len()) };
            out.copy_from_slice(src);
            return;
        }
        let mut at = 0;
        // SAFETY: as above.
        unsafe {
            copy_strided(
                v.buf.cast::<u8>(),
                shape,
                strides,
                item as usize,
                out,
                &mut at,
            )
        };
    }
}

/// C- or Fortran-contiguous (the element order of the memory is the order to copy).
fn is_contiguous(shape: &[isize], strides: &[isize], item: isize) -> bool {
    let run = |dims: &mut dyn Iterator<Item = (&isize, &isize)>| {
        let mut want = item;
        for (&n, &s) in dims {
            if n > 1 && s != want {
                return false;
            }
            want *= n;
        }
        true
    };
    shape.contains(&0)
        || run(&mut shape.iter().zip(strides).rev())
        || run(&mut shape.iter().zip(strides))
}

/// Copies the elements of a strided array into `out` from `*at`, in C order.
///
/// # Safety
///
/// `src`, `shape`, `strides` describe a live buffer whose every element is readable, and `out`
/// has room for all of them.
unsafe fn copy_strided(
    src: *const u8,
    shape: &[isize],
    strides: &[isize],
    item: usize,
    out: &mut [u8],
    at: &mut usize,
) {
    let (n, s) = (shape[0], strides[0]);
    for i in 0..n {
        // SAFETY: the function's contract: element `i` of this dimension is in the buffer.
        let p = unsafe { src.offset(i * s) };
        if shape.len() == 1 {
            // SAFETY: as above, `item` bytes at `p`.
            out[*at..*at + item].copy_from_slice(unsafe { std::slice::from_raw_parts(p, item) });
            *at += item;
        } else {
            // SAFETY: as above, for the sub-array at `p`.
            unsafe { copy_strided(p, &shape[1..], &strides[1..], item, out, at) };
        }
    }
}

impl Drop for Exported {
    fn drop(&mut self) {
        // SAFETY: the view was filled by a successful `PyObject_GetBuffer`; the GIL is held
        // (see the `Send` note).
        unsafe { raw::PyBuffer_Release(&mut *self.view) }
    }
}
