"""asyncio support, the Python half (the native half is ``py-binding/src/aio.rs``).

An engine whose ``start()`` is called while an asyncio loop runs in the calling thread
dispatches on that loop. The loop watches the engine's file descriptor (an eventfd) with
``add_reader``: an in-process engine's puts write it, and a bus engine's relay thread writes it
when the bus wakes it (the relay waits on the bus's futex without the GIL and never runs Python
code). The reader drains what is ready on the loop's own thread, at most ``BUDGET`` messages
before the loop runs its other callbacks. Plain handlers are called there; the awaitables that
coroutine handlers return are awaited there, by one task, one message after another.

``aput`` and ``aget`` try at once in native code and return an already-done awaitable when they
need not wait; only a full bus (``aput``) or an empty one (``aget``) comes here.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
import weakref
from typing import TYPE_CHECKING, Any

from ._native import Empty, Full

if TYPE_CHECKING:
    from ._native import EventEngine, MessagePayload

#: Messages one drain dispatches before the loop runs its other callbacks.
BUDGET = 1024
#: asyncio starts a task eagerly when asked (``eager_start``, Python 3.12+).
EAGER_TASKS = sys.version_info >= (3, 12)
#: A full bus: how long ``aput`` first waits before it tries again, and at most between tries.
#: The consumers that make room may be in other processes, which cannot wake this loop, so
#: ``aput`` polls: a retry is one put attempt without waiting, on the loop's thread.
RETRY_FIRST = 0.0005
RETRY_MAX = 0.002


class _LoopState:
    """An engine on one asyncio loop: the reader on its fd, its dispatch there (after
    ``start()``) and the futures of the ``aget()`` calls waiting for the fd."""

    def __init__(self, engine: EventEngine, loop: asyncio.AbstractEventLoop, fd: int) -> None:
        self.loop = loop
        self.fd = fd
        self.thread = threading.get_ident()
        # Weak: the engine holds this state; while it dispatches, the reader's own reference
        # keeps it alive (as a dispatch thread does).
        self.engine_ref = weakref.ref(engine)
        self.dispatching = False
        #: A drain is queued with call_soon.
        self.scheduled = False
        #: The task awaiting the awaitables of a message's handlers, while there is one.
        self.task: asyncio.Task[None] | None = None
        #: That task runs its first step, eagerly (``_await_in_task``): it is the current task.
        self.stepping = False
        #: Stops the engine when the loop's tasks are cancelled at its end (asyncio.run).
        self.watch: asyncio.Task[None] | None = None
        self.waiters: list[asyncio.Future[None]] = []
        loop.add_reader(fd, self._readable, engine)

    # ------------------------------------------------------------------ the fd

    def _readable(self, engine: EventEngine) -> None:
        try:
            os.read(self.fd, 8)
        except BlockingIOError:
            pass
        waiters, self.waiters = self.waiters, []
        for f in waiters:
            if not f.done():
                f.set_result(None)
        if self.dispatching and self.task is None and not self.scheduled:
            self._drain(engine)

    # ------------------------------------------------------------------ dispatch

    def start_dispatch(self, engine: EventEngine) -> None:
        self.dispatching = True
        if self.watch is None:
            self.watch = self.loop.create_task(self._watch(), name="EventEngine dispatch")
            # A loop closed without cancelling its tasks (no asyncio.run) leaves it pending:
            # nothing to report then (the engine is stopped at the interpreter's exit).
            with contextlib.suppress(AttributeError):
                self.watch._log_destroy_pending = False  # type: ignore[attr-defined]
        self.scheduled = True
        self.loop.call_soon(self._drain, engine)

    def _drain(self, engine: EventEngine) -> None:
        self.scheduled = False
        if not self.dispatching:
            return
        got = engine._aio_drain(BUDGET)
        if got is None:
            return
        if got is True:
            self.scheduled = True
            self.loop.call_soon(self._drain, engine)
        elif got is False:
            self._ended()
        else:
            self._await_in_task(engine, got)

    def _await_in_task(self, engine: EventEngine, items: list[Any]) -> None:
        """Awaits a message's handlers, and drains on, in a task, so that they run as asyncio
        code expects (current_task(), asyncio.timeout() and cancellation work in them). Where
        asyncio has eager tasks (Python 3.12+), the task runs here and now until it first
        waits, and is gone if it never does: a handler that does not wait runs in this drain,
        as a plain one does, not one loop iteration later."""
        work = self._await_then_drain(engine, items)
        if not EAGER_TASKS:
            self.task = self.loop.create_task(work)
            return
        self.stepping = True
        try:
            task = asyncio.Task(work, loop=self.loop, eager_start=True)  # type: ignore[call-arg]
        finally:
            self.stepping = False
        if not task.done():
            self.task = task

    async def _await_then_drain(self, engine: EventEngine, items: list[Any]) -> None:
        """Awaits what a message's handlers returned, in order, then drains on (one message
        after another: a handler that awaits holds the next message of this engine)."""
        try:
            while True:
                await _await_all(items)
                items = []
                if not self.dispatching:
                    return
                got = engine._aio_drain(BUDGET)
                if got is None:
                    return
                if got is False:
                    self._ended()
                    return
                if got is True:
                    await asyncio.sleep(0)
                else:
                    items = got
        finally:
            self.task = None

    async def _watch(self) -> None:
        """Waits until cancelled: ``asyncio.run()`` cancels every task when its coroutine
        ends, which stops the engine (its loop is going away)."""
        try:
            await self.loop.create_future()
        except asyncio.CancelledError:
            engine = self.engine_ref()
            if self.dispatching and engine is not None:
                self.watch = None
                engine.stop()
            raise

    def _ended(self) -> None:
        """The native side ended the dispatch (closed, or the bus failed)."""
        self.dispatching = False
        self._cancel_watch()

    def _cancel_watch(self) -> None:
        watch, self.watch = self.watch, None
        if watch is not None and watch is not _current_task(self.loop):
            watch.cancel()

    def stop(self) -> None:
        """The engine stopped (``stop()``, from any thread): the dispatch ends after the
        message in hand, without being waited for."""
        self.dispatching = False
        self._in_loop(self._cancel_watch)

    def detach(self) -> None:
        """The loop lets go of the engine's fd (``close()``, or the engine moved to another
        loop); waiting ``aget()`` calls wake up and see why."""
        self.dispatching = False
        self._in_loop(self._remove)

    def _remove(self) -> None:
        self._cancel_watch()
        self.loop.remove_reader(self.fd)
        waiters, self.waiters = self.waiters, []
        for f in waiters:
            if not f.done():
                f.set_result(None)
        engine = self.engine_ref()
        if engine is not None and engine._aio_state is self:
            engine._aio_state = None

    def _in_loop(self, f: Any) -> None:
        if self.loop.is_closed():
            return
        if threading.get_ident() == self.thread:
            f()
            return
        try:
            self.loop.call_soon_threadsafe(f)
        except RuntimeError:
            pass  # closed meanwhile


def _log_failure(handler: Any, topic: str, log: Any, e: BaseException) -> None:
    log.error('Handler %r of topic "%s" raised %r', handler, topic, e, exc_info=(type(e), e, e.__traceback__))


def _current_task(loop: asyncio.AbstractEventLoop) -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task(loop)
    except RuntimeError:
        return None


async def _await_all(items: list[Any]) -> None:
    """Awaits each ``(awaitable, handler, topic, logger)`` in order; an exception is logged
    as a plain handler's is, and the next one still runs. Cancelled, it closes the awaitables
    it did not reach (none is left never awaited)."""
    for i, (aw, handler, topic, log) in enumerate(items):
        try:
            await aw
        except Exception as e:  # noqa: BLE001 - a handler's error is logged; dispatch goes on
            _log_failure(handler, topic, log, e)
        except BaseException:
            for rest in items[i + 1 :]:
                close = getattr(rest[0], "close", None)
                if close is not None:
                    close()
            raise


def _state_for(engine: EventEngine, loop: asyncio.AbstractEventLoop) -> _LoopState:
    """The engine's state on ``loop``, made (and its fd watched) if needed."""
    state: _LoopState | None = engine._aio_state
    if state is not None and state.loop is loop:
        return state
    if state is not None:
        state.detach()
    state = _LoopState(engine, loop, engine._aio_fd())
    engine._aio_state = state
    return state


