"""signoff's own value types, shared by policy, broker, store, audit and the proxy.

They are frozen dataclasses rather than MCP SDK types so that everything outside proxy.py and
upstream.py works without importing `mcp` (which costs over a second to import).
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class Verdict(str, enum.Enum):
    """What the policy says about a call. Ordered by strength: deny > ask > allow."""

    ALLOW = "allow"
    ASK = "ask"
    DENY = "deny"

    @property
    def strength(self) -> int:
        return _STRENGTH[self]


_STRENGTH = {Verdict.ALLOW: 0, Verdict.ASK: 1, Verdict.DENY: 2}


def canonical_json(value: Any) -> str:
    """Stable JSON text (sorted keys, no spaces): the basis of argument hashes and audit hashes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


@dataclass(frozen=True)
class Identity:
    """Which proxy made a call: its machine (default: the hostname), its agent (default: the
    client's `clientInfo.name`; fixed with `--agent`) and its owner (the person whose agent it
    is, for `not_self`). Set by signoff from its own configuration (identity.py)."""

    machine: str = ""
    agent: str = ""
    owner: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"machine": self.machine, "agent": self.agent, "owner": self.owner}

    @classmethod
    def from_dict(cls, value: Any) -> Identity | None:
        if not isinstance(value, Mapping):
            return None
        return cls(*(str(value.get(k) or "") for k in ("machine", "agent", "owner")))


@dataclass(frozen=True)
class ToolCall:
    """One `tools/call` as signoff sees it.

    `server` is the upstream's configured name and `tool` the name the upstream knows, so
    `qualified` (`server.tool`) is what policies match, whether or not the client sees a prefix.
    """

    server: str
    tool: str
    arguments: Mapping[str, Any] = field(default_factory=dict)
    annotations: Mapping[str, Any] = field(default_factory=dict)
    session: str = ""
    client: str = ""
    input_schema: Mapping[str, Any] | None = field(default=None, compare=False)
    """The tool's JSON Schema for its arguments, as listed (to check arguments a person edits)."""
    identity: Identity | None = field(default=None, compare=False)
    """Who made the call (machine, agent, owner) as signoff set it, never as the model said it.
    None until the gate stamps it (identity.py); conditions then see empty names."""

    @property
    def qualified(self) -> str:
        return f"{self.server}.{self.tool}"

    @property
    def arguments_hash(self) -> str:
        return hashlib.sha256(canonical_json(dict(self.arguments)).encode()).hexdigest()


@dataclass(frozen=True)
class Fact:
    """One thing the policy read from a call, as a person would say it.

    `kind` is recipient, amount, command, sql, table, url, host, path, content, subject, body,
    method, collection, repository, branch or action; `label` names it ("recipient"), `text`
    says it ("eve@evil.example (external)"); `risky` marks the facts that made a rule match.
    """

    kind: str
    label: str
    text: str
    risky: bool = False


APPROVER_ROLE = "approver"
"""The role a person needs to decide a held call whose rules name no `approvers:`."""


@dataclass(frozen=True)
class ApprovalRequirements:
    """Who may decide a held call, and how many must agree (rule keys `approvers`, `quorum`,
    `not_self`; several matching rules combine to the strictest, see policy/engine.py).

    `approvers` holds one tuple of roles per matched rule that names some: a person is eligible
    when they hold at least one role of every tuple. Empty: anyone with the `approver` role.
    `quorum`: that many different eligible people must approve; one eligible deny denies.
    `not_self`: the agent's owner cannot approve its calls."""

    quorum: int = 1
    approvers: tuple[tuple[str, ...], ...] = ()
    not_self: bool = False

    @property
    def default(self) -> bool:
        return self == ONE_APPROVER

    def roles(self) -> str:
        """The eligible roles in words: `finance`, `finance or cfo`, `finance and security`."""
        if not self.approvers:
            return f"any {APPROVER_ROLE}"
        return " and ".join(
            " or ".join(group) if len(group) == 1 or len(self.approvers) == 1 else f"({' or '.join(group)})"
            for group in self.approvers
        )

    def describe(self) -> str:
        """One line for people: `2 approvals from finance; not the agent's owner`."""
        text = f"{self.quorum} approval{'s' if self.quorum != 1 else ''} from {self.roles()}"
        return text + ("; not the agent's owner" if self.not_self else "")

    def as_dict(self) -> dict[str, Any]:
        return {"quorum": self.quorum, "approvers": [list(g) for g in self.approvers], "not_self": self.not_self}

    @classmethod
    def from_dict(cls, value: Any) -> ApprovalRequirements:
        """From a held row; anything malformed there reads as the strictest possible value:
        nobody is eligible (a row that cannot say who may approve is never approved)."""
        if value is None:
            return ONE_APPROVER
        try:
            quorum, listed = value["quorum"], value.get("approvers") or []
            if not isinstance(quorum, int) or isinstance(quorum, bool) or quorum < 1 or not isinstance(listed, list):
                raise ValueError(quorum)
            if not all(isinstance(g, list) and g and all(isinstance(r, str) for r in g) for g in listed):
                raise ValueError(listed)
            groups = tuple(tuple(g) for g in listed)
            return cls(quorum, groups, value.get("not_self") is not False)
        except (KeyError, TypeError, ValueError, AttributeError):
            return NOBODY


ONE_APPROVER = ApprovalRequirements()
NOBODY = ApprovalRequirements(1, (("signoff:no-one",),), True)
"""What an unreadable requirement becomes: no role a person can hold, so no approval counts."""


@dataclass(frozen=True)
class Decision:
    """The policy's answer for one call: the verdict, the rule that produced it and why.

    `rule` is a human label such as ``hitl_policies[2] (action: file_delete)`` or None for the
    default; `reason` is one line a person understands ("sends email to eve@evil.example
    (external)"). `timeout` (seconds), `hold` (``wait`` | ``retry`` | ``auto``: wait, or retry for a
    client known to stop waiting sooner), `channels` and `on_timeout`
    only matter for ``ask``.
    """

    verdict: Verdict
    reason: str
    rule: str | None = None
    timeout: float | None = None
    hold: str = "auto"
    channels: tuple[str, ...] = ()
    on_timeout: str = "deny"
    actions: tuple[str, ...] = ()
    """The actions recognised in the call (send_email, file_delete, ...), whatever the verdict."""
    facts: tuple[Fact, ...] = ()
    """What was read from the arguments (recipients, amounts, commands...), for held and denied calls."""
    approval: ApprovalRequirements = field(default_factory=lambda: ONE_APPROVER)
    """For ``ask``: who may approve and how many must (the matched rules' strictest requirements)."""

    @property
    def allowed(self) -> bool:
        return self.verdict is Verdict.ALLOW


ALLOW_ALL = Decision(Verdict.ALLOW, "no policy configured")
