"""The bottom of the stack: where client frames leave for an upstream.

`Route` is what every bottom layer does first: note what a restarted upstream must be told again
(the handshake, the log level, subscriptions) and, once the client finished its handshake, list the
tools so the policy sees their annotations from the first call. `Passthrough` serves a session with
one upstream: every frame goes to it, tool names are the upstream's own. (Several upstreams:
aggregate.py.)
"""

from __future__ import annotations

from signoff.relay import jsonrpc
from signoff.relay.context import SessionContext
from signoff.relay.layers import Frame, Layer
from signoff.relay.upstream import Upstream


class Route(Layer):
    """A bottom layer: keeps the session's state, then routes by kind of frame."""

    async def handle_client(self, frame: Frame) -> None:
        if frame.kind == jsonrpc.REQUEST:
            self.ctx.session.note_request(frame.msg)
            await self.request(frame)
        elif frame.kind == jsonrpc.NOTIFICATION:
            if frame.msg["method"] == "notifications/initialized":
                self.ctx.session.initialized = True
                self.ctx.prefetch_tools()
            await self.notification(frame)
        else:
            await self.response(frame)

    def route(self, name: str) -> tuple[Upstream, str] | None:
        """The upstream that serves the tool (or prompt) the client calls `name`, and its own name for it."""
        raise NotImplementedError

    async def request(self, frame: Frame) -> None:
        raise NotImplementedError

    async def notification(self, frame: Frame) -> None:
        raise NotImplementedError

    async def response(self, frame: Frame) -> None:
        raise NotImplementedError


class Passthrough(Route):
    """One upstream: every frame goes to it as it is."""

    def __init__(self, ctx: SessionContext):
        super().__init__(ctx)
        self.up = ctx.upstreams[0]

    def route(self, name: str) -> tuple[Upstream, str] | None:
        return self.up, name

    async def request(self, frame: Frame) -> None:
        msg = frame.msg
        hook = self.ctx.capture_tools(self.up, msg["id"]) if msg["method"] == "tools/list" else None
        await self.ctx.forward(self.up, frame.raw, msg, on_response=hook)

    async def notification(self, frame: Frame) -> None:
        await self.ctx.send_upstream(self.up, frame.raw or frame.msg)

    async def response(self, frame: Frame) -> None:
        await self.ctx.send_upstream(self.up, frame.raw or frame.msg)
