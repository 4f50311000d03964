//! The bus source: an engine's attachment to a shared-memory bus (`shm-ring`).
//!
//! Each engine attached to a bus holds its own publisher and its own subscriber (fan-out, or a
//! member of a group), so several engines of one process behave like separate processes. A put
//! is encoded (`codec.rs`) and copied into a ring slot (or a slab block); the loop waits on the
//! bus without the GIL, skips the messages no hook of the engine routes (by topic hash and
//! literal, without decoding them: the filter), and takes the GIL once per batch of the others,
//! each acknowledged only after its handlers ran. Timer ticks and stop wake-ups go to a local
//! [`QueueSource`], never on the bus.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use shm_ring::wire::buffers;
use shm_ring::{
    Bus, BusError, Codec, InterestHandle, Interrupter, MissedCounter, Publisher, RecvOptions,
    SubscribeOptions, Subscriber,
};

use super::queue::QueueSource;
use super::received::Received;
use super::{GetWait, MessageSource, PutWait, Receipt};
use crate::aio::{self, LoopDrain, LoopWaker};
use crate::bus::{bus_err, closed};
use crate::codec::{self, Encoded};
use crate::dispatch::Dispatcher;
use crate::errors::{Empty, Full};
use crate::gil;
use crate::loan::{LoanCell, Loans, LOAN_FRONT};
use crate::lock::{lock, try_lock};
use crate::logger;
use crate::message::{Envelope, Message, Outgoing};
use crate::oob::{self, Pickled};
use crate::payload::PyMessagePayload;
use crate::pybuffer::Exported;

/// Most messages dispatched per GIL acquisition.
const BATCH: usize = 1024;
/// How long the loop waits in one call (stop and local ticks interrupt it). Longer than the
/// idle time after which a waiting subscriber reaps dead processes, so that an idle engine
/// does that reaping (and a dead group member's message is redelivered).
const IDLE_WAIT: Duration = Duration::from_secs(5);
/// How long the loop polls for the next message before it may sleep: awake through a stream,
/// it spares the publishers a futex wake-up per message.
const HOT_POLL: Duration = Duration::from_micros(200);

thread_local! {
    /// The encoding buffer of puts made on this thread (reused: no allocation per put).
    static BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// One attempt at publishing a put's message with the given timeout (see
/// [`BusSource::publish_body`]).
type Send<'a> =
    &'a (dyn Fn(&mut Publisher, Option<Duration>) -> Result<Option<u64>, BusError> + Sync);

/// The engine's publisher, and the buffer its puts are compact-encoded into while they hold it.
struct Outbox {
    publisher: Publisher,
    buf: Vec<u8>,
}

impl std::ops::Deref for Outbox {
    type Target = Publisher;
    fn deref(&self) -> &Publisher {
        &self.publisher
    }
}

impl std::ops::DerefMut for Outbox {
    fn deref_mut(&mut self) -> &mut Publisher {
        &mut self.publisher
    }
}

pub(crate) struct BusSource {
    name: String,
    group: Option<String>,
    max_payload: usize,
    ring_capacity: usize,
    /// Process-table row of the subscriber (to find its lag in a snapshot).
    sub_row: u32,
    /// The subscriber's consumer bit: what a put from this engine's own dispatch never waits
    /// for (docs/delivery.md).
    own_consumer: u64,
    /// What publishers took from this engine if it is lossy, while attached (it holds the
    /// mapping); then the last count read.
    missed: Mutex<Option<MissedCounter>>,
    missed_at_close: AtomicU64,
    /// Timer ticks and stop wake-ups of this engine only.
    local: QueueSource,
    interrupter: Mutex<Option<Interrupter>>,
    /// What this engine wants from the bus: the topics of its hooks (see `set_interest`).
    interest: Mutex<Option<InterestHandle>>,
    /// Held for one publish at a time. A put that waits for room holds it while it waits, so
    /// the lock is taken with the put's own deadline (`lock_publisher`), never unbounded.
    publisher: parking_lot::Mutex<Option<Outbox>>,
    /// Threads that hold `publisher` while they wait for room on a full bus: a put that may not
    /// wait raises `Full` instead of queueing behind them.
    room_waiters: AtomicUsize,
    /// Held by the dispatch thread while it handles a batch (and by `get()`).
    subscriber: Mutex<Option<Subscriber>>,
    bus: Mutex<Option<Bus>>,
    /// Redelivered messages received so far, and how many of them were logged.
    redelivered: AtomicU64,
    redelivered_logged: AtomicU64,
    /// The fd of the asyncio loop this engine dispatches on or waits in (`aio.rs`), written by
    /// the relay; made the first time a loop needs it.
    waker: OnceLock<LoopWaker>,
    /// What the relay thread (`relay.rs`) is asked to do; `relay_changed` signals each change.
    relay: Mutex<Relay>,
    relay_changed: Condvar,
    /// The subscriber holds a message the relay received that nobody has handled yet: the next
    /// receive on any path (loop, `aget`, `get`, dispatch thread) hands it over first, so a
    /// cancelled `aget` loses nothing. Read and written only with `subscriber` locked.
    parked: AtomicBool,
    /// A receive of the relay failed (a corrupt region): the loop reports it and detaches.
    relay_failed: Mutex<Option<BusError>>,
    /// This engine's live loans (`loan.rs`).
    loans: Loans,
    /// Loans published from their own block (no copy), for tests and tools.
    loans_published: AtomicU64,
}

/// The relay's state: it waits on the bus only while `Wanted`, and holds the subscriber only
/// then.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Relay {
    /// No relay thread yet.
    Absent,
    /// Parked on `relay_changed`, holding nothing.
    Idle,
    /// Asked to wait for a message (the loop found none): it receives one (leaving it held
    /// and `parked`), or is interrupted, then signals the loop's fd and goes back to `Idle`.
    Wanted,
    /// Its thread ends (the engine closes or is dropped).
    Stopping,
}

