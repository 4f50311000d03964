//! The shared-memory side of an engine: attaching to a bus (`shm-ring`), encoding a put into
//! the bus (the compact codec for primitive arguments, pickle for anything else), decoding a
//! received message into Python objects, the per-process `Topic` cache, and the module's bus
//! functions (`init_allocator`, `inspect_bus`, `unlink_bus`).
//!
//! Each engine attached to a bus holds its own publisher and its own subscriber (fan-out, or a
//! member of a group), so several engines of one process behave like separate processes.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, TryLockError};
use std::time::Duration;

use engine_core::BoundedQueue;
use pyo3::exceptions::{
    PyAttributeError, PyOSError, PyRuntimeError, PyTimeoutError, PyTypeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple, PyType};
use shm_ring::wire::compact::{CompactReader, CompactWriter, Item};
use shm_ring::{
    Bus, BusConfig, BusError, Codec, InterestHandle, Interrupter, Publisher, SubscribeOptions,
    Subscriber,
};

use crate::errors::Full;
use crate::exit;
use crate::lock;
use crate::source::Message;
use crate::topic::PyTopic;

/// The bus `init_allocator(with_shm=True)` chose for this process's engines.
static DEFAULT_BUS: Mutex<Option<(String, BusConfig)>> = Mutex::new(None);

/// `Topic` objects of received topics, by topic hash (the literal is compared on a hit).
static TOPICS: Mutex<Option<HashMap<u64, Py<PyTopic>>>> = Mutex::new(None);
/// Beyond this many distinct topics the cache starts over (a bound, not an expected size).
const TOPIC_CACHE_LIMIT: usize = 1 << 16;

static DUMPS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static LOADS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static JSON_LOADS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

thread_local! {
    /// The encoding buffer of puts made on this thread (reused: no allocation per put).
    static BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Maps a bus error to the Python exception a user can act on.
pub(crate) fn bus_err(e: BusError) -> PyErr {
    match e {
        BusError::Full | BusError::Timeout => Full::new_err(format!("bus full: {e}")),
        BusError::Io { .. } | BusError::NoSpace { .. } => PyOSError::new_err(e.to_string()),
        BusError::LockHeld { .. } => PyTimeoutError::new_err(e.to_string()),
        BusError::TableFull { .. } | BusError::Closed => PyRuntimeError::new_err(e.to_string()),
        // The bare mismatch says what differs; the user also needs to know the ways out.
        BusError::Mismatch {
            ref name,
            field,
            found,
            ..
        } => {
            let keep = if field == "slab_blocks" {
                format!("init_allocator(capacity={found}) uses the bus as it is; otherwise ")
            } else {
                String::new()
            };
            PyValueError::new_err(format!(
                "{e}: {keep}pick another bus name, or remove this one with \
                 unlink_bus({name:?}) once no process uses it"
            ))
        }
        other => PyValueError::new_err(other.to_string()),
    }
}

/// Checks a group name before the bus is opened, so a bad one neither creates a bus file as a
/// side effect nor is reported as a bad bus name.
fn check_group(group: &str) -> PyResult<()> {
    shm_ring::validate_group(group).map_err(|e| PyValueError::new_err(e.to_string()))
}

/// Locks `m` if nobody holds it (a poisoned lock is usable, see `crate::lock`).
fn try_now<T>(m: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
    match m.try_lock() {
        Ok(g) => Some(g),
        Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}

/// The error of any call that needs the bus once `close()` detached the engine.
pub(crate) fn closed() -> PyErr {
    PyRuntimeError::new_err(
        "the engine is closed (detached from its bus): create a new engine to re-attach",
    )
}

fn default_config(slab_blocks: Option<u32>) -> BusConfig {
    let mut cfg = BusConfig::default();
    if let Some(n) = slab_blocks {
        cfg.slab_blocks = n;
    }
    cfg
}

/// `init_allocator`: with `with_shm=True`, engines created afterwards in this process attach to
/// bus `name` (default "default"), which is created now if absent; `capacity` sizes its slab.
/// An existing bus of another geometry is a ValueError saying what differs.
#[pyfunction]
#[pyo3(signature = (capacity = 4096, with_shm = false, name = None))]
pub(crate) fn init_allocator(
    py: Python<'_>,
    capacity: i64,
    with_shm: bool,
    name: Option<&str>,
) -> PyResult<()> {
    if !with_shm {
        *lock(&DEFAULT_BUS) = None;
        return Ok(());
    }
    let name = name.unwrap_or("default");
    let blocks = u32::try_from(capacity)
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| {
            PyValueError::new_err(format!(
                "init_allocator capacity must be between 1 and {} slab blocks, got {capacity}",
                u32::MAX
            ))
        })?;
    let cfg = default_config(Some(blocks));
    // Attach once now so that a bad name or another geometry is reported here.
    let bus = exit::detach(py, || Bus::open_or_create(name, &cfg)).map_err(bus_err)?;
    drop(bus);
    *lock(&DEFAULT_BUS) = Some((name.to_owned(), cfg));
    crate::logger::emit(
        py,
        crate::logger::package_logger(py),
        "debug",
        format!("engines created from now on attach to bus \"{name}\" ({blocks} slab blocks)"),
    );
    Ok(())
}

/// A read-only snapshot of bus `name` as a dict (processes, groups, slab classes, counters),
/// taken without joining the bus.
#[pyfunction]
pub(crate) fn inspect_bus<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    let snap = exit::detach(py, || shm_ring::inspect(name)).map_err(bus_err)?;
    let text = serde_json::to_string(&snap)
        .map_err(|e| PyRuntimeError::new_err(format!("cannot serialise the snapshot: {e}")))?;
    JSON_LOADS.import(py, "json", "loads")?.call1((text,))
}

