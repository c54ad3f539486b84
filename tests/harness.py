"""An in-process client for the relay: feeds frames to a `Proxy` and collects what it sends back."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio

from signoff.gate import Gate
from signoff.relay import jsonrpc
from signoff.relay.proxy import Proxy
from signoff.relay.upstream import ServerSpec
from signoff.serve.stdio import dispatch_client_frame

WAIT = 30


class Harness:
    """Plays the MCP client: sends requests, waits (bounded) for answers, keeps everything else."""

    def __init__(self, specs: list[ServerSpec], gate: Gate | None = None, **kwargs: Any):
        self.received: list[dict[str, Any]] = []
        self._arrived = anyio.Event()
        self.proxy = Proxy(specs, self._receive, gate, **kwargs)
        self._ids = itertools.count(1)

    async def _receive(self, frame: bytes | dict[str, Any]) -> None:
        message = jsonrpc.decode(frame) if isinstance(frame, bytes) else frame
        self.received.append(message)
        self._arrived.set()
        self._arrived = anyio.Event()

    async def wait_for(self, predicate, timeout: float = WAIT) -> dict[str, Any]:
        """The first received message matching `predicate` (searching earlier ones too)."""
        with anyio.fail_after(timeout):
            while True:
                for message in self.received:
                    if predicate(message):
                        return message
                await self._arrived.wait()

    async def send(self, message: dict[str, Any]) -> None:
        await self.proxy.from_client(jsonrpc.encode(message), message)

    async def send_raw(self, line: bytes) -> None:
        async def send(frame: dict[str, Any]) -> None:
            await self._receive(frame)

        await dispatch_client_frame(self.proxy, line, send)

    async def request(self, method: str, params: dict[str, Any] | None = None, timeout: float = WAIT) -> dict[str, Any]:
        request_id = next(self._ids)
        await self.send(jsonrpc.request(request_id, method, params))
        return await self.wait_for(lambda m: m.get("id") == request_id and "method" not in m, timeout)

    async def initialize(self) -> dict[str, Any]:
        answer = await self.request(
            "initialize",
            {
                "protocolVersion": "2025-11-25",
                "capabilities": {"elicitation": {}},
                "clientInfo": {"name": "harness", "version": "1"},
            },
        )
        await self.send(jsonrpc.notification("notifications/initialized"))
        return answer

    async def call(self, name: str, arguments: dict[str, Any] | None = None, timeout: float = WAIT) -> dict[str, Any]:
        return await self.request("tools/call", {"name": name, "arguments": arguments or {}}, timeout)


@asynccontextmanager
async def running(specs: list[ServerSpec], gate: Gate | None = None, **kwargs: Any) -> AsyncIterator[Harness]:
    harness = Harness(specs, gate, **kwargs)
    async with anyio.create_task_group() as tg:
        await harness.proxy.start(tg)
        try:
            yield harness
        finally:
            await harness.proxy.close()
            tg.cancel_scope.cancel()


def text_of(answer: dict[str, Any]) -> str:
    """The text of a tool result, or the error message of a JSON-RPC error."""
    if "error" in answer:
        return str(answer["error"].get("message"))
    return "\n".join(c.get("text", "") for c in answer["result"].get("content", []))
