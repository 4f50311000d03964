//! The interning map: topic string -> parsed topic, shared by every `Topic`
//! built from that string, so a topic string is parsed once per process.
//! Exposed as `init_internal_map`, `get_internal_topic`, `get_internal_map`
//! and `clear_internal_map`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use engine_core::Topic;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::topic::PyTopic;

static MAP: Mutex<Option<HashMap<String, Arc<Topic>>>> = Mutex::new(None);

fn map() -> MutexGuard<'static, Option<HashMap<String, Arc<Topic>>>> {
    // A panic while holding this lock cannot leave the map half-updated
    // (single insert/remove calls), so a poisoned lock is still usable.
    MAP.lock().unwrap_or_else(|e| e.into_inner())
}

/// The interned topic for `literal`, if any.
pub(crate) fn lookup(literal: &str) -> Option<Arc<Topic>> {
    map().as_ref()?.get(literal).cloned()
}

/// Most topics interned; past it, new topics work as usual but are not interned, so a program
/// that builds a topic per order id cannot grow the map without bound.
pub(crate) const MAX_INTERNED: usize = 1 << 17;

/// Interns `topic` unless its string is interned already (or the map holds [`MAX_INTERNED`]
/// topics); returns the interned one, or `topic` itself when it was not interned.
pub(crate) fn insert_if_absent(topic: Arc<Topic>) -> Arc<Topic> {
    let mut guard = map();
    let m = guard.get_or_insert_with(HashMap::new);
    if m.len() >= MAX_INTERNED && !m.contains_key(topic.literal()) {
        return topic;
    }
    m.entry(topic.literal().to_owned()).or_insert(topic).clone()
}

/// Creates the internal topic map if needed and returns a snapshot of it as a dict.
#[pyfunction]
#[pyo3(signature = (capacity = 1024))]
pub(crate) fn init_internal_map(py: Python<'_>, capacity: usize) -> PyResult<Bound<'_, PyDict>> {
    map().get_or_insert_with(|| HashMap::with_capacity(capacity));
    get_internal_map(py)
}

/// Forgets every interned topic (existing `Topic` objects keep working).
#[pyfunction]
pub(crate) fn clear_internal_map() {
    if let Some(m) = map().as_mut() {
        m.clear();
    }
}

/// The interned topic for `key`, or None. With `owner=True` the result is a
/// private copy; otherwise it shares the interned data (same `addr`).
#[pyfunction]
#[pyo3(signature = (key, owner = false))]
pub(crate) fn get_internal_topic(key: &str, owner: bool) -> Option<PyTopic> {
    let shared = lookup(key)?;
    Some(PyTopic::wrap(if owner {
        Arc::new((*shared).clone())
    } else {
        shared
    }))
}

/// Every interned topic, as a new dict `{topic string: Topic}`.
#[pyfunction]
pub(crate) fn get_internal_map(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let entries: Vec<(String, Arc<Topic>)> = map()
        .as_ref()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let out = PyDict::new(py);
    for (k, v) in entries {
        out.set_item(k, PyTopic::wrap(v))?;
    }
    Ok(out)
}
