"""Children made by ``fork`` that publish through an engine their parent attached are processes
of their own on the bus: killed with SIGKILL, what they held (rows, blocks, sleeper counts) is
reaped while the parent lives, and nothing of the parent's is taken or released."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from conftest import assert_idle

KILLS = 40

SCRIPT = """
import json, os, signal, subprocess, sys, time, warnings
from event_engine import Empty, EventEngine, Topic, inspect_bus
warnings.simplefilter("ignore", DeprecationWarning)  # fork() with threads running
bus, kills = sys.argv[1], int(sys.argv[2])
sink = EventEngine(bus=bus)  # wants the topic; read only here, so the bus fills up
sink.register_handler(Topic("Fork.X"), lambda *a: None)
pub = EventEngine(bus=bus)
pub.put(Topic("Fork.X"), b"from the parent")  # the parent publishes before it forks

def drain():
    n = 0
    while True:
        try:
            sink.get(block=False)
        except Empty:
            return n
        n += 1

for i in range(kills):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.write(w, b"x")
        while True:
            pub.put(Topic("Fork.X"), b"y" * 300)  # blocks once the bus is full
    os.close(w)
    os.read(r, 1)
    os.close(r)
    # Let it fill the bus and block (or not), at varied points.
    deadline = time.monotonic() + 0.002 * (1 + i % 7)
    while time.monotonic() < deadline:
        if i % 2:
            drain()
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
drain()
# The operator's reap: every killed child's rows go now, the parent's stay.
cli = os.path.join(os.path.dirname(sys.executable), "event-engine")
reap = subprocess.run([cli, "reap", bus], capture_output=True, text=True, timeout=60)
assert reap.returncode == 0, reap.stderr
drain()
snap = inspect_bus(bus)
pids = sorted({p["pid"] for p in snap["processes"]})
used = sum(c["used"] for c in snap["slab"])
pub.put(Topic("Fork.X"), b"still works", timeout=5)
print(json.dumps({"pids": pids, "me": os.getpid(), "used": used, "reap": reap.stdout,
                  "pub_sleepers": snap["counters"]["pub_sleepers"],
                  "last": sink.get(timeout=5).args[0].decode()}), flush=True)
pub.close()
sink.close()
"""


def test_forked_children_killed_while_publishing_are_reaped_without_their_parent(bus):
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SCRIPT), bus, str(KILLS)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    # Only the parent is left, with nothing charged to it by its dead children.
    assert got["pids"] == [got["me"]], got
    assert got["pub_sleepers"] == 0, got
    # Nothing is in the ring: a block in use is one a child took and nobody gave back (only a
    # child killed between taking a block and naming it in its row, one instruction, can).
    assert got["used"] <= 1, got
    assert got["last"] == "still works", got
    assert "nothing to reap" not in got["reap"], got
    assert_idle(bus)
