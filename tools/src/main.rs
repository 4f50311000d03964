//! The `event-engine` binary: everything lives in the `event_engine_cli` library so that other
//! launchers (the Python package's console script) run exactly the same code.

fn main() {
    std::process::exit(event_engine_cli::run(std::env::args_os().collect()));
}
