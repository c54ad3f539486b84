"""What one client session's relay layers share: its upstreams, its waiting requests, its client.

A `SessionContext` is the only thing a layer (layers.py) holds besides its neighbours; everything a
layer may do to the session is a public method here — send to the client, send to an upstream,
forward a request and remember it until its answer, ask the client or an upstream something of
signoff's own, answer a request that cannot be served. It knows nothing of modes: which layers a
session has is decided once, in proxy.py.

This is also the only place that turns an upstream failure into an MCP answer: an `isError` tool
result for a call (so the model can react), a JSON-RPC error for anything else (failures.py decides
when: crash, hang).
"""

from __future__ import annotations

import itertools
import logging
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc

from signoff.errors import UpstreamError, UpstreamStartError
from signoff.gate import Admission, Gate, OpenGate
from signoff.model import ToolCall
from signoff.relay import jsonrpc
from signoff.relay.upstream import Upstream

log = logging.getLogger("signoff.proxy")

SendFn = Callable[[bytes | dict[str, Any]], Awaitable[None]]
ResponseHook = Callable[[dict[str, Any]], Awaitable[None]]

_internal_ids = itertools.count(1)
_ID_SALT = secrets.token_hex(6)


def internal_id() -> str:
    """An id for signoff's own requests; unguessable, so no peer can answer or shadow them."""
    return f"signoff-{_ID_SALT}-{next(_internal_ids)}"


@dataclass
class Pending:
    """A request forwarded upstream whose answer has not come back yet."""

    client_id: Any
    method: str
    deadline: float
    call: ToolCall | None = None
    admission: Admission | None = None
    on_response: ResponseHook | None = None
    """Replaces forwarding: used for merged lists and for signoff's own requests."""


@dataclass
class SessionState:
    """What signoff remembers of the client's session, to replay into a restarted upstream."""

    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    initialize: dict[str, Any] | None = None
    initialized: bool = False
    log_level: dict[str, Any] | None = None
    subscriptions: set[str] = field(default_factory=set)
    client_name: str = ""
    modern_caps: dict[str, Any] | None = None
    """A stateless (2026-07-28) client's capabilities, from its request envelope."""

    def remember_initialize(self, msg: dict[str, Any]) -> None:
        self.initialize = msg
        info = (msg.get("params") or {}).get("clientInfo") or {}
        self.client_name = str(info.get("name", "")) if isinstance(info, dict) else ""

    def note_request(self, msg: dict[str, Any]) -> None:
        """Keep what a restarted upstream must be told again (handshake, log level, subscriptions)."""
        method = msg["method"]
        if method == "initialize":
            self.remember_initialize(msg)
        elif method == "logging/setLevel":
            self.log_level = msg.get("params")
        elif method == "resources/subscribe":
            self.subscriptions.add(str((msg.get("params") or {}).get("uri")))
        elif method == "resources/unsubscribe":
            self.subscriptions.discard(str((msg.get("params") or {}).get("uri")))


