"""W9 bus to bus over NATS: bus -> bridge -> NATS -> bridge -> bus, against nats-py.

Two buses stand for two machines; one nats-server on a free loopback port carries the
messages between them, for every peer of the same run.

* ``ours``         - the Rust ``tick-producer`` publishes N 64-byte raw ticks on
  ``Market.Data.AAPL`` on bus A; ``event-engine bridge A --export Market.Data.{symbol}`` sends
  them to NATS; ``event-engine bridge B --import Market.Data.{symbol}`` publishes them on bus
  B, where an ``EventEngine(bus=B)`` handler counts them (W3's consumer);
* ``ours_pickled`` - the same with W2-shaped messages (``tick-producer --pickled``: the
  handler is called as ``handler(seq, price, symbol, size=)``);
* ``nats_py`` / ``nats_py_pickled`` - nats-py publishing the same 64-byte layout (or
  ``pickle.dumps(((i, price, symbol), {"size": size}))``) on ``Market.Data.AAPL`` and a nats-py
  subscriber on ``Market.Data.*`` calling the same handler (unpickling first).

Throughput is measured in the consumer: (N - 1) over the time from the first message handled
to the last. Every run checks that exactly N messages arrived in order; for ours, also that
both bridges stop cleanly on SIGTERM with nothing counted as dropped.

    .venv/bin/python tools/bench/w9_bridge.py --runs 5 --messages 200000

Needs ``nats-server`` (scripts/setup.sh installs it), the release ``event-engine`` and
``tick-producer`` binaries (built when missing, or with --build), and nats-py (installed into
target/bench/peers-venv from requirements-peers.txt).
"""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import benchlib as bl
import w3_rust_to_python as w3
from benchlib import Role, now_ns

SUBJECT = bl.TOPIC
EVENT_ENGINE = bl.ROOT / "target" / "release" / "event-engine"
BUILD = ["cargo", "build", "--release", "-q", "-p", "event-engine-tools", "-p", "event-engine-bench",
         "--bin", "event-engine", "--bin", "tick-producer"]
WAIT = 600.0


