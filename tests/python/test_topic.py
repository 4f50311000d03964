"""Topic, TopicPart*, TopicMatchResult and the interning map, as a user calls them."""

import pickle
import re

import event_engine
import pytest
from event_engine import (
    Topic,
    TopicMatchResult,
    TopicPart,
    TopicPartAny,
    TopicPartExact,
    TopicPartPattern,
    TopicPartRange,
    TopicType,
)


def test_exact_topic_properties():
    t = Topic("Market.Data.AAPL")
    assert t.value == "Market.Data.AAPL"
    assert str(t) == "Market.Data.AAPL"
    assert t.is_exact
    assert isinstance(t.hash_value, int) and t.hash_value > 0
    assert isinstance(t.addr, int) and t.addr != 0
    assert len(t) == 3
    assert [p.part for p in t] == ["Market", "Data", "AAPL"]
    assert t[0].part == "Market" and t[-1].part == "AAPL"
    assert "Market.Data.AAPL" in repr(t)
    with pytest.raises(IndexError):
        t[3]
    with pytest.raises(IndexError):
        t[-4]


def test_hash_value_is_xxh3_of_the_literal_and_stable():
    a, b = Topic("Orders.New.EU"), Topic("Orders.New.EU")
    assert a.hash_value == b.hash_value
    assert a.hash_value != Topic("Orders.New.US").hash_value
    # xxh3_64(b"") is a fixed, published value.
    assert Topic("").hash_value == 0x2D06800538D394C2


def test_equality_and_hash_by_literal():
    a, b = Topic("a.b"), Topic.join(["a", "b"])
    assert a == b and hash(a) == hash(b)
    assert a != Topic("a.c")
    assert a != "a.b"
    assert len({a, b, Topic("a.c")}) == 2
    d = {a: 1}
    assert d[b] == 1


def test_parts_of_a_topic_chain_with_next_as_in_pyeventengine():
    # PyEventEngine 0.6.2: topic[i].next() is topic[i + 1]; StopIteration after the last.
    t = Topic("a.+b.(x|y)")
    parts = list(t)
    second = parts[0].next()
    assert isinstance(second, TopicPartAny) and second.name == "b"
    third = parts[1].next()
    assert isinstance(third, TopicPartRange) and list(third.options()) == ["x", "y"]
    assert t[0].next().next() == third
    with pytest.raises(StopIteration):
        parts[2].next()
    with pytest.raises(StopIteration):
        t[-1].next()
    # A part made on its own is not part of a topic: it owns itself and has no next.
    alone = TopicPartExact("x", alloc=True)
    assert alone.owner is True and all(p.owner is False for p in t)
    with pytest.raises(StopIteration):
        alone.next()
    # A chain follows the topic the part came from, not later changes to another topic.
    grown = Topic("p.q")
    first = grown[0]
    grown.append(TopicPartExact("r"))
    with pytest.raises(StopIteration):
        first.next().next()
    assert grown[1].next().part == "r"


def test_generic_topics_and_part_kinds():
    t = Topic(r"Realtime.(TickData|TradeData)./^[0-9]{6}\.(SZ|SH)$/.+suffix.{ticker}")
    assert not t.is_exact
    kinds = [p.ttype for p in t]
    assert kinds == [
        TopicType.TOPIC_PART_EXACT,
        TopicType.TOPIC_PART_RANGE,
        TopicType.TOPIC_PART_PATTERN,
        TopicType.TOPIC_PART_ANY,
        TopicType.TOPIC_PART_ANY,
    ]
    assert all(isinstance(p, TopicPart) for p in t)
    assert isinstance(t[0], TopicPartExact)
    assert isinstance(t[1], TopicPartRange)
    assert list(t[1].options()) == ["TickData", "TradeData"]
    assert list(t[1]) == ["TickData", "TradeData"] and len(t[1]) == 2
    assert isinstance(t[2], TopicPartPattern)
    assert t[2].pattern == r"^[0-9]{6}\.(SZ|SH)$"
    assert isinstance(t[3], TopicPartAny) and t[3].name == "suffix"
    assert t[4].name == "ticker"
    assert isinstance(TopicType.TOPIC_PART_ANY, int) and TopicType.TOPIC_PART_ANY == 1


