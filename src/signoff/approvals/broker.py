"""The approval broker: a held call waits here until a human, the clock or the kill switch decides.

`hold()` inserts the call into the shared store and waits for a change to its row
(`Store.wait_change`: PostgreSQL's LISTEN/NOTIFY wakes it at once; on SQLite a cheap change check
every `poll_interval`), reading the row only when it may have changed, so a decision made by any
process reaches the waiting proxy within milliseconds (~50 ms on SQLite). Everything the broker decides is one store
transaction that also writes the audit row; the first decision wins. Failing to read or write the
store never lets a call through: it is denied.

A decision only applies while someone waits for the call: each proxy holds a lease (liveness.py),
so a person's decision on a call whose proxy died is refused (the call becomes `abandoned`), and
a call whose client stopped waiting (disconnected, or its known timeout passed) becomes
`expired`. An approved call gets exactly one outcome row: `forwarded` (ok / error) or `not_run`.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio

from signoff.approvals.audit import entry, user
from signoff.approvals.liveness import pid_alive
from signoff.approvals.store import HeldCall, KillState, Remembered, Resolution, Store, open_store
from signoff.approvals.votes import Ballot
from signoff.approvals.writer import Writer
from signoff.durations import format_duration
from signoff.errors import AlreadyDecidedError, DecisionError, StoreError, UnknownCallError
from signoff.model import Decision, ToolCall, canonical_json
from signoff.termsafe import fold

log = logging.getLogger("signoff.broker")

__all__ = ["Broker", "Outcome", "outcome_of", "history_entries", "pid_alive"]
"""`pid_alive` lives in liveness.py; it stays importable from here for the page and the runner."""

DEFAULT_TIMEOUT = 300.0
KILL_CACHE_SECONDS = 0.1
UNRECORDED_TRIES = 5
"""How many later holds try to close a call denied while the store could not be read."""
KILL_TRUST_SECONDS = 1.0
"""The longest a cached kill state (off) is kept because the store signalled no change to it."""
REMEMBER_KINDS = ("session", "args", "tool")


@dataclass(frozen=True)
class Outcome:
    """How a held call ended. `arguments` are the human's edited arguments, or None."""

    status: str  # approved | denied | timeout | killed | withdrawn | abandoned | expired | pending (retry mode)
    held_id: str
    reason: str = ""
    decided_by: str | None = None
    channel: str | None = None
    arguments: Mapping[str, Any] | None = None

    @property
    def approved(self) -> bool:
        return self.status == "approved"


def outcome_of(held: HeldCall) -> Outcome:
    return Outcome(held.status, held.id, held.decision_reason or "", held.decided_by, held.channel, held.edited_arguments)


HISTORY_ITEMS = 20
HISTORY_VALUE_CHARS = 120
HISTORY_ENTRY_CHARS = 600
"""A held row carries a compact summary of the session's earlier calls, never their full arguments:
each call is stored once (its own audit row); the summary only has to help a person judge."""


def compact_arguments(
    arguments: Any, value_chars: int = HISTORY_VALUE_CHARS, budget: int = HISTORY_ENTRY_CHARS
) -> dict[str, Any]:
    """Arguments with long values folded; if still over `budget` characters, the first keys only."""
    folded = fold(dict(arguments) if isinstance(arguments, Mapping) else {}, value_chars)
    if len(canonical_json(folded)) <= budget:
        return folded
    kept: dict[str, Any] = {}
    used = 2
    for key, value in folded.items():
        text = canonical_json(value)
        if len(text) > value_chars:
            value = text = f"{text[:value_chars]}… (cut)"
        if used + len(key) + len(text) > budget:
            kept["…"] = f"{len(folded) - len(kept)} more arguments left out"
            break
        kept[str(key)[:60]] = value
        used += len(key) + len(text) + 4
    return kept


