//! Matching two topics, as a plain yes/no on the dispatch path and as a detailed result
//! (one node per compared pair) for the Python `TopicMatchResult`.
//!
//! Rules (`docs/topic-grammar.md`): identical non-empty literals match as a whole; otherwise
//! parts are compared pairwise, each pair needs at least one exact side, comparison stops at
//! the first failed pair, and a length difference fails with one node for the overhang.

use super::{Topic, TopicPart};

/// One compared pair of a [`MatchResult`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatchNode {
    /// Whether this pair matched.
    pub matched: bool,
    /// The part of the topic `match_detail` was called on (`None` past its end).
    pub part_a: Option<TopicPart>,
    /// The part of the other topic (`None` past its end).
    pub part_b: Option<TopicPart>,
    /// The exact text that was matched: the whole literal for identical topics, the exact
    /// side's text for a matched pair, `None` for a failed pair.
    pub literal: Option<String>,
}

/// The detailed outcome of [`Topic::match_detail`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatchResult {
    /// Whether the topics match (every node matched).
    pub matched: bool,
    /// The compared pairs, in order, ending at the first failure.
    pub nodes: Vec<MatchNode>,
}

impl MatchResult {
    /// `(wildcard name, exact text)` for every wildcard part that matched an exact part, in
    /// part order (what Python's `to_dict()` shows).
    pub fn captures(&self) -> Vec<(String, String)> {
        self.nodes
            .iter()
            .filter(|node| node.matched)
            .filter_map(|node| match (&node.part_a, &node.part_b) {
                (Some(TopicPart::Any(name)), Some(TopicPart::Exact(text)))
                | (Some(TopicPart::Exact(text)), Some(TopicPart::Any(name))) => {
                    Some((name.clone(), text.clone()))
                }
                _ => None,
            })
            .collect()
    }
}

/// Rule 1: identical, non-empty literals.
#[inline]
fn same_literal(a: &Topic, b: &Topic) -> bool {
    !a.literal.is_empty() && a.hash == b.hash && a.literal == b.literal
}

/// Rule 2 for one pair; returns the exact text that was matched.
#[inline]
fn match_pair<'t>(a: &'t TopicPart, b: &'t TopicPart) -> Option<&'t str> {
    let (exact, other) = match (a, b) {
        (TopicPart::Exact(text), other) | (other, TopicPart::Exact(text)) => (text, other),
        _ => return None,
    };
    other.accepts(exact).then_some(exact.as_str())
}

/// The allocation-free yes/no match.
pub(crate) fn matches(a: &Topic, b: &Topic) -> bool {
    if same_literal(a, b) {
        return true;
    }
    a.parts.len() == b.parts.len()
        && a.parts
            .iter()
            .zip(&b.parts)
            .all(|(pa, pb)| match_pair(pa, pb).is_some())
}

/// The detailed match.
pub(crate) fn match_detail(a: &Topic, b: &Topic) -> MatchResult {
    if same_literal(a, b) {
        return MatchResult {
            matched: true,
            nodes: vec![MatchNode {
                matched: true,
                part_a: a.parts.first().cloned(),
                part_b: b.parts.first().cloned(),
                literal: Some(a.literal.clone()),
            }],
        };
    }
    let mut nodes = Vec::with_capacity(a.parts.len().min(b.parts.len()) + 1);
    for (pa, pb) in a.parts.iter().zip(&b.parts) {
        let literal = match_pair(pa, pb);
        nodes.push(MatchNode {
            matched: literal.is_some(),
            part_a: Some(pa.clone()),
            part_b: Some(pb.clone()),
            literal: literal.map(str::to_owned),
        });
        if literal.is_none() {
            return MatchResult {
                matched: false,
                nodes,
            };
        }
    }
    let common = nodes.len();
    if a.parts.len() != b.parts.len() {
        nodes.push(MatchNode {
            matched: false,
            part_a: a.parts.get(common).cloned(),
            part_b: b.parts.get(common).cloned(),
            literal: None,
        });
        return MatchResult {
            matched: false,
            nodes,
        };
    }
    MatchResult {
        matched: true,
        nodes,
    }
}
