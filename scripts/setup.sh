#!/usr/bin/env bash
# Creates ./.venv with the build and test tools, then builds and installs the
# `event_engine` package into it (release build). Sourced by demo.sh and test.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
export VIRTUAL_ENV="$ROOT/.venv"
export PATH="$VIRTUAL_ENV/bin:$PATH"
python -m pip install -q --disable-pip-version-check -r scripts/requirements-dev.txt
maturin develop -q --release -m py-binding/Cargo.toml
