"""What a store keeps, whichever backend: the held-call, kill-switch and remembered-approval
records, and the rows both backends write for them (a decision's audit row, a remembered
approval, a chained audit row), so SQLite and PostgreSQL record the same thing."""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from signoff.approvals.audit import audit_mac, now_iso, row_hash
from signoff.approvals.quorum import Tally, Vote, tally
from signoff.errors import AlreadyDecidedError, CallGoneError, StoreError
from signoff.model import ONE_APPROVER, ApprovalRequirements, Identity, canonical_json
from signoff.redact import redact, restore

USER_CHANGES = ("roles", "password_hash", "totp_secret", "passkeys")
"""The columns `update_user` may change (a name is the person's identity: never renamed)."""
GONE = ("withdrawn", "abandoned", "expired")
"""Statuses of a call nobody waits for any more: the client cancelled or stopped waiting, or its proxy died."""
GONE_WORDS = {"abandoned": "proxy gone", "expired": "client stopped waiting", "withdrawn": "withdrawn by the client"}
"""How every channel names each GONE status in a few plain words."""
GONE_LOOKBACK = 7 * 86400
"""`recently_gone` looks at calls held at most this long before (keeps the query on the status index)."""


def new_id(prefix: str) -> str:
    """A short random id such as `h-7f3a9c` (24 bits; an insert retries on the rare clash)."""
    return f"{prefix}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class HeldCall:
    """One held call as stored: what was asked, why it was held, and what became of it."""

    id: str
    server: str
    tool: str
    arguments: Mapping[str, Any]
    args_hash: str
    rule: str | None
    reason: str
    session: str
    session_history: Sequence[Mapping[str, Any]]
    client: str
    created: float
    deadline: float
    status: str
    hold_mode: str = "wait"
    on_timeout: str = "deny"
    policy_hash: str = ""
    proxy_pid: int | None = None
    proxy_host: str = ""
    decided_by: str | None = None
    channel: str | None = None
    decision_reason: str | None = None
    decided_at: float | None = None
    edited_arguments: Mapping[str, Any] | None = None
    input_schema: Mapping[str, Any] | None = None
    annotations: Mapping[str, Any] | None = None
    actions: tuple[str, ...] = ()
    """The actions the policy recognised (send_email, file_write…), as the proxy saw the call."""
    facts: tuple[Mapping[str, Any], ...] = ()
    """The policy's facts ({kind, label, text, risky}) about the call."""
    presentation: Mapping[str, Any] | None = None
    """What every channel shows first (signoff.approvals.present): headline, ordered facts, preview (file diff)."""
    proxy_lease: str | None = None
    outcome: str | None = None
    """After an approval: what happened (`forwarded: ok`, `forwarded: error: …`, `not_run: why`)."""
    votes: tuple[Mapping[str, Any], ...] = ()
    """Team mode: the counted votes (person, decided_by, vote, roles, reason, at), when read with them
    (`Store.with_votes`; the broker's `get` and `pending` do)."""

    @property
    def qualified(self) -> str:
        return f"{self.server}.{self.tool}"

    @property
    def team(self) -> Mapping[str, Any] | None:
        """What the proxy stored for team mode, in the presentation JSON (key `team`):
        `identity` {machine, agent, owner} and `approval` {quorum, approvers, not_self}."""
        found = self.presentation.get("team") if isinstance(self.presentation, Mapping) else None
        return found if isinstance(found, Mapping) else None

    @property
    def identity(self) -> Identity | None:
        """Who made the call (None for rows held before identities were kept)."""
        return Identity.from_dict((self.team or {}).get("identity"))

    @property
    def requirements(self) -> ApprovalRequirements:
        """Who may approve, how many must (one approver for rows from before; nobody if unreadable)."""
        team = self.team
        return ONE_APPROVER if team is None else ApprovalRequirements.from_dict(team.get("approval"))

    @property
    def tally(self) -> Tally:
        """Where the call stands after its votes (approvals/votes.py; read with `Store.with_votes`)."""
        identity = self.identity
        return tally(
            self.requirements, as_votes(stored_votes(self.votes, self)), identity.owner if identity is not None else None
        )

    @property
    def progress(self) -> str:
        """`approved by alice (1 of 2)` for a call decided by votes; "" for one approver's calls."""
        return "" if self.requirements.default and not self.votes else self.tally.progress()

    def progress_view(self) -> dict[str, Any]:
        """The votes so far for the page and JSON: text, who approved, how many more are needed."""
        counted = self.tally
        return {
            "text": self.progress,
            "approved_by": list(counted.approved_by),
            "needed": counted.needed,
            "denied_by": counted.denied_by,
        }

    @property
    def who(self) -> str:
        """`agent claude-code on laptop-ann (owner ann)`: the same words on every channel ("" if unknown)."""
        identity = self.identity
        if identity is None:
            return ""
        owner = f" (owner {identity.owner})" if identity.owner else ""
        return f"agent {identity.agent or '?'} on {identity.machine or '?'}{owner}"

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["session_history"] = list(self.session_history)
        identity = self.identity
        out.update(identity.as_dict() if identity is not None else {}, approval=self.requirements.as_dict())
        out["votes"] = [{k: v.get(k) for k in ("person", "decided_by", "vote", "reason", "channel", "at")} for v in self.votes]
        out["progress"] = self.progress_view()
        return out


