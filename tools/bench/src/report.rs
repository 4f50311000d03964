//! What a measured process reports to the coordinator: one line `RESULT <json>` on its stdout.

use crate::stats::Percentiles;
use serde::{Deserialize, Serialize};

/// Prefix of the result line.
pub const PREFIX: &str = "RESULT ";

/// One side's figures for one run.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SideReport {
    /// `CLOCK_MONOTONIC` just before the first message was sent (publishers).
    pub start_ns: Option<u64>,
    /// `CLOCK_MONOTONIC` just after the last message was handled (subscribers).
    pub end_ns: Option<u64>,
    /// Messages sent or received and checked.
    pub messages: u64,
    /// One-way latency of the recorded messages (subscribers in latency modes).
    pub latency: Option<Percentiles>,
    /// Peak resident set size in bytes.
    pub peak_rss: u64,
    /// Messages sent while the subscriber was seen asleep (parked mode).
    pub sent_to_sleeper: Option<u64>,
}

impl SideReport {
    /// Prints the result line.
    pub fn emit(&self) {
        crate::child::say(&format!(
            "{PREFIX}{}",
            serde_json::to_string(self).expect("a report serializes")
        ));
    }
}
