"""A short in-process tour of the event engine: exact and generic topics, a handler that
takes ``topic=``, a failing handler that is logged while the others still run, a timer,
and a clean stop. Prints what happens and exits by itself.

    .venv/bin/python tools/demo/inprocess_demo.py
"""

from __future__ import annotations

import logging
import threading

from event_engine import EventEngineEx, Topic

logging.basicConfig(level=logging.INFO, format="%(levelname)-7s %(name)s: %(message)s")
log = logging.getLogger("demo")


def main() -> None:
    engine = EventEngineEx(capacity=1024)
    trades = Topic("Market.Trade.AAPL")
    any_trade = Topic("Market.Trade.{symbol}")
    quotes = Topic("Market.Quote.(AAPL|MSFT)")

    all_done = threading.Event()
    ticks_seen = threading.Event()
    received = []

    def on_aapl_trade(price: float, size: int = 0) -> None:
        # No `topic` parameter: called with the message's args and kwargs only.
        log.info("AAPL trade: price=%s size=%s", price, size)
        received.append(("aapl", price))

    def on_any_trade(price: float, size: int = 0, *, topic: Topic) -> None:
        # Declares `topic`: receives the published topic; match() tells which symbol.
        symbol = any_trade.match(topic).to_dict()["symbol"].part
        log.info("trade on %s (generic hook %s): price=%s", symbol, any_trade.value, price)
        received.append(("any", symbol))
        if symbol == "MSFT":
            all_done.set()

    def on_quote(bid: float, ask: float) -> None:
        log.info("quote: %s / %s", bid, ask)
        raise ValueError("this handler fails on purpose; the engine logs it and carries on")

    def on_tick(**kwargs) -> None:
        log.info("timer tick: interval=%s trigger_time=%s", kwargs["interval"], kwargs["trigger_time"])
        ticks_seen.set()

    engine.register_handler(trades, on_aapl_trade)
    engine.register_handler(any_trade, on_any_trade)
    engine.register_handler(quotes, on_quote)
    engine.start()

    timer = engine.get_timer(0.25)
    engine.register_handler(timer, on_tick)
    log.info("registered topics: %s", [t.value for t in engine.topics()])

    engine.put(trades, 189.5, size=100)
    engine.put(Topic("Market.Quote.MSFT"), 402.1, 402.3)
    engine.put(Topic("Market.Trade.MSFT"), 402.2, size=50)

    if not all_done.wait(5) or not ticks_seen.wait(5):
        raise SystemExit("demo: expected messages did not arrive")
    engine.stop()
    log.info("stopped; handled %d trade callbacks: %s", len(received), received)


if __name__ == "__main__":
    main()
