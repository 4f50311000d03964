//! Publishing: copy topic and payload into a slab block (or inline into the slot), claim a ring
//! position, fill the slot, publish it, and wake sleeping subscribers if there are any.
//!
//! The block is taken before the ring position is claimed, so a publisher never holds a claimed
//! slot (which every consumer behind it must wait for) while it waits for slab space.

use crate::addressing::Addressing;
use crate::blocks::atomics::{AtomicU64, Ordering};
use crate::blocks::ring::RingView;
use crate::handle::Inner;
use crate::region::layout::Row;
use crate::region::layout::{INLINE_CAP, MAX_TOPIC_LEN};
use crate::region::liveness::coarse_now_ns;
use crate::region::liveness::now_ns;
use crate::region::table::{add_own, bump_own};
use crate::region::words::SlotMeta;
use crate::region::Region;
use crate::wait::{wait_for, Side};
use crate::wire::pickle::{encode_call, PyValue};
use crate::wire::topic_hash;
use crate::{BusError, Codec};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Claimed positions `next..end` of a run not yet published; dropping it gives them back
/// unpublished (consumers skip them) and clears the publisher's intent.
struct ClaimedRun<'a, 'r> {
    ring: &'a crate::blocks::ring::RingView<'r>,
    next: u64,
    end: u64,
    intent: &'a AtomicU64,
    addressed: &'a AtomicU64,
}

impl Drop for ClaimedRun<'_, '_> {
    fn drop(&mut self) {
        self.ring.discard(
            self.next,
            self.end.wrapping_sub(self.next),
            self.intent,
            self.addressed,
        );
    }
}

/// Publishes messages on a bus. One publisher's messages reach every subscriber in publish order.
///
/// ```
/// # struct Unlink(String);
/// # impl Drop for Unlink { fn drop(&mut self) { let _ = event_engine_shm::Bus::unlink(&self.0); } }
/// # let name = format!("doc-pub-{}", std::process::id());
/// # let _unlink = Unlink(name.clone());
/// use event_engine_shm::{Bus, BusConfig, Codec};
/// use std::time::Duration;
/// let cfg = BusConfig { ring_capacity: 64, max_message: 4096, slab_blocks: 16, ..BusConfig::default() };
/// let bus = Bus::create(&name, &cfg)?;
/// let mut sub = bus.subscribe()?;
/// let mut publisher = bus.publisher()?;
/// publisher.publish("ticks.AAPL", Codec::Raw, b"123.5", Some(Duration::from_secs(1)))?;
/// let msg = sub.recv(Some(Duration::from_secs(1)))?.expect("a message");
/// assert_eq!((msg.topic, msg.payload), ("ticks.AAPL", &b"123.5"[..]));
/// # drop(msg); drop(sub); drop(publisher); drop(bus);
/// # Ok::<(), event_engine_shm::BusError>(())
/// ```
pub struct Publisher {
    inner: Arc<Inner>,
    row: u32,
    /// This process's pid, read once (getpid is a system call on every use).
    pid: u32,
    /// Who wants which topic, cached per topic.
    addressing: Addressing,
    /// Consumers (a mask of consumer bits) this publisher never waits for.
    never_wait_for: u64,
    /// `liveness::fork_generation()` when it took its row: another value means this process is
    /// a child made by `fork` since, and the row is its parent's (see `own_row`).
    forks: u64,
    /// A run's inline messages, built before their positions are claimed (`publish_run`).
    built: Vec<u8>,
}

/// Inline messages a run builds before it claims their positions: at most this many positions
/// are claimed by one CAS of the head.
const BUILD_AHEAD: usize = 64;

impl Publisher {
    pub(crate) fn new(inner: Arc<Inner>, row: u32) -> Publisher {
        Publisher {
            inner,
            row,
            pid: std::process::id(),
            addressing: Addressing::default(),
            never_wait_for: 0,
            forks: crate::region::liveness::fork_generation(),
            built: Vec::new(),
        }
    }

