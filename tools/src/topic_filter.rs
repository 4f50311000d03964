//! Matching the topics of bus messages against a pattern of the topic grammar, remembering the
//! answer per topic literal (a bus carries few distinct topics, and parsing one costs more than
//! a hash lookup). Used by `tail --topic` and by the bridge's export and import patterns.

use engine_core::Topic;
use std::collections::HashMap;

/// Topics whose answer is remembered; past it the cache restarts.
const TOPIC_CACHE: usize = 4096;

/// Accepts topics that any of its patterns matches.
pub struct TopicFilter {
    patterns: Vec<Topic>,
    seen: HashMap<String, bool>,
}

impl TopicFilter {
    /// A filter accepting what any of `patterns` matches (nothing, when there is none).
    pub fn new(patterns: Vec<Topic>) -> TopicFilter {
        TopicFilter {
            patterns,
            seen: HashMap::new(),
        }
    }

    /// Whether no pattern was given (then nothing is accepted).
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether a pattern matches the literal `topic`. A topic that does not parse, or is not
    /// exact (messages are published on exact topics), matches none.
    pub fn accepts(&mut self, topic: &str) -> bool {
        if let Some(&hit) = self.seen.get(topic) {
            return hit;
        }
        let hit = Topic::parse(topic)
            .is_ok_and(|t| t.is_exact() && self.patterns.iter().any(|p| p.matches(&t)));
        if self.seen.len() >= TOPIC_CACHE {
            self.seen.clear();
        }
        self.seen.insert(topic.to_string(), hit);
        hit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_pattern_accepts_and_answers_stay_the_same() {
        let p = |s: &str| Topic::parse(s).unwrap();
        let mut f = TopicFilter::new(vec![p("md.{symbol}"), p("news.(EU|US)")]);
        for _ in 0..2 {
            assert!(f.accepts("md.AAPL"));
            assert!(f.accepts("news.EU"));
            assert!(!f.accepts("news.JP"));
            assert!(!f.accepts("md.AAPL.L2"));
            // A pattern's own literal is no message topic.
            assert!(!f.accepts("news.(EU|US)"));
        }
        assert!(!TopicFilter::new(vec![]).accepts("md.AAPL"));
    }
}
