"""A held call's risk level, from the decision matrix: reversible/irreversible × impact.

Irreversible: the matched action is one that cannot be undone (deleting, sending, paying,
writing a database), or the tool declares itself destructive. High impact: the call can reach
outside this machine (the tool is open-world, or its arguments name external addresses).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from signoff import policy_match as pm

LEVELS = ("low", "medium", "high", "critical")
_ACTION = re.compile(r"\(([a-z_]+)\)\s*$")


def assess(rule: str | None, annotations: Mapping[str, Any], arguments: Mapping[str, Any],
           internal_domains: tuple[str, ...] = ()) -> tuple[str, str]:
    """(level, why) for one held call."""
    action = None
    if rule and (match := _ACTION.search(rule)):
        action = match.group(1)
    builtin = pm.BUILTIN_ACTIONS.get(action or "")
    destructive = pm.effective_hint("destructiveHint", annotations) is True and not annotations.get("readOnlyHint")
    irreversible = bool(builtin and builtin.irreversible) or destructive
    addresses = pm.hosts(arguments) | pm.email_domains(arguments)
    external = bool(addresses) and pm.any_external(addresses, internal_domains)
    open_world = pm.effective_hint("openWorldHint", annotations) is True
    high_impact = external or (open_world and not annotations.get("readOnlyHint"))
    level = LEVELS[(2 if irreversible else 0) + (1 if high_impact else 0)]
    parts = ["irreversible" if irreversible else "reversible", "reaches outside" if high_impact else "local effect"]
    if action:
        parts.append(f"action {action}")
    return level, ", ".join(parts)
