//! Topics: the dotted names messages are published under and hooks subscribe to.
//!
//! A [`Topic`] keeps the string it was parsed from (its literal, used for equality, hashing
//! and the cross-process hash) and its [`TopicPart`]s (used for matching). The grammar and the
//! matching rules are those of `docs/topic-grammar.md`, which follows the reference
//! PyEventEngine so that topics keep their meaning.

mod matching;
mod parse;
mod part;

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::str::FromStr;

pub use matching::{MatchNode, MatchResult};
pub use part::{Pattern, TopicPart, TopicType};

/// The cross-process hash of a topic literal: xxHash3-64 of its UTF-8 bytes.
///
/// Every process computes the same number for the same literal, which is what lets a process
/// route a message from shared memory by hash before looking at the literal.
pub fn topic_hash(literal: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(literal.as_bytes())
}

/// A map keyed by [`topic_hash`] values. The key already is a well-mixed xxh3 value, so it is
/// used as it is instead of being hashed again (SipHash, the default, costs more than the
/// lookup itself).
pub type TopicHashMap<V> = HashMap<u64, V, BuildHasherDefault<PrehashedHasher>>;

/// The hasher of [`TopicHashMap`]: a `u64` key is its own hash.
#[derive(Default)]
pub struct PrehashedHasher(u64);

impl Hasher for PrehashedHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Only reached for keys other than u64; fold them in (FNV-1a) to stay correct.
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Everything that can go wrong building or formatting a topic.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum TopicError {
    /// A pattern part was opened with `/` but never closed by a `/` followed by `.` or the end.
    #[error(
        "unclosed pattern in topic {topic:?}: a pattern part starts with '/' and must end \
         with a '/' followed by '.' or by the end of the topic"
    )]
    UnclosedPattern {
        /// The whole topic string.
        topic: String,
    },
    /// A pattern part is not a valid regex (`regex` crate syntax).
    #[error("invalid regex /{pattern}/ in topic {topic:?}: {reason}")]
    BadRegex {
        /// The whole topic string.
        topic: String,
        /// The regex source, without the surrounding `/`.
        pattern: String,
        /// What the regex compiler reported.
        reason: String,
    },
    /// Formatting found a wildcard with no value given for its name.
    #[error("no value given for the wildcard {name:?}")]
    MissingKey {
        /// The wildcard's name.
        name: String,
    },
    /// Formatting found a range or pattern part, which cannot be filled in.
    #[error(
        "topic {topic:?} cannot be formatted: it has range or pattern parts, and only \
         wildcards can be filled in"
    )]
    NotFormattable {
        /// The topic's literal.
        topic: String,
    },
}

/// A parsed topic: its literal, its parts and two cached facts (hash and exactness).
///
/// Equality and hashing go by the literal. Matching goes by the parts.
///
/// ```
/// use event_engine_core::Topic;
///
/// let hook = Topic::parse("Market.{kind}.(AAPL|MSFT)").unwrap();
/// let published = Topic::parse("Market.Trade.AAPL").unwrap();
/// assert!(published.is_exact());
/// assert!(hook.matches(&published));
/// assert!(!hook.matches(&Topic::parse("Market.Trade.AAPL.L2").unwrap()));
///
/// let detail = hook.match_detail(&published);
/// assert_eq!(detail.captures(), vec![("kind".to_string(), "Trade".to_string())]);
///
/// let formatted = Topic::parse("Market.{kind}").unwrap()
///     .format_with(|name| (name == "kind").then(|| "Quote".to_string()))
///     .unwrap();
/// assert_eq!(formatted.literal(), "Market.Quote");
/// ```
#[derive(Clone, Debug)]
pub struct Topic {
    /// The topic string: verbatim after `parse`, rebuilt from the parts by `update_literal`.
    literal: String,
    parts: Vec<TopicPart>,
    /// Always `topic_hash(&literal)`.
    hash: u64,
    /// Always "every part is exact".
    exact: bool,
    /// True when parsing `literal` gives exactly `parts` (always after `parse`).
    canonical: bool,
}

impl Topic {
    /// Parses `s` (grammar of `docs/topic-grammar.md`); the literal is kept verbatim.
    ///
    /// Fails when a pattern part is not closed or its regex does not compile; the error names
    /// the topic.
    pub fn parse(s: &str) -> Result<Topic, TopicError> {
        let parts = parse::parse_parts(s)?;
        let exact = parts.iter().all(TopicPart::is_exact);
        Ok(Topic {
            literal: s.to_owned(),
            hash: topic_hash(s),
            parts,
            exact,
            canonical: true,
        })
    }

    /// Builds a topic from parts; the literal is the parts' literals joined with `.`.
    ///
    /// Exact parts with empty text and wildcards without a name are skipped, as the parser
    /// never produces them.
    pub fn from_parts(parts: Vec<TopicPart>) -> Topic {
        let mut topic = Topic {
            parts: parts.into_iter().filter(|p| !p.is_blank()).collect(),
            ..Topic::default()
        };
        topic.update_literal();
        topic
    }

