//! The in-process source: a bounded queue of [`Message`]s holding Python objects by reference.
//! An in-process engine's puts, timer ticks and stop wake-ups all go through it; a bus engine
//! keeps one for its timer ticks and wake-ups only (they never travel on the bus).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use engine_core::BoundedQueue;
use pyo3::prelude::*;

use super::{GetWait, MessageSource, PutWait, Receipt};
use crate::aio::{self, LoopDrain, LoopWaker};
use crate::dispatch::Dispatcher;
use crate::errors::{Empty, Full};
use crate::gil;
use crate::message::{Envelope, Message, Outgoing};
use crate::payload::PyMessagePayload;

/// Most messages dispatched per GIL acquisition.
const BATCH: usize = 1024;
/// How long an idle loop parks before re-checking `active` (a stop wakes it sooner).
const IDLE_WAIT: Duration = Duration::from_millis(500);
/// How long a timer thread spins before it parks, waiting for room for a tick.
const TICK_SPIN: u32 = 64;

pub(crate) struct QueueSource {
    queue: BoundedQueue<Message>,
    /// `Wake` items in the queue (not counted by `len`).
    wakes: AtomicUsize,
    /// The fd of the asyncio loop this engine dispatches on or waits in (`aio.rs`): made the
    /// first time a loop needs it, kept while the engine lives. Every push notifies it.
    waker: OnceLock<LoopWaker>,
}

impl QueueSource {
    pub(crate) fn new(capacity: usize) -> Self {
        QueueSource {
            queue: BoundedQueue::new(capacity),
            wakes: AtomicUsize::new(0),
            waker: OnceLock::new(),
        }
    }

    /// Signals the asyncio loop of this engine, if one waits for the queue.
    #[inline]
    fn notify_loop(&self) {
        if let Some(w) = self.waker.get() {
            w.notify();
        }
    }

    /// The fd an asyncio loop watches for this queue (made on first use).
    pub(crate) fn loop_waker(&self) -> PyResult<&LoopWaker> {
        if let Some(w) = self.waker.get() {
            return Ok(w);
        }
        let made = LoopWaker::new()?;
        let _ = self.waker.set(made);
        Ok(self.waker.get().expect("just set"))
    }

    /// Dispatches up to `budget` queued items on an asyncio loop, one at a time, stopping after
    /// an item whose handlers returned awaitables. Returns how many it took and whether it
    /// stopped for awaitables.
    pub(crate) fn drain_ready(
        &self,
        py: Python<'_>,
        dispatcher: &mut Dispatcher<'_>,
        budget: usize,
    ) -> (usize, bool) {
        let mut n = 0;
        while n < budget {
            let Some(msg) = self.queue.try_pop() else {
                break;
            };
            self.deliver(py, msg, dispatcher);
            n += 1;
            if aio::has_collected() {
                return (n, true);
            }
        }
        (n, false)
    }

    /// Arms the loop's fd for the next push, then looks once more: true if the queue is empty
    /// (the loop may go idle: a push signals it), false if something came meanwhile.
    fn arm_if_empty(&self) -> PyResult<bool> {
        let w = self.loop_waker()?;
        w.arm();
        if self.queue.is_empty() {
            return Ok(true);
        }
        w.disarm();
        Ok(false)
    }

    /// The in-process engine's drain on its loop (see `MessageSource::drain_on_loop`).
    pub(crate) fn drain_loop(
        &self,
        py: Python<'_>,
        dispatcher: &mut Dispatcher<'_>,
        budget: usize,
    ) -> PyResult<LoopDrain> {
        let (n, awaiting) = self.drain_ready(py, dispatcher, budget);
        if awaiting {
            return Ok(LoopDrain::Awaiting);
        }
        if n < budget && self.arm_if_empty()? {
            return Ok(LoopDrain::Idle);
        }
        Ok(LoopDrain::More)
    }

    /// `aget()` on a loop: the next message, or `None` with the loop's fd armed.
    pub(crate) fn take_loop(&self, py: Python<'_>) -> PyResult<Option<PyMessagePayload>> {
        self.loop_waker()?.clear();
        loop {
            if let Some(p) = self.take_ready(py)? {
                return Ok(Some(p));
            }
            if self.arm_if_empty()? {
                return Ok(None);
            }
        }
    }

    /// Dispatches what is queued now, without waiting; how many items it took.
    pub(crate) fn dispatch_ready(&self, py: Python<'_>, dispatcher: &mut Dispatcher<'_>) -> usize {
        let mut n = 0;
        while let Some(msg) = self.queue.try_pop() {
            self.deliver(py, msg, dispatcher);
            n += 1;
        }
        n
    }

    /// The next queued message as `get()` returns it, without waiting.
    pub(crate) fn take_ready(&self, py: Python<'_>) -> PyResult<Option<PyMessagePayload>> {
        while let Some(msg) = self.queue.try_pop() {
            if let Some(payload) = self.open(py, msg)? {
                return Ok(Some(payload));
            }
        }
        Ok(None)
    }

    #[inline]
    fn deliver(&self, py: Python<'_>, msg: Message, dispatcher: &mut Dispatcher<'_>) {
        match msg {
            Message::Published(p) => dispatcher.dispatch(py, &p),
            Message::Tick(t) => dispatcher.dispatch(py, &t),
            Message::Wake => self.woken(),
        }
    }

