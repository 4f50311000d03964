//! A lossy observer: reads messages while they sit in the ring, copying them out, without a
//! consumer bit, so it never holds publishers back. A message released by every consumer before
//! the observer got to it (or published while no consumer was attached) is counted as skipped.

use crate::atomics::Ordering;
use crate::bus::Inner;
use crate::ring::dist;
use crate::subscriber::Message;
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
    topic: String,
    payload: Vec<u8>,
}

/// Copies `len` bytes from shared memory another process may be rewriting.
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

impl Observer {
    pub(crate) fn new(inner: Arc<Inner>) -> Observer {
        let cursor = inner.region.header().head.load(Ordering::SeqCst);
        Observer {
            inner,
            cursor,
            skipped: 0,
            topic: String::new(),
            payload: Vec::new(),
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
            if let Some(m) = self.try_copy()? {
                let (seq, topic_hash, codec, publisher, publisher_pid, timestamp_ns) = m;
                return Ok(Some(Message {
                    seq,
                    topic_hash,
                    topic: &self.topic,
                    codec,
                    payload: &self.payload,
                    publisher,
                    publisher_pid,
                    timestamp_ns,
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

    #[allow(clippy::type_complexity)]
    fn try_copy(&mut self) -> Result<Option<(u64, u64, u8, u32, u32, u64)>, BusError> {
        let region = &self.inner.region;
        let ring = region.ring();
        let cap = ring.capacity();
        for _ in 0..=cap {
            let head = region.header().head.load(Ordering::Acquire);
            if dist(head, self.cursor) > cap as i64 {
                self.skipped += head.wrapping_sub(cap).wrapping_sub(self.cursor);
                self.cursor = head.wrapping_sub(cap);
            }
            if dist(head, self.cursor) <= 0 {
                return Ok(None);
            }
            let pos = self.cursor;
            let slot = ring.slot(pos);
            let seq = slot.seq.load(Ordering::Acquire);
            match dist(seq, pos.wrapping_add(1)) {
                d if d < 0 => return Ok(None),
                d if d > 0 => {
                    self.skipped += 1;
                    self.cursor = self.cursor.wrapping_add(1);
                    continue;
                }
                _ => {}
            }
            let out = match crate::subscriber::read_message(region, pos) {
                Ok(m) => {
                    // SAFETY: both ranges were range-checked by `read_message`.
                    unsafe {
                        let mut topic = std::mem::take(&mut self.topic).into_bytes();
                        copy_volatile(m.topic.as_ptr(), m.topic.len(), &mut topic);
                        copy_volatile(m.payload.as_ptr(), m.payload.len(), &mut self.payload);
                        self.topic = String::from_utf8(topic).unwrap_or_default();
                    }
                    Some((
                        m.seq,
                        m.topic_hash,
                        m.codec,
                        m.publisher,
                        m.publisher_pid,
                        m.timestamp_ns,
                    ))
                }
                Err(_) => None,
            };
            self.cursor = self.cursor.wrapping_add(1);
            // The slot may have been released and reused while we copied: then the copy is torn.
            if slot.seq.load(Ordering::Acquire) != seq || out.is_none() {
                self.skipped += 1;
                continue;
            }
            return Ok(out);
        }
        Ok(None)
    }
}
