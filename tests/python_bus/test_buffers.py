"""Buffers travel out of band (codec PickleBuffers, docs/wire-format.md): numpy arrays, bytes,
bytearray and memoryview arguments reach another process's handler with their type, contents,
dtype and shape, read-only where they are views; each is copied once on the way in; a message
over the bus's limit is refused whole. numpy is used where it is installed; the bytes,
bytearray and memoryview cases run everywhere."""

from __future__ import annotations

import pickle

import pytest
from buffer_workers import GUARD, TOPIC, async_taker, describe, describer
from conftest import assert_idle
from event_engine import Empty, EventEngine, Topic

#: At this size and above `bytes` and `bytearray` travel out of band (oob.rs).
OOB_MIN_BYTES = 64 * 1024


def as_received(desc):
    """`describe()` of a sent value as its receiver must see it: arrays not writeable,
    memoryviews read-only, everything else unchanged."""
    if isinstance(desc, tuple):
        return desc[0], [as_received(d) for d in desc[1]]
    if isinstance(desc, dict) and "type" not in desc:
        return {k: as_received(v) for k, v in desc.items()}
    out = dict(desc)
    if out["type"] == "ndarray":
        out["writeable"] = False
        out["aligned"] = True
    elif out["type"] == "memoryview":
        out["readonly"] = True
    return out


def round_trip_in_another_process(ctx, bus, calls):
    """Puts each `(args, kwargs)` of `calls` and returns what a handler in another process saw
    of each."""
    ready, leave, results = ctx.Event(), ctx.Event(), ctx.Queue()
    p = ctx.Process(target=describer, args=(bus, len(calls), ready, results, leave))
    p.start()
    try:
        assert ready.wait(GUARD)
        with EventEngine(bus=bus) as pub:
            for args, kwargs in calls:
                pub.put(Topic(TOPIC), *args, **kwargs)
            got = results.get(timeout=GUARD)
    finally:
        leave.set()
        p.join(GUARD)
    assert p.exitcode == 0
    return got


