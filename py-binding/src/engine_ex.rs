//! `EventEngineEx`: an `EventEngine` with timers.
//!
//! A timer is an engine-core `Timer` thread that queues ticks into this
//! engine's own message source (timers are local to the engine). Ticks carry
//! `interval` plus `trigger_time` (a `datetime`) or, for the wall-clock aligned
//! 1 s and 60 s timers, `timestamp` (seconds since the epoch), as the
//! reference names them. Timers end when the engine stops. On a bus engine the
//! ticks go to the engine's local queue: they never travel on the bus.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use engine_core::{Alignment, Timer, Topic};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat};

use crate::engine::{PyEventEngine, RunningTimer};
use crate::gil;
use crate::lock::lock;
use crate::shared::Shared;
use crate::topic::{not_exact, topic_arg, PyTopic};

/// Polling period of the blocking timer calls (to notice Ctrl-C).
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

fn check_interval(interval: f64) -> PyResult<Duration> {
    if !(interval.is_finite() && interval > 0.0) {
        return Err(PyValueError::new_err(format!(
            "timer interval must be a positive number of seconds, got {interval}"
        )));
    }
    Ok(Duration::from_secs_f64(interval))
}

/// When a timer that is not aligned ticks first: at `activate_time`, or at once when there is
/// none, as PyEventEngine 0.6.2 does (its first tick comes when the timer starts, with that
/// moment as `trigger_time`).
fn first_tick_at(activate_time: Option<&Bound<'_, PyAny>>) -> PyResult<SystemTime> {
    Ok(to_system_time(activate_time)?.unwrap_or_else(SystemTime::now))
}

/// `datetime` -> `SystemTime` (naive datetimes are local time, as `datetime.now()`).
fn to_system_time(activate_time: Option<&Bound<'_, PyAny>>) -> PyResult<Option<SystemTime>> {
    let Some(t) = activate_time else {
        return Ok(None);
    };
    let secs: f64 = t.call_method0("timestamp")?.extract()?;
    Ok(Some(if secs >= 0.0 {
        UNIX_EPOCH + Duration::from_secs_f64(secs)
    } else {
        UNIX_EPOCH
    }))
}

fn spawn(
    shared: &Arc<Shared>,
    topic: Arc<Topic>,
    interval: f64,
    activate_time: Option<SystemTime>,
    alignment: Alignment,
) -> PyResult<Timer> {
    let period = check_interval(interval)?;
    // Ticks are published on the topic, so it must be exact like any published topic.
    if !topic.is_exact() {
        return Err(not_exact(&topic));
    }
    let aligned = !(alignment == Alignment::None);
    let shared = shared.clone();
    Ok(Timer::spawn(
        period,
        activate_time,
        alignment,
        move |tick| {
            shared.push_tick(topic.clone(), interval, tick.scheduled, aligned);
        },
    ))
}

fn require_active(engine: &PyEventEngine) -> PyResult<()> {
    if engine
        .shared
        .active
        .load(std::sync::atomic::Ordering::Acquire)
    {
        Ok(())
    } else {
        Err(PyRuntimeError::new_err(
            "EventEngine must be started before getting timer! Call start() first.",
        ))
    }
}

/// Runs a timer until the engine stops, blocking the calling thread (GIL released).
fn block_with_timer(py: Python<'_>, engine: &PyEventEngine, mut timer: Timer) -> PyResult<()> {
    let shared = engine.shared.clone();
    let result = loop {
        if gil::detach(py, || shared.wait_inactive(SIGNAL_CHECK)) {
            break Ok(());
        }
        if let Err(e) = py.check_signals() {
            break Err(e);
        }
    };
    gil::detach(py, move || timer.stop());
    result
}

/// An `EventEngine` with timers.
#[pyclass(name = "EventEngineEx", module = "event_engine", extends = PyEventEngine, subclass, frozen)]
pub struct PyEventEngineEx;

#[pymethods]
impl PyEventEngineEx {
    #[new]
    #[pyo3(signature = (capacity = 4095, logger = None, *, bus = None, group = None, lossy = false, hold_limit = 64))]
    fn new(
        py: Python<'_>,
        capacity: i64,
        logger: Option<Py<PyAny>>,
        bus: Option<&str>,
        group: Option<&str>,
        lossy: bool,
        hold_limit: i64,
    ) -> PyResult<PyClassInitializer<Self>> {
        Ok(PyClassInitializer::from(PyEventEngine::create(
            py, capacity, logger, bus, group, lossy, hold_limit,
        )?)
        .add_subclass(PyEventEngineEx))
    }

