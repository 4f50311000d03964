"""Multi-process scenarios on one shared-memory bus: fan-out, groups, a killed group member, a
Rust producer, per-process hook tables, timers, stop/start/re-attach and bad input. Every
scenario ends by checking that the bus is idle again once every engine has detached."""

from __future__ import annotations

import os
import pickle
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import event_engine
import pytest
from bus_workers import (
    END,
    GUARD,
    collector,
    group_member,
    lossy_monitor,
    timer_owner,
    two_engines,
)
from conftest import SLAB_MEMORY, assert_idle, shm_file
from event_engine import Empty, EventEngine, EventEngineEx, Full, Topic

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TICK_PRODUCER = os.path.join(ROOT, "target", "release", "tick-producer")


class Procs:
    """Started workers, each with its ready event; joined (or killed) at the end."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.leave = ctx.Event()
        self.procs = []

    def run(self, target, *args, **kwargs):
        """Starts `target(*args, ready, ..., leave)` style workers: `args` must hold a `ready`."""
        p = self.ctx.Process(target=target, args=args, kwargs=kwargs)
        p.start()
        self.procs.append(p)
        return p

    def finish(self):
        self.leave.set()
        for p in self.procs:
            p.join(GUARD)
            if p.is_alive():
                p.kill()
                p.join()


@pytest.fixture
def procs(ctx):
    ps = Procs(ctx)
    try:
        yield ps
    finally:
        ps.finish()


def wait_ready(*events):
    for e in events:
        assert e.wait(GUARD), "a worker did not get ready"


def test_fan_out_to_three_processes_each_in_order(bus, ctx, procs):
    n = 2000
    results = ctx.Queue()
    readies = [ctx.Event() for _ in range(3)]
    for r in readies:
        procs.run(collector, bus, ["Fan.{kind}"], None, r, results, procs.leave)
    wait_ready(*readies)
    with EventEngine(bus=bus) as pub:
        for i in range(n):
            if i % 100 == 7:
                # Not compact (a dict): travels pickled, in the same order.
                pub.put(Topic("Fan.Pickled"), {"i": i}, i=i)
            else:
                pub.put(
                    Topic("Fan.Compact"), i, i * 0.5, str(i), b"x", None, True, size=i
                )
        pub.put(Topic(END))
        got = [results.get(timeout=GUARD) for _ in range(3)]
    for messages in got:
        assert len(messages) == n
        for i, (topic, args, kwargs) in enumerate(messages):
            if i % 100 == 7:
                assert (topic, args, kwargs) == ("Fan.Pickled", ({"i": i},), {"i": i})
            else:
                assert (topic, args, kwargs) == (
                    "Fan.Compact",
                    (i, i * 0.5, str(i), b"x", None, True),
                    {"size": i},
                )
    procs.finish()
    assert_idle(bus)


def test_group_of_three_handles_each_message_exactly_once(bus, ctx, procs):
    n = 3000
    ids = ctx.Queue()
    readies = [ctx.Event() for _ in range(3)]
    for r in readies:
        procs.run(group_member, bus, "workers", r, ids, procs.leave)
    wait_ready(*readies)
    with EventEngine(bus=bus) as pub:
        for i in range(n):
            pub.put(Topic("Jobs.Work"), i)
        handled = sorted(ids.get(timeout=GUARD) for _ in range(n))
    assert handled == list(range(n))
    procs.finish()
    assert ids.empty()
    # The group outlives its members for the retention, with nothing left to handle.
    snap_groups = event_engine.inspect_bus(bus)["groups"]
    assert [(g["name"], g["members"]) for g in snap_groups] == [("workers", 0)]
    assert snap_groups[0]["kept_for_ms"] is not None
    assert_idle(bus)


def test_killed_group_member_loses_nothing_and_its_message_is_redelivered(
    bus, ctx, procs
):
    n = 2000
    ids, victim_q = ctx.Queue(), ctx.Queue()
    victim_ready = ctx.Event()
    # The victim waits on an event of its own: a process killed while waiting on a shared
    # multiprocessing.Event would leave that event unusable for everyone else.
    victim_leave = ctx.Event()
    victim = procs.run(
        group_member, bus, "workers", victim_ready, ids, victim_leave, victim=victim_q
    )
    wait_ready(victim_ready)
    with EventEngine(bus=bus) as pub:
        # The victim is the only member: message 0 is its, and its handler never returns.
        pub.put(Topic("Jobs.Work"), 0)
        assert victim_q.get(timeout=GUARD) == 0
        readies = [ctx.Event() for _ in range(2)]
        for r in readies:
            procs.run(group_member, bus, "workers", r, ids, procs.leave)
        wait_ready(*readies)
        for i in range(1, n):
            if i == n // 2:
                os.kill(victim.pid, signal.SIGKILL)
                victim.join(GUARD)
            pub.put(Topic("Jobs.Work"), i)
        handled = sorted(ids.get(timeout=GUARD) for _ in range(n))
        assert handled == list(range(n))
        snap = event_engine.inspect_bus(bus)
        assert snap["counters"]["redeliveries"] >= 1
        assert [g["redelivered"] for g in snap["groups"]] == [1]
        assert victim.exitcode == -signal.SIGKILL
    procs.finish()
    assert_idle(bus)


def test_a_group_whose_only_worker_dies_keeps_its_backlog_for_the_next_worker(bus, ctx, procs):
    n = 200
    ids, victim_q = ctx.Queue(), ctx.Queue()
    victim_ready, victim_leave = ctx.Event(), ctx.Event()
    victim = procs.run(
        group_member, bus, "workers", victim_ready, ids, victim_leave, victim=victim_q
    )
    wait_ready(victim_ready)
    with EventEngine(bus=bus) as pub:
        for i in range(n):
            pub.put(Topic("Jobs.Work"), i)
        # The worker takes message 0 and never finishes it; 199 wait behind it.
        assert victim_q.get(timeout=GUARD) == 0
        os.kill(victim.pid, signal.SIGKILL)
        victim.join(GUARD)
        # Someone reaps before any worker is back (an idle process, the operator).
        done = subprocess.run(
            [str(Path(sys.executable).parent / "event-engine"), "reap", bus],
            capture_output=True, text=True, timeout=GUARD, check=False,
        )
        assert done.returncode == 0, done.stderr
        snap = event_engine.inspect_bus(bus)
        assert [(g["name"], g["members"]) for g in snap["groups"]] == [("workers", 0)]
        ready = ctx.Event()
        procs.run(group_member, bus, "workers", ready, ids, procs.leave)
        wait_ready(ready)
        handled = sorted(ids.get(timeout=GUARD) for _ in range(n))
        assert handled == list(range(n))
    procs.finish()


def test_per_process_hook_tables_differ_with_generic_topics(bus, ctx, procs):
    results = [ctx.Queue(), ctx.Queue(), ctx.Queue()]
    tables = [
        ["Orders.{venue}.Fill"],
        ["Orders.(NYSE|LSE).{kind}"],
        ["Orders./^N.*$/.Cancel", "Quotes.{symbol}"],
    ]
    readies = [ctx.Event() for _ in tables]
    for table, ready, q in zip(tables, readies, results):
        procs.run(collector, bus, table, None, ready, q, procs.leave)
    wait_ready(*readies)
    topics = [
        "Orders.NYSE.Fill",
        "Orders.LSE.Cancel",
        "Orders.NASDAQ.Cancel",
        "Orders.TSE.Fill",
        "Quotes.AAPL",
        "Other.X",
    ]
    with EventEngine(bus=bus) as pub:
        for k in range(3):
            for t in topics:
                pub.put(Topic(t), k)
        pub.put(Topic(END))
        got = [[(t, a) for t, a, _ in q.get(timeout=GUARD)] for q in results]
    expect = [
        ["Orders.NYSE.Fill", "Orders.TSE.Fill"],
        ["Orders.NYSE.Fill", "Orders.LSE.Cancel"],
        ["Orders.NASDAQ.Cancel", "Quotes.AAPL"],
    ]
    for seen, wanted in zip(got, expect):
        assert seen == [(t, (k,)) for k in range(3) for t in topics if t in wanted]
    procs.finish()
    assert_idle(bus)


@pytest.fixture(scope="session")
def tick_producer() -> str:
    # Built every session where cargo is at hand (a no-op when up to date): a binary left from an
    # older checkout may speak an older bus layout. Without cargo (the PyPy root) the one the
    # test command built for this checkout is used.
    if shutil.which("cargo") is None:
        assert os.access(TICK_PRODUCER, os.X_OK), f"{TICK_PRODUCER} is missing: build it first"
        return TICK_PRODUCER
    subprocess.run(
        [
            "cargo",
            "build",
            "--release",
            "-q",
            "-p",
            "event-engine-bench",
            "--bin",
            "tick-producer",
        ],
        cwd=ROOT,
        check=True,
    )
    return TICK_PRODUCER


@pytest.mark.parametrize("pickled", [False, True], ids=["raw", "pickled"])
def test_rust_producer_feeds_python_consumers(bus, ctx, procs, tick_producer, pickled):
    n = 3000
    results = [ctx.Queue(), ctx.Queue()]
    readies = [ctx.Event() for _ in results]
    for ready, q in zip(readies, results):
        procs.run(collector, bus, ["Market.Data.{symbol}"], n, ready, q, procs.leave)
    wait_ready(*readies)
    cmd = [
        tick_producer,
        "--bus",
        bus,
        "--symbols",
        "AAPL,MSFT",
        "--count",
        str(n),
        "--wait-subscribers",
        "2",
    ]
    if pickled:
        cmd.append("--pickled")
    subprocess.run(cmd, check=True, capture_output=True, timeout=GUARD)
    for q in results:
        got = q.get(timeout=GUARD)
        assert len(got) == n
        per_symbol = {"AAPL": 0, "MSFT": 0}
        for topic, args, kwargs in got:
            symbol = topic.rsplit(".", 1)[1]
            seq = per_symbol[symbol]
            per_symbol[symbol] += 1
            if pickled:
                assert (
                    args[0] == seq
                    and args[2] == symbol
                    and kwargs == {"size": (seq % 10 + 1) * 100}
                )
            else:
                (raw,) = args
                assert isinstance(raw, bytes) and len(raw) == 64
                assert int.from_bytes(raw[:8], "little") == seq
                assert raw[24:32].rstrip(b"\0").decode() == symbol
        assert per_symbol == {"AAPL": n // 2, "MSFT": n // 2}
    procs.finish()
    assert_idle(bus)


def test_timers_on_a_bus_engine_stay_local(bus, ctx, procs):
    ready, results = ctx.Event(), ctx.Queue()
    listener_ready, heard = ctx.Event(), ctx.Queue()
    timer_topic = "EventEngine.Internal.Timer.0.01"
    procs.run(
        collector,
        bus,
        [timer_topic, "EventEngine.Internal.Timer.+"],
        None,
        listener_ready,
        heard,
        procs.leave,
    )
    wait_ready(listener_ready)
    procs.run(timer_owner, bus, 5, ready, results, procs.leave)
    wait_ready(ready)
    assert results.get(timeout=GUARD) == (timer_topic, 5)
    with EventEngine(bus=bus) as pub:
        pub.put(Topic(END))
        # Ticks never went on the bus: the listener saw nothing before the end marker.
        assert heard.get(timeout=GUARD) == []
    assert event_engine.inspect_bus(bus)["counters"]["published"] == 1
    procs.finish()
    assert_idle(bus)


def test_two_engines_in_one_process_on_one_bus(bus, ctx, procs):
    n = 500
    ready, results = ctx.Event(), ctx.Queue()
    procs.run(two_engines, bus, n, ready, results, procs.leave)
    wait_ready(ready)
    seen = results.get(timeout=GUARD)
    for key in ("a", "b"):
        mine = [i for src, i in seen[key] if src == "a"]
        theirs = [i for src, i in seen[key] if src == "b"]
        assert mine == list(range(n)) and theirs == list(range(n))
    procs.finish()
    assert_idle(bus)


def test_stop_start_and_reattach(bus):
    got = []
    cond = threading.Condition()

    def handler(i):
        with cond:
            got.append(i)
            cond.notify_all()

    def wait_for(count):
        with cond:
            assert cond.wait_for(lambda: len(got) >= count, GUARD)

    pub = EventEngine(bus=bus)
    # A hook pub never runs: it wants its own messages, so get() can return them below.
    pub.register_handler(Topic("Re.Attach"), lambda *a, **k: None)
    sub = EventEngine(bus=bus)
    assert (sub.bus, sub.group) == (bus, None)
    assert repr(sub) == f'<EventEngine idle>(capacity=4096, bus="{bus}")'
    sub.register_handler(Topic("Re.Attach"), handler)
    pub.put(Topic("Re.Attach"), 0)  # before start: delivered once the loop runs
    sub.start()
    wait_for(1)
    sub.stop()
    for i in (1, 2):
        pub.put(Topic("Re.Attach"), i)  # queued on the bus for the stopped engine
    assert sub.occupied == 2
    sub.start()
    wait_for(3)
    sub.close()
    assert sub.closed
    assert "closed" in repr(sub)
    with pytest.raises(RuntimeError, match="closed"):
        sub.start()
    # Every call that needs the bus says so, and what to do instead.
    for call in (
        lambda: sub.put(Topic("Re.Attach"), 9),
        lambda: sub.publish(Topic("Re.Attach"), (9,)),
        lambda: sub.get(block=False),
        lambda: (sub.activate(), sub.run()),
    ):
        with pytest.raises(RuntimeError, match="closed .*create a new engine"):
            call()
    sub.deactivate()
    pub.put(Topic("Re.Attach"), 3)  # nobody but pub listens to this one
    again = EventEngine(bus=bus)
    again.register_handler(Topic("Re.Attach"), handler)
    again.start()
    pub.put(Topic("Re.Attach"), 4)
    wait_for(4)
    assert got == [0, 1, 2, 4]
    again.close()
    # pub also received its own messages: get() returns them in order, decoded.
    assert [pub.get(block=False).args for _ in range(5)] == [
        (0,),
        (1,),
        (2,),
        (3,),
        (4,),
    ]
    with pytest.raises(Empty):
        pub.get(block=False)
    pub.close()
    assert_idle(bus)


def test_full_ring_raises_full(bus):
    pub = EventEngine(bus=bus)
    # Its own hook, never run: pub wants what it puts, and the ring fills with it.
    pub.register_handler(Topic("Fill.Up"), lambda *a, **k: None)
    capacity = pub.capacity
    for i in range(capacity):
        pub.put(Topic("Fill.Up"), i, block=False)
    with pytest.raises(Full):
        pub.put(Topic("Fill.Up"), -1, block=False)
    with pytest.raises(Full):
        pub.put(Topic("Fill.Up"), -1, timeout=0.01)
    assert pub.occupied == capacity
    assert pub.get().args == (0,)
    pub.put(Topic("Fill.Up"), capacity, block=False)
    pub.close()
    assert_idle(bus)


def test_engines_that_do_not_want_a_topic_never_hold_its_publisher_back(bus):
    pub = EventEngine(bus=bus)  # publishes only: no hooks, never started
    idle = EventEngine(bus=bus)  # wants another topic, never started
    idle.register_handler(Topic("Other.Topic"), lambda *a, **k: None)
    watcher = EventEngine(bus=bus)  # wants it, but only from its hook's registration on
    for i in range(20 * pub.capacity):
        pub.put(Topic("Only.Published"), i, block=False)
    assert idle.occupied == 0
    watcher.register_handler(Topic("Only.{what}"), lambda *a, **k: None)
    pub.put(Topic("Only.Published"), -1, block=False)
    assert watcher.get(block=False).args == (-1,)
    with pytest.raises(Empty):
        watcher.get(block=False)
    # Removing its last hook makes it want nothing again: it holds nobody back.
    watcher.unregister_handler(Topic("Only.{what}"), watcher[Topic("Only.X")][0].handlers[0])
    for i in range(2 * pub.capacity):
        pub.put(Topic("Only.Published"), i, block=False)
    snap = event_engine.inspect_bus(bus)
    assert snap["counters"]["unrouted"] >= 20 * pub.capacity
    for engine in (pub, idle, watcher):
        engine.close()
    assert_idle(bus)


def test_bad_input(bus):
    watcher = EventEngine(bus=bus)
    pub = EventEngine(bus=bus)
    published = event_engine.inspect_bus(bus)["counters"]["published"]
    with pytest.raises((TypeError, pickle.PicklingError)):
        pub.put(Topic("Bad.Input"), lambda: None)
    with pytest.raises((TypeError, pickle.PicklingError)):
        pub.put(Topic("Bad.Input"), 1, lock=threading.Lock())
    assert watcher.occupied == 0
    assert event_engine.inspect_bus(bus)["counters"]["published"] == published
    max_payload = event_engine.inspect_bus(bus)["geometry"]["max_message"]
    # Compact: one list of n bytes (each under the out-of-band threshold), 4 + 1 + 4 bytes of
    # headers, 5 per item (test_buffers.py has the out-of-band case).
    n, k = 18, 60_000
    with pytest.raises(
        ValueError, match=rf"{9 + n * (5 + k)} bytes.*\({max_payload} bytes\)"
    ):
        pub.put(Topic("Bad.Input"), [b"x" * k] * n)
    with pytest.raises(ValueError, match="exact"):
        pub.put(Topic("Bad.{x}"), 1)
    for name in ["", "a/b", "..", "x" * 300, "sp ace"]:
        with pytest.raises(ValueError, match="invalid bus name"):
            EventEngine(bus=name)
        with pytest.raises(ValueError, match="invalid bus name"):
            event_engine.init_allocator(with_shm=True, name=name)
    with pytest.raises(ValueError, match="needs a bus"):
        EventEngine(group="g")
    with pytest.raises(ValueError, match="memory="):
        event_engine.init_allocator(capacity=2048, with_shm=True, name=bus)
    assert watcher.occupied == 0
    watcher.close()
    pub.close()
    assert_idle(bus)


def test_unpicklable_arguments_are_a_type_error_naming_topic_and_bus(bus):
    # CPython's pickle reports a local function with AttributeError; the user sees the
    # documented TypeError. PyPy's raises PicklingError, which is kept (with the same message).
    def local():
        return None

    refused = (TypeError, pickle.PicklingError)
    watcher = EventEngine(bus=bus)
    pub = EventEngine(bus=bus)
    cases = [((local,), {}), ((lambda: None,), {}), ((1,), {"lock": threading.Lock()})]
    for args, kwargs in cases:
        with pytest.raises(refused, match=rf'"Bad.Pickle" over bus "{bus}".*picklable') as info:
            pub.put(Topic("Bad.Pickle"), *args, **kwargs)
        assert isinstance(info.value.__cause__, (TypeError, AttributeError, pickle.PicklingError))
        with pytest.raises(refused, match="picklable"):
            pub.publish(Topic("Bad.Pickle"), args, kwargs)
    with pytest.raises(Empty):
        watcher.get(block=False)
    watcher.close()
    pub.close()
    assert_idle(bus)


def test_a_topic_longer_than_the_bus_allows_is_named_as_the_topic(bus):
    watcher = EventEngine(bus=bus)
    pub = EventEngine(bus=bus)
    topic = Topic("Long." + "x" * 4000)
    # The arguments are tiny: the message must blame the topic, not the payload.
    with pytest.raises(ValueError, match=r'topic "Long\.x+\.\.\." is 4005 bytes, longer than bus') as info:
        pub.put(topic, 1)
    assert "payload" not in str(info.value)
    with pytest.raises(Empty):
        watcher.get(block=False)
    watcher.close()
    pub.close()
    assert_idle(bus)


@pytest.mark.parametrize("capacity", [0, -1])
def test_init_allocator_refuses_a_capacity_below_one(bus_name, capacity):
    with pytest.raises(ValueError, match=rf"capacity must be between 1 and .*got {capacity}"):
        event_engine.init_allocator(capacity=capacity, with_shm=True, name=bus_name)
    assert not os.path.exists(shm_file(bus_name))


@pytest.mark.parametrize("group", ["", "sp ace", "a/b", "g" * 65])
def test_a_bad_group_name_is_refused_before_the_bus_is_touched(bus_name, group):
    with pytest.raises(ValueError, match=r"invalid group name .*: (the name|only)"):
        EventEngine(bus=bus_name, group=group)
    # The check comes before the bus is opened: no bus file was created as a side effect.
    assert not os.path.exists(shm_file(bus_name))


def test_a_bus_of_another_layout_version_is_refused(bus):
    with open(shm_file(bus), "r+b") as f:
        f.seek(8)
        version = int.from_bytes(f.read(4), "little")
        f.seek(8)
        f.write((version + 1).to_bytes(4, "little"))
    with pytest.raises(ValueError, match="version"):
        EventEngine(bus=bus)
    with pytest.raises(ValueError, match=rf'version.*unlink_bus\("{bus}"\)'):
        EventEngineEx(bus=bus)


def test_a_bus_of_another_slab_size_is_refused_with_both_sizes_and_the_ways_out(bus):
    with pytest.raises(ValueError) as info:
        event_engine.init_allocator(memory=4 << 20, with_shm=True, name=bus)
    message = str(info.value)
    assert f"memory={SLAB_MEMORY} (3 MiB) there, memory={4 << 20} (4 MiB) asked for" in message
    assert f"memory={SLAB_MEMORY}, max_processes" in message
    assert f'unlink_bus("{bus}")' in message
    # The same call with the bus's own size attaches.
    event_engine.init_allocator(memory=SLAB_MEMORY, with_shm=True, name=bus)


def test_init_allocator_attaches_the_engines_made_afterwards(bus_name):
    event_engine.init_allocator(memory=2 << 20, with_shm=True, name=bus_name)
    a = EventEngine()
    b = EventEngineEx(group="g")
    assert (a.bus, b.bus, b.group) == (bus_name, bus_name, "g")
    assert event_engine.inspect_bus(bus_name)["geometry"]["slab_memory"] == 2 << 20
    b.register_handler(Topic("Via.Allocator"), lambda *a, **k: None)
    a.put(Topic("Via.Allocator"), 1)
    assert b.get(block=False).args == (1,)
    event_engine.init_allocator(with_shm=False)
    assert EventEngine().bus is None
    a.close()
    b.close()
    assert_idle(bus_name)


def test_a_stopped_engine_detaches_when_garbage_collected(bus):
    import gc

    engine = EventEngineEx(bus=bus)
    engine.start()
    engine.get_timer(0.01)
    engine.stop()
    assert event_engine.inspect_bus(bus)["processes"] != []
    del engine
    gc.collect()
    assert_idle(bus)


def test_get_from_a_handler_of_a_running_bus_engine_is_refused(bus):
    """The running loop receives for the engine: get() from its handler says so instead of
    waiting for itself for ever."""
    outcome = []
    done = threading.Event()

    def handler(i):
        try:
            engine.get(block=False)
        except RuntimeError as e:
            outcome.append(str(e))
        done.set()

    engine = EventEngine(bus=bus)
    engine.register_handler(Topic("Self.Get"), handler)
    engine.start()
    engine.put(Topic("Self.Get"), 1)
    assert done.wait(GUARD)
    engine.stop()
    engine.close()
    assert len(outcome) == 1 and "call stop() first" in outcome[0], outcome
    assert_idle(bus)


def test_the_65th_consumer_is_refused_naming_the_limit_and_groups(bus):
    engines = [EventEngine(bus=bus) for _ in range(64)]
    try:
        with pytest.raises(RuntimeError, match=r"at most 64.*group") as info:
            EventEngine(bus=bus)
        assert "max_subscribers" in str(info.value)
        # Members of a group share one entry: a group still fits once an engine has left.
        engines.pop().close()
        members = [EventEngine(bus=bus, group="workers") for _ in range(3)]
        for m in members:
            m.close()
    finally:
        for e in engines:
            e.close()


def test_a_stopped_lossy_monitor_never_holds_a_publisher_back(bus, ctx, procs):
    results = ctx.Queue()
    ready = ctx.Event()
    monitor = procs.run(lossy_monitor, bus, ready, results, procs.leave)
    wait_ready(ready)
    with EventEngine(bus=bus) as pub:
        capacity = pub.capacity
        n = 20 * capacity
        os.kill(monitor.pid, signal.SIGSTOP)
        try:
            # Twenty rings' worth while the monitor is stopped: never Full, never a wait.
            for i in range(n):
                pub.put(Topic("Ticks.AAPL"), i, block=False)
        finally:
            os.kill(monitor.pid, signal.SIGCONT)
        pub.put(Topic(END))
        got, missed = results.get(timeout=GUARD)
        snap = event_engine.inspect_bus(bus)
    assert missed >= n - capacity
    assert len(got) + missed == n
    assert got == sorted(got) and len(set(got)) == len(got)
    assert got[-1] == n - 1
    row = [p for p in snap["processes"] if p["pid"] == monitor.pid and p["role"] == "subscriber"]
    assert row and row[0]["lossy"] and row[0]["missed"] == missed


def test_lossy_is_for_a_bus_engine_without_a_group(bus):
    with pytest.raises(ValueError, match="group cannot be lossy"):
        EventEngine(bus=bus, group="workers", lossy=True)
    with pytest.raises(ValueError, match="applies to an engine on a bus"):
        EventEngine(lossy=True)
    with EventEngine(bus=bus) as plain:
        assert plain.missed == 0
