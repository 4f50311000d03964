//! `Timer`: a background thread that calls back at a fixed interval, optionally on whole
//! wall-clock seconds or minutes (the engine's second and minute timers).
//!
//! The schedule is worked out by two pure functions, [`first_tick`] and [`next_tick`], so it
//! can be tested without waiting on a clock. The thread waits on a condition variable with a
//! timeout rather than sleeping, so [`Timer::stop`] ends it at once. When a callback runs
//! late enough to miss ticks, the missed ticks are skipped rather than fired in a burst.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One call of a timer's callback.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tick {
    /// The timer's interval in seconds.
    pub interval: f64,
    /// The wall-clock time this tick was scheduled for (the callback runs at or just after).
    pub scheduled: SystemTime,
}

/// Where ticks fall on the wall clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alignment {
    /// Every interval from the first tick, wherever that falls.
    None,
    /// On whole wall-clock seconds.
    Second,
    /// On whole wall-clock minutes.
    Minute,
}

impl Alignment {
    /// The alignment the engine uses for an interval in seconds: 1 -> `Second`,
    /// 60 -> `Minute`, anything else -> `None`.
    pub fn for_interval(seconds: f64) -> Alignment {
        if seconds == 1.0 {
            Alignment::Second
        } else if seconds == 60.0 {
            Alignment::Minute
        } else {
            Alignment::None
        }
    }

    fn unit(self) -> Option<Duration> {
        match self {
            Alignment::None => None,
            Alignment::Second => Some(Duration::from_secs(1)),
            Alignment::Minute => Some(Duration::from_secs(60)),
        }
    }
}

/// The first multiple of `unit` (counted from the Unix epoch) at or after `t`.
/// Times before the epoch are left as they are.
fn align_up(t: SystemTime, unit: Duration) -> SystemTime {
    let Ok(since_epoch) = t.duration_since(UNIX_EPOCH) else {
        return t;
    };
    let unit_ns = unit.as_nanos();
    let rest = since_epoch.as_nanos() % unit_ns;
    if rest == 0 {
        t
    } else {
        // `unit_ns - rest` is below `unit_ns`, which fits in u64 for any sane unit.
        t + Duration::from_nanos(u64::try_from(unit_ns - rest).unwrap_or(u64::MAX))
    }
}

/// When the first tick is due.
///
/// Without alignment: at `activate_time`, or one interval from `now` when there is none.
/// With alignment: at the first whole second/minute at or after `activate_time`, or the
/// first one strictly after `now` when there is none.
pub fn first_tick(
    now: SystemTime,
    interval: Duration,
    activate_time: Option<SystemTime>,
    alignment: Alignment,
) -> SystemTime {
    match (alignment.unit(), activate_time) {
        (None, Some(at)) => at,
        (None, None) => now + interval,
        (Some(unit), Some(at)) => align_up(at, unit),
        (Some(unit), None) => align_up(now + Duration::from_nanos(1), unit),
    }
}

/// When the tick after the one scheduled at `previous` is due, given that it is now `now`.
///
/// Normally `previous + interval` (moved up to the next whole second/minute when aligned).
/// If that is not after `now` because ticks were missed, it moves on by whole intervals to
/// the first slot after `now`, so missed ticks are skipped.
pub fn next_tick(
    previous: SystemTime,
    interval: Duration,
    now: SystemTime,
    alignment: Alignment,
) -> SystemTime {
    let mut next = previous + interval;
    if next <= now {
        let behind = now.duration_since(previous).unwrap_or_default();
        let missed = behind.as_nanos() / interval.as_nanos().max(1);
        let skip = interval.as_nanos() * (missed + 1);
        next = previous + Duration::from_nanos(u64::try_from(skip).unwrap_or(u64::MAX));
    }
    match alignment.unit() {
        Some(unit) => align_up(next, unit),
        None => next,
    }
}

/// State shared with the timer thread.
struct Control {
    stopped: Mutex<bool>,
    wake: Condvar,
}

/// A background thread calling a callback at a fixed interval; dropping the timer or calling
/// [`stop`](Timer::stop) ends it promptly.
///
/// ```
/// use event_engine_core::{Alignment, Timer};
/// use std::sync::mpsc;
/// use std::time::Duration;
///
/// let (tx, rx) = mpsc::channel();
/// let mut timer = Timer::spawn(Duration::from_millis(1), None, Alignment::None, move |tick| {
///     let _ = tx.send(tick);
/// });
/// let first = rx.recv().unwrap();
/// let second = rx.recv().unwrap();
/// assert!(second.scheduled > first.scheduled);
/// timer.stop();
/// assert!(!timer.is_running());
/// ```
pub struct Timer {
    control: Arc<Control>,
    thread: Option<JoinHandle<()>>,
}