def stored_votes(rows: Iterable[Mapping[str, Any]], held: HeldCall) -> list[Mapping[str, Any]]:
    """The vote rows that belong to this call: its id and its arguments' hash, in order (a vote
    never counts for another call, nor for this id with other arguments)."""
    return [r for r in rows if r["held_id"] == held.id and r["args_hash"] == held.args_hash]


def as_votes(rows: Iterable[Mapping[str, Any]]) -> list[Vote]:
    return [Vote.of(r["person"], json.loads(r["roles"]), r["vote"] == "approve") for r in rows]


def attach_votes(calls: Sequence[HeldCall], rows: Sequence[Mapping[str, Any]]) -> list[HeldCall]:
    """Each call with its vote rows (`stored_votes`), for `Store.with_votes`."""
    by_call: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        by_call.setdefault(row["held_id"], []).append(row)
    return [replace(h, votes=tuple(stored_votes(by_call[h.id], h))) if h.id in by_call else h for h in calls]


@dataclass(frozen=True)
class KillState:
    on: bool
    reason: str = ""
    by: str = ""
    at: float | None = None


@dataclass(frozen=True)
class Remembered:
    """A remembered approval: `kind` is session (this tool in this session), args or tool."""

    id: str
    kind: str
    server: str
    tool: str
    session: str | None
    args_hash: str | None
    arguments: Mapping[str, Any] | None
    created: float
    created_by: str
    held_id: str | None
    revoked_at: float | None = None
    revoked_by: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Resolution:
    """A pending call's move to its final status, and what its audit row should say on top."""

    status: str
    by: str
    channel: str
    reason: str | None = None
    arguments: Mapping[str, Any] | None = None
    remember: str | None = None
    audit: dict[str, Any] = field(default_factory=dict)
    live_only: bool = False
    """A person's decision: it applies only while the call's proxy is alive to carry it out."""


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _held(row: Mapping[str, Any] | sqlite3.Row) -> HeldCall:
    data = dict(row)
    data["arguments"] = _loads(data["arguments"]) or {}
    data["session_history"] = tuple(_loads(data["session_history"]) or ())
    data["edited_arguments"] = _loads(data["edited_arguments"])
    data["input_schema"] = _loads(data.get("input_schema"))
    data["actions"] = tuple(_loads(data.get("actions")) or ())
    data["facts"] = tuple(_loads(data.get("facts")) or ())
    data["presentation"] = _loads(data.get("presentation"))
    data["annotations"] = _loads(data.get("annotations")) or {}
    for text in ("session", "client", "reason", "policy_hash", "proxy_host"):
        data[text] = data[text] or ""
    return HeldCall(**data)


