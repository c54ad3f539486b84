"""Parity over HTTP: the same scenario directly (stdio) and through `signoff run --http`.

server-everything is wrapped twice: as a stdio upstream (shared between sessions when the client
needs no back channel, its own otherwise) and as an HTTP upstream (server-everything's
streamableHttp mode). The SDK's ClientSession speaks to signoff over streamable HTTP.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from conftest import connect, everything
from http_helpers import serving
from test_http_upstream import everything_over
from test_parity import CALLBACKS, attempt, dump

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


@asynccontextmanager
async def over_http(url: str, **callbacks: Any) -> AsyncIterator[ClientSession]:
    async with streamable_http_client(url) as (read, write):
        async with ClientSession(read, write, **callbacks) as client:
            with anyio.fail_after(60):
                await client.initialize()
            yield client


async def tools(client: ClientSession) -> Any:
    out: dict[str, Any] = {"tools": dump((await client.list_tools()).tools)}
    out["echo"] = dump(await client.call_tool("echo", {"message": "hi"}))
    out["sum"] = dump(await client.call_tool("get-sum", {"a": 2, "b": 40}))
    out["image"] = dump(await client.call_tool("get-tiny-image", {}))
    out["bad_args"] = await attempt(client.call_tool("get-sum", {"a": "x"}))
    updates: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        updates.append(progress)

    out["long"] = dump(
        await client.call_tool("trigger-long-running-operation", {"duration": 0.3, "steps": 3}, progress_callback=on_progress)
    )
    out["updates"] = updates
    resources = (await client.list_resources()).resources
    out["read"] = dump(await client.read_resource(resources[0].uri))
    out["prompt"] = dump(await client.get_prompt("args-prompt", {"city": "Paris", "state": "TX"}))
    out["subscribe"] = dump(await client.subscribe_resource(resources[0].uri))
    out["ping"] = dump(await client.send_ping())
    return out


async def back_channel(client: ClientSession) -> Any:
    return {
        "sampling": dump(await client.call_tool("trigger-sampling-request", {"prompt": "hello", "maxTokens": 10})),
        "elicitation": dump(await client.call_tool("trigger-elicitation-request", {})),
        "roots": dump(await client.call_tool("get-roots-list", {})),
    }


async def direct(scenario, **callbacks: Any) -> Any:
    async with connect(everything(), **callbacks) as client:
        with anyio.fail_after(60):
            return await scenario(client)


@pytest.mark.parametrize(("scenario", "callbacks"), [(tools, {}), (back_channel, CALLBACKS)], ids=["shared", "own"])
async def test_everything_stdio_upstream_over_http(scenario, callbacks: dict[str, Any]) -> None:
    expected = await direct(scenario, **callbacks)
    async with serving(everything()) as server:
        async with over_http(server.url, **callbacks) as client:
            with anyio.fail_after(60):
                assert await scenario(client) == expected
            # no back channel: the upstream started at launch serves it; else the session has its own
            assert len(server.children()) == (2 if callbacks else 1)
    assert len(expected.get("updates", [1, 2, 3])) == 3


async def test_everything_http_upstream_over_http(tmp_path) -> None:
    expected = await direct(tools)
    async with everything_over("streamableHttp") as port:
        config = tmp_path / "signoff.yaml"
        config.write_text(f"servers:\n  everything:\n    url: http://127.0.0.1:{port}/mcp\n")
        async with serving([], "--config", str(config)) as server, over_http(server.url) as client:
            with anyio.fail_after(60):
                got = await tools(client)
    assert got == expected
