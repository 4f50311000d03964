"""Worker processes of the out-of-band buffer tests (spawn context): each receives messages of
buffers in a process of its own and reports what its handler saw, as plain values."""

from __future__ import annotations

import asyncio
import hashlib
import threading

from event_engine import EventEngine, Topic

#: A guard against a hung test, never a synchronisation: every wait below ends on an event.
GUARD = 120.0
TOPIC = "Buf.Case"


def describe(value):
    """What a handler saw of one value: its type, contents (a digest), shape and whether it
    can be written; containers are described item by item."""
    if isinstance(value, dict):
        return {k: describe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value).__name__, [describe(v) for v in value]
    kind = type(value).__name__
    if kind == "ndarray":
        return {
            "type": kind,
            "dtype": value.dtype.str,
            "shape": value.shape,
            "digest": hashlib.sha256(value.tobytes()).hexdigest(),
            "writeable": value.flags.writeable,
            "aligned": value.flags.aligned,
        }
    if isinstance(value, memoryview):
        return {
            "type": kind,
            "format": value.format,
            "shape": value.shape,
            "digest": hashlib.sha256(value.tobytes()).hexdigest(),
            "readonly": value.readonly,
        }
    if isinstance(value, (bytes, bytearray)):
        return {"type": kind, "digest": hashlib.sha256(value).hexdigest()}
    return {"type": kind, "value": value}


def describer(bus, expected, ready, results, leave):
    """Reports `describe((args, kwargs))` of each of `expected` messages on `Buf.Case`, as its
    handler saw them (on the dispatch thread)."""
    engine = EventEngine(bus=bus)
    done = threading.Event()
    got = []

    def handler(*args, topic, **kwargs):
        assert topic.value == TOPIC
        got.append(describe((args, kwargs)))
        if len(got) == expected:
            done.set()

    engine.register_handler(Topic(TOPIC), handler)
    engine.start()
    ready.set()
    done.wait(GUARD)
    engine.stop()
    results.put(got)
    leave.wait(GUARD)
    engine.close()


def async_taker(bus, ready, results, leave):
    """Reports `describe((args, kwargs))` of one message taken with `aget()` on a loop."""

    async def main():
        engine = EventEngine(bus=bus)
        engine.register_handler(Topic(TOPIC), lambda *a, **k: None)  # wants the topic
        ready.set()
        got = await asyncio.wait_for(engine.aget(), GUARD)
        results.put([describe((got.args, got.kwargs or {}))])
        leave.wait(GUARD)
        engine.close()

    asyncio.run(main())
