//! Unit tests of `Topic`: literals, matching rules and examples, building and formatting.

use super::*;

fn t(s: &str) -> Topic {
    Topic::parse(s).unwrap_or_else(|e| panic!("{s:?} failed to parse: {e}"))
}

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

/// `matches` and `match_detail` must always agree; every matching test goes through here.
fn check(pattern: &str, published: &str) -> bool {
    let (a, b) = (t(pattern), t(published));
    let fast = a.matches(&b);
    let detail = a.match_detail(&b);
    assert_eq!(fast, detail.matched, "{pattern:?} vs {published:?}");
    assert_eq!(
        detail.matched,
        detail.nodes.iter().all(|n| n.matched),
        "{pattern:?} vs {published:?}: matched must be the conjunction of the nodes"
    );
    fast
}

#[test]
fn grammar_page_examples() {
    let table = [
        ("Orders.New.EU", "Orders.New.EU", true),
        ("Orders.{side}.EU", "Orders.Cancel.EU", true),
        ("Orders.{side}.EU", "Orders.Cancel.US", false),
        ("Orders.(New|Cancel).+region", "Orders.Amend.EU", false),
        ("Quotes./^[A-Z]{3}$/", "Quotes.EUR", true),
        ("Quotes./^[A-Z]{3}$/", "Quotes.EURO", false),
        ("Quotes.{ccy}", "Quotes.EUR.Spot", false),
        ("a.b", "a.b.c", false),
        ("Data.{symbol}", "Data.AAPL", true),
        ("Data.{symbol}", "Data.AAPL.L2", false),
        ("Data.{symbol}", "Data", false),
        ("/[0-9]{6}/", "pre600010", true),
    ];
    for (pattern, published, expected) in table {
        assert_eq!(
            check(pattern, published),
            expected,
            "{pattern:?} vs {published:?}"
        );
    }
}

#[test]
fn more_matching_cases() {
    let table = [
        ("Orders.(New|Cancel).+region", "Orders.New.EU", true),
        ("Orders.(New|Cancel).+region", "Orders.Cancel.US", true),
        ("Orders.(New|Cancel).+region", "Orders.New", false),
        ("+a.+b.+c", "x.y.z", true),
        ("+a.+b.+c", "x.y", false),
        ("(x|)", "x", true),
        ("(x|)", "", false),
        ("(|)", "x", false),
        ("Quotes./EUR/", "Quotes.XEURX", true),
        ("Quotes./^EUR/", "Quotes.XEUR", false),
        ("Log./a.b/.c", "Log.axb.c", true),
        ("Log./a\\.b/.c", "Log.axb.c", false),
        ("a..b", "a.b", true),
        ("a.b.", "a.b", true),
        ("订单.+动作", "订单.买入", true),
        ("订单.+动作", "订单", false),
        ("{}", "{}", true),
        ("x.{}", "x.y", false),
        ("+", "x", false),
        ("Data", "data", false),
    ];
    for (pattern, published, expected) in table {
        assert_eq!(
            check(pattern, published),
            expected,
            "{pattern:?} vs {published:?}"
        );
    }
}

#[test]
fn matching_is_symmetric_in_which_side_is_exact() {
    for (a, b) in [
        ("Orders.{side}.EU", "Orders.Cancel.EU"),
        ("x.(a|b)", "x.b"),
        ("x./^b$/", "x.b"),
        ("x.y", "x.z"),
        ("{a}.y", "x.{b}"),
    ] {
        assert_eq!(check(a, b), check(b, a), "{a:?} vs {b:?}");
    }
}

#[test]
fn two_non_exact_parts_never_match_unless_the_literals_are_identical() {
    assert!(!check("x.{a}", "x.{b}"));
    assert!(!check("x.{a}", "x.+a"));
    assert!(!check("(a|b)", "(a|b|c)"));
    assert!(!check("/a/", "/a/."));
    // Rule 1: identical literals match as a whole, whatever the parts.
    assert!(check("x.{a}", "x.{a}"));
    assert!(check("/a/", "/a/"));
    assert!(check("(|)", "(|)"));
    // Identical parts but different literals go through rule 2.
    assert!(!check("x.{a}", "x.+a"));
    assert!(!check("x.{a}", "x..{a}"));
}

