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
# The bridge's tests and benchmark run a real NATS server on loopback.
if ! command -v nats-server >/dev/null 2>&1 && [ ! -x /usr/sbin/nats-server ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get install -y -q nats-server >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null && apt-get install -y -q nats-server >/dev/null; } \
      || echo "setup: could not install nats-server; the bridge tests need it" >&2
  else
    echo "setup: nats-server is missing; install it (Debian: apt-get install nats-server)" >&2
  fi
fi
export VIRTUAL_ENV="$ROOT/.venv"
export PATH="$VIRTUAL_ENV/bin:$PATH"
python -m pip install -q --disable-pip-version-check -r scripts/requirements-dev.txt
maturin develop -q --release -m py-binding/Cargo.toml
