//! Blocking with a timeout: spin briefly, then sleep on a futex in the shared mapping.
//!
//! A sleeper announces itself in a sleeper count (and in its row, so a reaper can undo the count
//! if it dies asleep) before re-checking its condition, and the waking side checks the count
//! after making its change visible, with a SeqCst fence on both sides: either the sleeper sees the
//! change, or the waker sees the sleeper. While blocked, a waiter keeps its heartbeat fresh and,
//! after [`PUBLISHER_REAP_AFTER`] or [`SUBSCRIBER_REAP_AFTER`], reaps dead processes that may be what it is waiting for
//! (an idle lossy subscriber does not: it never takes the table lock, see `may_reap`).
//!
//! A waiter may ask to stay hot for a while first ([`wait_for_hot`]): it polls, yielding the CPU
//! every few spins so that on a machine with few cores the process it waits for still runs, and
//! only then goes the usual way to sleep. A subscriber does this after it has just received
//! messages: in a steady stream, a sleeping subscriber costs the publisher a FUTEX_WAKE per
//! message and itself a FUTEX_WAIT, while a hot one costs neither.

use crate::blocks::atomics::Ordering;
use crate::blocks::sleepers::Sleeper;
use crate::recovery::lock_table_within;
use crate::region::layout::{Row, SLEEPING_PUBLISHER, SLEEPING_SUBSCRIBER};
use crate::region::liveness::now_ns;
use crate::region::Region;
use crate::BusError;
use std::cell::Cell;
use std::time::{Duration, Instant};

/// Which side is waiting.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// A subscriber of this consumer entry waiting for data.
    Subscriber(u32),
    /// A publisher waiting for ring or slab space.
    Publisher,
}

/// Blocked this long, a publisher checks whether dead processes are holding it up, and again
/// every as long while it stays blocked. A check is cheap (liveness is one `F_OFD_GETLK` per
/// live row, `region/liveness.rs`), so it comes early: a consumer killed holding the ring holds
/// its publishers about this long (docs/delivery.md, "Dead and stopped processes").
pub(crate) const PUBLISHER_REAP_AFTER: Duration = Duration::from_millis(20);
/// Idle this long, a subscriber checks (on each heartbeat) whether a dead process holds up its
/// group or the ring; less often than publishers, since an idle bus is the common case.
pub(crate) const SUBSCRIBER_REAP_AFTER: Duration = Duration::from_secs(1);
/// Waiting this long at a position claimed and not announced (its claimant stopped between its
/// claim and its announcement), a receiver or a blocked publisher seals it (`RingView::seal`)
/// and goes on; the claimant publishes its message at a new position when it resumes. A live
/// claimant spends nanoseconds there, so a seal almost always means a stopped or descheduled
/// one, and a wrong one costs it only a new claim. A receiver asleep there sleeps no longer.
pub(crate) const SEAL_AFTER: Duration = Duration::from_millis(1);
const SLICE: Duration = Duration::from_millis(50);
const SPINS: u32 = 128;
const YIELDS: u32 = 16;

/// How long a subscriber that has just received messages polls before it may sleep.
pub(crate) const HOT_WAIT: Duration = Duration::from_micros(50);
/// Spins between two clock reads (and yields) of a hot poll.
const HOT_SPINS: u32 = 32;

/// Calls `attempt` until it yields a value or `timeout` runs out (`Ok(None)`). `Some(ZERO)` tries
/// once; `None` waits forever.
pub(crate) fn wait_for<T>(
    region: &Region,
    row: &Row,
    side: Side,
    timeout: Option<Duration>,
    attempt: impl FnMut() -> Result<Option<T>, BusError>,
) -> Result<Option<T>, BusError> {
    wait_for_hot(region, row, side, timeout, Duration::ZERO, attempt)
}

/// [`wait_for`] that first polls for up to `hot` (spinning, yielding every [`HOT_SPINS`] tries)
/// before the usual short spin and sleep.
pub(crate) fn wait_for_hot<T>(
    region: &Region,
    row: &Row,
    side: Side,
    timeout: Option<Duration>,
    hot: Duration,
    mut attempt: impl FnMut() -> Result<Option<T>, BusError>,
) -> Result<Option<T>, BusError> {
    wait_with(region, row, side, timeout, hot, None, |_| attempt())
}

/// A receiver's wait: [`wait_for_hot`] whose `attempt(patient)` is told whether the receiver is
/// about to sleep (`patient`: it may then look harder, at what a claimant announced) and sets
/// `blind` when it found its position claimed with addressees it does not know: it then sleeps
/// blind (`blocks/sleepers.rs`), so that the commit or discard of that position wakes it.
pub(crate) fn wait_for_data<T>(
    region: &Region,
    row: &Row,
    consumer: u32,
    timeout: Option<Duration>,
    hot: Duration,
    blind: &Cell<bool>,
    attempt: impl FnMut(bool) -> Result<Option<T>, BusError>,
) -> Result<Option<T>, BusError> {
    let side = Side::Subscriber(consumer);
    wait_with(region, row, side, timeout, hot, Some(blind), attempt)
}