/// Removes the file of bus `name` (attached processes keep their mapping).
#[pyfunction]
pub(crate) fn unlink_bus(name: &str) -> PyResult<()> {
    Bus::unlink(name).map_err(bus_err)
}

/// An engine's attachment to a bus, plus its local queue (timer ticks and wake-ups, which never
/// go on the bus).
pub(crate) struct BusSource {
    name: String,
    group: Option<String>,
    max_payload: usize,
    ring_capacity: usize,
    /// Process-table row of the subscriber (to find its lag in a snapshot).
    sub_row: u32,
    /// Timer ticks and stop wake-ups of this engine only.
    pub(crate) local: BoundedQueue<Message>,
    interrupter: Mutex<Option<Interrupter>>,
    /// What this engine wants from the bus: the topics of its hooks (see `set_interest`).
    interest: Mutex<Option<InterestHandle>>,
    publisher: Mutex<Option<Publisher>>,
    pub(crate) subscriber: Mutex<Option<Subscriber>>,
    bus: Mutex<Option<Bus>>,
}

/// A received message copied out of the bus (for `get()`, which returns it to the caller).
pub(crate) struct OwnedMessage {
    pub(crate) seq: u64,
    pub(crate) topic_hash: u64,
    pub(crate) topic: String,
    pub(crate) codec: u8,
    pub(crate) payload: Vec<u8>,
}

