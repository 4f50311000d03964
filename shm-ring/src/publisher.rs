//! Publishing: copy topic and payload into a slab block (or inline into the slot), claim a ring
//! position, fill the slot, publish it, and wake sleeping subscribers if there are any.
//!
//! The block is taken before the ring position is claimed, so a publisher never holds a claimed
//! slot (which every consumer behind it must wait for) while it waits for slab space.

use crate::addressing::Addressing;
use crate::blocks::atomics::Ordering;
use crate::blocks::ring::{Addressed, RingView, Run, SlotWrite};
use crate::handle::Inner;
use crate::holder::Loan;
use crate::region::layout::Row;
use crate::region::layout::TopicEntry;
use crate::region::layout::{INLINE_CAP, MAX_TOPIC_LEN};
use crate::region::liveness::coarse_now_ns;
use crate::region::liveness::now_ns;
use crate::region::table::add_own;
use crate::region::words::SlotMeta;
use crate::region::Region;
use crate::wait::{wait_for, Side, SEAL_AFTER};
use crate::wire::pickle::{encode_call, PyValue};
use crate::wire::topic_hash;
use crate::{BusError, Codec};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A claimed run whose positions `next..` are not committed yet. Dropping it ends the run on
/// every way out of a publish, a panic included: the positions not committed go back
/// unpublished (consumers skip them) and the announcement is withdrawn
/// ([`RingView::give_back`]).
struct Claimed<'a, 'r> {
    ring: &'a RingView<'r>,
    row: &'a Row,
    run: Run,
    next: u64,
}

impl Drop for Claimed<'_, '_> {
    fn drop(&mut self) {
        let (intent, addressed) = (&self.row.publishing, &self.row.addressed);
        self.ring
            .give_back(self.next, self.run.end(), intent, addressed);
    }
}

/// How far a publish of several messages got: `done` of them published or unrouted, and the
/// position of the last one published.
#[derive(Default)]
struct Sent {
    done: usize,
    last: Option<u64>,
}

/// Why a publish stopped part way, and how many messages it had sent by then.
struct Stopped {
    error: BusError,
    done: usize,
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
/// let cfg = BusConfig { ring_capacity: 64, max_message: 4096, slab_memory: Some(20 << 10), ..BusConfig::default() };
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
    /// Inline messages, built before their positions are claimed (`Call::build`).
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

