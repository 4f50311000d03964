//! `TopicMatchResult`: the node-by-node outcome of `Topic.match()`.

use engine_core::{MatchNode, MatchResult};
use pyo3::exceptions::PyIndexError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::topic_part::part_to_py;

/// Result of matching two topics; truthy when they match.
#[pyclass(name = "TopicMatchResult", module = "event_engine", frozen)]
pub struct PyTopicMatchResult {
    result: MatchResult,
}

impl PyTopicMatchResult {
    pub(crate) fn new(result: MatchResult) -> Self {
        PyTopicMatchResult { result }
    }
}

fn node_dict<'py>(py: Python<'py>, node: &MatchNode) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("matched", node.matched)?;
    let a = node
        .part_a
        .as_ref()
        .map(|p| part_to_py(py, p))
        .transpose()?;
    let b = node
        .part_b
        .as_ref()
        .map(|p| part_to_py(py, p))
        .transpose()?;
    d.set_item("part_a", a)?;
    d.set_item("part_b", b)?;
    d.set_item("literal", node.literal.as_deref())?;
    Ok(d)
}

#[pymethods]
impl PyTopicMatchResult {
    /// True when the topics match.
    #[getter]
    fn matched(&self) -> bool {
        self.result.matched
    }

    /// Number of nodes.
    #[getter]
    fn length(&self) -> usize {
        self.result.nodes.len()
    }

    fn __len__(&self) -> usize {
        self.result.nodes.len()
    }

    fn __bool__(&self) -> bool {
        self.result.matched
    }

    fn __getitem__<'py>(&self, py: Python<'py>, index: isize) -> PyResult<Bound<'py, PyDict>> {
        let len = self.result.nodes.len() as isize;
        let i = if index < 0 { index + len } else { index };
        if i < 0 || i >= len {
            return Err(PyIndexError::new_err(format!(
                "match node index {index} out of range for a result of {len} nodes"
            )));
        }
        node_dict(py, &self.result.nodes[i as usize])
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let nodes = self
            .result
            .nodes
            .iter()
            .map(|n| node_dict(py, n))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, nodes)?
            .as_any()
            .try_iter()
            .map(Bound::into_any)
    }

    /// `{literal: part of the target}` per node, as the reference keys it: the text each node
    /// matched (`""` for a node that failed) mapped to the other topic's part there, so
    /// `Topic("a.+x").match(Topic("a.test")).to_dict()` has the keys `a` and `test`.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for node in &self.result.nodes {
            let part = node
                .part_b
                .as_ref()
                .map(|p| part_to_py(py, p))
                .transpose()?;
            d.set_item(node.literal.as_deref().unwrap_or(""), part)?;
        }
        Ok(d)
    }

    fn __repr__(&self) -> String {
        let status = if self.result.matched {
            "success"
        } else {
            "failed"
        };
        format!(
            "<TopicMatchResult {status}>(nodes={})",
            self.result.nodes.len()
        )
    }
}
