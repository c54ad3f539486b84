"""A lean HTTP/1.1 server for one ASGI app: httptools parses, asyncio moves the bytes.

`signoff run --http` needs a small part of HTTP: requests with bodies, JSON answers, streamed
(chunked) SSE answers, keep-alive, and knowing when a client went away. uvicorn does all that
too, but importing it (with click, ssl, logging.config) and its per-request machinery cost
start-up time and CPU per call that this endpoint is measured on; this is the same work in one
small module. Limits against hostile peers: header block size, idle keep-alive and slow-header
timeouts, and reading paused while a request's unread body is large.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

import httptools

log = logging.getLogger("signoff.http")

App = Callable[
    [dict[str, Any], Callable[[], Awaitable[dict[str, Any]]], Callable[[dict[str, Any]], Awaitable[None]]], Awaitable[None]
]
MAX_HEADER_BYTES = 64 * 1024
KEEPALIVE_S = 5.0
"""An idle connection (no request in progress) is closed after this long."""
HEADER_TIMEOUT_S = 10.0
"""A request whose head has not arrived in full after this long is dropped (slowloris)."""
PAUSE_BODY_BYTES = 1024 * 1024
REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}


class _Request:
    """One request/response cycle on a connection: the ASGI receive and send."""

    def __init__(self, conn: _Connection, scope: dict[str, Any], expect_continue: bool):
        self.conn = conn
        self.scope = scope
        self.chunks: list[bytes] = []
        self.complete = False
        self.body_done = False
        self.disconnected = False
        self.response_started = False
        self.response_complete = False
        self.chunked = False
        self.expect_continue = expect_continue
        self.keep_alive = True
        self.head = b""
        self.lost_callbacks: list[Callable[[], None]] = []
        self._wake = asyncio.Event()

    def on_disconnect(self, callback: Callable[[], None]) -> None:
        """Call `callback` when the client goes away (at once if it has): lets the app notice
        a disconnect without a task blocked in `receive()` for every request."""
        if self.disconnected:
            callback()
        else:
            self.lost_callbacks.append(callback)

    def lost(self) -> None:
        self.disconnected = True
        for callback in self.lost_callbacks:
            callback()
        self.lost_callbacks.clear()
        self.wake()

    def wake(self) -> None:
        self._wake.set()

    async def receive(self) -> dict[str, Any]:
        if self.expect_continue and not self.response_started and not self.disconnected:
            self.expect_continue = False
            self.conn.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        while True:
            if self.disconnected:
                return {"type": "http.disconnect"}
            if not self.body_done and (self.chunks or self.complete):
                body = b"".join(self.chunks)
                self.chunks.clear()
                self.conn.resume_reading()
                self.body_done = self.complete
                return {"type": "http.request", "body": body, "more_body": not self.complete}
            self._wake.clear()
            await self._wake.wait()

    async def send(self, message: dict[str, Any]) -> None:
        if self.disconnected or self.response_complete:
            return
        if message["type"] == "http.response.start":
            status = message["status"]
            head = [b"HTTP/1.1 %d %s\r\n" % (status, REASONS.get(status, b""))]
            names = set()
            for name, value in message.get("headers", ()):
                names.add(name.lower())
                head.append(b"%s: %s\r\n" % (name, value))
            if b"content-length" not in names:
                self.chunked = True
                head.append(b"transfer-encoding: chunked\r\n")
            if not self.complete:  # answered before the whole body arrived: finished() closes the connection
                self.keep_alive = False
            if not self.keep_alive:
                head.append(b"connection: close\r\n")
            head.append(b"\r\n")
            self.response_started = True
            self.head = b"".join(head)  # written with the first body chunk: one segment, not two
            return
        body = message.get("body", b"")
        more = message.get("more_body", False)
        if self.chunked:
            data = b"%x\r\n%s\r\n" % (len(body), body) if body else b""
            data += b"" if more else b"0\r\n\r\n"
        else:
            data = body
        if self.head:
            data, self.head = self.head + data, b""
        if data:
            self.conn.write(data)
        if not more:
            self.response_complete = True
            self.conn.finished(self)
        else:
            await self.conn.drain()


class _Connection(asyncio.Protocol):
    def __init__(self, app: App, loop: asyncio.AbstractEventLoop, tasks: set[asyncio.Task[None]]):
        self.app, self.loop, self.tasks = app, loop, tasks
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.current: _Request | None = None
        self.queue: list[_Request] = []
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.header_bytes = 0
        self.paused_reading = False
        self._writable = asyncio.Event()
        self._writable.set()
        self._timer: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------------ transport events

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._arm(KEEPALIVE_S)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        for request in [self.current, *self.queue]:
            if request is not None:
                request.lost()
        self._writable.set()

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._reject(400, b"upgrades are not supported")
        except httptools.HttpParserError:
            self._reject(400, b"malformed HTTP request")

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    # ------------------------------------------------------------------ parser callbacks

    def on_message_begin(self) -> None:
        self.url, self.headers, self.header_bytes = b"", [], 0
        self._arm(HEADER_TIMEOUT_S)

    def on_url(self, url: bytes) -> None:
        self.url += url
        self._count(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value))
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self._disarm()
        url = httptools.parse_url(self.url)
        scope = {
            "type": "http",
            "http_version": self.parser.get_http_version(),
            "method": self.parser.get_method().decode("ascii"),
            "path": url.path.decode("latin-1"),
            "query_string": url.query or b"",
            "headers": self.headers,
        }
        expect = any(n == b"expect" and v.lower() == b"100-continue" for n, v in self.headers)
        request = _Request(self, scope, expect)
        request.keep_alive = self.parser.should_keep_alive()
        if self.current is None:
            self._start(request)
        else:
            self.queue.append(request)  # pipelined: answered in order
            self.pause_reading()

    def on_body(self, body: bytes) -> None:
        request = self.queue[-1] if self.queue else self.current
        if request is None:
            return
        request.chunks.append(body)
        if sum(map(len, request.chunks)) > PAUSE_BODY_BYTES:
            self.pause_reading()
        request.wake()

    def on_message_complete(self) -> None:
        request = self.queue[-1] if self.queue else self.current
        if request is not None:
            request.complete = True
            request.wake()

    # ------------------------------------------------------------------ requests

    def _start(self, request: _Request) -> None:
        self.current = request
        task = self.loop.create_task(self._run(request))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _run(self, request: _Request) -> None:
        async def receive() -> dict[str, Any]:
            return await request.receive()

        receive.on_disconnect = request.on_disconnect  # type: ignore[attr-defined]  # see http_server._answer
        try:
            await self.app(request.scope, receive, request.send)
        except Exception:  # noqa: BLE001 - top level of one request: log it, answer 500, keep serving
            log.exception("HTTP request failed")
            if not request.response_started:
                await request.send({"type": "http.response.start", "status": 500, "headers": [(b"content-length", b"0")]})
                await request.send({"type": "http.response.body", "body": b""})
            elif self.transport is not None:
                self.transport.close()
        if not request.response_complete and self.transport is not None and not self.transport.is_closing():
            self.transport.close()  # the app ended without finishing its answer

    def finished(self, request: _Request) -> None:
        if request is not self.current or self.transport is None:
            return
        self.current = None
        if not request.keep_alive or not request.complete:
            self.transport.close()  # an unread body would be parsed as the next request
            return
        if self.queue:
            self._start(self.queue.pop(0))
            if not self.queue:
                self.resume_reading()
        else:
            self._arm(KEEPALIVE_S)

    # ------------------------------------------------------------------ plumbing

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    async def drain(self) -> None:
        await self._writable.wait()

    def pause_reading(self) -> None:
        if not self.paused_reading and self.transport is not None:
            self.paused_reading = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.paused_reading and self.transport is not None and not self.queue:
            self.paused_reading = False
            self.transport.resume_reading()

    def _count(self, n: int) -> None:
        self.header_bytes += n
        if self.header_bytes > MAX_HEADER_BYTES:
            raise httptools.HttpParserError("header block too large")

    def _reject(self, status: int, why: bytes) -> None:
        if self.current is None and self.transport is not None:
            self.write(
                b"HTTP/1.1 %d %s\r\ncontent-type: text/plain\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s"
                % (status, REASONS[status], len(why), why)
            )
        if self.transport is not None:
            self.transport.close()

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, self._expire)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        if self.current is None and self.transport is not None:
            self.transport.close()


def listening_socket(host: str, port: int) -> socket.socket:
    """A bound, listening TCP socket. Created with IPPROTO_TCP: asyncio sets TCP_NODELAY only on
    accepted sockets whose proto says TCP, and without it every streamed answer on a reused
    connection waited ~40 ms for the client's delayed ACK."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    return sock


async def serve(app: App, sock: Any) -> None:
    """Serve `app` on a bound, listening socket until cancelled."""
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()
    server = await loop.create_server(lambda: _Connection(app, loop, tasks), sock=sock, backlog=1024)
    try:
        await asyncio.Future()  # until cancelled
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
