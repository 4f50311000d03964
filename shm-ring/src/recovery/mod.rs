//! Crash recovery: reaping dead processes and sweeping the region when nobody is left.
//!
//! Everything here runs under the table lock. What a dead process can leave behind, and what
//! puts it right:
//!
//! * a fan-out subscriber's bit in the active mask and in pending slots: [`remove_consumer`]
//!   clears the bit everywhere, releasing slots it was the last holder of;
//! * a group member's claimed message: handed to the group's redelivery list, from which a live
//!   member takes it (at-least-once; counted). The reap of a member always completes: when the
//!   list is full the message stays pending for the group, claimed by nobody, and a later reap
//!   lists it once an entry is free ([`GroupView::recover_unclaimed`]);
//! * a slot claimed but never published: tombstoned once no live row announces that position;
//! * a block popped but not yet in a published slot: its row's `held_block` names it (set by
//!   the pop itself, `FreeList::pop`; cleared after the commit and before the intent, or
//!   once a loan's seat holds the block), so a reap gives it back at once when the dead
//!   publisher had claimed nothing, or with the tombstone of the position it had claimed;
//!   whoever swaps `held_block` to 0 owns the block, so it goes back exactly once, and not while
//!   a loan's seat still holds it (`Holds::drop_popped`);
//! * a sleeper count it incremented: decremented from its row's `sleeping` word;
//! * what a holder row's seat held (views of messages, loans): let go of block by block when
//!   the row is freed (`TableGuard::release_seat`), each block freed by whoever lets go last;
//! * what no word can name: a block popped by a publisher killed between the pop's CAS and its
//!   store of `held_block` (one instruction), or a push cut short. [`sweep`] recovers those when no
//!   live publisher or subscriber is left and no group is kept, rebuilding every free list and
//!   zeroing every count, and counts them in [`ReapReport::blocks_freed`]. Until then they stay
//!   out of use (at most one per such death; the slab works with the rest). Messages that fit
//!   inline (the common case) take no block at all.

pub(crate) mod check;
pub(crate) mod snapshot;

use crate::blocks::atomics::Ordering;
use crate::blocks::group::claim_names;
use crate::blocks::ring::{Intent, UNSET};
use crate::region::layout::{
    Row, SLEEPING_BLIND, SLEEPING_COUNTED, SLEEPING_PUBLISHER, SLEEPING_SUBSCRIBER,
};
use crate::region::layout::{
    CONSUMER_DRAINING, CONSUMER_FREE, CONSUMER_LIVE, KIND_GROUP, ROW_LIVE,
};
use crate::region::saturating_dec;
use crate::region::table::{Role, TableGuard, LOCK_WAIT};
use crate::region::Region;
use crate::BusError;
use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Reaps done by this process that put something right, with the bus name, oldest first, not
/// yet taken by [`take_reaps`]. Reaps run under the table lock, where a binding must not call
/// into its host language (to log, say); it takes them from here afterwards. Bounded: past
/// [`JOURNAL_MAX`] the oldest are dropped, so a program that never takes them loses nothing else.
static JOURNAL: Mutex<VecDeque<(String, ReapReport)>> = Mutex::new(VecDeque::new());
const JOURNAL_MAX: usize = 64;

/// Takes the reaps this process did since the last call (bus name and report, oldest first;
/// at most the last 64), each of which reclaimed a dead process or repaired something.
pub fn take_reaps() -> Vec<(String, ReapReport)> {
    let mut journal = JOURNAL.lock().unwrap_or_else(PoisonError::into_inner);
    journal.drain(..).collect()
}

fn journal(bus: &str, report: &ReapReport) {
    let mut journal = JOURNAL.lock().unwrap_or_else(PoisonError::into_inner);
    if journal.len() == JOURNAL_MAX {
        journal.pop_front();
    }
    journal.push_back((bus.to_owned(), report.clone()));
}

/// What a reap found and put right.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReapReport {
    /// Every dead process whose rows were reclaimed, once per process (a process holds one row
    /// per handle: its bus, each publisher, each subscriber), in row order of first appearance.
    pub processes: Vec<ReapedProcess>,
    /// Slab blocks given back to their free lists by this reap, by every path: messages only a
    /// dead subscriber still held, blocks a dead publisher had taken, and the final sweep (blocks
    /// missing from the free lists when nobody is left).
    pub blocks_freed: u64,
    /// Claimed-but-never-published slots tombstoned.
    pub slots_recovered: u64,
    /// Messages dead group members held that were put up for grabs again on their group's
    /// redelivery list (including ones an earlier reap had to leave off a full list).
    pub redelivered: u64,
    /// Messages dead group members held that wait for room on their group's full redelivery
    /// list: they stay in the group's backlog, and a later reap lists them once a member has
    /// handled a listed message (or drops them with the group when its retention runs out).
    pub redelivery_deferred: u64,
    /// Groups dropped because they had no member for longer than the bus's group retention.
    pub groups_expired: u64,
    /// Messages dropped with those groups, which nobody will now handle: what they still held,
    /// and messages still being written to them when they were dropped (released, and counted,
    /// by the reap that finds them published).
    pub backlog_dropped: u64,
}

