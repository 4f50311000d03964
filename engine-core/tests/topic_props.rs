//! Property tests of topic parsing and matching against a straightforward reference.

use event_engine_core::{Topic, TopicError, TopicPart};
use proptest::prelude::*;

mod common;
use common::{valid_topic, word};

/// Strings rich in the characters the grammar gives meaning to, mixed with arbitrary text.
fn topic_like() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => prop::sample::select(vec![
            ".", "/", "{", "}", "(", ")", "|", "+", "a", "b", "ab", "订", "é", "[", "]", "\\", "^", "$", "*",
        ])
        .prop_map(str::to_owned),
        1 => any::<String>(),
    ];
    prop::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat())
}

/// Rule 2 for one pair, written out independently of the crate.
fn reference_pair(a: &TopicPart, b: &TopicPart) -> bool {
    let (e, o) = match (a, b) {
        (TopicPart::Exact(e), o) => (e, o),
        (o, TopicPart::Exact(e)) => (e, o),
        _ => return false,
    };
    match o {
        TopicPart::Exact(x) => x == e,
        TopicPart::Any(_) => true,
        TopicPart::Range(options) => options.contains(e),
        TopicPart::Pattern(p) => regex::Regex::new(p.as_str()).unwrap().is_match(e),
    }
}

fn reference_match(a: &Topic, b: &Topic) -> bool {
    if !a.literal().is_empty() && a.literal() == b.literal() {
        return true;
    }
    if a.len() != b.len() {
        return false;
    }
    for i in 0..a.len() {
        if !reference_pair(&a.parts()[i], &b.parts()[i]) {
            return false;
        }
    }
    true
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn parsing_never_panics(s in topic_like()) {
        match Topic::parse(&s) {
            Ok(topic) => {
                prop_assert_eq!(topic.literal(), s.as_str());
                prop_assert_eq!(topic.hash_value(), event_engine_core::topic_hash(&s));
                prop_assert_eq!(topic.is_exact(), topic.parts().iter().all(|p| p.is_exact()));
                for part in topic.parts() {
                    if let TopicPart::Exact(text) | TopicPart::Any(text) = part {
                        prop_assert!(!text.is_empty());
                        prop_assert!(!text.contains('.'));
                    }
                    if let TopicPart::Range(options) = part {
                        prop_assert!(options.iter().all(|o| !o.is_empty() && !o.contains('|')));
                    }
                }
            }
            Err(TopicError::UnclosedPattern { topic }) | Err(TopicError::BadRegex { topic, .. }) => {
                prop_assert_eq!(topic, s);
            }
            Err(other) => prop_assert!(false, "unexpected error {:?}", other),
        }
    }

    #[test]
    fn parsing_arbitrary_strings_never_panics(s in any::<String>()) {
        let _ = Topic::parse(&s);
    }

    #[test]
    fn update_literal_round_trips(s in topic_like()) {
        if let Ok(mut topic) = Topic::parse(&s) {
            let parts = topic.parts().to_vec();
            topic.update_literal();
            prop_assert_eq!(topic.parts(), parts.as_slice());
            let reparsed = Topic::parse(topic.literal()).unwrap();
            prop_assert_eq!(reparsed.parts(), parts.as_slice());
            prop_assert_eq!(reparsed.literal(), topic.literal());
            prop_assert_eq!(reparsed.hash_value(), topic.hash_value());
            prop_assert_eq!(reparsed.is_exact(), topic.is_exact());
            prop_assert!(topic.is_canonical());
        }
    }

    #[test]
    fn valid_topics_parse_and_round_trip(s in valid_topic()) {
        let topic = Topic::parse(&s).unwrap();
        let rebuilt = Topic::from_parts(topic.parts().to_vec());
        let reparsed = Topic::parse(rebuilt.literal()).unwrap();
        prop_assert_eq!(reparsed.parts(), topic.parts());
    }

    #[test]
    fn canonical_means_the_literal_parses_back_to_the_parts(s in topic_like(), joined in prop::collection::vec(topic_like(), 0..4)) {
        let mut candidates = vec![Topic::join(&joined)];
        if let Ok(topic) = Topic::parse(&s) {
            candidates.push(Topic::from_parts(topic.parts().to_vec()));
            let mut extended = topic.clone();
            extended.extend(&Topic::join(&joined));
            candidates.push(extended);
        }
        for topic in candidates {
            let reparsed = Topic::parse(topic.literal()).ok();
            let same = reparsed.as_ref().is_some_and(|r| r.parts() == topic.parts());
            prop_assert_eq!(topic.is_canonical(), same, "{:?}", topic);
        }
    }

    #[test]
    fn matches_agrees_with_the_reference(a in valid_topic(), b in valid_topic()) {
        let (ta, tb) = (Topic::parse(&a).unwrap(), Topic::parse(&b).unwrap());
        let expected = reference_match(&ta, &tb);
        prop_assert_eq!(ta.matches(&tb), expected);
        prop_assert_eq!(tb.matches(&ta), reference_match(&tb, &ta));
        let detail = ta.match_detail(&tb);
        prop_assert_eq!(detail.matched, expected);
        prop_assert_eq!(detail.matched, detail.nodes.iter().all(|n| n.matched));
        // Only the last node may have failed.
        let failed = detail.nodes.iter().filter(|n| !n.matched).count();
        prop_assert!(failed <= 1);
        if failed == 1 {
            prop_assert!(!detail.nodes.last().unwrap().matched);
        }
    }

    #[test]
    fn matches_agrees_on_arbitrary_strings(a in topic_like(), b in topic_like()) {
        if let (Ok(ta), Ok(tb)) = (Topic::parse(&a), Topic::parse(&b)) {
            prop_assert_eq!(ta.matches(&tb), reference_match(&ta, &tb));
            prop_assert_eq!(ta.matches(&tb), ta.match_detail(&tb).matched);
        }
    }

    #[test]
    fn formatted_topics_are_matched_by_their_template(s in valid_topic(), value in word()) {
        let topic = Topic::parse(&s).unwrap();
        if let Ok(formatted) = topic.format_with(|_| Some(value.clone())) {
            prop_assert!(formatted.is_exact());
            prop_assert_eq!(formatted.len(), topic.len());
            prop_assert!(topic.matches(&formatted));
        }
    }
}
