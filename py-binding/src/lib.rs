//! The `event_engine._native` extension: the PyEventEngine Python API
//! (topics, hooks, engines, timers) on the Rust `engine-core`, in-process or
//! across processes on a `shm-ring` shared-memory bus.
//! The Python package `event_engine` re-exports everything defined here.

mod aio;
mod args;
mod bus;
mod cli;
mod codec;
mod dispatch;
mod dispatch_loop;
mod dispatch_thread;
mod engine;
mod engine_ex;
mod errors;
mod exit;
mod geometry;
mod gil;
mod held;
mod hook;
mod intern;
mod loan;
mod lock;
mod logger;
mod match_result;
mod message;
mod oob;
mod payload;
mod pybuffer;
mod pystr;
mod relay;
mod shared;
mod shmbuf;
mod source;
mod topic;
mod topic_part;
#[cfg(not(PyPy))]
mod vectorcall;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("TopicType", topic_part::topic_type_enum(py)?)?;
    m.add_class::<topic::PyTopic>()?;
    m.add_class::<topic_part::PyTopicPart>()?;
    m.add_class::<topic_part::PyTopicPartExact>()?;
    m.add_class::<topic_part::PyTopicPartAny>()?;
    m.add_class::<topic_part::PyTopicPartRange>()?;
    m.add_class::<topic_part::PyTopicPartPattern>()?;
    m.add_class::<match_result::PyTopicMatchResult>()?;
    m.add_class::<payload::PyMessagePayload>()?;
    m.add_class::<hook::PyEventHook>()?;
    m.add_class::<hook::PyEventHookEx>()?;
    m.add_class::<engine::PyEventEngine>()?;
    #[cfg(not(PyPy))]
    vectorcall::install(&py.get_type::<engine::PyEventEngine>())?;
    m.add_class::<engine_ex::PyEventEngineEx>()?;
    m.add(
        "SharedBuffer",
        shmbuf::buffer_type(py, shmbuf::Kind::Shared)?,
    )?;
    m.add("Loan", shmbuf::buffer_type(py, shmbuf::Kind::Loan)?)?;
    m.add_function(wrap_pyfunction!(loan::release_loan, m)?)?;
    m.add("Full", py.get_type::<errors::Full>())?;
    m.add("Empty", py.get_type::<errors::Empty>())?;
    m.add_function(wrap_pyfunction!(topic::init_internal_map, m)?)?;
    m.add_function(wrap_pyfunction!(topic::clear_internal_map, m)?)?;
    m.add_function(wrap_pyfunction!(topic::get_internal_topic, m)?)?;
    m.add_function(wrap_pyfunction!(topic::get_internal_map, m)?)?;
    m.add_function(wrap_pyfunction!(bus::init_allocator, m)?)?;
    m.add_function(wrap_pyfunction!(bus::create_bus, m)?)?;
    m.add_function(wrap_pyfunction!(bus::inspect_bus, m)?)?;
    m.add_function(wrap_pyfunction!(bus::unlink_bus, m)?)?;
    m.add_function(wrap_pyfunction!(logger::set_logger, m)?)?;
    m.add_function(wrap_pyfunction!(cli::cli_main, m)?)?;
    // Engines still running when the script ends are stopped before the interpreter
    // finalizes (see exit.rs).
    held::watch_forks(py)?;
    let stop_all = wrap_pyfunction!(exit::stop_all, m)?;
    py.import("atexit")?.call_method1("register", (stop_all,))?;
    Ok(())
}
