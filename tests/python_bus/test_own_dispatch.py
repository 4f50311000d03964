"""A put made by a handler on its own engine never waits on that engine's own consumption
(docs/delivery.md, "Puts from a handler"): where it would, it raises `Full` at once, and the
engine, and every other publisher on the bus, go on."""

from __future__ import annotations

import queue

import pytest
from bus_workers import GUARD, self_publisher, steady_publisher
from conftest import assert_idle
from event_engine import EventEngine, Topic

#: The whole scenario must end within this (it wedged for ever before the rule).
DEADLINE = 60.0
#: More puts than the ring has slots (4096 on a default bus).
BURST = 12_000


def test_handler_flooding_its_own_topic_raises_instead_of_wedging_the_bus(bus, ctx):
    results, leave = ctx.Queue(), ctx.Event()
    ready_a, ready_b, go = ctx.Event(), ctx.Event(), ctx.Event()
    a = ctx.Process(target=self_publisher, args=(bus, BURST, ready_a, results, leave))
    b = ctx.Process(
        target=steady_publisher, args=(bus, 2_000, DEADLINE / 4, 0.0005, ready_b, go, results, leave)
    )
    procs = [a, b]
    try:
        a.start()
        b.start()
        assert ready_a.wait(GUARD) and ready_b.wait(GUARD)
        trigger = EventEngine(bus=bus)
        go.set()
        trigger.put(Topic("Echo.Self"), -1)
        got = {}
        try:
            while len(got) < 3:
                kind, value = results.get(timeout=DEADLINE)
                got[kind] = value
        except queue.Empty:
            pytest.fail(f"the bus wedged: after {DEADLINE} s only {sorted(got)} reported: {got}")
        # The handler's put was refused at once, with the documented error, once the room it
        # needed was held by its own engine's messages.
        assert got["guard"] is not None, "all puts went through: the ring never filled"
        kind, text, succeeded, waited = got["guard"]
        assert kind == "Full", text
        assert "made by a handler of this engine" in text and "another thread" in text, text
        assert 0 <= succeeded < BURST
        assert waited < 1.0
        # The other publisher was never refused, and the engine handled everything.
        assert got["steady"] == (2_000, 0)
        assert got["counts"] == {"self": succeeded + 1, "other": 2_001}
        trigger.close()
    finally:
        leave.set()
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()
                p.join()
    assert_idle(bus)