def history_entries(history: Iterable[ToolCall | Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A session's last calls as a held row keeps them: tool, folded arguments, outcome and time."""
    out = []
    for item in list(history)[-HISTORY_ITEMS:]:
        if isinstance(item, ToolCall):
            out.append({"tool": item.qualified, "arguments": compact_arguments(item.arguments)})
            continue
        entry_ = {k: item[k] for k in ("tool", "outcome", "time") if k in item}
        entry_["arguments"] = compact_arguments(item.get("arguments"))
        out.append(entry_)
    return out


def with_team(presentation: str | None, call: ToolCall, decision: Decision) -> str:
    """The presentation JSON with the `team` key every held row carries: who made the call and
    who may approve it (HeldCall.identity / .requirements read them back)."""
    import json

    shown = json.loads(presentation) if presentation else {}
    shown["team"] = {
        "identity": call.identity.as_dict() if call.identity is not None else None,
        "approval": decision.approval.as_dict(),
    }
    return canonical_json(shown)


class Broker:
    """Held calls, decisions, the kill switch, remembered decisions and retry tokens."""

    def __init__(
        self,
        store: Store | None = None,
        *,
        poll_interval: float = 0.05,
        default_timeout: float = DEFAULT_TIMEOUT,
        retry_ttl: float = 900.0,
    ):
        self.store = store if store is not None else open_store()
        self.poll_interval = poll_interval
        self.default_timeout = default_timeout
        self.retry_ttl = retry_ttl
        self.listeners: list[Callable[[HeldCall], None]] = []
        """Called (on the event loop, must not block) with each call `hold` has just inserted."""
        self._kill_cache: tuple[float, int | None, KillState] | None = None
        self._lease: str | None = None
        self.stopping: str | None = None
        """Set when this process is shutting down (a signal): why its calls end."""
        self.holding: set[str] = set()
        """Ids of the calls this process is waiting on right now."""
        self._unrecorded_tries: dict[str, int] = {}
        self.unrecorded: dict[str, str] = {}
        """Calls answered `denied` because the store could not be read, still pending there: closed
        when it can be written again, so nobody approves a call whose client was told no."""
        self.writer = Writer()
        """Writes outcome rows off the event loop (writer.py); drained by `release()`."""

    # ------------------------------------------------------------------ holding

    def _row(
        self,
        call: ToolCall,
        decision: Decision,
        history: Iterable[Any],
        hold_mode: str,
        policy_hash: str,
        shown: Mapping[str, Any] | None = None,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        now = time.time()
        timeout = decision.timeout or self.default_timeout
        row = {
            "server": call.server,
            "tool": call.tool,
            "arguments": canonical_json(dict(call.arguments)),
            "args_hash": call.arguments_hash,
            "rule": decision.rule,
            "reason": decision.reason,
            "session": call.session,
            "session_history": canonical_json(history_entries(history)),
            "client": call.client,
            "created": now,
            "deadline": now + timeout,
            "proxy_pid": os.getpid(),
            "hold_mode": hold_mode,
            "on_timeout": decision.on_timeout,
            "policy_hash": policy_hash,
            "input_schema": canonical_json(dict(call.input_schema)) if call.input_schema else None,
            "proxy_lease": self.lease_path() if hold_mode == "wait" else None,
            "annotations": canonical_json(dict(call.annotations)) if call.annotations else None,
            **{k: v for k, v in (shown or {}).items() if k in ("actions", "facts", "presentation")},  # present.prepare
        }
        row["presentation"] = with_team(row.get("presentation"), call, decision)
        audit = entry(
            call, "held", channel="policy", by="signoff", reason=decision.reason, policy_hash=policy_hash, rule=decision.rule
        )
        return row, audit

    def lease_path(self) -> str | None:
        """This process's lease (taken on first use, by the store); None if it cannot be taken."""
        if self._lease is None:
            self._lease = self.store.take_lease()
        return self._lease

    def release(self) -> None:
        """A clean exit: give the lease up (after this process's calls were closed and their
        outcome rows written: until then the lease says they may still get one)."""
        self.writer.drain()
        if self._lease is not None:
            self.store.release_lease()
            self._lease = None

    async def hold(
        self,
        call: ToolCall,
        decision: Decision,
        *,
        history: Iterable[ToolCall | Mapping[str, Any]] = (),
        on_wait: Callable[[float], Awaitable[None]] | None = None,
        wait_interval: float = 10.0,
        policy_hash: str = "",
        client_timeout: float | None = None,
        shown: Mapping[str, Any] | None = None,
        on_held: Callable[[HeldCall], None] | None = None,
    ) -> Outcome:
        """Hold `call` until it is decided, times out or is killed; cancelling withdraws it.

        `client_timeout`: the client is known to stop waiting after this many seconds; then the
        call expires (nobody could receive its result). `shown`: what the channels show of it
        (present.prepare), stored with the row. `on_held`: told of this call only, once it is
        queued (the holding gate announces it; `listeners` hear every call).
        """
        try:
            row, audit = self._row(call, decision, history, "wait", policy_hash, shown)  # takes the lease
            with anyio.CancelScope(shield=True):  # a cancel now must still find the row to withdraw
                if self.unrecorded:
                    try:
                        await anyio.to_thread.run_sync(self.close_unrecorded)
                    except StoreError as exc:  # the new call is tried anyway
                        log.warning("cannot close calls denied earlier: %s", exc)
                held = await anyio.to_thread.run_sync(self.store.insert_held, row, audit)
        except StoreError as exc:
            log.error("cannot hold %s: %s", call.qualified, exc)
            return Outcome("denied", "", f"signoff could not record the held call ({exc})", "signoff", "signoff")
        self._announce(held, on_held)
        if held.status != "pending":
            return outcome_of(held)
        timeout = decision.timeout or self.default_timeout
        started = time.monotonic()
        finished = False
        self.holding.add(held.id)
        try:
            outcome = await self._wait(held, timeout, decision, started, on_wait, wait_interval, call.client, client_timeout)
            finished = True
            return outcome
        finally:
            if not finished:  # cancelled by the client, or on_wait failed: take it off the queue
                with anyio.CancelScope(shield=True):
                    ended = await self._end(
                        held.id, Resolution("withdrawn", call.client or "client", "client", "the client cancelled the call")
                    )
                    if ended.approved:  # approved just before the client left: it never ran
                        try:
                            await anyio.to_thread.run_sync(
                                self.record_outcome,
                                held.id,
                                "not_run",
                                self.stopping or "the client stopped waiting before it could run",
                            )
                        except StoreError as exc:
                            log.error("AUDIT ROW NOT WRITTEN: %s approved but not run: %s", held.id, exc)
            self.holding.discard(held.id)

    async def _wait(
        self,
        held: HeldCall,
        timeout: float,
        decision: Decision,
        started: float,
        on_wait: Callable[[float], Awaitable[None]] | None,
        wait_interval: float,
        client: str = "",
        client_timeout: float | None = None,
    ) -> Outcome:
        token: int | None = None
        last_read = started
        next_wait = started + wait_interval
        while True:
            now = time.monotonic()
            if now - started >= timeout:
                return await self._time_out(held, timeout, decision)
            if client_timeout is not None and now - started >= client_timeout:
                return await self._end(
                    held.id,
                    Resolution(
                        "expired",
                        "signoff",
                        "client",
                        f"the client ({client or 'unnamed'}) stops waiting for a call after {format_duration(client_timeout)}",
                    ),
                )
            if on_wait is not None and now >= next_wait:
                next_wait += wait_interval
                await on_wait(now - started)
            limit = min(timeout, client_timeout) if client_timeout is not None else timeout
            due = (
                min(started + limit, last_read + self.store.reread_seconds, next_wait if on_wait is not None else started + limit)
                - now
            )
            try:
                if token is None:  # the token first, then the row: a change in between moves the token
                    current = await anyio.to_thread.run_sync(self.store.change_token, held.id)
                else:  # returns on a change to this call (or any commit, on SQLite), or when due
                    current = await self.store.wait_change(token, max(0.0, due), topic=held.id, poll=self.poll_interval)
                    if current == token and time.monotonic() - last_read < self.store.reread_seconds:
                        continue
                token, last_read = current, time.monotonic()
                row = await anyio.to_thread.run_sync(self.store.get_held, held.id)
            except StoreError as exc:  # fail closed
                log.error("held call %s: %s; denying it", held.id, exc)
                self.unrecorded[held.id] = f"signoff could not read its store ({exc})"
                return Outcome("denied", held.id, self.unrecorded[held.id], "signoff", "signoff")
            if row is None:
                return Outcome("denied", held.id, "the held call disappeared from signoff's store", "signoff", "signoff")
            if row.status != "pending":
                return outcome_of(row)

    def close_unrecorded(self) -> None:
        """Record the denials given while the store could not be read (an approval that came
        meanwhile gets a `not_run` outcome: its client had already been answered)."""
        for held_id, why in list(self.unrecorded.items()):
            tries = self._unrecorded_tries[held_id] = self._unrecorded_tries.get(held_id, 0) + 1
            try:
                self.store.resolve(held_id, Resolution("denied", "signoff", "signoff", why))
            except AlreadyDecidedError:
                held = self.store.get_held(held_id)
                if held is not None and held.status == "approved":
                    self.record_outcome(held_id, "not_run", f"its client had been answered: {why}")
            except UnknownCallError:
                pass
            except StoreError as exc:  # still unusable (or replaced): try again with a later call, a few times
                if tries < UNRECORDED_TRIES:
                    continue
                log.error("held call %s was answered `denied` but cannot be closed in the store: %s", held_id, exc)
            del self.unrecorded[held_id]
            self._unrecorded_tries.pop(held_id, None)

    async def _time_out(self, held: HeldCall, timeout: float, decision: Decision) -> Outcome:
        why = f"no decision within {format_duration(timeout)}"
        if decision.on_timeout == "allow" and decision.approval.default:
            res = Resolution("approved", "signoff", "timeout", f"{why}; the rule says on_timeout: allow")
        elif decision.on_timeout == "allow":  # a timeout never stands in for the people a rule asks for
            res = Resolution(
                "timeout",
                "signoff",
                "timeout",
                f"{why}; on_timeout: allow does not apply to a call that needs {decision.approval.describe()}",
            )
        else:
            res = Resolution("timeout", "signoff", "timeout", why)
        return await self._end(held.id, res)

    async def _end(self, held_id: str, res: Resolution) -> Outcome:
        """Resolve from the broker's side; if a human decided first, their decision stands."""
        held: HeldCall | None
        try:
            held = await anyio.to_thread.run_sync(self.store.resolve, held_id, res)
        except AlreadyDecidedError:
            held = await anyio.to_thread.run_sync(self.store.get_held, held_id)
        except (StoreError, UnknownCallError) as exc:
            log.error("held call %s: cannot record %s: %s", held_id, res.status, exc)
            return Outcome("denied", held_id, f"signoff could not record the outcome ({exc})", "signoff", "signoff")
        assert held is not None
        return outcome_of(held)

    # ------------------------------------------------------------------ deciding

    def decide(
        self,
        held_id: str,
        approve: bool,
        *,
        reason: str | None = None,
        channel: str = "cli",
        by: str | None = None,
        arguments: Mapping[str, Any] | None = None,
        remember: str | None = None,
        person: str | None = None,
        roles: Iterable[str] | None = None,
    ) -> HeldCall:
        """Approve or deny a pending call. Raises UnknownCallError, or AlreadyDecidedError if another won.

        Team mode names the deciding `person` and the `roles` they hold now (their sign-in or CLI
        token): a call whose rules want more than one ordinary approver (`approvers`, `quorum`,
        `not_self`) is then decided by votes (Store.vote: the returned call may still be pending,
        `held.progress` says how far). Without a person (one machine, the OS user) such a call
        cannot be approved, only denied. Raises VoteRefusedError when a vote does not count."""
        if remember is not None and remember not in REMEMBER_KINDS:
            raise DecisionError(f"remember must be one of {', '.join(REMEMBER_KINDS)}, not {remember!r}")
        if remember and not approve:
            raise DecisionError("only an approval can be remembered")
        if arguments is not None and not approve:
            raise DecisionError("edited arguments only make sense with an approval")
        held = self.get(held_id) if approve or person is not None else None
        needs = held.requirements if held is not None else None
        if held is not None and needs is not None and not needs.default and held.status == "pending":
            if person is None and approve:  # fail closed: nobody named, so nobody can be counted
                raise DecisionError(
                    f"{held_id} needs {needs.describe()}: one person's approval cannot decide it "
                    "(that needs team mode's named approvers); it can be denied"
                )
            if person is not None:
                if remember:  # a remembered approval would let later calls through on one person's say
                    raise DecisionError(f"{held_id} needs {needs.describe()}: an approval of it cannot be remembered")
                if arguments is not None and needs.quorum > 1:
                    raise DecisionError(
                        f"{held_id} needs {needs.quorum} approvals of the same arguments: approve it "
                        "as it is, or deny it with a reason (the agent can call again)"
                    )
                ballot = Ballot.of(person, roles or (), approve, by=by, channel=channel, reason=reason, arguments=arguments)
                return self.store.vote(held_id, ballot)
        res = Resolution("approved" if approve else "denied", by or user(), channel, reason, arguments, remember, live_only=True)
        return self.store.resolve(held_id, res)

    def pending(self) -> list[HeldCall]:
        """Pending calls, oldest first; retry-mode calls past their deadline are timed out first,
        and calls whose proxy is gone are marked `abandoned`.

        A read writes nothing unless such a call exists: an idle page must not commit (each
        commit wakes every waiting proxy and every open page)."""
        calls = self.store.list_held("pending")
        now = time.time()
        swept = self.sweep(calls)
        if any(h.hold_mode == "retry" and h.deadline <= now for h in calls):
            swept.extend(
                self.store.resolve_many(
                    lambda h: h.hold_mode == "retry" and h.deadline <= now,
                    lambda h: Resolution(
                        "timeout", "signoff", "timeout", f"no decision within {format_duration(h.deadline - h.created)}"
                    ),
                )
            )
        closed = {h.id for h in swept}
        return self.store.with_votes([h for h in calls if h.id not in closed])

    def get(self, held_id: str) -> HeldCall:
        """The held call, with its votes (team mode)."""
        held = self.store.get_held(held_id)
        if held is None:
            raise UnknownCallError(f"no held call {held_id}")
        return self.store.with_votes([held])[0]

    def mark_abandoned(self) -> list[HeldCall]:
        """At proxy start: close what dead proxies left, approved calls' missing outcomes included."""
        closed = self.sweep(outcomes=True)
        try:
            self.store.remove_stale_leases()  # after the sweep: it still needed them
        except OSError as exc:
            log.info("cannot tidy the proxy leases: %s", exc)
        return closed

    def sweep(self, pending: list[HeldCall] | None = None, *, outcomes: bool = False) -> list[HeldCall]:
        """Close what dead proxies left: pending calls become `abandoned`; with `outcomes`, approved
        calls that never got an outcome get a `not_run` row. Writes only when there is something
        to close; each proxy's lease is checked once."""
        checked: dict[tuple[Any, Any], str | None] = {}

        def gone(h: HeldCall) -> str | None:
            if h.hold_mode != "wait":
                return None
            key = (h.proxy_pid, h.proxy_lease)
            if key not in checked:
                checked[key] = self.store.proxy_gone(h)
            return checked[key]

        abandoned: list[HeldCall] = []
        if any(gone(h) for h in (self.store.list_held("pending") if pending is None else pending)):
            abandoned = self.store.resolve_many(  # re-checked inside the transaction
                lambda h: h.hold_mode == "wait" and self.store.proxy_gone(h) is not None,
                lambda h: Resolution("abandoned", "signoff", "signoff", self.store.proxy_gone(h) or "its proxy is gone"),
            )
        for held in self.store.list_held("approved") if outcomes else ():
            why = gone(held)
            if held.outcome is None and why:
                self.record_outcome(
                    held.id, "not_run", f"{why} before it reported a result (if it was forwarded, its result is unknown)"
                )
        return abandoned

    def abandon_own(self, why: str) -> list[HeldCall]:
        """This proxy is stopping: its waiting calls become `abandoned` (not approvable)."""
        return self.store.resolve_many(self._mine, lambda h: Resolution("abandoned", "signoff", "signoff", why))

    def expire_session(self, session: str, why: str) -> list[HeldCall]:
        """The client of `session` stopped waiting: its waiting calls here become `expired`."""
        return self.store.resolve_many(
            lambda h: self._mine(h) and h.session == session, lambda h: Resolution("expired", "signoff", "client", why)
        )

    def _mine(self, held: HeldCall) -> bool:
        """A waiting call this process holds."""
        lease = self._lease
        return (
            held.hold_mode == "wait"
            and held.proxy_pid == os.getpid()
            and held.proxy_host == socket.gethostname()
            and (lease is None or held.proxy_lease == lease)
        )

    def record_outcome(self, held_id: str, decision: str, reason: str, *, duration_ms: float | None = None) -> bool:
        """What became of an approved call (`forwarded` ok/error, or `not_run` and why), once."""
        held = self.store.get_held(held_id)
        if held is None:
            return False
        call = ToolCall(
            held.server,
            held.tool,
            held.edited_arguments or held.arguments,
            session=held.session,
            client=held.client,
            identity=held.identity,
        )
        row = entry(
            call,
            decision,
            channel="signoff",
            by="signoff",
            reason=reason,
            duration_ms=duration_ms,
            policy_hash=held.policy_hash,
            rule=held.rule,
            held_id=held.id,
        )
        return self.store.record_outcome(held_id, f"{decision}: {reason}", row)

    # ------------------------------------------------------------------ kill switch

    def kill(self, reason: str = "", *, by: str | None = None) -> list[HeldCall]:
        """Switch the kill switch on; every pending call is killed in the same commit."""
        state = KillState(True, reason, by or user(), time.time())
        killed = self.store.set_kill(state, lambda h: Resolution("killed", state.by, "kill", reason or "kill switch on"))
        self._kill_cache = None
        return killed

    def resume(self, *, by: str | None = None) -> None:
        self.store.set_kill(KillState(False, "", by or user(), time.time()), None)
        self._kill_cache = None

    def kill_state(self) -> KillState:
        """The kill switch, read at most every 100 ms, and not even then while the store's `kill`
        change token stands still (at most KILL_TRUST_SECONDS: on PostgreSQL no round trip per
        call). If the store cannot be read: on (fail closed)."""
        now = time.monotonic()
        cached = self._kill_cache
        if cached is not None and now - cached[0] < KILL_CACHE_SECONDS:
            return cached[2]
        try:
            token = None
            if cached is not None:  # the token before the read: a change in between moves it
                token = self.store.change_token("kill")
                if cached[1] == token and now - cached[0] < KILL_TRUST_SECONDS and not cached[2].on:
                    return cached[2]
            state = self.store.get_kill()
        except StoreError as exc:
            log.error("cannot read the kill switch: %s; treating it as on", exc)
            token, state = None, KillState(True, f"signoff could not read its store ({exc})", "signoff", time.time())
        self._kill_cache = (now, token, state)
        return state

    # ------------------------------------------------------------------ remembered decisions

    def remembered_match(self, call: ToolCall) -> str | None:
        """The id of an active remembered approval covering `call`, or None."""
        found = self.store.match_remembered(call.server, call.tool, call.session, call.arguments_hash)
        return None if found is None else found.id

    def remembered(self, *, include_revoked: bool = False) -> list[Remembered]:
        return self.store.remembered(include_revoked=include_revoked)

    def revoke(self, rule_id: str, *, by: str | None = None) -> Remembered:
        return self.store.revoke_remembered(rule_id, by or user())

    def as_policy_rules(self) -> list[dict[str, Any]]:
        """Active remembered approvals as `hitl_policies` entries (`decision: allow`).

        `args` rules carry a CEL condition comparing the arguments; `session` rules compare a
        `session` variable, which the policy engine must provide for them to match.
        """
        from datetime import datetime

        rules = []
        for rem in self.remembered():
            day = datetime.fromtimestamp(rem.created).strftime("%Y-%m-%d")
            what = {
                "tool": "always approve this tool",
                "args": "always approve these arguments",
                "session": f"approve for session {rem.session}",
            }[rem.kind]
            rule: dict[str, Any] = {
                "name": f"remembered {rem.id}",
                "tool": f"{rem.server}.{rem.tool}",
                "decision": "allow",
                "reason": f"remembered: {what} (by {rem.created_by}, {day})",
            }
            if rem.kind == "args":
                rule["condition"] = f"args == {canonical_json(dict(rem.arguments or {}))}"
            elif rem.kind == "session":
                rule["condition"] = f"session == {canonical_json(rem.session)}"
            rules.append(rule)
        return rules

    # ------------------------------------------------------------------ hold: retry

    def issue_retry(
        self,
        call: ToolCall,
        decision: Decision,
        policy_hash: str = "",
        *,
        history: Iterable[ToolCall | Mapping[str, Any]] = (),
        shown: Mapping[str, Any] | None = None,
        on_held: Callable[[HeldCall], None] | None = None,
    ) -> str:
        """Hold `call` without waiting; the same call, made again after approval, spends the token."""
        row, audit = self._row(call, decision, history, "retry", policy_hash, shown)
        token = {"policy_hash": policy_hash, "expires": row["deadline"] + self.retry_ttl}
        held = self.store.insert_held(row, audit, token)
        self._announce(held, on_held)
        return held.id

    def _announce(self, held: HeldCall, on_held: Callable[[HeldCall], None] | None) -> None:
        for listener in self.listeners:
            listener(held)
        if on_held is not None:
            on_held(held)

    def consume_retry(self, call: ToolCall, policy_hash: str = "") -> Outcome | None:
        """The outcome of an earlier held copy of this exact call, or None if there is none.

        Pending → status "pending" (the token is kept); decided → the outcome, and the token is
        spent (single use: only one caller, in any process, gets an approval).
        """
        now = time.time()
        held_id = self.store.find_retry(call.server, call.tool, call.arguments_hash, policy_hash, now)
        if held_id is None:
            return None
        held = self.get(held_id)
        if held.status == "pending" and held.deadline <= now:
            res = Resolution(
                "timeout", "signoff", "timeout", f"no decision within {format_duration(held.deadline - held.created)}"
            )
            try:
                held = self.store.resolve(held_id, res)
            except AlreadyDecidedError:
                held = self.get(held_id)
        if held.status == "pending":
            return Outcome("pending", held_id, f"still waiting for approval as {held_id}")
        if not self.store.use_retry(held_id, now):
            return None
        return outcome_of(held)
