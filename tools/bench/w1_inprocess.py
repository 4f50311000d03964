"""W1 in-process benchmark (docs/benchmarks.md).

One engine; a producer thread calls ``put(Topic("Bench.Inproc"), time.perf_counter_ns())``
N times (200,000 by default); the handler records each message's latency. Throughput is
N over the time from the first put to the last handled message. Peers measured in the
same run, with the same work:

* ``ours``      - ``event_engine.EventEngine`` (this project, built into ./.venv);
* ``queue``     - a plain ``queue.Queue`` (same capacity) and a dispatcher thread: the floor;
* ``reference`` - PyEventEngine from PyPI, run in its own venv (it also installs as
  ``event_engine``) by the interpreter given with ``--reference-python``
  (``--setup-reference`` creates that venv under target/bench/);
* ``ours@X.Y``  - optional (``--ours-python``): this project's wheel on another
  interpreter, e.g. the reference's, for a same-interpreter comparison.

Every (peer, run) is a fresh subprocess, so peak RSS is per peer; runs are interleaved
across peers so that machine noise hits them alike. Prints a table of medians.

    .venv/bin/python tools/bench/w1_inprocess.py --runs 5
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import resource
import statistics
import subprocess
import sys
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
REF_VENV = ROOT / "target" / "bench" / "ref-venv"
# PyEventEngine 0.6.x's compiled (Cython) engine imports `cbase`, which the PyCyBase package
# provides; without it the package silently runs its pure-Python fallback. The table shows
# the reference's `USING_FALLBACK`, which must read False.
REF_PACKAGE = "PyEventEngine==0.6.2"
REF_DEPS = ["PyCyBase"]
CAPACITY = 4095
WARMUP = 2_000


class Recorder:
    """The handler: stores latencies, notes the time the last message was handled."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.latencies: list[int] = []
        self.done = threading.Event()
        self.end_ns = 0

    def reset(self, n: int) -> None:
        self.n = n
        self.latencies = []
        self.done.clear()

    def __call__(self, ts: int) -> None:
        now = time.perf_counter_ns()
        lat = self.latencies
        lat.append(now - ts)
        if len(lat) == self.n:
            self.end_ns = now
            self.done.set()


def _drive(put, topic, recorder: Recorder, n: int) -> float:
    """Puts n messages from a producer thread; returns seconds from first put to last handled."""
    recorder.reset(n)
    start = [0]

    def producer() -> None:
        clock = time.perf_counter_ns
        start[0] = clock()
        for _ in range(n):
            put(topic, clock())

    t = threading.Thread(target=producer)
    t.start()
    t.join()
    if not recorder.done.wait(120):
        raise RuntimeError(f"only {len(recorder.latencies)} of {n} messages were handled")
    return (recorder.end_ns - start[0]) / 1e9


def run_engine(n: int) -> dict:
    """`ours` and `reference`: whichever `event_engine` this interpreter imports."""
    import event_engine
    from event_engine import EventEngine, Topic

    topic = Topic("Bench.Inproc")
    engine = EventEngine(capacity=CAPACITY)
    recorder = Recorder(n)
    engine.register_handler(topic, recorder)
    engine.start()
    try:
        _drive(engine.put, topic, recorder, WARMUP)
        seconds = _drive(engine.put, topic, recorder, n)
    finally:
        engine.stop()
    handled = len(recorder.latencies)
    version = getattr(event_engine, "__version__", "?")
    fallback = getattr(event_engine, "USING_FALLBACK", None)
    return _result(n, handled, seconds, recorder.latencies, f"event_engine {version} (fallback={fallback})")


def run_queue(n: int) -> dict:
    import queue

    class Topic:  # the same tuple shape as the engine's message, no routing
        __slots__ = ("value",)

        def __init__(self, value: str) -> None:
            self.value = value

    topic = Topic("Bench.Inproc")
    q: queue.Queue = queue.Queue(maxsize=CAPACITY)
    recorder = Recorder(n)

    def dispatcher() -> None:
        get = q.get
        while True:
            item = get()
            if item is None:
                return
            _topic, ts = item
            recorder(ts)

    worker = threading.Thread(target=dispatcher)
    worker.start()
    qput = q.put

    def put(t, ts):
        qput((t, ts))

    try:
        _drive(put, topic, recorder, WARMUP)
        seconds = _drive(put, topic, recorder, n)
    finally:
        q.put(None)
        worker.join()
    return _result(n, len(recorder.latencies), seconds, recorder.latencies, "queue.Queue + thread")


