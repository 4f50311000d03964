//! The arguments of a message being put, in the form they arrived in: a tuple and a dict
//! (`publish()`, or `put()` through PyO3's argument parsing), or the vectorcall array of a
//! `put()` call (`vectorcall.rs`).
//!
//! Each source takes what it needs from them: the in-process queue keeps a tuple and a dict,
//! which an array call builds here once; a bus encodes the values straight from wherever they
//! are (`codec.rs`) and builds Python containers only to pickle.

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

/// True for an object of a type that holds no references (`None`, `bool`, `int`, `float`, `str`,
/// `bytes`): a tuple of only such objects can be in no reference cycle, so the cyclic collector
/// need not track it. CPython finds that out itself, but only when a collection walks the tuple
/// (`_PyTuple_MaybeUntrack`): a queue of messages waiting for dispatch made every collection walk
/// all of them, about a tenth of an in-process put. Untracked at creation, they cost it nothing.
#[cfg_attr(PyPy, allow(dead_code))]
fn is_atomic(p: *mut ffi::PyObject) -> bool {
    use std::ptr::addr_of_mut;
    // SAFETY: `p` is a live object (the callers' arrays hold them), so its type can be read;
    // the type objects are only compared by address.
    unsafe {
        let t = ffi::Py_TYPE(p);
        p == ffi::Py_None()
            || t == addr_of_mut!(ffi::PyLong_Type)
            || t == addr_of_mut!(ffi::PyFloat_Type)
            || t == addr_of_mut!(ffi::PyUnicode_Type)
            || t == addr_of_mut!(ffi::PyBool_Type)
            || t == addr_of_mut!(ffi::PyBytes_Type)
    }
}

/// A call's `*args` and `**kwargs`.
pub(crate) enum Args<'a, 'py> {
    /// Built by the caller (`kwargs` is `None` when there are none).
    Objects {
        args: Bound<'py, PyTuple>,
        kwargs: Option<Bound<'py, PyDict>>,
    },
    /// Borrowed from a vectorcall: positional values, then keyword names and values (CPython
    /// only: PyPy's build keeps PyO3's `put`).
    #[cfg_attr(PyPy, allow(dead_code))]
    Array(ArrayArgs<'a, 'py>),
}

/// Arguments borrowed from a vectorcall's array (see [`ArrayArgs::new`]).
pub(crate) struct ArrayArgs<'a, 'py> {
    py: Python<'py>,
    positional: &'a [*mut ffi::PyObject],
    /// The keyword arguments that are the message's (the call's own, like `block`, are not).
    keywords: Keywords<'a, 'py>,
}

/// Keyword arguments of a vectorcall: the names tuple, the values, and which of them are left
/// out of the message (a bit per index; a call has at most 64 keywords here, see `new`).
#[derive(Clone, Copy)]
struct Keywords<'a, 'py> {
    names: Option<&'a Bound<'py, PyTuple>>,
    values: &'a [*mut ffi::PyObject],
    skip: u64,
}

#[cfg_attr(PyPy, allow(dead_code))]
impl<'a, 'py> ArrayArgs<'a, 'py> {
    /// Most keyword arguments a call may have for the `skip` mask.
    pub(crate) const MAX_KEYWORDS: usize = 64;

    /// `positional` and `values` (as many as `names` has items, at most
    /// [`Self::MAX_KEYWORDS`]) must be live references held by the caller for `'a`; the
    /// keywords whose bit is set in `skip` are not part of the message.
    ///
    /// # Safety
    ///
    /// Every pointer in `positional` and `values` is a valid object the caller keeps alive
    /// for `'a` (a vectorcall's arguments do, for the duration of the call), and `values`
    /// has exactly one entry per name.
    pub(crate) unsafe fn new(
        py: Python<'py>,
        positional: &'a [*mut ffi::PyObject],
        names: Option<&'a Bound<'py, PyTuple>>,
        values: &'a [*mut ffi::PyObject],
        skip: u64,
    ) -> Self {
        debug_assert_eq!(names.map_or(0, |n| n.len()), values.len());
        debug_assert!(values.len() <= Self::MAX_KEYWORDS);
        ArrayArgs {
            py,
            positional,
            keywords: Keywords {
                names,
                values,
                skip,
            },
        }
    }

    fn item(&self, p: *mut ffi::PyObject) -> Borrowed<'a, 'py, PyAny> {
        // SAFETY: `new`'s contract: every pointer of the array is a live object for `'a`.
        unsafe { Borrowed::from_ptr(self.py, p) }
    }
}

impl<'a, 'py> Args<'a, 'py> {
    /// How many positional arguments.
    pub(crate) fn len(&self) -> usize {
        match self {
            Args::Objects { args, .. } => args.len(),
            Args::Array(a) => a.positional.len(),
        }
    }

