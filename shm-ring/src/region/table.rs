//! The process table and the consumer table, and the lock that serialises changes to them.
//!
//! Joining, leaving, subscribing and reaping are rare and touch several words at once, so they
//! run under one region-wide lock; the hot paths (publish, receive) never take it. The lock word
//! holds the owner's pid and the low bits of its start time, so a waiter that finds the owner dead
//! (SIGKILL while holding it) takes the lock over; every operation under it is written so that
//! re-running it after an interruption is harmless.

use crate::blocks::atomics::{AtomicU64, Ordering};
use crate::region::interest::Wanted;
use crate::region::layout::{
    Row, CONSUMER_FREE, CONSUMER_LIVE, KIND_GROUP, MAX_GROUP_NAME, ROW_FREE, ROW_LIVE,
};
use crate::region::liveness::{is_alive, now_ns, own_start_time};
use crate::region::words::{Cursor, LockWord};
use crate::region::Region;
use crate::BusError;
use std::time::{Duration, Instant};

/// What a process-table row is used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// An attached [`crate::Bus`] handle.
    Bus,
    /// A [`crate::Publisher`].
    Publisher,
    /// A fan-out [`crate::Subscriber`].
    Subscriber,
    /// A [`crate::Subscriber`] in a group.
    GroupMember,
    /// A value this build does not know (a corrupt or newer region).
    Unknown,
}

impl Role {
    pub(crate) fn code(self) -> u32 {
        match self {
            Role::Bus => 1,
            Role::Publisher => 2,
            Role::Subscriber => 3,
            Role::GroupMember => 4,
            Role::Unknown => 0,
        }
    }
    pub(crate) fn from_code(c: u32) -> Role {
        match c {
            1 => Role::Bus,
            2 => Role::Publisher,
            3 => Role::Subscriber,
            4 => Role::GroupMember,
            _ => Role::Unknown,
        }
    }
}

fn own_lock_word() -> u64 {
    LockWord {
        pid: std::process::id(),
        start_time: own_start_time() as u32,
    }
    .value()
}

fn lock_owner_alive(word: u64) -> bool {
    let owner = LockWord::from(word);
    match crate::region::liveness::start_time(owner.pid) {
        Some(st) => is_alive(owner.pid, st) && st as u32 == owner.start_time,
        None => false,
    }
}

/// Longest wait for the table lock held by a live process. Holders keep it for microseconds
/// (a reap of a large table: milliseconds), so a longer wait means a stopped or stuck holder,
/// or a lock word naming a live process that never took it (a damaged or hostile file).
pub(crate) const LOCK_WAIT: Duration = Duration::from_secs(3);
/// Longest wait when the holder is seen stopped (SIGSTOP, a debugger): it cannot release the lock.
pub(crate) const LOCK_WAIT_STOPPED: Duration = Duration::from_millis(200);

/// The error for a lock word `word` still held after waiting since `start`.
fn lock_held(region: &Region, word: u64, start: Instant) -> BusError {
    let pid = LockWord::from(word).pid;
    BusError::LockHeld {
        name: region.name().to_string(),
        pid,
        state: if crate::region::liveness::is_stopped(pid) {
            ", which is stopped,"
        } else {
            ""
        },
        waited_ms: start.elapsed().as_millis() as u64,
    }
}

/// Holds the table lock until dropped.
pub(crate) struct TableGuard<'a> {
    region: &'a Region,
}

