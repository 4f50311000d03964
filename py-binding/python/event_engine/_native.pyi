"""Type stubs of the native extension ``event_engine._native``."""

import enum
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any, TypedDict, final

from typing_extensions import Self

__version__: str

class _TopicMatchNode(TypedDict):
    matched: bool
    part_a: TopicPart | None
    part_b: TopicPart | None
    literal: str | None

class _HandlerStats(TypedDict):
    calls: int
    total_time: float

class TopicType(enum.IntEnum):
    """Kind of a topic part."""

    TOPIC_PART_EXACT = 0
    TOPIC_PART_ANY = 1
    TOPIC_PART_RANGE = 2
    TOPIC_PART_PATTERN = 3

class TopicPart:
    """Base class of the parts of a topic."""

    @property
    def ttype(self) -> TopicType: ...
    @property
    def addr(self) -> int: ...
    @property
    def owner(self) -> bool:
        """True for a part made on its own, False for one taken from a topic (PyEventEngine
        0.6.2's ownership flag)."""
    def next(self) -> TopicPart:
        """The part after this one in the topic it was taken from (``topic[i].next()`` is
        ``topic[i + 1]``), as in PyEventEngine 0.6.2; ``StopIteration`` for a topic's last part
        and for a part made on its own."""
    def __eq__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...

@final
class TopicPartExact(TopicPart):
    def __init__(self, part: str | None = None, *, alloc: bool = False) -> None: ...
    @property
    def part(self) -> str: ...
    def __len__(self) -> int: ...

@final
class TopicPartAny(TopicPart):
    def __init__(self, name: str | None = None, *, alloc: bool = False) -> None: ...
    @property
    def name(self) -> str: ...

@final
class TopicPartRange(TopicPart):
    def __init__(
        self, options: list[str] | None = None, *, alloc: bool = False
    ) -> None: ...
    def options(self) -> Iterator[str]: ...
    def __iter__(self) -> Iterator[str]: ...
    def __len__(self) -> int: ...

@final
class TopicPartPattern(TopicPart):
    def __init__(self, regex: str | None = None, *, alloc: bool = False) -> None: ...
    @property
    def pattern(self) -> str: ...
    @property
    def regex(self) -> re.Pattern[str]: ...

@final
class TopicMatchResult:
    """Node-by-node result of ``Topic.match``; truthy when the topics match."""

    @property
    def matched(self) -> bool: ...
    @property
    def length(self) -> int: ...
    def __len__(self) -> int: ...
    def __bool__(self) -> bool: ...
    def __getitem__(self, index: int) -> _TopicMatchNode: ...
    def __iter__(self) -> Iterator[_TopicMatchNode]: ...
    def to_dict(self) -> dict[str, TopicPart | None]:
        """``{literal: part of the target}`` per node, as PyEventEngine keys it: the text each
        node matched (``""`` for a failed node) mapped to the other topic's part there
        (``Topic("a.+x").match(Topic("a.test")).to_dict()`` has the keys ``a`` and ``test``)."""

class Topic:
    """A parsed topic (see the topic grammar)."""

    def __init__(self, topic: str | None = None, *, alloc: bool = True, allocator: object = None) -> None: ...
    @property
    def value(self) -> str: ...
    @value.setter
    def value(self, value: str) -> None: ...
    @property
    def is_exact(self) -> bool: ...
    @property
    def hash_value(self) -> int: ...
    @property
    def addr(self) -> int: ...
    def __len__(self) -> int: ...
    def __getitem__(self, index: int) -> TopicPart: ...
    def __iter__(self) -> Iterator[TopicPart]: ...
    def __eq__(self, other: object) -> bool:
        """Equal to a topic with the same topic string (never to a ``str``: only the keys of the
        engine's hook maps are, see ``EventEngine.exact_topic_hook_map``)."""
    def __hash__(self) -> int:
        """``hash(self.value)`` (``hash_value`` is the engine's own hash, the same in every
        process)."""
    def __add__(self, other: Topic | TopicPart) -> Topic: ...
    def __iadd__(self, other: Topic | TopicPart) -> Self: ...
    def __call__(self, **kwargs: Any) -> Topic: ...
    def match(self, other: Topic) -> TopicMatchResult: ...
    def format(self, **kwargs: Any) -> Topic:
        """A new topic with each wildcard named in ``kwargs`` replaced by ``str(value)``;
        wildcards not named stay (``Topic("r.{a}.{b}").format(a="x")`` is ``r.x.{b}``). A
        topic with range or pattern parts is a ``ValueError``."""
    def format_map(self, mapping: Mapping[str, Any], internalized: bool = True, strict: bool = False) -> Topic:
        """``format(**mapping)``; with ``strict`` a wildcard missing from ``mapping`` is a
        ``KeyError`` naming it. ``internalized`` is accepted for PyEventEngine's signature."""
    def append(self, part: TopicPart) -> Topic: ...
    def update_literal(self) -> Topic: ...
    @classmethod
    def join(cls, parts: Iterable[str]) -> Topic: ...
    @classmethod
    def from_parts(cls, parts: Iterable[TopicPart]) -> Topic: ...