impl BusSource {
    /// Attaches to the bus an engine asked for (`bus=`), or to the one `init_allocator` chose;
    /// `None` when neither applies (an in-process engine).
    pub(crate) fn attach(
        py: Python<'_>,
        bus: Option<&str>,
        group: Option<&str>,
        local_capacity: usize,
    ) -> PyResult<Option<BusSource>> {
        if let Some(g) = group {
            check_group(g)?;
        }
        let chosen = lock(&DEFAULT_BUS).clone();
        let opened = match (bus, chosen) {
            (Some(name), chosen) => {
                // An explicit bus is taken with whatever geometry it has; created if absent.
                let blocks = chosen.map(|(_, c)| c.slab_blocks);
                let cfg = default_config(blocks);
                exit::detach(py, || match Bus::open(name) {
                    Err(BusError::NotFound { .. }) => Bus::open_or_create(name, &cfg),
                    other => other,
                })
            }
            (None, Some((name, cfg))) => exit::detach(py, || Bus::open_or_create(&name, &cfg)),
            (None, None) => {
                if let Some(g) = group {
                    return Err(PyValueError::new_err(format!(
                        "group={g:?} needs a bus: pass bus=\"name\" or call \
                         init_allocator(with_shm=True) first"
                    )));
                }
                return Ok(None);
            }
        };
        let bus = opened.map_err(bus_err)?;
        let publisher = bus.publisher().map_err(bus_err)?;
        // An engine wants nothing until it has hooks: a publish-only engine is never addressed,
        // so it never holds a publisher back (docs/delivery.md).
        let subscriber = bus
            .subscribe_with(&SubscribeOptions {
                group: group.map(str::to_owned),
                topics: Some(Vec::new()),
                ..SubscribeOptions::default()
            })
            .map_err(bus_err)?;
        let cfg = bus.config();
        Ok(Some(BusSource {
            name: bus.name().to_owned(),
            group: group.map(str::to_owned),
            max_payload: bus.max_payload(),
            ring_capacity: cfg.ring_capacity as usize,
            sub_row: subscriber.row(),
            local: BoundedQueue::new(local_capacity),
            interrupter: Mutex::new(Some(subscriber.interrupter())),
            interest: Mutex::new(Some(subscriber.interest())),
            publisher: Mutex::new(Some(publisher)),
            subscriber: Mutex::new(Some(subscriber)),
            bus: Mutex::new(Some(bus)),
        }))
    }

    /// The bus name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The group this engine is a member of.
    pub(crate) fn group(&self) -> Option<&str> {
        self.group.as_deref()
    }

    /// Ring slots of the bus.
    pub(crate) fn capacity(&self) -> usize {
        self.ring_capacity
    }

    /// Whether `close()` detached this engine.
    pub(crate) fn is_closed(&self) -> bool {
        lock(&self.bus).is_none()
    }

    /// Wakes the dispatch thread if it waits on the bus.
    pub(crate) fn interrupt(&self) {
        if let Some(i) = lock(&self.interrupter).as_ref() {
            i.interrupt();
        }
    }

    /// The interrupter of the dispatch wait (`None` once closed).
    pub(crate) fn interrupter(&self) -> Option<Interrupter> {
        lock(&self.interrupter).clone()
    }

    /// Messages on the bus not yet received by this engine (its group's, for a member).
    pub(crate) fn pending(&self) -> usize {
        match self.subscriber.try_lock() {
            Ok(g) => return g.as_ref().map_or(0, |s| s.pending() as usize),
            Err(TryLockError::Poisoned(p)) => {
                return p.into_inner().as_ref().map_or(0, |s| s.pending() as usize)
            }
            Err(TryLockError::WouldBlock) => {}
        }
        // The dispatch thread holds the subscriber: read this engine's row in a snapshot.
        let Some(bus) = lock(&self.bus).clone() else {
            return 0;
        };
        let snap = bus.snapshot();
        snap.processes
            .iter()
            .find(|p| p.row == self.sub_row)
            .and_then(|p| p.lag)
            .unwrap_or(0) as usize
    }

    /// From now on this engine wants the messages whose topic matches one of `topics` (its
    /// hooks' topics): a put that begins after this returns reaches it if it matches; topics
    /// no hook of its has are neither delivered to it nor wait for it. A group wants what any
    /// of its members' hooks asked for. Nothing happens once detached.
    pub(crate) fn set_interest(&self, py: Python<'_>, topics: Vec<String>) -> PyResult<()> {
        let Some(handle) = lock(&self.interest).clone() else {
            return Ok(());
        };
        exit::detach(py, || handle.set(Some(&topics))).map_err(bus_err)
    }

    /// Detaches: gives up the subscription, the publisher and the bus handle. Refused from a
    /// handler of this engine (its dispatch thread holds the subscriber).
    pub(crate) fn close(&self) -> PyResult<()> {
        let sub = match self.subscriber.try_lock() {
            Ok(mut g) => g.take(),
            Err(TryLockError::Poisoned(p)) => p.into_inner().take(),
            Err(TryLockError::WouldBlock) => {
                return Err(PyRuntimeError::new_err(
                    "close() cannot run while the engine dispatches (from one of its own \
                     handlers, or before stop() returned)",
                ))
            }
        };
        drop(sub);
        let publisher = lock(&self.publisher).take();
        drop(publisher);
        self.release_bus();
        Ok(())
    }