def test_pattern_regex_is_a_python_re_pattern_compiled_once():
    part = Topic("Quotes./^[A-Z]{3}$/")[1]
    rx = part.regex
    assert isinstance(rx, re.Pattern)
    assert rx.match("EUR") and not rx.match("EURO")
    assert part.regex is rx


def test_part_constructors_and_reprs():
    assert TopicPartExact("Data").part == "Data"
    assert len(TopicPartExact("订单")) == len("订单".encode())
    assert TopicPartAny("symbol").name == "symbol"
    assert list(TopicPartRange(["a", "", "b"]).options()) == ["a", "b"]
    assert TopicPartPattern("^x$").pattern == "^x$"
    assert 'topic="Data"' in repr(TopicPartExact("Data"))
    assert 'name="s"' in repr(TopicPartAny("s"))
    assert "options=['a', 'b']" in repr(TopicPartRange(["a", "b"]))
    assert 'regex="^x$"' in repr(TopicPartPattern("^x$"))
    assert TopicPartExact("a") == TopicPartExact("a") != TopicPartAny("a")
    assert isinstance(TopicPartExact("a").addr, int)
    with pytest.raises(ValueError):
        TopicPartPattern("(unclosed")


@pytest.mark.parametrize(
    ("pattern", "published", "matched"),
    [
        ("Orders.New.EU", "Orders.New.EU", True),
        ("Orders.{side}.EU", "Orders.Cancel.EU", True),
        ("Orders.{side}.EU", "Orders.Cancel.US", False),
        ("Orders.(New|Cancel).+region", "Orders.Amend.EU", False),
        ("Orders.(New|Cancel).+region", "Orders.New.EU", True),
        ("Quotes./^[A-Z]{3}$/", "Quotes.EUR", True),
        ("Quotes./^[A-Z]{3}$/", "Quotes.EURO", False),
        ("Quotes./[0-9]{6}/", "Quotes.pre600010", True),
        ("Quotes.{ccy}", "Quotes.EUR.Spot", False),
        ("a.b", "a.b.c", False),
        ("Data.{symbol}", "Data", False),
        ("订单.+动作", "订单.新建", True),
    ],
)
def test_matching_table(pattern, published, matched):
    result = Topic(pattern).match(Topic(published))
    assert isinstance(result, TopicMatchResult)
    assert result.matched is matched
    assert bool(result) is matched


def test_match_result_nodes_and_to_dict():
    result = Topic("Market.{kind}.{symbol}").match(Topic("Market.Trade.AAPL"))
    assert result.matched and result.length == 3 and len(result) == 3
    nodes = list(result)
    assert nodes[0] == result[0]
    assert set(nodes[0]) == {"matched", "part_a", "part_b", "literal"}
    assert nodes[1]["matched"] is True
    assert isinstance(nodes[1]["part_a"], TopicPartAny)
    assert nodes[1]["part_b"].part == "Trade"
    assert nodes[1]["literal"] == "Trade"
    assert result[-1]["literal"] == "AAPL"
    with pytest.raises(IndexError):
        result[3]
    d = result.to_dict()
    # Keyed by the literal each node matched, as PyEventEngine keys it.
    assert list(d) == ["Market", "Trade", "AAPL"]
    assert isinstance(d["Trade"], TopicPartExact) and d["Trade"].part == "Trade"
    assert d["AAPL"].part == "AAPL"
    assert "success" in repr(result)


