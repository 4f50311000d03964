"""Worker processes of the hold and loan tests (spawn context unless a test forks)."""

from __future__ import annotations

import gc
import threading

import numpy as np
from event_engine import EventEngine, Topic

#: A guard against a hung test, never a synchronisation: every wait below ends on an event.
GUARD = 120.0
TOPIC = "Hold.Frame"


def frame(i: int, size: int) -> np.ndarray:
    """Message `i`: `size` bytes, each `i % 251`, with `i` in the first eight."""
    a = np.full(size, i % 251, dtype=np.uint8)
    a[:8] = np.frombuffer(int(i).to_bytes(8, "little"), dtype=np.uint8)
    return a


def check(a: np.ndarray, size: int) -> int:
    """The message number of a received frame, after checking every byte of it."""
    assert a.dtype == np.uint8 and a.shape == (size,), (a.dtype, a.shape)
    i = int.from_bytes(a[:8].tobytes(), "little")
    assert (a[8:] == i % 251).all(), f"frame {i} changed"
    return i


def publisher(bus, count, size, go, done):
    """Publishes `count` frames of `size` bytes once `go` is set; reports Full as a failure."""
    engine = EventEngine(bus=bus)
    go.wait(GUARD)
    for i in range(count):
        engine.put(Topic(TOPIC), frame(i, size), timeout=30.0)
    done.set()
    engine.close()


def holder_until_killed(bus, size, ready, held):
    """Keeps every frame it receives (so they stay held), says so after the first, and waits to
    be killed."""
    engine = EventEngine(bus=bus)
    kept = []

    def handler(a, topic):
        kept.append(a)
        held.set()

    engine.register_handler(Topic(TOPIC), handler)
    engine.start()
    ready.set()
    threading.Event().wait(GUARD)


def keeper_that_exits(bus, size, count, ready, results):
    """Keeps every frame in a module-level list and lets the interpreter exit with the views
    alive."""
    engine = EventEngine(bus=bus)
    got = threading.Event()

    def handler(a, topic):
        KEPT.append(a)
        if len(KEPT) == count:
            got.set()

    engine.register_handler(Topic(TOPIC), handler)
    engine.start()
    ready.set()
    got.wait(GUARD)
    results.put([check(a, size) for a in KEPT])
    gc.collect()
    # No stop(), no close(): exit must detach on its own, views alive.


KEPT: list = []


def keeper(bus, group, size, count, ready, results, shared_total, group_done):
    """Receives `count` frames (as a member of `group` if given: the members count together in
    `shared_total`, and the one that reaches `count` sets `group_done`), keeps them all, checks
    them once every one has arrived and reports the message numbers and how many were views."""
    import event_engine

    engine = EventEngine(bus=bus, group=group)
    kept, got = [], threading.Event()

    def handler(a, topic):
        kept.append(a)
        if group is None:
            if len(kept) == count:
                got.set()
            return
        with shared_total.get_lock():
            shared_total.value += 1
            if shared_total.value == count:
                group_done.set()

    engine.register_handler(Topic(TOPIC), handler)
    engine.start()
    ready.set()
    (got if group is None else group_done).wait(GUARD)

    def viewed(a):
        base = a
        while isinstance(base, np.ndarray):
            base = base.base
        return isinstance(base, event_engine.SharedBuffer)

    results.put(([check(a, size) for a in kept], sum(viewed(a) for a in kept)))
    engine.stop()
    engine.close()


def lender_until_killed(bus, size, lent):
    """Takes a loan, fills it, says so, and waits to be killed."""
    engine = EventEngine(bus=bus)
    loan = engine.loan(size)
    np.frombuffer(loan, dtype=np.uint8)[:] = 1
    lent.set()
    threading.Event().wait(GUARD)
