"""One MCP session served over streamable HTTP: its relay, and where each outgoing frame goes.

The relay (`Proxy`) speaks frames; this module decides which HTTP response carries each one:
an answer goes to the POST that asked; a progress notification to the POST whose request
carries its token; other notifications and server→client requests to the most recent POST still
waiting (the spec lets them ride on it), else to the session's standalone GET stream.

A POST stream whose connection dropped is kept for `resume_window` seconds for a GET with
`Last-Event-ID`; after that, its unanswered requests count as withdrawn by a client that stopped
waiting (`on_abandoned`, by default a `notifications/cancelled` per request, which withdraws a
held call and cancels a forwarded one).
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.abc

from signoff.relay import jsonrpc
from signoff.relay.proxy import Proxy
from signoff.serve.http_streams import EventStream

log = logging.getLogger("signoff.http")

AbandonHook = Callable[["Session", list[Any]], Awaitable[None]]


async def cancel_abandoned(session: Session, request_ids: list[Any]) -> None:
    """Default for a dropped, unresumed stream: the client stopped waiting, so withdraw its calls."""
    for request_id in request_ids:
        log.info("session %s: request %r withdrawn: its stream dropped and was not resumed", session.id[:8], request_id)
        note = jsonrpc.notification(
            "notifications/cancelled", {"requestId": request_id, "reason": "the client's stream dropped and was not resumed"}
        )
        await session.proxy.from_client(None, note)


class Session:
    """The HTTP side of one client session (stateless 2026-07-28 requests: `StatelessSession`)."""

    def __init__(self, session_id: str, *, priming: bool):
        self.id = session_id
        self.priming = priming
        self.proxy: Proxy = None  # type: ignore[assignment]  # set by the server before any frame
        self.streams: dict[str, EventStream] = {}
        self.standalone = EventStream("0", priming=priming)
        self.streams["0"] = self.standalone
        self.by_request: dict[Any, EventStream] = {}
        self.by_token: dict[Any, EventStream] = {}
        self._keys = itertools.count(1)
        self.last_active = time.monotonic()
        self.closed = anyio.Event()
        self.ended = anyio.Event()

    def touch(self) -> None:
        self.last_active = time.monotonic()

    @property
    def busy(self) -> bool:
        return bool(self.by_request) or any(s.attached for s in self.streams.values())

    # ------------------------------------------------------------------ client → relay

    def in_flight(self, request_id: Any) -> bool:
        return request_id in self.by_request

    def reuses_ids(self, ids: list[Any]) -> bool:
        """Would these request ids take over another request's answer (repeated, or still in flight)?"""
        return len(set(map(repr, ids))) < len(ids) or any(self.in_flight(i) for i in ids)

    def idle(self, now: float, idle_timeout: float) -> bool:
        """Nothing in flight or attached for `idle_timeout` seconds: the session may be reaped."""
        return not self.busy and now - self.last_active >= idle_timeout

    def open_post(self, requests: list[dict[str, Any]]) -> tuple[EventStream, list[dict[str, Any]]]:
        """A stream for a POST's requests; returns it and the requests as the relay must see them."""
        key = str(next(self._keys))
        seen: list[dict[str, Any]] = []
        for message in requests:
            seen.append(self._relayed(message, f"http-{key}-{len(seen)}"))
        stream = EventStream(key, {m["id"] for m in seen}, priming=self.priming)
        self.streams[key] = stream
        for message in seen:
            self.by_request[message["id"]] = stream
            token = ((message.get("params") or {}).get("_meta") or {}).get("progressToken")
            if token is not None and isinstance(token, (str, int)):
                self.by_token[token] = stream
        return stream, seen

    def _relayed(self, message: dict[str, Any], inner: str) -> dict[str, Any]:
        """A request as the relay sees it (this session's client owns its ids: as it came)."""
        return message

    def _dropped(self, key: Any) -> None:
        """A request id or progress token is no longer routed."""

    def forget(self, stream: EventStream) -> None:
        """Drop a stream that needs no more delivery or resumption."""
        self.streams.pop(stream.key, None)
        for request_id in [k for k, s in self.by_request.items() if s is stream]:
            del self.by_request[request_id]
            self._dropped(request_id)
        self._forget_tokens(stream)

    def _forget_tokens(self, stream: EventStream) -> None:
        for token in [k for k, s in self.by_token.items() if s is stream]:
            del self.by_token[token]
            self._dropped(token)

    # ------------------------------------------------------------------ relay → client

    async def send_client(self, frame: bytes | dict[str, Any]) -> None:
        """The relay's `send`: route one frame to the HTTP response that must carry it."""
        if isinstance(frame, bytes):
            data = frame.rstrip(b"\n")
            message = json.loads(data)
            if b"\r" in data or b"\n" in data:  # JSON whitespace, but a line break to SSE: never pass it on
                data = jsonrpc.encode(message).rstrip(b"\n")
        else:
            message, data = frame, jsonrpc.encode(frame).rstrip(b"\n")
        if not isinstance(message, dict):
            return
        if "method" not in message:
            request_id = message.get("id")
            stream = self.by_request.pop(request_id, None) if isinstance(request_id, (str, int)) else None
            if stream is None:
                log.debug("session %s: no stream waits for answer %r", self.id[:8], request_id)
                return
            stream.push(self._answer_data(message, data, request_id), answers=request_id)
            if stream.done:
                self._forget_tokens(stream)
            return
        stream = None
        if message["method"] == "notifications/progress":
            token = (message.get("params") or {}).get("progressToken")
            stream = self.by_token.get(token) if isinstance(token, (str, int)) else None
            if stream is not None:
                data = self._progress_data(message, data, token)
        if stream is None:
            stream = self._unrouted(message)
        if stream is not None:
            stream.push(data)

    def _answer_data(self, message: dict[str, Any], data: bytes, request_id: Any) -> bytes:
        """The answer as this session's client must read it."""
        return data

    def _progress_data(self, message: dict[str, Any], data: bytes, token: Any) -> bytes:
        """A progress notification as this session's client must read it."""
        return data

    def _unrouted(self, message: dict[str, Any]) -> EventStream | None:
        """Where a notification or server request that names no request goes: the most recent POST
        still waiting (the spec lets it ride there), else the standalone GET stream."""
        return self._latest_post() or self.standalone

    def _latest_post(self) -> EventStream | None:
        for stream in reversed(list(self.streams.values())):
            if not stream.standalone and not stream.done:
                return stream
        return None

    # ------------------------------------------------------------------ housekeeping

    async def expire(self, resume_window: float, on_abandoned: AbandonHook) -> None:
        """Forget delivered streams; hand the requests of streams dropped too long ago to the hook."""
        now = time.monotonic()
        for stream in list(self.streams.values()):
            if stream.standalone or stream.attached or stream.detached_at is None:
                continue
            if stream.done and stream.delivered >= stream.seq:
                self.forget(stream)
            elif now - stream.detached_at >= resume_window:
                waiting = sorted(stream.waiting, key=str)
                self.forget(stream)
                stream.close()
                if waiting:
                    await on_abandoned(self, waiting)  # the relay's ids (a stateless client's are remapped)

    async def stream_dropped(self, stream: EventStream, on_abandoned: AbandonHook) -> None:
        """A POST's connection dropped before its answers: kept `resume_window` for a Last-Event-ID GET."""

    async def run(self, proxy: Proxy, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        """Start the relay's upstreams; serve until the session is closed (DELETE, reaped, shutdown)."""
        self.proxy = proxy
        try:
            async with anyio.create_task_group() as tg:
                await proxy.start(tg)
                task_status.started()
                try:
                    await self.closed.wait()
                finally:
                    with anyio.CancelScope(shield=True):
                        await proxy.close()
                    tg.cancel_scope.cancel()
        finally:
            for stream in list(self.streams.values()):
                for request_id in sorted(stream.waiting, key=str):
                    answer = jsonrpc.error(self.client_id(request_id), jsonrpc.INTERNAL_ERROR, "the session ended")
                    stream.push(jsonrpc.encode(answer).rstrip(b"\n"), answers=request_id)
                stream.close()
            self.ended.set()
            log.info("session %s ended", self.id[:8])

    def client_id(self, request_id: Any) -> Any:
        """The id the client gave a request the relay knows as `request_id`."""
        return request_id

    def close(self) -> None:
        self.closed.set()


class StatelessSession(Session):
    """All stateless (2026-07-28) requests, from any client, through one relay.

    Different clients' ids and progress tokens may collide, so the relay sees signoff's own (and
    answers are mapped back); nothing is sent that names no request (no client to guess); a client
    closing its stream withdraws its requests; the session is never reaped as idle."""

    def __init__(self) -> None:
        super().__init__("stateless", priming=True)
        self.original: dict[str, Any] = {}
        """signoff's id (or progress token) → the one the client used."""

    def reuses_ids(self, ids: list[Any]) -> bool:
        return False

    def idle(self, now: float, idle_timeout: float) -> bool:
        return False

    def _relayed(self, message: dict[str, Any], inner: str) -> dict[str, Any]:
        self.original[inner] = message["id"]
        message = {**message, "id": inner}
        params: Any = message.get("params")
        meta = params.get("_meta") if isinstance(params, dict) else None
        if isinstance(meta, dict) and "progressToken" in meta:
            self.original[inner + "-token"] = meta["progressToken"]
            message["params"] = {**params, "_meta": {**meta, "progressToken": inner + "-token"}}
        return message

    def _dropped(self, key: Any) -> None:
        self.original.pop(key, None)

    def _answer_data(self, message: dict[str, Any], data: bytes, request_id: Any) -> bytes:
        return jsonrpc.encode({**message, "id": self.original.pop(request_id, None)}).rstrip(b"\n")

    def _progress_data(self, message: dict[str, Any], data: bytes, token: Any) -> bytes:
        message = {**message, "params": {**message["params"], "progressToken": self.original.get(token)}}
        return jsonrpc.encode(message).rstrip(b"\n")

    def _unrouted(self, message: dict[str, Any]) -> EventStream | None:
        log.debug("no stateless client can take %s", message["method"])  # never guess one
        return None

    async def stream_dropped(self, stream: EventStream, on_abandoned: AbandonHook) -> None:
        """A stateless client closing its stream withdraws its requests (it cannot resume)."""
        self.forget(stream)
        await on_abandoned(self, sorted(stream.waiting, key=str))

    def client_id(self, request_id: Any) -> Any:
        return self.original.get(request_id, request_id)
