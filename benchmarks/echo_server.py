"""A minimal MCP server for benchmarks: answers inline, so its own cost is a few microseconds."""

import json
import sys


def main() -> None:
    out = sys.stdout
    for line in sys.stdin:
        msg = json.loads(line)
        rid = msg.get("id")
        if rid is None or "method" not in msg:
            continue
        method = msg["method"]
        if method == "initialize":
            result = {"protocolVersion": msg["params"].get("protocolVersion", "2025-11-25"),
                      "capabilities": {"tools": {}}, "serverInfo": {"name": "bench", "version": "1"}}
        elif method == "tools/list":
            result = {"tools": [{"name": "echo", "inputSchema": {"type": "object"}}]}
        elif method == "tools/call":
            result = {"content": [{"type": "text", "text": json.dumps(msg["params"].get("arguments"))}]}
        else:
            result = {}
        out.write(json.dumps({"jsonrpc": "2.0", "id": rid, "result": result}) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
