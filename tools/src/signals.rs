//! Stopping long-running subcommands (`tail`, `publish --count`) cleanly on Ctrl-C or SIGTERM:
//! the signal only sets a flag, the loop notices it and detaches from the bus normally, so no
//! dead row is left behind for others to reap.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Set once SIGINT, SIGTERM or SIGHUP arrives.
#[derive(Clone)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    /// Installs handlers for SIGINT, SIGTERM and SIGHUP that set the returned flag.
    pub fn install() -> std::io::Result<StopFlag> {
        let flag = Arc::new(AtomicBool::new(false));
        for sig in [
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGHUP,
        ] {
            signal_hook::flag::register(sig, flag.clone())?;
        }
        Ok(StopFlag(flag))
    }

    /// Whether a stop was asked for.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}
