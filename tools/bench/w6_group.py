"""W6 group (docs/benchmarks.md): one publisher process, three worker processes sharing the
work: each message is handled by exactly one worker.

The message and the handler are W2's. The workers' tallies together must hold each of the N
indices exactly once. Throughput is N over the time from the first publish to the moment the
last worker has seen its end marker (every message was handed out before any end marker, and
a worker handles its messages in the order it gets them).

* ``ours``        - ``EventEngine(bus=..., group="workers")`` in each worker. A group hands each
  message to one member, so one end marker reaches one worker: the publisher keeps sending
  end markers until every worker has seen one (each worker flags its first through an event);
  workers keep running until the end, and their final counts are checked too;
* ``mp_queue``    - one ``multiprocessing.Queue``, three consumers, one ``None`` each;
* ``faster_fifo`` - one ``faster_fifo.Queue``, three consumers taking batches (``get_many``).

    .venv/bin/python tools/bench/w6_group.py --runs 5 --messages 200000
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import benchlib as bl
import w2_python as w2
from benchlib import DONE_TOPIC, PATTERN, PRICE, SIZE, SYMBOL, TOPIC, Role, now_ns

WORKERS = 3
GROUP = "workers"
WAIT = 600.0
MAX_END_MARKERS = 1_000_000  # a bound, so a group that never reaches a worker fails instead of hanging


def ours_worker(ctl: bl.Control, bus: str, group: str, saw_end) -> dict:
    from event_engine import EventEngine, Topic

    engine = EventEngine(bus=bus, group=group)
    tally = bl.Tally()
    first: dict = {}
    done = threading.Event()

    def on_done() -> None:
        if not first:
            first.update(tally.result(), t_end=now_ns())
            saw_end.set()
            done.set()

    engine.register_handler(Topic(PATTERN), tally)
    engine.register_handler(Topic(DONE_TOPIC), on_done)
    engine.start()
    try:
        ctl.ready()
        done.wait(WAIT)
        ctl.report(first or {**tally.result(), "t_end": 0})
        ctl.wait_finish()
    finally:
        engine.stop()
    return {"final_count": tally.count}


def ours_group_producer(ctl: bl.Control, bus: str, n: int, saw_end: list) -> dict:
    from event_engine import EventEngine, Topic

    engine = EventEngine(bus=bus)
    engine.start()  # attached without a group: it gets (and skips) every message
    topic, done = Topic(TOPIC), Topic(DONE_TOPIC)
    put = engine.put
    try:
        ctl.ready()
        ctl.wait_go()
        t0 = now_ns()
        for i in range(n):
            put(topic, i, PRICE, SYMBOL, size=SIZE)
        t_sent = now_ns()
        markers = 0
        waiting = list(saw_end)
        while waiting:
            if markers >= MAX_END_MARKERS:
                raise RuntimeError(f"{markers} end markers sent and {len(waiting)} workers got none")
            put(done)
            markers += 1
            # Wait on a worker's event, a little at a time, between markers.
            waiting[0].wait(0.001)
            waiting = [e for e in waiting if not e.is_set()]
        ctl.report({"t_start": t0, "t_sent": t_sent, "end_markers": markers})
        ctl.wait_finish()
    finally:
        engine.stop()
    return {}


def measure(n: int):
    def figures(res: dict[str, dict]) -> dict[str, float]:
        prod = res["producer"]
        workers = [res[f"worker{k}"] for k in range(WORKERS)]
        bl.expect_exact(n, workers, shared=True)
        finals = [w.get("final_count", w["count"]) for w in workers]
        if sum(finals) != n:
            raise AssertionError(f"workers' final counts {finals} sum to {sum(finals)}, not {n}")
        out = {
            "msg_per_s": n * 1e9 / (max(w["t_end"] for w in workers) - prod["t_start"]),
            "producer_msg_per_s": n * 1e9 / (prod["t_sent"] - prod["t_start"]),
            "share_min": min(w["count"] for w in workers) / n * 100,
            "share_max": max(w["count"] for w in workers) / n * 100,
            "pub_rss_mb": prod["peak_rss_mb"],
            "sub_rss_mb": max(w["peak_rss_mb"] for w in workers),
        }
        if "end_markers" in prod:
            out["end_markers"] = prod["end_markers"]
        return out

    return figures


def peers(n: int) -> list[bl.Peer]:
    ctx = bl.CTX
    ws = range(WORKERS)

    @contextlib.contextmanager
    def ours() -> Iterator[list[Role]]:
        events = [ctx.Event() for _ in ws]
        with bl.bus("w6") as name:
            yield [
                *(Role(f"worker{k}", ours_worker, (name, GROUP, events[k])) for k in ws),
                Role("producer", ours_group_producer, (name, n, events)),
            ]

    @contextlib.contextmanager
    def mp_queue() -> Iterator[list[Role]]:
        q = ctx.Queue()
        yield [
            *(Role(f"worker{k}", w2.queue_consumer, (q,)) for k in ws),
            Role("producer", w2.queue_producer, (q, n, WORKERS)),
        ]

    @contextlib.contextmanager
    def faster_fifo() -> Iterator[list[Role]]:
        import faster_fifo as ff

        q = ff.Queue(max_size_bytes=1_000_000)
        yield [
            *(Role(f"worker{k}", w2.fifo_consumer, (q,)) for k in ws),
            Role("producer", w2.fifo_producer, (q, n, WORKERS)),
        ]

    m = measure(n)
    return [
        bl.Peer(
            "ours", f'event_engine EventEngine(bus=..., group="{GROUP}") x{WORKERS}', ours, m, bl.ours_unavailable()
        ),
        bl.Peer("mp_queue", f"one multiprocessing.Queue, {WORKERS} consumers", mp_queue, m),
        bl.Peer(
            "faster_fifo",
            f"one faster_fifo.Queue, {WORKERS} consumers, get_many",
            faster_fifo,
            m,
            bl.missing_module("faster_fifo", "faster-fifo"),
        ),
    ]


def main() -> None:
    args = bl.parse_args(__doc__, messages=200_000)
    bl.run_and_report(
        args,
        peers(args.messages),
        f"W6 group: 1 publisher, {WORKERS} workers sharing {args.messages:,} messages per run,"
        f" median of {args.runs} runs (min..max)",
        [
            bl.Column("msg/s", "msg_per_s", spread=True),
            bl.Column("producer msg/s", "producer_msg_per_s"),
            bl.Column("share min %", "share_min", ".1f"),
            bl.Column("share max %", "share_max", ".1f"),
            bl.Column("end markers", "end_markers", ",.0f"),
            bl.Column("pub RSS MB", "pub_rss_mb", ".1f"),
            bl.Column("worker RSS MB (max)", "sub_rss_mb", ".1f"),
        ],
        ["share: the smallest and largest part of the messages one worker handled"],
    )


if __name__ == "__main__":
    main()
