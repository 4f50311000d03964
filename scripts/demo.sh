#!/usr/bin/env bash
# Sets everything up and runs the main demo: a Rust producer, three Python workers in one
# group and a Python monitor on one shared-memory bus.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup.sh"
cd "$ROOT"
cargo build -q --release -p event-engine-bench --bin tick-producer -p event-engine-tools --bin event-engine
python tools/demo/bus_demo.py "$@"
