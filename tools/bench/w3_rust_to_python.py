"""W3 Rust to Python (docs/benchmarks.md): the Rust ``tick-producer`` publishes N 64-byte raw
ticks on ``Market.Data.AAPL``; a Python handler on ``Market.Data.{symbol}`` counts them.

Throughput is measured where the work is, in the consumer: (N - 1) over the time from the
first message handled to the last. The consumer checks that it got exactly N payloads of 64
bytes, the first with sequence number 0 and the last with N - 1 (per-publisher order), and
that nothing is left unread once the producer has exited.

* ``ours``         - ``tick-producer --bus NAME --count N --raw-size 64 --wait-subscribers 1``
  (tools/bench/src/bin/tick_producer.rs) into an ``EventEngine(bus=NAME)``; the handler
  receives one ``bytes``;
* ``ours_pickled`` - the same with ``--pickled``: the handler is called as
  ``handler(seq, price, symbol, size=size)`` (W2's handler, which also checks the order);
* ``zmq``          - W2's best peer: pyzmq PUSH/PULL over ``ipc://``, a Python producer sending
  the same 64-byte layout (``struct``) as single frames, the consumer calling the same
  counting handler.

The producer's own figure (``tick-producer``'s JSON line, or the Python loop's) is shown too.
The binary is built with ``cargo build --release -p event-engine-bench --bin tick-producer``
when it is missing or with ``--build``.

    .venv/bin/python tools/bench/w3_rust_to_python.py --runs 5 --messages 2000000
"""

from __future__ import annotations

import contextlib
import json
import resource
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import benchlib as bl
from benchlib import PATTERN, TOPIC, Role, now_ns

RAW_SIZE = 64
# tick_producer's raw layout: seq u64, price f64, size u64, symbol (8 bytes, NUL-padded), zeros.
RAW = struct.Struct("<QdQ8s32x")
PRODUCER = bl.ROOT / "target" / "release" / "tick-producer"
BUILD = ["cargo", "build", "--release", "-q", "-p", "event-engine-bench", "--bin", "tick-producer"]
WAIT = 600.0


class RawTally:
    """The handler: counts payloads, keeps the first and the last, times the first and the N-th."""

    __slots__ = ("count", "done", "first", "last", "n", "t_first", "t_last", "wrong_size")

    def __init__(self, n: int) -> None:
        self.n = n
        self.count = 0
        self.wrong_size = 0
        self.first = self.last = b""
        self.t_first = self.t_last = 0
        self.done = threading.Event()

    def __call__(self, payload: bytes) -> None:
        self.count += 1
        self.last = payload
        if len(payload) != RAW_SIZE:
            self.wrong_size += 1
        if self.count == 1:
            self.t_first = now_ns()
            self.first = payload
        elif self.count == self.n:
            self.t_last = now_ns()
            self.done.set()

    def result(self) -> dict:
        def seq(p: bytes) -> int:
            return RAW.unpack_from(p)[0] if len(p) >= RAW.size else -1

        return {
            "count": self.count,
            "wrong_size": self.wrong_size,
            "first_seq": seq(self.first),
            "last_seq": seq(self.last),
            "t_first": self.t_first,
            "t_last": self.t_last,
        }


class PickledTally(bl.Tally):
    """W2's handler, also timing the first and the N-th message."""

    __slots__ = ("done", "n", "t_first", "t_last")

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n
        self.t_first = self.t_last = 0
        self.done = threading.Event()

    def __call__(self, i: int, price: float, symbol: str, size: int = 0) -> None:
        super().__call__(i, price, symbol, size)
        if self.count == 1:
            self.t_first = now_ns()
        elif self.count == self.n:
            self.t_last = now_ns()
            self.done.set()

    def result(self) -> dict:
        return {**super().result(), "t_first": self.t_first, "t_last": self.t_last}


# --------------------------------------------------------------------------- ours


def ours_consumer(ctl: bl.Control, bus: str, n: int, pickled: bool) -> dict:
    from event_engine import EventEngine, Topic

    engine = EventEngine(bus=bus)
    tally = PickledTally(n) if pickled else RawTally(n)
    engine.register_handler(Topic(PATTERN), tally)
    engine.start()
    try:
        ctl.ready()
        tally.done.wait(WAIT)
        ctl.report(tally.result())
        ctl.wait_finish()  # the producer has exited by now: anything more would be unread
        unread = engine.occupied
    finally:
        engine.stop()
    return {"final_count": tally.count, "unread": unread}


