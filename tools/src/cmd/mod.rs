//! One module per subcommand; each has its `Args` (clap derive) and a `run` that writes to the
//! given output and returns an error for [`crate::run`] to report.

pub mod bridge;
pub mod create;
pub mod inspect;
pub mod ls;
pub mod publish;
pub mod reap;
pub mod rm;
pub mod tail;
pub mod watch;
