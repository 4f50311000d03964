#!/usr/bin/env bash
# Sets everything up and runs the checks and tests.
#
#   bash scripts/test.sh         the contributor's run (about 10 minutes on 2 CPUs): formatting,
#                                lints, the stubs' type check, the Rust tests, the quicker loom
#                                models and the Python suites on the venv's CPython
#   bash scripts/test.sh --all   the whole matrix (what CI runs): the above, every loom model,
#                                the tests that need gigabytes (EVENT_ENGINE_BIG_TESTS=1: a 1 GiB
#                                message), and the Python suites on CPython 3.9 (when pyenv has
#                                it) and PyPy 3.11, the asyncio ones on CPython 3.12+ when pyenv
#                                has one (scripts/other-pythons.sh)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ALL=0
case "${1:-}" in
  "") ;;
  --all) ALL=1 ;;
  *) echo "usage: bash scripts/test.sh [--all]" >&2; exit 2 ;;
esac
# The loom models left out of the quick run: each takes minutes in release mode on 2 CPUs.
# `--all` runs them too.
LOOM_SLOW=(
  loom_a_reused_slot_is_not_read_as_its_previous_position
  loom_a_seal_racing_an_announcement_leaves_one_winner
  loom_group_member_dies_after_releasing_its_message
  loom_group_member_dies_with_a_confirmed_claim
  loom_group_member_dies_with_an_unconfirmed_claim
  loom_no_wake_up_is_lost_behind_a_position_for_another_consumer
  loom_lossy_consumer_is_evicted_not_waited_for
  loom_ring_batch_claim_with_a_single_publisher
  loom_ring_one_publisher_two_consumers
)
source "$ROOT/scripts/setup.sh"
cd "$ROOT"
started=$SECONDS
echo "== cargo fmt"; cargo fmt --all -- --check
echo "== cargo clippy"; cargo clippy -q --workspace --all-targets -- -D warnings
echo "== ruff"; ruff check py-binding/python tests tools scripts
echo "== module import cycles (none allowed in any crate)"
for src in engine-core/src shm-ring/src py-binding/src tools/src; do python scripts/module_cycles.py "$src"; done
echo "== mypy (the stubs and a typed usage sample, for Python 3.9)"
MYPYPATH=py-binding/python mypy --python-version 3.9 --strict py-binding/python/event_engine tests/typing
echo "== cargo test"; cargo test -q --workspace --exclude event-engine-py
skip=()
if [ "$ALL" = 1 ]; then
  echo "== loom models, all of them (shm-ring: ring, free lists, group claims, reaps, sleepers, interest)"
else
  echo "== loom models, the quicker ones (bash scripts/test.sh --all runs every one)"
  for m in "${LOOM_SLOW[@]}"; do skip+=(--skip "$m"); done
fi
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR="$ROOT/target/loom" \
  cargo test -q -p event-engine-shm --release --lib loom -- "${skip[@]}"
# The tests that need gigabytes of /dev/shm and memory (a 1 GiB message) run in --all only.
if [ "$ALL" = 1 ]; then export EVENT_ENGINE_BIG_TESTS=1; fi
echo "== pytest ($(python -V))"; python -m pytest -q tests/python tests/python_bus
if [ "$ALL" = 1 ]; then
  bash scripts/other-pythons.sh
fi
echo "== all checks passed in $(( (SECONDS - started) / 60 )) min $(( (SECONDS - started) % 60 )) s"
