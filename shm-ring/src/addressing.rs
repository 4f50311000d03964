//! Which consumers want a topic: a publisher's cache of the answer per topic, rebuilt when the
//! bus's interest epoch moves (a consumer joined, left, or rewrote its interest). On a hit, a
//! publish costs one load of the epoch and one hash lookup; on a miss it reads the live
//! consumers' interest tables (re-parsing only those whose version changed) and matches the
//! topic against their patterns with the topic grammar (`docs/topic-grammar.md`).

use crate::blocks::atomics::Ordering;
use crate::blocks::interest::TopicCache;
use crate::region::interest::Wanted;
use crate::region::layout::CONSUMER_LIVE;
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
    /// Topic -> consumers that want it, for the current interest epoch.
    by_topic: TopicCache<u64>,
    /// Per consumer entry: the interest version parsed, and what it says.
    parsed: HashMap<usize, (u64, Parsed)>,
}

impl Default for Addressing {
    fn default() -> Self {
        Addressing {
            by_topic: TopicCache::new(MAX_TOPICS),
            parsed: HashMap::new(),
        }
    }
}

impl Addressing {
    /// The consumers (bits) whose interest matches `topic` (whose hash is `hash`), as of now.
    pub(crate) fn wanting(&mut self, region: &Region, topic: &str, hash: u64) -> u64 {
        let Addressing { by_topic, parsed } = self;
        by_topic.get(&region.header().interest_epoch, hash, topic, || {
            compute(parsed, region, topic)
        })
    }
}

fn compute(parsed: &mut HashMap<usize, (u64, Parsed)>, region: &Region, topic: &str) -> u64 {
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
        let version = c.interest.version.load(Ordering::Acquire);
        let fresh = parsed.get(&i).is_some_and(|(v, _)| *v == version);
        if !fresh {
            let (v, wanted) = region.read_interest(i);
            parsed.insert(i, (v, Parsed::from(wanted)));
        }
        if parsed[&i].1.wants(parsed_topic.as_ref()) {
            mask |= 1 << i;
        }
    }
    mask
}
