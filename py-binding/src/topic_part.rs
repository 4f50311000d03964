//! The `TopicType` enum and the `TopicPart` family: one part of a topic
//! (exact text, a wildcard, a range of options or a regex) as Python sees it.

use std::sync::Arc;

use engine_core::{Pattern, Topic, TopicPart, TopicType};
use pyo3::exceptions::PyStopIteration;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList};

use crate::errors::topic_err;

static TOPIC_TYPE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// The `TopicType` IntEnum (built once, at module import).
pub(crate) fn topic_type_enum(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    TOPIC_TYPE
        .get_or_try_init(py, || {
            let members = vec![
                ("TOPIC_PART_EXACT", TopicType::Exact as i32),
                ("TOPIC_PART_ANY", TopicType::Any as i32),
                ("TOPIC_PART_RANGE", TopicType::Range as i32),
                ("TOPIC_PART_PATTERN", TopicType::Pattern as i32),
            ];
            let kwargs = PyDict::new(py);
            kwargs.set_item("module", "event_engine")?;
            let int_enum = py.import("enum")?.getattr("IntEnum")?;
            Ok::<_, PyErr>(
                int_enum
                    .call(("TopicType", members), Some(&kwargs))?
                    .unbind(),
            )
        })
        .map(|e| e.bind(py))
}

/// Base class of the parts of a topic.
#[pyclass(name = "TopicPart", module = "event_engine", subclass, frozen)]
pub struct PyTopicPart {
    pub(crate) part: TopicPart,
    /// The topic this part was taken from and its index there (`index < topic.len()`); `None`
    /// for a part made on its own.
    pub(crate) chain: Option<(Arc<Topic>, usize)>,
}

impl PyTopicPart {
    /// A part made on its own (not taken from a topic).
    fn alone(part: TopicPart) -> Self {
        PyTopicPart { part, chain: None }
    }
}

#[pymethods]
impl PyTopicPart {
    /// The kind of this part, a `TopicType` member.
    #[getter]
    fn ttype<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        topic_type_enum(py)?.call1((self.part.ttype() as i32,))
    }

    /// Address of the part's native data (stable for the life of the object).
    #[getter]
    fn addr(&self) -> usize {
        &self.part as *const TopicPart as usize
    }

    /// The part after this one in the topic it was taken from (`topic[i].next()` is
    /// `topic[i + 1]`), as in PyEventEngine 0.6.2. `StopIteration` for the last part of a topic
    /// and for a part made on its own.
    fn next(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match &self.chain {
            Some((topic, i)) if i + 1 < topic.len() => part_of(py, topic, i + 1),
            _ => Err(PyStopIteration::new_err(())),
        }
    }

    /// True for a part made on its own, False for one taken from a topic (whose part it
    /// stays), as PyEventEngine 0.6.2 reports ownership.
    #[getter]
    fn owner(&self) -> bool {
        self.chain.is_none()
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        match other.cast::<PyTopicPart>() {
            Ok(o) => o.get().part == self.part,
            Err(_) => false,
        }
    }

    fn __hash__(&self) -> u64 {
        engine_core::topic_hash(&self.part.literal())
    }

    fn __str__(&self) -> String {
        self.part.literal()
    }
}

/// An exact part: the literal text `part`.
#[pyclass(name = "TopicPartExact", module = "event_engine", extends = PyTopicPart, frozen)]
pub struct PyTopicPartExact;

#[pymethods]
impl PyTopicPartExact {
    #[new]
    #[pyo3(signature = (part = None, *, alloc = false))]
    fn new(part: Option<String>, alloc: bool) -> (Self, PyTopicPart) {
        // Accepted for the reference's signature: nothing to allocate here.
        let _ = alloc;
        let part = TopicPart::Exact(part.unwrap_or_default());
        (PyTopicPartExact, PyTopicPart::alone(part))
    }

    /// The literal text of this part.
    #[getter]
    fn part(slf: PyRef<'_, Self>) -> String {
        exact_text(&slf.as_super().part).to_owned()
    }

    /// Length of the text in UTF-8 bytes.
    fn __len__(slf: PyRef<'_, Self>) -> usize {
        exact_text(&slf.as_super().part).len()
    }

    fn __repr__(slf: PyRef<'_, Self>) -> String {
        format!(
            "<TopicPartExact>(topic=\"{}\")",
            exact_text(&slf.as_super().part)
        )
    }
}

fn exact_text(part: &TopicPart) -> &str {
    match part {
        TopicPart::Exact(s) | TopicPart::Any(s) => s,
        _ => "",
    }
}

/// A wildcard part (`{name}` or `+name`): matches any one exact part.
#[pyclass(name = "TopicPartAny", module = "event_engine", extends = PyTopicPart, frozen)]
pub struct PyTopicPartAny;

#[pymethods]
impl PyTopicPartAny {
    #[new]
    #[pyo3(signature = (name = None, *, alloc = false))]
    fn new(name: Option<String>, alloc: bool) -> (Self, PyTopicPart) {
        // Accepted for the reference's signature: nothing to allocate here.
        let _ = alloc;
        let part = TopicPart::Any(name.unwrap_or_default());
        (PyTopicPartAny, PyTopicPart::alone(part))
    }

    /// The wildcard's name.
    #[getter]
    fn name(slf: PyRef<'_, Self>) -> String {
        exact_text(&slf.as_super().part).to_owned()
    }

