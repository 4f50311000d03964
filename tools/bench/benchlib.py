"""Shared harness of the cross-process Python benchmarks (W2, W3, W5, W6, W7; docs/benchmarks.md).

What every workload needs and nothing workload-specific:

* the environment: the peers (pyzmq, faster-fifo, iceoryx2) live in their own venv,
  target/bench/peers-venv, created from requirements-peers.txt on first use; `event_engine`
  is imported there from py-binding/python, i.e. whatever `bash scripts/setup.sh` last built;
* trials: one trial runs the roles of one peer (a producer, one or more consumers) each in a
  fresh `spawn`ed process, started one after another (each is ready before the next starts,
  which is the order iceoryx2, zmq PUB/SUB and the bus need), then releases them together and
  collects one result per role; processes are always reaped, even on error;
* the handler every consumer calls (`Tally`), which is how a run proves it delivered exactly
  the N messages it was given, in order;
* the loops every peer shares: a consumer dispatching (topic, args, kwargs) messages until
  the end marker, a producer's timed burst, zmq sockets that are always closed;
* the command line, medians, ratios, peak RSS, the table printer and the whole of a
  workload's main();
* unique bus names whose files in /dev/shm are removed whatever happens.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import multiprocessing as mp
import multiprocessing.connection as mp_connection
import os
import pathlib
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[2]
BENCH_DIR = pathlib.Path(__file__).resolve().parent
PEERS_VENV = ROOT / "target" / "bench" / "peers-venv"
REQUIREMENTS = BENCH_DIR / "requirements-peers.txt"
STATUS_FILE = PEERS_VENV / "bench-status.json"
PY_SOURCE = ROOT / "py-binding" / "python"
SHM_DIR = pathlib.Path("/dev/shm")

# Every process of a trial is a fresh interpreter: a forked child would carry the parent's
# imports and memory (skewing peak RSS) and any native threads' state.
CTX = mp.get_context("spawn")

# The message of W2, W5 and W6, as docs/benchmarks.md gives it.
TOPIC = "Market.Data.AAPL"
PATTERN = "Market.Data.{symbol}"
DONE_TOPIC = "Bench.Done"
PRICE = 123.45
SYMBOL = "AAPL"
SIZE = 100


# --------------------------------------------------------------------------- environment


def _requirements() -> list[str]:
    lines = (ln.split("#", 1)[0].strip() for ln in REQUIREMENTS.read_text().splitlines())
    return [ln for ln in lines if ln]


def _requirements_digest() -> str:
    return hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()


def install_status() -> dict[str, str]:
    """requirement -> "ok" or the reason pip gave for not installing it."""
    try:
        return json.loads(STATUS_FILE.read_text())["packages"]
    except (OSError, ValueError, KeyError):
        return {}


def setup_peers_venv(force: bool = False) -> None:
    """Creates target/bench/peers-venv and installs each peer; a peer that fails is recorded, not fatal."""
    python = PEERS_VENV / "bin" / "python"
    digest = _requirements_digest()
    if not force and python.exists():
        try:
            if json.loads(STATUS_FILE.read_text())["digest"] == digest:
                return
        except (OSError, ValueError, KeyError):
            pass
    base = getattr(sys, "_base_executable", sys.executable)
    if not python.exists():
        print(f"creating {PEERS_VENV.relative_to(ROOT)} with {base}", file=sys.stderr)
        subprocess.run([base, "-m", "venv", str(PEERS_VENV)], check=True)
    # event_engine comes from the source tree (its extension is built there by maturin develop).
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    pathlib.Path(site, "event_engine_source.pth").write_text(f"{PY_SOURCE}\n")
    status: dict[str, str] = {}
    for req in _requirements():
        print(f"installing {req} into {PEERS_VENV.relative_to(ROOT)}", file=sys.stderr)
        r = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", req],
            check=False,
            capture_output=True,
            text=True,
        )
        if r.returncode == 0:
            status[req] = "ok"
        else:
            lines = [ln for ln in (r.stderr or r.stdout).splitlines() if ln.strip()]
            status[req] = f"pip install {req} failed: {lines[-1] if lines else r.returncode}"
            print(status[req], file=sys.stderr)
    STATUS_FILE.write_text(json.dumps({"digest": digest, "packages": status}, indent=2))


def in_peers_venv() -> bool:
    return pathlib.Path(sys.prefix).resolve() == PEERS_VENV.resolve()


def bootstrap(force_setup: bool, use_current: bool) -> None:
    """Makes sure the calling benchmark runs in the peers venv: sets it up, then re-executes there.

    With `use_current` the current interpreter is used as it is (peers it lacks are reported
    as not available).
    """
    if use_current:
        return
    if in_peers_venv() and not force_setup:
        setup_peers_venv()  # a no-op unless requirements-peers.txt changed
        return
    setup_peers_venv(force=force_setup)
    argv = [a for a in sys.argv[1:] if a != "--setup"]
    python = str(PEERS_VENV / "bin" / "python")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(python, [python, str(pathlib.Path(sys.argv[0]).resolve()), *argv])


def missing_module(module: str, requirement_prefix: str) -> str | None:
    """None when `module` imports here; otherwise why not (pip's error if the install failed)."""
    import importlib.util

    if importlib.util.find_spec(module) is not None:
        return None
    for req, state in install_status().items():
        if req.startswith(requirement_prefix) and state != "ok":
            return state
    return f"module {module!r} is not installed in {sys.prefix}"


def ours_unavailable() -> str | None:
    """None when this interpreter imports a built `event_engine` whose engine takes `bus=`."""
    import importlib.util

    if importlib.util.find_spec("event_engine") is None:
        return f"event_engine is not importable from {sys.prefix} (run `bash scripts/setup.sh`)"
    # In a child process: the harness itself never imports the engine.
    probe = "import inspect, event_engine; print('bus' in inspect.signature(event_engine.EventEngine).parameters)"
    r = subprocess.run([sys.executable, "-c", probe], check=False, capture_output=True, text=True)
    if r.returncode != 0:
        lines = r.stderr.strip().splitlines()
        return f"import event_engine failed: {lines[-1] if lines else r.returncode}"
    if r.stdout.strip() == "False":
        return "the built event_engine has no bus mode (EventEngine takes no bus=); rebuild with scripts/setup.sh"
    return None


# --------------------------------------------------------------------------- shared memory


def unique_name(workload: str) -> str:
    """A bus (or service) name no other run uses: workload, pid, random suffix."""
    return f"bench-{workload}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def bus_file(name: str) -> pathlib.Path:
    return SHM_DIR / f"event_engine.{name}"


@contextlib.contextmanager
def bus(workload: str) -> Iterator[str]:
    """A fresh bus name; its file in /dev/shm is removed on the way out, even on error."""
    name = unique_name(workload)
    try:
        yield name
    finally:
        with contextlib.suppress(FileNotFoundError):
            bus_file(name).unlink()


@contextlib.contextmanager
def shared_memory(workload: str, size: int) -> Iterator[str]:
    """A fresh `multiprocessing.shared_memory` segment of `size` bytes, by name; unlinked on the
    way out, even on error or Ctrl-C."""
    from multiprocessing import shared_memory as sm

    shm = sm.SharedMemory(name=unique_name(workload), create=True, size=size)
    try:
        yield shm.name
    finally:
        shm.close()
        with contextlib.suppress(FileNotFoundError):
            shm.unlink()


@contextlib.contextmanager
def ipc_dir() -> Iterator[pathlib.Path]:
    """A private directory for zmq ipc:// endpoints, removed on the way out."""
    with tempfile.TemporaryDirectory(prefix="bench-ipc-") as d:
        yield pathlib.Path(d)


@contextlib.contextmanager
def iceoryx2_scope() -> Iterator[tuple[str, str]]:
    """A private iceoryx2 file prefix and root directory for one trial, removed on the way out.

    iceoryx2 keeps a node-management file in /dev/shm after its last node is gone; with a
    prefix of our own, exactly this trial's files are known and removed, and nobody else's
    iceoryx2 files are touched.
    """
    prefix = f"iox2b{os.getpid()}{uuid.uuid4().hex[:6]}_"
    root = tempfile.mkdtemp(prefix="bench-iox-")
    try:
        yield prefix, f"{root}/"
    finally:
        for f in SHM_DIR.glob(f"{prefix}*"):
            with contextlib.suppress(FileNotFoundError):
                f.unlink()
        shutil.rmtree(root, ignore_errors=True)


def iox_node(scope: tuple[str, str]) -> tuple[Any, Any]:
    """The `iceoryx2` module and an IPC node living in `scope` (from `iceoryx2_scope`), errors only logged."""
    import iceoryx2 as iox2

    iox2.set_log_level(iox2.LogLevel.Error)
    config = iox2.config.default()
    config.global_cfg.prefix = iox2.FileName.new(scope[0])
    config.global_cfg.root_path = iox2.Path.new(scope[1])
    return iox2, iox2.NodeBuilder.new().config(config).create(iox2.ServiceType.Ipc)


def shm_entries() -> set[str]:
    try:
        return set(os.listdir(SHM_DIR))
    except OSError:
        return set()


# --------------------------------------------------------------------------- the handler


class Tally:
    """The consumers' handler: counts ticks and the ones that arrive out of order.

    Exactly N messages, each index once and in order, is `count == N`, `inversions == 0` and
    `index_sum == N*(N-1)/2`; a work-sharing worker sees a subsequence, so the sum over the
    workers is what proves each message was handled once.
    """

    __slots__ = ("count", "index_sum", "inversions", "last")

    def __init__(self) -> None:
        self.count = 0
        self.index_sum = 0
        self.inversions = 0
        self.last = -1

    def __call__(self, i: int, price: float, symbol: str, size: int = 0) -> None:
        if i <= self.last:
            self.inversions += 1
        self.last = i
        self.count += 1
        self.index_sum += i

    def result(self) -> dict[str, int]:
        return {"count": self.count, "index_sum": self.index_sum, "inversions": self.inversions}


def expect_exact(n: int, tallies: Sequence[dict], *, shared: bool = False) -> None:
    """Raises unless the consumers' tallies show exactly n messages delivered.

    Fan-out (`shared=False`): each consumer got all n, in order. Work sharing: together they
    got each of the n once.
    """
    want_sum = n * (n - 1) // 2
    if shared:
        count = sum(t["count"] for t in tallies)
        index_sum = sum(t["index_sum"] for t in tallies)
        if count != n or index_sum != want_sum:
            per = ", ".join(str(t["count"]) for t in tallies)
            raise AssertionError(
                f"workers handled {count} messages ({per}) of {n}, index sum {index_sum} != {want_sum}"
            )
        return
    for k, t in enumerate(tallies):
        if t["count"] != n or t["index_sum"] != want_sum or t["inversions"]:
            raise AssertionError(
                f"consumer {k} handled {t['count']} of {n} messages"
                f" (index sum {t['index_sum']} vs {want_sum}, {t['inversions']} out of order)"
            )


# --------------------------------------------------------------------------- processes


class Control:
    """A role's line to the parent: say it is ready, wait for the start, report, wait for the end."""

    def __init__(self, conn: Any, go: Any, finish: Any) -> None:
        self._conn = conn
        self._go = go
        self._finish = finish

    def ready(self, info: dict | None = None) -> None:
        self._conn.send(("ready", info or {}))

    def wait_go(self, timeout: float = 600.0) -> None:
        if not self._go.wait(timeout):
            raise TimeoutError("the start signal never came")

    def report(self, result: dict) -> None:
        result = dict(result)
        result["peak_rss_mb"] = peak_rss_mb()
        self._conn.send(("result", result))

    def wait_finish(self, timeout: float = 600.0) -> None:
        """Returns once every role has reported: a producer stays attached until then."""
        if not self._finish.wait(timeout):
            raise TimeoutError("the end signal never came")

    @property
    def finish_event(self) -> Any:
        return self._finish


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def now_ns() -> int:
    """CLOCK_MONOTONIC: one clock for every process of the machine, so times compare across them."""
    return time.perf_counter_ns()


def _role_main(target: Callable[..., Any], args: tuple, conn: Any, go: Any, finish: Any) -> None:
    ctl = Control(conn, go, finish)
    error = None
    try:
        extra = target(ctl, *args)
    except Exception:  # noqa: BLE001 - any failure of a role goes to the parent as its report
        error = traceback.format_exc()
    # Outside the handler the traceback and the target's frames are gone, so the objects
    # they held (sockets, iceoryx2 nodes) are released before the process ends.
    if error is None:
        conn.send(("exit", extra or {}))
        conn.close()
        return
    conn.send(("error", error))
    conn.close()
    sys.exit(1)


@dataclasses.dataclass
class Role:
    """One process of a trial: `target(ctl, *args)` at module level of the benchmark script."""

    name: str
    target: Callable[..., Any]
    args: tuple = ()


class TrialError(RuntimeError):
    pass


def _receive(conn: Any, proc: Any, deadline: float, want: str) -> Any:
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TrialError(f"{proc.name}: timed out waiting for {want}")
        if conn.poll(min(left, 0.5)):
            try:
                kind, payload = conn.recv()
            except EOFError:
                raise TrialError(f"{proc.name}: exited (code {proc.exitcode}) before {want}") from None
            if kind == "error":
                raise TrialError(f"{proc.name} failed:\n{payload}")
            if kind != want:
                raise TrialError(f"{proc.name}: sent {kind!r} while {want!r} was expected")
            return payload
        if not proc.is_alive() and not conn.poll():
            raise TrialError(f"{proc.name}: exited (code {proc.exitcode}) before {want}")


def _receive_all(procs: Sequence[tuple[Role, Any, Any]], deadline: float, want: str) -> dict[str, Any]:
    """``want`` from every role, in whatever order they send it: a role that fails ends the trial
    at once, while the others may still be waiting for what it would have sent."""
    out: dict[str, Any] = {}
    while len(out) < len(procs):
        left = deadline - time.monotonic()
        if left <= 0:
            late = ", ".join(role.name for role, _, _ in procs if role.name not in out)
            raise TrialError(f"{late}: timed out waiting for {want}")
        pending = [conn for role, _, conn in procs if role.name not in out]
        mp_connection.wait(pending, timeout=min(left, 0.5))
        for role, proc, conn in procs:
            if role.name not in out and (conn.poll() or not proc.is_alive()):
                out[role.name] = _receive(conn, proc, deadline, want)
    return out


def run_trial(roles: Sequence[Role], timeout: float) -> dict[str, dict]:
    """Runs one trial; returns role name -> its result (with `ready` info and `exit` data merged).

    Roles start in the order given, each once the one before it is ready. Then all are
    released together (`ctl.wait_go`), each reports once, and only then may they end
    (`ctl.wait_finish`). Every process is reaped before this returns or raises.
    """
    go, finish = CTX.Event(), CTX.Event()
    procs: list[tuple[Role, Any, Any]] = []
    deadline = time.monotonic() + timeout
    try:
        ready: dict[str, dict] = {}
        for role in roles:
            parent_end, child_end = CTX.Pipe(duplex=False)
            proc = CTX.Process(target=_role_main, args=(role.target, role.args, child_end, go, finish), name=role.name)
            proc.start()
            child_end.close()
            procs.append((role, proc, parent_end))
            ready[role.name] = _receive(parent_end, proc, deadline, "ready")
        go.set()
        results = _receive_all(procs, deadline, "result")
        finish.set()
        for role, proc, conn in procs:
            results[role.name].update(_receive(conn, proc, deadline, "exit"))
            results[role.name]["ready"] = ready[role.name]
            proc.join(max(0.1, deadline - time.monotonic()))
            if proc.exitcode != 0:
                raise TrialError(f"{role.name}: exit code {proc.exitcode}")
        return results
    finally:
        finish.set()
        for _, proc, conn in procs:
            if proc.is_alive():
                proc.kill()
            proc.join()
            conn.close()


# --------------------------------------------------------------------------- message loops


def dispatch_until_end(recv: Callable[[], Any], routes: dict[str, Callable[..., Any]], loads: Any = None) -> None:
    """Hands each ``(topic, args, kwargs)`` message to ``routes[topic]`` until the end marker (None).

    `recv` returns one message (with `loads`, the bytes `loads` turns into one). The topic is
    looked up for every message, which stands for a router's dispatch.
    """
    if loads is None:
        while (m := recv()) is not None:
            topic, args, kwargs = m
            routes[topic](*args, **kwargs)
    else:
        while (m := loads(recv())) is not None:
            topic, args, kwargs = m
            routes[topic](*args, **kwargs)


@contextlib.contextmanager
def timed_burst(ctl: Control) -> Iterator[None]:
    """A producer's part of a trial around its sending loop, which is the body of the `with`.

    Before the body: ready, then wait for the start. After it: report `t_start` (taken just
    before the body) and `t_sent` (just after), then wait for the end. A body that raises
    reports nothing: the error is the role's report.
    """
    ctl.ready()
    ctl.wait_go()
    t0 = now_ns()
    yield
    ctl.report({"t_start": t0, "t_sent": now_ns()})
    ctl.wait_finish()


@contextlib.contextmanager
def zmq_socket(kind: str, endpoint: str, *, bind: bool, options: dict[str, int] | None = None) -> Iterator[Any]:
    """A pyzmq socket of type `kind` ("PUSH", "PULL", "XPUB", "SUB") in its own context.

    `options` (name -> value) are set before it binds or connects to `endpoint`. On the way out
    the socket is closed without lingering and the context terminated, even on error.
    """
    import zmq

    zctx = zmq.Context()
    sock = zctx.socket(getattr(zmq, kind))
    try:
        for name, value in (options or {}).items():
            sock.setsockopt(getattr(zmq, name), value)
        if bind:
            sock.bind(endpoint)
        else:
            sock.connect(endpoint)
        yield sock
    finally:
        sock.close(linger=0)
        zctx.term()


# --------------------------------------------------------------------------- runs and tables


@dataclasses.dataclass
class Peer:
    """One contender of a workload: how to build a trial, or why it cannot run here."""

    key: str
    label: str
    build: Callable[[], contextlib.AbstractContextManager[list[Role]]] | None
    measure: Callable[[dict[str, dict]], dict[str, float]] | None = None
    unavailable: str | None = None


@dataclasses.dataclass
class Outcome:
    peer: Peer
    runs: list[dict[str, float]] = dataclasses.field(default_factory=list)
    failure: str | None = None


def run_all(peers: Sequence[Peer], runs: int, timeout: float, quiet: bool = False) -> list[Outcome]:
    """`runs` trials of each peer, interleaved so that machine noise hits every peer alike.

    A peer whose trial fails is marked failed with the reason and not run again.
    """
    outcomes = [Outcome(p, failure=p.unavailable) for p in peers]
    for run in range(runs):
        for out in outcomes:
            if out.failure:
                continue
            assert out.peer.build is not None and out.peer.measure is not None
            try:
                with out.peer.build() as roles:
                    figures = out.peer.measure(run_trial(roles, timeout))
            except (TrialError, AssertionError, OSError) as e:
                lines = str(e).strip().splitlines() or [type(e).__name__]
                short = lines[0] if len(lines) == 1 else f"{lines[0]} {lines[-1]}"
                out.failure = f"run {run + 1}: {short}"
                print(f"run {run + 1}/{runs} {out.peer.key:18s} FAILED: {e}", file=sys.stderr)
                continue
            out.runs.append(figures)
            if not quiet:
                shown = ", ".join(f"{k} {v:,.1f}" for k, v in figures.items() if k in ("msg_per_s", "p50_us", "p99_us"))
                print(f"run {run + 1}/{runs} {out.peer.key:18s} {shown}", file=sys.stderr)
    return outcomes


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


@dataclasses.dataclass
class Column:
    """A column of the table: a figure's median over the runs (and its range if `spread`)."""

    header: str
    key: str
    fmt: str = ",.0f"
    spread: bool = False


def print_table(
    title: str,
    outcomes: Sequence[Outcome],
    columns: Sequence[Column],
    notes: Sequence[str] = (),
    ratio_key: str | None = "msg_per_s",
    ratio_header: str = "ours/peer",
) -> None:
    """The table of a workload: one row per peer, medians over its runs, ours/peer ratios."""
    ours = next((o for o in outcomes if o.peer.key == "ours" and o.runs), None)
    ours_value = median([r[ratio_key] for r in ours.runs]) if ours and ratio_key else None

    def cell(col: Column, out: Outcome) -> str:
        vals = [r[col.key] for r in out.runs if col.key in r]
        if not vals:
            return "-"
        text = format(median(vals), col.fmt)
        if col.spread:
            text += f" ({min(vals):{col.fmt}}..{max(vals):{col.fmt}})"
        return text

    def ratio(out: Outcome) -> str:
        if ours_value is None or not out.runs or ratio_key is None:
            return "-"
        peer_value = median([r[ratio_key] for r in out.runs])
        return f"{ours_value / peer_value:.2f}x"

    # The ratio goes right after the first column, the figure it is computed from.
    headers = [
        "peer",
        *(c.header for c in columns[:1]),
        *([ratio_header] if ratio_key else []),
        *(c.header for c in columns[1:]),
        "runs",
        "what",
    ]
    rows: list[list[str]] = []
    for out in outcomes:
        cells = [cell(c, out) for c in columns]
        rows.append(
            [
                out.peer.key,
                *cells[:1],
                *([ratio(out)] if ratio_key else []),
                *cells[1:],
                str(len(out.runs)),
                out.peer.label,
            ]
        )
    print(f"\n{title}\n")
    print("\n".join(layout(headers, rows, left=(0, len(headers) - 1))))
    for out in outcomes:
        if out.failure:
            print(f"  {out.peer.key}: {'not available' if out.peer.unavailable else 'failed'}: {out.failure}")
    for note in notes:
        print(f"  {note}")


def layout(headers: Sequence[str], rows: Sequence[Sequence[str]], left: Sequence[int] = (0,)) -> list[str]:
    """The lines of a table: header, rule, rows; columns two spaces apart, those in `left`
    left-aligned, the others right-aligned."""

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    head = line(headers)
    return [head, "-" * len(head), *(line(r) for r in rows)]


def machine_note(load_before: tuple[float, float, float]) -> str:
    after = os.getloadavg()
    return (
        f"machine: {os.cpu_count()} CPUs, load average {load_before[0]:.2f} before and {after[0]:.2f} after"
        f" (1 min); Python {sys.version.split()[0]}; figures are for ratios within this run"
    )


def add_common_args(ap: Any, messages: int, runs: int = 5) -> None:
    ap.add_argument("--runs", type=int, default=runs, help=f"trials per peer (default {runs})")
    ap.add_argument("--messages", type=int, default=messages, help=f"messages per trial (default {messages:,})")
    ap.add_argument("--peers", help="comma-separated subset of peers to run (default: all)")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds one trial may take (default 600)")
    ap.add_argument("--json", action="store_true", help="also print every run's figures as JSON")
    ap.add_argument("--setup", action="store_true", help="(re)install the peers into target/bench/peers-venv first")
    ap.add_argument(
        "--current-python",
        action="store_true",
        help="run with this interpreter as it is instead of target/bench/peers-venv",
    )


def parse_args(
    doc: str | None,
    messages: int,
    extra: Callable[[argparse.ArgumentParser], None] | None = None,
    runs: int = 5,
) -> argparse.Namespace:
    """A workload's command line (the common options, then any `extra` ones), parsed; then `bootstrap`.

    On return the process runs in the peers venv (or the current interpreter with --current-python).
    """
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(ap, messages=messages, runs=runs)
    if extra is not None:
        extra(ap)
    args = ap.parse_args()
    bootstrap(args.setup, args.current_python)
    return args


def run_and_report(
    args: argparse.Namespace,
    peers: list[Peer],
    title: str,
    columns: Sequence[Column],
    notes: Sequence[str] = (),
    ratio_key: str | None = "msg_per_s",
    ratio_header: str = "ours/peer",
) -> None:
    """The body of a workload's main(): runs the chosen peers, prints the table, exits 1 if one failed.

    The table's notes are the machine's, then `notes`, then anything the run left in /dev/shm.
    With --json every run's figures follow the table. A peer that is not available is no failure.
    """
    load = os.getloadavg()
    shm_before = shm_entries()
    chosen = select(peers, args.peers)
    outcomes = run_all(chosen, args.runs, args.timeout)
    all_notes = [machine_note(load), *notes]
    if left := check_shm_clean(shm_before):
        all_notes.append(left)
    print_table(title, outcomes, columns, all_notes, ratio_key=ratio_key, ratio_header=ratio_header)
    if args.json:
        dump_json(outcomes)
    if any(o.failure and not o.peer.unavailable for o in outcomes):
        sys.exit(1)


def select(peers: list[Peer], wanted: str | None) -> list[Peer]:
    if not wanted:
        return peers
    keys = [k.strip() for k in wanted.split(",") if k.strip()]
    known = {p.key for p in peers}
    unknown = [k for k in keys if k not in known]
    if unknown:
        raise SystemExit(f"unknown peer(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return [p for p in peers if p.key in keys]


def dump_json(outcomes: Sequence[Outcome]) -> None:
    print(json.dumps({o.peer.key: {"runs": o.runs, "failure": o.failure} for o in outcomes}, indent=2))


def check_shm_clean(before: set[str]) -> str | None:
    """A note naming anything this run left in /dev/shm (nothing, when all went well).

    Only names this process gave out count (its buses, its shared-memory segments and its
    iceoryx2 prefixes): others
    may be benchmarking on the same machine at the same time.
    """
    pid = f"-{os.getpid()}-"
    left = sorted(
        e
        for e in shm_entries() - before
        if e.startswith(f"iox2b{os.getpid()}") or (e.startswith(("event_engine.bench-", "bench-")) and pid in e)
    )
    return f"LEFT IN /dev/shm: {', '.join(left)}" if left else None
