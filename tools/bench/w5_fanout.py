"""W5 fan-out (docs/benchmarks.md): one publisher process, three subscriber processes, each
receiving every message.

The message and the handler are W2's (``Market.Data.AAPL``, ``(i, 123.45, "AAPL")``,
``{"size": 100}``, a `benchlib.Tally` on ``Market.Data.{symbol}``); every subscriber must
handle exactly N messages, in order. Throughput is N over the time from the first publish
to the last subscriber handling the end marker (``deliveries/s`` is three times that).

Peers that can fan out:

* ``ours``        - four ``EventEngine(bus=...)`` on one bus (every attached engine gets every message);
* ``zmq_pubsub``  - pyzmq XPUB/SUB over ``ipc://``, high-water marks off (0) so nothing is
  dropped; the publisher starts once it has seen all three subscriptions (XPUB_VERBOSE);
* ``zmq_push3``   - pyzmq, three PUSH sockets to three PULL sockets, pickled once, sent three times;
* ``mp_queue3``   - three ``multiprocessing.Queue``, ``put`` on each (each put pickles);
* ``mp_pipe3``    - three ``multiprocessing.Pipe``, pickled once, ``send_bytes`` on each;
* ``iceoryx2``    - one publisher, three subscribers (W2's lossless settings); the
  subscribers busy-poll, so four busy processes share the machine's cores.

    .venv/bin/python tools/bench/w5_fanout.py --runs 5 --messages 200000
"""

from __future__ import annotations

import contextlib
import pickle
from collections.abc import Iterator

import benchlib as bl
import w2_python as w2
from benchlib import PRICE, SIZE, SYMBOL, TOPIC, Role, now_ns

SUBSCRIBERS = 3
PROTO = pickle.HIGHEST_PROTOCOL


def zmq_pub_producer(ctl: bl.Control, endpoint: str, n: int, subscribers: int) -> dict:
    with bl.zmq_socket("XPUB", endpoint, bind=True, options={"SNDHWM": 0, "XPUB_VERBOSE": 1}) as sock:
        send, dumps = sock.send, pickle.dumps
        ctl.ready()
        ctl.wait_go()
        # A subscription reaches the XPUB socket once it is in effect: after one from each
        # subscriber, nothing published is lost to a late joiner.
        for k in range(subscribers):
            if not sock.poll(60_000):
                raise TimeoutError(f"only {k} of {subscribers} subscriptions arrived")
            sock.recv()
        t0 = now_ns()
        for i in range(n):
            send(dumps((TOPIC, (i, PRICE, SYMBOL), {"size": SIZE}), PROTO))
        send(dumps(None, PROTO))
        ctl.report({"t_start": t0, "t_sent": now_ns()})
        ctl.wait_finish()
    return {}


def zmq_sub_consumer(ctl: bl.Control, endpoint: str) -> dict:
    with bl.zmq_socket("SUB", endpoint, bind=False, options={"RCVHWM": 0}) as sock:
        sock.subscribe(b"")
        tally = bl.Tally()
        ctl.ready()
        bl.dispatch_until_end(sock.recv, {TOPIC: tally}, pickle.loads)
        ctl.report({**tally.result(), "t_end": now_ns()})
        ctl.wait_finish()
    return {}


def _send_to_each(ctl: bl.Control, sends: list, n: int) -> None:
    """The timed burst of a producer with one connection per subscriber: each message is
    pickled once and the same bytes are sent on every connection, then one end marker on each."""
    dumps = pickle.dumps
    with bl.timed_burst(ctl):
        for i in range(n):
            data = dumps((TOPIC, (i, PRICE, SYMBOL), {"size": SIZE}), PROTO)
            for send in sends:
                send(data)
        data = dumps(None, PROTO)
        for send in sends:
            send(data)


def zmq_push_producer(ctl: bl.Control, endpoints: list[str], n: int) -> dict:
    import zmq

    zctx = zmq.Context()  # one context (one I/O thread) for all three sockets
    socks = [zctx.socket(zmq.PUSH) for _ in endpoints]
    try:
        for sock, ep in zip(socks, endpoints, strict=True):
            sock.connect(ep)
        _send_to_each(ctl, [s.send for s in socks], n)
    finally:
        for sock in socks:
            sock.close(linger=0)
        zctx.term()
    return {}


def queues_producer(ctl: bl.Control, queues: list, n: int) -> dict:
    puts = [q.put for q in queues]
    with bl.timed_burst(ctl):
        for i in range(n):
            msg = (TOPIC, (i, PRICE, SYMBOL), {"size": SIZE})
            for put in puts:
                put(msg)
        for put in puts:
            put(None)
    return {}


def pipes_producer(ctl: bl.Control, conns: list, n: int) -> dict:
    _send_to_each(ctl, [c.send_bytes for c in conns], n)
    return {}