    /// The topic of the timer firing every `interval` seconds, started on first
    /// request (1 and 60 are aligned to the wall-clock second and minute). Any other interval
    /// ticks first at `activate_time`, or at once when there is none (as PyEventEngine 0.6.2).
    #[pyo3(signature = (interval, activate_time = None))]
    fn get_timer(
        slf: PyRef<'_, Self>,
        interval: f64,
        activate_time: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyTopic>> {
        let py = slf.py();
        let engine = slf.as_super();
        require_active(engine)?;
        check_interval(interval)?;
        if let Some(t) = lock(&engine.timers).iter().find(|t| t.interval == interval) {
            return Ok(t.topic.clone_ref(py));
        }
        let alignment = Alignment::for_interval(interval);
        let topic = match alignment {
            Alignment::Second => Topic::join(["EventEngine", "Internal", "Timer", "Second"]),
            Alignment::Minute => Topic::join(["EventEngine", "Internal", "Timer", "Minute"]),
            Alignment::None => {
                let label = PyFloat::new(py, interval).str()?.to_string();
                Topic::join(["EventEngine", "Internal", "Timer", label.as_str()])
            }
        };
        let topic = Arc::new(topic);
        let start = match alignment {
            Alignment::None => Some(first_tick_at(activate_time)?),
            _ => None,
        };
        let timer = spawn(&engine.shared, topic.clone(), interval, start, alignment)?;
        let literal = topic.literal().to_string();
        let topic_obj = Py::new(py, PyTopic::wrap(topic))?;
        let mut timers = lock(&engine.timers);
        if let Some(t) = timers.iter().find(|t| t.interval == interval) {
            // Lost a race with another thread asking for the same interval.
            let existing = t.topic.clone_ref(py);
            drop(timers);
            let mut timer = timer;
            gil::detach(py, move || timer.stop());
            return Ok(existing);
        }
        timers.push(RunningTimer {
            interval,
            topic: topic_obj.clone_ref(py),
            timer,
        });
        drop(timers);
        engine.log_at(
            py,
            "debug",
            format!("timer every {interval}s started on \"{literal}\""),
        );
        Ok(topic_obj)
    }

    /// Publishes `topic` every `interval` seconds from `activate_time` (default: now, a first
    /// tick at once, as PyEventEngine 0.6.2) until the engine stops; blocks the calling thread.
    #[pyo3(signature = (interval, topic, activate_time = None))]
    fn run_timer(
        slf: PyRef<'_, Self>,
        interval: f64,
        topic: &Bound<'_, PyAny>,
        activate_time: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let py = slf.py();
        let engine = slf.as_super();
        require_active(engine)?;
        let topic = topic_arg(topic, "run_timer()")?;
        let timer = spawn(
            &engine.shared,
            topic,
            interval,
            Some(first_tick_at(activate_time)?),
            Alignment::None,
        )?;
        block_with_timer(py, engine, timer)
    }

    /// Publishes `topic` at every wall-clock second until the engine stops; blocks.
    fn second_timer(slf: PyRef<'_, Self>, topic: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        let engine = slf.as_super();
        require_active(engine)?;
        let topic = topic_arg(topic, "second_timer()")?;
        let timer = spawn(&engine.shared, topic, 1.0, None, Alignment::Second)?;
        block_with_timer(py, engine, timer)
    }

    /// Publishes `topic` at every wall-clock minute until the engine stops; blocks.
    fn minute_timer(slf: PyRef<'_, Self>, topic: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        let engine = slf.as_super();
        require_active(engine)?;
        let topic = topic_arg(topic, "minute_timer()")?;
        let timer = spawn(&engine.shared, topic, 60.0, None, Alignment::Minute)?;
        block_with_timer(py, engine, timer)
    }

    /// `{interval: Topic}` of the running timers.
    #[getter(timer)]
    fn timer_map<'py>(slf: PyRef<'py, Self>) -> PyResult<Bound<'py, PyDict>> {
        let py = slf.py();
        let out = PyDict::new(py);
        let timers: Vec<(f64, Py<PyTopic>)> = lock(&slf.as_super().timers)
            .iter()
            .map(|t| (t.interval, t.topic.clone_ref(py)))
            .collect();
        for (interval, topic) in timers {
            out.set_item(interval, topic)?;
        }
        Ok(out)
    }
}
