"""EventHook / EventHookEx / MessagePayload, called directly (no engine)."""

import functools
import logging

import pytest
from event_engine import EventHook, EventHookEx, MessagePayload, Topic


def message(msg_topic, /, *args, **kwargs):
    msg = MessagePayload(alloc=True)
    msg.topic = msg_topic
    msg.args = args
    msg.kwargs = kwargs or None
    msg.seq_id = 42
    return msg


def test_message_payload_fields_are_read_write():
    msg = MessagePayload(alloc=True)
    assert msg.topic is None and msg.args is None and msg.kwargs is None and msg.seq_id == 0
    t = Topic("My.Topic")
    msg.topic = t
    msg.args = (1, 2, 3)
    msg.kwargs = {"key": "value"}
    msg.seq_id = 42
    assert msg.topic is t and msg.args == (1, 2, 3) and msg.kwargs == {"key": "value"}
    assert msg.seq_id == 42
    assert msg.owner and msg.args_owner and msg.kwargs_owner
    assert "My.Topic" in repr(msg) and "seq_id=42" in repr(msg)


def test_message_payload_built_from_topic_args_kwargs():
    t = Topic("My.Topic")
    for msg in (
        MessagePayload(t, (1, 2), {"k": "v"}),
        MessagePayload(topic=t, args=(1, 2), kwargs={"k": "v"}),
    ):
        assert msg.topic is t and msg.args == (1, 2) and msg.kwargs == {"k": "v"}
        assert msg.seq_id == 0
    assert MessagePayload(t).args is None
    with pytest.raises(TypeError, match="topic must be a Topic"):
        MessagePayload("My.Topic", (), {})
    with pytest.raises(TypeError, match="args must be a tuple"):
        MessagePayload(t, [1], {})
    with pytest.raises(TypeError, match="kwargs must be a dict"):
        MessagePayload(t, (), [("k", 1)])


def test_kwargs_with_topic_is_a_copy_with_the_topic_added():
    t = Topic("My.Topic")
    kwargs = {"x": 1}
    msg = MessagePayload(t, (), kwargs)
    aggregated = msg.kwargs_with_topic
    assert aggregated == {"x": 1, "topic": t} and aggregated["topic"] is t
    aggregated["y"] = 2
    assert kwargs == {"x": 1} and msg.kwargs == {"x": 1}
    assert MessagePayload(t).kwargs_with_topic == {"topic": t}
    # A caller's own `topic` keyword wins, as it does for the handlers.
    assert MessagePayload(t, (), {"topic": "mine"}).kwargs_with_topic == {"topic": "mine"}
    assert MessagePayload().kwargs_with_topic == {}


def test_add_handler_takes_a_logger_for_that_handlers_errors(caplog):
    hook = EventHook(Topic("A.B"))
    own = logging.getLogger("test.hook.own")

    def fails():
        raise ValueError("boom")

    def also_fails():
        raise KeyError("bang")

    hook.add_handler(fails, logger=own)
    hook.add_handler(also_fails)
    with caplog.at_level(logging.ERROR):
        hook.trigger(message(Topic("A.B")))
    by_logger = {r.name: r.getMessage() for r in caplog.records}
    assert "boom" in by_logger["test.hook.own"] and "bang" in by_logger["EventEngine.Event"]


def test_add_handler_in_the_reference_argument_order():
    # PyEventEngine 0.6.2: add_handler(handler, logger=None, deduplicate=False).
    hook = EventHook(Topic("A.B"))
    own = logging.getLogger("test.hook.positional")

    def h():
        pass

    hook.add_handler(h, own)
    hook.add_handler(h, True)
    hook.add_handler(h, deduplicate=True, logger=own)
    assert len(hook) == 1
    with pytest.raises(TypeError, match="deduplicate must be a bool"):
        hook.add_handler(h, "yes")


