"""The one decision point every `tools/call` goes through: policy → broker → forward.

The proxy asks `check()` synchronously (the fast path: most calls are allowed and must cost
microseconds); only a call that needs a human goes through the asynchronous `hold()`. After an
admitted call's result comes back, `finished()` closes its record. The proxy knows nothing of
policies, stores or approvers: it only obeys an `Admission`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from signoff.model import ALLOW_ALL, Decision, ToolCall

log = logging.getLogger("signoff.gate")

ProgressFn = Callable[[float, str], Awaitable[None]]
"""Called while a call is held: (seconds waited, message), to keep the client's timer alive."""


@dataclass
class Admission:
    """What the proxy must do with one call: forward it (maybe with edited arguments), refuse it,
    or (`hold`) wait for a human through `Gate.hold`."""

    allowed: bool
    text: str = ""
    hold: bool = False
    """For a refused call: what the model reads (why, and what to do next)."""
    arguments: Mapping[str, Any] | None = None
    """Replacement arguments when a human approved an edited call."""
    decision: Decision = ALLOW_ALL
    started: float = field(default_factory=time.monotonic)
    ticket: Any = None
    """Whatever the gate needs to close its record in `finished()`."""


class Gate(Protocol):
    def check(self, call: ToolCall) -> Admission:
        """Decide at once; an Admission with `hold=True` means the call must wait for a human."""

    async def hold(self, call: ToolCall, admission: Admission, progress: ProgressFn | None, client: Any = None) -> Admission:
        """Wait for a human (or a timeout, or the kill switch). Cancellation withdraws the call.

        `client` is the proxy session (it can ask the user in the client's own dialog)."""

    def finished(self, call: ToolCall, admission: Admission, *, is_error: bool, error: str | None = None) -> None:
        """The upstream answered (or failed) an admitted call."""

    async def client_answer(self, held_id: str, answer: dict[str, Any]) -> None:
        """The client answered an approval dialog (its result or error)."""

    async def session_ended(self, session: str, why: str) -> None:
        """The client stopped waiting (disconnected, session closed): nothing it waits for may run."""

    def refused(self, call: ToolCall, reason: str) -> None:
        """The relay refused a call before the policy saw it (wrong shape, unbound retry): record it."""

    def policy_hash(self) -> str:
        """The hash of the policy in force (an approval round is bound to it)."""


def denial_text(cause: str, detail: str = "") -> str:
    """The message a refused call returns to the model: what happened, and what to do instead.

    Every cause tells the model not to retry blindly and to involve the user, so a refusal is
    something it can act on rather than a dead end.
    """
    what = {
        "rule": "This tool call was blocked by the user's signoff policy",
        "human": "This tool call was not approved by the user",
        "timeout": "This tool call was not approved: no decision was made in time",
        "kill": "All tool calls are stopped: the user switched on signoff's kill switch",
        "upstream": "This tool call failed in the tool's server",
        "approval": "This tool call needs the user's approval",
        "store": "This tool call was not run: signoff could not write its audit record",
    }[cause]
    text = f"{what}" + (f": {detail}" if detail else "") + "."
    if cause == "upstream":
        return text + " Do not retry blindly; tell the user what failed and ask how to proceed."
    return text + " Do not retry the same call; ask the user, or try another way."


class OpenGate:
    """Allows every call: the relay's default until a gate is set (tests drive the relay with it)."""

    def __init__(self, decision: Decision = ALLOW_ALL):
        self.decision = decision

    def check(self, call: ToolCall) -> Admission:
        return Admission(True, decision=self.decision)

    async def hold(self, call: ToolCall, admission: Admission, progress: ProgressFn | None, client: Any = None) -> Admission:
        return Admission(True, decision=self.decision)

    def finished(self, call: ToolCall, admission: Admission, *, is_error: bool, error: str | None = None) -> None:
        return None

    async def client_answer(self, held_id: str, answer: dict[str, Any]) -> None:
        return None

    async def session_ended(self, session: str, why: str) -> None:
        return None

    def refused(self, call: ToolCall, reason: str) -> None:
        log.warning("refused %s: %s", call.qualified, reason)

    def policy_hash(self) -> str:
        return ""