impl BusSource {
    /// Joins `bus` with a publisher and a subscriber (in `group`, if given) that wants nothing
    /// until the engine has hooks: a publish-only engine is never addressed, so it never holds
    /// a publisher back (docs/delivery.md).
    pub(crate) fn attach(
        bus: Bus,
        group: Option<&str>,
        local_capacity: usize,
        lossy: bool,
        hold_limit: u32,
    ) -> PyResult<Self> {
        let publisher = bus.publisher().map_err(bus_err)?;
        let subscriber = bus
            .subscribe_with(&SubscribeOptions {
                group: group.map(str::to_owned),
                topics: Some(Vec::new()),
                lossy,
            })
            .map_err(bus_err)?;
        let mut subscriber = subscriber;
        subscriber.set_hold_limit(hold_limit);
        Ok(BusSource {
            loans: Loans::default(),
            loans_published: AtomicU64::new(0),
            name: bus.name().to_owned(),
            group: group.map(str::to_owned),
            max_payload: bus.max_payload(),
            ring_capacity: bus.config().ring_capacity as usize,
            sub_row: subscriber.row(),
            own_consumer: subscriber.consumer_mask(),
            missed: Mutex::new(Some(subscriber.missed_counter())),
            missed_at_close: AtomicU64::new(0),
            local: QueueSource::new(local_capacity),
            interrupter: Mutex::new(Some(subscriber.interrupter())),
            interest: Mutex::new(Some(subscriber.interest())),
            publisher: parking_lot::Mutex::new(Some(Outbox {
                publisher,
                buf: Vec::new(),
            })),
            room_waiters: AtomicUsize::new(0),
            subscriber: Mutex::new(Some(subscriber)),
            bus: Mutex::new(Some(bus)),
            redelivered: AtomicU64::new(0),
            redelivered_logged: AtomicU64::new(0),
            waker: OnceLock::new(),
            relay: Mutex::new(Relay::Absent),
            relay_changed: Condvar::new(),
            parked: AtomicBool::new(false),
            relay_failed: Mutex::new(None),
        })
    }

    /// The fd an asyncio loop watches for this engine (made on first use).
    pub(crate) fn loop_waker(&self) -> PyResult<&LoopWaker> {
        if let Some(w) = self.waker.get() {
            return Ok(w);
        }
        let made = LoopWaker::new()?;
        let _ = self.waker.set(made);
        Ok(self.waker.get().expect("just set"))
    }

    /// True once, for the caller that must start the relay thread (`relay.rs`).
    pub(crate) fn relay_to_start(&self) -> bool {
        let mut r = lock(&self.relay);
        if *r == Relay::Absent {
            *r = Relay::Idle;
            return true;
        }
        false
    }

    /// The relay thread could not be started: the next loop tries again.
    pub(crate) fn relay_not_started(&self) {
        *lock(&self.relay) = Relay::Absent;
    }

    /// The relay thread's wait for work: true when asked to wait on the bus, false when it
    /// must end.
    pub(crate) fn relay_next(&self) -> bool {
        let mut r = lock(&self.relay);
        loop {
            match *r {
                Relay::Wanted => return true,
                Relay::Stopping | Relay::Absent => return false,
                Relay::Idle => {
                    r = match self.relay_changed.wait(r) {
                        Ok(g) => g,
                        Err(e) => e.into_inner(),
                    }
                }
            }
        }
    }

    /// The relay thread's wait on the bus (no GIL: this thread never takes it): a message is
    /// received and left held (`parked`), not read; then the loop's fd is signalled, also when
    /// the wait ran out or was interrupted (a stop, a local tick), so the loop looks.
    pub(crate) fn relay_wait(&self) {
        {
            let mut guard = lock(&self.subscriber);
            let intr = lock(&self.interrupter).clone();
            match (guard.as_mut(), intr) {
                (Some(sub), Some(intr)) if !self.parked.load(Ordering::SeqCst) => {
                    // No hot poll: the loop has just drained the bus itself, and a relay
                    // spinning beside it would take the CPU its loop and the publishers need
                    // (W10 was slower with the dispatch thread's 200 µs poll, latency and
                    // throughput alike).
                    let got = sub.recv_with(RecvOptions {
                        timeout: Some(IDLE_WAIT),
                        hot: Some(Duration::ZERO),
                        interrupter: Some(&intr),
                        wanted: None,
                    });
                    match got {
                        Ok(Some(_)) => self.parked.store(true, Ordering::SeqCst),
                        Ok(None) => {}
                        Err(e) => *lock(&self.relay_failed) = Some(e),
                    }
                }
                _ => {}
            }
        }
        {
            let mut r = lock(&self.relay);
            if *r == Relay::Wanted {
                *r = Relay::Idle;
            }
            self.relay_changed.notify_all();
        }
        if let Some(w) = self.waker.get() {
            w.signal();
        }
    }