    /// A publisher a child made by `fork` inherited is its parent's (its row and the row's
    /// lock): before the child's first publish it moves to a row of the child's own, on a new
    /// attachment, so that what the child claims, holds and waits for is charged to the child
    /// and reaped at its death, and nothing of the parent's is used or released. One load when
    /// nothing forked.
    fn own_row(&mut self) -> Result<(), BusError> {
        let forks = crate::region::liveness::fork_generation();
        if forks == self.forks {
            return Ok(());
        }
        let (inner, row) = self
            .inner
            .attach_in_child(crate::region::table::Role::Publisher)?;
        self.inner = inner;
        self.row = row;
        self.pid = std::process::id();
        self.addressing = Addressing::default();
        self.forks = forks;
        Ok(())
    }

    /// From now on, a publish that would have to wait for one of `consumers` (a mask of
    /// consumer bits, see [`crate::Subscriber::consumer_mask`]; 0: none) fails at once with
    /// [`BusError::WouldWaitFor`] instead. A thread that publishes from inside its own
    /// subscriber's receive loop sets its subscriber here: that subscriber cannot release
    /// anything while the thread waits, so the wait would never end. It still waits for other
    /// consumers.
    ///
    /// For the ring this is exact: a full ring waits for the consumers holding the slot the
    /// message needs (`waiting_for`). A full slab class cannot tell which block frees first, so
    /// it refuses as soon as any message one of `consumers` has not released holds a block.
    pub fn set_never_wait_for(&mut self, consumers: u64) {
        self.never_wait_for = consumers;
    }

    /// Publishes `payload` on `topic` (a literal) with the codec tag to every consumer that wants
    /// the topic. Blocks while the ring or the slab class is full: `None` waits forever,
    /// `Some(ZERO)` fails at once with [`BusError::Full`], `Some(t)` fails with
    /// [`BusError::Timeout`] after `t`. Returns the message's ring position (its sequence
    /// number), or `None` when no consumer wants the topic: then it takes no ring position,
    /// never waits, and is counted as unrouted.
    pub fn publish(
        &mut self,
        topic: &str,
        codec: Codec,
        payload: &[u8],
        timeout: Option<Duration>,
    ) -> Result<Option<u64>, BusError> {
        self.publish_with(topic, codec, payload.len(), timeout, |buf| {
            buf.copy_from_slice(payload)
        })
    }

    /// [`Publisher::publish`] without waiting.
    pub fn try_publish(
        &mut self,
        topic: &str,
        codec: Codec,
        payload: &[u8],
    ) -> Result<Option<u64>, BusError> {
        self.publish(topic, codec, payload, Some(Duration::ZERO))
    }

    /// Publishes a pickle of `(args, kwargs)`, so a Python handler receives ordinary arguments.
    pub fn publish_pickled(
        &mut self,
        topic: &str,
        args: &[PyValue],
        kwargs: &[(&str, PyValue)],
        timeout: Option<Duration>,
    ) -> Result<Option<u64>, BusError> {
        let body = encode_call(args, kwargs);
        self.publish(topic, Codec::Pickle, &body, timeout)
    }

    /// [`Publisher::publish`] on a parsed topic (exact, as published topics are): its cached
    /// hash spares hashing the literal again.
    pub fn publish_topic(
        &mut self,
        topic: &engine_core::Topic,
        codec: Codec,
        payload: &[u8],
        timeout: Option<Duration>,
    ) -> Result<Option<u64>, BusError> {
        let (literal, hash) = (topic.literal(), topic.hash_value());
        self.publish_hashed(literal, hash, codec, payload.len(), timeout, |buf| {
            buf.copy_from_slice(payload)
        })
    }

