"""Fixtures of the multi-process bus tests: a unique bus per test, removed afterwards even when
the test fails, and the idle-bus check (invariant 2) run once every engine has detached."""

from __future__ import annotations

import multiprocessing
import os
import uuid
from collections.abc import Iterator

import event_engine
import pytest

#: Slab memory of the buses made here (small: a test bus needs few blocks; 3 MiB with 1 MiB
#: messages is about 1,400 blocks).
SLAB_MEMORY = 3 << 20


def shm_file(name: str) -> str:
    return f"/dev/shm/event_engine.{name}"


@pytest.fixture
def bus_name() -> Iterator[str]:
    """A fresh bus name; the bus is created (small slab) by the test's first attach."""
    name = f"pytest-{uuid.uuid4().hex[:12]}"
    try:
        yield name
    finally:
        event_engine.init_allocator(with_shm=False)
        try:
            os.unlink(shm_file(name))
        except FileNotFoundError:
            pass


@pytest.fixture
def bus(bus_name: str) -> str:
    """A created bus (SLAB_MEMORY bytes of slab); engines attach with ``EventEngine(bus=bus)``."""
    event_engine.init_allocator(memory=SLAB_MEMORY, with_shm=True, name=bus_name)
    # Back to in-process defaults: engines below name their bus explicitly.
    event_engine.init_allocator(with_shm=False)
    return bus_name


@pytest.fixture
def ctx() -> multiprocessing.context.SpawnContext:
    return multiprocessing.get_context("spawn")


def assert_idle(name: str) -> None:
    """Invariant 2: with every engine detached, every slab block is free and every count is 0."""
    snap = event_engine.inspect_bus(name)
    assert snap["processes"] == [], snap["processes"]
    for cls in snap["slab"]:
        assert cls["free"] == cls["total"] and cls["used"] == 0, cls
    assert snap["ring"]["occupancy"] == 0, snap["ring"]
    assert snap["counters"]["sub_sleepers"] == 0
    assert snap["counters"]["pub_sleepers"] == 0
