"""What the policy engine looks for in a call: tool-name meanings, addresses, hosts, SQL tables.

Pure functions over a call's names and arguments. Anything that cannot be read for certain is
answered the cautious way (an unparseable SQL statement touches every table and writes; a call
with no recognisable recipient is treated as external), because a policy must fail closed.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

MAX_DEPTH = 32

# ---------------------------------------------------------------------------- tool names and built-in actions

_SPLIT = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])")


@functools.lru_cache(maxsize=4096)
def name_tokens(name: str) -> frozenset[str]:
    """`filesystem.delete_file` / `deleteFile` → {filesystem, delete, file}."""
    return frozenset(t.lower() for t in _SPLIT.split(name) if t)


@dataclass(frozen=True)
class BuiltinAction:
    """A seed action's meaning when the policy gives no `actions:` entry for it."""

    verbs: frozenset[str]
    objects: frozenset[str]
    destructive_means: bool = False
    """A tool annotated destructive whose name has one of the objects also counts."""
    irreversible: bool = False


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


BUILTIN_ACTIONS: dict[str, BuiltinAction] = {
    "file_delete": BuiltinAction(
        _words("delete remove rm unlink erase trash destroy rmdir purge"),
        _words("file files dir directory folder path paths fs filesystem"),
        destructive_means=True,
        irreversible=True,
    ),
    "file_write": BuiltinAction(
        _words("write edit create save overwrite append move rename put upload patch mkdir copy"),
        _words("file files dir directory folder path paths fs filesystem"),
    ),
    "send_email": BuiltinAction(
        _words("send reply forward compose draft"),
        _words("email emails mail mails message messages gmail outlook smtp inbox"),
        irreversible=True,
    ),
    "send_message": BuiltinAction(
        _words("send post reply forward publish"),
        _words("message messages chat slack teams discord sms text tweet post channel"),
        irreversible=True,
    ),
    "api_call": BuiltinAction(
        _words("fetch request call get post put patch delete http curl invoke webhook browse navigate"),
        _words("api url http https endpoint request webhook fetch web rest graphql"),
    ),
    "purchase": BuiltinAction(
        _words("buy purchase checkout pay order charge subscribe refund transfer"),
        frozenset(),
        irreversible=True,
    ),
    "database_write": BuiltinAction(
        _words("insert update delete drop alter truncate write execute exec upsert create merge migrate query run"),
        _words("db database sql table tables query record records row rows postgres mysql sqlite mongo collection"),
        destructive_means=True,
        irreversible=True,
    ),
    "shell": BuiltinAction(
        _words("run exec execute spawn start"),
        _words("shell command cmd bash sh terminal process script"),
        irreversible=True,
    ),
}


def builtin_match(action: str, server: str, tool: str, annotations: Mapping[str, Any]) -> str | None:
    """Why `server.tool` performs the built-in `action`, or None when it does not."""
    meaning = BUILTIN_ACTIONS.get(action)
    if meaning is None:
        return None
    tool_words = name_tokens(tool)
    words = tool_words | name_tokens(server)
    verbs = tool_words & meaning.verbs
    objects = words & meaning.objects
    if verbs and (objects or not meaning.objects):
        found = sorted(verbs | objects)
        return f"name has the words {', '.join(found)} of action {action}"
    if meaning.destructive_means and objects and annotations.get("destructiveHint") is True and not annotations.get("readOnlyHint"):
        return f"annotated destructiveHint and named {', '.join(sorted(objects))} ({action})"
    return None


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


# ---------------------------------------------------------------------------- arguments: strings, addresses, hosts


def strings(value: Any, key: str = "", depth: int = 0) -> Iterator[tuple[str, str]]:
    """Every string in nested arguments, with the key it sits under."""
    if depth > MAX_DEPTH:
        return
    if isinstance(value, str):
        yield key, value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from strings(v, str(k), depth + 1)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from strings(v, key, depth + 1)