    /// Detaches like `close()`, but only if no other thread uses the subscriber or the
    /// publisher at this moment (waiting for one, blocked on a full bus, could hold the
    /// interpreter's exit for ever); true when detached.
    pub(crate) fn close_if_idle(&self) -> bool {
        let (Some(mut sub), Some(mut publisher)) =
            (try_now(&self.subscriber), try_now(&self.publisher))
        else {
            return false;
        };
        let (sub, publisher) = (sub.take(), publisher.take());
        drop((sub, publisher));
        self.release_bus();
        true
    }

    /// The last step of detaching: the interrupter, the interest handle and the bus handle.
    fn release_bus(&self) {
        let interrupter = lock(&self.interrupter).take();
        drop(interrupter);
        let interest = lock(&self.interest).take();
        drop(interest);
        let bus = lock(&self.bus).take();
        drop(bus);
    }

    /// Publishes `(args, kwargs)` on `topic`: encoded once (compact codec when every argument is
    /// a primitive, pickle otherwise), then copied into the bus. Without `block` a full ring or
    /// slab is `Full` at once; with a `timeout` (None: for ever) after that long.
    pub(crate) fn put(
        &self,
        py: Python<'_>,
        topic: &str,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
        block: bool,
        timeout: Option<Duration>,
    ) -> PyResult<()> {
        let mut buf = BUF.with(|b| b.take());
        buf.clear();
        let result = if encode_compact(args, kwargs, &mut buf) {
            self.publish(py, topic, Codec::Compact, &buf, block, timeout)
        } else {
            match encode_pickle(py, args, kwargs) {
                Ok(p) => self.publish(py, topic, Codec::Pickle, p.as_bytes(), block, timeout),
                Err(e) => Err(unpicklable(py, e, topic, &self.name)),
            }
        };
        BUF.with(|b| b.replace(buf));
        result
    }

