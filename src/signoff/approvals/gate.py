"""The full gate: kill switch → policy → remembered approvals → broker → audit.

`check()` is the fast path (a cached kill-switch read and one policy evaluation); only `ask`
goes to the broker, where the call waits in the shared queue for the first decision from any
channel: `signoff approve/deny`, `signoff watch`, the terminal prompt, the web page, or the
client's own dialog (elicitation). Every outcome becomes an audit row, and every refusal a
message the model can act on.

A held call only waits as long as its client does: for a client known to give up sooner than the
rule's timeout (client_timeouts.py), an unset `hold` becomes `retry`; with `hold: wait` the call
expires when the client stops waiting, and when the session ends its waiting calls expire. Every
admitted call gets one outcome row (`allowed`/`upstream_error`, or `forwarded`/`not_run` after
an approval).
"""

from __future__ import annotations

import collections
import contextvars
import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

import anyio

from signoff.approvals.audit import AuditLog
from signoff.approvals.broker import Broker, Outcome
from signoff.approvals.client_timeouts import client_timeout
from signoff.approvals.store import HeldCall
from signoff.config import IdentityStamp
from signoff.durations import format_duration
from signoff.errors import AlreadyDecidedError, DecisionError, StoreError, UnknownCallError
from signoff.gate import Admission, ProgressFn, denial_text
from signoff.model import Decision, ToolCall, Verdict

log = logging.getLogger("signoff.approval")

HISTORY = 20
UPSTREAM_DOWN = ("could not start upstream", "could not connect to upstream")
"""How upstream errors raised before a call is sent begin (upstream.py): such a call never ran."""


class _Slot:
    """Where the broker's listener puts the queued call for the task that is holding it."""

    def __init__(self) -> None:
        self.held: HeldCall | None = None
        self.known = anyio.Event()


_slot: contextvars.ContextVar[_Slot | None] = contextvars.ContextVar("signoff_held_slot", default=None)