def nats_server_binary() -> str | None:
    found = shutil.which("nats-server")
    if found:
        return found
    for candidate in ("/usr/sbin/nats-server", "/usr/bin/nats-server"):
        if pathlib.Path(candidate).exists():
            return candidate
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def nats_server() -> Iterator[str]:
    """A nats-server on a free loopback port, ready, stopped on the way out."""
    binary = nats_server_binary()
    assert binary is not None
    port = free_port()
    proc = subprocess.Popen(
        [binary, "-a", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "Server is ready" in line:
                break
        else:
            raise OSError(f"nats-server exited ({proc.wait()}) before it was ready")
        # Keep its log drained so it never blocks on a full pipe.
        threading.Thread(target=proc.stderr.read, daemon=True).start()
        yield f"nats://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait()


class Bridge:
    """A running ``event-engine bridge``; ``stop`` SIGTERMs it and returns its final counters."""

    def __init__(self, bus: str, url: str, *flags: str) -> None:
        self.proc = subprocess.Popen(
            [str(EVENT_ENGINE), "bridge", bus, "--nats", url, "--stats-every", "0", *flags],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        # Read both pipes as they fill, so the bridge never blocks writing to them.
        self.out: list[str] = []
        self.err: list[str] = []
        line = self.proc.stdout.readline()
        self.readers = [
            threading.Thread(target=lambda: self.out.extend(self.proc.stdout), daemon=True),
            threading.Thread(target=lambda: self.err.extend(self.proc.stderr), daemon=True),
        ]
        for t in self.readers:
            t.start()
        if "ready" not in line:
            self.kill()
            raise OSError(f"bridge on {bus} did not start: {line.strip()} {''.join(self.err).strip()}")

    def stop(self) -> dict[str, int]:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)
        for t in self.readers:  # they end when the pipes close
            t.join(timeout=30)
        if self.proc.returncode != 0:
            raise AssertionError(f"bridge exited {self.proc.returncode}: {''.join(self.err).strip()}")
        words = "".join(self.out).split("stopped;")[-1].split()
        return {words[i]: int(words[i + 1]) for i in range(0, len(words) - 1, 2)}

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def create_bus(name: str) -> None:
    """Creates bus `name` with the default geometry (a bridge attaches to an existing bus)."""
    from event_engine import EventEngine

    EventEngine(bus=name).close()


# --------------------------------------------------------------------------- nats-py


def nats_consumer(ctl: bl.Control, url: str, n: int, pickled: bool) -> dict:
    import nats

    tally = w3.PickledTally(n) if pickled else w3.RawTally(n)

    async def main() -> None:
        nc = await nats.connect(url)
        # Large enough pending limits that the client never drops (each run checks it).
        if pickled:
            loads = pickle.loads

            async def on_message(msg) -> None:
                args, kwargs = loads(msg.data)
                tally(*args, **kwargs)
        else:

            async def on_message(msg) -> None:
                tally(msg.data)

        await nc.subscribe("Market.Data.*", cb=on_message, pending_msgs_limit=n + 1, pending_bytes_limit=-1)
        await nc.flush()
        ctl.ready()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, tally.done.wait, WAIT)
        await nc.close()

    asyncio.run(main())
    ctl.report(tally.result())
    ctl.wait_finish()
    return {"final_count": tally.count, "unread": 0}


def nats_producer(ctl: bl.Control, url: str, n: int, pickled: bool) -> dict:
    import nats

    symbol = bl.SYMBOL.encode()

    async def main() -> tuple[int, float]:
        nc = await nats.connect(url, flusher_queue_size=4096)
        ctl.ready()
        ctl.wait_go()
        t0 = now_ns()
        publish = nc.publish
        if pickled:
            dumps = pickle.dumps
            for i in range(n):
                await publish(SUBJECT, dumps(((i, bl.PRICE, bl.SYMBOL), {"size": bl.SIZE})))
        else:
            pack = w3.RAW.pack
            for i in range(n):
                await publish(SUBJECT, pack(i, 100.0 + (i % 10_000) / 100, (i % 10 + 1) * 100, symbol))
        await nc.flush()
        elapsed = (now_ns() - t0) / 1e9
        await nc.close()
        return t0, n / elapsed

    t0, rate = asyncio.run(main())
    ctl.report({"t_start": t0, "producer_msg_per_s": rate})
    ctl.wait_finish()
    return {}


# --------------------------------------------------------------------------- the workload


def peers(n: int) -> list[bl.Peer]:
    def ours_with(pickled: bool):
        @contextlib.contextmanager
        def build() -> Iterator[list[Role]]:
            with nats_server() as url, bl.bus("w9a") as bus_a, bl.bus("w9b") as bus_b:
                create_bus(bus_a)
                create_bus(bus_b)
                bridges = []
                try:
                    bridges.append(Bridge(bus_a, url, "--export", bl.PATTERN))
                    bridges.append(Bridge(bus_b, url, "--import", bl.PATTERN))
                    yield [
                        Role("consumer", w3.ours_consumer, (bus_b, n, pickled)),
                        Role("producer", w3.rust_producer, (bus_a, n, pickled)),
                    ]
                    stats = [b.stop() for b in bridges]
                    if stats[0].get("out") != n or stats[1].get("in") != n or any(s.get("dropped") for s in stats):
                        raise AssertionError(f"bridge counters {stats}, expected {n} out and in, none dropped")
                finally:
                    for b in bridges:
                        b.kill()

        return build

    def nats_py_with(pickled: bool):
        @contextlib.contextmanager
        def build() -> Iterator[list[Role]]:
            with nats_server() as url:
                yield [
                    Role("consumer", nats_consumer, (url, n, pickled)),
                    Role("producer", nats_producer, (url, n, pickled)),
                ]

        return build

    missing_server = None if nats_server_binary() else "nats-server is not installed (scripts/setup.sh)"
    missing_bins = next(
        (f"{p.relative_to(bl.ROOT)} is not built (`{' '.join(BUILD)}`, or --build)"
         for p in (EVENT_ENGINE, w3.PRODUCER) if not p.exists()),
        None,
    )
    ours_missing = missing_server or bl.ours_unavailable() or missing_bins
    nats_missing = missing_server or bl.missing_module("nats", "nats-py")
    return [
        bl.Peer("ours", "tick-producer -> bus A -> bridge -> NATS -> bridge -> bus B -> EventEngine, 64-byte raw",
                ours_with(False), w3.measure(n), ours_missing),
        bl.Peer("ours_pickled", "the same, W2-shaped: handler(seq, price, symbol, size=)",
                ours_with(True), w3.measure(n, pickled=True), ours_missing),
        bl.Peer("nats_py", "nats-py publish -> NATS -> nats-py subscriber, 64-byte raw",
                nats_py_with(False), w3.measure(n), nats_missing),
        bl.Peer("nats_py_pickled", "nats-py, pickled (args, kwargs), handler(seq, price, symbol, size=)",
                nats_py_with(True), w3.measure(n, pickled=True), nats_missing),
    ]


def main() -> None:
    args = bl.parse_args(
        __doc__,
        messages=200_000,
        extra=lambda ap: ap.add_argument("--build", action="store_true", help="(re)build the release binaries first"),
    )
    if args.build or not (EVENT_ENGINE.exists() and w3.PRODUCER.exists()):
        print(f"building: {' '.join(BUILD)}", file=sys.stderr)
        subprocess.run(BUILD, cwd=bl.ROOT, check=False)
    notes = ["msg/s: consumer side, first to last message handled; one nats-server per trial, loopback"]
    if EVENT_ENGINE.exists():
        built = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(EVENT_ENGINE.stat().st_mtime))
        notes.append(f"event-engine: {EVENT_ENGINE.relative_to(bl.ROOT)} built {built}")
    bl.run_and_report(
        args,
        peers(args.messages),
        f"W9 bus to bus over NATS: {args.messages:,} messages per run, median of {args.runs} runs (min..max)",
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
