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

import anyio

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


LOADING = object()
"""The ticket of an Admission given while the policy still loads: `hold` waits for it."""


class GateLoader:
    """Loads the policy and opens the store in a worker thread while the server already answers
    `initialize` and lists: start-up to the first answer does not wait for the policy.

    Fail closed: a session made before the load finished gets a `PendingGate`, whose every
    `tools/call` waits for the load and is then judged by the real gate (never skipped); a broken
    policy makes `run` raise, which stops signoff (exit 2, file:line) before any call is judged.
    """

    def __init__(self, load: Callable[[], Callable[[], Gate]], *, thread: bool = True, head_start: float = 0.15):
        self._load = load
        self.thread = thread
        """False: load on the event loop's thread (--tty installs signal handlers, which only the
        main thread can)."""
        self.head_start = head_start
        """The load waits this long (or until a call needs it: `start`) so that the client's
        handshake is answered first: on a busy machine the load's CPU would delay it."""
        self.make: Callable[[], Gate] | None = None
        self.error: str | None = None
        self._pending: list[PendingGate] = []
        self.done = anyio.Event()
        self._go = anyio.Event()

    def start(self) -> None:
        """Load now: a call waits for the policy (or the client left)."""
        self._go.set()

    async def run(self) -> None:
        """Load; an error is raised here, into the server's task group (which stops serving)."""
        with anyio.move_on_after(self.head_start):
            await self._go.wait()
        try:
            self.make = await anyio.to_thread.run_sync(self._load) if self.thread else self._load()
        except BaseException as exc:
            self.error = f"signoff could not load its policy: {exc}"
            raise
        finally:
            self.done.set()
            pending, self._pending = self._pending, []
            for gate in pending:
                gate.attach()

    def factory(self) -> Gate:
        """A session's gate: the real one once loaded, a placeholder that waits for it before."""
        if self.make is not None:
            return self.make()
        gate = PendingGate(self)
        self._pending.append(gate)
        return gate


class PendingGate:
    """A session's gate made while the policy loads: delegates to the real gate once there is one."""

    def __init__(self, loader: GateLoader):
        self.loader = loader
        self.gate: Gate | None = None
        self._refused: list[tuple[ToolCall, str]] = []

    def attach(self) -> Gate | None:
        """Make the real gate (once the load finished) and record the refusals it missed."""
        if self.gate is None and self.loader.make is not None:
            self.gate = self.loader.make()
            for call, reason in self._refused:
                self.gate.refused(call, reason)
            self._refused.clear()
        return self.gate

    def check(self, call: ToolCall) -> Admission:
        gate = self.attach()
        if gate is not None:
            return gate.check(call)
        self.loader.start()
        return Admission(False, "signoff is still loading its policy", hold=True, ticket=LOADING)

    async def hold(self, call: ToolCall, admission: Admission, progress: ProgressFn | None, client: Any = None) -> Admission:
        if admission.ticket is LOADING:
            await self.loader.done.wait()
            gate = self.attach()
            if gate is None:  # the load failed: signoff is stopping; this call never runs
                return Admission(False, denial_text("approval", self.loader.error or "signoff could not load its policy"))
            admission = gate.check(call)
            if not admission.hold:
                return admission
        assert self.gate is not None
        return await self.gate.hold(call, admission, progress, client)

    def finished(self, call: ToolCall, admission: Admission, *, is_error: bool, error: str | None = None) -> None:
        if self.gate is not None:  # an admitted call was judged by the real gate
            self.gate.finished(call, admission, is_error=is_error, error=error)

    async def client_answer(self, held_id: str, answer: dict[str, Any]) -> None:
        if self.gate is not None:
            await self.gate.client_answer(held_id, answer)

    async def session_ended(self, session: str, why: str) -> None:
        if self.gate is not None:  # before, nothing of this session reached the store
            await self.gate.session_ended(session, why)

    def refused(self, call: ToolCall, reason: str) -> None:
        if self.attach() is not None:
            self.gate.refused(call, reason)  # type: ignore[union-attr]
        else:  # recorded as soon as the store is open
            log.warning("refused %s: %s", call.qualified, reason)
            self._refused.append((call, reason))

    def policy_hash(self) -> str:
        return self.gate.policy_hash() if self.attach() is not None else ""  # type: ignore[union-attr]