/// One dead process reclaimed by a reap.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReapedProcess {
    /// Its process id.
    pub pid: u32,
    /// Its start time (clock ticks since boot), which tells it from a later process with the
    /// same pid.
    pub start_time: u64,
    /// The process-table rows it held, in ascending order.
    pub rows: Vec<u32>,
}

impl ReapReport {
    /// Whether the reap found nothing to reclaim or repair.
    pub fn is_empty(&self) -> bool {
        self.processes.is_empty()
            && self.blocks_freed == 0
            && self.slots_recovered == 0
            && self.redelivered == 0
            && self.redelivery_deferred == 0
            && self.groups_expired == 0
            && self.backlog_dropped == 0
    }

    /// Records row `row` of process `(pid, start_time)`.
    fn add_row(&mut self, pid: u32, start_time: u64, row: u32) {
        match self
            .processes
            .iter_mut()
            .find(|p| p.pid == pid && p.start_time == start_time)
        {
            Some(p) => p.rows.push(row),
            None => self.processes.push(ReapedProcess {
                pid,
                start_time,
                rows: vec![row],
            }),
        }
    }
}

/// Takes the table lock, waiting at most `LOCK_WAIT` for a live holder ([`BusError::LockHeld`]
/// naming it after that). When it was taken over from a dead owner, which may have been cut short
/// mid-change, reaps first so the tables are whole again before the caller uses them.
pub(crate) fn lock_table(region: &Region) -> Result<TableGuard<'_>, BusError> {
    lock_table_within(region, LOCK_WAIT)
}

/// [`lock_table`], waiting at most `limit` for a live holder.
pub(crate) fn lock_table_within(
    region: &Region,
    limit: Duration,
) -> Result<TableGuard<'_>, BusError> {
    let (g, took_over) = TableGuard::acquire(region, limit)?;
    if took_over {
        reap_locked(&g);
    }
    Ok(g)
}

/// Takes the table lock for a join: as [`lock_table`], and when no process-table row or no
/// consumer entry is free, reaps first, so that a join after a mass crash (every row dead)
/// succeeds instead of finding the table full.
pub(crate) fn lock_table_to_join(region: &Region) -> Result<TableGuard<'_>, BusError> {
    let g = lock_table(region)?;
    let max = region.layout().max_subscribers as usize;
    let row_free = region
        .rows()
        .iter()
        .any(|row| row.state.load(Ordering::Acquire) != ROW_LIVE);
    let consumer_free = region
        .consumers()
        .iter()
        .take(max)
        .any(|c| c.state.load(Ordering::Acquire) == CONSUMER_FREE);
    if !row_free || !consumer_free {
        reap_locked(&g);
    }
    Ok(g)
}

/// True when some live row announces it is publishing position `pos`.
fn claimant_alive(region: &Region, pos: u64) -> bool {
    region.rows().iter().any(|r| {
        r.state.load(Ordering::Acquire) == ROW_LIVE
            && Intent::covers(r.publishing.load(Ordering::SeqCst), pos)
            && region.row_alive(r)
    })
}

/// If position `pos` is claimed but unpublished and no live process announces it, tombstones it
/// (consumers skip tombstones) and gives back the block its dead claimant held for it. Never
/// waits for a live claimant: it is a few stores from its commit, or stopped, and either way not
/// ours to wait for under the table lock. True if it tombstoned.
fn tombstone_if_abandoned(region: &Region, pos: u64, report: &mut ReapReport) -> bool {
    if !region
        .ring()
        .tombstone_abandoned(pos, |pos| claimant_alive(region, pos))
    {
        return false;
    }
    // No slot references the claimant's block now (the slot that would is a tombstone).
    for r in region.rows() {
        if r.state.load(Ordering::Acquire) == ROW_LIVE
            && Intent::covers(r.publishing.load(Ordering::SeqCst), pos)
            && !region.row_alive(r)
        {
            let block = r.held_block.swap(0, Ordering::AcqRel);
            if region.free_popped(block) {
                report.blocks_freed += 1;
            }
        }
    }
    region.wake_consumers(u64::MAX);
    region.wake_publishers();
    true
}