    /// [`Publisher::publish_with`] on a parsed topic (see [`Publisher::publish_topic`]).
    pub fn publish_topic_with(
        &mut self,
        topic: &engine_core::Topic,
        codec: Codec,
        len: usize,
        timeout: Option<Duration>,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<Option<u64>, BusError> {
        let (literal, hash) = (topic.literal(), topic.hash_value());
        self.publish_hashed(literal, hash, codec, len, timeout, fill)
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
        let mut fill = Some(fill);
        let fill = |_: usize, buf: &mut [u8]| {
            if let Some(f) = fill.take() {
                f(buf)
            }
        };
        match self.publish_all(topic, hash, codec, 1, |_| len, timeout, fill, None) {
            Ok(sent) => Ok(sent.last),
            Err(stopped) => Err(stopped.error),
        }
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
    /// let cfg = BusConfig { ring_capacity: 64, max_message: 4096, slab_memory: Some(20 << 10), ..BusConfig::default() };
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
        let hash = topic_hash(topic);
        match self.publish_all(topic, hash, codec, count, len_of, timeout, fill, None) {
            Ok(sent) => Ok(sent.done),
            Err(Stopped {
                error: BusError::Full | BusError::Timeout | BusError::WouldWaitFor { .. },
                done,
            }) if done > 0 => Ok(done),
            Err(stopped) => Err(stopped.error),
        }
    }

    /// The one publish path, single messages and runs alike: messages `0..count` on `topic`
    /// (whose hash is `hash`), message `i` of `len_of(i)` bytes built by `fill(i, buf)`, in
    /// order. Each step is one function: build (inline messages up to [`BUILD_AHEAD`] ahead, a
    /// larger one in its slab block, before any claim), claim with a wait
    /// ([`claim_waiting`]), announce the addressees ([`RingView::announce`]), write
    /// and commit each position ([`RingView::commit_slot`]), give back and withdraw
    /// ([`Claimed`]'s drop). A run sealed before its announcement (its publisher was stopped
    /// there too long) is claimed again for the same messages. `loan`: the one message is
    /// already in this loaned block (index), topic and payload, and is published from there.
    #[allow(clippy::too_many_arguments)]
    fn publish_all(
        &mut self,
        topic: &str,
        hash: u64,
        codec: Codec,
        count: usize,
        len_of: impl Fn(usize) -> usize,
        timeout: Option<Duration>,
        fill: impl FnMut(usize, &mut [u8]),
        loan: Option<u32>,
    ) -> Result<Sent, Stopped> {
        debug_assert_eq!(hash, topic_hash(topic));
        let stop = |error| Stopped { error, done: 0 };
        self.own_row().map_err(stop)?;
        let max = self.inner.region.layout().max_message as usize;
        if topic.len() > MAX_TOPIC_LEN {
            return Err(stop(BusError::TopicTooLong {
                size: topic.len(),
                max: MAX_TOPIC_LEN,
            }));
        }
        // Refuse the whole batch up front rather than publish part of it.
        if let Some(size) = (0..count).map(&len_of).find(|&l| l > max) {
            return Err(stop(BusError::PayloadTooLarge { size, max }));
        }
        let mut built = std::mem::take(&mut self.built);
        let mut sent = Sent::default();
        let r = self.publish_built(
            topic, hash, codec, count, &len_of, timeout, fill, loan, &mut built, &mut sent,
        );
        self.built = built;
        match r {
            Ok(()) => Ok(sent),
            Err(error) => Err(Stopped {
                error,
                done: sent.done,
            }),
        }
    }

    /// [`Publisher::publish_all`] once its arguments are checked, building inline messages into
    /// `built` and counting in `sent`: build a step's messages ([`Call::build`]), then publish
    /// them ([`Call::send`]), until all are sent.
    #[allow(clippy::too_many_arguments)]
    fn publish_built(
        &mut self,
        topic: &str,
        hash: u64,
        codec: Codec,
        count: usize,
        len_of: &impl Fn(usize) -> usize,
        timeout: Option<Duration>,
        mut fill: impl FnMut(usize, &mut [u8]),
        loan: Option<u32>,
        built: &mut Vec<u8>,
        sent: &mut Sent,
    ) -> Result<(), BusError> {
        let region = &self.inner.region;
        let row = region.row(self.row).expect("own row is in range");
        let (wanting, entry) = self.addressing.wanting(region, self.row, topic, hash);
        let tally = region
            .row_stats(self.row)
            .expect("own row is in range")
            .entry(entry);
        if wanting & ring_active(region) == 0 {
            add_own(&row.unrouted, count as u64);
            add_own(&tally.unrouted, count as u64);
            sent.done = count;
            return Ok(());
        }
        let call = Call {
            region,
            row,
            row_index: self.row,
            pid: self.pid,
            ring: region.ring(),
            tally,
            topic,
            hash,
            meta: SlotMeta {
                topic_len: topic.len() as u16,
                codec: codec as u8,
            }
            .value(),
            wanting,
            never: self.never_wait_for,
            loan,
            timeout,
            // Only a publish that may wait reads the clock.
            start: timeout.filter(|t| !t.is_zero()).map(|_| Instant::now()),
        };
        while sent.done < count {
            let step = call.build(sent.done, count, len_of, &mut fill, built)?;
            call.send(&mut self.addressing, step, len_of, built, sent)?;
        }
        Ok(())
    }

    /// Lends a slab block for one message of `len` payload bytes on `topic`, to be filled in
    /// place ([`Loan::payload_mut`]) and published without a copy by [`Publisher::send_loan`].
    /// Waits for a free block like [`Publisher::publish`]. Dropped unpublished, the loan goes
    /// back to the slab; a process killed during a loan has it given back by the reap.
    pub fn loan(
        &mut self,
        topic: &str,
        len: usize,
        timeout: Option<Duration>,
    ) -> Result<Loan, BusError> {
        let mut loan = self.loan_block(topic.len() + len, timeout)?;
        loan.bytes_mut()[..topic.len()].copy_from_slice(topic.as_bytes());
        loan.set_message(topic, len);
        Ok(loan)
    }

    /// Lends a slab block of at least `size` bytes, for a caller that lays the message out
    /// itself ([`Publisher::send_loan_as`]).
    pub fn loan_block(&mut self, size: usize, timeout: Option<Duration>) -> Result<Loan, BusError> {
        self.own_row()?;
        let region = &self.inner.region;
        let max = region.layout().max_message as usize + MAX_TOPIC_LEN;
        if size > max {
            return Err(BusError::PayloadTooLarge {
                size,
                max: region.layout().max_message as usize,
            });
        }
        let row = region.row(self.row).expect("own row is in range");
        let Some(idx) = take_block(region, row, size, self.never_wait_for, timeout)? else {
            return Err(match timeout {
                Some(Duration::ZERO) => BusError::Full,
                _ => BusError::Timeout,
            });
        };
        // `held_block` names the block until its seat holds it: a reaper gives it back if we
        // die in between (taking a seat may take the table lock).
        match Loan::new(&self.inner, idx) {
            Ok(loan) => {
                row.held_block.store(0, Ordering::Release);
                Ok(loan)
            }
            Err(e) => {
                give_back(region, row, idx + 1);
                Err(e)
            }
        }
    }

    /// Publishes the message of `loan` (made by [`Publisher::loan`]) with `codec`, from the
    /// loaned block itself: no copy. Waits for ring space like [`Publisher::publish`]; `Ok(None)`
    /// when no consumer wants the topic. The loan is spent either way.
    pub fn send_loan(
        &mut self,
        loan: Loan,
        codec: Codec,
        timeout: Option<Duration>,
    ) -> Result<Option<u64>, BusError> {
        let Some((topic, len)) = loan.message() else {
            return Err(BusError::LoanNotLaidOut);
        };
        let topic = topic.to_owned();
        let mut loan = loan;
        self.send_loan_as(&mut loan, &topic, codec, len, timeout, |_| ())
    }

    /// Publishes `loan` as a message of `len` payload bytes on `topic`: writes the topic at the
    /// start of the block, lets `fill` write what it wants of the payload (the `len` bytes after
    /// the topic, of which it may leave what the producer wrote in place), then publishes from
    /// the block. Waits like [`Publisher::send_loan`]. The loan is spent (a second send is
    /// [`BusError::LoanSpent`]) but its seat keeps the block until the loan is dropped, so that
    /// a binding whose views of the loan outlive the send never sees the block reused under them.
    pub fn send_loan_as(
        &mut self,
        loan: &mut Loan,
        topic: &str,
        codec: Codec,
        len: usize,
        timeout: Option<Duration>,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<Option<u64>, BusError> {
        if !loan.is_of(&self.inner) {
            return Err(BusError::ForeignLoan);
        }
        if loan.spent {
            return Err(BusError::LoanSpent);
        }
        if topic.len() > MAX_TOPIC_LEN {
            return Err(BusError::TopicTooLong {
                size: topic.len(),
                max: MAX_TOPIC_LEN,
            });
        }
        let total = topic.len() + len;
        let bytes = loan.bytes_mut();
        if total > bytes.len() {
            return Err(BusError::PayloadTooLarge {
                size: len,
                max: bytes.len().saturating_sub(topic.len()),
            });
        }
        bytes[..topic.len()].copy_from_slice(topic.as_bytes());
        fill(&mut bytes[topic.len()..total]);
        let hash = topic_hash(topic);
        let block = loan.block();
        loan.spent = true;
        let r = self.publish_all(
            topic,
            hash,
            codec,
            1,
            |_| len,
            timeout,
            |_, _| (),
            Some(block),
        );
        match r {
            Ok(sent) => Ok(sent.last),
            Err(stopped) => Err(stopped.error),
        }
    }

    /// This publisher's process-table row.
    pub fn row(&self) -> u32 {
        self.row
    }
}

/// One publish call's facts, shared by its steps ([`Publisher::publish_built`]).
struct Call<'a> {
    region: &'a Region,
    row: &'a Row,
    row_index: u32,
    pid: u32,
    ring: RingView<'a>,
    /// The topic's statistics entry in this publisher's row stats.
    tally: &'a TopicEntry,
    topic: &'a str,
    hash: u64,
    /// The slots' `meta` word ([`SlotMeta`]).
    meta: u64,
    /// Who wanted the topic before the claim (the addressing is decided after it).
    wanting: u64,
    /// Consumers it must never wait for ([`Publisher::set_never_wait_for`]).
    never: u64,
    /// A loaned block (index) that already holds the one message ([`Publisher::send_loan`]).
    loan: Option<u32>,
    timeout: Option<Duration>,
    start: Option<Instant>,
}

/// Messages one build step made: `n` of them from `first` on, inline in the publisher's
/// `built` buffer (message `first + k` at `k * INLINE_CAP`), or one in slab block `block`
/// (index + 1; 0 when inline).
#[derive(Clone, Copy)]
struct Step {
    first: usize,
    n: usize,
    block: u32,
}

impl Call<'_> {
    /// The time left of the call's timeout.
    fn remaining(&self) -> Option<Duration> {
        let (t, start) = (self.timeout?, self.start);
        Some(start.map_or(t, |s| t.saturating_sub(s.elapsed())))
    }

