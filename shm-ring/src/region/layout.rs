//! The byte layout of a region: the header, and where every table lives.
//!
//! Every offset is derived from the geometry alone ([`Layout::compute`]), so an attacher recomputes
//! the layout from the header's geometry and compares it with what the header says; anything that
//! differs is a clear error. After validation the process keeps its own copy of the layout and never
//! re-reads offsets or sizes from the mapping (invariant 4).
//!
//! ```text
//! header | process rows | row stats | consumer entries | ring slots | slab class heads | free-list links | blocks
//! ```

use crate::blocks::atomics::{AtomicU32, AtomicU64};
use crate::{BusConfig, BusError};

/// "EVENTBUS" in ASCII; the first eight bytes of every region.
pub const MAGIC: u64 = u64::from_le_bytes(*b"EVENTBUS");
/// Version of this layout; bumped whenever any structure below changes (2: 192-byte slots with
/// 136 inline bytes; 3: consumers' start and end positions and interests, 2 KiB header, class
/// sizes capped at 1 KiB per slab block, free-list `TAKEN` marks; 4: row stats, a
/// publisher's topic table and a program's counters beside each process row, group retention,
/// lossy consumers, a publisher's held block; 5: a bridge's `held` and `forgotten` counters, its
/// label cut to 64 bytes; 6: a consumer's `cursor` on a cache line of its own; 7: a group's
/// `orphaned_ns` on `CLOCK_BOOTTIME` instead of the time of day, a consumer's `generation`, a
/// publisher row's `addressed`, the header's `blind_sleepers`, and a process is alive while it
/// holds its row's lock (`liveness`), which older builds do not take; 8: a row's `publishing`
/// word carries the flags `ANNOUNCED` and `SEALED`, and its run length is 14 bits; 9: the slab
/// is sized by a memory budget, the header's `slab_memory`, and `slab_blocks` is derived from
/// it; messages up to 1 GiB; each block has a hold word, the header a seat mask and a row its
/// seat and copies: holds and loans).
pub const LAYOUT_VERSION: u32 = 9;
/// Each slab class below the largest gets at most this many bytes (and at most its share of
/// half the slab memory, at least one block); the largest class, which fits a whole message,
/// gets the rest. See [`class_counts`].
pub const SMALL_CLASS_BYTES: u64 = 2 << 20;
/// Full-size messages the slab has room for when its memory is derived from `max_message`
/// ([`default_slab_memory`]).
pub const DEFAULT_FULL_MESSAGES: u64 = 4;
/// Largest `max_message` accepted: 1 GiB (its block, with the longest topic, still fits a u32).
pub const MAX_MESSAGE_LIMIT: u32 = 1 << 30;
/// Most payload blocks a slab may have (its links table is 4 bytes a block).
pub const MAX_SLAB_BLOCKS: u64 = 1 << 24;
/// Longest topic accepted, in bytes.
pub const MAX_TOPIC_LEN: usize = 512;
/// Topic plus payload up to this many bytes travel inside the ring slot, needing no slab block.
pub(crate) use crate::blocks::ring::INLINE_CAP;
/// Smallest slab size class; each next class is four times larger, the last fits a full message
/// (and is at least twice the one below it).
pub const MIN_BLOCK: usize = 256;
/// At most this many size classes.
pub const MAX_CLASSES: usize = 16;
/// Redelivery entries per group (messages a dead member had in flight, waiting for a live one).
pub const REDELIVER_SLOTS: usize = 16;
/// Longest group name, in bytes.
pub const MAX_GROUP_NAME: usize = 64;

/// Topics a publisher's row counts by name; the rest are counted together in its "other" entry.
pub const TOPIC_ENTRIES: usize = 16;
/// Bytes of a topic's text a topic entry keeps (a longer topic is kept cut, with its length).
pub const TOPIC_TEXT: usize = 40;
/// Bytes of a program's label (a bridge's NATS server) a row's stats keep.
pub const LABEL_TEXT: usize = 64;

const HEADER_SIZE: usize = 2048;
const ROW_SIZE: usize = 128;
/// Small enough that the default bus stays under 24 MiB (257 row stats of 1,488 bytes).
const TOPIC_ENTRY_SIZE: usize = 80;
/// A head line, the named topic entries and the "other" entry.
const ROW_STATS_SIZE: usize = 128 + (TOPIC_ENTRIES + 1) * TOPIC_ENTRY_SIZE;
const CONSUMER_SIZE: usize = 320 + 4096;
const SLOT_SIZE: usize = 192;
const CLASS_SIZE: usize = 64;

