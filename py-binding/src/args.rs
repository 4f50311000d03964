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
        let a = match self {
            Args::Objects { args, kwargs } => return Ok((args.clone(), kwargs.clone())),
            Args::Array(a) => a,
        };
        let args = PyTuple::new(a.py, a.positional.iter().map(|&p| a.item(p)))?;
        if self.keyword_count() == 0 {
            return Ok((args, None));
        }
        let kwargs = PyDict::new(a.py);
        let mut failed = None;
        self.all_keywords(|k, v| match kwargs.set_item(k, v) {
            Ok(()) => true,
            Err(e) => {
                failed = Some(e);
                false
            }
        });
        match failed {
            Some(e) => Err(e),
            None => Ok((args, Some(kwargs))),
        }
    }
}