    /// The error of a call whose time ran out: `Full` for one that was not to wait at all.
    fn out_of_time(&self) -> BusError {
        match self.timeout {
            Some(Duration::ZERO) => BusError::Full,
            _ => BusError::Timeout,
        }
    }

    /// Builds the next messages from `first` on, before any claim, so that `fill` never runs
    /// while this publisher holds a claimed position: inline ones up to [`BUILD_AHEAD`] ahead
    /// into `built`, or one too large for a slot in a slab block (waiting for one).
    fn build(
        &self,
        first: usize,
        count: usize,
        len_of: &impl Fn(usize) -> usize,
        fill: &mut impl FnMut(usize, &mut [u8]),
        built: &mut Vec<u8>,
    ) -> Result<Step, BusError> {
        let topic = self.topic;
        if let Some(idx) = self.loan {
            // The ring takes the loan over before its seat lets go (`blocks/holds.rs`); from
            // here a reaper gives the ring's reference back through `held_block`, as for any
            // block being published, and the seat's with the seat (`Holds::drop_popped`).
            self.row.held_block.store(idx + 1, Ordering::Release);
            self.region.holds().lend_to_ring(idx);
            return Ok(Step {
                first,
                n: 1,
                block: idx + 1,
            });
        }
        let fits = |i: usize| topic.len() + len_of(i) <= INLINE_CAP;
        if fits(first) {
            let n = (first..count)
                .take_while(|&i| fits(i))
                .take(BUILD_AHEAD)
                .count();
            if built.len() < n * INLINE_CAP {
                built.resize(n * INLINE_CAP, 0);
            }
            for k in 0..n {
                let bytes = &mut built[k * INLINE_CAP..][..topic.len() + len_of(first + k)];
                bytes[..topic.len()].copy_from_slice(topic.as_bytes());
                fill(first + k, &mut bytes[topic.len()..]);
            }
            return Ok(Step { first, n, block: 0 });
        }
        let total = topic.len() + len_of(first);
        let (region, row) = (self.region, self.row);
        // Named in `held_block` until its slot is committed: a reaper gives it back if we die.
        let Some(idx) = take_block(region, row, total, self.never, self.remaining())? else {
            return Err(self.out_of_time());
        };
        let (_, ptr, size) = region.block(idx).expect("allocated block is in range");
        debug_assert!(total <= size);
        // SAFETY: `ptr..ptr + size` is block `idx` inside the mapping, which we popped from its
        // free list and so own exclusively until it is published.
        let bytes = unsafe { std::slice::from_raw_parts_mut(ptr, total) };
        bytes[..topic.len()].copy_from_slice(topic.as_bytes());
        fill(first, &mut bytes[topic.len()..]);
        Ok(Step {
            first,
            n: 1,
            block: idx + 1,
        })
    }

