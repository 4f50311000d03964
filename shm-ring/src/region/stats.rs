//! Row stats (`layout::RowStats`): what each process row counts for tools beyond the row itself,
//! namely a publisher's messages and bytes per topic, and a program's own counters (a bridge's
//! out, in, dropped, reconnects with its server).
//!
//! A publisher names up to [`TOPIC_ENTRIES`] topics in its table, in the order it first
//! publishes them, and counts the rest together in the "other" entry. It remembers each topic's
//! entry index in its addressing cache, so a publish adds to one entry that only it writes (a
//! plain load and store, as for the row's other counters). When a row is freed, its counts are
//! added, under the table lock, to the totals of departed rows (the stats entry after the last
//! row), so that totals and rates per topic do not drop when a publisher leaves.
//!
//! Nothing read here is trusted: lengths are clamped to the table, and a named entry counts only
//! if its text hashes to its hash (for a topic longer than [`TOPIC_TEXT`], if its cut text is
//! UTF-8); anything else is left out of what [`RowStats::read_topics`] returns.

use super::layout::{
    RowStats, TopicEntry, BRIDGE_DROPPED, BRIDGE_FORGOTTEN, BRIDGE_HELD, BRIDGE_IN, BRIDGE_OUT,
    BRIDGE_RECONNECTS, LABEL_TEXT, MAX_TOPIC_LEN, PROGRAM_BRIDGE, PROGRAM_NONE, TOPIC_ENTRIES,
    TOPIC_TEXT,
};
use super::table::add_own;
use crate::blocks::atomics::{AtomicU64, Ordering};
use crate::wire::topic_hash;

/// Index of the "other" entry of a topic table.
pub(crate) const OTHER: usize = TOPIC_ENTRIES;
/// A holder row's counters (`RowStats::store_holds`).
const HOLD_BLOCKS: usize = 0;
const HOLD_BYTES: usize = 1;

/// Messages, bytes and unrouted messages of one topic, as tools read them.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TopicCount {
    /// The topic, `None` for the entry that counts every topic beyond a row's table.
    pub topic: Option<String>,
    /// Whether `topic` is the start of a longer topic (the table keeps 40 bytes of it).
    pub cut: bool,
    /// The topic's hash (`topic_hash`), 0 for the other topics.
    pub hash: u64,
    /// Messages published on it that took a ring position.
    pub messages: u64,
    /// Payload bytes of those messages.
    pub bytes: u64,
    /// Messages published on it that no consumer wanted.
    pub unrouted: u64,
}

/// What a bridge stores in its row's stats (`BridgeCounters::store`): see [`BridgeRow`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BridgeCounts {
    /// Bus messages handed to NATS.
    pub out: u64,
    /// NATS messages published on the bus.
    pub in_: u64,
    /// Messages that could not be delivered.
    pub dropped: u64,
    /// Times the connection to the server was made again.
    pub reconnects: u64,
    /// Times the export side stopped reading the bus to wait for the importers' credit.
    pub held: u64,
    /// Importers forgotten after going silent while the bridge waited for them.
    pub forgotten: u64,
}

/// A bridge's counters, as its row's stats hold them.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BridgeRow {
    /// The NATS server(s) it connects to, as given (without credentials).
    pub server: String,
    /// Bus messages handed to NATS.
    pub out: u64,
    /// NATS messages published on the bus.
    #[serde(rename = "in")]
    pub in_: u64,
    /// Messages that could not be delivered.
    pub dropped: u64,
    /// Times the connection to the server was made again.
    pub reconnects: u64,
    /// Times the export side stopped reading the bus to wait for the importers' credit.
    pub held: u64,
    /// Importers that went silent while this bridge waited for them, and were forgotten.
    pub forgotten: u64,
}

/// Writes `bytes` (at most `words.len() * 8` of them) into `words`, zero-padded.
fn store_text(words: &[AtomicU64], bytes: &[u8]) {
    for (i, w) in words.iter().enumerate() {
        let mut chunk = [0u8; 8];
        let from = (i * 8).min(bytes.len());
        let to = (from + 8).min(bytes.len());
        chunk[..to - from].copy_from_slice(&bytes[from..to]);
        w.store(u64::from_le_bytes(chunk), Ordering::Relaxed);
    }
}

