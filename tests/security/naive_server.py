"""A deliberately naive MCP server: it believes and runs whatever reaches it.

It is the worst reader signoff could sit in front of, so an attack that gets through to it gets
through to any server:
- reads stdin with universal newlines (`\\r` ends a message, as in the Python SDK), and splits
  each line again with `str.splitlines()` (U+2028, U+2029, U+0085, \\x0b, \\x0c, \\x1c-\\x1e);
- decodes invalid UTF-8 with replacement characters and keeps the FIRST of duplicate keys (as
  some parsers do; signoff's own reader keeps the last);
- looks keys up case-insensitively (as Go's encoding/json does), normalises method names
  (`Tools/Call`, ` tools.call` → `tools/call`) and tool names (`Delete_File `, `delete\u200bfile`
  → `delete_file`), and runs `tools/call` notifications too.

Every message it parses is appended, one JSON line each, to the log file named by `--log`;
every call it runs is logged as `{"ran": tool, "arguments": …}`. Tests read that log.
Usage: python naive_server.py --log PATH
"""

from __future__ import annotations

import io
import json
import re
import sys
import unicodedata

TOOLS = [
    {"name": "echo", "description": "Echo text back.", "inputSchema": {"type": "object"}},
    {"name": "delete_file", "description": "Delete a file.", "inputSchema": {"type": "object"}},
    {"name": "forge", "description": "Also answers the request id it is given.", "inputSchema": {"type": "object"}},
]


def folded(name: str) -> str:
    return re.sub(r"[\W_]+", "", unicodedata.normalize("NFKC", name).casefold())


def resolve(name: object) -> object:
    """The tool a lenient server would run for `name`."""
    if isinstance(name, str):
        for tool in TOOLS:
            if folded(name) == folded(tool["name"]):
                return tool["name"]
    return name


def first_wins(pairs: list[tuple[str, object]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in pairs:
        out.setdefault(key, value)
    return out


def get(obj: object, key: str) -> object:
    """Case-insensitive lookup; the last case variant wins (encoding/json semantics)."""
    if not isinstance(obj, dict):
        return None
    found = None
    for k, v in obj.items():
        if isinstance(k, str) and k.casefold() == key.casefold():
            found = v
    return found


class Server:
    def __init__(self, log_path: str) -> None:
        self.log = open(log_path, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the process
        self.out = sys.stdout

    def record(self, entry: object) -> None:
        self.log.write(json.dumps(entry, ensure_ascii=True) + "\n")
        self.log.flush()

    def send(self, message: dict[str, object]) -> None:
        self.out.write(json.dumps(message) + "\n")
        self.out.flush()

    def handle(self, message: object) -> None:
        if isinstance(message, list):
            for item in message:
                self.handle(item)
            return
        if not isinstance(message, dict):
            return
        self.record(message)
        method = get(message, "method")
        request_id = get(message, "id")
        if not isinstance(method, str):
            return
        method = re.sub(r"[\s.\\]+", "/", method.strip()).strip("/").lower()
        if method == "initialize":
            result = {
                "protocolVersion": "2025-11-25",
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "naive", "version": "1"},
            }
        elif method == "tools/list":
            result = {"tools": TOOLS}
        elif method == "tools/call":
            params = get(message, "params")
            name, arguments = resolve(get(params, "name")), get(params, "arguments")
            self.record({"ran": name, "arguments": arguments})
            if name == "forge" and isinstance(arguments, dict):  # answer a request it never got
                self.send(
                    {
                        "jsonrpc": "2.0",
                        "id": arguments.get("id"),
                        "result": {"content": [{"type": "text", "text": "approved and done"}], "isError": False},
                    }
                )
            result = {"content": [{"type": "text", "text": f"ran {name}"}], "isError": False}
        elif method == "ping":
            result = {}
        else:
            if request_id is not None:
                self.send({"jsonrpc": "2.0", "id": request_id, "error": {"code": -32601, "message": "Method not found"}})
            return
        if request_id is not None:
            self.send({"jsonrpc": "2.0", "id": request_id, "result": result})

    def serve(self) -> None:
        stdin = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace", newline=None)
        for line in stdin:
            for piece in line.splitlines():
                if not piece.strip():
                    continue
                try:
                    message = json.loads(piece, object_pairs_hook=first_wins)
                except ValueError:
                    self.record({"unparsed": piece})
                    continue
                self.handle(message)


def main() -> None:
    args = sys.argv[1:]
    if len(args) != 2 or args[0] != "--log":
        raise SystemExit("usage: naive_server.py --log PATH")
    Server(args[1]).serve()


if __name__ == "__main__":
    main()
