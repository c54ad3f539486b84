"""`signoff policy replay`: what a policy would have decided for the calls already recorded.

The recorded calls are the audit rows of the policy's first word on each call (allowed, held,
observed, or denied by a rule). Replaying a candidate policy over them shows what tightening or
relaxing it would change before it is enforced, which is what observe mode is for.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from signoff.model import Identity, ToolCall

RECORDED = {"allowed": "allow", "held": "ask", "observed": "ask"}


@dataclass(frozen=True)
class Change:
    row_id: int
    time: str
    tool: str
    arguments: Mapping[str, Any]
    was: str
    now: str
    rule: str | None
    reason: str


OBSERVED_RUN = "observe mode"
"""The reason of the `allowed` row that follows an `observed` one: the same call, already counted."""


def recorded_verdict(row: Mapping[str, Any]) -> str | None:
    """allow | ask | deny for the policy's own decision on a call, or None for follow-up rows.

    Like is compared with like: in observe mode a call the policy would hold is recorded as
    `observed` (ask) and then `allowed` (it ran): only the first row is the policy's word. A
    call let through by a remembered approval was an `ask` the person had already answered."""
    if row["decision"] == "allowed" and row.get("reason") == OBSERVED_RUN:
        return None
    if row["decision"] == "allowed" and str(row.get("decided_by") or "").startswith("remembered:"):
        return "ask"
    if row["decision"] in RECORDED:
        return RECORDED[row["decision"]]
    if row["decision"] == "denied" and row.get("channel") == "policy":
        return "deny"
    return None


def replay(policy: Any, rows: Iterable[Mapping[str, Any]]) -> tuple[list[Change], Counter[str]]:
    """(the calls whose decision would change, counts of every transition such as "allow→ask")."""
    changes: list[Change] = []
    counts: Counter[str] = Counter()
    for row in rows:
        was = recorded_verdict(row)
        if was is None:
            continue
        given = row.get("arguments")
        arguments = given if isinstance(given, dict) else {}
        call = ToolCall(
            row["server"],
            row["tool"],
            arguments,
            session=row.get("session") or "",
            client=row.get("client") or "",
            identity=_identity(row.get("identity")),
        )
        decision = policy.evaluate(call)
        now = decision.verdict.value
        counts[f"{was}→{now}"] += 1
        if now != was:
            changes.append(
                Change(row["id"], str(row.get("time", "")), call.qualified, arguments, was, now, decision.rule, decision.reason)
            )
    return changes, counts


def _identity(value: Any) -> Identity | None:
    """The recorded machine, agent and owner (JSON text in the audit row), so rules on them replay."""
    import json

    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return Identity.from_dict(value)
