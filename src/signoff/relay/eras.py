"""The era bridge: a stateless 2026-07-28 client in front of a handshake-era server.

A 2026-07-28 client sends no `initialize`; every request carries an envelope in `_meta`
(`io.modelcontextprotocol/protocolVersion`, `clientInfo`, `clientCapabilities`, `logLevel`), and
the server cannot send it requests: it answers `InputRequiredResult` instead and the client
retries with `inputResponses` and the opaque `requestState`.

When such a client meets a server of the handshake revisions (2024-11-05 … 2025-11-25), signoff
translates: it performs the handshake itself with the client's envelope, strips the envelope
from forwarded requests, adds the fields 2026-07-28 results must carry, and turns the server's
elicitation/sampling/roots requests into `InputRequiredResult` rounds. If the server answers
`server/discover` itself, it speaks the new revision and frames pass through untouched.

A client's own `server/discover` probe is always relayed untouched, so a client that can fall
back to the handshake negotiates through signoff exactly as it would directly.

As layers (layers.py), in a session with one upstream: `EraDetect` sits on top until a stateless
client's first request; it then asks the upstream once and replaces itself with `EraBridge` (the
eras differ) or `Envelopes` (both speak 2026-07-28: frames pass untouched). All three keep the
client's envelope capabilities, which decide the shape of signoff's own answers.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

from signoff.errors import UpstreamError, UpstreamStartError
from signoff.relay import jsonrpc
from signoff.relay.context import SessionContext
from signoff.relay.layers import Frame, Layer
from signoff.relay.upstream import Upstream

log = logging.getLogger("signoff.eras")

PREFIX = "io.modelcontextprotocol/"
VERSION_KEY = PREFIX + "protocolVersion"
ENVELOPE_KEYS = {VERSION_KEY, PREFIX + "clientInfo", PREFIX + "clientCapabilities", PREFIX + "logLevel"}
HANDSHAKE_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
MODERN_VERSION = "2026-07-28"
KNOWN_VERSIONS = (*HANDSHAKE_VERSIONS, MODERN_VERSION)
"""Every protocol revision signoff knows, oldest first (mcp_types.version has the same list, but
importing the SDK costs over a second, which stdio serving avoids)."""
CACHEABLE = {"tools/list", "prompts/list", "resources/list", "resources/templates/list", "resources/read"}
RESUMABLE = {"tools/call", "prompts/get", "resources/read"}


def envelope(msg: dict[str, Any]) -> dict[str, Any] | None:
    """The 2026-07-28 envelope of a request, or None for a handshake-era request."""
    meta = (msg.get("params") or {}).get("_meta")
    if isinstance(meta, dict) and isinstance(meta.get(VERSION_KEY), str) and meta[VERSION_KEY] not in HANDSHAKE_VERSIONS:
        return meta
    return None


@dataclass
class Suspended:
    """A call waiting for the client's input: the upstream request and the questions it asked."""

    upstream: Upstream
    key: Any
    asked: dict[str, Any] = field(default_factory=dict)
    """input key → the upstream's server→client request id."""
    early_answer: dict[str, Any] | None = None


class Envelopes(Layer):
    """Keeps a stateless client's capabilities from its request envelopes; frames pass untouched."""

    async def handle_client(self, frame: Frame) -> None:
        env = envelope(frame.msg) if frame.kind == jsonrpc.REQUEST else None
        if env is None:
            await self.below.handle_client(frame)
            return
        caps = env.get(PREFIX + "clientCapabilities")
        self.ctx.session.modern_caps = caps if isinstance(caps, dict) else {}
        if frame.msg["method"] == "server/discover":  # the client's own probe: always untouched
            await self.below.handle_client(frame)
            return
        try:
            if await self.enveloped(frame, env):
                return
        except UpstreamError as exc:
            await self.ctx.fail(frame.msg["id"], frame.msg["method"], exc, None, None)
            return
        await self.below.handle_client(frame)

    async def enveloped(self, frame: Frame, env: dict[str, Any]) -> bool:
        """A 2026-07-28 request (not `server/discover`): translate it in place, or answer it (True)."""
        return False


class EraDetect(Envelopes):
    """Until a stateless client's first request: then asks the upstream its era, once."""

    def __init__(self, ctx: SessionContext):
        super().__init__(ctx)
        self.chosen: Envelopes | None = None

    async def enveloped(self, frame: Frame, env: dict[str, Any]) -> bool:
        if self.chosen is None:  # else: a concurrent request probed too and lost the race
            up = self.ctx.upstreams[0]
            await self.ctx.ensure_running(up, replay=False)
            answer = await self.ctx.request_upstream(up, "server/discover", {"_meta": dict(env)}, timeout=up.spec.startup_timeout)
            modern = isinstance(answer.get("result"), dict)
            log.info(
                "%s speaks %s; %s",
                up.name,
                MODERN_VERSION if modern else "the handshake revisions",
                "relaying untouched" if modern else "bridging for a 2026-07-28 client",
            )
            if self.chosen is None:
                self.chosen = Envelopes(self.ctx) if modern else EraBridge(self.ctx)
                self.replace_with(self.chosen)
        return await self.chosen.enveloped(frame, env)