/// A dead publisher's popped block: back to the slab when no slot can reference it (its run,
/// if any, was never announced, so never committed), or with the tombstone of the position it
/// had claimed; left to the message when that was committed (the block is then the slot's).
fn reap_held_block(region: &Region, r: &Row, report: &mut ReapReport) {
    if r.held_block.load(Ordering::Acquire) == 0 {
        return;
    }
    let intent = r.publishing.load(Ordering::SeqCst);
    // A commit follows the announcement, and a sealed run is never committed (`RingView::seal`):
    // before either, no slot holds the block, whether or not the claim's CAS took the position
    // its intent names (a claimant killed between the two leaves an intent at the head).
    if !Intent::announced(intent) || Intent::sealed(intent) {
        if region.free_popped(r.held_block.swap(0, Ordering::AcqRel)) {
            report.blocks_freed += 1;
        }
        if intent == 0 || Intent::sealed(intent) {
            return;
        }
    }
    let head = region.header().head.load(Ordering::SeqCst);
    let cap = region.layout().ring_capacity as u64;
    for pos in head.saturating_sub(cap)..head {
        if Intent::covers(intent, pos) && tombstone_if_abandoned(region, pos, report) {
            report.slots_recovered += 1;
        }
    }
}

/// Removes consumer `idx`: clears its active bit, then drains it (see [`drain_consumer`]).
pub(crate) fn remove_consumer(g: &TableGuard<'_>, idx: u32, report: &mut ReapReport) {
    let region = g.region();
    let Some(c) = region.consumers().get(idx as usize) else {
        return;
    };
    if c.state.load(Ordering::Acquire) == CONSUMER_LIVE {
        let end = region.ring().leave(idx as usize);
        region
            .header()
            .lossy_mask
            .fetch_and(!(1u64 << idx), Ordering::SeqCst);
        c.end.store(end, Ordering::Relaxed);
        c.state.store(CONSUMER_DRAINING, Ordering::SeqCst);
        for e in &c.redeliver {
            e.store(0, Ordering::Relaxed);
        }
        c.redeliver_count.store(0, Ordering::Relaxed);
        c.members.store(0, Ordering::Relaxed);
    }
    drain_consumer(g, idx, report);
}

/// Releases departed consumer `idx`'s bit from every published slot below its `end`; once none
/// is left and no position below `end` is still being written, frees the entry for reuse.
/// Positions still being written are left to a later drain (every reap drains), never waited for.
fn drain_consumer(g: &TableGuard<'_>, idx: u32, report: &mut ReapReport) {
    let region = g.region();
    let Some(c) = region.consumers().get(idx as usize) else {
        return;
    };
    if c.state.load(Ordering::Acquire) != CONSUMER_DRAINING {
        return;
    }
    let end = c.end.load(Ordering::Relaxed);
    let from = end.saturating_sub(region.layout().ring_capacity as u64);
    for pos in from..end {
        if tombstone_if_abandoned(region, pos, report) {
            report.slots_recovered += 1;
        }
    }
    let drained = region.ring().drain(idx as usize, end, |block| {
        if region.free_block(block) {
            report.blocks_freed += 1;
        }
    });
    if c.kind.load(Ordering::Relaxed) == KIND_GROUP {
        // A group is removed only when its retention has run out (or a join that created it
        // failed, before it could hold anything): every message drained is dropped backlog,
        // those still being written when it was dropped included (a later drain counts them).
        report.backlog_dropped += drained.released;
        region
            .header()
            .backlog_dropped
            .fetch_add(drained.released, Ordering::Relaxed);
    }
    if drained.released > 0 {
        region.wake_publishers();
    }
    if drained.in_flight == 0 {
        region.header().starts[idx as usize].store(UNSET, Ordering::SeqCst);
        c.state.store(CONSUMER_FREE, Ordering::Release);
    }
}

/// Nanoseconds on the clock of the group retention: `CLOCK_BOOTTIME`, one clock for every
/// process on the machine, which never jumps (setting the time of day does not move it) and
/// goes on counting while the machine is suspended. Never 0 (0 means "has a member").
pub(crate) fn retention_clock_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant the kernel knows.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    if rc != 0 {
        // Not on Linux before 2.6.39; the monotonic clock is system-wide too.
        // SAFETY: as above.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    }
    (ts.tv_sec.max(0) as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec.max(0) as u64)
        .max(1)
}

