#!/usr/bin/env bash
# Sets everything up and runs every check and test: formatting, lints, the stubs' type check,
# Rust tests (unit, property, loom models), the Python suites on the venv's CPython, then on
# CPython 3.9 (when pyenv has it) and PyPy 3.11 (scripts/other-pythons.sh).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup.sh"
cd "$ROOT"
echo "== cargo fmt"; cargo fmt --all -- --check
echo "== cargo clippy"; cargo clippy -q --workspace --all-targets -- -D warnings
echo "== ruff"; ruff check py-binding/python tests tools scripts
echo "== module import cycles (none allowed in any crate)"
for src in engine-core/src shm-ring/src py-binding/src tools/src; do python scripts/module_cycles.py "$src"; done
echo "== mypy (the stubs and a typed usage sample, for Python 3.9)"
MYPYPATH=py-binding/python mypy --python-version 3.9 --strict py-binding/python/event_engine tests/typing
echo "== cargo test"; cargo test -q --workspace --exclude event-engine-py
echo "== loom models (shm-ring: ring, free lists, group claims, reaps, sleepers, interest)"
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR="$ROOT/target/loom" cargo test -q -p event-engine-shm --release --lib loom
echo "== pytest ($(python -V))"; python -m pytest -q tests/python tests/python_bus
bash scripts/other-pythons.sh