    fn __repr__(slf: PyRef<'_, Self>) -> String {
        format!(
            "<TopicPartAny>(name=\"{}\")",
            exact_text(&slf.as_super().part)
        )
    }
}

/// A range part (`(a|b|c)`): matches one of its options.
#[pyclass(name = "TopicPartRange", module = "event_engine", extends = PyTopicPart, frozen)]
pub struct PyTopicPartRange;

fn range_options(part: &TopicPart) -> &[String] {
    match part {
        TopicPart::Range(o) => o,
        _ => &[],
    }
}

#[pymethods]
impl PyTopicPartRange {
    #[new]
    #[pyo3(signature = (options = None, *, alloc = false))]
    fn new(options: Option<Vec<String>>, alloc: bool) -> (Self, PyTopicPart) {
        // Accepted for the reference's signature: nothing to allocate here.
        let _ = alloc;
        let options = options
            .unwrap_or_default()
            .into_iter()
            .filter(|o| !o.is_empty())
            .collect();
        (
            PyTopicPartRange,
            PyTopicPart::alone(TopicPart::Range(options)),
        )
    }

    /// Iterator over the options, in order.
    fn options<'py>(slf: PyRef<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        PyList::new(py, range_options(&slf.as_super().part))?
            .as_any()
            .try_iter()
            .map(Bound::into_any)
    }

    fn __iter__<'py>(slf: PyRef<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        Self::options(slf)
    }

    fn __len__(slf: PyRef<'_, Self>) -> usize {
        range_options(&slf.as_super().part).len()
    }

    fn __repr__(slf: PyRef<'_, Self>) -> String {
        let opts = range_options(&slf.as_super().part);
        let quoted: Vec<String> = opts.iter().map(|o| format!("'{o}'")).collect();
        format!(
            "<TopicPartRange>(n={}, options=[{}])",
            opts.len(),
            quoted.join(", ")
        )
    }
}

/// A regex part (`/regex/`): matches an exact part the regex finds a match in.
#[pyclass(name = "TopicPartPattern", module = "event_engine", extends = PyTopicPart, frozen)]
pub struct PyTopicPartPattern {
    /// Python's `re.Pattern`, compiled on first use of `regex` only.
    compiled: PyOnceLock<Py<PyAny>>,
}

fn pattern_source(part: &TopicPart) -> &str {
    match part {
        TopicPart::Pattern(p) => p.as_str(),
        _ => "",
    }
}

#[pymethods]
impl PyTopicPartPattern {
    #[new]
    #[pyo3(signature = (regex = None, *, alloc = false))]
    fn new(regex: Option<String>, alloc: bool) -> PyResult<(Self, PyTopicPart)> {
        // Accepted for the reference's signature: nothing to allocate here.
        let _ = alloc;
        let pattern = Pattern::new(&regex.unwrap_or_default()).map_err(topic_err)?;
        Ok((
            PyTopicPartPattern {
                compiled: PyOnceLock::new(),
            },
            PyTopicPart::alone(TopicPart::Pattern(pattern)),
        ))
    }

    /// The regex source text.
    #[getter]
    fn pattern(slf: PyRef<'_, Self>) -> String {
        pattern_source(&slf.as_super().part).to_owned()
    }

    /// The pattern compiled by Python's `re` (compiled lazily, then cached).
    #[getter]
    fn regex<'py>(slf: PyRef<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let src = pattern_source(&slf.as_super().part).to_owned();
        slf.compiled
            .get_or_try_init(py, || {
                Ok::<_, PyErr>(py.import("re")?.getattr("compile")?.call1((src,))?.unbind())
            })
            .map(|r| r.bind(py).clone())
    }

    fn __repr__(slf: PyRef<'_, Self>) -> String {
        format!(
            "<TopicPartPattern>(regex=\"{}\")",
            pattern_source(&slf.as_super().part)
        )
    }
}

/// Builds the Python object (of the right subclass) for a topic part not linked to a topic.
pub(crate) fn part_to_py(py: Python<'_>, part: &TopicPart) -> PyResult<Py<PyAny>> {
    new_part(py, PyTopicPart::alone(part.clone()))
}

/// The Python object for part `index` of `topic` (`index < topic.len()`), linked to the topic
/// for [`PyTopicPart::next`].
pub(crate) fn part_of(py: Python<'_>, topic: &Arc<Topic>, index: usize) -> PyResult<Py<PyAny>> {
    new_part(
        py,
        PyTopicPart {
            part: topic.parts()[index].clone(),
            chain: Some((topic.clone(), index)),
        },
    )
}

/// Wraps `base` in the Python subclass of its kind.
fn new_part(py: Python<'_>, base: PyTopicPart) -> PyResult<Py<PyAny>> {
    let ttype = base.part.ttype();
    let init = PyClassInitializer::from(base);
    Ok(match ttype {
        TopicType::Exact => Py::new(py, init.add_subclass(PyTopicPartExact))?.into_any(),
        TopicType::Any => Py::new(py, init.add_subclass(PyTopicPartAny))?.into_any(),
        TopicType::Range => Py::new(py, init.add_subclass(PyTopicPartRange))?.into_any(),
        TopicType::Pattern => Py::new(
            py,
            init.add_subclass(PyTopicPartPattern {
                compiled: PyOnceLock::new(),
            }),
        )?
        .into_any(),
    })
}
