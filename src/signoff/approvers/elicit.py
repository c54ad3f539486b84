"""Asking the user in the AI client's own dialog (MCP elicitation), as one approval channel.

The question goes to the client application and its human, through a server→client request
the model never sees; the model cannot answer it. A dismissed dialog decides nothing, so the
other channels (web page, CLI, terminal) still can. A client without the elicitation
capability is simply not asked.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from signoff.model import ToolCall

MAX_ARG_CHARS = 300

SCHEMA = {
    "type": "object",
    "properties": {
        "decision": {
            "type": "string",
            "title": "Decision",
            "enum": ["approve", "deny"],
        },
        "reason": {"type": "string", "title": "Reason (optional, shown to the agent on deny)"},
    },
    "required": ["decision"],
}


def question(call: ToolCall, held_id: str, reason: str) -> str:
    """`Approve filesystem.write_file(path=…, content=…)?` with why it was held."""
    parts = []
    for name, value in call.arguments.items():
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        if len(text) > MAX_ARG_CHARS:
            text = text[: MAX_ARG_CHARS - 1] + "…"
        parts.append(f"{name}={text}")
    return (f"signoff: approve {call.qualified}({', '.join(parts)})?\n"
            f"Held because: {reason}\n(held call {held_id}; you can also decide with `signoff approve {held_id}`)")


def params_for(call: ToolCall, held_id: str, reason: str) -> dict[str, Any]:
    """The `elicitation/create` parameters of the approval dialog."""
    return {"message": question(call, held_id, reason), "requestedSchema": SCHEMA}


async def ask(client: Any, call: ToolCall, held_id: str, reason: str) -> dict[str, Any]:
    """Send the dialog and wait for the answer (cancelled if another channel decides first)."""
    return await client.ask_client("elicitation/create", params_for(call, held_id, reason))


def to_decision(answer: Mapping[str, Any]) -> tuple[bool, str | None] | None:
    """(approve, reason) from the client's answer; None when the user dismissed the dialog."""
    result = answer.get("result")
    if not isinstance(result, Mapping):
        return None  # an error: the client could not show it
    action = result.get("action")
    content = result.get("content") if isinstance(result.get("content"), Mapping) else {}
    reason = content.get("reason") or None
    if action == "accept":
        choice = content.get("decision")
        if choice == "approve":
            return True, reason
        if choice == "deny":
            return False, reason or "denied in the client's dialog"
        return None
    if action == "decline":
        return False, reason or "declined in the client's dialog"
    return None  # cancel: dismissed without a decision
