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

    @property
    def allowed(self) -> bool:
        return self.verdict is Verdict.ALLOW


ALLOW_ALL = Decision(Verdict.ALLOW, "no policy configured")