#[test]
fn identical_literals_give_one_node_with_the_whole_literal() {
    let a = t("Market.{kind}.AAPL");
    let detail = a.match_detail(&a.clone());
    assert!(detail.matched);
    assert_eq!(detail.nodes.len(), 1);
    let node = &detail.nodes[0];
    assert!(node.matched);
    assert_eq!(node.literal.as_deref(), Some("Market.{kind}.AAPL"));
    assert_eq!(node.part_a, Some(exact("Market")));
    assert_eq!(node.part_b, Some(exact("Market")));
    assert!(detail.captures().is_empty());
}

#[test]
fn empty_topics() {
    let empty = t("");
    assert!(empty.is_empty());
    assert!(empty.is_exact());
    assert_eq!(empty.len(), 0);
    // Rule 1 needs non-empty literals; rule 2 compares zero pairs and finds no overhang.
    let detail = empty.match_detail(&t(""));
    assert!(detail.matched);
    assert!(detail.nodes.is_empty());
    assert!(check("", ""));
    assert!(check("", "..."));
    assert!(!check("", "a"));
    assert!(!check("a", ""));
}

#[test]
fn pairwise_nodes_carry_the_exact_text() {
    let detail = t("Orders.(New|Cancel).+region./^E/").match_detail(&t("Orders.New.EU.EUR"));
    assert!(detail.matched);
    let literals: Vec<_> = detail.nodes.iter().map(|n| n.literal.as_deref()).collect();
    assert_eq!(
        literals,
        vec![Some("Orders"), Some("New"), Some("EU"), Some("EUR")]
    );
    assert_eq!(detail.nodes[1].part_a, Some(range(&["New", "Cancel"])));
    assert_eq!(detail.nodes[1].part_b, Some(exact("New")));
    assert_eq!(detail.nodes[2].part_a, Some(any("region")));
    assert_eq!(detail.nodes[3].part_a, Some(pattern("^E")));
}

#[test]
fn comparison_stops_at_the_first_failed_pair() {
    let detail = t("a.{x}.c.d").match_detail(&t("a.b.z.d"));
    assert!(!detail.matched);
    assert_eq!(detail.nodes.len(), 3);
    assert!(detail.nodes[0].matched && detail.nodes[1].matched);
    let failed = &detail.nodes[2];
    assert!(!failed.matched);
    assert_eq!(failed.part_a, Some(exact("c")));
    assert_eq!(failed.part_b, Some(exact("z")));
    assert_eq!(failed.literal, None);

    let detail = t("{x}.b").match_detail(&t("{y}.b"));
    assert!(!detail.matched);
    assert_eq!(
        detail.nodes.len(),
        1,
        "neither side exact fails the first pair"
    );
}

#[test]
fn overhang_is_one_failed_node() {
    let detail = t("a.b").match_detail(&t("a.b.c.d"));
    assert!(!detail.matched);
    assert_eq!(detail.nodes.len(), 3);
    let overhang = &detail.nodes[2];
    assert!(!overhang.matched);
    assert_eq!(overhang.part_a, None);
    assert_eq!(overhang.part_b, Some(exact("c")));
    assert_eq!(overhang.literal, None);

    let detail = t("Data.{symbol}.L2").match_detail(&t("Data"));
    assert_eq!(detail.nodes.len(), 2);
    assert_eq!(detail.nodes[1].part_a, Some(any("symbol")));
    assert_eq!(detail.nodes[1].part_b, None);

    // A failed pair before the overhang ends the comparison there.
    let detail = t("a.x").match_detail(&t("a.b.c"));
    assert_eq!(detail.nodes.len(), 2);
    assert_eq!(detail.nodes[1].part_b, Some(exact("b")));
}

