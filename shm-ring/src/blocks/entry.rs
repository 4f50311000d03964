//! A consumer entry as the handles of its occupant see it: its generation, and its cursor read
//! as a position.
//!
//! An entry (one bit of the pending masks) is reused once its consumer has left and been
//! drained, so a handle made for one occupant (an interest handle, a missed counter, a
//! publisher's parsed copy of its interest) can outlive it. Every occupant gets a new
//! *generation*, bumped under the table lock before any of the entry's words is reset for it;
//! a handle remembers the generation it was made for and reads or writes the entry only while
//! the generation is still that one ([`read_for`]; writers check it under the table lock).
//!
//! The `cursor` word is a packed [`Cursor`] for fan-out subscribers and groups, and a plain
//! position for a lossy subscriber (publishers move it by CAS, `RingView::evict`): whoever reads
//! it as a position goes through [`position`].

use crate::blocks::atomics::{fence, AtomicU32, AtomicU64, Ordering};
use crate::blocks::group::Cursor;

/// A consumer entry's `cursor` word as a position, `near` being the ring head: a lossy
/// consumer's is a plain position, every other consumer's a [`Cursor`].
pub(crate) fn position(cursor: u64, lossy: bool, near: u64) -> u64 {
    if lossy {
        cursor
    } else {
        Cursor::read(cursor, near).pos
    }
}

/// Gives the entry whose generation word is `generation` to a new occupant (under the table
/// lock, before any other word of the entry is reset): returns the new occupant's generation,
/// never 0 (which no handle holds). The Release fence orders the bump before the resets that
/// follow it, so a reader that sees a reset value (or anything written after it) sees the bump.
pub(crate) fn renew(generation: &AtomicU32) -> u32 {
    let g = match generation.load(Ordering::Relaxed).wrapping_add(1) {
        0 => 1,
        g => g,
    };
    generation.store(g, Ordering::Relaxed);
    fence(Ordering::Release);
    g
}

/// True while the entry whose generation word is `generation` is still the one of generation
/// `mine` (it may have been left and drained, but not yet given to another occupant).
pub(crate) fn is_current(generation: &AtomicU32, mine: u32) -> bool {
    generation.load(Ordering::Acquire) == mine
}

/// `value` of the entry for the occupant of generation `mine`: `None` once the entry has been
/// given to another occupant, whose value it would be (a seqlock read: the generation is checked
/// again after the value, behind an Acquire fence that pairs with [`renew`]'s).
pub(crate) fn read_for(generation: &AtomicU32, mine: u32, value: &AtomicU64) -> Option<u64> {
    if !is_current(generation, mine) {
        return None;
    }
    let v = value.load(Ordering::Relaxed);
    fence(Ordering::Acquire);
    (generation.load(Ordering::Relaxed) == mine).then_some(v)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_lossy_cursor_is_a_plain_position_and_others_are_packed() {
        let head = (1 << 16) + 5;
        let lossy = head - 5;
        assert_eq!(position(lossy, true, head), lossy);
        let packed = Cursor {
            pos: head - 5,
            claimer: 3,
        }
        .value();
        assert_eq!(position(packed, false, head), head - 5);
    }

    #[test]
    fn a_handle_reads_only_its_own_generation() {
        let (generation, missed) = (AtomicU32::new(u32::MAX), AtomicU64::new(9));
        let mine = renew(&generation);
        assert_eq!(mine, 1, "0 is never a generation");
        assert_eq!(read_for(&generation, mine, &missed), Some(9));
        let next = renew(&generation);
        assert_eq!(read_for(&generation, mine, &missed), None);
        assert_eq!(read_for(&generation, next, &missed), Some(9));
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::blocks::ring::loom_tests::{model, shared};
    use crate::blocks::ring::Poll;
    use loom::sync::Arc;

    /// Issue 20, defect 11: a lossy subscriber's cursor read as a packed word. A publisher sends
    /// two messages to a lossy consumer, which reads what it finds (copy, then claim by CAS of
    /// its plain-position cursor, as it does) and counts what it has claimed; a third thread
    /// reads the consumer's backlog as `pending()` and `inspect` do. The backlog never counts a
    /// message the consumer has already claimed, nor one not yet published.
    #[test]
    fn loom_a_lossy_cursor_reads_as_its_position() {
        model(|| {
            let s = shared(2, 0b1);
            let cursor = Arc::new(AtomicU64::new(0));
            let claimed = Arc::new(AtomicU64::new(0));
            let s1 = s.clone();
            let publisher = loom::thread::spawn(move || (1..=2).for_each(|v| s1.publish(v)));
            let (s2, c2, k2) = (s.clone(), cursor.clone(), claimed.clone());
            let reader = loom::thread::spawn(move || {
                let r = s2.view();
                for _ in 0..2 {
                    let c = c2.load(Ordering::SeqCst);
                    if r.poll(c, 1) != Poll::Ready {
                        return;
                    }
                    if c2
                        .compare_exchange(c, c + 1, Ordering::SeqCst, Ordering::SeqCst)
                        .is_ok()
                    {
                        k2.fetch_add(1, Ordering::SeqCst);
                        r.release(c, 1);
                        s2.wake();
                    }
                }
            });
            let (s3, c3, k3) = (s.clone(), cursor.clone(), claimed.clone());
            let observer = loom::thread::spawn(move || {
                let done = k3.load(Ordering::SeqCst);
                let word = c3.load(Ordering::SeqCst);
                let head = s3.head.load(Ordering::SeqCst);
                let backlog = head.saturating_sub(position(word, true, head));
                assert!(
                    backlog <= head - done.min(head),
                    "backlog {backlog} with head {head} and {done} claimed"
                );
            });
            publisher.join().unwrap();
            reader.join().unwrap();
            observer.join().unwrap();
        });
    }

    /// Issue 20, defect 10: a handle outlives its entry. The old occupant's missed count is 5;
    /// one thread gives the entry to a new occupant (new generation, count reset, then the new
    /// occupant misses 10 messages), while another reads the count through the old occupant's
    /// handle. The handle reads the old occupant's count or learns that the entry is no longer
    /// its own: never the new occupant's count.
    #[test]
    fn loom_a_stale_handle_never_reads_the_next_occupant() {
        model(|| {
            let generation = Arc::new(AtomicU32::new(0));
            let missed = Arc::new(AtomicU64::new(5));
            let old = renew(&generation);
            let (g1, m1) = (generation.clone(), missed.clone());
            let reuse = loom::thread::spawn(move || {
                let new = renew(&g1);
                m1.store(0, Ordering::Relaxed);
                m1.fetch_add(10, Ordering::Relaxed);
                new
            });
            let (g2, m2) = (generation.clone(), missed.clone());
            let handle = loom::thread::spawn(move || read_for(&g2, old, &m2));
            let new = reuse.join().unwrap();
            let read = handle.join().unwrap();
            assert!(
                matches!(read, None | Some(5)),
                "the old handle read {read:?}"
            );
            assert_eq!(read_for(&generation, new, &missed), Some(10));
            assert_eq!(read_for(&generation, old, &missed), None);
        });
    }
}
