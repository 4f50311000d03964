//! asyncio support, the native half (the Python half is `event_engine/_asyncio.py`): the file
//! descriptor an event loop watches for an engine, the awaitables a dispatch on a loop collects
//! from its handlers, and the already-completed awaitable `aput`/`aget` return when they need
//! not wait.
//!
//! An engine started inside a running loop dispatches on that loop (docs/design.md, "asyncio").
//! The loop watches the engine's [`LoopWaker`] (an eventfd) with `add_reader`. Who writes it:
//! the in-process queue's puts (only while the loop is armed: it found the queue empty and went
//! back to its other tasks), and for a bus engine its relay (`relay.rs`), a thread that waits on
//! the bus's futex without the GIL, exactly as the dispatch thread does, and that only writes
//! the eventfd: the message itself is received on that thread but read, dispatched and
//! acknowledged on the loop's thread.

use std::cell::RefCell;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{fence, AtomicBool, Ordering};

use pyo3::exceptions::{PyOSError, PyStopIteration};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

/// The descriptor a loop watches for one engine: readable once something may be ready.
pub(crate) struct LoopWaker {
    /// A non-blocking eventfd: written by [`LoopWaker::signal`], read empty by
    /// [`LoopWaker::clear`].
    fd: OwnedFd,
    /// The loop found nothing and went back to its other tasks: the next producer writes the
    /// fd (and clears this). Set with a SeqCst fence before the loop's last look, read after a
    /// SeqCst fence that follows the producer's push: one of the two sees the other.
    armed: AtomicBool,
}

impl LoopWaker {
    pub(crate) fn new() -> PyResult<Self> {
        // SAFETY: eventfd takes no pointer; a negative return is an error, checked here.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            let e = std::io::Error::last_os_error();
            return Err(PyOSError::new_err(format!(
                "cannot create the eventfd an asyncio loop watches for this engine: {e}"
            )));
        }
        Ok(LoopWaker {
            // SAFETY: `fd` was just created by eventfd and is owned by nothing else.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            armed: AtomicBool::new(false),
        })
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Makes the fd readable (the loop calls its reader).
    pub(crate) fn signal(&self) {
        let one: u64 = 1;
        // SAFETY: writes the 8 bytes of `one`, which lives across the call. A full counter
        // (EAGAIN) is already readable; nothing else can fail on an eventfd we own.
        unsafe {
            libc::write(self.fd(), (&one as *const u64).cast(), 8);
        }
    }

    /// Reads the fd empty (it stops being readable until the next signal).
    pub(crate) fn clear(&self) {
        let mut n: u64 = 0;
        // SAFETY: reads at most 8 bytes into `n`; EAGAIN (not readable) is the usual answer.
        unsafe {
            libc::read(self.fd(), (&mut n as *mut u64).cast(), 8);
        }
    }

    /// The loop is about to go idle: producers from now on signal. The caller looks once more
    /// for work after this (and calls [`LoopWaker::disarm`] if it finds some).
    pub(crate) fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }

    pub(crate) fn disarm(&self) {
        self.armed.store(false, Ordering::SeqCst);
    }

    /// Called by a producer after its push: signals the loop if it is armed.
    #[inline]
    pub(crate) fn notify(&self) {
        fence(Ordering::SeqCst);
        if self.armed.load(Ordering::Relaxed) && self.armed.swap(false, Ordering::SeqCst) {
            self.signal();
        }
    }
}

/// What one drain on the loop did ([`crate::source::MessageSource::drain_on_loop`]).
pub(crate) enum LoopDrain {
    /// Nothing more is ready: the loop's fd is readable once something is.
    Idle,
    /// It stopped after its budget: more may be ready (the loop runs its other tasks, then
    /// drains again).
    More,
    /// The last message's handlers returned awaitables ([`Collecting`]): await them, then
    /// drain again. The message is acknowledged by that next drain.
    Awaiting,
    /// The source delivers nothing more (closed).
    Ended,
    /// The source failed and detached (this error is logged and the dispatch ends).
    Failed(String),
}

thread_local! {
    /// While an engine drains on a loop on this thread: what its handlers returned to await
    /// (tuples `(awaitable, handler, topic, logger)`, see `hook.rs`).
    static AWAITING: RefCell<Option<Vec<Py<PyAny>>>> = const { RefCell::new(None) };
}

/// Whether a dispatch on a loop collects awaitables on this thread now.
pub(crate) fn collecting() -> bool {
    AWAITING.with(|a| a.borrow().is_some())
}

