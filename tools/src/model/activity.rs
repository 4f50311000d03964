//! What happened on a bus between two snapshots, beyond the topic rates: messages published
//! and, per process-table row, messages delivered. `watch` shows these as rates.

use shm_ring::{ProcessRow, Snapshot};
use std::time::Duration;

/// The traffic between two snapshots of a bus.
#[derive(Debug, Clone, PartialEq)]
pub struct Activity {
    /// Seconds between the snapshots (0: the same snapshot twice, no rates).
    pub secs: f64,
    /// Messages published between them.
    pub published: u64,
    /// Messages each process-table row of the later snapshot delivered between them, in the
    /// order of its rows. A row missing from the earlier one joined since, so all it delivered
    /// is recent.
    pub delivered: Vec<u64>,
}

impl Activity {
    /// The traffic from `prev` to `cur`, taken `elapsed` later.
    pub fn between(prev: &Snapshot, cur: &Snapshot, elapsed: Duration) -> Activity {
        Activity {
            secs: elapsed.as_secs_f64(),
            published: cur
                .counters
                .published
                .saturating_sub(prev.counters.published),
            delivered: cur
                .processes
                .iter()
                .map(|p| p.delivered.saturating_sub(delivered_before(prev, p)))
                .collect(),
        }
    }

    /// The seconds between the snapshots, `None` when there are none to divide by.
    pub fn secs(&self) -> Option<f64> {
        (self.secs > 0.0).then_some(self.secs)
    }

    /// Messages delivered by all rows.
    pub fn delivered_total(&self) -> u64 {
        self.delivered.iter().sum()
    }
}

/// What row `p` had delivered in `prev` (0 when it was not there).
fn delivered_before(prev: &Snapshot, p: &ProcessRow) -> u64 {
    prev.processes
        .iter()
        .find(|q| same(p, q))
        .map_or(0, |q| q.delivered)
}

/// Whether `a` and `b` are the same attachment seen in two snapshots.
fn same(a: &ProcessRow, b: &ProcessRow) -> bool {
    a.row == b.row && a.pid == b.pid && a.start_time == b.start_time && a.role == b.role
}
