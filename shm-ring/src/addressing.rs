//! Which consumers want a topic: a publisher's cache of the answer per topic, rebuilt when the
//! bus's interest epoch moves (a consumer joined, left, or rewrote its interest). On a hit, a
//! publish costs one load of the epoch and one hash lookup; on a miss it reads the live
//! consumers' interest tables (re-parsing only those whose version changed) and matches the
//! topic against their patterns with the topic grammar (`docs/topic-grammar.md`).
//!
//! The cache also remembers each topic's entry in the publisher's topic table (its row stats,
//! `region/stats.rs`), so that counting a message costs no lookup beyond this one.

use crate::blocks::atomics::Ordering;
use crate::blocks::interest::TopicCache;
use crate::region::interest::Wanted;
use crate::region::layout::{CONSUMER_LIVE, TOPIC_ENTRIES};
use crate::region::stats::OTHER;
use crate::region::Region;
use engine_core::Topic;
use std::collections::HashMap;

/// Topics remembered per publisher; past this the cache starts over (a publisher that uses a
/// new topic per message must not grow without bound).
const MAX_TOPICS: usize = 4096;

/// A consumer's interest, parsed.
enum Parsed {
    All,
    Patterns(Vec<Topic>),
}

impl Parsed {
    fn from(w: Wanted) -> Parsed {
        match w {
            Wanted::All => Parsed::All,
            // A pattern that does not parse (the table was written by a buggy or hostile
            // process) cannot be matched: take the consumer to want everything.
            Wanted::Patterns(p) => match p.iter().map(|s| Topic::parse(s)).collect() {
                Ok(topics) => Parsed::Patterns(topics),
                Err(_) => Parsed::All,
            },
        }
    }

    fn wants(&self, topic: Option<&Topic>) -> bool {
        match (self, topic) {
            (Parsed::All, _) => true,
            (Parsed::Patterns(p), Some(t)) => p.iter().any(|p| p.matches(t)),
            (Parsed::Patterns(_), None) => false,
        }
    }
}

/// A publisher's view of who wants what.
pub(crate) struct Addressing {
    /// Topic -> (consumers that want it, its topic-table entry), for the current interest epoch.
    by_topic: TopicCache<(u64, usize)>,
    /// Per consumer entry: the generation and interest version parsed, and what it says (a
    /// reused entry is parsed again whatever its version).
    parsed: HashMap<usize, (u32, u64, Parsed)>,
    /// The topics named in this publisher's topic table, entry `i` at index `i` (this process
    /// is the table's only writer, so this copy is the truth and the table is never re-read).
    named: Vec<(u64, Box<str>)>,
}

impl Default for Addressing {
    fn default() -> Self {
        Addressing {
            by_topic: TopicCache::new(MAX_TOPICS),
            parsed: HashMap::new(),
            named: Vec::new(),
        }
    }
}

impl Addressing {
    /// The consumers (bits) whose interest matches `topic` (whose hash is `hash`), as of now,
    /// and the entry of publisher row `row`'s topic table that counts the topic.
    pub(crate) fn wanting(
        &mut self,
        region: &Region,
        row: u32,
        topic: &str,
        hash: u64,
    ) -> (u64, usize) {
        let Addressing {
            by_topic,
            parsed,
            named,
        } = self;
        by_topic.get(&region.header().interest_epoch, hash, topic, || {
            let mask = compute(parsed, region, topic);
            (mask, entry(named, region, row, topic, hash))
        })
    }
}

impl Addressing {
    /// The consumers that want `topic` now, after a claim, where `before` is what
    /// [`Addressing::wanting`] said for it at the start of the publish: the same answer, for one
    /// load of the interest epoch, while nothing changed since; else asked again. A publish
    /// addresses its message from this (`RingView::announce`), never from an answer older than
    /// its claim.
    pub(crate) fn wanting_now(
        &mut self,
        region: &Region,
        row: u32,
        topic: &str,
        hash: u64,
        before: u64,
    ) -> u64 {
        if self.by_topic.is_current(&region.header().interest_epoch) {
            return before;
        }
        self.wanting(region, row, topic, hash).0
    }
}

/// The topic-table entry of `topic`: the one naming it, a new one while the table has room, else
/// the other entry.
fn entry(
    named: &mut Vec<(u64, Box<str>)>,
    region: &Region,
    row: u32,
    topic: &str,
    hash: u64,
) -> usize {
    if let Some(i) = named.iter().position(|(h, t)| *h == hash && **t == *topic) {
        return i;
    }
    let Some(stats) = region.row_stats(row) else {
        return OTHER;
    };
    if named.len() >= TOPIC_ENTRIES {
        return OTHER;
    }
    let i = named.len();
    stats.name_topic(i, topic, hash);
    named.push((hash, topic.into()));
    i
}

fn compute(parsed: &mut HashMap<usize, (u32, u64, Parsed)>, region: &Region, topic: &str) -> u64 {
    // Routing is by the literal (docs/topic-grammar.md); a literal that does not parse
    // reaches only consumers that want everything.
    let parsed_topic = Topic::parse(topic).ok();
    let max = region.layout().max_subscribers as usize;
    let mut mask = 0u64;
    for (i, c) in region.consumers().iter().enumerate().take(max) {
        if c.state.load(Ordering::Acquire) != CONSUMER_LIVE {
            parsed.remove(&i);
            continue;
        }
        let generation = c.generation.load(Ordering::Acquire);
        let version = c.interest.version.load(Ordering::Acquire);
        let fresh = parsed
            .get(&i)
            .is_some_and(|(g, v, _)| *g == generation && *v == version);
        if !fresh {
            let (v, wanted) = region.read_interest(i);
            parsed.insert(i, (generation, v, Parsed::from(wanted)));
        }
        if parsed[&i].2.wants(parsed_topic.as_ref()) {
            mask |= 1 << i;
        }
    }
    mask
}
