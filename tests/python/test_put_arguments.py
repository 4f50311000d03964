"""How `put` takes its arguments: `topic` positional or by keyword, its own keywords (`block`,
`max_spin`, `timeout`) kept out of the message, everything else passed on as it was given, and
the same errors for a wrong call as any Python method with that signature."""

import inspect
import platform

import pytest
from event_engine import EventEngine, EventEngineEx, Topic


@pytest.fixture
def engine():
    return EventEngine(capacity=8)


def taken(engine):
    m = engine.get(block=False)
    return m.topic.value, m.args, m.kwargs


def test_positional_and_keyword_arguments_arrive_as_given(engine):
    engine.put(Topic("A.B"), 1, 2.5, "x", size=3, side="buy")
    assert taken(engine) == ("A.B", (1, 2.5, "x"), {"size": 3, "side": "buy"})


def test_its_own_keywords_are_not_part_of_the_message(engine):
    engine.put(Topic("A.B"), 1, block=True, size=3, timeout=1.0, max_spin=10, z=None)
    assert taken(engine) == ("A.B", (1,), {"size": 3, "z": None})
    engine.put(Topic("A.B"), block=False)
    assert taken(engine) == ("A.B", (), None)  # no keyword of the message's: kwargs is None


def test_topic_may_be_given_by_keyword(engine):
    engine.put(topic=Topic("A.B"), x=1)
    assert taken(engine) == ("A.B", (), {"x": 1})


def test_many_keywords_arrive_whole(engine):
    kwargs = {f"k{i}": i for i in range(100)}
    engine.put(Topic("A.B"), 0, block=True, **kwargs)
    assert taken(engine) == ("A.B", (0,), kwargs)


def test_the_caller_keeps_its_own_containers(engine):
    kwargs = {"a": 1}
    engine.put(Topic("A.B"), **kwargs)
    kwargs["b"] = 2
    assert taken(engine)[2] == {"a": 1}


@pytest.mark.parametrize(
    "call, error, text",
    [
        (lambda e: e.put(), TypeError, "EventEngine.put() missing 1 required positional argument: 'topic'"),
        (lambda e: e.put(block=False), TypeError, "missing 1 required positional argument: 'topic'"),
        (lambda e: e.put(Topic("A"), topic=Topic("A")), TypeError, "got multiple values for argument 'topic'"),
        (lambda e: e.put(Topic("A"), block="yes"), TypeError, "argument 'block': "),
        (lambda e: e.put(Topic("A"), timeout="1"), TypeError, "argument 'timeout': "),
        (lambda e: e.put(Topic("A"), max_spin=-1), OverflowError, ""),
        (lambda e: e.put("A"), TypeError, "expects a Topic, got str"),
        (lambda e: EventEngine.put(1, Topic("A")), TypeError, "'put'"),
    ],
)
def test_a_wrong_call_raises_and_queues_nothing(engine, call, error, text):
    with pytest.raises(error) as info:
        call(engine)
    assert text in str(info.value)
    assert engine.occupied == 0
    assert engine.seq_id == 0


CPYTHON = platform.python_implementation() == "CPython"


def test_signature_and_inheritance():
    # PyPy shows no text signature or doc for a compiled method (its `inspect` raises).
    if CPYTHON:
        assert str(inspect.signature(EventEngine.put)) == (
            "(self, /, topic, *args, block=True, max_spin=65535, timeout=0.0, **kwargs)"
        )
        assert EventEngine.put.__doc__.startswith("Publishes a message")
    ex = EventEngineEx(capacity=4)
    ex.put(Topic("A.B"), 1, size=2)
    assert taken(ex) == ("A.B", (1,), {"size": 2})


def test_a_subclass_may_override_put():
    class Counting(EventEngine):
        calls = 0

        def put(self, topic, *args, **kwargs):
            Counting.calls += 1
            super().put(topic, *args, **kwargs)

    eng = Counting(capacity=4)
    eng.put(Topic("A.B"), 1, k=2)
    assert Counting.calls == 1
    assert taken(eng) == ("A.B", (1,), {"k": 2})


def fresh(text):
    """An equal str that is a new object, not the interpreter's interned one (as the names of a
    dict built at run time are)."""
    copy = text.encode().decode()
    assert copy == text
    if CPYTHON:  # PyPy's `is` compares str by value
        assert copy is not text
    return copy


def test_its_own_keywords_are_known_by_name_not_by_identity(engine):
    own = {fresh("block"): False, fresh("timeout"): 1.0, fresh("max_spin"): 3}
    engine.put(Topic("A.B"), 1, **own, **{fresh("size"): 2})
    assert taken(engine) == ("A.B", (1,), {"size": 2})
    engine.put(**{fresh("topic"): Topic("A.B")}, x=1)
    assert taken(engine) == ("A.B", (), {"x": 1})
    with pytest.raises(TypeError, match="argument 'block'"):
        engine.put(Topic("A.B"), **{fresh("block"): "yes"})


def test_a_message_of_containers_survives_the_cyclic_collector(engine):
    import gc

    # A tuple of plain values leaves the collector's lists at once; one holding a container
    # must stay in them, or a cycle through it would be freed while the message waits.
    cycle = []
    cycle.append(cycle)
    engine.put(Topic("A.B"), 1, "x", cycle, 2.5, None, True, b"b")
    engine.put(Topic("A.B"), 1, "x", 2.5, None, True, b"b")
    del cycle
    gc.collect()
    first = engine.get(block=False).args
    assert first[2][0] is first[2]
    second = engine.get(block=False).args
    assert second == (1, "x", 2.5, None, True, b"b")
    if CPYTHON:  # PyPy's collector has no such lists (nor `gc.is_tracked`)
        assert gc.is_tracked(first) and not gc.is_tracked(second)


def test_a_timeout_beyond_any_duration_means_no_limit(engine):
    engine.put(Topic("A.B"), 1, timeout=1e300)
    engine.put(Topic("A.B"), 2, timeout=float("inf"))
    assert [taken(engine)[1] for _ in range(2)] == [(1,), (2,)]


def test_its_own_keywords_may_be_str_subclasses(engine):
    class Name(str):
        pass

    engine.put(Topic("A.B"), 1, **{Name("block"): False, Name("size"): 2})
    assert taken(engine) == ("A.B", (1,), {"size": 2})