    fn publish(
        &self,
        py: Python<'_>,
        topic: &str,
        codec: Codec,
        payload: &[u8],
        block: bool,
        timeout: Option<Duration>,
    ) -> PyResult<()> {
        if payload.len() > self.max_payload {
            return Err(PyValueError::new_err(format!(
                "the arguments of a message on \"{topic}\" encode to {} bytes, more than bus \
                 \"{}\" carries in one message ({} bytes); the limit counts encoded arguments, \
                 a few bytes per argument more than their data; nothing was published",
                payload.len(),
                self.name,
                self.max_payload
            )));
        }
        // Fast path with the GIL held: one attempt, no wait.
        let first = match self.publisher.try_lock() {
            Ok(mut g) => Some(match g.as_mut() {
                Some(p) => p.publish(topic, codec, payload, Some(Duration::ZERO)),
                None => return Err(closed()),
            }),
            Err(_) => None,
        };
        match first {
            Some(Ok(_)) => return Ok(()),
            Some(Err(BusError::Full)) | None => {}
            Some(Err(e)) => return Err(self.publish_err(topic, e)),
        }
        let wait = if block { timeout } else { Some(Duration::ZERO) };
        if !block && first.is_some() {
            return Err(Full::new_err(format!(
                "bus \"{}\" full: no free ring slot or slab block for a {}-byte message",
                self.name,
                payload.len()
            )));
        }
        // Waiting for room (or for the publisher, taken by another thread) without the GIL, so
        // that this process's own engines can drain the ring meanwhile.
        let res = exit::detach(py, || match lock(&self.publisher).as_mut() {
            Some(p) => Ok(p.publish(topic, codec, payload, wait)),
            None => Err(()),
        });
        match res {
            Err(()) => Err(closed()),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(BusError::Full)) => Err(Full::new_err(format!(
                "bus \"{}\" full: no free ring slot or slab block for a {}-byte message",
                self.name,
                payload.len()
            ))),
            Ok(Err(BusError::Timeout)) => Err(Full::new_err(format!(
                "bus \"{}\" full: no room for a {}-byte message within {:.3} s",
                self.name,
                payload.len(),
                wait.unwrap_or_default().as_secs_f64()
            ))),
            Ok(Err(e)) => Err(self.publish_err(topic, e)),
        }
    }

    /// The error of a publish the bus refused, naming the topic when the topic is the problem.
    fn publish_err(&self, topic: &str, e: BusError) -> PyErr {
        match e {
            BusError::TopicTooLong { size, max } => {
                let shown: String = topic.chars().take(40).collect();
                let more = if shown.len() < topic.len() { "..." } else { "" };
                PyValueError::new_err(format!(
                    "topic \"{shown}{more}\" is {size} bytes, longer than bus \"{}\" allows \
                     ({max} bytes)",
                    self.name
                ))
            }
            other => bus_err(other),
        }
    }

    /// Takes one message off the bus for `get()`, waiting up to `timeout` (None: for ever);
    /// it is acknowledged once copied out.
    pub(crate) fn take_one(
        &self,
        py: Python<'_>,
        timeout: Option<Duration>,
    ) -> PyResult<Option<OwnedMessage>> {
        // The dispatch loop holds the subscriber while it runs: waiting for it would deadlock a
        // handler calling get(), and take messages from under the loop otherwise.
        let mut g = match self.subscriber.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => {
                return Err(PyRuntimeError::new_err(format!(
                    "get() cannot run while another thread receives for this engine on bus \
                     \"{}\" (its running dispatch loop, or another get()); call stop() first",
                    self.name
                )))
            }
        };
        let Some(sub) = g.as_mut() else {
            return Err(closed());
        };
        let res = exit::detach(py, || {
            let mut out = None;
            sub.recv_batch(1, timeout, |m| {
                out = Some(OwnedMessage {
                    seq: m.seq,
                    topic_hash: m.topic_hash,
                    topic: m.topic.to_owned(),
                    codec: m.codec,
                    payload: m.payload.to_vec(),
                })
            })?;
            Ok::<_, BusError>(out)
        });
        match res {
            Err(BusError::Closed) => Err(closed()),
            other => other.map_err(bus_err),
        }
    }
}

/// The `Topic` object for a received topic, made once per process per topic.
pub(crate) fn topic_for(py: Python<'_>, hash: u64, literal: &str) -> PyResult<Py<PyTopic>> {
    let mut guard = lock(&TOPICS);
    let map = guard.get_or_insert_with(HashMap::new);
    if let Some(t) = map.get(&hash) {
        // A handler may have changed the cached object in place: check it still names the topic.
        if t.borrow(py).inner.literal() == literal {
            return Ok(t.clone_ref(py));
        }
    }
    // Publishers choose the topics (one per order id, say): receiving them must not intern them
    // for the life of the process; the cache above is the bounded memory of received topics.
    let parsed = PyTopic::parse_received(literal)?;
    let obj = Py::new(py, PyTopic::wrap(parsed))?;
    if map.len() >= TOPIC_CACHE_LIMIT {
        map.clear();
    }
    map.insert(hash, obj.clone_ref(py));
    Ok(obj)
}

/// Compact-encodes a call when every argument has a compact form; false (buffer in an
/// unspecified state) when pickle is needed.
fn encode_compact(
    args: &Bound<'_, PyTuple>,
    kwargs: Option<&Bound<'_, PyDict>>,
    buf: &mut Vec<u8>,
) -> bool {
    let nk = kwargs.map_or(0, |k| k.len());
    let Some(mut w) = CompactWriter::begin(buf, args.len(), nk) else {
        return false;
    };
    for a in args.iter() {
        if !write_value(&mut w, &a, true) {
            return false;
        }
    }
    if let Some(kw) = kwargs {
        for (k, v) in kw.iter() {
            if !k.is_exact_instance_of::<PyString>() {
                return false;
            }
            let Ok(Ok(key)) = k.cast::<PyString>().map(|s| s.to_cow()) else {
                return false;
            };
            if !(w.key(&key) && write_value(&mut w, &v, true)) {
                return false;
            }
        }
    }
    true
}

