"""Issue #10 items 1–2, as a property: nothing reaches the upstream unless an equal call passed the gate.

Hypothesis writes client byte streams the way an attacker would: JSON whitespace that is a line
break to other readers (`\\r`), strings with raw separators (U+2028, U+2029, U+0085) and control
characters, keys hidden behind `\\u` escapes, duplicate and case-variant keys, whole messages
nested inside others, batches, notifications and look-alike method names. The stream is cut
into lines as signoff's stdio reader cuts it and fed through the real frame path
(`dispatch_client_frame` → `Proxy`) to an in-process upstream that records the bytes it gets.

The oracle reads those bytes as the most suspicious server would: split on EVERY line separator
any reader knows, each piece parsed strictly (a piece that is not a whole message, or has a
duplicate or case-variant key, fails the test), method names normalised, keys matched without
case. Every `tools/call` found that way must equal (tool and parsed arguments) a call the gate
checked and allowed.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from security.support import RecordingGate
from signoff.relay import jsonrpc
from signoff.relay import proxy as proxy_module
from signoff.relay.upstream import ServerSpec, Upstream
from signoff.serve.stdio import dispatch_client_frame

SEPARATORS = re.compile("[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


class Obj:
    """A JSON object as written on the wire: ordered pairs, duplicates allowed."""

    def __init__(self, pairs: list[tuple[str, Any]]):
        self.pairs = pairs


class RecordingUpstream(Upstream):
    def __init__(self, spec: ServerSpec):
        super().__init__(spec)
        self.data = bytearray()

    async def start(self, tg) -> None:
        self.generation += 1
        self.alive = True

    async def send(self, frame) -> None:
        self.data += frame if isinstance(frame, bytes) else jsonrpc.encode(frame)

    async def stop(self) -> None:
        self.alive = False


# ------------------------------------------------------------------ the attacker's frames

WHITESPACE = st.sampled_from(["", "", " ", "\t", "\r", "\r\r", "\r\n", " \r "])
TEXT = st.text(
    alphabet=st.sampled_from(list('aP/:\\"x. ') + list("\r\n\x0b\x0c\x1c\x85\u2028\u2029\u200b\u202e\x00")), max_size=6
)
KEYS = st.sampled_from(
    [
        "name",
        "Name",
        "NAME",
        "arguments",
        "Arguments",
        "path",
        "Path",
        "\u212aey",
        "key",
        "x",
        "__proto__",
        "method",
        "Method",
        "params",
        "id",
        "text",
    ]
)
METHODS = st.sampled_from(
    [
        "tools/call",
        "tools/call",
        "tools/call",
        "ping",
        "tools/list",
        "Tools/Call",
        " tools/call",
        "tools.call",
        "tools/call\u200b",
        "notifications/progress",
        "resources/read",
    ]
)
NAMES = st.sampled_from(["echo", "delete_file", "Delete_File"])
LEAVES = st.one_of(st.none(), st.booleans(), st.integers(-(2**60), 2**60), st.sampled_from([0.5, 1e300, -0.0]), TEXT, NAMES)
VALUES = st.recursive(
    LEAVES, lambda inner: st.lists(inner, max_size=3) | st.lists(st.tuples(KEYS, inner), max_size=3).map(Obj), max_leaves=6
)


@st.composite
def messages(draw, nested: bool = False) -> Obj:
    pairs: list[tuple[str, Any]] = [("jsonrpc", "2.0"), ("method", draw(METHODS))]
    if draw(st.booleans()):
        pairs.append(("id", draw(st.integers(0, 3) | st.sampled_from(["a", "b"]))))
    params = [("name", draw(NAMES)), ("arguments", Obj(draw(st.lists(st.tuples(KEYS, VALUES), max_size=3))))]
    params += draw(st.lists(st.tuples(st.sampled_from(["name", "Name", "arguments", "n\\u0061me"]), NAMES | VALUES), max_size=2))
    pairs.append(("params", Obj(draw(st.permutations(params)))))
    pairs += draw(st.lists(st.tuples(KEYS, VALUES), max_size=2))
    if not nested and draw(st.booleans()):
        pairs.append(("x", [draw(messages(nested=True))]))  # a whole message hidden inside this one
    return Obj(pairs)


def dump(data: st.DataObject, value: Any) -> str:
    ws = lambda: data.draw(WHITESPACE)  # noqa: E731
    if isinstance(value, Obj):
        members = [f"{ws()}{dump_key(data, k)}{ws()}:{ws()}{dump(data, v)}{ws()}" for k, v in value.pairs]
        return "{" + ",".join(members) + ws() + "}"
    if isinstance(value, list):
        return "[" + ",".join(ws() + dump(data, v) + ws() for v in value) + ws() + "]"
    if isinstance(value, str):
        mode = data.draw(st.sampled_from(["ascii", "raw-separators", "raw-controls"]))
        if mode == "ascii":
            return json.dumps(value)
        text = json.dumps(value, ensure_ascii=False)
        return text if mode == "raw-separators" else text.replace("\\r", "\r").replace("\\u000b", "\x0b")
    return json.dumps(value)


def dump_key(data: st.DataObject, key: str) -> str:
    if "\\u" in key:
        return f'"{key}"'  # already written with an escape
    if data.draw(st.integers(0, 5)) == 0:
        return '"' + "".join(f"\\u{ord(c):04x}" for c in key) + '"'  # hides duplicates from a byte scan
    return json.dumps(key)


@st.composite
def streams(draw) -> bytes:
    data = draw(st.data())
    frames = []
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.integers(0, 4)) == 0:
            frames.append("[" + ",".join(dump(data, draw(messages())) for _ in range(draw(st.integers(1, 3)))) + "]")
        else:
            frames.append(dump(data, draw(messages())))
    return "\n".join(frames).encode("utf-8", "surrogatepass") + b"\n"


# ------------------------------------------------------------------ the suspicious reader


def strict_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    folded = [k.casefold() for k, _ in pairs]
    assert len(set(folded)) == len(folded), f"upstream got duplicate or case-variant keys: {[k for k, _ in pairs]}"
    return dict(pairs)


def lookup(obj: Any, key: str) -> Any:
    if not isinstance(obj, dict):
        return None
    found = None
    for k, v in obj.items():
        if k.casefold() == key.casefold():
            found = v
    return found


def looks_like_call(method: Any) -> bool:
    if not isinstance(method, str):
        return False
    return re.sub(r"[\W_]+", "", unicodedata.normalize("NFKC", method).casefold()) == "toolscall"


def calls_received(data: bytes) -> list[tuple[Any, Any]]:
    text = data.decode("utf-8")  # strict: invalid UTF-8 would fail here
    found = []
    for piece in SEPARATORS.split(text):
        if not piece.strip():
            continue
        message = json.loads(piece, object_pairs_hook=strict_pairs)  # every piece a whole message
        for item in message if isinstance(message, list) else [message]:
            if looks_like_call(lookup(item, "method")):
                params = lookup(item, "params")
                found.append((lookup(params, "name"), lookup(params, "arguments")))
    return found


async def relay(stream: bytes) -> tuple[RecordingGate, RecordingUpstream, list[dict[str, Any]]]:
    gate = RecordingGate()
    answers: list[dict[str, Any]] = []

    async def to_client(frame: Any) -> None:
        answers.append(jsonrpc.decode(frame) if isinstance(frame, bytes) else frame)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(proxy_module, "make_upstream", RecordingUpstream)
        proxy = proxy_module.Proxy([ServerSpec(name="up", command="unused")], to_client, gate)
    upstream = proxy.upstreams[0]
    assert isinstance(upstream, RecordingUpstream)
    async with anyio.create_task_group() as tg:
        await proxy.start(tg)
        with anyio.fail_after(10):
            for line in stream.split(b"\n"):  # as signoff's stdio reader cuts the stream
                if line.strip():
                    await dispatch_client_frame(proxy, line + b"\n", to_client)
        await proxy.close()
        tg.cancel_scope.cancel()
    return gate, upstream, answers


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(streams())
def test_no_message_reaches_the_upstream_unless_an_equal_one_passed_the_gate(stream: bytes) -> None:
    gate, upstream, _ = anyio.run(relay, stream)
    allowed = [(c.tool, dict(c.arguments)) for c in gate.checked if c.tool != gate.refuse]
    for name, arguments in calls_received(bytes(upstream.data)):
        assert (name, arguments) in allowed, f"{name}({arguments}) reached the upstream unchecked"
        allowed.remove((name, arguments))


def test_the_oracle_catches_a_relay_that_forwards_raw_bytes() -> None:
    """The property can fail: the smuggling frame, forwarded raw, is caught by the reader above."""
    raw = (
        b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":[\r{"jsonrpc":"2.0","id":2,'
        b'"method":"tools/call","params":{"name":"delete_file","arguments":{}}}\r]}}\n'
    )
    with pytest.raises(json.JSONDecodeError):
        calls_received(raw)  # the pieces of a split frame are not messages: flagged
    hidden = raw.split(b"\r")[1]
    assert calls_received(hidden) == [("delete_file", {})]