    /// Asks the relay to wait on the bus for the loop.
    fn request_relay(&self) {
        let mut r = lock(&self.relay);
        if *r == Relay::Idle {
            *r = Relay::Wanted;
            self.relay_changed.notify_all();
        }
    }

    /// Takes the bus back from a relay waiting on it (interrupting its wait), so that this
    /// thread can receive. Waits without the GIL (the relay never needs it).
    fn recall_relay(&self, py: Python<'_>) {
        if *lock(&self.relay) != Relay::Wanted {
            return;
        }
        gil::detach(py, || {
            let mut r = lock(&self.relay);
            while *r == Relay::Wanted {
                self.interrupt();
                r = match self
                    .relay_changed
                    .wait_timeout(r, Duration::from_millis(10))
                {
                    Ok((g, _)) => g,
                    Err(e) => e.into_inner().0,
                };
            }
        });
    }

    /// Ends the relay thread (it lets go of the bus promptly: its wait is interrupted).
    pub(crate) fn stop_relay(&self) {
        let mut r = lock(&self.relay);
        if matches!(*r, Relay::Idle | Relay::Wanted) {
            *r = Relay::Stopping;
            self.relay_changed.notify_all();
            drop(r);
            self.interrupt();
        }
    }

    /// The message the subscriber holds for nobody yet (`parked`), copied out and acknowledged.
    fn take_parked(&self, sub: &mut Subscriber) -> Result<Option<Copied>, BusError> {
        if !self.parked.swap(false, Ordering::SeqCst) {
            return Ok(None);
        }
        let copied = match sub.held() {
            Some(m) => Some(copy_out(&m?)),
            None => None,
        };
        // Acknowledges it (and takes nothing more).
        sub.recv_batch(0, Some(Duration::ZERO), |_| ())?;
        Ok(copied)
    }