    /// Publishes what [`Call::build`] made: claims (waiting), announces, writes and commits each
    /// position; claims again after a seal; counts what nobody wanted any more as unrouted.
    fn send(
        &self,
        addressing: &mut Addressing,
        step: Step,
        len_of: &impl Fn(usize) -> usize,
        built: &[u8],
        sent: &mut Sent,
    ) -> Result<(), BusError> {
        let (region, row, ring) = (self.region, self.row, &self.ring);
        let block = step.block;
        while sent.done < step.first + step.n {
            let want = (step.first + step.n - sent.done) as u64;
            let run = match claim_waiting(region, row, ring, want, self.never, self.remaining()) {
                Ok(Some(run)) => run,
                got => {
                    give_back(region, row, block);
                    return Err(got.err().unwrap_or_else(|| self.out_of_time()));
                }
            };
            let mut claimed = Claimed {
                ring,
                row,
                run,
                next: run.first,
            };
            crate::testing::pause_point(crate::testing::Point::Claimed);
            // Addressed from the interest now, after the claim (and any wait for it).
            let (r, topic, hash) = (self.row_index, self.topic, self.hash);
            let now = || addressing.wanting_now(region, r, topic, hash, self.wanting);
            let to = match ring.announce(&run, now, &row.publishing, &row.addressed) {
                Addressed::To(to) => to,
                Addressed::Sealed => {
                    // Stopped too long before announcing: none of it was published.
                    drop(claimed);
                    region.wake_consumers(0);
                    continue;
                }
                Addressed::Nobody => {
                    // The consumers that wanted it left meanwhile: nothing to deliver, nothing
                    // to keep. The block first: with the intent withdrawn, a reaper would free a
                    // held block too.
                    give_back(region, row, block);
                    drop(claimed);
                    region.wake_publishers();
                    region.wake_consumers(0);
                    add_own(&row.unrouted, run.count);
                    add_own(&self.tally.unrouted, run.count);
                    sent.done += run.count as usize;
                    continue;
                }
            };
            crate::testing::pause_point(crate::testing::Point::Addressed);
            let lost = self.commit_run(&mut claimed, to, step, len_of, built, sent);
            drop(claimed);
            region.wake_consumers(to);
            if let Some(pos) = lost {
                // A survivor took this process for dead and tombstoned the position: the
                // message is not published, and the block is ours unless it took it.
                give_back(region, row, block);
                region.wake_publishers();
                return Err(BusError::ClaimLost { pos });
            }
        }
        Ok(())
    }