class EraBridge(Envelopes):
    """Per-session translation between a 2026-07-28 client and a handshake-era upstream."""

    def __init__(self, ctx: SessionContext):
        super().__init__(ctx)
        self.init_result: dict[str, Any] = {}
        self.suspended: dict[str, Suspended] = {}

    async def enveloped(self, frame: Frame, env: dict[str, Any]) -> bool:
        msg = frame.msg
        await self._ensure_handshake(self.ctx.upstreams[0], env)
        state = (msg.get("params") or {}).get("requestState")
        if isinstance(state, str) and state in self.suspended:
            await self._resume(msg, state)
            return True
        frame.msg, frame.raw = self.strip(msg), None
        return False

    def strip(self, msg: dict[str, Any]) -> dict[str, Any]:
        """The request without the envelope a handshake-era server would reject."""
        params = dict(msg.get("params") or {})
        meta = {k: v for k, v in (params.get("_meta") or {}).items() if k not in ENVELOPE_KEYS}
        if meta:
            params["_meta"] = meta
        else:
            params.pop("_meta", None)
        return {**msg, "params": params}

    def complete(self, method: str, answer: dict[str, Any]) -> dict[str, Any]:
        """Give a handshake-era result the fields a 2026-07-28 client requires."""
        result = answer.get("result")
        if not isinstance(result, dict):
            return answer
        result = {"resultType": "complete", **result}
        if method in CACHEABLE:
            result.setdefault("ttlMs", 0)
            result.setdefault("cacheScope", "private")
        return {**answer, "result": result}

    async def _ensure_handshake(self, up: Upstream, env: dict[str, Any]) -> None:
        session = self.ctx.session
        if session.initialize is not None:
            await self.ctx.ensure_running(up, replay=True)
            return
        params = {
            "protocolVersion": HANDSHAKE_VERSIONS[-1],
            "capabilities": env.get(PREFIX + "clientCapabilities") or {},
            "clientInfo": env.get(PREFIX + "clientInfo") or {"name": "signoff-era-bridge", "version": "1"},
        }
        session.remember_initialize(jsonrpc.request("signoff-bridge-init", "initialize", params))
        await self.ctx.ensure_running(up, replay=False)
        answer = await self.ctx.request_upstream(up, "initialize", params, timeout=up.spec.startup_timeout)
        if not isinstance(answer.get("result"), dict):
            session.initialize = None
            raise up.failure(UpstreamStartError, f"upstream {up.spec.label} refused initialize: {answer.get('error')}")
        self.init_result = answer["result"]
        await up.send(jsonrpc.notification("notifications/initialized"))
        session.initialized = True

    # ------------------------------------------------------------------ upstream → client

    async def handle_upstream(self, frame: Frame) -> None:
        pending, msg = frame.pending, frame.msg
        if pending is not None:
            if pending.client_id is not None:
                frame.msg, frame.raw = self.complete(pending.method, msg), None
            elif pending.on_response is None and self._detached_answer(frame.upstream, msg["id"], msg):
                return
        elif frame.kind == jsonrpc.REQUEST:
            await self._server_request(frame.upstream, msg)
            return
        await self.above.handle_upstream(frame)

    # ------------------------------------------------------------------ InputRequiredResult rounds

    async def _server_request(self, up: Upstream | None, msg: dict[str, Any]) -> None:
        """The upstream asked the client something: suspend the call it belongs to and ask by result."""
        assert up is not None
        pending = self.ctx.pending[up]
        owner = next((k for k, p in reversed(list(pending.items())) if p.method in RESUMABLE and p.client_id is not None), None)
        if owner is None:
            log.warning("%s sent %s outside any call; a 2026-07-28 client cannot be asked", up.name, msg["method"])
            await up.send(jsonrpc.error(msg["id"], jsonrpc.METHOD_NOT_FOUND, "the client cannot take requests here"))
            return
        entry = pending[owner]
        state = "signoff-" + secrets.token_urlsafe(16)
        key = f"q{len(self.suspended) + 1}"
        self.suspended[state] = Suspended(up, owner, {key: msg["id"]})
        client_id, entry.client_id = entry.client_id, None  # detached until the client comes back
        request = {"method": msg["method"], "params": msg.get("params") or {}}
        result = {"resultType": "input_required", "inputRequests": {key: request}, "requestState": state}
        await self.ctx.send_client(jsonrpc.result(client_id, result))

    def _detached_answer(self, up: Upstream | None, key: Any, answer: dict[str, Any]) -> bool:
        """Keep an answer that came while its call waited for input; True if it was one."""
        for suspended in self.suspended.values():
            if suspended.upstream is up and suspended.key == key:
                suspended.early_answer = answer
                return True
        return False

    async def _resume(self, msg: dict[str, Any], state: str) -> None:
        suspended = self.suspended.pop(state)
        up = suspended.upstream
        responses = (msg.get("params") or {}).get("inputResponses") or {}
        if suspended.early_answer is not None:
            answer = self.complete(msg["method"], suspended.early_answer)
            await self.ctx.send_client({**answer, "id": msg["id"]})
            return
        entry = self.ctx.pending[up].get(suspended.key)
        if entry is None:
            await self.ctx.refuse(msg["id"], jsonrpc.INVALID_PARAMS, "requestState is no longer valid")
            return
        entry.client_id = msg["id"]
        for key, upstream_id in suspended.asked.items():
            if key in responses:
                await up.send(jsonrpc.result(upstream_id, responses[key]))
            else:
                await up.send(jsonrpc.error(upstream_id, jsonrpc.INVALID_PARAMS, "the client gave no answer"))
