"""A put's `block` and `timeout` bound every wait of the put, including the wait for the
engine's publisher while another thread of the same engine holds it waiting for room
(docs/delivery.md, "Backpressure")."""

from __future__ import annotations

import math
import threading
import time

import pytest
from conftest import assert_idle
from event_engine import Empty, EventEngine, Full, Topic, inspect_bus

TOPIC = Topic("Deadline.Full.a")


def fill(engine: EventEngine) -> int:
    """Puts until the bus is full; returns how many went in."""
    n = 0
    while True:
        try:
            engine.put(TOPIC, n, block=False)
        except Full:
            return n
        n += 1


@pytest.fixture
def full_bus_with_a_waiting_put(bus):
    """A bus filled for a subscriber that never dispatches, and a thread of the publishing
    engine blocked in `put` for want of room (it holds the engine's publisher while it waits).
    Yields (publisher, holder, waiter thread); afterwards the holder drains the bus."""
    holder = EventEngine(bus=bus)
    holder.register_handler(TOPIC, lambda *a: None)  # wants the topic, never started
    pub = EventEngine(bus=bus)
    queued = fill(pub)
    assert queued > 0
    waiting = threading.Event()
    outcome: list[object] = []

    def blocked_put() -> None:
        waiting.set()
        try:
            pub.put(TOPIC, -1, timeout=60)
            outcome.append("put")
        except Full as e:  # pragma: no cover - only if the drain below never comes
            outcome.append(e)

    waiter = threading.Thread(target=blocked_put, daemon=True)
    waiter.start()
    waiting.wait(5)
    # The waiter takes the publisher and then sleeps for room: wait until the bus counts it
    # as a sleeping publisher (it holds the engine's publisher from then on).
    deadline = time.monotonic() + 10
    while inspect_bus(bus)["counters"]["pub_sleepers"] == 0:
        assert time.monotonic() < deadline, "the put never started waiting for room"
        time.sleep(0.001)
    yield pub, holder, waiter, outcome
    holder.start()
    waiter.join(30)
    assert outcome == ["put"], outcome
    holder.stop()
    pub.close()
    holder.close()
    assert_idle(bus)


def test_put_that_may_not_wait_raises_full_while_another_thread_waits_in_put(
    full_bus_with_a_waiting_put,
):
    pub, _holder, waiter, _ = full_bus_with_a_waiting_put
    assert waiter.is_alive()
    result: list[object] = []

    def nonblocking() -> None:
        try:
            pub.put(TOPIC, -2, block=False)
            result.append("put")
        except Full as e:
            result.append(e)

    t = threading.Thread(target=nonblocking, daemon=True)
    started = time.monotonic()
    t.start()
    t.join(10)
    assert not t.is_alive(), "put(block=False) waited behind another thread's waiting put"
    assert isinstance(result[0], Full), result
    assert "full" in str(result[0])
    assert time.monotonic() - started < 5


def test_put_with_a_timeout_raises_full_at_its_deadline_while_another_thread_waits(
    full_bus_with_a_waiting_put,
):
    pub, _holder, waiter, _ = full_bus_with_a_waiting_put
    assert waiter.is_alive()
    result: list[object] = []

    def timed() -> None:
        started = time.monotonic()
        try:
            pub.put(TOPIC, -3, timeout=0.5)
            result.append("put")
        except Full as e:
            result.append(e)
        result.append(time.monotonic() - started)

    t = threading.Thread(target=timed, daemon=True)
    t.start()
    t.join(10)
    assert not t.is_alive(), "put(timeout=0.5) ignored its deadline behind another waiting put"
    assert isinstance(result[0], Full), result
    waited = result[1]
    assert isinstance(waited, float)
    assert 0.45 <= waited < 5, waited


@pytest.mark.parametrize("on_bus", [False, True])
def test_a_nan_timeout_is_a_value_error(bus, on_bus):
    engine = EventEngine(bus=bus) if on_bus else EventEngine()
    try:
        with pytest.raises(ValueError, match="NaN"):
            engine.put(TOPIC, 1, timeout=math.nan)
        with pytest.raises(ValueError, match="NaN"):
            engine.publish(TOPIC, (1,), {}, timeout=math.nan)
        with pytest.raises(ValueError, match="NaN"):
            engine.get(timeout=math.nan)
        # The refused puts published nothing.
        with pytest.raises(Empty):
            engine.get(block=False)
    finally:
        if on_bus:
            engine.close()
    if on_bus:
        assert_idle(bus)
