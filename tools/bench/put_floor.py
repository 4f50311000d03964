"""What a put and a dispatch cost next to the cheapest C-level call with the same arguments.

W2's call, ``put(Topic("Market.Data.AAPL"), i, 123.45, "AAPL", size=100)``, measured in ONE
process, in interleaved rounds (each round runs every row once, in a rotated order, so that
machine noise hits every row alike); each figure is the median over the rounds of the
nanoseconds per call of one timed batch.

Put rows, ratio to ``floor``:

* ``floor``          - ``"".format(i, 123.45, "AAPL", size=100)``: a C function taking the same
  arguments through the same calling convention, doing next to nothing with them;
* ``put in-process`` - ``engine.put`` on an in-process engine that is not started; the batch
  it queued is dispatched (the dispatch row below) untimed for the put, so the queue never fills;
* ``put on a bus``   - ``engine.put`` of a publish-only engine on a bus where one engine in a
  second process wants the topic (started, no-op handler) and keeps up: before each batch the
  parent waits (untimed) until that consumer has handled everything sent so far;
* ``pickle.dumps``   - ``pickle.dumps(((i, 123.45, "AAPL"), {"size": 100}), 5)``, for scale.

Dispatch rows, from a message ready in the queue or the ring to the handler's first line: the
engine's loop (``run()`` in this thread) dispatches a batch of queued messages to a no-op handler
``h(i, price, symbol, size=0)`` and returns on a stop message that follows them. Ratio to:

* ``call floor``          - ``h(*args, **kwargs)`` with each message's args tuple and kwargs
  dict already built: the call a dispatcher makes with a message it holds as Python objects
  (an in-process message);
* ``decode + call floor`` - ``args, kwargs = marshal.loads(blob); h(*args, **kwargs)``: the
  fastest decoding in the standard library (C) of the same call, then the call (a bus message).

Every batch is checked: the remote consumer handles exactly the messages sent, the dispatch
runs call the handler exactly once per message. Buses get unique names and are removed.

    .venv/bin/python tools/bench/put_floor.py                     # 21 rounds of 1,000 calls
    .venv/bin/python tools/bench/put_floor.py --rounds 41 --batch 2000 --json
"""

from __future__ import annotations

import argparse
import json
import marshal
import os
import pickle
import statistics
import sys
import time
from collections.abc import Callable

import benchlib as bl
from benchlib import PATTERN, PRICE, SIZE, SYMBOL, TOPIC

STOP_TOPIC = "Bench.Stop"
SYNC_TOPIC = "Bench.Sync"
WAIT = 60.0  # seconds the parent waits for the consumer before giving up


def handler(i: int, price: float, symbol: str, size: int = 0) -> None:
    """The no-op handler of every dispatch row (and of the remote consumer)."""


# --------------------------------------------------------------------------- the remote consumer


def consumer(bus: str, conn) -> None:
    """Second process: an engine that wants W2's topic and keeps up; answers each sync message
    with how many messages it has handled (one publisher's messages arrive in order, so a sync
    is handled after everything put before it)."""
    from event_engine import EventEngine, Topic

    count = [0]

    def counted(i: int, price: float, symbol: str, size: int = 0) -> None:
        count[0] += 1

    engine = EventEngine(bus=bus)
    # Counting lives in the consumer: it is never timed; the parent only needs it to keep up.
    engine.register_handler(Topic(PATTERN), counted)
    engine.register_handler(Topic(SYNC_TOPIC), lambda: conn.send(count[0]))
    engine.start()
    try:
        conn.send("ready")
        conn.recv()  # the parent's end
    finally:
        engine.close()


# --------------------------------------------------------------------------- rows


def ns_per_call(t0: int, t1: int, n: int) -> float:
    return (t1 - t0) / n


def floor_row(n: int) -> float:
    fmt = "".format
    t0 = time.perf_counter_ns()
    for i in range(n):
        fmt(i, PRICE, SYMBOL, size=SIZE)
    return ns_per_call(t0, time.perf_counter_ns(), n)


def loop_row(n: int) -> float:
    t0 = time.perf_counter_ns()
    for _i in range(n):
        pass
    return ns_per_call(t0, time.perf_counter_ns(), n)


def pickle_row(n: int) -> float:
    dumps = pickle.dumps
    t0 = time.perf_counter_ns()
    for i in range(n):
        dumps(((i, PRICE, SYMBOL), {"size": SIZE}), 5)
    return ns_per_call(t0, time.perf_counter_ns(), n)