/// The fixed header at offset 0. Fields written once at creation are atomics too, so that reading
/// them from a file another process may be scribbling on is never a data race.
#[repr(C)]
pub(crate) struct Header {
    // --- identity and geometry (cache line pair 0) ---
    pub magic: AtomicU64,
    pub version: AtomicU32,
    /// 0 while the creator initialises, 1 once the region is usable.
    pub ready: AtomicU32,
    pub total_size: AtomicU64,
    pub created_ns: AtomicU64,
    pub ring_capacity: AtomicU32,
    pub max_message: AtomicU32,
    /// Blocks of all classes together, derived from `slab_memory` (the links table's length).
    pub slab_blocks: AtomicU32,
    pub max_processes: AtomicU32,
    pub max_subscribers: AtomicU32,
    pub num_classes: AtomicU32,
    pub rows_off: AtomicU64,
    pub consumers_off: AtomicU64,
    pub slots_off: AtomicU64,
    pub classes_off: AtomicU64,
    pub links_off: AtomicU64,
    pub blocks_off: AtomicU64,
    pub row_stats_off: AtomicU64,
    /// Since version 9: the blocks' hold words (`blocks/holds.rs`).
    pub holds_off: AtomicU64,
    /// The slab's memory budget in bytes (`BusConfig::slab_memory`, resolved): with
    /// `max_message` it decides every class's block count (since version 9).
    pub slab_memory: AtomicU64,
    // --- shared state, mostly cold (line pair 1) ---
    /// Owner of the table lock (see `table::TableLock`), 0 when free.
    pub lock: AtomicU64,
    /// One bit per live consumer (fan-out subscriber or group); publishers copy it into `pending`.
    pub active_mask: AtomicU64,
    pub published: AtomicU64,
    pub full_waits: AtomicU64,
    pub redeliveries: AtomicU64,
    pub reaped: AtomicU64,
    /// How long a group with no live member keeps its backlog, in milliseconds (from
    /// `BusConfig::group_retention_ms`, set at creation): after it, the next reap drops the
    /// group and counts what it held in `backlog_dropped`.
    pub group_retention_ms: AtomicU64,
    /// Messages dropped with groups whose retention ran out.
    pub backlog_dropped: AtomicU64,
    /// One bit per live lossy consumer (a subset of `active_mask`): a publisher that finds the
    /// ring or slab full takes their unread messages rather than wait for them
    /// (`RingView::evict`). Set before the consumer's active bit, cleared when it leaves.
    pub lossy_mask: AtomicU64,
    /// Since version 9: one bit per seat given to a holder row (`blocks/holds.rs`); changed only
    /// under the table lock.
    pub seats: AtomicU64,
    _pad1: [u64; 6],
    // --- the ring head, alone on its lines (line pair 2) ---
    /// Next position a publisher claims.
    pub head: AtomicU64,
    _pad2: [u64; 15],
    // --- blind sleepers (line pair 3; unused from version 3 to 6) ---
    /// How many receivers sleep at a position that is claimed but whose addressees they do not
    /// know yet (its claimant has not announced them): every commit and discard wakes every
    /// sleeping consumer while this is not 0, since the position may not be for them and a
    /// message for them may wait behind it (`blocks/sleepers.rs`).
    pub blind_sleepers: AtomicU32,
    _pad3a: u32,
    _pad3: [u64; 15],
    // --- publisher wake-ups (line pair 4) ---
    /// Futex word publishers blocked on a full ring or slab sleep on; bumped when space is freed.
    pub space_futex: AtomicU32,
    /// How many publishers are asleep on `space_futex`.
    pub pub_sleepers: AtomicU32,
    _pad4: [u64; 15],
    // --- consumers' first positions (lines 10..17), read by publishers on every message ---
    /// Bumped after every change of who wants what (a consumer joining, leaving, or rewriting
    /// its interest), so that publishers know when to look at the consumers again.
    pub interest_epoch: AtomicU64,
    _pad5: [u64; 15],
    /// `starts[b]`: the first position consumer `b` receives, `ring::UNSET` while it joins or
    /// while entry `b` is free (see `blocks/ring.rs`, joining and leaving).
    pub starts: [AtomicU64; 64],
}