impl Timer {
    /// Calls `on_tick` at `activate_time` (or now + interval when `None`) and every
    /// `interval` after, aligned to the wall-clock second/minute for
    /// [`Alignment::Second`]/[`Alignment::Minute`] (see [`first_tick`] and [`next_tick`]).
    /// [`stop`](Self::stop) wakes the thread at once (no waiting out the interval) and joins
    /// it.
    ///
    /// # Panics
    ///
    /// When `interval` is zero, or the thread cannot be started.
    pub fn spawn(
        interval: Duration,
        activate_time: Option<SystemTime>,
        alignment: Alignment,
        mut on_tick: impl FnMut(Tick) + Send + 'static,
    ) -> Timer {
        assert!(!interval.is_zero(), "a timer interval must be positive");
        let control = Arc::new(Control {
            stopped: Mutex::new(false),
            wake: Condvar::new(),
        });
        let shared = Arc::clone(&control);
        let thread = thread::Builder::new()
            .name(format!("timer-{}s", interval.as_secs_f64()))
            .spawn(move || {
                let mut due = first_tick(SystemTime::now(), interval, activate_time, alignment);
                while shared.wait_until(due) {
                    on_tick(Tick {
                        interval: interval.as_secs_f64(),
                        scheduled: due,
                    });
                    due = next_tick(due, interval, SystemTime::now(), alignment);
                }
            })
            .expect("failed to start a timer thread");
        Timer {
            control,
            thread: Some(thread),
        }
    }

    /// Stops the timer: wakes its thread at once and waits for it to end (unless called from
    /// the callback itself, which then returns as the thread's last act).
    pub fn stop(&mut self) {
        {
            let mut stopped = self
                .control
                .stopped
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            *stopped = true;
            self.control.wake.notify_all();
        }
        if let Some(thread) = self.thread.take() {
            if thread.thread().id() != thread::current().id() {
                // A panic in the callback already ended the thread; nothing more to do.
                let _ = thread.join();
            }
        }
    }