class ApprovalGate:
    """Decides every call; holds `ask` calls in the shared queue until a human answers."""

    @property
    def check_in_thread(self) -> bool:
        """`check()` may wait for a database server and is safe in a worker thread: the relay runs
        it there (one at a time, relay/toolcall.py), so the event loop never waits for PostgreSQL.
        On SQLite a check takes microseconds and the thread hop would cost more (bench_proxy:
        +0.1-0.25 ms added p50 over stdio), so it stays on the loop."""
        return self.broker.store.remote

    def __init__(
        self,
        holder: Any,
        broker: Broker,
        *,
        observe: bool = False,
        notifier: Any = None,
        elicit: bool = True,
        progress_interval: float = 10.0,
        identity: IdentityStamp | None = None,
    ):
        self.holder = holder
        self.stamp = identity or IdentityStamp()
        """Who makes this session's calls: stamped on each before the policy or the audit sees it."""
        self.broker = broker
        self.audit = AuditLog(broker.store)
        self.observe = observe
        self.notifier = notifier
        self.elicit = elicit
        self.progress_interval = progress_interval
        self.history: dict[str, collections.deque[dict[str, Any]]] = collections.defaultdict(
            lambda: collections.deque(maxlen=HISTORY)
        )
        self.in_flight: dict[int, tuple[ToolCall, Admission]] = {}
        """Admitted calls whose result has not come back yet, by id(admission)."""

    # ------------------------------------------------------------------ fast path

    def check(self, call: ToolCall) -> Admission:
        call = self.stamp(call)
        admission = self._check(call)
        if admission.allowed:
            self.in_flight[id(admission)] = (call, admission)
        return admission

    def _check(self, call: ToolCall) -> Admission:
        policy = self.holder.get()
        try:
            kill = self.broker.kill_state()
        except StoreError as exc:  # fail closed: no store, no calls
            log.error("cannot read the kill switch: %s", exc)
            return Admission(False, denial_text("kill", f"signoff cannot read its store ({exc})"))
        if kill.on:
            self._record(call, "killed", reason=kill.reason or "kill switch on", channel="kill", by=kill.by or "signoff")
            return Admission(False, denial_text("kill", kill.reason))
        decision = policy.evaluate(call)
        if decision.verdict is Verdict.ALLOW:
            return self._admit(call, decision, {"decision": "allowed", "policy": policy.hash})
        if decision.verdict is Verdict.DENY:
            self._record(call, "denied", reason=decision.reason, rule=decision.rule, policy_hash=policy.hash, by="policy")
            return Admission(False, denial_text("rule", decision.reason), decision=decision)
        remembered = self._remembered(call) if decision.approval.default else None  # one person cannot stand for a quorum
        if remembered:
            return self._admit(
                call,
                decision,
                {
                    "decision": "allowed",
                    "policy": policy.hash,
                    "by": f"remembered:{remembered}",
                    "reason": f"remembered approval {remembered} ({decision.reason})",
                },
            )
        if self.observe:
            return self._admit(
                call,
                decision,
                {"decision": "allowed", "policy": policy.hash, "reason": "observe mode"},
                row="observed",
                reason=f"would be held: {decision.reason}",
            )
        patience = client_timeout(call.client, policy.spec.defaults.client_timeouts)
        if decision.hold == "retry" or (
            decision.hold == "auto" and patience is not None and (decision.timeout or self.broker.default_timeout) > patience
        ):
            return self._retry(call, decision, policy.hash)
        return Admission(False, hold=True, decision=decision, ticket={"policy": policy.hash, "client_timeout": patience})

    def _admit(
        self, call: ToolCall, decision: Decision, ticket: dict[str, Any], *, row: str = "allowed", reason: str | None = None
    ) -> Admission:
        """Admit a call only once its audit row is committed: no call runs without its record.

        The row is written before forwarding (one commit, as before, only earlier); the upstream's
        failure adds an `upstream_error` row in `finished()`. A store that is full, read-only or
        locked past the proxy's short wait refuses the call with a message saying what to fix."""
        try:
            self.audit.append(
                call,
                row,
                channel="policy",
                by=ticket.get("by", "policy"),
                reason=reason or ticket.get("reason", decision.reason),
                rule=decision.rule,
                policy_hash=ticket.get("policy", ""),
            )
        except StoreError as exc:
            log.error("refused %s: its audit row could not be written: %s", call.qualified, exc)
            return Admission(False, store_refusal(str(exc)))
        return Admission(True, decision=decision, ticket=ticket)

    def _remembered(self, call: ToolCall) -> str | None:
        try:
            return self.broker.remembered_match(call)
        except StoreError as exc:
            log.error("cannot read remembered decisions: %s", exc)
            return None

    def _retry(self, call: ToolCall, decision: Decision, policy_hash: str) -> Admission:
        """`hold: retry`: answer at once; the same call made again after approval goes through."""
        try:
            outcome = self.broker.consume_retry(call, policy_hash)
            if outcome is None:
                held_id = self.broker.issue_retry(
                    call,
                    decision,
                    policy_hash,
                    history=self._history(call),
                    shown=self._shown(call, decision),
                    on_held=self._on_held,
                )
                outcome = Outcome("pending", held_id)
        except StoreError as exc:
            return Admission(False, denial_text("approval", f"signoff could not record the call ({exc})"))
        if outcome.approved:
            return Admission(
                True,
                decision=decision,
                arguments=outcome.arguments,
                ticket={"decision": "approved", "held": outcome.held_id, "policy": policy_hash},
            )
        if outcome.status == "pending":
            text = (
                f"This tool call is held for the user's approval as {outcome.held_id}: {decision.reason}. "
                "Tell the user it is waiting; once they approve it, call again with exactly the same "
                f"arguments (it expires in {format_duration(decision.timeout or 300)})."
            )
            return Admission(False, text, decision=decision)
        return self._refusal(outcome)

    # ------------------------------------------------------------------ slow path

    async def hold(self, call: ToolCall, admission: Admission, progress: ProgressFn | None, client: Any = None) -> Admission:
        call = self.stamp(call)
        decision = admission.decision
        policy_hash = (admission.ticket or {}).get("policy", "")
        slot = _Slot()
        token = _slot.set(slot)

        async def on_wait(waited: float) -> None:
            if progress is not None:
                await progress(waited, f"waiting for approval ({slot.held.id if slot.held else 'queued'})")

        async def elicit_when_known() -> None:
            await slot.known.wait()
            assert slot.held is not None
            await self._ask_in_client(client, call, slot.held, decision)

        async def offer_when_known() -> None:  # a stateless client: the dialog as an input round
            from signoff.approvals.elicit import params_for

            await slot.known.wait()
            assert slot.held is not None
            await client.offer_input(
                "elicitation/create", params_for(call, slot.held.id, decision.reason, _shown_of(slot.held)), slot.held.id
            )

        shown = await anyio.to_thread.run_sync(self._shown, call, decision)  # reads the file a write would change
        try:
            async with anyio.create_task_group() as tg:
                if self.elicit and client is not None and _wants(decision, "elicit"):
                    if client.client_capability("elicitation") is not None:
                        tg.start_soon(elicit_when_known)
                    elif getattr(client, "input_capability", None) and client.input_capability("elicitation") is not None:
                        tg.start_soon(offer_when_known)
                outcome = await self.broker.hold(
                    call,
                    decision,
                    history=self._history(call),
                    on_wait=on_wait,
                    wait_interval=self.progress_interval,
                    policy_hash=policy_hash,
                    shown=shown,
                    client_timeout=(admission.ticket or {}).get("client_timeout"),
                    on_held=self._on_held,
                )
                tg.cancel_scope.cancel()  # the dialog, if still open, is withdrawn
        finally:
            _slot.reset(token)
        if not outcome.approved:  # an approved call enters the history once it ran (finished())
            self._remember(call, outcome.status)
        if outcome.status == "denied" and outcome.channel == "signoff":  # the store failed the held call
            await anyio.to_thread.run_sync(
                lambda: self._record(  # off the loop: it may wait for the store
                    call,
                    "denied",
                    reason=outcome.reason,
                    by="signoff",
                    channel="signoff",
                    held_id=outcome.held_id or None,
                    policy_hash=policy_hash,
                )
            )
        if outcome.approved:
            approved = Admission(
                True,
                decision=decision,
                arguments=outcome.arguments,
                ticket={"decision": "approved", "held": outcome.held_id, "policy": policy_hash},
            )
            self.in_flight[id(approved)] = (call, approved)
            return approved
        return self._refusal(outcome)

    async def session_ended(self, session: str, why: str) -> None:
        """The client went away: its waiting calls expire; calls still running get their outcome row."""
        why = self.broker.stopping or why
        try:
            await anyio.to_thread.run_sync(self.broker.expire_session, session, why)
        except StoreError as exc:
            log.error("cannot mark the held calls of session %s expired: %s", session, exc)
        for call, admission in list(self.in_flight.values()):
            self.finished(
                call, admission, is_error=True, error=f"no answer: {why} before the server answered (the call may have run)"
            )

    def _shown(self, call: ToolCall, decision: Decision) -> dict[str, Any] | None:
        """What every channel shows first (signoff.approvals.present), computed once, here, on the server's machine."""
        from signoff.approvals.present import prepare

        try:
            return prepare(call, decision, self.holder.get())
        except (ValueError, TypeError, OSError, RecursionError) as exc:  # the channels fall back to the arguments
            log.warning("cannot prepare how %s is shown: %s", call.qualified, exc)
            return None

    def _on_held(self, held: HeldCall) -> None:
        """Told by the broker of this gate's own call, in the holding task, once it is queued: one
        announcement per hold (a listener per gate announced every hold once per `--http` session
        ever opened, and kept ended sessions' gates alive)."""
        slot = _slot.get()
        if slot is not None:
            slot.held = held
            slot.known.set()
        log.info("held %s as %s: %s", held.qualified, held.id, held.reason)
        if self.notifier:
            self.notifier.held(ToolCall(held.server, held.tool, held.arguments), held.id, held.reason, shown=_shown_of(held))

    async def _ask_in_client(self, client: Any, call: ToolCall, held: HeldCall, decision: Decision) -> None:
        """The client's own dialog, as one more channel racing the others."""
        from signoff.approvals.elicit import ask

        await self.client_answer(held.id, await ask(client, call, held.id, decision.reason, _shown_of(held)))

    async def client_answer(self, held_id: str, answer: dict[str, Any]) -> None:
        """Apply the answer to the client's dialog (unless another channel decided first)."""
        from signoff.approvals.elicit import to_decision

        verdict = to_decision(answer)
        if verdict is None:
            return  # dismissed: the other channels still decide
        approve, reason = verdict
        try:
            await anyio.to_thread.run_sync(
                lambda: self.broker.decide(held_id, approve, reason=reason, channel="elicit", by="client user")
            )
        except (AlreadyDecidedError, UnknownCallError, DecisionError, StoreError) as exc:
            log.info("client dialog answer for %s not used: %s", held_id, exc)

    def _refusal(self, outcome: Outcome) -> Admission:
        reason = outcome.reason or ""
        if outcome.status == "denied":
            if outcome.channel in ("signoff",):
                return Admission(False, denial_text("approval", reason))
            by = f" ({outcome.decided_by} via {outcome.channel})" if outcome.decided_by else ""
            return Admission(False, denial_text("human", (reason or "no reason given") + by))
        if outcome.status == "timeout":
            return Admission(False, denial_text("timeout", reason))
        if outcome.status == "killed":
            return Admission(False, denial_text("kill", reason))
        if outcome.status in ("expired", "abandoned"):
            return Admission(
                False,
                denial_text(
                    "approval", f"the held call {outcome.held_id} was closed unapproved, because {reason}; it did not run"
                ),
            )
        return Admission(False, denial_text("approval", f"the held call ended as {outcome.status}: {reason}"))

    def refused(self, call: ToolCall, reason: str) -> None:
        """The relay refused a call before the policy saw it (a notification, an unbound retry)."""
        self._record(self.stamp(call), "denied", reason=reason, by="signoff", channel="signoff")

    def policy_hash(self) -> str:
        return self.holder.get().hash

    # ------------------------------------------------------------------ after the upstream answered

    def finished(
        self, call: ToolCall, admission: Admission, *, is_error: bool, error: str | None = None
    ) -> threading.Event | None:
        if self.in_flight.pop(id(admission), None) is None:
            return None  # its outcome is already recorded (one outcome row per admitted call)
        call = self.stamp(call)
        ticket = admission.ticket or {}
        duration = (time.monotonic() - admission.started) * 1000
        kind = ticket.get("decision")
        self._remember(call, "error" if error else kind or "allowed")
        # the row is written by the broker's writer thread (writer.py): on the event loop it would
        # stall every other answer of this proxy while it waits for the audit chain's head lock
        if kind == "allowed" and error:  # its `allowed` row was written before it ran (`_admit`)
            return self.broker.writer.submit(
                lambda: self.audit.append(
                    call,
                    "upstream_error",
                    arguments=dict(admission.arguments) if admission.arguments is not None else None,
                    channel="policy",
                    by=ticket.get("by", "policy"),
                    reason=error,
                    duration_ms=duration,
                    policy_hash=ticket.get("policy", ""),
                    rule=admission.decision.rule,
                ),
                what=f"{call.qualified} (upstream_error)",
            )
        elif kind == "approved":
            kind, result = (
                "forwarded",
                (
                    "ok"
                    if not is_error
                    else error
                    if error and error.startswith("no answer")
                    else f"error: {error or 'the tool reported an error'}"
                ),
            )
            if error and (error.startswith(UPSTREAM_DOWN) or "refused initialize" in error):
                kind, result = "not_run", f"upstream down: {error}"
            held_id = ticket["held"]
            return self.broker.writer.submit(
                lambda: self.broker.record_outcome(held_id, kind, result, duration_ms=duration),
                what=f"{call.qualified} ({kind} {result})",
            )
        return None  # an allowed call that ran: its `allowed` row is the record

    # ------------------------------------------------------------------ helpers

    def _record(
        self,
        call: ToolCall,
        decision: str,
        *,
        reason: str = "",
        rule: str | None = None,
        policy_hash: str = "",
        by: str = "signoff",
        channel: str = "policy",
        held_id: str | None = None,
        duration_ms: float | None = None,
        arguments: Any = None,
    ) -> None:
        try:
            self.audit.append(
                call,
                decision,
                arguments=dict(arguments) if arguments is not None else None,
                channel=channel,
                by=by,
                reason=reason,
                duration_ms=duration_ms,
                policy_hash=policy_hash,
                rule=rule,
                held_id=held_id,
            )
        except StoreError as exc:  # the call itself already happened or was refused; say so loudly
            log.error("AUDIT ROW NOT WRITTEN for %s (%s): %s", call.qualified, decision, exc)

    def _history(self, call: ToolCall) -> Iterable[dict[str, Any]]:
        return list(self.history[call.session])

    def _remember(self, call: ToolCall, outcome: str) -> None:
        self.history[call.session].append(
            {"time": time.time(), "tool": call.qualified, "arguments": dict(call.arguments), "outcome": outcome}
        )


