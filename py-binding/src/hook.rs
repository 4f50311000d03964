//! `EventHook` (the handlers of one topic) and `EventHookEx` (the same, with
//! per-handler call counts and time).
//!
//! Whether a handler receives `topic=` is decided once, when it is added (it
//! declares a `topic` parameter or `**kwargs`), never per message. The handler
//! lists are copy-on-write behind an `Arc`, so a trigger takes a snapshot in
//! one lock and calls the handlers with no lock held: a handler may add or
//! remove handlers (of this hook or any other) while it runs.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyDict, PyInt, PyList, PyTuple};

use crate::lock::lock;
use crate::logger;
use crate::payload::{self, PyMessagePayload};
use crate::topic::PyTopic;

/// End of CPython's message for a call with a keyword the callee does not take.
const UNEXPECTED_TOPIC: &str = "unexpected keyword argument 'topic'";

/// One registered handler, the logger its errors go to (the hook's when `None`) and its
/// statistics.
pub(crate) struct Handler {
    callable: Py<PyAny>,
    /// An `async def` function (decided when it is added): only a dispatch on an asyncio loop
    /// can await what it returns.
    is_async: bool,
    logger: Option<Py<PyAny>>,
    calls: AtomicU64,
    total_ns: AtomicU64,
}

/// Handlers called without `topic=` come first, as the reference orders them.
#[derive(Default)]
struct HandlerList {
    no_topic: Vec<Arc<Handler>>,
    with_topic: Vec<Arc<Handler>>,
}

impl HandlerList {
    fn all(&self) -> impl Iterator<Item = &Arc<Handler>> {
        self.no_topic.iter().chain(self.with_topic.iter())
    }
}

/// The handlers of one topic.
#[pyclass(name = "EventHook", module = "event_engine", subclass, frozen)]
pub struct PyEventHook {
    topic: Py<PyTopic>,
    logger: Mutex<Option<Py<PyAny>>>,
    retry_on_unexpected_topic: AtomicBool,
    handlers: Mutex<Arc<HandlerList>>,
    track_stats: bool,
}

