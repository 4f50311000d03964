"""asyncio on a shared-memory bus, with real processes: an asyncio publisher and an asyncio
consumer (coroutine handler, woken through the engine's eventfd), `aput` waiting on a full bus
while its loop keeps serving other tasks, cancelled `aget`s that lose nothing, and
`asyncio.run()` ending with engines started (exit status 0, every row detached)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

import aio_workers as w
import pytest
from conftest import assert_idle
from event_engine import Empty, EventEngine, Full, Topic

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is in the test requirements for CPython
    uvloop = None

LOOPS = ["asyncio", pytest.param("uvloop", marks=pytest.mark.skipif(uvloop is None, reason="uvloop not installed"))]
TICK = Topic(w.TOPIC.replace("{n}", "t"))


def _join(*procs) -> None:
    for p in procs:
        p.join(w.GUARD)
        assert p.exitcode == 0, p.exitcode


@pytest.mark.parametrize("kind", LOOPS)
def test_an_asyncio_publisher_and_an_asyncio_consumer_share_a_bus(bus, ctx, kind):
    count = 3000
    ready, go, results = ctx.Event(), ctx.Event(), ctx.Queue()
    cons = ctx.Process(target=w.consumer, args=(bus, kind, ready, results))
    cons.start()
    assert ready.wait(w.GUARD)
    pub = ctx.Process(target=w.publisher, args=(bus, kind, count, go, results))
    pub.start()
    go.set()
    reports = {r[0]: r[1:] for r in (results.get(timeout=w.GUARD) for _ in range(2))}
    _join(cons, pub)
    got, in_tasks = reports["consumer"]
    assert got == [(n, 400 if n % 10 == 0 else 8) for n in range(count)]
    assert in_tasks  # each coroutine handler ran as a task of the consumer's loop
    assert reports["publisher"] == (count,)
    assert_idle(bus)


def test_aput_on_a_full_bus_waits_while_the_loop_serves_other_tasks(bus, ctx):
    ready, go, results = ctx.Event(), ctx.Event(), ctx.Queue()
    drain = ctx.Process(target=w.drainer, args=(bus, ready, go, results))
    drain.start()
    assert ready.wait(w.GUARD)

    async def main() -> int:
        engine = EventEngine(bus=bus)
        filled = 0
        while True:
            try:
                await engine.aput(TICK, filled, b"", block=False)
            except Full:
                break
            filled += 1
        assert filled > 0
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        tick = asyncio.ensure_future(ticker())
        put = asyncio.ensure_future(engine.aput(TICK, filled, b""))
        while ticks < 200:  # the loop keeps serving the ticker while the put waits
            await asyncio.sleep(0)
        assert not put.done()
        with pytest.raises(Full, match="within 0.050 s"):
            await engine.aput(TICK, -1, b"", timeout=0.05)
        go.set()  # the drainer starts: room comes, the waiting put goes out
        await asyncio.wait_for(put, w.GUARD)
        before = ticks
        await engine.aput(Topic(w.END))
        while ticks == before:
            await asyncio.sleep(0)
        tick.cancel()
        engine.close()
        return filled

    filled = asyncio.run(main())
    _, got = results.get(timeout=w.GUARD)
    _join(drain)
    assert got == list(range(filled + 1))  # the refused put never went out
    assert_idle(bus)


@pytest.mark.parametrize("then", ["aget", "get"])
def test_a_cancelled_aget_leaves_its_message_for_the_next_take(bus, ctx, then):
    commands, done = ctx.Queue(), ctx.Queue()
    rounds = 20

    async def main() -> list[int]:
        engine = EventEngine(bus=bus)
        engine.register_handler(TICK, lambda n, payload: None)  # addressed, never started
        pub = ctx.Process(target=w.one_shot_publisher, args=(bus, commands, done))
        pub.start()
        taken = []
        for k in range(rounds):
            waiting = asyncio.ensure_future(engine.aget())
            await asyncio.sleep(0)  # it waits: the bus's relay waits for it
            commands.put(k)
            assert done.get(timeout=w.GUARD) == k  # the loop is held: the aget cannot take it
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            # A lost message would make this raise Empty.
            m = await engine.aget(timeout=10) if then == "aget" else engine.get(timeout=10)
            taken.append(m.args[0])
        with pytest.raises(Empty):
            await engine.aget(timeout=0.05)
        commands.put(None)
        await asyncio.get_running_loop().run_in_executor(None, pub.join, w.GUARD)
        assert pub.exitcode == 0
        engine.close()
        return taken

    assert asyncio.run(main()) == list(range(rounds))
    assert_idle(bus)


def run_child(source: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(source), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


ENDS_RUNNING = """
    import asyncio, sys
    from event_engine import EventEngine, Topic

    async def main():
        bus = sys.argv[1]
        dispatching = EventEngine(bus=bus)

        async def handler(n):
            await asyncio.sleep(0)

        dispatching.register_handler(Topic("Aio.Run.x"), handler)
        dispatching.start()
        waiting = EventEngine(bus=bus)
        waiting.register_handler(Topic("Aio.Other"), lambda: None)
        pending = asyncio.ensure_future(waiting.aget())  # left waiting: cancelled by the end
        local = EventEngine()
        local.register_handler(Topic("Aio.Local"), handler)
        local.start()
        for n in range(100):
            await dispatching.aput(Topic("Aio.Run.x"), n)
            await local.aput(Topic("Aio.Local"), n)
        await asyncio.sleep(0)

    asyncio.run(main())