def _result(n: int, handled: int, seconds: float, latencies: list[int], label: str) -> dict:
    lat = sorted(latencies)
    return {
        "label": label,
        "python": sys.version.split()[0],
        "messages": n,
        "handled": handled,
        "msg_per_s": n / seconds,
        "p50_us": lat[len(lat) // 2] / 1e3,
        "p99_us": lat[min(len(lat) - 1, int(len(lat) * 0.99))] / 1e3,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def worker_main(kind: str, n: int) -> None:
    result = run_queue(n) if kind == "queue" else run_engine(n)
    if result["handled"] != n:
        raise SystemExit(f"{kind}: handled {result['handled']} of {n} messages")
    print(json.dumps(result))


def setup_reference(python: str) -> pathlib.Path:
    if not (REF_VENV / "bin" / "python").exists():
        subprocess.run([python, "-m", "venv", str(REF_VENV)], check=True)
    pip = [str(REF_VENV / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, REF_PACKAGE, *REF_DEPS], check=True)
    return REF_VENV / "bin" / "python"


def spawn(python: str, kind: str, n: int) -> dict:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # each interpreter imports its own event_engine
    out = subprocess.run(
        [python, str(pathlib.Path(__file__).resolve()), "--worker", kind, "--messages", str(n)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd="/",
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--reference-python", default=str(REF_VENV / "bin" / "python"))
    ap.add_argument(
        "--setup-reference",
        metavar="PYTHON",
        help=f"create {REF_VENV.relative_to(ROOT)} with this interpreter (3.13 has wheels) and install "
        f"{REF_PACKAGE} with {', '.join(REF_DEPS)}",
    )
    ap.add_argument(
        "--ours-python",
        action="append",
        default=[],
        metavar="PYTHON",
        help="also run this project's engine with this interpreter (event_engine installed there)",
    )
    ap.add_argument("--json", action="store_true", help="print the raw results as JSON")
    ap.add_argument("--worker", choices=["ours", "queue", "reference"], help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        worker_main(args.worker, args.messages)
        return

    ref_python = os.path.abspath(args.reference_python)
    if args.setup_reference:
        ref_python = str(setup_reference(args.setup_reference))
    peers = {"ours": sys.executable, "queue": sys.executable}
    workers = {"ours": "ours", "queue": "queue"}
    for python in map(os.path.abspath, args.ours_python):  # abspath: keep the venv symlink
        version = subprocess.run(
            [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        peers[f"ours@{version}"] = python
        workers[f"ours@{version}"] = "ours"
    if pathlib.Path(ref_python).exists():
        peers["reference"] = ref_python
        workers["reference"] = "reference"
    else:
        print(f"(reference skipped: no interpreter at {ref_python}; see --setup-reference)", file=sys.stderr)

    results: dict[str, list[dict]] = {k: [] for k in peers}
    for run in range(args.runs):
        for kind, python in peers.items():
            r = spawn(python, workers[kind], args.messages)
            results[kind].append(r)
            print(f"run {run + 1}/{args.runs} {kind:10s} {r['msg_per_s']:>12,.0f} msg/s", file=sys.stderr)

    if args.json:
        print(json.dumps(results, indent=2))
        return

    med = {k: {f: statistics.median(r[f] for r in rs) for f in ("msg_per_s", "p50_us", "p99_us", "peak_rss_mb")}
           for k, rs in results.items()}
    ours = med["ours"]["msg_per_s"]
    print(f"\nW1 in-process: {args.messages:,} messages, median of {args.runs} runs (each run a fresh process)\n")
    header = f"{'peer':10s} {'msg/s':>12s} {'min..max':>21s} {'p50 us':>9s} {'p99 us':>9s} {'peak RSS MB':>12s} {'ours / peer':>12s}  what"
    print(header)
    print("-" * len(header))
    for kind, rs in results.items():
        m = med[kind]
        lo, hi = min(r["msg_per_s"] for r in rs), max(r["msg_per_s"] for r in rs)
        ratio = ours / m["msg_per_s"]
        what = f"{rs[0]['label']}, Python {rs[0]['python']}"
        print(
            f"{kind:10s} {m['msg_per_s']:>12,.0f} {lo:>10,.0f}..{hi:<10,.0f} {m['p50_us']:>9.1f} {m['p99_us']:>9.1f}"
            f" {m['peak_rss_mb']:>12.1f} {ratio:>11.2f}x  {what}"
        )


if __name__ == "__main__":
    main()
