//! The engine's message source and the state its loop and timer threads share.
//!
//! [`MessageSource`] is the one place messages come from: today the in-process
//! `BoundedQueue` carrying Python objects by reference, or a shared-memory bus
//! (`bus.rs`) whose messages the engine loop receives and decodes itself; a bus
//! engine's timer ticks and wake-ups go to its local queue, never on the bus.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

use engine_core::{BoundedQueue, Topic};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use crate::bus::BusSource;
use crate::lock;
use crate::topic::PyTopic;

/// A message published from Python in this process.
pub(crate) struct Published {
    /// The parsed topic, for routing.
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

/// A timer tick; built without the GIL by the timer thread, turned into
/// Python objects only when dispatched.
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

/// An item of the message source.
pub(crate) enum Message {
    /// A `put`/`publish` from Python.
    Published(Published),
    /// A timer tick.
    Tick(TimerTick),
    /// Wakes a parked loop so that it sees `active == false` at once.
    Wake,
}

/// Where an engine's messages come from. (The queue is inline and the bus boxed: the
/// in-process path is the one that must not pay an indirection.)
#[allow(clippy::large_enum_variant)]
pub(crate) enum MessageSource {
    /// The heap queue of one process: Python objects passed by reference.
    InProcess(BoundedQueue<Message>),
    /// A shared-memory bus; the queue methods below act on its local queue.
    Bus(Box<BusSource>),
}

impl MessageSource {
    /// The most messages the source holds.
    pub(crate) fn capacity(&self) -> usize {
        match self {
            MessageSource::InProcess(q) => q.capacity(),
            MessageSource::Bus(b) => b.capacity(),
        }
    }

    /// The bus this source is attached to, if any.
    pub(crate) fn bus(&self) -> Option<&BusSource> {
        match self {
            MessageSource::InProcess(_) => None,
            MessageSource::Bus(b) => Some(b),
        }
    }

    /// Messages waiting (a snapshot).
    pub(crate) fn len(&self) -> usize {
        match self {
            MessageSource::InProcess(q) => q.len(),
            MessageSource::Bus(b) => b.local.len() + b.pending(),
        }
    }

    /// Adds a message if there is room at once; gives it back otherwise.
    pub(crate) fn try_push(&self, msg: Message) -> Result<(), Message> {
        match self {
            MessageSource::InProcess(q) => q.try_push(msg),
            MessageSource::Bus(b) => {
                b.local.try_push(msg)?;
                b.interrupt();
                Ok(())
            }
        }
    }

    /// Adds a message, waiting for room (spin, then park); `None` waits for ever.
    pub(crate) fn push_wait(
        &self,
        msg: Message,
        max_spin: u32,
        timeout: Option<Duration>,
    ) -> Result<(), Message> {
        match self {
            MessageSource::InProcess(q) => q.push_wait(msg, max_spin, timeout),
            MessageSource::Bus(b) => {
                b.local.push_wait(msg, max_spin, timeout)?;
                b.interrupt();
                Ok(())
            }
        }
    }

    /// Takes the oldest message, if any.
    pub(crate) fn try_pop(&self) -> Option<Message> {
        match self {
            MessageSource::InProcess(q) => q.try_pop(),
            MessageSource::Bus(b) => b.local.try_pop(),
        }
    }

    /// Takes the oldest message, waiting for one; `None` on timeout.
    pub(crate) fn pop_wait(&self, max_spin: u32, timeout: Option<Duration>) -> Option<Message> {
        match self {
            MessageSource::InProcess(q) => q.pop_wait(max_spin, timeout),
            MessageSource::Bus(b) => b.local.pop_wait(max_spin, timeout),
        }
    }