"""


@pytest.mark.parametrize("kind", ["asyncio", "uvloop"])
def test_asyncio_run_ending_with_engines_started_exits_0_and_detaches(bus, kind):
    if kind == "uvloop" and uvloop is None:
        pytest.skip("uvloop not installed")
    source = ENDS_RUNNING
    if kind == "uvloop":
        source = source.replace("asyncio.run(main())", "import uvloop; uvloop.install(); asyncio.run(main())")
    for _ in range(3):
        done = run_child(source, bus)
        assert done.returncode == 0, (done.returncode, done.stderr)
        assert "Traceback" not in done.stderr and "never awaited" not in done.stderr, done.stderr
        assert "Task was destroyed" not in done.stderr, done.stderr
        assert_idle(bus)


def test_close_from_a_coroutine_handler_detaches_the_engine_on_its_loop(bus):
    async def main() -> None:
        engine = EventEngine(bus=bus)
        closed = asyncio.Event()

        async def handler(n: int, payload: bytes) -> None:
            await asyncio.sleep(0)
            engine.close()  # from the loop, inside the dispatch: it detaches at once
            closed.set()

        engine.register_handler(TICK, handler)
        engine.start()
        with EventEngine(bus=bus) as pub:
            await pub.aput(TICK, 0, b"")
            await asyncio.wait_for(closed.wait(), w.GUARD)
        assert engine.closed and not engine.active
        for _ in range(10):
            await asyncio.sleep(0)

    asyncio.run(main())
    assert_idle(bus)


CLOSED_LOOP = """
    import asyncio, sys
    from event_engine import EventEngine, Topic

    engine = EventEngine(bus=sys.argv[1])

    async def main():
        async def handler(n):
            await asyncio.sleep(0)

        engine.register_handler(Topic("Aio.Run.x"), handler)
        engine.start()
        await engine.aput(Topic("Aio.Run.x"), 1)
        await asyncio.sleep(0.01)

    loop = asyncio.new_event_loop()
    loop.run_until_complete(main())
    loop.close()  # its tasks never cancelled: the engine is still started when the script ends
    assert engine.active
"""


def test_a_loop_closed_with_an_engine_started_exits_0_and_detaches(bus):
    done = run_child(CLOSED_LOOP, bus)
    assert done.returncode == 0, (done.returncode, done.stderr)
    assert done.stderr == "", done.stderr
    assert_idle(bus)