    /// Writes and commits the claimed run's positions for `to`, message after message, and
    /// counts them. `Some(position)` if a commit found the position no longer ours.
    fn commit_run(
        &self,
        claimed: &mut Claimed<'_, '_>,
        to: u64,
        step: Step,
        len_of: &impl Fn(usize) -> usize,
        built: &[u8],
        sent: &mut Sent,
    ) -> Option<u64> {
        let now = coarse_now_ns();
        let (mut published, mut bytes) = (0u64, 0u64);
        let mut lost = None;
        while claimed.next != claimed.run.end() {
            let i = sent.done;
            let len = len_of(i);
            let inline: &[u8] = if step.block == 0 {
                &built[(i - step.first) * INLINE_CAP..][..self.topic.len() + len]
            } else {
                &[]
            };
            let m = SlotWrite {
                topic_hash: self.hash,
                timestamp_ns: now,
                publisher: self.row_index,
                publisher_pid: self.pid,
                block: step.block,
                payload_len: len as u32,
                meta: self.meta,
                inline,
            };
            let pos = claimed.next;
            if !self.ring.commit_slot(pos, to, &m, &self.row.held_block) {
                lost = Some(pos);
                break;
            }
            claimed.next = pos.wrapping_add(1);
            sent.done += 1;
            sent.last = Some(pos);
            published += 1;
            bytes += len as u64;
        }
        add_own(&self.row.published, published);
        add_own(&self.tally.messages, published);
        add_own(&self.tally.bytes, bytes);
        lost
    }
}

