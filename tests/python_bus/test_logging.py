"""What a bus engine logs through the package logger: attach, detach, reaps and redeliveries at
INFO (an operator's record of who came and went and what was recovered), the rest at DEBUG."""

from __future__ import annotations

import logging
import os
import signal
import threading

import pytest
from bus_workers import GUARD, group_member
from conftest import assert_idle
from event_engine import EventEngine, EventEngineEx, Topic


@pytest.fixture
def procs(ctx):
    started = []
    yield started
    for p in started:
        if p.is_alive():
            p.kill()
        p.join(GUARD)


def infos(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "EventEngine.Engine" and r.levelno == logging.INFO]


def test_attach_and_detach_are_logged_at_info_with_bus_group_and_pid(bus, caplog):
    with caplog.at_level(logging.INFO, logger="EventEngine"), EventEngine(bus=bus, group="workers") as engine:
        slots = engine.capacity
    pid = os.getpid()
    assert infos(caplog) == [
        f'attached to bus "{bus}" in group "workers" (pid {pid}, ring of {slots} slots)',
        f'detached from bus "{bus}" (pid {pid})',
    ]
    # close() is idempotent, and so is its record.
    caplog.clear()
    engine = EventEngine(bus=bus)
    with caplog.at_level(logging.INFO, logger="EventEngine"):
        engine.close()
        engine.close()
    assert infos(caplog) == [f'detached from bus "{bus}" (pid {pid})']
    assert_idle(bus)


def test_lifecycle_details_are_logged_at_debug_only(bus, caplog):
    with caplog.at_level(logging.DEBUG, logger="EventEngine"), EventEngineEx(bus=bus) as engine:
        engine.register_handler(Topic("Log.Debug"), print)
        engine.start()
        engine.get_timer(1)
        engine.stop()
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert 'new EventHook for "Log.Debug"' in debug
    assert any("started its dispatch thread" in m for m in debug)
    assert 'timer every 1s started on "EventEngine.Internal.Timer.Second"' in debug
    assert any(m.endswith(" stopped") for m in debug)
    assert len(infos(caplog)) == 2  # attach and detach only


def test_reap_of_a_killed_member_and_its_redelivered_message_are_logged_at_info(bus, ctx, procs, caplog):
    ids, victim_q, ready, leave = ctx.Queue(), ctx.Queue(), ctx.Event(), ctx.Event()
    victim = ctx.Process(target=group_member, args=(bus, "workers", ready, ids, leave), kwargs={"victim": victim_q})
    victim.start()
    procs.append(victim)
    assert ready.wait(GUARD)
    with EventEngine(bus=bus) as pub:
        pub.put(Topic("Jobs.Work"), 7)
        assert victim_q.get(timeout=GUARD) == 7  # the victim holds message 7 in its handler
        os.kill(victim.pid, signal.SIGKILL)
        victim.join(GUARD)

        got = []
        done = threading.Event()

        def handler(i):
            got.append(i)
            done.set()

        with caplog.at_level(logging.INFO, logger="EventEngine"), EventEngine(bus=bus, group="workers") as heir:
            heir.register_handler(Topic("Jobs.Work"), handler)
            heir.start()
            assert done.wait(GUARD), "the killed member's message was not redelivered"
            heir.stop()
    assert got == [7]
    reaps = [m for m in infos(caplog) if m.startswith(f'reaped bus "{bus}"')]
    assert reaps, infos(caplog)
    assert f"1 dead process reclaimed (pid {victim.pid})" in reaps[0]
    assert "1 message handed back to its group for redelivery" in " ".join(reaps)
    assert (
        f'received 1 redelivered message(s) on bus "{bus}": a dead member of group "workers" had '
        "taken them before it could handle them"
    ) in infos(caplog)
    assert_idle(bus)
