"""Typed use of the package, checked by mypy (``--python-version 3.9``) against the stubs.

Never run: `assert_type` fails the type check if a stub types a value as `Any` or wrongly.
"""

from __future__ import annotations

import logging
from typing import Any

from event_engine import (
    LOGGER,
    AsyncHandler,
    EventEngine,
    EventEngineEx,
    EventHook,
    Handler,
    MessagePayload,
    Topic,
    TopicMatchResult,
    TopicPart,
    inspect_bus,
    set_logger,
)
from typing_extensions import assert_type


def on_trade(price: float, size: int = 0) -> None:
    print(price, size)


def bus_engine() -> None:
    with EventEngine(bus="typing-sample", group="workers") as engine:
        assert_type(engine, EventEngine)
        assert_type(engine.bus, "str | None")
        engine.register_handler(Topic("Market.Trade.{symbol}"), on_trade)
        engine.put(Topic("Market.Trade.AAPL"), 189.5, size=100, timeout=1.0)
    assert_type(inspect_bus("typing-sample"), dict[str, Any])


def timers_and_hooks() -> None:
    with EventEngineEx() as engine:
        assert_type(engine, EventEngineEx)
        assert_type(engine.get_timer(1), Topic)
    hook = EventHook(Topic("Log.Topic"))
    hook += on_trade
    assert_type(hook, EventHook)
    handler: Handler = on_trade
    hook.add_handler(handler)
    topic = Topic("A.B")
    topic += Topic("C")
    assert_type(topic, Topic)
    assert_type(topic.match(Topic("A.B.C")), TopicMatchResult)
    assert_type(MessagePayload().seq_id, int)
    assert_type(Topic("A.B")[0].next(), TopicPart)
    assert_type(Topic("A.B")[0].owner, bool)
    set_logger(logging.getLogger("app"))
    assert_type(LOGGER, logging.Logger)
    set_logger(LOGGER)


async def on_quote(price: float, size: int = 0) -> None:
    print(price, size)


async def asyncio_engine() -> None:
    handler: AsyncHandler = on_quote
    with EventEngine(bus="typing-sample") as engine:
        engine.register_handler(Topic("Market.Quote.{symbol}"), handler)
        assert_type(await engine.aput(Topic("Market.Quote.AAPL"), 189.5, size=100, timeout=1.0), None)
        assert_type(await engine.aget(timeout=0.5), MessagePayload)
