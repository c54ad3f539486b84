"""The HTTP/1.1 server under `--http`: TCP_NODELAY on accepted connections, keep-alive, chunked SSE."""

from __future__ import annotations

import asyncio
import socket

import anyio
import pytest

from signoff.serve import http_wire

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_accepted_connections_get_tcp_nodelay() -> None:
    """Without IPPROTO_TCP on the listening socket asyncio leaves Nagle on (~40 ms stalls)."""
    sock = http_wire.listening_socket("127.0.0.1", 0)
    seen: list[int] = []

    class Probe(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            seen.append(transport.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    server = await asyncio.get_running_loop().create_server(Probe, sock=sock)
    try:
        async with await anyio.connect_tcp("127.0.0.1", sock.getsockname()[1]):
            with anyio.fail_after(5):
                while not seen:
                    await anyio.sleep(0.01)
    finally:
        server.close()
    assert seen == [1]


async def test_keep_alive_json_then_chunked_stream_on_one_connection() -> None:
    async def app(scope, receive, send) -> None:
        await receive()
        if scope["path"] == "/json":
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
            await send({"type": "http.response.body", "body": b"{}"})
        else:
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
            for part in (b"data: 1\n\n", b"data: 2\n\n"):
                await send({"type": "http.response.body", "body": part, "more_body": True})
            await send({"type": "http.response.body", "body": b""})

    import httpx2

    sock = http_wire.listening_socket("127.0.0.1", 0)
    async with anyio.create_task_group() as tg:
        tg.start_soon(http_wire.serve, app, sock)
        async with httpx2.AsyncClient(base_url=f"http://127.0.0.1:{sock.getsockname()[1]}", trust_env=False) as client:
            with anyio.fail_after(10):
                assert (await client.post("/json", content=b"x")).json() == {}
                streamed = await client.get("/sse")
                assert streamed.text == "data: 1\n\ndata: 2\n\n"
                assert (await client.post("/json", content=b"y" * 100_000)).json() == {}
        tg.cancel_scope.cancel()
