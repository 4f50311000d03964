"""W2 Python to Python (docs/benchmarks.md): one producer process, one consumer process.

The producer publishes ``Topic("Market.Data.AAPL")`` with args ``(i, 123.45, "AAPL")`` and
kwargs ``{"size": 100}``, N times (500,000 by default); the consumer handles each with a
handler registered on ``Market.Data.{symbol}`` (`benchlib.Tally`, which proves the run
delivered exactly N messages in order). Throughput is N over the time from the producer's
first put to the consumer handling the end marker that follows the last message.

Peers, each carrying the same ``(topic, args, kwargs)`` tuple pickled and routing it by topic
to the same handler:

* ``ours``         - two ``event_engine.EventEngine(bus=...)`` on one shared bus;
* ``mp_queue``     - ``multiprocessing.Queue``;
* ``mp_pipe``      - ``multiprocessing.Pipe`` (``send``/``recv``);
* ``faster_fifo``  - ``faster_fifo.Queue`` (``put``; the consumer takes batches with ``get_many``);
* ``zmq``          - pyzmq PUSH/PULL over ``ipc://``, pickle protocol 5;
* ``iceoryx2``     - iceoryx2 publish-subscribe, pickled bytes in a ``Slice[c_uint8]`` sample,
  lossless (``RetryUntilDelivered``, safe overflow off; publisher first, then subscriber, then
  ``update_connections`` and a check that the publisher sees one subscriber); the
  subscriber busy-polls ``receive()`` (the binding has no blocking receive).

    .venv/bin/python tools/bench/w2_python.py            # sets up target/bench/peers-venv on first use
    .venv/bin/python tools/bench/w2_python.py --runs 5 --messages 500000 --peers ours,zmq
"""

from __future__ import annotations

import contextlib
import pickle
import threading
from collections.abc import Iterator

import benchlib as bl
from benchlib import DONE_TOPIC, PATTERN, PRICE, SIZE, SYMBOL, TOPIC, Role, now_ns

PROTO = pickle.HIGHEST_PROTOCOL
WAIT = 600.0  # seconds a consumer waits for the end marker before giving up


def _consumed(tally: bl.Tally, t_end: int) -> dict:
    return {**tally.result(), "t_end": t_end}


# --------------------------------------------------------------------------- ours


def ours_consumer(ctl: bl.Control, bus: str, group: str | None = None) -> dict:
    from event_engine import EventEngine, Topic

    engine = EventEngine(bus=bus, group=group)
    tally = bl.Tally()
    done = threading.Event()
    t_end = [0]

    def on_done() -> None:
        t_end[0] = now_ns()
        done.set()

    engine.register_handler(Topic(PATTERN), tally)
    engine.register_handler(Topic(DONE_TOPIC), on_done)
    engine.start()
    try:
        ctl.ready()
        done.wait(WAIT)
        ctl.report(_consumed(tally, t_end[0]))
        ctl.wait_finish()
    finally:
        engine.stop()
    return {}


def ours_producer(ctl: bl.Control, bus: str, n: int) -> dict:
    from event_engine import EventEngine, Topic

    # A publisher that never calls start(): an engine without hooks wants nothing from the bus,
    # so nothing is addressed to it and nothing waits for it.
    engine = EventEngine(bus=bus)
    topic, done = Topic(TOPIC), Topic(DONE_TOPIC)
    put = engine.put
    try:
        with bl.timed_burst(ctl):
            for i in range(n):
                put(topic, i, PRICE, SYMBOL, size=SIZE)
            put(done)
    finally:
        engine.close()
    return {}


# --------------------------------------------------------------------------- multiprocessing, faster-fifo


def queue_producer(ctl: bl.Control, q, n: int, consumers: int = 1) -> dict:
    put = q.put
    with bl.timed_burst(ctl):
        for i in range(n):
            put((TOPIC, (i, PRICE, SYMBOL), {"size": SIZE}))
        for _ in range(consumers):  # one end marker for each consumer sharing the queue
            put(None)
    return {}


def queue_consumer(ctl: bl.Control, q) -> dict:
    tally = bl.Tally()
    ctl.ready()
    bl.dispatch_until_end(q.get, {TOPIC: tally})
    ctl.report(_consumed(tally, now_ns()))
    ctl.wait_finish()
    return {}


def pipe_producer(ctl: bl.Control, conn, n: int) -> dict:
    send = conn.send
    with bl.timed_burst(ctl):
        for i in range(n):
            send((TOPIC, (i, PRICE, SYMBOL), {"size": SIZE}))
        send(None)
    return {}


def pipe_consumer(ctl: bl.Control, conn) -> dict:
    tally = bl.Tally()
    ctl.ready()
    bl.dispatch_until_end(conn.recv, {TOPIC: tally})
    ctl.report(_consumed(tally, now_ns()))
    ctl.wait_finish()
    return {}


