"""Received buffers stay in shared memory as read-only views (docs/delivery.md, "Holds"), loans
are published from where the producer filled them ("Loans"): real processes, a bus made with
``create_bus``."""

from __future__ import annotations

import gc
import multiprocessing
import os
import signal
import threading
import uuid

import pytest

np = pytest.importorskip("numpy")

import event_engine
from conftest import assert_idle, shm_file
from event_engine import EventEngine, Full, Topic
from hold_workers import GUARD, TOPIC, check, frame

SIZE = 1 << 20


@pytest.fixture
def big_bus():
    """A bus for 1 MiB frames: room for 16 of them."""
    name = f"pytest-hold-{uuid.uuid4().hex[:12]}"
    event_engine.create_bus(name, max_message=SIZE + 4096, memory=16 * (SIZE + 4096))
    try:
        yield name
    finally:
        try:
            os.unlink(shm_file(name))
        except FileNotFoundError:
            pass


def shared_memory_of(a) -> bool:
    """Whether array `a` views a bus's shared memory (an ``event_engine.SharedBuffer``)."""
    base = a
    while isinstance(base, np.ndarray):
        base = base.base
    if isinstance(base, memoryview):
        base = base.obj
    return isinstance(base, event_engine.SharedBuffer)


def holder_row(name: str) -> dict:
    rows = [p for p in event_engine.inspect_bus(name)["processes"] if p["role"] == "holder"]
    assert len(rows) == 1, rows
    return rows[0]


def subscriber_copies(name: str) -> int:
    return sum(
        p["copies"]
        for p in event_engine.inspect_bus(name)["processes"]
        if p["role"] in ("subscriber", "group_member")
    )


def receive(engine, n):
    """Starts `engine` with a handler that keeps every frame; returns the list and an event set
    after `n` of them."""
    kept, done = [], threading.Event()

    def handler(a, topic):
        kept.append(a)
        if len(kept) == n:
            done.set()

    engine.register_handler(Topic(TOPIC), handler)
    engine.start()
    return kept, done


def test_a_handler_gets_read_only_views_that_outlive_it_and_go_back_when_collected(big_bus):
    consumer = EventEngine(bus=big_bus, hold_limit=4)
    kept, done = receive(consumer, 12)
    ctx = multiprocessing.get_context("spawn")
    go, sent = ctx.Event(), ctx.Event()
    from hold_workers import publisher

    p = ctx.Process(target=publisher, args=(big_bus, 12, SIZE, go, sent))
    p.start()
    go.set()
    assert done.wait(GUARD)
    p.join(GUARD)
    assert p.exitcode == 0, "the publisher was never blocked by the hoarding handler"
    # Every frame intact, read-only; the first four are views of the bus, the rest copies.
    assert [check(a, SIZE) for a in kept] == list(range(12))
    assert all(not a.flags.writeable for a in kept)
    views = [shared_memory_of(a) for a in kept]
    assert views[:4] == [True] * 4 and sum(views) == 4, views
    row = holder_row(big_bus)
    assert row["held_blocks"] == 4
    assert subscriber_copies(big_bus) == 8
    del kept[:]
    gc.collect()
    assert holder_row(big_bus)["held_blocks"] == 0
    consumer.stop()
    consumer.close()
    assert_idle(big_bus)


def test_a_hoarder_never_blocks_a_publisher_past_half_the_class(big_bus):
    consumer = EventEngine(bus=big_bus, hold_limit=1000)
    kept, done = receive(consumer, 40)
    producer = EventEngine(bus=big_bus)
    for i in range(40):
        producer.put(Topic(TOPIC), frame(i, SIZE), timeout=10.0)
    assert done.wait(GUARD)
    assert [check(a, SIZE) for a in kept] == list(range(40))
    slab = max(event_engine.inspect_bus(big_bus)["slab"], key=lambda c: c["block_size"])
    assert 0 < slab["held"] <= slab["total"] // 2, slab
    del kept[:]
    gc.collect()
    for e in (producer, consumer):
        e.stop()
        e.close()
    assert_idle(big_bus)


