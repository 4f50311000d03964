//! `EventEngine`: the Python class. An engine is a message source (`source/`), a hook table
//! and a dispatch loop (`dispatch_loop.rs`); this file is its API.
//!
//! A put goes to the source as it is: the in-process queue keeps the Python objects, a bus
//! encodes them (`codec.rs`) into a ring slot. The loop takes messages from the source, routes
//! each by its topic literal through the hook table and calls the routed hooks
//! (`dispatch.rs`), decoding a bus message only when some hook wants it (`source/received.rs`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use engine_core::{HookTable, Timer};
use pyo3::exceptions::{PyKeyError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyList, PyTuple};

use crate::aio::{self, LoopDrain};
use crate::args::Args;
use crate::bus;
use crate::dispatch::{self, Hooks};
use crate::dispatch_loop;
use crate::dispatch_thread::Dispatching;
use crate::errors::Full;
use crate::exit;
use crate::gil;
use crate::hook::PyEventHook;
use crate::lock::lock;
use crate::logger;
use crate::message::Outgoing;
use crate::payload::PyMessagePayload;
use crate::relay;
use crate::shared::Shared;
use crate::source::{BusSource, GetWait, MessageSource, PutWait, QueueSource, Source};
use crate::topic::{not_exact, topic_arg, topic_ref, PyTopic, PyTopicKey};

/// `None` for "wait forever" (the reference's `timeout=0.0`, a negative or an infinite one, or
/// one too long for a `Duration`), else the duration. NaN is an error: it is no number of
/// seconds, and comparing with it would silently mean "for ever".
fn wait_limit(timeout: f64) -> PyResult<Option<Duration>> {
    // Every put pays this: the default (0, no limit) is decided on the first comparison.
    if timeout <= 0.0 {
        return Ok(None);
    }
    if timeout.is_nan() {
        return Err(PyValueError::new_err(
            "timeout is NaN; give a number of seconds (0, the default, waits without limit)",
        ));
    }
    Ok(Duration::try_from_secs_f64(timeout).ok())
}

/// How a put waits for room: `put`'s and `publish`'s `block`, `max_spin` and `timeout`.
#[derive(Clone, Copy)]
pub(crate) struct PutOptions {
    pub(crate) block: bool,
    pub(crate) max_spin: u32,
    pub(crate) timeout: f64,
}

impl Default for PutOptions {
    /// The defaults of `put`'s signature.
    fn default() -> Self {
        PutOptions {
            block: true,
            max_spin: 65535,
            timeout: 0.0,
        }
    }
}

/// A timer started by `EventEngineEx.get_timer`, owned by the engine.
pub(crate) struct RunningTimer {
    pub(crate) interval: f64,
    pub(crate) topic: Py<PyTopic>,
    pub(crate) timer: Timer,
}

/// The event engine: a message source, the hooks and the dispatch loop.
#[pyclass(
    name = "EventEngine",
    module = "event_engine",
    subclass,
    frozen,
    weakref
)]
pub struct PyEventEngine {
    pub(crate) shared: Arc<Shared>,
    hooks: Hooks,
    logger: Mutex<Option<Py<PyAny>>>,
    thread: Mutex<Option<Py<PyAny>>>,
    /// The engine's state on an asyncio loop (`event_engine._asyncio`): its dispatch there, or
    /// the waiters of its `aget()`s. Set while a loop watches the engine's fd.
    aio: Mutex<Option<Py<PyAny>>>,
    pub(crate) timers: Mutex<Vec<RunningTimer>>,
}

impl Drop for PyEventEngine {
    fn drop(&mut self) {
        // A relay thread holds the shared state: it must end with the engine.
        if let Source::Bus(b) = &self.shared.source {
            b.stop_relay();
        }
    }
}

impl PyEventEngine {
    /// Tells the source what this engine wants now: the topics of its hooks (a bus engine with
    /// no hook is addressed nothing).
    pub(crate) fn hooks_changed(&self, py: Python<'_>) -> PyResult<()> {
        let topics: Vec<String> = lock(&self.hooks)
            .iter()
            .map(|(t, _)| t.literal().to_owned())
            .collect();
        self.shared.source.set_interest(py, topics)
    }