/// One row of the process table: one per attached handle (bus, publisher, subscriber).
#[repr(C)]
pub(crate) struct Row {
    /// [`ROW_FREE`] or [`ROW_LIVE`].
    pub state: AtomicU32,
    /// A `Role` as u32.
    pub role: AtomicU32,
    pub pid: AtomicU32,
    /// Consumer entry index for subscribers, `u32::MAX` otherwise.
    pub consumer: AtomicU32,
    /// Process start time in clock ticks (/proc/<pid>/stat field 22): with `pid`, identifies the process.
    pub start_time: AtomicU64,
    pub heartbeat_ns: AtomicU64,
    pub delivered: AtomicU64,
    pub published: AtomicU64,
    /// The run of ring positions this publisher is claiming or writing (a `ring::Intent` word),
    /// 0 when idle; lets a survivor tell whether a claimed-but-unpublished slot belongs to a live
    /// process.
    pub publishing: AtomicU64,
    /// Group members: position + 1 being claimed (intent) or, with `IN_FLIGHT_CONFIRMED`, held.
    pub in_flight: AtomicU64,
    pub redelivered: AtomicU64,
    /// 0 awake, else [`SLEEPING_SUBSCRIBER`] (its consumer's `sleepers`) or
    /// [`SLEEPING_PUBLISHER`] (the header's `pub_sleepers`), with [`SLEEPING_COUNTED`] once that
    /// count includes it: lets a reaper take back exactly what a dead sleeper added.
    pub sleeping: AtomicU32,
    /// Publishers: the slab block (index + 1) it popped and no slot references yet, 0 when none.
    /// Set after the pop, cleared once the slot that holds it is committed (before `publishing`
    /// is cleared) or when the block goes back; whoever swaps it to 0 owns the block, so a reaper
    /// returns a dead publisher's block exactly once (`recovery`).
    pub held_block: AtomicU32,
    /// Publishers: messages no consumer wanted (not put on the ring).
    pub unrouted: AtomicU64,
    /// Publishers: the consumers (bits) holding the slot it waits for, 0 when not waiting.
    pub waiting_for: AtomicU64,
    /// Publishers: since when it waits (ns since the Unix epoch), 0 when not waiting.
    pub waiting_since_ns: AtomicU64,
    /// Publishers: the consumers (bits) the run announced in `publishing` is addressed to, 0
    /// until the claimant has decided (`RingView::announce`); stored after the claim and before
    /// the slot is written, cleared before `publishing`. Lets a consumer that the claimant does
    /// not address pass the position before it is committed.
    pub addressed: AtomicU64,
    /// Since version 9. A holder row (`Role::Holder`): its seat + 1 (`blocks/holds.rs`), set
    /// under the table lock before the row goes live and never changed while it lives; 0 on
    /// every other row. What the seat holds is counted in the row's stats (`RowStats`).
    pub seat: AtomicU32,
    _pad: u32,
    /// Since version 9. Subscribers: messages whose buffers were handed over as private copies
    /// because the subscriber held as many blocks as it may (its hold limit, or half a class
    /// bus-wide). Owner-written.
    pub copies: AtomicU64,
}

/// What one process row counts beyond the row itself, read only by tools (`Snapshot`): the
/// publisher's traffic per topic and, for a program that says what it is (a bridge), its
/// counters. Row `i`'s stats are entry `i` of the row-stats table; entry `max_processes` holds
/// the totals of the rows that have left.
///
/// Single writer: a live row's stats are written only by the row's owner (plain load and store,
/// no read-modify-write); the departed totals and the reset of a row being claimed only under
/// the table lock. Readers trust nothing: a topic entry counts only if its text hashes to its
/// hash (or is a cut text of a topic longer than [`TOPIC_TEXT`]).
#[repr(C)]
pub(crate) struct RowStats {
    /// Named topic entries in use, 0..=[`TOPIC_ENTRIES`]; an entry is written in full before
    /// this count covers it (Release), and is never rewritten while the row lives.
    pub topics_used: AtomicU32,
    /// [`PROGRAM_NONE`] or [`PROGRAM_BRIDGE`].
    pub program: AtomicU32,
    /// A bridge's counters: out, in, dropped, reconnects, held, forgotten (see [`BRIDGE_OUT`]
    /// and the others).
    pub counters: [AtomicU64; BRIDGE_COUNTERS],
    /// Bytes of `label` in use.
    pub label_len: AtomicU32,
    _pad0: u32,
    /// The program's label, UTF-8: a bridge's NATS server.
    pub label: [AtomicU64; LABEL_TEXT / 8],
    /// Entries `0..TOPIC_ENTRIES` name one topic each; the last counts every other topic.
    pub topics: [TopicEntry; TOPIC_ENTRIES + 1],
}

/// One topic of a [`RowStats`] topic table. Entries are 80 bytes, so one starts 0, 16, 32 or 48
/// bytes into a cache line: the two words a publish adds to come first and share a line.
#[repr(C)]
pub(crate) struct TopicEntry {
    /// Messages published on it (that took a ring position).
    pub messages: AtomicU64,
    /// Payload bytes of those messages.
    pub bytes: AtomicU64,
    /// `topic_hash` of the topic (0 in the "other" entry).
    pub hash: AtomicU64,
    /// Messages on it that no consumer wanted.
    pub unrouted: AtomicU64,
    /// Length of the topic in bytes; `text` keeps the first [`TOPIC_TEXT`] of them.
    pub len: AtomicU32,
    _pad0: u32,
    pub text: [AtomicU64; TOPIC_TEXT / 8],
}

