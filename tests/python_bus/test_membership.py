"""Membership at the edges with real processes: workers forked after the parent attached (fan-out
and a group, with a reap in mid-stream), and idle engines attached throughout a flood."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import event_engine
import pytest
from bus_workers import GUARD, collector, idle_engine
from conftest import assert_idle
from event_engine import EventEngine, Topic
from test_bus import Procs, wait_ready

WORK = "Work.Item"


def forked_worker(bus, group, n, ready, out, leave):
    """A worker forked from a parent attached to `bus`: its own engine (in `group`, or fan-out)
    reports each id it handles on `out`, a fan-out worker all of them at once after `n`."""
    engine = EventEngine(bus=bus, group=group)
    got = []
    done = threading.Event()

    def handler(i):
        if group is not None:
            out.put(i)
            return
        got.append(i)
        if len(got) == n:
            done.set()

    engine.register_handler(Topic(WORK), handler)
    engine.start()
    ready.set()
    if group is None:
        done.wait(GUARD)
        out.put(got)
    leave.wait(GUARD)
    engine.close()


def doomed_worker(bus, ready):
    """A fan-out worker that wants the work and is killed before it handles any."""
    engine = EventEngine(bus=bus)
    engine.register_handler(Topic(WORK), lambda i: None)
    ready.set()
    threading.Event().wait()


@pytest.fixture
def procs(ctx):
    ps = Procs(ctx)
    try:
        yield ps
    finally:
        ps.finish()


@pytest.fixture
def fork_procs():
    with warnings.catch_warnings():
        # The parent holds a bus engine when it forks; the children never use it.
        warnings.simplefilter("ignore", DeprecationWarning)
        ps = Procs(multiprocessing.get_context("fork"))
        try:
            yield ps
        finally:
            ps.finish()


def reap(bus: str) -> dict:
    cli = Path(sys.executable).parent / "event-engine"
    done = subprocess.run(
        [str(cli), "reap", "--json", bus], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_workers_forked_after_the_parent_attached_get_everything_across_a_reap(bus, fork_procs):
    ctx = fork_procs.ctx
    n = 3000
    with EventEngine(bus=bus) as pub:
        # Forked while the parent is attached: each child attaches its own engine.
        doomed_ready = ctx.Event()
        doomed = fork_procs.run(doomed_worker, bus, doomed_ready)
        fanout_qs = [ctx.Queue() for _ in range(2)]
        ids = ctx.Queue()
        readies = [ctx.Event() for _ in range(4)]
        for q, r in zip(fanout_qs, readies):
            fork_procs.run(forked_worker, bus, None, n, r, q, fork_procs.leave)
        for r in readies[2:]:
            fork_procs.run(forked_worker, bus, "forked", n, r, ids, fork_procs.leave)
        wait_ready(doomed_ready, *readies)
        os.kill(doomed.pid, signal.SIGKILL)
        doomed.join(GUARD)
        for i in range(n):
            if i == n // 2:
                report = reap(bus)
                assert {r["pid"] for r in report["reaped"]} == {doomed.pid}, report
                assert report["redelivered"] == 0, report
            pub.put(Topic(WORK), i, timeout=GUARD)
        for q in fanout_qs:
            assert q.get(timeout=GUARD) == list(range(n))
        handled = sorted(ids.get(timeout=GUARD) for _ in range(n))
        assert handled == list(range(n))
        fork_procs.finish()
        assert ids.empty(), "a group message was handled twice"
        snap = event_engine.inspect_bus(bus)
        assert snap["counters"]["redeliveries"] == 0
        assert {p["pid"] for p in snap["processes"]} == {os.getpid()}
    assert_idle(bus)


def test_idle_processes_attached_throughout_never_hold_a_publisher_back(bus, ctx, procs):
    # One engine without hooks, one with hooks for another topic: both attached, never started.
    readies = [ctx.Event() for _ in range(3)]
    procs.run(idle_engine, bus, [], readies[0], procs.leave)
    procs.run(idle_engine, bus, ["Other.Topic"], readies[1], procs.leave)
    with EventEngine(bus=bus) as pub:
        n = 20 * pub.capacity
        results = ctx.Queue()
        procs.run(collector, bus, ["Flood.Data"], n, readies[2], results, procs.leave)
        wait_ready(*readies)
        for i in range(n):
            # A publisher held back by an idle engine would wait here, after one ring, for ever.
            pub.put(Topic("Flood.Data"), i, timeout=30)
        got = results.get(timeout=GUARD)
        assert [args for _, args, _ in got] == [(i,) for i in range(n)]
        procs.finish()
    assert_idle(bus)