static SIGNATURE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Does `handler` take a `topic` keyword (a `topic` parameter or `**kwargs`)?
fn wants_topic(py: Python<'_>, handler: &Bound<'_, PyAny>) -> PyResult<bool> {
    let signature = SIGNATURE.import(py, "inspect", "signature")?;
    let sig = match signature.call1((handler,)) {
        Ok(sig) => sig,
        // Some builtins have no introspectable signature: call them plainly.
        Err(e) if e.is_instance_of::<PyValueError>(py) || e.is_instance_of::<PyTypeError>(py) => {
            return Ok(false)
        }
        Err(e) => return Err(e),
    };
    let var_keyword = py
        .import("inspect")?
        .getattr("Parameter")?
        .getattr("VAR_KEYWORD")?;
    let params = sig.getattr(intern!(py, "parameters"))?;
    for param in params.call_method0("values")?.try_iter()? {
        let param = param?;
        if param.getattr(intern!(py, "name"))?.eq("topic")?
            || param.getattr(intern!(py, "kind"))?.eq(&var_keyword)?
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Same handler: identical object, or equal (bound methods compare equal).
fn same_handler(a: &Bound<'_, PyAny>, b: &Bound<'_, PyAny>) -> bool {
    a.is(b) || a.eq(b).unwrap_or(false)
}

impl PyEventHook {
    pub(crate) fn create(
        topic: Py<PyTopic>,
        logger: Option<Py<PyAny>>,
        retry_on_unexpected_topic: bool,
        track_stats: bool,
    ) -> Self {
        PyEventHook {
            topic,
            logger: Mutex::new(logger),
            retry_on_unexpected_topic: AtomicBool::new(retry_on_unexpected_topic),
            handlers: Mutex::new(Arc::new(HandlerList::default())),
            track_stats,
        }
    }

    /// The topic object of this hook.
    pub(crate) fn topic_ref(&self) -> &Py<PyTopic> {
        &self.topic
    }

    /// Calls every handler with the message; a handler that raises is logged
    /// (with its traceback) and the others still run.
    pub(crate) fn dispatch(
        &self,
        py: Python<'_>,
        topic: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) {
        let list = lock(&self.handlers).clone();
        for h in &list.no_topic {
            self.call(py, h, args, kwargs, None);
        }
        if list.with_topic.is_empty() {
            return;
        }
        let with_topic = match payload::kwargs_with_topic(py, Some(topic), kwargs) {
            Ok(kw) => kw,
            Err(e) => {
                self.report(py, topic.as_any(), None, e);
                return;
            }
        };
        for h in &list.with_topic {
            self.call(py, h, args, Some(&with_topic), Some(kwargs));
        }
    }

    /// The first `async def` handler, if any (a dispatch thread refuses to run with one).
    pub(crate) fn coroutine_handler(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        let list = lock(&self.handlers).clone();
        let found = list.all().find(|h| h.is_async);
        found.map(|h| h.callable.clone_ref(py))
    }

    /// One handler call. `plain_kwargs` is `Some` for a handler called with an
    /// added `topic` keyword and holds the message's own kwargs, which a retry
    /// without `topic` uses.
    fn call(
        &self,
        py: Python<'_>,
        h: &Handler,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
        plain_kwargs: Option<Option<&Bound<'_, PyDict>>>,
    ) {
        let f = h.callable.bind(py);
        let start = self.track_stats.then(Instant::now);
        let mut result = f.call(args, kwargs);
        if let (Err(e), Some(plain_kwargs)) = (&result, plain_kwargs) {
            let retry = self.retry_on_unexpected_topic.load(Ordering::Relaxed)
                && e.is_instance_of::<PyTypeError>(py)
                && e.value(py).to_string().ends_with(UNEXPECTED_TOPIC);
            if retry {
                let log = logger::resolve_event(py, &self.logger);
                if let Ok(log) = log {
                    let _ = log.call_method1(
                        "warning",
                        (
                            "Handler %r does not take a topic keyword; retrying without it: %s",
                            f,
                            e.value(py),
                        ),
                    );
                }
                result = f.call(args, plain_kwargs);
            }
        }
        if let Some(start) = start {
            h.calls.fetch_add(1, Ordering::Relaxed);
            h.total_ns
                .fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
        }
        match result {
            // A plain handler's usual return: nothing more to do.
            Ok(r) if r.is_none() => {}
            Ok(r) => self.returned(py, f, h, r),
            Err(e) => self.report(py, f, h.logger.as_ref(), e),
        }
    }

    /// A handler returned something other than None: an awaitable (an `async def` handler's
    /// coroutine) is handed to the asyncio dispatch running on this thread, which awaits it
    /// before the next message (`aio.rs`). Without one (a dispatch thread, a direct `trigger`)
    /// nothing could await it: it is closed and logged as an error, never silently dropped.
    fn returned(&self, py: Python<'_>, f: &Bound<'_, PyAny>, h: &Handler, r: Bound<'_, PyAny>) {
        match r.get_type().hasattr(intern!(py, "__await__")) {
            Ok(true) => {}
            _ => return,
        }
        let logged = (|| -> PyResult<()> {
            let log = match &h.logger {
                Some(l) => l.bind(py).clone(),
                None => logger::resolve_event(py, &self.logger)?,
            };
            let topic = self.topic.borrow(py).inner.literal().to_owned();
            if crate::aio::collecting() {
                let item = PyTuple::new(
                    py,
                    [
                        r.clone(),
                        f.clone(),
                        topic.into_pyobject(py)?.into_any(),
                        log,
                    ],
                )?;
                crate::aio::collect(item.into_any().unbind());
                return Ok(());
            }
            if r.hasattr(intern!(py, "close"))? {
                r.call_method0(intern!(py, "close"))?;
            }
            log.call_method1(
                "error",
                (
                    "Handler %r of topic \"%s\" returned an awaitable, which this dispatch cannot \
                     await: it was closed without running. Coroutine handlers run on an asyncio \
                     loop: call start() from a coroutine running on that loop",
                    f,
                    topic,
                ),
            )?;
            Ok(())
        })();
        if let Err(e) = logged {
            e.write_unraisable(py, Some(f));
        }
    }

    /// Logs a handler's exception, with its traceback, through the handler's own logger if
    /// it was added with one, else the hook's.
    fn report(
        &self,
        py: Python<'_>,
        handler: &Bound<'_, PyAny>,
        own_logger: Option<&Py<PyAny>>,
        err: PyErr,
    ) {
        let logged = (|| -> PyResult<()> {
            let log = match own_logger {
                Some(l) => l.bind(py).clone(),
                None => logger::resolve_event(py, &self.logger)?,
            };
            let exc_info = PyTuple::new(
                py,
                [
                    err.get_type(py).into_any(),
                    err.value(py).clone().into_any(),
                    err.traceback(py)
                        .map(Bound::into_any)
                        .unwrap_or_else(|| py.None().into_bound(py)),
                ],
            )?;
            let kw = PyDict::new(py);
            kw.set_item("exc_info", exc_info)?;
            let topic = self.topic.borrow(py).inner.literal().to_owned();
            log.call_method(
                "error",
                (
                    "Handler %r of topic \"%s\" raised %r",
                    handler,
                    topic,
                    err.value(py),
                ),
                Some(&kw),
            )?;
            Ok(())
        })();
        if let Err(log_err) = logged {
            // The logger itself failed: do not lose either error.
            err.write_unraisable(py, Some(handler));
            log_err.write_unraisable(py, Some(handler));
        }
    }

    /// Adds a handler (TypeError when it is not callable); its errors go to `logger` when
    /// given, else to the hook's logger.
    pub(crate) fn add_handler_checked(
        &self,
        py: Python<'_>,
        handler: &Bound<'_, PyAny>,
        deduplicate: bool,
        logger: Option<Py<PyAny>>,
    ) -> PyResult<()> {
        if !handler.is_callable() {
            return Err(PyTypeError::new_err(format!(
                "handler must be callable, got {} ({})",
                handler.get_type().name()?,
                handler.repr()?
            )));
        }
        let with_topic = wants_topic(py, handler)?;
        // Comparing handlers may run Python code (`__eq__`): do it on a
        // snapshot, never under the lock.
        let snapshot = self.snapshot();
        let present = snapshot
            .all()
            .any(|h| same_handler(h.callable.bind(py), handler));
        if present {
            if deduplicate {
                return Ok(());
            }
            let log = logger::resolve_event(py, &self.logger)?;
            log.call_method1(
                "warning",
                (
                    "Handler %r is already registered on topic \"%s\"; it will be called once per registration.",
                    handler,
                    self.topic.borrow(py).inner.literal().to_owned(),
                ),
            )?;
        }
        let entry = Arc::new(Handler {
            callable: handler.clone().unbind(),
            is_async: crate::aio::is_coroutine_function(py, handler)?,
            logger,
            calls: AtomicU64::new(0),
            total_ns: AtomicU64::new(0),
        });
        let mut guard = lock(&self.handlers);
        let mut list = HandlerList {
            no_topic: guard.no_topic.clone(),
            with_topic: guard.with_topic.clone(),
        };
        if with_topic {
            list.with_topic.push(entry);
        } else {
            list.no_topic.push(entry);
        }
        *guard = Arc::new(list);
        Ok(())
    }

    fn remove(&self, py: Python<'_>, handler: &Bound<'_, PyAny>) -> Option<Arc<HandlerList>> {
        loop {
            // Find the handler on a snapshot (comparing may run Python code),
            // then install the shortened list only if nobody changed it meanwhile.
            let snapshot = self.snapshot();
            let mut no_topic = snapshot.no_topic.clone();
            let mut with_topic = snapshot.with_topic.clone();
            let is_it = |h: &Arc<Handler>| same_handler(h.callable.bind(py), handler);
            if let Some(i) = no_topic.iter().position(is_it) {
                no_topic.remove(i);
            } else if let Some(i) = with_topic.iter().position(is_it) {
                with_topic.remove(i);
            } else {
                return None;
            }
            let mut guard = lock(&self.handlers);
            if Arc::ptr_eq(&guard, &snapshot) {
                let list = Arc::new(HandlerList {
                    no_topic,
                    with_topic,
                });
                // The old list is handed back so that it is dropped after the lock.
                return Some(std::mem::replace(&mut *guard, list));
            }
        }
    }

    /// The current handler lists (a cheap `Arc` clone).
    fn snapshot(&self) -> Arc<HandlerList> {
        lock(&self.handlers).clone()
    }

    /// Removes the first registration of a handler, if any.
    pub(crate) fn remove_handler_checked(&self, py: Python<'_>, handler: &Bound<'_, PyAny>) {
        let old = self.remove(py, handler);
        drop(old);
    }

    /// `remove_handler`: removes the first registration of a handler; one that is not there
    /// is a warning (through the hook's logger), as in the reference.
    fn remove_or_warn(&self, py: Python<'_>, handler: &Bound<'_, PyAny>) -> PyResult<()> {
        if self.remove(py, handler).is_some() {
            return Ok(());
        }
        logger::resolve_event(py, &self.logger)?.call_method1(
            "warning",
            (
                "Handler %r does not exist in the handlers of topic \"%s\": nothing was removed",
                handler,
                self.topic.borrow(py).inner.literal().to_owned(),
            ),
        )?;
        Ok(())
    }

    /// Number of handlers.
    pub(crate) fn handler_count(&self) -> usize {
        let list = lock(&self.handlers);
        list.no_topic.len() + list.with_topic.len()
    }

    /// Removes every handler.
    pub(crate) fn clear_handlers(&self) {
        let old = std::mem::take(&mut *lock(&self.handlers));
        drop(old);
    }

    fn handler_list<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = lock(&self.handlers).clone();
        let items: Vec<&Bound<'py, PyAny>> = list.all().map(|h| h.callable.bind(py)).collect();
        PyList::new(py, items)
    }

    fn stats_of(&self, py: Python<'_>, h: &Handler) -> PyResult<Py<PyDict>> {
        let d = PyDict::new(py);
        d.set_item("calls", h.calls.load(Ordering::Relaxed))?;
        d.set_item(
            "total_time",
            h.total_ns.load(Ordering::Relaxed) as f64 / 1e9,
        )?;
        Ok(d.unbind())
    }
}

#[pymethods]
impl PyEventHook {
    #[new]
    #[pyo3(signature = (topic, logger = None, retry_on_unexpected_topic = false))]
    fn new(topic: Py<PyTopic>, logger: Option<Py<PyAny>>, retry_on_unexpected_topic: bool) -> Self {
        PyEventHook::create(topic, logger, retry_on_unexpected_topic, false)
    }

    /// The topic of this hook.
    #[getter]
    fn topic(&self, py: Python<'_>) -> Py<PyTopic> {
        self.topic.clone_ref(py)
    }

    /// The logger handler errors go to (the package logger unless one was given).
    #[getter]
    fn logger<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        logger::resolve_event(py, &self.logger)
    }

    #[setter]
    fn set_logger(&self, logger: Option<Py<PyAny>>) {
        logger::replace(&self.logger, logger);
    }

    /// Whether a handler that rejects the `topic` keyword is retried without it.
    #[getter]
    fn retry_on_unexpected_topic(&self) -> bool {
        self.retry_on_unexpected_topic.load(Ordering::Relaxed)
    }

    #[setter]
    fn set_retry_on_unexpected_topic(&self, value: bool) {
        self.retry_on_unexpected_topic
            .store(value, Ordering::Relaxed);
    }

    /// Calls every handler with the message.
    fn trigger(&self, py: Python<'_>, msg: PyRef<'_, PyMessagePayload>) -> PyResult<()> {
        let topic = match &msg.topic {
            Some(t) => t.bind(py).clone().into_any(),
            None => self.topic.bind(py).clone().into_any(),
        };
        let args = match &msg.args {
            Some(a) => a.bind(py).clone(),
            None => PyTuple::empty(py),
        };
        let kwargs = msg.kwargs.as_ref().map(|k| k.bind(py).clone());
        drop(msg);
        self.dispatch(py, &topic, &args, kwargs.as_ref());
        Ok(())
    }

    /// Same as `trigger(msg)`.
    fn __call__(&self, py: Python<'_>, msg: PyRef<'_, PyMessagePayload>) -> PyResult<()> {
        self.trigger(py, msg)
    }

    /// Adds a handler; with `deduplicate=True` a handler already there is not added again.
    /// The handler's errors go to `logger` when given, else to the hook's logger. For code
    /// written for PyEventEngine 0.6.2 (`add_handler(handler, logger, deduplicate)`), a
    /// logger passed second is taken as the logger.
    #[pyo3(signature = (handler, deduplicate = None, logger = None))]
    fn add_handler(
        &self,
        py: Python<'_>,
        handler: &Bound<'_, PyAny>,
        deduplicate: Option<&Bound<'_, PyAny>>,
        logger: Option<Py<PyAny>>,
    ) -> PyResult<()> {
        let (deduplicate, logger) = match deduplicate {
            None => (false, logger),
            Some(d) if d.is_instance_of::<PyBool>() || d.is_instance_of::<PyInt>() => {
                (d.is_truthy()?, logger)
            }
            Some(d) if logger.is_none() && logger::is_logger(d)? => {
                (false, Some(d.clone().unbind()))
            }
            Some(d) => {
                return Err(PyTypeError::new_err(format!(
                    "add_handler() deduplicate must be a bool, got {}",
                    d.get_type().name()?
                )))
            }
        };
        self.add_handler_checked(py, handler, deduplicate, logger)
    }

    /// Removes a handler (its first registration; one that is not there is logged as a
    /// warning); returns the hook.
    fn remove_handler<'py>(
        slf: &Bound<'py, Self>,
        handler: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, Self>> {
        slf.get().remove_or_warn(slf.py(), handler)?;
        Ok(slf.clone())
    }

    fn __iadd__(&self, py: Python<'_>, handler: &Bound<'_, PyAny>) -> PyResult<()> {
        self.add_handler_checked(py, handler, true, None)
    }

    fn __isub__(&self, py: Python<'_>, handler: &Bound<'_, PyAny>) {
        let old = self.remove(py, handler);
        drop(old);
    }

    fn __len__(&self) -> usize {
        self.handler_count()
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.handler_list(py)?
            .as_any()
            .try_iter()
            .map(Bound::into_any)
    }

    fn __contains__(&self, py: Python<'_>, handler: &Bound<'_, PyAny>) -> bool {
        self.snapshot()
            .all()
            .any(|h| same_handler(h.callable.bind(py), handler))
    }

    /// Removes every handler.
    fn clear(&self) {
        self.clear_handlers();
    }

    /// Every handler: those called without `topic=` first, then those called with it. The
    /// callables themselves, as the reference page has it: PyEventEngine 0.6.2 gives a dict per
    /// handler here (`fn`, `logger`, `idx`, `with_topic`); where the two disagree, the page wins.
    #[getter]
    fn handlers<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        self.handler_list(py)
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let name = slf.get_type().name()?;
        let hook = slf.get();
        Ok(format!(
            "<{name} \"{}\">(handlers={})",
            hook.topic.borrow(slf.py()).inner.literal(),
            hook.handler_count()
        ))
    }
}

