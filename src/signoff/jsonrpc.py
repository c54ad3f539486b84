"""JSON-RPC 2.0 framing for the relay: parse a frame, classify it, build answers.

The relay works on plain dicts (decoded once) and forwards the original bytes whenever it does
not change a message, so anything signoff does not understand passes on untouched.
"""

from __future__ import annotations

import json
from typing import Any

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
UPSTREAM_ERROR = -32001
"""Implementation-defined: the wrapped server failed (did not start, crashed, hung)."""

REQUEST = "request"
NOTIFICATION = "notification"
RESPONSE = "response"

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


class FrameError(ValueError):
    """A frame is not a JSON-RPC 2.0 message; `str()` says why, in one line."""


def encode(message: dict[str, Any]) -> bytes:
    """One newline-delimited frame (MCP stdio framing)."""
    return _dumps(message).encode() + b"\n"


def decode(raw: bytes | str) -> dict[str, Any] | list[Any]:
    """Parse one frame; raises FrameError with a short reason."""
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FrameError(f"not valid JSON ({exc})") from None
    if isinstance(value, dict):
        if value.get("jsonrpc") != "2.0":
            raise FrameError('missing "jsonrpc": "2.0"')
        return value
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return value  # a JSON-RPC batch (2025-03-26); split by the caller
    raise FrameError("a JSON-RPC message must be an object")


def kind(message: dict[str, Any]) -> str | None:
    """request | notification | response, or None for a malformed message."""
    if "method" in message:
        if not isinstance(message["method"], str):
            return None
        return REQUEST if "id" in message else NOTIFICATION
    if "id" in message and ("result" in message or "error" in message):
        return RESPONSE
    return None


def error(request_id: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        err["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": err}


def result(request_id: Any, value: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "result": value}


def tool_error(request_id: Any, text: str) -> dict[str, Any]:
    """A `CallToolResult` with isError: how the model learns a call did not happen and why."""
    return result(request_id, {"content": [{"type": "text", "text": text}], "isError": True})


def notification(method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        msg["params"] = params
    return msg


def request(request_id: Any, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    msg = notification(method, params)
    msg["id"] = request_id
    return msg
