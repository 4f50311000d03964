"""Every Python example in the README runs as written (each in a fresh interpreter)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)


def test_readme_has_python_examples() -> None:
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index: int) -> None:
    if "import numpy" in BLOCKS[index]:
        pytest.importorskip("numpy")  # not a dependency; the arrays example needs it
    done = subprocess.run([sys.executable, "-c", BLOCKS[index]], check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
