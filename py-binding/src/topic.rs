//! The Python `Topic` class.
//!
//! A Python `Topic` wraps an `Arc<engine_core::Topic>`: topics are parsed once
//! and then shared (by the interning map, by queued messages) without copying.
//! The few mutating methods (`append`, `+=`, `update_literal`, setting `value`)
//! copy on write, so a topic already queued or interned never changes under
//! its readers.

use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;

use engine_core::{Topic, TopicError, TopicPart};
use pyo3::exceptions::{PyIndexError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyType};

use crate::errors::topic_err;
use crate::intern;
use crate::match_result::PyTopicMatchResult;
use crate::topic_part::{part_of, PyTopicPart};

/// A parsed topic: the routing key of every message.
#[pyclass(name = "Topic", module = "event_engine", subclass)]
pub struct PyTopic {
    pub(crate) inner: Arc<Topic>,
    /// Python's hash of the topic string, once asked for (`NO_HASH` until then; Python never
    /// hashes to -1). Reset when `value` is set.
    str_hash: AtomicIsize,
}

/// [`PyTopic::str_hash`] not worked out yet.
const NO_HASH: isize = -1;

impl PyTopic {
    /// Whether `other` is the same topic (the same topic string).
    fn same_topic(&self, other: &PyTopic) -> bool {
        Arc::ptr_eq(&other.inner, &self.inner) || other.inner.literal() == self.inner.literal()
    }

    /// The topic, to change in place (copied first if shared), forgetting the cached hash.
    fn inner_mut(&mut self) -> &mut Topic {
        self.str_hash.store(NO_HASH, Ordering::Relaxed);
        Arc::make_mut(&mut self.inner)
    }

    /// Wraps a shared topic.
    pub(crate) fn wrap(inner: Arc<Topic>) -> Self {
        PyTopic {
            inner,
            str_hash: AtomicIsize::new(NO_HASH),
        }
    }

    /// `format`/`format_map`: wildcards whose name `mapping` holds become exact parts (the
    /// value's `str()`); the others stay, or are a KeyError with `strict`. Range and pattern
    /// parts cannot be filled in: a ValueError.
    fn formatted(&self, mapping: Option<&Bound<'_, PyAny>>, strict: bool) -> PyResult<PyTopic> {
        let mut parts = Vec::with_capacity(self.inner.len());
        for part in self.inner.parts() {
            match part {
                TopicPart::Exact(_) => parts.push(part.clone()),
                TopicPart::Any(name) => match lookup(mapping, name)? {
                    Some(value) => parts.push(TopicPart::Exact(value)),
                    None if strict => {
                        return Err(topic_err(TopicError::MissingKey { name: name.clone() }))
                    }
                    None => parts.push(part.clone()),
                },
                TopicPart::Range(_) | TopicPart::Pattern(_) => {
                    return Err(topic_err(TopicError::NotFormattable {
                        topic: self.inner.literal().to_owned(),
                    }))
                }
            }
        }
        Ok(PyTopic::wrap(Arc::new(Topic::from_parts(parts))))
    }

    /// Parses `literal`, reusing the interned topic when there is one.
    pub(crate) fn parse_interned(literal: &str) -> PyResult<Arc<Topic>> {
        if let Some(t) = intern::lookup(literal) {
            return Ok(t);
        }
        let topic = Arc::new(Topic::parse(literal).map_err(topic_err)?);
        Ok(intern::insert_if_absent(topic))
    }

    /// Parses `literal`, reusing the interned topic when there is one but interning nothing:
    /// for topics that arrive from other processes, which must not grow this process's map.
    pub(crate) fn parse_received(literal: &str) -> PyResult<Arc<Topic>> {
        if let Some(t) = intern::lookup(literal) {
            return Ok(t);
        }
        Ok(Arc::new(Topic::parse(literal).map_err(topic_err)?))
    }
}

/// The `str()` of `mapping[name]`, `None` when `mapping` has no such key.
fn lookup(mapping: Option<&Bound<'_, PyAny>>, name: &str) -> PyResult<Option<String>> {
    let Some(mapping) = mapping else {
        return Ok(None);
    };
    if !mapping.contains(name)? {
        return Ok(None);
    }
    Ok(Some(mapping.get_item(name)?.str()?.to_string()))
}

