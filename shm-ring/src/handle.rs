//! What every handle made from one attachment shares: the mapped region and the process-table
//! row of the attachment, given back (with a reap) when the last handle goes.

use crate::blocks::atomics::Ordering;
use crate::recovery::{
    lock_table, lock_table_to_join, reap_locked, remove_consumer, retention_clock_ns, ReapReport,
};
use crate::region::layout::{KIND_GROUP, ROW_LIVE};
use crate::region::liveness::own_start_time;
use crate::region::table::Role;
use crate::region::Region;
use crate::seat::Seat;
use crate::BusError;
use std::sync::Arc;

/// The attached region plus this handle's process-table row (none for a read-only observer);
/// shared by every handle made from it.
pub(crate) struct Inner {
    pub(crate) region: Region,
    pub(crate) row: Option<u32>,
    /// The process that attached. A child made by `fork` inherits the handles but not the rows:
    /// dropping or closing them there gives nothing up.
    pub(crate) pid: u32,
    /// What this attachment holds in the slab (`holder.rs`).
    pub(crate) seat: Seat,
}

impl Inner {
    pub(crate) fn new(region: Region, row: Option<u32>) -> Inner {
        Inner {
            region,
            row,
            pid: std::process::id(),
            seat: Seat::default(),
        }
    }

    /// Whether this process is the one that attached (not a child forked since).
    pub(crate) fn is_owner(&self) -> bool {
        std::process::id() == self.pid
    }

    /// For a handle that a child made by `fork` inherited: a new attachment of this process to
    /// the same bus (a mapping and descriptions of its own) with a new row of `role` in it,
    /// locked by this process, so that the child's death is reaped on its own.
    pub(crate) fn attach_in_child(&self, role: Role) -> Result<(Arc<Inner>, u32), BusError> {
        let region = self.region.reattach()?;
        let row = lock_table_to_join(&region)?.claim_row(role, u32::MAX)?;
        Ok((Arc::new(Inner::new(region, None)), row))
    }

    /// Gives up row `row` (and consumer `consumer`, for a subscriber), then reaps; when nobody is
    /// left, the reap sweeps the region back to its idle state. Does nothing in a forked child,
    /// and frees only what is still ours: a row reaped by mistake and taken since by another
    /// process is left alone.
    pub(crate) fn leave(&self, row: u32, consumer: Option<u32>) {
        if !self.is_owner() {
            return;
        }
        // A holder that keeps the lock past the bound (stopped) leaves this row live until this
        // process exits; then any reap reclaims it. Better than hanging in a destructor.
        let Ok(g) = lock_table(&self.region) else {
            return;
        };
        let ours = self.region.row(row).is_some_and(|r| {
            r.state.load(Ordering::Acquire) == ROW_LIVE
                && self.region.holds_row(row)
                && r.pid.load(Ordering::Relaxed) == self.pid
                && r.start_time.load(Ordering::Relaxed) == own_start_time()
                && consumer.is_none_or(|c| r.consumer.load(Ordering::Relaxed) == c)
        });
        if !ours {
            let _ = reap_locked(&g);
            return;
        }
        let mut report = ReapReport::default();
        if let Some(idx) = consumer {
            if let Some(c) = self.region.consumers().get(idx as usize) {
                let members = c.members.load(Ordering::Relaxed);
                if c.kind.load(Ordering::Relaxed) == KIND_GROUP {
                    // The group stays, with its backlog, when its last member leaves: a later
                    // member takes up where this one stopped (`docs/delivery.md`).
                    c.members
                        .store(members.saturating_sub(1), Ordering::Relaxed);
                    if members <= 1 {
                        c.orphaned_ns.store(retention_clock_ns(), Ordering::Relaxed);
                    }
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
        // No hold is left (each keeps the attachment): the seat goes with its row, once the
        // children of recent forks have taken over their share of what it held.
        if let Some(row) = self.seat.row() {
            self.seat.settle_pins(std::time::Duration::from_secs(2));
            self.leave(row, None);
        }
        if let Some(row) = self.row {
            self.leave(row, None);
        }
    }
}
