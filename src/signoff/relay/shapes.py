"""Tool calls in shapes a policy cannot judge the way the server will run them.

The gate judges a `tools/call` request by its exact tool name and arguments. A lenient server
may also run a `tools/call` notification, a method named `Tools/Call` or `tools.call`, or a tool
named `Delete_File ` (trimmed and case-folded into `delete_file`), none of which the policy saw
as the call that runs. The relay refuses these shapes (and audits the refusal) instead of
guessing what the server will make of them.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

CLIENT_METHODS = frozenset(
    {
        "initialize",
        "ping",
        "tools/list",
        "tools/call",
        "prompts/list",
        "prompts/get",
        "resources/list",
        "resources/templates/list",
        "resources/read",
        "resources/subscribe",
        "resources/unsubscribe",
        "completion/complete",
        "logging/setLevel",
        "server/discover",
        "tasks/get",
        "tasks/result",
        "tasks/list",
        "tasks/cancel",
        "notifications/initialized",
        "notifications/cancelled",
        "notifications/progress",
        "notifications/roots/list_changed",
        "notifications/tasks/status",
    }
)
"""Methods a client sends; anything else is relayed unless it imitates `tools/call`."""


def _folded(name: str) -> str:
    return re.sub(r"[\W_]+", "", unicodedata.normalize("NFKC", name).casefold())


def odd_tool_name(name: str, known: dict[str, Any]) -> str | None:
    """Why a tool name may read as another tool to a lenient server (None if it is plain).

    A policy matches `delete_file`; a server that trims or folds names would also run
    `delete_file `, `Delete_File` or `delete\u200bfile` — which the policy never saw."""
    if name in known:
        return None
    if not name or not name.isprintable() or " " in name:
        return f"tool name {name[:60]!r} contains spaces, control or invisible characters"
    folded = _folded(name)
    twin = next((tool for tool in known if _folded(tool) == folded), None)
    return None if twin is None else f"tool name {name[:60]!r} imitates the server's tool {twin!r}"


def imitates_tools_call(method: str) -> bool:
    """`Tools/Call`, ` tools/call`, `tools.call`, `tools/call\u200b`…: not the method, but a
    lenient server might take it as one."""
    return method not in CLIENT_METHODS and _folded(method) == "toolscall"