    /// The bus engine's drain on its loop (see `MessageSource::drain_on_loop`): local items,
    /// the message the relay parked, then what is ready on the bus, one message at a time
    /// (each acknowledged by the next receive, so after its handlers and the awaitables they
    /// returned); with nothing left it asks the relay to wait and the loop goes idle.
    pub(crate) fn drain_loop(
        &self,
        py: Python<'_>,
        dispatcher: &mut Dispatcher<'_>,
        budget: usize,
    ) -> PyResult<LoopDrain> {
        let (mut n, awaiting) = self.local.drain_ready(py, dispatcher, budget);
        if awaiting {
            return Ok(LoopDrain::Awaiting);
        }
        if let Some(e) = lock(&self.relay_failed).take() {
            return Ok(self.failed_on_loop(e));
        }
        if *lock(&self.relay) == Relay::Wanted {
            // It signals the fd when something comes (or a stop interrupts it).
            return Ok(LoopDrain::Idle);
        }
        let Some(mut guard) = try_lock(&self.subscriber) else {
            // A get() on another thread holds it (a misuse it is told of): look again later.
            return Ok(LoopDrain::More);
        };
        let Some(sub) = guard.as_mut() else {
            return Ok(LoopDrain::Ended);
        };
        let holder = sub.holder();
        if self.parked.swap(false, Ordering::SeqCst) {
            match sub.held() {
                Some(Ok(m)) => dispatcher.dispatch(py, &Received::kept(&m, &holder)),
                Some(Err(e)) => {
                    drop(guard.take());
                    return Ok(self.failed_on_loop(e));
                }
                None => {}
            }
            n += 1;
            if aio::has_collected() {
                return Ok(LoopDrain::Awaiting);
            }
        }
        while n < budget {
            let filter = &*dispatcher;
            let mut found = None;
            let mut wanted = |m: &shm_ring::Message<'_>| {
                let key = filter.find(m.topic_hash, m.topic);
                found = Some(key);
                !key.is_empty()
            };
            let got = sub.recv_with(RecvOptions {
                timeout: Some(Duration::ZERO),
                hot: None,
                interrupter: None,
                wanted: Some(&mut wanted),
            });
            match got {
                Ok(Some(m)) => dispatcher.dispatch_found(py, &Received::kept(&m, &holder), found),
                Ok(None) => break,
                Err(e) => {
                    drop(guard.take());
                    return Ok(self.failed_on_loop(e));
                }
            }
            n += 1;
            if aio::has_collected() {
                self.redelivered.store(sub.redelivered(), Ordering::Relaxed);
                return Ok(LoopDrain::Awaiting);
            }
        }
        self.redelivered.store(sub.redelivered(), Ordering::Relaxed);
        if n >= budget {
            return Ok(LoopDrain::More);
        }
        drop(guard);
        self.request_relay();
        Ok(LoopDrain::Idle)
    }

    /// `aget()` on a loop: the next message (the parked one first), or `None` with the relay
    /// asked to wait (it signals the loop's fd).
    pub(crate) fn take_loop(&self, py: Python<'_>) -> PyResult<Option<PyMessagePayload>> {
        self.loop_waker()?.clear();
        if let Some(payload) = self.local.take_ready(py)? {
            return Ok(Some(payload));
        }
        if let Some(e) = lock(&self.relay_failed).take() {
            let _ = self.close();
            return Err(bus_err(e));
        }
        self.recall_relay(py);
        let got = {
            let Some(mut g) = try_lock(&self.subscriber) else {
                return Err(self.busy_receiving("aget()"));
            };
            let Some(sub) = g.as_mut() else {
                return Err(closed());
            };
            let parked = self.take_parked(sub).map_err(bus_err)?;
            match parked {
                Some(c) => Some(c),
                None => {
                    let mut out = None;
                    sub.recv_batch(1, Some(Duration::ZERO), |m| out = Some(copy_out(m)))
                        .map_err(bus_err)?;
                    out
                }
            }
        };
        match got {
            Some(c) => c.into_payload(py).map(Some),
            None => {
                self.request_relay();
                Ok(None)
            }
        }
    }

    fn busy_receiving(&self, what: &str) -> PyErr {
        PyRuntimeError::new_err(format!(
            "{what} cannot run while another thread receives for this engine on bus \
             \"{}\" (its running dispatch, or another get()); call stop() first",
            self.name
        ))
    }

    /// [`BusSource::failed`] for the loop: detaches and says why.
    fn failed_on_loop(&self, e: BusError) -> LoopDrain {
        match self.failed(e) {
            Receipt::Failed(text) => LoopDrain::Failed(text),
            _ => LoopDrain::Ended,
        }
    }

    /// Wakes the dispatch thread if it waits on the bus.
    fn interrupt(&self) {
        if let Some(i) = lock(&self.interrupter).as_ref() {
            i.interrupt();
        }
    }

    /// Messages on the bus not yet received by this engine (its group's, for a member).
    fn pending(&self) -> usize {
        if let Some(g) = try_lock(&self.subscriber) {
            return g.as_ref().map_or(0, |s| s.pending() as usize);
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

    /// Keeps the subscriber's last missed count for `missed()` after detaching. Called while
    /// the subscriber still holds its consumer entry: once it is dropped, the entry may be given
    /// to another engine's subscriber and the count read there would be that one's.
    fn keep_missed(&self) {
        if let Some(m) = lock(&self.missed).take() {
            if let Some(n) = m.get() {
                self.missed_at_close.store(n, Ordering::Relaxed);
            }
        }
    }

    /// The last step of detaching: the interrupter, the interest handle and the bus handle.
    fn release_bus(&self) {
        self.keep_missed();
        let interrupter = lock(&self.interrupter).take();
        drop(interrupter);
        let interest = lock(&self.interest).take();
        drop(interest);
        let bus = lock(&self.bus).take();
        drop(bus);
    }

    /// Copies an encoded message into the bus, the second step of [`MessageSource::put`] (see
    /// there). `tried`: a publish of these bytes without waiting has just found the bus full.
    /// Without `block` a full ring or slab is `Full` at once; else it waits up to the timeout
    /// (for ever without one), except for this engine's own consumer when the put comes from
    /// its own dispatch.
    fn publish(
        &self,
        py: Python<'_>,
        topic: &engine_core::Topic,
        codec: Codec,
        payload: &[u8],
        wait: PutWait,
        tried: bool,
    ) -> PyResult<()> {
        let fill = |out: &mut [u8]| out.copy_from_slice(payload);
        let send =
            |p: &mut Publisher, t| p.publish_topic_with(topic, codec, payload.len(), t, fill);
        self.publish_body(
            py,
            topic.literal(),
            codec,
            payload.len(),
            &send,
            wait,
            tried,
        )
    }

    /// [`BusSource::publish`] of a message of `len` payload bytes that `send` publishes with a
    /// given timeout (it may be called once per attempt; it runs without the GIL, except for
    /// the first attempt, which does not wait).
    #[allow(clippy::too_many_arguments)]
    fn publish_body(
        &self,
        py: Python<'_>,
        literal: &str,
        codec: Codec,
        len: usize,
        send: Send<'_>,
        wait: PutWait,
        tried: bool,
    ) -> PyResult<()> {
        if len > self.max_payload {
            let padding = if codec == Codec::PickleBuffers {
                " and up to 63 bytes of alignment per buffer"
            } else {
                ""
            };
            return Err(PyValueError::new_err(format!(
                "the arguments of a message on \"{literal}\" encode to {len} bytes, more than bus \
                 \"{}\" carries in one message ({} bytes); the limit counts encoded arguments, \
                 a few bytes per argument more than their data{padding}; nothing was published. \
                 {}",
                self.name,
                self.max_payload,
                bigger_bus_hint(len, &self.name),
            )));
        }
        if !tried {
            // With the GIL held: one attempt, no wait, if the publisher is free.
            if let Some(mut g) = self.publisher.try_lock() {
                let Some(p) = g.as_mut() else {
                    return Err(closed());
                };
                match send(p, Some(Duration::ZERO)) {
                    Ok(_) => return Ok(()),
                    Err(BusError::Full) if wait.block => {}
                    Err(BusError::Full) => return Err(self.full(len)),
                    Err(e) => return Err(self.publish_err(literal, e)),
                }
            }
        } else if !wait.block {
            return Err(self.full(len));
        }
        let deadline = match wait.timeout {
            Some(t) if wait.block => Instant::now().checked_add(t),
            _ => None,
        };
        let never = if wait.block && wait.is_from_own_dispatch() {
            self.own_consumer
        } else {
            0
        };
        // Waiting for the publisher (taken by another thread) and for room without the GIL, so
        // that this process's own engines can drain the ring meanwhile. Both waits end at the
        // put's deadline; a put that may not wait waits for neither.
        let res = gil::detach(py, || {
            let Some(mut guard) = self.lock_publisher(wait.block, deadline) else {
                return Ok(Err(if wait.block {
                    BusError::Timeout
                } else {
                    BusError::Full
                }));
            };
            let Some(p) = guard.as_mut() else {
                return Err(());
            };
            let first = send(p, Some(Duration::ZERO));
            if !wait.block || !matches!(first, Err(BusError::Full)) {
                return Ok(first);
            }
            let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if remaining == Some(Duration::ZERO) {
                return Ok(Err(BusError::Timeout));
            }
            self.room_waiters.fetch_add(1, Ordering::SeqCst);
            p.set_never_wait_for(never);
            let res = send(p, remaining);
            p.set_never_wait_for(0);
            self.room_waiters.fetch_sub(1, Ordering::SeqCst);
            Ok(res)
        });
        match res {
            Err(()) => Err(closed()),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(BusError::Full)) => Err(self.full(len)),
            Ok(Err(BusError::Timeout)) => Err(Full::new_err(format!(
                "bus \"{}\" full: no room for a {}-byte message within {:.3} s",
                self.name,
                len,
                wait.timeout.unwrap_or_default().as_secs_f64()
            ))),
            Ok(Err(BusError::WouldWaitFor { .. })) => Err(Full::new_err(format!(
                "bus \"{}\" full, and the room this put needs is held by messages this engine \
                 has not handled yet; the put was made by a handler of this engine, so only the \
                 dispatch running it could free that room and waiting would never end: it \
                 raises at once. Use a bus with a larger ring, put fewer messages per handled \
                 message, or put from another thread",
                self.name
            ))),
            Ok(Err(e)) => Err(self.publish_err(literal, e)),
        }
    }

    /// Publishes a pickle and its out-of-band buffers (codec `PickleBuffers`): each buffer is
    /// copied once, from its exporter's memory into the slab block.
    fn publish_buffers(
        &self,
        py: Python<'_>,
        topic: &engine_core::Topic,
        pickled: &Pickled<'_>,
        wait: PutWait,
    ) -> PyResult<()> {
        let literal = topic.literal();
        let Some(layout) = pickled.layout(literal.len()) else {
            return Err(PyValueError::new_err(format!(
                "the arguments of a message on \"{literal}\" are too large to encode; nothing \
                 was published"
            )));
        };
        let (pickle, buffers) = (pickled.pickle.as_bytes(), &pickled.buffers[..]);
        if let [one] = buffers {
            if let Some(cell) = one
                .contiguous_ptr()
                .and_then(|p| self.loans.find(p, one.len()))
            {
                if self.publish_loan(py, literal, pickle, &cell, one, wait)? {
                    return Ok(());
                }
            }
        }
        let fill = |out: &mut [u8]| oob::fill(&layout, pickle, buffers, out);
        let send = |p: &mut Publisher, t| {
            p.publish_topic_with(topic, Codec::PickleBuffers, layout.len, t, fill)
        };
        self.publish_body(
            py,
            literal,
            Codec::PickleBuffers,
            layout.len,
            &send,
            wait,
            false,
        )
    }

    /// Publishes a call whose one out-of-band buffer `buffer` lies in the live loan `cell`,
    /// from the loan's block (`loan.rs`): the header and `pickle` go in front of the buffer,
    /// nothing is copied. False when it was not published that way: the loan was published
    /// already, or the call's pickle does not fit in front of the buffer; the caller then
    /// copies, as for any buffer.
    fn publish_loan(
        &self,
        py: Python<'_>,
        literal: &str,
        pickle: &[u8],
        cell: &LoanCell,
        buffer: &Exported,
        wait: PutWait,
    ) -> PyResult<bool> {
        let at = buffer.contiguous_ptr().unwrap_or_default() - cell.start();
        let Some(layout) = at
            .checked_sub(literal.len())
            .and_then(|off| buffers::plan_at(pickle.len(), off, buffer.len()))
        else {
            return Ok(false);
        };
        let spent = AtomicBool::new(false);
        let send = |p: &mut Publisher, t| {
            let mut loan = cell.lock();
            if loan.is_spent() {
                spent.store(true, Ordering::Relaxed);
                return Err(BusError::LoanSpent);
            }
            let front = |out: &mut [u8]| {
                buffers::write_header(&layout, out);
                out[layout.pickle.clone()].copy_from_slice(pickle);
            };
            let r = p.send_loan_as(
                &mut loan,
                literal,
                Codec::PickleBuffers,
                layout.len,
                t,
                front,
            );
            // Counted only when it took a ring position (no consumer wanted it otherwise).
            if matches!(r, Ok(Some(_))) {
                self.loans_published.fetch_add(1, Ordering::Relaxed);
            }
            r
        };
        match self.publish_body(
            py,
            literal,
            Codec::PickleBuffers,
            layout.len,
            &send,
            wait,
            false,
        ) {
            Err(_) if spent.load(Ordering::Relaxed) => Ok(false),
            other => other.map(|()| true),
        }
    }

    /// Takes the publisher for a put that got past the fast path. A put that may wait waits
    /// for it until its `deadline` (for ever without one); a put that may not wait waits only
    /// while the holder is publishing, not while the holder waits for room on a full bus (it
    /// would wait as long as that holder). `None`: not taken.
    fn lock_publisher(
        &self,
        block: bool,
        deadline: Option<Instant>,
    ) -> Option<parking_lot::MutexGuard<'_, Option<Outbox>>> {
        if block {
            return match deadline {
                Some(d) => self.publisher.try_lock_until(d),
                None => Some(self.publisher.lock()),
            };
        }
        // A holder that publishes without waiting keeps the lock for microseconds.
        const SLICE: Duration = Duration::from_micros(100);
        loop {
            if let Some(g) = self.publisher.try_lock_for(SLICE) {
                return Some(g);
            }
            if self.room_waiters.load(Ordering::SeqCst) > 0 {
                return None;
            }
        }
    }

    fn full(&self, size: usize) -> PyErr {
        Full::new_err(format!(
            "bus \"{}\" full: no free ring slot or slab block for a {size}-byte message",
            self.name
        ))
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

    /// The receive failed (a corrupt region): an engine that stays attached without
    /// dispatching would keep its consumer bit and fill the ring for every publisher. It
    /// detaches and the loop ends, logging why.
    fn failed(&self, e: BusError) -> Receipt {
        let _ = self.close();
        Receipt::Failed(format!(
            "EventEngine on bus \"{}\" stopped dispatching and detached from the bus: {e}. \
             Its handlers receive nothing more and `active` is False; once the bus is repaired \
             or replaced, create a new engine to attach again",
            self.name
        ))
    }
}

