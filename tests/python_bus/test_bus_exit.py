"""A script that ends while its bus engine is still handling messages exits cleanly (status 0),
handles every message it took from the bus, and detaches: nothing is lost and nobody waits for
a process that is gone."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from conftest import assert_idle
from event_engine import Empty, EventEngine

RUNS = 3  # the crash happened in three runs out of three

# The reproduction, verbatim.
SCRIPT = """
import sys, time
from event_engine import EventEngine, Topic
sub = EventEngine(bus=sys.argv[1])
sub.register_handler(Topic("Exit.{x}"), lambda *a, **k: time.sleep(0.001))
sub.start()
pub = EventEngine(bus=sys.argv[1])
for i in range(100):
    pub.put(Topic("Exit.X"), i, timeout=5)
time.sleep(0.05)
"""

# The same, as a member of a group, printing each message it handled.
GROUP_MEMBER = """
import sys, time
from event_engine import EventEngine, Topic
sub = EventEngine(bus=sys.argv[1], group="exit")
def handler(i):
    time.sleep(0.001)
    print(i, flush=True)
sub.register_handler(Topic("Exit.{x}"), handler)
sub.start()
pub = EventEngine(bus=sys.argv[1])
for i in range(int(sys.argv[2])):
    pub.put(Topic("Exit.X"), i, timeout=5)
time.sleep(0.05)
"""

# A daemon thread blocked for ever in put() on a full bus when the script ends; detaching the
# idle engine at exit makes room, which releases that put while the interpreter exits.
BLOCKED_PUBLISHER = """
import sys, threading, time
from event_engine import EventEngine, Topic
idle = EventEngine(bus=sys.argv[1])  # attached, never reads: the bus fills up
pub = EventEngine(bus=sys.argv[1])
def flood():
    while True:
        pub.put(Topic("Full.X"), b"x" * 100)
threading.Thread(target=flood, daemon=True).start()
time.sleep(0.2)
print("end of script", flush=True)
"""


def run_child(source: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(source), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_script_ending_while_its_bus_engine_handles_messages_exits_0(bus):
    for _ in range(RUNS):
        done = run_child(SCRIPT, bus)
        assert done.returncode == 0, (done.returncode, done.stderr)
        assert done.stderr == ""
        # Both engines detached on the way out: no row left for another process to reap.
        assert_idle(bus)


def test_every_message_a_member_took_is_handled_and_the_rest_stay_for_its_group(bus):
    n = 200  # within the test bus's slab: the child's own publisher engine never reads
    # A second member of the group, attached first, that does not dispatch: what the child
    # has not taken when its script ends is left on the bus for this one.
    with EventEngine(bus=bus, group="exit") as partner:
        done = run_child(GROUP_MEMBER, bus, str(n))
        assert done.returncode == 0, (done.returncode, done.stderr)
        handled = [int(line) for line in done.stdout.split()]
        rest = []
        while True:
            try:
                rest.append(partner.get(block=False).args[0])
            except Empty:
                break
    # Each message exactly once: none taken and dropped, none handled twice.
    assert sorted(handled + rest) == list(range(n))
    assert handled == sorted(handled)
    assert_idle(bus)


def test_a_thread_blocked_on_a_full_bus_does_not_crash_the_exit(bus):
    for _ in range(RUNS):
        done = run_child(BLOCKED_PUBLISHER, bus)
        assert done.returncode == 0, (done.returncode, done.stderr)
        assert done.stdout == "end of script\n"


def test_a_forked_child_exits_without_detaching_its_parents_bus_engine(bus):
    # Detaching at the child's exit would remove the parent's rows from the bus.
    source = """
        import os, sys, threading, warnings
        from event_engine import EventEngine, Topic
        warnings.simplefilter("ignore", DeprecationWarning)  # fork() with threads running
        e = EventEngine(bus=sys.argv[1])
        got = threading.Event()
        e.register_handler(Topic("A.B"), got.set)
        e.start()
        pid = os.fork()
        if pid == 0:
            sys.exit(0)
        _, status = os.waitpid(pid, 0)
        e.put(Topic("A.B"))
        print(os.waitstatus_to_exitcode(status), got.wait(10), flush=True)
    """
    done = run_child(source, bus)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", "True"]
    assert_idle(bus)
