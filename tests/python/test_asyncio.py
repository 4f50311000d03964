"""asyncio, in one process: an engine started inside a running loop dispatches there (plain
handlers called, coroutine handlers awaited, one message after another), ``aput``/``aget``
never block the loop, and a coroutine handler is refused where nothing could await it."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from event_engine import Empty, EventEngine, Full, Topic

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is in the test requirements for CPython
    uvloop = None

LOOPS = ["asyncio", pytest.param("uvloop", marks=pytest.mark.skipif(uvloop is None, reason="uvloop not installed"))]
T = Topic("Aio.Test.a")


def run(kind: str, main: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    if kind == "uvloop":
        loop = uvloop.new_event_loop()
        try:
            return loop.run_until_complete(main())
        finally:
            loop.close()
    return asyncio.run(main())


@pytest.mark.parametrize("kind", LOOPS)
def test_coroutine_handlers_are_awaited_in_order_one_message_after_another(kind):
    events: list[tuple[str, int]] = []
    loop_thread: list[int] = []

    async def main() -> None:
        engine = EventEngine(capacity=64)
        done = asyncio.Event()

        async def slow(i: int) -> None:
            events.append(("begin", i))
            for _ in range(3):
                await asyncio.sleep(0)  # other tasks run; the next message waits
            events.append(("end", i))
            if i == 9:
                done.set()

        def plain(i: int) -> None:
            loop_thread.append(threading.get_ident())

        engine.register_handler(T, slow)
        engine.register_handler(T, plain)
        engine.start()
        for i in range(10):
            await engine.aput(T, i)
        await asyncio.wait_for(done.wait(), 10)
        engine.stop()

    run(kind, main)
    assert events == [(k, i) for i in range(10) for k in ("begin", "end")]
    assert loop_thread == [threading.get_ident()] * 10


@pytest.mark.parametrize("kind", LOOPS)
def test_a_coroutine_handler_runs_in_a_task_where_asyncio_timeouts_work(kind):
    """Before its first await too (where asyncio starts tasks eagerly, that first step runs
    in the drain that took the message)."""
    seen: list[tuple[Any, ...]] = []

    async def main() -> None:
        engine = EventEngine(capacity=64)
        done = asyncio.Event()

        async def handler(i: int) -> None:
            seen.append(("in a task", i, asyncio.current_task() is not None))
            try:
                await asyncio.wait_for(asyncio.sleep(10), 0.01)
            except asyncio.TimeoutError:
                seen.append(("timed out", i))
            if sys.version_info >= (3, 11):
                async with asyncio.timeout(1):
                    await asyncio.sleep(0)
            if i == 2:
                done.set()

        engine.register_handler(T, handler)
        engine.start()
        for i in range(3):
            await engine.aput(T, i)
        await asyncio.wait_for(done.wait(), 10)
        engine.stop()

    run(kind, main)
    assert seen == [x for i in range(3) for x in (("in a task", i, True), ("timed out", i))]


def test_aput_from_a_coroutine_handler_into_its_own_full_engine_raises_full_at_once():
    """Waiting would never end: only the dispatch that awaits the handler makes room."""
    refused: list[str] = []

    async def main() -> None:
        engine = EventEngine(capacity=2)
        done = asyncio.Event()

        async def handler(i: int) -> None:
            if i == 0:
                try:
                    for k in range(10):
                        await engine.aput(T, 100 + k)
                except Full as e:
                    refused.append(str(e))
                done.set()

        engine.register_handler(T, handler)
        engine.start()
        await engine.aput(T, 0)
        await asyncio.wait_for(done.wait(), 10)
        engine.stop()

    asyncio.run(main())
    assert len(refused) == 1
    assert "awaited by its own dispatch" in refused[0]


def test_a_coroutine_handler_that_raises_is_logged_and_dispatch_goes_on(caplog):
    got: list[int] = []

    async def main() -> None:
        engine = EventEngine()
        done = asyncio.Event()

        async def handler(i: int) -> None:
            await asyncio.sleep(0)
            if i == 1:
                raise ValueError("bad tick")
            got.append(i)
            if i == 2:
                done.set()

        engine.register_handler(T, handler)
        engine.start()
        for i in range(3):
            await engine.aput(T, i)
        await asyncio.wait_for(done.wait(), 10)
        engine.stop()

    with caplog.at_level(logging.ERROR, logger="EventEngine"):
        asyncio.run(main())
    assert got == [0, 2]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "raised ValueError('bad tick')" in errors[0].getMessage()
    assert errors[0].exc_info is not None


def test_a_coroutine_handler_is_refused_where_no_loop_could_await_it():
    async def handler() -> None:
        pass

    engine = EventEngine()
    engine.register_handler(T, handler)
    with pytest.raises(TypeError, match="coroutine function"):
        engine.start()  # no running loop: a dispatch thread could never await it
    assert not engine.active
    engine.unregister_handler(T, handler)
    engine.register_handler(T, lambda: None)
    engine.start()
    try:
        with pytest.raises(TypeError, match="dispatches on a thread"):
            engine.register_handler(T, handler)
    finally:
        engine.stop()


def test_stop_from_a_coroutine_handler_ends_the_dispatch_after_that_message():
    got: list[int] = []

    async def main() -> None:
        engine = EventEngine()

        async def handler(i: int) -> None:
            got.append(i)
            if i == 1:
                engine.stop()

        engine.register_handler(T, handler)
        engine.start()
        for i in range(4):
            await engine.aput(T, i)
        for _ in range(20):
            await asyncio.sleep(0)
        assert not engine.active
        # What was not dispatched is still queued.
        assert (await engine.aget(timeout=1)).args == (2,)
        engine.close()

    asyncio.run(main())
    assert got == [0, 1]


@pytest.mark.parametrize("kind", LOOPS)
def test_aget_returns_messages_and_raises_empty_at_its_timeout(kind):
    async def main() -> None:
        engine = EventEngine()
        waiting = asyncio.ensure_future(engine.aget(timeout=10))
        await asyncio.sleep(0)
        assert not waiting.done()
        await engine.aput(T, 1, x=2)
        m = await waiting
        assert (m.args, m.kwargs) == ((1,), {"x": 2})
        with pytest.raises(Empty, match="no message within"):
            await engine.aget(timeout=0.01)
        # A put from another thread wakes the loop.
        threading.Thread(target=engine.put, args=(T, 3)).start()
        assert (await engine.aget(timeout=10)).args == (3,)

    run(kind, main)


def test_a_cancelled_aget_takes_nothing():
    async def main() -> None:
        engine = EventEngine()
        t = asyncio.ensure_future(engine.aget())
        await asyncio.sleep(0)
        engine.put(T, 7)  # the loop's fd is signalled; the waiter has not run yet
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        assert (await engine.aget(timeout=1)).args == (7,)

    asyncio.run(main())


def test_aput_on_a_full_queue_waits_while_the_loop_serves_other_tasks():
    async def main() -> None:
        engine = EventEngine(capacity=2)
        await engine.aput(T, 0)
        await engine.aput(T, 1)
        with pytest.raises(Full):
            await engine.aput(T, 2, block=False)
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        tick = asyncio.ensure_future(ticker())
        put = asyncio.ensure_future(engine.aput(T, 2))
        while ticks < 50:  # the ticker keeps running while the put waits
            await asyncio.sleep(0)
        assert not put.done()
        assert (await engine.aget()).args == (0,)  # room for one
        await asyncio.wait_for(put, 10)
        with pytest.raises(Full, match="within 0.050 s"):
            await engine.aput(T, 3, timeout=0.05)
        seen = ticks
        assert seen > 50
        tick.cancel()
        assert [(await engine.aget()).args for _ in range(2)] == [(1,), (2,)]
        assert engine.seq_id == 3  # the refused puts were not numbered

    asyncio.run(main())


def test_a_cancelled_aput_publishes_nothing():
    async def main() -> None:
        engine = EventEngine(capacity=1)
        await engine.aput(T, 0)
        put = asyncio.ensure_future(engine.aput(T, 1))
        await asyncio.sleep(0)
        put.cancel()
        with pytest.raises(asyncio.CancelledError):
            await put
        assert (await engine.aget()).args == (0,)
        with pytest.raises(Empty):
            await engine.aget(timeout=0.05)

    asyncio.run(main())


def test_asyncio_run_ending_stops_the_engine_started_on_its_loop():
    engine = EventEngine()

    async def main() -> None:
        engine.register_handler(T, lambda: None)
        engine.start()
        assert engine.active

    asyncio.run(main())
    assert not engine.active
    # The engine is usable again, on a thread or on another loop.
    engine.start()
    engine.stop()


def test_an_awaitable_returned_on_a_dispatch_thread_is_closed_and_logged(caplog):
    ran: list[int] = []
    handled = threading.Event()

    class Callback:  # an async __call__: not a coroutine function, found only when called
        async def __call__(self, i: int) -> None:
            ran.append(i)

    engine = EventEngine()
    engine.register_handler(T, Callback())
    engine.register_handler(T, lambda i: handled.set())
    with caplog.at_level(logging.ERROR, logger="EventEngine"):
        engine.start()
        engine.put(T, 1)
        assert handled.wait(10)
        engine.stop()
    assert ran == []
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "returned an awaitable" in errors[0], errors
