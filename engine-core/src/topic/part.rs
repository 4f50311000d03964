//! The parts a topic is made of: exact text, a named wildcard, a set of options, or a regex.
//!
//! A part knows the text it contributes to a topic literal and whether it accepts a piece of
//! exact text (the per-part rule of `docs/topic-grammar.md`, section "Matching two topics").

use std::fmt;

use super::TopicError;

/// The kind of a [`TopicPart`]; the discriminants are the ones the Python API exposes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TopicType {
    /// Literal text that must be equal.
    Exact = 0,
    /// A named wildcard matching any single part (`{name}` or `+name`).
    Any = 1,
    /// One of several options (`(a|b|c)`).
    Range = 2,
    /// A regular expression searched for in the exact text (`/regex/`).
    Pattern = 3,
}

/// A compiled regular expression together with the source it was compiled from.
///
/// Matching uses search semantics: the regex may match anywhere in the text, so anchor it
/// with `^…$` to match a whole part. The `regex` crate guarantees linear-time matching, so a
/// hostile pattern cannot stall dispatch.
#[derive(Clone, Debug)]
pub struct Pattern {
    source: String,
    regex: regex::Regex,
}

impl Pattern {
    /// Compiles `source`.
    ///
    /// Fails with [`TopicError::BadRegex`] when `source` is not a valid regex; the error's
    /// `topic` is the one-part topic `/source/`.
    pub fn new(source: &str) -> Result<Pattern, TopicError> {
        match regex::Regex::new(source) {
            Ok(regex) => Ok(Pattern {
                source: source.to_owned(),
                regex,
            }),
            Err(err) => Err(TopicError::BadRegex {
                topic: format!("/{source}/"),
                pattern: source.to_owned(),
                reason: err.to_string(),
            }),
        }
    }

    /// The regex source, without the surrounding `/`.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the regex matches anywhere in `s`.
    pub fn is_match(&self, s: &str) -> bool {
        self.regex.is_match(s)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Pattern {}

/// One `.`-separated part of a [`Topic`](super::Topic).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TopicPart {
    /// Literal text of the part.
    Exact(String),
    /// A wildcard; holds its name (`symbol` for `{symbol}` or `+symbol`).
    Any(String),
    /// The options of a range, empty options already dropped.
    Range(Vec<String>),
    /// A compiled regex.
    Pattern(Pattern),
}

impl TopicPart {
    /// The kind of this part.
    pub fn ttype(&self) -> TopicType {
        match self {
            TopicPart::Exact(_) => TopicType::Exact,
            TopicPart::Any(_) => TopicType::Any,
            TopicPart::Range(_) => TopicType::Range,
            TopicPart::Pattern(_) => TopicType::Pattern,
        }
    }

    /// Whether this is an exact part.
    pub fn is_exact(&self) -> bool {
        matches!(self, TopicPart::Exact(_))
    }

    /// The text this part contributes to a literal: Exact -> `text`, Any -> `{name}`,
    /// Range -> `(a|b)`, Pattern -> `/src/`.
    ///
    /// A range without options is written `(|)`, because `()` would read back as the exact
    /// part `()`.
    pub fn literal(&self) -> String {
        let mut out = String::new();
        self.write_literal(&mut out);
        out
    }

    /// Appends [`literal`](Self::literal) to `out`.
    pub(crate) fn write_literal(&self, out: &mut String) {
        match self {
            TopicPart::Exact(text) => out.push_str(text),
            TopicPart::Any(name) => {
                out.push('{');
                out.push_str(name);
                out.push('}');
            }
            TopicPart::Range(options) => {
                out.push('(');
                if options.is_empty() {
                    out.push('|');
                }
                for (i, option) in options.iter().enumerate() {
                    if i > 0 {
                        out.push('|');
                    }
                    out.push_str(option);
                }
                out.push(')');
            }
            TopicPart::Pattern(pattern) => {
                out.push('/');
                out.push_str(pattern.as_str());
                out.push('/');
            }
        }
    }

