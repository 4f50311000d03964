//! Receiving: fan-out subscribers walk the ring with their own cursor; group members share the
//! group's cursor and claim positions from it, so each message goes to exactly one member.
//!
//! A group cursor packs the next position with the row (+1) that claimed the previous one. A
//! member claiming position `p` first writes `p + 1` to its row's `in_flight` word (intent), then
//! CASes the cursor to `(p + 1, me)`, then marks its claim confirmed. Before anyone moves the
//! cursor past `(p + 1, r)`, it confirms `r`'s claim for it. A reaper therefore knows exactly which
//! position a dead member held: a confirmed claim, or an intent matching the cursor. Such a
//! message goes on the group's redelivery list, which members check before the cursor.
//!
//! Acknowledging clears the consumer's bit in the slot first and forgets the claim second, so a
//! member killed in between leaves a claim a reaper finds already released (and drops).

use crate::atomics::Ordering;
use crate::bus::Inner;
use crate::layout::{Consumer, INLINE_CAP, IN_FLIGHT_CONFIRMED, MAX_TOPIC_LEN};
use crate::recovery::{release_slot_quiet, saturating_dec, wake_publishers};
use crate::region::Region;
use crate::ring::Poll;
use crate::wait::{wait_for_hot, Side, HOT_WAIT};
use crate::BusError;
use std::sync::Arc;
use std::time::Duration;

/// Packs a cursor: position and the row (+1) that claimed the position before it (0: none).
pub(crate) fn pack_cursor(pos: u64, claimer: u32) -> u64 {
    pos << 16 | (claimer as u64 & 0xffff)
}

/// Unpacks a cursor into position and claimer.
pub(crate) fn unpack_cursor(v: u64) -> (u64, u32) {
    (v >> 16, (v & 0xffff) as u32)
}

/// Packs a redelivery entry: position and owner row (+1, 0 = waiting for a member).
pub(crate) fn pack_redeliver(pos: u64, owner: u32) -> u64 {
    pos.wrapping_add(1) << 16 | (owner as u64 & 0xffff)
}

/// Unpacks a redelivery entry.
pub(crate) fn unpack_redeliver(v: u64) -> (u64, u32) {
    ((v >> 16).wrapping_sub(1), (v & 0xffff) as u32)
}

/// A message on the bus: a borrowed view of a slot and its block, valid until the next receive
/// call on (or drop of) the subscriber that returned it.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    /// Ring position (sequence number) of the message.
    pub seq: u64,
    /// xxh3-64 hash of the topic.
    pub topic_hash: u64,
    /// The topic literal.
    pub topic: &'a str,
    /// Codec tag ([`crate::Codec`] as u8; other values may be used by other languages).
    pub codec: u8,
    /// The payload bytes.
    pub payload: &'a [u8],
    /// Process-table row of the publisher.
    pub publisher: u32,
    /// Pid of the publisher.
    pub publisher_pid: u32,
    /// When it was published, nanoseconds since the Unix epoch, read from the kernel's coarse
    /// clock (`CLOCK_REALTIME_COARSE`): good to a kernel tick (1 to 4 ms), not for latency
    /// measurements, which should carry their own timestamp in the payload.
    pub timestamp_ns: u64,
}

