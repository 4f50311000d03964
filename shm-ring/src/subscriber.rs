//! Receiving: fan-out subscribers walk the ring with their own cursor; group members share the
//! group's cursor and claim positions from it, so each message goes to exactly one member.
//!
//! The claim protocol (intent, cursor, confirmation, redelivery) is in `blocks/group.rs`.

use crate::blocks::atomics::Ordering;
use crate::blocks::entry;
use crate::blocks::group;
use crate::blocks::ring::{dist, Poll};
use crate::handle::Inner;
use crate::holder::Holder;
use crate::interrupt::Interrupter;
use crate::recovery::lock_table;
use crate::region::interest::Wanted;
use crate::region::layout::Consumer;
use crate::region::layout::CONSUMER_LIVE;
use crate::region::message::{copy_message, read_message, Copied, Message};
use crate::region::words::Cursor;
use crate::wait::{wait_for_data, HOT_WAIT, SEAL_AFTER};
use crate::BusError;
use std::cell::Cell;
use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// In [`Subscriber::recv_batch`], publishers waiting for space are woken after this many freed
/// slots even if the run goes on, so a slow handler never keeps them asleep for a whole batch.
const WAKE_EVERY: usize = 32;

/// Changes what a subscriber wants (made by [`Subscriber::interest`]). Cheap to clone.
#[derive(Clone)]
pub struct InterestHandle {
    inner: Arc<Inner>,
    consumer: u32,
    /// The entry's generation when the handle was made (`blocks/entry.rs`).
    generation: u32,
    group: bool,
}

impl InterestHandle {
    /// From now on the subscriber wants `topics` (patterns in the topic grammar; `None`: every
    /// topic): a message whose publish begins after this returns is addressed to it if it
    /// matches. A group wants what any of its members asked for since it was created, so for a
    /// member this only ever adds. A pattern that does not parse is [`BusError::BadTopic`],
    /// and nothing changes. Once the subscriber has been dropped (or reaped),
    /// [`BusError::SubscriberGone`]: its entry may already be another subscriber's.
    pub fn set(&self, topics: Option<&[String]>) -> Result<(), BusError> {
        let wanted = Wanted::from_topics(topics)?;
        let region = &self.inner.region;
        let g = lock_table(region)?;
        let idx = self.consumer as usize;
        let c = &region.consumers()[idx];
        // Under the table lock, so the entry cannot change hands until we are done.
        if !entry::is_current(&c.generation, self.generation)
            || c.state.load(Ordering::Acquire) != CONSUMER_LIVE
        {
            return Err(BusError::SubscriberGone);
        }
        let (_, had) = region.read_interest(idx);
        let new = if self.group {
            had.union(&wanted)
        } else {
            wanted
        };
        if new != had {
            g.write_interest(idx, &new);
        }
        Ok(())
    }
}

/// Reads a lossy subscriber's [`Subscriber::missed`] count (made by
/// [`Subscriber::missed_counter`]). Cheap to clone.
#[derive(Clone)]
pub struct MissedCounter {
    inner: Arc<Inner>,
    consumer: u32,
    /// The entry's generation when the counter was made (`blocks/entry.rs`).
    generation: u32,
}

impl MissedCounter {
    /// Messages taken from the subscriber so far (see [`Subscriber::missed`]). After the
    /// subscriber has been dropped, its last count until its entry is given to another
    /// subscriber; then `None` (the count there would be the other subscriber's).
    pub fn get(&self) -> Option<u64> {
        let c = &self.inner.region.consumers()[self.consumer as usize];
        entry::read_for(&c.generation, self.generation, &c.missed)
    }
}

