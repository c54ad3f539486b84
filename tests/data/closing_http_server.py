"""A streamable HTTP MCP server that closes each tools/call stream after its first progress event.

The 2025-11-25 revision lets a server end a POST's SSE stream early (after a priming event with
an id); the client resumes with a GET carrying Last-Event-ID. This server does exactly that, and
its `versions` tool reports the MCP-Protocol-Version header of every POST after initialize.
Usage: python closing_http_server.py PORT (prints "listening on port N" on stderr).
"""

from __future__ import annotations

import json
import sys

SESSION = "closing-session-1"
seen_versions: list[str | None] = []
parked: dict[str, list[bytes]] = {}
TOOLS = [
    {"name": "slow", "description": "progress, then an answer", "inputSchema": {"type": "object"}},
    {"name": "versions", "description": "MCP-Protocol-Version headers seen", "inputSchema": {"type": "object"}},
]


def frame(message: dict) -> bytes:
    return json.dumps(message).encode()


async def respond(send, status: int, body: bytes = b"", content_type: str = "application/json", headers=()) -> None:
    head = [(b"content-type", content_type.encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
    if scope["method"] == "DELETE":
        await respond(send, 200)
        return
    if scope["method"] == "GET":
        last = headers.get("last-event-id")
        if last is None or last not in parked:
            await respond(send, 405)
            return
        await respond(send, 200, b"".join(parked.pop(last)), "text/event-stream")
        return
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    msg = json.loads(b"".join(chunks))
    if "id" not in msg or "method" not in msg:
        await respond(send, 202)
        return
    method, rid = msg["method"], msg["id"]
    if method == "initialize":
        result = {
            "protocolVersion": msg["params"]["protocolVersion"],
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "closing", "version": "1"},
        }
        await respond(
            send, 200, frame({"jsonrpc": "2.0", "id": rid, "result": result}), headers=[(b"mcp-session-id", SESSION.encode())]
        )
        return
    seen_versions.append(headers.get("mcp-protocol-version"))
    if method == "tools/list":
        await respond(send, 200, frame({"jsonrpc": "2.0", "id": rid, "result": {"tools": TOOLS}}))
        return
    if method == "tools/call" and msg["params"]["name"] == "versions":
        text = json.dumps(seen_versions)
        await respond(send, 200, frame({"jsonrpc": "2.0", "id": rid, "result": {"content": [{"type": "text", "text": text}]}}))
        return
    if method == "tools/call":
        token = (msg["params"].get("_meta") or {}).get("progressToken", "none")
        key = f"call{rid}"

        def progress(n: int) -> bytes:
            note = {
                "jsonrpc": "2.0",
                "method": "notifications/progress",
                "params": {"progressToken": token, "progress": n, "total": 2},
            }
            return b"id: %s/%d\ndata: %s\n\n" % (key.encode(), n, frame(note))

        answer = frame({"jsonrpc": "2.0", "id": rid, "result": {"content": [{"type": "text", "text": "resumed"}]}})
        parked[f"{key}/1"] = [progress(2), b"id: %s/3\ndata: %s\n\n" % (key.encode(), answer)]
        # priming event, one progress event, then the server ends the stream without the answer
        await respond(send, 200, b"id: %s/0\nretry: 10\ndata: \n\n" % key.encode() + progress(1), "text/event-stream")
        return
    await respond(send, 200, frame({"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": "no"}}))


if __name__ == "__main__":
    import uvicorn

    port = int(sys.argv[1])
    print(f"listening on port {port}", file=sys.stderr, flush=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