def test_a_holder_killed_with_sigkill_gives_its_blocks_back(big_bus):
    ctx = multiprocessing.get_context("spawn")
    ready, held = ctx.Event(), ctx.Event()
    from hold_workers import holder_until_killed

    p = ctx.Process(target=holder_until_killed, args=(big_bus, SIZE, ready, held))
    p.start()
    assert ready.wait(GUARD)
    producer = EventEngine(bus=big_bus)
    producer.put(Topic(TOPIC), frame(1, SIZE), timeout=10.0)
    assert held.wait(GUARD)
    assert holder_row(big_bus)["held_blocks"] == 1
    os.kill(p.pid, signal.SIGKILL)
    p.join(GUARD)
    producer.close()  # leaving reaps the dead holder
    assert_idle(big_bus)


def test_a_forked_child_keeps_reading_what_its_parent_let_go(big_bus):
    consumer = EventEngine(bus=big_bus)
    kept, done = receive(consumer, 1)
    producer = EventEngine(bus=big_bus)
    producer.put(Topic(TOPIC), frame(7, SIZE), timeout=10.0)
    assert done.wait(GUARD)
    assert shared_memory_of(kept[0])
    fork = multiprocessing.get_context("fork")
    go, result = fork.Event(), fork.Queue()

    def child():
        go.wait(GUARD)
        try:
            result.put(check(kept[0], SIZE))
        except AssertionError as e:
            result.put(str(e))

    p = fork.Process(target=child)
    p.start()
    # The parent lets go of its view and the bus reuses its blocks many times over.
    del kept[:]
    gc.collect()
    more, more_done = [], threading.Event()
    consumer.stop()
    consumer.clear()
    consumer.register_handler(
        Topic(TOPIC), lambda a, topic: (more.append(check(a, SIZE)), len(more) == 30 and more_done.set())
    )
    consumer.start()
    for i in range(30):
        producer.put(Topic(TOPIC), frame(100 + i, SIZE), timeout=10.0)
    assert more_done.wait(GUARD)
    go.set()
    assert result.get(timeout=GUARD) == 7, "the child read reused memory"
    p.join(GUARD)
    assert p.exitcode == 0
    for e in (producer, consumer):
        e.stop()
        e.close()
    assert_idle(big_bus)


def test_exit_with_live_views_is_clean(big_bus):
    ctx = multiprocessing.get_context("spawn")
    ready, results = ctx.Event(), ctx.Queue()
    from hold_workers import keeper_that_exits

    p = ctx.Process(target=keeper_that_exits, args=(big_bus, SIZE, 3, ready, results))
    p.start()
    assert ready.wait(GUARD)
    producer = EventEngine(bus=big_bus)
    for i in range(3):
        producer.put(Topic(TOPIC), frame(i, SIZE), timeout=10.0)
    assert results.get(timeout=GUARD) == [0, 1, 2]
    p.join(GUARD)
    assert p.exitcode == 0
    # It gave its seat and rows back as it exited, views alive: nothing waits for a reap.
    rows = event_engine.inspect_bus(big_bus)["processes"]
    assert [r for r in rows if r["pid"] == p.pid] == []
    producer.close()
    assert_idle(big_bus)


def test_a_loan_is_published_without_a_copy_and_a_second_put_copies(big_bus):
    consumer = EventEngine(bus=big_bus)
    kept, done = receive(consumer, 2)
    producer = EventEngine(bus=big_bus)
    with producer.loan(SIZE) as loan:
        assert isinstance(loan, event_engine.Loan) and loan.nbytes == SIZE
        a = np.frombuffer(loan, dtype=np.uint8)
        a[:] = frame(5, SIZE)
        producer.put(Topic(TOPIC), a)
        # Spent: the same memory put again travels by copy, like any buffer.
        producer.put(Topic(TOPIC), a)
    assert done.wait(GUARD)
    assert [check(x, SIZE) for x in kept] == [5, 5]
    assert all(shared_memory_of(x) for x in kept)
    assert producer.loans_published == 1
    del kept[:], a, loan
    gc.collect()
    for e in (producer, consumer):
        e.stop()
        e.close()
    assert_idle(big_bus)


