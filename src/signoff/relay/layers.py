"""The relay as a stack of layers, chosen once per session (as mitmproxy's `proxy/layers`).

A frame from the client enters the top layer and goes down (`handle_client`), each layer acting
on what it is for and passing the rest to the layer `below`; the bottom layer sends it to an
upstream. A frame from an upstream enters the bottom layer and goes up (`handle_upstream`) to
`ClientEnd`, which delivers it. Which layers a session has is decided in proxy.py when it starts:

    one upstream:       EraDetect (-> EraBridge) -> ToolCallGate -> Passthrough
    several upstreams:  ToolCallGate -> Aggregate

so no layer asks per frame which mode it is in. The one decision taken later, whether a stateless
client needs the era bridge, is taken once, by `EraDetect` replacing itself (`Layer.replace_with`).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from signoff.relay.context import Pending, SessionContext
from signoff.relay.upstream import Upstream


@dataclass(slots=True)
class Frame:
    """One decoded JSON-RPC message travelling through the stack.

    `raw` is the canonical encoding of `msg` (None once a layer changed it, or for messages that
    another parser read); `upstream` is where an upstream frame came from; `pending` is the request
    an upstream response answers (taken out of `SessionContext.pending` before the frame goes up)."""

    msg: dict[str, Any]
    raw: bytes | None
    kind: str
    upstream: Upstream | None = None
    pending: Pending | None = None


class Layer:
    """One concern of the relay. By default a frame passes on untouched, in both directions."""

    above: Layer
    below: Layer

    def __init__(self, ctx: SessionContext):
        self.ctx = ctx

    async def handle_client(self, frame: Frame) -> None:
        """A frame from the client (request, notification or response), on its way down."""
        await self.below.handle_client(frame)

    async def handle_upstream(self, frame: Frame) -> None:
        """A frame from an upstream (request, notification or response), on its way up."""
        await self.above.handle_upstream(frame)

    def replace_with(self, new: Layer) -> None:
        """Put `new` where this layer is (a decision a layer can only take once traffic came)."""
        new.above, new.below = self.above, self.below
        self.above.below = new
        self.below.above = new


class ClientEnd(Layer):
    """The top of every stack: delivers upstream frames to the client (or to a response hook)."""

    async def handle_client(self, frame: Frame) -> None:
        raise AssertionError("client frames enter the stack below ClientEnd")

    async def handle_upstream(self, frame: Frame) -> None:
        pending, msg = frame.pending, frame.msg
        if pending is None:
            await self.ctx.send_client(frame.raw or msg)
        elif pending.on_response is not None:
            await pending.on_response(msg)
        elif msg["id"] == pending.client_id:
            await self.ctx.send_client(frame.raw or msg)
        else:
            await self.ctx.send_client({**msg, "id": pending.client_id})


class Stack:
    """The layers of one session, top (client side) to bottom (upstream side), linked both ways."""

    def __init__(self, ctx: SessionContext, layers: list[Layer]):
        self.end = ClientEnd(ctx)
        self.bottom = layers[-1]
        """Where upstream frames enter (the layer that talks to the upstreams)."""
        chain: list[Layer] = [self.end, *layers]
        for upper, lower in pairwise(chain):
            upper.below, lower.above = lower, upper

    @property
    def top(self) -> Layer:
        """Where client frames enter (a layer may have replaced itself since the start)."""
        return self.end.below

    def layers(self) -> list[Layer]:
        found, layer = [], self.end.below
        while True:
            found.append(layer)
            if layer is self.bottom:
                return found
            layer = layer.below

    def names(self) -> list[str]:
        return [type(layer).__name__ for layer in self.layers()]
