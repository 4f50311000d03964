"""Buses of the size the user needs: `create_bus`, `init_allocator`'s geometry keywords and
`event-engine create`, their errors, and large messages between processes."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import event_engine
import pytest
from bus_workers import GUARD, digest_receiver
from conftest import assert_idle, shm_file
from event_engine import EventEngine, Topic

MiB = 1 << 20
GiB = 1 << 30


@pytest.fixture
def names() -> Iterator[list[str]]:
    """Bus names a test may create; each is removed afterwards, even when the test fails."""
    made: list[str] = []
    yield made
    event_engine.init_allocator(with_shm=False)
    for name in made:
        try:
            os.unlink(shm_file(name))
        except FileNotFoundError:
            pass


def fresh(names: list[str]) -> str:
    name = f"pytest-geom-{uuid.uuid4().hex[:12]}"
    names.append(name)
    return name


def classes(name: str) -> list[tuple[int, int]]:
    return [(c["block_size"], c["total"]) for c in event_engine.inspect_bus(name)["slab"]]


def test_create_bus_makes_the_geometry_asked_for_and_attaches_to_the_same(names) -> None:
    name = fresh(names)
    event_engine.create_bus(name, slots=256, max_message=4 * MiB, max_processes=32, group_retention=5.0)
    geometry = event_engine.inspect_bus(name)["geometry"]
    assert geometry["ring_capacity"] == 256
    assert geometry["max_message"] == 4 * MiB
    assert geometry["max_processes"] == 32
    assert geometry["group_retention_ms"] == 5000
    # The memory is derived from max_message: four whole messages and many small blocks.
    largest, count = classes(name)[-1]
    assert largest >= 4 * MiB + 512 and count >= 4
    assert classes(name)[0] == (256, 8192)
    assert sum(size * n for size, n in classes(name)) <= geometry["slab_memory"]
    # The same geometry again attaches: no error, nothing changes.
    created = event_engine.inspect_bus(name)["created_ns"]
    event_engine.create_bus(name, slots=256, max_message=4 * MiB, max_processes=32, group_retention=5.0)
    assert event_engine.inspect_bus(name)["created_ns"] == created


def test_memory_sizes_the_slab(names) -> None:
    name = fresh(names)
    event_engine.create_bus(name, slots=64, max_message=MiB, memory=64 * MiB)
    assert event_engine.inspect_bus(name)["geometry"]["slab_memory"] == 64 * MiB
    used = sum(size * n for size, n in classes(name))
    assert 64 * MiB - 256 < used <= 64 * MiB
    assert classes(name)[-1][1] >= 50


def test_another_geometry_is_a_value_error_naming_both_values(names) -> None:
    name = fresh(names)
    event_engine.create_bus(name, slots=256, max_message=2 * MiB, memory=32 * MiB)
    with pytest.raises(ValueError) as info:
        event_engine.create_bus(name, slots=512, max_message=2 * MiB, memory=48 * MiB)
    message = str(info.value)
    assert "slots=256 there, slots=512 asked for" in message
    assert f"memory={32 * MiB} (32 MiB) there, memory={48 * MiB} (48 MiB) asked for" in message
    assert "max_message" not in message.split("; it is never resized")[0]
    assert f'unlink_bus("{name}")' in message
    # The way to use it as it is, as the message spells it, works.
    event_engine.create_bus(name, slots=256, max_message=2 * MiB, memory=32 * MiB, max_processes=256,
                            group_retention=60.0)
    with pytest.raises(ValueError, match=r"group_retention=60\.0 there, group_retention=1\.5 asked for"):
        event_engine.create_bus(name, slots=256, max_message=2 * MiB, memory=32 * MiB, group_retention=1.5)
    assert event_engine.inspect_bus(name)["geometry"]["ring_capacity"] == 256


@pytest.mark.parametrize(
    ("keywords", "expected"),
    [
        ({"slots": 1000}, r"slots must be a power of two from 2 to 16777216, got 1000"),
        ({"slots": 0}, r"slots must be a power of two from 2 to 16777216, got 0"),
        ({"slots": -4}, r"slots must be a power of two from 2 to 16777216, got -4"),
        ({"max_message": GiB + 1}, r"max_message 1073741825 is not in 1\.\.=1073741824 \(1 GiB\)"),
        ({"max_message": 0}, r"max_message 0 is not in"),
        ({"memory": MiB}, r"slab memory 1048576 bytes \(1 MiB\) is too small.*at least 1398528 bytes"),
        ({"memory": -1}, r"memory must be a positive number of bytes, got -1"),
        ({"max_processes": 0}, r"max_processes 0 is not in 1\.\.=4096"),
        ({"group_retention": -1.0}, r"group_retention must be a number of seconds"),
    ],
)
def test_impossible_values_are_value_errors_and_create_nothing(names, keywords, expected) -> None:
    name = fresh(names)
    with pytest.raises(ValueError, match=expected):
        event_engine.create_bus(name, **keywords)
    assert not os.path.exists(shm_file(name))
    # Also against an existing bus: the impossible value is named, not a mismatch.
    event_engine.create_bus(name, slots=64)
    with pytest.raises(ValueError, match=expected):
        event_engine.create_bus(name, **keywords)


def test_init_allocator_takes_the_geometry_for_the_engines_made_afterwards(names) -> None:
    name, other = fresh(names), fresh(names)
    event_engine.init_allocator(with_shm=True, name=name, slots=128, max_message=8 * MiB, memory=48 * MiB)
    engine = EventEngine()
    elsewhere = EventEngine(bus=other)   # absent: created with the same geometry
    try:
        assert engine.bus == name
        for bus in (name, other):
            geometry = event_engine.inspect_bus(bus)["geometry"]
            assert (geometry["ring_capacity"], geometry["max_message"], geometry["slab_memory"]) == (
                128, 8 * MiB, 48 * MiB)
        # Another geometry for the same name is refused with both values.
        with pytest.raises(ValueError, match=r"slots=128 there, slots=256 asked for"):
            event_engine.init_allocator(with_shm=True, name=name, slots=256, max_message=8 * MiB,
                                        memory=48 * MiB)
        with pytest.raises(ValueError, match="capacity or memory, not both"):
            event_engine.init_allocator(64, True, name, memory=48 * MiB)
    finally:
        engine.close()
        elsewhere.close()
    assert_idle(name)


def test_the_old_positional_capacity_still_sizes_the_slab(names) -> None:
    name = fresh(names)
    event_engine.init_allocator(1024, True, name)
    assert event_engine.inspect_bus(name)["geometry"]["slab_memory"] == 1024 * 4096
    # Below the smallest slab of its max_message, it is that smallest slab.
    small = fresh(names)
    event_engine.init_allocator(1, True, small)
    assert all(n == 1 for _, n in classes(small))


def test_a_put_larger_than_the_bus_says_how_to_get_a_bigger_bus(names) -> None:
    name = fresh(names)
    event_engine.create_bus(name, slots=64, max_message=64 * 1024)
    with EventEngine(bus=name) as watcher, EventEngine(bus=name) as pub:
        watcher.register_handler(Topic("Big.Frame"), lambda payload: None)
        published = event_engine.inspect_bus(name)["counters"]["published"]
        with pytest.raises(ValueError) as info:
            pub.put(Topic("Big.Frame"), b"x" * (3 * MiB))
        message = str(info.value)
        encoded = re.search(r"encode to (\d+) bytes", message)
        assert encoded and 3 * MiB <= int(encoded.group(1)) < 3 * MiB + 64, message
        assert f"({64 * 1024} bytes)" in message
        assert "nothing was published" in message
        assert f"create_bus(\"name\", max_message={4 * MiB})" in message
        assert "event-engine create name --max-message 4MiB" in message
        assert event_engine.inspect_bus(name)["counters"]["published"] == published
    assert_idle(name)


def send_between_processes(ctx, name: str, payload: bytes) -> None:
    """Publishes `payload` to a handler in another process and checks what it received."""
    ready, leave, results = ctx.Event(), ctx.Event(), ctx.Queue()
    child = ctx.Process(target=digest_receiver, args=(name, "Big.Frame", ready, results, leave))
    child.start()
    try:
        assert ready.wait(GUARD), "the receiver did not start"
        with EventEngine(bus=name) as pub:
            pub.put(Topic("Big.Frame"), payload)
            got = results.get(timeout=GUARD)
        assert got == [(len(payload), hashlib.sha256(payload).hexdigest())]
    finally:
        leave.set()
        child.join(GUARD)
        if child.is_alive():
            child.kill()
            child.join()
    assert child.exitcode == 0
    assert_idle(name)


def test_a_64_mib_message_crosses_to_another_process(names, ctx) -> None:
    name = fresh(names)
    # 64 MiB of data and the few bytes its encoding adds.
    event_engine.create_bus(name, slots=64, max_message=64 * MiB + 4096)
    send_between_processes(ctx, name, os.urandom(64 * MiB))


def shm_free() -> int:
    st = os.statvfs("/dev/shm")
    return st.f_bavail * st.f_frsize


@pytest.mark.skipif(os.environ.get("EVENT_ENGINE_BIG_TESTS") != "1",
                    reason="needs about 3 GiB of memory; scripts/test.sh --all runs it")
def test_a_1_gib_message_crosses_to_another_process(names, ctx) -> None:
    # The smallest slab for 1 GiB messages: one block of each class (about 1.35 GiB); the
    # sender's and receiver's copies of the payload take 2 GiB more.
    if shm_free() < 2 * GiB:
        pytest.skip(f"/dev/shm has {shm_free()} bytes free, the bus needs about 1.35 GiB")
    name = fresh(names)
    event_engine.create_bus(name, slots=16, max_message=GiB, memory=GiB + 400 * MiB)
    assert classes(name)[-1] == (GiB + 512, 1)
    payload = bytes(range(256)) * ((GiB - 64) // 256)
    send_between_processes(ctx, name, payload)


def cli() -> str:
    path = Path(sys.executable).parent / "event-engine"
    assert path.exists(), f"the wheel did not install the console script at {path}"
    return str(path)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([cli(), *args], check=False, capture_output=True, text=True, timeout=120)


def test_cli_create_with_human_sizes_and_inspect_shows_the_geometry(names) -> None:
    name = fresh(names)
    done = run("create", name, "--slots", "1024", "--max-message", "8MiB", "--memory", "96MiB",
               "--group-retention", "10s")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"created bus {name} ")
    assert "max message 8.0 MiB, slab 96.0 MiB" in done.stdout
    geometry = event_engine.inspect_bus(name)["geometry"]
    assert (geometry["ring_capacity"], geometry["max_message"], geometry["slab_memory"],
            geometry["group_retention_ms"]) == (1024, 8 * MiB, 96 * MiB, 10_000)
    # Python asking for the same geometry attaches to it.
    event_engine.create_bus(name, slots=1024, max_message=8 * MiB, memory=96 * MiB, group_retention=10)
    again = run("create", name, "--slots", "1024", "--max-message", "8388608", "--memory", "96MiB",
                "--group-retention", "10")
    assert again.returncode == 0 and again.stdout.startswith(f"found bus {name} "), again.stderr

    text = run("inspect", name)
    assert text.returncode == 0, text.stderr
    line = next(x for x in text.stdout.splitlines() if x.startswith("geometry:"))
    sizes = ", ".join(f"{size // MiB} MiB x {n}" if size % MiB == 0 else
                      f"{size // 1024} KiB x {n}" if size % 1024 == 0 else f"{size} B x {n}"
                      for size, n in classes(name))
    assert line.startswith("geometry: ring 1024 slots, max message 8.0 MiB, slab 96.0 MiB in "), line
    assert f"({sizes})" in line
    snap = json.loads(run("inspect", name, "--json").stdout)
    assert snap["geometry"]["slab_memory"] == 96 * MiB
    assert snap["geometry"]["slab_blocks"] == sum(n for _, n in classes(name))
    assert [(c["block_size"], c["total"]) for c in snap["slab"]] == classes(name)


def test_cli_create_errors_say_what_is_wrong(names) -> None:
    name = fresh(names)
    bad = run("create", name, "--max-message", "64MB")
    assert bad.returncode == 2 and "is not a size" in bad.stderr and "64MiB" in bad.stderr, bad.stderr
    bad = run("create", name, "--slots", "1000")
    assert bad.returncode == 2 and "--slots 1000 is not a power of two" in bad.stderr, bad.stderr
    bad = run("create", name, "--max-message", "2GiB")
    assert bad.returncode == 2 and "not between 1 byte and 1GiB" in bad.stderr, bad.stderr
    bad = run("create", name, "--memory", "1MiB")
    assert bad.returncode == 2 and "too small" in bad.stderr, bad.stderr
    assert not os.path.exists(shm_file(name))
    assert run("create", name, "--slots", "64").returncode == 0
    other = run("create", name, "--slots", "128")
    assert other.returncode == 1, other.stderr
    assert "--slots is 64 there, 128 asked for" in other.stderr
    assert f"event-engine rm {name}" in other.stderr
    assert shutil.which(cli())
