"""EventEngineEx timers, with a real engine; ticks are waited for, never slept for."""

import datetime
import threading

import pytest
from event_engine import Empty, EventEngine, EventEngineEx, Topic

WAIT = 10.0


@pytest.fixture
def engine():
    eng = EventEngineEx(capacity=64)
    yield eng
    if eng.active:
        eng.stop()


class Ticks:
    def __init__(self, expected):
        self.expected = expected
        self.kwargs = []
        self.done = threading.Event()
        self.lock = threading.Lock()

    def __call__(self, **kwargs):
        with self.lock:
            self.kwargs.append(kwargs)
            if len(self.kwargs) >= self.expected:
                self.done.set()


def test_is_an_event_engine():
    eng = EventEngineEx()
    assert isinstance(eng, EventEngine)
    assert eng.capacity == 4095 and eng.timer == {}


def test_get_timer_needs_a_running_engine():
    with pytest.raises(RuntimeError, match="start"):
        EventEngineEx().get_timer(0.1)


def test_interval_timer_ticks_with_interval_and_trigger_time(engine):
    engine.start()
    topic = engine.get_timer(0.05)
    assert topic.value == "EventEngine.Internal.Timer.0.05" and topic.is_exact
    assert engine.get_timer(0.05) == topic  # same interval, same topic
    ticks = Ticks(3)
    engine.register_handler(topic, ticks)
    assert ticks.done.wait(WAIT)
    first = ticks.kwargs[0]
    assert first["interval"] == 0.05
    assert isinstance(first["trigger_time"], datetime.datetime)
    assert first["topic"] == topic
    times = [k["trigger_time"] for k in ticks.kwargs[:3]]
    assert times == sorted(times) and times[0] < times[-1]
    assert engine.timer == {0.05: topic}


def test_an_interval_timer_ticks_first_when_it_starts(engine):
    # As PyEventEngine 0.6.2: without activate_time, a timer that is not aligned to the second
    # or the minute ticks at once (trigger_time: when it started), not one interval later.
    engine.start()
    topic = Topic("EventEngine.Internal.Timer.30.0")
    ticks = Ticks(1)
    engine.register_handler(topic, ticks)
    before = datetime.datetime.now()
    assert engine.get_timer(30.0) == topic
    assert ticks.done.wait(WAIT)  # well before the first interval ends
    first = ticks.kwargs[0]
    assert first["interval"] == 30.0
    assert abs((first["trigger_time"] - before).total_seconds()) < 1


def test_activate_time_sets_the_first_tick(engine):
    engine.start()
    start = datetime.datetime.now() + datetime.timedelta(milliseconds=100)
    topic = engine.get_timer(0.07, activate_time=start)
    ticks = Ticks(1)
    engine.register_handler(topic, ticks)
    assert ticks.done.wait(WAIT)
    assert abs((ticks.kwargs[0]["trigger_time"] - start).total_seconds()) < 0.005


def test_second_timer_is_aligned_and_carries_timestamp(engine):
    engine.start()
    topic = engine.get_timer(1)
    assert topic.value == "EventEngine.Internal.Timer.Second"
    ticks = Ticks(1)
    engine.register_handler(topic, ticks)
    assert ticks.done.wait(WAIT)
    tick = ticks.kwargs[0]
    assert tick["interval"] == 1
    assert tick["timestamp"] == int(tick["timestamp"])  # on a whole second
    assert "trigger_time" not in tick


def test_minute_timer_topic(engine):
    engine.start()
    assert engine.get_timer(60).value == "EventEngine.Internal.Timer.Minute"


def test_bad_interval(engine):
    engine.start()
    with pytest.raises(ValueError, match="interval"):
        engine.get_timer(0)
    with pytest.raises(ValueError, match="interval"):
        engine.get_timer(-1.5)


def test_a_timer_on_a_topic_that_is_not_exact_is_refused(engine):
    engine.start()
    for run in (
        lambda: engine.run_timer(0.5, Topic("Ticks.{kind}")),
        lambda: engine.second_timer(Topic("Ticks.(a|b)")),
        lambda: engine.minute_timer(Topic("Ticks./x/")),
    ):
        with pytest.raises(ValueError, match="must be exact"):
            run()


def test_timers_end_when_the_engine_stops(engine):
    engine.start()
    topic = engine.get_timer(0.02)
    ticks = Ticks(1)
    engine.register_handler(topic, ticks)
    assert ticks.done.wait(WAIT)
    engine.stop()
    assert engine.timer == {}
    while True:  # drop ticks queued before the stop
        try:
            engine.get(block=False)
        except Empty:
            break
    # stop() joined the timer thread: no tick arrives afterwards (ten intervals' grace).
    with pytest.raises(Empty):
        engine.get(timeout=0.2)


def test_ticks_can_be_taken_with_get():
    eng = EventEngineEx()
    eng.activate()  # active, but no loop: ticks stay in the queue
    try:
        topic = eng.get_timer(0.02)
        msg = eng.get(timeout=WAIT)
        assert msg.topic == topic and msg.args == ()
        assert msg.kwargs["interval"] == 0.02
    finally:
        eng.stop()


def test_blocking_run_timer_until_deactivate(engine):
    engine.start()
    topic = Topic("Custom.Timer")
    ticks = Ticks(2)
    engine.register_handler(topic, ticks)
    runner = threading.Thread(target=engine.run_timer, args=(0.03, topic))
    runner.start()
    assert ticks.done.wait(WAIT)
    assert ticks.kwargs[0]["interval"] == 0.03
    assert isinstance(ticks.kwargs[0]["trigger_time"], datetime.datetime)
    engine.stop()
    runner.join(WAIT)
    assert not runner.is_alive()


def test_blocking_second_timer_until_stop(engine):
    engine.start()
    topic = Topic("Custom.Second")
    ticks = Ticks(1)
    engine.register_handler(topic, ticks)
    runner = threading.Thread(target=engine.second_timer, args=(topic,))
    runner.start()
    assert ticks.done.wait(WAIT)
    assert "timestamp" in ticks.kwargs[0]
    engine.stop()
    runner.join(WAIT)
    assert not runner.is_alive()


def test_minute_timer_returns_when_the_engine_stops(engine):
    engine.start()
    runner = threading.Thread(target=engine.minute_timer, args=(Topic("Custom.Minute"),))
    runner.start()
    engine.stop()
    runner.join(WAIT)
    assert not runner.is_alive()


def test_blocking_timers_need_a_running_engine():
    eng = EventEngineEx()
    with pytest.raises(RuntimeError):
        eng.run_timer(1.0, Topic("x"))
    with pytest.raises(RuntimeError):
        eng.second_timer(Topic("x"))
    with pytest.raises(RuntimeError):
        eng.minute_timer(Topic("x"))


def test_clear_removes_timers(engine):
    engine.start()
    engine.get_timer(0.5)
    engine.stop()
    engine.clear()
    assert engine.timer == {} and len(engine) == 0
