"""JSON-RPC 2.0 framing for the relay: parse a frame, classify it, build answers.

A client frame is parsed once, strictly (`decode_client`), and the upstream only ever receives
signoff's own canonical re-serialisation of what was parsed and checked: compact JSON on one line,
every line or paragraph separator escaped, so that no reader (Python's universal newlines, Node's
`\\n` split, Go's scanner or stream decoder, `str.splitlines`) can find a second message in it.
A frame is refused when readers could disagree about what it says: duplicate keys, keys that
differ only by case (Go's encoding/json matches them case-insensitively), a member that only
looks like a JSON-RPC one (`METHOD` on a response), `__proto__` keys (Node prototype
pollution), NUL in strings (C-string truncation), integers beyond 2**53 (JavaScript rounds
them), non-finite numbers, invalid UTF-8, lone surrogates, a BOM, or very deep nesting.

Frames from upstreams are parsed leniently (`decode`) and passed to the client as they came.
That is safe: the upstream is the tool itself, so a message it smuggles to the client says
nothing it could not send openly (signoff already relays its requests, notifications and even
answers to unknown ids), and it cannot address signoff's own requests to the client, whose ids
are unguessable (`proxy.internal_id`). signoff never acts on bytes it did not parse.
"""

from __future__ import annotations

import itertools
import json
import math
import unicodedata
from typing import Any

import orjson

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

MAX_DEPTH = 100
"""Deepest nesting accepted from a client (MCP messages need a handful of levels)."""
MEMBERS = frozenset({"jsonrpc", "id", "method", "params", "result", "error"})
"""A message's own members: a top-level key that only folds into one of them is refused."""
SAFE_INTEGER = 2**53 - 1
"""Largest integer every reader holds exactly (JavaScript numbers are IEEE doubles)."""

_ascii_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True).encode
_SEPARATORS = ((b"\xe2\x80\xa8", b"\\u2028"), (b"\xe2\x80\xa9", b"\\u2029"), (b"\xc2\x85", b"\\u0085"))
"""UTF-8 line/paragraph separators that JSON allows raw in strings and some readers split on.
(Control characters below U+0020, CR and LF among them, are always escaped by the encoder.)"""


class FrameError(ValueError):
    """A frame is not a JSON-RPC 2.0 message; `str()` says why, in one line.

    `request_id` is the id of the refused request when it could be read, so it can be answered."""

    def __init__(self, message: str, request_id: Any = None):
        super().__init__(message)
        self.request_id = request_id


def _one_line(out: bytes) -> bytes:
    if b"\xe2\x80" in out or b"\xc2\x85" in out:  # UTF-8 is self-synchronising: these are the chars
        for raw, escaped in _SEPARATORS:
            out = out.replace(raw, escaped)
    return out


def encode(message: Any) -> bytes:
    """One newline-delimited frame (MCP stdio framing) that every reader sees as one message."""
    try:
        out = orjson.dumps(message)
    except TypeError:  # lone surrogates or > 64-bit integers from a lenient parse; odd types
        return _ascii_dumps(message).encode() + b"\n"
    return _one_line(out) + b"\n"


def _shape(value: Any) -> dict[str, Any] | list[Any]:
    if isinstance(value, dict):
        if value.get("jsonrpc") != "2.0":
            raise FrameError('missing "jsonrpc": "2.0"')
        return value
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return value  # a JSON-RPC batch (2025-03-26); split by the caller
    raise FrameError("a JSON-RPC message must be an object")


def decode(raw: bytes | str) -> dict[str, Any] | list[Any]:
    """Parse one frame leniently (frames from upstreams); raises FrameError with a short reason."""
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise FrameError(f"not valid JSON ({exc})") from None
    return _shape(value)


def decode_client(raw: bytes) -> tuple[dict[str, Any] | list[Any], bytes]:
    """Parse a client frame strictly; returns the message(s) and the canonical frame to forward.

    Raises FrameError (with the request's id when it could be read) for anything that two JSON
    readers could understand differently."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise FrameError(f"not valid JSON ({exc})") from None
    message = _shape(value)
    request_id = request_id_of(message)
    try:
        check_values(message)
        canonical = orjson.dumps(message)
        # Without `\u` escapes, every ':' of the input separates a member or sits in a parsed
        # string, and so it does in the canonical form: fewer there means keys were merged.
        if b"\\u" in raw or raw.count(b":") != canonical.count(b":"):
            json.loads(raw, object_pairs_hook=_refuse_duplicates)
    except FrameError as exc:
        raise FrameError(str(exc), request_id) from None
    return message, _one_line(canonical) + b"\n"


def request_id_of(message: Any) -> Any:
    """The id to answer a refused message with: its own when it is a valid id, else None."""
    if isinstance(message, dict):
        request_id = message.get("id")
        if isinstance(request_id, (str, int)) and not isinstance(request_id, bool):
            return request_id
    return None


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise FrameError(f"duplicate key {json.dumps(key)[:80]} (readers disagree on which value counts)")
            seen.add(key)
    return found


def check_values(value: Any, depth: int = 0) -> None:
    """Refuse values that JSON readers of other languages would read differently from signoff."""
    if depth > MAX_DEPTH:
        raise FrameError(f"nested deeper than {MAX_DEPTH} levels")
    kind_ = type(value)
    if depth == 0 and kind_ is dict:
        for key in value:
            folded = unicodedata.normalize("NFKC", key).strip().casefold()
            if key not in MEMBERS and folded in MEMBERS:
                raise FrameError(f"member {key[:40]!r} is not {folded!r} but lenient readers take it for it")
    if kind_ is str:
        if "\x00" in value:
            raise FrameError("a string contains U+0000 (C-string readers truncate it there)")
    elif kind_ is dict:
        if len(value) > 1 and len({key.casefold() for key in value}) != len(value):
            keys = sorted(value, key=str.casefold)
            same = next(f"{a!r} and {b!r}" for a, b in itertools.pairwise(keys) if a.casefold() == b.casefold())
            raise FrameError(f"keys {same[:120]} differ only by case (Go readers take them as one key)")
        for key, item in value.items():
            if key == "__proto__" or "\x00" in key:
                raise FrameError(f"key {key[:40]!r} is not allowed (it changes objects in JavaScript readers)")
            check_values(item, depth + 1)
    elif kind_ is list:
        for item in value:
            check_values(item, depth + 1)
    elif kind_ is int:
        if not -SAFE_INTEGER <= value <= SAFE_INTEGER:
            raise FrameError(f"integer {str(value)[:40]} is beyond 2**53 (JavaScript readers round it); send it as a string")
    elif kind_ is float and not math.isfinite(value):
        raise FrameError("a number is not finite")


def kind(message: dict[str, Any]) -> str | None:
    """request | notification | response, or None for a malformed or ambiguous message."""
    if "id" in message:
        request_id = message["id"]
        if request_id is not None and (type(request_id) not in (str, int)):
            return None  # JSON-RPC ids are strings, integers or null; anything else is unhashable or odd
    if "method" in message:
        if not isinstance(message["method"], str) or "result" in message or "error" in message:
            return None  # a request that is also a response: readers would disagree on which
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
