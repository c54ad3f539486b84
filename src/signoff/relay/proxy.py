"""The relay between one MCP client session and the upstream server(s) it wraps.

Every message is decoded once, and forwarded as signoff's canonical re-serialisation of it (never
the client's original bytes, see jsonrpc.py). The only message signoff acts on is `tools/call`,
which goes through the gate (policy → broker) first; a tool call in any other shape (see
shapes.py) is refused. Server→client requests (sampling, elicitation, roots), notifications
(progress, logging, list_changed, cancellation) and everything signoff does not know pass on
untouched, in both directions.

`Proxy` is one session: a `SessionContext` (context.py) and the stack of layers (layers.py) chosen
here, once, when the session is made:

    one upstream:       EraDetect (-> EraBridge) -> ToolCallGate -> Passthrough
    several upstreams:  ToolCallGate -> Aggregate

Its front door (`from_client`) checks each client frame before any layer reads it: values and
kind, tool calls in odd shapes (handed straight to the tools/call layer, before any translation),
request ids already in flight, answers to signoff's own requests. Upstream frames are matched to
the request they answer, then go up the stack from its bottom.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

import anyio.abc

from signoff.gate import Gate
from signoff.relay import failures, jsonrpc
from signoff.relay.aggregate import Aggregate
from signoff.relay.context import SendFn, SessionContext
from signoff.relay.eras import EraDetect
from signoff.relay.layers import Frame, Layer, Stack
from signoff.relay.passthrough import Passthrough, Route
from signoff.relay.shapes import imitates_tools_call
from signoff.relay.toolcall import ToolCallGate
from signoff.relay.upstream import ServerSpec, Upstream, make_upstream

log = logging.getLogger("signoff.proxy")


class Proxy(SessionContext):
    """One client session relayed to its upstreams through its stack of layers."""

    def __init__(
        self,
        specs: list[ServerSpec],
        send: SendFn,
        gate: Gate | None = None,
        *,
        namespaced: bool | None = None,
        upstreams: list[Upstream] | None = None,
    ):
        if not specs:
            raise ValueError("at least one upstream is required")
        super().__init__(upstreams or [make_upstream(spec) for spec in specs], send, gate)
        several = len(specs) > 1 if namespaced is None else namespaced
        router: Route = Aggregate(self) if several else Passthrough(self)
        self.calls = ToolCallGate(self, router)
        """The tools/call layer: every call, in every shape, is decided there."""
        layers: list[Layer] = [self.calls, router] if several else [EraDetect(self), self.calls, router]
        self.stack = Stack(self, layers)
        for up in self.upstreams:
            up.on_frame = self._from_upstream
            up.on_exit = partial(failures.upstream_exited, self)

    async def start(self, tg: anyio.abc.TaskGroup) -> None:
        """Start every upstream now (so they boot while the client connects) and the watchdog."""
        await super().start(tg)
        tg.start_soon(failures.watchdog, self)

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
                await self.refuse(jsonrpc.request_id_of(msg), jsonrpc.INVALID_REQUEST, f"Invalid Request: {exc}")
                return
        k = jsonrpc.kind(msg)
        if k is None:
            log.warning("client sent an invalid JSON-RPC message: %.200s", msg)
            await self.refuse(jsonrpc.request_id_of(msg), jsonrpc.INVALID_REQUEST, "Invalid Request")
            return
        if k != jsonrpc.RESPONSE and (
            (k == jsonrpc.NOTIFICATION and msg["method"] == "tools/call") or imitates_tools_call(msg["method"])
        ):
            await self.calls.refuse_shape(msg, k)
            return
        if k == jsonrpc.RESPONSE and self.answer_own(msg):  # an answer to signoff's own dialog
            return
        if k == jsonrpc.REQUEST and self.in_flight(msg["id"]):
            # a second request under an in-flight id would take over the first one's answer and record
            log.warning("client reused request id %r while it was in flight", msg["id"])
            await self.refuse(msg["id"], jsonrpc.INVALID_REQUEST, "Invalid Request: id already in use")
            return
        await self.stack.top.handle_client(Frame(msg, raw, k))

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
            await self.stack.bottom.handle_upstream(Frame(msg, raw, k, up, pending))
        elif k is None:
            log.warning("%s sent an invalid JSON-RPC message: %.200s", up.name, msg)
            if "id" in msg:
                await self.send_upstream(up, jsonrpc.error(msg["id"], jsonrpc.INVALID_REQUEST, "Invalid Request"))
        else:
            await self.stack.bottom.handle_upstream(Frame(msg, raw, k, up))
