//! Splitting a topic string into parts, following `docs/topic-grammar.md`.
//!
//! The string is cut on `.`, except inside a pattern: a pattern starts with `/` at the start
//! of the string or right after a `.`, and runs to the first `/` that is followed by `.` or by
//! the end of the string, so its regex may contain `.`. Empty tokens are dropped. All the
//! delimiters are ASCII, so cutting the UTF-8 bytes at them always leaves valid `str` slices.

use super::{Pattern, TopicError, TopicPart};

/// Parses `topic` into its parts.
pub(crate) fn parse_parts(topic: &str) -> Result<Vec<TopicPart>, TopicError> {
    let bytes = topic.as_bytes();
    let n = bytes.len();
    let mut parts = Vec::new();
    // Invariant: `i` is at the start of a token, i.e. 0 or just after a `.`.
    let mut i = 0;
    while i < n {
        if bytes[i] == b'/' {
            let start = i + 1;
            let close = (start..n)
                .find(|&j| bytes[j] == b'/' && (j + 1 == n || bytes[j + 1] == b'.'))
                .ok_or_else(|| TopicError::UnclosedPattern {
                    topic: topic.to_owned(),
                })?;
            let source = &topic[start..close];
            let pattern = Pattern::new(source).map_err(|err| match err {
                TopicError::BadRegex {
                    pattern, reason, ..
                } => TopicError::BadRegex {
                    topic: topic.to_owned(),
                    pattern,
                    reason,
                },
                other => other,
            })?;
            parts.push(TopicPart::Pattern(pattern));
            // Skip the closing `/` and the `.` after it (or run past the end).
            i = close + 2;
            continue;
        }
        let end = bytes[i..]
            .iter()
            .position(|&b| b == b'.')
            .map_or(n, |offset| i + offset);
        let token = &topic[i..end];
        if !token.is_empty() {
            parts.push(classify(token));
        }
        i = end + 1;
    }
    Ok(parts)
}

/// The shape of a non-pattern token.
enum TokenShape {
    /// `+name`: the name starts at byte 1.
    PlusAny,
    /// `{name}`.
    BracedAny,
    /// `(a|b)`.
    Range,
    /// Anything else, including markers without content (`+`, `{}`, `()`) and unclosed
    /// brackets.
    Exact,
}

fn shape(token: &str) -> TokenShape {
    let b = token.as_bytes();
    let len = b.len();
    if len >= 2 && b[0] == b'+' {
        TokenShape::PlusAny
    } else if len >= 3 && b[0] == b'{' && b[len - 1] == b'}' {
        TokenShape::BracedAny
    } else if len >= 3 && b[0] == b'(' && b[len - 1] == b')' {
        TokenShape::Range
    } else {
        TokenShape::Exact
    }
}

/// Turns one non-pattern token into a part.
fn classify(token: &str) -> TopicPart {
    let len = token.len();
    match shape(token) {
        TokenShape::PlusAny => TopicPart::Any(token[1..].to_owned()),
        TokenShape::BracedAny => TopicPart::Any(token[1..len - 1].to_owned()),
        TokenShape::Range => TopicPart::Range(
            token[1..len - 1]
                .split('|')
                .filter(|option| !option.is_empty())
                .map(str::to_owned)
                .collect(),
        ),
        TokenShape::Exact => TopicPart::Exact(token.to_owned()),
    }
}

