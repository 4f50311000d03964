"""What arrives is what was put: the compact encoding of primitive arguments, the pickle
fallback for everything else (types kept), and the decoding of each codec, through a bus."""

from __future__ import annotations

import enum
import math

import pytest
from conftest import assert_idle
from event_engine import EventEngine, Topic


class Side(enum.IntEnum):
    BUY = 1


class Name(str):
    pass


CASES = [
    ((), {}),
    ((None, True, False, 0, -1, 2**63 - 1, -(2**63)), {}),
    ((1.5, -0.0, math.inf, "", "héllo ☃", b"", b"\x00\xff"), {"k": "v", "n": None}),
    (([1, "a", None], (2.5, b"b"), [], ()), {"seq": [True, 3]}),
    # No compact form: each goes through pickle and keeps its type.
    ((2**63,), {}),
    ((Side.BUY, Name("x")), {}),
    (([[1]], {"a": 1}, {1, 2}), {}),
    (([1, [2]],), {"d": {"x": (1, [2])}}),
]


@pytest.mark.parametrize("args, kwargs", CASES)
def test_round_trip_keeps_values_and_types(bus, args, kwargs):
    with EventEngine(bus=bus) as engine:
        engine.register_handler(Topic("Codec.Case"), lambda *a, **k: None)  # wants it back
        engine.put(Topic("Codec.Case"), *args, **kwargs)
        got = engine.get(block=False)
        assert got.topic.value == "Codec.Case"
        assert got.args == args
        assert [type(a) for a in got.args] == [type(a) for a in args]
        assert (got.kwargs or {}) == kwargs
    assert_idle(bus)


class Key(str):
    """A str subclass: not a compact type, so it travels pickled (and keeps its type)."""


def test_publish_with_a_key_of_a_str_subclass_falls_back_to_pickle(bus):
    # A key that is not a str at all is refused by publish() (test_hostile.py).
    with EventEngine(bus=bus) as engine:
        engine.register_handler(Topic("Codec.Keys"), lambda *a, **k: None)  # wants it back
        engine.publish(Topic("Codec.Keys"), (1,), {Key("one"): 1})
        got = engine.get(block=False)
        assert (got.args, got.kwargs) == ((1,), {"one": 1})
        assert type(next(iter(got.kwargs))) is Key
    assert_idle(bus)


def test_a_list_changed_while_encoding_cannot_break_the_payload(bus):
    class Evil:
        def __reduce__(self):
            return (list, ())

    with EventEngine(bus=bus) as engine:
        engine.register_handler(Topic("Codec.Evil"), lambda *a, **k: None)  # wants it back
        engine.put(Topic("Codec.Evil"), [1, 2, 3], Evil())
        got = engine.get(block=False)
        assert got.args == ([1, 2, 3], [])
    assert_idle(bus)


def test_put_keywords_of_its_own_and_many_keywords_travel_right(bus):
    many = {f"k{i}": i for i in range(100)}
    with EventEngine(bus=bus) as engine:
        engine.register_handler(Topic("Codec.Keywords"), lambda *a, **k: None)  # wants it back
        engine.put(Topic("Codec.Keywords"), 1, block=True, size=2, timeout=5.0, side="b", max_spin=9)
        engine.put(Topic("Codec.Keywords"), 2, block=True, **many)
        engine.put(topic=Topic("Codec.Keywords"), x=Name("subclass"))
        got = [engine.get(block=False) for _ in range(3)]
    assert [(m.args, m.kwargs) for m in got] == [
        ((1,), {"size": 2, "side": "b"}),
        ((2,), many),
        ((), {"x": "subclass"}),
    ]
    assert type(got[2].kwargs["x"]) is Name
    assert_idle(bus)