@pytest.mark.parametrize(
    ("pattern", "target", "expected"),
    [
        # The example: keys are the target's literal at each node.
        ("a.+x", "a.test", {"a": ("Exact", "a"), "test": ("Exact", "test")}),
        # Identical topics: one node, keyed by the whole literal, mapped to the first part.
        ("a.b", "a.b", {"a.b": ("Exact", "a")}),
        # The value is the target's part, whichever side is generic.
        ("a.test", "a.+x", {"a": ("Exact", "a"), "test": ("Any", "x")}),
        # A failed node is keyed "" and still maps the target's part.
        ("a.+x", "a.b.c", {"a": ("Exact", "a"), "b": ("Exact", "b"), "": ("Exact", "c")}),
        ("a.+x", "b.y", {"": ("Exact", "b")}),
    ],
)
def test_to_dict_is_keyed_by_each_nodes_literal(pattern, target, expected):
    def shape(part):
        if isinstance(part, TopicPartExact):
            return ("Exact", part.part)
        return ("Any", part.name)

    d = Topic(pattern).match(Topic(target)).to_dict()
    assert {k: shape(v) for k, v in d.items()} == expected


def test_failed_match_records_the_failing_node():
    result = Topic("a.b").match(Topic("a.c"))
    assert not result
    assert result[-1]["matched"] is False
    assert "failed" in repr(result)


def test_empty_tokens_and_degenerate_markers():
    t = Topic("a..b")
    assert len(t) == 2 and t.value == "a..b"
    assert len(Topic("a.")) == 1
    assert len(Topic("")) == 0 and Topic("").is_exact
    for token in ["+", "{}", "()", "{abc", "(abc"]:
        part = Topic(f"x.{token}")[1]
        assert isinstance(part, TopicPartExact), token
        assert part.part == token


def test_pattern_may_contain_the_separator():
    t = Topic(r"./a\.b\.[0-9]/.tail")
    assert [type(p) for p in t] == [TopicPartPattern, TopicPartExact]
    assert t[0].pattern == r"a\.b\.[0-9]"


@pytest.mark.parametrize("bad", ["Log./open", "./x/y"])
def test_unclosed_pattern_is_a_value_error_naming_the_topic(bad):
    with pytest.raises(ValueError, match=re.escape(bad)):
        Topic(bad)


def test_bad_regex_is_a_value_error():
    with pytest.raises(ValueError, match="Quotes"):
        Topic("Quotes./(unclosed/")


def test_format_and_call():
    t = Topic("Market.{kind}.+symbol")
    f = t.format(kind="Trade", symbol="AAPL")
    assert f.value == "Market.Trade.AAPL" and f.is_exact
    assert t(kind="Quote", symbol=600010).value == "Market.Quote.600010"
    assert t.value == "Market.{kind}.+symbol"
    with pytest.raises(ValueError, match="cannot be formatted"):
        Topic("a.(x|y).{z}").format(z="1")


def test_format_leaves_the_wildcards_it_is_not_given():
    t = Topic("r.{a}.{b}")
    partial = t.format(a="x")
    assert partial.value == "r.x.{b}" and not partial.is_exact
    assert isinstance(partial[2], TopicPartAny) and partial[2].name == "b"
    assert t(a="x").value == "r.x.{b}"
    assert t.format().value == "r.{a}.{b}"
    assert partial.format(b="y").value == "r.x.y" and partial.format(b="y").is_exact


def test_format_map():
    t = Topic("realtime.{ticker}.{dtype}")
    full = t.format_map({"ticker": "600010.SH", "dtype": "TickData"}, strict=True)
    assert full.value == "realtime.600010.SH.TickData" and full.is_exact and len(full) == 3
    assert t.format_map({"ticker": "X"}).value == "realtime.X.{dtype}"
    assert t.format_map({"ticker": "X"}, internalized=False).value == "realtime.X.{dtype}"
    with pytest.raises(KeyError, match="dtype"):
        t.format_map({"ticker": "X"}, strict=True)
    with pytest.raises(ValueError, match="cannot be formatted"):
        Topic("a./x/.{z}").format_map({"z": "1"})