pub(crate) const PROGRAM_NONE: u32 = 0;
pub(crate) const PROGRAM_BRIDGE: u32 = 1;
pub(crate) const BRIDGE_OUT: usize = 0;
pub(crate) const BRIDGE_IN: usize = 1;
pub(crate) const BRIDGE_DROPPED: usize = 2;
pub(crate) const BRIDGE_RECONNECTS: usize = 3;
pub(crate) const BRIDGE_HELD: usize = 4;
pub(crate) const BRIDGE_FORGOTTEN: usize = 5;
pub(crate) const BRIDGE_COUNTERS: usize = 6;

pub(crate) const SLEEPING_SUBSCRIBER: u32 = 1;
pub(crate) const SLEEPING_PUBLISHER: u32 = 2;
use crate::blocks::interest::InterestTable;
pub(crate) use crate::blocks::sleepers::{SLEEPING_BLIND, SLEEPING_COUNTED};

pub(crate) const ROW_FREE: u32 = 0;
pub(crate) const ROW_LIVE: u32 = 1;

/// A consumer: a fan-out subscriber or a group, owning one bit of the pending masks.
#[repr(C)]
pub(crate) struct Consumer {
    /// [`CONSUMER_FREE`], [`CONSUMER_LIVE`] or [`CONSUMER_DRAINING`] (departed; its bit may still
    /// be in slots below `end`, and the entry is not reused until a drain finds none).
    pub state: AtomicU32,
    /// [`KIND_FANOUT`] or [`KIND_GROUP`].
    pub kind: AtomicU32,
    pub members: AtomicU32,
    pub name_len: AtomicU32,
    /// Futex word this consumer's receivers sleep on; bumped by a publisher that addressed a
    /// message to it while `sleepers` > 0.
    pub futex: AtomicU32,
    /// How many of its receivers are asleep (or about to be) on `futex`. Read by every publish
    /// addressed to the consumer, so it shares no line with `cursor`, which its receivers write
    /// on every message.
    pub sleepers: AtomicU32,
    /// While [`CONSUMER_DRAINING`]: the position its departure ended at (`RingView::leave`),
    /// below which slots may still hold its bit until a drain finds none.
    pub end: AtomicU64,
    /// Groups: when the last member left or was found dead, on the retention clock
    /// (`CLOCK_BOOTTIME`, `recovery::retention_clock_ns`), 0 while it has one. A
    /// group without members stays live, so it keeps its backlog and goes on receiving, until
    /// the header's `group_retention_ms` has passed since then (`docs/delivery.md`).
    pub orphaned_ns: AtomicU64,
    pub redelivered: AtomicU64,
    /// Number of non-zero `redeliver` entries, so members skip the scan when it is zero.
    pub redeliver_count: AtomicU32,
    /// Bumped (never to 0) each time the entry is given to a new occupant, under the table lock
    /// and before its other words are reset (`blocks/entry.rs`): a handle made for one occupant
    /// reads or changes the entry only while this is still the generation it was made for.
    pub generation: AtomicU32,
    _pad0: [u32; 2],
    // --- line 1: written by the consumer's receivers on every message ---
    /// Next position to read and, for groups, the row (+1) that claimed the previous one: a
    /// `Cursor` word.
    pub cursor: AtomicU64,
    _pad1: [u64; 7],
    pub name: [AtomicU64; MAX_GROUP_NAME / 8],
    /// Positions a dead member held, as `Redelivery` words (owner 0 = up for grabs; 0 = empty).
    pub redeliver: [AtomicU64; REDELIVER_SLOTS],
    /// Lossy consumers: messages for it that publishers took because it was a ring behind.
    pub missed: AtomicU64,
    /// The topics it wants (see [`Interest`]).
    pub interest: Interest,
}

/// Words of pattern text in an [`Interest`].
pub(crate) const INTEREST_WORDS: usize = 509;

/// The topics a consumer wants: the patterns of its hooks (a group: of its members' hooks, as
/// they registered them). Rewritten under the table lock, read by publishers without it, so it is
/// a seqlock (`blocks/interest.rs`). Publishers notice a rewrite through the header's
/// `interest_epoch`.
pub(crate) type Interest = InterestTable<INTEREST_WORDS>;

