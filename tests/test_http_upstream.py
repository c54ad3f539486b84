"""Upstreams reached over streamable HTTP and legacy SSE (server-everything in its HTTP modes)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

from conftest import free_port, npm_server
from harness import running, text_of
from signoff.relay import jsonrpc
from signoff.relay.upstream import ServerSpec

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


@asynccontextmanager
async def everything_over(mode: str) -> AsyncIterator[int]:
    """server-everything serving `mode` (streamableHttp | sse); yields its port once it listens."""
    port = free_port()
    command = npm_server("server-everything", mode)
    async with await anyio.open_process(
        command,
        env={**os.environ, "PORT": str(port)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    ) as proc:
        assert proc.stderr is not None
        reader = BufferedByteReceiveStream(proc.stderr)
        with anyio.fail_after(30):
            while not re.search(rb"(listening|running) on port", await reader.receive_until(b"\n", 1 << 16)):
                pass
        try:
            yield port
        finally:
            proc.terminate()


@pytest.mark.parametrize(("mode", "transport", "path"), [("streamableHttp", "http", "/mcp"), ("sse", "sse", "/sse")])
async def test_http_upstream(mode: str, transport: str, path: str) -> None:
    async with everything_over(mode) as port:
        spec = ServerSpec(name="everything", url=f"http://127.0.0.1:{port}{path}", transport=transport)
        async with running([spec]) as client:
            init = await client.initialize()
            assert init["result"]["serverInfo"]["name"] == "mcp-servers/everything"
            tools = await client.request("tools/list")
            names = [t["name"] for t in tools["result"]["tools"]]
            assert "echo" in names and "trigger-elicitation-request" in names
            assert client.proxy.tools["everything"]["echo"]["readOnlyHint"] is True
            echoed = await client.call("echo", {"message": "over " + transport})
            assert text_of(echoed) == f"Echo: over {transport}"
            # a server→client request through an HTTP upstream reaches the client and back
            await client.send(jsonrpc.request("e1", "tools/call", {"name": "trigger-elicitation-request", "arguments": {}}))
            asked = await client.wait_for(lambda m: m.get("method") == "elicitation/create")
            await client.send(jsonrpc.result(asked["id"], {"action": "decline"}))
            answer = await client.wait_for(lambda m: m.get("id") == "e1")
            assert "result" in answer


async def test_unreachable_http_upstream_is_a_clear_error() -> None:
    spec = ServerSpec(name="remote", url=f"http://127.0.0.1:{free_port()}/mcp", transport="http", startup_timeout=10)
    async with running([spec]) as client:
        answer = await client.request(
            "initialize", {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
        )
        assert "error" in answer
        assert "remote" in answer["error"]["message"]


async def test_http_upstream_gets_protocol_version_and_is_resumed() -> None:
    """After initialize every request carries MCP-Protocol-Version; a stream the upstream closes
    mid-call is resumed with Last-Event-ID, and the client sees every progress step and the answer once."""
    port = free_port()
    script = Path(__file__).parent / "data" / "closing_http_server.py"
    async with await anyio.open_process(
        [sys.executable, str(script), str(port)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    ) as proc:
        try:
            assert proc.stderr is not None
            with anyio.fail_after(30):
                await BufferedByteReceiveStream(proc.stderr).receive_until(b"\n", 1 << 16)
                spec = ServerSpec(name="closing", url=f"http://127.0.0.1:{port}/mcp", transport="http")
                async with running([spec]) as client:
                    await client.initialize()
                    await client.send(
                        jsonrpc.request("c1", "tools/call", {"name": "slow", "arguments": {}, "_meta": {"progressToken": "pt"}})
                    )
                    answer = await client.wait_for(lambda m: m.get("id") == "c1")
                    assert text_of(answer) == "resumed"
                    steps = [m["params"]["progress"] for m in client.received if m.get("method") == "notifications/progress"]
                    assert steps == [1, 2]
                    versions = await client.call("versions", {})
                    assert set(json.loads(text_of(versions))) == {"2025-11-25"}
        finally:
            proc.terminate()