    pub(crate) fn create(
        py: Python<'_>,
        capacity: i64,
        logger: Option<Py<PyAny>>,
        bus: Option<&str>,
        group: Option<&str>,
        lossy: bool,
        hold_limit: i64,
    ) -> PyResult<Self> {
        let hold_limit = u32::try_from(hold_limit).map_err(|_| {
            PyValueError::new_err(format!(
                "hold_limit is how many received buffers an engine keeps in shared memory at                  once (0: copy every one); it must be between 0 and {}, got {hold_limit}",
                u32::MAX
            ))
        })?;
        // Taken as a signed int so a negative capacity gets this message, not an OverflowError.
        let capacity = usize::try_from(capacity)
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| {
                PyValueError::new_err(format!(
                    "EventEngine capacity must be at least 1, got {capacity}"
                ))
            })?;
        if lossy && group.is_some() {
            return Err(PyValueError::new_err(
                "a group cannot be lossy: its members share each message, so a message taken \
                 from it would be lost to all of them; use lossy=True without group",
            ));
        }
        let source = match bus::open(py, bus, group)? {
            Some(b) => Source::Bus(Box::new(BusSource::attach(
                b, group, capacity, lossy, hold_limit,
            )?)),
            None if lossy => {
                return Err(PyValueError::new_err(
                    "lossy=True applies to an engine on a bus (a lossy engine never holds the \
                     bus's publishers back); pass bus=... or call init_allocator(with_shm=True) \
                     first",
                ))
            }
            None => Source::InProcess(QueueSource::new(capacity)),
        };
        let engine = PyEventEngine {
            shared: Shared::new(source),
            hooks: Mutex::new(HookTable::new()),
            logger: Mutex::new(logger),
            thread: Mutex::new(None),
            aio: Mutex::new(None),
            timers: Mutex::new(Vec::new()),
        };
        exit::watch(&engine.shared);
        let source = &engine.shared.source;
        if let Some(name) = source.bus_name() {
            let group = source
                .group()
                .map(|g| format!(" in group \"{g}\""))
                .unwrap_or_default();
            engine.log_at(
                py,
                "info",
                format!(
                    "attached to bus \"{name}\"{group} (pid {}, ring of {} slots)",
                    std::process::id(),
                    source.capacity()
                ),
            );
            engine.log_reaps(py);
        }
        Ok(engine)
    }

    pub(crate) fn log<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        logger::resolve(py, &self.logger)
    }

    /// Logs `text` at `level` through this engine's logger; never fails (see `logger::emit`).
    pub(crate) fn log_at(&self, py: Python<'_>, level: &str, text: String) {
        logger::emit(py, self.log(py), level, text);
    }

    /// Logs the reaps this process did since they were last logged (see `logger::log_reaps`).
    fn log_reaps(&self, py: Python<'_>) {
        logger::log_reaps(py, || self.log(py));
    }

    /// Puts `topic` (exact) with `args` on the source, numbered.
    pub(crate) fn enqueue(
        &self,
        py: Python<'_>,
        topic_obj: &Bound<'_, PyAny>,
        args: Args<'_, '_>,
        PutOptions {
            block,
            max_spin,
            timeout,
        }: PutOptions,
    ) -> PyResult<()> {
        // Borrowed for the put (a bus needs only its text; the queue clones the `Arc`).
        let topic_obj = topic_ref(topic_obj, "put()/publish()")?;
        let topic = topic_obj.borrow();
        if !topic.inner.is_exact() {
            return Err(not_exact(&topic.inner));
        }
        let shared = &self.shared;
        let wait = PutWait {
            block,
            max_spin,
            timeout: wait_limit(timeout)?,
            engine: shared.id(),
        };
        let msg = Outgoing {
            topic: &topic.inner,
            topic_obj,
            args,
            seq_id: shared.next_seq(),
        };
        let put = shared.source.put(py, msg, wait);
        if put.is_err() {
            shared.unnumber();
        }
        put
    }

    /// Ends the engine's timers (without the GIL: a timer may be mid-tick).
    pub(crate) fn stop_timers(&self, py: Python<'_>) {
        let timers = std::mem::take(&mut *lock(&self.timers));
        let mut stoppable = Vec::with_capacity(timers.len());
        let mut topics = Vec::with_capacity(timers.len());
        for t in timers {
            stoppable.push(t.timer);
            topics.push(t.topic);
        }
        gil::detach(py, move || {
            for mut t in stoppable {
                t.stop();
            }
        });
        drop(topics);
    }

    fn hook_map<'py>(&self, py: Python<'py>, exact: bool) -> PyResult<Bound<'py, PyDict>> {
        let hooks: Vec<Py<PyEventHook>> = {
            let table = lock(&self.hooks);
            if exact {
                table.exact().map(|(_, h)| h.clone_ref(py)).collect()
            } else {
                table.generic().map(|(_, h)| h.clone_ref(py)).collect()
            }
        };
        let out = PyDict::new(py);
        for h in hooks {
            let topic = h.get().topic_ref().borrow(py).inner.clone();
            out.set_item(PyTopicKey::new(py, topic)?, h)?;
        }
        Ok(out)
    }

    /// The first `async def` handler of this engine's hooks, if any: a dispatch thread could
    /// never await it.
    fn coroutine_handler(&self, py: Python<'_>) -> Option<(Py<PyAny>, String)> {
        self.all_hooks(py).into_iter().find_map(|hook| {
            let h = hook.get().coroutine_handler(py)?;
            let topic = hook.get().topic_ref().borrow(py).inner.literal().to_owned();
            Some((h, topic))
        })
    }

    /// Refuses to dispatch on a thread while a hook has an `async def` handler.
    fn refuse_coroutines_on_thread(&self, py: Python<'_>, what: &str) -> PyResult<()> {
        let Some((h, topic)) = self.coroutine_handler(py) else {
            return Ok(());
        };
        Err(PyTypeError::new_err(format!(
            "{what}: the handler {} of topic \"{topic}\" is a coroutine function (async def), \
             which a dispatch thread cannot await. Call start() from a coroutine running on an \
             asyncio event loop (the engine then dispatches on that loop and awaits it), or \
             register a plain function",
            h.bind(py).repr()?
        )))
    }

    /// Starts dispatching on the running asyncio loop `running` (see `start`).
    fn start_on_loop(slf: &Bound<'_, Self>, running: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let fd = this.shared.source.loop_fd()?;
        relay::start(&this.shared)?;
        this.shared.set_active(true);
        let state = aio::helper(py, "dispatch_on_loop")?.call1((slf, running, fd));
        match state {
            Ok(state) => {
                let old = lock(&this.aio).replace(state.unbind());
                drop(old);
            }
            Err(e) => {
                this.shared.set_active(false);
                return Err(e);
            }
        }
        this.log_at(
            py,
            "debug",
            format!("{} dispatches on its asyncio loop", slf.repr()?),
        );
        Ok(())
    }

    /// Lets go of the loop state (its reader on the loop), if any.
    fn leave_loop(&self, py: Python<'_>) -> PyResult<()> {
        let state = lock(&self.aio).take();
        if let Some(state) = state {
            state.bind(py).call_method0("detach")?;
        }
        Ok(())
    }

    fn all_hooks(&self, py: Python<'_>) -> Vec<Py<PyEventHook>> {
        lock(&self.hooks)
            .iter()
            .map(|(_, h)| h.clone_ref(py))
            .collect()
    }
}