    /// Whether this part accepts the exact text `s`: an exact part when the texts are equal,
    /// a wildcard always, a range when `s` is one of its options, a pattern when its regex
    /// matches anywhere in `s`.
    pub fn accepts(&self, s: &str) -> bool {
        match self {
            TopicPart::Exact(text) => text == s,
            TopicPart::Any(_) => true,
            TopicPart::Range(options) => options.iter().any(|option| option == s),
            TopicPart::Pattern(pattern) => pattern.is_match(s),
        }
    }

    /// Whether the part holds no text at all (an exact part `""` or a wildcard without a
    /// name); such parts cannot be written into a literal and are never kept in a topic.
    pub(crate) fn is_blank(&self) -> bool {
        match self {
            TopicPart::Exact(text) | TopicPart::Any(text) => text.is_empty(),
            TopicPart::Range(_) | TopicPart::Pattern(_) => false,
        }
    }
}

impl fmt::Display for TopicPart {
    /// Writes [`TopicPart::literal`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        self.write_literal(&mut out);
        f.write_str(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_of_each_kind() {
        assert_eq!(TopicPart::Exact("Data".into()).literal(), "Data");
        assert_eq!(TopicPart::Any("symbol".into()).literal(), "{symbol}");
        assert_eq!(
            TopicPart::Range(vec!["a".into(), "b".into()]).literal(),
            "(a|b)"
        );
        assert_eq!(TopicPart::Range(vec![]).literal(), "(|)");
        assert_eq!(
            TopicPart::Pattern(Pattern::new("^[A-Z]+$").unwrap()).literal(),
            "/^[A-Z]+$/"
        );
    }

    #[test]
    fn ttype_discriminants_match_the_python_api() {
        assert_eq!(TopicPart::Exact("a".into()).ttype() as u8, 0);
        assert_eq!(TopicPart::Any("a".into()).ttype() as u8, 1);
        assert_eq!(TopicPart::Range(vec![]).ttype() as u8, 2);
        assert_eq!(
            TopicPart::Pattern(Pattern::new("a").unwrap()).ttype() as u8,
            3
        );
    }

    #[test]
    fn accepts_follows_the_per_part_rules() {
        assert!(TopicPart::Exact("EU".into()).accepts("EU"));
        assert!(!TopicPart::Exact("EU".into()).accepts("US"));
        assert!(TopicPart::Any("x".into()).accepts("anything"));
        assert!(TopicPart::Any("x".into()).accepts(""));
        let range = TopicPart::Range(vec!["New".into(), "Cancel".into()]);
        assert!(range.accepts("Cancel"));
        assert!(!range.accepts("Amend"));
        assert!(!range.accepts("New|Cancel"));
        assert!(!TopicPart::Range(vec![]).accepts(""));
        let pattern = TopicPart::Pattern(Pattern::new("[0-9]{6}").unwrap());
        assert!(pattern.accepts("pre600010"), "search, not full match");
        assert!(!pattern.accepts("60001"));
    }

    #[test]
    fn parts_compare_by_type_and_text() {
        assert_eq!(TopicPart::Exact("a".into()), TopicPart::Exact("a".into()));
        assert_ne!(TopicPart::Exact("a".into()), TopicPart::Any("a".into()));
        assert_eq!(
            TopicPart::Pattern(Pattern::new("a+").unwrap()),
            TopicPart::Pattern(Pattern::new("a+").unwrap())
        );
        assert_ne!(
            TopicPart::Pattern(Pattern::new("a+").unwrap()),
            TopicPart::Pattern(Pattern::new("a*").unwrap())
        );
    }

    #[test]
    fn bad_regex_names_the_pattern() {
        let err = Pattern::new("a(").unwrap_err();
        match &err {
            TopicError::BadRegex { topic, pattern, .. } => {
                assert_eq!(topic, "/a(/");
                assert_eq!(pattern, "a(");
            }
            other => panic!("unexpected error {other:?}"),
        }
        assert!(err.to_string().contains("a("));
    }
}
