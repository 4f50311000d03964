"""A bus in a hostile environment, from Python and from the `event-engine` command line: files
planted at bus paths by another user, corruption patched into a live bus's file, a flood of
distinct topics, and arguments that would fail in every receiver. Each problem is a one-line
error at the moment it can be known, never a hang, a traceback in a thread or unbounded memory."""

from __future__ import annotations

import logging
import os
import platform
import re
import signal
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import event_engine
import pytest
from conftest import shm_file
from event_engine import EventEngine, Topic, inspect_bus

NOBODY = 65534
#: Byte offset of the ring-slot offset in the region header (see shm-ring's layout.rs).
SLOTS_OFF_FIELD = 72
#: Ring slots are 192 bytes; the meta word (topic length | codec << 16) is at byte 48.
SLOT_SIZE, META_OFF = 192, 48
HEAD_OFF = 256


def cli() -> str:
    return str(Path(sys.executable).parent / "event-engine")


def run_cli(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run([cli(), *args], check=False, capture_output=True, text=True, timeout=timeout)


def as_nobody(*argv: str) -> None:
    """Runs a command as another user (uid 65534), as someone else on the machine would."""
    subprocess.run(list(argv), check=True, user=NOBODY, group=NOBODY, timeout=20)


@pytest.fixture
def planted() -> Iterator[str]:
    """A bus name whose path the test plants something at; removed afterwards."""
    name = f"pytest-planted-{uuid.uuid4().hex[:12]}"
    try:
        yield name
    finally:
        try:
            os.unlink(shm_file(name))
        except FileNotFoundError:
            pass


def test_a_fifo_planted_by_another_user_hangs_no_tool_and_rm_force_removes_it(planted: str) -> None:
    as_nobody("mkfifo", "-m", "666", shm_file(planted))
    for args in (("ls",), ("ls", "--json"), ("inspect", planted), ("tail", planted, "-n", "1")):
        done = run_cli(*args)
        if args[0] == "ls":
            assert done.returncode == 0, done.stderr
            assert "FIFO" in done.stdout, done.stdout
        else:
            assert done.returncode == 5, (args, done.stderr)
            assert "a FIFO" in done.stderr and done.stderr.count("\n") == 1, done.stderr
    with pytest.raises(ValueError, match="a FIFO"):
        inspect_bus(planted)
    with pytest.raises(ValueError, match="a FIFO"):
        EventEngine(bus=planted)
    done = run_cli("rm", planted)
    assert done.returncode != 0 and "--force" in done.stderr, done.stderr
    done = run_cli("rm", "--force", planted)
    assert done.returncode == 0, done.stderr
    assert not os.path.lexists(shm_file(planted))


def test_a_symlink_planted_by_another_user_is_never_followed(bus: str, planted: str) -> None:
    as_nobody("ln", "-s", shm_file(bus), shm_file(planted))
    with EventEngine(bus=bus):
        before = len(inspect_bus(bus)["processes"])
        with pytest.raises(ValueError, match="symbolic link"):
            EventEngine(bus=planted)
        assert len(inspect_bus(bus)["processes"]) == before
    done = run_cli("inspect", planted)
    assert done.returncode == 5 and "symbolic link" in done.stderr, done.stderr
    # A dangling link: refused at once, no bus made at its target.
    os.unlink(shm_file(planted))
    target = shm_file(f"pytest-target-{uuid.uuid4().hex[:8]}")
    as_nobody("ln", "-s", target, shm_file(planted))
    with pytest.raises(ValueError, match="symbolic link"):
        EventEngine(bus=planted)
    assert not os.path.exists(target)


def test_a_foreign_bus_error_does_not_point_python_users_at_a_rust_option(bus: str) -> None:
    os.chown(shm_file(bus), NOBODY, NOBODY)
    with pytest.raises(ValueError, match=f"uid {NOBODY}") as err:
        EventEngine(bus=bus)
    assert "allow_foreign_owner" not in str(err.value)


class ErrorLog(logging.Handler):
    """Collects error records and signals the first one."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.seen = threading.Event()
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record.getMessage())
        self.seen.set()


def test_an_engine_whose_dispatch_meets_a_corrupt_slot_detaches_and_says_so(bus: str) -> None:
    log = logging.getLogger(f"test-corrupt-{uuid.uuid4().hex[:6]}")
    errors = ErrorLog()
    log.addHandler(errors)
    handled: list[object] = []
    engine = EventEngine(bus=bus, logger=log)
    engine.register_handler(Topic("Market.Data.{symbol}"), lambda *a: handled.append(a))
    before = inspect_bus(bus)
    assert before["ring"]["active_mask"] != 0
    done = run_cli("publish", bus, "Market.Data.AAPL", "[1]")
    assert done.returncode == 0, done.stderr
    # Damage the slot of the message just published: a 600-byte topic length.
    with open(shm_file(bus), "r+b") as f:
        f.seek(SLOTS_OFF_FIELD)
        (slots_off,) = struct.unpack("<Q", f.read(8))
        f.seek(HEAD_OFF)
        (head,) = struct.unpack("<Q", f.read(8))
        pos = head - 1
        f.seek(slots_off + (pos % before["ring"]["capacity"]) * SLOT_SIZE + META_OFF)
        f.write(struct.pack("<Q", 600))
    assert any("topic length" in p for p in inspect_bus(bus)["corruption"])
    done = run_cli("inspect", bus)
    assert done.returncode == 5, done.stderr
    assert "CORRUPT" in done.stdout and "is corrupt" in done.stderr

    engine.start()
    assert errors.seen.wait(10), "the engine did not report the failure"
    assert "detached" in errors.records[0] and "topic length" in errors.records[0], errors.records
    assert not engine.active
    assert engine.closed
    assert handled == []
    engine.stop()  # joins the dispatch thread, which has ended
    # Its rows and its consumer bit are gone, so it holds no publisher back.
    after = inspect_bus(bus)
    assert after["processes"] == [] and after["ring"]["active_mask"] == 0, after


def test_publish_refuses_keyword_names_that_are_not_strings(bus: str) -> None:
    for engine in (EventEngine(), EventEngine(bus=bus)):
        with engine:
            with pytest.raises(TypeError, match="kwargs keys must be strings"):
                engine.publish(Topic("a.b"), (1,), {1: 2})
            assert engine.occupied == 0


def test_the_payload_limit_says_what_it_counts(bus: str) -> None:
    with EventEngine(bus=bus) as engine, pytest.raises(ValueError, match="encoded arguments"):
        engine.put(Topic("a.b"), b"x" * (1 << 20))


def test_a_tiny_publish_rate_is_a_usage_error_not_a_panic(bus: str) -> None:
    done = run_cli("publish", bus, "a.b", "[1]", "--count", "2", "--rate", "1e-300")
    assert done.returncode == 2, done.stderr
    assert "--rate" in done.stderr and "panicked" not in done.stderr, done.stderr


FLOOD_PUBLISHER = """
import sys
from event_engine import EventEngine, Topic
with EventEngine(bus=sys.argv[1]) as engine:
    engine.start()  # its own subscriber must drain the ring too (no hook: skipped unread)
    for i in range(int(sys.argv[2])):
        engine.put(Topic(f"Order.Fill.{i}"), i)
"""


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_memory_stays_bounded_under_a_flood_of_distinct_topics(bus: str) -> None:
    total, checkpoint = 300_000, 100_000
    seen = 0
    at_checkpoint = threading.Event()
    finished = threading.Event()
    rss: dict[str, int] = {}

    def on_fill(i: int) -> None:
        nonlocal seen
        seen += 1
        if seen == checkpoint:
            rss["checkpoint"] = rss_bytes()
            at_checkpoint.set()
        if seen == total:
            finished.set()

    with EventEngine(bus=bus) as engine:
        engine.register_handler(Topic("Order.Fill.{id}"), on_fill)
        engine.start()
        publisher = subprocess.Popen([sys.executable, "-c", FLOOD_PUBLISHER, bus, str(total)])
        try:
            assert finished.wait(300), f"{seen} of {total} messages handled"
        finally:
            publisher.wait(60)
        assert publisher.returncode == 0
        grown = rss_bytes() - rss["checkpoint"]
        engine.stop()
    # Unbounded, 200,000 more topics cost over 100 MiB; bounded, the caches are full already.
    # PyPy's garbage collector and JIT grow its heap in larger steps than CPython's.
    limit = (48 if platform.python_implementation() == "PyPy" else 24) << 20
    assert grown < limit, f"RSS grew by {grown / 2**20:.1f} MiB over 200,000 new topics"
    assert len(event_engine.get_internal_map()) < 1000


#: Byte offset of the table-lock word in the region header.
LOCK_OFF = 128


#: A process holding the table lock as one stopped mid-join holds it: an open-file-description
#: lock on the lock word's bytes (docs/region-layout.md), and the word naming it.
LOCK_HOLDER = """
import fcntl, os, struct, sys, time
path, off = sys.argv[1], int(sys.argv[2])
fd = os.open(path, os.O_RDWR)
F_OFD_SETLK = getattr(fcntl, "F_OFD_SETLK", 37)
fcntl.fcntl(fd, F_OFD_SETLK, struct.pack("hhxxxxqqixxxx", fcntl.F_WRLCK, os.SEEK_SET, off, 8, 0))
os.pwrite(fd, struct.pack("<Q", os.getpid() << 32), off)
print("holding", flush=True)
time.sleep(120)
"""


def test_a_stopped_process_holding_the_table_lock_is_named_not_waited_for(bus: str) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, shm_file(bus), str(LOCK_OFF)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "holding\n"
        os.kill(holder.pid, signal.SIGSTOP)
        os.waitpid(holder.pid, os.WUNTRACED)
        started = time.monotonic()
        with pytest.raises(TimeoutError, match=f"pid {holder.pid}.*stopped.*kill -CONT"):
            EventEngine(bus=bus)
        assert time.monotonic() - started < 2
        done = run_cli("reap", bus)
        assert done.returncode != 0 and f"pid {holder.pid}" in done.stderr, done.stderr
    finally:
        holder.kill()
        holder.wait()
    # The holder is dead: the next attach takes the lock over.
    with EventEngine(bus=bus) as engine:
        assert not engine.closed


SMALL_SHM_CHILD = """
import os, sys
from event_engine import EventEngine, Topic
# Someone else's files leave 8 MiB of the 64 MiB free.
with open("/dev/shm/filler", "wb") as f:
    f.write(b"x" * (56 << 20))
try:
    EventEngine(bus="small")
except OSError as e:
    print(e)
    assert not os.path.exists("/dev/shm/event_engine.small")
else:
    sys.exit("a bus larger than the free space was created")
"""


def in_a_64_mib_dev_shm(child: str) -> subprocess.CompletedProcess[str]:
    """Runs the Python source `child` in a private mount namespace whose /dev/shm is a 64 MiB
    tmpfs. Inside a chroot (the PyPy root) "/" is no mount point and unshare cannot make it
    private: there /dev/shm alone is made private in the new namespace before the tmpfs goes
    over it."""
    script = 'mount --make-rprivate /dev/shm 2>/dev/null; mount -t tmpfs -o size=64m tmpfs /dev/shm && exec "$0" -c "$1"'
    for propagation in ("private", "unchanged"):
        done = subprocess.run(
            ["unshare", "-m", "--propagation", propagation, "sh", "-c", script, sys.executable, child],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if "cannot change root filesystem propagation" not in done.stderr:
            break
    return done


def test_a_small_dev_shm_is_an_os_error_at_attach_not_a_sigbus_later() -> None:
    done = in_a_64_mib_dev_shm(SMALL_SHM_CHILD)
    assert done.returncode == 0, done.stderr
    line = done.stdout.strip()
    assert "needs" in line and "free" in line and "--shm-size" in line, line


BIG_BUS_CHILD = """
import os, sys
import event_engine
try:
    event_engine.create_bus("big", max_message=64 << 20, memory=1 << 30)
except ValueError as e:
    print(e)
    assert not os.path.exists("/dev/shm/event_engine.big")
else:
    sys.exit("a bus larger than /dev/shm was created")
"""


def test_create_bus_on_a_dev_shm_without_room_is_a_value_error_with_both_sizes() -> None:
    done = in_a_64_mib_dev_shm(BIG_BUS_CHILD)
    assert done.returncode == 0, done.stderr
    line = done.stdout.strip()
    assert re.search(r"needs \d+ bytes \(10\d\d\.\d MiB\) .* only \d+ bytes \(6\d\.\d MiB\) are free", line), line
    assert "less slab memory" in line, line
