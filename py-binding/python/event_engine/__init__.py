"""Topic-routed publish/subscribe event engine with a Rust core.

A drop-in for PyEventEngine's API: ``from event_engine import EventEngine, Topic``
(or ``from event_engine.capi import ...``). Everything is implemented in the
native extension ``event_engine._native``; this module re-exports it under the
reference's names (``Topic`` and its ``PyTopic`` alias, and so on).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypedDict

from . import (
    _loan,  # noqa: F401  (Loan's context manager and release())
    _native,
)
from ._native import (
    Empty,
    EventEngine,
    EventEngineEx,
    EventHook,
    EventHookEx,
    Full,
    Loan,
    MessagePayload,
    SharedBuffer,
    Topic,
    TopicMatchResult,
    TopicPart,
    TopicPartAny,
    TopicPartExact,
    TopicPartPattern,
    TopicPartRange,
    TopicType,
    clear_internal_map,
    create_bus,
    get_internal_map,
    get_internal_topic,
    init_allocator,
    init_internal_map,
    inspect_bus,
    set_logger,
    unlink_bus,
)

__version__: str = _native.__version__

#: False: this package is always the compiled engine (there is no pure-Python fallback).
USING_FALLBACK: bool = False

#: The package logger, ``logging.getLogger("EventEngine")`` as PyEventEngine names it. Engines
#: without a logger of their own log on its child ``EventEngine.Engine``, hooks on
#: ``EventEngine.Event``, so configuring ``EventEngine`` configures them all. ``set_logger(x)``
#: sends all of that to ``x`` instead; ``set_logger(LOGGER)`` goes back to these names.
LOGGER: logging.Logger = logging.getLogger("EventEngine")

# The reference's class names, kept as aliases so code written for it runs unchanged.
PyTopic = Topic
PyTopicType = TopicType
PyTopicPart = TopicPart
PyTopicPartExact = TopicPartExact
PyTopicPartAny = TopicPartAny
PyTopicPartRange = TopicPartRange
PyTopicPartPattern = TopicPartPattern
PyTopicMatchResult = TopicMatchResult
PyMessagePayload = MessagePayload


class TopicMatchNode(TypedDict):
    """One node of a ``TopicMatchResult``."""

    matched: bool
    part_a: TopicPart | None
    part_b: TopicPart | None
    literal: str | None


class HandlerStats(TypedDict):
    """Statistics of one handler of an ``EventHookEx``."""

    calls: int
    total_time: float


#: Any callable accepted as a handler.
Handler = Callable[..., Any]
#: An ``async def`` handler: awaited by an engine dispatching on an asyncio loop.
AsyncHandler = Callable[..., Awaitable[Any]]

__all__ = [
    "LOGGER",
    "USING_FALLBACK",
    "AsyncHandler",
    "Empty",
    "EventEngine",
    "EventEngineEx",
    "EventHook",
    "EventHookEx",
    "Full",
    "Handler",
    "HandlerStats",
    "Loan",
    "MessagePayload",
    "PyMessagePayload",
    "PyTopic",
    "PyTopicMatchResult",
    "PyTopicPart",
    "PyTopicPartAny",
    "PyTopicPartExact",
    "PyTopicPartPattern",
    "PyTopicPartRange",
    "PyTopicType",
    "SharedBuffer",
    "Topic",
    "TopicMatchNode",
    "TopicMatchResult",
    "TopicPart",
    "TopicPartAny",
    "TopicPartExact",
    "TopicPartPattern",
    "TopicPartRange",
    "TopicType",
    "__version__",
    "clear_internal_map",
    "create_bus",
    "get_internal_map",
    "get_internal_topic",
    "init_allocator",
    "init_internal_map",
    "inspect_bus",
    "set_logger",
    "unlink_bus",
]
