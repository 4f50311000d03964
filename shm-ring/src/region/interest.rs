//! Reading and rewriting what a consumer wants: the `Interest` table of its entry (see
//! `layout.rs` and `docs/delivery.md`). Rewrites happen under the table lock; reads are
//! lock-free seqlock copies (`blocks/interest.rs`), and nothing read is trusted: a torn, corrupt or unreadable table
//! counts as wanting everything, which costs speed but never a message.

use super::layout::{Interest, INTEREST_WORDS};
use super::Region;
use crate::BusError;

/// Bytes of pattern text an interest table holds.
pub(crate) const INTEREST_BYTES: usize = INTEREST_WORDS * 8;

/// A consumer's interest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Wanted {
    /// Every topic.
    All,
    /// Topics matching any of these patterns (topic grammar); none: no topic.
    Patterns(Vec<String>),
}

impl Wanted {
    /// What a subscriber asking for `topics` (`None`: every topic) wants; a pattern that does
    /// not parse is [`BusError::BadTopic`] naming it.
    pub(crate) fn from_topics(topics: Option<&[String]>) -> Result<Wanted, BusError> {
        let Some(topics) = topics else {
            return Ok(Wanted::All);
        };
        for t in topics {
            engine_core::Topic::parse(t).map_err(|e| BusError::BadTopic {
                topic: t.clone(),
                reason: e.to_string(),
            })?;
        }
        Ok(Wanted::Patterns(topics.to_vec()))
    }

    /// `self` plus `other` (a group's interest grows as its members register theirs).
    pub(crate) fn union(&self, other: &Wanted) -> Wanted {
        match (self, other) {
            (Wanted::Patterns(a), Wanted::Patterns(b)) => {
                let mut all = a.clone();
                for p in b {
                    if !all.contains(p) {
                        all.push(p.clone());
                    }
                }
                Wanted::Patterns(all)
            }
            _ => Wanted::All,
        }
    }
}

/// The table bytes of `patterns`, or `None` if they do not fit.
fn encode(patterns: &[String]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for p in patterns {
        let len = u16::try_from(p.len()).ok()?;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(p.as_bytes());
    }
    (out.len() <= INTEREST_BYTES).then_some(out)
}

/// The patterns in table bytes; `None` if they are not well formed (a corrupt table).
fn decode(bytes: &[u8]) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let (len, tail) = rest.split_first_chunk::<2>()?;
        let len = u16::from_le_bytes(*len) as usize;
        let text = tail.get(..len)?;
        out.push(std::str::from_utf8(text).ok()?.to_string());
        rest = &tail[len..];
    }
    Some(out)
}

impl Region {
    /// Consumer `idx`'s interest table.
    fn interest_table(&self, idx: usize) -> Option<&Interest> {
        self.consumers().get(idx).map(|c| &c.interest)
    }

    /// Reads consumer `idx`'s interest: its version and what it wants.
    pub(crate) fn read_interest(&self, idx: usize) -> (u64, Wanted) {
        let Some(t) = self.interest_table(idx) else {
            return (0, Wanted::All);
        };
        let mut words = [0u64; INTEREST_WORDS];
        let Some(copy) = t.read(&mut words) else {
            return (u64::MAX, Wanted::All);
        };
        let v = copy.version;
        if copy.all || copy.len > INTEREST_BYTES {
            return (v, Wanted::All);
        }
        let n = copy.len.div_ceil(8);
        let bytes: Vec<u8> = words[..n].iter().flat_map(|w| w.to_le_bytes()).collect();
        match decode(&bytes[..copy.len]) {
            Some(patterns) => (v, Wanted::Patterns(patterns)),
            None => (v, Wanted::All),
        }
    }
}

impl Region {
    /// Rewrites consumer `idx`'s interest (patterns that do not fit become "everything") and
    /// bumps the interest epoch so publishers look again. Only under the table lock: callers go
    /// through `TableGuard::write_interest`.
    pub(crate) fn write_interest_locked(&self, idx: usize, wanted: &Wanted) {
        let Some(t) = self.interest_table(idx) else {
            return;
        };
        let bytes = match wanted {
            Wanted::All => None,
            Wanted::Patterns(p) => encode(p),
        };
        t.write(bytes.as_deref(), &self.header().interest_epoch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_round_trip_and_overflow_is_refused() {
        let p = vec!["Market.Data.{symbol}".to_string(), "订单.+动作".to_string()];
        assert_eq!(decode(&encode(&p).unwrap()).unwrap(), p);
        let big = vec!["x".repeat(INTEREST_BYTES)];
        assert!(encode(&big).is_none());
        assert!(
            decode(&[5, 0, b'a']).is_none(),
            "a length past the end is corrupt"
        );
        assert!(decode(&[1, 0, 0xff]).is_none(), "not UTF-8 is corrupt");
    }

    #[test]
    fn a_union_grows_and_everything_absorbs() {
        let a = Wanted::Patterns(vec!["a".into()]);
        let b = Wanted::Patterns(vec!["b".into(), "a".into()]);
        assert_eq!(a.union(&b), Wanted::Patterns(vec!["a".into(), "b".into()]));
        assert_eq!(a.union(&Wanted::All), Wanted::All);
    }
}