fn extract_part(obj: &Bound<'_, PyAny>) -> PyResult<TopicPart> {
    obj.cast::<PyTopicPart>()
        .map(|p| p.get().part.clone())
        .map_err(|_| {
            PyTypeError::new_err(format!(
                "expected a TopicPart, got {}",
                obj.get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            ))
        })
}

#[pymethods]
impl PyTopic {
    #[new]
    #[pyo3(signature = (topic = None, *, alloc = true, allocator = None))]
    fn new(
        topic: Option<&str>,
        alloc: bool,
        allocator: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        // Accepted for the reference's signature: memory is managed by Rust here.
        let _ = (alloc, allocator);
        let inner = PyTopic::parse_interned(topic.unwrap_or(""))?;
        Ok(PyTopic::wrap(inner))
    }

    /// The topic string, exactly as given.
    #[getter]
    fn value(&self) -> &str {
        self.inner.literal()
    }

    /// Replaces the whole topic by a new topic string (re-parsed).
    #[setter]
    fn set_value(&mut self, value: &str) -> PyResult<()> {
        self.inner = PyTopic::parse_interned(value)?;
        self.str_hash.store(NO_HASH, Ordering::Relaxed);
        Ok(())
    }

    /// True when every part is exact (a topic messages can be published on).
    #[getter]
    fn is_exact(&self) -> bool {
        self.inner.is_exact()
    }

    /// xxHash3-64 of the topic string: the same number in every process.
    #[getter]
    fn hash_value(&self) -> u64 {
        self.inner.hash_value()
    }

    /// Address of the native topic; topics sharing one interned parse share it.
    #[getter]
    fn addr(&self) -> usize {
        Arc::as_ptr(&self.inner) as usize
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    fn __getitem__(&self, py: Python<'_>, index: isize) -> PyResult<Py<PyAny>> {
        let len = self.inner.len() as isize;
        let i = if index < 0 { index + len } else { index };
        if i < 0 || i >= len {
            return Err(PyIndexError::new_err(format!(
                "topic part index {index} out of range for a topic of {len} parts"
            )));
        }
        part_of(py, &self.inner, i as usize)
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let parts = (0..self.inner.len())
            .map(|i| part_of(py, &self.inner, i))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, parts)?
            .as_any()
            .try_iter()
            .map(Bound::into_any)
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        match other.cast::<PyTopic>() {
            Ok(o) => self.same_topic(&o.borrow()),
            Err(_) => false,
        }
    }

    /// `hash(self.value)`: the hash of the topic string, so that a [`PyTopicKey`] (which also
    /// equals that string) hashes like both. `hash_value` is the engine's own hash, the same in
    /// every process.
    fn __hash__(&self, py: Python<'_>) -> PyResult<isize> {
        let cached = self.str_hash.load(Ordering::Relaxed);
        if cached != NO_HASH {
            return Ok(cached);
        }
        let h = PyString::new(py, self.inner.literal()).hash()?;
        self.str_hash.store(h, Ordering::Relaxed);
        Ok(h)
    }

    fn __repr__(&self) -> String {
        format!(
            "<Topic>(value=\"{}\", n_parts={})",
            self.inner.literal(),
            self.inner.len()
        )
    }

    fn __str__(&self) -> &str {
        self.inner.literal()
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyType>, (String,))> {
        Ok((slf.get_type(), (slf.borrow().inner.literal().to_owned(),)))
    }

    /// Matches this topic (usually the generic one) against `other`.
    #[pyo3(name = "match")]
    fn match_(&self, other: PyRef<'_, PyTopic>) -> PyTopicMatchResult {
        PyTopicMatchResult::new(self.inner.match_detail(&other.inner))
    }

