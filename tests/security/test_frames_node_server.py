"""Issue #10 item 1 against a real Node server (@modelcontextprotocol/server-filesystem).

Node's SDK splits stdin on `\\n` only (ReadBuffer) and JSON.parse keeps the last duplicate, so
the `\\r` smuggling does not split there — shown directly — and signoff neutralises it anyway.
What is Node-specific is `__proto__`: JSON.parse makes it an own key, and code that copies the
object with assignment (zod's passthrough, Object.assign) sets the prototype instead. signoff
refuses such a frame before any policy (none is configured here) or server sees it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import npm_server, through_signoff
from security.support import raw_process
from signoff.relay import jsonrpc

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


def filesystem(root: Path, through: bool) -> list[str]:
    command = npm_server("server-filesystem", str(root))
    return through_signoff(command, "--name", "filesystem") if through else command


def write(path: Path, request_id: str = "hidden") -> dict:
    return jsonrpc.request(request_id, "tools/call", {"name": "write_file", "arguments": {"path": str(path), "content": "x"}})


@pytest.mark.parametrize("through", [False, True], ids=["direct", "through-signoff"])
async def test_cr_smuggled_write_file_against_server_filesystem(tmp_path: Path, through: bool) -> None:
    target = tmp_path / "smuggled.txt"
    frame = b'{"jsonrpc":"2.0","id":"p1","method":"ping","params":{"x":[\r' + json.dumps(write(target)).encode() + b"\r]}}\n"
    async with raw_process(filesystem(tmp_path, through)) as client:
        await client.initialize()
        await client.write(frame)
        answer = await client.wait_for(lambda m: m.get("id") in ("p1", "hidden"))
        assert answer["id"] == "p1"  # one message, read whole: Node does not split on \r
        listed = await client.request("l", "tools/call", {"name": "list_allowed_directories", "arguments": {}})
        assert "result" in listed
    assert not target.exists()
    assert not [m for m in client.received if m.get("id") == "hidden"]


async def test_proto_key_in_arguments_is_refused_before_server_filesystem(tmp_path: Path) -> None:
    target = tmp_path / "polluted.txt"
    frame = (
        b'{"jsonrpc":"2.0","id":"w1","method":"tools/call","params":{"name":"write_file","arguments":'
        b'{"path":' + json.dumps(str(target)).encode() + b',"content":"x","__proto__":{"isAdmin":true}}}}\n'
    )
    async with raw_process(filesystem(tmp_path, True)) as client:
        await client.initialize()
        await client.write(frame)
        refused = await client.wait_for(lambda m: m.get("id") == "w1")
        # the same call without the key goes through (no policy here): the refusal is signoff's
        ok = await client.request(
            "w2", "tools/call", {"name": "write_file", "arguments": {"path": str(tmp_path / "plain.txt"), "content": "x"}}
        )
    assert refused["error"]["code"] == jsonrpc.INVALID_REQUEST and "__proto__" in refused["error"]["message"]
    assert not target.exists()
    assert "result" in ok and (tmp_path / "plain.txt").read_text() == "x"