    /// Whether the thread is still running (false after `stop`, or if the callback panicked).
    pub fn is_running(&self) -> bool {
        self.thread
            .as_ref()
            .is_some_and(|thread| !thread.is_finished())
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Control {
    /// Waits until the wall clock reaches `due`; false when stopped first.
    fn wait_until(&self, due: SystemTime) -> bool {
        let mut stopped = self.stopped.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if *stopped {
                return false;
            }
            // Re-read the clock after every wake-up: it may have been adjusted meanwhile.
            match due.duration_since(SystemTime::now()) {
                Ok(left) if !left.is_zero() => {
                    stopped = self
                        .wake
                        .wait_timeout(stopped, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
                _ => return true,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// A wall-clock time given in seconds since the epoch, to the millisecond.
    fn at(seconds: f64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis((seconds * 1000.0).round() as u64)
    }

    fn secs(t: SystemTime) -> f64 {
        t.duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
    }

    const S: Duration = Duration::from_secs(1);
    const M: Duration = Duration::from_secs(60);

    #[test]
    fn alignment_for_interval() {
        assert_eq!(Alignment::for_interval(1.0), Alignment::Second);
        assert_eq!(Alignment::for_interval(60.0), Alignment::Minute);
        assert_eq!(Alignment::for_interval(0.5), Alignment::None);
        assert_eq!(Alignment::for_interval(5.0), Alignment::None);
        assert_eq!(Alignment::for_interval(3600.0), Alignment::None);
    }

    #[test]
    fn first_tick_without_alignment() {
        let interval = Duration::from_millis(2500);
        assert_eq!(
            first_tick(at(100.3), interval, None, Alignment::None),
            at(102.8)
        );
        assert_eq!(
            first_tick(at(100.3), interval, Some(at(150.1)), Alignment::None),
            at(150.1)
        );
        // An activation time in the past fires at once.
        assert_eq!(
            first_tick(at(100.3), interval, Some(at(90.0)), Alignment::None),
            at(90.0)
        );
    }

    #[test]
    fn first_tick_on_whole_seconds() {
        assert_eq!(
            first_tick(at(1000.3), S, None, Alignment::Second),
            at(1001.0)
        );
        assert_eq!(
            first_tick(at(1000.0), S, None, Alignment::Second),
            at(1001.0),
            "strictly after now"
        );
        assert_eq!(
            first_tick(at(1000.999), S, None, Alignment::Second),
            at(1001.0)
        );
        assert_eq!(
            first_tick(at(1000.3), S, Some(at(1005.5)), Alignment::Second),
            at(1006.0)
        );
        assert_eq!(
            first_tick(at(1000.3), S, Some(at(1005.0)), Alignment::Second),
            at(1005.0),
            "a whole activation time stays"
        );
    }

    #[test]
    fn first_tick_on_whole_minutes() {
        assert_eq!(first_tick(at(120.5), M, None, Alignment::Minute), at(180.0));
        assert_eq!(first_tick(at(120.0), M, None, Alignment::Minute), at(180.0));
        assert_eq!(first_tick(at(179.9), M, None, Alignment::Minute), at(180.0));
        assert_eq!(
            first_tick(at(10.0), M, Some(at(601.0)), Alignment::Minute),
            at(660.0)
        );
    }

    #[test]
    fn next_tick_steps_by_the_interval() {
        let half = Duration::from_millis(500);
        assert_eq!(
            next_tick(at(10.25), half, at(10.3), Alignment::None),
            at(10.75)
        );
        assert_eq!(
            next_tick(at(1001.0), S, at(1001.01), Alignment::Second),
            at(1002.0)
        );
        assert_eq!(
            next_tick(at(180.0), M, at(181.0), Alignment::Minute),
            at(240.0)
        );
        // Aligned timers with other intervals still land on whole units.
        assert_eq!(
            next_tick(
                at(1001.0),
                Duration::from_millis(2500),
                at(1001.5),
                Alignment::Second
            ),
            at(1004.0)
        );
    }

    #[test]
    fn next_tick_skips_missed_ticks() {
        let half = Duration::from_millis(500);
        assert_eq!(
            next_tick(at(10.25), half, at(12.0), Alignment::None),
            at(12.25)
        );
        assert_eq!(
            next_tick(at(10.25), half, at(12.25), Alignment::None),
            at(12.75),
            "a slot exactly at now is already past"
        );
        assert_eq!(
            next_tick(at(1001.0), S, at(1005.5), Alignment::Second),
            at(1006.0)
        );
        assert_eq!(
            next_tick(at(180.0), M, at(400.0), Alignment::Minute),
            at(420.0)
        );
    }

    #[test]
    fn schedules_are_increasing_and_aligned() {
        for (interval, alignment, unit) in
            [(S, Alignment::Second, 1.0), (M, Alignment::Minute, 60.0)]
        {
            let mut due = first_tick(at(12345.678), interval, None, alignment);
            for step in 0..100 {
                assert_eq!(
                    secs(due) % unit,
                    0.0,
                    "{alignment:?} tick {step} at {due:?}"
                );
                let now = due + Duration::from_millis(step * 7);
                let next = next_tick(due, interval, now, alignment);
                assert!(next > now);
                due = next;
            }
        }
    }

    #[test]
    fn ticks_arrive_in_order() {
        let (tx, rx) = mpsc::channel();
        let interval = Duration::from_millis(2);
        let mut timer = Timer::spawn(interval, None, Alignment::None, move |tick| {
            let _ = tx.send(tick);
        });
        assert!(timer.is_running());
        let ticks: Vec<Tick> = (0..5).map(|_| rx.recv().unwrap()).collect();
        for pair in ticks.windows(2) {
            assert!(pair[1].scheduled >= pair[0].scheduled + interval);
        }
        assert!(ticks.iter().all(|tick| tick.interval == 0.002));
        timer.stop();
        assert!(!timer.is_running());
        // The thread is gone, so the sender is dropped once the last ticks are read.
        while rx.recv().is_ok() {}
    }

    #[test]
    fn second_ticks_fall_on_whole_seconds() {
        let (tx, rx) = mpsc::channel();
        let started = SystemTime::now();
        let _timer = Timer::spawn(S, None, Alignment::Second, move |tick| {
            let _ = tx.send(tick);
        });
        let tick = rx.recv().unwrap();
        assert_eq!(tick.interval, 1.0);
        assert!(tick.scheduled > started);
        assert_eq!(
            tick.scheduled
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .subsec_nanos(),
            0
        );
    }

    #[test]
    fn activation_time_sets_the_first_tick() {
        let (tx, rx) = mpsc::channel();
        let activate = SystemTime::now() - Duration::from_secs(10);
        let _timer = Timer::spawn(
            Duration::from_secs(3600),
            Some(activate),
            Alignment::None,
            move |tick| {
                let _ = tx.send(tick);
            },
        );
        assert_eq!(rx.recv().unwrap().scheduled, activate);
    }

    #[test]
    fn stop_does_not_wait_out_the_interval() {
        // With an hour-long interval, a stop that waited would hang this test.
        let (tx, rx) = mpsc::channel::<Tick>();
        let mut timer = Timer::spawn(Duration::from_secs(3600), None, Alignment::None, move |t| {
            let _ = tx.send(t);
        });
        timer.stop();
        assert!(!timer.is_running());
        assert!(rx.recv().is_err(), "no tick before the first interval");
        timer.stop(); // stopping twice is harmless
    }

    #[test]
    fn dropping_the_timer_stops_it() {
        let (tx, rx) = mpsc::channel::<Tick>();
        let timer = Timer::spawn(Duration::from_secs(60), None, Alignment::None, move |t| {
            let _ = tx.send(t);
        });
        drop(timer);
        assert!(rx.recv().is_err());
    }

    #[test]
    fn a_panicking_callback_ends_the_timer() {
        let (tx, rx) = mpsc::channel::<()>();
        let mut timer = Timer::spawn(Duration::from_millis(1), None, Alignment::None, move |_| {
            let _ = tx.send(());
            panic!("callback failure");
        });
        rx.recv().unwrap();
        // The sender is dropped while the thread unwinds.
        assert!(rx.recv().is_err());
        timer.stop();
        assert!(!timer.is_running());
    }

    #[test]
    #[should_panic(expected = "interval must be positive")]
    fn zero_interval_is_refused() {
        let _ = Timer::spawn(Duration::ZERO, None, Alignment::None, |_| {});
    }
}