/// Reads position `pos` as a message, range-checking everything taken from the slot.
pub(crate) fn read_message(region: &Region, pos: u64) -> Result<Message<'_>, BusError> {
    let slot = region.ring().slot(pos);
    let meta = slot.meta.load(Ordering::Relaxed);
    let topic_len = (meta & 0xffff) as usize;
    let codec = (meta >> 16) as u8;
    let len = slot.payload_len.load(Ordering::Relaxed) as usize;
    let block = slot.block.load(Ordering::Relaxed);
    let bad =
        |what: String| BusError::corrupt(region.name(), format!("slot of position {pos}: {what}"));
    if topic_len > MAX_TOPIC_LEN {
        return Err(bad(format!("topic length {topic_len}")));
    }
    let total = topic_len + len;
    let bytes: &[u8] = if block == 0 {
        if total > INLINE_CAP {
            return Err(bad(format!("inline length {total}")));
        }
        // SAFETY: the slot is published and our pending bit keeps it from being reused; its
        // inline bytes are no longer written (see `Slot`'s Sync note).
        unsafe { std::slice::from_raw_parts(slot.inline.get().cast::<u8>(), total) }
    } else {
        let (_, ptr, size) = region
            .block(block - 1)
            .ok_or_else(|| bad(format!("block {}", block - 1)))?;
        if total > size {
            return Err(bad(format!("length {total} exceeds block size {size}")));
        }
        // SAFETY: block `block - 1` is in range (checked), `total <= size`, and the block belongs
        // to this published slot, which our pending bit keeps alive and unwritten.
        unsafe { std::slice::from_raw_parts(ptr, total) }
    };
    let topic =
        std::str::from_utf8(&bytes[..topic_len]).map_err(|_| bad("topic is not UTF-8".into()))?;
    Ok(Message {
        seq: pos,
        topic_hash: slot.topic_hash.load(Ordering::Relaxed),
        topic,
        codec,
        payload: &bytes[topic_len..],
        publisher: slot.publisher.load(Ordering::Relaxed),
        publisher_pid: slot.publisher_pid.load(Ordering::Relaxed),
        timestamp_ns: slot.timestamp_ns.load(Ordering::Relaxed),
    })
}

/// In [`Subscriber::recv_batch`], publishers waiting for space are woken after this many freed
/// slots even if the run goes on, so a slow handler never keeps them asleep for a whole batch.
const WAKE_EVERY: usize = 32;

/// The message a subscriber holds until its next receive call.
#[derive(Clone, Copy, Debug)]
enum Held {
    Nothing,
    Fanout(u64),
    Group(u64),
    Redelivery(usize, u64),
}

/// Receives messages from a bus: every message (fan-out) or a share of its group's.
///
/// ```
/// # struct Unlink(String);
/// # impl Drop for Unlink { fn drop(&mut self) { let _ = shm_ring::Bus::unlink(&self.0); } }
/// # let name = format!("doc-sub-{}", std::process::id());
/// # let _unlink = Unlink(name.clone());
/// use shm_ring::{Bus, BusConfig, Codec};
/// use std::time::Duration;
/// let cfg = BusConfig { ring_capacity: 64, max_message: 4096, slab_blocks: 16, ..BusConfig::default() };
/// let bus = Bus::create(&name, &cfg)?;
/// let mut sub = bus.subscribe()?;
/// let mut publisher = bus.publisher()?;
/// for i in 0..3u8 {
///     publisher.publish("jobs", Codec::Raw, &[i], None)?;
/// }
/// let mut got = Vec::new();
/// sub.recv_batch(10, Some(Duration::from_secs(1)), |m| got.push(m.payload[0]))?;
/// assert_eq!(got, [0, 1, 2]);
/// assert!(sub.recv(Some(Duration::ZERO))?.is_none());
/// # drop(sub); drop(publisher); drop(bus);
/// # Ok::<(), shm_ring::BusError>(())
/// ```
pub struct Subscriber {
    pub(crate) inner: Arc<Inner>,
    pub(crate) row: u32,
    consumer: u32,
    bit: u64,
    group: bool,
    /// Fan-out: the next position to look at (mirrored into the shared cursor for inspection).
    cursor: u64,
    held: Held,
    redelivered: u64,
    /// The last receive got a message: the next one polls for a while before it sleeps (see
    /// `wait.rs`), so a steady stream costs no futex calls. Cleared when a receive times out.
    hot: bool,
}

impl Subscriber {
    pub(crate) fn new(inner: Arc<Inner>, row: u32, consumer: u32, group: bool) -> Subscriber {
        let c = &inner.region.consumers()[consumer as usize];
        let cursor = unpack_cursor(c.cursor.load(Ordering::SeqCst)).0;
        Subscriber {
            inner,
            row,
            consumer,
            bit: 1 << consumer,
            group,
            cursor,
            held: Held::Nothing,
            redelivered: 0,
            hot: false,
        }
    }

    fn entry(&self) -> &Consumer {
        &self.inner.region.consumers()[self.consumer as usize]
    }

