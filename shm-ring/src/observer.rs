//! A lossy observer: reads messages while they sit in the ring, copying them out, without a
//! consumer bit, so it never holds publishers back. A message released by every consumer before
//! the observer got to it (or published while no consumer was attached) is counted as skipped.

use crate::blocks::atomics::{fence, Ordering};
use crate::blocks::ring::dist;
use crate::handle::Inner;
use crate::region::message::{copy_message, Copied, Message};
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
                return Ok(Some(c.message(&self.bytes)));
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
            let copied = copy_message(region, pos, &mut self.bytes);
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
}
