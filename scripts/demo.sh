#!/usr/bin/env bash
# Sets everything up and runs the main demo.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup.sh"
cd "$ROOT"
python tools/demo/inprocess_demo.py