/// Writes one value if it is exactly one of the compact types (subclasses such as `IntEnum`
/// go through pickle, which keeps their type).
fn write_value(w: &mut CompactWriter<'_>, v: &Bound<'_, PyAny>, seq: bool) -> bool {
    if v.is_none() {
        w.none();
    } else if v.is_exact_instance_of::<PyBool>() {
        w.bool(v.is_truthy().unwrap_or(false));
    } else if v.is_exact_instance_of::<PyInt>() {
        match v.extract::<i64>() {
            Ok(i) => w.int(i),
            Err(_) => return false,
        }
    } else if v.is_exact_instance_of::<PyFloat>() {
        match v.cast::<PyFloat>() {
            Ok(f) => w.float(f.value()),
            Err(_) => return false,
        }
    } else if v.is_exact_instance_of::<PyString>() {
        match v.cast::<PyString>().map(|s| s.to_cow()) {
            Ok(Ok(s)) => return w.str(&s),
            _ => return false,
        }
    } else if v.is_exact_instance_of::<PyBytes>() {
        match v.cast::<PyBytes>() {
            Ok(b) => return w.bytes(b.as_bytes()),
            Err(_) => return false,
        }
    } else if seq && v.is_exact_instance_of::<PyTuple>() {
        let Ok(t) = v.cast::<PyTuple>() else {
            return false;
        };
        return w.sequence(false, t.len()) && t.iter().all(|x| write_value(w, &x, false));
    } else if seq && v.is_exact_instance_of::<PyList>() {
        let Ok(l) = v.cast::<PyList>() else {
            return false;
        };
        // Snapshot the items: the list is not ours and the count is already written.
        let items: Vec<_> = l.iter().collect();
        return w.sequence(true, items.len()) && items.iter().all(|x| write_value(w, x, false));
    } else {
        return false;
    }
    true
}

/// `pickle.dumps((args, kwargs))`: raises in the caller for anything unpicklable.
fn encode_pickle<'py>(
    py: Python<'py>,
    args: &Bound<'py, PyTuple>,
    kwargs: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyBytes>> {
    let kw = match kwargs {
        Some(k) => k.clone(),
        None => PyDict::new(py),
    };
    let dumps = DUMPS.import(py, "pickle", "dumps")?;
    let out = dumps.call1(((args, kw), -1))?;
    Ok(out.cast_into::<PyBytes>()?)
}

/// The error of a put whose arguments cannot be pickled, naming the topic and the bus. Python's
/// pickle reports some objects (a lambda or a function defined inside another) with an
/// `AttributeError`; the contract is `TypeError` or `pickle.PicklingError`, so the error becomes
/// one of those, with the original as its cause. Other errors (raised by a `__reduce__`, say)
/// pass through unchanged.
fn unpicklable(py: Python<'_>, err: PyErr, topic: &str, bus: &str) -> PyErr {
    let pickling_error = py
        .import("pickle")
        .and_then(|m| m.getattr("PicklingError"))
        .ok()
        .and_then(|t| t.cast_into::<PyType>().ok());
    let is_pickling = pickling_error
        .as_ref()
        .is_some_and(|t| err.is_instance(py, t));
    if !(is_pickling
        || err.is_instance_of::<PyTypeError>(py)
        || err.is_instance_of::<PyAttributeError>(py))
    {
        return err;
    }
    let msg = format!(
        "cannot publish on \"{topic}\" over bus \"{bus}\": the arguments must be picklable \
         ({}: {})",
        err.get_type(py)
            .name()
            .map_or_else(|_| "Exception".to_owned(), |n| n.to_string()),
        err.value(py)
    );
    let new = match pickling_error {
        Some(t) if is_pickling => PyErr::from_type(t, msg),
        _ => PyTypeError::new_err(msg),
    };
    new.set_cause(py, Some(err));
    new
}

