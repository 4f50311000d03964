//! A message received from a bus, as dispatch and `get()` see it: routed by the topic literal
//! and hash its publisher wrote, decoded into Python objects only once a hook wants it.
//!
//! Received topics are not interned (a publisher that uses one topic per order id must not
//! grow its subscribers' memory): their `Topic` objects live in a bounded per-process cache.

use std::sync::Mutex;

use engine_core::TopicHashMap;
use pyo3::prelude::*;

use crate::codec;
use crate::held::Keep;
use crate::lock::lock;
use crate::message::{Call, Envelope};
use crate::topic::PyTopic;
use shm_ring::Holder;

/// `Topic` objects of received topics, by topic hash (the literal is compared on a hit).
static TOPICS: Mutex<Option<TopicHashMap<Py<PyTopic>>>> = Mutex::new(None);
/// Beyond this many distinct topics the cache starts over (a bound, not an expected size).
const TOPIC_CACHE_LIMIT: usize = 1 << 16;

/// A message read from a bus slot (borrowed from the ring, or copied out for `get()`).
pub(super) struct Received<'a> {
    pub(super) seq: u64,
    pub(super) topic_hash: u64,
    pub(super) topic: &'a str,
    pub(super) codec: u8,
    pub(super) payload: &'a [u8],
    /// For a message still held in the ring: how its buffers may be held there after it is
    /// acknowledged (`held.rs`); `None` for a copy.
    pub(super) keep: Option<Keep<'a>>,
}

impl<'a> From<&'a shm_ring::Message<'_>> for Received<'a> {
    fn from(m: &'a shm_ring::Message<'_>) -> Self {
        Received {
            seq: m.seq,
            topic_hash: m.topic_hash,
            topic: m.topic,
            codec: m.codec,
            payload: m.payload,
            keep: None,
        }
    }
}

impl<'a> Received<'a> {
    /// A message the subscriber of `holder` received and has not acknowledged yet, whose
    /// buffers may stay in the bus as views.
    pub(super) fn kept(m: &'a shm_ring::Message<'a>, holder: &'a Holder) -> Self {
        Received {
            keep: Some(Keep { holder, message: m }),
            ..Received::from(m)
        }
    }
}

impl Envelope for Received<'_> {
    fn topic_hash(&self) -> u64 {
        self.topic_hash
    }

    fn topic_literal(&self) -> &str {
        self.topic
    }

    fn seq_id(&self) -> u64 {
        self.seq
    }

    fn open<'py, R>(&self, py: Python<'py>, f: impl FnOnce(Call<'_, 'py>) -> R) -> PyResult<R> {
        let topic = topic_for(py, self.topic_hash, self.topic)?.into_bound(py);
        let (args, kwargs) = codec::decode(py, self.codec, self.payload, self.keep)?;
        Ok(f(Call {
            topic: &topic,
            args: &args,
            kwargs: kwargs.as_ref(),
        }))
    }
}

/// The `Topic` object for a received topic, made once per process per topic.
fn topic_for(py: Python<'_>, hash: u64, literal: &str) -> PyResult<Py<PyTopic>> {
    let mut guard = lock(&TOPICS);
    let map = guard.get_or_insert_with(TopicHashMap::default);
    if let Some(t) = map.get(&hash) {
        // A handler may have changed the cached object in place: check it still names the topic.
        if t.borrow(py).inner.literal() == literal {
            return Ok(t.clone_ref(py));
        }
    }
    let parsed = PyTopic::parse_received(literal)?;
    let obj = Py::new(py, PyTopic::wrap(parsed))?;
    if map.len() >= TOPIC_CACHE_LIMIT {
        map.clear();
    }
    map.insert(hash, obj.clone_ref(py));
    Ok(obj)
}
