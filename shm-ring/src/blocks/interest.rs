//! A consumer's interest table as a seqlock, and a publisher's per-topic cache of who wants what.
//!
//! The table is rewritten under the table lock and read by publishers without it: `version` is
//! odd while a rewrite is under way, and a reader that sees it odd, or changed across its copy,
//! copies again (after a few tries it gives up, and its caller takes the consumer to want
//! everything, never nothing). A rewrite then bumps the bus's interest epoch; a publisher keeps
//! its answers per topic only while the epoch stays where it was when it asked ([`TopicCache`]).
//! The epoch moves after the table is whole, so a publisher that sees the new epoch reads the new
//! table, and one that still sees the old epoch asks again at its next publish.

use crate::blocks::atomics::{fence, AtomicU32, AtomicU64, Ordering};
use engine_core::TopicHashMap;

/// How many times a reader copies a table that keeps changing before it gives up.
const READ_TRIES: u32 = if cfg!(loom) { 2 } else { 64 };

/// The topics a consumer wants, `N` words of pattern text (see `docs/region-layout.md`).
#[repr(C)]
pub(crate) struct InterestTable<const N: usize> {
    pub version: AtomicU64,
    /// 1: every topic (a Rust subscriber's default, and what a full table falls back to).
    pub all: AtomicU32,
    /// Bytes of `data` in use.
    pub len: AtomicU32,
    /// The patterns, each a little-endian `u16` length and then its UTF-8 bytes.
    pub data: [AtomicU64; N],
}

/// A consistent copy of a table (the words are in the caller's buffer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TableCopy {
    pub version: u64,
    pub all: bool,
    /// Bytes in use as the table says (not trusted: may exceed the buffer).
    pub len: usize,
}

impl<const N: usize> InterestTable<N> {
    /// Copies the table into `words`; `None` if it kept changing (or a writer died mid-rewrite).
    pub fn read(&self, words: &mut [u64; N]) -> Option<TableCopy> {
        for _ in 0..READ_TRIES {
            let v = self.version.load(Ordering::Acquire);
            if v & 1 != 0 {
                crate::blocks::atomics::spin_hint();
                continue;
            }
            let all = self.all.load(Ordering::Relaxed);
            let len = self.len.load(Ordering::Relaxed) as usize;
            let n = len.div_ceil(8).min(N);
            for (w, src) in words.iter_mut().zip(&self.data).take(n) {
                *w = src.load(Ordering::Relaxed);
            }
            fence(Ordering::Acquire);
            if self.version.load(Ordering::Relaxed) != v {
                continue;
            }
            return Some(TableCopy {
                version: v,
                all: all != 0,
                len,
            });
        }
        None
    }

    /// Rewrites the table (`None`: every topic; else the pattern bytes, at most `8 * N`), then
    /// bumps `epoch` so that publishers look again. One writer at a time (the table lock).
    pub fn write(&self, bytes: Option<&[u8]>, epoch: &AtomicU64) {
        let v = self.version.load(Ordering::Relaxed);
        // Odd while we write (a version left odd by a writer killed here reads as "everything").
        self.version.store(v | 1, Ordering::Relaxed);
        fence(Ordering::Release);
        match bytes {
            None => {
                self.all.store(1, Ordering::Relaxed);
                self.len.store(0, Ordering::Relaxed);
            }
            Some(b) => {
                debug_assert!(b.len() <= 8 * N);
                for (w, chunk) in self.data.iter().zip(b.chunks(8)) {
                    let mut word = [0u8; 8];
                    word[..chunk.len()].copy_from_slice(chunk);
                    w.store(u64::from_le_bytes(word), Ordering::Relaxed);
                }
                self.len.store(b.len() as u32, Ordering::Relaxed);
                self.all.store(0, Ordering::Relaxed);
            }
        }
        self.version
            .store((v | 1).wrapping_add(1), Ordering::Release);
        epoch.fetch_add(1, Ordering::SeqCst);
    }
}

/// A publisher's answers per topic (topic hash -> topic and answer), valid for one interest
/// epoch.
pub(crate) struct TopicCache<V> {
    /// The interest epoch `by_topic` is valid for.
    epoch: u64,
    by_topic: TopicHashMap<(Box<str>, V)>,
    /// Topics remembered; past this the cache starts over (a publisher that uses a new topic per
    /// message must not grow without bound).
    max: usize,
}