/// Whether `part.literal()`, standing between separators, parses back to `part`.
///
/// Parts built by hand may not: an exact part holding `.` or looking like a marker, a
/// wildcard name or range option holding a separator, a pattern holding `/.`.
pub(crate) fn reparses_as_itself(part: &TopicPart) -> bool {
    match part {
        TopicPart::Exact(text) => {
            !text.is_empty()
                && !text.contains('.')
                && !text.starts_with('/')
                && matches!(shape(text), TokenShape::Exact)
        }
        TopicPart::Any(name) => !name.is_empty() && !name.contains('.'),
        TopicPart::Range(options) => options
            .iter()
            .all(|option| !option.is_empty() && !option.contains(['.', '|'])),
        TopicPart::Pattern(pattern) => !pattern.as_str().contains("/."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(s: &str) -> TopicPart {
        TopicPart::Exact(s.into())
    }
    fn any(s: &str) -> TopicPart {
        TopicPart::Any(s.into())
    }
    fn range(options: &[&str]) -> TopicPart {
        TopicPart::Range(options.iter().map(|s| s.to_string()).collect())
    }
    fn pattern(s: &str) -> TopicPart {
        TopicPart::Pattern(Pattern::new(s).unwrap())
    }
    fn parts(s: &str) -> Vec<TopicPart> {
        parse_parts(s).unwrap_or_else(|e| panic!("{s:?} failed to parse: {e}"))
    }

    #[test]
    fn token_shapes() {
        assert_eq!(parts("Data"), vec![exact("Data")]);
        assert_eq!(parts("{symbol}"), vec![any("symbol")]);
        assert_eq!(parts("+symbol"), vec![any("symbol")]);
        assert_eq!(
            parts("(Equity|Futures)"),
            vec![range(&["Equity", "Futures"])]
        );
        assert_eq!(parts("/^[A-Z]{4}$/"), vec![pattern("^[A-Z]{4}$")]);
    }

    #[test]
    fn empty_tokens_are_dropped() {
        assert_eq!(parts("a..b"), vec![exact("a"), exact("b")]);
        assert_eq!(parts("a."), vec![exact("a")]);
        assert_eq!(parts(".a"), vec![exact("a")]);
        assert_eq!(parts(""), vec![]);
        assert_eq!(parts("."), vec![]);
        assert_eq!(parts("...."), vec![]);
    }

    #[test]
    fn degenerate_markers_are_exact() {
        for token in [
            "+", "{}", "()", "{abc", "(abc", "abc}", "abc)", "{", "(", "}", ")",
        ] {
            assert_eq!(parts(token), vec![exact(token)], "token {token:?}");
        }
        assert_eq!(parts("a.+.b"), vec![exact("a"), exact("+"), exact("b")]);
    }

    #[test]
    fn markers_only_count_at_the_token_edges() {
        assert_eq!(parts("a+b"), vec![exact("a+b")]);
        assert_eq!(parts("x{a}"), vec![exact("x{a}")]);
        assert_eq!(parts("{a}x"), vec![exact("{a}x")]);
        assert_eq!(parts("x(a)"), vec![exact("x(a)")]);
        assert_eq!(parts("a/b"), vec![exact("a/b")]);
        assert_eq!(parts("a/"), vec![exact("a/")]);
    }

    #[test]
    fn wildcard_names_keep_their_inner_text() {
        assert_eq!(parts("++"), vec![any("+")]);
        assert_eq!(parts("+{a}"), vec![any("{a}")]);
        assert_eq!(parts("{a}b}"), vec![any("a}b")]);
        assert_eq!(parts("{{}}"), vec![any("{}")]);
        assert_eq!(parts("+(a|b)"), vec![any("(a|b)")]);
    }

    #[test]
    fn range_options() {
        assert_eq!(parts("(x|)"), vec![range(&["x"])]);
        assert_eq!(parts("(|x||y|)"), vec![range(&["x", "y"])]);
        assert_eq!(parts("(|)"), vec![range(&[])]);
        assert_eq!(parts("(a)"), vec![range(&["a"])]);
        assert_eq!(parts("((|x)"), vec![range(&["(", "x"])]);
    }

    #[test]
    fn patterns_may_contain_the_separator() {
        assert_eq!(
            parts("./a\\.b\\.[0-9]/.tail"),
            vec![pattern("a\\.b\\.[0-9]"), exact("tail")]
        );
        assert_eq!(
            parts("Log./a.b/.c"),
            vec![exact("Log"), pattern("a.b"), exact("c")]
        );
        assert_eq!(parts("/a/b/"), vec![pattern("a/b")]);
        assert_eq!(parts("/a//"), vec![pattern("a/")]);
        assert_eq!(parts("/a//.b"), vec![pattern("a/"), exact("b")]);
    }

    #[test]
    fn patterns_follow_each_other_and_other_tokens() {
        assert_eq!(parts("/a/./b/"), vec![pattern("a"), pattern("b")]);
        assert_eq!(parts("x../a/"), vec![exact("x"), pattern("a")]);
        assert_eq!(parts("/a/..b"), vec![pattern("a"), exact("b")]);
        assert_eq!(parts("/a/."), vec![pattern("a")]);
    }

    #[test]
    fn empty_pattern_matches_everything() {
        assert_eq!(parts("//"), vec![pattern("")]);
        assert_eq!(parts("x.//.y"), vec![exact("x"), pattern(""), exact("y")]);
    }

    #[test]
    fn unclosed_patterns_are_errors_naming_the_topic() {
        for topic in [
            "Log./open",
            "./x/y",
            "/",
            "a./",
            "x./.y",
            "/abc",
            "a./b/c.d",
        ] {
            match parse_parts(topic) {
                Err(TopicError::UnclosedPattern { topic: named }) => assert_eq!(named, topic),
                other => panic!("{topic:?}: expected UnclosedPattern, got {other:?}"),
            }
        }
        let message = parse_parts("Log./open").unwrap_err().to_string();
        assert!(message.contains("Log./open"), "{message}");
    }

    #[test]
    fn bad_regex_is_an_error_naming_the_topic() {
        match parse_parts("Quotes./[a-/.x") {
            Err(TopicError::BadRegex { topic, pattern, .. }) => {
                assert_eq!(topic, "Quotes./[a-/.x");
                assert_eq!(pattern, "[a-");
            }
            other => panic!("expected BadRegex, got {other:?}"),
        }
        // Look-around is not supported by the regex crate.
        assert!(matches!(
            parse_parts("/(?=a)/"),
            Err(TopicError::BadRegex { .. })
        ));
    }

    #[test]
    fn parts_that_do_not_reparse_as_themselves() {
        for part in [
            exact("a.b"),
            exact("+x"),
            exact("{x}"),
            exact("(x)"),
            exact("/x"),
            exact(""),
            any("a.b"),
            any(""),
            range(&["a|b"]),
            range(&["a.b"]),
            range(&[""]),
            pattern("a/.b"),
        ] {
            assert!(!reparses_as_itself(&part), "{part:?}");
        }
        for part in [
            exact("+"),
            exact("{}"),
            exact("a/b"),
            any("+"),
            any("}"),
            range(&[]),
            range(&["(", ")"]),
            pattern("a.b/"),
            pattern(""),
        ] {
            assert!(reparses_as_itself(&part), "{part:?}");
            let literal = format!("x.{}.y", part.literal());
            assert_eq!(parts(&literal), vec![exact("x"), part, exact("y")]);
        }
    }

    #[test]
    fn non_ascii_text() {
        assert_eq!(parts("订单.+动作"), vec![exact("订单"), any("动作")]);
        assert_eq!(parts("{é}.(ü|ß)"), vec![any("é"), range(&["ü", "ß"])]);
        assert_eq!(parts("/^日本$/.x"), vec![pattern("^日本$"), exact("x")]);
    }
}
