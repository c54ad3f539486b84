#!/usr/bin/env bash
# Install the proxies signoff is compared with, each into its own virtualenv under
# benchmarks/.venvs/<peer> (git-ignored), never into the environment signoff's tests use.
# Run once: bash benchmarks/setup_peers.sh   (PYTHON=python3.11 to choose the interpreter)
# Then: python benchmarks/bench_peers.py     (a peer that is not installed is skipped and said so)
set -uo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3}"
mkdir -p .venvs

install_peer() {  # name, pip requirement(s)...
  local name="$1"; shift
  local venv=".venvs/$name"
  echo "== $name: $*"
  if [ ! -x "$venv/bin/python" ]; then
    "$PYTHON" -m venv "$venv" || { echo "!! $name: could not create $venv"; return 1; }
    "$venv/bin/python" -m pip install --quiet --upgrade pip || true
  fi
  if "$venv/bin/python" -m pip install --quiet "$@" >"$venv/install.log" 2>&1; then
    "$venv/bin/python" -m pip freeze | grep -iE '^(fastmcp|mcp|mcp-proxy)==' | sed "s/^/   $name: /"
    touch "$venv/.installed"
  else
    echo "!! $name: pip install failed; the last lines of $venv/install.log:"
    tail -n 15 "$venv/install.log"
    rm -f "$venv/.installed"
    return 1
  fi
}

status=0
install_peer fastmcp fastmcp || status=1
install_peer mcp-proxy mcp-proxy || status=1
exit $status
