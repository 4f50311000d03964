//! Topics as NATS subjects. A topic literal is its subject, one to one: both are dot-separated,
//! so `Market.Data.AAPL` travels as the subject `Market.Data.AAPL` and comes back as the same
//! topic. A pattern becomes the subscription subject where NATS can express it (an exact part
//! stays, every other part becomes `*`); ranges and regular expressions are then filtered
//! locally by the topic grammar's own matching.

use crate::error::UsageError;
use engine_core::{Topic, TopicPart};

/// Whether `token` can be one part of a subject a message is published on: not empty, no
/// whitespace or control characters, and not one of NATS's wildcards `*` and `>`.
fn is_plain_token(token: &str) -> bool {
    !token.is_empty()
        && token != "*"
        && token != ">"
        && !token.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Why the literal topic `topic` cannot be a NATS subject, if it cannot.
pub fn unfit_subject(topic: &str) -> Option<&'static str> {
    if topic.is_empty() {
        return Some("it is empty");
    }
    if topic.split('.').all(is_plain_token) {
        return None;
    }
    Some("a NATS subject has no empty part, no whitespace and no part that is exactly '*' or '>'")
}

/// Parses the pattern given to `flag` (`--export` or `--import`), refusing what cannot be
/// carried over NATS.
pub fn parse_pattern(flag: &str, text: &str) -> Result<Topic, UsageError> {
    let bad = |why: String| UsageError(format!("{flag} {text:?} is not a usable pattern: {why}"));
    let topic = Topic::parse(text).map_err(|e| bad(e.to_string()))?;
    if topic.is_empty() {
        return Err(bad(
            "it has no parts; give a topic pattern such as 'Market.Data.{symbol}'".into(),
        ));
    }
    // Empty parts are dropped by the topic grammar, so `a..b` would match topics whose literal
    // is `a.b`: say so rather than carry something other than what was written.
    if text.split('.').count() != topic.len()
        && !topic
            .parts()
            .iter()
            .any(|p| matches!(p, TopicPart::Pattern(_)))
    {
        return Err(bad(
            "it has an empty part (two dots in a row, or a dot at an end)".into(),
        ));
    }
    for part in topic.parts() {
        if let TopicPart::Exact(text) = part {
            if !is_plain_token(text) {
                return Err(bad(format!(
                    "the part {text:?} cannot be part of a NATS subject (no whitespace, and \
                     not '*' or '>': write wildcards as {{name}} or +name)"
                )));
            }
        }
    }
    Ok(topic)
}

/// The subject to subscribe to for `pattern`: exact parts stay, every other part is `*`.
pub fn subscription_subject(pattern: &Topic) -> String {
    pattern
        .parts()
        .iter()
        .map(|part| match part {
            TopicPart::Exact(text) => text.as_str(),
            _ => "*",
        })
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_become_stars_and_the_rest_is_filtered_locally() {
        let s = |p: &str| subscription_subject(&parse_pattern("--import", p).unwrap());
        assert_eq!(s("Market.Data.AAPL"), "Market.Data.AAPL");
        assert_eq!(s("Market.{kind}.+symbol"), "Market.*.*");
        assert_eq!(s("Market.(Trade|Quote)./^[A-Z]{4}$/"), "Market.*.*");
    }

    #[test]
    fn patterns_nats_cannot_carry_are_refused_with_the_reason() {
        let err = |p: &str| parse_pattern("--export", p).unwrap_err().0;
        assert!(err("a.*.b").contains("'*' or '>'"), "{}", err("a.*.b"));
        assert!(err("a.>").contains("'*' or '>'"));
        assert!(err("a b.c").contains("whitespace"));
        assert!(err("").contains("no parts"));
        assert!(err("a..b").contains("empty part"));
        assert!(err("Log./open").contains("unclosed pattern"));
    }

    #[test]
    fn only_topics_that_are_plain_subjects_are_exported() {
        assert_eq!(unfit_subject("Market.Data.AAPL"), None);
        assert_eq!(unfit_subject("订单.新"), None);
        assert!(unfit_subject("").is_some());
        assert!(unfit_subject("a..b").is_some());
        assert!(unfit_subject("a.*").is_some());
        assert!(unfit_subject("a.b c").is_some());
    }
}