/// Adds `n` to the redelivery counts of group `c` and of the bus.
fn count_redelivered(region: &Region, c: &crate::region::layout::Consumer, n: u64) {
    if n > 0 {
        c.redelivered.fetch_add(n, Ordering::Relaxed);
        region.header().redeliveries.fetch_add(n, Ordering::Relaxed);
    }
}

/// Reclaims dead group member `row`'s claims in group `idx` ([`GroupView::reclaim_dead`]).
/// Always completes, so the caller frees the row: a message the full redelivery list could not
/// take stays with the group and a later reap lists it ([`recover_unclaimed`]).
fn reap_member(g: &TableGuard<'_>, row: u32, idx: u32, report: &mut ReapReport) {
    let region = g.region();
    let (Some(c), Some(group), Some(r)) = (
        region.consumers().get(idx as usize),
        region.group(idx),
        region.row(row),
    ) else {
        return;
    };
    let done = group.reclaim_dead(row, &r.in_flight);
    report.redelivered += done.redelivered;
    report.redelivery_deferred += done.unlisted;
    count_redelivered(region, c, done.redelivered);
    if done.redelivered > 0 {
        // Live members may be asleep with nothing else to wake them for these messages.
        region.wake_consumers(group.bit);
    }
}

/// Lists for redelivery what live group `idx` holds behind its cursor and no member has
/// ([`GroupView::recover_unclaimed`]): messages of members whose reap found the list full.
fn recover_unclaimed(g: &TableGuard<'_>, idx: u32, report: &mut ReapReport) {
    let region = g.region();
    let (Some(c), Some(group)) = (region.consumers().get(idx as usize), region.group(idx)) else {
        return;
    };
    let listed = group.recover_unclaimed(|pos| {
        region.rows().iter().any(|r| {
            r.state.load(Ordering::Acquire) == ROW_LIVE
                && r.consumer.load(Ordering::Relaxed) == idx
                && Role::from_code(r.role.load(Ordering::Relaxed)) == Role::GroupMember
                && claim_names(r.in_flight.load(Ordering::SeqCst), pos)
        })
    });
    if listed > 0 {
        report.redelivered += listed;
        count_redelivered(region, c, listed);
        region.wake_consumers(group.bit);
    }
}