@pytest.mark.parametrize("text", ["A..B", "A.(B", "A.{x", "A.{}", "A.+", "A.()", ""])
def test_degenerate_topics_are_exact_topics_not_errors(text):
    # The README names the only topic strings that are errors; these are not among them.
    assert Topic(text).is_exact and Topic(text).value == text


@pytest.mark.parametrize(
    ("text", "reason"),
    [("Log./open", "unclosed pattern"), ("./x/y", "unclosed pattern"), ("A./[/", "invalid regex")],
)
def test_the_only_malformed_topics_are_value_errors_naming_them(text, reason):
    with pytest.raises(ValueError, match=reason) as err:
        Topic(text)
    assert text in str(err.value)


def test_join_from_parts_append_add_update_literal():
    j = Topic.join(["Realtime", "TickData", "600010.SH"])
    assert j.value == "Realtime.TickData.600010.SH"
    assert len(j) == 3 and j[-1].part == "600010.SH"
    with pytest.raises(TypeError):
        Topic.join(["a", 1])

    fp = Topic.from_parts([TopicPartExact("Data"), TopicPartAny("symbol")])
    assert fp.value == "Data.{symbol}" and not fp.is_exact
    with pytest.raises(TypeError):
        Topic.from_parts(["Data"])

    base = Topic("A.B")
    joined = base + Topic("C.D")
    assert joined.value == "A.B.C.D" and base.value == "A.B"
    assert (base + TopicPartExact("X")).value == "A.B.X"
    with pytest.raises(TypeError):
        base + "C"

    grown = Topic("P.Q")
    same = grown.append(TopicPartAny("r"))
    assert same is grown and len(grown) == 3
    grown.update_literal()
    assert grown.value == "P.Q.{r}"
    grown += TopicPartExact("s")
    assert len(grown) == 4

    doubled = Topic("D.E")
    doubled += doubled
    assert len(doubled) == 4 and [p.part for p in doubled] == ["D", "E", "D", "E"]


def test_appending_never_changes_other_topics_sharing_the_parse():
    a = Topic("Shared.Topic")
    b = Topic("Shared.Topic")
    assert a.addr == b.addr  # interned: one parse shared
    b.append(TopicPartExact("More"))
    b.update_literal()
    assert a.value == "Shared.Topic" and len(a) == 2
    assert b.value == "Shared.Topic.More"


def test_value_setter_reparses():
    t = Topic("a.b")
    t.value = "x.{y}"
    assert t.value == "x.{y}" and not t.is_exact and len(t) == 2


def test_pickle_round_trip():
    t = Topic("Market.Data.{symbol}")
    assert pickle.loads(pickle.dumps(t)) == t


def test_internal_map_semantics():
    event_engine.clear_internal_map()
    assert event_engine.get_internal_topic("Interned.One") is None
    t = Topic("Interned.One")
    shared = event_engine.get_internal_topic("Interned.One")
    assert shared == t and shared.addr == t.addr
    owned = event_engine.get_internal_topic("Interned.One", owner=True)
    assert owned == t and owned.addr != t.addr
    m = event_engine.get_internal_map()
    assert isinstance(m, dict) and m["Interned.One"] == t
    assert "Interned.One" in event_engine.init_internal_map()
    event_engine.clear_internal_map()
    assert event_engine.get_internal_map() == {}
    assert t.value == "Interned.One"  # existing topics keep working


def test_init_allocator():
    assert event_engine.init_allocator() is None
    assert event_engine.init_allocator(capacity=1024, with_shm=False) is None
    # The shared-memory bus is covered by tests/python_bus; here only the name check,
    # which fails before anything is created.
    with pytest.raises(ValueError, match="invalid bus name"):
        event_engine.init_allocator(with_shm=True, name="../bus")