    /// Builds the payload in place: `fill` gets exactly `len` bytes inside the slab block (or the
    /// slot), so publishing needs no heap allocation.
    pub fn publish_with(
        &mut self,
        topic: &str,
        codec: Codec,
        len: usize,
        timeout: Option<Duration>,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<Option<u64>, BusError> {
        self.publish_hashed(topic, topic_hash(topic), codec, len, timeout, fill)
    }

    /// [`Publisher::publish_with`] with `hash` = `topic_hash(topic)`.
    fn publish_hashed(
        &mut self,
        topic: &str,
        hash: u64,
        codec: Codec,
        len: usize,
        timeout: Option<Duration>,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<Option<u64>, BusError> {
        debug_assert_eq!(hash, topic_hash(topic));
        self.own_row()?;
        let region = &self.inner.region;
        let max = region.layout().max_message as usize;
        if len > max {
            return Err(BusError::PayloadTooLarge { size: len, max });
        }
        if topic.len() > MAX_TOPIC_LEN {
            return Err(BusError::TopicTooLong {
                size: topic.len(),
                max: MAX_TOPIC_LEN,
            });
        }
        let row = region.row(self.row).expect("own row is in range");
        let (wanting, entry) = self.addressing.wanting(region, self.row, topic, hash);
        let tally = region
            .row_stats(self.row)
            .expect("own row is in range")
            .entry(entry);
        if wanting & ring_active(region) == 0 {
            add_own(&row.unrouted, 1);
            bump_own(&tally.unrouted);
            return Ok(None);
        }
        // Only a put that may wait reads the clock.
        let start = timeout.filter(|t| !t.is_zero()).map(|_| Instant::now());
        let out_of_time = || {
            if timeout == Some(Duration::ZERO) {
                BusError::Full
            } else {
                BusError::Timeout
            }
        };
        let total = topic.len() + len;
        let mut inline = [0u8; INLINE_CAP];
        // Block field: index + 1, or 0 when topic and payload travel inline.
        let block = if total <= INLINE_CAP {
            inline[..topic.len()].copy_from_slice(topic.as_bytes());
            fill(&mut inline[topic.len()..total]);
            0
        } else {
            let never = self.never_wait_for;
            let take = || match self.alloc(total)? {
                // Lossy consumers never hold blocks a publisher needs.
                None if region.take_from_lossy(true) => self.alloc(total),
                None if never != 0 => {
                    let holders = block_holders(region) & never;
                    if holders != 0 {
                        return Err(BusError::WouldWaitFor { consumers: holders });
                    }
                    Ok(None)
                }
                got => Ok(got),
            };
            let idx = match wait_for(region, row, Side::Publisher, timeout, take)? {
                Some(idx) => idx,
                None => return Err(out_of_time()),
            };
            // From here until its slot is committed, a reaper can give it back if we die.
            row.held_block.store(idx + 1, Ordering::Release);
            let (_, ptr, size) = region.block(idx).expect("allocated block is in range");
            debug_assert!(total <= size);
            // SAFETY: `ptr..ptr + size` is block `idx` inside the mapping, which we popped from its
            // free list and so own exclusively until it is published.
            let bytes = unsafe { std::slice::from_raw_parts_mut(ptr, total) };
            bytes[..topic.len()].copy_from_slice(topic.as_bytes());
            fill(&mut bytes[topic.len()..]);
            idx + 1
        };
        let ring = region.ring();
        let remaining = timeout.map(|t| match start {
            Some(s) => t.saturating_sub(s.elapsed()),
            None => t,
        });
        let mut waiting = Waiting::new(region, row);
        let never = self.never_wait_for;
        let claimed = wait_for(region, row, Side::Publisher, remaining, || {
            let mut r = ring.claim(&row.publishing).ok();
            if r.is_none() && region.take_from_lossy(false) {
                r = ring.claim(&row.publishing).ok();
            }
            if r.is_none() {
                check_head(region, &ring)?;
                let holders = waiting.blocked() & never;
                if holders != 0 {
                    return Err(BusError::WouldWaitFor { consumers: holders });
                }
            }
            Ok(r)
        });
        drop(waiting);
        let pos = match claimed {
            Ok(Some(pos)) => pos,
            Ok(None) | Err(_) => {
                give_back(region, row, block);
                region.wake_publishers();
                return Err(claimed.err().unwrap_or_else(out_of_time));
            }
        };
        crate::testing::pause_point(crate::testing::Point::Claimed);
        // Addressed from the interest now, after the claim (and any wait for it).
        let addressing = &mut self.addressing;
        let consumers = ring.address(
            pos,
            || addressing.wanting_now(region, self.row, topic, hash, wanting),
            &row.addressed,
        );
        if consumers == 0 {
            // The consumers that wanted it left meanwhile: nothing to deliver, nothing to keep.
            // The block first: with the intent cleared, a reaper would free a held block too.
            give_back(region, row, block);
            ring.discard(pos, 1, &row.publishing, &row.addressed);
            region.wake_publishers();
            region.wake_consumers(0);
            add_own(&row.unrouted, 1);
            bump_own(&tally.unrouted);
            return Ok(None);
        }
        crate::testing::pause_point(crate::testing::Point::Addressed);
        let slot = ring.slot(pos);
        slot.topic_hash.store(hash, Ordering::Relaxed);
        slot.timestamp_ns.store(coarse_now_ns(), Ordering::Relaxed);
        slot.publisher.store(self.row, Ordering::Relaxed);
        slot.publisher_pid.store(self.pid, Ordering::Relaxed);
        slot.block.store(block, Ordering::Relaxed);
        slot.payload_len.store(len as u32, Ordering::Relaxed);
        let meta = SlotMeta {
            topic_len: topic.len() as u16,
            codec: codec as u8,
        };
        slot.meta.store(meta.value(), Ordering::Relaxed);
        if block == 0 {
            // SAFETY: we claimed `pos`, so no one else writes this slot and no consumer reads it
            // until `commit` publishes it with a Release store.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    inline.as_ptr(),
                    slot.inline.get().cast::<u8>(),
                    total,
                )
            };
        }
        let committed = ring.commit_one(pos, consumers);
        if committed && block != 0 {
            // The slot holds the block now; before the intent goes (see `Row::held_block`).
            row.held_block.store(0, Ordering::Release);
        }
        ring.finish(&row.publishing, &row.addressed);
        if !committed {
            // A survivor took this process for dead and tombstoned the position meanwhile: the
            // message is not published, and the block is ours unless that survivor took it.
            give_back(region, row, block);
            region.wake_publishers();
            return Err(BusError::ClaimLost { pos });
        }
        bump_own(&row.published);
        bump_own(&tally.messages);
        add_own(&tally.bytes, len as u64);
        region.wake_consumers(consumers);
        Ok(Some(pos))
    }