/// Reaps every dead row, repairs what they left, and sweeps if no live publisher or subscriber
/// is left.
pub(crate) fn reap_locked(g: &TableGuard<'_>) -> ReapReport {
    let region = g.region();
    let h = region.header();
    let mut report = ReapReport::default();
    for (i, r) in region.rows().iter().enumerate() {
        if r.state.load(Ordering::Acquire) != ROW_LIVE || region.row_alive(r) {
            continue;
        }
        let role = Role::from_code(r.role.load(Ordering::Relaxed));
        let consumer = r.consumer.load(Ordering::Relaxed);
        if role == Role::GroupMember {
            reap_member(g, i as u32, consumer, &mut report);
        }
        let sleeping = r.sleeping.swap(0, Ordering::AcqRel);
        if sleeping & SLEEPING_BLIND != 0 {
            saturating_dec(&h.blind_sleepers);
        }
        if sleeping & SLEEPING_COUNTED != 0 {
            match sleeping & !(SLEEPING_COUNTED | SLEEPING_BLIND) {
                SLEEPING_SUBSCRIBER => {
                    if let Some(c) = region.consumers().get(consumer as usize) {
                        saturating_dec(&c.sleepers);
                    }
                }
                SLEEPING_PUBLISHER => saturating_dec(&h.pub_sleepers),
                _ => {}
            }
        }
        reap_held_block(region, r, &mut report);
        report.add_row(
            r.pid.load(Ordering::Relaxed),
            r.start_time.load(Ordering::Relaxed),
            i as u32,
        );
        h.reaped.fetch_add(1, Ordering::Relaxed);
        g.free_row(i as u32);
    }
    // Consumers left without a live row (their owner died, or a removal was cut short).
    let max = region.layout().max_subscribers as usize;
    let now = retention_clock_ns();
    let retention_ms = h.group_retention_ms.load(Ordering::Relaxed);
    for (idx, c) in region.consumers().iter().enumerate().take(max) {
        let state = c.state.load(Ordering::Acquire);
        if state == CONSUMER_FREE {
            continue;
        }
        let holders = region
            .rows()
            .iter()
            .filter(|r| {
                r.state.load(Ordering::Acquire) == ROW_LIVE
                    && r.consumer.load(Ordering::Relaxed) == idx as u32
                    && matches!(
                        Role::from_code(r.role.load(Ordering::Relaxed)),
                        Role::Subscriber | Role::GroupMember
                    )
            })
            .count() as u32;
        let group = state == CONSUMER_LIVE && c.kind.load(Ordering::Relaxed) == KIND_GROUP;
        if group && holders == 0 {
            // No live member: kept, with its backlog, until the retention has passed. The clock
            // starts when the last member is seen gone: at its leave, or at the first reap after
            // its death (this one, which freed its row).
            c.members.store(0, Ordering::Relaxed);
            let mut since = c.orphaned_ns.load(Ordering::Relaxed);
            if since == 0 || since > now {
                // `since > now` is no reading of this clock (a damaged word): start again
                // rather than keep the group for ever.
                since = now;
                c.orphaned_ns.store(since, Ordering::Relaxed);
            }
            if (now - since) / 1_000_000 >= retention_ms {
                report.groups_expired += 1;
                // Counts what it held as `backlog_dropped` as it drains (drain_consumer).
                remove_consumer(g, idx as u32, &mut report);
            } else {
                recover_unclaimed(g, idx as u32, &mut report);
            }
        } else if state == CONSUMER_DRAINING || holders == 0 {
            // A departure still draining, or a fan-out consumer whose holder died.
            remove_consumer(g, idx as u32, &mut report);
        } else if group {
            c.members.store(holders, Ordering::Relaxed);
            c.orphaned_ns.store(0, Ordering::Relaxed);
            recover_unclaimed(g, idx as u32, &mut report);
        }
    }
    // Slots claimed by publishers that died before publishing.
    let head = h.head.load(Ordering::SeqCst);
    let cap = region.layout().ring_capacity as u64;
    for pos in head.saturating_sub(cap)..head {
        if tombstone_if_abandoned(region, pos, &mut report) {
            report.slots_recovered += 1;
        }
    }
    // A kept group's backlog holds slots and blocks: no sweep while one is kept.
    let busy = region.rows().iter().any(|r| {
        r.state.load(Ordering::Acquire) == ROW_LIVE
            && Role::from_code(r.role.load(Ordering::Relaxed)) != Role::Bus
    }) || region
        .consumers()
        .iter()
        .any(|c| c.state.load(Ordering::Acquire) != CONSUMER_FREE);
    if !busy {
        report.blocks_freed += sweep(g);
    }
    if !report.is_empty() {
        journal(region.name(), &report);
    }
    report
}

/// Restores the idle state: every slot free, every block on its free list, every count zero.
/// Only called under the lock when no live publisher or subscriber exists, so nothing else
/// touches the ring or the slab. Returns how many blocks were missing from the free lists.
pub(crate) fn sweep(g: &TableGuard<'_>) -> u64 {
    let region = g.region();
    let h = region.header();
    let head = h.head.load(Ordering::SeqCst);
    let cap = region.layout().ring_capacity as u64;
    let ring = region.ring();
    for pos in head.saturating_sub(cap)..head {
        let slot = ring.slot(pos);
        slot.pending.store(0, Ordering::Relaxed);
        slot.block.store(0, Ordering::Relaxed);
        slot.seq.store(pos.wrapping_add(cap), Ordering::Release);
    }
    for c in region.consumers() {
        c.state.store(CONSUMER_FREE, Ordering::Relaxed);
        c.members.store(0, Ordering::Relaxed);
        c.redeliver_count.store(0, Ordering::Relaxed);
        for e in &c.redeliver {
            e.store(0, Ordering::Relaxed);
        }
    }
    h.active_mask.store(0, Ordering::SeqCst);
    h.lossy_mask.store(0, Ordering::SeqCst);
    for start in &h.starts {
        start.store(UNSET, Ordering::SeqCst);
    }
    let mut freed = 0u64;
    for (i, class) in region.layout().classes.iter().enumerate() {
        let list = region.free_list(i);
        let on_list = list.len().unwrap_or(0);
        freed += (class.count - on_list.min(class.count)) as u64;
        list.reset();
        region.class(i).used.store(0, Ordering::Release);
        region.class(i).held.store(0, Ordering::Release);
    }
    // No holder row is live either (a live one keeps the region busy).
    region.holds().reset();
    h.seats.store(0, Ordering::Release);
    for c in region.consumers() {
        c.sleepers.store(0, Ordering::Relaxed);
    }
    h.pub_sleepers.store(0, Ordering::Relaxed);
    freed
}
