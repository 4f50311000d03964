//! What travels through an engine: the items of its local queue, and [`Envelope`], the one
//! view of a message that dispatch and `get()` need, whichever source it came from.
//!
//! A message is routed by its topic literal and hash before anything else is done with it
//! (docs/topic-grammar.md#routing); only a message some hook wants is opened into the topic
//! object and arguments the handlers are called with (for a message from a bus, that is when
//! its payload is decoded).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use engine_core::Topic;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple};

use crate::args::Args;
use crate::payload::PyMessagePayload;
use crate::topic::PyTopic;

static DATETIME: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// A message as dispatch sees it: a topic to route by, and the handler call it becomes.
pub(crate) trait Envelope {
    /// `engine_core::topic_hash` of the literal.
    fn topic_hash(&self) -> u64;
    /// The topic literal the message was published on.
    fn topic_literal(&self) -> &str;
    /// The engine's (or the bus's) sequence number of the message.
    fn seq_id(&self) -> u64;
    /// Opens the message (a bus message is decoded here) and calls `f` with the handler call.
    fn open<'py, R>(&self, py: Python<'py>, f: impl FnOnce(Call<'_, 'py>) -> R) -> PyResult<R>;

    /// The message as `get()` returns it.
    fn into_payload(self, py: Python<'_>) -> PyResult<PyMessagePayload>
    where
        Self: Sized,
    {
        let seq_id = self.seq_id();
        self.open(py, |call| PyMessagePayload {
            topic: Some(call.topic.clone().unbind()),
            args: Some(call.args.clone().unbind()),
            kwargs: call.kwargs.map(|k| k.clone().unbind()),
            seq_id,
        })
    }
}

/// A handler call: the topic object (for handlers that take `topic=`), `*args` and `**kwargs`.
#[derive(Clone, Copy)]
pub(crate) struct Call<'a, 'py> {
    pub(crate) topic: &'a Bound<'py, PyTopic>,
    pub(crate) args: &'a Bound<'py, PyTuple>,
    pub(crate) kwargs: Option<&'a Bound<'py, PyDict>>,
}

/// A message being put, as the engine hands it to its source (borrowed: a bus encodes it
/// without keeping anything; the in-process queue keeps it as a [`Published`]).
pub(crate) struct Outgoing<'a, 'py> {
    /// The parsed topic (exact), borrowed from the `Topic` object for the put.
    pub(crate) topic: &'a Arc<Topic>,
    /// The `Topic` object that was put.
    pub(crate) topic_obj: &'a Bound<'py, PyTopic>,
    /// `*args` and `**kwargs`, as they arrived.
    pub(crate) args: Args<'a, 'py>,
    /// Engine-wide sequence number.
    pub(crate) seq_id: u64,
}

impl Outgoing<'_, '_> {
    /// The message as a queue keeps it.
    pub(crate) fn into_published(self) -> PyResult<Published> {
        let (args, kwargs) = self.args.to_objects()?;
        Ok(Published {
            topic: self.topic.clone(),
            topic_obj: self.topic_obj.clone().unbind(),
            args: args.unbind(),
            kwargs: kwargs.map(Bound::unbind),
            seq_id: self.seq_id,
        })
    }
}

/// A message published from Python in this process, passed on by reference.
pub(crate) struct Published {
    /// The parsed topic (its literal and hash route the message).
    pub(crate) topic: Arc<Topic>,
    /// The `Topic` object that was put, handed to handlers that take `topic=`.
    pub(crate) topic_obj: Py<PyTopic>,
    /// Positional arguments, passed to handlers as they are.
    pub(crate) args: Py<PyTuple>,
    /// Keyword arguments (`None` when there were none: nothing to copy).
    pub(crate) kwargs: Option<Py<PyDict>>,
    /// Engine-wide sequence number.
    pub(crate) seq_id: u64,
}

impl Envelope for Published {
    #[inline]
    fn topic_hash(&self) -> u64 {
        self.topic.hash_value()
    }

    #[inline]
    fn topic_literal(&self) -> &str {
        self.topic.literal()
    }

    fn seq_id(&self) -> u64 {
        self.seq_id
    }

    #[inline]
    fn open<'py, R>(&self, py: Python<'py>, f: impl FnOnce(Call<'_, 'py>) -> R) -> PyResult<R> {
        Ok(f(Call {
            topic: self.topic_obj.bind(py),
            args: self.args.bind(py),
            kwargs: self.kwargs.as_ref().map(|k| k.bind(py)),
        }))
    }

    /// The objects that were put, handed over as they are.
    fn into_payload(self, _py: Python<'_>) -> PyResult<PyMessagePayload> {
        Ok(PyMessagePayload {
            topic: Some(self.topic_obj),
            args: Some(self.args),
            kwargs: self.kwargs,
            seq_id: self.seq_id,
        })
    }
}

/// A timer tick; built without the GIL by the timer thread, turned into Python objects only
/// when dispatched. Ticks stay in the engine that made the timer, even on a bus.
pub(crate) struct TimerTick {
    /// The timer's topic.
    pub(crate) topic: Arc<Topic>,
    /// The interval in seconds, as the user gave it.
    pub(crate) interval: f64,
    /// When the tick was due.
    pub(crate) scheduled: SystemTime,
    /// Ticks of the second/minute timers carry `timestamp`, others `trigger_time`.
    pub(crate) aligned: bool,
    /// Engine-wide sequence number.
    pub(crate) seq_id: u64,
}

impl Envelope for TimerTick {
    fn topic_hash(&self) -> u64 {
        self.topic.hash_value()
    }

    fn topic_literal(&self) -> &str {
        self.topic.literal()
    }

    fn seq_id(&self) -> u64 {
        self.seq_id
    }

    /// No arguments; `interval` plus `timestamp` (aligned timers) or `trigger_time` (a
    /// `datetime`), as the reference names them.
    fn open<'py, R>(&self, py: Python<'py>, f: impl FnOnce(Call<'_, 'py>) -> R) -> PyResult<R> {
        let topic = Bound::new(py, PyTopic::wrap(self.topic.clone()))?;
        let secs = self
            .scheduled
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let kwargs = PyDict::new(py);
        kwargs.set_item("interval", self.interval)?;
        if self.aligned {
            kwargs.set_item("timestamp", secs)?;
        } else {
            let dt = DATETIME.import(py, "datetime", "datetime")?;
            kwargs.set_item("trigger_time", dt.call_method1("fromtimestamp", (secs,))?)?;
        }
        Ok(f(Call {
            topic: &topic,
            args: &PyTuple::empty(py),
            kwargs: Some(&kwargs),
        }))
    }
}

/// An item of an engine's local queue.
pub(crate) enum Message {
    /// A `put`/`publish` from Python (in-process engines only: a bus engine's go on the bus).
    Published(Published),
    /// A timer tick.
    Tick(TimerTick),
    /// Wakes a parked loop so that it sees `active == false` at once.
    Wake,
}