class SessionContext:
    """One client session's upstreams and bookkeeping, with the public methods layers use."""

    def __init__(self, upstreams: list[Upstream], send: SendFn, gate: Gate | None = None):
        self.upstreams = upstreams
        """One per spec, in order; HTTP serving passes its own (e.g. ports on a shared upstream)."""
        self.by_name = {up.name: up for up in upstreams}
        self.send_client: SendFn = send
        """Send one frame (canonical bytes or a message) to the client."""
        self.gate: Gate = gate or OpenGate()
        self.session = SessionState()
        self.pending: dict[Upstream, dict[Any, Pending]] = {up: {} for up in upstreams}
        self.held: dict[Any, anyio.CancelScope] = {}
        """Calls waiting for a human, by the client's request id (cancelling withdraws one)."""
        self.tools: dict[str, dict[str, dict[str, Any]]] = {up.name: {} for up in upstreams}
        """Per upstream, per tool: annotations as last listed (the policy may match on them)."""
        self.schemas: dict[str, dict[str, dict[str, Any]]] = {up.name: {} for up in upstreams}
        """Per upstream, per tool: the input schema as last listed (to check edited arguments)."""
        self._restart_locks = {up: anyio.Lock() for up in upstreams}
        self._own_requests: dict[str, tuple[anyio.Event, dict[str, Any]]] = {}
        """signoff's own requests to the client (approval dialogs), by id, awaiting answers."""
        self._tg: anyio.abc.TaskGroup | None = None

    # ------------------------------------------------------------------ lifecycle, tasks and state

    async def start(self, tg: anyio.abc.TaskGroup) -> None:
        """Start every upstream now (so they boot while the client connects)."""
        self._tg = tg
        for up in self.upstreams:
            try:
                await up.start(tg)
            except UpstreamError as exc:
                log.error("%s", exc)

    async def close(self) -> None:
        """The client is gone: its held calls expire (never run later), then the upstreams stop."""
        ended = getattr(self.gate, "session_ended", None)
        if ended is not None:
            with anyio.CancelScope(shield=True):
                await ended(self.session.id, "the client disconnected")
        for scope in list(self.held.values()):
            scope.cancel()
        with anyio.CancelScope(shield=True):
            for up in self.upstreams:
                await up.stop()

    def start_soon(self, fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> None:
        """Run `fn(*args)` in the session's task group (ends with the session)."""
        assert self._tg is not None, "the session has not started"
        self._tg.start_soon(fn, *args)

    def in_flight(self, request_id: Any) -> bool:
        """Does a request of the client with this id still wait for its answer (held or forwarded)?"""
        return request_id in self.held or any(request_id in waiting for waiting in self.pending.values())

    def client_capability(self, name: str) -> Any:
        """A capability the client declared in its handshake (None if it did not).

        A stateless client has no back channel for requests: nothing is asked of it this way."""
        if self.session.modern_caps is not None:
            return None
        init = self.session.initialize
        caps = ((init or {}).get("params") or {}).get("capabilities")
        return caps.get(name) if isinstance(caps, dict) else None

    # ------------------------------------------------------------------ to the client

    async def ask_client(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """Send signoff's own request to the client and wait for its answer (result or error).

        Cancelling the waiting task withdraws the request from the client.
        """
        request_id = internal_id()
        done, box = anyio.Event(), dict[str, Any]()
        self._own_requests[request_id] = (done, box)
        try:
            await self.send_client(jsonrpc.request(request_id, method, params))
            await done.wait()
            return box
        finally:
            del self._own_requests[request_id]
            if not done.is_set():
                with anyio.CancelScope(shield=True):
                    await self.send_client(
                        jsonrpc.notification("notifications/cancelled", {"requestId": request_id, "reason": "decided elsewhere"})
                    )

    def answer_own(self, msg: dict[str, Any]) -> bool:
        """Take the client's answer to one of signoff's own requests (never forwarded upstream)."""
        msg_id = msg.get("id")
        own = self._own_requests.get(msg_id) if isinstance(msg_id, str) else None
        if own is None:
            return False
        own[1].update(msg)
        own[0].set()
        return True

    def tool_error(self, request_id: Any, text: str) -> dict[str, Any]:
        """signoff's own `isError` result, in the shape the client's protocol revision needs."""
        answer = jsonrpc.tool_error(request_id, text)
        if self.session.modern_caps is not None:
            answer["result"]["resultType"] = "complete"
        return answer

    async def refuse(self, request_id: Any, code: int, text: str) -> None:
        """Answer a client request with a JSON-RPC error."""
        await self.send_client(jsonrpc.error(request_id, code, text))

    async def fail(
        self, client_id: Any, method: str, exc: UpstreamError, call: ToolCall | None, admission: Admission | None
    ) -> None:
        """Answer a request that the upstream could not: a tool result for calls, else an error."""
        text = str(exc)
        if call is not None and admission is not None:
            self.gate.finished(call, admission, is_error=True, error=text.splitlines()[0])
        if client_id is None:
            return
        if method == "tools/call":
            await self.send_client(self.tool_error(client_id, text))
        else:
            await self.send_client(jsonrpc.error(client_id, jsonrpc.UPSTREAM_ERROR, text))

    # ------------------------------------------------------------------ to the upstreams

    async def send_upstream(self, up: Upstream, frame: bytes | dict[str, Any]) -> None:
        """A notification or response: nobody to answer an error to, so a failure is logged."""
        if not up.alive:
            log.info("dropped a message for %s, which is not running", up.name)
            return
        try:
            await up.send(frame)
        except UpstreamError as exc:
            log.warning("%s", str(exc).splitlines()[0])

    async def forward(
        self,
        up: Upstream,
        frame: bytes | dict[str, Any] | None,
        msg: dict[str, Any],
        *,
        upstream_id: Any = None,
        call: ToolCall | None = None,
        admission: Admission | None = None,
        on_response: ResponseHook | None = None,
    ) -> None:
        """Send a client request upstream and remember it until its answer (or failure) comes."""
        client_id = msg["id"]
        key = client_id if upstream_id is None else upstream_id
        try:
            await self.ensure_running(up, replay=msg["method"] != "initialize")
            self.pending[up][key] = Pending(
                client_id, msg["method"], time.monotonic() + up.spec.timeout, call, admission, on_response
            )
            await up.send(frame if frame is not None else msg)
        except UpstreamError as exc:
            self.pending[up].pop(key, None)
            await self.fail(client_id, msg["method"], exc, call, admission)

    async def ensure_running(self, up: Upstream, *, replay: bool) -> None:
        """Start a stopped upstream; replay the session's handshake so it can serve the client."""
        if up.alive:
            return
        async with self._restart_locks[up]:
            if up.alive:
                return
            assert self._tg is not None
            await up.start(self._tg)
            if replay and self.session.initialize is not None:
                await self._replay_handshake(up)

    async def _replay_handshake(self, up: Upstream) -> None:
        init = self.session.initialize
        assert init is not None
        log.info("replaying the client's handshake into restarted upstream %s", up.name)
        answer = await self.request_upstream(up, "initialize", init.get("params"), timeout=up.spec.startup_timeout)
        if "error" in answer:
            raise up.failure(UpstreamStartError, f"upstream {up.spec.label} refused initialize: {answer['error']}")
        await up.send(jsonrpc.notification("notifications/initialized"))
        if self.session.log_level is not None:
            await self.request_upstream(up, "logging/setLevel", self.session.log_level, timeout=up.spec.timeout)
        for uri in sorted(self.session.subscriptions):
            await self.request_upstream(up, "resources/subscribe", {"uri": uri}, timeout=up.spec.timeout)

    async def request_upstream(
        self, up: Upstream, method: str, params: dict[str, Any] | None, *, timeout: float
    ) -> dict[str, Any]:
        """signoff's own request to an upstream; returns the whole response (result or error)."""
        key = internal_id()
        done = anyio.Event()
        box: dict[str, Any] = {}

        async def on_response(answer: dict[str, Any]) -> None:
            box.update(answer)
            done.set()

        self.pending[up][key] = Pending(None, method, time.monotonic() + timeout, on_response=on_response)
        try:
            await up.send(jsonrpc.request(key, method, params))
            await done.wait()
        finally:
            self.pending[up].pop(key, None)
        return box

    # ------------------------------------------------------------------ what the upstreams offer

    def capture_tools(self, up: Upstream, client_id: Any) -> ResponseHook:
        """Learn tool annotations from a tools/list answer, then pass it on unchanged."""

        async def hook(answer: dict[str, Any]) -> None:
            self.learn_tools(up, answer)
            await self.send_client(answer if answer.get("id") == client_id else {**answer, "id": client_id})

        return hook

    def learn_tools(self, up: Upstream, answer: dict[str, Any]) -> None:
        tools = (answer.get("result") or {}).get("tools")
        if isinstance(tools, list):
            known, schemas = self.tools[up.name], self.schemas[up.name]
            for tool in tools:
                if isinstance(tool, dict) and isinstance(tool.get("name"), str):
                    annotations = tool.get("annotations")
                    known[tool["name"]] = annotations if isinstance(annotations, dict) else {}
                    if isinstance(tool.get("inputSchema"), dict):
                        schemas[tool["name"]] = tool["inputSchema"]

    def prefetch_tools(self) -> None:
        """List tools once after the handshake, so policies can use annotations from the first call."""
        if self._tg is None:
            return
        for up in self.upstreams:
            if up.alive and not self.tools[up.name]:
                self._tg.start_soon(self._prefetch, up)

    async def _prefetch(self, up: Upstream) -> None:
        try:
            answer = await self.request_upstream(up, "tools/list", None, timeout=up.spec.timeout)
        except UpstreamError:
            return
        self.learn_tools(up, answer)