def fifo_producer(ctl: bl.Control, q, n: int, consumers: int = 1) -> dict:
    put = q.put
    with bl.timed_burst(ctl):
        for i in range(n):
            put((TOPIC, (i, PRICE, SYMBOL), {"size": SIZE}), timeout=WAIT)
        for _ in range(consumers):
            put(None, timeout=WAIT)
    return {}


def fifo_consumer(ctl: bl.Control, q) -> dict:
    tally = bl.Tally()
    routes = {TOPIC: tally}
    get_many = q.get_many
    ctl.ready()
    running = True
    while running:
        batch = get_many(timeout=WAIT, max_messages_to_get=1000)
        for k, m in enumerate(batch):
            if m is None:
                running = False
                # Consumers sharing the queue have one end marker each: hand back the
                # others this batch took (only end markers follow the first one).
                for _ in range(len(batch) - k - 1):
                    q.put(None, timeout=WAIT)
                break
            topic, args, kwargs = m
            routes[topic](*args, **kwargs)
    ctl.report(_consumed(tally, now_ns()))
    ctl.wait_finish()
    return {}


# --------------------------------------------------------------------------- pyzmq


def zmq_producer(ctl: bl.Control, endpoint: str, n: int) -> dict:
    with bl.zmq_socket("PUSH", endpoint, bind=False) as sock:
        send, dumps = sock.send, pickle.dumps
        with bl.timed_burst(ctl):
            for i in range(n):
                send(dumps((TOPIC, (i, PRICE, SYMBOL), {"size": SIZE}), PROTO))
            send(dumps(None, PROTO))
    return {}


def zmq_consumer(ctl: bl.Control, endpoint: str) -> dict:
    with bl.zmq_socket("PULL", endpoint, bind=True) as sock:
        tally = bl.Tally()
        ctl.ready()
        bl.dispatch_until_end(sock.recv, {TOPIC: tally}, pickle.loads)
        ctl.report(_consumed(tally, now_ns()))
        ctl.wait_finish()
    return {}


# --------------------------------------------------------------------------- iceoryx2

IOX_MAX_SLICE = 256  # bytes; the pickled message is about 65
IOX_BUFFER = 256  # samples a subscriber may hold unread


def _iox_service(scope: tuple[str, str]):
    """The node and the service of one trial, in the trial's own iceoryx2 file namespace."""
    import ctypes

    iox2, node = bl.iox_node(scope)
    service = (
        node.service_builder(iox2.ServiceName.new("bench"))
        .publish_subscribe(iox2.Slice[ctypes.c_uint8])
        .enable_safe_overflow(False)
        .subscriber_max_buffer_size(IOX_BUFFER)
        .max_publishers(1)
        .max_subscribers(4)
        .open_or_create()
    )
    return iox2, node, service


def iox_producer(ctl: bl.Control, scope: tuple[str, str], n: int, subscribers: int = 1) -> dict:
    import ctypes

    iox2, node, service = _iox_service(scope)
    publisher = (
        service.publisher_builder()
        .initial_max_slice_len(IOX_MAX_SLICE)
        .allocation_strategy(iox2.AllocationStrategy.PowerOfTwo)
        .backpressure_strategy(iox2.BackpressureStrategy.RetryUntilDelivered)
        .create()
    )
    loan, dumps, memmove = publisher.loan_slice_uninit, pickle.dumps, ctypes.memmove
    try:
        ctl.ready()  # the subscriber is created after this, then the start is given
        ctl.wait_go()
        publisher.update_connections()
        seen = service.dynamic_config.number_of_subscribers
        if seen != subscribers:
            raise RuntimeError(f"iceoryx2 publisher sees {seen} subscribers, expected {subscribers}")
        delivered = 0
        t0 = now_ns()
        for i in range(n):
            data = dumps((TOPIC, (i, PRICE, SYMBOL), {"size": SIZE}), PROTO)
            sample = loan(len(data))
            memmove(sample.payload_ptr, data, len(data))
            delivered += sample.assume_init().send()
        data = dumps(None, PROTO)
        sample = loan(len(data))
        memmove(sample.payload_ptr, data, len(data))
        delivered += sample.assume_init().send()
        ctl.report({"t_start": t0, "t_sent": now_ns(), "delivered": delivered})
        ctl.wait_finish()
    finally:
        publisher.delete()
        del service, node
    return {}


