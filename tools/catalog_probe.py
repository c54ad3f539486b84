"""Start a stdio MCP server, run initialize + tools/list, print a catalog YAML skeleton.

Why: the catalog's tool names and argument keys must come from the real server, not memory.
This speaks raw JSON-RPC (no SDK) so it works against any server of either protocol era.

    python tools/catalog_probe.py --id github --source "@modelcontextprotocol/server-github@2025.4.8" \
        -- npx -y @modelcontextprotocol/server-github > skeleton.yaml

Roles and actions are left for a human to fill in; read-only and destructive come from the
server's own annotations where it has them.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import subprocess
import sys
import time
from typing import Any


def _rpc(proc: subprocess.Popen, msg: dict, deadline: float) -> dict | None:
    assert proc.stdin and proc.stdout
    proc.stdin.write((json.dumps(msg) + "\n").encode())
    proc.stdin.flush()
    if "id" not in msg:
        return None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    buf = b""
    while time.monotonic() < deadline:
        if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
            break
        chunk = os.read(proc.stdout.fileno(), 1 << 16)
        if not chunk:
            break
        buf += chunk
        while b"\n" in buf:
            line, _, buf = buf.partition(b"\n")
            try:
                reply = json.loads(line)
            except ValueError:
                continue  # a server that logs to stdout
            if reply.get("id") == msg["id"]:
                return reply
    raise TimeoutError(f"no reply to {msg['method']}")


def list_tools(command: list[str], env: dict[str, str], timeout: float) -> list[dict[str, Any]]:
    """Every tool the server lists (following pagination)."""
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=sys.stderr, env={**os.environ, **env})
    deadline = time.monotonic() + timeout
    try:
        _rpc(proc, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "catalog-probe", "version": "1"}}}, deadline)
        _rpc(proc, {"jsonrpc": "2.0", "method": "notifications/initialized"}, deadline)
        tools: list[dict[str, Any]] = []
        cursor = None
        for n in range(2, 50):
            params = {"cursor": cursor} if cursor else {}
            reply = _rpc(proc, {"jsonrpc": "2.0", "id": n, "method": "tools/list", "params": params}, deadline) or {}
            result = reply.get("result") or {}
            tools += result.get("tools", [])
            cursor = result.get("nextCursor")
            if not cursor:
                return tools
        return tools
    finally:
        proc.kill()
        proc.wait()


def _keys(schema: dict[str, Any], prefix: str = "args") -> list[str]:
    """Argument paths, one level of nesting and arrays of objects spelled `[*]`."""
    out = []
    for key, sub in (schema.get("properties") or {}).items():
        path = f"{prefix}.{key}"
        out.append(path)
        if isinstance(sub, dict) and sub.get("type") == "object" and sub.get("properties") and prefix == "args":
            out += _keys(sub, path)
        items = sub.get("items") if isinstance(sub, dict) else None
        if isinstance(items, dict) and items.get("properties") and prefix == "args":
            out += _keys(items, path + "[*]")
    return out


def skeleton(server_id: str, source: str, tools: list[dict[str, Any]]) -> str:
    lines = [f"id: {server_id}", f"source: {json.dumps(source)}", "verified: tools/list", "match: {}", "tools:"]
    for t in sorted(tools, key=lambda t: t["name"]):
        ann = t.get("annotations") or {}
        lines.append(f"  {t['name']}:")
        lines.append("    actions: []           # fill in: send_email, file_delete, ... (none: a pure read)")
        lines.append(f"    read_only: {str(bool(ann.get('readOnlyHint', False))).lower()}")
        if "destructiveHint" in ann:
            lines.append(f"    destructive: {str(bool(ann['destructiveHint'])).lower()}")
        schema = t.get("inputSchema") or {}
        lines.append(f"    arguments: {json.dumps(list(schema.get('properties') or {}))}")
        lines.append(f"    # argument paths for fields: {', '.join(_keys(schema))}")
        hints = {k: v for k, v in ann.items() if k.endswith("Hint")}
        if hints:
            lines.append(f"    annotations: {json.dumps(hints)}")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--id", required=True)
    ap.add_argument("--source", required=True)
    ap.add_argument("--env", action="append", default=[], help="NAME=VALUE (dummy credentials)")
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("--json", action="store_true", help="dump the raw tools/list result instead")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    ns = ap.parse_args()
    command = ns.command[1:] if ns.command[:1] == ["--"] else ns.command
    env = dict(e.split("=", 1) for e in ns.env)
    tools = list_tools(command, env, ns.timeout)
    sys.stdout.write(json.dumps(tools, indent=1) if ns.json else skeleton(ns.id, ns.source, tools))
    return 0 if tools else 1


if __name__ == "__main__":
    raise SystemExit(main())