pub(crate) const CONSUMER_FREE: u32 = 0;
pub(crate) const CONSUMER_LIVE: u32 = 1;
pub(crate) const CONSUMER_DRAINING: u32 = 2;
pub(crate) const KIND_FANOUT: u32 = 1;
pub(crate) const KIND_GROUP: u32 = 2;

/// The head of one slab size class.
#[repr(C)]
pub(crate) struct ClassHead {
    /// Free-list head: a `TaggedIndex` (block index + ABA tag).
    pub free: AtomicU64,
    pub used: AtomicU32,
    pub block_size: AtomicU32,
    pub first: AtomicU32,
    pub count: AtomicU32,
    /// Since version 9: blocks of this class held by seats (one per seat and block), so that
    /// holds never take more than half the class (`Holder::hold`). Approximate: added to and
    /// taken from without the table lock, never below 0.
    pub held: AtomicU32,
    _pad0: u32,
    _pad: [u64; 4],
}

const _: () = {
    assert!(std::mem::size_of::<Header>() <= HEADER_SIZE);
    // docs/region-layout.md: the table lock's word is at offset 128.
    assert!(std::mem::offset_of!(Header, lock) == 128);
    assert!(std::mem::size_of::<Row>() == ROW_SIZE);
    assert!(std::mem::size_of::<TopicEntry>() == TOPIC_ENTRY_SIZE);
    assert!(std::mem::size_of::<RowStats>() == ROW_STATS_SIZE);
    assert!(std::mem::size_of::<Consumer>() == CONSUMER_SIZE);
    assert!(CONSUMER_SIZE.is_multiple_of(64));
    assert!(std::mem::size_of::<crate::blocks::ring::Slot>() == SLOT_SIZE);
    assert!(std::mem::size_of::<ClassHead>() == CLASS_SIZE);
};

/// One slab size class: block size, and the global index range of its blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ClassGeom {
    pub block_size: u32,
    pub first: u32,
    pub count: u32,
    /// Offset of the class's first block in the region.
    pub data_off: u64,
}

/// Where everything lives, derived from the geometry only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    pub ring_capacity: u32,
    pub max_message: u32,
    /// The slab's memory budget; the classes' blocks add up to at most this many bytes.
    pub slab_memory: u64,
    /// Blocks of all classes together.
    pub slab_blocks: u32,
    pub max_processes: u32,
    pub max_subscribers: u32,
    pub classes: Vec<ClassGeom>,
    pub rows_off: u64,
    pub row_stats_off: u64,
    pub consumers_off: u64,
    pub slots_off: u64,
    pub classes_off: u64,
    pub links_off: u64,
    pub holds_off: u64,
    pub blocks_off: u64,
    pub total_size: u64,
}

fn align(x: u64, a: u64) -> u64 {
    x.div_ceil(a) * a
}

/// Block sizes of the classes for a given largest message.
pub(crate) fn class_sizes(max_message: u32) -> Vec<u32> {
    let need = max_message as u64 + MAX_TOPIC_LEN as u64;
    let mut sizes = Vec::new();
    let mut s = MIN_BLOCK as u64;
    // The largest class is at least twice the one below it: a class just under a whole message
    // would cost as much memory as one and hold no message that a whole-message block could not.
    while 2 * s <= need && sizes.len() < MAX_CLASSES - 1 {
        sizes.push(s as u32);
        s *= 4;
    }
    // At most 2^30 + 512 rounded up to 64: well inside a u32.
    sizes.push(align(need, 64).max(MIN_BLOCK as u64) as u32);
    sizes
}

/// Blocks of the classes below the largest when each gets `share` bytes: at least one block.
fn small_counts(sizes: &[u32], share: u64) -> Vec<u32> {
    let small = &sizes[..sizes.len() - 1];
    small
        .iter()
        .map(|&s| (share / s as u64).max(1) as u32)
        .collect()
}

fn bytes_of(sizes: &[u32], counts: &[u32]) -> u64 {
    sizes
        .iter()
        .zip(counts)
        .map(|(&s, &c)| s as u64 * c as u64)
        .sum()
}

/// The smallest slab memory a bus of `max_message` accepts: one block of every class, the
/// largest fitting one whole message with the longest topic.
pub fn min_slab_memory(max_message: u32) -> u64 {
    class_sizes(max_message).iter().map(|&s| s as u64).sum()
}

