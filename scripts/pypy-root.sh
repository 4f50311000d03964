#!/usr/bin/env bash
# PyPy 3.11 for building and testing the PyPy wheel. Debian bookworm's pypy3 is Python 3.9,
# too old for PyO3; Debian trixie's is PyPy 7.3.19 = Python 3.11. This script keeps a minimal
# trixie root made with debootstrap under target/pypy-trixie (made once, reused after) and
# runs commands in it. Needs root (debootstrap, chroot, mounts).
#
#   scripts/pypy-root.sh make           make the root if it is not there yet
#   scripts/pypy-root.sh run CMD ARG... run CMD in the root, in the current directory
#   scripts/pypy-root.sh wheel DIR [MATURIN-BUILD-ARGS...]
#                                       build the PyPy 3.11 wheel into DIR, on the host (host
#                                       Rust and maturin, which must be on PATH) against the
#                                       root's interpreter
#
# `run` works in a private mount namespace (unshare): /proc, /dev/shm (the buses are shared
# with the host) and the repository (at the same path) are mounted for the command only and
# vanish with it, so nothing stays mounted under target/ whatever happens.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYPY_ROOT="${PYPY_ROOT:-$ROOT/target/pypy-trixie}"
SUITE=trixie

die() { echo "pypy-root.sh: $*" >&2; exit 1; }

# The Debian archive this machine's own apt uses (DEBIAN_MIRROR overrides it): the first URI of
# a deb822 stanza (/etc/apt/sources.list.d/*.sources) or a one-line `deb` entry
# (/etc/apt/sources.list, *.list) whose suite is the host's release, security updates aside.
debian_mirror() {
  if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; return; fi
  local codename uri f
  codename="$(. /etc/os-release 2>/dev/null; echo "${VERSION_CODENAME:-}")"
  [ -n "$codename" ] || die "cannot tell this machine's Debian release (/etc/os-release); set DEBIAN_MIRROR"
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    uri="$(awk -v rel="$codename" 'BEGIN { RS = ""; FS = "\n" }
      {
        types = ""; uris = ""; suites = ""
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^Types:/) types = $i
          else if ($i ~ /^URIs:/) uris = $i
          else if ($i ~ /^Suites:/) suites = $i
        }
        if (types !~ /(^|[ \t])deb([ \t]|$)/) next
        if ((" " suites " ") !~ (" " rel " ")) next
        split(uris, u, /[ \t]+/)
        if (u[2] != "") { print u[2]; exit }
      }' "$f")"
    if [ -n "$uri" ]; then echo "$uri"; return; fi
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    uri="$(awk -v rel="$codename" '$1 == "deb" {
        i = 2; if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
        if ($(i + 1) == rel) { print $i; exit }
      }' "$f")"
    if [ -n "$uri" ]; then echo "$uri"; return; fi
  done
  die "found no Debian archive for '$codename' in this machine's apt sources; set DEBIAN_MIRROR"
}

make_root() {
  [ -f "$PYPY_ROOT/.complete" ] && return 0
  [ "$(id -u)" = 0 ] || die "making the PyPy root needs root (debootstrap); run as root or set PYPY_ROOT to a made root"
  if ! command -v debootstrap >/dev/null; then
    echo "== installing debootstrap"
    apt-get update -q >/dev/null && apt-get install -y -q debootstrap >/dev/null
  fi
  local mirror log
  mirror="$(debian_mirror)"
  echo "== making a Debian $SUITE root with PyPy 3.11 in $PYPY_ROOT (once, about 3 minutes)"
  mkdir -p "$(dirname "$PYPY_ROOT")"
  log="$(dirname "$PYPY_ROOT")/pypy-debootstrap.log"
  rm -rf "$PYPY_ROOT.tmp"
  debootstrap --variant=minbase --include=pypy3,pypy3-venv,ca-certificates,nats-server \
    "$SUITE" "$PYPY_ROOT.tmp" "$mirror" >"$log" 2>&1 \
    || die "debootstrap from $mirror failed, see $log"
  rm -rf "$PYPY_ROOT"
  mv "$PYPY_ROOT.tmp" "$PYPY_ROOT"
  touch "$PYPY_ROOT/.complete"
}

run_in_root() {
  [ -f "$PYPY_ROOT/.complete" ] || die "no PyPy root at $PYPY_ROOT: run '$0 make' first"
  [ $# -gt 0 ] || die "run needs a command"
  cp /etc/resolv.conf "$PYPY_ROOT/etc/resolv.conf" 2>/dev/null || true
  # The host's CA bundle (it may hold a local CA that HTTPS to the package index goes through).
  cp "${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}" "$PYPY_ROOT/etc/ssl/host-ca.crt" 2>/dev/null || true
  mkdir -p "$PYPY_ROOT/proc" "$PYPY_ROOT/dev/shm" "$PYPY_ROOT$ROOT"
  # A clean environment: the host's PATH, virtualenv and pip paths mean nothing in there.
  PYPY_ROOT="$PYPY_ROOT" REPO="$ROOT" WORKDIR="$PWD" unshare --mount --propagation private -- \
    sh -c 'mount -t proc proc "$PYPY_ROOT/proc" \
      && mount --bind /dev/shm "$PYPY_ROOT/dev/shm" \
      && mount --bind "$REPO" "$PYPY_ROOT$REPO" \
      && exec chroot "$PYPY_ROOT" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root \
           LANG=C.UTF-8 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_CERT=/etc/ssl/host-ca.crt \
           ${PIP_INDEX_URL:+PIP_INDEX_URL="$PIP_INDEX_URL"} ${https_proxy:+https_proxy="$https_proxy"} \
           CI="${CI:-}" sh -c "cd \"\$0\" 2>/dev/null || cd /; exec \"\$@\"" "$WORKDIR" "$@"' sh "$@"
}

interpreter() {
  # maturin asks this interpreter for its version, ABI and extension suffix.
  local wrapper="$ROOT/target/pypy3"
  printf '#!/bin/sh\nexec bash %q run /usr/bin/pypy3 "$@"\n' "$ROOT/scripts/pypy-root.sh" >"$wrapper"
  chmod +x "$wrapper"
  echo "$wrapper"
}

build_wheel() {
  local out="$1"
  shift
  make_root
  # PyO3's build script cannot run the root's interpreter (maturin hands it the path inside
  # the root), so it gets the interpreter's configuration from a file. Both files go under
  # target/, which a fresh clone with a root made elsewhere (PYPY_ROOT) does not have yet.
  mkdir -p "$ROOT/target"
  local cfg="$ROOT/target/pypy-pyo3-config.txt"
  run_in_root /usr/bin/pypy3 -c 'import struct, sys
assert sys.implementation.name == "pypy", sys.implementation.name
print("implementation=PyPy")
print("version=%d.%d" % sys.version_info[:2])
print("shared=true")
print("abi3=false")
print("pointer_width=%d" % (8 * struct.calcsize("P")))' >"$cfg"
  PYO3_CONFIG_FILE="$cfg" maturin build --release -m "$ROOT/py-binding/Cargo.toml" \
    -i "$(interpreter)" -o "$out" "$@"
}

case "${1:-}" in
  make) make_root ;;
  run) shift; run_in_root "$@" ;;
  wheel) shift; [ $# -gt 0 ] || die "wheel needs an output directory"; build_wheel "$@" ;;
  *) die "usage: $0 make | run CMD [ARG...] | wheel DIR [MATURIN-BUILD-ARGS...]" ;;
esac
