"""`signoff run --http HOST:PORT`: the same relay served over streamable HTTP.

Each MCP session (an `initialize` POST without a session id) gets its own SDK transport and its
own `Proxy`, hence its own upstream processes: sessions never see each other's state. The SDK's
transport does the HTTP work (SSE streams, session ids, DNS-rebinding checks); signoff only turns
its typed messages into the dicts the relay speaks.

A 2026-07-28 client (its `MCP-Protocol-Version` header names a stateless revision) sends each
request as a self-contained POST. Those requests share one `Proxy` (ids are remapped so clients
cannot collide); each POST is answered with an SSE stream carrying its progress notifications
and then its response, and closing that stream cancels the request.
"""

from __future__ import annotations

import itertools
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import anyio.abc
from mcp.server.streamable_http import MCP_SESSION_ID_HEADER, StreamableHTTPServerTransport
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from mcp.shared.message import ServerMessageMetadata, SessionMessage
from mcp_types import jsonrpc_message_adapter
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from signoff import jsonrpc
from signoff.eras import HANDSHAKE_VERSIONS
from signoff.gate import Gate
from signoff.proxy import Proxy
from signoff.upstream import ServerSpec

log = logging.getLogger("signoff.http")

MCP_PATH = "/mcp"


class HttpDownstream:
    """An ASGI app serving MCP sessions at /mcp, each relayed to its own upstreams."""

    def __init__(self, specs: list[ServerSpec], gate_factory: Callable[[], Gate]):
        self.specs = specs
        self.gate_factory = gate_factory
        self.security = TransportSecuritySettings()
        self.sessions: dict[str, StreamableHTTPServerTransport] = {}
        self._tg: anyio.abc.TaskGroup | None = None
        self._stateless: Proxy | None = None
        self._stateless_lock = anyio.Lock()
        self._routes: dict[str, tuple[Any, Any]] = {}
        self._tokens: dict[Any, str] = {}
        self._keys = itertools.count(1)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if scope["path"].rstrip("/") != MCP_PATH:
            await PlainTextResponse("signoff: MCP is served at /mcp", status_code=404)(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        version = headers.get("mcp-protocol-version")
        if version is not None and version not in HANDSHAKE_VERSIONS:
            await self._stateless_request(scope, receive, send)
            return
        session_id = headers.get(MCP_SESSION_ID_HEADER)
        if session_id is not None:
            transport = self.sessions.get(session_id)
            if transport is None:
                body = jsonrpc.error(None, jsonrpc.INVALID_REQUEST, "Session not found")
                await JSONResponse(body, status_code=404)(scope, receive, send)
                return
            await transport.handle_request(scope, receive, send)
            if transport.is_terminated:
                self.sessions.pop(session_id, None)
            return
        if scope["method"] != "POST":
            body = jsonrpc.error(None, jsonrpc.INVALID_REQUEST, "Bad Request: open a session with an initialize POST")
            await JSONResponse(body, status_code=400)(scope, receive, send)
            return
        await self._open_session(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _open_session(self, scope: Scope, receive: Receive, send: Send) -> None:
        session_id = uuid.uuid4().hex
        transport = StreamableHTTPServerTransport(mcp_session_id=session_id, security_settings=self.security)
        self.sessions[session_id] = transport
        assert self._tg is not None
        await self._tg.start(self._run_session, transport)
        await transport.handle_request(scope, receive, send)

    async def _run_session(self, transport: StreamableHTTPServerTransport, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        """One client session; whatever ends it, the server and the other sessions keep running."""
        session_id = transport.mcp_session_id or ""
        try:
            await self._serve_session(transport, session_id, task_status)
        except Exception:  # noqa: BLE001 - top level of one session: log it, keep serving the others
            log.exception("session %s failed", session_id[:8])
        finally:
            self.sessions.pop(session_id, None)

    async def _serve_session(self, transport: StreamableHTTPServerTransport, session_id: str,
                             task_status: anyio.abc.TaskStatus[None]) -> None:
        async with transport.connect() as (read, write):
            task_status.started()
            tokens: dict[Any, Any] = {}

            async def send_client(frame: bytes | dict[str, Any]) -> None:
                message = jsonrpc.decode(frame) if isinstance(frame, bytes) else frame
                assert isinstance(message, dict)
                related = None
                if message.get("method") == "notifications/progress":
                    related = tokens.get((message.get("params") or {}).get("progressToken"))
                elif "id" in message and "method" not in message:
                    related = message["id"]
                metadata = ServerMessageMetadata(related_request_id=related) if related is not None else None
                try:
                    await write.send(SessionMessage(jsonrpc_message_adapter.validate_python(message), metadata))
                except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                    log.info("session %s closed; dropped a message", session_id[:8])

            proxy = Proxy(self.specs, send_client, self.gate_factory())
            proxy.session.id = session_id[:12]
            async with anyio.create_task_group() as tg:
                await proxy.start(tg)
                try:
                    async for item in read:
                        if isinstance(item, Exception):
                            log.warning("session %s: bad message: %s", session_id[:8], item)
                            continue
                        message = item.message.model_dump(by_alias=True, mode="json", exclude_none=True)
                        token = ((message.get("params") or {}).get("_meta") or {}).get("progressToken")
                        if token is not None and "id" in message:
                            tokens[token] = message["id"]
                        await proxy.from_client(None, message)
                except (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream):
                    pass  # the client ended the session (DELETE) or the transport closed
                finally:
                    await proxy.close()
                    tg.cancel_scope.cancel()
        log.info("session %s ended", session_id[:8])

    # ------------------------------------------------------------------ 2026-07-28: one POST, one exchange

    async def _stateless_request(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        refusal = await TransportSecurityMiddleware(self.security).validate_request(request, is_post=request.method == "POST")
        if refusal is None and request.method != "POST":
            refusal = Response(status_code=405, headers={"Allow": "POST"})
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        try:
            message = jsonrpc.decode(await request.body())
        except jsonrpc.FrameError as exc:
            await JSONResponse(jsonrpc.error(None, jsonrpc.PARSE_ERROR, f"Parse error: {exc}"), status_code=400)(scope, receive, send)
            return
        if not isinstance(message, dict) or jsonrpc.kind(message) != jsonrpc.REQUEST:
            await Response(status_code=202)(scope, receive, send)  # notifications have nothing to act on here
            return
        proxy = await self._stateless_proxy()
        key = f"http-{next(self._keys)}"
        inbox, outbox = anyio.create_memory_object_stream[dict[str, Any]](64)
        self._routes[key] = (inbox, message["id"])
        token = ((message.get("params") or {}).get("_meta") or {}).get("progressToken")
        if token is not None:
            self._tokens[token] = key
        await proxy.from_client(None, {**message, "id": key})

        async def events() -> AsyncIterator[bytes]:
            answered = False
            try:
                async with outbox:
                    async for item in outbox:
                        yield b"event: message\ndata: " + json.dumps(item).encode() + b"\n\n"
                        if "method" not in item:
                            answered = True
                            return
            finally:
                self._routes.pop(key, None)
                self._tokens.pop(token, None)
                if not answered:  # the client closed the stream: that is cancellation on this wire
                    with anyio.CancelScope(shield=True):
                        await proxy.from_client(None, jsonrpc.notification("notifications/cancelled", {"requestId": key}))

        await StreamingResponse(events(), media_type="text/event-stream")(scope, receive, send)

    async def _stateless_proxy(self) -> Proxy:
        async with self._stateless_lock:
            if self._stateless is None:
                proxy = Proxy(self.specs, self._stateless_send, self.gate_factory())
                assert self._tg is not None
                await proxy.start(self._tg)
                self._stateless = proxy
            return self._stateless

    async def _stateless_send(self, frame: bytes | dict[str, Any]) -> None:
        message = jsonrpc.decode(frame) if isinstance(frame, bytes) else frame
        assert isinstance(message, dict)
        if "method" not in message:
            key, out = message.get("id"), message
        elif message["method"] == "notifications/progress":
            key = self._tokens.get((message.get("params") or {}).get("progressToken"))
            out = message
        else:
            log.debug("no stateless client can take %s", message["method"])
            return
        route = self._routes.get(key) if isinstance(key, str) else None
        if route is None:
            return
        inbox, original = route
        if "method" not in out:
            out = {**out, "id": original}
        try:
            await inbox.send(out)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass

    async def serve(self, host: str, port: int) -> None:
        """Bind first (port 0 picks a free one), log the URL, then serve until cancelled.

        Binding before logging makes the "serving" log line a true readiness signal.
        """
        import socket

        import uvicorn

        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # IPPROTO_TCP: asyncio sets TCP_NODELAY only on sockets whose proto says TCP; without it
        # every streamed answer on a reused connection waited ~40 ms for the client's delayed ACK
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        port = sock.getsockname()[1]
        shown = f"[{host}]" if family == socket.AF_INET6 else host
        self.security = TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=[f"{shown}:{port}", f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"],
            allowed_origins=[f"http://{shown}:{port}", f"http://127.0.0.1:{port}", f"http://localhost:{port}"],
        )
        server = uvicorn.Server(uvicorn.Config(self, log_level="warning", lifespan="on"))
        async with anyio.create_task_group() as tg:
            self._tg = tg
            log.info("serving MCP over streamable HTTP at http://%s:%d%s", shown, port, MCP_PATH)
            await server.serve(sockets=[sock])
            tg.cancel_scope.cancel()