impl<'a> TableGuard<'a> {
    /// Takes the table lock, taking it over from a dead owner; true in the second place when it
    /// was taken over, in which case the dead owner may have been cut short mid-change and the
    /// tables must be repaired before use. Callers go through `recovery::lock_table`, which does
    /// that. [`BusError::LockHeld`] naming the holder when a live one keeps it longer than
    /// `limit` (or [`LOCK_WAIT_STOPPED`] when it is stopped).
    pub(crate) fn acquire(
        region: &'a Region,
        limit: Duration,
    ) -> Result<(TableGuard<'a>, bool), BusError> {
        let word = &region.header().lock;
        let me = own_lock_word();
        let mut spins = 0u32;
        let start = Instant::now();
        let mut last_check = start;
        loop {
            let cur = word.load(Ordering::Relaxed);
            if cur == 0 {
                if word
                    .compare_exchange(0, me, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                {
                    return Ok((TableGuard { region }, false));
                }
            } else if last_check.elapsed() > Duration::from_millis(5) {
                last_check = Instant::now();
                if !lock_owner_alive(cur)
                    && word
                        .compare_exchange(cur, me, Ordering::AcqRel, Ordering::Relaxed)
                        .is_ok()
                {
                    return Ok((TableGuard { region }, true));
                }
                let waited = start.elapsed();
                if waited > limit
                    || (waited > LOCK_WAIT_STOPPED.min(limit)
                        && crate::region::liveness::is_stopped(LockWord::from(cur).pid))
                {
                    return Err(lock_held(region, cur, start));
                }
            }
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else if spins < 256 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    }

    /// Claims a free process-table row for this process.
    pub(crate) fn claim_row(&self, role: Role, consumer: u32) -> Result<u32, BusError> {
        for (i, row) in self.region.rows().iter().enumerate() {
            if row.state.load(Ordering::Acquire) == ROW_FREE {
                reset_row(row);
                if let Some(stats) = self.region.row_stats(i as u32) {
                    stats.reset();
                }
                row.role.store(role.code(), Ordering::Relaxed);
                row.pid.store(std::process::id(), Ordering::Relaxed);
                row.start_time.store(own_start_time(), Ordering::Relaxed);
                row.heartbeat_ns.store(now_ns(), Ordering::Relaxed);
                row.consumer.store(consumer, Ordering::Relaxed);
                row.state.store(ROW_LIVE, Ordering::Release);
                return Ok(i as u32);
            }
        }
        Err(BusError::TableFull {
            what: "process-table row",
        })
    }

    /// Frees row `i`, adding its topic counts to the departed rows' totals first. The stats are
    /// emptied once added, so running this again after an interruption adds nothing twice,
    /// except the counts of a holder killed between the two steps.
    pub(crate) fn free_row(&self, i: u32) {
        if let Some(row) = self.region.row(i) {
            if let Some(stats) = self.region.row_stats(i) {
                stats.merge_into(self.region.departed_stats());
                stats.reset();
            }
            row.state.store(ROW_FREE, Ordering::Release);
        }
    }

    /// Takes a free consumer entry wanting `wanted`, and joins the ring with it (its cursor is
    /// its start position).
    pub(crate) fn add_consumer(
        &self,
        kind: u32,
        group: &str,
        wanted: &Wanted,
        lossy: bool,
    ) -> Result<u32, BusError> {
        let max = self.region.layout().max_subscribers as usize;
        for (i, c) in self.region.consumers().iter().enumerate().take(max) {
            if c.state.load(Ordering::Acquire) != CONSUMER_FREE {
                continue;
            }
            c.sleepers.store(0, Ordering::Relaxed);
            c.kind.store(kind, Ordering::Relaxed);
            c.members.store(1, Ordering::Relaxed);
            c.orphaned_ns.store(0, Ordering::Relaxed);
            c.missed.store(0, Ordering::Relaxed);
            c.redelivered.store(0, Ordering::Relaxed);
            c.redeliver_count.store(0, Ordering::Relaxed);
            for r in &c.redeliver {
                r.store(0, Ordering::Relaxed);
            }
            let mut name = [0u8; MAX_GROUP_NAME];
            name[..group.len()].copy_from_slice(group.as_bytes());
            for (w, chunk) in c.name.iter().zip(name.chunks(8)) {
                w.store(
                    u64::from_le_bytes(chunk.try_into().expect("8 bytes")),
                    Ordering::Relaxed,
                );
            }
            c.name_len.store(group.len() as u32, Ordering::Relaxed);
            c.end.store(0, Ordering::Relaxed);
            c.state.store(CONSUMER_LIVE, Ordering::Release);
            // Interest and lossiness before the bit: a publisher that sees the bit finds what we
            // want, and does not wait for a lossy consumer.
            self.write_interest(i, wanted);
            let h = self.region.header();
            if lossy {
                h.lossy_mask.fetch_or(1 << i, Ordering::SeqCst);
            } else {
                h.lossy_mask.fetch_and(!(1 << i), Ordering::SeqCst);
            }
            // Bit first, start second (resolved once, by us or by a publisher that sees the bit):
            // every position at or after the start that carries our bit will be visited, and no
            // position before it carries it (blocks/ring.rs, joining and leaving).
            let start = self.region.ring().join(i);
            // A lossy consumer's cursor is a plain position (publishers CAS it, `RingView::evict`).
            let cursor = if lossy {
                start
            } else {
                Cursor {
                    pos: start,
                    claimer: 0,
                }
                .value()
            };
            c.cursor.store(cursor, Ordering::SeqCst);
            return Ok(i as u32);
        }
        Err(BusError::TableFull {
            what: "consumer entry: a bus has at most max_subscribers (at most 64) fan-out \
                   subscribers and groups together; put engines that share work in a group \
                   (one entry however many members), or close engines that no longer listen",
        })
    }

    /// Rewrites consumer `idx`'s interest (see `interest.rs`).
    pub(crate) fn write_interest(&self, idx: usize, wanted: &Wanted) {
        self.region.write_interest_locked(idx, wanted);
    }

    /// The live group named `group`, if any.
    pub(crate) fn find_group(&self, group: &str) -> Option<u32> {
        let max = self.region.layout().max_subscribers as usize;
        self.region
            .consumers()
            .iter()
            .take(max)
            .position(|c| {
                c.state.load(Ordering::Acquire) == CONSUMER_LIVE
                    && c.kind.load(Ordering::Relaxed) == KIND_GROUP
                    && consumer_name(c).as_deref() == Some(group)
            })
            .map(|i| i as u32)
    }

    /// The region under the lock.
    pub(crate) fn region(&self) -> &'a Region {
        self.region
    }
}

impl Drop for TableGuard<'_> {
    fn drop(&mut self) {
        self.region.header().lock.store(0, Ordering::Release);
    }
}

