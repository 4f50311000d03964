//! `EventEngine`: a message source, a hook table and the dispatch loop.
//!
//! Messages come from a [`MessageSource`] (see `source.rs`). The loop
//! releases the GIL while it waits, takes it once per batch of ready messages,
//! and routes each message through the `HookTable`'s cached route for its
//! topic, so a message costs one hash lookup plus the handler calls.
//!
//! No Rust lock is ever held while Python code runs (handlers may register
//! handlers, stop the engine, ...): routes are copied out of the table first.
//! (The one exception is a bus engine's subscriber, held by its dispatch thread
//! while a batch is handled, so that each message is acknowledged only after
//! its handlers ran.)
//!
//! A bus engine (`bus=`, or `init_allocator(with_shm=True)`) receives from the
//! shared-memory bus: the loop waits without the GIL, skips messages no local
//! hook routes (by topic hash and literal, without decoding them), and takes the
//! GIL once per batch of ready messages.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, TryLockError};
use std::time::{Duration, UNIX_EPOCH};

use engine_core::{BoundedQueue, HookTable, Timer, Topic};
use pyo3::exceptions::{PyKeyError, PyTypeError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList, PyTuple};

use crate::bus::{self, BusSource};
use crate::errors::{Empty, Full};
use crate::exit;
use crate::hook::PyEventHook;
use crate::lock;
use crate::logger;
use crate::payload::PyMessagePayload;
use crate::source::{LoopGuard, Message, MessageSource, Published, Shared, TimerTick};
use crate::topic::{not_exact, topic_arg, PyTopic};

/// Most messages dispatched per GIL acquisition.
const BATCH: usize = 1024;
/// How long an idle loop parks before re-checking `active` (a stop wakes it sooner).
const IDLE_WAIT: Duration = Duration::from_millis(500);
/// How long a bus loop waits in one call (stop and local ticks interrupt it). Longer than the
/// idle time after which a waiting subscriber reaps dead processes, so that an idle engine
/// does that reaping (and a dead group member's message is redelivered).
const BUS_IDLE_WAIT: Duration = Duration::from_secs(5);
/// How long a bus loop polls for the next message before it may sleep: awake through a
/// stream, it spares the publishers a futex wake-up per message.
const HOT_POLL: Duration = Duration::from_micros(200);

/// `None` for "wait forever" (the reference's `timeout=0.0`), else the duration.
fn wait_limit(timeout: f64) -> Option<Duration> {
    (timeout > 0.0 && timeout.is_finite()).then(|| Duration::from_secs_f64(timeout))
}

/// How a put waits for room: `put`'s `block`, `max_spin` and `timeout`.
struct PutWait {
    block: bool,
    max_spin: u32,
    timeout: f64,
}

/// A timer started by `EventEngineEx.get_timer`, owned by the engine.
pub(crate) struct RunningTimer {
    pub(crate) interval: f64,
    pub(crate) topic: Py<PyTopic>,
    pub(crate) timer: Timer,
}

/// The event engine: a queue, the hooks and the dispatch loop.
#[pyclass(name = "EventEngine", module = "event_engine", subclass, frozen)]
pub struct PyEventEngine {
    pub(crate) shared: Arc<Shared>,
    hooks: Mutex<HookTable<Py<PyEventHook>>>,
    logger: Mutex<Option<Py<PyAny>>>,
    thread: Mutex<Option<Py<PyAny>>>,
    pub(crate) timers: Mutex<Vec<RunningTimer>>,
}

static DATETIME: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

impl PyEventEngine {
    /// Tells the bus what this engine wants now: the topics of its hooks (a bus engine with no
    /// hook is addressed nothing). Nothing for an in-process engine.
    pub(crate) fn hooks_changed(&self, py: Python<'_>) -> PyResult<()> {
        let Some(bs) = self.shared.source.bus() else {
            return Ok(());
        };
        let topics: Vec<String> = lock(&self.hooks)
            .iter()
            .map(|(t, _)| t.literal().to_owned())
            .collect();
        bs.set_interest(py, topics)
    }

