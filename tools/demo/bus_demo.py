"""The main demo: one shared-memory bus, a Rust producer and four Python processes.

    bash scripts/demo.sh            # builds everything, then runs this file

What happens:

1. A bus ``demo-<pid>`` is created in ``/dev/shm``.
2. Three Python workers join the group ``workers`` (each tick is handled by exactly one of
   them) and a Python monitor attaches on its own (it sees every tick). Each registers a
   handler on the generic topic ``Market.Data.{symbol}``.
3. The Rust ``tick-producer`` publishes pickled ticks ``(seq, price, symbol, size=...)`` on
   ``Market.Data.AAPL``, ``.MSFT`` and ``.GOOG``.
4. Each process reports what it handled; the demo reconciles the totals (the group handled
   every tick exactly once, the monitor saw every tick), prints the bus's inspection summary
   with ``event-engine inspect`` and removes the bus.

Exits non-zero if any total does not reconcile.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SYMBOLS = ("AAPL", "MSFT", "GOOG")


def consumer(name: str, bus: str, group: str | None, ready, stop, results) -> None:
    """A Python process on the bus: counts the ticks its handler receives."""
    from event_engine import EventEngine, Topic

    seen: list[tuple[str, int]] = []

    def on_tick(seq: int, price: float, symbol: str, size: int = 0) -> None:
        seen.append((symbol, seq))

    engine = EventEngine(bus=bus, group=group)
    engine.register_handler(Topic("Market.Data.{symbol}"), on_tick)
    engine.start()
    ready.set()
    stop.wait()
    engine.stop()
    engine.close()
    results.put((name, os.getpid(), seen))


def find_binary(name: str) -> str:
    """The console script in the virtualenv, else the workspace's release build."""
    found = shutil.which(name)
    if found:
        return found
    built = ROOT / "target" / "release" / name
    if built.exists():
        return str(built)
    raise SystemExit(f"demo: {name} not found; run `bash scripts/demo.sh` to build it")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=300_000, help="ticks the Rust producer publishes")
    args = parser.parse_args()

    from event_engine import inspect_bus

    bus = f"demo-{os.getpid()}"
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    results = ctx.Queue()
    roles = [(f"worker-{i}", "workers") for i in (1, 2, 3)] + [("monitor", None)]
    procs, readies = [], []
    try:
        for name, group in roles:
            ready = ctx.Event()
            p = ctx.Process(target=consumer, args=(name, bus, group, ready, stop, results), name=name)
            p.start()
            procs.append(p)
            readies.append(ready)
        for ready, (name, _) in zip(readies, roles):
            if not ready.wait(30):
                raise SystemExit(f"demo: {name} did not attach to the bus")
        print(f"bus {bus!r}: 3 workers in group 'workers' and 1 monitor attached")

        producer = subprocess.run(
            [find_binary("tick-producer"), "--bus", bus, "--symbols", ",".join(SYMBOLS),
             "--count", str(args.ticks), "--pickled"],
            check=False, capture_output=True, text=True,
        )
        if producer.returncode != 0:
            raise SystemExit(f"demo: tick-producer failed: {producer.stderr.strip()}")
        summary = json.loads(producer.stdout.strip().splitlines()[-1])
        total = summary["total"]
        print(f"Rust tick-producer published {total:,} ticks at {summary['msgs_per_s']:,.0f} msg/s")

        # Every tick has been published; wait until every consumer has drained the ring.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if inspect_bus(bus)["ring"]["occupancy"] == 0:
                break
            time.sleep(0.05)
        print("\n" + subprocess.run(
            [find_binary("event-engine"), "inspect", bus], check=True, capture_output=True, text=True
        ).stdout)

        stop.set()
        handled = {}
        for _ in procs:
            name, pid, seen = results.get(timeout=60)
            handled[name] = (pid, seen)
        for p in procs:
            p.join(30)

        print(f"{'process':<10} {'pid':>8} {'handled':>9}  per symbol")
        for name, _ in roles:
            pid, seen = handled[name]
            per = Counter(sym for sym, _ in seen)
            print(f"{name:<10} {pid:>8} {len(seen):>9,}  " + ", ".join(f"{s} {per[s]:,}" for s in SYMBOLS))

        published = {(sym, seq) for sym in SYMBOLS for seq in range(summary["published"][f"Market.Data.{sym}"])}
        group_seen = [t for name, _ in roles if name != "monitor" for t in handled[name][1]]
        monitor_seen = handled["monitor"][1]
        ok_group = len(group_seen) == total and set(group_seen) == published
        ok_monitor = len(monitor_seen) == total and set(monitor_seen) == published
        print(f"\ngroup 'workers': {len(group_seen):,} handled for {total:,} published, "
              f"each exactly once: {'yes' if ok_group else 'NO'}")
        print(f"monitor: saw {len(monitor_seen):,} of {total:,}: {'yes' if ok_monitor else 'NO'}")
        return 0 if ok_group and ok_monitor else 1
    finally:
        stop.set()
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()
        subprocess.run([find_binary("event-engine"), "rm", "--force", bus], check=False, capture_output=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"/dev/shm/event_engine.{bus}")
        print(f"bus {bus!r} removed")


if __name__ == "__main__":
    sys.exit(main())