    /// A new topic with each wildcard named in `kwargs` replaced by the value's `str()`;
    /// wildcards not named stay as they are (`Topic("r.{a}.{b}").format(a="x")` is
    /// `r.x.{b}`).
    #[pyo3(signature = (**kwargs))]
    fn format(&self, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<PyTopic> {
        self.formatted(kwargs.map(|k| k.as_any()), false)
    }

    /// `format(**mapping)` with any mapping; with `strict`, a wildcard missing from `mapping`
    /// is a KeyError naming it. `internalized` is accepted for the reference's signature.
    #[pyo3(signature = (mapping, internalized = true, strict = false))]
    fn format_map(
        &self,
        mapping: &Bound<'_, PyAny>,
        internalized: bool,
        strict: bool,
    ) -> PyResult<PyTopic> {
        let _ = internalized;
        self.formatted(Some(mapping), strict)
    }

    /// Same as `format(**kwargs)`.
    #[pyo3(signature = (**kwargs))]
    fn __call__(&self, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<PyTopic> {
        self.format(kwargs)
    }

    /// Appends a part in place and returns this topic.
    fn append<'py>(
        mut slf: PyRefMut<'py, Self>,
        part: &Bound<'py, PyAny>,
    ) -> PyResult<PyRefMut<'py, Self>> {
        let part = extract_part(part)?;
        slf.inner_mut().push_part(part);
        Ok(slf)
    }

    /// Rebuilds the topic string from the parts; returns this topic.
    fn update_literal(mut slf: PyRefMut<'_, Self>) -> PyRefMut<'_, Self> {
        slf.inner_mut().update_literal();
        slf
    }

    fn __add__(&self, other: &Bound<'_, PyAny>) -> PyResult<PyTopic> {
        let mut topic = (*self.inner).clone();
        Addition::of(other)?.apply(&mut topic);
        Ok(PyTopic::wrap(Arc::new(topic)))
    }

    fn __iadd__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<()> {
        // Read the operand before borrowing self mutably: it may be self (`t += t`).
        let addition = Addition::of(other)?;
        addition.apply(slf.borrow_mut().inner_mut());
        Ok(())
    }

    /// A topic of exact parts, one per string (a string may contain `.`).
    #[classmethod]
    fn join(_cls: &Bound<'_, PyType>, parts: &Bound<'_, PyAny>) -> PyResult<PyTopic> {
        let mut strings = Vec::new();
        for item in parts.try_iter()? {
            let item = item?;
            if !item.is_instance_of::<PyString>() {
                return Err(PyTypeError::new_err(format!(
                    "Topic.join() takes an iterable of str, got an item of type {}",
                    item.get_type().name()?
                )));
            }
            strings.push(item.extract::<String>()?);
        }
        Ok(PyTopic::wrap(Arc::new(Topic::join(strings))))
    }

    /// A topic built from `TopicPart` objects.
    #[classmethod]
    fn from_parts(_cls: &Bound<'_, PyType>, parts: &Bound<'_, PyAny>) -> PyResult<PyTopic> {
        let mut list = Vec::new();
        for item in parts.try_iter()? {
            list.push(extract_part(&item?)?);
        }
        Ok(PyTopic::wrap(Arc::new(Topic::from_parts(list))))
    }
}

/// What `+`/`+=` appends to a topic.
enum Addition {
    Topic(Arc<Topic>),
    Part(TopicPart),
}

impl Addition {
    fn of(other: &Bound<'_, PyAny>) -> PyResult<Addition> {
        if let Ok(t) = other.cast::<PyTopic>() {
            return Ok(Addition::Topic(t.borrow().inner.clone()));
        }
        if let Ok(p) = other.cast::<PyTopicPart>() {
            return Ok(Addition::Part(p.get().part.clone()));
        }
        Err(PyTypeError::new_err(format!(
            "can only add a Topic or a TopicPart to a Topic, not {}",
            other.get_type().name()?
        )))
    }

