"""In-client approval for stateless (2026-07-28) clients: the dialog as an input round.

Such a client cannot receive a server→client request, so a held call is answered at once with
an `InputRequiredResult` whose input request is the approval dialog; the client shows it and
calls again with the answer and the opaque `requestState`. Meanwhile the call stays in the
shared queue, so the web page or the CLI can still decide first; the retry then simply gets
that outcome. `ClientLink` is what the gate sees as "the client" of one held call; the retry is
taken and resumed by the tools/call layer (toolcall.py), the only place a call continues.

The `requestState` is a capability for one outcome of one call: the round is bound to the held
call (server, tool, canonical arguments hash, the policy in force), is spent by the first retry
that presents it, and expires. A retry that names another call, or comes after the policy changed
or the round expired, is refused and audited; what runs is always the held call itself.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import anyio

from signoff.gate import Admission
from signoff.model import ToolCall
from signoff.relay import jsonrpc
from signoff.relay.context import SessionContext

STATE_PREFIX = "signoff-approval-"
INPUT_KEY = "signoff_approval"
ROUND_TTL = 3600.0
"""How long a round's `requestState` can be presented (the held call itself times out sooner)."""


@dataclass
class Round:
    """One approval dialog sent as an input round, bound to the held call, and its outcome."""

    held_id: str
    call: ToolCall
    params: dict[str, Any]
    """The held request's params: what runs if approved, whatever the retry says."""
    policy_hash: str
    expires: float = field(default_factory=lambda: time.monotonic() + ROUND_TTL)
    done: anyio.Event = field(default_factory=anyio.Event)
    admission: Admission | None = None

    def finish(self, admission: Admission) -> None:
        self.admission = admission
        self.done.set()

    def mismatch(self, retry: ToolCall, policy_hash: str) -> str | None:
        """Why `retry` may not use this round's outcome, or None when it is the held call."""
        if time.monotonic() > self.expires:
            return f"the approval round for {self.held_id} has expired"
        if (retry.server, retry.tool) != (self.call.server, self.call.tool):
            return f"the approval round for {self.held_id} was for {self.call.qualified}, not {retry.qualified}"
        if retry.arguments_hash != self.call.arguments_hash:
            return f"the approval round for {self.held_id} was for other arguments of {self.call.qualified}"
        if policy_hash != self.policy_hash:
            return f"the policy changed since {self.held_id} was held"
        return None


class ClientLink:
    """The way back from a held call to the client that made it."""

    def __init__(self, ctx: SessionContext, rounds: dict[str, Round], msg: dict[str, Any], call: ToolCall):
        self.ctx = ctx
        self.rounds = rounds
        """The session's open rounds (the tools/call layer's), by requestState."""
        self.msg = msg
        self.call = call
        self.round: Round | None = None

    def client_capability(self, name: str) -> Any:
        return self.ctx.client_capability(name)

    async def ask_client(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        return await self.ctx.ask_client(method, params)

    def input_capability(self, name: str) -> Any:
        """A capability a stateless client declared in its request envelope (None otherwise)."""
        caps = self.ctx.session.modern_caps
        return caps.get(name) if isinstance(caps, dict) else None

    async def offer_input(self, method: str, params: dict[str, Any], held_id: str) -> None:
        """Answer the held request with the dialog as an input round; the retry resumes it."""
        state = STATE_PREFIX + secrets.token_urlsafe(16)
        now = time.monotonic()
        for old in [s for s, r in self.rounds.items() if r.expires < now]:
            del self.rounds[old]
        held = {k: v for k, v in (self.msg.get("params") or {}).items() if k not in ("requestState", "inputResponses")}
        self.round = Round(held_id, self.call, held, self.ctx.gate.policy_hash())
        self.rounds[state] = self.round
        result = {
            "resultType": "input_required",
            "requestState": state,
            "inputRequests": {INPUT_KEY: {"method": method, "params": params}},
        }
        await self.ctx.send_client(jsonrpc.result(self.msg["id"], result))