impl MessageSource for BusSource {
    fn capacity(&self) -> usize {
        self.ring_capacity
    }

    fn len(&self) -> usize {
        self.local.len() + self.pending()
    }

    /// One pipeline: the arguments are encoded once and published once. The common case runs
    /// under the publisher's lock alone: compact-encoded into the publisher's buffer and
    /// published without waiting (compact encoding runs no Python code, so no put can re-enter
    /// here meanwhile). When that finds the bus full, the encoded bytes move to this thread's
    /// buffer (a swap, no copy) and [`BusSource::publish`] waits with them; when the publisher
    /// is busy, or the arguments need pickle, they are encoded into this thread's buffer.
    fn put(&self, py: Python<'_>, msg: Outgoing<'_, '_>, wait: PutWait) -> PyResult<()> {
        let mut carried = false;
        if let Some(mut guard) = self.publisher.try_lock() {
            let Some(out) = guard.as_mut() else {
                return Err(closed());
            };
            out.buf.clear();
            if codec::encode_compact(&msg.args, &mut out.buf) {
                if out.buf.len() <= self.max_payload {
                    let Outbox { publisher, buf } = out;
                    match publisher.publish_topic(
                        msg.topic,
                        Codec::Compact,
                        buf,
                        Some(Duration::ZERO),
                    ) {
                        Ok(_) => return Ok(()),
                        Err(BusError::Full) => {}
                        Err(e) => return Err(self.publish_err(msg.topic.literal(), e)),
                    }
                }
                BUF.with(|b| std::mem::swap(&mut *b.borrow_mut(), &mut out.buf));
                carried = true;
            }
        }
        let mut buf = BUF.with(|b| b.take());
        let result = if carried {
            let tried = buf.len() <= self.max_payload;
            self.publish(py, msg.topic, Codec::Compact, &buf, wait, tried)
        } else {
            codec::encode(py, &msg.args, &mut buf, msg.topic.literal(), &self.name).and_then(
                |encoded| match encoded {
                    Encoded::Compact => {
                        self.publish(py, msg.topic, Codec::Compact, &buf, wait, false)
                    }
                    Encoded::Pickle(p) => {
                        self.publish(py, msg.topic, Codec::Pickle, p.as_bytes(), wait, false)
                    }
                    Encoded::Buffers(p) => self.publish_buffers(py, msg.topic, &p, wait),
                },
            )
        };
        BUF.with(|b| b.replace(buf));
        result
    }