impl<V: Copy> TopicCache<V> {
    pub fn new(max: usize) -> Self {
        TopicCache {
            epoch: 0,
            by_topic: TopicHashMap::default(),
            max,
        }
    }

    /// The answer for `topic` (whose hash is `hash`) as of now: the cached one while `epoch`
    /// has not moved since it was computed, else `compute()`'s.
    pub fn get(
        &mut self,
        epoch: &AtomicU64,
        hash: u64,
        topic: &str,
        compute: impl FnOnce() -> V,
    ) -> V {
        // Read before `compute` reads any table: an answer computed from an older table than
        // this epoch's is impossible, and one from a newer table is kept only until the next
        // look at the epoch.
        let now = epoch.load(Ordering::SeqCst);
        if now != self.epoch || self.by_topic.is_empty() {
            self.by_topic.clear();
            self.epoch = now;
        }
        if let Some((t, v)) = self.by_topic.get(&hash) {
            if **t == *topic {
                return *v;
            }
        }
        let v = compute();
        if self.by_topic.len() >= self.max {
            self.by_topic.clear();
        }
        self.by_topic.insert(hash, (topic.into(), v));
        v
    }

    /// True while `epoch` has not moved since the last [`TopicCache::get`]: its answer still
    /// holds.
    pub fn is_current(&self, epoch: &AtomicU64) -> bool {
        epoch.load(Ordering::SeqCst) == self.epoch
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::blocks::ring::loom_tests::model;
    use loom::sync::{Arc, Condvar, Mutex};

    /// Two words of table: room for a torn copy.
    const OLD: &[u8] = b"old.topic.here";
    const NEW: &[u8] = b"new.topic.there";

    struct Bus {
        table: InterestTable<2>,
        epoch: AtomicU64,
        /// Set (under the lock) once the rewrite has returned.
        changed: Mutex<bool>,
        cond: Condvar,
    }

    /// What a publisher makes of a copy of the table: whether the consumer wants `NEW`'s topic
    /// (a copy that kept changing counts as wanting everything). A torn copy fails the model.
    fn wants_new(bus: &Bus) -> bool {
        let mut words = [0u64; 2];
        let Some(copy) = bus.table.read(&mut words) else {
            return true;
        };
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        let text = &bytes[..copy.len.min(16)];
        assert!(!copy.all);
        assert!(text == OLD || text == NEW, "a torn table: {text:?}");
        text == NEW
    }

    /// A consumer rewrites its interest (two words, from OLD to NEW) and bumps the epoch while
    /// a publisher, which cached its answer for the topic before, asks again; once the rewrite
    /// has returned, the publisher asks once more. No copy it uses is torn, and the answer after
    /// the rewrite wants the new topic: the cache never keeps an answer from before the change.
    #[test]
    fn loom_interest_change_reaches_a_caching_publisher() {
        model(|| {
            let bus = Arc::new(Bus {
                table: InterestTable {
                    version: AtomicU64::new(0),
                    all: AtomicU32::new(0),
                    len: AtomicU32::new(0),
                    data: [AtomicU64::new(0), AtomicU64::new(0)],
                },
                epoch: AtomicU64::new(0),
                changed: Mutex::new(false),
                cond: Condvar::new(),
            });
            // Set up before any thread runs, as a consumer's join does under the table lock.
            bus.table.write(Some(OLD), &bus.epoch);
            let b1 = bus.clone();
            let consumer = loom::thread::spawn(move || {
                b1.table.write(Some(NEW), &b1.epoch);
                *b1.changed.lock().unwrap() = true;
                b1.cond.notify_all();
            });
            let b2 = bus.clone();
            let publisher = loom::thread::spawn(move || {
                let mut cache = TopicCache::new(4);
                let before = cache.get(&b2.epoch, 1, "new.topic", || wants_new(&b2));
                let again = cache.get(&b2.epoch, 1, "new.topic", || wants_new(&b2));
                let mut changed = b2.changed.lock().unwrap();
                while !*changed {
                    changed = b2.cond.wait(changed).unwrap();
                }
                drop(changed);
                let after = cache.get(&b2.epoch, 1, "new.topic", || wants_new(&b2));
                (before, again, after)
            });
            consumer.join().unwrap();
            let (before, again, after) = publisher.join().unwrap();
            assert!(
                after,
                "a publish after the change missed it (before {before}, {again})"
            );
        });
    }
}