def call_floor_row(n: int) -> float:
    msgs = [((i, PRICE, SYMBOL), {"size": SIZE}) for i in range(n)]
    h = handler
    t0 = time.perf_counter_ns()
    for a, k in msgs:
        h(*a, **k)
    return ns_per_call(t0, time.perf_counter_ns(), n)


def decode_floor_row(n: int) -> float:
    blobs = [marshal.dumps(((i, PRICE, SYMBOL), {"size": SIZE})) for i in range(n)]
    h, loads = handler, marshal.loads
    t0 = time.perf_counter_ns()
    for b in blobs:
        a, k = loads(b)
        h(*a, **k)
    return ns_per_call(t0, time.perf_counter_ns(), n)


class Dispatching:
    """An engine whose loop runs in this thread over a batch put beforehand: ``run()`` returns
    on the stop message that follows the batch; the handler counts nothing (the check counts
    the batch through ``seen`` on the stop)."""

    def __init__(self, engine, publisher) -> None:
        from event_engine import Topic

        self.engine = engine
        self.publisher = publisher
        self.topic = Topic(TOPIC)
        self.stop = Topic(STOP_TOPIC)
        self.stops = 0
        engine.register_handler(Topic(PATTERN), handler)
        engine.register_handler(self.stop, self._on_stop)

    def _on_stop(self) -> None:
        self.stops += 1
        self.engine.deactivate()

    def fill(self, n: int) -> float:
        """Puts the batch (timed: the put row of this publisher) and the stop message."""
        put, topic = self.publisher.put, self.topic
        t0 = time.perf_counter_ns()
        for i in range(n):
            put(topic, i, PRICE, SYMBOL, size=SIZE)
        t1 = time.perf_counter_ns()
        put(self.stop)
        return ns_per_call(t0, t1, n)

    def run(self, n: int) -> float:
        """Dispatches what `fill` queued (timed), checks it all went."""
        before = self.stops
        self.engine.activate()
        t0 = time.perf_counter_ns()
        self.engine.run()
        t1 = time.perf_counter_ns()
        if self.stops != before + 1 or self.engine.occupied:
            raise AssertionError(f"dispatch left {self.engine.occupied} messages (stops {self.stops - before})")
        return ns_per_call(t0, t1, n)


class BusPut:
    """``put`` of a publish-only engine on a bus whose other end is the consumer process."""

    def __init__(self, bus: str) -> None:
        from event_engine import EventEngine, Topic

        self.proc, self.conn = None, None
        parent, child = bl.CTX.Pipe()
        self.proc = bl.CTX.Process(target=consumer, args=(bus, child), daemon=True)
        self.proc.start()
        if not parent.poll(WAIT) or parent.recv() != "ready":
            raise RuntimeError("the consumer process did not start")
        self.conn = parent
        self.engine = EventEngine(bus=bus)
        self.topic, self.sync_topic = Topic(TOPIC), Topic(SYNC_TOPIC)
        self.sent = 0

    def sync(self) -> None:
        """Waits until the consumer has handled everything sent, and checks it did."""
        self.engine.put(self.sync_topic)
        if not self.conn.poll(WAIT):
            raise TimeoutError("the consumer did not answer a sync message")
        handled = self.conn.recv()
        if handled != self.sent:
            raise AssertionError(f"the consumer handled {handled} messages of {self.sent}")

    def row(self, n: int) -> float:
        self.sync()
        put, topic = self.engine.put, self.topic
        t0 = time.perf_counter_ns()
        for i in range(n):
            put(topic, i, PRICE, SYMBOL, size=SIZE)
        t1 = time.perf_counter_ns()
        self.sent += n
        return ns_per_call(t0, t1, n)

    def close(self) -> None:
        try:
            self.sync()
        finally:
            self.engine.close()
            if self.conn is not None:
                self.conn.send("end")
            if self.proc is not None:
                self.proc.join(WAIT)
                if self.proc.is_alive():
                    self.proc.kill()


# --------------------------------------------------------------------------- main


