"""W7 idle wake-up (docs/benchmarks.md): one message at a time into an idle bus whose
subscriber is parked; one-way latency from just before the publish to the handler.

The producer publishes ``Market.Data.AAPL`` with args ``(i, t_ns, "AAPL")`` and
``{"size": 100}``, ``t_ns`` being ``time.perf_counter_ns()`` (CLOCK_MONOTONIC, the same clock
in every process) taken just before the publish, then pauses 1-5 ms (uniformly at random, the
same seeded sequence for every peer) so that the subscriber has gone back to waiting: the pause
is the workload, not a synchronisation. The handler records ``now - t_ns``. The first
messages of a run warm the path up and are not counted; every other message must arrive, in
order.

* ``ours``     - two ``EventEngine(bus=...)`` on one bus (the subscriber's engine parks on a futex);
* ``zmq``      - pyzmq PUSH/PULL over ``ipc://``, the consumer blocked in ``recv``;
* ``mp_pipe``  - ``multiprocessing.Pipe``, the consumer blocked in ``recv``.

    .venv/bin/python tools/bench/w7_wakeup.py --runs 5 --messages 2000
"""

from __future__ import annotations

import contextlib
import pickle
import random
import threading
import time
from collections.abc import Iterator

import benchlib as bl
from benchlib import DONE_TOPIC, PATTERN, SIZE, SYMBOL, TOPIC, Role, now_ns

WARMUP = 20
PAUSE_S = (0.001, 0.005)
SEED = 7
WAIT = 600.0
PROTO = pickle.HIGHEST_PROTOCOL


class Latencies:
    """The handler: one latency per message after the warm-up; checks order and count."""

    def __init__(self) -> None:
        self.samples: list[int] = []
        self.count = 0
        self.index_sum = 0
        self.inversions = 0
        self.last = -1

    def __call__(self, i: int, t_ns: int, symbol: str, size: int = 0) -> None:
        now = now_ns()
        if i <= self.last:
            self.inversions += 1
        self.last = i
        if i >= WARMUP:
            self.samples.append(now - t_ns)
            self.count += 1
            self.index_sum += i - WARMUP

    def result(self) -> dict:
        lat = sorted(self.samples)

        def pct(p: float) -> float:
            return lat[min(len(lat) - 1, int(len(lat) * p))] / 1e3 if lat else float("nan")

        return {
            "count": self.count,
            "index_sum": self.index_sum,
            "inversions": self.inversions,
            "p50_us": pct(0.50),
            "p90_us": pct(0.90),
            "p99_us": pct(0.99),
            "p999_us": pct(0.999),
            "max_us": lat[-1] / 1e3 if lat else float("nan"),
        }


def _pauses(total: int) -> list[float]:
    rng = random.Random(SEED)
    return [rng.uniform(*PAUSE_S) for _ in range(total)]


def _paced(total: int, publish) -> None:
    """Publishes messages 0..total-1, one at a time, with the seeded pauses between them."""
    sleep = time.sleep
    for i, pause in enumerate(_pauses(total)):
        publish(i, now_ns())
        sleep(pause)


# --------------------------------------------------------------------------- ours


def ours_consumer(ctl: bl.Control, bus: str) -> dict:
    from event_engine import EventEngine, Topic

    engine = EventEngine(bus=bus)
    lat = Latencies()
    done = threading.Event()
    engine.register_handler(Topic(PATTERN), lat)
    engine.register_handler(Topic(DONE_TOPIC), done.set)
    engine.start()
    try:
        ctl.ready()
        done.wait(WAIT)
        ctl.report(lat.result())
        ctl.wait_finish()
    finally:
        engine.stop()
    return {}


def ours_producer(ctl: bl.Control, bus: str, total: int) -> dict:
    from event_engine import EventEngine, Topic

    engine = EventEngine(bus=bus)
    engine.start()  # attached engines get every message, their own too: this one skips them
    topic, put = Topic(TOPIC), engine.put
    try:
        ctl.ready()
        ctl.wait_go()
        _paced(total, lambda i, t: put(topic, i, t, SYMBOL, size=SIZE))
        put(Topic(DONE_TOPIC))
        ctl.report({})
        ctl.wait_finish()
    finally:
        engine.stop()
    return {}


# --------------------------------------------------------------------------- peers


