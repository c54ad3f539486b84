"""Clients of both protocol eras, servers of both eras, through signoff."""

from __future__ import annotations

import os
import sys

import anyio
import mcp_types as types
import pytest
from mcp import Client, StdioServerParameters

from conftest import everything, fake_server, through_signoff, time_server
from signoff.relay.eras import EraBridge, envelope

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


async def _elicit(context, params: types.ElicitRequestParams) -> types.ElicitResult:
    return types.ElicitResult(action="accept", content={"answer": "from dialog", "name": "Ada", "color": "blue"})


async def _sample(context, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
    return types.CreateMessageResult(role="assistant", content=types.TextContent(type="text", text="sampled"), model="m")


def client(command: list[str], mode: str) -> Client:
    params = StdioServerParameters(command=command[0], args=command[1:], env=dict(os.environ))
    return Client(params, mode=mode, elicitation_callback=_elicit, sampling_callback=_sample)


def test_envelope_is_recognised_and_stripped() -> None:
    modern = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/list",
        "params": {
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientInfo": {"name": "c", "version": "1"},
                "progressToken": 5,
            }
        },
    }
    assert envelope(modern) is not None
    assert envelope({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}) is None
    stripped = EraBridge.strip(None, modern)  # type: ignore[arg-type]
    assert stripped["params"]["_meta"] == {"progressToken": 5}
    completed = EraBridge.complete(None, "tools/list", {"id": 1, "result": {"tools": []}})  # type: ignore[arg-type]
    assert completed["result"] == {"resultType": "complete", "tools": [], "ttlMs": 0, "cacheScope": "private"}


async def test_modern_client_through_signoff_to_handshake_only_server() -> None:
    """server-everything speaks only the handshake revisions; signoff bridges a 2026-07-28 client."""
    async with client(through_signoff(everything()), "2026-07-28") as c:
        with anyio.fail_after(60):
            assert c.protocol_version == "2026-07-28"
            names = [t.name for t in (await c.list_tools()).tools]
            assert "echo" in names
            echoed = await c.call_tool("echo", {"message": "modern"})
            assert echoed.content[0].text == "Echo: modern"
            elicited = await c.call_tool("trigger-elicitation-request", {})  # an InputRequiredResult round
            assert "User provided the requested information" in repr(elicited.content)
            sampled = await c.call_tool("trigger-sampling-request", {"prompt": "hi", "maxTokens": 5})
            assert "sampled" in repr(sampled.content)
            resource = await c.read_resource("demo://resource/dynamic/text/1")
            assert "Resource 1" in repr(resource.contents)
            prompt = await c.get_prompt("simple-prompt")
            assert prompt.messages


async def test_modern_client_bridged_to_the_scripted_server_elicitation() -> None:
    async with client(through_signoff(fake_server()), "2026-07-28") as c:
        with anyio.fail_after(30):
            answer = await c.call_tool("ask_user", {"question": "name?"})
            assert "from dialog" in answer.content[0].text


async def test_modern_client_to_modern_server_is_relayed_untouched() -> None:
    async with client(through_signoff(time_server()), "2026-07-28") as c:
        with anyio.fail_after(30):
            result = await c.call_tool("get_current_time", {"timezone": "UTC"})
            assert '"timezone": "UTC"' in result.content[0].text


@pytest.mark.parametrize("server", ["time", "everything"])
async def test_auto_client_negotiates_as_it_would_directly(server: str) -> None:
    command = time_server() if server == "time" else everything()
    versions = []
    for cmd in (command, through_signoff(command)):
        async with client(cmd, "auto") as c:
            versions.append(c.protocol_version)
            with anyio.fail_after(30):
                assert (await c.list_tools()).tools
    assert versions[0] == versions[1]


async def test_auto_client_with_several_upstreams_uses_the_handshake(tmp_path) -> None:
    config = tmp_path / "signoff.yaml"
    config.write_text(
        "servers:\n"
        f"  a:\n    command: {sys.executable}\n    args: ['-m', 'signoff.testing', '--name', 'a']\n"
        f"  t:\n    command: {sys.executable}\n    args: ['-m', 'mcp_server_time']\n"
    )
    cmd = [sys.executable, "-m", "signoff", "run", "--config", str(config)]
    async with client(cmd, "auto") as c:
        with anyio.fail_after(30):
            assert c.protocol_version == "2025-11-25"
            names = {t.name for t in (await c.list_tools()).tools}
            assert {"a.echo", "t.get_current_time"} <= names
            now = await c.call_tool("t.get_current_time", {"timezone": "UTC"})
            assert not now.is_error
