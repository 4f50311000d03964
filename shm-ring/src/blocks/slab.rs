//! The slab: payload blocks in size classes, each class with a lock-free free list.
//!
//! A free list is a Treiber stack of block indices. The head is one `AtomicU64` holding the top
//! index and an ABA tag ([`TaggedIndex`]); each block's link to the next free block lives in a
//! separate array of `AtomicU32` (never inside the block, so payload bytes can never corrupt a
//! list). Everything is an index, never a pointer, because every process maps the region at a
//! different address.
//!
//! Crash safety: pop and push each take effect in a single CAS, so a process killed anywhere
//! leaves a well-formed stack; at worst a block it popped (or was about to push) is missing from
//! the list. A publisher names what it pops in its row at once ([`FreeList::pop`]), so a
//! reap gives it back; what no word names is recovered by the sweep (`Bus` detach / reap when no live process is
//! left), which rebuilds every list from scratch.
//!
//! Every index read from the mapping is range-checked before use (invariant 4).

use crate::blocks::atomics::{AtomicU32, AtomicU64, Ordering};

/// "No block": the end of a free list.
pub(crate) const NIL: u32 = u32::MAX;
/// The link of a block that was popped and not pushed back yet. A pop that finds it on the block
/// at the top of an unchanged list knows the list is damaged (a cycle through a block in use, or
/// a block freed twice) and refuses to hand that block out a second time.
pub(crate) const TAKEN: u32 = u32::MAX - 1;

/// A free-list head: the top block index and a tag bumped by every successful CAS, packed into one
/// `u64` so a pop/push that raced with a pop+push of the same block (ABA) fails its CAS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TaggedIndex {
    pub index: u32,
    pub tag: u32,
}

impl TaggedIndex {
    /// Unpacks a head word.
    pub fn from(v: u64) -> Self {
        TaggedIndex {
            index: v as u32,
            tag: (v >> 32) as u32,
        }
    }
    /// Packs into a head word.
    pub fn value(self) -> u64 {
        (self.tag as u64) << 32 | self.index as u64
    }
}

/// A free list found to be malformed (an index out of its class range, a cycle, or a block on it
/// that is in use).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct BadLink(pub u32);

/// One class's free list: its head and the link array of the whole slab; block indices of this
/// class are `first..first + count`.
pub(crate) struct FreeList<'a> {
    pub head: &'a AtomicU64,
    pub links: &'a [AtomicU32],
    pub first: u32,
    pub count: u32,
}

