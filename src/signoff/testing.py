"""Test doubles shipped with signoff, so its tests and its users' tests share them.

`python -m signoff.testing [--name NAME] [--fail-start] [--hang-on METHOD]` runs a small scripted MCP server on
stdio (raw JSON-RPC, no SDK import, so it starts in milliseconds). Its tools misbehave on
purpose, to exercise the proxy's failure handling:

    echo(text)                 answers with the text (and `structuredContent`)
    write_file(path, content)  writes a file (a real side effect for approval tests)
    delete_file(path)          deletes a file
    crash()                    exits with code 3 after a line on stderr, without answering
    hang()                     never answers
    garbage(text)              writes a non-JSON line to stdout, then answers like echo
    ask_user(question)         sends `elicitation/create` to the client, returns its answer
    cancelled_ids()            the request ids the client cancelled so far
    announce()                 sends `notifications/tools/list_changed` and a log message first
    slow(seconds)              answers after a delay, with progress notifications
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any

TOOLS: list[dict[str, Any]] = [
    {
        "name": "echo",
        "description": "Echo the text back.",
        "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
        "annotations": {"readOnlyHint": True},
    },
    {
        "name": "write_file",
        "description": "Write content to a file.",
        "inputSchema": {
            "type": "object",
            "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
            "required": ["path", "content"],
        },
        "annotations": {"readOnlyHint": False, "destructiveHint": True},
    },
    {
        "name": "delete_file",
        "description": "Delete a file.",
        "inputSchema": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
        "annotations": {"destructiveHint": True},
    },
    {"name": "crash", "description": "Exit without answering.", "inputSchema": {"type": "object"}},
    {"name": "hang", "description": "Never answer.", "inputSchema": {"type": "object"}},
    {
        "name": "garbage",
        "description": "Write a non-JSON line, then echo.",
        "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}},
    },
    {
        "name": "ask_user",
        "description": "Ask the user a question through elicitation.",
        "inputSchema": {"type": "object", "properties": {"question": {"type": "string"}}},
    },
    {"name": "cancelled_ids", "description": "List the request ids the client cancelled.", "inputSchema": {"type": "object"}},
    {"name": "announce", "description": "Send tools/list_changed and a log message.", "inputSchema": {"type": "object"}},
    {
        "name": "slow",
        "description": "Answer after a delay, reporting progress.",
        "inputSchema": {"type": "object", "properties": {"seconds": {"type": "number"}}},
    },
]

_lock = threading.Lock()
_cancelled: list[Any] = []
_waiting: dict[Any, Any] = {}
_ids = iter(range(1, 1 << 30))


def _send(message: dict[str, Any]) -> None:
    with _lock:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()


def _text(request_id: Any, text: str, *, error: bool = False, structured: Any = None) -> None:
    result: dict[str, Any] = {"content": [{"type": "text", "text": text}]}
    if error:
        result["isError"] = True
    if structured is not None:
        result["structuredContent"] = structured
    _send({"jsonrpc": "2.0", "id": request_id, "result": result})


def _ask_client(method: str, params: dict[str, Any]) -> Any:
    """A server→client request; blocks this worker thread until the client answers."""
    request_id = f"fake-{next(_ids)}"
    done = threading.Event()
    _waiting[request_id] = done
    _send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
    done.wait(60)
    return _waiting.pop(request_id, None)


def _call(request_id: Any, params: dict[str, Any]) -> None:
    name = params.get("name")
    args = params.get("arguments") or {}
    if name == "echo":
        _text(request_id, str(args.get("text", "")), structured={"text": args.get("text")})
    elif name == "write_file":
        with open(args["path"], "w", encoding="utf-8") as fh:
            fh.write(str(args.get("content", "")))
        _text(request_id, f"wrote {args['path']}")
    elif name == "delete_file":
        os.remove(args["path"])
        _text(request_id, f"deleted {args['path']}")
    elif name == "crash":
        sys.stderr.write("fake server: crashing on purpose\n")
        sys.stderr.flush()
        os._exit(3)
    elif name == "hang":
        return
    elif name == "garbage":
        with _lock:
            sys.stdout.write("this line is not JSON-RPC\n")
            sys.stdout.flush()
        _text(request_id, str(args.get("text", "")))
    elif name == "ask_user":
        schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
        answer = _ask_client("elicitation/create", {"message": str(args.get("question", "?")), "requestedSchema": schema})
        _text(request_id, json.dumps(answer.get("result") if isinstance(answer, dict) else answer))
    elif name == "cancelled_ids":
        _text(request_id, json.dumps(_cancelled))
    elif name == "announce":
        _send({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
        _send({"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": "announced"}})
        _text(request_id, "announced")
    elif name == "slow":
        seconds = float(args.get("seconds", 0.2))
        token = (params.get("_meta") or {}).get("progressToken")
        for step in range(1, 4):
            time.sleep(seconds / 3)
            if token is not None:
                _send(
                    {
                        "jsonrpc": "2.0",
                        "method": "notifications/progress",
                        "params": {"progressToken": token, "progress": step, "total": 3},
                    }
                )
        _text(request_id, "done")
    else:
        _send({"jsonrpc": "2.0", "id": request_id, "error": {"code": -32602, "message": f"Unknown tool: {name}"}})


def serve(name: str = "fake", hang_on: str | None = None) -> None:
    """Serve until stdin closes. Each tools/call runs in its own thread (so `hang` blocks nothing).

    `hang_on` names a method this server never answers (to test the proxy's bounded waits).
    """
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            msg = json.loads(line)
        except json.JSONDecodeError:
            _send({"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "Parse error"}})
            continue
        method, request_id = msg.get("method"), msg.get("id")
        if method is None:  # a response to one of our requests
            done = _waiting.get(request_id)
            if done is not None:
                _waiting[request_id] = msg
                done.set()
            continue
        if method == "notifications/cancelled":
            _cancelled.append((msg.get("params") or {}).get("requestId"))
        if request_id is None or method == hang_on:
            continue  # notifications need no answer; `hang_on` gets none either
        if method == "initialize":
            version = (msg.get("params") or {}).get("protocolVersion", "2025-11-25")
            _send(
                {
                    "jsonrpc": "2.0",
                    "id": request_id,
                    "result": {
                        "protocolVersion": version,
                        "capabilities": {"tools": {"listChanged": True}},
                        "serverInfo": {"name": name, "version": "1.0"},
                    },
                }
            )
        elif method == "tools/list":
            _send({"jsonrpc": "2.0", "id": request_id, "result": {"tools": TOOLS}})
        elif method == "tools/call":
            threading.Thread(target=_call, args=(request_id, msg.get("params") or {}), daemon=True).start()
        elif method == "ping":
            _send({"jsonrpc": "2.0", "id": request_id, "result": {}})
        else:
            _send({"jsonrpc": "2.0", "id": request_id, "error": {"code": -32601, "message": f"Method not found: {method}"}})


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    name = args[args.index("--name") + 1] if "--name" in args else "fake"
    if "--fail-start" in args:
        sys.stderr.write("fake server: cannot open its database (simulated start failure)\n")
        sys.exit(1)
    serve(name, args[args.index("--hang-on") + 1] if "--hang-on" in args else None)


if __name__ == "__main__":
    main()