/// The slab memory of a bus whose creator gave none: room for [`DEFAULT_FULL_MESSAGES`] messages
/// of `max_message` plus [`SMALL_CLASS_BYTES`] for each smaller class (at least one block each).
/// About 16 MiB for the default 1 MiB messages; about 4.35 GiB for 1 GiB messages.
pub fn default_slab_memory(max_message: u32) -> u64 {
    let sizes = class_sizes(max_message);
    let small = small_counts(&sizes, SMALL_CLASS_BYTES);
    let last = *sizes.last().expect("at least one class") as u64;
    bytes_of(&sizes, &small) + DEFAULT_FULL_MESSAGES * last
}

/// How many blocks each class gets out of `memory` bytes (`sizes` from [`class_sizes`]).
///
/// Each class below the largest gets an equal share of half the memory, at most
/// [`SMALL_CLASS_BYTES`], and at least one block; the largest class, which holds whole messages,
/// gets what is left in whole blocks; the remainder (less than one large block) goes to the
/// smaller classes, largest first. So the small classes keep thousands of blocks for small
/// messages, the largest class has every byte the small ones do not need, and the blocks use all
/// of `memory` but less than one smallest block. A message takes a block from the smallest class
/// that fits it and has one free, so the single blocks of intermediate classes are not a limit.
/// `Err` carries what is wrong, for [`BusError::BadConfig`].
pub(crate) fn class_counts(sizes: &[u32], memory: u64) -> Result<Vec<u32>, String> {
    let n = sizes.len();
    let last = sizes[n - 1] as u64;
    let minimum: u64 = sizes.iter().map(|&s| s as u64).sum();
    if memory < minimum {
        return Err(format!(
            "slab memory {memory} bytes ({}) is too small: one message of the largest size \
             ({last} bytes with its topic) and one block of each smaller size class need at \
             least {minimum} bytes ({}); give more memory or a smaller max_message",
            human_bytes(memory),
            human_bytes(minimum)
        ));
    }
    let share = if n > 1 {
        (memory / (2 * (n as u64 - 1))).min(SMALL_CLASS_BYTES)
    } else {
        0
    };
    let mut counts = small_counts(sizes, share);
    if bytes_of(sizes, &counts) + last > memory {
        // Only near the minimum: one block of each smaller class.
        counts.iter_mut().for_each(|c| *c = 1);
    }
    let rest = memory - bytes_of(sizes, &counts);
    let large = rest / last;
    let mut left = rest - large * last;
    for i in (0..n - 1).rev() {
        let more = left / sizes[i] as u64;
        counts[i] += more as u32;
        left -= more * sizes[i] as u64;
    }
    let total = counts.iter().map(|&c| c as u64).sum::<u64>() + large;
    if total > MAX_SLAB_BLOCKS || large > u32::MAX as u64 {
        return Err(format!(
            "slab memory {memory} bytes ({}) makes {total} blocks, more than \
             {MAX_SLAB_BLOCKS}: give less memory or a larger max_message",
            human_bytes(memory)
        ));
    }
    counts.push(large as u32);
    Ok(counts)
}