def _remembered(row: Mapping[str, Any] | sqlite3.Row) -> Remembered:
    data = dict(row)
    data["arguments"] = _loads(data["arguments"])
    data["created_by"] = data["created_by"] or ""
    return Remembered(**data)


def gone_line(held: HeldCall) -> str:
    """One line, the same on every channel, for a call nobody waits for any more (GONE)."""
    return f"{held.id} ({held.qualified}): {GONE_WORDS.get(held.status, held.status)} — cannot be approved"


def _already(held: HeldCall) -> AlreadyDecidedError:
    if held.status in GONE:
        return CallGoneError(
            f"{held.id} can no longer be decided: it was {held.status} "
            f"({held.decision_reason or 'nobody waits for it'}); nothing ran"
        )
    by = f" by {held.decided_by}" if held.decided_by else ""
    via = f" ({held.channel})" if held.channel else ""
    return AlreadyDecidedError(f"{held.id} was already {held.status}{by}{via}; the first decision wins")


def apply_migrations(execute: Callable[[str], Any], migrations: Sequence[Sequence[str]], version: int, where: str) -> bool:
    """Run the schema steps after `version` (both backends); True if any ran. A store newer than
    this signoff is refused rather than guessed at."""
    if version > len(migrations):
        raise StoreError(f"{where} has schema version {version}, newer than this signoff ({len(migrations)}); upgrade signoff")
    for number in range(version, len(migrations)):
        for statement in migrations[number]:
            execute(statement)
    return version < len(migrations)


def edited_json(held: HeldCall, res: Resolution) -> str | None:
    """The arguments a person edited, as stored: an edit made on a redacted view keeps the secrets
    it could not show (never sends the marker)."""
    return None if res.arguments is None else canonical_json(restore(dict(res.arguments), dict(held.arguments)))


def transition_audit(held: HeldCall, res: Resolution, edited: str | None, now: float) -> dict[str, Any]:
    """The audit row content of a held call's move to `res.status` (both backends write this)."""
    return {
        "server": held.server,
        "tool": held.tool,
        "arguments": canonical_json(redact(json.loads(edited) if edited else dict(held.arguments))),
        "decision": res.status,
        "decided_by": res.by,
        "channel": res.channel,
        "reason": res.reason or "",
        "duration_ms": round((now - held.created) * 1000, 3),
        "rule": held.rule,
        "held_id": held.id,
        "session": held.session,
        "client": held.client,
        "policy_hash": held.policy_hash,
        "identity": _identity_json(held),
        **res.audit,
    }


def remembered_values(held: HeldCall, res: Resolution, now: float) -> dict[str, Any]:
    """The `remembered` row an approval with `remember` creates."""
    kind = res.remember
    return {
        "id": new_id("r"),
        "kind": kind,
        "server": held.server,
        "tool": held.tool,
        "session": held.session if kind == "session" else None,
        "args_hash": held.args_hash if kind == "args" else None,
        "arguments": canonical_json(dict(held.arguments)) if kind == "args" else None,
        "created": now,
        "created_by": res.by,
        "held_id": held.id,
    }


def chain_row(content: dict[str, Any], head: tuple[int, str], key: bytes | None) -> dict[str, Any]:
    """One audit row chained onto `head` (id, hash): id, time, prev_hash, hash and (with a key) mac."""
    row = {**content, "id": head[0] + 1, "time": now_iso(), "prev_hash": head[1]}
    row["hash"] = row_hash(row)
    if key is not None:
        row["mac"] = audit_mac(key, row["hash"])
    return row


def _identity_json(held: HeldCall) -> str | None:
    identity = held.identity
    return None if identity is None else canonical_json(identity.as_dict())


def _killed(kill: KillState) -> Resolution:
    return Resolution("killed", kill.by or "signoff", "kill", kill.reason or "kill switch on")