class MessagePayload:
    """One message: topic, args, kwargs and sequence id (all read-write)."""

    topic: Topic | None
    args: tuple[Any, ...] | None
    kwargs: dict[str, Any] | None
    seq_id: int
    def __init__(
        self,
        topic: Topic | None = None,
        args: tuple[Any, ...] | None = None,
        kwargs: dict[str, Any] | None = None,
        *,
        alloc: bool = False,
    ) -> None:
        """``MessagePayload(topic, args, kwargs)``, positionally or by keyword; each may be
        left out and set later (``alloc`` is accepted for the reference's signature)."""
    @property
    def kwargs_with_topic(self) -> dict[str, Any]:
        """A copy of ``kwargs`` with ``topic`` added (a ``topic`` already in ``kwargs`` is
        kept): what a handler that takes ``topic=`` is called with."""
    @property
    def owner(self) -> bool: ...
    @property
    def args_owner(self) -> bool: ...
    @property
    def kwargs_owner(self) -> bool: ...

class EventHook:
    """The handlers of one topic."""

    logger: logging.Logger
    retry_on_unexpected_topic: bool
    def __init__(
        self, topic: Topic, logger: logging.Logger | None = None, retry_on_unexpected_topic: bool = False
    ) -> None: ...
    @property
    def topic(self) -> Topic: ...
    @property
    def handlers(self) -> list[Callable[..., Any]]:
        """Every handler, those called without ``topic=`` first. The callables, as the reference
        page has it: PyEventEngine 0.6.2 gives a dict per handler (``fn``, ``logger``, ``idx``,
        ``with_topic``); where the two disagree, the page wins."""
    def trigger(self, msg: MessagePayload) -> None: ...
    def __call__(self, msg: MessagePayload) -> None: ...
    def add_handler(
        self, handler: Callable[..., Any], deduplicate: bool = False, logger: logging.Logger | None = None
    ) -> None:
        """Adds ``handler``; with ``deduplicate`` one already there is not added again. Its
        errors go to ``logger`` when given, else to the hook's logger. For code written for
        PyEventEngine 0.6.2 (``add_handler(handler, logger, deduplicate)``), a logger passed
        second is taken as the logger."""
    def remove_handler(self, handler: Callable[..., Any]) -> EventHook:
        """Removes the first registration of ``handler``; one that is not there is logged as
        a warning (nothing is raised)."""
    def __iadd__(self, handler: Callable[..., Any]) -> Self: ...
    def __isub__(self, handler: Callable[..., Any]) -> Self: ...
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[Callable[..., Any]]: ...
    def __contains__(self, handler: object) -> bool: ...
    def clear(self) -> None: ...

@final
class EventHookEx(EventHook):
    """An ``EventHook`` counting calls and time per handler."""

    def get_stats(self, handler: Callable[..., Any]) -> _HandlerStats | None: ...
    @property
    def stats(self) -> Iterator[tuple[Callable[..., Any], _HandlerStats]]:
        """``(handler, stats)`` pairs, as the reference page has it: PyEventEngine 0.6.2 gives
        one dict of the hook's totals (``n_calls``, ``elapsed_seconds``, ...); where the two
        disagree, the page wins."""

class Full(Exception):
    """The queue is full and a put could not wait or timed out."""

class Empty(Exception):
    """The queue is empty and a get could not wait or timed out."""

