//! The process table and the consumer table, and the lock that serialises changes to them.
//!
//! Joining, leaving, subscribing and reaping are rare and touch several words at once, so they
//! run under one region-wide lock; the hot paths (publish, receive) never take it. The lock is an
//! open-file-description lock on the lock word's bytes, which the kernel releases when its holder
//! dies (`liveness`); the word names the holder (pid and start time, for display) and stays
//! nonzero when a holder dies (SIGKILL while holding it), so the next holder knows to repair.
//! Every operation under it is written so that re-running it after an interruption is harmless.

use crate::blocks::atomics::{AtomicU64, Ordering};
use crate::blocks::holds::{seat_bit, SEATS};
use crate::region::interest::Wanted;
use crate::region::layout::{
    Header, Row, CONSUMER_FREE, CONSUMER_LIVE, KIND_GROUP, MAX_GROUP_NAME, ROW_FREE, ROW_LIVE,
};
use crate::region::liveness::{self, now_ns, own_start_time, Held};
use crate::region::words::{Cursor, LockWord};
use crate::region::Region;
use crate::BusError;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::sync::atomic::Ordering as StdOrdering;
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
    /// The row of an attachment's seat: what its process holds in the slab (views of messages
    /// and loans, `blocks/holds.rs`).
    Holder,
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
            Role::Holder => 5,
            Role::Unknown => 0,
        }
    }
    pub(crate) fn from_code(c: u32) -> Role {
        match c {
            1 => Role::Bus,
            2 => Role::Publisher,
            3 => Role::Subscriber,
            4 => Role::GroupMember,
            5 => Role::Holder,
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

/// Bytes of the bus file whose lock the table lock's holder holds: the lock word's.
fn table_lock_range() -> (u64, u64) {
    (std::mem::offset_of!(Header, lock) as u64, 8)
}

impl Region {
    /// A new open file description of this region's file, opened by this process (never shared
    /// with a parent or a child), to hold a lock on. Reopened through `/proc/self/fd`, which
    /// reaches the file even if its name was removed; without `/proc`, by name, checked to be
    /// the same file.
    pub(crate) fn lock_description(&self) -> Result<File, BusError> {
        let io = |e| BusError::io(self.name(), e);
        let open = |path: &std::path::Path| {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_CLOEXEC | libc::O_NOCTTY)
                .open(path)
        };
        if let Ok(f) = open(std::path::Path::new(&format!(
            "/proc/self/fd/{}",
            self.file().as_raw_fd()
        ))) {
            return Ok(f);
        }
        let f = open(&crate::shm_path(self.name())).map_err(io)?;
        let (a, b) = (
            f.metadata().map_err(io)?,
            self.file().metadata().map_err(io)?,
        );
        if (a.dev(), a.ino()) != (b.dev(), b.ino()) {
            return Err(io(std::io::Error::other(
                "the bus file was replaced since this process attached, and /proc is not \
                 mounted to reach the attached one: attach again",
            )));
        }
        Ok(f)
    }

    /// Bytes of the bus file whose lock row `i`'s owner holds: the row's own 128 bytes.
    fn row_range(&self, i: u32) -> (u64, u64) {
        let size = std::mem::size_of::<Row>() as u64;
        (self.layout().rows_off + u64::from(i) * size, size)
    }

    /// Takes row `i`'s lock on a description of this process's own; false when another
    /// description holds it (a process still alive, or a child that inherited a description).
    fn lock_row(&self, i: u32) -> Result<bool, BusError> {
        let (start, len) = self.row_range(i);
        let file = self.lock_description()?;
        if !liveness::try_lock_range(file.as_raw_fd(), start, len)
            .map_err(|e| BusError::io(self.name(), e))?
        {
            return Ok(false);
        }
        let held = liveness::hold(file).map_err(|e| BusError::io(self.name(), e))?;
        if let Some(w) = self.row_lock_word(i) {
            liveness::release(Held::from(w.swap(held.value(), StdOrdering::SeqCst)));
        }
        Ok(true)
    }

    /// Gives up row `i`'s lock if this process holds it.
    fn unlock_row(&self, i: u32) {
        if let Some(w) = self.row_lock_word(i) {
            liveness::release(Held::from(w.swap(0, StdOrdering::SeqCst)));
        }
    }

    /// Whether this process (not a parent it was forked from) holds row `i`'s lock.
    pub(crate) fn holds_row(&self, i: u32) -> bool {
        self.row_lock_word(i)
            .is_some_and(|w| Held::from(w.load(StdOrdering::SeqCst)).fd().is_some())
    }

    /// Whether row `r` (a row of this region's table) belongs to a live process: true unless
    /// the kernel says nobody holds its lock (see `liveness`).
    pub(crate) fn row_alive(&self, r: &Row) -> bool {
        let base = self.rows().as_ptr() as usize;
        let i = (r as *const Row as usize).wrapping_sub(base) / std::mem::size_of::<Row>();
        if i >= self.rows().len() {
            return true;
        }
        let (start, len) = self.row_range(i as u32);
        liveness::range_locked(self.file().as_raw_fd(), start, len) != Some(false)
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

/// Holds the table lock until dropped: the lock of [`table_lock_range`] on a description of its
/// own, so that two threads of one process exclude each other too, and the lock word naming
/// the holder (for display; nonzero also while a change is in progress).
pub(crate) struct TableGuard<'a> {
    region: &'a Region,
    held: Held,
}

impl<'a> TableGuard<'a> {
    /// Takes the table lock; true in the second place when its last holder died holding it (the
    /// word still names it once nobody holds the lock), in which case the tables may have been
    /// left mid-change and must be repaired before use. Callers go through
    /// `recovery::lock_table`, which does that. [`BusError::LockHeld`] naming the holder when a
    /// live one keeps it longer than `limit` (or [`LOCK_WAIT_STOPPED`] when it is stopped).
    pub(crate) fn acquire(
        region: &'a Region,
        limit: Duration,
    ) -> Result<(TableGuard<'a>, bool), BusError> {
        let word = &region.header().lock;
        let me = own_lock_word();
        let held = liveness::hold(region.lock_description()?)
            .map_err(|e| BusError::io(region.name(), e))?;
        let fd = held.fd().expect("taken in this process just now");
        let (start_off, len) = table_lock_range();
        let mut spins = 0u32;
        let start = Instant::now();
        let mut last_check: Option<Instant> = None;
        loop {
            // The lock word is 0 while nobody holds the lock (or a holder is between its lock and
            // its store): try then; otherwise every few milliseconds, for a holder that died.
            if word.load(Ordering::Relaxed) == 0
                || last_check.is_none_or(|t| t.elapsed() > Duration::from_millis(5))
            {
                last_check = Some(Instant::now());
                match liveness::try_lock_range(fd, start_off, len) {
                    Ok(true) => {
                        let was = word.swap(me, Ordering::AcqRel);
                        return Ok((TableGuard { region, held }, was != 0));
                    }
                    Ok(false) => {}
                    Err(e) => {
                        liveness::release(held);
                        return Err(BusError::io(region.name(), e));
                    }
                }
                let cur = word.load(Ordering::Relaxed);
                let waited = start.elapsed();
                if waited > limit
                    || (waited > LOCK_WAIT_STOPPED.min(limit)
                        && liveness::is_stopped(LockWord::from(cur).pid))
                {
                    liveness::release(held);
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

    /// Takes the table lock only if it is free right now: never waits, never takes it over
    /// from a dead holder (a publisher taking a lossy consumer's messages, which must not wait
    /// for a reap; a lock left by a dead holder is repaired by the next `recovery::lock_table`).
    pub(crate) fn try_acquire(region: &'a Region) -> Option<TableGuard<'a>> {
        let word = &region.header().lock;
        if word.load(Ordering::Relaxed) != 0 {
            return None;
        }
        let held = liveness::hold(region.lock_description().ok()?).ok()?;
        let fd = held.fd()?;
        let (start, len) = table_lock_range();
        if liveness::try_lock_range(fd, start, len).ok() == Some(true)
            && word
                .compare_exchange(0, own_lock_word(), Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            return Some(TableGuard { region, held });
        }
        // Not taken, or taken with the word of a holder that died mid-change: left as it is.
        liveness::release(held);
        None
    }

    /// Claims a free process-table row for this process, taking the row's lock (its liveness)
    /// before the row goes live. A free row whose lock someone still holds (a child that
    /// inherited a description its parent has given up) is skipped.
    pub(crate) fn claim_row(&self, role: Role, consumer: u32) -> Result<u32, BusError> {
        for (i, row) in self.region.rows().iter().enumerate() {
            if row.state.load(Ordering::Acquire) == ROW_FREE {
                if !self.region.lock_row(i as u32)? {
                    continue;
                }
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

    /// Claims a holder row with a free seat (`blocks/holds.rs`): `Ok(None)` when every seat is
    /// taken (the caller copies instead of holding).
    pub(crate) fn claim_holder(&self) -> Result<Option<(u32, u32)>, BusError> {
        let h = self.region.header();
        let taken = h.seats.load(Ordering::Acquire);
        let Some(seat) = (0..SEATS).find(|s| taken & seat_bit(*s) == 0) else {
            return Ok(None);
        };
        let row = self.claim_row(Role::Holder, u32::MAX)?;
        if let Some(r) = self.region.row(row) {
            r.seat.store(seat + 1, Ordering::Release);
        }
        h.seats.fetch_or(seat_bit(seat), Ordering::AcqRel);
        Ok(Some((row, seat)))
    }

    /// Lets seat `seat` go of every block it still holds, freeing those it held last, and gives
    /// the seat back. Returns how many blocks it held. For a holder row that is being freed (its
    /// owner left, or died).
    pub(crate) fn release_seat(&self, seat: u32) -> u32 {
        if seat >= SEATS {
            return 0;
        }
        let region = self.region;
        let held = region.holds().release_everywhere(seat, |b, last| {
            region.count_unheld(b);
            if last {
                region.push_block(b);
            }
        });
        self.region
            .header()
            .seats
            .fetch_and(!seat_bit(seat), Ordering::AcqRel);
        if held > 0 {
            region.wake_publishers();
        }
        held
    }

    /// Frees row `i`, adding its topic counts to the departed rows' totals first. The stats are
    /// emptied once added, so running this again after an interruption adds nothing twice,
    /// except the counts of a holder killed between the two steps.
    pub(crate) fn free_row(&self, i: u32) {
        if let Some(row) = self.region.row(i) {
            // A holder row's seat lets go of whatever it still holds (a holder that died, or
            // left with views it could not give back).
            let seat = row.seat.swap(0, Ordering::AcqRel);
            if seat != 0 {
                self.release_seat(seat - 1);
            }
            if let Some(stats) = self.region.row_stats(i) {
                stats.merge_into(self.region.departed_stats());
                stats.reset();
            }
            row.state.store(ROW_FREE, Ordering::Release);
        }
        // After the row is free: while it is live, its owner holds its lock.
        self.region.unlock_row(i);
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
            // A new occupant: handles made for the last one stop working before anything of
            // theirs is reset (`blocks/entry.rs`).
            crate::blocks::entry::renew(&c.generation);
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
        // A guard a child inherited at a fork is its parent's: the lock is not the child's.
        if self.held.fd().is_some() {
            self.region.header().lock.store(0, Ordering::Release);
            liveness::release(self.held);
        }
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
    row.seat.store(0, Ordering::Relaxed);
    row.copies.store(0, Ordering::Relaxed);
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
