//! What every handle made from one attachment shares: the mapped region and the process-table
//! row of the attachment, given back (with a reap) when the last handle goes.

use crate::blocks::atomics::Ordering;
use crate::recovery::{lock_table, reap_locked, remove_consumer, ReapReport};
use crate::region::layout::KIND_GROUP;
use crate::region::Region;

/// The attached region plus this handle's process-table row (none for a read-only observer);
/// shared by every handle made from it.
pub(crate) struct Inner {
    pub(crate) region: Region,
    pub(crate) row: Option<u32>,
}

impl Inner {
    /// Gives up row `row` (and consumer `consumer`, for a subscriber), then reaps; when nobody is
    /// left, the reap sweeps the region back to its idle state.
    pub(crate) fn leave(&self, row: u32, consumer: Option<u32>) {
        let g = lock_table(&self.region);
        let mut report = ReapReport::default();
        if let Some(idx) = consumer {
            if let Some(c) = self.region.consumers().get(idx as usize) {
                let members = c.members.load(Ordering::Relaxed);
                if c.kind.load(Ordering::Relaxed) == KIND_GROUP && members > 1 {
                    c.members.store(members - 1, Ordering::Relaxed);
                } else {
                    remove_consumer(&g, idx, &mut report);
                }
            }
        }
        g.free_row(row);
        let _ = reap_locked(&g);
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(row) = self.row {
            self.leave(row, None);
        }
    }
}
