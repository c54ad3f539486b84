"""In-client approval for stateless (2026-07-28) clients: the dialog as an input round.

Such a client cannot receive a server→client request, so a held call is answered at once with
an `InputRequiredResult` whose input request is the approval dialog; the client shows it and
calls again with the answer and the opaque `requestState`. Meanwhile the call stays in the
shared queue, so the web page or the CLI can still decide first; the retry then simply gets
that outcome. `ClientLink` is what the gate sees as "the client" of one held call.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio

from signoff import jsonrpc
from signoff.gate import Admission

if TYPE_CHECKING:
    from signoff.model import ToolCall
    from signoff.proxy import Proxy
    from signoff.upstream import Upstream

STATE_PREFIX = "signoff-approval-"
INPUT_KEY = "signoff_approval"


@dataclass
class Round:
    """One approval dialog sent as an input round, and the held call's eventual outcome."""

    held_id: str
    done: anyio.Event = field(default_factory=anyio.Event)
    admission: Admission | None = None

    def finish(self, admission: Admission) -> None:
        self.admission = admission
        self.done.set()


class ClientLink:
    """The way back from a held call to the client that made it."""

    def __init__(self, proxy: Proxy, msg: dict[str, Any]):
        self.proxy = proxy
        self.msg = msg
        self.round: Round | None = None

    def client_capability(self, name: str) -> Any:
        return self.proxy.client_capability(name)

    async def ask_client(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        return await self.proxy.ask_client(method, params)

    def input_capability(self, name: str) -> Any:
        """A capability a stateless client declared in its request envelope (None otherwise)."""
        caps = self.proxy.session.modern_caps
        return caps.get(name) if isinstance(caps, dict) else None

    async def offer_input(self, method: str, params: dict[str, Any], held_id: str) -> None:
        """Answer the held request with the dialog as an input round; the retry resumes it."""
        state = STATE_PREFIX + secrets.token_urlsafe(16)
        self.round = Round(held_id)
        self.proxy.rounds[state] = self.round
        result = {"resultType": "input_required", "requestState": state,
                  "inputRequests": {INPUT_KEY: {"method": method, "params": params}}}
        await self.proxy.send_client(jsonrpc.result(self.msg["id"], result))


def owns(proxy: Proxy, params: dict[str, Any]) -> str | None:
    state = params.get("requestState")
    return state if isinstance(state, str) and state in proxy.rounds else None


async def resume(proxy: Proxy, up: Upstream, msg: dict[str, Any], call: ToolCall, state: str) -> None:
    """The client came back: apply its answer (if nobody decided yet), then finish the call."""
    current = proxy.rounds.pop(state)
    params = dict(msg.get("params") or {})
    answer = (params.pop("inputResponses", None) or {}).get(INPUT_KEY)
    params.pop("requestState", None)
    if answer is not None and not current.done.is_set():
        await proxy.gate.client_answer(current.held_id, {"result": answer})
    await current.done.wait()
    assert current.admission is not None
    await proxy._admitted(up, None, {**msg, "params": params}, call, current.admission)