/// `publish(kwargs=...)` keys become keyword-argument names of every handler call: a key that
/// is not a `str` would fail in every receiver, so it is refused in the caller.
fn check_keyword_names(kwargs: &Bound<'_, PyDict>) -> PyResult<()> {
    for key in kwargs.keys() {
        if !key.is_instance_of::<pyo3::types::PyString>() {
            return Err(PyTypeError::new_err(format!(
                "publish() kwargs keys must be strings (they become the handlers' keyword \
                 argument names), got the key {} of type {}; nothing was published",
                key.repr()?,
                key.get_type().name()?
            )));
        }
    }
    Ok(())
}

fn check_callable(handler: &Bound<'_, PyAny>) -> PyResult<()> {
    if handler.is_callable() {
        return Ok(());
    }
    Err(PyTypeError::new_err(format!(
        "handler must be callable, got {} ({})",
        handler.get_type().name()?,
        handler.repr()?
    )))
}

#[pymethods]
impl PyEventEngine {
    #[new]
    #[pyo3(signature = (capacity = 4095, logger = None, *, bus = None, group = None, lossy = false, hold_limit = 64))]
    fn new(
        py: Python<'_>,
        capacity: i64,
        logger: Option<Py<PyAny>>,
        bus: Option<&str>,
        group: Option<&str>,
        lossy: bool,
        hold_limit: i64,
    ) -> PyResult<Self> {
        PyEventEngine::create(py, capacity, logger, bus, group, lossy, hold_limit)
    }

    /// Publishes a message: `topic` (exact) with `*args` and `**kwargs`.
    ///
    /// On CPython, `vectorcall.rs` installs the same method on the vectorcall protocol over
    /// this one at import; this one is PyPy's (and the declared signature).
    #[pyo3(signature = (topic, *args, block = true, max_spin = 65535, timeout = 0.0, **kwargs))]
    #[allow(clippy::too_many_arguments)]
    fn put(
        &self,
        py: Python<'_>,
        topic: &Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
        block: bool,
        max_spin: u32,
        timeout: f64,
        kwargs: Option<Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        let options = PutOptions {
            block,
            max_spin,
            timeout,
        };
        self.enqueue(py, topic, Args::Objects { args, kwargs }, options)
    }

