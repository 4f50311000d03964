//! Work-sharing groups: members share one cursor and claim positions from it, so each message
//! goes to exactly one member, and a dead member's claim goes back to the group.
//!
//! A group cursor ([`Cursor`]) packs the next position with the row (+1) that claimed the
//! previous one. A member claiming position `p` first writes `p + 1` to its row's `in_flight`
//! word (its intent), then CASes the cursor to `(p + 1, me)`, then marks its claim confirmed
//! ([`IN_FLIGHT_CONFIRMED`]). Before anyone moves the cursor past `(p + 1, r)`, it confirms `r`'s
//! claim for it. A reaper therefore knows exactly which position a dead member held
//! ([`GroupView::dead_claim`]): a confirmed claim, or an intent matching the cursor. Such a
//! message goes on the group's redelivery list, which members check before the cursor.
//!
//! Acknowledging clears the consumer's bit in the slot first and forgets the claim second, so a
//! member killed in between leaves a claim a reaper finds already released (and drops).

use crate::blocks::atomics::{saturating_dec, AtomicU32, AtomicU64, Ordering};
use crate::blocks::ring::{Poll, RingView};

/// In a row's `in_flight` word: the claim is confirmed (the cursor has moved past it).
pub(crate) const IN_FLIGHT_CONFIRMED: u64 = 1 << 63;

/// Positions are 64-bit; packed words keep their low 48 bits.
const POS_MASK: u64 = (1 << 48) - 1;

/// A position stored in 48 bits, made whole again from `near`: a full position within 2^47 of
/// it. The ring head serves: every position a packed word holds (a cursor, a claim, a
/// redelivery) is within one ring of it, so positions stay right past 2^48 publishes.
pub(crate) fn widen(pos48: u64, near: u64) -> u64 {
    let behind = near.wrapping_sub(pos48) & POS_MASK;
    if behind < 1 << 47 {
        near.wrapping_sub(behind)
    } else {
        near.wrapping_add((1 << 48) - behind)
    }
}

/// A consumer's `cursor`: the next position to read and, for a group, the row (+1) that claimed
/// the position before it (0: nobody, or a fan-out subscriber), so that whoever moves the cursor
/// on can first confirm that member's claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cursor {
    /// Next ring position to read (48 bits are stored: see [`widen`]).
    pub pos: u64,
    /// Row + 1 of the member that claimed `pos - 1`; 0 for none.
    pub claimer: u32,
}

impl Cursor {
    pub(crate) fn from(v: u64) -> Cursor {
        Cursor {
            pos: v >> 16,
            claimer: (v & 0xffff) as u32,
        }
    }

    pub(crate) fn value(self) -> u64 {
        self.pos << 16 | (self.claimer as u64 & 0xffff)
    }

    /// [`Cursor::from`] with the whole position, `near` being the ring head.
    pub(crate) fn read(v: u64, near: u64) -> Cursor {
        let c = Cursor::from(v);
        Cursor {
            pos: widen(c.pos, near),
            ..c
        }
    }
}

/// One entry of a group's redelivery list: a position a dead member held, and the live member
/// (row + 1) that took it over, 0 while it waits for one. The whole word is 0 when the entry is
/// empty, which position + 1 keeps distinct from "position 0, unowned".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Redelivery {
    /// The position (48 bits are stored: see [`widen`]).
    pub pos: u64,
    /// Row + 1 of the member handling it; 0 = up for grabs.
    pub owner: u32,
}

impl Redelivery {
    pub(crate) fn from(v: u64) -> Redelivery {
        Redelivery {
            pos: (v >> 16).wrapping_sub(1),
            owner: (v & 0xffff) as u32,
        }
    }

    pub(crate) fn value(self) -> u64 {
        self.pos.wrapping_add(1) << 16 | (self.owner as u64 & 0xffff)
    }

    /// [`Redelivery::from`] with the whole position, `near` being the ring head.
    pub(crate) fn read(v: u64, near: u64) -> Redelivery {
        let r = Redelivery::from(v);
        Redelivery {
            pos: widen(r.pos, near),
            ..r
        }
    }
}

