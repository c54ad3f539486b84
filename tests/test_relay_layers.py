"""The relay's layers are chosen once per session (relay/proxy.py), never per frame."""

from __future__ import annotations

import sys

import pytest

from harness import running
from signoff.gate import Admission, OpenGate
from signoff.model import ToolCall
from signoff.relay import jsonrpc
from signoff.relay.eras import MODERN_VERSION, VERSION_KEY
from signoff.relay.upstream import ServerSpec, Upstream

pytestmark = pytest.mark.anyio


def fake(name: str = "fake") -> ServerSpec:
    return ServerSpec(name=name, command=sys.executable, args=("-m", "signoff.testing", "--name", name), timeout=30.0)


def stateless(method: str, request_id: int) -> dict:
    meta = {
        VERSION_KEY: MODERN_VERSION,
        "io.modelcontextprotocol/clientInfo": {"name": "c", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {},
    }
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


class AsksThenAnswers(Upstream):
    """A handshake-era server that, for a call, asks the client something and answers at once anyway."""

    async def start(self, tg) -> None:
        self.generation += 1
        self.alive = True

    async def stop(self) -> None:
        self.alive = False

    async def send(self, frame) -> None:
        msg = jsonrpc.decode(frame) if isinstance(frame, bytes) else frame
        if "method" not in msg or "id" not in msg:
            return
        if msg["method"] == "initialize":
            info = {
                "protocolVersion": "2025-11-25",
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "asks", "version": "1"},
            }
            await self._deliver(None, jsonrpc.result(msg["id"], info))
        elif msg["method"] == "tools/call":
            await self._deliver(None, jsonrpc.request("up-1", "elicitation/create", {"message": "sure?", "requestedSchema": {}}))
            await self._deliver(None, jsonrpc.result(msg["id"], {"content": [{"type": "text", "text": "done anyway"}]}))
        else:
            await self._deliver(None, jsonrpc.error(msg["id"], jsonrpc.METHOD_NOT_FOUND, "Method not found"))


class FinishedGate(OpenGate):
    def __init__(self) -> None:
        super().__init__()
        self.finished_calls: list[tuple[str, bool]] = []

    def finished(self, call: ToolCall, admission: Admission, *, is_error: bool, error: str | None = None) -> None:
        self.finished_calls.append((call.tool, is_error))


async def test_an_answer_that_comes_while_its_call_waits_for_input_is_recorded() -> None:
    """Bridged: the server answers a call it also asked the client about. The outcome is recorded
    when the answer comes (the gate layer sits below the bridge), and the client's retry gets it."""
    spec = ServerSpec(name="asks", command="unused")
    gate = FinishedGate()
    async with running([spec], gate, upstreams=[AsksThenAnswers(spec)]) as client:
        call = stateless("tools/call", 1)
        call["params"].update({"name": "echo", "arguments": {}})
        await client.send(call)
        asked = await client.wait_for(lambda m: m.get("id") == 1)
        assert asked["result"]["resultType"] == "input_required"
        assert gate.finished_calls == [("echo", False)]
        retry = stateless("tools/call", 2)
        retry["params"].update(
            {
                "name": "echo",
                "arguments": {},
                "requestState": asked["result"]["requestState"],
                "inputResponses": {"q1": {"action": "decline"}},
            }
        )
        await client.send(retry)
        answer = await client.wait_for(lambda m: m.get("id") == 2)
        assert answer["result"]["content"][0]["text"] == "done anyway"
        assert gate.finished_calls == [("echo", False)]  # once
