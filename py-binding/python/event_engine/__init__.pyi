"""Type stubs of the ``event_engine`` package (everything comes from ``_native``)."""

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypedDict

from typing_extensions import TypeAlias

from ._native import (
    Empty as Empty,
)
from ._native import (
    EventEngine as EventEngine,
)
from ._native import (
    EventEngineEx as EventEngineEx,
)
from ._native import (
    EventHook as EventHook,
)
from ._native import (
    EventHookEx as EventHookEx,
)
from ._native import (
    Full as Full,
)
from ._native import (
    Loan as Loan,
)
from ._native import (
    MessagePayload as MessagePayload,
)
from ._native import (
    SharedBuffer as SharedBuffer,
)
from ._native import (
    Topic as Topic,
)
from ._native import (
    TopicMatchResult as TopicMatchResult,
)
from ._native import (
    TopicPart as TopicPart,
)
from ._native import (
    TopicPartAny as TopicPartAny,
)
from ._native import (
    TopicPartExact as TopicPartExact,
)
from ._native import (
    TopicPartPattern as TopicPartPattern,
)
from ._native import (
    TopicPartRange as TopicPartRange,
)
from ._native import (
    TopicType as TopicType,
)
from ._native import (
    clear_internal_map as clear_internal_map,
)
from ._native import (
    create_bus as create_bus,
)
from ._native import (
    get_internal_map as get_internal_map,
)
from ._native import (
    get_internal_topic as get_internal_topic,
)
from ._native import (
    init_allocator as init_allocator,
)
from ._native import (
    init_internal_map as init_internal_map,
)
from ._native import (
    inspect_bus as inspect_bus,
)
from ._native import (
    set_logger as set_logger,
)
from ._native import (
    unlink_bus as unlink_bus,
)

__version__: str
USING_FALLBACK: bool
#: ``logging.getLogger("EventEngine")``: engines log on ``EventEngine.Engine``, hooks on
#: ``EventEngine.Event`` (unless given their own logger, or after ``set_logger``).
LOGGER: logging.Logger

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
    matched: bool
    part_a: TopicPart | None
    part_b: TopicPart | None
    literal: str | None

class HandlerStats(TypedDict):
    calls: int
    total_time: float

Handler: TypeAlias = Callable[..., Any]
AsyncHandler: TypeAlias = Callable[..., Awaitable[Any]]

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