/// The first `len` bytes held in `words` (`len` clamped to what they hold).
fn load_text(words: &[AtomicU64], len: usize) -> Vec<u8> {
    let mut out: Vec<u8> = words
        .iter()
        .flat_map(|w| w.load(Ordering::Relaxed).to_le_bytes())
        .collect();
    out.truncate(len);
    out
}

/// The longest prefix of `bytes` that is UTF-8.
fn utf8_prefix(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(e) => String::from_utf8_lossy(&bytes[..e.valid_up_to()]).into_owned(),
    }
}

/// `text` cut to at most `max` bytes at a character boundary.
fn cut_at_char(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// What a topic entry names, if it checks out: (topic, cut).
fn entry_topic(e: &TopicEntry) -> Option<(String, bool)> {
    let len = e.len.load(Ordering::Relaxed) as usize;
    if len == 0 || len > MAX_TOPIC_LEN {
        return None;
    }
    let bytes = load_text(&e.text, len.min(TOPIC_TEXT));
    if len > TOPIC_TEXT {
        // Cut at a character boundary, so up to 3 bytes of zero padding may follow.
        let text = utf8_prefix(&bytes);
        return Some((text.trim_end_matches('\0').to_string(), true));
    }
    let text = std::str::from_utf8(&bytes).ok()?;
    (topic_hash(text) == e.hash.load(Ordering::Relaxed)).then(|| (text.to_string(), false))
}

fn clear_entry(e: &TopicEntry) {
    for w in [&e.hash, &e.messages, &e.bytes, &e.unrouted] {
        w.store(0, Ordering::Relaxed);
    }
    e.len.store(0, Ordering::Relaxed);
    store_text(&e.text, &[]);
}

impl RowStats {
    /// Back to empty, for a row being claimed (under the table lock).
    pub(crate) fn reset(&self) {
        self.topics_used.store(0, Ordering::Relaxed);
        self.program.store(PROGRAM_NONE, Ordering::Relaxed);
        for c in &self.counters {
            c.store(0, Ordering::Relaxed);
        }
        self.label_len.store(0, Ordering::Relaxed);
        store_text(&self.label, &[]);
        for e in &self.topics {
            clear_entry(e);
        }
    }

    /// Entry `i` of the topic table (`i` beyond it: the other entry).
    pub(crate) fn entry(&self, i: usize) -> &TopicEntry {
        &self.topics[i.min(OTHER)]
    }

    /// Names `topic` (hash `hash`) in named entry `i` and makes the entry visible to readers. Only
    /// the row's owner calls this, for `i` = the number of entries it named so far.
    pub(crate) fn name_topic(&self, i: usize, topic: &str, hash: u64) {
        let Some(e) = self.topics[..OTHER].get(i) else {
            return;
        };
        clear_entry(e);
        e.hash.store(hash, Ordering::Relaxed);
        e.len.store(topic.len() as u32, Ordering::Relaxed);
        store_text(&e.text, cut_at_char(topic, TOPIC_TEXT).as_bytes());
        self.topics_used.store(i as u32 + 1, Ordering::Release);
    }

    /// Named entries in use, clamped to the table.
    fn used(&self) -> usize {
        (self.topics_used.load(Ordering::Acquire) as usize).min(TOPIC_ENTRIES)
    }

    /// The topics counted here, named entries first, then the other topics if any were counted;
    /// entries that do not check out are left out.
    pub(crate) fn read_topics(&self) -> Vec<TopicCount> {
        let count = |e: &TopicEntry, topic: Option<String>, cut: bool| TopicCount {
            hash: if topic.is_some() {
                e.hash.load(Ordering::Relaxed)
            } else {
                0
            },
            topic,
            cut,
            messages: e.messages.load(Ordering::Relaxed),
            bytes: e.bytes.load(Ordering::Relaxed),
            unrouted: e.unrouted.load(Ordering::Relaxed),
        };
        let mut out: Vec<TopicCount> = self.topics[..self.used()]
            .iter()
            .filter_map(|e| entry_topic(e).map(|(t, cut)| count(e, Some(t), cut)))
            .collect();
        let other = count(&self.topics[OTHER], None, false);
        if other.messages > 0 || other.unrouted > 0 {
            out.push(other);
        }
        out
    }

    /// Adds this row's topic counts to `total` (the departed rows' totals), naming topics there
    /// as they come and counting the rest as other. Under the table lock only.
    pub(crate) fn merge_into(&self, total: &RowStats) {
        let add = |from: &TopicEntry, to: &TopicEntry| {
            add_own(&to.messages, from.messages.load(Ordering::Relaxed));
            add_own(&to.bytes, from.bytes.load(Ordering::Relaxed));
            add_own(&to.unrouted, from.unrouted.load(Ordering::Relaxed));
        };
        for e in &self.topics[..self.used()] {
            let into = match entry_topic(e) {
                Some((text, false)) => total.find_or_name(&text, e.hash.load(Ordering::Relaxed)),
                // A cut topic cannot be told apart from another with the same start.
                _ => OTHER,
            };
            add(e, total.entry(into));
        }
        add(&self.topics[OTHER], &total.topics[OTHER]);
    }

    /// The entry naming `topic` here, named now if there is room, else the other entry.
    fn find_or_name(&self, topic: &str, hash: u64) -> usize {
        let used = self.used();
        let found = self.topics[..used].iter().position(|e| {
            e.hash.load(Ordering::Relaxed) == hash
                && entry_topic(e).is_some_and(|(t, _)| t == topic)
        });
        match found {
            Some(i) => i,
            None if used < TOPIC_ENTRIES => {
                self.name_topic(used, topic, hash);
                used
            }
            None => OTHER,
        }
    }

    /// Marks the row as a bridge's, connected to `server` (cut to the label's size).
    pub(crate) fn set_bridge(&self, server: &str) {
        let label = cut_at_char(server, LABEL_TEXT);
        store_text(&self.label, label.as_bytes());
        self.label_len.store(label.len() as u32, Ordering::Relaxed);
        self.program.store(PROGRAM_BRIDGE, Ordering::Release);
    }

    /// Stores what a holder row's seat holds: blocks and their bytes (its owner only; the
    /// first two counters, which a holder row uses for nothing else).
    pub(crate) fn store_holds(&self, blocks: u64, bytes: u64) {
        self.counters[HOLD_BLOCKS].store(blocks, Ordering::Relaxed);
        self.counters[HOLD_BYTES].store(bytes, Ordering::Relaxed);
    }

    /// What [`RowStats::store_holds`] stored: `(blocks, bytes)`.
    pub(crate) fn holds(&self) -> (u64, u64) {
        (
            self.counters[HOLD_BLOCKS].load(Ordering::Relaxed),
            self.counters[HOLD_BYTES].load(Ordering::Relaxed),
        )
    }

    /// Stores a bridge's counters (its owner only).
    pub(crate) fn store_bridge(&self, counts: &BridgeCounts) {
        self.counters[BRIDGE_OUT].store(counts.out, Ordering::Relaxed);
        self.counters[BRIDGE_IN].store(counts.in_, Ordering::Relaxed);
        self.counters[BRIDGE_DROPPED].store(counts.dropped, Ordering::Relaxed);
        self.counters[BRIDGE_RECONNECTS].store(counts.reconnects, Ordering::Relaxed);
        self.counters[BRIDGE_HELD].store(counts.held, Ordering::Relaxed);
        self.counters[BRIDGE_FORGOTTEN].store(counts.forgotten, Ordering::Relaxed);
    }

    /// The bridge counters, if the row says it is a bridge's.
    pub(crate) fn read_bridge(&self) -> Option<BridgeRow> {
        if self.program.load(Ordering::Acquire) != PROGRAM_BRIDGE {
            return None;
        }
        let len = (self.label_len.load(Ordering::Relaxed) as usize).min(LABEL_TEXT);
        let get = |i: usize| self.counters[i].load(Ordering::Relaxed);
        Some(BridgeRow {
            server: utf8_prefix(&load_text(&self.label, len)),
            out: get(BRIDGE_OUT),
            in_: get(BRIDGE_IN),
            dropped: get(BRIDGE_DROPPED),
            reconnects: get(BRIDGE_RECONNECTS),
            held: get(BRIDGE_HELD),
            forgotten: get(BRIDGE_FORGOTTEN),
        })
    }
}