def test_a_loan_released_or_dropped_unpublished_goes_back(big_bus):
    producer = EventEngine(bus=big_bus)
    loan = producer.loan(SIZE)
    assert holder_row(big_bus)["held_blocks"] == 1
    loan.release()
    del loan
    gc.collect()
    assert holder_row(big_bus)["held_blocks"] == 0
    with producer.loan(SIZE):
        pass
    gc.collect()
    assert holder_row(big_bus)["held_blocks"] == 0
    producer.close()
    assert_idle(big_bus)


def test_a_loan_that_does_not_fit_is_refused(big_bus):
    producer = EventEngine(bus=big_bus)
    with pytest.raises(ValueError, match="carries"):
        producer.loan(64 * SIZE)
    with pytest.raises(Full):
        [producer.loan(SIZE, timeout=0.05) for _ in range(64)]
    gc.collect()
    producer.close()
    assert_idle(big_bus)


def test_an_engine_without_a_bus_lends_a_bytearray():
    engine = EventEngine()
    buf = engine.loan(16)
    assert isinstance(buf, bytearray) and len(buf) == 16


def test_the_loan_itself_is_put_without_a_copy_and_arrives_as_a_memoryview(big_bus):
    consumer = EventEngine(bus=big_bus)
    kept, done = receive(consumer, 1)
    producer = EventEngine(bus=big_bus)
    with producer.loan(SIZE) as loan:
        memoryview(loan)[:] = frame(3, SIZE).tobytes()
        producer.put(Topic(TOPIC), loan)
    assert done.wait(GUARD)
    got = kept[0]
    assert isinstance(got, memoryview) and got.readonly and got.obj.__class__ is event_engine.SharedBuffer
    assert check(np.frombuffer(got, dtype=np.uint8), SIZE) == 3
    assert producer.loans_published == 1
    del kept[:], got, loan
    gc.collect()
    for e in (producer, consumer):
        e.stop()
        e.close()
    assert_idle(big_bus)


def test_16_mib_arrays_fan_out_to_three_subscribers_and_a_group():
    size, count = 16 << 20, 4
    name = f"pytest-hold16-{uuid.uuid4().hex[:12]}"
    event_engine.create_bus(name, max_message=size + 4096, memory=12 * (size + 4096))
    try:
        ctx = multiprocessing.get_context("spawn")
        from hold_workers import keeper

        results, total, group_done = ctx.Queue(), ctx.Value("i", 0), ctx.Event()
        procs = []
        for group in (None, None, None, "workers", "workers"):
            ready = ctx.Event()
            args = (name, group, size, count, ready, results, total, group_done)
            p = ctx.Process(target=keeper, args=args)
            p.start()
            assert ready.wait(GUARD)
            procs.append(p)
        producer = EventEngine(bus=name)
        for i in range(count):
            producer.put(Topic(TOPIC), frame(i, size), timeout=60.0)
        got = [results.get(timeout=GUARD) for _ in procs]
        for p in procs:
            p.join(GUARD)
            assert p.exitcode == 0
        fanout = [g for g in got if len(g[0]) == count]
        # Three fan-out subscribers got all four, in order; the group's members one each.
        assert sum(1 for numbers, _ in got if numbers == list(range(count))) >= 3
        shared = sorted(n for numbers, _ in got for n in numbers)
        assert shared == sorted(list(range(count)) * 4), got
        assert all(views >= 1 for _, views in fanout), got
        producer.close()
        assert_idle(name)
    finally:
        try:
            os.unlink(shm_file(name))
        except FileNotFoundError:
            pass


def test_a_loan_of_a_killed_process_goes_back(big_bus):
    ctx = multiprocessing.get_context("spawn")
    lent = ctx.Event()
    from hold_workers import lender_until_killed

    p = ctx.Process(target=lender_until_killed, args=(big_bus, SIZE, lent))
    p.start()
    assert lent.wait(GUARD)
    assert holder_row(big_bus)["held_blocks"] == 1
    os.kill(p.pid, signal.SIGKILL)
    p.join(GUARD)
    EventEngine(bus=big_bus).close()  # leaving reaps the dead lender
    assert_idle(big_bus)
