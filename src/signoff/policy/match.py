"""Small matching helpers shared by the policy engine and the risk level: tool globs, MCP
annotations read as the spec means them, which actions cannot be undone, and the addresses
(hosts, mail domains) anywhere in a call's arguments.

What a call *does* (its actions, recipients, amounts, SQL, commands) is read by the
`signoff.policy.understand` package; this module only keeps what needs no understanding.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from signoff.policy.understand import recipients, urls
from signoff.policy.understand.arguments import pairs
from signoff.policy.understand.recognize import VOCABULARY
from signoff.policy.understand.sql import ALL_TABLES

__all__ = [
    "ALL_TABLES",
    "BUILTIN_ACTIONS",
    "ANNOTATION_DEFAULTS",
    "annotations_match",
    "any_external",
    "effective_hint",
    "email_domains",
    "glob_match",
    "hosts",
]


@dataclass(frozen=True)
class BuiltinAction:
    """A built-in action's nature: can what it does be undone?"""

    irreversible: bool = False


IRREVERSIBLE = {
    "file_delete",
    "send_email",
    "send_message",
    "purchase",
    "payment",
    "refund",
    "database_write",
    "database_delete",
    "shell",
    "deploy",
    "access_change",
}
BUILTIN_ACTIONS: dict[str, BuiltinAction] = {name: BuiltinAction(name in IRREVERSIBLE) for name in VOCABULARY}
"""Every action of the vocabulary; `on_timeout: allow` is refused for the irreversible ones."""


ANNOTATION_DEFAULTS = {"readOnlyHint": False, "destructiveHint": True, "idempotentHint": False, "openWorldHint": True}
"""The MCP spec's meaning of an absent hint: assume the worst, as a policy should."""


def effective_hint(key: str, annotations: Mapping[str, Any]) -> Any:
    """A hint's value as the spec reads it: absent means the default; a read-only tool destroys nothing."""
    if key in ("destructiveHint", "idempotentHint") and annotations.get("readOnlyHint") is True:
        return key == "idempotentHint"
    return annotations.get(key, ANNOTATION_DEFAULTS.get(key))


def annotations_match(wanted: Mapping[str, Any], annotations: Mapping[str, Any]) -> str | None:
    """None when every wanted hint holds; otherwise the first one that does not."""
    for key, value in wanted.items():
        actual = effective_hint(key, annotations)
        if actual != value:
            return f"{key} is {actual!r}, not {value!r}"
    return None


def glob_match(pattern: str, server: str, tool: str) -> bool:
    """`server.tool` globs; a pattern without a dot matches the bare tool name too."""
    if fnmatch.fnmatchcase(f"{server}.{tool}", pattern):
        return True
    return "." not in pattern and fnmatch.fnmatchcase(tool, pattern)


def hosts(arguments: Any) -> set[str]:
    """Hosts of URL-like values anywhere in the arguments (bare hostnames under url/host-like keys)."""
    found: set[str] = set()
    for key, text in pairs(arguments):
        if not isinstance(text, str):
            continue
        found |= urls.hosts_in_text(text)
        if key.lower() in urls.HOST_KEYS and (host := urls.host_of_value(text)):
            found.add(host)
    return found


def email_domains(arguments: Any) -> set[str]:
    """Domains of the mail addresses mentioned anywhere in the arguments."""
    return {r.domain or urls.UNPARSEABLE for r in recipients.in_text(t for _, t in pairs(arguments) if isinstance(t, str))}


def any_external(domains: set[str], internal_domains: tuple[str, ...]) -> bool:
    """True if one of `domains` is outside; with none found, unknown counts as external."""
    if not domains:
        return True
    return any(not urls.is_internal(d, internal_domains) for d in domains)