/// Adds one awaitable a handler returned (see `hook.rs`).
pub(crate) fn collect(item: Py<PyAny>) {
    AWAITING.with(|a| {
        if let Some(v) = a.borrow_mut().as_mut() {
            v.push(item);
        }
    });
}

/// Whether the handlers called so far in this drain returned something to await: the drain
/// stops after the message whose handlers did.
pub(crate) fn has_collected() -> bool {
    AWAITING.with(|a| a.borrow().as_ref().is_some_and(|v| !v.is_empty()))
}

/// Collects the awaitables handlers return on this thread until [`Collecting::finish`].
pub(crate) struct Collecting {
    outer: Option<Vec<Py<PyAny>>>,
}

impl Collecting {
    pub(crate) fn start() -> Self {
        Collecting {
            outer: AWAITING.with(|a| a.replace(Some(Vec::new()))),
        }
    }

    /// What was collected (restoring the collection of an enclosing drain, if any).
    pub(crate) fn finish(mut self) -> Vec<Py<PyAny>> {
        let outer = self.outer.take();
        AWAITING.with(|a| a.replace(outer)).unwrap_or_default()
    }
}

impl Drop for Collecting {
    fn drop(&mut self) {
        let outer = self.outer.take();
        AWAITING.with(|a| a.replace(outer));
    }
}

static IS_COROUTINE_FUNCTION: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// `inspect.iscoroutinefunction(f)`: an `async def` function (or a partial of one) that a
/// dispatch thread could never await.
pub(crate) fn is_coroutine_function(py: Python<'_>, f: &Bound<'_, PyAny>) -> PyResult<bool> {
    let check = IS_COROUTINE_FUNCTION.get_or_try_init(py, || {
        py.import("inspect")?
            .getattr("iscoroutinefunction")
            .map(Bound::unbind)
    })?;
    check.bind(py).call1((f,))?.is_truthy()
}

/// The running asyncio loop of the calling thread, if any (`asyncio._get_running_loop()`).
/// A program that never imported asyncio runs no loop: it is not imported for it.
pub(crate) fn running_loop(py: Python<'_>) -> PyResult<Option<Bound<'_, PyAny>>> {
    static GET: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let get = match GET.get(py) {
        Some(get) => get,
        None => {
            let modules = py.import("sys")?.getattr("modules")?;
            if !modules.contains("asyncio")? {
                return Ok(None);
            }
            GET.get_or_try_init(py, || {
                py.import("asyncio")?
                    .getattr("_get_running_loop")
                    .map(Bound::unbind)
            })?
        }
    };
    let l = get.bind(py).call0()?;
    Ok((!l.is_none()).then_some(l))
}

/// The Python half of the asyncio support (`event_engine._asyncio`), attribute `name`.
pub(crate) fn helper<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    static MODULE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    let m = MODULE.get_or_try_init(py, || py.import("event_engine._asyncio").map(Bound::unbind))?;
    m.bind(py).getattr(name)
}

/// An awaitable that is already done: `await` gives `value` at once, without suspending. What
/// `aput` returns when the message went out without waiting, and `aget` when a message was
/// ready: no coroutine, no future, no trip through the loop.
#[pyclass(name = "_Ready", module = "event_engine", frozen)]
pub struct Ready {
    value: Option<Py<PyAny>>,
    /// An exception to raise instead (an `aput` refused at once: `Full` with `block=False`).
    error: Option<Py<PyAny>>,
}

impl Ready {
    pub(crate) fn new(value: Option<Py<PyAny>>) -> Self {
        Ready { value, error: None }
    }

    pub(crate) fn failed(error: Py<PyAny>) -> Self {
        Ready {
            value: None,
            error: Some(error),
        }
    }
}

#[pymethods]
impl Ready {
    fn __await__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    /// Never yields: ends at once, with `value` (a plain `StopIteration` for None).
    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        if let Some(e) = &self.error {
            return Err(PyErr::from_value(e.bind(py).clone()));
        }
        match &self.value {
            Some(v) => Err(PyStopIteration::new_err((v.clone_ref(py),))),
            None => Ok(None),
        }
    }

    fn send(&self, py: Python<'_>, _value: &Bound<'_, PyAny>) -> PyResult<Option<Py<PyAny>>> {
        self.__next__(py)
    }
}

/// The done awaitable of `None` (one per process: it keeps no state between awaits).
pub(crate) fn ready_none(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    static NONE: PyOnceLock<Py<Ready>> = PyOnceLock::new();
    let r = NONE.get_or_try_init(py, || Py::new(py, Ready::new(None)))?;
    Ok(r.bind(py).clone().into_any())
}