    fn loan<'py>(
        &self,
        py: Python<'py>,
        nbytes: usize,
        timeout: Option<Duration>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let most = self.max_payload.saturating_sub(LOAN_FRONT);
        if nbytes > most {
            return Err(PyValueError::new_err(format!(
                "a loan of {nbytes} bytes is more than bus \"{}\" carries in one message \
                 ({most} bytes: its max_message of {} less {LOAN_FRONT} for the call's \
                 encoding); create the bus with a larger max_message (create_bus)",
                self.name, self.max_payload
            )));
        }
        let res = gil::detach(py, || {
            let mut guard = self.publisher.lock();
            let p = guard.as_mut().ok_or(())?;
            Ok(p.loan_block(LOAN_FRONT + nbytes, timeout))
        });
        match res {
            Err(()) => Err(closed()),
            Ok(Ok(loan)) => self.loans.object(py, loan, nbytes),
            Ok(Err(BusError::Full)) => Err(self.full(LOAN_FRONT + nbytes)),
            Ok(Err(BusError::Timeout)) => Err(Full::new_err(format!(
                "bus \"{}\" full: no free block for a {nbytes}-byte loan within {:.3} s",
                self.name,
                timeout.unwrap_or_default().as_secs_f64()
            ))),
            Ok(Err(e)) => Err(bus_err(e)),
        }
    }

    fn loans_published(&self) -> u64 {
        self.loans_published.load(Ordering::Relaxed)
    }

    fn push_local(&self, msg: Message, timeout: Duration) -> Result<(), Message> {
        self.local.push_local(msg, timeout)?;
        self.interrupt();
        Ok(())
    }

    fn wake(&self, loops: usize) {
        self.local.wake(loops);
        self.interrupt();
    }

    fn receive(&self, py: Python<'_>, dispatcher: &mut Dispatcher<'_>) -> PyResult<Receipt> {
        // A relay waiting for a loop that has gone (or for a cancelled aget()) gives the bus
        // back.
        self.recall_relay(py);
        // Local items first: timer ticks, and the wake-ups of a stop (which also interrupt the
        // wait below, so a stopped engine does not wait on the bus).
        let local = self.local.dispatch_ready(py, dispatcher);
        let Some(intr) = lock(&self.interrupter).clone() else {
            return Ok(Receipt::Ended);
        };
        // Only `get()` (possibly blocked for a long time) and `close()` contend for it: wait for
        // it without the GIL, so that the rest of the process keeps running.
        let Some(mut guard) = try_lock(&self.subscriber) else {
            gil::detach(py, || drop(lock(&self.subscriber)));
            return Ok(Receipt::Dispatched(local));
        };
        let Some(sub) = guard.as_mut() else {
            return Ok(Receipt::Ended);
        };
        let holder = sub.holder();
        // A message the relay received for a loop that has gone (or a cancelled aget()): it
        // is handled first, then acknowledged by the receive below.
        let mut parked = 0;
        if self.parked.swap(false, Ordering::SeqCst) {
            if let Some(Ok(m)) = sub.held() {
                dispatcher.dispatch(py, &Received::kept(&m, &holder));
                parked = 1;
            }
        }
        // The first message waited for without the GIL, each one looked up once: the key of
        // the lookup that let it through routes it.
        let filter = &*dispatcher;
        let mut found = None;
        let first = gil::detach(py, || {
            let mut wanted = |m: &shm_ring::Message<'_>| {
                let key = filter.find(m.topic_hash, m.topic);
                found = Some(key);
                !key.is_empty()
            };
            sub.recv_with(RecvOptions {
                timeout: Some(IDLE_WAIT),
                hot: Some(HOT_POLL),
                interrupter: Some(&intr),
                wanted: Some(&mut wanted),
            })
        });
        match first {
            Err(e) => {
                drop(guard.take());
                drop(guard);
                return Ok(self.failed(e));
            }
            Ok(None) => {
                self.redelivered.store(sub.redelivered(), Ordering::Relaxed);
                return Ok(Receipt::Dispatched(local + parked));
            }
            Ok(Some(m)) => dispatcher.dispatch_found(py, &Received::kept(&m, &holder), found),
        }
        // The rest of the batch with the GIL kept; each message (the first one included) is
        // acknowledged only after its handlers ran.
        let rest = sub.recv_batch(BATCH - 1, Some(Duration::ZERO), |m| {
            dispatcher.dispatch(py, &Received::kept(m, &holder))
        });
        self.redelivered.store(sub.redelivered(), Ordering::Relaxed);
        match rest {
            Ok(n) => Ok(Receipt::Dispatched(local + parked + n + 1)),
            Err(e) => {
                drop(guard.take());
                drop(guard);
                Ok(self.failed(e))
            }
        }
    }

    fn take(&self, py: Python<'_>, wait: GetWait) -> PyResult<PyMessagePayload> {
        if let Some(payload) = self.local.take_ready(py)? {
            return Ok(payload);
        }
        let timeout = if wait.block {
            wait.timeout
        } else {
            Some(Duration::ZERO)
        };
        // A relay waiting for an aget() that was cancelled gives the bus back.
        self.recall_relay(py);
        // The dispatch loop holds the subscriber while it runs: waiting for it would deadlock a
        // handler calling get(), and take messages from under the loop otherwise.
        let Some(mut g) = try_lock(&self.subscriber) else {
            return Err(self.busy_receiving("get()"));
        };
        let Some(sub) = g.as_mut() else {
            return Err(closed());
        };
        // Copied out, then acknowledged; decoded with the GIL back. A message the relay
        // received for an aget() that was cancelled comes first.
        let res = gil::detach(py, || {
            if let Some(c) = self.take_parked(sub)? {
                return Ok(Some(c));
            }
            let mut out = None;
            sub.recv_batch(1, timeout, |m| out = Some(copy_out(m)))?;
            Ok::<_, BusError>(out)
        });
        let got = match res {
            Err(BusError::Closed) => return Err(closed()),
            other => other.map_err(bus_err)?,
        };
        let Some(copied) = got else {
            return Err(match timeout {
                Some(d) if wait.block => Empty::new_err(format!(
                    "bus \"{}\" empty: no message within {:.3} s",
                    self.name,
                    d.as_secs_f64()
                )),
                _ => Empty::new_err(format!("bus \"{}\" empty", self.name)),
            });
        };
        copied.into_payload(py)
    }

    /// From now on this engine wants the messages whose topic matches one of `topics` (its
    /// hooks' topics): a put that begins after this returns reaches it if it matches; topics
    /// no hook of its has are neither delivered to it nor wait for it. A group wants what any
    /// of its members' hooks asked for. Nothing happens once detached.
    fn set_interest(&self, py: Python<'_>, topics: Vec<String>) -> PyResult<()> {
        let Some(handle) = lock(&self.interest).clone() else {
            return Ok(());
        };
        gil::detach(py, || handle.set(Some(&topics))).map_err(bus_err)
    }

    fn bus_name(&self) -> Option<&str> {
        Some(&self.name)
    }

    fn group(&self) -> Option<&str> {
        self.group.as_deref()
    }

    fn missed(&self) -> u64 {
        match lock(&self.missed).as_ref() {
            Some(m) => m
                .get()
                .unwrap_or_else(|| self.missed_at_close.load(Ordering::Relaxed)),
            None => self.missed_at_close.load(Ordering::Relaxed),
        }
    }

    fn is_closed(&self) -> bool {
        lock(&self.bus).is_none()
    }

    /// Detaches: gives up the subscription, the publisher and the bus handle. Refused from a
    /// handler of this engine (its dispatch thread holds the subscriber).
    fn close(&self) -> PyResult<bool> {
        if self.is_closed() {
            return Ok(false);
        }
        let Some(mut sub) = try_lock(&self.subscriber) else {
            return Err(PyRuntimeError::new_err(
                "close() cannot run while the engine dispatches (from one of its own \
                 handlers, or before stop() returned)",
            ));
        };
        self.keep_missed();
        let sub = sub.take();
        drop(sub);
        let publisher = self.publisher.lock().take();
        drop(publisher);
        self.release_bus();
        Ok(true)
    }

    /// Detaches like `close()`, but only if no other thread uses the subscriber or the
    /// publisher at this moment (waiting for one, blocked on a full bus, could hold the
    /// interpreter's exit for ever).
    fn close_if_idle(&self) {
        let (Some(mut sub), Some(mut publisher)) =
            (try_lock(&self.subscriber), self.publisher.try_lock())
        else {
            return;
        };
        self.keep_missed();
        let (sub, publisher) = (sub.take(), publisher.take());
        drop((sub, publisher));
        self.release_bus();
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

    fn end_relay(&self, py: Python<'_>) {
        self.recall_relay(py);
        self.stop_relay();
    }

    /// Reaps this process did (waits reap dead processes now and then) and the messages of a
    /// dead group member redelivered to this engine since the last call.
    fn news(&self) -> Vec<String> {
        let mut news: Vec<String> = shm_ring::take_reaps()
            .into_iter()
            .map(|(bus, report)| logger::describe_reap(&bus, &report))
            .collect();
        let now = self.redelivered.load(Ordering::Relaxed);
        let before = self.redelivered_logged.swap(now, Ordering::Relaxed);
        if now > before {
            news.push(format!(
                "received {} redelivered message(s) on bus \"{}\": a dead member of group \
                 \"{}\" had taken them before it could handle them",
                now - before,
                self.name,
                self.group.as_deref().unwrap_or_default()
            ));
        }
        news
    }
}