    fn apply(self, topic: &mut Topic) {
        match self {
            Addition::Topic(t) => topic.extend(&t),
            Addition::Part(p) => topic.push_part(p),
        }
    }
}

/// A key of the engine's hook maps (`exact_topic_hook_map`, `generic_topic_hook_map`): a
/// `Topic` that also equals its topic string. PyEventEngine 0.6.2's compiled engine keys these
/// maps by `Topic`, its pure-Python engine and its hook-map helpers by the topic string; with
/// these keys code written for either works: `list(m) == ["registry.hook"]`,
/// `m[Topic("registry.hook")]` and `m["registry.hook"]`. Other topics stay unequal to strings.
#[pyclass(name = "TopicKey", module = "event_engine", extends = PyTopic)]
pub struct PyTopicKey;

impl PyTopicKey {
    /// The key for `topic`.
    pub(crate) fn new(py: Python<'_>, topic: Arc<Topic>) -> PyResult<Py<PyTopicKey>> {
        Py::new(
            py,
            PyClassInitializer::from(PyTopic::wrap(topic)).add_subclass(PyTopicKey),
        )
    }
}

#[pymethods]
impl PyTopicKey {
    fn __eq__(slf: PyRef<'_, Self>, other: &Bound<'_, PyAny>) -> bool {
        let me = slf.as_super();
        if let Ok(o) = other.cast::<PyTopic>() {
            return me.same_topic(&o.borrow());
        }
        match other.cast::<PyString>() {
            Ok(s) => s.to_cow().is_ok_and(|s| s == me.inner.literal()),
            Err(_) => false,
        }
    }

    /// As `Topic.__hash__` (`hash(self.value)`), which the string it equals shares.
    fn __hash__(slf: PyRef<'_, Self>) -> PyResult<isize> {
        let py = slf.py();
        slf.as_super().__hash__(py)
    }

    /// Pickles (and copies) as a plain `Topic`.
    fn __reduce__<'py>(slf: PyRef<'py, Self>) -> (Bound<'py, PyType>, (String,)) {
        let py = slf.py();
        (
            py.get_type::<PyTopic>(),
            (slf.as_super().inner.literal().to_owned(),),
        )
    }
}

/// Extracts the shared topic from a `Topic` argument, naming the call in the error.
pub(crate) fn topic_arg(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Arc<Topic>> {
    Ok(topic_ref(obj, what)?.borrow().inner.clone())
}

/// `obj` as a `Topic`, or the error of [`topic_arg`].
pub(crate) fn topic_ref<'a, 'py>(
    obj: &'a Bound<'py, PyAny>,
    what: &str,
) -> PyResult<&'a Bound<'py, PyTopic>> {
    obj.cast::<PyTopic>().map_err(|_| {
        PyTypeError::new_err(format!(
            "{what} expects a Topic, got {}",
            obj.get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        ))
    })
}

/// Error for a topic that cannot be published on.
pub(crate) fn not_exact(topic: &Topic) -> PyErr {
    PyValueError::new_err(format!(
        "cannot publish on topic \"{}\": a published topic must be exact (no wildcard, range or pattern parts)",
        topic.literal()
    ))
}

/// Creates the internal topic map if needed and returns a snapshot of it as a dict.
#[pyfunction]
#[pyo3(signature = (capacity = 1024))]
pub(crate) fn init_internal_map(py: Python<'_>, capacity: usize) -> PyResult<Bound<'_, PyDict>> {
    intern::init(capacity);
    get_internal_map(py)
}

/// Forgets every interned topic (existing `Topic` objects keep working).
#[pyfunction]
pub(crate) fn clear_internal_map() {
    intern::clear();
}

/// The interned topic for `key`, or None. With `owner=True` the result is a
/// private copy; otherwise it shares the interned data (same `addr`).
#[pyfunction]
#[pyo3(signature = (key, owner = false))]
pub(crate) fn get_internal_topic(key: &str, owner: bool) -> Option<PyTopic> {
    let shared = intern::lookup(key)?;
    Some(PyTopic::wrap(if owner {
        Arc::new((*shared).clone())
    } else {
        shared
    }))
}

/// Every interned topic, as a new dict `{topic string: Topic}`.
#[pyfunction]
pub(crate) fn get_internal_map(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let out = PyDict::new(py);
    for (k, v) in intern::entries() {
        out.set_item(k, PyTopic::wrap(v))?;
    }
    Ok(out)
}