/// Whether a blocked waiter looks for dead processes (under the table lock). Not an idle lossy
/// subscriber: a monitor stopped at any instruction must never hold publishers back, and a
/// publisher evicting it needs the table lock, which it would keep if stopped during a reap.
/// It still reaps when it sleeps blind at a position claimed by someone (perhaps dead) and not
/// yet published, which only a reap or a seal moves past.
fn may_reap(region: &Region, side: Side, blind: bool) -> bool {
    match side {
        Side::Publisher => true,
        Side::Subscriber(c) => {
            blind
                || region.header().lossy_mask.load(Ordering::Relaxed)
                    & 1u64.checked_shl(c).unwrap_or(0)
                    == 0
        }
    }
}

fn wait_with<T>(
    region: &Region,
    row: &Row,
    side: Side,
    timeout: Option<Duration>,
    hot: Duration,
    blind: Option<&Cell<bool>>,
    mut attempt: impl FnMut(bool) -> Result<Option<T>, BusError>,
) -> Result<Option<T>, BusError> {
    if let Some(v) = attempt(false)? {
        return Ok(Some(v));
    }
    if timeout == Some(Duration::ZERO) {
        return if blind.is_some() {
            attempt(true)
        } else {
            Ok(None)
        };
    }
    let start = Instant::now();
    let deadline = timeout.map(|t| start + t);
    if !hot.is_zero() {
        let until = start + timeout.map_or(hot, |t| t.min(hot));
        let mut i = 0u32;
        loop {
            if let Some(v) = attempt(false)? {
                return Ok(Some(v));
            }
            i = i.wrapping_add(1);
            if i.is_multiple_of(HOT_SPINS) {
                if Instant::now() >= until {
                    break;
                }
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
    }
    for i in 0..SPINS + YIELDS {
        if i < SPINS {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
        if let Some(v) = attempt(false)? {
            return Ok(Some(v));
        }
    }
    // A receiver's patient look before its first sleep: it also says whether to sleep blind.
    if blind.is_some() {
        if let Some(v) = attempt(true)? {
            return Ok(Some(v));
        }
    }
    let h = region.header();
    let (futex, sleepers, tag) = match side {
        Side::Subscriber(idx) => {
            let c = region
                .consumers()
                .get(idx as usize)
                .expect("own consumer is in range");
            (&c.futex, &c.sleepers, SLEEPING_SUBSCRIBER)
        }
        Side::Publisher => (&h.space_futex, &h.pub_sleepers, SLEEPING_PUBLISHER),
    };
    let mut last_reap = start;
    loop {
        let now = Instant::now();
        let left = match deadline {
            Some(d) if now >= d => return Ok(None),
            Some(d) => d - now,
            None => SLICE,
        };
        let is_blind = || blind.is_some_and(Cell::get);
        let counted_blind = is_blind();
        let sleeper = Sleeper {
            futex,
            sleepers,
            mark: &row.sleeping,
            tag,
            blind: counted_blind.then_some(&h.blind_sleepers),
        };
        let reap_after = match side {
            Side::Subscriber(_) => SUBSCRIBER_REAP_AFTER,
            Side::Publisher => PUBLISHER_REAP_AFTER,
        };
        // Wake for the next check of dead holders, if it comes before the slice ends.
        let next_reap = reap_after
            .saturating_sub(start.elapsed())
            .max(reap_after.saturating_sub(last_reap.elapsed()))
            .max(Duration::from_millis(1));
        // A blind sleeper may have to seal the position it waits at (`SEAL_AFTER`).
        let slice = if counted_blind { SEAL_AFTER } else { SLICE };
        let got = sleeper.sleep_unless(left.min(slice).min(next_reap), || match attempt(true) {
            // Blind now but not counted as blind: count in first, or a commit behind us could
            // be missed.
            Ok(None) if is_blind() && !counted_blind => Some(Ok(None)),
            Ok(None) => None,
            got => Some(got),
        });
        match got {
            Some(Ok(None)) => continue,
            Some(got) => return got,
            None => {}
        }
        row.heartbeat_ns.store(now_ns(), Ordering::Relaxed);
        if let Some(v) = attempt(true)? {
            return Ok(Some(v));
        }
        if start.elapsed() >= reap_after
            && last_reap.elapsed() >= reap_after
            && may_reap(region, side, counted_blind)
        {
            last_reap = Instant::now();
            // Opportunistic: a holder that keeps the lock (stopped) must not stretch this wait.
            if let Ok(g) = lock_table_within(region, Duration::from_millis(20)) {
                let _ = crate::recovery::reap_locked(&g);
            }
        }
    }
}