def test_remove_handler_of_a_missing_handler_logs_a_warning(caplog):
    hook = EventHook(Topic("A.B"))
    with caplog.at_level(logging.WARNING, logger="EventEngine"):
        assert hook.remove_handler(print) is hook
    assert "does not exist" in caplog.text and "A.B" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="EventEngine"):
        hook -= print  # the operator stays silent
    assert caplog.text == ""


def test_handlers_called_in_order_no_topic_first():
    topic = Topic("App.Events")
    hook = EventHook(topic)
    calls = []

    def with_topic(x, topic, extra=None):
        calls.append(("with_topic", x, topic))

    def plain(x, extra=None):
        calls.append(("plain", x))

    def var_kw(x, **kwargs):
        calls.append(("var_kw", x, kwargs))

    hook.add_handler(with_topic)
    hook.add_handler(plain)
    hook += var_kw
    assert hook.handlers == [plain, with_topic, var_kw]
    assert list(hook) == hook.handlers
    assert len(hook) == 3
    assert plain in hook and (lambda: None) not in hook

    hook.trigger(message(topic, 7, extra=1))
    assert calls[0] == ("plain", 7)
    assert [c[0] for c in calls] == ["plain", "with_topic", "var_kw"]
    assert calls[1][2] is topic
    assert calls[2][2] == {"extra": 1, "topic": topic}

    calls.clear()
    hook(message(topic, 8))
    assert [c[0] for c in calls] == ["plain", "with_topic", "var_kw"]


def test_plain_handler_never_sees_topic_and_kwargs_are_not_mutated():
    topic = Topic("K.W")
    hook = EventHook(topic)
    got = []
    hook.add_handler(lambda a, b=None: got.append((a, b)))
    hook.add_handler(lambda a, b=None, topic=None: got.append((a, b, topic)))
    kwargs = {"b": 2}
    msg = message(topic, 1)
    msg.kwargs = kwargs
    hook.trigger(msg)
    assert got == [(1, 2), (1, 2, topic)]
    assert kwargs == {"b": 2}


def test_caller_supplied_topic_keyword_wins():
    topic = Topic("K.W")
    hook = EventHook(topic)
    got = []
    hook.add_handler(lambda topic: got.append(topic))
    hook.trigger(message(topic, topic="mine"))
    assert got == ["mine"]


def test_add_remove_deduplicate_clear(caplog):
    hook = EventHook(Topic("A.B"))

    def h():
        pass

    hook.add_handler(h)
    hook.add_handler(h, deduplicate=True)
    assert len(hook) == 1
    with caplog.at_level(logging.WARNING, logger="EventEngine"):
        hook.add_handler(h)
    assert len(hook) == 2
    assert "already registered" in caplog.text
    assert hook.remove_handler(h) is hook
    assert len(hook) == 1
    hook -= h
    assert len(hook) == 0
    hook -= h  # removing a missing handler is a no-op
    hook += h
    hook += h  # += deduplicates
    assert len(hook) == 1
    hook.clear()
    assert len(hook) == 0 and hook.handlers == []


def test_bound_methods_are_found_by_equality():
    class Strategy:
        def __init__(self):
            self.n = 0

        def on(self, x):
            self.n += x

    s = Strategy()
    hook = EventHook(Topic("A.B"))
    hook.add_handler(s.on)
    assert s.on in hook
    hook.trigger(message(Topic("A.B"), 5))
    assert s.n == 5
    hook.remove_handler(s.on)
    assert len(hook) == 0


def test_non_callable_handler_is_a_type_error():
    hook = EventHook(Topic("A.B"))
    with pytest.raises(TypeError, match="callable"):
        hook.add_handler(42)
    with pytest.raises(TypeError, match="callable"):
        hook += "nope"
    assert len(hook) == 0


def test_builtin_without_signature_is_called_without_topic():
    hook = EventHook(Topic("A.B"))
    out = []
    hook.add_handler(out.append)
    hook.add_handler(functools.partial(out.append))
    hook.trigger(message(Topic("A.B"), "x"))
    assert out == ["x", "x"]