def dispatch_on_loop(engine: EventEngine, loop: asyncio.AbstractEventLoop, fd: int) -> _LoopState:
    """``start()`` inside a running loop: dispatch there (called by the native ``start``)."""
    state = _state_for(engine, loop)
    state.start_dispatch(engine)
    return state


def _where(engine: EventEngine) -> str:
    return f'bus "{engine.bus}"' if engine.bus is not None else "queue"


async def aput_wait(
    engine: EventEngine,
    topic: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any] | None,
    timeout: float | None,
) -> None:
    """``aput`` found no room: tries again now and then, the loop running its other tasks
    meanwhile, until the put goes out or ``timeout`` passes (``Full``). Cancelled, it has
    published nothing: each try is a put that either publishes at once or not at all."""
    loop = asyncio.get_running_loop()
    state: _LoopState | None = engine._aio_state
    current = _current_task(loop)
    if state is not None and current is not None and (state.task is current or state.stepping):
        raise Full(
            f"{_where(engine)} full, and this aput() was made by a coroutine handler of this "
            "engine, awaited by its own dispatch: the room may be held by messages only that "
            "dispatch can free, which waits for this handler, so it raises at once. Publish "
            "from another task (asyncio.create_task(engine.aput(...))) or use a larger bus"
        )
    if timeout is not None and timeout <= 0:
        raise Full(f"{_where(engine)} full: no room for the message")
    deadline = None if timeout is None else loop.time() + timeout
    delay = RETRY_FIRST
    while True:
        wait = delay
        if deadline is not None:
            left = deadline - loop.time()
            if left <= 0:
                raise Full(f"{_where(engine)} full: no room for the message within {timeout:.3f} s")
            wait = min(wait, left)
        await asyncio.sleep(wait)
        delay = min(delay * 2, RETRY_MAX)
        try:
            engine.publish(topic, args, kwargs, block=False)
            return
        except Full:
            continue