/// Decodes a received payload into handler arguments: Raw is one `bytes` argument, Pickle and
/// Compact are the `(args, kwargs)` of the call (kwargs `None` when there are none).
pub(crate) fn decode<'py>(
    py: Python<'py>,
    codec: u8,
    payload: &[u8],
) -> PyResult<(Bound<'py, PyTuple>, Option<Bound<'py, PyDict>>)> {
    match codec {
        c if c == Codec::Raw as u8 => Ok((PyTuple::new(py, [PyBytes::new(py, payload)])?, None)),
        c if c == Codec::Compact as u8 => decode_compact(py, payload),
        c if c == Codec::Pickle as u8 => {
            let obj = LOADS
                .import(py, "pickle", "loads")?
                .call1((PyBytes::new(py, payload),))?;
            split_call(py, obj)
        }
        other => Err(PyValueError::new_err(format!(
            "message with unknown codec tag {other} ({} bytes)",
            payload.len()
        ))),
    }
}

/// `(args, kwargs)` from an unpickled object; anything else is passed as the one argument.
fn split_call<'py>(
    py: Python<'py>,
    obj: Bound<'py, PyAny>,
) -> PyResult<(Bound<'py, PyTuple>, Option<Bound<'py, PyDict>>)> {
    if let Ok(pair) = obj.cast::<PyTuple>() {
        if pair.len() == 2 {
            let a = pair.get_item(0)?;
            let k = pair.get_item(1)?;
            if let Ok(kw) = k.cast::<PyDict>() {
                let args = match a.cast::<PyTuple>() {
                    Ok(t) => Some(t.clone()),
                    Err(_) => a.cast::<PyList>().ok().map(|l| l.to_tuple()),
                };
                if let Some(args) = args {
                    let kw = (!kw.is_empty()).then(|| kw.clone());
                    return Ok((args, kw));
                }
            }
        }
    }
    Ok((PyTuple::new(py, [obj])?, None))
}

fn compact_err(e: shm_ring::wire::compact::CompactError) -> PyErr {
    PyValueError::new_err(e.to_string())
}

fn decode_compact<'py>(
    py: Python<'py>,
    payload: &[u8],
) -> PyResult<(Bound<'py, PyTuple>, Option<Bound<'py, PyDict>>)> {
    let (mut r, nargs, nkwargs) = CompactReader::new(payload).map_err(compact_err)?;
    let mut items = Vec::with_capacity(nargs.min(payload.len()));
    for _ in 0..nargs {
        items.push(read_value(py, &mut r)?);
    }
    let args = PyTuple::new(py, items)?;
    let kwargs = if nkwargs > 0 {
        let d = PyDict::new(py);
        for _ in 0..nkwargs {
            let k = r.key().map_err(compact_err)?;
            let v = read_value(py, &mut r)?;
            d.set_item(PyString::new(py, k), v)?;
        }
        Some(d)
    } else {
        None
    };
    if !r.is_done() {
        return Err(PyValueError::new_err("compact payload: trailing bytes"));
    }
    Ok((args, kwargs))
}

fn read_value<'py>(py: Python<'py>, r: &mut CompactReader<'_>) -> PyResult<Bound<'py, PyAny>> {
    Ok(match r.value().map_err(compact_err)? {
        Item::None => py.None().into_bound(py),
        Item::Bool(b) => PyBool::new(py, b).to_owned().into_any(),
        Item::Int(i) => i.into_pyobject(py)?.into_any(),
        Item::Float(f) => PyFloat::new(py, f).into_any(),
        Item::Str(s) => PyString::new(py, s).into_any(),
        Item::Bytes(b) => PyBytes::new(py, b).into_any(),
        Item::Tuple(n) => {
            let v = (0..n)
                .map(|_| read_value(py, r))
                .collect::<PyResult<Vec<_>>>()?;
            PyTuple::new(py, v)?.into_any()
        }
        Item::List(n) => {
            let v = (0..n)
                .map(|_| read_value(py, r))
                .collect::<PyResult<Vec<_>>>()?;
            PyList::new(py, v)?.into_any()
        }
    })
}
