"""The relay's layers are chosen once per session (relay/proxy.py), never per frame."""

from __future__ import annotations

import sys

import pytest

from harness import running
from signoff.relay.eras import MODERN_VERSION, VERSION_KEY
from signoff.relay.upstream import ServerSpec

pytestmark = pytest.mark.anyio


def fake(name: str = "fake") -> ServerSpec:
    return ServerSpec(name=name, command=sys.executable, args=("-m", "signoff.testing", "--name", name), timeout=30.0)


def stateless(method: str, request_id: int) -> dict:
    meta = {VERSION_KEY: MODERN_VERSION, "io.modelcontextprotocol/clientInfo": {"name": "c", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": {}}
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": {"_meta": meta}}


async def test_one_upstream_and_a_handshake_client_never_get_the_bridge() -> None:
    async with running([fake()]) as client:
        assert client.proxy.stack.names() == ["EraDetect", "ToolCallGate", "Passthrough"]
        await client.initialize()
        assert (await client.call("echo", {"text": "hi"}))["result"]["structuredContent"] == {"text": "hi"}
        assert client.proxy.stack.names() == ["EraDetect", "ToolCallGate", "Passthrough"]


async def test_several_upstreams_get_the_aggregate_layer_and_no_era_layer() -> None:
    async with running([fake("alpha"), fake("beta")]) as client:
        assert client.proxy.stack.names() == ["ToolCallGate", "Aggregate"]
        await client.initialize()
        assert (await client.call("beta.echo", {"text": "hi"}))["result"]["structuredContent"] == {"text": "hi"}


async def test_a_stateless_client_in_front_of_a_handshake_server_gets_the_bridge_once() -> None:
    async with running([fake()]) as client:
        await client.send(stateless("tools/list", 1))
        listed = await client.wait_for(lambda m: m.get("id") == 1)
        assert listed["result"]["resultType"] == "complete"  # completed by the bridge
        assert client.proxy.stack.names() == ["EraBridge", "ToolCallGate", "Passthrough"]
        bridge = client.proxy.stack.top
        await client.send(stateless("tools/list", 2))
        await client.wait_for(lambda m: m.get("id") == 2)
        assert client.proxy.stack.top is bridge  # decided once: no second probe, no second bridge