    /// How many keyword arguments the message carries.
    pub(crate) fn keyword_count(&self) -> usize {
        match self {
            Args::Objects { kwargs, .. } => kwargs.as_ref().map_or(0, |k| k.len()),
            Args::Array(a) => a.keywords.values.len() - a.keywords.skip.count_ones() as usize,
        }
    }

    /// Calls `f` with each positional argument, in order, while it returns true; true when
    /// it did for all.
    pub(crate) fn all_positional(&self, mut f: impl FnMut(&Bound<'py, PyAny>) -> bool) -> bool {
        match self {
            Args::Objects { args, .. } => args.iter().all(|a| f(&a)),
            Args::Array(a) => a.positional.iter().all(|&p| f(&a.item(p))),
        }
    }

    /// Calls `f` with each keyword argument (name, value), in order, while it returns true;
    /// true when it did for all.
    pub(crate) fn all_keywords(
        &self,
        mut f: impl FnMut(&Bound<'py, PyAny>, &Bound<'py, PyAny>) -> bool,
    ) -> bool {
        match self {
            Args::Objects { kwargs: None, .. } => true,
            Args::Objects {
                kwargs: Some(kw), ..
            } => kw.iter().all(|(k, v)| f(&k, &v)),
            Args::Array(a) => {
                let Some(names) = a.keywords.names else {
                    return true;
                };
                a.keywords.values.iter().enumerate().all(|(i, &v)| {
                    if a.keywords.skip & (1 << i) != 0 {
                        return true;
                    }
                    // `names` is a tuple of `values.len()` items (`new`'s contract).
                    let name = names.get_borrowed_item(i).expect("one name per value");
                    f(&name, &a.item(v))
                })
            }
        }
    }

    /// The arguments as the tuple and the dict a handler is called with (`None` when there are
    /// no keyword arguments). An array call's are built here, new: nothing the caller holds is
    /// kept.
    pub(crate) fn to_objects(&self) -> PyResult<(Bound<'py, PyTuple>, Option<Bound<'py, PyDict>>)> {
        match self {
            Args::Objects { args, kwargs } => Ok((args.clone(), kwargs.clone())),
            Args::Array(a) => Ok((a.tuple()?, a.dict()?)),
        }
    }
}

#[cfg_attr(PyPy, allow(dead_code))]
impl<'py> ArrayArgs<'_, 'py> {
    /// The positional arguments as a new tuple. Built with the C API directly: PyO3's
    /// `PyTuple::new` over an iterator costs several times the tuple itself, on every put.
    fn tuple(&self) -> PyResult<Bound<'py, PyTuple>> {
        let n = self.positional.len() as ffi::Py_ssize_t;
        // SAFETY: attached to the interpreter (`self.py`); the result is a new reference or
        // null with an exception set.
        let tuple = unsafe { Bound::from_owned_ptr_or_err(self.py, ffi::PyTuple_New(n)) }?;
        for (i, &p) in self.positional.iter().enumerate() {
            // SAFETY: `p` is a live object (`new`'s contract); `PyTuple_SetItem` steals the
            // new reference taken here and fills slot `i` (< n) of a tuple nobody else has seen
            // yet, which cannot fail.
            unsafe {
                ffi::Py_IncRef(p);
                ffi::PyTuple_SetItem(tuple.as_ptr(), i as ffi::Py_ssize_t, p);
            }
        }
        // (PyPy's collector keeps no such lists, and its build never takes this path.)
        #[cfg(not(PyPy))]
        if self.positional.iter().all(|&p| is_atomic(p)) {
            // SAFETY: a live tuple, tracked by the collector since `PyTuple_New`.
            unsafe { ffi::PyObject_GC_UnTrack(tuple.as_ptr().cast()) };
        }
        // SAFETY: `PyTuple_New` made it a tuple.
        Ok(unsafe { tuple.cast_into_unchecked() })
    }

    /// The message's keyword arguments as a new dict, `None` when there are none.
    fn dict(&self) -> PyResult<Option<Bound<'py, PyDict>>> {
        let kw = &self.keywords;
        let Some(names) = kw.names else {
            return Ok(None);
        };
        if kw.values.len() == kw.skip.count_ones() as usize {
            return Ok(None);
        }
        let dict = PyDict::new(self.py);
        for (i, &v) in kw.values.iter().enumerate() {
            if kw.skip & (1 << i) != 0 {
                continue;
            }
            // SAFETY: `names` is a tuple of `values.len()` items (`new`'s contract), so item `i`
            // exists; it is borrowed from the tuple, which the caller keeps alive.
            let name = unsafe { ffi::PyTuple_GetItem(names.as_ptr(), i as ffi::Py_ssize_t) };
            // SAFETY: `dict` is a live dict, `name` a live str, `v` a live object; the call
            // takes its own references and returns -1 with an exception set on failure.
            if unsafe { ffi::PyDict_SetItem(dict.as_ptr(), name, v) } < 0 {
                return Err(PyErr::fetch(self.py));
            }
        }
        Ok(Some(dict))
    }
}