class EventEngine:
    """A queue (in-process) or a shared-memory bus, the hooks and the dispatch loop.

    With ``bus="name"`` (or after ``init_allocator(with_shm=True)``) the engine attaches to
    that shared-memory bus when it is created (the bus is created if absent). It receives the
    messages its hooks want: every message whose topic matches one of its hooks' topics and
    whose ``put`` began after the hook was registered (its own included), and dispatches them
    to its own hooks. An engine without hooks receives nothing and never holds a publisher
    back, started or not; ``put``/``publish`` go to every engine whose hooks want the topic
    (a message nobody wants is dropped at once and counted). With ``group``, the engines of
    one group share the messages (each is handled by exactly one member). With
    ``lossy=True`` (a monitor, a dashboard, a logger; not with ``group``) the engine never holds
    a publisher back: when it is a full ring behind, publishers take the messages it has not
    handled and count them in ``missed``; what it handles stays whole and in order.
    Arguments travel in a compact form when they are None, bool, int (64-bit), float, str,
    bytes or flat tuples/lists of those, pickled otherwise; buffers (numpy arrays,
    ``memoryview``, ``bytes``/``bytearray`` of 64 KiB or more, what pickle hands out as a
    ``PickleBuffer``) travel out of band, copied once into shared memory, and arrive
    read-only (arrays with ``flags.writeable == False``). The engine detaches on
    ``close()`` (also the end of a ``with`` block) or when it is garbage-collected once
    stopped (a running engine's thread keeps it alive); while attached, even a stopped engine
    with hooks holds back publishers of the topics it wants once the ring is full. Each message is acknowledged only after this
    engine's handlers ran, so a group member killed mid-handler has its message redelivered.

    A script may end while engines still run: before the interpreter finalizes, every engine
    is deactivated, each running loop finishes the handlers of the messages it already took
    (none taken from a bus is lost; the rest stays on the bus) and bus engines detach.

    Attaching fails with a one-line error, never a hang: ``ValueError`` for a bad name, a file
    at the bus path that is not a bus (a symbolic link, a FIFO...; never followed or opened), a
    corrupt or other-version bus or one owned by another user; ``OSError`` when ``/dev/shm``
    has too little room for a new bus (it says how much is needed and free);
    ``TimeoutError`` naming the pid when a live process holds the bus's table lock for
    seconds (one stopped while joining or leaving).
    """

    logger: logging.Logger
    def __init__(
        self,
        capacity: int = 4095,
        logger: logging.Logger | None = None,
        *,
        bus: str | None = None,
        group: str | None = None,
        lossy: bool = False,
        hold_limit: int = 64,
    ) -> None:
        """``hold_limit``: how many received messages' buffers this engine keeps in shared
        memory at once as read-only views (0: copy every one); past it they arrive as private
        copies (docs/delivery.md, "Holds")."""
    @property
    def capacity(self) -> int:
        """Queue size in-process; the ring's slot count for a bus engine."""
    def loan(self, nbytes: int, *, block: bool = True, timeout: float | None = None) -> Loan | bytearray:
        """``nbytes`` of writable memory in the bus for a producer to fill in place: a ``put``
        whose one buffer argument is that memory (the loan, a ``memoryview`` of it, a numpy
        array over it) publishes it without a copy and spends it. Waits for a free block like
        ``put`` (``timeout`` seconds, ``None``: for ever; ``block=False``: not at all), raising
        ``Full``; ``ValueError`` when the bus cannot carry ``nbytes`` in one message. An engine
        without a bus lends a ``bytearray``."""
    @property
    def loans_published(self) -> int:
        """Loans this engine published from their own block, without a copy (a loan no consumer
        wanted is spent but not counted)."""
    @property
    def bus(self) -> str | None:
        """Name of the shared-memory bus the engine is attached to (None in-process)."""
    @property
    def group(self) -> str | None:
        """The work-sharing group the engine belongs to (None: it receives everything)."""
    @property
    def missed(self) -> int:
        """A lossy engine: messages publishers took from it because it was a full ring behind
        (0 for any other engine). It only grows: two readings that differ tell of a gap."""
    @property
    def closed(self) -> bool:
        """Whether ``close()`` detached the engine from its bus."""
    def close(self) -> None:
        """Stops the engine, ends its timers and detaches it from its bus (idempotent)."""
    def __enter__(self) -> Self: ...
    def __exit__(self, *exc: object) -> bool: ...
    @property
    def active(self) -> bool:
        """Whether the dispatch loop runs. A bus engine whose loop meets a corrupt bus logs the
        error, detaches from the bus (``closed`` becomes True) and reads False here."""
    @property
    def occupied(self) -> int: ...
    @property
    def seq_id(self) -> int:
        """Messages put so far: the ``seq_id`` the next one gets (the first gets 0)."""
    @property
    def exact_topic_hook_map(self) -> dict[Topic, EventHook]:
        """A copy of ``{Topic: EventHook}`` for the exact topics. The keys are ``Topic`` objects
        (as PyEventEngine 0.6.2's compiled engine gives) that also equal their topic strings (what
        its pure-Python engine and hook-map helpers give): ``list(m) == ["registry.hook"]``,
        ``m[Topic("registry.hook")]`` and ``m["registry.hook"]`` all work."""
    @property
    def generic_topic_hook_map(self) -> dict[Topic, EventHook]:
        """As ``exact_topic_hook_map``, for the topics with wildcard, range or pattern parts."""
    def activate(self) -> None: ...
    def deactivate(self) -> None: ...
    def run(self) -> None:
        """Dispatches in the calling thread until the engine stops (``activate()`` first).
        ``TypeError`` while a hook has an ``async def`` handler: a thread cannot await it."""
    def start(self) -> None:
        """Starts dispatching. Called while an asyncio event loop runs in the calling thread
        (from a coroutine), the engine dispatches on that loop: plain handlers are called
        there and ``async def`` handlers awaited there, one message after another in the
        order received (a handler that awaits holds this engine's next message); an exception
        is logged like a plain handler's. The loop is woken through a file descriptor it
        watches, and when the loop's ``asyncio.run()`` ends the engine stops. Called outside a
        loop, it dispatches on a background thread, and an ``async def`` handler is a
        ``TypeError`` (here, or at ``register_handler`` once started)."""
    def stop(self) -> None:
        """Stops dispatching (and the timers). A dispatch thread is joined; a dispatch on a
        loop ends after the message in hand without being waited for (``stop()`` may be called
        from the loop, even from a handler)."""
    def clear(self) -> None:
        """Removes every hook and timer. On a running engine it logs an error and changes
        nothing (it does not raise: code often calls it in ``finally`` blocks)."""
    def put(
        self, topic: Topic, *args: Any, block: bool = True, max_spin: int = 65535, timeout: float = 0.0, **kwargs: Any
    ) -> None:
        """Publishes ``handler(*args, **kwargs)`` on the exact ``topic``. With ``block`` it waits
        for room, ``timeout`` seconds at most (0 or less: for ever, as in the reference; NaN is
        a ``ValueError``), then raises ``Full``; without ``block`` it raises ``Full`` at once.
        The limit covers every wait of the put, including one for another thread's put on this
        engine that waits for room. A put from one of this
        engine's own handlers never waits for this engine to consume: where it would, it raises
        ``Full`` at once (docs/delivery.md, "Puts from a handler")."""
    def publish(
        self,
        topic: Topic,
        args: tuple[Any, ...] | list[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        block: bool = True,
        timeout: float = 0.0,
        *,
        max_spin: int = 65535,
    ) -> None:
        """``put`` with explicit ``args`` and ``kwargs``; a ``kwargs`` key that is not a ``str``
        is a ``TypeError`` here (it could not name a keyword argument of any handler)."""
    def aput(
        self, topic: Topic, *args: Any, block: bool = True, timeout: float | None = None, **kwargs: Any
    ) -> Awaitable[None]:
        """``put`` for asyncio code: ``await engine.aput(topic, *args, **kwargs)`` never blocks
        the event loop. With room it publishes at once (the awaitable is already done). With
        the bus (or queue) full and ``block``, it waits asynchronously, the loop serving its
        other tasks, and raises ``Full`` after ``timeout`` seconds (None: no limit; 0 or less:
        at once); without ``block`` it raises ``Full`` at once. A cancelled ``aput`` has
        published nothing."""
    def aget(self, timeout: float | None = None) -> Awaitable[MessagePayload]:
        """``get`` for asyncio code: ``await engine.aget()`` returns the next message without
        blocking the event loop, raising ``Empty`` after ``timeout`` seconds (None: no limit; 0
        or less: at once). A cancelled ``aget`` takes nothing: the message it would have
        returned is the next one's. ``RuntimeError`` while the engine dispatches."""
    def _aio_fd(self) -> int: ...
    def _aio_drain(self, budget: int) -> list[tuple[Awaitable[Any], Callable[..., Any], str, logging.Logger]] | bool | None: ...
    def _aio_take(self) -> MessagePayload | None: ...
    _aio_state: Any
    def get(self, block: bool = True, max_spin: int = 65535, timeout: float = 0.0) -> MessagePayload:
        """Takes the next message for this engine (``Empty`` when none comes in time; a
        ``timeout`` of 0 or less waits for ever, as in the reference; NaN is a ``ValueError``).
        A bus engine receives
        only the topics its hooks want (register one, even without starting, to ``get`` a
        topic). On a bus engine whose dispatch loop is running it is a ``RuntimeError``: the
        loop receives every message, so call ``stop()`` first."""
    def get_hook(self, topic: Topic) -> EventHook:
        """The hook registered on exactly ``topic``; ``KeyError`` when there is none."""
    def __getitem__(self, topic: Topic) -> list[EventHook]:
        """The hooks a message on ``topic`` reaches: the hook of that exact topic, then every
        generic hook whose topic matches it."""
    def register_hook(self, hook: EventHook) -> None: ...
    def unregister_hook(self, topic: Topic) -> EventHook: ...
    def register_handler(
        self, topic: Topic, handler: Callable[..., Any] | Callable[..., Awaitable[Any]], deduplicate: bool = False
    ) -> None:
        """Adds ``handler`` to the hook of ``topic``. An ``async def`` handler is awaited by a
        dispatch on an asyncio loop (``start()`` called from a coroutine); on an engine that
        dispatches on a thread it is a ``TypeError``."""
    def unregister_handler(self, topic: Topic, handler: Callable[..., Any]) -> None: ...
    def event_hooks(self) -> Iterator[EventHook]: ...
    def topics(self) -> Iterator[Topic]: ...
    def items(self) -> Iterator[tuple[Topic, EventHook]]: ...
    def __len__(self) -> int: ...

class SharedBuffer:
    """Read-only bytes of a received message in the bus's shared memory (buffer protocol),
    kept in place while this object or a view of it (a ``memoryview``, a numpy array) lives."""

class Loan:
    """Writable bytes in the bus's shared memory from ``EventEngine.loan`` (buffer protocol; a
    context manager). Fill it in place and ``put`` it, or a view of it, to publish it without a
    copy; leaving the ``with`` block or ``release()`` gives back a loan that was not published."""

    @property
    def nbytes(self) -> int:
        """How many bytes the loan holds."""
    def release(self) -> None:
        """Gives the loan back unpublished (its block returns to the bus once this object and
        every view of it are gone)."""
    def __enter__(self) -> Self: ...
    def __exit__(self, *exc: object) -> None: ...

def release_loan(loan: Loan) -> None: ...

class EventEngineEx(EventEngine):
    """An ``EventEngine`` with timers."""

    @property
    def timer(self) -> dict[float, Topic]: ...
    def get_timer(self, interval: float, activate_time: datetime | None = None) -> Topic:
        """The topic of the timer ticking every ``interval`` seconds, started on first request
        (``RuntimeError`` unless the engine is started). 1 and 60 tick on the wall-clock second
        and minute, with ``interval`` and ``timestamp``; any other interval ticks first at
        ``activate_time``, or at once when there is none (as PyEventEngine 0.6.2), then every
        ``interval`` seconds, with ``interval`` and ``trigger_time``."""
    def run_timer(self, interval: float, topic: Topic, activate_time: datetime | None = None) -> None:
        """Runs a timer loop in the calling thread, publishing ``topic`` every ``interval``
        seconds from ``activate_time`` (default: at once) until the engine stops (it blocks;
        ``get_timer`` runs one in a background thread)."""
    def second_timer(self, topic: Topic) -> None:
        """``run_timer`` aligned to the wall-clock second (blocks until the engine stops)."""
    def minute_timer(self, topic: Topic) -> None:
        """``run_timer`` aligned to the wall-clock minute (blocks until the engine stops)."""

def init_internal_map(capacity: int = 1024) -> dict[str, Topic]:
    """Topics built with ``Topic(...)`` are interned (parsed once per process), up to 131072
    distinct ones; later ones work the same but are not interned. Topics received from a bus
    are never interned."""
def clear_internal_map() -> None: ...
def get_internal_topic(key: str, owner: bool = False) -> Topic | None: ...
def get_internal_map() -> dict[str, Topic]: ...
def init_allocator(
    capacity: int | None = None,
    with_shm: bool = False,
    name: str | None = None,
    *,
    slots: int = 4096,
    max_message: int = 1 << 20,
    memory: int | None = None,
    max_processes: int = 256,
    group_retention: float = 60.0,
) -> None:
    """With ``with_shm=True``, engines created afterwards in this process attach to the
    shared-memory bus ``name`` (default ``"default"``), created now if absent with the geometry
    the keywords give, as ``create_bus`` takes them; ``EventEngine(bus=other)`` creating an
    absent bus uses that geometry too. ``capacity`` is the older way to size the slab, in 4 KiB
    blocks (``memory = capacity * 4096``, at least the smallest slab ``max_message`` allows);
    giving both is a ``ValueError``. A bad name or value, or an existing bus of another geometry
    or layout version, is a ``ValueError`` saying what differs. ``with_shm=False`` goes back to
    in-process engines."""

def create_bus(
    name: str,
    *,
    slots: int = 4096,
    max_message: int = 1 << 20,
    memory: int | None = None,
    max_processes: int = 256,
    group_retention: float = 60.0,
) -> None:
    """Creates the shared-memory bus ``name`` (``/dev/shm/event_engine.<name>``), or attaches to
    an existing one with the same geometry; engines then attach with ``EventEngine(bus=name)``.

    ``slots``: ring slots, messages in flight at once (a power of two). ``max_message``: the
    largest message in bytes, up to 1 GiB (1 << 30), counting the encoded arguments.
    ``memory``: total bytes of the slab's payload blocks; ``None`` derives it from
    ``max_message`` (room for four messages of that size plus the small size classes: about
    16 MiB for the default 1 MiB, small enough for Docker's 64 MiB ``/dev/shm``).
    ``max_processes``: process-table rows (an engine takes three). ``group_retention``: seconds
    a work-sharing group without members keeps its backlog.

    A bus is never resized: an existing bus of another geometry is a ``ValueError`` naming each
    value that differs, both its value and the one asked for. Impossible values (``slots`` not
    a power of two, ``memory`` too small for one message of ``max_message``) and a ``/dev/shm``
    without room for the bus (how much it needs and how much is free) are ``ValueError`` too;
    nothing is created then."""

def inspect_bus(name: str) -> dict[str, Any]:
    """A read-only snapshot of bus ``name`` (``geometry``: ``ring_capacity`` (slots),
    ``max_message``, ``slab_memory``, ``max_processes``, ``group_retention_ms``...; ring, processes with each publisher's
    ``topics`` counts and a bridge's counters, groups, ``consumers`` and their interests,
    ``departed_topics``, slab classes, counters, and ``corruption``: a list of what is found
    corrupt, empty for a sound bus), taken without attaching to it. A file at the bus path that is not a bus (a FIFO, a
    symbolic link...) is a ``ValueError`` at once; it is never opened or followed."""

def unlink_bus(name: str) -> None:
    """Removes the file of bus ``name``; processes still attached keep working."""
def set_logger(logger: logging.Logger) -> None:
    """Every engine and hook without a logger of its own logs through ``logger`` from now on
    (by default engines log on ``EventEngine.Engine`` and hooks on ``EventEngine.Event``);
    ``set_logger(logging.getLogger("EventEngine"))`` goes back to that default. A ``TypeError``
    for an object without ``debug``, ``info``, ``warning`` and ``error``."""
def _cli_main(argv: list[str]) -> int:
    """Runs the `event-engine` command line with `argv` (program name first); returns its exit status."""