def zmq_consumer(ctl: bl.Control, endpoint: str) -> dict:
    with bl.zmq_socket("PULL", endpoint, bind=True) as sock:
        lat = Latencies()
        ctl.ready()
        bl.dispatch_until_end(sock.recv, {TOPIC: lat}, pickle.loads)
        ctl.report(lat.result())
        ctl.wait_finish()
    return {}


def zmq_producer(ctl: bl.Control, endpoint: str, total: int) -> dict:
    with bl.zmq_socket("PUSH", endpoint, bind=False) as sock:
        send, dumps = sock.send, pickle.dumps
        ctl.ready()
        ctl.wait_go()
        _paced(total, lambda i, t: send(dumps((TOPIC, (i, t, SYMBOL), {"size": SIZE}), PROTO)))
        send(dumps(None, PROTO))
        ctl.report({})
        ctl.wait_finish()
    return {}


def pipe_consumer(ctl: bl.Control, conn) -> dict:
    lat = Latencies()
    ctl.ready()
    bl.dispatch_until_end(conn.recv, {TOPIC: lat})
    ctl.report(lat.result())
    ctl.wait_finish()
    return {}


def pipe_producer(ctl: bl.Control, conn, total: int) -> dict:
    send = conn.send
    ctl.ready()
    ctl.wait_go()
    _paced(total, lambda i, t: send((TOPIC, (i, t, SYMBOL), {"size": SIZE})))
    send(None)
    ctl.report({})
    ctl.wait_finish()
    return {}


# --------------------------------------------------------------------------- the workload


def measure(n: int):
    def figures(res: dict[str, dict]) -> dict[str, float]:
        cons = res["consumer"]
        bl.expect_exact(n, [cons])
        keys = ("p50_us", "p90_us", "p99_us", "p999_us", "max_us")
        return {**{k: cons[k] for k in keys}, "sub_rss_mb": cons["peak_rss_mb"]}

    return figures


def peers(n: int) -> list[bl.Peer]:
    total = n + WARMUP

    @contextlib.contextmanager
    def ours() -> Iterator[list[Role]]:
        with bl.bus("w7") as name:
            yield [Role("consumer", ours_consumer, (name,)), Role("producer", ours_producer, (name, total))]

    @contextlib.contextmanager
    def zmq() -> Iterator[list[Role]]:
        with bl.ipc_dir() as d:
            ep = f"ipc://{d}/w7"
            yield [Role("consumer", zmq_consumer, (ep,)), Role("producer", zmq_producer, (ep, total))]

    @contextlib.contextmanager
    def mp_pipe() -> Iterator[list[Role]]:
        rx, tx = bl.CTX.Pipe(duplex=False)
        yield [Role("consumer", pipe_consumer, (rx,)), Role("producer", pipe_producer, (tx, total))]

    m = measure(n)
    return [
        bl.Peer("ours", "event_engine EventEngine(bus=...), parked subscriber", ours, m, bl.ours_unavailable()),
        bl.Peer("zmq", "pyzmq PUSH/PULL ipc://, consumer blocked in recv", zmq, m, bl.missing_module("zmq", "pyzmq")),
        bl.Peer("mp_pipe", "multiprocessing.Pipe, consumer blocked in recv", mp_pipe, m),
    ]


def main() -> None:
    args = bl.parse_args(__doc__, messages=2_000)
    bl.run_and_report(
        args,
        peers(args.messages),
        f"W7 idle wake-up: {args.messages:,} messages per run, {PAUSE_S[0] * 1e3:.0f}-{PAUSE_S[1] * 1e3:.0f} ms apart,"
        f" one-way latency in microseconds, median of {args.runs} runs",
        [
            bl.Column("p50 us", "p50_us", ".1f", spread=True),
            bl.Column("p90 us", "p90_us", ".1f"),
            bl.Column("p99 us", "p99_us", ".1f"),
            bl.Column("p99.9 us", "p999_us", ".1f"),
            bl.Column("max us", "max_us", ".0f"),
            bl.Column("sub RSS MB", "sub_rss_mb", ".1f"),
        ],
        ["ours/peer p50: our median latency over the peer's (below 1 is faster)"],
        ratio_key="p50_us",
        ratio_header="ours/peer p50",
    )


if __name__ == "__main__":
    main()
