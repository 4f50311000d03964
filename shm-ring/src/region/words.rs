//! Packed words of the region: several fields in one atomic `u64`, so that they change together
//! with one store or CAS. Each is a small named struct with `from(u64)` and `value()`; no other
//! code shifts or masks these words (see `docs/region-layout.md`).

pub(crate) use crate::blocks::group::Cursor;
#[cfg(test)]
use crate::blocks::group::{widen, Redelivery};

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
/// the lock is free), to name the holder; whether it lives is told by its lock on the word's
/// bytes, not by these (`region/liveness.rs`).
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
            assert_eq!(
                widen(near.wrapping_add(1) & ((1 << 48) - 1), near),
                near + 1
            );
        }
    }
}