def rust_producer(ctl: bl.Control, bus: str, n: int, pickled: bool) -> dict:
    encoding = ["--pickled"] if pickled else ["--raw-size", str(RAW_SIZE)]
    cmd = [str(PRODUCER), "--bus", bus, "--count", str(n), *encoding, "--wait-subscribers", "1"]
    ctl.ready()
    ctl.wait_go()
    t0 = now_ns()
    r = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=WAIT)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {r.returncode}: {r.stderr.strip()}")
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    if summary.get("total") != n:
        raise RuntimeError(f"tick-producer published {summary.get('total')} of {n}")
    ctl.report(
        {
            "t_start": t0,
            "producer_msg_per_s": summary["msgs_per_s"],
            # The producer's own peak, not this launcher's.
            "child_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        }
    )
    ctl.wait_finish()
    return {}


# --------------------------------------------------------------------------- pyzmq


def zmq_consumer(ctl: bl.Control, endpoint: str, n: int) -> dict:
    with bl.zmq_socket("PULL", endpoint, bind=True) as sock:
        tally = RawTally(n)
        routes = {TOPIC: tally}
        recv = sock.recv
        ctl.ready()
        for _ in range(n):
            routes[TOPIC](recv())  # one stream, one topic: the lookup stands for dispatch
        ctl.report(tally.result())
        ctl.wait_finish()
        unread = 0
        while sock.poll(0):
            sock.recv()
            unread += 1
    return {"final_count": tally.count + unread, "unread": unread}


def zmq_producer(ctl: bl.Control, endpoint: str, n: int) -> dict:
    with bl.zmq_socket("PUSH", endpoint, bind=False) as sock:
        send, pack = sock.send, RAW.pack
        symbol = bl.SYMBOL.encode()
        ctl.ready()
        ctl.wait_go()
        t0 = now_ns()
        for i in range(n):
            send(pack(i, 100.0 + (i % 10_000) / 100, (i % 10 + 1) * 100, symbol))
        elapsed = (now_ns() - t0) / 1e9
        ctl.report({"t_start": t0, "producer_msg_per_s": n / elapsed})
        ctl.wait_finish()
    return {}


# --------------------------------------------------------------------------- the workload


def measure(n: int, pickled: bool = False):
    def figures(res: dict[str, dict]) -> dict[str, float]:
        prod, cons = res["producer"], res["consumer"]
        if pickled:
            bl.expect_exact(n, [cons])
        elif (cons["count"], cons["first_seq"], cons["last_seq"], cons["wrong_size"]) != (n, 0, n - 1, 0):
            raise AssertionError(
                f"consumer got {cons['count']} of {n} payloads (first seq {cons['first_seq']},"
                f" last {cons['last_seq']}, {cons['wrong_size']} not {RAW_SIZE} bytes)"
            )
        if cons["final_count"] != n or cons["unread"]:
            raise AssertionError(f"consumer ended with {cons['final_count']} handled and {cons['unread']} unread")
        out = {
            "msg_per_s": (n - 1) * 1e9 / (cons["t_last"] - cons["t_first"]),
            "producer_msg_per_s": prod["producer_msg_per_s"],
            "sub_rss_mb": cons["peak_rss_mb"],
            "pub_rss_mb": prod.get("child_rss_mb", prod["peak_rss_mb"]),
        }
        return out

    return figures


def producer_unavailable() -> str | None:
    if PRODUCER.exists():
        return None
    return f"{PRODUCER.relative_to(bl.ROOT)} is not built (`{' '.join(BUILD)}`, or run with --build)"


def build_producer() -> None:
    print(f"building tick-producer: {' '.join(BUILD)}", file=sys.stderr)
    r = subprocess.run(BUILD, cwd=bl.ROOT, check=False)
    if r.returncode != 0:
        print(f"tick-producer did not build (exit {r.returncode})", file=sys.stderr)


def peers(n: int) -> list[bl.Peer]:
    def ours_with(pickled: bool):
        @contextlib.contextmanager
        def build() -> Iterator[list[Role]]:
            with bl.bus("w3") as name:
                yield [
                    Role("consumer", ours_consumer, (name, n, pickled)),
                    Role("producer", rust_producer, (name, n, pickled)),
                ]

        return build

    @contextlib.contextmanager
    def zmq() -> Iterator[list[Role]]:
        with bl.ipc_dir() as d:
            ep = f"ipc://{d}/w3"
            yield [Role("consumer", zmq_consumer, (ep, n)), Role("producer", zmq_producer, (ep, n))]

    ours_missing = bl.ours_unavailable() or producer_unavailable()
    return [
        bl.Peer(
            "ours",
            "tick-producer (Rust) -> EventEngine(bus=...), 64-byte raw",
            ours_with(False),
            measure(n),
            ours_missing,
        ),
        bl.Peer(
            "ours_pickled",
            "tick-producer --pickled -> EventEngine(bus=...), handler(seq, price, symbol, size=)",
            ours_with(True),
            measure(n, pickled=True),
            ours_missing,
        ),
        bl.Peer(
            "zmq",
            "pyzmq PUSH/PULL ipc://, Python producer, 64-byte raw",
            zmq,
            measure(n),
            bl.missing_module("zmq", "pyzmq"),
        ),
    ]


def main() -> None:
    args = bl.parse_args(
        __doc__,
        messages=2_000_000,
        extra=lambda ap: ap.add_argument("--build", action="store_true", help="(re)build tick-producer (release) first"),
    )
    if args.build or args.setup or not PRODUCER.exists():
        build_producer()

    notes = ["msg/s: consumer side, first to last message handled"]
    if PRODUCER.exists():
        built = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(PRODUCER.stat().st_mtime))
        notes.append(f"tick-producer: {PRODUCER.relative_to(bl.ROOT)} built {built}")
    bl.run_and_report(
        args,
        peers(args.messages),
        f"W3 Rust to Python: {args.messages:,} messages per run, median of {args.runs} runs (min..max)",
        [
            bl.Column("msg/s", "msg_per_s", spread=True),
            bl.Column("producer msg/s", "producer_msg_per_s"),
            bl.Column("pub RSS MB", "pub_rss_mb", ".1f"),
            bl.Column("sub RSS MB", "sub_rss_mb", ".1f"),
        ],
        notes,
    )


if __name__ == "__main__":
    main()
