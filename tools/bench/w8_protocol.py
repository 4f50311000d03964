"""What both ends of every W8 peer share (tools/bench/w8_large.py): the plan of a trial, the
array's stamp and its check on receipt, the receiver's account, and the two loops that drive a
peer's sending and receiving ends.

An array of n >= 24 bytes carries message i: bytes 0-7 and the last 8 bytes hold i, bytes 8-15
the sender's clock (`time.perf_counter_ns()`) read just before it was written; all little-endian
uint64. Counters run on across a trial, so a lost, repeated or reordered array fails the run.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import benchlib as bl
from benchlib import now_ns

SIZES = (64, 4 << 10, 64 << 10, 1 << 20, 4 << 20, 16 << 20)
STREAM_SIZES = (1 << 20, 16 << 20)
POOL = 4  # source arrays per size in the sender; also the floor's slots and iceoryx2's buffer
WAIT = 120.0  # seconds one side waits for the other before giving up

LAT, STREAM = "latency", "stream"
Phase = tuple[str, int, int, int]  # (LAT or STREAM, size in bytes, warm-up messages, counted messages)


def size_label(n: int) -> str:
    for unit, shift in (("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n} B"


def make_phases(sizes: Sequence[int], round_trips: int, warmup: int, stream_mib: int) -> list[Phase]:
    phases: list[Phase] = [(LAT, s, warmup, round_trips) for s in sizes]
    for s in STREAM_SIZES:
        if s in sizes:
            phases.append((STREAM, s, 0, max(POOL, (stream_mib << 20) // s)))
    return phases


# --------------------------------------------------------------------------- both ends


def sources(phases: list[Phase]) -> dict[int, list[Any]]:
    """The sender's arrays: POOL per size, filled with a byte pattern (made before the trial starts)."""
    import numpy as np

    pattern = np.arange(256, dtype=np.uint8)
    return {s: [np.resize(pattern, s) for _ in range(POOL)] for s in {p[1] for p in phases}}


def stamp(a: Any, i: int, t_ns: int) -> None:
    head = a[:16].view("<u8")
    head[0] = i
    head[1] = t_ns
    a[-8:].view("<u8")[0] = i


def check(a: Any, i: int, size: int) -> int:
    """Raises unless `a` is message `i`'s uint8 array of `size` bytes; returns its sender's clock."""
    import numpy as np

    if not isinstance(a, np.ndarray):
        a = np.frombuffer(a, np.uint8)
    if a.dtype != np.uint8 or a.shape != (size,):
        raise AssertionError(f"message {i}: received a {a.dtype} array of shape {a.shape}, expected uint8 ({size},)")
    head = a[:16].view("<u8")
    first, last = int(head[0]), int(a[-8:].view("<u8")[0])
    if first != i or last != i:
        raise AssertionError(f"message {i} of {size} bytes: its first/last 8 bytes carry {first}/{last}")
    return int(head[1])


def reply_bytes(i: int) -> bytes:
    return i.to_bytes(8, "little")


def expect_reply(data: Any, i: int) -> None:
    got = int.from_bytes(bytes(data), "little")
    if got != i:
        raise AssertionError(f"reply carries counter {got}, expected {i}")


class Receipts:
    """The receiver's account of the plan: checks each array in turn, records latencies and
    the end of each stream, and says when a reply is due."""

    def __init__(self, phases: list[Phase]) -> None:
        self._steps = iter(
            [(kind, size, k >= warm, k == warm + n - 1) for kind, size, warm, n in phases for k in range(warm + n)]
        )
        self._total = sum(warm + n for _, _, warm, n in phases)
        self.next = 0  # the counter the next array must carry
        self.latencies: dict[int, list[int]] = {}
        self.t_end: dict[int, int] = {}
        self.done = threading.Event()
        self.error: str | None = None
        if self._total == 0:
            self.done.set()

    def take(self, a: Any) -> int | None:
        """Checks the next array; returns the counter to reply with, or None (no reply due)."""
        now = now_ns()
        kind, size, counted, last = next(self._steps)
        i = self.next
        t_sent = check(a, i, size)
        self.next += 1
        if self.next == self._total:
            self.done.set()
        if kind == LAT:
            if counted:
                self.latencies.setdefault(size, []).append(now - t_sent)
            return i
        if last:
            self.t_end[size] = now_ns()
            return i
        return None

    def result(self) -> dict:
        def pct(xs: list[int], p: float) -> float:
            xs = sorted(xs)
            return xs[min(len(xs) - 1, int(len(xs) * p))] / 1e3

        out: dict[str, float] = {"received": self.next}
        for size, xs in self.latencies.items():
            out[f"p50_us@{size}"] = pct(xs, 0.50)
            out[f"p99_us@{size}"] = pct(xs, 0.99)
        for size, t in self.t_end.items():
            out[f"t_end@{size}"] = t
        return out


class Sender:
    """A peer's sending end: `send` hands an array over (the peer's one copy, or none);
    `reuse(k)` returns once pool array `k` may be written again; `wait_reply(i)` waits for the
    reply carrying counter `i`."""

    def reuse(self, k: int) -> None:
        pass

    def send(self, src: Any, k: int, stream: bool) -> None:
        raise NotImplementedError

    def wait_reply(self, i: int) -> None:
        raise NotImplementedError


class Receiver:
    """A peer's receiving end without handlers: `recv(size)` -> (array, token); `release`
    gives the message back once its array is dropped; `reply(i)` answers with counter `i`."""

    def recv(self, size: int) -> tuple[Any, Any]:
        raise NotImplementedError

    def release(self, token: Any, i: int) -> None:
        pass

    def reply(self, i: int) -> None:
        raise NotImplementedError


def receive_loop(phases: list[Phase], rx: Receiver) -> dict:
    r = Receipts(phases)
    for _, size, warm, n in phases:
        for _ in range(warm + n):
            a, token = rx.recv(size)
            counter = r.take(a)
            del a
            rx.release(token, r.next - 1)
            if counter is not None:
                rx.reply(counter)
    return r.result()


def send_loop(phases: list[Phase], pools: dict[int, list[Any]], tx: Sender) -> dict:
    i = 0
    out: dict[str, float] = {}
    for kind, size, warm, n in phases:
        pool, stream = pools[size], kind == STREAM
        if stream:
            out[f"t_start@{size}"] = now_ns()
        for k in range(warm + n):
            tx.reuse(k % POOL)
            src = pool[k % POOL]
            stamp(src, i, now_ns())
            tx.send(src, k % POOL, stream)
            if not stream:
                tx.wait_reply(i)
            i += 1
        if stream:
            tx.wait_reply(i - 1)
    out["sent"] = i
    return out


def run_receiver(ctl: bl.Control, phases: list[Phase], rx: Receiver) -> None:
    ctl.ready()
    result = receive_loop(phases, rx)
    ctl.report(result)
    ctl.wait_finish()


def run_sender(ctl: bl.Control, phases: list[Phase], tx: Sender) -> None:
    pools = sources(phases)
    ctl.ready()
    ctl.wait_go()
    ctl.report(send_loop(phases, pools, tx))
    ctl.wait_finish()