/// A message copied out of its slot (`get()`/`aget()` decode it after acknowledging it).
struct Copied {
    seq: u64,
    topic_hash: u64,
    topic: String,
    codec: u8,
    payload: Vec<u8>,
}

fn copy_out(m: &shm_ring::Message<'_>) -> Copied {
    Copied {
        seq: m.seq,
        topic_hash: m.topic_hash,
        topic: m.topic.to_owned(),
        codec: m.codec,
        payload: m.payload.to_vec(),
    }
}

impl Copied {
    fn into_payload(self, py: Python<'_>) -> PyResult<PyMessagePayload> {
        Received {
            seq: self.seq,
            topic_hash: self.topic_hash,
            topic: &self.topic,
            codec: self.codec,
            payload: &self.payload,
            keep: None,
        }
        .into_payload(py)
    }
}

/// How to get a bus that carries `len` bytes in one message (bus `name` does not).
fn bigger_bus_hint(len: usize, name: &str) -> String {
    let limit = u64::from(shm_ring::MAX_MESSAGE_LIMIT);
    let want = (len as u64).next_power_of_two().max(1 << 20);
    if want > limit {
        return "A bus carries at most 1 GiB in one message: send less per message".into();
    }
    let flag = if want.is_multiple_of(1 << 30) {
        format!("{}GiB", want >> 30)
    } else {
        format!("{}MiB", want >> 20)
    };
    format!(
        "For larger messages, make a bus with a larger max_message before any process attaches \
         to it: create_bus(\"name\", max_message={want}) in Python or `event-engine create name \
         --max-message {flag}` (a new name, or this one once no process uses it and \
         unlink_bus(\"{name}\") removed it)"
    )
}
