"""`signoff run --http HOST:PORT`: the relay served over streamable HTTP, at the frame level.

A small ASGI app at /mcp (served by uvicorn; no MCP SDK on this path, so start-up and memory stay
low). Each POST is checked (http_guard: Host, Origin, token, media types, size) and decoded once,
then handed to the session's relay exactly as a stdio frame is. The answer goes back as a plain
JSON body when it is the first thing to send, or as an SSE stream (with event ids, resumable by
`Last-Event-ID`) when notifications or server→client requests come first.

Sessions (revisions 2025-03-26 … 2025-11-25) start with a valid `initialize` POST: nothing is
spawned before one. Their upstream is their own or a port on a shared one (share.py). A
2026-07-28 client (its `MCP-Protocol-Version` names the stateless revision) sends self-contained
POSTs; those share one relay (ids remapped), and closing a POST's stream cancels its request.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

import anyio
import anyio.abc

from signoff.gate import Gate, GateLoader
from signoff.relay import jsonrpc
from signoff.relay.eras import HANDSHAKE_VERSIONS, KNOWN_VERSIONS
from signoff.relay.proxy import Proxy
from signoff.relay.share import Hub, Port
from signoff.relay.upstream import ServerSpec, Upstream, make_upstream
from signoff.serve.http_guard import Guard, HttpOptions, Refusal
from signoff.serve.http_sessions import AbandonHook, Session, StatelessSession, cancel_abandoned
from signoff.serve.http_streams import EventStream, Lost, parse_event_id

log = logging.getLogger("signoff.http")

MCP_PATH = "/mcp"
SESSION_HEADER = "mcp-session-id"
Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]


class Disconnected(Exception):
    """The client went away while its request was being read."""


async def respond(send: Send, status: int, body: dict[str, Any] | bytes | None, headers: dict[str, str] | None = None) -> None:
    data = b"" if body is None else body if isinstance(body, bytes) else jsonrpc.encode(body).rstrip(b"\n")
    head = [(b"content-length", b"%d" % len(data))]
    if data:
        head.append((b"content-type", b"application/json"))
    head += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": data})


async def read_body(receive: Receive, headers: dict[str, str], limit: int) -> bytes:
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise Refusal(413, f"Payload Too Large: the body limit is {limit} bytes", code=jsonrpc.INVALID_REQUEST)
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise Refusal(413, f"Payload Too Large: the body limit is {limit} bytes", code=jsonrpc.INVALID_REQUEST)
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def decode_client(body: bytes) -> tuple[dict[str, Any] | list[Any], bytes | None]:
    """Decode a POST body once, strictly, as stdio decodes a line (jsonrpc.decode_client); the
    relay forwards the canonical encoding, never the client's bytes."""
    message, canonical = jsonrpc.decode_client(body)
    return message, None if isinstance(message, list) else canonical


def _bad_request(message: str, request_id: Any = None, code: int = jsonrpc.INVALID_REQUEST) -> Refusal:
    return Refusal(400, message, code=code, request_id=request_id)


