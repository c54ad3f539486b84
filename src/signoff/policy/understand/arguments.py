"""Finding values in a call's arguments: by the catalog's paths (`args.items[*].price`), by
conventional key names for tools the catalog does not know, and the strings that are SQL or URLs."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any

from signoff.policy.understand import recipients, urls

ROLE_KEYS: dict[str, frozenset[str]] = {
    "recipient": recipients.RECIPIENT_KEYS,
    "amount": frozenset(
        {
            "amount",
            "total",
            "price",
            "amount_money",
            "unit_amount",
            "total_amount",
            "value_amount",
            "sum",
            "charge_amount",
            "payment_amount",
            "amount_cents",
            "amountcents",
            "cost",
        }
    ),
    "currency": frozenset({"currency", "currency_code", "currencycode"}),
    "command": frozenset({"command", "cmd", "commandline", "command_line", "shell_command", "script", "bash", "sh"}),
    "table": frozenset(
        {"table", "tables", "table_name", "tablename", "tableid", "table_id", "collection", "collection_name", "collectionname"}
    ),
    "path": frozenset(
        {
            "path",
            "paths",
            "file",
            "filename",
            "file_path",
            "filepath",
            "source",
            "destination",
            "target",
            "dir",
            "directory",
            "src",
            "dst",
            "dest",
            "old_path",
            "new_path",
        }
    ),
    "subject": frozenset({"subject", "title"}),
}
SQL_TEXT = re.compile(
    r"(?:^|;)\s*(?:select|insert|update|delete|with|create|drop|alter|truncate|merge|replace|upsert|grant|revoke|copy"
    r"|call|exec|execute|explain|pragma|vacuum|lock|attach|detach|rename|reindex|analyze|values|load|begin|set|show)\b",
    re.IGNORECASE,
)
SQL_KEYS = re.compile(r"sql|^(?:statements?|stmts?|query)$", re.IGNORECASE)
SQL_ONLY_KEYS = re.compile(r"sql|^(?:statements?|stmts?)$", re.IGNORECASE)
"""Keys that hold SQL whatever the tool's name (`query` alone is often a search query)."""


@functools.lru_cache(maxsize=4096)
def path_parts(path: str) -> tuple[tuple[str, bool], ...]:
    return tuple((part[:-3], True) if part.endswith("[*]") else (part, False) for part in path.split(".")[1:])


def values_at(arguments: Mapping[str, Any], path: str) -> list[Any]:
    """`args.message.to`, `args.items[*].price` → the values there (none when absent)."""
    parts = path_parts(path)
    if len(parts) == 1 and not parts[0][1]:  # the common case: args.to
        key = parts[0][0]
        return [arguments[key]] if isinstance(arguments, Mapping) and key in arguments else []
    current: list[Any] = [arguments]
    for key, star in parts:
        nxt: list[Any] = []
        for value in current:
            if isinstance(value, Mapping) and key in value:
                inner = value[key]
                if star:
                    if isinstance(inner, (list, tuple)):
                        nxt.extend(inner)
                else:
                    nxt.append(inner)
        current = nxt
    return current


def pairs(arguments: Any, max_depth: int = 32) -> list[tuple[str, Any]]:
    """Every (key, leaf value) in nested arguments; strings, numbers and the objects under keys."""
    out: list[tuple[str, Any]] = []
    stack: list[tuple[str, Any, int]] = [("", arguments, 0)]
    while stack:
        key, value, depth = stack.pop()
        if isinstance(value, str):
            out.append((key, value))
        elif depth > max_depth:
            out.append((key, "<too deeply nested>"))
        elif isinstance(value, Mapping):
            stack.extend((str(k), v, depth + 1) for k, v in reversed(list(value.items())))
        elif isinstance(value, (list, tuple)):
            stack.extend((key, v, depth + 1) for v in reversed(value))
        elif value is not None:
            out.append((key, value))
    return out


SQL_SHAPE = re.compile(
    r"\b(?:from|into|table|set|where|values|join|database|index|view|schema|procedure|function|grant|to)\b|;", re.IGNORECASE
)


def sql_texts(arguments: Any) -> list[str]:
    """Strings that are SQL: under an sql-like key, or shaped like a statement (`DELETE FROM …`, not "Call back")."""
    return [
        t
        for k, t in pairs(arguments)
        if isinstance(t, str) and t.strip() and (SQL_KEYS.search(k) or (SQL_TEXT.match(t) and SQL_SHAPE.search(t)))
    ]


def flat(values: list[Any]) -> list[str]:
    out: list[str] = []
    for v in values:
        if isinstance(v, str):
            out.append(v)
        elif isinstance(v, (list, tuple)):
            out.extend(x for x in v if isinstance(x, str))
    return out


def nested_items(value: Any, depth: int = 0) -> Iterable[tuple[str, Any]]:
    if depth > 8:
        return
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield str(k), v
            yield from nested_items(v, depth + 1)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from nested_items(v, depth + 1)


WHOLE_URL = re.compile(r"^(?:https?|wss?|ftp)://\S+$", re.IGNORECASE)


def whole_url_host(key: str, text: str) -> str | None:
    value = text.strip()
    if "://" in value and WHOLE_URL.match(value):
        return urls.host_of(value) or None
    if key.lower() in urls.HOST_KEYS:
        return urls.host_of_value(value)
    return None
