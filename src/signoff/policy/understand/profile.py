"""The vocabulary of actions, and what is known about one tool before reading a call's arguments.

A `Profile` comes from the catalog entry of the wrapped server (its actions, whether it only
reads, which argument paths carry recipients, amounts, SQL, URLs, commands; the API hosts it
reaches) or, for tools the catalog does not know, from the tool's name and annotations. The
policy caches one per tool.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from signoff.policy.catalog import ACTIONS
from signoff.policy.understand import shell, urls
from signoff.policy.understand.names import DB_WORDS, DELETE_VERBS, FILES, STRONG, by_name, name_tokens

VOCABULARY = ACTIONS  # the built-in actions a policy can name: one list, kept with the catalog's schema
UNKNOWN = "unknown"
"""A tool nothing recognises as reading or as an action: `action: "*"` rules hold it."""
ALL_ACTIONS = frozenset(VOCABULARY) | {UNKNOWN}
IMPLIES = {
    "database_delete": ("database_write",),
    "file_delete": ("file_write",),
    "refund": ("payment",),
}
"""A rule on the right-hand action also covers the left: a DELETE is a database write, a refund a payment.
A purchase (buying goods) and a payment (moving money) stay apart, as in the seed's presets."""


@dataclass(frozen=True)
class Profile:
    """What is known about one tool before looking at a call's arguments."""

    actions: frozenset[str]
    reads: bool
    destructive: bool
    fields: Mapping[str, tuple[str, ...]]
    catalogued: bool
    source: str
    """Where the knowledge comes from: "catalog github" or "the tool's name"."""
    why: str
    amount_unit: str = "major"
    currency: str | None = None
    annotations: Mapping[str, Any] = field(default_factory=dict)
    database: bool = False
    """The name says database (`query`, `sql`, a database server): SQL in its arguments is read."""
    arguments: frozenset[str] = frozenset()
    """The tool's real argument names, as the catalog recorded them."""
    server_id: str | None = None
    hosts: tuple[str, ...] = ()
    """The API hosts the catalogued server's calls reach (api.stripe.com), for `domains:` rules."""
    open_world: bool = False
    """The tool declares that it reaches outside (openWorldHint: true)."""

    @functools.cached_property
    def static(self) -> bool:
        """Catalogued, and no argument can change its actions (no command, SQL or path to read)."""
        return (
            self.catalogued
            and not ({"command", "sql", "method", "collection", "table"} & set(self.fields))
            and "shell" not in self.actions
            and ("path" not in self.fields or bool(self.actions - {"api_call"}))
            and ("recipient" not in self.fields or bool(self.actions & {"send_email", "send_message"}) or self.reads)
        )

    @property
    def possible(self) -> frozenset[str]:
        """Every action a call of this tool may turn out to perform (arguments can add some)."""
        found = set(self.actions)
        if not self.catalogued:  # arguments can say anything: a `command`, `sql` or URL argument
            return ALL_ACTIONS
        if "command" in self.fields or "shell" in found:
            found |= shell.EVERY_ACTION
        if "sql" in self.fields:
            found |= {"database_write", "database_delete", "sensitive_read"}
        if "recipient" in self.fields and not self.reads:
            found.add("send_email")
        if "method" in self.fields:
            found |= {"api_call", "file_delete"}
        if "url" in self.fields or "host" in self.fields:
            found.add("api_call")
        if {"path", "collection", "table"} & set(self.fields):
            found.add("sensitive_read")
        if {"collection", "table"} & set(self.fields):
            found.add("database_write")  # an aggregation's $out writes, whatever the tool claims
        return expand(found)


def expand(actions: Iterable[str]) -> frozenset[str]:
    out = set(actions)
    for action in list(out):
        out.update(IMPLIES.get(action, ()))
    return frozenset(out)


def profile(server: str, tool: str, annotations: Mapping[str, Any], entry: Any, catalog_id: str | None) -> Profile:
    hints = dict(annotations)
    if entry is not None:
        hints = hints if hints else {**dict(entry.annotations or {}), **hints}
        destructive = bool(entry.destructive) or (
            entry.destructive is None and hints.get("destructiveHint") is True and not entry.read_only
        )
        actions = frozenset(entry.actions)
        if (
            destructive
            and not entry.read_only
            and set(name_tokens(tool)) & DELETE_VERBS
            and actions.isdisjoint(("file_delete", "database_delete"))
        ):
            actions |= {"file_delete"}  # deleting a repository, a page, a key: a deletion the vocabulary has no word for
        why = f"{catalog_id}.{tool} in signoff's catalog: " + (", ".join(sorted(actions)) if actions else "only reads")
        return Profile(
            actions,
            bool(entry.read_only),
            destructive,
            {k: tuple(v) for k, v in entry.fields.items()},
            True,
            f"catalog {catalog_id}",
            why,
            entry.amount_unit or "major",
            entry.currency,
            dict(entry.annotations or {}),
            arguments=frozenset(getattr(entry, "arguments", ()) or ()),
            server_id=catalog_id,
            hosts=tuple(urls.normalize_domain(h) for h in getattr(entry, "hosts", ()) or ()),
        )
    actions, reads, why = by_name(server, tool)
    destructive = hints.get("destructiveHint") is True and not hints.get("readOnlyHint")
    if not actions and not reads and hints.get("readOnlyHint") is True and not set(name_tokens(tool)) & STRONG:
        reads, why = True, f"{tool} declares itself read-only (readOnlyHint)"
    if destructive and not actions and not reads:
        words = set(name_tokens(tool)) | set(name_tokens(server))
        if words & FILES:
            actions, why = frozenset({"file_delete"}), f"{tool} is annotated destructive and names files"
    words = set(name_tokens(tool)) | set(name_tokens(server))
    database = bool(words & DB_WORDS or actions & {"database_write", "database_delete"})
    return Profile(
        actions,
        reads,
        destructive,
        {},
        False,
        "the tool's name",
        why,
        database=database,
        open_world=hints.get("openWorldHint") is True,
    )