def measure(rounds: int, n: int, remote_bus: str, local_bus: str) -> dict[str, list[float]]:
    from event_engine import EventEngine

    inproc = EventEngine(capacity=n + 16)
    local_sub = EventEngine(bus=local_bus)
    local_pub = EventEngine(bus=local_bus)
    in_rows = Dispatching(inproc, inproc)
    bus_rows = Dispatching(local_sub, local_pub)
    remote = BusPut(remote_bus)
    samples: dict[str, list[float]] = {}

    def inproc_pair() -> None:
        samples.setdefault("put in-process", []).append(in_rows.fill(n))
        samples.setdefault("dispatch in-process", []).append(in_rows.run(n))

    def bus_dispatch() -> None:
        bus_rows.fill(n)  # untimed here: a put into a stopped engine of this process
        samples.setdefault("dispatch from a bus", []).append(bus_rows.run(n))

    steps: list[tuple[str, Callable[[], None]]] = [
        ("floor", lambda: samples.setdefault("floor", []).append(floor_row(n))),
        ("inproc", inproc_pair),
        ("bus put", lambda: samples.setdefault("put on a bus", []).append(remote.row(n))),
        ("pickle", lambda: samples.setdefault("pickle.dumps", []).append(pickle_row(n))),
        ("call floor", lambda: samples.setdefault("call floor", []).append(call_floor_row(n))),
        ("decode floor", lambda: samples.setdefault("decode + call floor", []).append(decode_floor_row(n))),
        ("bus dispatch", bus_dispatch),
        ("loop", lambda: samples.setdefault("loop alone", []).append(loop_row(n))),
    ]
    try:
        for _ in range(2):  # warm-up: topic caches, routes, the consumer's first wake-ups
            for _name, step in steps:
                step()
        samples.clear()
        for r in range(rounds):
            k = r % len(steps)
            for _name, step in steps[k:] + steps[:k]:
                step()
    finally:
        remote.close()
        local_pub.close()
        local_sub.close()
    return samples


def report(samples: dict[str, list[float]], rounds: int, n: int, load: tuple[float, float, float]) -> None:
    med = {k: statistics.median(v) for k, v in samples.items()}
    floor, call, decode = med["floor"], med["call floor"], med["decode + call floor"]
    rows = [
        ("floor", "floor", '"".format(i, 123.45, "AAPL", size=100)'),
        ("put in-process", "floor", "engine.put, in-process engine not started"),
        ("put on a bus", "floor", "engine.put, one interested engine in a second process"),
        ("pickle.dumps", "floor", "pickle.dumps(((i, 123.45, 'AAPL'), {'size': 100}), 5)"),
        ("call floor", "call floor", "h(*args, **kwargs), args and kwargs built beforehand"),
        ("dispatch in-process", "call floor", "run(): queued message -> h"),
        ("decode + call floor", "decode + call floor", "marshal.loads(blob), then h(*args, **kwargs)"),
        ("dispatch from a bus", "decode + call floor", "run(): ring slot -> decode -> h"),
        ("loop alone", None, "for i in range(n): pass (in every row above)"),
    ]
    bases = {"floor": floor, "call floor": call, "decode + call floor": decode}
    print(f"put and dispatch vs the floor: {rounds} rounds of {n:,} calls, median ns per call (min..max)")
    print()
    head = f"{'row':<22} {'ns/call':>8} {'(min..max)':>16} {'ratio':>7}  {'to':<20} what"
    print(head)
    print("-" * len(head))
    for key, base, what in rows:
        vals = samples[key]
        ratio = f"{med[key] / bases[base]:.2f}x" if base else "-"
        spread = f"({min(vals):.0f}..{max(vals):.0f})"
        print(f"{key:<22} {med[key]:>8.0f} {spread:>16} {ratio:>7}  {base or '-':<20} {what}")
    after = os.getloadavg()
    print()
    print(
        f"machine: {os.cpu_count()} CPUs, load average {load[0]:.2f} before and {after[0]:.2f} after (1 min);"
        f" Python {sys.version.split()[0]}; every row pays the loop alone"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=21, help="interleaved rounds (default 21)")
    ap.add_argument("--batch", type=int, default=1000, help="calls per timed batch (default 1,000; at most 4,000)")
    ap.add_argument("--json", action="store_true", help="also print every round's figures as JSON")
    args = ap.parse_args()
    if not 1 <= args.batch <= 4000:
        ap.error("--batch must be between 1 and 4,000 (a batch must fit in the bus's ring)")
    load = os.getloadavg()
    with bl.bus("putfloor") as remote_bus, bl.bus("putfloor-local") as local_bus:
        samples = measure(args.rounds, args.batch, remote_bus, local_bus)
    report(samples, args.rounds, args.batch, load)
    if args.json:
        print(json.dumps(samples, indent=2))


if __name__ == "__main__":
    main()
