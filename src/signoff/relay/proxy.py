"""The relay between one MCP client session and the upstream server(s) it wraps.

With one upstream, signoff is a frame relay: every message is decoded once, and forwarded as
signoff's canonical re-serialisation of it (never the client's original bytes, see jsonrpc.py).
The only message it acts on is `tools/call`, which goes through the gate (policy → broker) first;
a tool call in any other shape (see shapes.py) is refused. Server→client requests (sampling,
elicitation, roots), notifications (progress, logging, list_changed, cancellation) and everything signoff does
not know pass on untouched, in both directions.

With several upstreams, `aggregate.Aggregator` takes over the methods that need merging or
routing (namespaced `server.tool` names, merged lists, remapped ids).

This module is also the only place that turns a refusal or an upstream failure into an MCP
answer: `isError` tool results for calls, JSON-RPC errors for everything else.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc

from signoff.relay import eras
from signoff.relay import jsonrpc
from signoff.relay import rounds
from signoff.relay.shapes import imitates_tools_call, odd_tool_name
from signoff.relay.failures import FailureHandling
from signoff.relay.eras import EraBridge
from signoff.errors import UpstreamError, UpstreamStartError
from signoff.gate import Admission, Gate, OpenGate
from signoff.model import ToolCall
from signoff.relay.rounds import Round
from signoff.relay.upstream import ServerSpec, Upstream, make_upstream

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


class Proxy(FailureHandling):
    """One client session relayed to its upstreams."""

    def __init__(self, specs: list[ServerSpec], send: SendFn, gate: Gate | None = None, *, namespaced: bool | None = None,
                 upstreams: list[Upstream] | None = None):
        if not specs:
            raise ValueError("at least one upstream is required")
        self.upstreams = upstreams or [make_upstream(spec) for spec in specs]
        """One per spec, in order; HTTP serving passes its own (e.g. ports on a shared upstream)."""
        self.by_name = {up.name: up for up in self.upstreams}
        self.send_client = send
        self.gate: Gate = gate or OpenGate()
        self.namespaced = len(specs) > 1 if namespaced is None else namespaced
        self.session = SessionState()
        self.pending: dict[Upstream, dict[Any, Pending]] = {up: {} for up in self.upstreams}
        self.held: dict[Any, anyio.CancelScope] = {}
        self.tools: dict[str, dict[str, dict[str, Any]]] = {up.name: {} for up in self.upstreams}
        """Per upstream, per tool: annotations as last listed (the policy may match on them)."""
        self.schemas: dict[str, dict[str, dict[str, Any]]] = {up.name: {} for up in self.upstreams}
        """Per upstream, per tool: the input schema as last listed (to check edited arguments)."""
        self._restart_locks = {up: anyio.Lock() for up in self.upstreams}
        self._own_requests: dict[str, tuple[anyio.Event, dict[str, Any]]] = {}
        self.rounds: dict[str, Round] = {}
        """Approval dialogs sent to stateless clients as input rounds, by requestState."""
        """signoff's own requests to the client (approval dialogs), by id, awaiting answers."""
        self._tg: anyio.abc.TaskGroup | None = None
        self.aggregator = None
        self.bridge: EraBridge | None = None
        if self.namespaced:
            from signoff.relay.aggregate import Aggregator

            self.aggregator = Aggregator(self)
        else:
            self.bridge = EraBridge(self)
        for up in self.upstreams:
            up.on_frame = self._from_upstream
            up.on_exit = self._upstream_exited

    # ------------------------------------------------------------------ lifecycle

    async def start(self, tg: anyio.abc.TaskGroup) -> None:
        """Start every upstream now (so they boot while the client connects) and the watchdog."""
        self._tg = tg
        for up in self.upstreams:
            try:
                await up.start(tg)
            except UpstreamError as exc:
                log.error("%s", exc)
        tg.start_soon(self._watchdog)

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

    # ------------------------------------------------------------------ client → upstream

    async def from_client(self, raw: bytes | None, msg: dict[str, Any]) -> None:
        """Handle one decoded frame from the client. Never raises for a bad message.

        `raw` is the canonical encoding of `msg` by `jsonrpc.decode_client` (never the client's
        own bytes), or None for a message that another parser read (HTTP, the SDK, a batch
        element): such a message gets the value checks here, and is re-encoded when forwarded."""
        if raw is None:
            try:
                jsonrpc.check_values(msg)
            except jsonrpc.FrameError as exc:
                log.warning("client message refused (%s): %.200s", exc, msg)
                answer = jsonrpc.error(jsonrpc.request_id_of(msg), jsonrpc.INVALID_REQUEST, f"Invalid Request: {exc}")
                await self.send_client(answer)
                return
        k = jsonrpc.kind(msg)
        if k is None:
            log.warning("client sent an invalid JSON-RPC message: %.200s", msg)
            answer = jsonrpc.error(jsonrpc.request_id_of(msg), jsonrpc.INVALID_REQUEST, "Invalid Request")
            await self.send_client(answer)
            return
        if k != jsonrpc.RESPONSE and (
            (k == jsonrpc.NOTIFICATION and msg["method"] == "tools/call") or imitates_tools_call(msg["method"])
        ):
            await self._refuse_odd_call(msg, k)
            return
        if k == jsonrpc.RESPONSE:
            await self._client_response(raw, msg)
        elif k == jsonrpc.NOTIFICATION:
            await self._client_notification(raw, msg)
        else:
            await self._client_request(raw, msg)

    async def _client_request(self, raw: bytes | None, msg: dict[str, Any]) -> None:
        method = msg["method"]
        if msg["id"] in self.held or any(msg["id"] in waiting for waiting in self.pending.values()):
            # a second request under an in-flight id would take over the first one's answer and record
            log.warning("client reused request id %r while it was in flight", msg["id"])
            await self.send_client(jsonrpc.error(msg["id"], jsonrpc.INVALID_REQUEST, "Invalid Request: id already in use"))
            return
        if self.bridge is not None:
            env = eras.envelope(msg)
            if env is not None:
                caps = env.get(eras.PREFIX + "clientCapabilities")
                self.session.modern_caps = caps if isinstance(caps, dict) else {}
            if env is not None and method != "server/discover":
                try:
                    if await self.bridge.request(raw, msg, env):
                        return
                except UpstreamError as exc:
                    await self._fail(msg["id"], method, exc, None, None)
                    return
                if self.bridge.bridging:
                    msg, raw = self.bridge.strip(msg), None
        if method == "initialize":
            self._remember_initialize(msg)
        elif method == "logging/setLevel":
            self.session.log_level = msg.get("params")
        elif method == "resources/subscribe":
            self.session.subscriptions.add(str((msg.get("params") or {}).get("uri")))
        elif method == "resources/unsubscribe":
            self.session.subscriptions.discard(str((msg.get("params") or {}).get("uri")))
        if method == "tools/call":
            await self._tools_call(raw, msg)
        elif self.aggregator is not None:
            await self.aggregator.request(raw, msg)
        else:
            up = self.upstreams[0]
            hook = self._capture_tools(up, msg["id"]) if method == "tools/list" else None
            await self.forward(up, raw, msg, on_response=hook)

    async def _client_notification(self, raw: bytes | None, msg: dict[str, Any]) -> None:
        method = msg["method"]
        if method == "notifications/initialized":
            self.session.initialized = True
            self._prefetch_tools()
        if method == "notifications/cancelled":
            request_id = (msg.get("params") or {}).get("requestId")
            scope = self.held.pop(request_id, None)
            if scope is not None:  # never reached the upstream: withdraw the held call
                scope.cancel()
                return
        if self.aggregator is not None:
            await self.aggregator.notification(raw, msg)
            return
        await self._send_upstream_quietly(self.upstreams[0], raw or msg)

    async def _client_response(self, raw: bytes | None, msg: dict[str, Any]) -> None:
        own = self._own_requests.get(msg.get("id")) if isinstance(msg.get("id"), str) else None
        if own is not None:  # an answer to signoff's own dialog: never forwarded upstream
            own[1].update(msg)
            own[0].set()
            return
        if self.aggregator is not None:
            await self.aggregator.response(raw, msg)
            return
        await self._send_upstream_quietly(self.upstreams[0], raw or msg)

    async def _send_upstream_quietly(self, up: Upstream, frame: bytes | dict[str, Any]) -> None:
        """Notifications and responses have nobody to answer an error to: log it."""
        if not up.alive:
            log.info("dropped a message for %s, which is not running", up.name)
            return
        try:
            await up.send(frame)
        except UpstreamError as exc:
            log.warning("%s", str(exc).splitlines()[0])

    def _remember_initialize(self, msg: dict[str, Any]) -> None:
        self.session.initialize = msg
        info = (msg.get("params") or {}).get("clientInfo") or {}
        self.session.client_name = str(info.get("name", "")) if isinstance(info, dict) else ""

    def client_capability(self, name: str) -> Any:
        """A capability the client declared in its handshake (None if it did not).

        A stateless client has no back channel for requests: nothing is asked of it this way."""
        if self.session.modern_caps is not None:
            return None
        init = self.session.initialize
        caps = ((init or {}).get("params") or {}).get("capabilities")
        return caps.get(name) if isinstance(caps, dict) else None

    async def ask_client(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """Send signoff's own request to the client and wait for its answer (result or error).

        Cancelling the waiting task withdraws the request from the client.
        """
        request_id = internal_id()
        done, box = anyio.Event(), {}
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

    # ------------------------------------------------------------------ tools/call

    async def _refuse_odd_call(self, msg: dict[str, Any], k: str, why: str | None = None) -> None:
        """A tool call in a shape the policy cannot judge as the server will run it: never runs."""
        method = msg["method"]
        if why is None:
            why = ("a tools/call notification (no id) cannot be held or answered" if k == jsonrpc.NOTIFICATION
                   else f"method {method[:60]!r} imitates tools/call")
        params = msg.get("params") if isinstance(msg.get("params"), dict) else {}
        name = params.get("name") if isinstance(params.get("name"), str) else "?"
        target = self.resolve_tool(name) or (self.upstreams[0], name)
        arguments = params.get("arguments")
        call = ToolCall(server=target[0].name, tool=target[1], session=self.session.id, client=self.session.client_name,
                        arguments=arguments if isinstance(arguments, dict) else {})
        log.warning("refused %s: %s", call.qualified, why)
        self.gate.refused(call, f"refused by signoff: {why}")
        if k == jsonrpc.REQUEST and method != "tools/call":
            await self.send_client(jsonrpc.error(msg["id"], jsonrpc.METHOD_NOT_FOUND, f"Method not found: {why}"))
        elif k == jsonrpc.REQUEST:
            await self.send_client(jsonrpc.error(msg["id"], jsonrpc.INVALID_PARAMS, f"Invalid params: {why}"))

    def resolve_tool(self, name: str) -> tuple[Upstream, str] | None:
        """Map the name the client used to (upstream, the upstream's own tool name)."""
        if not self.namespaced:
            return self.upstreams[0], name
        server, dot, tool = name.partition(".")
        if dot and server in self.by_name:
            return self.by_name[server], tool
        return None

    async def _tools_call(self, raw: bytes | None, msg: dict[str, Any]) -> None:
        request_id = msg["id"]
        params = msg.get("params")
        if not isinstance(params, dict) or not isinstance(params.get("name"), str):
            await self.send_client(jsonrpc.error(request_id, jsonrpc.INVALID_PARAMS, "tools/call needs params.name"))
            return
        target = self.resolve_tool(params["name"])
        if target is None:
            await self.send_client(
                jsonrpc.error(request_id, jsonrpc.INVALID_PARAMS, f"Unknown tool: {params['name']}")
            )
            return
        up, tool = target
        arguments = params.get("arguments")
        why = odd_tool_name(tool, self.tools[up.name]) or (
            None if arguments is None or isinstance(arguments, dict) else "tools/call arguments must be an object")
        if why is not None:
            await self._refuse_odd_call(msg, jsonrpc.REQUEST, why)
            return
        presented = rounds.take(self, params)
        call = ToolCall(
            server=up.name,
            tool=tool,
            arguments=arguments if isinstance(arguments, dict) else {},
            annotations=self.tools[up.name].get(tool, {}),
            session=self.session.id,
            client=self.session.client_name,
            input_schema=self.schemas[up.name].get(tool),
        )
        if presented is not None:  # a stateless client answering an approval dialog
            assert self._tg is not None
            self._tg.start_soon(rounds.resume, self, up, msg, call, presented)
            return
        admission = self.gate.check(call)
        if not admission.hold:
            await self._admitted(up, raw, msg, call, admission)
        else:
            assert self._tg is not None
            self.held[msg["id"]] = scope = anyio.CancelScope()  # now: a cancel or a reused id may follow at once
            self._tg.start_soon(self._hold, up, raw, msg, call, admission, scope)

    async def _hold(self, up: Upstream, raw: bytes | None, msg: dict[str, Any], call: ToolCall, pending: Admission,
                    scope: anyio.CancelScope) -> None:
        request_id = msg["id"]
        token = ((msg.get("params") or {}).get("_meta") or {}).get("progressToken")

        async def progress(waited: float, message: str) -> None:
            if token is not None:
                params = {"progressToken": token, "progress": round(waited, 1), "message": message}
                await self.send_client(jsonrpc.notification("notifications/progress", params))

        link = rounds.ClientLink(self, msg, call)
        with scope:
            try:
                admission = await self.gate.hold(call, pending, progress, link)
            finally:
                self.held.pop(request_id, None)
        if scope.cancelled_caught:
            log.info("call %s withdrawn by the client while held", call.qualified)
            if link.round is not None:  # a retry presenting the round must not wait forever
                link.round.finish(Admission(False, "This tool call was withdrawn: the client cancelled it while held."))
            return  # a cancelled request gets no answer (MCP cancellation semantics)
        if link.round is not None:  # answered with an input round: the client's retry finishes it
            link.round.finish(admission)
            return
        await self._admitted(up, raw, msg, call, admission)

    async def _admitted(
        self, up: Upstream, raw: bytes | None, msg: dict[str, Any], call: ToolCall, admission: Admission
    ) -> None:
        request_id = msg["id"]
        if not admission.allowed:
            await self.send_client(self.tool_error(request_id, admission.text))
            return
        outgoing: bytes | dict[str, Any] | None = raw
        if admission.arguments is not None or self.namespaced or raw is None:
            params = dict(msg["params"])
            params["name"] = call.tool
            if admission.arguments is not None:
                params["arguments"] = dict(admission.arguments)
            outgoing = {**msg, "params": params}
        await self.forward(up, outgoing, msg, call=call, admission=admission)

    # ------------------------------------------------------------------ forwarding

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
            await self._fail(client_id, msg["method"], exc, call, admission)

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

    # ------------------------------------------------------------------ upstream → client

    async def _from_upstream(self, up: Upstream, raw: bytes | None, msg: dict[str, Any]) -> None:
        k = jsonrpc.kind(msg)
        if k == jsonrpc.RESPONSE:
            pending = self.pending[up].pop(msg["id"], None)
            if pending is None:
                # a late answer (already settled by the watchdog or a crash) or a forged one, e.g. a
                # fake result for a call that is still held: never the client's to see
                log.warning("%s answered request id %.80r, which is not waiting for it; dropped", up.name, msg["id"])
                return
            if self.bridge is not None and self.bridge.bridging:
                if pending.client_id is not None:
                    msg, raw = self.bridge.complete(pending.method, msg), None
                elif pending.on_response is None and self.bridge.detached_answer(up, msg["id"], msg):
                    return
            if pending.on_response is not None:
                await pending.on_response(msg)
            elif msg["id"] == pending.client_id:
                await self.send_client(raw or msg)
            else:
                await self.send_client({**msg, "id": pending.client_id})
            if pending.call is not None and pending.admission is not None:
                # after the answer is on its way: recording it must not delay the client
                result = msg.get("result")
                is_error = "error" in msg or (isinstance(result, dict) and bool(result.get("isError")))
                error = str(msg["error"].get("message")) if isinstance(msg.get("error"), dict) else None
                self.gate.finished(pending.call, pending.admission, is_error=is_error, error=error)
        elif k is None:
            log.warning("%s sent an invalid JSON-RPC message: %.200s", up.name, msg)
            if "id" in msg:
                await self._send_upstream_quietly(up, jsonrpc.error(msg["id"], jsonrpc.INVALID_REQUEST, "Invalid Request"))
        elif self.aggregator is not None:
            await self.aggregator.from_upstream(up, raw, msg, k)
        elif k == jsonrpc.REQUEST and self.bridge is not None and self.bridge.bridging:
            await self.bridge.server_request(up, msg)
        else:
            await self.send_client(raw or msg)

    def _capture_tools(self, up: Upstream, client_id: Any) -> ResponseHook:
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

    def _prefetch_tools(self) -> None:
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
