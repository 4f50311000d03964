"""Worker processes of the asyncio bus tests (started with the "spawn" context). Each runs an
asyncio program on its own loop (uvloop when asked), attaches its own engine and talks to the
parent through events and a queue; every wait ends on an event (GUARD only bounds a hang)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from event_engine import EventEngine, Topic

GUARD = 120.0
TOPIC = "Aio.Bus.{n}"
END = "Aio.End"


def _run(loop_kind: str, main: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    if loop_kind == "uvloop":
        import uvloop

        loop = uvloop.new_event_loop()
        try:
            return loop.run_until_complete(main())
        finally:
            loop.close()
    return asyncio.run(main())


async def _wait_event(event: Any) -> None:
    """Waits for a multiprocessing event without blocking the loop."""
    ok = await asyncio.get_running_loop().run_in_executor(None, event.wait, GUARD)
    if not ok:
        raise TimeoutError("the parent never signalled")


def consumer(bus: str, loop_kind: str, ready: Any, results: Any) -> None:
    """A coroutine handler on the loop: reports every `(n, payload)` it handled, and whether
    each ran on the loop's thread, once the end marker arrived."""

    async def main() -> None:
        engine = EventEngine(bus=bus)
        got: list[Any] = []
        end = asyncio.Event()
        loop_tasks: set[int] = set()

        async def on_tick(n: int, payload: bytes) -> None:
            await asyncio.sleep(0)  # a real await between two messages
            got.append((n, len(payload)))
            task = asyncio.current_task()
            loop_tasks.add(id(task) if task is not None else 0)

        def on_end() -> None:
            end.set()

        engine.register_handler(Topic(TOPIC), on_tick)
        engine.register_handler(Topic(END), on_end)
        engine.start()
        ready.set()
        await asyncio.wait_for(end.wait(), GUARD)
        engine.stop()
        engine.close()
        results.put(("consumer", got, 0 not in loop_tasks))

    _run(loop_kind, main)


def publisher(bus: str, loop_kind: str, count: int, go: Any, results: Any) -> None:
    """Publishes `count` messages with `aput` (small ones inline, every tenth in a slab block),
    then the end marker."""

    async def main() -> None:
        engine = EventEngine(bus=bus)
        await _wait_event(go)
        for n in range(count):
            payload = b"x" * (400 if n % 10 == 0 else 8)
            await engine.aput(Topic(TOPIC.replace("{n}", "t")), n, payload)
        await engine.aput(Topic(END))
        engine.close()
        results.put(("publisher", count))

    _run(loop_kind, main)


def drainer(bus: str, ready: Any, go: Any, results: Any) -> None:
    """Wants the topic but does not dispatch until `go`: the bus fills for it. Then drains
    everything until the end marker and reports the count."""

    async def main() -> None:
        engine = EventEngine(bus=bus)
        got: list[int] = []
        end = asyncio.Event()
        engine.register_handler(Topic(TOPIC), lambda n, payload: got.append(n))
        engine.register_handler(Topic(END), end.set)
        ready.set()
        await _wait_event(go)
        engine.start()
        await asyncio.wait_for(end.wait(), GUARD)
        engine.stop()
        engine.close()
        results.put(("drainer", got))

    _run("asyncio", main)


def one_shot_publisher(bus: str, commands: Any, done: Any) -> None:
    """Publishes one message `Aio.Bus.t (n, b"")` per number received on `commands` and
    acknowledges each on `done` once published; None ends it."""
    engine = EventEngine(bus=bus)
    topic = Topic(TOPIC.replace("{n}", "t"))
    while True:
        n = commands.get(timeout=GUARD)
        if n is None:
            break
        engine.put(topic, n, b"")
        done.put(n)
    engine.close()