/// `bytes` for a message: "1.5 MiB", "64 KiB", "100 B" (binary units).
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else if v.fract() == 0.0 {
        format!("{v:.0} {}", UNITS[unit])
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

impl Layout {
    /// Checks the geometry of `cfg` and lays the region out; a bad value is named in the error.
    pub(crate) fn compute(name: &str, cfg: &BusConfig) -> Result<Layout, BusError> {
        let _ = name;
        let bad = |what: String| Err(BusError::BadConfig { what });
        let cap = cfg.ring_capacity;
        if !(2..=1 << 24).contains(&cap) || !cap.is_power_of_two() {
            return bad(format!(
                "ring_capacity {cap} is not a power of two in 2..=16777216"
            ));
        }
        if !(1..=MAX_MESSAGE_LIMIT).contains(&cfg.max_message) {
            return bad(format!(
                "max_message {} is not in 1..={MAX_MESSAGE_LIMIT} (1 GiB)",
                cfg.max_message
            ));
        }
        if !(1..=4096).contains(&cfg.max_processes) {
            return bad(format!(
                "max_processes {} is not in 1..=4096",
                cfg.max_processes
            ));
        }
        if !(1..=64).contains(&cfg.max_subscribers) {
            return bad(format!(
                "max_subscribers {} is not in 1..=64",
                cfg.max_subscribers
            ));
        }
        let sizes = class_sizes(cfg.max_message);
        let slab_memory = cfg
            .slab_memory
            .unwrap_or_else(|| default_slab_memory(cfg.max_message));
        let counts = match class_counts(&sizes, slab_memory) {
            Ok(counts) => counts,
            Err(what) => return bad(what),
        };
        // At most MAX_SLAB_BLOCKS (checked by class_counts).
        let slab_blocks = counts.iter().sum::<u32>();

        let rows_off = HEADER_SIZE as u64;
        let row_stats_off = rows_off + cfg.max_processes as u64 * ROW_SIZE as u64;
        // One more than the rows: the last holds the totals of rows that have left.
        // On a line of its own, like each entry (a multiple of 64 bytes): see `Consumer::cursor`.
        let consumers_off = align(
            row_stats_off + (cfg.max_processes as u64 + 1) * ROW_STATS_SIZE as u64,
            64,
        );
        let slots_off = align(consumers_off + 64 * CONSUMER_SIZE as u64, 128);
        // Slots are three cache lines each, so every slot starts on a line of its own.
        let classes_off = slots_off + cap as u64 * SLOT_SIZE as u64;
        let links_off = classes_off + MAX_CLASSES as u64 * CLASS_SIZE as u64;
        let holds_off = align(links_off + slab_blocks as u64 * 4, 8);
        let blocks_off = align(holds_off + slab_blocks as u64 * 8, 4096);
        let mut off = blocks_off;
        let mut first = 0;
        let mut classes = Vec::new();
        for (size, count) in sizes.iter().zip(&counts) {
            classes.push(ClassGeom {
                block_size: *size,
                first,
                count: *count,
                data_off: off,
            });
            first += count;
            off += *size as u64 * *count as u64;
        }
        let total_size = align(off, 4096);
        if total_size > 1 << 40 {
            return bad(format!(
                "the region would be {total_size} bytes, more than 1 TiB"
            ));
        }
        Ok(Layout {
            ring_capacity: cap,
            max_message: cfg.max_message,
            slab_memory,
            slab_blocks,
            max_processes: cfg.max_processes,
            max_subscribers: cfg.max_subscribers,
            classes,
            rows_off,
            row_stats_off,
            consumers_off,
            slots_off,
            classes_off,
            links_off,
            holds_off,
            blocks_off,
            total_size,
        })
    }

    /// The geometry as a config (mode and owner policy are not stored in the region).
    pub(crate) fn config(&self) -> BusConfig {
        BusConfig {
            ring_capacity: self.ring_capacity,
            max_message: self.max_message,
            slab_memory: Some(self.slab_memory),
            max_processes: self.max_processes,
            max_subscribers: self.max_subscribers,
            ..BusConfig::default()
        }
    }

    /// Header size: a file shorter than this cannot be a bus.
    pub(crate) const HEADER_SIZE: usize = HEADER_SIZE;
    pub(crate) const CLASS_SIZE: usize = CLASS_SIZE;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes(l: &Layout) -> Vec<(u32, u32)> {
        l.classes.iter().map(|c| (c.block_size, c.count)).collect()
    }

    fn with(max_message: u32, slab_memory: Option<u64>) -> Result<Layout, BusError> {
        Layout::compute(
            "t",
            &BusConfig {
                max_message,
                slab_memory,
                ..BusConfig::default()
            },
        )
    }

    #[test]
    fn default_layout_is_consistent() {
        let l = Layout::compute("t", &BusConfig::default()).unwrap();
        assert_eq!(
            l.classes.iter().map(|c| c.count).sum::<u32>(),
            l.slab_blocks
        );
        assert!(l.classes.last().unwrap().block_size as usize >= (1 << 20) + MAX_TOPIC_LEN);
        for w in l.classes.windows(2) {
            assert!(w[0].block_size < w[1].block_size);
            assert_eq!(
                w[0].data_off + w[0].block_size as u64 * w[0].count as u64,
                w[1].data_off
            );
        }
        assert!(l.total_size >= l.classes.last().unwrap().data_off);
        let used: u64 = l
            .classes
            .iter()
            .map(|c| c.block_size as u64 * c.count as u64)
            .sum();
        assert!(used <= l.slab_memory && l.slab_memory - used < MIN_BLOCK as u64);
    }

    #[test]
    fn default_region_fits_a_small_dev_shm() {
        let l = Layout::compute("t", &BusConfig::default()).unwrap();
        // Docker's default /dev/shm is 64 MiB: the default bus must leave most of it free.
        assert!(l.total_size < 20 << 20, "{} bytes", l.total_size);
        assert_eq!(l.slab_memory, default_slab_memory(1 << 20));
        let last = l.classes.last().unwrap();
        assert!(last.block_size as usize >= (1 << 20) + MAX_TOPIC_LEN);
        assert!(last.count >= 4, "several full-size messages in flight");
        assert!(l.classes[0].count >= 4096, "{:?}", classes(&l));
    }

    #[test]
    fn the_largest_class_is_at_least_twice_the_one_below() {
        for max in [
            1,
            200,
            1000,
            4096,
            1 << 20,
            (1 << 20) + 1,
            64 << 20,
            1 << 30,
        ] {
            let sizes = class_sizes(max);
            let last = *sizes.last().unwrap() as u64;
            assert!(last >= max as u64 + MAX_TOPIC_LEN as u64);
            if let [.., below, _] = sizes[..] {
                assert!(last >= 2 * below as u64, "{max}: {sizes:?}");
            }
        }
        assert_eq!(class_sizes(4096), [256, 1024, 4608]);
        assert_eq!(class_sizes(1 << 20).len(), 7);
    }

    #[test]
    fn a_derived_slab_holds_four_full_messages_and_many_small_ones() {
        for max in [1000, 4096, 1 << 20, 16 << 20, 64 << 20, 1 << 30] {
            let l = with(max, None).unwrap();
            let c = classes(&l);
            assert!(c.last().unwrap().1 >= 4, "{max}: {c:?}");
            if c.len() > 1 {
                assert!(c[0].1 >= 4096, "{max}: {c:?}");
            }
        }
        // 1 GiB messages: four of them and the smaller classes, about 4.35 GiB.
        let big = default_slab_memory(1 << 30);
        assert!((4 << 30..4 << 30 | 400 << 20).contains(&big), "{big}");
    }

    #[test]
    fn a_given_memory_goes_mostly_to_the_largest_class() {
        // 64 MiB messages in 2 GiB: 31 of them, and the small classes keep thousands of blocks.
        let l = with(64 << 20, Some(2 << 30)).unwrap();
        let c = classes(&l);
        assert_eq!(c.last().unwrap(), &((64 << 20) + 512, 31));
        assert_eq!(c[0], (256, 8192 + 2));
        assert_eq!(c.len(), 10);
        let used: u64 = c.iter().map(|&(s, n)| s as u64 * n as u64).sum();
        assert!(used <= 2 << 30 && (2 << 30) - used < 256);
    }

    #[test]
    fn every_size_of_a_1_gib_bus_fits_its_integers() {
        let l = with(1 << 30, Some(min_slab_memory(1 << 30))).unwrap();
        let last = l.classes.last().unwrap();
        assert_eq!(last.block_size, (1 << 30) + 512);
        assert_eq!(last.count, 1);
        assert!(l.classes.iter().all(|c| c.count == 1));
        assert!(l.total_size > 1 << 30);
        let end = last.data_off + last.block_size as u64 * last.count as u64;
        assert!(end <= l.total_size);
    }

    #[test]
    fn memory_below_one_message_is_refused_with_the_minimum() {
        let min = min_slab_memory(1 << 20);
        assert_eq!(
            min,
            256 + 1024 + 4096 + 16384 + 65536 + 262144 + (1 << 20) + 512
        );
        assert!(with(1 << 20, Some(min)).is_ok());
        let err = with(1 << 20, Some(min - 1)).unwrap_err().to_string();
        assert!(err.contains(&format!("at least {min} bytes")), "{err}");
        assert!(err.contains("1049088 bytes with its topic"), "{err}");
        // Near the minimum, the smaller classes fall back to one block each.
        let l = with(1 << 20, Some(min + 1000)).unwrap();
        assert!(l.classes.iter().all(|c| c.count >= 1));
        assert_eq!(l.classes.last().unwrap().count, 1);
    }

    #[test]
    fn too_many_blocks_are_refused() {
        let err = with(1, Some(1 << 40)).unwrap_err().to_string();
        assert!(err.contains("more than 16777216"), "{err}");
    }

    #[test]
    fn tiny_and_bad_geometries() {
        let l = with(100, Some(256 + 640)).unwrap();
        assert_eq!(classes(&l), [(256, 1), (640, 1)]);
        for cfg in [
            BusConfig {
                ring_capacity: 3,
                ..BusConfig::default()
            },
            BusConfig {
                ring_capacity: 1,
                ..BusConfig::default()
            },
            BusConfig {
                max_subscribers: 65,
                ..BusConfig::default()
            },
            BusConfig {
                max_message: 0,
                ..BusConfig::default()
            },
            BusConfig {
                max_message: (1 << 30) + 1,
                ..BusConfig::default()
            },
        ] {
            let err = Layout::compute("t", &cfg).unwrap_err().to_string();
            assert!(err.contains("is not"), "{err}");
        }
        let err = with(1 << 20, Some(2)).unwrap_err().to_string();
        assert!(err.contains("too small"), "{err}");
    }

    #[test]
    fn human_bytes_reads_well() {
        assert_eq!(human_bytes(100), "100 B");
        assert_eq!(human_bytes(64 << 20), "64 MiB");
        assert_eq!(human_bytes(1536), "1.5 KiB");
    }
}