    /// Publishes a message with explicit `args` (tuple) and `kwargs` (dict).
    #[pyo3(signature = (topic, args = None, kwargs = None, block = true, timeout = 0.0, *, max_spin = 65535))]
    #[allow(clippy::too_many_arguments)]
    fn publish(
        &self,
        py: Python<'_>,
        topic: &Bound<'_, PyAny>,
        args: Option<&Bound<'_, PyAny>>,
        kwargs: Option<Bound<'_, PyDict>>,
        block: bool,
        timeout: f64,
        max_spin: u32,
    ) -> PyResult<()> {
        // A tuple or a list: any other iterable would be split silently (a str into its
        // characters), where the reference refuses everything but a tuple.
        let args = match args {
            None => PyTuple::empty(py),
            Some(a) => match (a.cast::<PyTuple>(), a.cast::<PyList>()) {
                (Ok(t), _) => t.clone(),
                (_, Ok(l)) => l.to_tuple(),
                _ => {
                    return Err(PyTypeError::new_err(format!(
                        "publish() args must be a tuple (or a list) of the handler's positional \
                         arguments, got {}; for one argument write (value,)",
                        a.get_type().name()?
                    )))
                }
            },
        };
        if let Some(kw) = &kwargs {
            check_keyword_names(kw)?;
        }
        let options = PutOptions {
            block,
            max_spin,
            timeout,
        };
        self.enqueue(py, topic, Args::Objects { args, kwargs }, options)
    }

    /// Takes one message off the queue (bypassing the hooks).
    #[pyo3(signature = (block = true, max_spin = 65535, timeout = 0.0))]
    fn get(
        &self,
        py: Python<'_>,
        block: bool,
        max_spin: u32,
        timeout: f64,
    ) -> PyResult<PyMessagePayload> {
        let wait = GetWait {
            block,
            max_spin,
            timeout: wait_limit(timeout)?,
        };
        self.shared.source.take(py, wait)
    }

    /// Starts dispatching: on the running asyncio loop when called from one (coroutine
    /// handlers are awaited there, one message after another), else on a background thread.
    fn start(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        if this.shared.source.is_closed() {
            return Err(bus::closed());
        }
        if this.shared.is_active() {
            this.log(py)?
                .call_method1("warning", (format!("{} already started!", slf.repr()?),))?;
            return Ok(());
        }
        if let Some(running) = aio::running_loop(py)? {
            return PyEventEngine::start_on_loop(slf, &running);
        }
        this.refuse_coroutines_on_thread(py, "start() outside an asyncio loop")?;
        this.shared.set_active(true);
        let kwargs = PyDict::new(py);
        kwargs.set_item("target", slf.getattr("run")?)?;
        kwargs.set_item("name", "EventEngine")?;
        kwargs.set_item("daemon", true)?;
        let thread = py
            .import("threading")?
            .getattr("Thread")?
            .call((), Some(&kwargs))?;
        if let Err(e) = thread.call_method0("start") {
            this.shared.set_active(false);
            return Err(e);
        }
        let old = lock(&this.thread).replace(thread.unbind());
        drop(old);
        this.log_at(
            py,
            "debug",
            format!("{} started its dispatch thread", slf.repr()?),
        );
        Ok(())
    }

    /// Dispatches messages in the calling thread while the engine is active
    /// (call `activate()` first; returns at once otherwise).
    fn run(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let shared = this.shared.clone();
        // Like `start()`: a closed engine has nothing to run on (the loop would return at once).
        if shared.source.is_closed() {
            return Err(bus::closed());
        }
        this.refuse_coroutines_on_thread(py, "run()")?;
        dispatch_loop::run(py, &shared, &this.hooks, &this.logger)
    }

    /// Stops the loop (and the timers) and joins the background thread.
    fn stop(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let was_active = this.shared.is_active();
        this.shared.set_active(false);
        this.stop_timers(py);
        // On a loop: its dispatch ends after the message in hand (never waited for here: the
        // loop may be the caller's own).
        let state = lock(&this.aio).as_ref().map(|s| s.clone_ref(py));
        if let Some(state) = state {
            state.bind(py).call_method0("stop")?;
        }
        let thread = lock(&this.thread).take();
        if let Some(thread) = thread {
            let thread = thread.into_bound(py);
            let current = py.import("threading")?.call_method0("current_thread")?;
            // A handler may stop its own engine: that thread just ends after the batch.
            if !thread.is(&current) {
                thread.call_method0("join")?;
            }
        }
        if !was_active {
            this.log(py)?
                .call_method1("warning", ("EventEngine already stopped!",))?;
        } else {
            this.log_at(py, "debug", format!("{} stopped", slf.repr()?));
        }
        Ok(())
    }

