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
from signoff.termsafe import clean as safe
from signoff.termsafe import escape_json

MAX_ARG_CHARS = 300
MAX_ARGS = 12
MAX_MESSAGE_CHARS = 4000
MAX_FACTS = 8
MAX_PREVIEW_LINES = 12

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


def quoted(value: Any, limit: int = MAX_ARG_CHARS) -> str:
    """A value as a JSON literal on one line, escaped, cut at `limit` characters with a note."""
    text = escape_json(json.dumps(value, ensure_ascii=False, default=str))
    if len(text) > limit:
        text = f"{text[:limit]}… ({len(text) - limit} more characters not shown)"
    return text


def question(call: ToolCall, held_id: str, reason: str, shown: Any = None) -> str:
    """What the call does first (signoff.approvals.present: headline, facts, preview), then why it was held,
    the model's arguments last.

    Every fact value and argument is a quoted JSON literal on its own indented line, and preview
    lines start with signoff's own `│`, so model text cannot paint a line that looks like the
    dialog's own (a fake "Held because:", a fake tool name, a fake "(internal)")."""
    lines = [f"signoff: approve the call {quoted(call.qualified, 200)}?"]
    if shown is not None:
        lines += _what_it_does(shown)
    lines += [
        f"Held because: {safe(reason)}",
        f"Held call {held_id}; you can also decide with `signoff approve {held_id}` or `signoff deny {held_id}`.",
        f"Arguments ({len(call.arguments)}, as JSON):",
    ]
    arguments = shown.arguments if shown is not None else call.arguments  # redacted, in a sensible order
    used = sum(len(line) + 1 for line in lines)
    for index, (name, value) in enumerate(arguments.items()):
        line = f"  {quoted(str(name), 80)}: {quoted(value)}"
        if index == MAX_ARGS or used + len(line) > MAX_MESSAGE_CHARS:
            lines.append(f"  … {len(call.arguments) - index} more arguments not shown (see `signoff pending`)")
            break
        lines.append(line)
        used += len(line) + 1
    return "\n".join(lines)


def _what_it_does(shown: Any) -> list[str]:
    """The presentation's headline, facts (values quoted, signoff's notes outside the quotes) and
    the first preview lines."""
    lines = [f"It would: {safe(shown.headline)}"]
    for fact in shown.facts[:MAX_FACTS]:
        note = f" ({safe(fact.note)})" if fact.note else ""
        lines.append(f"  {'!' if fact.risky else ' '} {safe(fact.label)}: {quoted(fact.value, 200)}{note}")
    preview = shown.preview_lines(MAX_PREVIEW_LINES)
    if preview:
        given = shown.preview or {}
        title = {"diff": "Change", "sql": "SQL", "command": "Command"}.get(str(given.get("kind"))) or str(
            given.get("title") or "Preview"
        )
        lines.append(f"  {safe(title)}:")  # signoff's word: a diff's title is the model's path
        lines.extend(f"  │ {safe(line[:200])}" for line in preview)
    return lines


def params_for(call: ToolCall, held_id: str, reason: str, shown: Any = None) -> dict[str, Any]:
    """The `elicitation/create` parameters of the approval dialog."""
    return {"message": question(call, held_id, reason, shown), "requestedSchema": SCHEMA}


async def ask(client: Any, call: ToolCall, held_id: str, reason: str, shown: Any = None) -> dict[str, Any]:
    """Send the dialog and wait for the answer (cancelled if another channel decides first)."""
    return await client.ask_client("elicitation/create", params_for(call, held_id, reason, shown))


def to_decision(answer: Mapping[str, Any]) -> tuple[bool, str | None] | None:
    """(approve, reason) from the client's answer; None when the user dismissed the dialog."""
    result = answer.get("result")
    if not isinstance(result, Mapping):
        return None  # an error: the client could not show it
    action = result.get("action")
    given = result.get("content")
    content = given if isinstance(given, Mapping) else {}
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
