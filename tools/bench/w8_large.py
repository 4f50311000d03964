"""W8 large payloads (docs/benchmarks.md): a uint8 numpy array from one Python process to
another, 64 B to 16 MiB; one-way latency by ping-pong, then GB/s streaming.

Every peer starts from arrays already in the sender's memory (a pool of four per size) and
ends with a numpy array in the receiver, checked there: its dtype and length, and its first
and last 8 bytes, which carry the message's counter (little-endian uint64; counters run on
across the whole trial, so a lost, repeated or reordered message fails the run). Bytes 8-15
carry the sender's clock (`time.perf_counter_ns()`, CLOCK_MONOTONIC, one clock for every
process), read just before the counter is written and the array is handed to the peer; the
receiver reads its clock once the array is checked. That difference is the one-way latency.

* Latency: one message in flight. The receiver answers each message with a reply that carries
  only its counter (8 bytes, little-endian) over the same peer, back the other way; the sender
  sends the next message once that reply has come back and matches. The first `--warmup`
  messages of each size are not counted.
* Throughput: `--stream-mib` MiB of 1 MiB and of 16 MiB arrays sent as fast as the peer takes
  them; the receiver replies once, after the last one. GB/s = bytes / (the receiver's clock
  after checking the last array - the sender's clock before the first send), 1 GB = 1e9 bytes.

Peers:

* ``ours``       - ``EventEngine(bus=...).put(topic, array)``; the receiver's handler gets the
  array (started engine, handler on the topic); the reply is ``put(ack_topic, counter)`` from
  that handler, taken by the sender with ``get()``. The bus comes from
  ``event_engine.create_bus(name, max_message=16 MiB + 64 KiB, memory=8 x that)`` when the
  package has it; without it, the bus is the default one and the sizes it cannot carry are
  shown as "n/a (bus limit)".
* ``ours_loan``  - the same, but the sender copies the array into ``engine.loan(n)`` and puts
  the loan (needs ``EventEngine.loan``; "n/a" without it).
* ``iceoryx2``   - iceoryx2 publish-subscribe, ``Slice[c_uint8]`` payload: the sender copies
  the array into a loaned sample (one ``memmove``) and sends it, then notifies an iceoryx2
  event service; the receiver waits on that event's ``Listener`` (no busy polling) and views
  the sample's memory as a numpy array without copying. Replies: the same, the other way.
* ``zmq``        - pyzmq PUSH/PULL over ``ipc://`` with ``copy=False`` both ways (streaming
  sends ``track=True`` and waits for a buffer's tracker before rewriting it); the receiver
  views the frame's buffer. Replies on a second PUSH/PULL pair.
* ``mp_pipe``    - ``multiprocessing.Pipe()``: ``send_bytes`` of the array's buffer,
  ``recv_bytes`` then ``np.frombuffer``; replies on the same (duplex) pipe.
* ``shm_floor``  - the one-copy floor, by hand: a ``multiprocessing.shared_memory`` segment of
  four slots, one ``np.copyto`` into slot ``counter % 4``, then a one-byte notification (the
  slot number) on a ``multiprocessing.Pipe``; the receiver views the slot without copying and
  hands it back by sending the counter (8 bytes) on the same pipe, which is also the reply.

Every bus, shared-memory segment, iceoryx2 file and ipc endpoint a run makes is removed when it
ends, also on Ctrl-C.

    .venv/bin/python tools/bench/w8_large.py                 # sets up target/bench/peers-venv first
    .venv/bin/python tools/bench/w8_large.py --quick --current-python   # < 1 minute, peers installed here
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import sys
import time
import traceback
from collections.abc import Iterator, Sequence
from typing import Any

import benchlib as bl
from benchlib import Role
from w8_protocol import (
    POOL,
    SIZES,
    STREAM,
    STREAM_SIZES,
    WAIT,
    Phase,
    Receipts,
    Receiver,
    Sender,
    expect_reply,
    make_phases,
    reply_bytes,
    run_receiver,
    run_sender,
    send_loop,
    size_label,
    sources,
)

DATA_TOPIC = "Bench.W8.Data"
ACK_TOPIC = "Bench.W8.Ack"
# What our bus must carry on top of the array: with create_bus, room for the encoding around the
# largest array; without it, an array fits the default bus when it leaves this much room.
ENCODING_ROOM_CREATE = 64 << 10
ENCODING_ROOM_FIT = 4 << 10
BUS_MESSAGES = 8  # create_bus(memory=...) holds this many of the largest messages


def fitting(phases: list[Phase], max_message: int) -> tuple[list[Phase], list[int]]:
    """The phases whose arrays a bus of `max_message` carries, and the sizes left out."""
    keep = [p for p in phases if p[1] + ENCODING_ROOM_FIT <= max_message]
    return keep, sorted({p[1] for p in phases} - {p[1] for p in keep})


# --------------------------------------------------------------------------- ours


def _ours_bus(bus: str, phases: list[Phase]) -> tuple[Any, list[Phase], list[int]]:
    """Attaches to `bus` (made with create_bus when the package has it): the engine, the
    phases the bus can carry, and the sizes it cannot."""
    import event_engine as ee

    if hasattr(ee, "create_bus") and phases:
        largest = max(p[1] for p in phases) + ENCODING_ROOM_CREATE
        ee.create_bus(bus, max_message=largest, memory=BUS_MESSAGES * largest)
    engine = ee.EventEngine(bus=bus)
    max_message = ee.inspect_bus(bus)["geometry"]["max_message"]
    keep, skipped = fitting(phases, max_message)
    return engine, keep, skipped


def ours_receiver(ctl: bl.Control, bus: str, phases: list[Phase]) -> dict:
    from event_engine import Topic

    engine, phases, skipped = _ours_bus(bus, phases)
    receipts = Receipts(phases)
    put, ack = engine.put, Topic(ACK_TOPIC)

    def on_array(a: Any) -> None:
        try:
            counter = receipts.take(a)
            if counter is not None:
                put(ack, counter)
        except Exception:  # noqa: BLE001 - the engine would only log it: the run must fail
            receipts.error = traceback.format_exc()
            receipts.done.set()

    engine.register_handler(Topic(DATA_TOPIC), on_array)
    engine.start()
    try:
        ctl.ready()
        if not receipts.done.wait(WAIT * max(1, len(phases))):
            raise TimeoutError(f"received {receipts.next} messages, then nothing for too long")
        if receipts.error:
            raise AssertionError(receipts.error)
        ctl.report({**receipts.result(), **{f"skipped@{s}": 1.0 for s in skipped}})
        ctl.wait_finish()
    finally:
        engine.close()
    return {}


class OursSender(Sender):
    def __init__(self, engine: Any, loan: bool) -> None:
        from event_engine import Topic

        self.engine, self.loan = engine, loan
        self.topic = Topic(DATA_TOPIC)
        # A hook on the reply topic makes the replies this engine's; get() takes them (not started).
        engine.register_handler(Topic(ACK_TOPIC), lambda counter: None)

    def send(self, src: Any, k: int, stream: bool) -> None:
        if not self.loan:
            self.engine.put(self.topic, src)
            return
        import numpy as np

        with self.engine.loan(src.nbytes) as buf:
            np.frombuffer(buf, np.uint8)[:] = src
            self.engine.put(self.topic, buf)

    def wait_reply(self, i: int) -> None:
        m = self.engine.get(timeout=WAIT)
        if not m.args or m.args[0] != i:
            raise AssertionError(f"reply {m.args!r}, expected ({i},)")


def ours_sender(ctl: bl.Control, bus: str, phases: list[Phase], loan: bool) -> dict:
    engine, phases, _ = _ours_bus(bus, phases)
    try:
        if loan and not hasattr(engine, "loan"):
            raise RuntimeError("this event_engine has no EventEngine.loan()")
        run_sender(ctl, phases, OursSender(engine, loan))
    finally:
        engine.close()
    return {}


# --------------------------------------------------------------------------- iceoryx2

IOX_ACK = 8  # bytes of a reply


class _IoxEnd:
    """One direction of iceoryx2 traffic as seen from one process: a publish-subscribe
    service of `Slice[c_uint8]` samples and an event service that announces them."""

    def __init__(self, node: Any, iox2: Any, name: str, max_len: int) -> None:
        self.iox2 = iox2
        self.service = (
            node.service_builder(iox2.ServiceName.new(f"w8/{name}"))
            .publish_subscribe(iox2.Slice[ctypes.c_uint8])
            .enable_safe_overflow(False)
            .subscriber_max_buffer_size(POOL)
            .history_size(0)
            .max_publishers(1)
            .max_subscribers(1)
            .open_or_create()
        )
        self.event = node.service_builder(iox2.ServiceName.new(f"w8/{name}/ready")).event().open_or_create()
        self.max_len = max_len

    def publisher(self) -> tuple[Any, Any]:
        iox2 = self.iox2
        pub = (
            self.service.publisher_builder()
            .initial_max_slice_len(self.max_len)
            .allocation_strategy(iox2.AllocationStrategy.Static)
            .backpressure_strategy(iox2.BackpressureStrategy.RetryUntilDelivered)
            .max_loaned_samples(1)
            .create()
        )
        return pub, self.event.notifier_builder().create()

    def subscriber(self) -> tuple[Any, Any]:
        return self.service.subscriber_builder().buffer_size(POOL).create(), self.event.listener_builder().create()


def _iox_publish(pub: Any, notifier: Any, src: int | bytes, n: int) -> None:
    """Copies `n` bytes from `src` (an address, or bytes) into a loaned sample, sends it, notifies."""
    sample = pub.loan_slice_uninit(n)
    ctypes.memmove(sample.payload_ptr, src, n)
    if sample.assume_init().send() != 1:
        raise AssertionError("iceoryx2 send() reached no subscriber")
    notifier.notify()


def _iox_take(iox2: Any, sub: Any, listener: Any) -> Any:
    """The next sample, waiting on the listener (no busy polling) while there is none. A wait
    may end without an event (the binding lets it): only WAIT seconds without a sample fail."""
    deadline = time.monotonic() + WAIT
    while True:
        sample = sub.receive()
        if sample is not None:
            return sample
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no iceoryx2 sample for {WAIT:.0f} s")
        listener.timed_wait(iox2.Duration.from_secs_f64(left))


class IoxSender(Sender):
    def __init__(self, iox2: Any, data: _IoxEnd, ack: _IoxEnd) -> None:
        self.iox2 = iox2
        self.pub, self.notifier = data.publisher()
        self.ack_sub, self.ack_listener = ack.subscriber()

    def send(self, src: Any, k: int, stream: bool) -> None:
        _iox_publish(self.pub, self.notifier, src.ctypes.data, src.nbytes)

    def wait_reply(self, i: int) -> None:
        sample = _iox_take(self.iox2, self.ack_sub, self.ack_listener)
        expect_reply(ctypes.string_at(sample.payload_ptr, IOX_ACK), i)
        sample.delete()


class IoxReceiver(Receiver):
    def __init__(self, iox2: Any, data: _IoxEnd, ack: _IoxEnd) -> None:
        self.iox2 = iox2
        self.sub, self.listener = data.subscriber()
        self.ack_pub, self.ack_notifier = ack.publisher()

    def recv(self, size: int) -> tuple[Any, Any]:
        import numpy as np

        sample = _iox_take(self.iox2, self.sub, self.listener)
        a = np.frombuffer(sample.payload().as_memory_view(), np.uint8)
        a.flags.writeable = False
        return a, sample

    def release(self, token: Any, i: int) -> None:
        token.delete()

    def reply(self, i: int) -> None:
        _iox_publish(self.ack_pub, self.ack_notifier, reply_bytes(i), IOX_ACK)


def _iox_ends(scope: tuple[str, str], phases: list[Phase]) -> tuple[Any, Any, _IoxEnd, _IoxEnd]:
    iox2, node = bl.iox_node(scope)
    largest = max(p[1] for p in phases)
    return (
        iox2,
        node,
        _IoxEnd(node, iox2, "data", largest),
        _IoxEnd(node, iox2, "ack", IOX_ACK),
    )


def iox_receiver(ctl: bl.Control, scope: tuple[str, str], phases: list[Phase]) -> dict:
    iox2, node, data, ack = _iox_ends(scope, phases)
    rx = IoxReceiver(iox2, data, ack)
    try:
        run_receiver(ctl, phases, rx)
    finally:
        rx.sub.delete()
        rx.ack_pub.delete()
        del rx, data, ack, node
    return {}


def iox_sender(ctl: bl.Control, scope: tuple[str, str], phases: list[Phase]) -> dict:
    iox2, node, data, ack = _iox_ends(scope, phases)
    tx = IoxSender(iox2, data, ack)
    try:
        pools = sources(phases)
        ctl.ready()
        ctl.wait_go()
        # Both ends exist now: connect, and check the receiver is seen before the first send.
        tx.pub.update_connections()
        if (seen := data.service.dynamic_config.number_of_subscribers) != 1:
            raise RuntimeError(f"iceoryx2 publisher sees {seen} subscribers, expected 1")
        ctl.report(send_loop(phases, pools, tx))
        ctl.wait_finish()
    finally:
        tx.pub.delete()
        tx.ack_sub.delete()
        del tx, data, ack, node
    return {}


# --------------------------------------------------------------------------- pyzmq


class ZmqSender(Sender):
    def __init__(self, data: Any, ack: Any) -> None:
        self.data, self.ack = data, ack
        self.trackers: list[Any] = [None] * POOL

    def reuse(self, k: int) -> None:
        if self.trackers[k] is not None:
            self.trackers[k].wait(WAIT)
            self.trackers[k] = None

    def send(self, src: Any, k: int, stream: bool) -> None:
        # Streaming: zmq may still read the buffer after send() returns; the tracker says when
        # it is done. Ping-pong: the reply comes after the whole array has been received.
        tracker = self.data.send(src, copy=False, track=stream)
        if stream:
            self.trackers[k] = tracker

    def wait_reply(self, i: int) -> None:
        expect_reply(self.ack.recv(copy=False).buffer, i)


class ZmqReceiver(Receiver):
    def __init__(self, data: Any, ack: Any) -> None:
        self.data, self.ack = data, ack

    def recv(self, size: int) -> tuple[Any, Any]:
        import numpy as np

        frame = self.data.recv(copy=False)
        return np.frombuffer(frame.buffer, np.uint8), frame

    def reply(self, i: int) -> None:
        self.ack.send(reply_bytes(i), copy=False)


def zmq_receiver(ctl: bl.Control, data_ep: str, ack_ep: str, phases: list[Phase]) -> dict:
    with (
        bl.zmq_socket("PULL", data_ep, bind=True) as data,
        bl.zmq_socket("PUSH", ack_ep, bind=False) as ack,
    ):
        run_receiver(ctl, phases, ZmqReceiver(data, ack))
    return {}


def zmq_sender(ctl: bl.Control, data_ep: str, ack_ep: str, phases: list[Phase]) -> dict:
    with (
        bl.zmq_socket("PUSH", data_ep, bind=False) as data,
        bl.zmq_socket("PULL", ack_ep, bind=True) as ack,
    ):
        run_sender(ctl, phases, ZmqSender(data, ack))
    return {}


# --------------------------------------------------------------------------- multiprocessing.Pipe


class PipeSender(Sender):
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def send(self, src: Any, k: int, stream: bool) -> None:
        self.conn.send_bytes(src)

    def wait_reply(self, i: int) -> None:
        expect_reply(self.conn.recv_bytes(), i)


class PipeReceiver(Receiver):
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def recv(self, size: int) -> tuple[Any, Any]:
        import numpy as np

        return np.frombuffer(self.conn.recv_bytes(), np.uint8), None

    def reply(self, i: int) -> None:
        self.conn.send_bytes(reply_bytes(i))


def pipe_receiver(ctl: bl.Control, conn: Any, phases: list[Phase]) -> dict:
    run_receiver(ctl, phases, PipeReceiver(conn))
    return {}


def pipe_sender(ctl: bl.Control, conn: Any, phases: list[Phase]) -> dict:
    run_sender(ctl, phases, PipeSender(conn))
    return {}


# --------------------------------------------------------------------------- the one-copy floor


class FloorSender(Sender):
    """Slot `counter % POOL` of the segment takes message `counter`; the receiver hands each
    slot back by sending that counter, so at most POOL messages are ever in flight."""

    def __init__(self, shm: Any, slot_bytes: int, conn: Any) -> None:
        import numpy as np

        self.slots = [np.ndarray((slot_bytes,), np.uint8, shm.buf, k * slot_bytes) for k in range(POOL)]
        self.conn = conn
        self.sent = 0  # messages sent so far
        self.returned = 0  # slots handed back so far

    def _take_back(self) -> None:
        expect_reply(self.conn.recv_bytes(), self.returned)
        self.returned += 1

    def send(self, src: Any, k: int, stream: bool) -> None:
        import numpy as np

        if self.sent - self.returned == POOL:
            self._take_back()
        slot = self.sent % POOL
        np.copyto(self.slots[slot][: src.nbytes], src)
        self.conn.send_bytes(bytes((slot,)))
        self.sent += 1

    def wait_reply(self, i: int) -> None:
        while self.returned < self.sent:
            self._take_back()
        if self.returned != i + 1:
            raise AssertionError(f"{self.returned} slots handed back, expected {i + 1}")

    def close(self) -> None:
        self.slots.clear()  # the segment cannot be closed while views of it exist


class FloorReceiver(Receiver):
    def __init__(self, shm: Any, slot_bytes: int, conn: Any) -> None:
        self.shm, self.slot_bytes, self.conn = shm, slot_bytes, conn
        self.expected = 0

    def recv(self, size: int) -> tuple[Any, Any]:
        import numpy as np

        slot = self.conn.recv_bytes()[0]
        if slot != self.expected % POOL:
            raise AssertionError(f"notified slot {slot}, expected {self.expected % POOL}")
        self.expected += 1
        a = np.ndarray((size,), np.uint8, self.shm.buf, slot * self.slot_bytes)
        a.flags.writeable = False
        return a, None

    def release(self, token: Any, i: int) -> None:
        self.conn.send_bytes(reply_bytes(i))  # the slot is free again; in ping-pong, the reply

    def reply(self, i: int) -> None:
        pass  # release() has answered


def floor_receiver(ctl: bl.Control, shm_name: str, slot_bytes: int, conn: Any, phases: list[Phase]) -> dict:
    from multiprocessing import shared_memory

    shm = shared_memory.SharedMemory(name=shm_name)
    try:
        run_receiver(ctl, phases, FloorReceiver(shm, slot_bytes, conn))
    finally:
        shm.close()
    return {}


def floor_sender(ctl: bl.Control, shm_name: str, slot_bytes: int, conn: Any, phases: list[Phase]) -> dict:
    from multiprocessing import shared_memory

    shm = shared_memory.SharedMemory(name=shm_name)
    tx = FloorSender(shm, slot_bytes, conn)
    try:
        run_sender(ctl, phases, tx)
    finally:
        tx.close()
        shm.close()
    return {}


# --------------------------------------------------------------------------- the workload


def measure(phases: list[Phase]):
    def figures(res: dict[str, dict]) -> dict[str, float]:
        rx, tx = res["receiver"], res["sender"]
        if rx["received"] != tx["sent"]:
            raise AssertionError(f"sent {tx['sent']} arrays, received {rx['received']}")
        out = {k: v for k, v in rx.items() if k.startswith(("p50_us@", "p99_us@", "skipped@"))}
        for kind, size, _, n in phases:
            if kind == STREAM and f"t_end@{size}" in rx:
                out[f"gbps@{size}"] = n * size / (rx[f"t_end@{size}"] - tx[f"t_start@{size}"])
        out["sender_rss_mb"] = tx["peak_rss_mb"]
        out["receiver_rss_mb"] = rx["peak_rss_mb"]
        return out

    return figures


def ours_probe() -> tuple[str | None, str | None]:
    """Why `ours` and `ours_loan` cannot run here (None: they can), asked of a child process."""
    why = bl.ours_unavailable()
    if why:
        return why, why
    import subprocess

    probe = "import event_engine as e; print(hasattr(e.EventEngine, 'loan'))"
    r = subprocess.run([sys.executable, "-c", probe], check=False, capture_output=True, text=True)
    if r.stdout.strip() != "True":
        return None, "this event_engine has no EventEngine.loan()"
    return None, None


def peers(phases: list[Phase]) -> list[bl.Peer]:
    ctx = bl.CTX
    largest = max(p[1] for p in phases)

    def ours_roles(loan: bool):
        @contextlib.contextmanager
        def build() -> Iterator[list[Role]]:
            with bl.bus("w8") as name:
                yield [
                    Role("receiver", ours_receiver, (name, phases)),
                    Role("sender", ours_sender, (name, phases, loan)),
                ]

        return build

    @contextlib.contextmanager
    def iceoryx2() -> Iterator[list[Role]]:
        with bl.iceoryx2_scope() as scope:
            yield [
                Role("receiver", iox_receiver, (scope, phases)),
                Role("sender", iox_sender, (scope, phases)),
            ]

    @contextlib.contextmanager
    def zmq() -> Iterator[list[Role]]:
        with bl.ipc_dir() as d:
            eps = (f"ipc://{d}/data", f"ipc://{d}/ack")
            yield [
                Role("receiver", zmq_receiver, (*eps, phases)),
                Role("sender", zmq_sender, (*eps, phases)),
            ]

    @contextlib.contextmanager
    def mp_pipe() -> Iterator[list[Role]]:
        a, b = ctx.Pipe()
        try:
            yield [
                Role("receiver", pipe_receiver, (a, phases)),
                Role("sender", pipe_sender, (b, phases)),
            ]
        finally:
            a.close()
            b.close()

    @contextlib.contextmanager
    def shm_floor() -> Iterator[list[Role]]:
        with bl.shared_memory("w8", POOL * largest) as name:
            a, b = ctx.Pipe()
            try:
                yield [
                    Role("receiver", floor_receiver, (name, largest, a, phases)),
                    Role("sender", floor_sender, (name, largest, b, phases)),
                ]
            finally:
                a.close()
                b.close()

    m = measure(phases)
    no_numpy = bl.missing_module("numpy", "numpy")
    no_ours, no_loan = ours_probe()
    return [
        bl.Peer(
            "ours",
            "EventEngine(bus=...).put(topic, array) -> handler(array)",
            ours_roles(False),
            m,
            no_numpy or no_ours,
        ),
        bl.Peer(
            "ours_loan",
            "engine.loan(n), one copy into it, put(topic, loan) -> handler",
            ours_roles(True),
            m,
            no_numpy or no_loan,
        ),
        bl.Peer(
            "iceoryx2",
            "iceoryx2 pub/sub Slice[c_uint8], loan + memmove, event Listener wake-up",
            iceoryx2,
            m,
            no_numpy or bl.missing_module("iceoryx2", "iceoryx2"),
        ),
        bl.Peer(
            "zmq",
            "pyzmq PUSH/PULL ipc://, copy=False both ways",
            zmq,
            m,
            no_numpy or bl.missing_module("zmq", "pyzmq"),
        ),
        bl.Peer(
            "mp_pipe",
            "multiprocessing.Pipe send_bytes(array) / recv_bytes + np.frombuffer",
            mp_pipe,
            m,
            no_numpy,
        ),
        bl.Peer(
            "shm_floor",
            "multiprocessing.shared_memory, one np.copyto, 1-byte Pipe notification",
            shm_floor,
            m,
            no_numpy,
        ),
    ]


# --------------------------------------------------------------------------- the tables


def _medians(out: bl.Outcome, key: str) -> list[float]:
    return [r[key] for r in out.runs if key in r]


def _cell(out: bl.Outcome, size: int, keys: Sequence[str], fmt: str) -> str:
    """The medians of `keys` at `size`, joined by "/"; else why there are none."""
    if out.peer.unavailable:
        return "n/a"
    if out.failure and not out.runs:
        return "failed"
    if any(f"skipped@{size}" in r for r in out.runs):
        return "n/a (bus limit)"
    vals = [_medians(out, f"{k}@{size}") for k in keys]
    if not all(vals):
        return "-"
    return "/".join(format(bl.median(v), fmt) for v in vals)


def _ratio(outs: dict[str, bl.Outcome], num: str, den: str, key: str) -> str:
    a, b = outs.get(num), outs.get(den)
    if a is None or b is None:
        return "-"
    va, vb = _medians(a, key), _medians(b, key)
    if not va or not vb:
        return "-"
    return f"{bl.median(va) / bl.median(vb):.2f}x"


RATIOS = (
    ("ours", "shm_floor", "ours/floor"),
    ("ours_loan", "iceoryx2", "loan/iceoryx2"),
)


def print_tables(
    title: str,
    outcomes: Sequence[bl.Outcome],
    sizes: Sequence[int],
    notes: Sequence[str],
) -> None:
    outs = {o.peer.key: o for o in outcomes}
    headers = ["size", *(o.peer.key for o in outcomes), *(r[2] for r in RATIOS)]
    rows = [
        [
            size_label(s),
            *(_cell(o, s, ("p50_us", "p99_us"), ".1f") for o in outcomes),
            *(_ratio(outs, a, b, f"p50_us@{s}") for a, b, _ in RATIOS),
        ]
        for s in sizes
    ]
    print(f"\n{title}\n\none-way latency, microseconds: p50/p99 (each the median over the runs)\n")
    print("\n".join(bl.layout(headers, rows)))
    stream = [s for s in STREAM_SIZES if s in sizes]
    if stream:
        rows = [
            [
                size_label(s),
                *(_cell(o, s, ("gbps",), ".2f") for o in outcomes),
                *(_ratio(outs, a, b, f"gbps@{s}") for a, b, _ in RATIOS),
            ]
            for s in stream
        ]
        print("\nstreaming, GB/s (median over the runs)\n")
        print("\n".join(bl.layout(headers, rows)))
    print()
    for o in outcomes:
        state = ""
        if o.failure:
            state = f" ({'not available' if o.peer.unavailable else 'FAILED'}: {o.failure})"
        rss = ""
        if o.runs:
            rss = (
                f"; peak RSS MB sender {bl.median(_medians(o, 'sender_rss_mb')):.0f},"
                f" receiver {bl.median(_medians(o, 'receiver_rss_mb')):.0f}"
            )
        print(f"  {o.peer.key}: {o.peer.label}; runs: {len(o.runs)}{rss}{state}")
    for note in notes:
        print(f"  {note}")


def extra_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="uncounted round trips per size (default 10; --quick 3)",
    )
    ap.add_argument(
        "--stream-mib",
        type=int,
        default=None,
        help="MiB streamed per size, 1 MiB and 16 MiB (default 2048; --quick 64)",
    )
    ap.add_argument(
        "--sizes",
        help="comma-separated subset of the sizes in bytes (default: all six)",
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="one run, 30 round trips per size, 64 MiB streamed per size: under a minute",
    )


def main() -> None:
    quick = "--quick" in sys.argv[1:]
    args = bl.parse_args(__doc__, messages=30 if quick else 300, extra=extra_args, runs=1 if quick else 5)
    warmup = args.warmup if args.warmup is not None else (3 if quick else 10)
    stream_mib = args.stream_mib if args.stream_mib is not None else (64 if quick else 2048)
    sizes = SIZES if not args.sizes else tuple(int(s) for s in args.sizes.split(","))
    if not sizes or any(s < 24 for s in sizes):
        raise SystemExit("--sizes: each size must be at least 24 bytes (a counter, a clock, a counter)")
    phases = make_phases(sizes, args.messages, warmup, stream_mib)
    load = os.getloadavg()
    shm_before = bl.shm_entries()
    try:
        outcomes = bl.run_all(bl.select(peers(phases), args.peers), args.runs, args.timeout)
    except KeyboardInterrupt:
        left = bl.check_shm_clean(shm_before)
        print(
            f"\ninterrupted{'; ' + left if left else ': nothing of this run is left in /dev/shm'}",
            file=sys.stderr,
        )
        raise SystemExit(130) from None
    notes = [
        (
            f"{args.messages} round trips per size after {warmup} uncounted; replies carry the 8-byte counter"
            f" only; {stream_mib} MiB streamed per size"
        ),
        (
            "ours/floor, loan/iceoryx2: the first peer's figure over the second's (latency: below 1 is faster;"
            " GB/s: above 1 is faster)"
        ),
        bl.machine_note(load),
    ]
    if left := bl.check_shm_clean(shm_before):
        notes.append(left)
    title = (
        f"W8 large payloads, Python to Python (uint8 numpy arrays, checked on receipt), "
        f"median of {args.runs} run{'s' if args.runs != 1 else ''}"
    )
    print_tables(title, outcomes, sizes, notes)
    if args.json:
        bl.dump_json(outcomes)
    if any(o.failure and not o.peer.unavailable for o in outcomes):
        sys.exit(1)


if __name__ == "__main__":
    main()