    pub(crate) fn create(
        py: Python<'_>,
        capacity: i64,
        logger: Option<Py<PyAny>>,
        bus: Option<&str>,
        group: Option<&str>,
    ) -> PyResult<Self> {
        // Taken as a signed int so a negative capacity gets this message, not an OverflowError.
        let capacity = usize::try_from(capacity)
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| {
                pyo3::exceptions::PyValueError::new_err(format!(
                    "EventEngine capacity must be at least 1, got {capacity}"
                ))
            })?;
        let source = match BusSource::attach(py, bus, group, capacity)? {
            Some(b) => MessageSource::Bus(Box::new(b)),
            None => MessageSource::InProcess(BoundedQueue::new(capacity)),
        };
        let engine = PyEventEngine {
            shared: Arc::new(Shared {
                source,
                active: AtomicBool::new(false),
                seq: AtomicU64::new(0),
                pending_wakes: AtomicUsize::new(0),
                loops: AtomicUsize::new(0),
                state: (Mutex::new(()), Condvar::new()),
            }),
            hooks: Mutex::new(HookTable::new()),
            logger: Mutex::new(logger),
            thread: Mutex::new(None),
            timers: Mutex::new(Vec::new()),
        };
        exit::watch(&engine.shared);
        if let Some(bs) = engine.shared.source.bus() {
            let group = bs
                .group()
                .map(|g| format!(" in group \"{g}\""))
                .unwrap_or_default();
            engine.log_at(
                py,
                "info",
                format!(
                    "attached to bus \"{}\"{group} (pid {}, ring of {} slots)",
                    bs.name(),
                    std::process::id(),
                    bs.capacity()
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

    /// Copies the hooks routed to `topic` into `out` (no lock held afterwards).
    fn route_into(&self, py: Python<'_>, topic: &Topic, out: &mut Vec<Py<PyEventHook>>) {
        let mut table = lock(&self.hooks);
        out.extend(table.route(topic).map(|h| h.clone_ref(py)));
    }

    /// Dispatches a message received from the bus to this engine's hooks; a message no hook
    /// routes is dropped before it is decoded.
    fn dispatch_bus(
        &self,
        py: Python<'_>,
        m: &shm_ring::Message<'_>,
        hooks: &mut Vec<Py<PyEventHook>>,
    ) {
        {
            let mut table = lock(&self.hooks);
            hooks.extend(
                table
                    .route_literal(m.topic_hash, m.topic)
                    .map(|h| h.clone_ref(py)),
            );
        }
        if hooks.is_empty() {
            return;
        }
        let decoded = bus::topic_for(py, m.topic_hash, m.topic)
            .and_then(|t| Ok((t, bus::decode(py, m.codec, m.payload)?)));
        let (topic, (args, kwargs)) = match decoded {
            Ok(v) => v,
            Err(e) => {
                hooks.clear();
                self.report_bad_message(py, m.topic, e);
                return;
            }
        };
        let topic = topic.bind(py).as_any();
        for hook in hooks.drain(..) {
            hook.get().dispatch(py, topic, &args, kwargs.as_ref());
        }
    }

    fn report_bad_message(&self, py: Python<'_>, topic: &str, e: PyErr) {
        let text = format!("cannot decode a message on \"{topic}\" from the bus: {e}");
        match self.log(py) {
            Ok(log) => {
                if let Err(e) = log.call_method1("error", (text,)) {
                    e.write_unraisable(py, None);
                }
            }
            Err(e) => e.write_unraisable(py, None),
        }
    }

    /// The dispatch loop of a bus engine (see the module notes).
    fn run_bus(&self, py: Python<'_>, bs: &BusSource) -> PyResult<()> {
        let shared = &self.shared;
        let mut hooks = Vec::new();
        // Redelivered messages received so far (logged as their count grows).
        let mut redelivered = 0;
        while shared.active.load(Ordering::Acquire) {
            // Local items first: timer ticks, and the wake-ups of a stop.
            while let Some(msg) = bs.local.try_pop() {
                self.dispatch_message(py, msg, &mut hooks);
            }
            if !shared.active.load(Ordering::Acquire) {
                break;
            }
            let Some(intr) = bs.interrupter() else {
                break;
            };
            let table = &self.hooks;
            // Only `get()` (possibly blocked for a long time) and `close()` contend for it:
            // wait for it without the GIL, so that the rest of the process keeps running.
            let mut guard = match bs.subscriber.try_lock() {
                Ok(g) => g,
                Err(TryLockError::Poisoned(p)) => p.into_inner(),
                Err(TryLockError::WouldBlock) => {
                    exit::detach(py, || drop(lock(&bs.subscriber)));
                    continue;
                }
            };
            let Some(sub) = guard.as_mut() else {
                break;
            };
            let first = exit::detach(py, || {
                let mut routed =
                    |m: &shm_ring::Message<'_>| lock(table).has_route(m.topic_hash, m.topic);
                sub.recv_with(shm_ring::RecvOptions {
                    timeout: Some(BUS_IDLE_WAIT),
                    hot: Some(HOT_POLL),
                    interrupter: Some(&intr),
                    wanted: Some(&mut routed),
                })
            });
            match first {
                Err(e) => {
                    drop(guard.take());
                    drop(guard);
                    return self.dispatch_failed(py, bs, e);
                }
                Ok(None) => {
                    self.log_bus_news(py, bs, sub, &mut redelivered);
                    drop(guard);
                    py.check_signals()?;
                    continue;
                }
                Ok(Some(m)) => self.dispatch_bus(py, &m, &mut hooks),
            }
            // The rest of the batch with the GIL kept; each message (the first one included)
            // is acknowledged only after its handlers ran.
            let rest = sub.recv_batch(BATCH - 1, Some(Duration::ZERO), |m| {
                self.dispatch_bus(py, m, &mut hooks)
            });
            if let Err(e) = rest {
                drop(guard.take());
                drop(guard);
                return self.dispatch_failed(py, bs, e);
            }
            self.log_bus_news(py, bs, sub, &mut redelivered);
        }
        Ok(())
    }

    /// Logs at INFO what the dispatch loop's waits did besides receiving: reaps (a wait reaps
    /// dead processes now and then) and the messages of a dead group member redelivered to
    /// us; `seen` keeps the count of redelivered messages already logged.
    fn log_bus_news(
        &self,
        py: Python<'_>,
        bs: &BusSource,
        sub: &shm_ring::Subscriber,
        seen: &mut u64,
    ) {
        self.log_reaps(py);
        let now = sub.redelivered();
        let before = *seen;
        if now > before {
            let group = bs.group().unwrap_or_default();
            self.log_at(
                py,
                "info",
                format!(
                    "received {} redelivered message(s) on bus \"{}\": a dead member of group \
                     \"{group}\" had taken them before it could handle them",
                    now - before,
                    bs.name()
                ),
            );
            *seen = now;
        }
    }

    /// The bus refused a receive (a corrupt region): an engine that stays attached without
    /// dispatching would keep its consumer bit and fill the ring for every publisher. It
    /// detaches (the subscriber was dropped already), becomes inactive and logs why; the loop
    /// then ends like a stopped one.
    fn dispatch_failed(
        &self,
        py: Python<'_>,
        bs: &BusSource,
        e: shm_ring::BusError,
    ) -> PyResult<()> {
        self.shared.set_active(false);
        let closed = bs.close();
        let text = format!(
            "EventEngine on bus \"{}\" stopped dispatching and detached from the bus: {e}. \
             Its handlers receive nothing more and `active` is False; once the bus is repaired \
             or replaced, create a new engine to attach again",
            bs.name()
        );
        self.log(py)?.call_method1("error", (text,))?;
        closed
    }

    fn dispatch_message(&self, py: Python<'_>, msg: Message, hooks: &mut Vec<Py<PyEventHook>>) {
        match msg {
            Message::Published(p) => {
                self.route_into(py, &p.topic, hooks);
                if hooks.is_empty() {
                    return;
                }
                let topic = p.topic_obj.bind(py).as_any();
                let args = p.args.bind(py);
                let kwargs = p.kwargs.as_ref().map(|k| k.bind(py));
                for hook in hooks.drain(..) {
                    hook.get().dispatch(py, topic, args, kwargs);
                }
            }
            Message::Tick(t) => {
                self.route_into(py, &t.topic, hooks);
                if hooks.is_empty() {
                    return;
                }
                let built = tick_objects(py, &t);
                let (topic, kwargs) = match built {
                    Ok(v) => v,
                    Err(e) => {
                        hooks.clear();
                        e.write_unraisable(py, None);
                        return;
                    }
                };
                let args = PyTuple::empty(py);
                for hook in hooks.drain(..) {
                    hook.get().dispatch(py, &topic, &args, Some(&kwargs));
                }
            }
            Message::Wake => {
                self.shared.pending_wakes.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    fn payload_of(&self, py: Python<'_>, msg: Message) -> PyResult<Option<PyMessagePayload>> {
        Ok(match msg {
            Message::Published(p) => Some(PyMessagePayload {
                topic: Some(p.topic_obj),
                args: Some(p.args),
                kwargs: p.kwargs,
                seq_id: p.seq_id,
            }),
            Message::Tick(t) => {
                let (topic, kwargs) = tick_objects(py, &t)?;
                Some(PyMessagePayload {
                    topic: Some(topic.cast_into::<PyTopic>()?.unbind()),
                    args: Some(PyTuple::empty(py).unbind()),
                    kwargs: Some(kwargs.unbind()),
                    seq_id: t.seq_id,
                })
            }
            Message::Wake => {
                self.shared.pending_wakes.fetch_sub(1, Ordering::Relaxed);
                None
            }
        })
    }

    fn enqueue(
        &self,
        py: Python<'_>,
        topic_obj: &Bound<'_, PyAny>,
        args: Py<PyTuple>,
        kwargs: Option<Py<PyDict>>,
        wait: PutWait,
    ) -> PyResult<()> {
        let PutWait {
            block,
            max_spin,
            timeout,
        } = wait;
        let topic = topic_arg(topic_obj, "put()/publish()")?;
        if !topic.is_exact() {
            return Err(not_exact(&topic));
        }
        if let Some(bs) = self.shared.source.bus() {
            let args = args.bind(py);
            let kwargs = kwargs.as_ref().map(|k| k.bind(py));
            bs.put(
                py,
                topic.literal(),
                args,
                kwargs,
                block,
                wait_limit(timeout),
            )?;
            self.shared.next_seq();
            return Ok(());
        }
        let topic_obj = topic_obj.cast::<PyTopic>()?.clone().unbind();
        let seq_id = self.shared.next_seq();
        let msg = Message::Published(Published {
            topic,
            topic_obj,
            args,
            kwargs,
            seq_id,
        });
        let msg = match self.shared.source.try_push(msg) {
            Ok(()) => return Ok(()),
            Err(msg) => msg,
        };
        if !block {
            drop(msg);
            self.shared.unnumber();
            return Err(self.full_error(None));
        }
        let limit = wait_limit(timeout);
        let shared = &self.shared;
        match exit::detach(py, || shared.source.push_wait(msg, max_spin, limit)) {
            Ok(()) => Ok(()),
            Err(msg) => {
                drop(msg);
                self.shared.unnumber();
                Err(self.full_error(limit))
            }
        }
    }

    /// `get()` on a bus engine: a local item (a timer tick) if there is one, else the next
    /// message on the bus, decoded.
    fn get_bus(
        &self,
        py: Python<'_>,
        bs: &BusSource,
        block: bool,
        limit: Option<Duration>,
    ) -> PyResult<PyMessagePayload> {
        while let Some(msg) = bs.local.try_pop() {
            if let Some(payload) = self.payload_of(py, msg)? {
                return Ok(payload);
            }
        }
        let wait = if block { limit } else { Some(Duration::ZERO) };
        let Some(m) = bs.take_one(py, wait)? else {
            return Err(match wait {
                Some(d) if block => Empty::new_err(format!(
                    "bus \"{}\" empty: no message within {:.3} s",
                    bs.name(),
                    d.as_secs_f64()
                )),
                _ => Empty::new_err(format!("bus \"{}\" empty", bs.name())),
            });
        };
        let topic = bus::topic_for(py, m.topic_hash, &m.topic)?;
        let (args, kwargs) = bus::decode(py, m.codec, &m.payload)?;
        Ok(PyMessagePayload {
            topic: Some(topic),
            args: Some(args.unbind()),
            kwargs: kwargs.map(Bound::unbind),
            seq_id: m.seq,
        })
    }

    fn full_error(&self, waited: Option<Duration>) -> PyErr {
        let cap = self.shared.source.capacity();
        match waited {
            Some(d) => Full::new_err(format!(
                "queue full: no room among {cap} slots within {:.3} s",
                d.as_secs_f64()
            )),
            None => Full::new_err(format!("queue full ({cap} messages waiting)")),
        }
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
        exit::detach(py, move || {
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
            out.set_item(h.get().topic_ref().clone_ref(py), h)?;
        }
        Ok(out)
    }

    fn all_hooks(&self, py: Python<'_>) -> Vec<Py<PyEventHook>> {
        lock(&self.hooks)
            .iter()
            .map(|(_, h)| h.clone_ref(py))
            .collect()
    }
}

/// The topic object and kwargs dict a timer tick is dispatched with.
fn tick_objects<'py>(
    py: Python<'py>,
    t: &TimerTick,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyDict>)> {
    let topic = Bound::new(py, PyTopic::wrap(t.topic.clone()))?.into_any();
    let secs = t
        .scheduled
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let kwargs = PyDict::new(py);
    kwargs.set_item("interval", t.interval)?;
    if t.aligned {
        kwargs.set_item("timestamp", secs)?;
    } else {
        let dt = DATETIME.import(py, "datetime", "datetime")?;
        kwargs.set_item("trigger_time", dt.call_method1("fromtimestamp", (secs,))?)?;
    }
    Ok((topic, kwargs))
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
    #[pyo3(signature = (capacity = 4095, logger = None, *, bus = None, group = None))]
    fn new(
        py: Python<'_>,
        capacity: i64,
        logger: Option<Py<PyAny>>,
        bus: Option<&str>,
        group: Option<&str>,
    ) -> PyResult<Self> {
        PyEventEngine::create(py, capacity, logger, bus, group)
    }

    /// Name of the shared-memory bus this engine is attached to (None: in-process).
    #[getter]
    fn bus(&self) -> Option<String> {
        self.shared.source.bus().map(|b| b.name().to_owned())
    }

    /// Work-sharing group this engine belongs to on its bus (None: receives everything).
    #[getter]
    fn group(&self) -> Option<String> {
        self.shared
            .source
            .bus()
            .and_then(|b| b.group().map(str::to_owned))
    }

    /// Whether `close()` detached this engine from its bus (always False in-process).
    #[getter]
    fn closed(&self) -> bool {
        self.shared.source.bus().is_some_and(BusSource::is_closed)
    }

    /// Stops the engine if it runs, ends its timers and detaches it from its bus (a no-op
    /// for an in-process engine beyond stopping). Idempotent.
    fn close(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        if this.shared.active.load(Ordering::Acquire) {
            PyEventEngine::stop(slf)?;
        }
        this.stop_timers(py);
        let Some(bs) = this.shared.source.bus() else {
            return Ok(());
        };
        if bs.is_closed() {
            return Ok(());
        }
        bs.close()?;
        this.log_at(
            py,
            "info",
            format!(
                "detached from bus \"{}\" (pid {})",
                bs.name(),
                std::process::id()
            ),
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

    /// Maximum number of queued messages.
    #[getter]
    fn capacity(&self) -> usize {
        self.shared.source.capacity()
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

    /// Whether the engine is running (its loop dispatches).
    #[getter]
    fn active(&self) -> bool {
        self.shared.active.load(Ordering::Acquire)
    }

    /// Number of messages waiting in the queue.
    #[getter]
    fn occupied(&self) -> usize {
        let wakes = self.shared.pending_wakes.load(Ordering::Relaxed);
        self.shared.source.len().saturating_sub(wakes)
    }

    /// Number of messages put so far: the `seq_id` the next one gets (the first gets 0).
    #[getter]
    fn seq_id(&self) -> u64 {
        self.shared.seq.load(Ordering::Relaxed)
    }

    /// Marks the engine active (start() does this).
    fn activate(&self) {
        self.shared.set_active(true);
    }

    /// Marks the engine inactive: a running loop returns after its current batch.
    fn deactivate(&self) {
        self.shared.set_active(false);
    }

    /// Dispatches messages in the calling thread while the engine is active
    /// (call `activate()` first; returns at once otherwise).
    fn run(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let shared = this.shared.clone();
        // Like `start()`: a closed engine has nothing to run on (the loop would return at once).
        if shared.source.bus().is_some_and(BusSource::is_closed) {
            return Err(bus::closed());
        }
        shared.loops.fetch_add(1, Ordering::AcqRel);
        let _guard = LoopGuard(&shared);
        if let Some(bs) = shared.source.bus() {
            return this.run_bus(py, bs);
        }
        let mut batch: Vec<Message> = Vec::with_capacity(BATCH);
        let mut hooks = Vec::new();
        while shared.active.load(Ordering::Acquire) {
            let source = &shared.source;
            // Messages only move between the queue and `batch` here; no Python
            // object is touched until the GIL is back.
            let n = exit::detach(py, || source.pop_batch(&mut batch, BATCH, Some(IDLE_WAIT)));
            for msg in batch.drain(..) {
                this.dispatch_message(py, msg, &mut hooks);
            }
            if n == 0 {
                py.check_signals()?;
            }
        }
        Ok(())
    }

    /// Starts the loop in a background thread.
    fn start(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        if this.shared.source.bus().is_some_and(BusSource::is_closed) {
            return Err(bus::closed());
        }
        if this.shared.active.load(Ordering::Acquire) {
            this.log(py)?
                .call_method1("warning", (format!("{} already started!", slf.repr()?),))?;
            return Ok(());
        }
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

    /// Stops the loop (and the timers) and joins the background thread.
    fn stop(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let was_active = this.shared.active.load(Ordering::Acquire);
        this.shared.set_active(false);
        this.stop_timers(py);
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

    /// Removes every hook (and timer). On a running engine it logs an error and leaves
    /// everything in place, as the reference does (it is often called in `finally` blocks).
    fn clear(&self, py: Python<'_>) -> PyResult<()> {
        if self.shared.active.load(Ordering::Acquire) {
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

    /// Publishes a message: `topic` (exact) with `*args` and `**kwargs`.
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
        self.enqueue(
            py,
            topic,
            args.unbind(),
            kwargs.map(Bound::unbind),
            PutWait {
                block,
                max_spin,
                timeout,
            },
        )
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
        self.enqueue(
            py,
            topic,
            args.unbind(),
            kwargs.map(Bound::unbind),
            PutWait {
                block,
                max_spin,
                timeout,
            },
        )
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
        let limit = wait_limit(timeout);
        if let Some(bs) = self.shared.source.bus() {
            return self.get_bus(py, bs, block, limit);
        }
        let deadline = limit.map(|d| std::time::Instant::now() + d);
        loop {
            let msg = match self.shared.source.try_pop() {
                Some(m) => Some(m),
                None if !block => None,
                None => {
                    let remaining =
                        deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
                    if remaining == Some(Duration::ZERO) {
                        None
                    } else {
                        let source = &self.shared.source;
                        exit::detach(py, || source.pop_wait(max_spin, remaining))
                    }
                }
            };
            let Some(msg) = msg else {
                return Err(match limit {
                    Some(d) if block => Empty::new_err(format!(
                        "queue empty: no message within {:.3} s",
                        d.as_secs_f64()
                    )),
                    _ => Empty::new_err("queue empty"),
                });
            };
            if let Some(payload) = self.payload_of(py, msg)? {
                return Ok(payload);
            }
        }
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
        self.route_into(py, &topic, &mut hooks);
        Ok(hooks)
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

    /// `{Topic: EventHook}` of the exact topics (a copy).
    #[getter]
    fn exact_topic_hook_map<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.hook_map(py, true)
    }

    /// `{Topic: EventHook}` of the generic topics (a copy).
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

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let this = slf.get();
        let state = if this.active() { "active" } else { "idle" };
        let name = slf.get_type().name()?;
        Ok(match this.shared.source.bus() {
            None => format!("<{name} {state}>(capacity={})", this.capacity()),
            Some(b) => {
                let group = match b.group() {
                    Some(g) => format!(", group={g:?}"),
                    None => String::new(),
                };
                let closed = if b.is_closed() { ", closed" } else { "" };
                format!(
                    "<{name} {state}>(capacity={}, bus={:?}{group}{closed})",
                    this.capacity(),
                    b.name()
                )
            }
        })
    }
}