class HttpDownstream:
    """The ASGI app: sessions at /mcp, each relayed to its own (or a shared) upstream."""

    def __init__(
        self,
        specs: list[ServerSpec],
        gate_factory: Callable[[], Gate] | None = None,
        options: HttpOptions | None = None,
        *,
        loader: GateLoader | None = None,
    ):
        """`loader` (loads the policy, opens the store) runs in a worker thread once the shared
        upstreams are spawned and the socket listens, so `initialize` is answered meanwhile; a call
        made before it finished waits for it, and a broken policy stops signoff before any call is
        judged."""
        self.specs = specs
        self.gate_factory: Callable[[], Gate] = gate_factory  # type: ignore[assignment]
        self.loader = loader
        self.options = options or HttpOptions()
        self.guard = Guard("127.0.0.1", 0)
        self.sessions: dict[str, Session] = {}
        self.hubs: dict[str, Hub] = {s.name: Hub(s) for s in specs if s.share == "shared" or (s.share == "auto" and s.command)}
        self.on_abandoned: AbandonHook = cancel_abandoned
        """Called with the requests of a stream that dropped and was not resumed in time."""
        self._stateless: Session | None = None
        self._stateless_lock = anyio.Lock()
        self._tg: anyio.abc.TaskGroup | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        method = scope["method"]
        headers: dict[str, str] = {}
        try:
            for key, value in scope["headers"]:
                name = key.decode("latin-1").lower()
                if name in headers and name in ("host", "authorization", "origin", SESSION_HEADER, "content-type"):
                    raise Refusal(400, f"Bad Request: more than one {name} header", code=jsonrpc.INVALID_REQUEST)
                headers[name] = value.decode("latin-1")
            self.guard.check(method, headers)
            if scope["path"].rstrip("/") != MCP_PATH:
                raise Refusal(404, f"Not Found: MCP is served at {MCP_PATH}", code=jsonrpc.INVALID_REQUEST)
            if method == "POST":
                await self._post(headers, receive, send)
            elif method == "GET":
                await self._get(headers, receive, send)
            elif method == "DELETE":
                self._session(headers).close()
                self.sessions.pop(headers[SESSION_HEADER], None)
                await respond(send, 200, None)
            else:
                raise Refusal(405, "Method Not Allowed", code=jsonrpc.INVALID_REQUEST, headers={"allow": "GET, POST, DELETE"})
        except Refusal as refusal:
            if refusal.status >= 500 or refusal.status in (401, 403, 421):
                log.warning("refused %s %s: %s", method, scope["path"][:100], refusal)
            await respond(send, refusal.status, jsonrpc.error(refusal.request_id, refusal.code, str(refusal)), refusal.headers)
        except Disconnected:
            pass

    def _session(self, headers: dict[str, str]) -> Session:
        session_id = headers.get(SESSION_HEADER)
        if session_id is None:
            raise _bad_request("Bad Request: no Mcp-Session-Id header; start a session with an initialize POST")
        session = self.sessions.get(session_id)
        if session is None:
            raise Refusal(404, "Session not found: start a new session with initialize", code=jsonrpc.INVALID_REQUEST)
        session.touch()
        return session

    # ------------------------------------------------------------------ POST

    async def _post(self, headers: dict[str, str], receive: Receive, send: Send) -> None:
        body = await read_body(receive, headers, self.options.max_body)
        try:
            message, raw = decode_client(body)
        except jsonrpc.FrameError as exc:
            if exc.request_id is not None:  # readable, but readers could disagree on it: answer its id
                raise _bad_request(f"Invalid Request: {exc}", exc.request_id) from None
            raise _bad_request(f"Parse error: {exc}", code=jsonrpc.PARSE_ERROR) from None
        messages = message if isinstance(message, list) else [message]
        for item in messages:
            if jsonrpc.kind(item) is None:
                raise _bad_request("Invalid Request: not a JSON-RPC request, notification or response", item.get("id"))
            if "method" in item and "id" in item and (not isinstance(item["id"], (str, int)) or isinstance(item["id"], bool)):
                raise _bad_request("Invalid Request: a request id must be a string or an integer")
        version = headers.get("mcp-protocol-version")
        if version is not None and version not in HANDSHAKE_VERSIONS:
            if version not in KNOWN_VERSIONS:
                raise _bad_request(
                    f"Bad Request: unsupported MCP-Protocol-Version {version[:40]!r}; supported: {', '.join(KNOWN_VERSIONS)}"
                )
            await self._relay(await self._stateless_session(), messages, None, receive, send, {})
            return
        extra: dict[str, str] = {}
        if SESSION_HEADER in headers:
            session = self._session(headers)
        else:
            session = await self._open(messages)
            extra[SESSION_HEADER] = session.id
        await self._relay(session, messages, raw if len(messages) == 1 else None, receive, send, extra)

    async def _open(self, messages: list[dict[str, Any]]) -> Session:
        """A new session for a valid initialize request: the only place that spawns upstreams."""
        init = messages[0] if len(messages) == 1 else {}
        if init.get("method") != "initialize" or "id" not in init:
            raise _bad_request("Bad Request: no Mcp-Session-Id header; start a session with an initialize request")
        params = init.get("params")
        if (
            not isinstance(params, dict)
            or not isinstance(params.get("protocolVersion"), str)
            or not isinstance(params.get("capabilities", {}), dict)
            or not isinstance(params.get("clientInfo", {}), dict)
        ):
            raise _bad_request(
                "Invalid params: initialize needs protocolVersion, capabilities and clientInfo",
                init.get("id"),
                jsonrpc.INVALID_PARAMS,
            )
        if len(self.sessions) >= self.options.max_sessions:
            raise Refusal(
                503,
                f"Service Unavailable: {self.options.max_sessions} sessions are open (the limit); "
                "end one with DELETE or retry later",
                headers={"retry-after": "5"},
            )
        session = Session(secrets.token_hex(16), priming=params["protocolVersion"] >= "2025-11-25")
        self.sessions[session.id] = session  # counted against the cap from now on
        try:
            upstreams = [await self._upstream_for(spec, init, session.id) for spec in self.specs]
            proxy = Proxy(self.specs, session.send_client, self.gate_factory(), upstreams=upstreams)
            proxy.session.id = session.id[:12]
            assert self._tg is not None
            await self._tg.start(self._run_session, session, proxy)
        except BaseException:
            self.sessions.pop(session.id, None)
            raise
        return session

    async def _upstream_for(self, spec: ServerSpec, init: dict[str, Any], session_id: str) -> Upstream:
        hub = self.hubs.get(spec.name)
        if hub is not None:
            await hub.ready.wait()
            if hub.error is None and (spec.share == "shared" or hub.fits(init)):
                return Port(hub, session_id)
        return make_upstream(spec)

    async def _run_session(self, session: Session, proxy: Proxy, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        """One client session; whatever ends it, the server and the other sessions keep running."""
        try:
            await session.run(proxy, task_status=task_status)
        except Exception:  # noqa: BLE001 - top level of one session: log it, keep serving the others
            log.exception("session %s failed", session.id[:8])
        finally:
            self.sessions.pop(session.id, None)

    async def _stateless_session(self) -> Session:
        async with self._stateless_lock:
            if self._stateless is None:
                session = StatelessSession()
                proxy = Proxy(self.specs, session.send_client, self.gate_factory())
                assert self._tg is not None
                await self._tg.start(session.run, proxy)
                self._stateless = session
            return self._stateless

    async def _relay(
        self,
        session: Session,
        messages: list[dict[str, Any]],
        raw: bytes | None,
        receive: Receive,
        send: Send,
        extra: dict[str, str],
    ) -> None:
        """Hand the frames to the relay (as stdio does) and answer the POST."""
        requests = [m for m in messages if "method" in m and "id" in m]
        ids = [m["id"] for m in requests]
        if session.reuses_ids(ids):
            raise _bad_request("Invalid Request: a request with this id is already in flight", ids[0])
        if len(session.by_request) + len(ids) > self.options.max_in_flight:
            raise Refusal(
                429,
                f"Too Many Requests: {self.options.max_in_flight} requests of this session are unanswered",
                code=jsonrpc.INVALID_REQUEST,
                headers={"retry-after": "1"},
            )
        stream, relayed = session.open_post(requests) if requests else (None, [])
        inner = iter(relayed)
        for message in messages:
            relay_as = next(inner) if "method" in message and "id" in message else message
            # the canonical bytes stand for the message as decoded; one the session changed is re-encoded
            await session.proxy.from_client(raw if relay_as is message else None, relay_as)
        if stream is None:
            await respond(send, 202, None, extra)
            return
        await self._answer(session, stream, 0, receive, send, extra, json_ok=True)

    # ------------------------------------------------------------------ answering: JSON or SSE

    async def _answer(
        self,
        session: Session,
        stream: EventStream,
        seen: int,
        receive: Receive,
        send: Send,
        extra: dict[str, str],
        *,
        json_ok: bool,
        started: bool = False,
    ) -> None:
        """Write `stream` from event `seen` on until it is done or the client goes away."""
        gone = anyio.Event()

        def lost() -> None:
            gone.set()
            stream.push_nothing()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            lost()

        stream.attached, stream.detached_at = True, None
        on_disconnect = getattr(receive, "on_disconnect", None)  # http_wire tells us; other servers need a task
        try:
            if on_disconnect is not None:
                on_disconnect(lost)
                seen = await self._write(stream, seen, send, extra, gone, json_ok, started)
            else:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(watch)
                    seen = await self._write(stream, seen, send, extra, gone, json_ok, started)
                    tg.cancel_scope.cancel()
        finally:
            stream.delivered = max(stream.delivered, seen)
            stream.detach()
            if stream.done and stream.delivered >= stream.seq:
                session.forget(stream)
            elif gone.is_set():
                with anyio.CancelScope(shield=True):
                    await session.stream_dropped(stream, self.on_abandoned)

    async def _write(
        self, stream: EventStream, seen: int, send: Send, extra: dict[str, str], gone: anyio.Event, json_ok: bool, started: bool
    ) -> int:
        while not gone.is_set():
            pending = stream.after(seen)
            if not started and pending:
                if json_ok and stream.done and len(pending) == 1:
                    await respond(send, 200, pending[0][1], extra)
                    return pending[0][0]
                head = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
                head += [(k.encode(), v.encode()) for k, v in extra.items()]
                await send({"type": "http.response.start", "status": 200, "headers": head})
                if stream.priming:
                    await send({"type": "http.response.body", "body": stream.prime(seen), "more_body": True})
                started = True
            for n, frame in pending:
                await send({"type": "http.response.body", "body": stream.event(n, frame), "more_body": True})
                seen = n
            if started and stream.done and seen >= stream.seq:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return seen
            if stream.seq > seen:
                continue
            await stream.changed()
        return seen

    # ------------------------------------------------------------------ GET: the standalone stream, or a resumed one

    async def _get(self, headers: dict[str, str], receive: Receive, send: Send) -> None:
        if headers.get("mcp-protocol-version") not in (None, *HANDSHAKE_VERSIONS):
            raise Refusal(
                405,
                "Method Not Allowed: a stateless client has no GET stream",
                code=jsonrpc.INVALID_REQUEST,
                headers={"allow": "POST"},
            )
        session = self._session(headers)
        last = headers.get("last-event-id")
        if last is not None:
            parsed = parse_event_id(last)
            stream = session.streams.get(parsed[0]) if parsed else None
            if stream is None or parsed is None:
                raise Refusal(
                    404,
                    "Not Found: no stream to resume with this Last-Event-ID (it ended or expired)",
                    code=jsonrpc.INVALID_REQUEST,
                )
            seen = parsed[1]
            try:
                stream.after(seen)
            except Lost as exc:
                raise Refusal(409, f"Conflict: {exc}", code=jsonrpc.INVALID_REQUEST) from None
        else:
            stream, seen = session.standalone, session.standalone.delivered
        if stream.attached:
            raise Refusal(409, "Conflict: this stream is already being read by another connection", code=jsonrpc.INVALID_REQUEST)
        await self._answer_get(session, stream, seen, receive, send)

    async def _answer_get(self, session: Session, stream: EventStream, seen: int, receive: Receive, send: Send) -> None:
        """A GET always streams: start the response now, then write as for a POST."""
        head = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
        await send({"type": "http.response.start", "status": 200, "headers": head})
        await send(
            {"type": "http.response.body", "body": stream.prime(seen) if session.priming else b": stream\n\n", "more_body": True}
        )
        await self._answer(session, stream, seen, receive, send, {}, json_ok=False, started=True)

    # ------------------------------------------------------------------ housekeeping and serving

    async def _housekeeping(self) -> None:
        """Expire dropped streams (the abandonment hook) and reap idle sessions."""
        tick = max(0.05, min(1.0, self.options.resume_window / 4, self.options.idle_timeout / 4))
        while True:
            await anyio.sleep(tick)
            now = time.monotonic()
            for session in [*self.sessions.values(), *([self._stateless] if self._stateless else [])]:
                await session.expire(self.options.resume_window, self.on_abandoned)
                if session.idle(now, self.options.idle_timeout):
                    log.info("session %s idle for %.0f s: closed", session.id[:8], now - session.last_active)
                    self.sessions.pop(session.id, None)
                    session.close()

    async def serve(self, host: str, port: int) -> None:
        """Bind first (port 0 picks a free one), log the URL, then serve until cancelled (the
        runner cancels on SIGINT/SIGTERM); every session's upstreams are stopped on the way out.

        Binding before logging makes the "serving" log line a true readiness signal.
        """
        from signoff.serve import http_wire

        sock = http_wire.listening_socket(host, port)
        port = sock.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        self.guard = Guard(host, port, self.options.allow_hosts, self.options.token)
        async with anyio.create_task_group() as tg:
            self._tg = tg
            for hub in self.hubs.values():
                await tg.start(hub.launch, tg)
            if self.loader is not None:
                self.gate_factory = self.loader.factory
                tg.start_soon(self.loader.run)
            tg.start_soon(self._housekeeping)
            tg.start_soon(http_wire.serve, self, sock)
            log.info("serving MCP over streamable HTTP at http://%s:%d%s", shown, port, MCP_PATH)
            try:
                await anyio.sleep_forever()
            finally:
                with anyio.CancelScope(shield=True):
                    await self._stop_all()
                tg.cancel_scope.cancel()

    async def _stop_all(self) -> None:
        """End every session (their upstreams stop) and the shared upstreams."""
        sessions = [*self.sessions.values(), *([self._stateless] if self._stateless else [])]
        for session in sessions:
            session.close()
        with anyio.move_on_after(10):
            for session in sessions:
                await session.ended.wait()
            for hub in self.hubs.values():
                await hub.up.stop()
