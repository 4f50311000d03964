//! Stand-in for engine-core's `Timer` with the same API, used until that lands.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One tick.
pub struct Tick {
    /// Interval in seconds.
    #[allow(dead_code)]
    pub interval: f64,
    /// When the tick was due.
    pub scheduled: SystemTime,
}

/// Wall-clock alignment.
pub enum Alignment {
    /// None.
    None,
    /// To the second.
    Second,
    /// To the minute.
    Minute,
}

/// A timer thread.
pub struct Timer {
    stop: Arc<(Mutex<bool>, Condvar)>,
    handle: Option<JoinHandle<()>>,
}

impl Timer {
    /// Spawns the timer thread.
    pub fn spawn(
        interval: Duration,
        activate_time: Option<SystemTime>,
        alignment: Alignment,
        mut on_tick: impl FnMut(Tick) + Send + 'static,
    ) -> Timer {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let align = match alignment {
                Alignment::None => None,
                Alignment::Second => Some(1.0),
                Alignment::Minute => Some(60.0),
            };
            let now = SystemTime::now();
            let mut next = match align {
                Some(a) => {
                    let secs = now.duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
                    UNIX_EPOCH + Duration::from_secs_f64(((secs / a).floor() + 1.0) * a)
                }
                None => activate_time.unwrap_or(now + interval),
            };
            loop {
                let mut stopped = flag.0.lock().unwrap();
                loop {
                    if *stopped {
                        return;
                    }
                    let wait = next
                        .duration_since(SystemTime::now())
                        .unwrap_or(Duration::ZERO);
                    if wait.is_zero() {
                        break;
                    }
                    stopped = flag.1.wait_timeout(stopped, wait).unwrap().0;
                }
                drop(stopped);
                on_tick(Tick {
                    interval: interval.as_secs_f64(),
                    scheduled: next,
                });
                while next <= SystemTime::now() {
                    next += interval;
                }
            }
        });
        Timer {
            stop,
            handle: Some(handle),
        }
    }

    /// Stops and joins.
    pub fn stop(&mut self) {
        *self.stop.0.lock().unwrap() = true;
        self.stop.1.notify_all();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.stop();
    }
}