def plain_calls():
    big = bytes(range(256)) * (OOB_MIN_BYTES // 256 + 3)
    grid = bytearray(range(48))
    return [
        ((big,), {}),
        ((b"small", bytearray(b"small too")), {}),
        ((bytearray(big),), {"tail": big[:OOB_MIN_BYTES]}),
        ((memoryview(b"read-only bytes"), memoryview(bytearray(b"writable"))), {}),
        ((memoryview(grid).cast("d", (2, 3)),), {}),
        # Not contiguous: copied once, in order, straight into the block.
        ((memoryview(bytearray(range(100)))[::3],), {}),
        ((1, "mixed", memoryview(b"x" * 1000), 2.5), {"d": {"nested": [memoryview(b"in a list")]}}),
    ]


def test_bytes_bytearray_and_memoryview_arrive_in_another_process(bus, ctx):
    calls = plain_calls()
    got = round_trip_in_another_process(ctx, bus, calls)
    want = [as_received(describe((args, kwargs))) for args, kwargs in calls]
    assert got == want
    # The view arrives read-only whatever it viewed; bytes stay bytes, bytearray bytearray.
    assert got[3][1][0][1][0]["readonly"] and got[3][1][0][1][1]["readonly"]
    assert got[0][1][0][1][0]["type"] == "bytes"
    assert got[2][1][0][1][0]["type"] == "bytearray"
    assert_idle(bus)


def numpy_calls(np):
    base = np.arange(24, dtype=np.float32).reshape(4, 6)
    return [
        ((np.arange(1000, dtype=np.uint8),), {}),
        ((np.linspace(0, 1, 12).reshape(3, 4), np.arange(7, dtype=">i4")), {}),
        ((np.array([1 + 2j, 3 - 4j], dtype=np.complex64), np.array([True, False])), {}),
        ((np.asfortranarray(base),), {}),
        # Not contiguous: numpy would pickle these in band; they travel out of band too.
        ((base[::2, 1::3], base.T[1:]), {}),
        ((np.zeros((0, 3)), np.array(3.5)), {}),
        ((np.array([(1, 2.5)], dtype=[("a", "<i4"), ("b", "<f8")]),), {}),
        ((np.arange(512 * 1024, dtype=np.uint8),), {}),
        (
            (1, "mixed", np.ones(3)),
            {"frame": np.eye(3), "meta": {"nested": np.arange(4, dtype=np.int16)}},
        ),
    ]


def test_numpy_arrays_arrive_in_another_process(bus, ctx):
    np = pytest.importorskip("numpy")
    calls = numpy_calls(np)
    got = round_trip_in_another_process(ctx, bus, calls)
    want = [as_received(describe((args, kwargs))) for args, kwargs in calls]
    assert got == want
    assert_idle(bus)


def test_get_returns_read_only_arrays_and_views(bus):
    np = pytest.importorskip("numpy")
    with EventEngine(bus=bus) as sub, EventEngine(bus=bus) as pub:
        sub.register_handler(Topic(TOPIC), lambda *a, **k: None)  # wants the topic
        a = np.arange(12, dtype=np.int64).reshape(3, 4)
        pub.put(Topic(TOPIC), a, view=memoryview(bytearray(b"abc")))
        got = sub.get(timeout=GUARD)
        arr, view = got.args[0], got.kwargs["view"]
        assert (arr == a).all() and arr.dtype == a.dtype and arr.shape == a.shape
        assert not arr.flags.writeable
        with pytest.raises(ValueError):
            arr[0, 0] = 1
        assert view.readonly and view.tobytes() == b"abc"
        with pytest.raises(TypeError):
            view[0] = 1
    assert_idle(bus)


def test_aget_on_a_loop_decodes_the_same(bus, ctx):
    ready, leave, results = ctx.Event(), ctx.Event(), ctx.Queue()
    p = ctx.Process(target=async_taker, args=(bus, ready, results, leave))
    p.start()
    try:
        assert ready.wait(GUARD)
        call = ((memoryview(b"on a loop"),), {"blob": bytes(OOB_MIN_BYTES)})
        with EventEngine(bus=bus) as pub:
            pub.put(Topic(TOPIC), *call[0], **call[1])
            got = results.get(timeout=GUARD)
    finally:
        leave.set()
        p.join(GUARD)
    assert p.exitcode == 0
    assert got == [as_received(describe(call))]
    assert_idle(bus)


def test_a_message_over_the_bus_limit_names_both_sizes_and_publishes_nothing(bus):
    limit = 1 << 20  # the default max_message
    with EventEngine(bus=bus) as sub, EventEngine(bus=bus) as pub:
        sub.register_handler(Topic(TOPIC), lambda *a, **k: None)  # wants the topic
        with pytest.raises(ValueError) as e:
            pub.put(Topic(TOPIC), memoryview(bytes(limit)))
        text = str(e.value)
        assert f"({limit} bytes)" in text and "nothing was published" in text
        encoded = int(text.split("encode to ")[1].split(" bytes")[0])
        assert encoded > limit
        with pytest.raises(Empty):
            sub.get(block=False)
        # The bus still carries what fits.
        pub.put(Topic(TOPIC), memoryview(bytes(limit // 2)))
        assert len(sub.get(timeout=GUARD).args[0]) == limit // 2
    assert_idle(bus)


def peak_allocated_by(f):
    """The peak of Python allocations while `f()` runs (tracemalloc), in bytes."""
    import tracemalloc

    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        f()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("kind", ["numpy", "bytes", "memoryview"])
def test_a_512_kib_buffer_is_written_with_one_copy(bus, kind):
    try:
        import tracemalloc  # noqa: F401
    except ImportError:
        pytest.skip("the measure needs tracemalloc, which PyPy does not have")
    size = 512 * 1024
    if kind == "numpy":
        np = pytest.importorskip("numpy")
        value = np.arange(size, dtype=np.uint8)
    elif kind == "bytes":
        value = bytes(size)
    else:
        value = memoryview(bytearray(size))
    with EventEngine(bus=bus) as sub, EventEngine(bus=bus) as pub:
        sub.register_handler(Topic(TOPIC), lambda *a, **k: None)  # wants the topic
        pub.put(Topic(TOPIC), value)  # warm-up: imports, caches
        sub.get(timeout=GUARD)
        # The measure sees a copy: pickling the value in band allocates its size at least.
        if kind != "memoryview":
            assert peak_allocated_by(lambda: pickle.dumps(value, 5)) >= size
        # The put itself copies straight into the block: no object of that size is made.
        peak = peak_allocated_by(lambda: pub.put(Topic(TOPIC), value))
        assert peak < size // 8, peak
        got = sub.get(timeout=GUARD).args[0]
        assert bytes(got) == bytes(value)
    assert_idle(bus)