    /// Waits for the next message: `None` waits forever (spinning briefly, then sleeping on a
    /// futex in the shared mapping), `Some(ZERO)` does not wait. `Ok(None)` when the time ran out.
    pub fn recv(&mut self, timeout: Option<Duration>) -> Result<Option<Message<'_>>, BusError> {
        self.ack();
        let inner = self.inner.clone();
        let region = &inner.region;
        let row = region.row(self.row).expect("own row is in range");
        let hot = self.hot_wait();
        let Some(pos) = wait_for_hot(region, row, Side::Subscriber, timeout, hot, || {
            Ok(self.next())
        })?
        else {
            self.hot = false;
            return Ok(None);
        };
        self.hot = true;
        // On a corrupt slot the position stays held and is released by the next call.
        read_message(&self.inner.region, pos).map(Some)
    }

    /// Handles up to `max` ready messages with `f`, acknowledging each after `f` returns; waits
    /// like [`Subscriber::recv`] for the first. Returns how many were handled.
    ///
    /// Each slot is released as soon as `f` returns, but publishers blocked on a full ring are
    /// woken once per 32 freed slots and at the end of the run rather than after each message,
    /// which saves a fence per message.
    pub fn recv_batch(
        &mut self,
        max: usize,
        timeout: Option<Duration>,
        mut f: impl FnMut(&Message<'_>),
    ) -> Result<usize, BusError> {
        self.ack();
        if max == 0 {
            return Ok(0);
        }
        let inner = self.inner.clone();
        let region = &inner.region;
        let row = region.row(self.row).expect("own row is in range");
        let hot = self.hot_wait();
        let Some(mut pos) = wait_for_hot(region, row, Side::Subscriber, timeout, hot, || {
            Ok(self.next())
        })?
        else {
            self.hot = false;
            return Ok(0);
        };
        self.hot = true;
        let mut n = 0;
        let mut unwoken = 0usize;
        let result = loop {
            let msg = read_message(region, pos);
            match msg {
                Ok(m) => f(&m),
                Err(e) => break Err(e),
            }
            if self.ack_quiet() {
                unwoken += 1;
                if unwoken == WAKE_EVERY {
                    wake_publishers(region);
                    unwoken = 0;
                }
            }
            n += 1;
            if n == max {
                break Ok(n);
            }
            match self.next() {
                Some(p) => pos = p,
                None => break Ok(n),
            }
        };
        if result.is_err() && self.ack_quiet() {
            unwoken += 1;
        }
        if unwoken > 0 {
            wake_publishers(region);
        }
        result
    }

    /// How long the next wait polls before it may sleep.
    fn hot_wait(&self) -> Duration {
        if self.hot {
            HOT_WAIT
        } else {
            Duration::ZERO
        }
    }

    /// Messages published but not yet received by this subscriber (its group, for a member).
    pub fn pending(&self) -> u64 {
        let head = self.inner.region.header().head.load(Ordering::Relaxed);
        let cursor = if self.group {
            unpack_cursor(self.entry().cursor.load(Ordering::Relaxed)).0
        } else {
            self.cursor
        };
        head.saturating_sub(cursor)
    }

    /// Messages this subscriber received that a dead group member had in flight.
    pub fn redelivered(&self) -> u64 {
        self.redelivered
    }

    /// This subscriber's process-table row.
    pub fn row(&self) -> u32 {
        self.row
    }

    /// Finds the next message for us and holds it; `None` if nothing is ready.
    pub(crate) fn next(&mut self) -> Option<u64> {
        if self.group {
            self.next_group()
        } else {
            self.next_fanout()
        }
    }

    fn next_fanout(&mut self) -> Option<u64> {
        let ring = self.inner.region.ring();
        // A live consumer is never more than a ring behind; the bound only matters for a corrupt
        // region, where it keeps a call from walking forever.
        for _ in 0..=ring.capacity() {
            match ring.poll(self.cursor, self.bit) {
                Poll::Ready => {
                    self.held = Held::Fanout(self.cursor);
                    return Some(self.cursor);
                }
                Poll::Skip => {
                    self.cursor = self.cursor.wrapping_add(1);
                    self.entry()
                        .cursor
                        .store(pack_cursor(self.cursor, 0), Ordering::Relaxed);
                }
                Poll::Empty => return None,
            }
        }
        None
    }

    fn next_group(&mut self) -> Option<u64> {
        let region = &self.inner.region;
        let ring = region.ring();
        let c = &region.consumers()[self.consumer as usize];
        let me = self.row + 1;
        let row = region.row(self.row).expect("own row is in range");
        if c.redeliver_count.load(Ordering::Acquire) > 0 {
            for (k, e) in c.redeliver.iter().enumerate() {
                let v = e.load(Ordering::Acquire);
                let (pos, owner) = unpack_redeliver(v);
                if v == 0 || owner != 0 {
                    continue;
                }
                if e.compare_exchange(
                    v,
                    pack_redeliver(pos, me),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_err()
                {
                    continue;
                }
                if ring.poll(pos, self.bit) == Poll::Ready
                    && dist_ok(pos, ring.slot(pos).seq.load(Ordering::Acquire))
                {
                    self.held = Held::Redelivery(k, pos);
                    self.redelivered += 1;
                    row.redelivered.fetch_add(1, Ordering::Relaxed);
                    return Some(pos);
                }
                e.store(0, Ordering::Release);
                saturating_dec(&c.redeliver_count);
            }
        }
        // Bounded like `next_fanout`; other members' CASes make a few extra rounds possible, so
        // running out just means "try again later".
        for _ in 0..=2 * ring.capacity() {
            let cur = c.cursor.load(Ordering::SeqCst);
            let (pos, last) = unpack_cursor(cur);
            if last != 0 {
                // Confirm the previous claimer's claim before the cursor moves past it.
                if let Some(r) = region.row(last - 1) {
                    let _ = r.in_flight.compare_exchange(
                        pos,
                        pos | IN_FLIGHT_CONFIRMED,
                        Ordering::SeqCst,
                        Ordering::Relaxed,
                    );
                }
            }
            match ring.poll(pos, self.bit) {
                Poll::Empty => return None,
                Poll::Skip => {
                    let _ = c.cursor.compare_exchange(
                        cur,
                        pack_cursor(pos.wrapping_add(1), 0),
                        Ordering::SeqCst,
                        Ordering::Relaxed,
                    );
                }
                Poll::Ready => {
                    row.in_flight.store(pos.wrapping_add(1), Ordering::SeqCst);
                    if c.cursor
                        .compare_exchange(
                            cur,
                            pack_cursor(pos.wrapping_add(1), me),
                            Ordering::SeqCst,
                            Ordering::Relaxed,
                        )
                        .is_ok()
                    {
                        let _ = row.in_flight.compare_exchange(
                            pos.wrapping_add(1),
                            pos.wrapping_add(1) | IN_FLIGHT_CONFIRMED,
                            Ordering::SeqCst,
                            Ordering::Relaxed,
                        );
                        self.held = Held::Group(pos);
                        return Some(pos);
                    }
                    row.in_flight.store(0, Ordering::SeqCst);
                }
            }
            crate::atomics::spin_hint();
        }
        None
    }

    /// Acknowledges the held message: clears our bit (freeing the slot if we were last), then
    /// forgets the claim.
    pub(crate) fn ack(&mut self) {
        if self.ack_quiet() {
            wake_publishers(&self.inner.region);
        }
    }

    /// [`Subscriber::ack`] without waking publishers: true if a slot was freed, in which case
    /// the caller must call [`wake_publishers`].
    fn ack_quiet(&mut self) -> bool {
        let held = std::mem::replace(&mut self.held, Held::Nothing);
        let region = &self.inner.region;
        let row = region.row(self.row).expect("own row is in range");
        let c = &region.consumers()[self.consumer as usize];
        let freed = match held {
            Held::Nothing => return false,
            Held::Fanout(pos) => {
                let freed = release_slot_quiet(region, pos, self.bit).is_some();
                self.cursor = pos.wrapping_add(1);
                c.cursor
                    .store(pack_cursor(self.cursor, 0), Ordering::Relaxed);
                freed
            }
            Held::Group(pos) => {
                let freed = release_slot_quiet(region, pos, self.bit).is_some();
                row.in_flight.store(0, Ordering::Release);
                freed
            }
            Held::Redelivery(k, pos) => {
                let freed = release_slot_quiet(region, pos, self.bit).is_some();
                c.redeliver[k].store(0, Ordering::Release);
                saturating_dec(&c.redeliver_count);
                freed
            }
        };
        crate::publisher::bump_own(&row.delivered);
        freed
    }
}

fn dist_ok(pos: u64, seq: u64) -> bool {
    seq == pos.wrapping_add(1)
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.ack();
        self.inner.leave(self.row, Some(self.consumer));
    }
}