def measure(n: int):
    def figures(res: dict[str, dict]) -> dict[str, float]:
        prod = res["producer"]
        subs = [res[f"subscriber{k}"] for k in range(SUBSCRIBERS)]
        bl.expect_exact(n, subs)
        if "delivered" in prod and prod["delivered"] != SUBSCRIBERS * (n + 1):
            raise AssertionError(f"iceoryx2 send() delivered {prod['delivered']} of {SUBSCRIBERS * (n + 1)} samples")
        rate = n * 1e9 / (max(s["t_end"] for s in subs) - prod["t_start"])
        return {
            "msg_per_s": rate,
            "deliveries_per_s": rate * SUBSCRIBERS,
            "producer_msg_per_s": n * 1e9 / (prod["t_sent"] - prod["t_start"]),
            "pub_rss_mb": prod["peak_rss_mb"],
            "sub_rss_mb": max(s["peak_rss_mb"] for s in subs),
        }

    return figures


def peers(n: int) -> list[bl.Peer]:
    ctx = bl.CTX
    subs = range(SUBSCRIBERS)

    @contextlib.contextmanager
    def ours() -> Iterator[list[Role]]:
        with bl.bus("w5") as name:
            yield [
                *(Role(f"subscriber{k}", w2.ours_consumer, (name,)) for k in subs),
                Role("producer", w2.ours_producer, (name, n)),
            ]

    @contextlib.contextmanager
    def zmq_pubsub() -> Iterator[list[Role]]:
        with bl.ipc_dir() as d:
            ep = f"ipc://{d}/w5"
            yield [
                Role("producer", zmq_pub_producer, (ep, n, SUBSCRIBERS)),
                *(Role(f"subscriber{k}", zmq_sub_consumer, (ep,)) for k in subs),
            ]

    @contextlib.contextmanager
    def zmq_push3() -> Iterator[list[Role]]:
        with bl.ipc_dir() as d:
            eps = [f"ipc://{d}/w5-{k}" for k in subs]
            yield [
                *(Role(f"subscriber{k}", w2.zmq_consumer, (eps[k],)) for k in subs),
                Role("producer", zmq_push_producer, (eps, n)),
            ]

    @contextlib.contextmanager
    def mp_queue3() -> Iterator[list[Role]]:
        qs = [ctx.Queue() for _ in subs]
        yield [
            *(Role(f"subscriber{k}", w2.queue_consumer, (qs[k],)) for k in subs),
            Role("producer", queues_producer, (qs, n)),
        ]

    @contextlib.contextmanager
    def mp_pipe3() -> Iterator[list[Role]]:
        ends = [ctx.Pipe(duplex=False) for _ in subs]
        yield [
            *(Role(f"subscriber{k}", w2.pipe_consumer, (ends[k][0],)) for k in subs),
            Role("producer", pipes_producer, ([tx for _, tx in ends], n)),
        ]

    @contextlib.contextmanager
    def iceoryx2() -> Iterator[list[Role]]:
        with bl.iceoryx2_scope() as scope:
            yield [
                Role("producer", w2.iox_producer, (scope, n, SUBSCRIBERS)),
                *(Role(f"subscriber{k}", w2.iox_consumer, (scope,)) for k in subs),
            ]

    m = measure(n)
    no_zmq = bl.missing_module("zmq", "pyzmq")
    return [
        bl.Peer("ours", "event_engine EventEngine(bus=...), 3 subscriber engines", ours, m, bl.ours_unavailable()),
        bl.Peer("zmq_pubsub", "pyzmq XPUB/SUB ipc://, HWM 0, pickle 5", zmq_pubsub, m, no_zmq),
        bl.Peer("zmq_push3", "pyzmq 3x PUSH/PULL ipc://, one pickle", zmq_push3, m, no_zmq),
        bl.Peer("mp_queue3", "3x multiprocessing.Queue, put on each", mp_queue3, m),
        bl.Peer("mp_pipe3", "3x multiprocessing.Pipe, one pickle, send_bytes", mp_pipe3, m),
        bl.Peer(
            "iceoryx2",
            "iceoryx2 pub/sub, 3 polling subscribers, RetryUntilDelivered",
            iceoryx2,
            m,
            bl.missing_module("iceoryx2", "iceoryx2"),
        ),
    ]


def main() -> None:
    args = bl.parse_args(__doc__, messages=200_000)
    bl.run_and_report(
        args,
        peers(args.messages),
        f"W5 fan-out: 1 publisher, {SUBSCRIBERS} subscribers, {args.messages:,} messages each per run,"
        f" median of {args.runs} runs (min..max)",
        [
            bl.Column("msg/s", "msg_per_s", spread=True),
            bl.Column("deliveries/s", "deliveries_per_s"),
            bl.Column("producer msg/s", "producer_msg_per_s"),
            bl.Column("pub RSS MB", "pub_rss_mb", ".1f"),
            bl.Column("sub RSS MB (max)", "sub_rss_mb", ".1f"),
        ],
    )


if __name__ == "__main__":
    main()
