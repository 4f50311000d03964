"""Worker processes of the bus tests (started with the "spawn" context, so they import this
module afresh). Each attaches its own engine, tells the parent it is ready through an event,
reports what it handled through a queue and leaves when told to."""

from __future__ import annotations

import threading
import time

from event_engine import EventEngine, EventEngineEx, Full, Topic

#: A guard against a hung test, never a synchronisation: every wait below ends on an event.
GUARD = 120.0
END = "Test.End"


def collector(bus, patterns, expected, ready, results, leave, group=None):
    """Handles `patterns` and reports `(topic, args, kwargs)` of everything it handled once
    `expected` messages arrived (None: once a message on `Test.End` arrived)."""
    engine = EventEngine(bus=bus, group=group)
    got = []
    done = threading.Event()

    def handler(*args, topic, **kwargs):
        got.append((topic.value, args, kwargs))
        if expected is not None and len(got) == expected:
            done.set()

    for p in patterns:
        engine.register_handler(Topic(p), handler)
    engine.register_handler(Topic(END), done.set)
    engine.start()
    ready.set()
    done.wait(GUARD)
    engine.stop()
    results.put(got)
    leave.wait(GUARD)
    engine.close()


def group_member(bus, group, ready, ids, leave, victim=None):
    """A member of `group` reporting each `Jobs.Work` id it handled. A victim reports the first
    id it gets on `victim` and then never returns from its handler (the test kills it)."""
    engine = EventEngine(bus=bus, group=group)

    def handler(i, **_kwargs):
        if victim is not None:
            victim.put(i)
            threading.Event().wait()
        ids.put(i)

    engine.register_handler(Topic("Jobs.Work"), handler)
    engine.start()
    ready.set()
    leave.wait(GUARD)
    engine.close()


def timer_owner(bus, ticks, ready, results, leave):
    """An EventEngineEx on the bus counting its own timer's ticks; reports once it saw `ticks`."""
    engine = EventEngineEx(bus=bus)
    seen = []
    done = threading.Event()
    engine.start()
    topic = engine.get_timer(0.01)

    def on_tick(**kwargs):
        seen.append(kwargs["interval"])
        if len(seen) == ticks:
            done.set()

    engine.register_handler(topic, on_tick)
    ready.set()
    done.wait(GUARD)
    engine.stop()
    results.put((topic.value, len(seen)))
    leave.wait(GUARD)
    engine.close()


def two_engines(bus, n, ready, results, leave):
    """Two engines of one process on one bus: each handles every message, its own included."""
    a = EventEngine(bus=bus)
    b = EventEngine(bus=bus)
    seen = {"a": [], "b": []}
    done = {"a": threading.Event(), "b": threading.Event()}

    def recorder(key):
        def handler(i, src):
            seen[key].append((src, i))
            if len(seen[key]) == 2 * n:
                done[key].set()

        return handler

    a.register_handler(Topic("Two.Engines"), recorder("a"))
    b.register_handler(Topic("Two.Engines"), recorder("b"))
    a.start()
    b.start()
    ready.set()
    for i in range(n):
        a.put(Topic("Two.Engines"), i, "a")
        b.put(Topic("Two.Engines"), i, "b")
    done["a"].wait(GUARD)
    done["b"].wait(GUARD)
    a.close()
    b.close()
    results.put(seen)
    leave.wait(GUARD)


def self_publisher(bus, burst, ready, results, leave):
    """Handles `Echo.Self` and `Echo.Other`. On `Echo.Self` -1 its handler puts `burst` messages
    on `Echo.Self` (its own topic) with a blocking put, and reports how that went: the error it
    got (type, text, how many puts succeeded, seconds the failing put took), or None. Reports
    its counts once an `Echo.Other` -1 arrived."""
    engine = EventEngine(bus=bus)
    echo = Topic("Echo.Self")
    counts = {"self": 0, "other": 0}
    done = threading.Event()

    def on_self(i):
        counts["self"] += 1
        if i != -1:
            return
        for k in range(burst):
            started = time.monotonic()
            try:
                engine.put(echo, k)
            except Exception as e:  # noqa: BLE001 - reported to the parent as it is
                results.put(("guard", (type(e).__name__, str(e), k, time.monotonic() - started)))
                return
        results.put(("guard", None))

    def on_other(i):
        counts["other"] += 1
        if i == -1:
            done.set()

    engine.register_handler(echo, on_self)
    engine.register_handler(Topic("Echo.Other"), on_other)
    engine.start()
    ready.set()
    done.wait(GUARD)
    engine.stop()
    results.put(("counts", counts))
    leave.wait(GUARD)
    engine.close()


def steady_publisher(bus, n, per_put_timeout, pause, ready, go, results, leave):
    """Puts `n` messages on `Echo.Other` (then -1), `pause` seconds apart, each waiting at most
    `per_put_timeout` seconds for room; reports how many went through and how many were
    refused (`Full`)."""
    engine = EventEngine(bus=bus)
    topic = Topic("Echo.Other")
    sent = refused = 0
    ready.set()
    go.wait(GUARD)
    for i in range(n):
        try:
            engine.put(topic, i, timeout=per_put_timeout)
            sent += 1
            time.sleep(pause)
        except Full:
            refused += 1
            if refused >= 3:
                break
    if refused == 0:
        engine.put(topic, -1, timeout=per_put_timeout)
    results.put(("steady", (sent, refused)))
    leave.wait(GUARD)
    engine.close()


def lossy_monitor(bus, ready, results, leave):
    """A lossy engine handling `Ticks.{symbol}`: reports the ids it handled and its `missed`
    count once a message on `Test.End` arrived, then stays attached until told to leave."""
    engine = EventEngine(bus=bus, lossy=True)
    got = []
    done = threading.Event()
    engine.register_handler(Topic("Ticks.{symbol}"), lambda i, **_: got.append(i))
    engine.register_handler(Topic(END), done.set)
    engine.start()
    ready.set()
    done.wait(GUARD)
    engine.stop()
    results.put((got, engine.missed))
    # Attached until told to leave: the parent inspects its row after reading the results.
    leave.wait(GUARD)
    engine.close()


def idle_engine(bus, patterns, ready, leave):
    """An engine attached throughout and never started, with hooks on `patterns` (maybe none)."""
    engine = EventEngine(bus=bus)
    for p in patterns:
        engine.register_handler(Topic(p), lambda *a, **k: None)
    ready.set()
    leave.wait(GUARD)
    engine.close()


def digest_receiver(bus, topic, ready, results, leave):
    """Handles one message on `topic` whose argument is a bytes-like payload and reports its
    length and SHA-256, computed in this process from what it received."""
    import hashlib

    engine = EventEngine(bus=bus)
    done = threading.Event()
    seen = []

    def handler(payload):
        seen.append((len(payload), hashlib.sha256(payload).hexdigest()))
        done.set()

    engine.register_handler(Topic(topic), handler)
    engine.start()
    ready.set()
    done.wait(GUARD)
    engine.stop()
    results.put(seen)
    leave.wait(GUARD)
    engine.close()
