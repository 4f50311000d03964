"""A closed engine's figures are its own: `missed` after `close()` is the count at the close,
even once another engine's subscriber has taken the consumer entry it had."""

from __future__ import annotations

from conftest import assert_idle
from event_engine import EventEngine, Topic


def test_missed_after_close_is_the_count_at_the_close(bus):
    monitor = EventEngine(bus=bus, lossy=True)
    monitor.register_handler(Topic("Ticks.{symbol}"), lambda *a, **k: None)
    with EventEngine(bus=bus) as pub:
        n = 3 * pub.capacity
        # Never started: the monitor reads nothing, and publishers take what it has not read.
        for i in range(n):
            pub.put(Topic("Ticks.AAPL"), i, block=False)
        missed = monitor.missed
        assert missed >= n - pub.capacity
        monitor.close()
        assert monitor.missed == missed
        # Another lossy engine takes the entry the monitor had, and misses more than it did.
        other = EventEngine(bus=bus, lossy=True)
        try:
            other.register_handler(Topic("Ticks.{symbol}"), lambda *a, **k: None)
            for i in range(2 * n):
                pub.put(Topic("Ticks.AAPL"), i, block=False)
            assert other.missed > missed
            assert monitor.missed == missed
        finally:
            other.close()
    assert_idle(bus)
