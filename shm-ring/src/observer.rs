//! A lossy observer: reads messages while they sit in the ring, copying them out, without a
//! consumer bit, so it never holds publishers back. A message released by every consumer before
//! the observer got to it (or published while no consumer was attached) is counted as skipped.

use crate::blocks::atomics::{fence, Ordering};
use crate::blocks::ring::{dist, INLINE_CAP};
use crate::handle::Inner;
use crate::region::layout::MAX_TOPIC_LEN;
use crate::region::message::Message;
use crate::region::words::SlotMeta;
use crate::BusError;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A lossy, read-only reader of a bus: it copies messages out of the ring while some consumer
/// still holds them, and never makes a publisher wait or pay for a wake-up.
///
/// Made by [`crate::observe`] (no process-table row; the usual choice for tools) or
/// [`crate::Bus::observe`]. What it sees and what it misses:
///
/// * **Only messages some subscriber holds.** A message lives in the ring only until every
///   attached subscriber (fan-out or group) has acknowledged it. **On a bus with no subscriber
///   attached, a publisher drops each message at once and an observer sees nothing**: every such
///   message is counted in [`Observer::skipped`]. Attach a subscriber (e.g. `event-engine tail`
///   on a bus that has one) to watch traffic.
/// * Messages acknowledged by every subscriber before the observer reached them are skipped
///   (counted), as are messages whose slot was reused while being copied (the copy is dropped,
///   never returned torn).
/// * It starts at the ring's head when made: earlier messages are not shown.
/// * It polls (about every millisecond while idle) rather than sleeping on the bus's futex.
pub struct Observer {
    inner: Arc<Inner>,
    cursor: u64,
    skipped: u64,
    /// The last message copied: topic bytes, then payload bytes.
    bytes: Vec<u8>,
}

/// Copies `len` bytes from shared memory another process may be rewriting, with volatile reads
/// through a raw pointer: no reference to those bytes is ever made, so a concurrent writer makes
/// the copy stale (which the caller detects with the slot's sequence word, as in a seqlock), never
/// undefined behaviour in this process.
///
/// # Safety
/// `src..src + len` must lie inside the mapping.
unsafe fn copy_volatile(src: *const u8, len: usize, out: &mut Vec<u8>) {
    out.clear();
    out.reserve(len);
    for i in 0..len {
        // SAFETY: in range per the caller; volatile because a concurrent writer may change it.
        out.push(unsafe { std::ptr::read_volatile(src.add(i)) });
    }
}

/// What [`Observer::copy_slot`] took from a slot besides the bytes.
struct Copied {
    /// The message's ring position.
    seq: u64,
    topic_hash: u64,
    topic_len: usize,
    codec: u8,
    publisher: u32,
    publisher_pid: u32,
    timestamp_ns: u64,
}

impl Observer {
    pub(crate) fn new(inner: Arc<Inner>) -> Observer {
        let cursor = inner.region.header().head.load(Ordering::SeqCst);
        Observer {
            inner,
            cursor,
            skipped: 0,
            bytes: Vec::new(),
        }
    }

    /// Messages missed because they left the ring before this observer read them.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// The next message, copied; `Ok(None)` when `timeout` runs out (`Some(ZERO)`: do not wait).
    pub fn recv(&mut self, timeout: Option<Duration>) -> Result<Option<Message<'_>>, BusError> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            if let Some(c) = self.next_copy() {
                let (topic, payload) = self.bytes.split_at(c.topic_len);
                return Ok(Some(Message {
                    seq: c.seq,
                    topic_hash: c.topic_hash,
                    // Checked by `next_copy`.
                    topic: std::str::from_utf8(topic).unwrap_or_default(),
                    codec: c.codec,
                    payload,
                    publisher: c.publisher,
                    publisher_pid: c.publisher_pid,
                    timestamp_ns: c.timestamp_ns,
                }));
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
            // Observers poll rather than sleep on the data futex: they must not make publishers
            // pay for wake-ups on their behalf.
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Copies the next readable message into `self.bytes`; skips (and counts) what left the ring,
    /// was torn while being copied, or is not a well-formed message.
    fn next_copy(&mut self) -> Option<Copied> {
        let inner = self.inner.clone();
        let region = &inner.region;
        let ring = region.ring();
        let cap = ring.capacity();
        for _ in 0..=cap {
            let head = region.header().head.load(Ordering::Acquire);
            if dist(head, self.cursor) > cap as i64 {
                self.skipped += head.wrapping_sub(cap).wrapping_sub(self.cursor);
                self.cursor = head.wrapping_sub(cap);
            }
            if dist(head, self.cursor) <= 0 {
                return None;
            }
            let pos = self.cursor;
            let slot = ring.slot(pos);
            let seq = slot.seq.load(Ordering::Acquire);
            match dist(seq, pos.wrapping_add(1)) {
                d if d < 0 => return None,
                d if d > 0 => {
                    self.skipped += 1;
                    self.cursor = self.cursor.wrapping_add(1);
                    continue;
                }
                _ => {}
            }
            self.cursor = self.cursor.wrapping_add(1);
            let copied = self.copy_slot(pos);
            // The slot may have been released and reused while we copied (a seqlock read): the
            // copy is then torn and dropped. The fence orders the copy before the re-check.
            fence(Ordering::Acquire);
            let torn = slot.seq.load(Ordering::Relaxed) != seq;
            match copied {
                Some(c) if !torn && std::str::from_utf8(&self.bytes[..c.topic_len]).is_ok() => {
                    return Some(c)
                }
                _ => self.skipped += 1,
            }
        }
        None
    }

    /// Copies slot `pos` and its topic and payload bytes into
    /// `self.bytes`, checking every length and index against the layout before reading through
    /// it. The result may be torn: the caller re-checks the sequence word before using it.
    fn copy_slot(&mut self, pos: u64) -> Option<Copied> {
        let region = &self.inner.region;
        let slot = region.ring().slot(pos);
        let SlotMeta { topic_len, codec } = SlotMeta::from(slot.meta.load(Ordering::Relaxed));
        let topic_len = topic_len as usize;
        let len = slot.payload_len.load(Ordering::Relaxed) as usize;
        let block = slot.block.load(Ordering::Relaxed);
        if topic_len > MAX_TOPIC_LEN {
            return None;
        }
        let total = topic_len.checked_add(len)?;
        let src: *const u8 = if block == 0 {
            if total > INLINE_CAP {
                return None;
            }
            slot.inline.get().cast::<u8>()
        } else {
            let (_, ptr, size) = region.block(block - 1)?;
            if total > size {
                return None;
            }
            ptr
        };
        // SAFETY: `src..src + total` lies inside the slot's inline bytes or inside block
        // `block - 1`, both within the mapping (checked just above against the layout).
        unsafe { copy_volatile(src, total, &mut self.bytes) };
        Some(Copied {
            seq: pos,
            topic_hash: slot.topic_hash.load(Ordering::Relaxed),
            topic_len,
            codec,
            publisher: slot.publisher.load(Ordering::Relaxed),
            publisher_pid: slot.publisher_pid.load(Ordering::Relaxed),
            timestamp_ns: slot.timestamp_ns.load(Ordering::Relaxed),
        })
    }
}
