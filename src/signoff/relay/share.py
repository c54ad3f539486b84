"""One upstream process shared by many HTTP sessions (`share: shared`, or `auto` when it fits).

Booting a server per session costs 0.4 s (an SDK server) to seconds (`npx`) and ~70 MB; a
server that keeps no per-client state can serve every session from one process started at
launch. The hub performs the handshake once, as a client with no back channel (no sampling,
elicitation or roots), and gives each session a `Port`, an `Upstream` its relay drives as usual:

- request ids and progress tokens are prefixed per session, so sessions never see each other's
  answers or progress;
- `initialize` is answered from the hub's handshake, `notifications/initialized` is dropped;
- `logging/setLevel` is kept per session (the upstream is asked for the lowest level any session
  wants; each session only gets messages at or above its own, and none before it sets a level:
  the server's logs are server-wide and may describe other sessions' calls);
- `resources/subscribe` is counted per URI: `resources/updated` goes to subscribed sessions only;
- list_changed notifications go to every session; server→client requests are refused (the hub
  declared no capability that allows them; `ping` is answered).

The rule for `auto`: a session shares when its client declares none of sampling, elicitation or
roots (which need requests routed back to one client) and asks for the protocol revision the hub
negotiated with; any other session gets its own upstream, as with `share: session`.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any

import anyio
import anyio.abc

from signoff import __version__
from signoff.errors import UpstreamCrashed, UpstreamError, UpstreamStartError
from signoff.relay import jsonrpc
from signoff.relay.eras import HANDSHAKE_VERSIONS
from signoff.relay.upstream import ServerSpec, Upstream, make_upstream

log = logging.getLogger("signoff.share")

BACK_CHANNEL = ("sampling", "elicitation", "roots")
LEVELS = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")
SHARE_MODES = ("auto", "session", "shared")


def _level(value: Any) -> int:
    return LEVELS.index(value) if value in LEVELS else 0


class Hub:
    """The shared upstream of one server and the sessions attached to it."""

    def __init__(self, spec: ServerSpec):
        self.spec = spec
        self.up = make_upstream(spec)
        self.up.on_frame = self._from_upstream
        self.up.on_exit = self._exited
        self.ports: dict[str, Port] = {}
        self.routes: dict[str, tuple[Port, Any, str | None]] = {}
        """Upstream request id → (port, the session's id, the upstream progress token)."""
        self.tokens: dict[str, tuple[Port, Any]] = {}
        self.subscribers: dict[str, set[Port]] = {}
        self.init_result: dict[str, Any] | None = None
        self.error: UpstreamError | None = None
        self.ready = anyio.Event()
        self._upstream_level: int | None = None
        self.seq = itertools.count(1)
        self._lock = anyio.Lock()
        self._tg: anyio.abc.TaskGroup | None = None
        self._own: dict[str, tuple[anyio.Event, dict[str, Any]]] = {}

    @property
    def version(self) -> str | None:
        return (self.init_result or {}).get("protocolVersion")

    def fits(self, initialize: dict[str, Any]) -> bool:
        """`share: auto`: may this client's session use the shared upstream?"""
        params = initialize.get("params") or {}
        caps = params.get("capabilities") or {}
        if not isinstance(caps, dict) or any(caps.get(name) is not None for name in BACK_CHANNEL):
            return False
        return self.init_result is not None and params.get("protocolVersion") in (HANDSHAKE_VERSIONS[-1], self.version)

    async def launch(
        self, tg: anyio.abc.TaskGroup, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Start at launch: `started` once the process runs (it boots while signoff loads its
        policy), `ready` once the handshake is done or failed; sessions wait on `ready`."""
        self._tg = tg
        try:
            async with self._lock:
                try:
                    await self.up.start(tg)
                finally:
                    task_status.started()
                await self._handshake()
        except UpstreamError as exc:
            self.error = exc
            log.error("shared upstream %s did not start: %s", self.spec.name, str(exc).splitlines()[0])
        finally:
            self.ready.set()

    async def ensure_started(self) -> None:
        async with self._lock:
            if self.up.alive and self.init_result is not None:
                return
            assert self._tg is not None
            if not self.up.alive:
                await self.up.start(self._tg)
            await self._handshake()

    async def _handshake(self) -> None:
        params = {
            "protocolVersion": HANDSHAKE_VERSIONS[-1],
            "capabilities": {},
            "clientInfo": {"name": "signoff (shared)", "version": __version__},
        }
        with anyio.fail_after(self.spec.startup_timeout):
            answer = await self._request("initialize", params)
        if not isinstance(answer.get("result"), dict):
            await self.up.stop()
            raise self.up.failure(UpstreamStartError, f"upstream {self.spec.label} refused initialize: {answer.get('error')}")
        self.init_result = answer["result"]
        self._upstream_level = None
        await self.up.send(jsonrpc.notification("notifications/initialized"))
        self.error = None
        log.info("shared upstream %s ready (%s)", self.spec.label, self.version)

    async def _request(self, method: str, params: dict[str, Any] | None) -> dict[str, Any]:
        key = f"hub-{next(self.seq)}"
        done, box = anyio.Event(), dict[str, Any]()
        self._own[key] = (done, box)
        try:
            await self.up.send(jsonrpc.request(key, method, params))
            await done.wait()
        finally:
            self._own.pop(key, None)
        return box

    async def set_level(self) -> None:
        """Ask the upstream for the lowest level any session wants."""
        wanted = [p.level for p in self.ports.values() if p.level is not None]
        lowest = min(wanted) if wanted else None
        if lowest is not None and lowest != self._upstream_level and self.up.alive:
            self._upstream_level = lowest
            await self.up.send(jsonrpc.request(f"hub-{next(self.seq)}", "logging/setLevel", {"level": LEVELS[lowest]}))

    # ------------------------------------------------------------------ upstream → sessions

    async def _from_upstream(self, up: Upstream, raw: bytes | None, msg: dict[str, Any]) -> None:
        kind = jsonrpc.kind(msg)
        if kind == jsonrpc.RESPONSE:
            own = self._own.get(msg["id"]) if isinstance(msg["id"], str) else None
            if own is not None:
                own[1].update(msg)
                own[0].set()
                return
            route = self.routes.pop(msg["id"], None) if isinstance(msg["id"], str) else None
            if route is not None:
                port, original, token = route
                port.out.pop(original, None)
                self.tokens.pop(token or "", None)
                await port.deliver({**msg, "id": original})
            return
        if kind == jsonrpc.REQUEST:
            if msg["method"] == "ping":
                await self.up.send(jsonrpc.result(msg["id"], {}))
            else:
                await self.up.send(
                    jsonrpc.error(
                        msg["id"], jsonrpc.METHOD_NOT_FOUND, "signoff shares this server between sessions: no client can be asked"
                    )
                )
            return
        if kind != jsonrpc.NOTIFICATION:
            return
        method, params = msg["method"], msg.get("params") or {}
        if method == "notifications/progress":
            token = params.get("progressToken")
            owner = self.tokens.get(token) if isinstance(token, str) else None
            if owner is not None:
                await owner[0].deliver({**msg, "params": {**params, "progressToken": owner[1]}})
        elif method == "notifications/message":
            level = _level(params.get("level"))
            for port in list(self.ports.values()):
                # server-wide logs may describe another session's calls: only sessions that asked
                # for logs (logging/setLevel) get them, at or above their own level
                if port.level is not None and level >= port.level:
                    await port.deliver(msg)
        elif method == "notifications/resources/updated":
            for port in list(self.subscribers.get(str(params.get("uri")), ())):
                await port.deliver(msg)
        elif method != "notifications/cancelled":  # list_changed and anything new: everyone
            for port in list(self.ports.values()):
                await port.deliver(msg)

    async def _exited(self, up: Upstream, error: UpstreamError) -> None:
        self.init_result = None
        self.routes.clear()
        self.tokens.clear()
        self.subscribers.clear()
        for own in self._own.values():
            own[1].update(jsonrpc.error(None, jsonrpc.UPSTREAM_ERROR, str(error)))
            own[0].set()
        for port in list(self.ports.values()):
            port.out.clear()
            await port.lost(error)


class Port(Upstream):
    """One session's view of a hub: an `Upstream` the session's relay drives as if it were its own."""

    def __init__(self, hub: Hub, session: str):
        super().__init__(hub.spec)
        self.hub = hub
        self.session = session
        self.prefix = f"s{session}:"
        self.level: int | None = None
        self.out: dict[Any, str] = {}
        """The session's in-flight request ids → their ids upstream."""
        self.subscriptions: set[str] = set()

    async def start(self, tg: anyio.abc.TaskGroup) -> None:
        await self.hub.ready.wait()
        await self.hub.ensure_started()
        self.generation += 1
        self.alive = True
        self.hub.ports[self.session] = self

    async def deliver(self, msg: dict[str, Any]) -> None:
        if self.alive:
            await self._deliver(None, msg)

    async def lost(self, error: UpstreamError) -> None:
        await self._exited(self.generation, error)

    async def send(self, frame: bytes | dict[str, Any]) -> None:
        if not self.alive or not self.hub.up.alive:
            raise self.failure(UpstreamCrashed, f"upstream {self.spec.label} is not running")
        msg = jsonrpc.decode(frame) if isinstance(frame, bytes) else frame
        assert isinstance(msg, dict)
        kind = jsonrpc.kind(msg)
        if kind == jsonrpc.REQUEST:
            await self._request(msg)
        elif kind == jsonrpc.NOTIFICATION:
            method = msg["method"]
            if method == "notifications/cancelled":
                params = msg.get("params") or {}
                inner = self.out.get(params.get("requestId"))
                if inner is not None:
                    await self.hub.up.send({**msg, "params": {**params, "requestId": inner}})
            elif method != "notifications/initialized":
                await self.hub.up.send(msg)
        # responses: the hub declared no back channel, so nothing upstream awaits one

    async def _request(self, msg: dict[str, Any]) -> None:
        method, params = msg["method"], msg.get("params")
        if method == "initialize":
            await self.deliver(jsonrpc.result(msg["id"], dict(self.hub.init_result or {})))
            return
        if method == "logging/setLevel" and isinstance(params, dict):
            self.level = _level(params.get("level"))
            await self.hub.set_level()
            await self.deliver(jsonrpc.result(msg["id"], {}))
            return
        if method in ("resources/subscribe", "resources/unsubscribe") and isinstance(params, dict):
            uri = str(params.get("uri"))
            others = self.hub.subscribers.setdefault(uri, set())
            first, was = not others, self in others
            (others.add if method == "resources/subscribe" else others.discard)(self)
            if (method == "resources/subscribe" and first) or (method == "resources/unsubscribe" and was and not others):
                await self._forward(msg)  # the upstream's answer comes back to this session
                return
            await self.deliver(jsonrpc.result(msg["id"], {}))
            return
        await self._forward(msg)

    async def _forward(self, msg: dict[str, Any]) -> None:
        inner = f"{self.prefix}{next(self.hub.seq)}"
        params: Any = msg.get("params")
        meta = params.get("_meta") if isinstance(params, dict) else None
        token = None
        if isinstance(meta, dict) and "progressToken" in meta:
            token = f"{self.prefix}{next(self.hub.seq)}"
            self.hub.tokens[token] = (self, meta["progressToken"])
            msg = {**msg, "params": {**params, "_meta": {**meta, "progressToken": token}}}
        self.hub.routes[inner] = (self, msg["id"], token)
        self.out[msg["id"]] = inner
        await self.hub.up.send({**msg, "id": inner})

    async def stop(self) -> None:
        """Detach the session: cancel what it left in flight, drop its subscriptions and level."""
        if not self.alive:
            return
        self.alive = False
        self.hub.ports.pop(self.session, None)
        with anyio.CancelScope(shield=True):
            for inner in list(self.out.values()):
                self.hub.routes.pop(inner, None)
                if self.hub.up.alive:
                    try:
                        await self.hub.up.send(
                            jsonrpc.notification("notifications/cancelled", {"requestId": inner, "reason": "session ended"})
                        )
                    except UpstreamError:
                        break
            self.out.clear()
            for token in [t for t, (p, _) in self.hub.tokens.items() if p is self]:
                del self.hub.tokens[token]
            for uri, ports in list(self.hub.subscribers.items()):
                if self in ports:
                    ports.discard(self)
                    if not ports and self.hub.up.alive:
                        del self.hub.subscribers[uri]
                        try:
                            await self.hub.up.send(
                                jsonrpc.request(f"hub-{next(self.hub.seq)}", "resources/unsubscribe", {"uri": uri})
                            )
                        except UpstreamError:
                            pass
