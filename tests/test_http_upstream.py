"""Upstreams reached over streamable HTTP and legacy SSE (server-everything in its HTTP modes)."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

from conftest import free_port, npm_server
from harness import running, text_of
from signoff import jsonrpc
from signoff.upstream import ServerSpec

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]



@asynccontextmanager
async def everything_over(mode: str) -> AsyncIterator[int]:
    """server-everything serving `mode` (streamableHttp | sse); yields its port once it listens."""
    port = free_port()
    command = npm_server("server-everything", mode)
    async with await anyio.open_process(
        command, env={**os.environ, "PORT": str(port)}, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
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
        answer = await client.request("initialize", {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}})
        assert "error" in answer
        assert "remote" in answer["error"]["message"]
