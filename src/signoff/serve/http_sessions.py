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
from signoff.serve.http_streams import EventStream
from signoff.relay.proxy import Proxy

log = logging.getLogger("signoff.http")

AbandonHook = Callable[["Session", list[Any]], Awaitable[None]]


async def cancel_abandoned(session: Session, request_ids: list[Any]) -> None:
    """Default for a dropped, unresumed stream: the client stopped waiting, so withdraw its calls."""
    for request_id in request_ids:
        log.info("session %s: request %r withdrawn: its stream dropped and was not resumed", session.id[:8], request_id)
        note = jsonrpc.notification("notifications/cancelled", {"requestId": request_id, "reason": "the client's stream dropped and was not resumed"})
        await session.proxy.from_client(None, note)


class Session:
    """The HTTP side of one client session (or, with `remap`, of all stateless 2026-07-28 requests)."""

    def __init__(self, session_id: str, *, priming: bool, remap: bool = False):
        self.id = session_id
        self.priming = priming
        self.remap = remap
        self.proxy: Proxy = None  # type: ignore[assignment]  # set by the server before any frame
        self.streams: dict[str, EventStream] = {}
        self.standalone = EventStream("0", priming=priming)
        self.streams["0"] = self.standalone
        self.by_request: dict[Any, EventStream] = {}
        self.by_token: dict[Any, EventStream] = {}
        self.original: dict[str, Any] = {}
        """Stateless requests only: signoff's id → the id the client used."""
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

    def open_post(self, requests: list[dict[str, Any]]) -> tuple[EventStream, list[dict[str, Any]]]:
        """A stream for a POST's requests; returns it and the requests as the relay must see them."""
        key = str(next(self._keys))
        seen: list[dict[str, Any]] = []
        for message in requests:
            if self.remap:  # different clients: ids and progress tokens may collide, so both are signoff's
                inner = f"http-{key}-{len(seen)}"
                self.original[inner] = message["id"]
                message = {**message, "id": inner}
                params = message.get("params")
                meta = params.get("_meta") if isinstance(params, dict) else None
                if isinstance(meta, dict) and "progressToken" in meta:
                    self.original[inner + "-token"] = meta["progressToken"]
                    message["params"] = {**params, "_meta": {**meta, "progressToken": inner + "-token"}}
            seen.append(message)
        stream = EventStream(key, {m["id"] for m in seen}, priming=self.priming)
        self.streams[key] = stream
        for message in seen:
            self.by_request[message["id"]] = stream
            token = ((message.get("params") or {}).get("_meta") or {}).get("progressToken")
            if token is not None and isinstance(token, (str, int)):
                self.by_token[token] = stream
        return stream, seen

    def forget(self, stream: EventStream) -> None:
        """Drop a stream that needs no more delivery or resumption."""
        self.streams.pop(stream.key, None)
        for request_id in [k for k, s in self.by_request.items() if s is stream]:
            del self.by_request[request_id]
            self.original.pop(request_id, None)
        for token in [k for k, s in self.by_token.items() if s is stream]:
            del self.by_token[token]
            self.original.pop(token, None)

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
            if self.remap:
                message = {**message, "id": self.original.pop(request_id, None)}
                data = jsonrpc.encode(message).rstrip(b"\n")
            stream.push(data, answers=request_id)
            if stream.done:
                for token in [k for k, s in self.by_token.items() if s is stream]:
                    del self.by_token[token]
                    self.original.pop(token, None)
            return
        stream = None
        if message["method"] == "notifications/progress":
            token = (message.get("params") or {}).get("progressToken")
            stream = self.by_token.get(token) if isinstance(token, (str, int)) else None
            if stream is not None and self.remap:
                message = {**message, "params": {**message["params"], "progressToken": self.original.get(token)}}
                data = jsonrpc.encode(message).rstrip(b"\n")
        if stream is None and self.remap:  # the stateless relay serves many clients: never guess one
            log.debug("no stateless client can take %s", message["method"])
            return
        if stream is None:
            stream = self._latest_post() or self.standalone
        stream.push(data)

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
                    answer = jsonrpc.error(self.original.get(request_id, request_id), jsonrpc.INTERNAL_ERROR, "the session ended")
                    stream.push(jsonrpc.encode(answer).rstrip(b"\n"), answers=request_id)
                stream.close()
            self.ended.set()
            log.info("session %s ended", self.id[:8])

    def close(self) -> None:
        self.closed.set()