def iox_consumer(ctl: bl.Control, scope: tuple[str, str]) -> dict:
    import ctypes

    _, node, service = _iox_service(scope)
    subscriber = service.subscriber_builder().buffer_size(IOX_BUFFER).create()
    tally = bl.Tally()
    routes = {TOPIC: tally}
    receive, loads, string_at = subscriber.receive, pickle.loads, ctypes.string_at
    try:
        ctl.ready()
        while True:
            sample = receive()
            if sample is None:
                continue  # no blocking receive in the binding: poll
            # The header's element count is the slice length; string_at copies the bytes out
            # in one call, about 1 us less than sample.payload().as_memory_view() here.
            m = loads(string_at(sample.payload_ptr, sample.header.number_of_elements))
            del sample
            if m is None:
                break
            topic, args, kwargs = m
            routes[topic](*args, **kwargs)
        ctl.report(_consumed(tally, now_ns()))
        ctl.wait_finish()
    finally:
        subscriber.delete()
        del service, node
    return {}


# --------------------------------------------------------------------------- the workload


def measure(n: int):
    def figures(res: dict[str, dict]) -> dict[str, float]:
        prod, cons = res["producer"], res["consumer"]
        bl.expect_exact(n, [cons])
        if "delivered" in prod and prod["delivered"] != n + 1:
            raise AssertionError(f"iceoryx2 send() delivered {prod['delivered']} of {n + 1} samples")
        return {
            "msg_per_s": n * 1e9 / (cons["t_end"] - prod["t_start"]),
            # How fast the producer got rid of the messages: where the end-to-end time went.
            "producer_msg_per_s": n * 1e9 / (prod["t_sent"] - prod["t_start"]),
            "pub_rss_mb": prod["peak_rss_mb"],
            "sub_rss_mb": cons["peak_rss_mb"],
        }

    return figures


def peers(n: int) -> list[bl.Peer]:
    ctx = bl.CTX

    @contextlib.contextmanager
    def ours() -> Iterator[list[Role]]:
        with bl.bus("w2") as name:
            yield [Role("consumer", ours_consumer, (name,)), Role("producer", ours_producer, (name, n))]

    @contextlib.contextmanager
    def mp_queue() -> Iterator[list[Role]]:
        q = ctx.Queue()
        yield [Role("consumer", queue_consumer, (q,)), Role("producer", queue_producer, (q, n))]

    @contextlib.contextmanager
    def mp_pipe() -> Iterator[list[Role]]:
        rx, tx = ctx.Pipe(duplex=False)
        yield [Role("consumer", pipe_consumer, (rx,)), Role("producer", pipe_producer, (tx, n))]

    @contextlib.contextmanager
    def faster_fifo() -> Iterator[list[Role]]:
        import faster_fifo as ff

        q = ff.Queue(max_size_bytes=1_000_000)
        yield [Role("consumer", fifo_consumer, (q,)), Role("producer", fifo_producer, (q, n))]

    @contextlib.contextmanager
    def zmq() -> Iterator[list[Role]]:
        with bl.ipc_dir() as d:
            ep = f"ipc://{d}/w2"
            yield [Role("consumer", zmq_consumer, (ep,)), Role("producer", zmq_producer, (ep, n))]

    @contextlib.contextmanager
    def iceoryx2() -> Iterator[list[Role]]:
        with bl.iceoryx2_scope() as scope:
            yield [Role("producer", iox_producer, (scope, n)), Role("consumer", iox_consumer, (scope,))]

    m = measure(n)
    return [
        bl.Peer("ours", "event_engine EventEngine(bus=...) on a shared-memory bus", ours, m, bl.ours_unavailable()),
        bl.Peer("mp_queue", "multiprocessing.Queue (unbounded)", mp_queue, m),
        bl.Peer("mp_pipe", "multiprocessing.Pipe send/recv", mp_pipe, m),
        bl.Peer(
            "faster_fifo",
            "faster_fifo.Queue 1 MB, get_many",
            faster_fifo,
            m,
            bl.missing_module("faster_fifo", "faster-fifo"),
        ),
        bl.Peer("zmq", "pyzmq PUSH/PULL ipc://, pickle 5", zmq, m, bl.missing_module("zmq", "pyzmq")),
        bl.Peer(
            "iceoryx2",
            "iceoryx2 pub/sub Slice[c_uint8], RetryUntilDelivered, subscriber polls",
            iceoryx2,
            m,
            bl.missing_module("iceoryx2", "iceoryx2"),
        ),
    ]


def main() -> None:
    args = bl.parse_args(__doc__, messages=500_000)
    bl.run_and_report(
        args,
        peers(args.messages),
        f"W2 Python to Python: {args.messages:,} messages per run, median of {args.runs} runs (min..max)",
        [
            bl.Column("msg/s", "msg_per_s", spread=True),
            bl.Column("producer msg/s", "producer_msg_per_s"),
            bl.Column("pub RSS MB", "pub_rss_mb", ".1f"),
            bl.Column("sub RSS MB", "sub_rss_mb", ".1f"),
        ],
    )


if __name__ == "__main__":
    main()