    /// `msg` as `get()` returns it; `None` for a wake-up.
    fn open(&self, py: Python<'_>, msg: Message) -> PyResult<Option<PyMessagePayload>> {
        match msg {
            Message::Published(p) => p.into_payload(py).map(Some),
            Message::Tick(t) => t.into_payload(py).map(Some),
            Message::Wake => {
                self.woken();
                Ok(None)
            }
        }
    }

    fn woken(&self) {
        self.wakes.fetch_sub(1, Ordering::Relaxed);
    }

    fn full_error(&self, waited: Option<Duration>) -> PyErr {
        let cap = self.queue.capacity();
        match waited {
            Some(d) => Full::new_err(format!(
                "queue full: no room among {cap} slots within {:.3} s",
                d.as_secs_f64()
            )),
            None => Full::new_err(format!("queue full ({cap} messages waiting)")),
        }
    }
}

impl MessageSource for QueueSource {
    fn capacity(&self) -> usize {
        self.queue.capacity()
    }

    fn len(&self) -> usize {
        let wakes = self.wakes.load(Ordering::Relaxed);
        self.queue.len().saturating_sub(wakes)
    }

    #[inline]
    fn put(&self, py: Python<'_>, msg: Outgoing<'_, '_>, wait: PutWait) -> PyResult<()> {
        let msg = match self
            .queue
            .try_push(Message::Published(msg.into_published()?))
        {
            Ok(()) => {
                self.notify_loop();
                return Ok(());
            }
            Err(msg) => msg,
        };
        if !wait.block {
            return Err(self.full_error(None));
        }
        if wait.is_from_own_dispatch() {
            // Only this engine's loop empties the queue, and it is running this handler.
            return Err(Full::new_err(format!(
                "queue full ({} messages waiting), and this put was made by a handler of the \
                 engine whose dispatch empties the queue: waiting for room would never end, so \
                 it raises at once. Give the engine a larger capacity, or put from another \
                 thread",
                self.queue.capacity()
            )));
        }
        let queue = &self.queue;
        match gil::detach(py, || queue.push_wait(msg, wait.max_spin, wait.timeout)) {
            Ok(()) => {
                self.notify_loop();
                Ok(())
            }
            Err(msg) => {
                drop(msg);
                Err(self.full_error(wait.timeout))
            }
        }
    }

    fn push_local(&self, msg: Message, timeout: Duration) -> Result<(), Message> {
        self.queue.push_wait(msg, TICK_SPIN, Some(timeout))?;
        self.notify_loop();
        Ok(())
    }

    fn wake(&self, loops: usize) {
        for _ in 0..loops {
            // Counted before the push so that a loop taking it at once never sees the count go
            // below zero.
            self.wakes.fetch_add(1, Ordering::Relaxed);
            if self.queue.try_push(Message::Wake).is_err() {
                // Full: the loop is busy and sees `active == false` after its batch.
                self.wakes.fetch_sub(1, Ordering::Relaxed);
            }
        }
        self.notify_loop();
    }

    fn receive(&self, py: Python<'_>, dispatcher: &mut Dispatcher<'_>) -> PyResult<Receipt> {
        let mut batch = std::mem::take(&mut dispatcher.batch);
        let queue = &self.queue;
        // Messages only move between the queue and `batch` here; no Python object is touched
        // until the GIL is back.
        let n = gil::detach(py, || queue.pop_batch(&mut batch, BATCH, Some(IDLE_WAIT)));
        for msg in batch.drain(..) {
            self.deliver(py, msg, dispatcher);
        }
        dispatcher.batch = batch;
        Ok(Receipt::Dispatched(n))
    }

    fn take(&self, py: Python<'_>, wait: GetWait) -> PyResult<PyMessagePayload> {
        let deadline = wait.timeout.map(|d| Instant::now() + d);
        loop {
            let msg = match self.queue.try_pop() {
                Some(m) => Some(m),
                None if !wait.block => None,
                None => {
                    let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
                    if remaining == Some(Duration::ZERO) {
                        None
                    } else {
                        let queue = &self.queue;
                        gil::detach(py, || queue.pop_wait(wait.max_spin, remaining))
                    }
                }
            };
            let Some(msg) = msg else {
                return Err(match wait.timeout {
                    Some(d) if wait.block => Empty::new_err(format!(
                        "queue empty: no message within {:.3} s",
                        d.as_secs_f64()
                    )),
                    _ => Empty::new_err("queue empty"),
                });
            };
            if let Some(payload) = self.open(py, msg)? {
                return Ok(payload);
            }
        }
    }

    fn loop_fd(&self) -> PyResult<i32> {
        Ok(self.loop_waker()?.fd())
    }

    fn drain_on_loop(
        &self,
        py: Python<'_>,
        dispatcher: &mut Dispatcher<'_>,
        budget: usize,
    ) -> PyResult<LoopDrain> {
        self.drain_loop(py, dispatcher, budget)
    }

    fn take_on_loop(&self, py: Python<'_>) -> PyResult<Option<PyMessagePayload>> {
        self.take_loop(py)
    }

    fn set_interest(&self, _py: Python<'_>, _topics: Vec<String>) -> PyResult<()> {
        Ok(())
    }

    fn bus_name(&self) -> Option<&str> {
        None
    }

    fn group(&self) -> Option<&str> {
        None
    }

    fn is_closed(&self) -> bool {
        false
    }

    fn close(&self) -> PyResult<bool> {
        Ok(false)
    }

    fn close_if_idle(&self) {}

    fn news(&self) -> Vec<String> {
        Vec::new()
    }
}
