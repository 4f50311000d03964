//! Dispatch: one message to the hooks its topic routes to.
//!
//! Every message, from the local queue or from a bus, is routed the same way: by its topic
//! literal and hash, through the hook table's cached route (one hash lookup for a topic seen
//! before), and once: a bus receiver that decides without the GIL whether it wants a message
//! ([`Dispatcher::find`]) hands the key of that lookup to [`Dispatcher::dispatch_found`].
//! The routed hooks are copied out first, so no Rust lock is held while Python code
//! runs (handlers may register handlers, stop the engine, ...). Only then is the message opened
//! (a bus message decoded) and each hook called.

use std::sync::Mutex;

use engine_core::{HookTable, RouteKey};
use pyo3::prelude::*;

use crate::hook::PyEventHook;
use crate::lock::lock;
use crate::logger;
use crate::message::{Envelope, Message};

/// An engine's hooks by topic.
pub(crate) type Hooks = Mutex<HookTable<Py<PyEventHook>>>;

/// Routes messages to an engine's hooks; one per running loop (it keeps a scratch list).
pub(crate) struct Dispatcher<'a> {
    hooks: &'a Hooks,
    logger: &'a Mutex<Option<Py<PyAny>>>,
    routed: Vec<Py<PyEventHook>>,
    /// Messages a local queue handed over in one go (reused from batch to batch).
    pub(crate) batch: Vec<Message>,
}

impl<'a> Dispatcher<'a> {
    pub(crate) fn new(hooks: &'a Hooks, logger: &'a Mutex<Option<Py<PyAny>>>) -> Self {
        Dispatcher {
            hooks,
            logger,
            routed: Vec::new(),
            batch: Vec::new(),
        }
    }

    /// The route of this topic ([`RouteKey::is_empty`]: no hook wants it). Needs no GIL: a
    /// source calls it while it waits, to skip unwanted messages without opening them, and
    /// passes the key of the message it keeps to [`Dispatcher::dispatch_found`].
    pub(crate) fn find(&self, topic_hash: u64, literal: &str) -> RouteKey {
        lock(self.hooks).find_route(topic_hash, literal)
    }

    /// Calls every hook `m`'s topic routes to; a message no hook wants is not opened.
    #[inline]
    pub(crate) fn dispatch(&mut self, py: Python<'_>, m: &impl Envelope) {
        self.dispatch_found(py, m, None);
    }

    /// [`Dispatcher::dispatch`] of a message whose route [`Dispatcher::find`] found as `key`
    /// (read through the key, not looked up again, unless the hooks changed meanwhile).
    #[inline]
    pub(crate) fn dispatch_found(
        &mut self,
        py: Python<'_>,
        m: &impl Envelope,
        key: Option<RouteKey>,
    ) {
        route_into(
            py,
            self.hooks,
            key,
            m.topic_hash(),
            m.topic_literal(),
            &mut self.routed,
        );
        if self.routed.is_empty() {
            return;
        }
        let routed = &mut self.routed;
        let called = m.open(py, |call| {
            let topic = call.topic.as_any();
            for hook in routed.drain(..) {
                hook.get().dispatch(py, topic, call.args, call.kwargs);
            }
        });
        if let Err(e) = called {
            self.routed.clear();
            self.report_unopened(py, m.topic_literal(), e);
        }
    }

    /// A message that cannot become a handler call (a payload that does not decode, a tick
    /// whose `datetime` fails) is logged as an error and dropped.
    fn report_unopened(&self, py: Python<'_>, topic: &str, e: PyErr) {
        let text = format!("cannot decode a message on \"{topic}\": {e}");
        match logger::resolve(py, self.logger) {
            Ok(log) => {
                if let Err(e) = log.call_method1("error", (text,)) {
                    e.write_unraisable(py, None);
                }
            }
            Err(e) => e.write_unraisable(py, None),
        }
    }
}

/// Copies the hooks routed to a topic into `out` (no lock held afterwards), through `key` when
/// a lookup already found them. The one routing rule: by literal (docs/topic-grammar.md#routing).
#[inline]
pub(crate) fn route_into(
    py: Python<'_>,
    hooks: &Hooks,
    key: Option<RouteKey>,
    topic_hash: u64,
    literal: &str,
    out: &mut Vec<Py<PyEventHook>>,
) {
    let mut table = lock(hooks);
    out.extend(
        table
            .route_keyed(key, topic_hash, literal)
            .map(|h| h.clone_ref(py)),
    );
}