    /// Publishes like `put`, as an awaitable that never blocks the event loop: with no room on
    /// the bus (or in the queue) it waits asynchronously, retrying, and raises `Full` after
    /// `timeout` seconds (None: no limit; 0 or less: at once), or at once with
    /// `block=False`.
    #[pyo3(signature = (topic, *args, block = true, timeout = None, **kwargs))]
    fn aput<'py>(
        slf: &Bound<'py, Self>,
        topic: &Bound<'py, PyAny>,
        args: Bound<'py, PyTuple>,
        block: bool,
        timeout: Option<f64>,
        kwargs: Option<Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        if timeout.is_some_and(f64::is_nan) {
            return Err(PyValueError::new_err(
                "timeout is NaN; give a number of seconds, or None to wait without limit",
            ));
        }
        let options = PutOptions {
            block: false,
            max_spin: 0,
            timeout: 0.0,
        };
        let objects = Args::Objects {
            args: args.clone(),
            kwargs: kwargs.clone(),
        };
        match slf.get().enqueue(py, topic, objects, options) {
            Ok(()) => aio::ready_none(py),
            Err(e) if block && e.is_instance_of::<Full>(py) => {
                aio::helper(py, "aput_wait")?.call1((slf, topic, args, kwargs, timeout))
            }
            Err(e) => {
                Ok(Bound::new(py, aio::Ready::failed(e.into_value(py).into_any()))?.into_any())
            }
        }
    }

    /// The next message (`MessagePayload`, bypassing the hooks) as an awaitable that never
    /// blocks the event loop; raises `Empty` after `timeout` seconds (None: no limit; 0 or
    /// less: at once). A cancelled `aget` takes nothing: the message it would have returned is
    /// the next one's.
    #[pyo3(signature = (timeout = None))]
    fn aget<'py>(slf: &Bound<'py, Self>, timeout: Option<f64>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        if timeout.is_some_and(f64::is_nan) {
            return Err(PyValueError::new_err(
                "timeout is NaN; give a number of seconds, or None to wait without limit",
            ));
        }
        let this = slf.get();
        if this.shared.is_active() {
            return Err(pyo3::exceptions::PyRuntimeError::new_err(
                "aget() cannot run while the engine dispatches (its handlers receive the \
                 messages); call stop() first",
            ));
        }
        // The relay first: a take that finds nothing asks it to wait on the bus.
        relay::start(&this.shared)?;
        if let Some(p) = this.shared.source.take_on_loop(py)? {
            return Ok(
                Bound::new(py, aio::Ready::new(Some(Py::new(py, p)?.into_any())))?.into_any(),
            );
        }
        aio::helper(py, "aget_wait")?.call1((slf, timeout))
    }

    /// The fd an asyncio loop watches for this engine (internal: `event_engine._asyncio`).
    fn _aio_fd(&self) -> PyResult<i32> {
        let fd = self.shared.source.loop_fd()?;
        relay::start(&self.shared)?;
        Ok(fd)
    }

    /// One drain on the loop (internal: `event_engine._asyncio`): dispatches what is ready, at
    /// most `budget` messages. Returns None when nothing is left (the fd signals the next),
    /// True when the budget ran out, a list of `(awaitable, handler, topic, logger)` to await
    /// before the next drain, or False when the dispatch ends (stopped, closed or failed).
    fn _aio_drain(slf: &Bound<'_, Self>, budget: usize) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let this = slf.get();
        let shared = &this.shared;
        if !shared.is_active() {
            return Ok(PyBool::new(py, false).to_owned().into_any().unbind());
        }
        let drained = {
            // A put from a handler of this drain must never wait on this engine's own
            // consumption (docs/delivery.md, "Puts from a handler").
            let _marked = Dispatching::enter(shared.id());
            let collecting = aio::Collecting::start();
            let mut dispatcher = dispatch::Dispatcher::new(&this.hooks, &this.logger);
            let drained = shared.source.drain_on_loop(py, &mut dispatcher, budget);
            (drained, collecting.finish())
        };
        for text in shared.source.news() {
            this.log_at(py, "info", text);
        }
        let (drained, awaiting) = drained;
        Ok(match drained? {
            LoopDrain::Idle => py.None(),
            LoopDrain::More => PyBool::new(py, true).to_owned().into_any().unbind(),
            LoopDrain::Awaiting => PyList::new(py, awaiting)?.into_any().unbind(),
            LoopDrain::Ended => {
                shared.set_active(false);
                PyBool::new(py, false).to_owned().into_any().unbind()
            }
            LoopDrain::Failed(text) => {
                shared.set_active(false);
                this.log(py)?.call_method1("error", (text,))?;
                PyBool::new(py, false).to_owned().into_any().unbind()
            }
        })
    }

    /// The next message without waiting, or None with the loop's fd armed (internal:
    /// `event_engine._asyncio`).
    fn _aio_take(&self, py: Python<'_>) -> PyResult<Option<PyMessagePayload>> {
        self.shared.source.take_on_loop(py)
    }

    /// The engine's loop state (internal: `event_engine._asyncio`).
    #[getter]
    fn _aio_state(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        lock(&self.aio).as_ref().map(|s| s.clone_ref(py))
    }

    #[setter(_aio_state)]
    fn set_aio_state(&self, state: Option<Py<PyAny>>) {
        let old = std::mem::replace(&mut *lock(&self.aio), state);
        drop(old);
    }

    /// Marks the engine active (start() does this).
    fn activate(&self) {
        self.shared.set_active(true);
    }

    /// Marks the engine inactive: a running loop returns after its current batch.
    fn deactivate(&self) {
        self.shared.set_active(false);
    }

    /// Whether the engine is running (its loop dispatches).
    #[getter]
    fn active(&self) -> bool {
        self.shared.is_active()
    }

    /// Stops the engine if it runs, ends its timers and detaches it from its bus (a no-op
    /// for an in-process engine beyond stopping). Idempotent.
    fn close(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        if this.shared.is_active() {
            PyEventEngine::stop(slf)?;
        }
        this.stop_timers(py);
        this.leave_loop(py)?;
        let source = &this.shared.source;
        source.end_relay(py);
        let (Some(name), true) = (source.bus_name(), source.close()?) else {
            return Ok(());
        };
        this.log_at(
            py,
            "info",
            format!("detached from bus \"{name}\" (pid {})", std::process::id()),
        );
        // Leaving reaps what dead processes left, if any.
        this.log_reaps(py);
        Ok(())
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(slf: &Bound<'_, Self>, _exc: &Bound<'_, PyTuple>) -> PyResult<bool> {
        PyEventEngine::close(slf)?;
        Ok(false)
    }

    /// Whether `close()` detached this engine from its bus (always False in-process).
    #[getter]
    fn closed(&self) -> bool {
        self.shared.source.is_closed()
    }

    /// Name of the shared-memory bus this engine is attached to (None: in-process).
    #[getter]
    fn bus(&self) -> Option<String> {
        self.shared.source.bus_name().map(str::to_owned)
    }

    /// Work-sharing group this engine belongs to on its bus (None: receives everything).
    #[getter]
    fn group(&self) -> Option<String> {
        self.shared.source.group().map(str::to_owned)
    }

    /// A lossy engine (`lossy=True`): messages for it that publishers took because it was a
    /// full ring behind. 0 for any other engine; it only grows, so two readings tell of a gap.
    #[getter]
    fn missed(&self) -> u64 {
        self.shared.source.missed()
    }

    /// Lends `nbytes` of writable memory in the bus (an `event_engine.Loan`: buffer protocol,
    /// context manager) for a producer to fill in place; a `put` whose one buffer argument is
    /// that memory (the loan, a `memoryview` of it, a numpy array over it) publishes it without
    /// a copy, and spends it. Waits for a free block like `put` (`timeout` seconds, `None`:
    /// for ever; `block=False`: not at all), raising `Full`. An engine without a bus lends a
    /// `bytearray`.
    #[pyo3(signature = (nbytes, *, block = true, timeout = None))]
    fn loan<'py>(
        &self,
        py: Python<'py>,
        nbytes: i64,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let nbytes = usize::try_from(nbytes).map_err(|_| {
            PyValueError::new_err(format!(
                "loan() needs a size of 0 bytes or more, got {nbytes}"
            ))
        })?;
        let timeout = match (block, timeout) {
            (false, _) => Some(std::time::Duration::ZERO),
            (true, None) => None,
            (true, Some(t)) if t.is_finite() && t >= 0.0 => {
                Some(std::time::Duration::from_secs_f64(t))
            }
            (true, Some(t)) => {
                return Err(PyValueError::new_err(format!(
                    "loan() timeout must be a number of seconds, 0 or more, or None, got {t}"
                )))
            }
        };
        self.shared.source.loan(py, nbytes, timeout)
    }

    /// Loans this engine published from their own block, without a copy.
    #[getter]
    fn loans_published(&self) -> u64 {
        self.shared.source.loans_published()
    }

    /// Maximum number of queued messages.
    #[getter]
    fn capacity(&self) -> usize {
        self.shared.source.capacity()
    }

    /// Number of messages waiting in the queue.
    #[getter]
    fn occupied(&self) -> usize {
        self.shared.source.len()
    }

    /// Number of messages put so far: the `seq_id` the next one gets (the first gets 0).
    #[getter]
    fn seq_id(&self) -> u64 {
        self.shared.seq.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The engine's logger (the package logger unless one was given).
    #[getter]
    fn logger<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.log(py)
    }

    #[setter]
    fn set_logger(&self, logger: Option<Py<PyAny>>) {
        logger::replace(&self.logger, logger);
    }

    /// Adds `handler` to the hook of `topic`, creating the hook if needed.
    #[pyo3(signature = (topic, handler, deduplicate = false))]
    fn register_handler(
        &self,
        py: Python<'_>,
        topic: &Bound<'_, PyAny>,
        handler: &Bound<'_, PyAny>,
        deduplicate: bool,
    ) -> PyResult<()> {
        let parsed = topic_arg(topic, "register_handler()")?;
        check_callable(handler)?;
        if lock(&self.thread).is_some() && aio::is_coroutine_function(py, handler)? {
            return Err(PyTypeError::new_err(format!(
                "register_handler(): {} is a coroutine function (async def), and this engine \
                 dispatches on a thread, which cannot await it. Start the engine from a \
                 coroutine running on an asyncio event loop (it then dispatches on that loop), \
                 or register a plain function",
                handler.repr()?
            )));
        }
        let existing = lock(&self.hooks).get(&parsed).map(|h| h.clone_ref(py));
        let hook = match existing {
            Some(h) => h,
            None => {
                let logger = lock(&self.logger).as_ref().map(|l| l.clone_ref(py));
                let topic_obj = topic.cast::<PyTopic>()?.clone().unbind();
                let created = Py::new(py, PyEventHook::create(topic_obj, logger, false, false))?;
                let mut table = lock(&self.hooks);
                // Another thread may have created it meanwhile: keep the first.
                match table.get(&parsed) {
                    Some(h) => h.clone_ref(py),
                    None => {
                        table.insert((*parsed).clone(), created.clone_ref(py));
                        drop(table);
                        self.log_at(
                            py,
                            "debug",
                            format!("new EventHook for \"{}\"", parsed.literal()),
                        );
                        created
                    }
                }
            }
        };
        hook.get()
            .add_handler_checked(py, handler, deduplicate, None)?;
        // Every time, not only for a new hook: if an earlier rewrite of the interest failed
        // (a stopped process holding the bus's table lock), registering again repairs it.
        self.hooks_changed(py)
    }

    /// Removes `handler` from the hook of `topic`; an emptied hook is dropped.
    fn unregister_handler(
        &self,
        py: Python<'_>,
        topic: &Bound<'_, PyAny>,
        handler: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let parsed = topic_arg(topic, "unregister_handler()")?;
        let hook = lock(&self.hooks).get(&parsed).map(|h| h.clone_ref(py));
        let Some(hook) = hook else {
            self.log(py)?.call_method1(
                "error",
                (format!(
                    "No EventHook registered for \"{}\"",
                    parsed.literal()
                ),),
            )?;
            return Ok(());
        };
        hook.get().remove_handler_checked(py, handler);
        if hook.get().handler_count() == 0 {
            let removed = lock(&self.hooks).remove(&parsed);
            drop(removed);
            self.hooks_changed(py)?;
        }
        Ok(())
    }

    /// Registers a hook; a different hook already on its topic is a KeyError.
    fn register_hook(&self, py: Python<'_>, hook: Bound<'_, PyEventHook>) -> PyResult<()> {
        let topic = hook.get().topic_ref().borrow(py).inner.clone();
        let mut table = lock(&self.hooks);
        if let Some(existing) = table.get(&topic) {
            if !existing.bind(py).is(&hook) {
                return Err(PyKeyError::new_err(format!(
                    "another EventHook is already registered for topic \"{}\"",
                    topic.literal()
                )));
            }
            return Ok(());
        }
        let old = table.insert((*topic).clone(), hook.unbind());
        drop(table);
        drop(old);
        self.hooks_changed(py)
    }

    /// Unregisters and returns the hook of `topic` (KeyError when there is none).
    fn unregister_hook(
        &self,
        py: Python<'_>,
        topic: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyEventHook>> {
        let topic = topic_arg(topic, "unregister_hook()")?;
        let removed = lock(&self.hooks).remove(&topic);
        match removed {
            Some((_, hook)) => {
                self.hooks_changed(py)?;
                Ok(hook)
            }
            None => Err(PyKeyError::new_err(format!(
                "no EventHook registered for topic \"{}\"",
                topic.literal()
            ))),
        }
    }

    /// The hook registered on exactly `topic` (KeyError when there is none).
    fn get_hook(&self, py: Python<'_>, topic: &Bound<'_, PyAny>) -> PyResult<Py<PyEventHook>> {
        let topic = topic_arg(topic, "get_hook()")?;
        let hook = lock(&self.hooks).get(&topic).map(|h| h.clone_ref(py));
        hook.ok_or_else(|| {
            PyKeyError::new_err(format!(
                "no EventHook registered for topic \"{}\"",
                topic.literal()
            ))
        })
    }

    /// The hooks a message on `topic` reaches: the hook of that exact topic, then every
    /// generic hook whose topic matches it (an empty list when none does).
    fn __getitem__(
        &self,
        py: Python<'_>,
        topic: &Bound<'_, PyAny>,
    ) -> PyResult<Vec<Py<PyEventHook>>> {
        let topic = topic_arg(topic, "EventEngine[topic]")?;
        let mut hooks = Vec::new();
        dispatch::route_into(
            py,
            &self.hooks,
            None,
            topic.hash_value(),
            topic.literal(),
            &mut hooks,
        );
        Ok(hooks)
    }

    /// `{Topic: EventHook}` of the exact topics (a copy). The keys are `Topic`s, as
    /// PyEventEngine 0.6.2's compiled engine gives, that also equal their topic strings, as its
    /// pure-Python engine and hook-map helpers give (`TopicKey`): `list(m) == ["registry.hook"]`,
    /// `m[Topic("registry.hook")]` and `m["registry.hook"]` all work.
    #[getter]
    fn exact_topic_hook_map<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.hook_map(py, true)
    }

    /// `{Topic: EventHook}` of the generic topics (a copy; keys as in `exact_topic_hook_map`).
    #[getter]
    fn generic_topic_hook_map<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.hook_map(py, false)
    }

    /// Iterator over every hook (exact topics first).
    fn event_hooks<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        PyList::new(py, self.all_hooks(py))?
            .as_any()
            .try_iter()
            .map(Bound::into_any)
    }

    /// Iterator over every registered topic.
    fn topics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let topics: Vec<Py<PyTopic>> = self
            .all_hooks(py)
            .iter()
            .map(|h| h.get().topic_ref().clone_ref(py))
            .collect();
        PyList::new(py, topics)?
            .as_any()
            .try_iter()
            .map(Bound::into_any)
    }

    /// Iterator over `(topic, hook)` pairs.
    fn items<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let pairs: Vec<(Py<PyTopic>, Py<PyEventHook>)> = self
            .all_hooks(py)
            .into_iter()
            .map(|h| (h.get().topic_ref().clone_ref(py), h))
            .collect();
        PyList::new(py, pairs)?
            .as_any()
            .try_iter()
            .map(Bound::into_any)
    }

    fn __len__(&self) -> usize {
        lock(&self.hooks).len()
    }

    /// Removes every hook (and timer). On a running engine it logs an error and leaves
    /// everything in place, as the reference does (it is often called in `finally` blocks).
    fn clear(&self, py: Python<'_>) -> PyResult<()> {
        if self.shared.is_active() {
            self.log(py)?.call_method1(
                "error",
                (
                    "EventEngine must be stopped before clear(): call stop() (or deactivate()) \
                  first; nothing was cleared",
                ),
            )?;
            return Ok(());
        }
        self.stop_timers(py);
        let hooks = self.all_hooks(py);
        let old = std::mem::replace(&mut *lock(&self.hooks), HookTable::new());
        for h in &hooks {
            h.get().clear_handlers();
        }
        drop(old);
        self.hooks_changed(py)
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let this = slf.get();
        let state = if this.active() { "active" } else { "idle" };
        let name = slf.get_type().name()?;
        let source = &this.shared.source;
        let capacity = this.capacity();
        let Some(bus) = source.bus_name() else {
            return Ok(format!("<{name} {state}>(capacity={capacity})"));
        };
        let group = match source.group() {
            Some(g) => format!(", group={g:?}"),
            None => String::new(),
        };
        let closed = if source.is_closed() { ", closed" } else { "" };
        Ok(format!(
            "<{name} {state}>(capacity={capacity}, bus={bus:?}{group}{closed})"
        ))
    }
}
