//! What one measured run does: its mode and sizes, passed from the coordinator to role processes
//! as command-line arguments.

use clap::{Args, ValueEnum};

/// What a run measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// As fast as possible: messages per second from the first send to the last receive.
    Throughput,
    /// Paced sends, subscriber polling without blocking: one-way latency.
    BusyPoll,
    /// One message at a time into an idle bus whose subscriber sleeps: wake-up latency.
    Parked,
}

impl Mode {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Throughput => "throughput",
            Mode::BusyPoll => "busy-poll",
            Mode::Parked => "parked",
        }
    }
}

/// Parameters of one run, shared by both sides.
#[derive(Args, Clone, Debug)]
pub struct RunParams {
    /// What to measure.
    #[arg(long, value_enum, default_value = "throughput", hide = true)]
    pub mode: Mode,
    /// Messages in the run.
    #[arg(
        id = "run_messages",
        long = "run-messages",
        default_value_t = 1000,
        hide = true
    )]
    pub messages: u64,
    /// Busy-poll mode: nanoseconds between two sends.
    #[arg(long = "interval-ns", default_value_t = 5_000, hide = true)]
    pub interval_ns: u64,
    /// Parked mode: nanoseconds to pause before each send (then wait until the subscriber sleeps).
    #[arg(long = "pause-ns", default_value_t = 1_000_000, hide = true)]
    pub pause_ns: u64,
    /// Leading messages whose latency is not recorded (cold caches, first page touches).
    #[arg(long = "warmup", default_value_t = 0, hide = true)]
    pub warmup: u64,
    /// Bus throughput runs: messages per `publish_many` call; 0 publishes one message per call.
    #[arg(long = "publish-run", default_value_t = 0, hide = true)]
    pub publish_run: usize,
}

impl RunParams {
    /// These parameters as command-line arguments.
    pub fn to_args(&self) -> Vec<String> {
        vec![
            "--mode".into(),
            self.mode.name().into(),
            "--run-messages".into(),
            self.messages.to_string(),
            "--interval-ns".into(),
            self.interval_ns.to_string(),
            "--pause-ns".into(),
            self.pause_ns.to_string(),
            "--warmup".into(),
            self.warmup.to_string(),
            "--publish-run".into(),
            self.publish_run.to_string(),
        ]
    }
}