/// Claims up to `want` positions, waiting up to `timeout` while the ring is full: meanwhile
/// it takes what lossy consumers have not read, reports a ring head that cannot be right,
/// refuses to wait for a consumer of `never` (`Publisher::set_never_wait_for`), and seals the position it waits
/// for when a stalled claimant has held it unannounced for [`SEAL_AFTER`]. `Ok(None)`: out
/// of time.
fn claim_waiting(
    region: &Region,
    row: &Row,
    ring: &RingView<'_>,
    want: u64,
    never: u64,
    timeout: Option<Duration>,
) -> Result<Option<Run>, BusError> {
    let mut waiting = Waiting::new(region, row);
    wait_for(region, row, Side::Publisher, timeout, || {
        let claim = || ring.claim_run(want, &row.publishing).ok();
        let mut r = claim();
        if r.is_none() && region.take_from_lossy(false) {
            r = claim();
        }
        if r.is_none() {
            check_head(region, ring)?;
            let holders = waiting.blocked() & never;
            if holders != 0 {
                return Err(BusError::WouldWaitFor { consumers: holders });
            }
            if waiting.seal_stalled() {
                r = claim();
            }
        }
        Ok(r)
    })
}

/// Pops a block for `total` bytes of topic and payload, waiting up to `timeout` while its
/// classes are empty (taking what lossy consumers hold first). `Ok(None)`: out of time.
fn take_block(
    region: &Region,
    row: &Row,
    total: usize,
    never: u64,
    timeout: Option<Duration>,
) -> Result<Option<u32>, BusError> {
    wait_for(region, row, Side::Publisher, timeout, || {
        match alloc(region, row, total)? {
            // Lossy consumers never hold blocks a publisher needs.
            None if region.take_from_lossy(true) => alloc(region, row, total),
            None if never != 0 => {
                let holders = block_holders(region) & never;
                if holders != 0 {
                    return Err(BusError::WouldWaitFor { consumers: holders });
                }
                Ok(None)
            }
            got => Ok(got),
        }
    })
}

/// Pops a block of at least `total` bytes from the smallest class that has one, names it in
/// `row.held_block` (by the pop itself: a reaper gives it back if we die from here on), and gives
/// it to the ring (`blocks/holds.rs`): from here only a release of the ring's reference frees it.
fn alloc(region: &Region, row: &Row, total: usize) -> Result<Option<u32>, BusError> {
    for (i, c) in region.layout().classes.iter().enumerate() {
        if (c.block_size as usize) < total {
            continue;
        }
        match region.free_list(i).pop(Some(&row.held_block)) {
            Ok(Some(idx)) => {
                region.class(i).used.fetch_add(1, Ordering::Relaxed);
                crate::testing::pause_point(crate::testing::Point::Popped);
                region.holds().to_ring(idx);
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
    /// When the claim first found the ring full.
    since: Option<Instant>,
}

impl<'a> Waiting<'a> {
    fn new(region: &'a Region, row: &'a Row) -> Waiting<'a> {
        Waiting {
            region,
            row,
            since: None,
        }
    }

    /// The claim failed: the ring is full. Returns the consumers it waits for.
    fn blocked(&mut self) -> u64 {
        if self.since.is_none() {
            self.since = Some(Instant::now());
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

    /// Blocked for [`SEAL_AFTER`] or more: if the slot the next claim needs is held by a
    /// position claimed a ring ago and never announced (its claimant stopped in between),
    /// seals and tombstones that position (`RingView::seal`). True if it did, and the claim
    /// may be tried again.
    fn seal_stalled(&self) -> bool {
        if self.since.is_none_or(|s| s.elapsed() < SEAL_AFTER) {
            return false;
        }
        let ring = self.region.ring();
        let head = self.region.header().head.load(Ordering::SeqCst);
        let held = head.wrapping_sub(ring.capacity());
        ring.slot(held).seq.load(Ordering::Acquire) == held && self.region.seal(held)
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
        if self.since.is_some() {
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
