#!/usr/bin/env bash
# Sets everything up and runs every check and test: formatting, lints, Rust
# tests (unit, property, loom models), the Python suites.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup.sh"
cd "$ROOT"
echo "== cargo fmt"; cargo fmt --all -- --check
echo "== cargo clippy"; cargo clippy -q --workspace --all-targets -- -D warnings
echo "== ruff"; ruff check py-binding/python tests tools
echo "== cargo test"; cargo test -q --workspace --exclude event-engine-py
echo "== loom models (shm-ring ring and free lists)"
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR="$ROOT/target/loom" cargo test -q -p shm-ring --release --lib loom
echo "== pytest"; python -m pytest -q tests
