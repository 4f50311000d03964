"""The benchmarks' harness (tools/bench/benchlib.py): a trial whose role fails ends at once with
that role's error, even while another role still waits for what the failed one would have
sent (it used to wait for the trial's whole timeout, then blame the waiting role)."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "bench"))

pytestmark = pytest.mark.skipif(sys.version_info < (3, 10), reason="the benchmarks' harness needs Python 3.10 or later")


def waiting_role(ctl) -> None:
    ctl.ready()
    ctl.wait_go()
    threading.Event().wait(600)  # a message from the failing role that never comes


def failing_role(ctl) -> None:
    ctl.ready()
    ctl.wait_go()
    raise RuntimeError("the peer broke")


def test_a_failing_role_ends_the_trial_with_its_error_while_another_still_waits():
    import benchlib as bl

    roles = [bl.Role("waiter", waiting_role), bl.Role("failer", failing_role)]
    with pytest.raises(bl.TrialError) as err:
        bl.run_trial(roles, timeout=120.0)
    assert "failer failed" in str(err.value)
    assert "the peer broke" in str(err.value)