/// An `EventHook` that counts calls and time per handler.
#[pyclass(name = "EventHookEx", module = "event_engine", extends = PyEventHook, frozen)]
pub struct PyEventHookEx;

#[pymethods]
impl PyEventHookEx {
    #[new]
    #[pyo3(signature = (topic, logger = None, retry_on_unexpected_topic = false))]
    fn new(
        topic: Py<PyTopic>,
        logger: Option<Py<PyAny>>,
        retry_on_unexpected_topic: bool,
    ) -> PyClassInitializer<Self> {
        PyClassInitializer::from(PyEventHook::create(
            topic,
            logger,
            retry_on_unexpected_topic,
            true,
        ))
        .add_subclass(PyEventHookEx)
    }

    /// `{"calls": int, "total_time": float seconds}` for a handler, or None.
    fn get_stats(slf: PyRef<'_, Self>, handler: &Bound<'_, PyAny>) -> PyResult<Option<Py<PyDict>>> {
        let py = slf.py();
        let hook = slf.as_super();
        let list = lock(&hook.handlers).clone();
        let found = list
            .all()
            .find(|h| same_handler(h.callable.bind(py), handler))
            .cloned();
        found.map(|h| hook.stats_of(py, &h)).transpose()
    }

    /// Iterator of `(handler, stats)` pairs, as the reference page has it: PyEventEngine 0.6.2
    /// gives one dict of the hook's totals here (`n_calls`, `elapsed_seconds`, ...); where the
    /// two disagree, the page wins.
    #[getter(stats)]
    fn stats_iter<'py>(slf: PyRef<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let hook = slf.as_super();
        let list = lock(&hook.handlers).clone();
        let pairs = list
            .all()
            .map(|h| Ok((h.callable.clone_ref(py), hook.stats_of(py, h)?)))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, pairs)?
            .as_any()
            .try_iter()
            .map(Bound::into_any)
    }
}