    /// Publishes `count` messages of `len` bytes each on `topic`, message `i` built by
    /// `fill(i, buf)`. Messages that fit inline are built up to 64 ahead, before their positions
    /// are claimed (so `fill` never runs while this publisher holds a claimed position), and
    /// claimed a run at a time (one CAS on the ring head for as many consecutive free slots as
    /// there are, one wake-up check per run) instead of one claim and one wake-up check per
    /// message; larger ones are built in their slab block and published one by one as by
    /// [`Publisher::publish_with`]. Order is kept. If `fill` panics, nothing built since the
    /// last claim is published.
    ///
    /// Waits like [`Publisher::publish`]. Returns how many were published: `count`, or fewer if
    /// the time ran out part way (then the rest were not published); `Err(Full)` /
    /// `Err(Timeout)` only when none could be.
    ///
    /// ```
    /// # struct Unlink(String);
    /// # impl Drop for Unlink { fn drop(&mut self) { let _ = event_engine_shm::Bus::unlink(&self.0); } }
    /// # let name = format!("doc-many-{}", std::process::id());
    /// # let _unlink = Unlink(name.clone());
    /// use event_engine_shm::{Bus, BusConfig, Codec};
    /// use std::time::Duration;
    /// let cfg = BusConfig { ring_capacity: 64, max_message: 4096, slab_blocks: 16, ..BusConfig::default() };
    /// let bus = Bus::create(&name, &cfg)?;
    /// let mut sub = bus.subscribe()?;
    /// let mut publisher = bus.publisher()?;
    /// let sent = publisher.publish_many("ticks", Codec::Raw, 8, 10, None, |i, buf| {
    ///     buf.copy_from_slice(&(i as u64).to_le_bytes())
    /// })?;
    /// assert_eq!(sent, 10);
    /// let mut got = Vec::new();
    /// sub.recv_batch(64, Some(Duration::from_secs(1)), |m| got.push(m.payload[0]))?;
    /// assert_eq!(got, (0..10).collect::<Vec<u8>>());
    /// # drop(sub); drop(publisher); drop(bus);
    /// # Ok::<(), event_engine_shm::BusError>(())
    /// ```
    pub fn publish_many(
        &mut self,
        topic: &str,
        codec: Codec,
        len: usize,
        count: usize,
        timeout: Option<Duration>,
        fill: impl FnMut(usize, &mut [u8]),
    ) -> Result<usize, BusError> {
        self.publish_run(topic, codec, count, |_| len, timeout, fill)
    }