#[test]
fn captures_map_wildcards_to_what_they_matched() {
    let detail = t("Market.{kind}.{symbol}").match_detail(&t("Market.Trade.AAPL"));
    assert_eq!(
        detail.captures(),
        vec![
            ("kind".to_string(), "Trade".to_string()),
            ("symbol".to_string(), "AAPL".to_string())
        ]
    );
    // Either side may hold the wildcard.
    let detail = t("Market.Trade.AAPL").match_detail(&t("Market.+kind.AAPL"));
    assert_eq!(
        detail.captures(),
        vec![("kind".to_string(), "Trade".to_string())]
    );
    // Wildcards before a failure still show what they matched; ranges capture nothing.
    let detail = t("{a}.(x|y).c").match_detail(&t("1.x.d"));
    assert!(!detail.matched);
    assert_eq!(detail.captures(), vec![("a".to_string(), "1".to_string())]);
}

#[test]
fn literal_is_kept_verbatim_and_drives_equality_and_hash() {
    let a = t("a..b");
    assert_eq!(a.literal(), "a..b");
    assert_eq!(a.to_string(), "a..b");
    assert_eq!(a.parts(), &[exact("a"), exact("b")]);
    assert_eq!(a.hash_value(), topic_hash("a..b"));
    assert_ne!(a, t("a.b"), "equality goes by the literal");
    assert_eq!(t("+x"), t("+x"));
    assert_ne!(t("+x"), t("{x}"));

    use std::collections::HashSet;
    let set: HashSet<Topic> = ["a.b", "a.b", "a..b", "{x}"].iter().map(|s| t(s)).collect();
    assert_eq!(set.len(), 3);
}

#[test]
fn topic_hash_is_xxh3_64() {
    // Reference values of XXH3_64bits with seed 0.
    assert_eq!(topic_hash(""), 0x2d06_8005_38d3_94c2);
    assert_eq!(topic_hash("a"), 0xe6c6_32b6_1e96_4e1f);
    assert_eq!(t("").hash_value(), topic_hash(""));
    assert_eq!(Topic::default().hash_value(), topic_hash(""));
    assert_eq!(t("Orders.New.EU").hash_value(), topic_hash("Orders.New.EU"));
}

#[test]
fn exactness_is_cached_and_kept_up_to_date() {
    assert!(t("a.b.c").is_exact());
    assert!(t("a.+.{}.()").is_exact());
    assert!(!t("a.{b}").is_exact());
    assert!(!t("a.(b|c)").is_exact());
    assert!(!t("a./b/").is_exact());
    let mut topic = t("a.b");
    topic.push_part(any("c"));
    assert!(!topic.is_exact());
    let formatted = topic.format_with(|_| Some("x".into())).unwrap();
    assert!(formatted.is_exact());
}

#[test]
fn join_takes_strings_as_they_are() {
    let topic = Topic::join(["Market", "Data", "600010.SH"]);
    assert_eq!(topic.literal(), "Market.Data.600010.SH");
    assert_eq!(
        topic.parts(),
        &[exact("Market"), exact("Data"), exact("600010.SH")]
    );
    assert!(topic.is_exact());
    assert_eq!(topic.hash_value(), topic_hash("Market.Data.600010.SH"));
    // No marker is interpreted.
    let topic = Topic::join(vec!["{x}".to_string(), "+y".to_string()]);
    assert_eq!(topic.parts(), &[exact("{x}"), exact("+y")]);
    assert!(topic.is_exact());
    // Empty strings are skipped.
    assert_eq!(Topic::join(["a", "", "b"]).literal(), "a.b");
    assert_eq!(Topic::join(Vec::<String>::new()), Topic::default());
}

#[test]
fn from_parts_writes_canonical_literals() {
    let topic = Topic::from_parts(vec![
        exact("Orders"),
        any("side"),
        range(&["EU", "US"]),
        pattern("^[0-9]+$"),
    ]);
    assert_eq!(topic.literal(), "Orders.{side}.(EU|US)./^[0-9]+$/");
    assert!(!topic.is_exact());
    assert_eq!(t(topic.literal()).parts(), topic.parts());
    assert_eq!(Topic::from_parts(vec![exact(""), any("")]).len(), 0);
}

