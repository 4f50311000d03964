#!/usr/bin/env bash
# Builds the distributions into dist/:
#   - the abi3 wheel for CPython 3.9 and later, manylinux2014 (glibc 2.17), linked with zig
#     (`ziglang` from PyPI) so that it runs on distributions older than this machine's;
#   - a PyPy 3.11 wheel, manylinux2014 too, built against the PyPy of a Debian trixie root
#     (scripts/pypy-root.sh makes it once under target/; needs root);
#   - the sdist.
# Then it checks what it built: `auditwheel show` must find each wheel consistent with the
# platform tag its name claims, and each wheel must hold LICENSE, the README as its long
# description, the project URLs and a stripped extension. Any mismatch fails the script.
#
#   bash scripts/wheels.sh            everything
#   bash scripts/wheels.sh --no-pypy  the CPython wheel and the sdist only
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYPY=1
[ "${1:-}" = "--no-pypy" ] && PYPY=0

PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
export VIRTUAL_ENV="$ROOT/.venv"
export PATH="$VIRTUAL_ENV/bin:$PATH"
python -m pip install -q --disable-pip-version-check -r scripts/requirements-wheels.txt

DIST="$ROOT/dist"
rm -rf "$DIST"
mkdir -p "$DIST"
# strip is also set in pyproject.toml (for `pip install ./py-binding`); said again here.
MANYLINUX=(-q --strip --zig --compatibility manylinux2014)

echo "== abi3 wheel (CPython 3.9+, manylinux2014)"
maturin build --release -m py-binding/Cargo.toml -i python -o "$DIST" "${MANYLINUX[@]}"
if [ "$PYPY" = 1 ]; then
  echo "== PyPy 3.11 wheel (manylinux2014)"
  bash scripts/pypy-root.sh wheel "$DIST" "${MANYLINUX[@]}"
fi
echo "== sdist"
maturin sdist -m py-binding/Cargo.toml -o "$DIST" 2>/dev/null

echo "== checking the distributions"
python scripts/check_dist.py "$DIST"/*
ls -l "$DIST"
