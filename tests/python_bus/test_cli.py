"""The `event-engine` console script that the wheel installs, run as a user would against a
bus with Python engines attached."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import assert_idle
from event_engine import EventEngine, Topic


def cli() -> str:
    """The console script next to this interpreter (the wheel puts it there)."""
    path = Path(sys.executable).parent / "event-engine"
    assert path.exists(), f"the wheel did not install the console script at {path}"
    return str(path)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([cli(), *args], check=False, capture_output=True, text=True, timeout=60)


def test_console_script_is_installed_and_on_path() -> None:
    done = run("--help")
    assert done.returncode == 0, done.stderr
    for sub in ("create", "ls", "inspect", "watch", "tail", "publish", "reap", "rm", "bridge"):
        assert sub in done.stdout
    assert shutil.which("event-engine", path=str(Path(sys.executable).parent)) is not None


def test_publish_reaches_a_python_handler_with_its_arguments(bus: str) -> None:
    got: list[tuple[tuple, dict]] = []
    arrived = threading.Event()

    def handler(*args, **kwargs) -> None:
        # A handler taking **kwargs is also given the published topic.
        assert isinstance(kwargs.pop("topic"), Topic)
        got.append((args, kwargs))
        if len(got) == 3:
            arrived.set()

    with EventEngine(bus=bus) as engine:
        engine.register_handler(Topic("Market.Data.{symbol}"), handler)
        engine.start()
        done = run("publish", bus, "Market.Data.AAPL", '[1, 189.5, "AAPL", null, true]',
                   "--kwargs", '{"size": 100, "venue": "X"}', "--count", "2")
        assert done.returncode == 0, done.stderr
        done = run("publish", bus, "Market.Data.MSFT", "--raw", "hello")
        assert done.returncode == 0, done.stderr
        assert arrived.wait(10), got
        engine.stop()
    assert got[:2] == [((1, 189.5, "AAPL", None, True), {"size": 100, "venue": "X"})] * 2
    assert got[2] == ((b"hello",), {})
    assert_idle(bus)


def test_inspect_json_sees_the_python_engines(bus: str) -> None:
    with EventEngine(bus=bus) as one, EventEngine(bus=bus, group="workers") as two:
        two.register_handler(Topic("Jobs.{kind}"), lambda *a, **k: None)
        one.put(Topic("Jobs.New"), 1)
        report = json.loads(run("inspect", bus, "--json").stdout)
        me = [p for p in report["processes"] if p["pid"] == os.getpid()]
        roles = sorted(p["role"] for p in me)
        assert roles.count("subscriber") == 1 and roles.count("group_member") == 1, roles
        assert report["counters"]["published"] == 1
        assert [g["name"] for g in report["groups"]] == ["workers"]
        del two
    # The group member never started, so the group keeps the message for a later member.
    after = json.loads(run("inspect", bus, "--json").stdout)
    assert after["processes"] == []
    assert [(g["name"], g["members"]) for g in after["groups"]] == [("workers", 0)]
    assert after["groups"][0]["kept_for_ms"] > 0
    assert after["ring"]["occupancy"] == 1


def test_tail_shows_a_publish_only_engines_message_within_a_second(bus: str) -> None:
    # A Python engine that only publishes: never started, no hooks, no other subscriber on the
    # bus. Its first put finds nobody who wants the topic (and its publisher remembers that).
    engine = EventEngine(bus=bus)
    topic = Topic("Orders.New")
    engine.put(topic, 0)
    tail = subprocess.Popen(
        [cli(), "tail", bus, "-n", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert tail.stderr is not None
        started = tail.stderr.readline()  # printed once tail is attached
        assert started.startswith("tailing bus"), started
        sent = time.monotonic()
        engine.put(topic, 42, side="buy")
        out, err = tail.communicate(timeout=30)  # a hang guard, not the time checked
        shown = time.monotonic() - sent
    finally:
        if tail.poll() is None:
            tail.kill()
            tail.wait()
    assert tail.returncode == 0, err
    lines = out.splitlines()
    assert len(lines) == 1 and " Orders.New " in lines[0], out
    assert lines[0].endswith("(42, side='buy')"), out
    assert shown < 1.0, f"the message took {shown:.2f} s to appear"
    engine.close()
    assert_idle(bus)


@pytest.mark.parametrize(
    ("args", "status", "words"),
    [
        (("inspect", "no-such-bus-for-sure"), 3, "no-such-bus-for-sure"),
        (("inspect", "../etc"), 4, "name"),
        (("publish", "x", "Market.{symbol}", "[1]"), None, "exact"),
    ],
)
def test_errors_are_one_line_with_a_status(args: tuple[str, ...], status: int | None, words: str) -> None:
    done = run(*args)
    assert done.returncode != 0
    if status is not None:
        assert done.returncode == status
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("event-engine: error:"), done.stderr
    assert words in lines[0]
    assert "panicked" not in done.stderr and "Traceback" not in done.stderr


@contextlib.contextmanager
def nats_server() -> Iterator[str]:
    """A real nats-server (scripts/setup.sh installs it) on a free loopback port, until the end."""
    binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
    assert Path(binary).exists(), "nats-server is not installed: run scripts/setup.sh"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([binary, "-a", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stderr is not None
        assert any("Server is ready" in line for line in server.stderr), "nats-server did not start"
        threading.Thread(target=server.stderr.read, daemon=True).start()
        yield f"nats://127.0.0.1:{port}"
    finally:
        server.kill()
        server.wait()


@contextlib.contextmanager
def bridge(bus: str, url: str, pattern: str) -> Iterator[subprocess.Popen[str]]:
    """`event-engine bridge` importing and exporting `pattern`, ready; SIGTERMed at the end."""
    proc = subprocess.Popen([cli(), "bridge", bus, "--nats", url, "--export", pattern, "--import", pattern,
                             "--stats-every", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        ready = proc.stdout.readline()
        assert "ready" in ready, (ready, proc.stderr.read() if proc.poll() is not None else "")
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "dropped 0" in out, out


def test_a_bridge_carries_python_calls_to_a_bus_on_another_machine(bus: str) -> None:
    """Two buses stand for two machines; the far handler gets the arguments that were put."""
    far = f"pytest-{uuid.uuid4().hex[:12]}"
    got: list[tuple[tuple, dict]] = []
    arrived = threading.Event()

    def handler(*args, **kwargs) -> None:
        kwargs.pop("topic", None)
        got.append((args, kwargs))
        if len(got) == 3:
            arrived.set()

    try:
        with nats_server() as url, EventEngine(bus=bus) as near, EventEngine(bus=far) as remote:
            remote.register_handler(Topic("Market.Data.{symbol}"), handler)
            remote.start()
            with bridge(bus, url, "Market.Data.{symbol}"), bridge(far, url, "Market.Data.{symbol}"):
                near.put(Topic("Market.Data.AAPL"), 1, 189.5, "AAPL", size=100)   # compact encoding
                near.put(Topic("Market.Data.MSFT"), {"bid": 1.5}, [2, "x"])       # pickled
                near.put(Topic("Market.Data.SPY"), b"raw bytes")
                assert arrived.wait(30), got
            remote.stop()
        assert got == [
            ((1, 189.5, "AAPL"), {"size": 100}),
            (({"bid": 1.5}, [2, "x"]), {}),
            ((b"raw bytes",), {}),
        ]
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"/dev/shm/event_engine.{far}")