    /// Publishes each of `payloads` on `topic`, in order, batching ring claims and wake-up checks
    /// like [`Publisher::publish_many`] (same waiting and return value).
    pub fn publish_batch(
        &mut self,
        topic: &str,
        codec: Codec,
        payloads: &[&[u8]],
        timeout: Option<Duration>,
    ) -> Result<usize, BusError> {
        self.publish_run(
            topic,
            codec,
            payloads.len(),
            |i| payloads[i].len(),
            timeout,
            |i, buf| buf.copy_from_slice(payloads[i]),
        )
    }

    fn publish_run(
        &mut self,
        topic: &str,
        codec: Codec,
        count: usize,
        len_of: impl Fn(usize) -> usize,
        timeout: Option<Duration>,
        fill: impl FnMut(usize, &mut [u8]),
    ) -> Result<usize, BusError> {
        let mut built = std::mem::take(&mut self.built);
        let r = self.publish_run_with(topic, codec, count, len_of, timeout, fill, &mut built);
        self.built = built;
        r
    }

    /// [`Publisher::publish_run`], building inline messages ahead into `built`.
    #[allow(clippy::too_many_arguments)]
    fn publish_run_with(
        &mut self,
        topic: &str,
        codec: Codec,
        count: usize,
        len_of: impl Fn(usize) -> usize,
        timeout: Option<Duration>,
        mut fill: impl FnMut(usize, &mut [u8]),
        built: &mut Vec<u8>,
    ) -> Result<usize, BusError> {
        self.own_row()?;
        let inner = self.inner.clone();
        let region = &inner.region;
        let max = region.layout().max_message as usize;
        if topic.len() > MAX_TOPIC_LEN {
            return Err(BusError::TopicTooLong {
                size: topic.len(),
                max: MAX_TOPIC_LEN,
            });
        }
        // Refuse the whole batch up front rather than publish part of it.
        if let Some(size) = (0..count).map(&len_of).find(|&l| l > max) {
            return Err(BusError::PayloadTooLarge { size, max });
        }
        let row = region.row(self.row).expect("own row is in range");
        let ring = region.ring();
        let start = Instant::now();
        let remaining = || timeout.map(|t| t.saturating_sub(start.elapsed()));
        let fits = |i: usize| topic.len() + len_of(i) <= INLINE_CAP;
        let hash = topic_hash(topic);
        let (wanting, entry) = self.addressing.wanting(region, self.row, topic, hash);
        let tally = region
            .row_stats(self.row)
            .expect("own row is in range")
            .entry(entry);
        if wanting & ring_active(region) == 0 {
            add_own(&row.unrouted, count as u64);
            add_own(&tally.unrouted, count as u64);
            return Ok(count);
        }
        let meta = SlotMeta {
            topic_len: topic.len() as u16,
            codec: codec as u8,
        }
        .value();
        // Messages `built_from..built_to` are built (topic then payload) in `built`, message `i`
        // at `(i - built_from) * INLINE_CAP`: `fill` runs before their positions are claimed,
        // so a slow or panicking `fill` never holds a claimed position.
        let (mut built_from, mut built_to) = (0usize, 0usize);
        let mut done = 0;
        while done < count {
            let partial = |e: BusError, done: usize| match e {
                BusError::Full | BusError::Timeout | BusError::WouldWaitFor { .. } if done > 0 => {
                    Ok(done)
                }
                e => Err(e),
            };
            if !fits(done) {
                let i = done;
                match self.publish_with(topic, codec, len_of(i), remaining(), |b| fill(i, b)) {
                    Ok(_) => done += 1,
                    Err(e) => return partial(e, done),
                }
                continue;
            }
            if done >= built_to {
                built_from = done;
                built_to = done
                    + (done..count)
                        .take_while(|&i| fits(i))
                        .take(BUILD_AHEAD)
                        .count();
                built.resize((built_to - built_from) * INLINE_CAP, 0);
                for i in built_from..built_to {
                    let bytes =
                        &mut built[(i - built_from) * INLINE_CAP..][..topic.len() + len_of(i)];
                    bytes[..topic.len()].copy_from_slice(topic.as_bytes());
                    fill(i, &mut bytes[topic.len()..]);
                }
            }
            let want = (built_to - done) as u64;
            let mut waiting = Waiting::new(region, row);
            let never = self.never_wait_for;
            let claimed = wait_for(region, row, Side::Publisher, remaining(), || {
                let mut r = ring.claim_many(want, &row.publishing).ok();
                if r.is_none() && region.take_from_lossy(false) {
                    r = ring.claim_many(want, &row.publishing).ok();
                }
                if r.is_none() {
                    check_head(region, &ring)?;
                    let holders = waiting.blocked() & never;
                    if holders != 0 {
                        return Err(BusError::WouldWaitFor { consumers: holders });
                    }
                }
                Ok(r)
            });
            drop(waiting);
            let (pos, n) = match claimed {
                Ok(Some(run)) => run,
                Ok(None) if timeout == Some(Duration::ZERO) => {
                    return partial(BusError::Full, done)
                }
                Ok(None) => return partial(BusError::Timeout, done),
                Err(e) => return partial(e, done),
            };
            crate::testing::pause_point(crate::testing::Point::Claimed);
            // One decision serves the whole run, taken now, after the claim: a joiner's start is
            // a head value, and head went from `pos` to `pos + n` in one step, so no start falls
            // inside the run.
            let addressing = &mut self.addressing;
            let consumers = ring.address(
                pos,
                || addressing.wanting_now(region, self.row, topic, hash, wanting),
                &row.addressed,
            );
            if consumers == 0 {
                ring.discard(pos, n, &row.publishing, &row.addressed);
                region.wake_publishers();
                region.wake_consumers(0);
                add_own(&row.unrouted, n);
                add_own(&tally.unrouted, n);
                done += n as usize;
                continue;
            }
            crate::testing::pause_point(crate::testing::Point::Addressed);
            let now = coarse_now_ns();
            let mut run_bytes = 0u64;
            // Gives the unpublished rest of the run back if a commit finds the claim lost.
            let mut run = ClaimedRun {
                ring: &ring,
                next: pos,
                end: pos.wrapping_add(n),
                intent: &row.publishing,
                addressed: &row.addressed,
            };
            for j in 0..n {
                let i = done + j as usize;
                let len = len_of(i);
                let total = topic.len() + len;
                let slot = ring.slot(pos.wrapping_add(j));
                // SAFETY: we claimed this position, so no one else writes the slot and no
                // consumer reads it until `commit_one` publishes it with a Release store;
                // `total <= INLINE_CAP` was checked by `fits`, and message `i` is built
                // (`built_from <= i < built_to`).
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        built[(i - built_from) * INLINE_CAP..].as_ptr(),
                        slot.inline.get().cast::<u8>(),
                        total,
                    )
                };
                run_bytes += len as u64;
                slot.topic_hash.store(hash, Ordering::Relaxed);
                slot.timestamp_ns.store(now, Ordering::Relaxed);
                slot.publisher.store(self.row, Ordering::Relaxed);
                slot.publisher_pid.store(self.pid, Ordering::Relaxed);
                slot.block.store(0, Ordering::Relaxed);
                slot.payload_len.store(len as u32, Ordering::Relaxed);
                slot.meta.store(meta, Ordering::Relaxed);
                if !ring.commit_one(pos.wrapping_add(j), consumers) {
                    // Taken for dead (see `publish_with`): the rest of the run goes back.
                    drop(run);
                    region.wake_consumers(consumers);
                    add_own(&row.published, j);
                    add_own(&tally.messages, j);
                    // `run_bytes` already counts message `j`, which was not published.
                    add_own(&tally.bytes, run_bytes - len as u64);
                    return partial(BusError::ClaimLost { pos: pos + j }, done + j as usize);
                }
                run.next = pos.wrapping_add(j + 1);
            }
            drop(run);
            region.wake_consumers(consumers);
            add_own(&tally.bytes, run_bytes);
            add_own(&row.published, n);
            add_own(&tally.messages, n);
            done += n as usize;
        }
        Ok(done)
    }

    /// Pops a block of at least `total` bytes from the smallest class that has one.
    fn alloc(&self, total: usize) -> Result<Option<u32>, BusError> {
        let region = &self.inner.region;
        for (i, c) in region.layout().classes.iter().enumerate() {
            if (c.block_size as usize) < total {
                continue;
            }
            match region.free_list(i).pop() {
                Ok(Some(idx)) => {
                    region.class(i).used.fetch_add(1, Ordering::Relaxed);
                    return Ok(Some(idx));
                }
                Ok(None) => continue,
                Err(bad) => {
                    return Err(BusError::corrupt(
                        region.name(),
                        format!(
                            "the free list of slab class {i} is damaged at block {} (a link out \
                             of range, a cycle, or a block in use)",
                            bad.0
                        ),
                    ))
                }
            }
        }
        Ok(None)
    }

    /// This publisher's process-table row.
    pub fn row(&self) -> u32 {
        self.row
    }
}

