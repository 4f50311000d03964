//! Packed words of the region: several fields in one atomic `u64`, so that they change together
//! with one store or CAS. Each is a small named struct with `from(u64)` and `value()`; no other
//! code shifts or masks these words (see `docs/region-layout.md`).

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

/// A slot's `meta` word: the topic's length in bytes and the payload's codec id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SlotMeta {
    pub topic_len: u16,
    pub codec: u8,
}

impl SlotMeta {
    pub(crate) fn from(v: u64) -> SlotMeta {
        SlotMeta {
            topic_len: (v & 0xffff) as u16,
            codec: (v >> 16) as u8,
        }
    }

    pub(crate) fn value(self) -> u64 {
        self.topic_len as u64 | (self.codec as u64) << 16
    }
}

/// The header's table `lock` word: the owner's pid and the low 32 bits of its start time (0 when
/// the lock is free), so that a waiter can tell a live owner from a dead one or a recycled pid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LockWord {
    pub pid: u32,
    /// The owner's start time, truncated to 32 bits.
    pub start_time: u32,
}

impl LockWord {
    pub(crate) fn from(v: u64) -> LockWord {
        LockWord {
            pid: (v >> 32) as u32,
            start_time: v as u32,
        }
    }

    pub(crate) fn value(self) -> u64 {
        (self.pid as u64) << 32 | self.start_time as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip() {
        let c = Cursor {
            pos: 123_456_789,
            claimer: 42,
        };
        assert_eq!(Cursor::from(c.value()), c);
        let r = Redelivery { pos: 0, owner: 0 };
        assert_ne!(r.value(), 0, "an unowned position 0 is not an empty entry");
        assert_eq!(Redelivery::from(r.value()), r);
        let m = SlotMeta {
            topic_len: 512,
            codec: 2,
        };
        assert_eq!(SlotMeta::from(m.value()), m);
        let l = LockWord {
            pid: 4_000_000,
            start_time: u32::MAX,
        };
        assert_eq!(LockWord::from(l.value()), l);
        for near in [
            0u64,
            5,
            1 << 47,
            (1 << 48) - 1,
            1 << 48,
            (1 << 48) + 3,
            u64::MAX / 2,
        ] {
            for back in [0u64, 1, 4096] {
                let pos = near.saturating_sub(back);
                let c = Cursor { pos, claimer: 7 };
                assert_eq!(
                    widen(Cursor::from(c.value()).pos, near),
                    pos,
                    "{near} {back}"
                );
            }
            assert_eq!(widen(near.wrapping_add(1) & POS_MASK, near), near + 1);
        }
    }
}
