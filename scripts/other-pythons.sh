#!/usr/bin/env bash
# Runs the Python suites (tests/python, tests/python_bus) on the other interpreters we support:
# CPython 3.9, the oldest (pyenv's, when it has one), the asyncio suites on the newest CPython
# (3.12 or later, when pyenv has one), and PyPy 3.11 (in the Debian trixie root
# of scripts/pypy-root.sh, made once under target/). Each gets a venv under target/ with pytest
# and a wheel built now. Run by test.sh after setup.sh (maturin on PATH).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SUITES=(tests/python tests/python_bus)
WHEELS=target/wheels-test
rm -rf "$WHEELS"

py39=""
for p in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.9.*/bin/python; do
  [ -x "$p" ] && py39="$p"
done
if [ -n "$py39" ]; then
  echo "== pytest (CPython $("$py39" -c 'import platform; print(platform.python_version())'))"
  # The abi3 wheel: the same build as setup.sh's `maturin develop`, so cargo has it already.
  maturin build -q --release -m py-binding/Cargo.toml -i python -o "$WHEELS/abi3"
  [ -x target/venv-py39/bin/python ] || "$py39" -m venv target/venv-py39
  target/venv-py39/bin/python -m pip install -q --disable-pip-version-check pytest uvloop numpy
  target/venv-py39/bin/python -m pip install -q --disable-pip-version-check --force-reinstall --no-deps "$WHEELS"/abi3/*.whl
  target/venv-py39/bin/python -m pytest -q -p no:cacheprovider "${SUITES[@]}"
else
  echo "== no CPython 3.9 under pyenv: the suites do not run on it here"
fi

# The asyncio suites on the newest CPython pyenv has, 3.12 or later: there asyncio starts the
# task of a coroutine handler eagerly (event_engine/_asyncio.py), a path the venv's Python lacks.
pynew=""
for p in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.1[2-9].*/bin/python; do
  [ -x "$p" ] && pynew="$p"
done
if [ -n "$pynew" ]; then
  echo "== pytest, the asyncio suites (CPython $("$pynew" -c 'import platform; print(platform.python_version())'))"
  [ -f "$WHEELS"/abi3/*.whl ] 2>/dev/null || maturin build -q --release -m py-binding/Cargo.toml -i python -o "$WHEELS/abi3"
  [ -x target/venv-pynew/bin/python ] || "$pynew" -m venv target/venv-pynew
  target/venv-pynew/bin/python -m pip install -q --disable-pip-version-check pytest uvloop
  target/venv-pynew/bin/python -m pip install -q --disable-pip-version-check --force-reinstall --no-deps "$WHEELS"/abi3/*.whl
  target/venv-pynew/bin/python -m pytest -q -p no:cacheprovider tests/python/test_asyncio.py tests/python_bus/test_bus_asyncio.py
else
  echo "== no CPython 3.12 or later under pyenv: the asyncio suites' eager-task path does not run here"
fi

echo "== pytest (PyPy 3.11, in a Debian trixie root)"
# The root has no Rust: the suites' Rust producer is built here (the CPython run built it already).
cargo build -q --release -p event-engine-bench --bin tick-producer
bash scripts/pypy-root.sh wheel "$WHEELS/pypy" -q
in_root() { bash scripts/pypy-root.sh run "$@"; }
# The bridge test needs a nats-server in the root: a root made before it was in the package list
# gets the host's (setup.sh installed it; it needs only the C library).
pypy_root="${PYPY_ROOT:-$ROOT/target/pypy-trixie}"
host_nats="$(command -v nats-server || true)"
if [ -n "$host_nats" ] && [ ! -x "$pypy_root/usr/sbin/nats-server" ]; then
  install -m 0755 "$host_nats" "$pypy_root/usr/local/bin/nats-server"
fi
[ -x target/venv-pypy/bin/python ] || in_root pypy3 -m venv target/venv-pypy
in_root target/venv-pypy/bin/python -m pip install -q pytest
in_root target/venv-pypy/bin/python -m pip install -q --force-reinstall --no-deps "$WHEELS"/pypy/*.whl
in_root target/venv-pypy/bin/python -m pytest -q -p no:cacheprovider "${SUITES[@]}"
