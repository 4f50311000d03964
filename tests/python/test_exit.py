"""A script that ends while engines, timers or blocked calls still run exits cleanly (status 0).

Each case runs in a fresh child interpreter: the crash this guards against happened while the
interpreter finalized, after the script's last line (SIGABRT "FATAL: exception not rethrown",
or SIGSEGV).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

RUNS = 3  # the crash happened every run: three clean runs in a row are a real check

SCRIPTS = {
    # The reproduction: a custom-interval timer ticking while the script ends.
    "timer": """
        import time
        from event_engine import EventEngineEx
        e = EventEngineEx(); e.start(); e.get_timer(interval=0.05); time.sleep(0.2)
    """,
    # A started engine whose handler releases the GIL, busy with a queue of messages.
    "busy loop": """
        import time
        from event_engine import EventEngine, Topic
        e = EventEngine()
        e.register_handler(Topic("A.{x}"), lambda *a, **k: time.sleep(0.001))
        e.start()
        for i in range(200):
            e.put(Topic("A.B"), i)
        time.sleep(0.05)
    """,
    # run() on the user's own daemon thread, stopped by nobody.
    "own thread": """
        import threading, time
        from event_engine import EventEngine, Topic
        e = EventEngine()
        e.register_handler(Topic("A.B"), lambda *a: time.sleep(0.001))
        e.activate()
        threading.Thread(target=e.run, daemon=True).start()
        for i in range(200):
            e.put(Topic("A.B"), i)
    """,
    # Daemon threads waiting in get() and put() (without the GIL) when the script ends.
    "blocked calls": """
        import threading, time
        from event_engine import Empty, EventEngine, Full, Topic
        src, full = EventEngine(), EventEngine(capacity=1)
        full.put(Topic("A.B"))
        def getter():
            while True:
                try:
                    src.get(timeout=0.002)
                except Empty:
                    pass
        def putter():
            while True:
                try:
                    full.put(Topic("A.B"), timeout=0.002)
                except Full:
                    pass
        threading.Thread(target=getter, daemon=True).start()
        threading.Thread(target=putter, daemon=True).start()
        time.sleep(0.05)
    """,
    # A blocking timer loop on a daemon thread.
    "run_timer": """
        import threading, time
        from event_engine import EventEngineEx, Topic
        e = EventEngineEx()
        e.register_handler(Topic("T.X"), lambda **k: None)
        e.start()
        threading.Thread(target=e.run_timer, args=(0.01, Topic("T.X")), daemon=True).start()
        time.sleep(0.1)
    """,
}


def run_child(source: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(source), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("case", sorted(SCRIPTS))
def test_the_script_ends_with_status_0(case):
    for _ in range(RUNS):
        done = run_child(SCRIPTS[case])
        assert done.returncode == 0, (done.returncode, done.stderr)
        assert "FATAL" not in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_a_running_engine_handles_the_message_in_hand_before_exit():
    # The loop finishes the batch it took; the exit waits for it rather than cutting a
    # handler short (which crashed) or dropping it.
    source = """
        import threading, time
        from event_engine import EventEngine, Topic
        e = EventEngine()
        started = threading.Event()
        def slow(i):
            started.set()
            time.sleep(0.2)
            print("handled", i, flush=True)
        e.register_handler(Topic("A.B"), slow)
        e.start()
        e.put(Topic("A.B"), 1)
        started.wait(10)  # the script ends while the handler runs
    """
    done = run_child(source)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["handled", "1"]


def test_a_stopped_engine_is_not_disturbed_by_exit():
    # An engine the script stopped itself, and one it never started: exit has nothing to do,
    # and an atexit hook of the user's (run before the package's) still finds them working.
    source = """
        import atexit
        from event_engine import EventEngine, Topic
        e = EventEngine()
        seen = []
        e.register_handler(Topic("A.B"), seen.append)
        e.start(); e.stop()
        def last_words():
            e.put(Topic("A.B"), 7)
            print(e.get(block=False).args, flush=True)
        atexit.register(last_words)
    """
    done = run_child(source)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(7,)"


def test_a_forked_child_exits_without_touching_its_parents_running_engine():
    # The child inherits the engine but not its dispatch thread: its exit neither waits for
    # that loop nor stops it, and the parent's engine keeps dispatching.
    source = """
        import os, sys, threading, warnings
        from event_engine import EventEngine, Topic
        warnings.simplefilter("ignore", DeprecationWarning)  # fork() with threads running
        e = EventEngine()
        got = threading.Event()
        e.register_handler(Topic("A.B"), got.set)
        e.start()
        pid = os.fork()
        if pid == 0:
            sys.exit(0)
        _, status = os.waitpid(pid, 0)
        e.put(Topic("A.B"))
        print(os.waitstatus_to_exitcode(status), got.wait(10), flush=True)
    """
    done = run_child(source)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", "True"]
