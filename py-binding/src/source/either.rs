//! [`Source`]: the source an engine holds, one of the two, forwarding every call of the
//! [`MessageSource`] interface to it.

use std::time::Duration;

use pyo3::prelude::*;

use super::bus::BusSource;
use super::queue::QueueSource;
use super::{GetWait, MessageSource, PutWait, Receipt};
use crate::aio::LoopDrain;
use crate::dispatch::Dispatcher;
use crate::message::{Message, Outgoing};
use crate::payload::PyMessagePayload;

/// An engine's source.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Source {
    InProcess(QueueSource),
    Bus(Box<BusSource>),
}

/// Forwards a call to the source inside.
macro_rules! forward {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            Source::InProcess($s) => $call,
            Source::Bus($s) => $call,
        }
    };
}

impl MessageSource for Source {
    #[inline]
    fn capacity(&self) -> usize {
        forward!(self, s => s.capacity())
    }
    #[inline]
    fn len(&self) -> usize {
        forward!(self, s => s.len())
    }
    #[inline]
    fn put(&self, py: Python<'_>, msg: Outgoing<'_, '_>, wait: PutWait) -> PyResult<()> {
        forward!(self, s => s.put(py, msg, wait))
    }
    #[inline]
    fn push_local(&self, msg: Message, timeout: Duration) -> Result<(), Message> {
        forward!(self, s => s.push_local(msg, timeout))
    }
    fn wake(&self, loops: usize) {
        forward!(self, s => s.wake(loops))
    }
    #[inline]
    fn receive(&self, py: Python<'_>, dispatcher: &mut Dispatcher<'_>) -> PyResult<Receipt> {
        forward!(self, s => s.receive(py, dispatcher))
    }
    fn take(&self, py: Python<'_>, wait: GetWait) -> PyResult<PyMessagePayload> {
        forward!(self, s => s.take(py, wait))
    }
    fn loop_fd(&self) -> PyResult<i32> {
        forward!(self, s => s.loop_fd())
    }
    fn drain_on_loop(
        &self,
        py: Python<'_>,
        dispatcher: &mut Dispatcher<'_>,
        budget: usize,
    ) -> PyResult<LoopDrain> {
        forward!(self, s => s.drain_on_loop(py, dispatcher, budget))
    }
    fn take_on_loop(&self, py: Python<'_>) -> PyResult<Option<PyMessagePayload>> {
        forward!(self, s => s.take_on_loop(py))
    }
    fn end_relay(&self, py: Python<'_>) {
        forward!(self, s => s.end_relay(py))
    }
    fn set_interest(&self, py: Python<'_>, topics: Vec<String>) -> PyResult<()> {
        forward!(self, s => s.set_interest(py, topics))
    }
    fn bus_name(&self) -> Option<&str> {
        forward!(self, s => s.bus_name())
    }
    fn group(&self) -> Option<&str> {
        forward!(self, s => s.group())
    }
    fn missed(&self) -> u64 {
        forward!(self, s => s.missed())
    }
    fn loan<'py>(
        &self,
        py: Python<'py>,
        nbytes: usize,
        timeout: Option<Duration>,
    ) -> PyResult<Bound<'py, PyAny>> {
        forward!(self, s => s.loan(py, nbytes, timeout))
    }
    fn loans_published(&self) -> u64 {
        forward!(self, s => s.loans_published())
    }
    fn is_closed(&self) -> bool {
        forward!(self, s => s.is_closed())
    }
    fn close(&self) -> PyResult<bool> {
        forward!(self, s => s.close())
    }
    fn close_if_idle(&self) {
        forward!(self, s => s.close_if_idle())
    }
    fn news(&self) -> Vec<String> {
        forward!(self, s => s.news())
    }
}