#[test]
fn push_part_and_extend_rebuild_the_literal() {
    let mut topic = t("a..+b");
    topic.push_part(exact("c"));
    assert_eq!(topic.literal(), "a.{b}.c");
    assert_eq!(topic.hash_value(), topic_hash("a.{b}.c"));
    topic.push_part(exact(""));
    assert_eq!(topic.len(), 3);
    assert_eq!(topic.literal(), "a.{b}.c");

    let mut base = t("x");
    base.extend(&t("(p|q).+r"));
    assert_eq!(base.literal(), "x.(p|q).{r}");
    assert_eq!(base.len(), 3);
    assert!(!base.is_exact());

    let mut empty = Topic::default();
    empty.extend(&t("a.b"));
    assert_eq!(empty.literal(), "a.b");
}

#[test]
fn update_literal_normalises_and_round_trips() {
    let mut topic = t("a..+b.(x||y)./c.d/.");
    topic.update_literal();
    assert_eq!(topic.literal(), "a.{b}.(x|y)./c.d/");
    assert_eq!(t(topic.literal()).parts(), topic.parts());
    let mut topic = t("(|)");
    topic.update_literal();
    assert_eq!(topic.literal(), "(|)");
    assert_eq!(t(topic.literal()).parts(), topic.parts());
}

#[test]
fn format_replaces_wildcards() {
    let topic = t("Market.{kind}.+symbol");
    let formatted = topic
        .format_with(|name| match name {
            "kind" => Some("Trade".into()),
            "symbol" => Some("AAPL".into()),
            _ => None,
        })
        .unwrap();
    assert_eq!(formatted.literal(), "Market.Trade.AAPL");
    assert!(formatted.is_exact());
    assert!(topic.matches(&formatted));
    // The value is taken as one exact part, even with a `.` in it.
    let formatted = t("Data.{code}")
        .format_with(|_| Some("600010.SH".into()))
        .unwrap();
    assert_eq!(formatted.literal(), "Data.600010.SH");
    assert_eq!(formatted.len(), 2);
    // Formatting an exact topic rebuilds the literal.
    assert_eq!(t("a..b").format_with(|_| None).unwrap().literal(), "a.b");
}

#[test]
fn format_errors() {
    let err = t("Market.{kind}.{symbol}")
        .format_with(|name| (name == "kind").then(|| "Trade".into()))
        .unwrap_err();
    assert_eq!(
        err,
        TopicError::MissingKey {
            name: "symbol".into()
        }
    );
    assert!(err.to_string().contains("symbol"));

    let err = t("Market.(a|b).{x}")
        .format_with(|_| Some("v".into()))
        .unwrap_err();
    assert_eq!(
        err,
        TopicError::NotFormattable {
            topic: "Market.(a|b).{x}".into()
        }
    );
    assert!(err.to_string().contains("Market.(a|b).{x}"));
    assert!(matches!(
        t("/x/").format_with(|_| None),
        Err(TopicError::NotFormattable { .. })
    ));
    // The first problem in part order is reported.
    assert!(matches!(
        t("{x}.(a|b)").format_with(|_| None),
        Err(TopicError::MissingKey { .. })
    ));
}

#[test]
fn errors_from_parse_name_the_topic() {
    let err = Topic::parse("Log./open").unwrap_err();
    assert_eq!(
        err,
        TopicError::UnclosedPattern {
            topic: "Log./open".into()
        }
    );
    let err = "Quotes./(/".parse::<Topic>().unwrap_err();
    assert!(matches!(err, TopicError::BadRegex { .. }));
    assert!(err.to_string().contains("Quotes./(/"), "{err}");
}

#[test]
fn canonical_flag() {
    assert!(t("a..+b.(x|).//").is_canonical());
    assert!(Topic::default().is_canonical());
    assert!(Topic::join(["a", "b"]).is_canonical());
    assert!(!Topic::join(["Market", "600010.SH"]).is_canonical());
    assert!(!Topic::join(["{x}"]).is_canonical());
    assert!(!Topic::from_parts(vec![any("a.b")]).is_canonical());
    let formatted = t("Data.{code}")
        .format_with(|_| Some("600010.SH".into()))
        .unwrap();
    assert!(!formatted.is_canonical());
    let formatted = t("Data.{code}")
        .format_with(|_| Some("AAPL".into()))
        .unwrap();
    assert!(formatted.is_canonical());
}
