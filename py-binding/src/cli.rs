//! The `event-engine` command line, callable from Python so that the wheel can install it as
//! a console script (`event_engine._cli:main`) with the same behaviour as the Rust binary.

use pyo3::prelude::*;

use crate::gil;

/// Runs the command line with `argv` (program name first) and returns its exit status.
/// The GIL is released for the whole run (`watch` and `tail` run until interrupted).
#[pyfunction]
#[pyo3(name = "_cli_main")]
pub(crate) fn cli_main(py: Python<'_>, argv: Vec<String>) -> i32 {
    gil::detach(py, || {
        event_engine_cli::run(argv.into_iter().map(Into::into).collect())
    })
}
