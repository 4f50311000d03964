"""W10 asyncio to asyncio (docs/benchmarks.md): a producer process and a consumer process, each
an asyncio program; W2's call, one-way latency and throughput.

Each trial has two phases on one connection, the consumer's handler seeing them in order:

1. latency: ``L`` messages (1,000 by default, the first 20 not counted) ``(i, t_ns, "AAPL",
   size=100)``, ``t_ns`` being ``time.perf_counter_ns()`` (one clock for every process) taken
   just before the send; the producer awaits ``asyncio.sleep(0.001)`` between two (the loop's
   timer makes that about 1 ms), so the consumer's loop is idle when each arrives. The handler
   records ``now - t_ns``: one-way p50/p99.
2. throughput: W2's call, ``Topic("Market.Data.AAPL")`` with ``(i, 123.45, "AAPL")`` and
   ``{"size": 100}``, N times as fast as the producer's loop sends them; msg/s is N over the
   time from the first send to the consumer handling the end marker after the last. Every
   message of both phases must arrive, once, in order.

Peers:

* ``ours``          - ``EventEngine(bus=...)`` in both: the producer ``await engine.aput(...)``,
  the consumer's engine started inside its loop with an ``async def`` handler (dispatched on
  the loop, woken through the engine's eventfd);
* ``ours_plain``    - ``ours`` with a plain function as the consumer's handler (called on the
  loop, no coroutine per message);
* ``ours_executor`` - the same engines driven from a thread: the producer
  ``await loop.run_in_executor(None, partial(engine.put, ...))``, the consumer
  ``await loop.run_in_executor(None, engine.get)`` then the handler (how an asyncio program used
  the engine before ``aput``/``aget``);
* ``zmq_asyncio``   - ``zmq.asyncio`` PUSH/PULL over ``ipc://``, pickle 5, ``await
  sock.send(...)`` / ``await sock.recv()`` then the handler;
* ``floor``         - the interpreter's floor: a pipe the consumer's loop watches with
  ``add_reader`` (a FIFO, for the spawned processes), length-prefixed pickles written with ``os.write`` and read in chunks; no
  library at all, the least an asyncio program pays to carry W2's call between processes.

    .venv/bin/python tools/bench/w10_asyncio.py --current-python --runs 5
    .venv/bin/python tools/bench/w10_asyncio.py --current-python --peers ours,zmq_asyncio --uvloop
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import pickle
import struct
from collections.abc import Iterator

import benchlib as bl
from benchlib import DONE_TOPIC, PATTERN, PRICE, SIZE, SYMBOL, TOPIC, Role, now_ns

PROTO = pickle.HIGHEST_PROTOCOL
WARMUP = 20
LAT_PAUSE = 0.001  # uvloop rounds shorter sleeps down to none: the phase would be a burst
WAIT = 600.0
#: Set by --uvloop for the role processes (they inherit the environment).
UVLOOP_ENV = "EVENT_ENGINE_W10_UVLOOP"


class Handler:
    """The consumer's handler: latency samples for the first ``lat`` indices, then a tally of
    the burst; every index once and in order."""

    def __init__(self, lat: int) -> None:
        self.lat = lat
        self.samples: list[int] = []
        self.count = 0
        self.index_sum = 0
        self.inversions = 0
        self.last = -1
        self.t_end = 0

    def __call__(self, i: int, price: float, symbol: str, size: int = 0) -> None:
        if i <= self.last:
            self.inversions += 1
        self.last = i
        if i < self.lat:
            if i >= WARMUP:
                self.samples.append(now_ns() - int(price))
            return
        self.count += 1
        self.index_sum += i - self.lat

    def result(self) -> dict:
        lat = sorted(self.samples)

        def pct(p: float) -> float:
            return lat[min(len(lat) - 1, int(len(lat) * p))] / 1e3 if lat else float("nan")

        return {
            "count": self.count,
            "index_sum": self.index_sum,
            "inversions": self.inversions,
            "latencies": len(lat),
            "p50_us": pct(0.50),
            "p99_us": pct(0.99),
            "t_end": self.t_end,
        }


def _run(coro_fn, *args) -> dict:
    if os.environ.get(UVLOOP_ENV) == "1":
        import uvloop

        uvloop.install()
    return asyncio.run(coro_fn(*args))


async def _produce(ctl: bl.Control, lat: int, n: int, send, done) -> None:
    """Both phases, through ``send(i, price)`` (awaitable); ``done()`` sends the end marker."""
    ctl.ready()
    await asyncio.get_running_loop().run_in_executor(None, ctl.wait_go)
    for i in range(lat):
        await send(i, float(now_ns()))
        await asyncio.sleep(LAT_PAUSE)
    t0 = now_ns()
    for i in range(lat, lat + n):
        await send(i, PRICE)
    await done()
    ctl.report({"t_start": t0, "t_sent": now_ns()})
    await asyncio.get_running_loop().run_in_executor(None, ctl.wait_finish)


# --------------------------------------------------------------------------- ours, on the loop


def ours_consumer(ctl: bl.Control, bus: str, lat: int, plain: bool = False) -> dict:
    async def main() -> None:
        from event_engine import EventEngine, Topic

        engine = EventEngine(bus=bus)
        handler = Handler(lat)
        done = asyncio.Event()

        async def on_tick(i: int, price: float, symbol: str, size: int = 0) -> None:
            handler(i, price, symbol, size)

        async def on_done() -> None:
            handler.t_end = now_ns()
            done.set()

        def on_done_plain() -> None:
            handler.t_end = now_ns()
            done.set()

        if plain:
            engine.register_handler(Topic(PATTERN), handler)
            engine.register_handler(Topic(DONE_TOPIC), on_done_plain)
        else:
            engine.register_handler(Topic(PATTERN), on_tick)
            engine.register_handler(Topic(DONE_TOPIC), on_done)
        engine.start()
        try:
            ctl.ready()
            await asyncio.wait_for(done.wait(), WAIT)
            ctl.report(handler.result())
            await asyncio.get_running_loop().run_in_executor(None, ctl.wait_finish)
        finally:
            engine.stop()
            engine.close()

    _run(main)
    return {}


def ours_producer(ctl: bl.Control, bus: str, lat: int, n: int) -> dict:
    async def main() -> None:
        from event_engine import EventEngine, Topic

        engine = EventEngine(bus=bus)
        topic, end = Topic(TOPIC), Topic(DONE_TOPIC)
        aput = engine.aput
        try:
            await _produce(
                ctl,
                lat,
                n,
                lambda i, price: aput(topic, i, price, SYMBOL, size=SIZE),
                lambda: aput(end),
            )
        finally:
            engine.close()

    _run(main)
    return {}


# --------------------------------------------------------------------------- ours, from a thread


def executor_consumer(ctl: bl.Control, bus: str, lat: int) -> dict:
    async def main() -> None:
        from event_engine import EventEngine, Topic

        engine = EventEngine(bus=bus)
        handler = Handler(lat)
        # Registered so that the engine is addressed these topics; get() takes them.
        engine.register_handler(Topic(PATTERN), handler)
        engine.register_handler(Topic(DONE_TOPIC), lambda: None)
        loop = asyncio.get_running_loop()
        get = engine.get
        try:
            ctl.ready()
            while True:
                m = await loop.run_in_executor(None, get)
                if not m.args:  # the end marker
                    handler.t_end = now_ns()
                    break
                handler(*m.args, **(m.kwargs or {}))
            ctl.report(handler.result())
            await loop.run_in_executor(None, ctl.wait_finish)
        finally:
            engine.close()

    _run(main)
    return {}


def executor_producer(ctl: bl.Control, bus: str, lat: int, n: int) -> dict:
    async def main() -> None:
        from event_engine import EventEngine, Topic

        engine = EventEngine(bus=bus)
        topic, end = Topic(TOPIC), Topic(DONE_TOPIC)
        loop = asyncio.get_running_loop()
        put = engine.put

        def send(i: int, price: float):
            return loop.run_in_executor(None, functools.partial(put, topic, i, price, SYMBOL, size=SIZE))

        try:
            await _produce(ctl, lat, n, send, lambda: loop.run_in_executor(None, put, end))
        finally:
            engine.close()

    _run(main)
    return {}


# --------------------------------------------------------------------------- zmq.asyncio


def zmq_consumer(ctl: bl.Control, endpoint: str, lat: int) -> dict:
    async def main() -> None:
        import zmq
        import zmq.asyncio

        zctx = zmq.asyncio.Context()
        sock = zctx.socket(zmq.PULL)
        sock.bind(endpoint)
        handler = Handler(lat)
        routes = {TOPIC: handler}
        loads = pickle.loads
        try:
            ctl.ready()
            while True:
                m = loads(await sock.recv())
                if m is None:
                    handler.t_end = now_ns()
                    break
                topic, args, kwargs = m
                routes[topic](*args, **kwargs)
            ctl.report(handler.result())
            await asyncio.get_running_loop().run_in_executor(None, ctl.wait_finish)
        finally:
            sock.close(linger=0)
            zctx.term()

    _run(main)
    return {}


def zmq_producer(ctl: bl.Control, endpoint: str, lat: int, n: int) -> dict:
    async def main() -> None:
        import zmq
        import zmq.asyncio

        zctx = zmq.asyncio.Context()
        sock = zctx.socket(zmq.PUSH)
        sock.connect(endpoint)
        send, dumps = sock.send, pickle.dumps
        try:
            await _produce(
                ctl,
                lat,
                n,
                lambda i, price: send(dumps((TOPIC, (i, price, SYMBOL), {"size": SIZE}), PROTO)),
                lambda: send(dumps(None, PROTO)),
            )
        finally:
            sock.close(linger=0)
            zctx.term()

    _run(main)
    return {}


# --------------------------------------------------------------------------- the floor

_LEN = struct.Struct("<I")


def floor_consumer(ctl: bl.Control, fifo: str, lat: int) -> dict:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        handler = Handler(lat)
        routes = {TOPIC: handler}
        loads, unpack, size = pickle.loads, _LEN.unpack_from, _LEN.size
        finished = loop.create_future()
        buf = bytearray()
        rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)

        def readable() -> None:
            nonlocal buf
            try:
                buf += os.read(rfd, 1 << 16)
            except BlockingIOError:
                return
            at = 0
            while len(buf) - at >= size:
                (k,) = unpack(buf, at)
                if len(buf) - at - size < k:
                    break
                m = loads(buf[at + size : at + size + k])
                at += size + k
                if m is None:
                    handler.t_end = now_ns()
                    if not finished.done():
                        finished.set_result(None)
                    break
                topic, args, kwargs = m
                routes[topic](*args, **kwargs)
            del buf[:at]

        loop.add_reader(rfd, readable)
        try:
            ctl.ready()
            await finished
            loop.remove_reader(rfd)
            ctl.report(handler.result())
            await loop.run_in_executor(None, ctl.wait_finish)
        finally:
            os.close(rfd)

    _run(main)
    return {}


def floor_producer(ctl: bl.Control, fifo: str, lat: int, n: int) -> dict:
    async def main() -> None:
        dumps, pack, write = pickle.dumps, _LEN.pack, os.write
        wfd = os.open(fifo, os.O_WRONLY)  # the consumer opened it before it said it was ready

        async def send(i: int, price: float) -> None:
            data = dumps((TOPIC, (i, price, SYMBOL), {"size": SIZE}), PROTO)
            write(wfd, pack(len(data)) + data)  # blocking when the pipe is full: the floor

        async def done() -> None:
            data = dumps(None, PROTO)
            write(wfd, pack(len(data)) + data)

        try:
            await _produce(ctl, lat, n, send, done)
        finally:
            os.close(wfd)

    _run(main)
    return {}


# --------------------------------------------------------------------------- the workload


def measure(lat: int, n: int):
    def figures(res: dict[str, dict]) -> dict[str, float]:
        prod, cons = res["producer"], res["consumer"]
        bl.expect_exact(n, [cons])
        if cons["latencies"] != lat - WARMUP:
            raise AssertionError(f"{cons['latencies']} latency samples of {lat - WARMUP}")
        return {
            "p50_us": cons["p50_us"],
            "p99_us": cons["p99_us"],
            "msg_per_s": n * 1e9 / (cons["t_end"] - prod["t_start"]),
            "sub_rss_mb": cons["peak_rss_mb"],
        }

    return figures


def peers(lat: int, n: int) -> list[bl.Peer]:
    @contextlib.contextmanager
    def ours() -> Iterator[list[Role]]:
        with bl.bus("w10") as name:
            yield [Role("consumer", ours_consumer, (name, lat)), Role("producer", ours_producer, (name, lat, n))]

    @contextlib.contextmanager
    def ours_executor() -> Iterator[list[Role]]:
        with bl.bus("w10x") as name:
            yield [
                Role("consumer", executor_consumer, (name, lat)),
                Role("producer", executor_producer, (name, lat, n)),
            ]

    @contextlib.contextmanager
    def zmq_asyncio() -> Iterator[list[Role]]:
        with bl.ipc_dir() as d:
            ep = f"ipc://{d}/w10"
            yield [Role("consumer", zmq_consumer, (ep, lat)), Role("producer", zmq_producer, (ep, lat, n))]

    @contextlib.contextmanager
    def ours_plain() -> Iterator[list[Role]]:
        with bl.bus("w10p") as name:
            yield [
                Role("consumer", ours_consumer, (name, lat, True)),
                Role("producer", ours_producer, (name, lat, n)),
            ]

    @contextlib.contextmanager
    def floor() -> Iterator[list[Role]]:
        with bl.ipc_dir() as d:
            fifo = str(d / "w10.fifo")
            os.mkfifo(fifo, 0o600)
            yield [Role("consumer", floor_consumer, (fifo, lat)), Role("producer", floor_producer, (fifo, lat, n))]

    m = measure(lat, n)
    return [
        bl.Peer("ours", "EventEngine(bus=...): aput / async def handler on the loop", ours, m, bl.ours_unavailable()),
        bl.Peer(
            "ours_plain",
            "the same, the consumer's handler a plain function (called on the loop)",
            ours_plain,
            m,
            bl.ours_unavailable(),
        ),
        bl.Peer(
            "ours_executor",
            "EventEngine(bus=...): put / get in run_in_executor",
            ours_executor,
            m,
            bl.ours_unavailable(),
        ),
        bl.Peer(
            "zmq_asyncio",
            "zmq.asyncio PUSH/PULL ipc://, pickle 5",
            zmq_asyncio,
            m,
            bl.missing_module("zmq", "pyzmq"),
        ),
        bl.Peer("floor", "os.pipe + loop.add_reader, pickle 5 (no library)", floor, m),
    ]


def main() -> None:
    def extra(ap) -> None:
        ap.add_argument("--latency-messages", type=int, default=1_000, help="paced messages (default 1,000)")
        ap.add_argument("--uvloop", action="store_true", help="run every process on uvloop")

    args = bl.parse_args(__doc__, messages=200_000, extra=extra)
    if args.uvloop:
        os.environ[UVLOOP_ENV] = "1"
    lat = args.latency_messages + WARMUP
    loop_name = "uvloop" if args.uvloop else "asyncio"
    bl.run_and_report(
        args,
        peers(lat, args.messages),
        f"W10 asyncio to asyncio ({loop_name}): {args.latency_messages:,} paced messages (one-way latency, us),"
        f" then {args.messages:,} as fast as the loop sends them; median of {args.runs} runs",
        [
            bl.Column("p50 us", "p50_us", ".1f", spread=True),
            bl.Column("p99 us", "p99_us", ".1f"),
            bl.Column("msg/s", "msg_per_s", spread=True),
            bl.Column("sub RSS MB", "sub_rss_mb", ".1f"),
        ],
        [
            (
                "ours/peer p50: our median latency over the peer's (below 1 is faster);"
                " throughput ratios: divide the msg/s medians"
            )
        ],
        ratio_key="p50_us",
        ratio_header="ours/peer p50",
    )


if __name__ == "__main__":
    main()