def store_refusal(error: str) -> str:
    """What a call refused for want of its audit row tells the model: what failed, what to fix."""
    text = error.lower()
    if "full" in text:
        fix = "free disk space where the signoff store lives"
    elif "locked" in text or "busy" in text:
        fix = "end the program holding the signoff store's write lock"
    elif "not a sqlite database" in text or "move them aside" in text:
        fix = "repair the signoff store as this message says"
    else:
        fix = "make the signoff store writable (permissions, read-only disk)"
    return denial_text("store", f"{error}. Tell the user to {fix}, then try again")


def _wants(decision: Decision, channel: str) -> bool:
    """A rule's `channels:` limits where it is asked; none listed means every channel."""
    return not decision.channels or channel in decision.channels


class StoreDownGate:
    """Stands in for the gate while the store cannot be opened (read-only, full, missing directory):
    the proxy still serves, and every call is refused with the reason and what to fix, instead of
    the process exiting with no answer. Opening is retried at most once per `retry_every` seconds;
    once it works, the real gate takes over."""

    def __init__(self, error: str, reopen: Any, *, retry_every: float = 1.0):
        self.error = error
        self.reopen = reopen
        self.retry_every = retry_every
        self.gate: Any = None
        self._next = time.monotonic() + retry_every

    def _current(self) -> Any:
        if self.gate is None and time.monotonic() >= self._next:
            self._next = time.monotonic() + self.retry_every
            try:
                self.gate = self.reopen()
            except StoreError as exc:
                self.error = str(exc)
        return self.gate

    @property
    def check_in_thread(self) -> bool:  # not while `check` may reopen the store
        return self.gate is not None and getattr(self.gate, "check_in_thread", False)

    def check(self, call: ToolCall) -> Admission:
        gate = self._current()
        if gate is not None:
            return gate.check(call)
        return Admission(False, store_refusal(self.error))

    async def hold(self, call: ToolCall, admission: Admission, progress: ProgressFn | None, client: Any = None) -> Admission:
        return await self.gate.hold(call, admission, progress, client)  # only a real gate's check holds

    def finished(self, call: ToolCall, admission: Admission, *, is_error: bool, error: str | None = None) -> Any:
        return None if self.gate is None else self.gate.finished(call, admission, is_error=is_error, error=error)

    async def client_answer(self, held_id: str, answer: dict[str, Any]) -> None:
        if self.gate is not None:
            await self.gate.client_answer(held_id, answer)

    async def session_ended(self, session: str, why: str) -> None:
        if self.gate is not None:
            await self.gate.session_ended(session, why)

    def refused(self, call: ToolCall, reason: str) -> None:
        if self.gate is not None:
            self.gate.refused(call, reason)
        else:  # no store, so no audit row: the log is all there is
            log.warning("refused %s: %s (not audited: %s)", call.qualified, reason, self.error)

    def policy_hash(self) -> str:
        return self.gate.policy_hash() if self.gate is not None else ""


def _shown_of(held: HeldCall) -> Any:
    """The held call's presentation for the dialog and notifications (None: they show the arguments)."""
    from signoff.approvals.present import for_held

    try:
        return for_held(held)
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
        log.warning("cannot show %s as its presentation: %s", held.id, exc)
        return None
