"""A held call's risk level, from the decision matrix: reversible/irreversible × impact.

Irreversible: the recognised action is one that cannot be undone (deleting, sending, paying,
writing a database), or the tool declares itself destructive. High impact: the call can reach
outside this machine (the tool is open-world, or its arguments name external addresses).
The tool's own annotations are stored with the held call; a tool that declares none gets the
MCP defaults (destructive, open-world), and the explanation says so.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from signoff.policy import match as pm

LEVELS = ("low", "medium", "high", "critical")
_ACTIONS = re.compile(r"\(([a-z_]+(?:\s*,\s*[a-z_]+)*)\)\s*$")


def recognised_actions(rule: str | None, actions: Iterable[str] = ()) -> tuple[str, ...]:
    """The actions the policy recognised: the held call's recorded `actions` when there are any,
    else the ones the rule's label names (`… (file_delete)`, `… (purchase, payment)`)."""
    recorded = tuple(str(a) for a in actions if a)
    if recorded:
        return recorded
    if rule and (match := _ACTIONS.search(rule)):
        return tuple(a.strip() for a in match.group(1).split(","))
    return ()


def assess(
    rule: str | None,
    annotations: Mapping[str, Any] | None,
    arguments: Mapping[str, Any],
    internal_domains: tuple[str, ...] = (),
    *,
    actions: Iterable[str] = (),
) -> tuple[str, str]:
    """(level, why) for one held call."""
    annotations = annotations or {}
    found = recognised_actions(rule, actions)
    destructive = pm.effective_hint("destructiveHint", annotations) is True and not annotations.get("readOnlyHint")
    irreversible = any(pm.BUILTIN_ACTIONS[a].irreversible for a in found if a in pm.BUILTIN_ACTIONS) or destructive
    addresses = pm.hosts(arguments) | pm.email_domains(arguments)
    external = bool(addresses) and pm.any_external(addresses, internal_domains)
    open_world = pm.effective_hint("openWorldHint", annotations) is True
    high_impact = external or (open_world and not annotations.get("readOnlyHint"))
    level = LEVELS[(2 if irreversible else 0) + (1 if high_impact else 0)]
    parts = ["irreversible" if irreversible else "reversible", "reaches outside" if high_impact else "local effect"]
    if found:
        parts.append(f"action{'s' if len(found) > 1 else ''} {', '.join(found)}")
    if annotations.get("readOnlyHint") is True:
        parts.append("the tool says it is read-only")
    elif not any(k in annotations for k in ("destructiveHint", "openWorldHint", "readOnlyHint")):
        parts.append("the tool declares no hints (MCP defaults: destructive, open-world)")
    return level, ", ".join(parts)