/// One group as a member (or a reaper) sees it: the ring, the group's consumer bit, its cursor
/// and its redelivery list.
pub(crate) struct GroupView<'a> {
    pub ring: RingView<'a>,
    pub bit: u64,
    pub cursor: &'a AtomicU64,
    /// [`Redelivery`] words; 0 = empty.
    pub redeliver: &'a [AtomicU64],
    /// Number of non-zero `redeliver` entries, so members skip the scan when it is zero.
    pub redeliver_count: &'a AtomicU32,
}

impl<'a> GroupView<'a> {
    /// Takes a redelivered message for member `me` (row + 1): `(entry, position)`. Entries whose
    /// message is gone (released meanwhile) are emptied on the way.
    pub fn take_redelivery(&self, me: u32) -> Option<(usize, u64)> {
        if self.redeliver_count.load(Ordering::Acquire) == 0 {
            return None;
        }
        for (k, e) in self.redeliver.iter().enumerate() {
            let v = e.load(Ordering::Acquire);
            let head = self.ring.head.load(Ordering::Acquire);
            let Redelivery { pos, owner } = Redelivery::read(v, head);
            if v == 0 || owner != 0 {
                continue;
            }
            if e.compare_exchange(
                v,
                Redelivery { pos, owner: me }.value(),
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_err()
            {
                continue;
            }
            if self.ring.poll(pos, self.bit) == Poll::Ready
                && self.ring.slot(pos).seq.load(Ordering::Acquire) == pos.wrapping_add(1)
            {
                return Some((k, pos));
            }
            self.finish_redelivery(k);
        }
        None
    }

    /// Empties redelivery entry `k` once its message is released.
    pub fn finish_redelivery(&self, k: usize) {
        if let Some(e) = self.redeliver.get(k) {
            e.store(0, Ordering::Release);
            saturating_dec(self.redeliver_count);
        }
    }

    /// Claims the next message at the cursor for member `me` (row + 1, whose `in_flight` word is
    /// `in_flight`) and confirms the claim: the position, or `None` if nothing is ready.
    /// `in_flight_of(r)` is the `in_flight` word of row `r`, to confirm a previous claimer's claim.
    /// With `announced` (what claimants announced, see [`RingView::poll_past`]), the cursor also
    /// moves past a position still being written whose claimant addressed others, as a fan-out
    /// consumer passes it: a stalled claimant holds only the groups it addresses.
    pub fn claim(
        &self,
        me: u32,
        in_flight: &AtomicU64,
        in_flight_of: impl Fn(u32) -> Option<&'a AtomicU64>,
        announced: Option<&dyn Fn(u64) -> Option<u64>>,
    ) -> Option<u64> {
        let pos = self.claim_unconfirmed(me, in_flight, in_flight_of, announced)?;
        confirm(in_flight, pos);
        Some(pos)
    }

    /// [`GroupView::claim`] up to moving the cursor, without confirming: the claim is then known
    /// only by the intent matching the cursor (the window a reaper must cover).
    pub fn claim_unconfirmed(
        &self,
        me: u32,
        in_flight: &AtomicU64,
        in_flight_of: impl Fn(u32) -> Option<&'a AtomicU64>,
        announced: Option<&dyn Fn(u64) -> Option<u64>>,
    ) -> Option<u64> {
        // Bounded by the ring; other members' CASes make a few extra rounds possible, so running
        // out just means "try again later".
        for _ in 0..=2 * self.ring.capacity() {
            let cur = self.cursor.load(Ordering::SeqCst);
            let head = self.ring.head.load(Ordering::Acquire);
            let Cursor { pos, claimer: last } = Cursor::read(cur, head);
            if last != 0 {
                // Confirm the previous claimer's claim before the cursor moves past it.
                if let Some(w) = in_flight_of(last - 1) {
                    let _ = w.compare_exchange(
                        pos,
                        pos | IN_FLIGHT_CONFIRMED,
                        Ordering::SeqCst,
                        Ordering::Relaxed,
                    );
                }
            }
            let poll = match announced {
                Some(announced) => self.ring.poll_past(pos, self.bit, announced),
                None => self.ring.poll(pos, self.bit),
            };
            match poll {
                Poll::Empty => return None,
                Poll::Skip => {
                    let _ = self.cursor.compare_exchange(
                        cur,
                        Cursor {
                            pos: pos.wrapping_add(1),
                            claimer: 0,
                        }
                        .value(),
                        Ordering::SeqCst,
                        Ordering::Relaxed,
                    );
                }
                Poll::Ready => {
                    // The intent before the cursor moves: a reaper that sees the cursor name us
                    // finds the position in our row.
                    in_flight.store(pos.wrapping_add(1), Ordering::SeqCst);
                    if self
                        .cursor
                        .compare_exchange(
                            cur,
                            Cursor {
                                pos: pos.wrapping_add(1),
                                claimer: me,
                            }
                            .value(),
                            Ordering::SeqCst,
                            Ordering::Relaxed,
                        )
                        .is_ok()
                    {
                        return Some(pos);
                    }
                    in_flight.store(0, Ordering::SeqCst);
                }
            }
            crate::blocks::atomics::spin_hint();
        }
        None
    }

    /// The position dead member `row` (whose `in_flight` word is `in_flight`) held, if any: a
    /// confirmed claim, or an intent the cursor still names it for. Only a reaper calls this,
    /// once the member is dead, so neither word changes on its behalf any more.
    pub fn dead_claim(&self, row: u32, in_flight: &AtomicU64) -> Option<u64> {
        // Cursor first, claim word second: a member confirms a claim before moving the cursor
        // past it, so a cursor that no longer names the dead member comes with its confirmation.
        let cursor = self.cursor.load(Ordering::SeqCst);
        let claim = in_flight.load(Ordering::SeqCst);
        if claim & IN_FLIGHT_CONFIRMED != 0 {
            Some((claim & !IN_FLIGHT_CONFIRMED).wrapping_sub(1))
        } else if claim != 0
            && cursor
                == (Cursor {
                    pos: claim,
                    claimer: row + 1,
                })
                .value()
        {
            Some(claim - 1)
        } else {
            None
        }
    }

    /// A reaper's step for dead member `row` (whose `in_flight` word is `in_flight`): the message
    /// it held goes on the redelivery list (even with no member left: the group keeps its backlog
    /// for the next one), the redeliveries it had taken go back up for grabs, and its claim word
    /// is cleared. It always completes, so the reaper frees the row whatever the list holds: when
    /// the list is full, the message stays pending for the group, claimed by nobody, and
    /// [`GroupView::recover_unclaimed`] lists it once an entry is free (until then it is part
    /// of the group's backlog like any message behind the cursor).
    pub fn reclaim_dead(&self, row: u32, in_flight: &AtomicU64) -> Reclaimed {
        let mut done = Reclaimed::default();
        if let Some(pos) = self.dead_claim(row, in_flight) {
            if self.ring.holds(pos, self.bit) {
                if self.push_redelivery(pos) {
                    done.redelivered += 1;
                } else {
                    done.unlisted += 1;
                }
            }
        }
        in_flight.store(0, Ordering::SeqCst);
        done.redelivered += self.reoffer_taken(row);
        done
    }

    /// Lists for redelivery, while the list has room, every message behind the group's cursor
    /// that the group still holds and that nobody has: no member's claim word names it
    /// (`claimed(pos)`, asked of every member row still in the table, dead or alive) and no
    /// entry of the list does. Those are messages of dead members whose reap found the list full
    /// ([`GroupView::reclaim_dead`]). Returns how many it listed.
    ///
    /// Only a reaper calls this, under the table lock, so nobody else adds entries meanwhile;
    /// live members go on claiming and acknowledging. A member names a position in its claim word
    /// before the cursor passes it, and clears the group's bit in the slot before it forgets the
    /// claim or empties its entry. So a position that holds the bit before the names are read
    /// (the cursor first) and still holds it after was held by no member in between, and no
    /// member can take it now except through the list.
    pub fn recover_unclaimed(&self, claimed: impl Fn(u64) -> bool) -> u64 {
        let room = self.redeliver.len() as u64;
        if u64::from(self.redeliver_count.load(Ordering::Acquire)) >= room {
            return 0;
        }
        let head = self.ring.head.load(Ordering::SeqCst);
        let cursor = Cursor::read(self.cursor.load(Ordering::SeqCst), head).pos;
        let from = head.saturating_sub(self.ring.capacity());
        let mut listed = 0;
        let mut pos = from;
        while pos < cursor.min(head) {
            if self.ring.holds(pos, self.bit)
                && !claimed(pos)
                && !self.listed(pos)
                && self.ring.holds(pos, self.bit)
            {
                if !self.push_redelivery(pos) {
                    break;
                }
                listed += 1;
            }
            pos += 1;
        }
        listed
    }

    /// True when an entry of the redelivery list names position `pos`.
    fn listed(&self, pos: u64) -> bool {
        self.redeliver.iter().any(|e| {
            let v = e.load(Ordering::SeqCst);
            let head = self.ring.head.load(Ordering::Acquire);
            v != 0 && Redelivery::read(v, head).pos == pos
        })
    }

    /// Puts position `pos` on the redelivery list, up for grabs. False if the list is full.
    pub fn push_redelivery(&self, pos: u64) -> bool {
        for e in self.redeliver {
            if e.compare_exchange(
                0,
                Redelivery { pos, owner: 0 }.value(),
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_ok()
            {
                self.redeliver_count.fetch_add(1, Ordering::AcqRel);
                return true;
            }
        }
        false
    }

    /// Redeliveries dead member `row` had taken: those whose message the group still holds go
    /// back up for grabs (even with no member left: the group keeps its backlog for the next
    /// one), the rest are emptied. Returns how many went back up.
    pub fn reoffer_taken(&self, row: u32) -> u64 {
        let mut reoffered = 0;
        for e in self.redeliver {
            let v = e.load(Ordering::Acquire);
            let head = self.ring.head.load(Ordering::Acquire);
            let Redelivery { pos, owner } = Redelivery::read(v, head);
            if v == 0 || owner != row + 1 {
                continue;
            }
            if self.ring.holds(pos, self.bit) {
                if e.compare_exchange(
                    v,
                    Redelivery { pos, owner: 0 }.value(),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
                {
                    reoffered += 1;
                }
            } else if e
                .compare_exchange(v, 0, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                saturating_dec(self.redeliver_count);
            }
        }
        reoffered
    }
}

/// What [`GroupView::reclaim_dead`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Reclaimed {
    /// Messages put up for grabs again: the one the member held and the redeliveries it had
    /// taken.
    pub redelivered: u64,
    /// The message the member held, left off a full redelivery list (0 or 1).
    pub unlisted: u64,
}

/// True when member claim word `in_flight` (an intent or a confirmed claim) names `pos`.
pub(crate) fn claim_names(in_flight: u64, pos: u64) -> bool {
    in_flight != 0 && in_flight & !IN_FLIGHT_CONFIRMED == pos.wrapping_add(1)
}

/// Marks a member's own claim of `pos` confirmed (unless another member already did).
pub(crate) fn confirm(in_flight: &AtomicU64, pos: u64) {
    let _ = in_flight.compare_exchange(
        pos.wrapping_add(1),
        pos.wrapping_add(1) | IN_FLIGHT_CONFIRMED,
        Ordering::SeqCst,
        Ordering::Relaxed,
    );
}

/// Forgets a member's claim once its message is released.
pub(crate) fn forget(in_flight: &AtomicU64) {
    in_flight.store(0, Ordering::Release);
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::blocks::ring::loom_tests::{model, model_bounded, shared, Shared};
    use crate::blocks::ring::{Addressed, SlotWrite, TestRow};
    use loom::sync::Arc;

    /// How far member A gets before it dies.
    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    enum Death {
        /// After moving the cursor, before confirming its own claim.
        Unconfirmed,
        /// After confirming its claim, before handling the message.
        Confirmed,
        /// After handling the message and releasing its slot, before forgetting the claim.
        Released,
    }

    /// A group (consumer 0) and its members' claim words (rows 0, 1 and 2).
    struct Group {
        s: Arc<Shared>,
        cursor: AtomicU64,
        redeliver: Vec<AtomicU64>,
        redeliver_count: AtomicU32,
        in_flight: [AtomicU64; 3],
        a_dead: AtomicU64,
        /// Messages handled by the group so far.
        handled: AtomicU64,
        /// Messages published to the group.
        messages: u64,
    }

    impl Group {
        /// A group (consumer bit 0 of a ring of two whose consumers `active` joined at 0) with
        /// `redeliver` entries on its redelivery list, to handle `messages`.
        fn new(active: u64, redeliver: usize, messages: u64) -> Arc<Group> {
            Arc::new(Group {
                s: shared(2, active),
                cursor: AtomicU64::new(0),
                redeliver: (0..redeliver).map(|_| AtomicU64::new(0)).collect(),
                redeliver_count: AtomicU32::new(0),
                in_flight: [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)],
                a_dead: AtomicU64::new(0),
                handled: AtomicU64::new(0),
                messages,
            })
        }

        fn view(&self) -> GroupView<'_> {
            GroupView {
                ring: self.s.view(),
                bit: 1,
                cursor: &self.cursor,
                redeliver: &self.redeliver,
                redeliver_count: &self.redeliver_count,
            }
        }

        fn in_flight_of<'s>(&'s self) -> impl Fn(u32) -> Option<&'s AtomicU64> + 's {
            move |r| self.in_flight.get(r as usize)
        }

