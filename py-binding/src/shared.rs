//! The state an engine object shares with its loops, its timer threads and the exit.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

use engine_core::Topic;

use crate::dispatch_thread::Dispatching;
use crate::lock::lock;
use crate::message::{Message, TimerTick};
use crate::source::{MessageSource, Source};

/// How long a timer thread waits for room for a tick before it checks `active` again.
const TICK_WAIT: Duration = Duration::from_millis(50);

/// State shared by the engine object, its loops and its timer threads.
pub(crate) struct Shared {
    /// Where the messages go and come from.
    pub(crate) source: Source,
    /// Whether the engine runs; loops and timers end when it turns false.
    pub(crate) active: AtomicBool,
    /// Messages numbered so far: the next message's sequence number.
    pub(crate) seq: AtomicU64,
    /// Loops currently running (`run()` calls), each needing a wake-up on stop.
    loops: AtomicUsize,
    /// Signalled on every activate/deactivate (for the blocking timer calls) and whenever a
    /// loop ends (for the exit).
    state: (Mutex<()>, Condvar),
}

impl Shared {
    pub(crate) fn new(source: Source) -> Arc<Self> {
        Arc::new(Shared {
            source,
            active: AtomicBool::new(false),
            seq: AtomicU64::new(0),
            loops: AtomicUsize::new(0),
            state: (Mutex::new(()), Condvar::new()),
        })
    }

    pub(crate) fn is_active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    /// The next message sequence number (the first is 0, as in the reference).
    pub(crate) fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    /// Gives back the number of a message that was not queued after all (`Full`), so that
    /// `seq` keeps counting the messages put, as in the reference.
    pub(crate) fn unnumber(&self) {
        self.seq.fetch_sub(1, Ordering::Relaxed);
    }

    /// This engine's id for `dispatch_thread`.
    pub(crate) fn id(&self) -> usize {
        self as *const Shared as usize
    }

    /// Activates or deactivates; deactivating wakes every parked loop.
    pub(crate) fn set_active(&self, active: bool) {
        self.active.store(active, Ordering::Release);
        if !active {
            self.source.wake(self.loops.load(Ordering::Acquire));
        }
        let _guard = lock(&self.state.0);
        self.state.1.notify_all();
    }

    /// Parks until the engine is inactive or `timeout` passes; true when inactive.
    pub(crate) fn wait_inactive(&self, timeout: Duration) -> bool {
        let guard = lock(&self.state.0);
        if !self.is_active() {
            return true;
        }
        let _ = self.state.1.wait_timeout(guard, timeout);
        !self.is_active()
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
        if !self.is_active() {
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
            match self.source.push_local(msg, TICK_WAIT) {
                Ok(()) => return,
                Err(back) if self.is_active() => msg = back,
                Err(_) => return self.unnumber(),
            }
        }
    }
}

/// A loop of `Shared`'s engine runs on this thread while it lives: counted (stop wakes each
/// loop, exit waits for them) and marked, so that a put from one of its handlers knows it
/// comes from the engine's own dispatch.
pub(crate) struct LoopGuard<'a> {
    shared: &'a Shared,
    _marked: Dispatching,
}

impl<'a> LoopGuard<'a> {
    pub(crate) fn enter(shared: &'a Shared) -> Self {
        shared.loops.fetch_add(1, Ordering::AcqRel);
        LoopGuard {
            shared,
            _marked: Dispatching::enter(shared.id()),
        }
    }
}

impl Drop for LoopGuard<'_> {
    fn drop(&mut self) {
        self.shared.loops.fetch_sub(1, Ordering::AcqRel);
        let _guard = lock(&self.shared.state.0);
        self.shared.state.1.notify_all();
    }
}