fn reset_row(row: &Row) {
    for w in [
        &row.delivered,
        &row.published,
        &row.addressed,
        &row.publishing,
        &row.in_flight,
        &row.redelivered,
    ] {
        w.store(0, Ordering::Relaxed);
    }
    row.sleeping.store(0, Ordering::Relaxed);
    row.held_block.store(0, Ordering::Relaxed);
    // Publishers' counters, so that a row does not show what its previous owner did.
    for w in [&row.unrouted, &row.waiting_for, &row.waiting_since_ns] {
        w.store(0, Ordering::Relaxed);
    }
}

/// The group name stored in a consumer entry (`None` if it is not valid UTF-8 or too long).
pub(crate) fn consumer_name(c: &crate::region::layout::Consumer) -> Option<String> {
    let len = c.name_len.load(Ordering::Relaxed) as usize;
    if len > MAX_GROUP_NAME {
        return None;
    }
    let bytes: Vec<u8> = c
        .name
        .iter()
        .flat_map(|w| w.load(Ordering::Relaxed).to_le_bytes())
        .collect();
    String::from_utf8(bytes[..len].to_vec()).ok()
}

/// True when row `row` belongs to a live process (pid alive with the recorded start time).
pub(crate) fn row_alive(row: &Row) -> bool {
    let pid = row.pid.load(Ordering::Relaxed);
    let st = row.start_time.load(Ordering::Relaxed);
    if pid == std::process::id() && st == own_start_time() {
        return true;
    }
    is_alive(pid, st)
}

/// Checks a group name: 1..=64 bytes of `[A-Za-z0-9_.-]`.
pub fn validate_group(group: &str) -> Result<(), BusError> {
    let reason = if group.is_empty() {
        "the name is empty"
    } else if group.len() > MAX_GROUP_NAME {
        "the name is longer than 64 characters"
    } else if !group
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        "only letters, digits, '_', '.' and '-' are allowed"
    } else {
        return Ok(());
    };
    Err(BusError::BadGroup {
        name: group.to_string(),
        reason,
    })
}

/// Adds one to a counter only this row's owner writes: a plain load and store, no locked
/// read-modify-write on the hot path.
pub(crate) fn bump_own(counter: &AtomicU64) {
    add_own(counter, 1);
}

/// Adds `n` to a counter only this row's owner writes (see [`bump_own`]).
pub(crate) fn add_own(counter: &AtomicU64, n: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
}