        fn all_handled(&self) -> bool {
            self.handled.load(Ordering::SeqCst) == self.messages
        }
    }

    /// Two messages are waiting for a group of two members. Member A claims one and dies at
    /// `death`; member B handles messages until the group has handled both; a reaper, once A is dead, reclaims A's claim as the real reap
    /// does. Every message is handled exactly once (A's unreleased claim by B, through the
    /// redelivery list), the reaper redelivers exactly A's claim when A had not released it and
    /// nothing otherwise, and every slot is released in the end.
    fn member_dies(death: Death) {
        model(move || {
            let g = Group::new(1, 2, 2);
            // Both messages are published before the members start (the ring models cover a
            // consumer racing its publisher; a publisher racing the members makes the model too
            // big): the publisher runs on a thread of its own, joined before the others start.
            let g1 = g.clone();
            loom::thread::spawn(move || (1..=2).for_each(|v| g1.s.publish(v)))
                .join()
                .unwrap();
            let g2 = g.clone();
            let a = loom::thread::spawn(move || {
                let view = g2.view();
                let claimed = g2.s.wait(|| {
                    if g2.all_handled() {
                        return Some(None);
                    }
                    view.claim_unconfirmed(1, &g2.in_flight[0], g2.in_flight_of(), None)
                        .map(Some)
                });
                let mut handled = None;
                if let Some(pos) = claimed {
                    if death != Death::Unconfirmed {
                        confirm(&g2.in_flight[0], pos);
                    }
                    if death == Death::Released {
                        handled = Some(view.ring.slot(pos).topic_hash.load(Ordering::Relaxed));
                        view.ring.release(pos, 1);
                        g2.handled.fetch_add(1, Ordering::SeqCst);
                    }
                }
                g2.a_dead.store(1, Ordering::SeqCst);
                g2.s.wake();
                (claimed, handled)
            });
            let g3 = g.clone();
            let b = loom::thread::spawn(move || {
                let view = g3.view();
                let mut got = Vec::new();
                loop {
                    let next = g3.s.wait(|| {
                        if let Some((k, pos)) = view.take_redelivery(2) {
                            return Some(Some((Some(k), pos)));
                        }
                        if let Some(pos) = view.claim(2, &g3.in_flight[1], g3.in_flight_of(), None)
                        {
                            return Some(Some((None, pos)));
                        }
                        g3.all_handled().then_some(None)
                    });
                    let Some((k, pos)) = next else { break };
                    got.push(view.ring.slot(pos).topic_hash.load(Ordering::Relaxed));
                    view.ring.release(pos, 1);
                    match k {
                        Some(k) => view.finish_redelivery(k),
                        None => forget(&g3.in_flight[1]),
                    }
                    g3.handled.fetch_add(1, Ordering::SeqCst);
                    g3.s.wake();
                }
                got
            });
            let g4 = g.clone();
            let reaper = loom::thread::spawn(move || {
                g4.s.wait(|| (g4.a_dead.load(Ordering::SeqCst) == 1).then_some(()));
                let view = g4.view();
                let mut redelivered = None;
                if let Some(pos) = view.dead_claim(0, &g4.in_flight[0]) {
                    if view.ring.holds(pos, view.bit) {
                        assert!(view.push_redelivery(pos));
                        redelivered = Some(pos);
                    }
                }
                g4.in_flight[0].store(0, Ordering::Relaxed);
                assert_eq!(view.reoffer_taken(0), 0);
                g4.s.wake();
                redelivered
            });
            let (a_claimed, a_handled) = a.join().unwrap();
            let mut all = b.join().unwrap();
            let redelivered = reaper.join().unwrap();
            all.extend(a_handled);
            all.sort();
            assert_eq!(all, vec![1, 2], "handled {all:?}, A died {death:?}");
            match death {
                Death::Released => assert_eq!(redelivered, None),
                _ => assert_eq!(redelivered, a_claimed),
            }
            assert!(g.s.all_released(2));
            assert_eq!(g.redeliver_count.load(Ordering::SeqCst), 0);
        });
    }

    /// Issue 20, defect 6, for groups: a publisher stopped between announcing a position for a
    /// fan-out consumer and committing it, while another publisher sends a message to a group.
    /// The group's member passes the position announced for others (without that it waits at
    /// the group's cursor for ever, and the model deadlocks: the stalled publisher commits only
    /// once the group has its message). The member gets the group's message, the fan-out
    /// consumer (which reads after the others are done) its own, and every slot is released.
    #[test]
    fn loom_a_group_passes_a_claim_announced_for_others() {
        model_bounded(2, || {
            let g = Group::new(0b11, 2, 1);
            let rows: Arc<[TestRow; 2]> = Arc::new(Default::default());
            let (g1, rows1) = (g.clone(), rows.clone());
            let stalled = loom::thread::spawn(move || {
                let (r, row) = (g1.s.view(), &rows1[0]);
                let run = g1.s.wait(|| r.claim_run(1, &row.intent).ok());
                let to = r.announce(&run, || 0b10, &row.intent, &row.addressed);
                assert_eq!(to, Addressed::To(0b10));
                // A member asleep at this position before the announcement looks again within
                // `SEAL_AFTER` in the product (its blind sleep's timeout); here, a wake-up.
                g1.s.wake();
                // Stopped here until the group has handled its message.
                g1.s.wait(|| g1.all_handled().then_some(()));
                assert!(r.commit_slot(run.first, 0b10, &SlotWrite::value(10, 0), &row.held));
                r.give_back(run.end(), run.end(), &row.intent, &row.addressed);
                g1.s.wake();
            });
            let (g2, rows2) = (g.clone(), rows.clone());
            let publisher = loom::thread::spawn(move || {
                let (r, row) = (g2.s.view(), &rows2[1]);
                let run = g2.s.wait(|| r.claim_run(1, &row.intent).ok());
                assert_eq!(r.finish_publish(run, || 0b01, &[20], row).1, 1);
                g2.s.wake();
            });
            let (g3, rows3) = (g.clone(), rows.clone());
            let member = loom::thread::spawn(move || {
                let view = g3.view();
                let rows = rows3.iter().map(|w| (&w.intent, &w.addressed));
                let announced = |pos| view.ring.announced(pos, rows.clone());
                let past: &dyn Fn(u64) -> Option<u64> = &announced;
                let pos =
                    g3.s.wait(|| view.claim(1, &g3.in_flight[0], g3.in_flight_of(), Some(past)));
                let got = view.ring.slot(pos).topic_hash.load(Ordering::Relaxed);
                view.ring.release(pos, 1);
                forget(&g3.in_flight[0]);
                g3.handled.fetch_add(1, Ordering::SeqCst);
                g3.s.wake();
                got
            });
            stalled.join().unwrap();
            publisher.join().unwrap();
            assert_eq!(member.join().unwrap(), 20);
            let r = g.s.view();
            let mine = (0..2).find(|&p| r.poll(p, 0b10) == Poll::Ready);
            let pos = mine.expect("the fan-out consumer's message");
            assert_eq!(r.slot(pos).topic_hash.load(Ordering::Relaxed), 10);
            r.release(pos, 0b10);
            assert!(g.s.all_released(2));
        });
    }

    #[test]
    fn loom_group_member_dies_with_an_unconfirmed_claim() {
        member_dies(Death::Unconfirmed);
    }

    #[test]
    fn loom_group_member_dies_with_a_confirmed_claim() {
        member_dies(Death::Confirmed);
    }

    #[test]
    fn loom_group_member_dies_after_releasing_its_message() {
        member_dies(Death::Released);
    }

    /// Two messages wait for a group whose redelivery list has room for one. Two members
    /// (rows 0 and 1, on one thread, one after the other) each claim a message and die holding
    /// it. A reaper reaps both: the first message goes on the list, the second finds it full,
    /// and the reap completes all the same (both claim words cleared, so both rows can be
    /// freed: a row left in the table would keep the group counted as having a member for ever).
    /// A member started after the reap (row 2, a restarted worker) handles what it finds while
    /// the reaper reaps again after every change, as blocked and idle processes do; the message
    /// left off the list is listed once there is room. Every message is handled exactly once and
    /// everything is released.
    #[test]
    fn loom_group_reap_completes_when_the_redelivery_list_is_full() {
        // Four threads: a tighter bound than the ring models' keeps it to seconds.
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(2);
        b.check(|| {
            let g = Group::new(1, 1, 2);
            let g1 = g.clone();
            loom::thread::spawn(move || (1..=2).for_each(|v| g1.s.publish(v)))
                .join()
                .unwrap();
            let g2 = g.clone();
            let dying = loom::thread::spawn(move || {
                let view = g2.view();
                for row in 0..2 {
                    let pos = view.claim(
                        row + 1,
                        &g2.in_flight[row as usize],
                        g2.in_flight_of(),
                        None,
                    );
                    assert_eq!(pos, Some(u64::from(row)));
                }
                g2.a_dead.store(1, Ordering::SeqCst);
                g2.s.wake();
            });
            let g3 = g.clone();
            let reaper = loom::thread::spawn(move || {
                g3.s.wait(|| (g3.a_dead.load(Ordering::SeqCst) == 1).then_some(()));
                let view = g3.view();
                let first = view.reclaim_dead(0, &g3.in_flight[0]);
                let second = view.reclaim_dead(1, &g3.in_flight[1]);
                let cleared = g3.in_flight[..2]
                    .iter()
                    .all(|w| w.load(Ordering::SeqCst) == 0);
                // The worker starts once the dead rows are gone.
                g3.a_dead.store(2, Ordering::SeqCst);
                g3.s.wake();
                let mut listed = 0;
                loop {
                    let n = g3.s.wait(|| {
                        if g3.all_handled() {
                            return Some(0);
                        }
                        let n = view.recover_unclaimed(|pos| {
                            g3.in_flight
                                .iter()
                                .any(|w| claim_names(w.load(Ordering::SeqCst), pos))
                        });
                        (n > 0).then_some(n)
                    });
                    if n == 0 {
                        break;
                    }
                    listed += n;
                    g3.s.wake();
                }
                (first, second, cleared, listed)
            });
            let g4 = g.clone();
            let worker = loom::thread::spawn(move || {
                g4.s.wait(|| (g4.a_dead.load(Ordering::SeqCst) == 2).then_some(()));
                let view = g4.view();
                let mut got = Vec::new();
                loop {
                    let next = g4.s.wait(|| {
                        if let Some((k, pos)) = view.take_redelivery(3) {
                            return Some(Some((Some(k), pos)));
                        }
                        if let Some(pos) = view.claim(3, &g4.in_flight[2], g4.in_flight_of(), None)
                        {
                            return Some(Some((None, pos)));
                        }
                        g4.all_handled().then_some(None)
                    });
                    let Some((k, pos)) = next else { break };
                    got.push(view.ring.slot(pos).topic_hash.load(Ordering::Relaxed));
                    view.ring.release(pos, 1);
                    match k {
                        Some(k) => view.finish_redelivery(k),
                        None => forget(&g4.in_flight[2]),
                    }
                    g4.handled.fetch_add(1, Ordering::SeqCst);
                    g4.s.wake();
                }
                got
            });
            dying.join().unwrap();
            let (first, second, cleared, listed) = reaper.join().unwrap();
            let mut got = worker.join().unwrap();
            assert_eq!(
                first,
                Reclaimed {
                    redelivered: 1,
                    unlisted: 0
                }
            );
            assert_eq!(
                second,
                Reclaimed {
                    redelivered: 0,
                    unlisted: 1
                }
            );
            assert!(cleared, "the reap left a dead member's claim in its row");
            assert_eq!(listed, 1);
            got.sort();
            assert_eq!(got, vec![1, 2]);
            assert!(g.s.all_released(2));
            assert_eq!(g.redeliver_count.load(Ordering::SeqCst), 0);
        });
    }
}