/// Returns `block` (slot `block` field: index + 1, 0 for none) to the slab if this publisher
/// still owns it (its row's `held_block`; a reaper that took it for dead may have).
fn give_back(region: &Region, row: &Row, block: u32) {
    if block != 0 && row.held_block.swap(0, Ordering::AcqRel) == block {
        region.free_block(block);
    }
}

/// The consumers that are active now.
fn ring_active(region: &Region) -> u64 {
    region.header().active_mask.load(Ordering::SeqCst)
}

/// While a publisher waits for ring space: counts the wait once, and says in its row whom it
/// waits for (the consumers still holding the slot it needs) and since when, for `inspect`.
struct Waiting<'a> {
    region: &'a Region,
    row: &'a Row,
    since: bool,
}

impl<'a> Waiting<'a> {
    fn new(region: &'a Region, row: &'a Row) -> Waiting<'a> {
        Waiting {
            region,
            row,
            since: false,
        }
    }

    /// The claim failed: the ring is full. Returns the consumers it waits for.
    fn blocked(&mut self) -> u64 {
        if !self.since {
            self.since = true;
            self.region
                .header()
                .full_waits
                .fetch_add(1, Ordering::Relaxed);
            self.row.waiting_since_ns.store(now_ns(), Ordering::Relaxed);
        }
        let ring = self.region.ring();
        let head = self.region.header().head.load(Ordering::Relaxed);
        let holders = ring.slot(head).pending.load(Ordering::Relaxed);
        self.row.waiting_for.store(holders, Ordering::Relaxed);
        holders
    }
}

/// The consumers that still hold a message stored in a slab block (a snapshot: only read when
/// a slab class is found empty).
fn block_holders(region: &Region) -> u64 {
    let ring = region.ring();
    (0..ring.capacity())
        .filter(|&i| ring.slot(i).block.load(Ordering::Relaxed) != 0)
        .fold(0, |acc, i| acc | ring.published_holders(i))
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.since {
            self.row.waiting_for.store(0, Ordering::Relaxed);
            self.row.waiting_since_ns.store(0, Ordering::Relaxed);
        }
    }
}

/// After a claim found the ring full: [`BusError::Corrupt`] if the ring head cannot be right
/// (see [`RingView::head_overrun`]), so that publishers report it instead of waiting for ever.
fn check_head(region: &crate::region::Region, ring: &RingView<'_>) -> Result<(), BusError> {
    match ring.head_overrun() {
        Some((head, seq)) => Err(BusError::corrupt(
            region.name(),
            format!(
                "the ring head is at position {head} but its slot's sequence is {seq}, ahead of \
                 it (the head was moved back or the slot overwritten)"
            ),
        )),
        None => Ok(()),
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.inner.leave(self.row, None);
    }
}