_URL = re.compile(r"\b(?:https?|wss?|ftp)://[^\s\"'<>]+", re.IGNORECASE)
_EMAIL = re.compile(r"[A-Za-z0-9._%+'-]+@((?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,})")
_BARE_HOST = re.compile(r"^(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}(?::\d+)?(?:/.*)?$")
_HOST_KEYS = {"url", "uri", "host", "hostname", "domain", "endpoint", "base_url", "baseurl", "origin", "href", "link", "server"}


def hosts(arguments: Any) -> set[str]:
    """Hosts of URL-like values anywhere in the arguments (bare hostnames under url/host-like keys)."""
    found: set[str] = set()
    for key, text in strings(arguments):
        for url in _URL.findall(text):
            host = _host_of(url)
            if host:
                found.add(host)
        if key.lower() in _HOST_KEYS and _BARE_HOST.match(text.strip()):
            host = _host_of("http://" + text.strip())
            if host:
                found.add(host)
    return found


def _host_of(url: str) -> str | None:
    try:
        return (urlsplit(url).hostname or "").lower() or None
    except ValueError:
        return None


def email_domains(value: Any) -> set[str]:
    return {m.lower() for _, text in strings(value) for m in _EMAIL.findall(text)}


def is_internal(domain: str, internal_domains: tuple[str, ...]) -> bool:
    domain = domain.lower().rstrip(".")
    return any(domain == d or domain.endswith("." + d) for d in internal_domains)


def any_external(domains: set[str], internal_domains: tuple[str, ...]) -> bool:
    """True if one of `domains` is outside; with none found, unknown counts as external."""
    if not domains:
        return True
    return any(not is_internal(d, internal_domains) for d in domains)


def host_matches(patterns: tuple[str, ...], found: set[str]) -> str | None:
    for host in sorted(found):
        for pattern in patterns:
            if fnmatch.fnmatchcase(host, pattern.lower()):
                return f"host {host} matches {pattern}"
    return None


# ---------------------------------------------------------------------------- SQL


_SQL = re.compile(
    r"^\s*(?:select|insert|update|delete|with|create|drop|alter|truncate|merge|replace|upsert|grant|revoke|copy)\b",
    re.IGNORECASE,
)
ALL_TABLES = frozenset({"*"})


@dataclass(frozen=True)
class SqlTouch:
    """Tables a call's SQL touches, and whether it writes. `tables == ALL_TABLES` when unreadable."""

    tables: frozenset[str]
    writes: bool
    statements: int


def sql_touch(arguments: Any) -> SqlTouch:
    texts = [text for _, text in strings(arguments) if _SQL.match(text)]
    if not texts:
        return SqlTouch(frozenset(), False, 0)
    import sqlglot
    from sqlglot import exp

    write_types = (exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Drop, exp.Alter, exp.Create, exp.TruncateTable, exp.Command)
    tables: set[str] = set()
    writes = False
    count = 0
    for text in texts:
        try:
            statements = [s for s in sqlglot.parse(text) if s is not None]
        except sqlglot.errors.SqlglotError:
            return SqlTouch(ALL_TABLES, True, count + 1)  # unreadable: every table, and a write
        for statement in statements:
            count += 1
            if isinstance(statement, exp.Command):  # sqlglot's "I did not understand this"
                return SqlTouch(ALL_TABLES, True, count)
            writes = writes or isinstance(statement, write_types) or any(statement.find_all(*write_types[:-1]))
            for table in statement.find_all(exp.Table):
                if table.name:
                    tables.add(table.name.lower())
                    if table.db:
                        tables.add(f"{table.db}.{table.name}".lower())
    return SqlTouch(frozenset(tables), writes, count)


def tables_match(patterns: tuple[str, ...], touch: SqlTouch) -> str | None:
    if touch.tables == ALL_TABLES:
        return "SQL could not be parsed: counts as touching every table"
    for table in sorted(touch.tables):
        for pattern in patterns:
            if fnmatch.fnmatchcase(table, pattern.lower()):
                return f"SQL touches table {table}"
    return None