def test_raising_handler_is_logged_with_traceback_and_others_run(caplog):
    logger = logging.getLogger("test.hook.errors")
    hook = EventHook(Topic("Err.Topic"), logger=logger)
    ran = []

    def first(x):
        ran.append("first")

    def broken(x):
        raise RuntimeError(f"boom {x}")

    def last(x):
        ran.append("last")

    for h in (first, broken, last):
        hook.add_handler(h)
    with caplog.at_level(logging.ERROR, logger="test.hook.errors"):
        hook.trigger(message(Topic("Err.Topic"), 1))
    assert ran == ["first", "last"]
    records = [r for r in caplog.records if r.name == "test.hook.errors"]
    assert len(records) == 1
    assert records[0].exc_info is not None and records[0].exc_info[0] is RuntimeError
    assert "Traceback" in caplog.text and "boom 1" in caplog.text and "broken" in caplog.text


def test_retry_on_unexpected_topic(caplog):
    class Picky:
        """Looks like it takes **kwargs, but rejects `topic`."""

        def __call__(self, x, **kwargs):
            if "topic" in kwargs:
                raise TypeError("Picky.__call__() got an unexpected keyword argument 'topic'")
            got.append(x)

    got = []
    topic = Topic("Retry.Me")
    strict = EventHook(topic, logger=logging.getLogger("test.retry.off"))
    strict.add_handler(Picky())
    with caplog.at_level(logging.ERROR, logger="test.retry.off"):
        strict.trigger(message(topic, 1))
    assert got == [] and "unexpected keyword argument 'topic'" in caplog.text

    lenient = EventHook(topic, logger=logging.getLogger("test.retry.on"), retry_on_unexpected_topic=True)
    assert lenient.retry_on_unexpected_topic
    lenient.add_handler(Picky())
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="test.retry.on"):
        lenient.trigger(message(topic, 2))
    assert got == [2]
    assert "retrying without it" in caplog.text
    assert not any(r.levelno >= logging.ERROR for r in caplog.records)


def test_hook_attributes():
    t = Topic("Attr.Topic")
    lg = logging.getLogger("test.attrs")
    hook = EventHook(t, logger=lg)
    assert hook.topic is t and hook.logger is lg
    assert hook.retry_on_unexpected_topic is False
    hook.retry_on_unexpected_topic = True
    assert hook.retry_on_unexpected_topic
    assert 'EventHook "Attr.Topic"' in repr(hook) and "handlers=0" in repr(hook)
    assert EventHook(t).logger is logging.getLogger("EventEngine.Event")


def test_handler_added_during_trigger_runs_next_time():
    topic = Topic("Mut.During")
    hook = EventHook(topic)
    calls = []

    def late():
        calls.append("late")

    def adder():
        calls.append("adder")
        hook.add_handler(late, deduplicate=True)

    hook.add_handler(adder)
    hook.trigger(message(topic))
    assert calls == ["adder"]
    hook.trigger(message(topic))
    assert calls == ["adder", "adder", "late"]


def test_event_hook_ex_stats():
    topic = Topic("Stats.Topic")
    hook = EventHookEx(topic)
    assert isinstance(hook, EventHook)

    def a(x):
        pass

    def b(x, topic=None):
        pass

    hook.add_handler(a)
    hook.add_handler(b)
    assert hook.get_stats(a) == {"calls": 0, "total_time": 0.0}
    for i in range(5):
        hook.trigger(message(topic, i))
    sa, sb = hook.get_stats(a), hook.get_stats(b)
    assert sa["calls"] == 5 and sb["calls"] == 5
    assert isinstance(sa["total_time"], float) and sa["total_time"] >= 0.0
    assert hook.get_stats(lambda: None) is None
    pairs = list(hook.stats)
    assert [h for h, _ in pairs] == [a, b]
    assert all(s["calls"] == 5 for _, s in pairs)


def test_plain_hook_has_no_stats():
    assert not hasattr(EventHook(Topic("x")), "get_stats")