    /// Waits for a message, then moves up to `max` of them into `out`.
    pub(crate) fn pop_batch(
        &self,
        out: &mut Vec<Message>,
        max: usize,
        timeout: Option<Duration>,
    ) -> usize {
        match self {
            MessageSource::InProcess(q) => q.pop_batch(out, max, timeout),
            MessageSource::Bus(b) => b.local.pop_batch(out, max, timeout),
        }
    }
}

/// State shared by the engine object, its loop and its timer threads.
pub(crate) struct Shared {
    /// Where the messages come from.
    pub(crate) source: MessageSource,
    /// Whether the engine runs; loops and timers end when it turns false.
    pub(crate) active: AtomicBool,
    /// Messages numbered so far: the next message's sequence number.
    pub(crate) seq: AtomicU64,
    /// `Wake` items sitting in the source (not counted as `occupied`).
    pub(crate) pending_wakes: AtomicUsize,
    /// Loops currently running (`run()` calls), each needing a `Wake` on stop.
    pub(crate) loops: AtomicUsize,
    /// Signalled on every activate/deactivate (for the blocking timer calls) and whenever a
    /// loop ends (for the exit).
    pub(crate) state: (Mutex<()>, Condvar),
}

impl Shared {
    /// The next message sequence number (the first is 0, as in the reference).
    pub(crate) fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    /// Gives back the number of a message that was not queued after all (`Full`), so that
    /// `seq` keeps counting the messages put, as in the reference.
    pub(crate) fn unnumber(&self) {
        self.seq.fetch_sub(1, Ordering::Relaxed);
    }

    /// Activates or deactivates; deactivating wakes every parked loop.
    pub(crate) fn set_active(&self, active: bool) {
        self.active.store(active, Ordering::Release);
        if !active {
            for _ in 0..self.loops.load(Ordering::Acquire) {
                // Counted before the push so that a loop taking it at once never
                // sees the count go below zero.
                self.pending_wakes.fetch_add(1, Ordering::Relaxed);
                if self.source.try_push(Message::Wake).is_err() {
                    // Full: the loop is busy and sees `active == false` after its batch.
                    self.pending_wakes.fetch_sub(1, Ordering::Relaxed);
                }
            }
        }
        let _guard = lock(&self.state.0);
        self.state.1.notify_all();
    }

    /// Parks until the engine is inactive or `timeout` passes; true when inactive.
    pub(crate) fn wait_inactive(&self, timeout: Duration) -> bool {
        let guard = lock(&self.state.0);
        if !self.active.load(Ordering::Acquire) {
            return true;
        }
        let _ = self.state.1.wait_timeout(guard, timeout);
        !self.active.load(Ordering::Acquire)
    }

    /// Parks until no loop runs or `timeout` passes; true when no loop runs.
    pub(crate) fn wait_loops_done(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut guard = lock(&self.state.0);
        while self.loops.load(Ordering::Acquire) > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            guard = match self.state.1.wait_timeout(guard, left) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        }
        true
    }

    /// Queues a timer tick (called on the timer thread, without the GIL).
    /// Waits for room while the engine is active; drops the tick once it is not.
    pub(crate) fn push_tick(
        &self,
        topic: Arc<Topic>,
        interval: f64,
        scheduled: SystemTime,
        aligned: bool,
    ) {
        if !self.active.load(Ordering::Acquire) {
            return;
        }
        let seq_id = self.next_seq();
        let mut msg = Message::Tick(TimerTick {
            topic,
            interval,
            scheduled,
            aligned,
            seq_id,
        });
        loop {
            match self
                .source
                .push_wait(msg, 64, Some(Duration::from_millis(50)))
            {
                Ok(()) => return,
                Err(back) if self.active.load(Ordering::Acquire) => msg = back,
                Err(_) => return self.unnumber(),
            }
        }
    }
}

/// Decrements the running-loop count when a `run()` ends, however it ends.
pub(crate) struct LoopGuard<'a>(pub(crate) &'a Shared);

impl Drop for LoopGuard<'_> {
    fn drop(&mut self) {
        self.0.loops.fetch_sub(1, Ordering::AcqRel);
        let _guard = lock(&self.0.state.0);
        self.0.state.1.notify_all();
    }
}