impl FreeList<'_> {
    fn check(&self, idx: u32) -> Result<(), BadLink> {
        if idx.wrapping_sub(self.first) < self.count && (idx as usize) < self.links.len() {
            Ok(())
        } else {
            Err(BadLink(idx))
        }
    }

    /// Takes a block off the list; `Ok(None)` when the class is exhausted. Names the block
    /// (index + 1) in `owner`, if given, right after the CAS that takes it, so that a process
    /// killed from there on leaves the block where a reaper finds it (`Row::held_block`): only a
    /// kill between the CAS and that store strands it.
    pub fn pop(&self, owner: Option<&AtomicU32>) -> Result<Option<u32>, BadLink> {
        let mut cur = self.head.load(Ordering::Acquire);
        loop {
            let top = TaggedIndex::from(cur);
            if top.index == NIL {
                return Ok(None);
            }
            self.check(top.index)?;
            // May be stale if another process popped `top` meanwhile; the tag makes the CAS fail then.
            let next = self.links[top.index as usize].load(Ordering::Acquire);
            if next == TAKEN {
                let now = self.head.load(Ordering::Acquire);
                if now == cur {
                    // `top` is on the list and handed out: a cycle or a double free.
                    return Err(BadLink(top.index));
                }
                cur = now;
                crate::blocks::atomics::spin_hint();
                continue;
            }
            let new = TaggedIndex {
                index: next,
                tag: top.tag.wrapping_add(1),
            };
            match self.head.compare_exchange_weak(
                cur,
                new.value(),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    if let Some(owner) = owner {
                        owner.store(top.index + 1, Ordering::Release);
                    }
                    self.links[top.index as usize].store(TAKEN, Ordering::Release);
                    return Ok(Some(top.index));
                }
                Err(v) => {
                    cur = v;
                    crate::blocks::atomics::spin_hint();
                }
            }
        }
    }

    /// Returns block `idx` (which must belong to this class and be owned by the caller).
    pub fn push(&self, idx: u32) -> Result<(), BadLink> {
        self.check(idx)?;
        let mut cur = self.head.load(Ordering::Acquire);
        loop {
            let top = TaggedIndex::from(cur);
            self.links[idx as usize].store(top.index, Ordering::Release);
            let new = TaggedIndex {
                index: idx,
                tag: top.tag.wrapping_add(1),
            };
            match self.head.compare_exchange_weak(
                cur,
                new.value(),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(()),
                Err(v) => {
                    cur = v;
                    crate::blocks::atomics::spin_hint();
                }
            }
        }
    }

    /// Rebuilds the list holding every block of the class. Only for the sweep, when no other
    /// process can touch the list.
    pub fn reset(&self) {
        for i in 0..self.count {
            let idx = self.first + i;
            let next = if i + 1 < self.count { idx + 1 } else { NIL };
            self.links[idx as usize].store(next, Ordering::Relaxed);
        }
        let tag = TaggedIndex::from(self.head.load(Ordering::Relaxed))
            .tag
            .wrapping_add(1);
        let top = if self.count > 0 { self.first } else { NIL };
        self.head
            .store(TaggedIndex { index: top, tag }.value(), Ordering::Release);
    }

    /// Walks the list (bounded by the class size) and counts the blocks on it; `Err` if malformed.
    pub fn len(&self) -> Result<u32, BadLink> {
        let mut n = 0;
        let mut idx = TaggedIndex::from(self.head.load(Ordering::Acquire)).index;
        let mut prev = idx;
        while idx != NIL {
            if idx == TAKEN {
                // `prev` is on the list yet marked handed out.
                return Err(BadLink(prev));
            }
            self.check(idx)?;
            prev = idx;
            n += 1;
            if n > self.count {
                return Err(BadLink(idx));
            }
            idx = self.links[idx as usize].load(Ordering::Acquire);
        }
        Ok(n)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn list(n: u32) -> (AtomicU64, Vec<AtomicU32>) {
        let head = AtomicU64::new(0);
        let links = (0..n).map(|_| AtomicU32::new(0)).collect();
        (head, links)
    }

    #[test]
    fn tagged_index_round_trips() {
        let t = TaggedIndex {
            index: 7,
            tag: 0xdead_beef,
        };
        assert_eq!(TaggedIndex::from(t.value()), t);
    }

    #[test]
    fn pop_push_lifo_and_exhaustion() {
        let (head, links) = list(4);
        let fl = FreeList {
            head: &head,
            links: &links,
            first: 1,
            count: 3,
        };
        fl.reset();
        assert_eq!(fl.len(), Ok(3));
        let a = fl.pop(None).unwrap().unwrap();
        let b = fl.pop(None).unwrap().unwrap();
        let c = fl.pop(None).unwrap().unwrap();
        assert_eq!((a, b, c), (1, 2, 3));
        assert_eq!(fl.pop(None), Ok(None));
        fl.push(b).unwrap();
        assert_eq!(fl.pop(None), Ok(Some(b)));
        assert_eq!(fl.push(0), Err(BadLink(0)));
        assert_eq!(fl.push(4), Err(BadLink(4)));
    }

    #[test]
    fn corrupt_links_are_reported() {
        let (head, links) = list(4);
        let fl = FreeList {
            head: &head,
            links: &links,
            first: 0,
            count: 4,
        };
        fl.reset();
        links[0].store(99, Ordering::Relaxed);
        assert_eq!(fl.pop(None), Ok(Some(0)));
        assert_eq!(fl.pop(None), Err(BadLink(99)));
        head.store(TaggedIndex { index: 1, tag: 0 }.value(), Ordering::Relaxed);
        links[1].store(1, Ordering::Relaxed); // a cycle
        assert!(fl.len().is_err());
    }

    #[test]
    fn a_cycle_never_hands_a_block_out_twice() {
        let (head, links) = list(4);
        let fl = FreeList {
            head: &head,
            links: &links,
            first: 0,
            count: 4,
        };
        fl.reset();
        // One 4-byte write: 0 -> 1 -> 0 -> 1 ...
        links[1].store(0, Ordering::Relaxed);
        assert_eq!(fl.pop(None), Ok(Some(0)));
        assert_eq!(fl.pop(None), Ok(Some(1)));
        assert_eq!(fl.pop(None), Err(BadLink(0)));
        // After a push the block is free again and pops normally.
        fl.push(1).unwrap();
        assert_eq!(fl.pop(None), Ok(Some(1)));
    }

    #[test]
    fn threads_never_share_a_block() {
        let (head, links) = list(64);
        let fl = FreeList {
            head: &head,
            links: &links,
            first: 0,
            count: 64,
        };
        fl.reset();
        let owned: Vec<AtomicU32> = (0..64).map(|_| AtomicU32::new(0)).collect();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..20_000 {
                        if let Some(i) = fl.pop(None).unwrap() {
                            assert_eq!(owned[i as usize].swap(1, Ordering::AcqRel), 0);
                            owned[i as usize].store(0, Ordering::Release);
                            fl.push(i).unwrap();
                        }
                    }
                });
            }
        });
        assert_eq!(fl.len(), Ok(64));
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;

    /// Two threads pop and push concurrently on a two-block list: no block is ever handed out
    /// twice and the list ends whole.
    #[test]
    fn loom_free_list_pop_push() {
        // Bounded like the ring models: the TAKEN mark a pop leaves adds interleavings that make
        // the unbounded exploration run for tens of minutes.
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(3);
        b.check(|| {
            let state = Arc::new((
                AtomicU64::new(0),
                vec![AtomicU32::new(0), AtomicU32::new(0)],
                [AtomicU32::new(0), AtomicU32::new(0)],
            ));
            {
                let fl = FreeList {
                    head: &state.0,
                    links: &state.1,
                    first: 0,
                    count: 2,
                };
                fl.reset();
            }
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let st = state.clone();
                    loom::thread::spawn(move || {
                        let fl = FreeList {
                            head: &st.0,
                            links: &st.1,
                            first: 0,
                            count: 2,
                        };
                        for _ in 0..2 {
                            if let Some(i) = fl.pop(None).unwrap() {
                                assert_eq!(
                                    st.2[i as usize].swap(1, Ordering::AcqRel),
                                    0,
                                    "block handed out twice"
                                );
                                st.2[i as usize].store(0, Ordering::Release);
                                fl.push(i).unwrap();
                            }
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            let fl = FreeList {
                head: &state.0,
                links: &state.1,
                first: 0,
                count: 2,
            };
            assert_eq!(fl.len(), Ok(2));
        });
    }
}