/// How [`Subscriber::recv_with`] waits, and what it skips.
#[derive(Default)]
pub struct RecvOptions<'a> {
    /// `None` waits for ever, `Some(ZERO)` does not wait, `Some(t)` gives up after `t`.
    pub timeout: Option<Duration>,
    /// Poll this long (spinning, yielding now and then) before going to sleep. `None`: 50 µs
    /// right after a receive that got a message, so a steady stream costs no futex calls, and no
    /// polling otherwise.
    pub hot: Option<Duration>,
    /// Return `Ok(None)` as soon as this interrupter (made by [`Subscriber::interrupter`]) fires.
    pub interrupter: Option<&'a Interrupter>,
    /// Messages this refuses are acknowledged and skipped without being returned (for example
    /// those no local handler would receive). It runs inside the wait: keep it short and free of
    /// locks the interrupting side may hold.
    pub wanted: Option<&'a mut dyn FnMut(&Message<'_>) -> bool>,
}

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
/// # impl Drop for Unlink { fn drop(&mut self) { let _ = event_engine_shm::Bus::unlink(&self.0); } }
/// # let name = format!("doc-sub-{}", std::process::id());
/// # let _unlink = Unlink(name.clone());
/// use event_engine_shm::{Bus, BusConfig, Codec};
/// use std::time::Duration;
/// let cfg = BusConfig { ring_capacity: 64, max_message: 4096, slab_memory: Some(20 << 10), ..BusConfig::default() };
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
/// # Ok::<(), event_engine_shm::BusError>(())
/// ```
pub struct Subscriber {
    pub(crate) inner: Arc<Inner>,
    pub(crate) row: u32,
    consumer: u32,
    /// Its consumer entry's generation (`blocks/entry.rs`), which its handles check.
    generation: u32,
    bit: u64,
    group: bool,
    /// Fan-out: the next position to look at (mirrored into the shared cursor for inspection).
    cursor: u64,
    held: Held,
    redelivered: u64,
    /// The last receive got a message: the next one polls for a while before it sleeps (see
    /// `wait.rs`), so a steady stream costs no futex calls. Cleared when a receive times out.
    hot: bool,
    /// Publishers take what it has not read rather than wait for it (see [`RingView::evict`]):
    /// it copies each message out, then claims it by CAS of the shared cursor.
    ///
    /// [`RingView::evict`]: crate::blocks::ring::RingView::evict
    lossy: bool,
    /// Lossy: the last message copied (topic, then payload) and what else was taken from it.
    bytes: Vec<u8>,
    copied: Option<Copied>,
    /// Set for a look made before sleeping: then a position still being written whose claimant
    /// announced other addressees is passed (see [`RingView::poll_past`]).
    ///
    /// [`RingView::poll_past`]: crate::blocks::ring::RingView::poll_past
    patient: bool,
    /// The last patient look stopped at a claimed position whose addressees are not announced
    /// yet: the wait sleeps blind (see `blocks/sleepers.rs`).
    blind: bool,
    /// The position a patient look first found claimed and not announced, and when: waiting
    /// there for [`SEAL_AFTER`], it seals the position (see [`Subscriber::seal_if_stalled`]).
    stalled: Cell<Option<(u64, Instant)>>,
    /// Holds made by its holders that are alive, and how many may be (`holder.rs`).
    holds: Arc<AtomicU32>,
    hold_limit: u32,
}

impl Subscriber {
    /// The right to keep this subscriber's messages in place after they are acknowledged
    /// ([`Holder`]): at most [`Subscriber::set_hold_limit`] blocks at once, counted across every
    /// holder made from this subscriber; past that, and for a lossy subscriber,
    /// [`Holder::hold`] refuses and the caller copies.
    pub fn holder(&self) -> Holder {
        Holder::new(
            self.inner.clone(),
            self.row,
            self.lossy,
            self.hold_limit,
            self.holds.clone(),
        )
    }

    /// How many blocks this subscriber's holders may hold at once (default
    /// [`crate::DEFAULT_HOLD_LIMIT`]; 0: none, every buffer is copied).
    pub fn set_hold_limit(&mut self, limit: u32) {
        self.hold_limit = limit;
    }

