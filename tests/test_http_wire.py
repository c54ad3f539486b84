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


async def test_an_answer_sent_before_the_body_arrived_says_connection_close() -> None:
    """A refusal judged on the headers alone (415, 403...) is sent before the body has arrived;
    the server then closes the connection (the unread body would be parsed as the next request),
    so it must say so, or a keep-alive client reuses the dying connection: its next request
    fails with a read error (seen as a flaky test_refused_requests_spawn_nothing under load)."""

    async def app(scope, receive, send) -> None:  # answers without reading the body
        await send({"type": "http.response.start", "status": 415, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"no"})

    sock = http_wire.listening_socket("127.0.0.1", 0)
    async with anyio.create_task_group() as tg:
        tg.start_soon(http_wire.serve, app, sock)
        with anyio.fail_after(10):
            async with await anyio.connect_tcp("127.0.0.1", sock.getsockname()[1]) as stream:
                await stream.send(b"POST /mcp HTTP/1.1\r\nhost: x\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n\r\n")
                answer = b""
                while b"\r\n\r\n" not in answer:
                    answer += await stream.receive()
                head = answer.split(b"\r\n\r\n")[0].lower()
                assert head.startswith(b"http/1.1 415") and b"connection: close" in head, head
        tg.cancel_scope.cancel()
