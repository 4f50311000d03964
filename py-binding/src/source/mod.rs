//! Message sources: where an engine's `put`s go and where its loop and `get()` take messages
//! from. [`MessageSource`] is the one interface; two sources implement it:
//!
//! - [`QueueSource`] (`queue.rs`): the in-process queue. A put is queued as Python objects,
//!   passed by reference to the handlers of this engine.
//! - [`BusSource`] (`bus.rs`): a shared-memory bus. A put is encoded (`codec.rs`) into a ring
//!   slot; the loop receives what this engine's hooks want, skips the rest without decoding
//!   it, and decodes the others (`received.rs`). Its timer ticks and wake-ups stay in a local
//!   [`QueueSource`].
//!
//! Either way the loop hands each message to one [`Dispatcher`]. An engine holds a [`Source`]
//! (`either.rs`), an enum of the two rather than a trait object, so that the in-process path
//! pays no indirection.

mod bus;
mod either;
mod queue;
mod received;

use std::time::Duration;

use pyo3::prelude::*;

pub(crate) use self::bus::BusSource;
pub(crate) use self::either::Source;
pub(crate) use self::queue::QueueSource;
use crate::aio::LoopDrain;
use crate::dispatch::Dispatcher;
use crate::dispatch_thread;
use crate::message::{Message, Outgoing};
use crate::payload::PyMessagePayload;

/// How a put waits for room: `put`'s `block`, `max_spin` and `timeout`, and which engine puts
/// (a put from that engine's own dispatch must never wait on its own consumption).
#[derive(Clone, Copy)]
pub(crate) struct PutWait {
    pub(crate) block: bool,
    pub(crate) max_spin: u32,
    /// `None`: for ever.
    pub(crate) timeout: Option<Duration>,
    /// The putting engine's id (see `dispatch_thread`).
    pub(crate) engine: usize,
}

impl PutWait {
    /// Whether the put runs in a handler called by the engine's own loop (docs/delivery.md,
    /// "Puts from a handler"). Asked only by a put that would wait.
    pub(crate) fn is_from_own_dispatch(&self) -> bool {
        dispatch_thread::is_dispatching(self.engine)
    }
}

/// How `get()` waits for a message.
#[derive(Clone, Copy)]
pub(crate) struct GetWait {
    pub(crate) block: bool,
    pub(crate) max_spin: u32,
    /// `None`: for ever.
    pub(crate) timeout: Option<Duration>,
}

/// What one [`MessageSource::receive`] call did.
pub(crate) enum Receipt {
    /// Dispatched this many messages (0: the wait ran out or was interrupted).
    Dispatched(usize),
    /// The source cannot deliver any more (detached from its bus): the loop ends.
    Ended,
    /// The source failed and detached (a corrupt bus): the loop ends, logging this error.
    Failed(String),
}

/// Where an engine's messages go and come from.
pub(crate) trait MessageSource {
    /// The most messages it holds (a bus: its ring slots).
    fn capacity(&self) -> usize;

    /// Messages waiting for this engine (a snapshot; wake-ups not counted).
    fn len(&self) -> usize;

    /// Sends a message this engine publishes; `Full` when there is no room in time.
    fn put(&self, py: Python<'_>, msg: Outgoing<'_, '_>, wait: PutWait) -> PyResult<()>;

    /// Queues an item that stays in this engine (a timer tick), waiting up to `timeout` for
    /// room; gives it back if there is none. Called without the GIL.
    fn push_local(&self, msg: Message, timeout: Duration) -> Result<(), Message>;

    /// Wakes up to `loops` loops parked in [`MessageSource::receive`].
    fn wake(&self, loops: usize);

    /// Waits (without the GIL) for messages and dispatches a batch of them; each message of a
    /// bus is acknowledged after its handlers ran.
    fn receive(&self, py: Python<'_>, dispatcher: &mut Dispatcher<'_>) -> PyResult<Receipt>;

    /// Takes one message, bypassing the hooks (`get()`); `Empty` when there is none in time.
    fn take(&self, py: Python<'_>, wait: GetWait) -> PyResult<PyMessagePayload>;

    /// The fd an asyncio loop watches for this engine (`aio.rs`; made on first use).
    fn loop_fd(&self) -> PyResult<i32>;

    /// On an asyncio loop's thread: dispatches what is ready, without waiting, up to `budget`
    /// messages, stopping after a message whose handlers returned awaitables. When nothing is
    /// left, arranges for the loop's fd to be signalled once something comes.
    fn drain_on_loop(
        &self,
        py: Python<'_>,
        dispatcher: &mut Dispatcher<'_>,
        budget: usize,
    ) -> PyResult<LoopDrain>;

    /// `aget()`: the next message without waiting, or `None` with the loop's fd armed.
    fn take_on_loop(&self, py: Python<'_>) -> PyResult<Option<PyMessagePayload>>;

    /// Ends the thread that relays a bus's wake-ups to a loop, if there is one.
    fn end_relay(&self, _py: Python<'_>) {}

    /// From now on this engine wants the topics of its hooks (patterns).
    fn set_interest(&self, py: Python<'_>, topics: Vec<String>) -> PyResult<()>;

    /// The bus this source is attached to, if any.
    fn bus_name(&self) -> Option<&str>;

    /// The work-sharing group of this engine on its bus, if any.
    fn group(&self) -> Option<&str>;

    /// Messages taken from a lossy engine because it was a full ring behind (0 otherwise).
    fn missed(&self) -> u64 {
        0
    }

    /// `loan(nbytes)`: memory a put of this engine publishes without a copy (`loan.rs`); an
    /// engine without a bus lends a `bytearray` (its puts copy nothing anyway).
    fn loan<'py>(
        &self,
        py: Python<'py>,
        nbytes: usize,
        timeout: Option<Duration>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let _ = timeout;
        Ok(pyo3::types::PyByteArray::new_with(py, nbytes, |_| Ok(()))?.into_any())
    }

    /// Loans published from their own block.
    fn loans_published(&self) -> u64 {
        0
    }

    /// Whether `close()` detached it (never, for the in-process queue).
    fn is_closed(&self) -> bool;

    /// Detaches from the bus (refused while this engine dispatches); true if it was attached.
    fn close(&self) -> PyResult<bool>;

    /// Detaches unless another thread is using the source at this moment (at exit).
    fn close_if_idle(&self);

    /// What the last receives learned that is logged at INFO (reaps, redelivered messages).
    fn news(&self) -> Vec<String>;
}