    pub(crate) fn new(
        inner: Arc<Inner>,
        row: u32,
        consumer: u32,
        group: bool,
        lossy: bool,
    ) -> Subscriber {
        let c = &inner.region.consumers()[consumer as usize];
        let head = inner.region.header().head.load(Ordering::SeqCst);
        let cursor = entry::position(c.cursor.load(Ordering::SeqCst), lossy, head);
        let generation = c.generation.load(Ordering::Acquire);
        Subscriber {
            inner,
            row,
            consumer,
            generation,
            bit: 1 << consumer,
            group,
            cursor,
            held: Held::Nothing,
            redelivered: 0,
            hot: false,
            lossy,
            bytes: Vec::new(),
            copied: None,
            patient: false,
            blind: false,
            stalled: Cell::new(None),
            holds: Arc::new(AtomicU32::new(0)),
            hold_limit: crate::holder::DEFAULT_HOLD_LIMIT,
        }
    }

    /// The message at `pos`, which [`Subscriber::next`] just found: read in place, or for a
    /// lossy subscriber, the copy it took.
    fn message_at(&self, pos: u64) -> Result<Message<'_>, BusError> {
        match (&self.copied, self.lossy) {
            (Some(c), true) => Ok(c.message(&self.bytes)),
            _ => read_message(&self.inner.region, pos),
        }
    }

    /// Lossy subscribers: messages for it that publishers took because it was a full ring
    /// behind (always 0 for a lossless one). The count only grows; compare two readings to learn
    /// of a gap.
    pub fn missed(&self) -> u64 {
        self.entry().missed.load(Ordering::Relaxed)
    }

    /// A handle that reads [`Subscriber::missed`] from any thread, while the subscriber itself
    /// may be blocked in a receive on another.
    pub fn missed_counter(&self) -> MissedCounter {
        MissedCounter {
            inner: self.inner.clone(),
            consumer: self.consumer,
            generation: self.generation,
        }
    }

    fn entry(&self) -> &Consumer {
        &self.inner.region.consumers()[self.consumer as usize]
    }

    /// Waits for the next message: `None` waits forever (spinning briefly, then sleeping on a
    /// futex in the shared mapping), `Some(ZERO)` does not wait. `Ok(None)` when the time ran out.
    /// Shorthand for [`Subscriber::recv_with`] with only a timeout.
    pub fn recv(&mut self, timeout: Option<Duration>) -> Result<Option<Message<'_>>, BusError> {
        self.recv_with(RecvOptions {
            timeout,
            ..RecvOptions::default()
        })
    }

    /// Waits for the next message as `opts` says. First acknowledges the message the previous
    /// receive returned (which stays held until then, so a caller can handle it before it is
    /// released). `Ok(None)` when the time ran out or the interrupter fired (the interrupt is
    /// consumed).
    ///
    /// On a corrupt slot the error is returned and the position stays held; the next receive
    /// releases it and goes on.
    pub fn recv_with(&mut self, opts: RecvOptions<'_>) -> Result<Option<Message<'_>>, BusError> {
        self.ack();
        let inner = self.inner.clone();
        let region = &inner.region;
        let row = region.row(self.row).expect("own row is in range");
        let hot = opts
            .hot
            .unwrap_or(if self.hot { HOT_WAIT } else { Duration::ZERO });
        let RecvOptions {
            timeout,
            interrupter,
            mut wanted,
            ..
        } = opts;
        let blind = Cell::new(false);
        let got = wait_for_data(
            region,
            row,
            self.consumer,
            timeout,
            hot,
            &blind,
            |patient| {
                if interrupter.is_some_and(Interrupter::take) {
                    return Ok(Some(None));
                }
                // Bounded by the ring: a live consumer is never more than a ring behind.
                for _ in 0..=region.ring().capacity() {
                    let Some(pos) = self.next_looking(patient, &blind) else {
                        return Ok(None);
                    };
                    let keep = match wanted.as_mut() {
                        None => true,
                        Some(wanted) => wanted(&self.message_at(pos)?),
                    };
                    if keep {
                        return Ok(Some(Some(pos)));
                    }
                    self.ack();
                }
                Ok(None)
            },
        )?;
        match got {
            Some(Some(pos)) => {
                self.hot = true;
                self.message_at(pos).map(Some)
            }
            Some(None) => Ok(None),
            None => {
                self.hot = false;
                Ok(None)
            }
        }
    }

    /// The message the last receive returned, again, while it is still held (not yet
    /// acknowledged: the next receive acknowledges it). `None` when none is held. For a caller
    /// that receives on one thread and handles the message on another: the receiving thread
    /// lets go of the returned [`Message`] without acknowledging it, and the handling thread
    /// reads it here (Python's asyncio dispatch, woken by a thread that waits on the bus).
    pub fn held(&self) -> Option<Result<Message<'_>, BusError>> {
        match self.held {
            Held::Nothing => None,
            Held::Fanout(pos) | Held::Group(pos) | Held::Redelivery(_, pos) => {
                Some(self.message_at(pos))
            }
        }
    }

    /// A handle that changes what this subscriber wants from any thread, while the subscriber
    /// itself may be blocked in a receive on another.
    pub fn interest(&self) -> InterestHandle {
        InterestHandle {
            inner: self.inner.clone(),
            consumer: self.consumer,
            generation: self.generation,
            group: self.group,
        }
    }

    /// A new interrupter for this subscriber's receives (see [`RecvOptions::interrupter`]).
    pub fn interrupter(&self) -> Interrupter {
        Interrupter::new(self.inner.clone(), self.consumer)
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
        let hot = if self.hot { HOT_WAIT } else { Duration::ZERO };
        let blind = Cell::new(false);
        let Some(mut pos) = wait_for_data(
            region,
            row,
            self.consumer,
            timeout,
            hot,
            &blind,
            |patient| Ok(self.next_looking(patient, &blind)),
        )?
        else {
            self.hot = false;
            return Ok(0);
        };
        self.hot = true;
        let mut n = 0;
        let mut unwoken = 0usize;
        let result = loop {
            let msg = self.message_at(pos);
            match msg {
                Ok(m) => f(&m),
                Err(e) => break Err(e),
            }
            if self.ack_quiet() {
                unwoken += 1;
                if unwoken == WAKE_EVERY {
                    region.wake_publishers();
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
            region.wake_publishers();
        }
        result
    }

    /// Messages published but not yet received by this subscriber (its group, for a member).
    pub fn pending(&self) -> u64 {
        let head = self.inner.region.header().head.load(Ordering::Relaxed);
        let cursor = if self.group || self.lossy {
            entry::position(
                self.entry().cursor.load(Ordering::Relaxed),
                self.lossy,
                head,
            )
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

    /// The bit of this subscriber's consumer (its group's, for a member) in the masks a bus
    /// shows (`pending`, `waiting_for`) and takes ([`crate::Publisher::set_never_wait_for`]).
    pub fn consumer_mask(&self) -> u64 {
        self.bit
    }

    /// [`Subscriber::next`] inside a wait: `patient` when the wait is about to sleep; sets
    /// `blind` as the look found it (see the `blind` field).
    fn next_looking(&mut self, patient: bool, blind: &Cell<bool>) -> Option<u64> {
        self.patient = patient;
        self.blind = false;
        let got = self.next();
        self.patient = false;
        blind.set(self.blind);
        got
    }

    /// At position `pos`, where [`RingView::poll`] found nothing: in a patient look, passes a
    /// position still being written for other consumers (`Skip`), and says whether the wait
    /// must sleep blind (the position is claimed and its claimant has not said for whom yet).
    ///
    /// [`RingView::poll`]: crate::blocks::ring::RingView::poll
    fn look_past(&self, pos: u64) -> (Poll, bool) {
        if !self.patient {
            return (Poll::Empty, false);
        }
        let region = &self.inner.region;
        let ring = region.ring();
        let mut announced = false;
        let p = ring.poll_past(pos, self.bit, |pos| {
            let to = claimant_addressees(region, pos);
            announced = to.is_some();
            to
        });
        let blind = p == Poll::Empty
            && !announced
            && dist(region.header().head.load(Ordering::SeqCst), pos) > 0;
        if blind && self.seal_if_stalled(pos) {
            return (Poll::Skip, false);
        }
        (p, blind)
    }

    /// At `pos`, claimed and not announced: true once it has been so for [`SEAL_AFTER`] (from
    /// the first patient look that found it so) and this call sealed and tombstoned it (a
    /// `false` after the seal means someone else moved the slot on: the next look sees it).
    /// Its claimant was stopped between claim and announcement; it publishes the message at a
    /// new position when it resumes (`RingView::seal`).
    fn seal_if_stalled(&self, pos: u64) -> bool {
        match self.stalled.get() {
            Some((at, since)) if at == pos => {
                since.elapsed() >= SEAL_AFTER && self.inner.region.seal(pos)
            }
            _ => {
                self.stalled.set(Some((pos, Instant::now())));
                false
            }
        }
    }

    /// Finds the next message for us and holds it; `None` if nothing is ready.
    pub(crate) fn next(&mut self) -> Option<u64> {
        if self.group {
            self.next_group()
        } else if self.lossy {
            self.next_lossy()
        } else {
            self.next_fanout()
        }
    }

    /// A lossy subscriber's next message: copied out, then claimed by moving the shared cursor
    /// past it by CAS, then released. A publisher may take messages it has not read meanwhile
    /// (moving the cursor first, `RingView::evict`): the CAS then fails and the copy, which may be
    /// torn, is dropped.
    fn next_lossy(&mut self) -> Option<u64> {
        let inner = self.inner.clone();
        let region = &inner.region;
        let ring = region.ring();
        let c = &region.consumers()[self.consumer as usize];
        let cap = ring.capacity();
        self.copied = None;
        for _ in 0..=2 * cap {
            let pos = c.cursor.load(Ordering::SeqCst);
            let head = region.header().head.load(Ordering::Acquire);
            // Nothing more than a ring behind holds its bit (see `next_fanout`).
            let floor = head.saturating_sub(cap);
            if dist(floor, pos) > 0 {
                let _ = c
                    .cursor
                    .compare_exchange(pos, floor, Ordering::SeqCst, Ordering::Relaxed);
                continue;
            }
            let mut poll = ring.poll(pos, self.bit);
            if poll == Poll::Empty {
                (poll, self.blind) = self.look_past(pos);
            }
            match poll {
                Poll::Empty => return None,
                Poll::Skip => {
                    let _ = c.cursor.compare_exchange(
                        pos,
                        pos.wrapping_add(1),
                        Ordering::SeqCst,
                        Ordering::Relaxed,
                    );
                }
                Poll::Ready => {
                    let copied = copy_message(region, pos, &mut self.bytes);
                    if c.cursor
                        .compare_exchange(
                            pos,
                            pos.wrapping_add(1),
                            Ordering::SeqCst,
                            Ordering::Relaxed,
                        )
                        .is_err()
                    {
                        continue;
                    }
                    // Ours now: nobody else clears our bit here.
                    if region.release_slot_quiet(pos, self.bit).is_some() {
                        region.wake_publishers();
                    }
                    let row = region.row(self.row).expect("own row is in range");
                    crate::region::table::bump_own(&row.delivered);
                    self.cursor = pos.wrapping_add(1);
                    match copied {
                        Some(cp) if std::str::from_utf8(&self.bytes[..cp.topic_len]).is_ok() => {
                            self.copied = Some(cp);
                            return Some(pos);
                        }
                        // Not a well-formed message (a corrupt slot): counted, not returned.
                        _ => {
                            c.missed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        }
        None
    }

    fn next_fanout(&mut self) -> Option<u64> {
        let ring = self.inner.region.ring();
        // The common case first, without reading the head (publishers write it on every
        // message: reading it here on every message would take its line from them each time).
        if let Poll::Ready = ring.poll(self.cursor, self.bit) {
            self.held = Held::Fanout(self.cursor);
            return Some(self.cursor);
        }
        // A consumer nothing was addressed to for a while may be far behind the head. No
        // position more than a ring behind can hold its bit (the head passes `p + capacity`
        // only once slot `p` was released by everyone it was for), so it jumps there; for the
        // same reason a `Ready` above is never such a position.
        let head = self.inner.region.header().head.load(Ordering::Acquire);
        let floor = head.saturating_sub(ring.capacity());
        if dist(floor, self.cursor) > 0 {
            self.cursor = floor;
        }
        // From there it is at most a ring behind; the bound only matters for a corrupt region,
        // where it keeps a call from walking forever.
        for _ in 0..=ring.capacity() {
            let mut poll = ring.poll(self.cursor, self.bit);
            if poll == Poll::Empty {
                (poll, self.blind) = self.look_past(self.cursor);
            }
            match poll {
                Poll::Ready => {
                    self.held = Held::Fanout(self.cursor);
                    return Some(self.cursor);
                }
                Poll::Skip => {
                    self.cursor = self.cursor.wrapping_add(1);
                    self.entry().cursor.store(
                        Cursor {
                            pos: self.cursor,
                            claimer: 0,
                        }
                        .value(),
                        Ordering::Relaxed,
                    );
                }
                Poll::Empty => return None,
            }
        }
        None
    }

    fn next_group(&mut self) -> Option<u64> {
        let region = &self.inner.region;
        let group = region.group(self.consumer)?;
        let me = self.row + 1;
        let row = region.row(self.row).expect("own row is in range");
        if let Some((k, pos)) = group.take_redelivery(me) {
            self.held = Held::Redelivery(k, pos);
            self.redelivered += 1;
            row.redelivered.fetch_add(1, Ordering::Relaxed);
            return Some(pos);
        }
        let in_flight_of = |r| region.row(r).map(|r| &r.in_flight);
        let announced = |pos| claimant_addressees(region, pos);
        // A patient look passes a claimed position announced for others, as a fan-out
        // subscriber does.
        let past = self
            .patient
            .then_some(&announced as &dyn Fn(u64) -> Option<u64>);
        if let Some(pos) = group.claim(me, &row.in_flight, in_flight_of, past) {
            self.held = Held::Group(pos);
            return Some(pos);
        }
        if self.patient {
            // At a claimed position it cannot decide (not announced yet): it sleeps blind
            // there, and seals it once stalled for `SEAL_AFTER`.
            let head = region.header().head.load(Ordering::SeqCst);
            let at = Cursor::read(self.entry().cursor.load(Ordering::SeqCst), head).pos;
            let claimed =
                dist(head, at) > 0 && region.ring().slot(at).seq.load(Ordering::Acquire) == at;
            self.blind = claimed && claimant_addressees(region, at).is_none();
            if self.blind && self.seal_if_stalled(at) {
                self.blind = false;
                let pos = group.claim(me, &row.in_flight, in_flight_of, past)?;
                self.held = Held::Group(pos);
                return Some(pos);
            }
        }
        None
    }

    /// Acknowledges the held message: clears our bit (freeing the slot if we were last), then
    /// forgets the claim.
    pub(crate) fn ack(&mut self) {
        if self.ack_quiet() {
            self.inner.region.wake_publishers();
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
                let freed = region.release_slot_quiet(pos, self.bit).is_some();
                self.cursor = pos.wrapping_add(1);
                c.cursor.store(
                    Cursor {
                        pos: self.cursor,
                        claimer: 0,
                    }
                    .value(),
                    Ordering::Relaxed,
                );
                freed
            }
            Held::Group(pos) => {
                let freed = region.release_slot_quiet(pos, self.bit).is_some();
                group::forget(&row.in_flight);
                freed
            }
            Held::Redelivery(k, pos) => {
                let freed = region.release_slot_quiet(pos, self.bit).is_some();
                if let Some(group) = region.group(self.consumer) {
                    group.finish_redelivery(k);
                }
                freed
            }
        };
        crate::region::table::bump_own(&row.delivered);
        freed
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        // In a forked child the held message and the consumer are the parent's.
        if !self.inner.is_owner() {
            return;
        }
        self.ack();
        self.inner.leave(self.row, Some(self.consumer));
    }
}

/// Whom the claimant of position `pos` said it is for, if decided (see `RingView::announced`).
/// A dead claimant's announcement still holds: its position is tombstoned, never committed to
/// anyone else.
fn claimant_addressees(region: &crate::region::Region, pos: u64) -> Option<u64> {
    let rows = region.rows().iter().map(|r| (&r.publishing, &r.addressed));
    region.ring().announced(pos, rows)
}
