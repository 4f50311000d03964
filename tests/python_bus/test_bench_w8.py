"""The W8 benchmark (tools/bench/w8_large.py) in its --quick mode, with the peers installed in
this interpreter: it must finish, print a latency row for every size and a streaming row for
1 MiB and 16 MiB, run our engine for every size its bus carries (the rest shown as
"n/a (bus limit)"), and leave nothing in /dev/shm. Its figures are not checked: a benchmark
is never a timed assertion."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "bench" / "w8_large.py"
SIZES = {64: "64 B", 4096: "4 KiB", 65536: "64 KiB", 1 << 20: "1 MiB", 4 << 20: "4 MiB", 16 << 20: "16 MiB"}
STREAM_SIZES = (1 << 20, 16 << 20)
PEERS = ("ours", "ours_loan", "iceoryx2", "zmq", "mp_pipe", "shm_floor")

pytestmark = [
    pytest.mark.skipif(sys.version_info < (3, 10), reason="the benchmarks' harness needs Python 3.10 or later"),
    pytest.mark.skipif(platform.python_implementation() != "CPython", reason="the benchmarks run on CPython"),
]


def _rows(lines: list[str], heading: str) -> dict[str, str]:
    """The rows of the table under `heading`, by their first cell (the size label)."""
    start = next(k for k, line in enumerate(lines) if line.startswith(heading))
    header = lines[start + 2]
    cols = header.split()
    assert cols[0] == "size" and all(p in cols for p in PEERS), header
    assert set(lines[start + 3]) == {"-"}
    rows: dict[str, str] = {}
    for line in lines[start + 4 :]:
        if not line.strip():
            break
        label = " ".join(line.split()[:2])
        assert label not in rows, f"two rows for {label}"
        rows[label] = line
    return rows


def test_quick_run_has_a_row_per_size_and_leaves_nothing():
    pytest.importorskip("numpy")
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--quick", "--current-python", "--json"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out[-3000:]}\n{err[-3000:]}"

    lines = out.splitlines()
    latency = _rows(lines, "one-way latency")
    assert sorted(latency) == sorted(SIZES.values())
    streaming = _rows(lines, "streaming, GB/s")
    assert sorted(streaming) == sorted(SIZES[s] for s in STREAM_SIZES)
    assert "LEFT IN /dev/shm" not in out

    figures = json.loads(out[out.index("\n{") + 1 :])
    assert sorted(figures) == sorted(PEERS)
    ours = figures["ours"]
    assert ours["failure"] is None and len(ours["runs"]) == 1, ours
    assert "p50_us@64" in ours["runs"][0], "the default bus carries 64-byte arrays"
    for key in ("mp_pipe", "shm_floor"):  # no package needed but numpy
        assert figures[key]["failure"] is None, figures[key]
    # A peer that ran has figures for every size, but ours may leave out what its bus cannot carry.
    for key, peer in figures.items():
        if peer["failure"] is not None:
            assert f"  {key}: " in out and "not available" in out, f"{key} failed: {peer['failure']}"
            continue
        (run,) = peer["runs"]
        for size, label in SIZES.items():
            if key.startswith("ours") and f"skipped@{size}" in run:
                assert "n/a (bus limit)" in latency[label]
                continue
            assert run[f"p99_us@{size}"] >= run[f"p50_us@{size}"] > 0, (key, size, run)
            if size in STREAM_SIZES:
                assert run[f"gbps@{size}"] > 0, (key, size, run)

    pid = proc.pid
    left = [e for e in os.listdir("/dev/shm") if f"-{pid}-" in e or e.startswith(f"iox2b{pid}")]
    assert left == []