def _expire(f: asyncio.Future[None]) -> None:
    if not f.done():
        f.set_result(None)


async def aget_wait(engine: EventEngine, timeout: float | None) -> MessagePayload:
    """``aget`` found nothing: waits for the engine's fd (the loop running its other tasks),
    then takes the message, until ``timeout`` passes (``Empty``). Cancelled, it has taken
    nothing: a message the bus's relay received meanwhile stays for the next take."""
    loop = asyncio.get_running_loop()
    if timeout is not None and timeout <= 0:
        raise Empty(f"{_where(engine)} empty")
    state = _state_for(engine, loop)
    deadline = None if timeout is None else loop.time() + timeout
    while True:
        fut: asyncio.Future[None] = loop.create_future()
        state.waiters.append(fut)
        timer = None if deadline is None else loop.call_at(deadline, _expire, fut)
        try:
            await fut
        finally:
            if timer is not None:
                timer.cancel()
            if fut in state.waiters:
                state.waiters.remove(fut)
        got = engine._aio_take()
        if got is not None:
            return got
        if engine.closed:
            raise RuntimeError(f"{_where(engine)}: the engine was closed while aget() waited")
        if deadline is not None and loop.time() >= deadline:
            raise Empty(f"{_where(engine)} empty: no message within {timeout:.3f} s")
        if engine._aio_state is not state:
            state = _state_for(engine, loop)