    /// Builds an all-exact topic from strings taken as they are (a part may contain `.`);
    /// the literal is the strings joined with `.`. Empty strings are skipped.
    pub fn join<I, S>(parts: I) -> Topic
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Topic::from_parts(
            parts
                .into_iter()
                .map(|s| TopicPart::Exact(s.as_ref().to_owned()))
                .collect(),
        )
    }

    /// The topic string.
    pub fn literal(&self) -> &str {
        &self.literal
    }

    /// The parts, in order.
    pub fn parts(&self) -> &[TopicPart] {
        &self.parts
    }

    /// The number of parts.
    pub fn len(&self) -> usize {
        self.parts.len()
    }

    /// Whether the topic has no parts.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// [`topic_hash`] of the literal (cached).
    pub fn hash_value(&self) -> u64 {
        self.hash
    }

    /// Whether every part is exact (cached). The empty topic is exact.
    pub fn is_exact(&self) -> bool {
        self.exact
    }

    /// Whether `self` matches `other`. Does not allocate, so it is safe on the dispatch path.
    pub fn matches(&self, other: &Topic) -> bool {
        matching::matches(self, other)
    }

    /// The match with one node per compared pair; `self` supplies `part_a`.
    pub fn match_detail(&self, other: &Topic) -> MatchResult {
        matching::match_detail(self, other)
    }

    /// A new topic with each wildcard replaced by the exact part `lookup(name)`.
    ///
    /// Parts are handled in order and the first problem is reported:
    /// [`TopicError::MissingKey`] when `lookup` returns `None`, [`TopicError::NotFormattable`]
    /// at a range or pattern part.
    pub fn format_with(
        &self,
        mut lookup: impl FnMut(&str) -> Option<String>,
    ) -> Result<Topic, TopicError> {
        let mut parts = Vec::with_capacity(self.parts.len());
        for part in &self.parts {
            match part {
                TopicPart::Exact(_) => parts.push(part.clone()),
                TopicPart::Any(name) => match lookup(name) {
                    Some(value) => parts.push(TopicPart::Exact(value)),
                    None => return Err(TopicError::MissingKey { name: name.clone() }),
                },
                TopicPart::Range(_) | TopicPart::Pattern(_) => {
                    return Err(TopicError::NotFormattable {
                        topic: self.literal.clone(),
                    })
                }
            }
        }
        Ok(Topic::from_parts(parts))
    }

    /// Appends a part and rebuilds the literal from all the parts (so a verbatim literal such
    /// as `a..b` or `+x` becomes `a.b` or `{x}`), as the reference does. Blank parts (see
    /// [`Topic::from_parts`]) are ignored.
    pub fn push_part(&mut self, part: TopicPart) {
        if !part.is_blank() {
            self.parts.push(part);
        }
        self.update_literal();
    }

    /// Appends the parts of `other` (`topic + other`) and rebuilds the literal.
    pub fn extend(&mut self, other: &Topic) {
        self.parts.extend(other.parts.iter().cloned());
        self.update_literal();
    }

    /// Rebuilds the literal (and the cached hash and exactness) from the parts.
    pub fn update_literal(&mut self) {
        let mut literal = String::with_capacity(self.literal.len());
        for (i, part) in self.parts.iter().enumerate() {
            if i > 0 {
                literal.push('.');
            }
            part.write_literal(&mut literal);
        }
        self.hash = topic_hash(&literal);
        self.literal = literal;
        self.exact = self.parts.iter().all(TopicPart::is_exact);
        self.canonical = self.parts.iter().all(parse::reparses_as_itself);
    }

    /// Whether parsing the literal gives exactly these parts (cached).
    ///
    /// Always true for a parsed topic. False for a topic built from parts that do not survive
    /// the trip through text, such as `Topic::join(["600010.SH"])` (one exact part holding a
    /// `.`, while the literal `600010.SH` parses to two parts). Another process only sees the
    /// literal, so it matches such a topic by the parsed parts.
    pub fn is_canonical(&self) -> bool {
        self.canonical
    }
}

impl Default for Topic {
    /// The empty topic: no parts, literal `""`.
    fn default() -> Topic {
        Topic {
            literal: String::new(),
            parts: Vec::new(),
            hash: topic_hash(""),
            exact: true,
            canonical: true,
        }
    }
}

impl PartialEq for Topic {
    fn eq(&self, other: &Topic) -> bool {
        self.hash == other.hash && self.literal == other.literal
    }
}

impl Eq for Topic {}

impl Hash for Topic {
    fn hash<S: Hasher>(&self, state: &mut S) {
        // Consistent with `Eq`: equal literals have equal cached hashes.
        state.write_u64(self.hash);
    }
}

impl fmt::Display for Topic {
    /// Writes the literal.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.literal)
    }
}

impl FromStr for Topic {
    type Err = TopicError;

    /// Same as [`Topic::parse`].
    fn from_str(s: &str) -> Result<Topic, TopicError> {
        Topic::parse(s)
    }
}

#[cfg(test)]
mod tests;
